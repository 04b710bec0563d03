"""The physics of a chunk of pixels: nanoBragg's sum over sensor layers, sub-pixels, sources and
orientations, as one pure tensor function of a :class:`~nanobrag_torch.prepared.PreparedRun`.

:func:`chunk_intensity` is what :func:`nanobrag_torch.render.render` evaluates for every chunk
(once, or again in the backward pass). Every pixel of a chunk lies on one panel.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch

from . import c_quirks
from .geometry import rotation_about_axis
from .kernels import bragg_sum
from .physics import lattice_factor, nearest_index, polarization_factor
from .prepared import PreparedRun


def chunk_intensity(p: PreparedRun, panel: int, slow: torch.Tensor, fast: torch.Tensor,
                    interpolation_off: bool) -> Tuple[torch.Tensor, bool]:
    """Unscaled intensity ``Σ F_cell² F_latt² × factors`` of pixels of one panel.

    Parameters
    ----------
    p : PreparedRun
        The planned run (:meth:`Simulator.prepare
        <nanobrag_torch.simulator.Simulator.prepare>`); nothing else is read.
    panel : int
        The panel all the pixels lie on.
    slow, fast : tensor (P,) of float64
        Their pixel coordinates on it.
    interpolation_off : bool
        Whether C's interpolation switch-off happened before this chunk (C quirks only).

    Returns
    -------
    intensity : tensor (P,)
        To be multiplied by :attr:`~nanobrag_torch.prepared.PreparedRun.photon_scale`.
    interpolation_off : bool
        Whether the switch-off has happened by the end of the chunk.
    """
    options = p.options
    q, diffracted, radius = scattering_vectors(p, panel, slow, fast)
    pixel_m = p.panels.pixel_size_m[panel]
    if options.point_pixel:
        omega = 1.0 / (radius * radius)
    else:
        omega = pixel_m * pixel_m / (radius * radius) * p.panels.close_distance_m[panel] / radius
    capture = _capture_fraction(diffracted, p, panel)
    kept = _dmin_kept(q, options.dmin_m)
    if options.nopolar and not (options.c_quirks and options.oversample_polar):
        polar = torch.ones(q.shape[1:], dtype=p.dtype, device=p.device)
    else:
        polar = polarization_factor(p.incident, diffracted.movedim(0, -1), p.polarization_axis, p.kahn_factor)
    if options.fused:
        # [P, T, S, K, 1]: already summed over the orientations
        term = bragg_sum(q.reshape(3, -1).transpose(0, 1), p.miller_matrix, p.n_cells,
                         p.structure_factors).reshape(q.shape[1:])[..., None]
        f_latt = None
    else:
        # Miller indices [P, T, S, K, O, 3] for O orientations (phi steps × domains)
        hkl = (q.movedim(0, -1) @ p.miller_matrix).unflatten(-1, (-1, 3))
        hkl0 = nearest_index(hkl.detach())
        f_latt = lattice_factor(options.shape, hkl - hkl0, p.n_cells, options.fudge, p.reciprocal_A)
        f_cell, interpolation_off = _structure_factor(hkl, hkl0, p, interpolation_off)
        term = (f_cell * f_latt) ** 2
    if kept is not None:
        term = term * kept[..., None]
    if options.c_quirks:
        first_polar = torch.ones_like(polar[:, 0, 0, 0]) if options.nopolar else _first_source(polar, kept)
        return c_quirks.accumulate(term, f_latt, kept, omega, polar, capture, first_polar, p.water_background,
                                   options), interpolation_off
    return _combine(term, omega, polar, capture, kept, p), interpolation_off


def scattering_vectors(p: PreparedRun, panel: int, slow: torch.Tensor,
                       fast: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The scattering vectors of every evaluation of pixels of one panel.

    Parameters
    ----------
    p : PreparedRun
        The planned run.
    panel : int
        The panel all the pixels lie on.
    slow, fast : tensor (P,) of float64
        Their pixel coordinates on it.

    Returns
    -------
    q : tensor (3, P, T, S, K)
        Scattering vectors in 1/m of the P pixels' T sensor layers, S sub-pixels and K sources,
        components first.
    diffracted : tensor (3, P, T, S)
        Unit directions from the sample to the evaluated points.
    radius : tensor (P, T, S)
        Distances of the evaluated points from the sample, in metres.
    """
    planes = p.panels
    # Vectors are held components first: (3, P, T, S) for P pixels, T sensor layers and S
    # sub-pixels, (3, P, T, S, K) for K sources. Elementwise operations then run along
    # contiguous pixels (with the three components last, a broadcast or a sum over them
    # costs several times more on the CPU).
    coords = torch.stack((slow, fast)).to(p.dtype)  # (2, P): slow, fast
    pixel_m = planes.pixel_size_m[panel]
    # distances (2, P, S) along the slow and fast axes; positions origin + distances @ axes
    distance = (coords[:, :, None] + p.subpixel_offsets.transpose(0, 1)[:, None, :]) * pixel_m
    axes = torch.stack((planes.slow[panel], planes.fast[panel]), dim=1)
    position = torch.addmm(planes.origin_m[panel][:, None], axes, distance.flatten(1)).unflatten(1, distance.shape[1:])
    position = position[:, :, None, :]
    if p.layer_spacing_m > 0:
        position = position + planes.normal[panel][:, None, None, None] * p.layer_depths_m[:, None]
    if p.options.curved_detector:
        position = _curve(position.movedim(0, -1), p, panel).movedim(-1, 0)
    radius = _length(position)
    diffracted = position / radius
    q = (diffracted[..., None] - p.incident.transpose(0, 1)[:, None, None, None, :]) / p.wavelength_m
    return q, diffracted, radius


def _capture_fraction(diffracted: torch.Tensor, p: PreparedRun, panel: int) -> torch.Tensor:
    """Fraction of photons absorbed in each sensor layer, [P, T, S] (1 for no thickness), for
    the unit directions ``diffracted`` (3, P, T, S)."""
    if p.layer_spacing_m <= 0:
        return c_quirks.capture_without_thickness(diffracted.shape[1:], diffracted, p.options)
    parallax = torch.tensordot(p.panels.normal[panel], diffracted, dims=1)
    # the front of layer t lies t · τ attenuation lengths deep, τ = μ · spacing
    front = torch.arange(p.layer_depths_m.shape[0], device=p.device, dtype=p.dtype)[None, :, None]
    tau = p.layer_attenuation_lengths
    return torch.exp(-front * tau / parallax) - torch.exp(-(front + 1) * tau / parallax)


def _dmin_kept(q: torch.Tensor, dmin_m: float) -> Optional[torch.Tensor]:
    """1 where a source passes the resolution cut, 0 where it is skipped, [P, T, S, K] for the
    scattering vectors ``q`` (3, P, T, S, K); None if no cut."""
    if dmin_m <= 0:
        return None
    stol = _length(q.detach()) / 2
    skipped = (stol > 0) & (dmin_m > 1.0 / (2 * stol))
    return (~skipped).to(q.dtype)


def _structure_factor(hkl: torch.Tensor, hkl0: torch.Tensor, p: PreparedRun,
                      interpolation_off: bool) -> Tuple[torch.Tensor, bool]:
    """Amplitudes (nearest or interpolated), and the C interpolation switch-off state after them."""
    factors = p.structure_factors
    nearest = factors.nearest(hkl0)
    if not p.options.interpolate:
        return nearest, interpolation_off
    valid = factors.interpolation_valid(hkl.detach())
    if p.options.c_quirks:
        valid, interpolation_off = c_quirks.interpolation_shutoff(valid, interpolation_off)
    if not bool(valid.any()):
        return nearest, interpolation_off
    return torch.where(valid, factors.tricubic(hkl), nearest), interpolation_off


def _first_source(polar: torch.Tensor, kept: Optional[torch.Tensor]) -> torch.Tensor:
    """Polarization of the first sub-pixel's first source that passes the dmin cut, [P]."""
    first_subpixel = polar[:, 0, 0, :]
    if kept is None:
        return first_subpixel[:, 0]
    flags = kept[:, 0, 0, :] > 0
    index = torch.where(flags.any(-1), flags.to(torch.int64).argmax(-1),
                        torch.zeros_like(flags[:, 0], dtype=torch.int64))
    return first_subpixel.gather(-1, index[:, None])[:, 0]


def _combine(term, omega, polar, capture, kept, p: PreparedRun) -> torch.Tensor:
    """Intended physics: each factor multiplies its own terms; per-pixel factors from the
    first sub-pixel unless the oversample flag asks for every sub-pixel."""
    options = p.options
    weight = capture if options.oversample_thick else capture[:, :, :1].expand_as(capture)
    # the pixel's factors join the sub-pixels' weights, which then meet the Bragg term in one
    # product (see geometry.rotation_xyz on products under forward-mode differentiation)
    weight = weight * (omega if options.oversample_omega else omega[:, :1, :1])
    first_polar = _first_source(polar, kept)
    per_source = _sum_over(term, (-1,))
    if options.oversample_polar:
        per_source = per_source * polar
    else:
        weight = weight * first_polar[:, None, None]
    total = _sum_over(_sum_over(per_source, (-1,)) * weight, (-1, -2))
    if options.water:
        total = total + p.water_background * omega[:, 0, 0] * first_polar * capture[:, :, 0].sum(-1)
    return total


def _length(vectors: torch.Tensor) -> torch.Tensor:
    """Euclidean length of vectors held components first, (3, ...) -> (...)."""
    return (vectors * vectors).sum(0).sqrt()


def _sum_over(x: torch.Tensor, dims: Tuple[int, ...]) -> torch.Tensor:
    """``x.sum(dims)``, as a view when every summed axis has length 1 (a reduction over such
    axes costs as much as a full pass over ``x``)."""
    if all(x.shape[d] == 1 for d in dims):
        return x.squeeze(dims)
    return x.sum(dims)


def _curve(position: torch.Tensor, p: PreparedRun, panel: int) -> torch.Tensor:
    """Curved detector: every pixel of the panel at its ``distance`` from the sample. As
    nanoBragg, ``distance · beam`` is turned about the panel's slow axis by the lab y component
    of the flat position over the distance, then about its fast axis by its z component over
    the distance."""
    planes = p.panels
    distance = planes.distance_m[panel]
    start = distance * p.beam
    about_s = rotation_about_axis(planes.slow[panel].expand(position.shape), position[..., 1] / distance)
    rotated = (about_s @ start[:, None]).squeeze(-1)
    about_f = rotation_about_axis(planes.fast[panel].expand(position.shape), position[..., 2] / distance)
    return (about_f @ rotated[..., None]).squeeze(-1)
