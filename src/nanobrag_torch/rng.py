"""Bit-compatible random numbers of nanoBragg C and what is drawn from them.

nanoBragg uses Numerical Recipes' ``ran1`` (Park–Miller with a Bays–Durham shuffle), which
returns single-precision floats. This module ports it exactly, so that the same seed gives the
same mosaic domains, random misset and noise as the C program.
"""

from __future__ import annotations

import math
from typing import Tuple

import numpy as np
import torch

from .geometry import rotation_about_axis

_IA = 16807
_IM = 2147483647
_AM = 1.0 / _IM
_IQ = 127773
_IR = 2836
_NTAB = 32
_NDIV = 1 + (_IM - 1) // _NTAB
_RNMX = 1.0 - 1.2e-7


class Ran1:
    """Numerical Recipes ``ran1`` with its state, seeded like nanoBragg.

    Parameters
    ----------
    seed : int
        nanoBragg's internal seed. A value <= 0 (nanoBragg always passes a negative seed,
        for example -42 for ``-mosaic_seed 42``) initialises the shuffle table.
    """

    def __init__(self, seed: int) -> None:
        self.idum = int(seed)
        self.iy = 0
        self.iv = [0] * _NTAB

    def _step(self) -> None:
        k = self.idum // _IQ
        self.idum = _IA * (self.idum - k * _IQ) - _IR * k
        if self.idum < 0:
            self.idum += _IM

    def uniform(self) -> float:
        """Next uniform deviate in (0, 1), rounded to single precision as in C.

        Returns
        -------
        float
            The deviate; the generator's state advances.
        """
        if self.idum <= 0 or not self.iy:
            self.idum = 1 if -self.idum < 1 else -self.idum
            for j in range(_NTAB + 7, -1, -1):
                self._step()
                if j < _NTAB:
                    self.iv[j] = self.idum
            self.iy = self.iv[0]
        self._step()
        j = self.iy // _NDIV
        self.iy = self.iv[j]
        self.iv[j] = self.idum
        value = float(np.float32(_AM * self.iy))
        return float(np.float32(_RNMX)) if value > _RNMX else value


def _draw_axis(generator: Ran1) -> Tuple[Tuple[float, float, float], float]:
    """One draw of nanoBragg's ``mosaic_rotate_umat``: a random unit axis, and ``1 − r²`` of a third
    uniform deviate ``r`` in (−1, 1), whose cube root (times the cap) is the rotation angle."""
    r1 = 2.0 * generator.uniform() - 1.0
    r2 = 2.0 * generator.uniform() - 1.0
    r3 = 2.0 * generator.uniform() - 1.0
    xyrad = math.sqrt(1.0 - r2 * r2)
    return (xyrad * math.sin(math.pi * r1), xyrad * math.cos(math.pi * r1), r2), 1.0 - r3 * r3


def _angle_factor(one_minus_r_sqr: float) -> float:
    """``(1 − r²)^(1/3)`` in single precision, as C's ``powf``."""
    return float(np.power(np.float32(one_minus_r_sqr), np.float32(1.0 / 3.0)))


def _generator(seed: int) -> Ran1:
    """The generator of ``-mosaic_seed n`` / ``-misset_seed n``: C draws with the internal seed ``-n``."""
    return Ran1(-abs(int(seed)) if seed != 0 else 0)


def mosaic_axes_and_factors(seed: int, n_domains: int) -> Tuple[np.ndarray, np.ndarray]:
    """Draw the mosaic domains of nanoBragg: a unit axis and an angle factor per domain.

    Domain ``m`` is a rotation about ``axes[m]`` by ``spread * factors[m]`` radians. Domain 0
    is the identity (factor 0), though its three draws are consumed, as in C. Neither output
    depends on the spread, so the image is a smooth function of it.

    Parameters
    ----------
    seed : int
        The user-facing seed ``n`` of ``-mosaic_seed n`` (C uses ``-n`` internally).
    n_domains : int
        Number of domains.

    Returns
    -------
    axes : ndarray, shape (n_domains, 3)
    factors : ndarray, shape (n_domains,)
        ``(1 - r3²)^(1/3)`` evaluated in single precision, as C's ``powf``.
    """
    generator = _generator(seed)
    axes = np.zeros((n_domains, 3))
    factors = np.zeros(n_domains)
    for m in range(n_domains):
        axis, one_minus_r_sqr = _draw_axis(generator)
        axes[m] = axis
        factors[m] = _angle_factor(one_minus_r_sqr)
    axes[0] = (0.0, 0.0, 1.0)
    factors[0] = 0.0
    return axes, factors


def random_misset_deg(seed: int) -> Tuple[float, float, float]:
    """The misset angles of ``-misset random``: one draw of the mosaic generator.

    C passes a cap of 90 (meant as degrees, used as radians) and converts the matrix to
    x, y, z angles; this reproduces that.

    Parameters
    ----------
    seed : int
        The user-facing seed ``n`` of ``-misset_seed n``.

    Returns
    -------
    tuple of 3 floats
        Misset angles about x, y, z in degrees.
    """
    axis, one_minus_r_sqr = _draw_axis(_generator(seed))
    angle = float(np.float32(np.float32(90.0) * np.float32(_angle_factor(one_minus_r_sqr))))
    u = rotation_about_axis(torch.tensor(axis, dtype=torch.float64), torch.tensor(angle, dtype=torch.float64)).numpy()
    if u[2, 0] ** 2 < 1.0:
        rx = math.atan2(u[2, 1], u[2, 2])
        ry = math.atan2(-u[2, 0], math.sqrt(u[2, 1] ** 2 + u[2, 2] ** 2))
        rz = math.atan2(u[1, 0], u[0, 0])
    else:
        rx = 0.0
        ry = math.copysign(math.pi / 2, -u[2, 0])
        rz = math.atan2(-u[0, 1], u[1, 1])
    return tuple(math.degrees(a) for a in (rx, ry, rz))
