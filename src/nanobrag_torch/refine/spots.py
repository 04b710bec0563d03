"""Spots in an observed image: local maxima of the photons in small boxes."""

from __future__ import annotations

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
    slow_px, fast_px : tensor (n,)
        Photon-weighted centroids in pixels (0 is the centre of the first pixel).
    photons : tensor (n,)
        Photons above the background in the spot's box.
    """

    slow_px: torch.Tensor
    fast_px: torch.Tensor
    photons: torch.Tensor

    def __len__(self) -> int:
        return int(self.photons.numel())


def find_spots(observed: torch.Tensor, background: torch.Tensor, used: torch.Tensor) -> Spots:
    """The spots of an image of photon counts.

    A spot is a pixel whose 3 × 3 box holds the most photons within 3 pixels, and at least
    ``MIN_SPOT_PHOTONS`` plus three standard deviations of the background above the
    background; of equal neighbours (a plateau, as around a lone photon) the last in the flat
    order. Its centroid is the photon-weighted mean position in the box.

    Parameters
    ----------
    observed : tensor (spixels, fpixels)
        Photon counts (or expected counts of a noise-free image).
    background : tensor (spixels, fpixels)
        Expected background photons per pixel.
    used : tensor (spixels, fpixels) of bool
        Pixels to look at; the others count as empty.

    Returns
    -------
    Spots
    """
    signal = torch.where(used, observed - background, torch.zeros_like(observed)).to(torch.float32)
    noise = torch.where(used, background, torch.zeros_like(background)).to(torch.float32).clamp(min=0)
    box = BOX_PX * BOX_PX
    sums = functional.avg_pool2d(signal[None, None], BOX_PX, stride=1, padding=BOX_PX // 2,
                                 count_include_pad=True)[0, 0] * box
    background_sums = functional.avg_pool2d(noise[None, None], BOX_PX, stride=1, padding=BOX_PX // 2,
                                            count_include_pad=True)[0, 0] * box
    slow, fast = _local_maxima(sums, sums >= MIN_SPOT_PHOTONS + 3 * torch.sqrt(background_sums))
    offsets = torch.arange(-(BOX_PX // 2), BOX_PX // 2 + 1, device=observed.device)
    rows = (slow[:, None, None] + offsets[:, None]).clamp(0, signal.shape[0] - 1)
    cols = (fast[:, None, None] + offsets[None, :]).clamp(0, signal.shape[1] - 1)
    weights = signal[rows, cols].clamp(min=0).to(torch.float64)
    photons = weights.sum((1, 2))
    return Spots(slow_px=(weights * rows).sum((1, 2)) / photons, fast_px=(weights * cols).sum((1, 2)) / photons,
                 photons=photons)


def _local_maxima(values: torch.Tensor, candidates: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """(slow, fast) of the candidates whose value is the largest within :data:`BOX_PX` pixels;
    of equal values, the last in the flat order. Only the candidates' neighbourhoods are read."""
    slow, fast = torch.nonzero(candidates, as_tuple=True)
    offsets = torch.arange(-BOX_PX, BOX_PX + 1, device=values.device)
    rows = (slow[:, None, None] + offsets[:, None]).clamp(0, values.shape[0] - 1)
    cols = (fast[:, None, None] + offsets[None, :]).clamp(0, values.shape[1] - 1)
    neighbours = values[rows, cols].reshape(len(slow), -1)
    later = (rows * values.shape[1] + cols).reshape(len(slow), -1) > (slow * values.shape[1] + fast)[:, None]
    own = values[slow, fast][:, None]
    beaten = (neighbours > own) | ((neighbours == own) & later)
    keep = ~beaten.any(dim=1)
    return slow[keep], fast[keep]
