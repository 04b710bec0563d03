"""What a render needs, computed once from the configurations: :class:`PreparedRun`.

:meth:`nanobrag_torch.simulator.Simulator.prepare` plans a run into a :class:`PreparedRun`;
:func:`nanobrag_torch.render.render` renders from it and reads nothing else: no configuration
object, no model. Its tensors may carry gradients; its :class:`RenderOptions` are the
run's discrete choices, nanoBragg C's quirks switch among them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass
from typing import Optional, Tuple

import torch

from .config import CrystalShape
from .layout import PixelLayout
from .structure_factors import StructureFactors

MAX_KEPT_BYTES = 1 << 30
"""The most memory (1 GiB) that the chunks of a run may keep for its backward pass; beyond it,
they are recomputed in the backward pass instead (about one more forward pass of time)."""

KEPT_NUMBERS_PER_EVALUATION = 8
"""Numbers a chunk that is not recomputed keeps per sub-pixel, layer and source: the
scattering vector that the fused kernel's backward reads (3), and the solid angle,
polarization and capture factors that the sum is multiplied by."""

FUSED_KERNEL_INPUTS = frozenset({"cell_vectors_m", "n_cells", "structure_factors"})
"""Fields of :class:`PreparedRun` that the fused kernel differentiates itself: its backward
keeps only its inputs, so their gradients alone never call for recomputing chunks."""

APPLIED_AFTER_CHUNKS = frozenset({"photon_scale"})
"""Fields of :class:`PreparedRun` that multiply the rendered chunks afterwards: no chunk keeps
anything for their gradients."""


@dataclass(frozen=True)
class RenderOptions:
    """The discrete choices of a run.

    Attributes
    ----------
    shape : CrystalShape
        Crystal shape of the lattice factor.
    fudge : float
        Width factor of the ROUND, GAUSS and TOPHAT shapes.
    curved_detector, point_pixel : bool
        Every pixel at the same distance from the sample; solid angle ``1/R²``.
    oversample_omega, oversample_polar, oversample_thick : bool
        Solid angle, polarization and capture fraction for every sub-pixel, not once per pixel.
    nopolar : bool
        No polarization correction.
    dmin_m : float
        Resolution cut (0: none).
    water : bool
        Whether a water background is added.
    interpolate : bool
        Tricubic interpolation of the amplitudes.
    fused : bool
        Whether the fused kernel (``nanobrag_torch.kernels.bragg_sum``) computes the Bragg sum.
    c_quirks : bool
        Reproduce nanoBragg C's quirks (``nanobrag_torch.c_quirks``) instead of the intended
        physics: the one switch, set by the ``nanobragg`` command.
    """

    shape: CrystalShape
    fudge: float
    curved_detector: bool
    point_pixel: bool
    oversample_omega: bool
    oversample_polar: bool
    oversample_thick: bool
    nopolar: bool
    dmin_m: float
    water: bool
    interpolate: bool
    fused: bool
    c_quirks: bool


@dataclass(frozen=True)
class PanelPlanes:
    """The detector's panels as planes in the lab frame, stacked along the first axis.

    Attributes
    ----------
    origin_m : tensor (n_panels, 3)
        Lab position of the outer corner of pixel (0, 0) of every panel.
    fast, slow, normal : tensor (n_panels, 3)
        Unit fast axis, slow axis and normal.
    pixel_size_m : tensor (n_panels,)
        Pixel edge.
    close_distance_m : tensor (n_panels,)
        Perpendicular distance of every panel's plane from the sample.
    distance_m : tensor (n_panels,)
        Every panel's distance along the beam as nanoBragg recomputes it (the panel's
        ``DetectorGeometry.distance_m``): the radius of a curved detector.
    """

    origin_m: torch.Tensor
    fast: torch.Tensor
    slow: torch.Tensor
    normal: torch.Tensor
    pixel_size_m: torch.Tensor
    close_distance_m: torch.Tensor
    distance_m: torch.Tensor

    @classmethod
    def of(cls, geometries) -> "PanelPlanes":
        """The planes of the panels whose geometries are given.

        Parameters
        ----------
        geometries : sequence of DetectorGeometry
            Every panel's geometry (:meth:`Detector.geometry
            <nanobrag_torch.models.detector.Detector.geometry>`), in panel order.

        Returns
        -------
        PanelPlanes
        """
        return cls(origin_m=torch.stack([g.pix0_m for g in geometries]),
                   fast=torch.stack([g.fdet for g in geometries]), slow=torch.stack([g.sdet for g in geometries]),
                   normal=torch.stack([g.odet for g in geometries]),
                   pixel_size_m=torch.stack([g.pixel_size_m for g in geometries]),
                   close_distance_m=torch.stack([g.close_distance_m for g in geometries]),
                   distance_m=torch.stack([g.distance_m for g in geometries]))


@dataclass(frozen=True)
class PreparedRun:
    """Everything a run computes from the configurations before rendering, each item once.

    :meth:`Simulator.prepare <nanobrag_torch.simulator.Simulator.prepare>` returns it and
    :func:`~nanobrag_torch.render.render` renders from it alone. It is not cached: a config
    field that is a tensor may change between runs.

    Attributes
    ----------
    layout : PixelLayout
        The detector's panels and the numbering of their pixels.
    regions : tuple of (fmin, fmax, smin, smax)
        Every panel's region of interest, clipped to it; a whole image renders the pixels
        inside them that are not masked
        (:meth:`~nanobrag_torch.layout.PixelLayout.selected_pixels`).
    pixel_mask : tensor (total,) of bool, or None
        False where a pixel is masked; None without a mask.
    panels : PanelPlanes
        Where every panel is: everything the render needs of the detector's geometry (the
        quantities nanoBragg reports are :meth:`Detector.geometries
        <nanobrag_torch.models.detector.Detector.geometries>`).
    beam : tensor (3,)
        Unit propagation direction of the beam, which all panels share.
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
    layer_attenuation_lengths : float
        Depth of one layer in attenuation lengths (``μ · layer_spacing_m``).
    cell_vectors_m : tensor (phi_steps, mosaic_domains, 3, 3)
        Real-space vectors of every orientation: ``cell_vectors_m[k, d]`` holds the rows a, b, c
        (m) of mosaic domain ``d`` at phi step ``k``. Everything that depends on the layout of
        the orientations reads it from here (:attr:`miller_matrix` flattens it).
    n_cells : tensor (3,)
        Na, Nb, Nc.
    reciprocal_A : tensor (3, 3) or None
        Rows a*, b*, c* in Å⁻¹ of the unrotated crystal (GAUSS and TOPHAT shapes only).
    structure_factors : StructureFactors
        The amplitudes, on the run's device and in its dtype.
    water_background : tensor ()
        Water background, in the units of the unscaled sum that the chunks accumulate.
    photon_scale : tensor ()
        ``r_e² · fluence / steps``: turns the unscaled sum into photons per pixel.
    steps : int
        nanoBragg's normalisation count: sources × mosaic domains × phi steps × oversample².
    options : RenderOptions
        The run's discrete choices.
    origin : object
        The simulator that prepared the run, as an opaque token: a simulator renders only the
        runs it prepared.
    """

    layout: PixelLayout
    regions: Tuple[Tuple[int, int, int, int], ...]
    pixel_mask: Optional[torch.Tensor]
    panels: PanelPlanes
    beam: torch.Tensor
    incident: torch.Tensor
    wavelength_m: torch.Tensor
    polarization_axis: torch.Tensor
    kahn_factor: torch.Tensor
    oversample: int
    subpixel_offsets: torch.Tensor
    layer_depths_m: torch.Tensor
    layer_spacing_m: float
    layer_attenuation_lengths: float
    cell_vectors_m: torch.Tensor
    n_cells: torch.Tensor
    reciprocal_A: Optional[torch.Tensor]
    structure_factors: StructureFactors
    water_background: torch.Tensor
    photon_scale: torch.Tensor
    steps: int
    options: RenderOptions
    origin: object = None

    @property
    def fused(self) -> bool:
        """Whether the fused kernel computes the Bragg sum (:attr:`RenderOptions.fused`)."""
        return self.options.fused

    @property
    def interpolate(self) -> bool:
        """Whether amplitudes are interpolated (:attr:`RenderOptions.interpolate`)."""
        return self.options.interpolate

    @property
    def miller_matrix(self) -> torch.Tensor:
        """(3, 3 · orientations): :attr:`cell_vectors_m` as columns, phi step by phi step and
        within each step domain by domain, so that ``q @ miller_matrix`` gives h, k, l of every
        orientation for scattering vectors ``q`` (..., 3) in 1/m."""
        return self.cell_vectors_m.reshape(-1, 3).transpose(0, 1)

    @property
    def n_sources(self) -> int:
        """Number of sources (divergence points × wavelengths, or the explicit list)."""
        return int(self.incident.shape[0])

    @property
    def device(self) -> torch.device:
        """Device of the run's tensors."""
        return self.incident.device

    @property
    def dtype(self) -> torch.dtype:
        """Floating type of the run's tensors and of its image."""
        return self.incident.dtype

    def recomputes_chunks(self, pixels: int = 0) -> bool:
        """Whether a run that needs gradients recomputes each chunk in the backward pass instead
        of keeping its intermediates: when any field needs a gradient, except the
        ``APPLIED_AFTER_CHUNKS`` and, when the fused kernel is used, the
        ``FUSED_KERNEL_INPUTS``; and, when only those do,
        when what the chunks of ``pixels`` pixels would keep exceeds ``MAX_KEPT_BYTES`` (1 GiB).

        Parameters
        ----------
        pixels : int
            Number of pixels the run renders.

        Returns
        -------
        bool
            True when the chunks are recomputed.
        """
        exempt = (FUSED_KERNEL_INPUTS if self.fused else frozenset()) | APPLIED_AFTER_CHUNKS
        needing = [field.name for field in fields(self) if _requires_grad(getattr(self, field.name))]
        if any(name not in exempt for name in needing):
            return True
        return bool(needing) and pixels * self.kept_bytes_per_pixel() > MAX_KEPT_BYTES

    def kept_bytes_per_pixel(self) -> int:
        """Bytes a chunk that is not recomputed keeps per pixel for the backward pass: about
        ``KEPT_NUMBERS_PER_EVALUATION`` (8) numbers per sub-pixel, sensor layer and source.

        Returns
        -------
        int
            Bytes per pixel.
        """
        evaluations = self.subpixel_offsets.shape[0] * self.layer_depths_m.shape[0] * self.n_sources
        return evaluations * KEPT_NUMBERS_PER_EVALUATION * self.subpixel_offsets.element_size()


def _requires_grad(value) -> bool:
    """Whether a tensor, a StructureFactors or any tensor field of a dataclass needs a gradient."""
    if isinstance(value, torch.Tensor):
        return value.requires_grad
    if isinstance(value, StructureFactors):
        return value.requires_grad
    if is_dataclass(value) and not isinstance(value, type):
        return any(_requires_grad(getattr(value, field.name)) for field in fields(value))
    return False
