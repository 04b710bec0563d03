"""The detector: pivots, rotations, pixel positions, sensor layers (the conventions' rules are in
:mod:`nanobrag_torch.conventions`)."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, replace
from typing import Optional, Tuple, Union

import torch

from .._docs import fill_doc
from ..config import DetectorConfig, DetectorPivot, MultiPanelDetectorConfig
from ..conventions import (CONVENTIONS, Convention, beam_center_for_point, beam_point, default_beam_center_mm,
                           detector_pivot, initial_vectors)
from ..geometry import as_tensor, dot, rotation_about_axis, rotation_xyz, unit
from ..layout import PixelLayout, roi_bounds


@dataclass
class DetectorGeometry:
    """Where the detector is, in SI units, with the derived quantities nanoBragg reports.

    Attributes
    ----------
    pix0_m : tensor (3,)
        Lab position of the outer corner of pixel (0, 0).
    pixel_size_m : tensor ()
        Pixel edge.
    fdet, sdet, odet, beam : tensor (3,)
        Unit fast axis, slow axis, detector normal and beam propagation direction.
    distance_m, close_distance_m : tensor ()
        Distance along the beam (as nanoBragg recomputes it, ignoring two-theta) and the
        perpendicular distance of the detector plane.
    Fbeam_m, Sbeam_m, Fclose_m, Sclose_m : tensor ()
        Beam centre and near point on the detector, measured along fast and slow. The beam
        centre is nanoBragg's recomputed one, which ignores two-theta: with a two-theta
        swing it is not where the beam meets the detector plane.
    orgx_px, orgy_px : tensor ()
        XDS origin in pixels.
    dials_origin_mm : tensor (3,)
        DIALS origin.
    pivot : DetectorPivot
        The pivot the detector was placed with (configured, or the convention's).
    """

    pix0_m: torch.Tensor
    pixel_size_m: torch.Tensor
    fdet: torch.Tensor
    sdet: torch.Tensor
    odet: torch.Tensor
    beam: torch.Tensor
    distance_m: torch.Tensor
    close_distance_m: torch.Tensor
    Fbeam_m: torch.Tensor
    Sbeam_m: torch.Tensor
    Fclose_m: torch.Tensor
    Sclose_m: torch.Tensor
    orgx_px: torch.Tensor
    orgy_px: torch.Tensor
    dials_origin_mm: torch.Tensor
    pivot: DetectorPivot


@dataclass(frozen=True)
class _Placement:
    """A panel on its way to a :class:`DetectorGeometry`: corner, axes (fast, slow, normal),
    beam, pixel edge, nanoBragg's ``ratio`` (beam · normal before two-theta) and pivot."""

    pix0: torch.Tensor
    axes: Tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    beam: torch.Tensor
    pixel: torch.Tensor
    ratio: torch.Tensor
    pivot: DetectorPivot

    def geometry(self) -> DetectorGeometry:
        """The geometry with nanoBragg's derived quantities."""
        pix0, (fdet, sdet, odet), beam, pixel, ratio = self.pix0, self.axes, self.beam, self.pixel, self.ratio
        fclose_out, sclose_out = -dot(pix0, fdet), -dot(pix0, sdet)
        close_out = dot(pix0, odet)
        to_beam = (close_out / ratio) * beam - pix0
        return DetectorGeometry(
            pix0_m=pix0, pixel_size_m=pixel, fdet=fdet, sdet=sdet, odet=odet, beam=beam,
            distance_m=close_out / ratio, close_distance_m=close_out,
            Fbeam_m=dot(to_beam, fdet), Sbeam_m=dot(to_beam, sdet),
            Fclose_m=fclose_out, Sclose_m=sclose_out,
            orgx_px=fclose_out / pixel + 0.5, orgy_px=sclose_out / pixel + 0.5,
            dials_origin_mm=1000 * torch.stack([pix0[2], pix0[1], -pix0[0]]),
            pivot=self.pivot,
        )


@fill_doc
class Detector:
    """A detector built from a :class:`~nanobrag_torch.config.DetectorConfig` (one panel) or a
    :class:`~nanobrag_torch.config.MultiPanelDetectorConfig` (several).

    Parameters
    ----------
    config : DetectorConfig or MultiPanelDetectorConfig
        Convention, pixels, distance, beam centre, rotations, sensor, ROI and mask of every
        panel, and the panel groups.
    %(device)s
    %(dtype)s
    """

    def __init__(self, config: Union[DetectorConfig, MultiPanelDetectorConfig], *,
                 device: Optional[torch.device] = None, dtype: Optional[torch.dtype] = None):
        self.config = config
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.dtype = dtype if dtype is not None else torch.float64

    def _t(self, value) -> torch.Tensor:
        return as_tensor(value, self.device, self.dtype)

    @property
    def panel_configs(self) -> Tuple[DetectorConfig, ...]:
        """The configuration of every panel, in panel order (one for a ``DetectorConfig``)."""
        if isinstance(self.config, MultiPanelDetectorConfig):
            return self.config.panels
        return (self.config,)

    @property
    def shared_config(self) -> DetectorConfig:
        """Panel 0's configuration: it holds the settings all panels share
        (``SHARED_PANEL_FIELDS``) and the convention whose defaults
        the beam and the crystal take."""
        return self.panel_configs[0]

    @property
    def convention(self) -> Convention:
        """The row of :data:`~nanobrag_torch.conventions.CONVENTIONS` of panel 0's convention."""
        return CONVENTIONS[self.shared_config.detector_convention]

    @property
    def pivot(self) -> DetectorPivot:
        """Panel 0's configured pivot, or its convention's."""
        return detector_pivot(self.shared_config.detector_convention, self.shared_config.detector_pivot)

    def twotheta_axis(self, panel: int = 0) -> torch.Tensor:
        """Unit two-theta axis of a panel (the configured one, else its convention's).

        Parameters
        ----------
        panel : int
            The panel.

        Returns
        -------
        tensor (3,)
        """
        cfg = self.panel_configs[panel]
        axis = cfg.twotheta_axis
        return unit(self._t(axis if axis is not None else CONVENTIONS[cfg.detector_convention].twotheta_axis))

    def geometry(self) -> DetectorGeometry:
        """Position and axes of a single-panel detector after the rotations, the pivot and the
        panel's own shift and rotation.

        Computed afresh at every call (the config may hold tensors that change);
        :meth:`~nanobrag_torch.simulator.Simulator.prepare` calls :meth:`geometries` once per
        run.

        The detector is first rotated about lab x, y and z, then swung about the two-theta
        axis. With the SAMPLE pivot, the point closest to the sample of the unrotated detector
        (at the close distance along the normal) turns with it; with the BEAM pivot, the beam
        point stays where the beam meets the detector, at the distance along the beam.

        Returns
        -------
        DetectorGeometry
            Tensors on the detector's device in its dtype, differentiable in the config's
            tensor fields.

        Raises
        ------
        ValueError
            The detector has several panels (use :meth:`geometries`), or the beam runs exactly
            parallel to the detector plane (beam · normal = 0 after the rotations), so that it
            never meets the detector: nanoBragg C divides by the smallest double instead and
            renders nonsense.
        """
        if isinstance(self.config, MultiPanelDetectorConfig):
            raise ValueError(f"Detector.geometry: the detector has {self.config.n_panels} panels; "
                             f"geometries() gives one DetectorGeometry per panel")
        return self.geometries()[0]

    def geometries(self) -> Tuple[DetectorGeometry, ...]:
        """Position and axes of every panel: each placed by its configuration as
        :meth:`geometry` describes, moved by its ``panel_rotation_deg`` and ``panel_shift_mm``,
        then by its groups' ``group_rotation_deg`` and ``group_shift_mm`` in the order of the
        groups.

        Returns
        -------
        tuple of DetectorGeometry
            One per panel, in panel order; differentiable in the configs' tensor fields.

        Raises
        ------
        ValueError
            A panel's beam runs parallel to its plane (see :meth:`geometry`).
        """
        placed = []
        for panel, cfg in enumerate(self.panel_configs):
            placement = self._placed(panel, cfg)
            placed.append(self._moved(placement, self._centre(placement, cfg), placement.axes,
                                      cfg.panel_rotation_deg, cfg.panel_shift_mm))
        if isinstance(self.config, MultiPanelDetectorConfig):
            cfg = self.config
            for g, group in enumerate(cfg.groups):
                rotation = cfg.group_rotation_deg[g] if cfg.group_rotation_deg else (0.0, 0.0, 0.0)
                shift = cfg.group_shift_mm[g] if cfg.group_shift_mm else (0.0, 0.0, 0.0)
                centre = torch.stack([self._centre(placed[i], self.panel_configs[i]) for i in group]).mean(0)
                axes = placed[group[0]].axes
                for i in group:
                    placed[i] = self._moved(placed[i], centre, axes, rotation, shift)
        return tuple(placement.geometry() for placement in placed)

    def _placed(self, panel: int, cfg: DetectorConfig) -> "_Placement":
        """A panel placed by its configuration's distance, beam centre, rotations and pivot."""
        beam, fdet0, sdet0, odet0 = (unit(self._t(v)) for v in initial_vectors(cfg))
        angles = [self._t(v) * (math.pi / 180.0)
                  for v in (cfg.detector_rotx_deg, cfg.detector_roty_deg, cfg.detector_rotz_deg)]
        rotation = rotation_xyz(angles)
        twotheta = rotation_about_axis(self.twotheta_axis(panel),
                                       self._t(cfg.detector_twotheta_deg) * (math.pi / 180.0))
        full = twotheta @ rotation
        ratio = dot(beam, rotation @ odet0)
        if bool(ratio == 0):
            where = "DetectorConfig" if panel == 0 and not isinstance(self.config, MultiPanelDetectorConfig) \
                else f"MultiPanelDetectorConfig.panels[{panel}]"
            raise ValueError(f"{where}: the beam runs parallel to the detector plane (beam . normal = 0 after "
                             "detector_rotx/y/z_deg): it never meets the detector; check the beam and detector "
                             "vectors and rotations")
        if cfg.close_distance_mm is not None:
            close_distance = self._t(cfg.close_distance_mm) * 1e-3
        else:
            close_distance = (ratio * self._t(cfg.distance_mm) * 1e-3).abs()
        distance = close_distance / ratio
        pixel = self._t(cfg.pixel_size_mm) * 1e-3
        centre = [self._t(value) * 1e-3 for value in _beam_center_mm(cfg)]
        along_fast, along_slow = beam_point(cfg.detector_convention, *centre, pixel, cfg.fpixels, cfg.spixels)
        fdet, sdet, odet = full @ fdet0, full @ sdet0, full @ odet0
        pivot = detector_pivot(cfg.detector_convention, cfg.detector_pivot)
        if cfg.pix0_override_m is not None:
            pix0 = self._t(list(cfg.pix0_override_m))
        elif pivot is DetectorPivot.SAMPLE:
            pix0 = full @ (-along_fast * fdet0 - along_slow * sdet0 + close_distance * odet0)
        else:
            pix0 = -along_fast * fdet - along_slow * sdet + distance * beam
        return _Placement(pix0, (fdet, sdet, odet), beam, pixel, ratio, pivot)

    @staticmethod
    def _centre(placement: "_Placement", cfg: DetectorConfig) -> torch.Tensor:
        """Lab position of the centre of a panel's pixel area."""
        fdet, sdet, _ = placement.axes
        return placement.pix0 + placement.pixel * (0.5 * cfg.fpixels * fdet + 0.5 * cfg.spixels * sdet)

    def _moved(self, placement: "_Placement", centre: torch.Tensor, axes: Tuple[torch.Tensor, ...],
               rotation_deg, shift_mm) -> "_Placement":
        """``placement`` turned about ``axes`` (first, second, third in turn) through ``centre``
        by ``rotation_deg``, then moved along them by ``shift_mm``; as it is when both are zeros
        that are not tensors (so that an unmoved panel stays bit for bit where it was placed)."""
        if not _moves(shift_mm, rotation_deg):
            return placement
        turn = torch.eye(3, dtype=self.dtype, device=self.device)
        for axis, angle in zip(axes, rotation_deg):
            turn = rotation_about_axis(axis, self._t(angle) * (math.pi / 180.0)) @ turn
        shift = sum(self._t(d) * 1e-3 * axis for d, axis in zip(shift_mm, axes))
        pix0 = centre + turn @ (placement.pix0 - centre) + shift
        return replace(placement, pix0=pix0, axes=tuple(turn @ axis for axis in placement.axes))

    def layer_spacing_m(self) -> float:
        """Depth of one sensor layer in metres (0 for an ideal detector).

        Returns
        -------
        float
        """
        cfg = self.shared_config
        return cfg.detector_thick_um * 1e-6 / cfg.detector_thicksteps

    def layer_attenuation_lengths(self) -> float:
        """Depth of one sensor layer in attenuation lengths, ``μ · spacing`` (0 when the sensor
        has no thickness). Computed as a ratio of the two depths in µm, so that it stays finite
        for any thickness (``μ`` alone overflows for a sensor thinner than about 1e-302 µm).

        Returns
        -------
        float
        """
        cfg = self.shared_config
        if cfg.detector_thick_um <= 0:
            return 0.0
        depth_um = cfg.detector_abs_um if cfg.detector_abs_um is not None else cfg.detector_thick_um
        return cfg.detector_thick_um / cfg.detector_thicksteps / depth_um

    @property
    def layout(self) -> PixelLayout:
        """How the detector's pixels are addressed: one entry ``(spixels, fpixels)`` per panel."""
        return PixelLayout(tuple((cfg.spixels, cfg.fpixels) for cfg in self.panel_configs))

    def regions(self) -> Tuple[Tuple[int, int, int, int], ...]:
        """Every panel's region of interest, clipped to it (the whole panel without an ROI).

        Returns
        -------
        tuple of (fmin, fmax, smin, smax)
            Inclusive pixel bounds, one per panel.
        """
        return tuple(roi_bounds(cfg.roi, cfg.fpixels, cfg.spixels) for cfg in self.panel_configs)

    def pixel_mask(self) -> Optional[torch.Tensor]:
        """The configured masks as one flat tensor (total,) of bool, panel by panel, False where
        a pixel is masked (a panel without a mask masks none), on the detector's device; None
        when no panel has a mask.

        Returns
        -------
        tensor (total,) of bool, or None
        """
        configs = self.panel_configs
        if all(cfg.mask is None for cfg in configs):
            return None
        return torch.cat([torch.as_tensor(cfg.mask, device=self.device).reshape(-1) != 0 if cfg.mask is not None
                          else torch.ones(cfg.spixels * cfg.fpixels, dtype=torch.bool, device=self.device)
                          for cfg in configs])

    def rendered_pixels(self) -> torch.Tensor:
        """Flat indices (:class:`~nanobrag_torch.layout.PixelLayout`) of the pixels inside the
        ROI and not masked, in nanoBragg's traversal order (panel by panel, slow outer, fast
        inner), by :meth:`~nanobrag_torch.layout.PixelLayout.selected_pixels`.

        Returns
        -------
        tensor (n,) of int64
        """
        return self.layout.selected_pixels(self.regions(), self.pixel_mask(), self.device)


def _moves(shift_mm, rotation_deg) -> bool:
    """Whether a shift and a rotation move anything: a value that is a tensor (it may carry a
    gradient) or a number other than 0."""
    return any(isinstance(v, torch.Tensor) or v != 0 for v in (*shift_mm, *rotation_deg))


def _beam_center_mm(config: DetectorConfig) -> Tuple:
    """The configured beam centre (fast, slow) in mm, each component the convention's default
    (:func:`~nanobrag_torch.conventions.default_beam_center_mm`) when not given."""
    default = default_beam_center_mm(config.detector_convention, config.pixel_size_mm, config.fpixels,
                                     config.spixels)
    return tuple(value if value is not None else fallback
                 for value, fallback in zip((config.beam_center_f, config.beam_center_s), default))


def detector_region(config: DetectorConfig, fast0: int, slow0: int, fast_pixels: int,
                    slow_pixels: int) -> DetectorConfig:
    """A rectangle of a detector's pixels as a detector of its own.

    The region holds the pixels ``[fast0, fast0 + fast_pixels)`` along the fast axis and
    ``[slow0, slow0 + slow_pixels)`` along the slow axis. Each of them is the same pixel of the
    full detector, at the same place in the laboratory, so the region's image is the full
    image's crop: a cheaper target for a refinement, or a detector panel. The beam centre is
    moved by the region's offset (so it stays a parameter to refine; tensors keep their
    gradients), a ``pix0_override_m`` along the detector's axes, and the ROI and the mask are
    cut to the region.

    Parameters
    ----------
    config : DetectorConfig
        The full detector.
    fast0, slow0 : int
        The full detector's pixel that is the region's pixel (0, 0).
    fast_pixels, slow_pixels : int
        The region's size in pixels.

    Returns
    -------
    DetectorConfig
        A copy of ``config`` for the region.

    Raises
    ------
    ValueError
        The rectangle does not lie on the detector, or it lies outside the ROI, or the detector
        is moved by ``panel_shift_mm`` or ``panel_rotation_deg`` (about the centre of all its
        pixels, which is not the region's).
    """
    for axis, start, count, total in (("fast", fast0, fast_pixels, config.fpixels),
                                      ("slow", slow0, slow_pixels, config.spixels)):
        if not all(isinstance(n, numbers.Integral) and not isinstance(n, bool) for n in (start, count)):
            raise ValueError(f"detector_region: {axis}0 and {axis}_pixels must be integers, got {start!r} and {count!r}")
        if not (0 <= start and 1 <= count and start + count <= total):
            raise ValueError(f"detector_region: {axis} pixels {start} to {start + count - 1} are not on the "
                             f"detector's {total} {axis} pixels (0 to {total - 1})")
    if _moves(config.panel_shift_mm, config.panel_rotation_deg):
        raise ValueError(f"detector_region: the detector is moved (panel_shift_mm = {config.panel_shift_mm}, "
                         f"panel_rotation_deg = {config.panel_rotation_deg}), about the centre of all its pixels; "
                         f"cut the region from the unmoved detector and move the region")
    fast0, slow0, fast_pixels, slow_pixels = int(fast0), int(slow0), int(fast_pixels), int(slow_pixels)
    convention, pixel_mm = config.detector_convention, config.pixel_size_mm
    along_fast, along_slow = beam_point(convention, *_beam_center_mm(config), pixel_mm, config.fpixels, config.spixels)
    beam_center_f, beam_center_s = beam_center_for_point(convention, along_fast - fast0 * pixel_mm,
                                                         along_slow - slow0 * pixel_mm, pixel_mm,
                                                         fast_pixels, slow_pixels)
    changes = dict(fpixels=fast_pixels, spixels=slow_pixels, beam_center_f=beam_center_f, beam_center_s=beam_center_s)
    if config.pix0_override_m is not None:
        geometry = Detector(config).geometry()
        pix0_m = geometry.pix0_m + geometry.pixel_size_m * (fast0 * geometry.fdet + slow0 * geometry.sdet)
        changes["pix0_override_m"] = tuple(pix0_m.unbind() if pix0_m.requires_grad else pix0_m.tolist())
    if config.roi is not None:
        fmin, fmax, smin, smax = config.roi
        roi = (max(fmin - fast0, 0), min(fmax - fast0, fast_pixels - 1),
               max(smin - slow0, 0), min(smax - slow0, slow_pixels - 1))
        if roi[0] > roi[1] or roi[2] > roi[3]:
            raise ValueError(f"detector_region: the region's pixels (fast {fast0} to {fast0 + fast_pixels - 1}, slow "
                             f"{slow0} to {slow0 + slow_pixels - 1}) lie outside the ROI {config.roi}")
        changes["roi"] = roi
    if config.mask is not None:
        changes["mask"] = config.mask[slow0:slow0 + slow_pixels, fast0:fast0 + fast_pixels]
    return replace(config, **changes)
