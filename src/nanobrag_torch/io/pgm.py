"""Binary PGM previews of a float image, scaled and clipped as nanoBragg writes them."""

from __future__ import annotations

from pathlib import Path
from typing import Union

import numpy as np

from .._docs import fill_doc
from .atomic import atomic_write


@fill_doc
def write_pgm(path: Union[str, Path], image: np.ndarray, scale: float) -> None:
    """Write an image as an 8-bit binary PGM (P5) with nanoBragg's scaling.

    Each byte is ``trunc(min(255, value · scale))``.

    Parameters
    ----------
    %(write_path)s
    image : ndarray (slow, fast)
        Float image, photons per pixel.
    scale : float
        Multiplier (grey levels per photon) applied before truncation.
    """
    values = np.asarray(image, dtype=np.float64)
    pixels = np.clip(np.minimum(255.0, values * scale), 0, 255).astype(np.uint8)
    slow, fast = values.shape
    with atomic_write(path, "wb") as handle:
        handle.write(f"P5\n{fast} {slow}\n# pixels scaled by {scale:g}\n255\n".encode("ascii"))
        handle.write(pixels.tobytes())
