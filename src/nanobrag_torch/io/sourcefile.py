"""Source lists (``-sourcefile``): one source per line, position and wavelength in metres as nanoBragg C reads them."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import List, Sequence, Tuple, Union

import numpy as np

from .text import read_text

_DELIMITERS = re.compile(r"[ \t,;:!]+")


def read_sourcefile(path: Union[str, Path], default_position_m: Sequence[float],
                    default_wavelength_A: float) -> List[Tuple[np.ndarray, float]]:
    """Read one source per non-blank line: ``X Y Z [intensity [wavelength]]``.

    Positions are in metres (only the direction matters), the wavelength in metres as in
    nanoBragg's files; it is returned in Å. Missing trailing columns take the defaults; the
    intensity is read and, as in nanoBragg, not used.

    Parameters
    ----------
    path : str or Path
        The source list.
    default_position_m : sequence of 3 floats
        Position (m) whose components fill the coordinates a line leaves out (nanoBragg uses
        −10 m along the beam).
    default_wavelength_A : float
        Wavelength (Å) of a line with fewer than five numbers.

    Returns
    -------
    list of (position (3,), wavelength_A)

    Raises
    ------
    ValueError
        A line with a word or a number that is not finite, more than five numbers, a zero (or
        too short or long) position or a non-positive wavelength (names the file and line).
    """
    sources = []
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        words = [w for w in _DELIMITERS.split(line.strip()) if w]
        if not words:
            continue
        try:
            values = [float(w) for w in words]
        except ValueError:
            raise ValueError(f"{path}:{number}: expected up to five numbers 'X Y Z intensity lambda', "
                             f"found {line.strip()!r}") from None
        if len(values) > 5:
            raise ValueError(f"{path}:{number}: more than five numbers: {line.strip()!r}")
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"{path}:{number}: a number is not finite: {line.strip()!r}")
        position = np.array(list(values[:3]) + list(default_position_m)[len(values[:3]):], dtype=float)
        if not 0 < float(position @ position) < math.inf:
            raise ValueError(f"{path}:{number}: the source position {line.strip()!r} is the zero vector, or its "
                             f"squared length is not a finite, nonzero number")
        wavelength_A = values[4] * 1e10 if len(values) == 5 else float(default_wavelength_A)
        if len(values) == 5 and not (math.isfinite(wavelength_A) and wavelength_A > 0):
            raise ValueError(f"{path}:{number}: wavelength {values[4]!r} m must be > 0 (and finite in Å)")
        sources.append((position, wavelength_A))
    return sources
