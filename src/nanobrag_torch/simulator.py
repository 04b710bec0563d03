"""The simulator: nanoBragg's sum over sub-pixels, sensor layers, sources, phi steps and mosaic domains.

:meth:`Simulator.prepare` computes, once, everything a run needs from the configurations (the
detector geometry, the sources, the rotated crystal, the structure factors) into a
:class:`PreparedRun`; :meth:`Simulator.run` renders the detector from it in chunks of pixels.
Each chunk is one pure tensor function of the prepared tensors, so the image is differentiable
in every continuous parameter; when gradients are needed, each chunk is recomputed during the
backward pass instead of keeping its intermediates, which bounds the memory of a full detector.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, fields, is_dataclass
from typing import Callable, Optional, Tuple, TypeVar

import torch
from torch.utils.checkpoint import checkpoint

from .config import MAX_OVERSAMPLE, BeamConfig, ConfigError, CrystalShape
from .geometry import as_tensor, rotation_about_axis, same_device, unit
from .kernels import bragg_sum, runs_as_loops
from .models.beam import Beam
from .models.crystal import Crystal
from .models.detector import Detector, DetectorGeometry
from .physics import lattice_factor, nearest_index, polarization_factor
from .structure_factors import StructureFactors

R_E_SQR_M2 = 7.94079248018965e-30
"""Square of the classical electron radius (Thomson cross-section / (8π/3)), m²."""

AVOGADRO_PER_MOL = 6.02214179e23
WATER_F = 2.57
"""Forward structure factor of a water molecule (electrons)."""
WATER_MOLAR_MASS_G = 18.0

DEFAULT_EVALUATIONS_PER_CHUNK = 1 << 19
"""Pixel chunks hold about this many evaluations in memory at once: pixel × sub-pixel × layer ×
source, times phi steps × mosaic domains unless the compiled CPU loops compute the Bragg sum
(they keep nothing per orientation). Small enough that the largest temporaries (a few MB) are
reused by the allocator instead of being mapped and faulted in afresh for every operation,
large enough that the fixed cost of each tensor operation (thread start-up and barrier) is
spread over many pixels."""

T = TypeVar("T")


@dataclass
class PreparedRun:
    """Everything a run computes from the configurations before rendering, each item once.

    :meth:`Simulator.prepare` returns it and :meth:`Simulator.run` renders from it. It is not
    cached: a config field that is a tensor may change between runs.

    Attributes
    ----------
    geometry : DetectorGeometry
        Detector position and axes.
    incident : tensor (sources, 3)
        Unit propagation direction of every source.
    wavelength_m : tensor (sources,)
        Wavelength of every source.
    polarization_axis : tensor (3,)
        Unit E-vector axis.
    kahn_factor : tensor ()
        Kahn polarization factor.
    oversample : int
        Sub-pixels per pixel edge (the configured value, or nanoBragg's automatic choice).
    subpixel_offsets : tensor (oversample², 2)
        (slow, fast) offsets of the sub-pixel centres within a pixel, in pixels.
    layer_depths_m : tensor (layers,)
        Depth of the front of every sensor layer.
    layer_spacing_m : float
        Depth of one layer (0 for an ideal, infinitely thin sensor).
    attenuation_per_m : float
        Linear attenuation coefficient of the sensor.
    miller_matrix : tensor (3, 3 · orientations)
        Real-space vectors a, b, c (m) of every phi step and mosaic domain, as columns, so that
        ``q @ miller_matrix`` gives h, k, l.
    n_cells : tensor (3,)
        Na, Nb, Nc.
    reciprocal_A : tensor (3, 3) or None
        Rows a*, b*, c* in Å⁻¹ of the unrotated crystal (GAUSS and TOPHAT shapes only).
    structure_factors : StructureFactors
        The amplitudes, on the simulator's device and in its dtype.
    interpolate : bool
        Whether amplitudes are interpolated (tricubic).
    fused : bool
        Whether the fused kernel (``nanobrag_torch.kernels.bragg_sum``) computes the Bragg sum.
    water_background : tensor ()
        Water background, in the units of the unscaled sum that the chunks accumulate.
    steps : int
        nanoBragg's normalisation count: sources × mosaic domains × phi steps × oversample².
    """

    geometry: DetectorGeometry
    incident: torch.Tensor
    wavelength_m: torch.Tensor
    polarization_axis: torch.Tensor
    kahn_factor: torch.Tensor
    oversample: int
    subpixel_offsets: torch.Tensor
    layer_depths_m: torch.Tensor
    layer_spacing_m: float
    attenuation_per_m: float
    miller_matrix: torch.Tensor
    n_cells: torch.Tensor
    reciprocal_A: Optional[torch.Tensor]
    structure_factors: StructureFactors
    interpolate: bool
    fused: bool
    water_background: torch.Tensor
    steps: int

    @property
    def n_sources(self) -> int:
        """Number of sources (divergence points × wavelengths, or the explicit list)."""
        return int(self.incident.shape[0])

    def recomputes_chunks(self, pixels: int = 0) -> bool:
        """Whether a run that needs gradients recomputes each chunk in the backward pass instead
        of keeping its intermediates: when any field needs a gradient, except the
        ``FUSED_KERNEL_INPUTS`` when the fused kernel is used; and, when only those do,
        when what the chunks of ``pixels`` pixels would keep exceeds ``MAX_KEPT_BYTES``.

        Parameters
        ----------
        pixels : int
            Number of pixels the run renders.
        """
        exempt = FUSED_KERNEL_INPUTS if self.fused else frozenset()
        needing = [field.name for field in fields(self) if _requires_grad(getattr(self, field.name))]
        if any(name not in exempt for name in needing):
            return True
        return bool(needing) and pixels * self.kept_bytes_per_pixel() > MAX_KEPT_BYTES

    def kept_bytes_per_pixel(self) -> int:
        """Bytes a chunk that is not recomputed keeps per pixel for the backward pass: about
        ``KEPT_NUMBERS_PER_EVALUATION`` numbers per sub-pixel, sensor layer and source."""
        evaluations = self.subpixel_offsets.shape[0] * self.layer_depths_m.shape[0] * self.n_sources
        return evaluations * KEPT_NUMBERS_PER_EVALUATION * self.subpixel_offsets.element_size()


MAX_KEPT_BYTES = 1 << 30
"""The most memory (1 GiB) that the chunks of a run may keep for its backward pass; beyond it,
they are recomputed in the backward pass instead (about one more forward pass of time)."""

KEPT_NUMBERS_PER_EVALUATION = 8
"""Numbers a chunk that is not recomputed keeps per sub-pixel, layer and source: the
scattering vector that the fused kernel's backward reads (3), and the solid angle,
polarization and capture factors that the sum is multiplied by."""

FUSED_KERNEL_INPUTS = frozenset({"miller_matrix", "n_cells", "structure_factors"})
"""Fields of :class:`PreparedRun` that the fused kernel differentiates itself: its backward
keeps only its inputs, so their gradients alone never call for recomputing chunks."""


class Simulator:
    """Render the diffraction image of a crystal on a detector.

    Parameters
    ----------
    crystal : Crystal
    detector : Detector
    beam_config : BeamConfig, optional
        Default: ``BeamConfig()`` (1 Å, default fluence).
    device : torch.device, optional
        Device of the image. Default: the crystal's and detector's.
    dtype : torch.dtype, optional
        Floating type of the computation and of the image. Default: the crystal's and detector's.
    c_quirks : bool
        Reproduce nanoBragg C's documented quirks instead of the intended physics (see the
        Physics model page of the documentation): the phi = 0 carry-over, only the last sensor
        layer's capture fraction, the compounding of ``oversample_omega/_polar/_thick``, the
        doubly scaled water background, and the permanent switch-off of interpolation at the
        first out-of-range lookup. The ``nanobragg`` command sets it; the library's default
        computes the intended physics.

    Raises
    ------
    ValueError
        The crystal and the detector have different devices or dtypes, or ``device``/``dtype``
        is given and differs from theirs.
    """

    def __init__(self, crystal: Crystal, detector: Detector, beam_config: Optional[BeamConfig] = None,
                 device: Optional[torch.device] = None, dtype: Optional[torch.dtype] = None,
                 c_quirks: bool = False):
        self.crystal = crystal
        self.detector = detector
        self.beam_config = beam_config if beam_config is not None else BeamConfig()
        self.device = _common("device", crystal.device, detector.device,
                              torch.device(device) if device is not None else None, same_device)
        self.dtype = _common("dtype", crystal.dtype, detector.dtype, dtype, lambda a, b: a == b)
        self.c_quirks = c_quirks
        self.beam = Beam(self.beam_config, self.device, self.dtype)

    # ------------------------------------------------------------- prepare
    def prepare(self) -> PreparedRun:
        """Compute everything a run needs from the configurations, once.

        :meth:`run` calls it; call it yourself to look at the geometry, the sources or the
        sampling before rendering, and pass the result to :meth:`run`.

        Returns
        -------
        PreparedRun
        """
        dev, dt = self.device, self.dtype
        crystal_cfg, detector_cfg, beam_cfg = self.crystal.config, self.detector.config, self.beam_config
        convention = self.detector.convention
        geometry = self.detector.geometry()
        axis = beam_cfg.polarization_axis if beam_cfg.polarization_axis is not None else convention.polarization_axis
        polarization_axis = unit(as_tensor(axis, dev, dt))
        incident, wavelength = self.beam.sources(geometry.beam, polarization_axis)
        spindle = crystal_cfg.spindle_axis if crystal_cfg.spindle_axis is not None else convention.spindle_axis
        vectors = self.crystal.rotated_real_vectors_m(as_tensor(spindle, dev, dt), self.c_quirks)
        n_orient = vectors.shape[0] * vectors.shape[1]
        oversample = self._oversample(geometry)
        sub = (torch.arange(oversample, device=dev, dtype=dt) + 0.5) / oversample
        thick = detector_cfg.detector_thick_um > 0
        layers = detector_cfg.detector_thicksteps if thick else 1
        spacing = self.detector.layer_spacing_m() if thick else 0.0
        steps = int(incident.shape[0]) * crystal_cfg.mosaic_domains * crystal_cfg.phi_steps * oversample ** 2
        factors = self.crystal.structure_factors()
        interpolate = self._interpolate(factors)
        reciprocal = None
        if crystal_cfg.shape in (CrystalShape.GAUSS, CrystalShape.TOPHAT):
            reciprocal = torch.stack(self.crystal.reciprocal_vectors_per_A())
        return PreparedRun(
            geometry=geometry, incident=incident, wavelength_m=wavelength, polarization_axis=polarization_axis,
            kahn_factor=as_tensor(beam_cfg.polarization_factor, dev, dt), oversample=oversample,
            subpixel_offsets=torch.stack(torch.meshgrid(sub, sub, indexing="ij"), dim=-1).reshape(-1, 2),
            layer_depths_m=torch.arange(layers, device=dev, dtype=dt) * spacing, layer_spacing_m=spacing,
            attenuation_per_m=self.detector.attenuation_per_m(),
            miller_matrix=vectors.reshape(n_orient * 3, 3).transpose(0, 1), n_cells=self.crystal.n_cells(),
            reciprocal_A=reciprocal, structure_factors=factors, interpolate=interpolate,
            fused=self._fused(factors, interpolate), water_background=self._water_background(steps), steps=steps,
        )

    def _oversample(self, geometry: DetectorGeometry) -> int:
        """The configured sub-pixels per pixel edge, or nanoBragg's automatic choice
        ``ceil(3 · crystal size / (λ · distance / pixel))``, which must not exceed
        ``MAX_OVERSAMPLE`` (a ConfigError says so)."""
        configured = self.detector.config.oversample
        if configured is not None:
            return int(configured)
        with torch.no_grad():
            size = float(self.crystal.size_m().max())
            distance = float(geometry.distance_m)
            wavelength = float(self.beam.wavelength_m)
            pixel = float(geometry.pixel_size_m)
        chosen = max(1, int(math.ceil(3 * size / (wavelength * distance / pixel))))
        if chosen > MAX_OVERSAMPLE:
            raise ConfigError("DetectorConfig", "oversample", None,
                              f"nanoBragg's automatic choice ceil(3 · crystal size / (λ · distance / pixel)) is "
                              f"{chosen} for a {size * 1e6:.4g} µm crystal, more than MAX_OVERSAMPLE = "
                              f"{MAX_OVERSAMPLE}; give a value (-oversample)")
        return chosen

    def _interpolate(self, factors: StructureFactors) -> bool:
        if not factors.has_table:
            return False
        chosen = self.crystal.config.interpolate
        if chosen is None:
            return any(float(n) <= 2 for n in self.crystal.config.N_cells)
        return bool(chosen)

    def _fused(self, factors: StructureFactors, interpolate: bool) -> bool:
        """Whether the fused kernel computes the Bragg sum: SQUARE shape, nearest-neighbour
        structure factors that need no gradient, and no per-orientation C compounding."""
        cfg = self.detector.config
        compounding = self.c_quirks and (cfg.oversample_omega or cfg.oversample_polar or cfg.oversample_thick)
        return (self.crystal.config.shape is CrystalShape.SQUARE and not interpolate
                and not compounding and not factors.requires_grad)

    def _water_background(self, steps: int) -> torch.Tensor:
        """The water background in the units of the unscaled sum (which the run multiplies by
        ``r_e² · fluence / steps``): ``F_water² · molecules · steps``, so that the image gets
        ``r_e² · fluence · F_water² · molecules``; with ``c_quirks``, C's
        ``r_e² · fluence · F_water² · molecules`` (scaled twice, and divided by the steps)."""
        water_m = self.beam_config.water_size_um * 1e-6
        molecules = water_m ** 3 * 1e6 * AVOGADRO_PER_MOL / WATER_MOLAR_MASS_G
        if self.c_quirks:
            fluence = as_tensor(self.beam_config.fluence_photons_per_m2, self.device, self.dtype)
            return WATER_F ** 2 * R_E_SQR_M2 * fluence * molecules
        return torch.tensor(WATER_F ** 2 * molecules * steps, device=self.device, dtype=self.dtype)

    # ----------------------------------------------------------------- run
    def run(self, pixel_batch_size: Optional[int] = None, progress: Optional[Callable[[int, int], None]] = None,
            prepared: Optional[PreparedRun] = None, pixels: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Render the image.

        Parameters
        ----------
        pixel_batch_size : int, optional
            Pixels per chunk. Default: about ``DEFAULT_EVALUATIONS_PER_CHUNK`` (2¹⁹)
            evaluations per chunk.
        progress : callable, optional
            Called as ``progress(done_pixels, total_pixels)`` after every chunk.
        prepared : PreparedRun, optional
            What :meth:`prepare` returned, to render without computing it again. Default:
            :meth:`prepare` now.
        pixels : tensor (n,) of int, optional
            Flat indices (``slow · fpixels + fast``) of the only pixels to render, whatever the
            ROI and mask. A refinement evaluates just the pixels near the spots this way.

        Returns
        -------
        tensor (spixels, fpixels), or (n,) when ``pixels`` is given
            Expected photons per pixel (nanoBragg's float image). Pixels outside the ROI or
            masked are 0.
        """
        cfg = self.detector.config
        prepared = prepared if prepared is not None else self.prepare()
        fluence = as_tensor(self.beam_config.fluence_photons_per_m2, self.device, self.dtype)
        scale = R_E_SQR_M2 * fluence / prepared.steps
        subset = pixels is not None
        pixels = (self.detector.rendered_pixels() if pixels is None else self._checked_pixels(pixels)).to(self.device)
        orientations = prepared.miller_matrix.shape[1] // 3
        loops = prepared.fused and runs_as_loops(self.device)
        held_orientations = 1 if loops else orientations
        evaluations_per_pixel = (prepared.subpixel_offsets.shape[0] * prepared.layer_depths_m.shape[0]
                                 * prepared.n_sources * held_orientations)
        batch = pixel_batch_size or max(1, DEFAULT_EVALUATIONS_PER_CHUNK // evaluations_per_pixel)
        total = int(pixels.numel())
        recompute = torch.is_grad_enabled() and prepared.recomputes_chunks(total)
        # Each chunk is copied into one buffer (autograd records the copies): kept as separate
        # tensors, the chunks' small results would lie scattered among the freed temporaries of
        # later chunks and keep the heap from being reused (the resident memory of a 4096 x 4096
        # render grew by about 250 bytes per pixel).
        rendered = torch.zeros(total, device=self.device, dtype=self.dtype)
        interpolation_off = False
        for start in range(0, total, batch):
            chunk = pixels[start:start + batch]
            if recompute:
                value, now_off = checkpoint(self._render_chunk, chunk, prepared, interpolation_off,
                                            use_reentrant=False)
            else:
                value, now_off = self._render_chunk(chunk, prepared, interpolation_off)
            if now_off and not interpolation_off:
                warnings.warn("tricubic interpolation switched off for the rest of the image at the first "
                              "out-of-range lookup (nanoBragg C behaviour)", stacklevel=2)
            interpolation_off = now_off
            rendered[start:start + batch] = value
            if progress is not None:
                progress(min(start + batch, total), total)
        rendered = rendered * scale
        if subset:
            return rendered
        if total == cfg.spixels * cfg.fpixels:  # every pixel, in order: the image itself
            return rendered.reshape(cfg.spixels, cfg.fpixels)
        image = torch.zeros(cfg.spixels * cfg.fpixels, device=self.device, dtype=self.dtype)
        return image.index_put((pixels,), rendered).reshape(cfg.spixels, cfg.fpixels)

    def _checked_pixels(self, pixels) -> torch.Tensor:
        """Flat pixel indices given to :meth:`run`, checked to lie on the detector."""
        cfg = self.detector.config
        indices = torch.as_tensor(pixels)
        if indices.dtype.is_floating_point or indices.dtype == torch.bool or indices.ndim != 1:
            raise ValueError(f"pixels must be a 1-D tensor of integer flat indices (slow * fpixels + fast), "
                             f"got {indices.dtype} of shape {tuple(indices.shape)}")
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= cfg.spixels * cfg.fpixels):
            raise ValueError(f"pixels holds indices from {int(indices.min())} to {int(indices.max())}, outside the "
                             f"{cfg.spixels} x {cfg.fpixels} detector (0 to {cfg.spixels * cfg.fpixels - 1})")
        return indices.to(torch.int64)

    # -------------------------------------------------------------- chunk
    def _render_chunk(self, pixels: torch.Tensor, p: PreparedRun,
                      interpolation_off: bool) -> Tuple[torch.Tensor, bool]:
        """Unscaled intensity ``Σ F_cell² F_latt² × factors`` of a chunk of pixels (flat indices),
        and whether C's interpolation switch-off has happened by the end of the chunk (given
        whether it had before it)."""
        cfg = self.detector.config
        geometry = p.geometry
        quirks = self.c_quirks
        # Vectors are held components first: (3, P, T, S) for P pixels, T sensor layers and S
        # sub-pixels, (3, P, T, S, K) for K sources. Elementwise operations then run along
        # contiguous pixels (with the three components last, a broadcast or a sum over them
        # costs several times more on the CPU).
        index = pixels.to(torch.float64)  # exact: flat indices are far below 2**53
        slow = torch.floor(index / cfg.fpixels)
        coords = torch.stack((slow, index - slow * cfg.fpixels)).to(self.dtype)  # (2, P): slow, fast
        # distances (2, P, S) along the slow and fast axes; positions pix0 + distances @ axes
        pixel_m = geometry.pixel_size_m
        distance = (coords[:, :, None] + p.subpixel_offsets.transpose(0, 1)[:, None, :]) * pixel_m
        axes = torch.stack((geometry.sdet, geometry.fdet), dim=1)
        position = torch.addmm(geometry.pix0_m[:, None], axes, distance.flatten(1)).unflatten(1, distance.shape[1:])
        position = position[:, :, None, :]
        if p.layer_spacing_m > 0:
            position = position + geometry.odet[:, None, None, None] * p.layer_depths_m[:, None]
        if cfg.curved_detector:
            position = _curve(position.movedim(0, -1), geometry).movedim(-1, 0)
        radius = _length(position)
        diffracted = position / radius
        if cfg.point_pixel:
            omega = 1.0 / (radius * radius)
        else:
            omega = pixel_m * pixel_m / (radius * radius) * geometry.close_distance_m / radius
        capture = self._capture_fraction(diffracted, p)
        # scattering vectors (3, P, T, S, K)
        q = (diffracted[..., None] - p.incident.transpose(0, 1)[:, None, None, None, :]) / p.wavelength_m
        kept = self._dmin_kept(q)
        if self.beam_config.nopolar and not (quirks and cfg.oversample_polar):
            polar = torch.ones(q.shape[1:], dtype=self.dtype, device=self.device)
        else:
            polar = polarization_factor(p.incident, diffracted.movedim(0, -1), p.polarization_axis, p.kahn_factor)
        if p.fused:
            # [P, T, S, K, 1]: already summed over the orientations
            term = bragg_sum(q.reshape(3, -1).transpose(0, 1), p.miller_matrix, p.n_cells,
                             p.structure_factors).reshape(q.shape[1:])[..., None]
            f_latt = None
        else:
            # Miller indices [P, T, S, K, O, 3] for O orientations (phi steps × domains)
            hkl = (q.movedim(0, -1) @ p.miller_matrix).unflatten(-1, (-1, 3))
            hkl0 = nearest_index(hkl.detach())
            f_latt = lattice_factor(self.crystal.config.shape, hkl - hkl0, p.n_cells, self.crystal.config.fudge,
                                    p.reciprocal_A)
            f_cell, interpolation_off = self._structure_factor(hkl, hkl0, p, interpolation_off)
            term = (f_cell * f_latt) ** 2
        if kept is not None:
            term = term * kept[..., None]
        if quirks:
            return self._combine_c(term, f_latt, kept, omega, polar, capture, p), interpolation_off
        return self._combine(term, omega, polar, capture, kept, p), interpolation_off

    def _capture_fraction(self, diffracted: torch.Tensor, p: PreparedRun) -> torch.Tensor:
        """Fraction of photons absorbed in each sensor layer, [P, T, S] (1 for no thickness), for
        the unit directions ``diffracted`` (3, P, T, S)."""
        if p.layer_spacing_m <= 0:
            if self.c_quirks and self.detector.config.oversample_thick:
                return torch.zeros(diffracted.shape[1:], dtype=self.dtype, device=self.device)
            return torch.ones(diffracted.shape[1:], dtype=self.dtype, device=self.device)
        parallax = torch.tensordot(p.geometry.odet, diffracted, dims=1)
        mu = p.attenuation_per_m
        depth = p.layer_depths_m[None, :, None]
        return (torch.exp(-depth * mu / parallax)
                - torch.exp(-(depth + p.layer_spacing_m) * mu / parallax))

    def _dmin_kept(self, q: torch.Tensor) -> Optional[torch.Tensor]:
        """1 where a source passes the resolution cut, 0 where it is skipped, [P, T, S, K] for the
        scattering vectors ``q`` (3, P, T, S, K); None if no cut."""
        dmin_m = self.beam_config.dmin_A * 1e-10
        if dmin_m <= 0:
            return None
        stol = _length(q.detach()) / 2
        skipped = (stol > 0) & (dmin_m > 1.0 / (2 * stol))
        return (~skipped).to(self.dtype)

    def _structure_factor(self, hkl: torch.Tensor, hkl0: torch.Tensor, p: PreparedRun,
                          interpolation_off: bool) -> Tuple[torch.Tensor, bool]:
        """Amplitudes (nearest or interpolated), and the C interpolation switch-off state after them."""
        factors = p.structure_factors
        nearest = factors.nearest(hkl0)
        if not p.interpolate:
            return nearest, interpolation_off
        valid = factors.interpolation_valid(hkl.detach())
        if self.c_quirks:
            valid, interpolation_off = _c_interpolation_shutoff(valid, interpolation_off)
        if not bool(valid.any()):
            return nearest, interpolation_off
        return torch.where(valid, factors.tricubic(hkl), nearest), interpolation_off

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

    def _combine(self, term, omega, polar, capture, kept, p: PreparedRun) -> torch.Tensor:
        """Intended physics: each factor multiplies its own terms; per-pixel factors from the
        first sub-pixel unless the oversample flag asks for every sub-pixel."""
        cfg = self.detector.config
        weight = capture if cfg.oversample_thick else capture[:, :, :1].expand_as(capture)
        if cfg.oversample_omega:
            weight = weight * omega
        per_source = _sum_over(term, (-1,))
        if cfg.oversample_polar:
            per_source = per_source * polar
        total = _sum_over(_sum_over(per_source, (-1,)) * weight, (-1, -2))
        if not cfg.oversample_omega:
            total = total * omega[:, 0, 0]
        first_polar = self._first_source(polar, kept)
        if not cfg.oversample_polar:
            total = total * first_polar
        if self.beam_config.water_size_um > 0:
            total = total + p.water_background * omega[:, 0, 0] * first_polar * capture[:, :, 0].sum(-1)
        return total

    def _combine_c(self, term, f_latt, kept, omega, polar, capture, p: PreparedRun) -> torch.Tensor:
        """nanoBragg C's accumulation, quirks included: with an ``oversample_*`` flag, the whole
        running sum (water background included) is multiplied by the flagged factors after every
        term that is not skipped (the factors compound); the other factors multiply at the end,
        the capture fraction of the last layer only."""
        cfg = self.detector.config
        flagged = cfg.oversample_omega or cfg.oversample_polar or cfg.oversample_thick
        background = p.water_background
        if not flagged:
            total = _sum_over(term, (-1, -2, -3, -4)) + background
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


def _length(vectors: torch.Tensor) -> torch.Tensor:
    """Euclidean length of vectors held components first, (3, ...) -> (...)."""
    return (vectors * vectors).sum(0).sqrt()


def _sum_over(x: torch.Tensor, dims: Tuple[int, ...]) -> torch.Tensor:
    """``x.sum(dims)``, as a view when every summed axis has length 1 (a reduction over such
    axes costs as much as a full pass over ``x``)."""
    if all(x.shape[d] == 1 for d in dims):
        return x.squeeze(dims)
    return x.sum(dims)


def _curve(position: torch.Tensor, geometry: DetectorGeometry) -> torch.Tensor:
    """Curved detector: every pixel at ``distance`` from the sample. As nanoBragg, ``distance ·
    beam`` is turned about the slow axis by the lab y component of the flat position over the
    distance, then about the fast axis by its z component over the distance."""
    start = geometry.distance_m * geometry.beam
    about_s = rotation_about_axis(geometry.sdet.expand(position.shape), position[..., 1] / geometry.distance_m)
    rotated = (about_s @ start[:, None]).squeeze(-1)
    about_f = rotation_about_axis(geometry.fdet.expand(position.shape), position[..., 2] / geometry.distance_m)
    return (about_f @ rotated[..., None]).squeeze(-1)


def _c_interpolation_shutoff(valid: torch.Tensor, switched_off: bool) -> Tuple[torch.Tensor, bool]:
    """C turns interpolation off for the rest of the run at the first out-of-range lookup, in
    traversal order (the order of ``valid``'s elements). Returns the lookups still interpolated
    and whether the switch-off has happened."""
    if switched_off:
        return torch.zeros_like(valid), True
    flat = valid.reshape(-1)
    invalid = (~flat).nonzero()
    if invalid.numel() == 0:
        return valid, False
    order = torch.arange(flat.numel(), device=flat.device)
    return (flat & (order < int(invalid[0]))).reshape(valid.shape), True


def _requires_grad(value) -> bool:
    """Whether a tensor, a StructureFactors or any tensor field of a dataclass needs a gradient."""
    if isinstance(value, torch.Tensor):
        return value.requires_grad
    if isinstance(value, StructureFactors):
        return value.requires_grad
    if is_dataclass(value):
        return any(_requires_grad(getattr(value, field.name)) for field in fields(value))
    return False


def _common(name: str, crystal_value: T, detector_value: T, requested: Optional[T], same: Callable[[T, T], bool]) -> T:
    """The one device (or dtype) of a simulation: the crystal's and the detector's, which must agree,
    and the simulator's argument, which must agree with them when given."""
    if not same(crystal_value, detector_value):
        raise ValueError(f"the crystal's {name} is {crystal_value} but the detector's is {detector_value}: "
                         f"build Crystal and Detector with the same {name}=")
    if requested is not None and not same(requested, crystal_value):
        raise ValueError(f"Simulator({name}={requested}) but the crystal and detector have {name} {crystal_value}: "
                         f"leave {name} out (it follows them) or build them with {name}={requested}")
    return crystal_value

