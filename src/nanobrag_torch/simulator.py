"""The simulator: plans a run of nanoBragg's sum over sub-pixels, sensor layers, sources, phi
steps and mosaic domains, and renders it.

:meth:`Simulator.prepare` plans: it computes, once, everything a run needs from the
configurations (the detector's panels, the sources, the rotated crystal, the structure factors
and the run's discrete choices) into a :class:`~nanobrag_torch.prepared.PreparedRun`.
:meth:`Simulator.run` renders it with :func:`nanobrag_torch.render.render`, which executes it in
chunks of pixels (memory, recomputation in the backward pass, progress), each chunk one pure
tensor function of the prepared tensors (:mod:`nanobrag_torch.pixel_physics`), so the image is
differentiable in every continuous parameter.
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Sequence, TypeVar

import torch

from . import c_quirks as quirks
from ._docs import fill_doc
from .config import MAX_OVERSAMPLE, BeamConfig, ConfigError, CrystalShape
from .constants import AVOGADRO_PER_MOL, R_E_SQR_M2, WATER_F, WATER_MOLAR_MASS_G
from .geometry import as_tensor, same_device, unit
from .models.beam import Beam
from .models.crystal import Crystal
from .models.detector import Detector, DetectorGeometry
from .prepared import PanelPlanes, PreparedRun, RenderOptions
from .render import render
from .structure_factors import StructureFactors

T = TypeVar("T")


class Simulator:
    """Render the diffraction image of a crystal on a detector.

    Parameters
    ----------
    crystal : Crystal
        The crystal: cell, orientation, mosaic domains, size and structure factors.
    detector : Detector
        The detector: its panels' geometry, pixels and sensor.
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
        computes the intended physics. The quirks themselves are in
        ``nanobrag_torch.c_quirks``.

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
        self._token = object()

    # ------------------------------------------------------------- prepare
    def prepare(self) -> PreparedRun:
        """Compute everything a run needs from the configurations, once.

        :meth:`run` calls it; call it yourself to look at the geometry, the sources or the
        sampling before rendering, and pass the result to :meth:`run` (or to
        :func:`nanobrag_torch.render.render`).

        Returns
        -------
        PreparedRun

        Raises
        ------
        ConfigError
            nanoBragg's automatic oversampling exceeds
            ``MAX_OVERSAMPLE`` (1000).
        """
        dev, dt = self.device, self.dtype
        crystal_cfg, detector_cfg, beam_cfg = self.crystal.config, self.detector.shared_config, self.beam_config
        convention = self.detector.convention
        geometries = self.detector.geometries()
        beam_direction = geometries[0].beam
        axis = beam_cfg.polarization_axis if beam_cfg.polarization_axis is not None else convention.polarization_axis
        polarization_axis = unit(as_tensor(axis, dev, dt))
        incident, wavelength = self.beam.sources(beam_direction, polarization_axis)
        spindle = crystal_cfg.spindle_axis if crystal_cfg.spindle_axis is not None else convention.spindle_axis
        phi_rad = self.crystal.phi_angles_rad()
        if self.c_quirks:
            phi_rad = quirks.phi_carry_over(phi_rad)
        vectors = self.crystal.rotated_real_vectors_m(as_tensor(spindle, dev, dt), phi_rad)
        oversample = self._oversample(geometries)
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
        fluence = as_tensor(beam_cfg.fluence_photons_per_m2, dev, dt)
        layout = self.detector.layout
        options = RenderOptions(
            shape=crystal_cfg.shape, fudge=float(crystal_cfg.fudge), curved_detector=detector_cfg.curved_detector,
            point_pixel=detector_cfg.point_pixel, oversample_omega=detector_cfg.oversample_omega,
            oversample_polar=detector_cfg.oversample_polar, oversample_thick=detector_cfg.oversample_thick,
            nopolar=beam_cfg.nopolar, dmin_m=beam_cfg.dmin_A * 1e-10, water=beam_cfg.water_size_um > 0,
            interpolate=interpolate, fused=self._fused(interpolate), c_quirks=self.c_quirks)
        return PreparedRun(
            layout=layout, regions=self.detector.regions(), pixel_mask=self.detector.pixel_mask(),
            panels=PanelPlanes.of(geometries), beam=beam_direction, incident=incident, wavelength_m=wavelength,
            polarization_axis=polarization_axis, kahn_factor=as_tensor(beam_cfg.polarization_factor, dev, dt),
            oversample=oversample,
            subpixel_offsets=torch.stack(torch.meshgrid(sub, sub, indexing="ij"), dim=-1).reshape(-1, 2),
            layer_depths_m=torch.arange(layers, device=dev, dtype=dt) * spacing, layer_spacing_m=spacing,
            layer_attenuation_lengths=self.detector.layer_attenuation_lengths(), cell_vectors_m=vectors,
            n_cells=self.crystal.n_cells(), reciprocal_A=reciprocal, structure_factors=factors,
            water_background=self._water_background(steps, fluence), photon_scale=R_E_SQR_M2 * fluence / steps,
            steps=steps, options=options, origin=self._token,
        )

    def _oversample(self, geometries: Sequence[DetectorGeometry]) -> int:
        """The configured sub-pixels per pixel edge, or nanoBragg's automatic choice
        ``ceil(3 · crystal size / (λ · distance / pixel))`` (the largest over the panels), which
        must not exceed ``MAX_OVERSAMPLE`` (a ConfigError says so)."""
        configured = self.detector.shared_config.oversample
        if configured is not None:
            return int(configured)
        with torch.no_grad():
            size = float(self.crystal.size_m().max())
            wavelength = float(self.beam.wavelength_m)
            chosen = max(max(1, int(math.ceil(3 * size / (wavelength * float(g.distance_m) / float(g.pixel_size_m)))))
                         for g in geometries)
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

    def _fused(self, interpolate: bool) -> bool:
        """Whether the fused kernel computes the Bragg sum: SQUARE shape, nearest-neighbour
        structure factors (with or without a gradient), and no per-orientation C compounding."""
        cfg = self.detector.shared_config
        compounding = self.c_quirks and (cfg.oversample_omega or cfg.oversample_polar or cfg.oversample_thick)
        return (self.crystal.config.shape is CrystalShape.SQUARE and not interpolate
                and not compounding)

    def _water_background(self, steps: int, fluence: torch.Tensor) -> torch.Tensor:
        """The water background in the units of the unscaled sum (which the run multiplies by
        ``r_e² · fluence / steps``): ``F_water² · molecules · steps``, so that the image gets
        ``r_e² · fluence · F_water² · molecules``; with ``c_quirks``, C's
        (``nanobrag_torch.c_quirks.water_background``)."""
        water_m = self.beam_config.water_size_um * 1e-6
        molecules = water_m ** 3 * 1e6 * AVOGADRO_PER_MOL / WATER_MOLAR_MASS_G
        if self.c_quirks:
            return quirks.water_background(molecules, fluence)
        return torch.tensor(WATER_F ** 2 * molecules * steps, device=self.device, dtype=self.dtype)

    # ----------------------------------------------------------------- run
    @fill_doc
    def run(self, pixel_batch_size: Optional[int] = None, progress: Optional[Callable[[int, int], None]] = None,
            prepared: Optional[PreparedRun] = None, pixels: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Render the image.

        Parameters
        ----------
        %(pixel_batch_size)s
        %(render_progress)s
        prepared : PreparedRun, optional
            What this simulator's :meth:`prepare` returned, to render without computing it
            again. Default: :meth:`prepare` now.
        pixels : tensor (n,) of int, optional
            Flat indices (``slow · fpixels + fast`` on a single panel, panel after panel on
            several; see
            :class:`~nanobrag_torch.layout.PixelLayout`) of the only pixels to render, whatever
            the ROI and mask. A refinement evaluates just the pixels near the spots this way.

        Returns
        -------
        tensor (spixels, fpixels), (n_panels, spixels, fpixels), or (n,) when ``pixels`` is given
            Expected photons per pixel (nanoBragg's float image): ``(spixels, fpixels)`` for a
            ``DetectorConfig``, ``(n_panels, spixels, fpixels)`` for a
            ``MultiPanelDetectorConfig`` (its panels of one size; the
            :class:`~nanobrag_torch.layout.PixelLayout` splits a flat image of panels of
            different sizes). Pixels outside the ROI or masked are 0.

        Raises
        ------
        ValueError
            ``prepared`` was made by another simulator, or ``pixels`` is not a 1-D tensor of
            the detector's flat indices.
        """
        if prepared is None:
            prepared = self.prepare()
        elif prepared.origin is not self._token:
            raise ValueError("Simulator.run: prepared was made by another simulator's prepare(); render it with "
                             "that simulator, or with nanobrag_torch.render.render(prepared)")
        return render(prepared, pixels=pixels, pixel_batch_size=pixel_batch_size, progress=progress)


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

