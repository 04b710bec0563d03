"""Compiled (numba) loops of the noise image: nanoBragg's ``ran1``, ``gammln``, ``gaussdev``, ``poidev``.

Private module, imported by :mod:`nanobrag_torch.noise` only when a noise deviate is drawn, so
that runs without a noise image never import numba.

The generator is C's sequential ``ran1`` (Park–Miller with a Bays–Durham shuffle), so the image
is drawn pixel after pixel in C's order. Every value that C keeps in a ``float`` is rounded to
float32 at the same place as in C, with ``_f32``; everything else, including the results of
``exp``, ``log``, ``tan`` and ``sqrt`` before they are stored, is double precision. The
pure-Python port of these routines in ``tests/noise_reference.py`` is the test oracle, and
nanoBragg C's own output is checked in ``tests/test_noise.py``.

State, shared by the functions below:

``state`` : ndarray of int64, shape (2 + 32,)
    ``ran1``'s ``idum``, ``iy`` and shuffle table ``iv``. ``state = [-seed, 0, 0, ...]``
    starts C's stream for ``-seed seed`` (``iy == 0`` makes the first draw load the table).
``spare`` : ndarray of float64, shape (2,)
    ``gaussdev``'s ``iset`` flag and cached deviate ``gset``.

The kernels are compiled once and kept in numba's on-disk cache (see :mod:`nanobrag_torch._numba`).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ._numba import cached_jit

NTAB = 32
STATE_SIZE = 2 + NTAB

_IA = 16807
_IM = 2147483647
_AM = 1.0 / _IM
_IQ = 127773
_IR = 2836
_NDIV = 1 + (_IM - 1) // NTAB
_RNMX = 1.0 - 1.2e-7
_RNMX_FLOAT = float(np.float32(_RNMX))
_GAMMLN_COEFFICIENTS = (76.18009172947146, -86.50532032941677, 24.01409824083091,
                        -1.231739572450155, 0.1208650973866179e-2, -0.5395239384953e-5)
_GAUSSIAN_THRESHOLD = 1.0e6
_MAX_ADU = 65535.0

_OPTIONS = {"nogil": True, "error_model": "numpy"}
_cached = cached_jit(**_OPTIONS)
_inner = numba.njit(**_OPTIONS)  # compiled into the cached entry points that call it


@_inner
def _f32(x):
    """Round a double to the nearest float32 and return it as a double (C's store into a ``float``)."""
    return np.float64(np.float32(x))


@_inner
def _ran1(state):
    """Next uniform deviate in (0, 1) of C's ``ran1``, float precision; advances ``state``."""
    idum = state[0]
    iy = state[1]
    if idum <= 0 or iy == 0:
        idum = 1 if -idum < 1 else -idum
        for j in range(NTAB + 7, -1, -1):
            k = idum // _IQ
            idum = _IA * (idum - k * _IQ) - _IR * k
            if idum < 0:
                idum += _IM
            if j < NTAB:
                state[2 + j] = idum
        iy = state[2]
    k = idum // _IQ
    idum = _IA * (idum - k * _IQ) - _IR * k
    if idum < 0:
        idum += _IM
    j = iy // _NDIV
    iy = state[2 + j]
    state[2 + j] = idum
    state[0] = idum
    state[1] = iy
    value = _f32(_AM * iy)
    if value > _RNMX:
        return _RNMX_FLOAT
    return value


@_inner
def _gammln(xx):
    """ln Γ(xx), Lanczos series of Numerical Recipes: float argument and result, double inside."""
    x = _f32(xx)
    y = x
    tmp = x + 5.5
    tmp -= (x + 0.5) * math.log(tmp)
    series = 1.000000000190015
    for coefficient in _GAMMLN_COEFFICIENTS:
        y += 1.0
        series += coefficient / y
    return _f32(-tmp + math.log(2.5066282746310005 * series / x))


@_inner
def _gaussdev(state, spare):
    """Standard normal deviate, polar Box–Muller in float precision; every second one is cached."""
    if spare[0] != 0.0:
        spare[0] = 0.0
        return spare[1]
    while True:
        v1 = _f32(2.0 * _ran1(state) - 1.0)
        v2 = _f32(2.0 * _ran1(state) - 1.0)
        rsq = _f32(_f32(v1 * v1) + _f32(v2 * v2))
        if 0.0 < rsq < 1.0:
            break
    fac = _f32(math.sqrt(-2.0 * math.log(rsq) / rsq))
    spare[0] = 1.0
    spare[1] = _f32(v1 * fac)
    return _f32(v2 * fac)


@_inner
def _poidev_direct(g, state):
    """Direct method (means below 12): count uniform deviates until their product is <= g = exp(-mean)."""
    em = -1.0
    t = 1.0
    while True:
        em += 1.0
        t = _f32(t * _ran1(state))
        if not t > g:
            return em


@_inner
def _rejection_constants(xm):
    """``sq``, ``alxm`` and ``g`` of the rejection method for the mean ``xm`` (photons)."""
    sq = _f32(math.sqrt(2.0 * xm))
    alxm = _f32(math.log(xm))
    g = _f32(_f32(xm * alxm) - _gammln(xm + 1.0))
    return sq, alxm, g


@_inner
def _poidev_rejection(xm, sq, alxm, g, state):
    """Rejection from a Lorentzian comparison function (means from 12 to 10⁶)."""
    while True:
        while True:
            y = _f32(math.tan(math.pi * _ran1(state)))
            em = _f32(_f32(sq * y) + xm)
            if not em < 0.0:
                break
        em = np.floor(em)
        exponent = _f32(_f32(_f32(em * alxm) - _gammln(em + 1.0)) - g)
        t = _f32(0.9 * (1.0 + _f32(y * y)) * math.exp(exponent))
        if not _ran1(state) > t:
            return em


@_inner
def _poidev_gaussian(xm, state, spare):
    """Gaussian approximation above 10⁶ photons, unrounded, as C."""
    return _f32(xm + math.sqrt(xm) * _gaussdev(state, spare))


@_inner
def _poidev(mean, state, spare):
    """Poisson deviate of C's ``poidev`` (photons); above 10⁶ a Gaussian approximation, unrounded."""
    xm = _f32(mean)
    if xm > _GAUSSIAN_THRESHOLD:
        return _poidev_gaussian(xm, state, spare)
    if xm < 12.0:
        return _poidev_direct(_f32(math.exp(-xm)), state)
    sq, alxm, g = _rejection_constants(xm)
    return _poidev_rejection(xm, sq, alxm, g, state)


@_cached
def noise_pixels(values, state, spare, adc_offset, fmin, fmax, smin, smax, out):
    """Draw the noise image into ``out`` over the inclusive ROI, slow-major, as C's noise loop.

    The same draws as ``_poidev`` pixel by pixel; like C, the mean-dependent constants are
    recomputed only when the mean changes.

    Parameters
    ----------
    values : ndarray of float32, shape (spixels, fpixels), C-contiguous
        Expected photons per pixel; finite inside the ROI.
    state, spare : ndarray
        Generator state (module docstring); advanced in place.
    adc_offset : float
        ADC offset added to each count (ADU).
    fmin, fmax, smin, smax : int
        Inclusive ROI bounds (fast and slow pixel indices) within the image.
    out : ndarray of uint16, shape (spixels, fpixels)
        Written inside the ROI: count + offset (ADU), clamped to [0, 65535], truncated.

    Returns
    -------
    photons : float
        Sum of the drawn counts (photons, before the offset).
    overloads : int
        Number of pixels clamped to 65535.
    """
    photons = 0.0
    overloads = 0
    direct_mean = np.nan  # mean of the cached exp(-mean); NaN equals nothing
    direct_g = 0.0
    rejection_mean = np.nan
    sq = alxm = rejection_g = 0.0
    for s in range(smin, smax + 1):
        for f in range(fmin, fmax + 1):
            xm = np.float64(values[s, f])
            if xm < 12.0:
                if xm != direct_mean:
                    direct_mean = xm
                    direct_g = _f32(math.exp(-xm))
                count = _poidev_direct(direct_g, state)
            elif xm > _GAUSSIAN_THRESHOLD:
                count = _poidev_gaussian(xm, state, spare)
            else:
                if xm != rejection_mean:
                    rejection_mean = xm
                    sq, alxm, rejection_g = _rejection_constants(xm)
                count = _poidev_rejection(xm, sq, alxm, rejection_g, state)
            photons += count
            adu = count + adc_offset
            if adu > _MAX_ADU:
                adu = _MAX_ADU
                overloads += 1
            if adu < 0.0:
                adu = 0.0
            out[s, f] = np.uint16(np.int64(adu))
    return photons, overloads


@_cached
def poidev(mean, state, spare):
    """One Poisson deviate (see ``_poidev``)."""
    return _poidev(mean, state, spare)


@_cached
def gaussdev(state, spare):
    """One standard normal deviate (see ``_gaussdev``)."""
    return _gaussdev(state, spare)


@_cached
def gammln(xx):
    """ln Γ(xx) in float precision (see ``_gammln``)."""
    return _gammln(xx)
