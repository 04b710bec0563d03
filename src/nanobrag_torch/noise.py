"""Integer images made from a float image: nanoBragg's Poisson noise image and noiseless SMV image.

The Poisson deviates are a port of the single-precision Numerical Recipes routines that
nanoBragg C uses (``poidev``, ``gaussdev``, ``gammln``, spec §10.3), drawn from the
bit-compatible :class:`~nanobrag_torch.rng.Ran1`. Single-precision arithmetic is emulated by
rounding every intermediate that C keeps in a ``float`` to float32, so that the same seed and the
same float image give the same noise image as the C program.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np

from .rng import Ran1

_GAMMLN_COEFFICIENTS = (76.18009172947146, -86.50532032941677, 24.01409824083091,
                        -1.231739572450155, 0.1208650973866179e-2, -0.5395239384953e-5)
_MAX_ADU = 65535.0
_GAUSSIAN_THRESHOLD = 1.0e6


def _f32(x: float) -> float:
    """Round a Python float to the nearest float32 value (C's store into a ``float``)."""
    return float(np.float32(x))


def gammln(xx: float) -> float:
    """ln Γ(xx) with the Lanczos series of Numerical Recipes; float argument and result.

    Parameters
    ----------
    xx : float
        Argument (> 0); rounded to single precision first, as C passes a ``float``.

    Returns
    -------
    float
        ln Γ(xx) rounded to single precision.
    """
    x = y = _f32(xx)
    tmp = x + 5.5
    tmp -= (x + 0.5) * math.log(tmp)
    series = 1.000000000190015
    for coefficient in _GAMMLN_COEFFICIENTS:
        y += 1.0
        series += coefficient / y
    return _f32(-tmp + math.log(2.5066282746310005 * series / x))


class PoissonGenerator:
    """nanoBragg's noise generator: ``poidev`` and ``gaussdev`` on one ``ran1`` stream.

    Parameters
    ----------
    seed : int
        The user-facing seed of ``-seed n`` (nanoBragg draws with the internal seed ``-n``).
    """

    def __init__(self, seed: int) -> None:
        self._uniform = Ran1(-int(seed)).uniform
        self._spare_gaussian: Optional[float] = None

    def gaussdev(self) -> float:
        """Standard normal deviate by the polar Box–Muller method (float precision).

        Every second call returns the deviate cached by the previous one, as C does.
        """
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
        """Poisson deviate with the given mean (nanoBragg's ``poidev``).

        Parameters
        ----------
        mean : float
            Expected count; rounded to single precision as C passes a ``float``.

        Returns
        -------
        float
            A whole number of photons, except above 10⁶ where a Gaussian approximation is
            returned unrounded, as in C.
        """
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


def _roi_bounds(shape: Tuple[int, int], roi: Optional[Tuple[int, int, int, int]]) -> Tuple[int, int, int, int]:
    """Inclusive (fmin, fmax, smin, smax) clipped to the image; the whole image when ``roi`` is None."""
    spixels, fpixels = shape
    if roi is None:
        return 0, fpixels - 1, 0, spixels - 1
    fmin, fmax, smin, smax = roi
    return max(fmin, 0), min(fmax, fpixels - 1), max(smin, 0), min(smax, spixels - 1)


def noise_image(float_image: np.ndarray, seed: int, adc_offset: float = 40.0,
                roi: Optional[Tuple[int, int, int, int]] = None) -> Tuple[np.ndarray, float, int]:
    """nanoBragg's Poisson noise image (``-noisefile``, spec §10.3).

    For every pixel inside the ROI, in slow-major order, a Poisson deviate of the float value
    (photons) is drawn, the ADC offset added, values above 65535 clamped (counted as overloads)
    and the result truncated to uint16. Pixels outside the ROI are 0.

    Parameters
    ----------
    float_image : ndarray, shape (spixels, fpixels)
        Expected photons per pixel (nanoBragg's float image); used at float32 precision.
    seed : int
        User-facing seed (``-seed n``).
    adc_offset : float
        Added to every drawn count (``-adc``).
    roi : tuple of 4 ints, optional
        Inclusive ``(fmin, fmax, smin, smax)``.

    Returns
    -------
    image : ndarray of uint16, shape (spixels, fpixels)
    photons : float
        Sum of the drawn counts (before the offset).
    overloads : int
        Number of clamped pixels.
    """
    values = np.asarray(float_image, dtype=np.float32)
    fmin, fmax, smin, smax = _roi_bounds(values.shape, roi)
    generator = PoissonGenerator(seed)
    image = np.zeros(values.shape, dtype=np.uint16)
    photons = 0.0
    overloads = 0
    for s in range(smin, smax + 1):
        row = values[s].tolist()
        out = image[s]
        for f in range(fmin, fmax + 1):
            count = generator.poidev(row[f])
            photons += count
            adu = count + adc_offset
            if adu > _MAX_ADU:
                adu = _MAX_ADU
                overloads += 1
            out[f] = int(max(adu, 0.0))
    return image, photons, overloads


def int_image(float_image: np.ndarray, scale: float, adc_offset: float = 40.0,
              roi: Optional[Tuple[int, int, int, int]] = None) -> np.ndarray:
    """nanoBragg's noiseless integer image (``-intfile``, spec §10.4).

    Inside the ROI: ``floor(float · scale + adc + 0.5)`` with the value clamped to [0, 65535]
    before rounding (the rounding is done in single precision, as C's ``floorf``). Outside: 0.

    Parameters
    ----------
    float_image : ndarray, shape (spixels, fpixels)
    scale : float
        Multiplier (``-scale``, or 55000 / max_I).
    adc_offset : float
    roi : tuple of 4 ints, optional

    Returns
    -------
    ndarray of uint16, shape (spixels, fpixels)
    """
    values = np.asarray(float_image, dtype=np.float32).astype(np.float64)
    fmin, fmax, smin, smax = _roi_bounds(values.shape, roi)
    image = np.zeros(values.shape, dtype=np.uint16)
    block = values[smin:smax + 1, fmin:fmax + 1] * scale + adc_offset
    block = np.clip(block, 0.0, _MAX_ADU)
    image[smin:smax + 1, fmin:fmax + 1] = np.floor((block + 0.5).astype(np.float32))
    return image


def intfile_scale(max_value: float, requested: Optional[float]) -> float:
    """Scale of the integer image: the requested one if > 0, else 55000 / max (1 if max is 0)."""
    if requested is not None and requested > 0:
        return float(requested)
    return 55000.0 / max_value if max_value > 0 else 1.0
