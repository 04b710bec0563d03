"""The tutorial's real data, shipped inside the package, and its experiment.

``A.mat`` is a MOSFLM orientation matrix of a triclinic crystal (a = 26.75, b = 31.31,
c = 33.67 Å) and ``scaled.hkl`` its 64,333 measured structure-factor amplitudes. They are
installed with the package, so examples and notebooks find them without a checkout
(:func:`tutorial_data_paths`). :func:`tutorial_experiment` returns the configurations and
structure factors of the experiment that the tutorial simulates with them.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Optional

import torch

from .config import BeamConfig, CrystalConfig, DetectorConfig
from .io.hkl import read_hkl_file
from .structure_factors import StructureFactors


@dataclass(frozen=True)
class TutorialData:
    """Paths of the tutorial's files.

    Attributes
    ----------
    matrix : Path
        ``A.mat``: the MOSFLM orientation matrix (wavelength 0.9768 Å).
    hkl : Path
        ``scaled.hkl``: ``h k l F`` for 64,333 reflections.
    """

    matrix: Path
    hkl: Path


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


TUTORIAL_COMMAND = (
    "nanoBragg -mat A.mat -hkl scaled.hkl -nonoise -nointerpolate -oversample 1 \\\n"
    "  -exposure 1 -flux 1e18 -beamsize 1.0 -spindle_axis -1 0 0 \\\n"
    "  -Xbeam 217.742295 -Ybeam 213.907080 -distance 231.274660 -lambda 0.976800 \\\n"
    "  -pixel 0.172 -detpixels_x 2463 -detpixels_y 2527 \\\n"
    "  -odet_vector -0.000088 0.004914 -0.999988 -sdet_vector -0.005998 -0.999970 -0.004913 \\\n"
    "  -fdet_vector 0.999982 -0.005998 -0.000118 -beam_vector 0.00051387949 0.0 -0.99999986 \\\n"
    "  -Na 36 -Nb 47 -Nc 29 -phi 0 -osc 0 -phisteps 1 -mosaic 0.2 -mosaic_domains 5 -mosaic_seed 42"
)
"""The tutorial's experiment as a nanoBragg command line, to run in the folder of ``A.mat``
and ``scaled.hkl``."""


@dataclass(frozen=True)
class TutorialExperiment:
    """The tutorial's experiment at its true parameters: configurations and structure factors.

    Derive a variant with ``dataclasses.replace`` (another phi, an oscillation, a start
    for a refinement) or a piece of the detector with
    :func:`~nanobrag_torch.models.detector.detector_region`.

    Attributes
    ----------
    crystal : CrystalConfig
        ``A.mat``'s cell and orientation at 0.9768 Å, 36 × 47 × 29 cells, five mosaic domains
        (seed 42) spread by 0.2°, a still at phi 0° about the spindle (−1, 0, 0).
    detector : DetectorConfig
        The 2463 × 2527 Pilatus of 0.172 mm pixels at 231.27466 mm, tilted (CUSTOM vectors:
        fdet and sdet of the command line made unit vectors, the normal their cross product, as
        nanoBragg takes them), placed by its beam centre (217.742295, 213.907080) mm.
    beam : BeamConfig
        0.9768 Å, a fluence of 10²⁴ photons per m² (10¹⁸ photons per second for 1 s through a
        1 mm beam).
    structure_factors : StructureFactors
        ``scaled.hkl``'s 64,333 amplitudes, 0 for every other reflection.
    command : str
        The nanoBragg command line of the experiment, to run in the folder of ``A.mat`` and
        ``scaled.hkl``: the configurations are the ``nanobragg`` command's reading of it.
    """

    crystal: CrystalConfig
    detector: DetectorConfig
    beam: BeamConfig
    structure_factors: StructureFactors
    command: str


def tutorial_experiment(dtype: torch.dtype = torch.float64,
                        device: Optional[torch.device] = None) -> TutorialExperiment:
    """The tutorial's experiment: the crystal of ``A.mat`` and ``scaled.hkl`` on a Pilatus.

    A triclinic crystal (a = 26.75, b = 31.31, c = 33.67 Å) of 36 × 47 × 29 cells with five
    mosaic domains (seed 42) spread by 0.2°, recorded as a still at phi = 0° on a slightly
    tilted 2463 × 2527-pixel Pilatus at 231.27 mm in the CUSTOM convention, at λ = 0.9768 Å:
    the experiment of the refinement tutorial and of the gallery pages that build on it.

    Parameters
    ----------
    dtype : torch.dtype
        Floating type of the structure factors (give the simulation's, so that every crystal
        built from them uses them as they are).
    device : torch.device or str, optional
        Where the structure factors are. Default: the CPU.

    Returns
    -------
    TutorialExperiment
        ``.crystal``, ``.detector`` and ``.beam`` (the configurations), ``.structure_factors``
        and ``.command`` (the nanoBragg command line they correspond to).

    Examples
    --------
    >>> import dataclasses
    >>> from nanobrag_torch import detector_region
    >>> from nanobrag_torch.datasets import tutorial_experiment
    >>> experiment = tutorial_experiment()
    >>> experiment.crystal.N_cells, experiment.crystal.mosaic_spread_deg
    ((36, 47, 29), 0.2)
    >>> start = dataclasses.replace(experiment.crystal, phi_start_deg=1.0, mosaic_spread_deg=0.5)
    >>> region = detector_region(experiment.detector, fast0=1248, slow0=688, fast_pixels=384, slow_pixels=768)
    >>> region.fpixels, region.spixels
    (384, 768)
    """
    from .cli.plan import parse_args  # nanoBragg's reading of a command line, in one place

    paths = tutorial_data_paths()
    files = {"A.mat": str(paths.matrix), "scaled.hkl": str(paths.hkl)}
    plan = parse_args([files.get(word, word) for word in TUTORIAL_COMMAND.replace("\\\n", " ").split()[1:]])
    grid, metadata = read_hkl_file(paths.hkl, default_F=0.0)
    return TutorialExperiment(crystal=plan.crystal, detector=plan.detector, beam=plan.beam,
                              structure_factors=StructureFactors(grid, metadata, default_F=0.0, dtype=dtype,
                                                                 device=device),
                              command=TUTORIAL_COMMAND)
