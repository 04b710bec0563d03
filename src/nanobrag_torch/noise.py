"""Integer images made from a float image: nanoBragg's Poisson noise image and noiseless SMV image.

The Poisson deviates are those of the single-precision Numerical Recipes routines that nanoBragg C
uses (``ran1``, ``poidev``, ``gaussdev``, ``gammln``), so that the same seed and the
same float image give the same noise image as the C program, bit for bit. The generator is
sequential, so the image is drawn pixel by pixel by a compiled loop
(``nanobrag_torch._noise_kernels``, numba, compiled once and cached on disk). numba is imported
the first time a deviate is drawn, never by runs without a noise image.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Optional, Tuple

import numpy as np

from ._docs import fill_doc
from .config import NOISE_SEED_LIMIT
from .layout import roi_bounds

_MAX_ADU = 65535.0


def _kernels() -> ModuleType:
    """The compiled noise kernels; imports numba on the first call."""
    return importlib.import_module("nanobrag_torch._noise_kernels")


def _checked_seed(seed: int) -> int:
    """The seed as an int; ValueError naming it if it is not one or exceeds 2**62 in magnitude."""
    try:
        value = int(seed)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"noise seed must be an integer, got {seed!r}") from None
    if abs(value) > NOISE_SEED_LIMIT:
        raise ValueError(f"noise seed {value} is outside ±2**62, the range of the generator's "
                         "64-bit integer arithmetic")
    return value


def _initial_state(seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """``ran1`` state (idum, iy, iv) and ``gaussdev`` state (iset, gset) of C's stream for ``-seed``."""
    state = np.zeros(_kernels().STATE_SIZE, dtype=np.int64)
    state[0] = -_checked_seed(seed)  # nanoBragg draws with the internal seed -n; iy = 0 loads the table
    return state, np.zeros(2, dtype=np.float64)


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
    return float(_kernels().gammln(float(xx)))


@fill_doc
class PoissonGenerator:
    """nanoBragg's noise generator: ``poidev`` and ``gaussdev`` on one ``ran1`` stream.

    Draws single deviates in C's sequence; :func:`noise_image` draws a whole image in one
    compiled call and is the fast way to make many.

    Parameters
    ----------
    %(noise_seed)s

    Raises
    ------
    ValueError
        If ``seed`` is not an integer or too large.
    """

    def __init__(self, seed: int) -> None:
        self._state, self._spare = _initial_state(seed)

    def gaussdev(self) -> float:
        """Standard normal deviate by the polar Box–Muller method (float precision).

        Every second call returns the deviate cached by the previous one, as C does.

        Returns
        -------
        float
            The deviate; the generator's state advances.
        """
        return float(_kernels().gaussdev(self._state, self._spare))

    def poidev(self, mean: float) -> float:
        """Poisson deviate with the given mean (nanoBragg's ``poidev``).

        Parameters
        ----------
        mean : float
            Expected count (photons); rounded to single precision as C passes a ``float``.

        Returns
        -------
        float
            A whole number of photons, except above 10⁶ where a Gaussian approximation is
            returned unrounded, as in C.
        """
        return float(_kernels().poidev(float(mean), self._state, self._spare))


@fill_doc
def noise_image(float_image: np.ndarray, seed: int, adc_offset: float = 40.0,
                roi: Optional[Tuple[int, int, int, int]] = None) -> Tuple[np.ndarray, float, int]:
    """nanoBragg's Poisson noise image (``-noisefile``).

    For every pixel inside the ROI, in slow-major order, a Poisson deviate of the float value
    (photons) is drawn, the ADC offset added, values above 65535 clamped (counted as overloads)
    and the result truncated to uint16. Pixels outside the ROI are 0.

    Parameters
    ----------
    %(float_image)s
    %(noise_seed)s
    %(adc_offset)s
    %(roi)s

    Returns
    -------
    image : ndarray of uint16, shape (spixels, fpixels)
    photons : float
        Sum of the drawn counts (before the offset).
    overloads : int
        Number of clamped pixels.

    Raises
    ------
    ValueError
        If the image is not 2-D, a value inside the ROI is not finite, or the seed is not an
        integer of magnitude at most 2⁶².
    """
    _checked_seed(seed)
    values = np.ascontiguousarray(float_image, dtype=np.float32)
    if values.ndim != 2:
        raise ValueError(f"float_image must be 2-D (slow, fast), got shape {values.shape}")
    fmin, fmax, smin, smax = roi_bounds(roi, values.shape[1], values.shape[0])
    image = np.zeros(values.shape, dtype=np.uint16)
    if fmin > fmax or smin > smax:
        return image, 0.0, 0
    block = values[smin:smax + 1, fmin:fmax + 1]
    if not np.isfinite(block).all():
        s, f = np.argwhere(~np.isfinite(block))[0]
        raise ValueError(f"float_image[{smin + s}, {fmin + f}] is {block[s, f]}: the noise image needs "
                         "finite expected photon counts")
    state, spare = _initial_state(seed)
    photons, overloads = _kernels().noise_pixels(values, state, spare, float(adc_offset),
                                                 int(fmin), int(fmax), int(smin), int(smax), image)
    return image, float(photons), int(overloads)


@fill_doc
def int_image(float_image: np.ndarray, scale: float, adc_offset: float = 40.0,
              roi: Optional[Tuple[int, int, int, int]] = None) -> np.ndarray:
    """nanoBragg's noiseless integer image (``-intfile``).

    Inside the ROI: ``floor(float · scale + adc + 0.5)`` with the value clamped to [0, 65535]
    before rounding (the rounding is done in single precision, as C's ``floorf``). Outside: 0.

    Parameters
    ----------
    %(float_image)s
    scale : float
        Multiplier, ADU per photon (``-scale``, or 55000 / max_I: ``intfile_scale``).
    %(adc_offset)s
    %(roi)s

    Returns
    -------
    ndarray of uint16, shape (spixels, fpixels)
        The integer image, 0 outside the ROI.
    """
    values = np.asarray(float_image, dtype=np.float32).astype(np.float64)
    fmin, fmax, smin, smax = roi_bounds(roi, values.shape[1], values.shape[0])
    image = np.zeros(values.shape, dtype=np.uint16)
    block = values[smin:smax + 1, fmin:fmax + 1] * scale + adc_offset
    block = np.clip(block, 0.0, _MAX_ADU)
    image[smin:smax + 1, fmin:fmax + 1] = np.floor((block + 0.5).astype(np.float32))
    return image


def intfile_scale(max_value: float, requested: Optional[float]) -> float:
    """Scale of the integer image: the requested one if > 0, else 55000 / max (1 if max is 0).

    Parameters
    ----------
    max_value : float
        Largest value of the float image, in photons.
    requested : float or None
        The scale asked for (``-scale``); None or ≤ 0 for the automatic one.

    Returns
    -------
    float
        ADU per photon.
    """
    if requested is not None and requested > 0:
        return float(requested)
    return 55000.0 / max_value if max_value > 0 else 1.0
