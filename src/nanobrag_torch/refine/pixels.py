"""The pixels a refinement evaluates: those that carry information about the parameters."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as functional

from .spots import Spots

FLUX_FRACTION = 0.99
"""The brightest predicted pixels holding this fraction of the predicted photons are kept."""

MARGIN_PX = 2
"""Kept pixels are dilated by this many pixels, so that spot edges (where the derivatives are
largest) and small moves of the spots stay inside."""


def informative_pixels(bright: Sequence[torch.Tensor], spots: Spots, used: torch.Tensor) -> torch.Tensor:
    """Flat indices of the pixels near the predicted spots of any of the images, or near observed spots.

    Pixels far from every spot have an expected count and derivatives so small that they
    add nothing measurable to the likelihood; leaving them out makes each evaluation tens of
    times cheaper on a large detector. The dilation stays on each panel: it reaches no pixel
    of another panel.

    Parameters
    ----------
    bright : sequence of tensors (panels, spixels, fpixels) of bool
        :func:`brightest_pixels` of predicted images (e.g. at the starting point and at the
        candidates a refinement compares).
    spots : Spots
        Observed spots.
    used : tensor (panels, spixels, fpixels) of bool
        Pixels the caller allows.

    Returns
    -------
    tensor (n,) of int64
        Sorted flat indices (:class:`~nanobrag_torch.layout.PixelLayout`:
        ``panel · spixels · fpixels + slow · fpixels + fast``), dilated by :data:`MARGIN_PX`,
        on the device of ``used``.
    """
    keep = torch.zeros(used.shape, dtype=torch.bool, device=used.device)
    for mask in bright:
        keep |= mask
    rows = spots.slow_px.round().long().clamp(0, used.shape[1] - 1)
    cols = spots.fast_px.round().long().clamp(0, used.shape[2] - 1)
    keep[spots.panel, rows, cols] = True
    width = 2 * MARGIN_PX + 1
    keep = functional.max_pool2d(keep[:, None].to(torch.float32), width, stride=1, padding=MARGIN_PX)[:, 0] > 0
    return torch.nonzero((keep & used).reshape(-1)).reshape(-1)


def brightest_pixels(signal: torch.Tensor, fraction: float = FLUX_FRACTION) -> torch.Tensor:
    """The brightest pixels that hold a fraction (:data:`FLUX_FRACTION`) of an image's photons.

    Only pixels above a threshold are sorted: a millionth of the brightest, lowered until the
    pixels below it hold less than the fraction left out.

    Parameters
    ----------
    signal : tensor (panels, spixels, fpixels)
        Predicted photons per pixel (without background), 0 where pixels are not compared.
    fraction : float
        The fraction of the photons the pixels hold.

    Returns
    -------
    tensor (panels, spixels, fpixels) of bool
        (Of the shape of ``signal``, whatever it is.)
    """
    flat = signal.reshape(-1).clamp(min=0)
    total = float(flat.sum(dtype=torch.float64))
    keep = torch.zeros_like(flat, dtype=torch.bool)
    if total <= 0:
        return keep.reshape(signal.shape)
    threshold = float(flat.max()) * 1e-6
    while threshold > 0 and float(flat[flat <= threshold].sum(dtype=torch.float64)) >= (1 - fraction) * total:
        threshold /= 100
    candidates = torch.nonzero(flat > threshold).reshape(-1)
    ordered, order = torch.sort(flat[candidates].to(torch.float64), descending=True)
    count = int((torch.cumsum(ordered, 0) < fraction * total).sum()) + 1
    keep[candidates[order[:count]]] = True
    return keep.reshape(signal.shape)
