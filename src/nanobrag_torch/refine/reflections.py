"""Which reflection every pixel sees: the map that makes the image linear in the intensities.

nanoBragg looks up the amplitude of the reflection nearest to every evaluation's fractional
Miller index (sub-pixel, sensor layer, source, phi step and mosaic domain). When all the
evaluations of a pixel share that nearest reflection ``h``, the pixel's expected photons are
``|F(h)|² · U`` plus background, where ``U`` is the same pixel rendered with every amplitude 1:
for fixed geometry the pixel is linear in one intensity. :func:`pixel_reflections` finds that
reflection and says for which pixels it holds exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..physics import nearest_index
from ..pixel_physics import scattering_vectors
from ..prepared import PreparedRun
from ..render import DEFAULT_EVALUATIONS_PER_CHUNK, pixel_chunks


@dataclass(frozen=True)
class PixelReflections:
    """The nearest reflection of every pixel of a set.

    Attributes
    ----------
    hkl : tensor (n, 3) of int64
        The reflection nearest to the pixel's first evaluation (P1 indices).
    single : tensor (n,) of bool
        True where every evaluation of the pixel (sub-pixels, layers, sources, phi steps and
        mosaic domains) has that nearest reflection, so that the pixel depends on that
        reflection's amplitude alone.
    """

    hkl: torch.Tensor
    single: torch.Tensor


def pixel_reflections(prepared: PreparedRun, pixels: torch.Tensor) -> PixelReflections:
    """The nearest reflection of every pixel, from the evaluations the render makes.

    Parameters
    ----------
    prepared : PreparedRun
        The planned run (:meth:`Simulator.prepare <nanobrag_torch.simulator.Simulator.prepare>`).
    pixels : tensor (n,) of int
        Flat indices (:class:`~nanobrag_torch.layout.PixelLayout`) of the pixels.

    Returns
    -------
    PixelReflections
        On the run's device.
    """
    pixels = prepared.layout.check_flat(pixels).to(prepared.device)
    orientations = prepared.cell_vectors_m.shape[0] * prepared.cell_vectors_m.shape[1]
    per_pixel = (prepared.subpixel_offsets.shape[0] * prepared.layer_depths_m.shape[0] * prepared.n_sources
                 * orientations)
    batch = max(1, DEFAULT_EVALUATIONS_PER_CHUNK // per_pixel)
    hkl = torch.empty((pixels.numel(), 3), dtype=torch.int64, device=prepared.device)
    single = torch.empty(pixels.numel(), dtype=torch.bool, device=prepared.device)
    with torch.no_grad():
        for positions, panel, slow, fast in pixel_chunks(prepared.layout, pixels, batch):
            q = scattering_vectors(prepared, panel, slow, fast)[0]
            # every evaluation's nearest index, (P, evaluations, 3)
            nearest = nearest_index(q.movedim(0, -1) @ prepared.miller_matrix)
            nearest = nearest.reshape(nearest.shape[0], -1, 3)
            first = nearest[:, :1]
            hkl[positions] = first[:, 0].to(torch.int64)
            single[positions] = (nearest == first).all(dim=2).all(dim=1)
    return PixelReflections(hkl=hkl, single=single)
