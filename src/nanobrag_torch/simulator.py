"""The simulator: nanoBragg's sum over sub-pixels, layers, sources, phi steps and mosaic domains.

:meth:`Simulator.run` renders the detector in chunks of pixels. Each chunk is one pure tensor
function of the (possibly differentiable) geometry, so the image is differentiable in every
continuous parameter; when gradients are needed, each chunk is recomputed during the backward
pass instead of keeping its intermediates, which bounds the memory of a full detector.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch.utils.checkpoint import checkpoint

from .config import BeamConfig, CrystalShape
from .geometry import as_tensor, rotation_about_axis, unit
from .kernels import PaddedTable, bragg_sum
from .models.beam import Beam
from .models.crystal import Crystal
from .models.detector import Detector
from .physics import StructureFactors, lattice_factor, nearest_index, polarization_factor

logger = logging.getLogger(__name__)

R_E_SQR_M2 = 7.94079248018965e-30
"""Square of the classical electron radius (Thomson cross-section / (8π/3)), m²."""

AVOGADRO_PER_MOL = 6.02214179e23
WATER_F = 2.57
"""Forward structure factor of a water molecule (electrons)."""
WATER_MOLAR_MASS_G = 18.0

DEFAULT_EVALUATIONS_PER_CHUNK = 1 << 19
"""Pixel chunks hold about this many (pixel × sub-pixel × source × phi × domain) evaluations:
small enough that the largest temporaries (a few MB) are reused by the allocator instead of
being mapped and faulted in afresh for every operation."""


@dataclass
class _Prepared:
    """Everything a chunk needs, computed once per run from the configs."""

    pix0: torch.Tensor
    fdet: torch.Tensor
    sdet: torch.Tensor
    odet: torch.Tensor
    beam: torch.Tensor
    distance: torch.Tensor
    close_distance: torch.Tensor
    pixel_m: torch.Tensor
    subpixel_offsets: torch.Tensor
    layer_depths_m: torch.Tensor
    attenuation_per_m: float
    layer_spacing_m: float
    incident: torch.Tensor
    wavelength_m: torch.Tensor
    polarization_axis: torch.Tensor
    kahn_factor: torch.Tensor
    miller_matrix: torch.Tensor
    n_cells: torch.Tensor
    reciprocal_A: Optional[torch.Tensor]
    water_background: torch.Tensor
    steps: int


class Simulator:
    """Render the diffraction image of a crystal on a detector.

    Parameters
    ----------
    crystal : Crystal
    detector : Detector
    beam_config : BeamConfig, optional
        Default: ``BeamConfig()`` (1 Å, default fluence).
    device : torch.device, optional
        Device of the image; defaults to the detector's.
    dtype : torch.dtype
        Floating type of the computation and of the image.
    c_quirks : bool
        Reproduce nanoBragg C's documented quirks (spec §12) instead of the intended physics:
        the phi = 0 carry-over, only the last sensor layer's capture fraction, the compounding
        of ``oversample_omega/_polar/_thick``, the doubly scaled water background, and the
        permanent switch-off of interpolation at the first out-of-range lookup. The
        ``nanobragg`` command sets it; the library's default computes the intended physics.
    """

    def __init__(self, crystal: Crystal, detector: Detector, beam_config: Optional[BeamConfig] = None,
                 device: Optional[torch.device] = None, dtype: Optional[torch.dtype] = None,
                 c_quirks: bool = False):
        self.crystal = crystal
        self.detector = detector
        self.beam_config = beam_config if beam_config is not None else BeamConfig()
        self.device = torch.device(device) if device is not None else detector.device
        self.dtype = dtype if dtype is not None else detector.dtype
        self.c_quirks = c_quirks
        self.beam = Beam(self.beam_config, self.device, self.dtype)

    # ------------------------------------------------------------ sampling
    @property
    def oversample(self) -> int:
        """Sub-pixels per pixel edge: the configured value, or nanoBragg's automatic choice
        ``ceil(3 · crystal size / (λ · distance / pixel))``."""
        configured = self.detector.config.oversample
        if configured is not None:
            return int(configured)
        with torch.no_grad():
            size = float(self.crystal.size_m().max())
            distance = float(self.detector.geometry.distance_m)
            wavelength = float(self.beam.wavelength_m)
            pixel = float(self.detector.config.pixel_size_mm) * 1e-3
        return max(1, int(math.ceil(3 * size / (wavelength * distance / pixel))))

    def _source_count(self) -> int:
        cfg = self.beam_config
        if cfg.sources is not None:
            return len(cfg.sources)
        with torch.no_grad():
            incident, _ = self.beam.sources(*self._beam_and_polarization_axes())
        return int(incident.shape[0])

    @property
    def n_sources(self) -> int:
        """Number of sources (divergence points × wavelengths, or the explicit list)."""
        return self._source_count()

    @property
    def steps(self) -> int:
        """nanoBragg's normalisation count: sources × domains × phi steps × oversample²."""
        cc = self.crystal.config
        return self.n_sources * cc.mosaic_domains * cc.phi_steps * self.oversample ** 2

    def _beam_and_polarization_axes(self):
        beam = self.detector.geometry.beam
        axis = self.beam_config.polarization_axis
        axis = axis if axis is not None else self.detector.convention.polarization
        return beam, unit(as_tensor(axis, self.device, self.dtype))

    def _interpolate(self, factors: StructureFactors) -> bool:
        if not factors.has_table:
            return False
        chosen = self.crystal.config.interpolate
        if chosen is None:
            return any(float(n) <= 2 for n in self.crystal.config.N_cells)
        return bool(chosen)

    # ------------------------------------------------------------- prepare
    def _prepare(self) -> _Prepared:
        dev, dt = self.device, self.dtype
        geometry = self.detector.geometry
        crystal_cfg, detector_cfg, beam_cfg = self.crystal.config, self.detector.config, self.beam_config
        beam, polarization_axis = self._beam_and_polarization_axes()
        incident, wavelength = self.beam.sources(beam, polarization_axis)
        spindle = crystal_cfg.spindle_axis if crystal_cfg.spindle_axis is not None else self.detector.convention.spindle
        vectors = self.crystal.rotated_real_vectors_m(as_tensor(spindle, dev, dt), self.c_quirks)
        n_orient = vectors.shape[0] * vectors.shape[1]
        miller_matrix = vectors.reshape(n_orient * 3, 3).transpose(0, 1)
        n = self.oversample
        sub = (torch.arange(n, device=dev, dtype=dt) + 0.5) / n
        subpixel_offsets = torch.stack(torch.meshgrid(sub, sub, indexing="ij"), dim=-1).reshape(-1, 2)
        layers = detector_cfg.detector_thicksteps if detector_cfg.detector_thick_um > 0 else 1
        spacing = self.detector.layer_spacing_m() if detector_cfg.detector_thick_um > 0 else 0.0
        fluence = as_tensor(beam_cfg.fluence_photons_per_m2, dev, dt)
        water_m = beam_cfg.water_size_um * 1e-6
        molecules = water_m ** 3 * 1e6 * AVOGADRO_PER_MOL / WATER_MOLAR_MASS_G
        water_background = WATER_F ** 2 * R_E_SQR_M2 * fluence * molecules
        reciprocal = None
        if crystal_cfg.shape in (CrystalShape.GAUSS, CrystalShape.TOPHAT):
            reciprocal = torch.stack(self.crystal.reciprocal_vectors_per_A())
        return _Prepared(
            pix0=geometry.pix0_m, fdet=geometry.fdet, sdet=geometry.sdet, odet=geometry.odet, beam=beam,
            distance=geometry.distance_m, close_distance=geometry.close_distance_m,
            pixel_m=as_tensor(detector_cfg.pixel_size_mm, dev, dt) * 1e-3,
            subpixel_offsets=subpixel_offsets,
            layer_depths_m=torch.arange(layers, device=dev, dtype=dt) * spacing,
            attenuation_per_m=self.detector.attenuation_per_m(), layer_spacing_m=spacing,
            incident=incident, wavelength_m=wavelength, polarization_axis=polarization_axis,
            kahn_factor=as_tensor(beam_cfg.polarization_factor, dev, dt),
            miller_matrix=miller_matrix, n_cells=self.crystal.n_cells(), reciprocal_A=reciprocal,
            water_background=water_background, steps=self.steps,
        )

    # ----------------------------------------------------------------- run
    def run(self, pixel_batch_size: Optional[int] = None,
            progress: Optional[Callable[[int, int], None]] = None) -> torch.Tensor:
        """Render the image.

        Parameters
        ----------
        pixel_batch_size : int, optional
            Pixels per chunk. Default: about two million evaluations per chunk.
        progress : callable, optional
            Called as ``progress(done_pixels, total_pixels)`` after every chunk.

        Returns
        -------
        tensor (spixels, fpixels)
            Expected photons per pixel (nanoBragg's float image). Pixels outside the ROI or
            masked are 0.
        """
        cfg = self.detector.config
        prepared = self._prepare()
        factors = self.crystal.structure_factors()
        interpolate = self._interpolate(factors)
        self._interpolation_switched_off = False
        fluence = as_tensor(self.beam_config.fluence_photons_per_m2, self.device, self.dtype)
        scale = R_E_SQR_M2 * fluence / prepared.steps
        pixels = self.detector.rendered_pixels().to(self.device)
        evaluations_per_pixel = (prepared.subpixel_offsets.shape[0] * prepared.layer_depths_m.shape[0]
                                 * prepared.incident.shape[0] * prepared.miller_matrix.shape[1] // 3)
        batch = pixel_batch_size or max(1, DEFAULT_EVALUATIONS_PER_CHUNK // evaluations_per_pixel)
        table = PaddedTable(factors, self.dtype, self.device) if self._fused(factors, interpolate) else None
        recompute = torch.is_grad_enabled() and self._needs_recompute(prepared, table is not None, interpolate)
        values = []
        total = int(pixels.numel())
        for start in range(0, total, batch):
            chunk = pixels[start:start + batch]
            if recompute:
                values.append(checkpoint(self._render_chunk, chunk, prepared, factors, interpolate, table,
                                         use_reentrant=False))
            else:
                values.append(self._render_chunk(chunk, prepared, factors, interpolate, table))
            if progress is not None:
                progress(min(start + batch, total), total)
        image = torch.zeros(cfg.spixels * cfg.fpixels, device=self.device, dtype=self.dtype)
        if values:
            image = image.index_put((pixels,), torch.cat(values) * scale)
        return image.reshape(cfg.spixels, cfg.fpixels)

    def _fused(self, factors: StructureFactors, interpolate: bool) -> bool:
        """Whether the fused kernel computes the Bragg sum: SQUARE shape, nearest-neighbour
        structure factors that need no gradient, and no per-orientation C compounding."""
        cfg = self.detector.config
        compounding = self.c_quirks and (cfg.oversample_omega or cfg.oversample_polar or cfg.oversample_thick)
        table_grad = factors.grid is not None and factors.grid.requires_grad
        return (self.crystal.config.shape is CrystalShape.SQUARE and not interpolate
                and not compounding and not table_grad)

    def _needs_recompute(self, p: _Prepared, fused: bool, interpolate: bool) -> bool:
        """Whether chunks are recomputed in the backward pass (instead of keeping their
        intermediates): when the per-pixel geometry needs gradients, or the unfused path does.
        The C interpolation switch-off is stateful and is never recomputed."""
        if self.c_quirks and interpolate:
            return False
        geometry = (p.pix0, p.fdet, p.sdet, p.odet, p.distance, p.close_distance, p.pixel_m, p.incident,
                    p.wavelength_m, p.polarization_axis, p.kahn_factor)
        if any(t.requires_grad for t in geometry):
            return True
        return not fused and _any_requires_grad(p)

    # -------------------------------------------------------------- chunk
    def _render_chunk(self, pixels: torch.Tensor, p: _Prepared, factors: StructureFactors,
                      interpolate: bool, table: Optional[PaddedTable]) -> torch.Tensor:
        """Unscaled intensity ``Σ F_cell² F_latt² × factors`` of a chunk of pixels (flat indices)."""
        cfg = self.detector.config
        quirks = self.c_quirks
        slow = torch.div(pixels, cfg.fpixels, rounding_mode="floor").to(self.dtype)
        fast = (pixels % cfg.fpixels).to(self.dtype)
        # positions [P, T, S, 3]
        fdet = p.pixel_m * (fast[:, None] + p.subpixel_offsets[None, :, 1])
        sdet = p.pixel_m * (slow[:, None] + p.subpixel_offsets[None, :, 0])
        position = (p.pix0 + fdet[..., None] * p.fdet + sdet[..., None] * p.sdet)[:, None, :, :]
        position = position + p.layer_depths_m[None, :, None, None] * p.odet
        if cfg.curved_detector:
            position = self._curve(position, p)
        radius = torch.linalg.vector_norm(position, dim=-1)
        diffracted = position / radius[..., None]
        if cfg.point_pixel:
            omega = 1.0 / (radius * radius)
        else:
            omega = p.pixel_m * p.pixel_m / (radius * radius) * p.close_distance / radius
        capture = self._capture_fraction(diffracted, p)
        # scattering vectors [P, T, S, K, 3]
        q = (diffracted[:, :, :, None, :] - p.incident) / p.wavelength_m[:, None]
        kept = self._dmin_kept(q)
        if self.beam_config.nopolar and not (quirks and cfg.oversample_polar):
            polar = torch.ones(q.shape[:-1], dtype=self.dtype, device=self.device)
        else:
            polar = polarization_factor(p.incident, diffracted[:, :, :, None, :], p.polarization_axis,
                                        p.kahn_factor)
        if table is not None:
            # [P, T, S, K, 1]: already summed over the orientations
            term = bragg_sum(q.reshape(-1, 3), p.miller_matrix, p.n_cells, table).reshape(q.shape[:-1])[..., None]
            f_latt = None
        else:
            # Miller indices [P, T, S, K, O, 3] for O orientations (phi steps × domains)
            hkl = (q @ p.miller_matrix).unflatten(-1, (-1, 3))
            hkl0 = nearest_index(hkl.detach())
            f_latt = lattice_factor(self.crystal.config.shape, hkl - hkl0, p.n_cells, self.crystal.config.fudge,
                                    p.reciprocal_A)
            f_cell = self._structure_factor(hkl, hkl0, factors, interpolate)
            term = (f_cell * f_latt) ** 2
        if kept is not None:
            term = term * kept[..., None]
        if quirks:
            return self._combine_c(term, f_latt, kept, omega, polar, capture, p)
        return self._combine(term, omega, polar, capture, kept, p)

    def _curve(self, position: torch.Tensor, p: _Prepared) -> torch.Tensor:
        """Curved detector: every pixel at ``distance`` from the sample (spec §6.3)."""
        start = p.distance * p.beam
        about_s = rotation_about_axis(p.sdet.expand(position.shape), position[..., 1] / p.distance)
        rotated = (about_s @ start[:, None]).squeeze(-1)
        about_f = rotation_about_axis(p.fdet.expand(position.shape), position[..., 2] / p.distance)
        return (about_f @ rotated[..., None]).squeeze(-1)

    def _capture_fraction(self, diffracted: torch.Tensor, p: _Prepared) -> torch.Tensor:
        """Fraction of photons absorbed in each sensor layer, [P, T, S] (1 for no thickness)."""
        if p.layer_spacing_m <= 0:
            if self.c_quirks and self.detector.config.oversample_thick:
                return torch.zeros(diffracted.shape[:-1], dtype=self.dtype, device=self.device)
            return torch.ones(diffracted.shape[:-1], dtype=self.dtype, device=self.device)
        parallax = (diffracted * p.odet).sum(-1)
        mu = p.attenuation_per_m
        depth = p.layer_depths_m[None, :, None]
        return (torch.exp(-depth * mu / parallax)
                - torch.exp(-(depth + p.layer_spacing_m) * mu / parallax))

    def _dmin_kept(self, q: torch.Tensor) -> Optional[torch.Tensor]:
        """1 where a source passes the resolution cut, 0 where it is skipped; None if no cut."""
        dmin_m = self.beam_config.dmin_A * 1e-10
        if dmin_m <= 0:
            return None
        stol = torch.linalg.vector_norm(q.detach(), dim=-1) / 2
        skipped = (stol > 0) & (dmin_m > 1.0 / (2 * stol))
        return (~skipped).to(self.dtype)

    def _structure_factor(self, hkl: torch.Tensor, hkl0: torch.Tensor, factors: StructureFactors,
                          interpolate: bool) -> torch.Tensor:
        nearest = factors.nearest(hkl0)
        if not interpolate:
            return nearest
        valid = factors.interpolation_valid(hkl.detach())
        if self.c_quirks:
            valid = self._c_interpolation_shutoff(valid)
        if not bool(valid.any()):
            return nearest
        return torch.where(valid, factors.tricubic(hkl), nearest)

    def _c_interpolation_shutoff(self, valid: torch.Tensor) -> torch.Tensor:
        """C turns interpolation off for the rest of the run at the first out-of-range lookup."""
        if self._interpolation_switched_off:
            return torch.zeros_like(valid)
        flat = valid.reshape(-1)
        invalid = (~flat).nonzero()
        if invalid.numel() == 0:
            return valid
        first = int(invalid[0])
        self._interpolation_switched_off = True
        warnings.warn("tricubic interpolation switched off for the rest of the image at the first "
                      "out-of-range lookup (nanoBragg C behaviour)", stacklevel=4)
        order = torch.arange(flat.numel(), device=flat.device)
        return (flat & (order < first)).reshape(valid.shape)

    @staticmethod
    def _first_source(polar: torch.Tensor, kept: Optional[torch.Tensor]) -> torch.Tensor:
        """Polarization of the first sub-pixel's first source that passes the dmin cut, [P]."""
        first_subpixel = polar[:, 0, 0, :]
        if kept is None:
            return first_subpixel[:, 0]
        flags = kept[:, 0, 0, :] > 0
        index = torch.where(flags.any(-1), flags.to(torch.int64).argmax(-1), torch.zeros_like(flags[:, 0],
                                                                                              dtype=torch.int64))
        return first_subpixel.gather(-1, index[:, None])[:, 0]

    def _combine(self, term, omega, polar, capture, kept, p: _Prepared) -> torch.Tensor:
        """Intended physics: each factor multiplies its own terms; per-pixel factors from the
        first sub-pixel unless the oversample flag asks for every sub-pixel."""
        cfg = self.detector.config
        weight = capture if cfg.oversample_thick else capture[:, :, :1].expand_as(capture)
        if cfg.oversample_omega:
            weight = weight * omega
        per_source = term.sum(-1)
        if cfg.oversample_polar:
            per_source = per_source * polar
        total = (per_source.sum(-1) * weight).sum((-1, -2))
        if not cfg.oversample_omega:
            total = total * omega[:, 0, 0]
        first_polar = self._first_source(polar, kept)
        if not cfg.oversample_polar:
            total = total * first_polar
        if self.beam_config.water_size_um > 0:
            background = p.water_background / (R_E_SQR_M2 * as_tensor(
                self.beam_config.fluence_photons_per_m2, self.device, self.dtype)) * p.steps
            total = total + background * omega[:, 0, 0] * first_polar * capture[:, :, 0].sum(-1)
        return total

    def _combine_c(self, term, f_latt, kept, omega, polar, capture, p: _Prepared) -> torch.Tensor:
        """nanoBragg C's accumulation, quirks included (spec §8.5–8.6)."""
        cfg = self.detector.config
        flagged = cfg.oversample_omega or cfg.oversample_polar or cfg.oversample_thick
        background = p.water_background
        if not flagged:
            total = term.sum((-1, -2, -3, -4)) + background
        else:
            factor = torch.ones_like(term)
            if cfg.oversample_thick:
                factor = factor * capture[:, :, :, None, None]
            if cfg.oversample_polar:
                factor = factor * polar[..., None]
            if cfg.oversample_omega:
                factor = factor * omega[:, :, :, None, None]
            counted = torch.ones_like(term, dtype=torch.bool)
            if self.beam_config.water_size_um <= 0:
                counted = counted & (f_latt != 0)
            if kept is not None:
                counted = counted & (kept[..., None] > 0)
            factor = torch.where(counted, factor, torch.ones_like(factor)).flatten(1)
            suffix = torch.flip(torch.cumprod(torch.flip(factor, [1]), dim=1), [1])
            total = (term.flatten(1) * suffix).sum(-1) + background * suffix[:, 0]
        if not cfg.oversample_thick:
            total = total * capture[:, -1, 0]
        if not cfg.oversample_polar:
            total = total * (torch.ones_like(total) if self.beam_config.nopolar
                             else self._first_source(polar, kept))
        if not cfg.oversample_omega:
            total = total * omega[:, 0, 0]
        return total


def _any_requires_grad(prepared: _Prepared) -> bool:
    return any(isinstance(v, torch.Tensor) and v.requires_grad for v in vars(prepared).values())
