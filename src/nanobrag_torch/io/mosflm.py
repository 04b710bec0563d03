"""MOSFLM orientation matrices (``-mat``) and the cell they encode."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Tuple, Union

import numpy as np

from .text import read_text


def read_mosflm_matrix(path: Union[str, Path], wavelength_A: float) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read the reciprocal cell vectors from a MOSFLM matrix file.

    The first nine numbers are three rows ``(a*x b*x c*x) (a*y b*y c*y) (a*z b*z c*z)``: the
    columns are the vectors, scaled by the wavelength. Anything after them (the rest of a full
    MOSFLM ``.mat`` file) is ignored.

    Parameters
    ----------
    path : str or Path
        The matrix file (``-mat``).
    wavelength_A : float
        Wavelength in Å that the matrix is scaled by.

    Returns
    -------
    a_star, b_star, c_star : ndarray (3,)
        Reciprocal vectors in Å⁻¹.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        Fewer than nine numbers, a word or a number that is not finite among them (the message
        names the file and line), or a singular matrix.
    """
    if not (math.isfinite(wavelength_A) and wavelength_A > 0):
        raise ValueError(f"{path}: wavelength_A = {wavelength_A!r} must be a finite number > 0")
    lines = enumerate(read_text(path).splitlines(), start=1)
    words = list(itertools.islice(((number, word) for number, line in lines for word in line.split()), 9))
    if len(words) < 9:
        raise ValueError(f"{path}: a MOSFLM matrix needs nine numbers, found {len(words)} words")
    numbers = [_finite_number(path, number, word) for number, word in words]
    matrix = np.array(numbers).reshape(3, 3) / wavelength_A
    if not np.isfinite(matrix).all() or abs(np.linalg.det(matrix)) < 1e-300:
        raise ValueError(f"{path}: the matrix is singular (its reciprocal vectors are coplanar)")
    return matrix[:, 0].copy(), matrix[:, 1].copy(), matrix[:, 2].copy()


def _finite_number(path, line: int, word: str) -> float:
    try:
        value = float(word)
    except ValueError:
        raise ValueError(f"{path}:{line}: expected nine numbers, found {word!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{path}:{line}: {word!r} is not a finite number")
    return value


def cell_parameters(a, b, c) -> Tuple[float, float, float, float, float, float]:
    """Lengths and angles of three cell vectors.

    Parameters
    ----------
    a, b, c : array-like or tensor (3,)
        The vectors (real or reciprocal, in any one unit).

    Returns
    -------
    tuple of 6 floats
        ``|a|, |b|, |c|`` and the angles α (between b and c), β (c, a), γ (a, b) in degrees.
    """
    u, v, w = (np.asarray(_to_numpy(x), dtype=float).reshape(3) for x in (a, b, c))

    def angle(x, y):
        cosine = float(np.dot(x, y) / (np.linalg.norm(x) * np.linalg.norm(y)))
        return math.degrees(math.acos(max(-1.0, min(1.0, cosine))))

    return (float(np.linalg.norm(u)), float(np.linalg.norm(v)), float(np.linalg.norm(w)),
            angle(v, w), angle(w, u), angle(u, v))


def reciprocal_to_real_cell(a_star, b_star, c_star) -> Tuple[float, float, float, float, float, float]:
    """Unit-cell lengths (Å) and angles (degrees) of the real cell of three reciprocal vectors.

    Parameters
    ----------
    a_star, b_star, c_star : array-like or tensor (3,)
        Reciprocal vectors in Å⁻¹.

    Returns
    -------
    tuple of 6 floats
        a, b, c in Å and α, β, γ in degrees.
    """
    vectors = [np.asarray(_to_numpy(v), dtype=float).reshape(3) for v in (a_star, b_star, c_star)]
    inverse_volume = float(np.dot(vectors[0], np.cross(vectors[1], vectors[2])))
    return cell_parameters(np.cross(vectors[1], vectors[2]) / inverse_volume,
                           np.cross(vectors[2], vectors[0]) / inverse_volume,
                           np.cross(vectors[0], vectors[1]) / inverse_volume)


def _to_numpy(value):
    return value.detach().cpu().numpy() if hasattr(value, "detach") else value
