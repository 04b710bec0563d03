"""Rendering a prepared run in chunks of pixels: :func:`render`.

The chunks bound the memory: each holds about :data:`DEFAULT_EVALUATIONS_PER_CHUNK`
evaluations, and when gradients are needed a chunk is recomputed in the backward pass instead
of keeping its intermediates (:meth:`~nanobrag_torch.prepared.PreparedRun.recomputes_chunks`).
The physics of a chunk is :func:`nanobrag_torch.pixel_physics.chunk_intensity`; every chunk
lies on one panel.
"""

from __future__ import annotations

import warnings
from typing import Callable, Iterator, Optional, Tuple

import torch
from torch.utils.checkpoint import checkpoint

from ._docs import fill_doc
from .kernels import runs_as_loops
from .pixel_physics import chunk_intensity
from .layout import PixelLayout
from .prepared import PreparedRun

DEFAULT_EVALUATIONS_PER_CHUNK = 1 << 19
"""Pixel chunks hold about this many evaluations in memory at once: pixel × sub-pixel × layer ×
source, times phi steps × mosaic domains unless the compiled CPU loops compute the Bragg sum
(they keep nothing per orientation). Small enough that the largest temporaries (a few MB) are
reused by the allocator instead of being mapped and faulted in afresh for every operation,
large enough that the fixed cost of each tensor operation (thread start-up and barrier) is
spread over many pixels."""


@fill_doc
def render(prepared: PreparedRun, pixels: Optional[torch.Tensor] = None, pixel_batch_size: Optional[int] = None,
           progress: Optional[Callable[[int, int], None]] = None) -> torch.Tensor:
    """Render the expected photons of a prepared run.

    Parameters
    ----------
    %(prepared)s
    pixels : tensor (n,) of int, optional
        Flat indices (:class:`~nanobrag_torch.layout.PixelLayout`) of the only pixels to
        render. Default: the detector's rendered pixels (inside the ROI, not masked), the
        others 0.
    %(pixel_batch_size)s
    %(render_progress)s

    Returns
    -------
    tensor
        The image in the layout's :attr:`~nanobrag_torch.layout.PixelLayout.image_shape`, or
        (n,) for ``pixels``. Expected photons per pixel (nanoBragg's float image). The render
        reads nothing but ``prepared``.

    Raises
    ------
    ValueError
        ``pixels`` is not a 1-D integer tensor of the detector's flat indices.
    """
    layout = prepared.layout
    if pixels is not None:
        indices = layout.check_flat(pixels).to(prepared.device)
        return _render_pixels(prepared, indices, pixel_batch_size, progress)
    if layout.selects_every_pixel(prepared.regions, prepared.pixel_mask):  # the buffer is the image
        every = torch.arange(layout.total, device=prepared.device)
        return layout.image_from_flat(_render_pixels(prepared, every, pixel_batch_size, progress))
    rendered = layout.selected_pixels(prepared.regions, prepared.pixel_mask, prepared.device)
    values = _render_pixels(prepared, rendered, pixel_batch_size, progress)
    image = torch.zeros(layout.total, device=prepared.device, dtype=prepared.dtype)
    return layout.image_from_flat(image.index_put((rendered,), values))


def _render_pixels(prepared: PreparedRun, pixels: torch.Tensor, pixel_batch_size: Optional[int],
                   progress: Optional[Callable[[int, int], None]]) -> torch.Tensor:
    """Expected photons (n,) of the flat ``pixels`` (int64, on the run's device, checked)."""
    batch = pixel_batch_size or max(1, DEFAULT_EVALUATIONS_PER_CHUNK // evaluations_per_pixel(prepared))
    total = int(pixels.numel())
    recompute = torch.is_grad_enabled() and prepared.recomputes_chunks(total)
    # Each chunk is copied into one buffer (autograd records the copies): kept as separate
    # tensors, the chunks' small results would lie scattered among the freed temporaries of
    # later chunks and keep the heap from being reused (the resident memory of a 4096 x 4096
    # render grew by about 250 bytes per pixel).
    rendered = torch.zeros(total, device=prepared.device, dtype=prepared.dtype)
    interpolation_off = False
    done = 0
    for positions, panel, slow, fast in pixel_chunks(prepared.layout, pixels, batch):
        if recompute:
            value, now_off = checkpoint(chunk_intensity, prepared, panel, slow, fast, interpolation_off,
                                        use_reentrant=False)
        else:
            value, now_off = chunk_intensity(prepared, panel, slow, fast, interpolation_off)
        if now_off and not interpolation_off:
            warnings.warn("tricubic interpolation switched off for the rest of the image at the first "
                          "out-of-range lookup (nanoBragg C behaviour)", stacklevel=3)
        interpolation_off = now_off
        rendered[positions] = value
        done += int(slow.numel())
        if progress is not None:
            progress(done, total)
    return rendered * prepared.photon_scale


@fill_doc
def evaluations_per_pixel(prepared: PreparedRun) -> int:
    """Evaluations a chunk holds in memory at once per pixel: sub-pixels × layers × sources,
    times the orientations unless the compiled CPU loops compute the Bragg sum.

    Parameters
    ----------
    %(prepared)s

    Returns
    -------
    int
        Evaluations per pixel.
    """
    orientations = prepared.cell_vectors_m.shape[0] * prepared.cell_vectors_m.shape[1]
    held = 1 if prepared.fused and runs_as_loops(prepared.device) else orientations
    return (prepared.subpixel_offsets.shape[0] * prepared.layer_depths_m.shape[0] * prepared.n_sources * held)


def pixel_chunks(layout: PixelLayout, pixels: torch.Tensor,
            batch: int) -> Iterator[Tuple[slice, int, torch.Tensor, torch.Tensor]]:
    """The chunks of ``pixels``: runs of at most ``batch`` consecutive pixels on one panel.

    Parameters
    ----------
    layout : PixelLayout
        The detector's pixel addressing.
    pixels : tensor (n,) of int64
        Flat indices.
    batch : int
        Most pixels a chunk holds.

    Yields
    ------
    positions : slice
        Where the chunk's pixels lie in ``pixels``.
    panel : int
        The panel they lie on.
    slow, fast : tensor of float64
        Their coordinates on it.
    """
    count = int(pixels.numel())
    if layout.panels == 1:
        runs = [(0, count)]
    else:
        panel = layout.panel_of(pixels)
        starts = [0] + (torch.nonzero(panel[1:] != panel[:-1]).reshape(-1) + 1).tolist()
        runs = list(zip(starts, starts[1:] + [count])) if count else []
    for start, end in runs:
        panel = int(layout.panel_of(pixels[start:start + 1])) if layout.panels > 1 else 0
        for first in range(start, end, batch):
            last = min(first + batch, end)
            slow, fast = layout.coordinates_on_panel(panel, pixels[first:last])
            yield slice(first, last), panel, slow, fast
