"""Structure-factor files: HKL text files and nanoBragg's binary Fdump cache."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Tuple, Union

import numpy as np
import torch

from ..structure_factors import Metadata, StructureFactors
from .atomic import atomic_write
from .text import read_text

MAX_TABLE_ENTRIES = 1 << 28
"""The most entries (h range × k range × l range) of a table read from a file: 2 GiB of float64.
A reflection far from the others would otherwise ask for more memory than any machine has."""


def read_hkl_file(path: Union[str, Path], default_F: float = 0.0) -> StructureFactors:
    """Read an ``h k l F`` text file into a dense table of amplitudes.

    Parameters
    ----------
    path : str or Path
        Text file, one reflection per line: three integer Miller indices and the amplitude F
        (electrons).
    default_F : float
        Amplitude (electrons) of every reflection in the index box that the file does not list.
        Outside the box, a crystal uses its own ``config.default_F``
        (:func:`~nanobrag_torch.structure_factors.as_structure_factors`).

    Returns
    -------
    StructureFactors
        On the CPU in float64, with this ``default_F``. Its ``grid`` (h_range, k_range,
        l_range) holds ``grid[h - h_min, k - k_min, l - l_min] = F`` (a later duplicate
        overwrites an earlier one); its ``metadata`` holds ``h_min h_max k_min k_max l_min
        l_max`` and ``h_range k_range l_range`` (max − min + 1). It unpacks as the pair
        ``grid, metadata = read_hkl_file(path)``.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        A line that is not four numbers with integral indices, or whose indices make the table
        larger than ``MAX_TABLE_ENTRIES`` (the message names file and line), or no
        reflections at all.
    """
    table = _read_table(path)
    _check_table_size(path, table[:, :3])
    indices = table[:, :3].astype(np.int64)
    minimum, maximum = indices.min(axis=0), indices.max(axis=0)
    shape = tuple(int(v) for v in maximum - minimum + 1)
    grid = np.full(shape, float(default_F))
    offsets = indices - minimum
    grid[offsets[:, 0], offsets[:, 1], offsets[:, 2]] = table[:, 3]
    return StructureFactors(torch.from_numpy(grid), _metadata(minimum, maximum), float(default_F))


def _read_table(path) -> np.ndarray:
    """The file's reflections as an (n, 4) array: NumPy's fast reader, and on any problem a
    line-by-line parse that names the offending line."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # an empty file: handled below
            table = np.loadtxt(path, dtype=np.float64, comments=None, ndmin=2)
    except ValueError:
        table = None
    if table is not None and table.shape[0] > 0 and table.shape[1] == 4 and _valid(table):
        return table
    return _parse_lines(path)


def _check_table_size(path, indices: np.ndarray) -> None:
    """Refuse indices whose box would exceed :data:`MAX_TABLE_ENTRIES`, naming the line of the
    reflection farthest out along the widest axis."""
    spans = [int(high) - int(low) + 1 for low, high in zip(indices.min(axis=0), indices.max(axis=0))]
    entries = math.prod(spans)
    if entries <= MAX_TABLE_ENTRIES:
        return
    axis = int(np.argmax(spans))
    row = max((int(np.argmin(indices[:, axis])), int(np.argmax(indices[:, axis]))),
              key=lambda r: abs(indices[r, axis]))
    line = _line_of_row(path, row)
    hkl = " ".join(f"{v:.0f}" for v in indices[row])
    raise ValueError(f"{path}:{line}: reflection {hkl} makes the table {' x '.join(map(str, spans))} = {entries} "
                     f"entries, more than {MAX_TABLE_ENTRIES}")


def _line_of_row(path, row: int) -> int:
    """The line number of the ``row``-th reflection (blank lines hold none)."""
    rows = (number for number, line in enumerate(read_text(path).splitlines(), start=1) if line.split())
    return next(number for index, number in enumerate(rows) if index == row)


def _valid(table: np.ndarray) -> bool:
    return bool(np.isfinite(table).all() and (table[:, :3] == np.round(table[:, :3])).all())


def _parse_lines(path) -> np.ndarray:
    rows = []
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        words = line.split()
        if words:
            rows.append(_parse_line(path, number, words))
    if not rows:
        raise ValueError(f"{path}: no reflections (expected lines of 'h k l F')")
    return np.array(rows)


def _parse_line(path, number: int, words) -> Tuple[float, float, float, float]:
    if len(words) != 4:
        raise ValueError(f"{path}:{number}: expected four numbers 'h k l F', found {len(words)} fields: "
                         f"{' '.join(words)!r}")
    try:
        values = [float(word) for word in words]
    except ValueError:
        raise ValueError(f"{path}:{number}: expected four numbers 'h k l F', found {' '.join(words)!r}") from None
    if not all(np.isfinite(values)) or any(v != round(v) for v in values[:3]):
        raise ValueError(f"{path}:{number}: Miller indices must be integers and F finite: {' '.join(words)!r}")
    return tuple(values)


def _metadata(minimum, maximum) -> Metadata:
    meta = {}
    for axis, name in enumerate("hkl"):
        meta[f"{name}_min"] = int(minimum[axis])
        meta[f"{name}_max"] = int(maximum[axis])
        meta[f"{name}_range"] = int(maximum[axis] - minimum[axis] + 1)
    return meta


def write_hkl_file(path: Union[str, Path], hkl, F) -> None:
    """Write an ``h k l F`` text file, as nanoBragg's ``-hkl`` and :func:`read_hkl_file` read it.

    Parameters
    ----------
    path : str or Path
        File to write (atomically).
    hkl : array-like of int (n, 3)
        Miller indices, one line each, in the order given (list both Friedel mates of a P1
        table whose mates differ).
    F : array-like or tensor (n,)
        Amplitudes in electrons, written with 17 significant digits (a float64 round trip).

    Raises
    ------
    ValueError
        ``hkl`` is not (n, 3) integers, ``F`` has not n values, or an amplitude is not finite.
    """
    indices = np.asarray(hkl)
    values = np.asarray(F.detach().cpu().numpy() if isinstance(F, torch.Tensor) else F, dtype=np.float64)
    if indices.ndim != 2 or indices.shape[1] != 3 or not np.array_equal(indices, np.rint(indices)):
        raise ValueError(f"{path}: hkl must be an (n, 3) array of integers, got shape {indices.shape}")
    if values.shape != (len(indices),):
        raise ValueError(f"{path}: F has shape {values.shape}, expected ({len(indices)},) (one per hkl row)")
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        h, k, l = (int(v) for v in indices[bad[0]])
        raise ValueError(f"{path}: F({h} {k} {l}) = {values[bad[0]]} is not finite")
    lines = "".join(f"{int(h)} {int(k)} {int(l)} {value:.17g}\n" for (h, k, l), value in zip(indices, values))
    with atomic_write(path, "w") as handle:
        handle.write(lines)


def write_fdump(path: Union[str, Path], grid: torch.Tensor, metadata: Metadata) -> None:
    """Write nanoBragg's ``Fdump.bin`` cache of a table.

    Layout: the ASCII line ``h_min h_max k_min k_max l_min l_max`` with a newline and a form
    feed, then native doubles in C order, ``(h_range + 1) × (k_range + 1) × (l_range + 1)``
    of them: the table plus one padding slab of zeros beyond each maximum, as C stores it.

    Parameters
    ----------
    path : str or Path
        File to write (atomically).
    grid : tensor (h_range, k_range, l_range)
        Amplitudes F in electrons, as returned by :func:`read_hkl_file`.
    metadata : dict
        At least ``h_min h_max k_min k_max l_min l_max``.
    """
    values = grid.detach().cpu().numpy().astype(np.float64)
    padded = np.zeros(tuple(s + 1 for s in values.shape))
    padded[:values.shape[0], :values.shape[1], :values.shape[2]] = values
    header = " ".join(str(metadata[f"{name}_{end}"]) for name in "hkl" for end in ("min", "max"))
    with atomic_write(path, "wb") as handle:
        handle.write(f"{header}\n\f".encode("ascii"))
        handle.write(padded.tobytes())


def read_fdump(path: Union[str, Path]) -> StructureFactors:
    """Read a ``Fdump.bin`` cache written by nanoBragg or :func:`write_fdump`.

    Parameters
    ----------
    path : str or Path
        The cache file.

    Returns
    -------
    StructureFactors
        As :func:`read_hkl_file` returns it (the padding slabs dropped), with ``default_F`` 0:
        the cache stores none, and a crystal uses its own ``config.default_F`` outside the box.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        No header line, a maximum below its minimum, a data size that does not match the
        header's ranges, or an amplitude that is not finite.
    """
    raw = Path(path).read_bytes()
    end = raw.find(b"\f")
    try:
        bounds = [int(v) for v in raw[:end].decode("ascii").split()]
    except (UnicodeDecodeError, ValueError):
        bounds = []
    if end < 0 or len(bounds) != 6:
        raise ValueError(f"{path}: not an Fdump file (no 'h_min h_max k_min k_max l_min l_max' header line)")
    minimum, maximum = bounds[0::2], bounds[1::2]
    for name, low, high in zip("hkl", minimum, maximum):
        if high < low:
            raise ValueError(f"{path}: Fdump header has {name}_max = {high} below {name}_min = {low}")
    shape = tuple(high - low + 2 for low, high in zip(minimum, maximum))
    data = raw[end + 1:]
    expected = math.prod(shape) * 8
    if len(data) != expected:
        raise ValueError(f"{path}: Fdump holds {len(data)} bytes of data, expected {expected} for its ranges")
    grid = np.frombuffer(data, dtype=np.float64).reshape(shape)[:-1, :-1, :-1].copy()
    bad = np.argwhere(~np.isfinite(grid))
    if len(bad):
        h, k, l = (int(v) + low for v, low in zip(bad[0], minimum))
        raise ValueError(f"{path}: F({h} {k} {l}) = {grid[tuple(bad[0])]} is not finite")
    return StructureFactors(torch.from_numpy(grid), _metadata(np.array(minimum), np.array(maximum)), 0.0)
