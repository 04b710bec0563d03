"""MTZ reflection files (through gemmi): merged amplitudes in, as the structure factors of a
crystal, and merged amplitudes and unmerged intensities out, as the serial-crystallography
result writes them.

gemmi is an optional dependency (``pip install nanobrag-torch[io]``), imported by the
functions that need it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .._docs import fill_doc
from ..structure_factors import StructureFactors
from .atomic import atomic_write
from .hkl import MAX_TABLE_ENTRIES, _metadata

ArrayLike = Union[np.ndarray, Sequence[float], torch.Tensor]


def _gemmi():
    """The gemmi module, or an ImportError naming the extra that installs it."""
    try:
        import gemmi
    except ImportError:
        raise ImportError("reading and writing MTZ files needs gemmi: pip install nanobrag-torch[io]") from None
    return gemmi


@fill_doc
def read_mtz_amplitudes(path: Union[str, Path], column: str = "F", sigma_column: Optional[str] = None, *,
                        default_F: float = 0.0) -> StructureFactors:
    """Read merged amplitudes from an MTZ file into a dense table of every P1 index.

    Each reflection of the file is expanded by the rotations of the file's space group to all
    its symmetry-equivalent indices, each with the same amplitude; reflections the file does
    not list (systematic absences among them) get ``default_F``.

    How ``column`` chooses: when the file has the anomalous pair ``<column>(+)`` and
    ``<column>(-)`` (``F(+)``, ``F(-)`` for the default), ``F(+)`` is the amplitude of each
    listed index ``hkl`` and its equivalents and ``F(-)`` that of ``-hkl`` and its equivalents:
    Friedel mates are kept apart. A missing value of the pair is taken from ``<column>`` when
    the file has it too. Otherwise ``<column>`` itself is read and Friedel's law applied
    (``F(-hkl) = F(hkl)``).

    Parameters
    ----------
    path : str or Path
        The MTZ file.
    column : str
        Label of the amplitude column (electrons), or the stem of an anomalous pair.
    sigma_column : str, optional
        Label of the amplitudes' uncertainties (``SIGF``; ``SIGF(+)``/``SIGF(-)`` for a pair
        chosen as above). When given, the column must be in the file, and a reflection whose
        uncertainty is missing is treated as missing too.
    default_F : float
        Amplitude (electrons) of every index of the box that no reflection reaches.

    Returns
    -------
    StructureFactors
        On the CPU in float64, with this ``default_F``; its ``metadata`` as
        :func:`~nanobrag_torch.io.hkl.read_hkl_file` gives it.

    Raises
    ------
    ImportError
        gemmi is not installed.
    FileNotFoundError
        The file does not exist.
    ValueError
        Not a readable MTZ file, no column of that label (the message lists those there), a
        column that is not amplitudes, no reflection with a value, or an index box larger
        than ``MAX_TABLE_ENTRIES``.
    """
    gemmi = _gemmi()
    mtz = _read_mtz(gemmi, path)
    labels = list(mtz.column_labels())
    pair = (f"{column}(+)", f"{column}(-)")
    anomalous = all(label in labels for label in pair)
    if not anomalous and column not in labels:
        raise ValueError(f"{path}: no column {column!r} (nor {pair[0]!r} and {pair[1]!r}); the file has "
                         f"{', '.join(labels)}")
    data = np.array(mtz) if mtz.nreflections else np.zeros((0, len(labels)), dtype=np.float32)
    hkl = _indices(path, data)

    def values(label: str, sigma: Optional[str]) -> np.ndarray:
        amplitude = _column(path, mtz, data, labels, label).astype(np.float64)
        if sigma is not None:
            if sigma not in labels:
                raise ValueError(f"{path}: no column {sigma!r} (sigma_column); the file has {', '.join(labels)}")
            amplitude = np.where(np.isnan(data[:, labels.index(sigma)]), np.nan, amplitude)
        return amplitude

    def sigma_label(suffix: str) -> Optional[str]:
        return None if sigma_column is None else sigma_column + suffix

    if anomalous:
        mean = values(column, sigma_column) if column in labels else np.full(len(hkl), np.nan)
        plus = values(pair[0], sigma_label("(+)"))
        minus = values(pair[1], sigma_label("(-)"))
        plus, minus = np.where(np.isnan(plus), mean, plus), np.where(np.isnan(minus), mean, minus)
    else:
        plus = minus = values(column, sigma_column)
    rotations = [np.array(op.rot, dtype=np.int64) // op.DEN for op in mtz.spacegroup.operations().sym_ops] \
        if mtz.spacegroup is not None else [np.eye(3, dtype=np.int64)]
    indices, amplitudes = [], []
    for sign, amplitude in ((-1, minus), (1, plus)):  # F(+) last: it wins where the two meet (centric)
        present = ~np.isnan(amplitude)
        for rotation in rotations:
            indices.append(sign * hkl[present] @ rotation)
            amplitudes.append(amplitude[present])
    indices, amplitudes = np.concatenate(indices), np.concatenate(amplitudes)
    if not len(indices):
        raise ValueError(f"{path}: no reflection has a value in column {column!r}")
    minimum, maximum = indices.min(axis=0), indices.max(axis=0)
    shape = tuple(int(v) for v in maximum - minimum + 1)
    if math.prod(shape) > MAX_TABLE_ENTRIES:
        raise ValueError(f"{path}: the indices span {' x '.join(map(str, shape))} = {math.prod(shape)} entries, "
                         f"more than {MAX_TABLE_ENTRIES}")
    grid = np.full(shape, float(default_F))
    offsets = indices - minimum
    grid[offsets[:, 0], offsets[:, 1], offsets[:, 2]] = amplitudes
    return StructureFactors(torch.from_numpy(grid), _metadata(minimum, maximum), float(default_F))


def _read_mtz(gemmi, path):
    """The gemmi ``Mtz`` of a file, with an error naming the file when it is not one."""
    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        mtz = gemmi.read_mtz_file(str(path))
    except (RuntimeError, ValueError, OSError) as error:
        raise ValueError(f"{path}: not a readable MTZ file ({error})") from None
    if mtz.nreflections and np.array(mtz).shape[1] != len(mtz.columns):
        raise ValueError(f"{path}: the MTZ data do not match its {len(mtz.columns)} columns")
    labels = list(mtz.column_labels())
    if labels[:3] != ["H", "K", "L"]:
        raise ValueError(f"{path}: the MTZ file's first columns are {labels[:3]}, not H K L")
    return mtz


def _indices(path, data: np.ndarray) -> np.ndarray:
    """The H K L columns as integers, or an error naming the first row that is not."""
    hkl = data[:, :3]
    integral = (np.isfinite(hkl) & (hkl == np.round(hkl)) & (np.abs(hkl) < 2 ** 20)).all(axis=1)
    if not integral.all():
        row = int(np.argmin(integral))
        raise ValueError(f"{path}: reflection {row} has Miller indices {hkl[row].tolist()}, not integers")
    return hkl.astype(np.int64)


def _column(path, mtz, data: np.ndarray, labels, label: str) -> np.ndarray:
    """The values of one column, checked: amplitudes (MTZ type F, G or the like), finite or
    missing (NaN), not negative."""
    kind = mtz.columns[labels.index(label)].type
    if kind not in "FGRJKDQL":
        raise ValueError(f"{path}: column {label!r} has MTZ type {kind!r}, not amplitudes (F or G)")
    hkl = data[:, :3]
    values = data[:, labels.index(label)]
    bad = np.isinf(values) | (values < 0)
    if bad.any():
        row = int(np.argmax(bad))
        raise ValueError(f"{path}: column {label!r} of reflection {hkl[row].astype(int).tolist()} is "
                         f"{values[row]}, not an amplitude (finite, >= 0)")
    return values


def _new_mtz(gemmi, cell_A_deg: Sequence[float], space_group: str):
    """An empty MTZ with the base dataset, one dataset for the data, the cell and the space group."""
    try:
        group = gemmi.SpaceGroup(space_group)
    except (RuntimeError, ValueError) as error:
        raise ValueError(f"space_group {space_group!r}: not a space group ({error})") from None
    cell = [float(v) for v in cell_A_deg]
    if len(cell) != 6 or not all(math.isfinite(v) and v > 0 for v in cell):
        raise ValueError(f"cell_A_deg must be six positive numbers a b c (Å) alpha beta gamma (degrees), got "
                         f"{list(cell_A_deg)}")
    mtz = gemmi.Mtz(with_base=True)
    mtz.spacegroup = group
    mtz.set_cell_for_all(gemmi.UnitCell(*cell))
    mtz.add_dataset("nanobrag_torch")
    return mtz


def _as_array(name: str, value: ArrayLike, rows: Optional[int], columns: Optional[int] = None) -> np.ndarray:
    """``value`` as a float64 array of ``rows`` rows (and ``columns`` columns), or an error naming it."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    array = np.asarray(value, dtype=np.float64)
    expected = (rows,) if columns is None else (rows, columns)
    if array.ndim != len(expected) or any(e is not None and s != e for s, e in zip(array.shape, expected)):
        raise ValueError(f"{name} must have shape {tuple('n' if e is None else e for e in expected)}, got "
                         f"{array.shape}")
    return array


def _miller(hkl: ArrayLike) -> np.ndarray:
    """Miller indices (n, 3), checked to be integers."""
    array = _as_array("hkl", hkl, None, 3)
    if not (np.isfinite(array).all() and (array == np.round(array)).all()):
        raise ValueError("hkl must be integer Miller indices")
    return array


def _write(mtz, path, hkl: np.ndarray, columns: Sequence[Tuple[str, str, np.ndarray]]) -> None:
    """Add the ``(label, MTZ type, values)`` columns after H K L and write the file atomically."""
    for label, kind, _ in columns:
        mtz.add_column(label, kind)
    table = np.column_stack([hkl] + [values for _, _, values in columns]).astype(np.float32)
    mtz.set_data(np.ascontiguousarray(table))
    mtz.update_reso()
    with atomic_write(path, "wb") as handle:
        handle.write(bytes(mtz.write_to_bytes()))


@fill_doc
def write_mtz_amplitudes(path: Union[str, Path], hkl: ArrayLike, F: ArrayLike, sigma_F: ArrayLike, *,
                         cell_A_deg: Sequence[float], space_group: str, F_plus: Optional[ArrayLike] = None,
                         sigma_F_plus: Optional[ArrayLike] = None, F_minus: Optional[ArrayLike] = None,
                         sigma_F_minus: Optional[ArrayLike] = None) -> None:
    """Write merged amplitudes as an MTZ file: columns H K L F SIGF, and F(+) SIGF(+) F(-)
    SIGF(-) when the anomalous amplitudes are given.

    NaN is written as MTZ's missing value. The indices are written as given (normally one per
    reflection of the space group's asymmetric unit); :func:`read_mtz_amplitudes` reads the
    file back.

    Parameters
    ----------
    %(write_path)s
    hkl : array (n, 3)
        Integer Miller indices.
    F, sigma_F : array (n,)
        Amplitudes and their standard uncertainties (electrons).
    cell_A_deg : sequence of 6 floats
        a, b, c (Å) and alpha, beta, gamma (degrees).
    space_group : str
        Hermann–Mauguin symbol or number as gemmi reads it (``"P 21 21 21"``, ``"19"``).
    F_plus, sigma_F_plus, F_minus, sigma_F_minus : array (n,), optional
        Amplitudes of ``hkl`` and of ``-hkl`` and their uncertainties: all four or none.

    Raises
    ------
    ImportError
        gemmi is not installed.
    ValueError
        An array of the wrong shape, indices that are not integers, only some of the four
        anomalous arrays, an unknown space group or a bad cell.
    """
    gemmi = _gemmi()
    indices = _miller(hkl)
    rows = len(indices)
    columns = [("F", "F", _as_array("F", F, rows)), ("SIGF", "Q", _as_array("sigma_F", sigma_F, rows))]
    anomalous = {"F_plus": F_plus, "sigma_F_plus": sigma_F_plus, "F_minus": F_minus, "sigma_F_minus": sigma_F_minus}
    given = [name for name, value in anomalous.items() if value is not None]
    if given and len(given) != 4:
        raise ValueError(f"the anomalous amplitudes need all of F_plus, sigma_F_plus, F_minus, sigma_F_minus; got "
                         f"only {', '.join(given)}")
    if given:
        labels = (("F(+)", "G"), ("SIGF(+)", "L"), ("F(-)", "G"), ("SIGF(-)", "L"))
        columns += [(label, kind, _as_array(name, anomalous[name], rows))
                    for (label, kind), name in zip(labels, anomalous)]
    _write(_new_mtz(gemmi, cell_A_deg, space_group), path, indices, columns)


@fill_doc
def write_unmerged_mtz(path: Union[str, Path], *, cell_A_deg: Sequence[float], space_group: str,
                       batch: ArrayLike, hkl: ArrayLike, intensity: ArrayLike, sigma_intensity: ArrayLike,
                       xdet: ArrayLike, ydet: ArrayLike,
                       extra_columns: Optional[Mapping[str, ArrayLike]] = None) -> None:
    """Write unmerged intensities, one row per observation, as an MTZ file: columns H K L
    M/ISYM BATCH I SIGI XDET YDET, then the ``extra_columns``.

    As in every unmerged MTZ file (and as gemmi, careless and reciprocalspaceship read them),
    the stored H K L are those of the space group's asymmetric unit and ``M/ISYM`` the
    symmetry operation that maps them back to the indices observed: ``ISYM = 2·op + 1`` for
    ``hkl``, ``2·op + 2`` for its Friedel mate, with ``op`` the index of the operation in
    gemmi's list (``M``, the partiality flag, is 0). gemmi's
    ``Mtz.switch_to_original_hkl()`` (and reciprocalspaceship's ``hkl_to_observed``) give the
    observed indices back. A batch header is written for each batch number, so readers see
    an unmerged file.

    Parameters
    ----------
    %(write_path)s
    cell_A_deg : sequence of 6 floats
        a, b, c (Å) and alpha, beta, gamma (degrees).
    space_group : str
        Hermann–Mauguin symbol or number as gemmi reads it.
    batch : array (n,) of int
        The shot (image) number of each observation, ≥ 1.
    hkl : array (n, 3)
        The integer Miller indices as observed.
    intensity, sigma_intensity : array (n,)
        Integrated intensities and their standard uncertainties (photons).
    xdet, ydet : array (n,)
        Position of each observation on the detector, in pixels (fast, slow).
    extra_columns : mapping of str to array (n,), optional
        More per-observation values (for instance the shot's refined parameters), written as
        real columns (MTZ type R) under their keys.

    Raises
    ------
    ImportError
        gemmi is not installed.
    ValueError
        An array of the wrong shape, indices or batch numbers that are not integers (batches
        ≥ 1), a label that is taken or longer than 30 characters, an unknown space group or a
        bad cell.
    """
    gemmi = _gemmi()
    observed = _miller(hkl).astype(np.int64)
    rows = len(observed)
    batches = _as_array("batch", batch, rows)
    if not (np.isfinite(batches).all() and (batches == np.round(batches)).all() and (batches >= 1).all()):
        raise ValueError("batch must be integer batch numbers >= 1")
    mtz = _new_mtz(gemmi, cell_A_deg, space_group)
    operations = mtz.spacegroup.operations()
    asu = gemmi.ReciprocalAsu(mtz.spacegroup)
    reduced, isym = np.zeros_like(observed), np.zeros(rows)
    for row, index in enumerate(observed.tolist()):
        reduced[row], isym[row] = asu.to_asu(index, operations)
    columns = [("M/ISYM", "Y", isym), ("BATCH", "B", batches), ("I", "J", _as_array("intensity", intensity, rows)),
               ("SIGI", "Q", _as_array("sigma_intensity", sigma_intensity, rows)),
               ("XDET", "R", _as_array("xdet", xdet, rows)), ("YDET", "R", _as_array("ydet", ydet, rows))]
    for label, values in (extra_columns or {}).items():
        if label in ("H", "K", "L") or label in (c[0] for c in columns) or not 0 < len(label) <= 30:
            raise ValueError(f"extra_columns: the label {label!r} is taken or not 1 to 30 characters long")
        columns.append((label, "R", _as_array(f"extra_columns[{label!r}]", values, rows)))
    for number in np.unique(batches).astype(int).tolist():
        header = gemmi.Mtz.Batch()
        header.number = number
        header.dataset_id = mtz.datasets[-1].id
        header.cell = mtz.cell
        mtz.batches.append(header)
    _write(mtz, path, reduced, columns)
