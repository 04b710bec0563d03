"""The tutorial's real data, shipped inside the package.

``A.mat`` is a MOSFLM orientation matrix of a triclinic crystal (a = 26.75, b = 31.31,
c = 33.67 Å) and ``scaled.hkl`` its 64,333 measured structure-factor amplitudes. They are
installed with the package, so examples and notebooks find them without a checkout.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path


@dataclass(frozen=True)
class TutorialData:
    """Paths of the tutorial's files."""

    matrix: Path
    """``A.mat``: the MOSFLM orientation matrix (wavelength 0.9768 Å)."""
    hkl: Path
    """``scaled.hkl``: ``h k l F`` for 64,333 reflections."""


def data_path(name: str) -> Path:
    """Path of a data file shipped with the package.

    Parameters
    ----------
    name : str
        File name in the package's ``data`` folder, e.g. ``"A.mat"``.

    Returns
    -------
    Path
        The installed file.

    Raises
    ------
    FileNotFoundError
        No such file in the package data.
    """
    path = Path(str(resources.files("nanobrag_torch") / "data" / name))
    if not path.is_file():
        raise FileNotFoundError(f"{name!r} is not in the package data folder {path.parent}")
    return path


def tutorial_data_paths() -> TutorialData:
    """Paths of the tutorial's ``A.mat`` and ``scaled.hkl``.

    Returns
    -------
    TutorialData
        ``.matrix`` (read it with :func:`nanobrag_torch.io.mosflm.read_mosflm_matrix` at
        wavelength 0.9768 Å) and ``.hkl`` (read it with
        :func:`nanobrag_torch.io.hkl.read_hkl_file`).

    Examples
    --------
    >>> from nanobrag_torch.datasets import tutorial_data_paths
    >>> tutorial_data_paths().matrix.name
    'A.mat'
    """
    return TutorialData(matrix=data_path("A.mat"), hkl=data_path("scaled.hkl"))
