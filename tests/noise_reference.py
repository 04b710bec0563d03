"""Readable pure-Python port of nanoBragg's noise routines: the oracle of the compiled ones.

A line-by-line port of C's ``poidev``, ``gaussdev`` and ``gammln`` (Numerical Recipes, float
precision, as nanoBragg C calls them) on :class:`nanobrag_torch.rng.Ran1`. Every value C keeps in a ``float`` is
rounded to float32 with ``_f32``; ``exp``, ``log``, ``tan`` and ``sqrt`` are double-precision
calls whose results are rounded when stored. About 10⁵ draws per second, which is why the
library uses the numba kernels of ``nanobrag_torch._noise_kernels``; ``tests/test_noise.py``
checks that both give the same integers, and this port against nanoBragg C's own output.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np

from nanobrag_torch.rng import Ran1

_GAMMLN_COEFFICIENTS = (76.18009172947146, -86.50532032941677, 24.01409824083091,
                        -1.231739572450155, 0.1208650973866179e-2, -0.5395239384953e-5)
_MAX_ADU = 65535.0
_GAUSSIAN_THRESHOLD = 1.0e6


def _f32(x: float) -> float:
    """Round a Python float to the nearest float32 value (C's store into a ``float``)."""
    return float(np.float32(x))


def gammln(xx: float) -> float:
    """ln Γ(xx) with the Lanczos series of Numerical Recipes; float argument and result."""
    x = y = _f32(xx)
    tmp = x + 5.5
    tmp -= (x + 0.5) * math.log(tmp)
    series = 1.000000000190015
    for coefficient in _GAMMLN_COEFFICIENTS:
        y += 1.0
        series += coefficient / y
    return _f32(-tmp + math.log(2.5066282746310005 * series / x))


class ReferencePoissonGenerator:
    """nanoBragg's ``poidev`` and ``gaussdev`` on one ``ran1`` stream (user-facing ``seed``)."""

    def __init__(self, seed: int) -> None:
        self._uniform = Ran1(-int(seed)).uniform
        self._spare_gaussian: Optional[float] = None

    def gaussdev(self) -> float:
        """Standard normal deviate by the polar Box–Muller method; every second one is cached."""
        if self._spare_gaussian is not None:
            spare, self._spare_gaussian = self._spare_gaussian, None
            return spare
        while True:
            v1 = _f32(2.0 * self._uniform() - 1.0)
            v2 = _f32(2.0 * self._uniform() - 1.0)
            rsq = _f32(_f32(v1 * v1) + _f32(v2 * v2))  # float * float is a float in C
            if 0.0 < rsq < 1.0:
                break
        fac = _f32(math.sqrt(-2.0 * math.log(rsq) / rsq))
        self._spare_gaussian = _f32(v1 * fac)
        return _f32(v2 * fac)

    def poidev(self, mean: float) -> float:
        """Poisson deviate (photons); above 10⁶ a Gaussian approximation, unrounded, as in C."""
        xm = _f32(mean)
        if xm > _GAUSSIAN_THRESHOLD:
            return _f32(xm + math.sqrt(xm) * self.gaussdev())
        if xm < 12.0:
            return self._poidev_direct(xm)
        return self._poidev_rejection(xm)

    def _poidev_direct(self, xm: float) -> float:
        """Multiply uniform deviates until the product drops to exp(-xm); count the factors."""
        g = _f32(math.exp(-xm))
        em = -1.0
        t = 1.0
        while True:
            em += 1.0
            t = _f32(t * self._uniform())
            if not t > g:
                return em

    def _poidev_rejection(self, xm: float) -> float:
        """Rejection from a Lorentzian comparison function (means from 12 to 10⁶)."""
        sq = _f32(math.sqrt(2.0 * xm))
        alxm = _f32(math.log(xm))
        g = _f32(_f32(xm * alxm) - gammln(xm + 1.0))
        while True:
            while True:
                y = _f32(math.tan(math.pi * self._uniform()))
                em = _f32(_f32(sq * y) + xm)
                if not em < 0.0:
                    break
            em = float(math.floor(em))
            exponent = _f32(_f32(_f32(em * alxm) - gammln(em + 1.0)) - g)
            t = _f32(0.9 * (1.0 + _f32(y * y)) * math.exp(exponent))
            if not self._uniform() > t:
                return em


def reference_noise_image(float_image: np.ndarray, seed: int, adc_offset: float = 40.0,
                          roi: Optional[Tuple[int, int, int, int]] = None) -> Tuple[np.ndarray, float, int]:
    """The noise image, photon sum and overload count of C's noise loop, one pixel at a time."""
    values = np.asarray(float_image, dtype=np.float32)
    spixels, fpixels = values.shape
    fmin, fmax, smin, smax = (0, fpixels - 1, 0, spixels - 1) if roi is None else roi
    fmin, fmax, smin, smax = max(fmin, 0), min(fmax, fpixels - 1), max(smin, 0), min(smax, spixels - 1)
    generator = ReferencePoissonGenerator(seed)
    image = np.zeros(values.shape, dtype=np.uint16)
    photons = 0.0
    overloads = 0
    for s in range(smin, smax + 1):
        row = values[s].tolist()
        for f in range(fmin, fmax + 1):
            count = generator.poidev(row[f])
            photons += count
            adu = count + adc_offset
            if adu > _MAX_ADU:
                adu = _MAX_ADU
                overloads += 1
            image[s, f] = int(max(adu, 0.0))
    return image, photons, overloads
