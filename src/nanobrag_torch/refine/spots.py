"""Spots in an observed image: local maxima of the photons in small boxes, panel by panel."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Tuple

import torch
import torch.nn.functional as functional

BOX_PX = 3
"""Edge of the box (pixels) the photons of a spot are summed over."""

MIN_SPOT_PHOTONS = 3.0
"""Photons above the background a box needs to count as a spot, besides three standard
deviations of the background."""


@dataclass(frozen=True)
class Spots:
    """Spots found in an image.

    Attributes
    ----------
    panel : tensor (n,) of int64
        The panel each spot is on (:class:`~nanobrag_torch.layout.PixelLayout`).
    slow_px, fast_px : tensor (n,)
        Photon-weighted centroids in pixels of that panel (0 is the centre of its first pixel).
    photons : tensor (n,)
        Photons above the background in the spot's box.
    """

    panel: torch.Tensor
    slow_px: torch.Tensor
    fast_px: torch.Tensor
    photons: torch.Tensor

    def __len__(self) -> int:
        return int(self.photons.numel())


def find_spots(observed: torch.Tensor, background: torch.Tensor, used: torch.Tensor) -> Spots:
    """The spots of an image of photon counts, found on each panel on its own.

    A spot is a pixel whose 3 × 3 box holds the most photons within 3 pixels, and at least
    ``MIN_SPOT_PHOTONS`` plus three standard deviations of the background above the
    background; of equal neighbours (a plateau, as around a lone photon) the last in the flat
    order. Its centroid is the photon-weighted mean position in the box. Boxes and
    neighbourhoods end at a panel's edge: no spot takes pixels of another panel, and a box
    cut by the edge sums the pixels it holds.

    Parameters
    ----------
    observed : tensor (n_panels, spixels, fpixels)
        Photon counts (or expected counts of a noise-free image); ``(spixels, fpixels)`` is
        the one-panel image.
    background : tensor of the shape of ``observed``
        Expected background photons per pixel.
    used : tensor of the shape of ``observed``, of bool
        Pixels to look at; the others count as empty.

    Returns
    -------
    Spots
        On the device of ``observed``.

    Raises
    ------
    ValueError
        The three images are not of one shape, ``(panels, spixels, fpixels)`` or
        ``(spixels, fpixels)``; or no box reaches its threshold (a blank or very faint
        image): the message gives the lowest threshold and the brightest pixel.
    """
    if not (observed.ndim in (2, 3) and observed.shape == background.shape == used.shape):
        raise ValueError(f"find_spots: observed {tuple(observed.shape)}, background {tuple(background.shape)} and "
                         f"used {tuple(used.shape)} must be images of one (panels, spixels, fpixels) or "
                         f"(spixels, fpixels) shape")
    if observed.ndim == 2:
        observed, background, used = observed[None], background[None], used[None]
    signal = torch.where(used, observed - background, torch.zeros_like(observed)).to(torch.float32)
    noise = torch.where(used, background, torch.zeros_like(background)).to(torch.float32).clamp(min=0)
    box = BOX_PX * BOX_PX
    sums = _box_sums(signal) * box
    background_sums = _box_sums(noise) * box
    threshold = MIN_SPOT_PHOTONS + 3 * torch.sqrt(background_sums)
    candidates = sums >= threshold
    if not bool(candidates.any()):
        brightest = torch.where(used, observed, torch.zeros_like(observed))
        lowest = torch.where(used, threshold, torch.full_like(threshold, math.inf))
        raise ValueError(f"find_spots: no spots found: no {BOX_PX} × {BOX_PX} box holds its threshold of photons above "
                         f"the background (MIN_SPOT_PHOTONS = {MIN_SPOT_PHOTONS:g} plus three standard deviations of "
                         f"the background; {float(lowest.min()):.3g} photons at the lowest), the brightest box "
                         f"{float(sums.max()):.3g} photons, the brightest pixel {float(brightest.max()):.3g}: the "
                         f"image is blank or too faint to refine against")
    panel, slow, fast = _local_maxima(sums, candidates)
    offsets = torch.arange(-(BOX_PX // 2), BOX_PX // 2 + 1, device=observed.device)
    rows = slow[:, None, None] + offsets[:, None]
    cols = fast[:, None, None] + offsets[None, :]
    inside = (rows >= 0) & (rows < signal.shape[1]) & (cols >= 0) & (cols < signal.shape[2])
    rows, cols = rows.clamp(0, signal.shape[1] - 1), cols.clamp(0, signal.shape[2] - 1)
    weights = torch.where(inside, signal[panel[:, None, None], rows, cols], 0.0).clamp(min=0).to(torch.float64)
    photons = weights.sum((1, 2))
    return Spots(panel=panel, slow_px=(weights * rows).sum((1, 2)) / photons,
                 fast_px=(weights * cols).sum((1, 2)) / photons, photons=photons)


def _box_sums(image: torch.Tensor) -> torch.Tensor:
    """Mean over the :data:`BOX_PX` box around every pixel of each panel (pixels beyond a
    panel's edge count as 0), (panels, spixels, fpixels)."""
    return functional.avg_pool2d(image[:, None], BOX_PX, stride=1, padding=BOX_PX // 2,
                                 count_include_pad=True)[:, 0]


def _local_maxima(values: torch.Tensor, candidates: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(panel, slow, fast) of the candidates whose value is the largest within :data:`BOX_PX`
    pixels of their panel; of equal values, the last in the flat order. Only the candidates'
    neighbourhoods are read."""
    panel, slow, fast = torch.nonzero(candidates, as_tuple=True)
    _, spixels, fpixels = values.shape
    offsets = torch.arange(-BOX_PX, BOX_PX + 1, device=values.device)
    rows = (slow[:, None, None] + offsets[:, None]).clamp(0, spixels - 1)
    cols = (fast[:, None, None] + offsets[None, :]).clamp(0, fpixels - 1)
    neighbours = values[panel[:, None, None], rows, cols].reshape(len(slow), -1)
    later = (rows * fpixels + cols).reshape(len(slow), -1) > (slow * fpixels + fast)[:, None]
    own = values[panel, slow, fast][:, None]
    beaten = (neighbours > own) | ((neighbours == own) & later)
    keep = ~beaten.any(dim=1)
    return panel[keep], slow[keep], fast[keep]
