"""numba compilation with the on-disk cache, for the package's compiled CPU kernels.

Private module, imported only by the kernel modules (:mod:`nanobrag_torch._noise_kernels`,
:mod:`nanobrag_torch._bragg_kernels`), which are themselves imported only when a compiled
kernel runs, so that ``import nanobrag_torch`` never imports numba.

Kernels are cached next to their module when its ``__pycache__`` is writable, else in the
user's cache folder (``~/.cache/numba``, or ``NUMBA_CACHE_DIR`` when set). Where no folder is
writable they are compiled in each process (seconds), with one warning.
"""

from __future__ import annotations

import warnings

import numba

_warned_about_cache = False


def cached_jit(**options):
    """``numba.njit(cache=True, **options)``; without the cache (one warning) where no folder is writable.

    Parameters
    ----------
    **options
        Options of ``numba.njit`` (``nogil``, ``parallel``, ``error_model``, ...).

    Returns
    -------
    callable
        A decorator that compiles a function with those options.
    """

    def decorate(func):
        global _warned_about_cache
        try:
            return numba.njit(cache=True, **options)(func)
        except RuntimeError as error:  # numba found no writable cache folder for the module
            if not _warned_about_cache:
                _warned_about_cache = True
                warnings.warn(f"numba cannot cache the compiled kernels ({error}); they are compiled in "
                              "every process (seconds). Set NUMBA_CACHE_DIR to a writable folder to "
                              "keep them.", RuntimeWarning, stacklevel=3)
            return numba.njit(**options)(func)

    return decorate
