"""The detector: pivots, rotations, pixel positions, sensor layers (the conventions' rules are in
:mod:`nanobrag_torch.conventions`)."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, replace
from typing import Optional, Tuple

import torch

from .._docs import fill_doc
from ..config import DetectorConfig, DetectorConvention, DetectorPivot
from ..conventions import (CONVENTIONS, Convention, beam_center_for_point, beam_point, default_beam_center_mm,
                           detector_pivot)
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


@fill_doc
class Detector:
    """A detector built from a :class:`~nanobrag_torch.config.DetectorConfig`.

    Parameters
    ----------
    config : DetectorConfig
        Convention, pixels, distance, beam centre, rotations, sensor, ROI and mask.
    %(device)s
    %(dtype)s
    """

    def __init__(self, config: DetectorConfig, *, device: Optional[torch.device] = None,
                 dtype: Optional[torch.dtype] = None):
        self.config = config
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.dtype = dtype if dtype is not None else torch.float64

    def _t(self, value) -> torch.Tensor:
        return as_tensor(value, self.device, self.dtype)

    @property
    def convention(self) -> Convention:
        """The row of :data:`~nanobrag_torch.conventions.CONVENTIONS` of the configured convention."""
        return CONVENTIONS[self.config.detector_convention]

    @property
    def pivot(self) -> DetectorPivot:
        """The configured pivot, or the convention's."""
        return detector_pivot(self.config.detector_convention, self.config.detector_pivot)

    def _initial_vectors(self) -> Tuple[torch.Tensor, ...]:
        cfg, conv = self.config, self.convention
        custom = cfg.detector_convention is DetectorConvention.CUSTOM

        def pick(user, default):
            return self._t(user if (custom and user is not None) else default)

        beam = unit(pick(cfg.custom_beam_vector, conv.beam))
        fdet = unit(pick(cfg.custom_fdet_vector, conv.fdet))
        sdet = unit(pick(cfg.custom_sdet_vector, conv.sdet))
        odet = unit(pick(cfg.custom_odet_vector, conv.odet))
        return beam, fdet, sdet, odet

    def twotheta_axis(self) -> torch.Tensor:
        """Unit two-theta axis (the configured one, else the convention's).

        Returns
        -------
        tensor (3,)
        """
        axis = self.config.twotheta_axis
        return unit(self._t(axis if axis is not None else self.convention.twotheta_axis))

    def _beam_point_m(self, pixel_m: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """The point the beam centre names, along fast and slow (see
        :func:`~nanobrag_torch.conventions.beam_point`), in metres."""
        cfg = self.config
        centre = [self._t(value) * 1e-3 for value in _beam_center_mm(cfg)]
        return beam_point(cfg.detector_convention, *centre, pixel_m, cfg.fpixels, cfg.spixels)

    def geometry(self) -> DetectorGeometry:
        """Detector position and axes after the rotations and the pivot.

        Computed afresh at every call (the config may hold tensors that change);
        :meth:`~nanobrag_torch.simulator.Simulator.prepare` calls it once per run.

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
            The beam runs exactly parallel to the detector plane (beam · normal = 0 after the
            rotations), so that it never meets the detector: nanoBragg C divides by the
            smallest double instead and renders nonsense.
        """
        cfg = self.config
        beam, fdet0, sdet0, odet0 = self._initial_vectors()
        angles = [self._t(v) * (math.pi / 180.0)
                  for v in (cfg.detector_rotx_deg, cfg.detector_roty_deg, cfg.detector_rotz_deg)]
        rotation = rotation_xyz(angles)
        twotheta = rotation_about_axis(self.twotheta_axis(), self._t(cfg.detector_twotheta_deg) * (math.pi / 180.0))
        full = twotheta @ rotation
        ratio = dot(beam, rotation @ odet0)
        if bool(ratio == 0):
            raise ValueError("DetectorConfig: the beam runs parallel to the detector plane (beam . normal = 0 after "
                             "detector_rotx/y/z_deg): it never meets the detector; check the beam and detector "
                             "vectors and rotations")
        if cfg.close_distance_mm is not None:
            close_distance = self._t(cfg.close_distance_mm) * 1e-3
        else:
            close_distance = (ratio * self._t(cfg.distance_mm) * 1e-3).abs()
        distance = close_distance / ratio
        pixel = self._t(cfg.pixel_size_mm) * 1e-3
        along_fast, along_slow = self._beam_point_m(pixel)
        fdet, sdet, odet = full @ fdet0, full @ sdet0, full @ odet0
        if cfg.pix0_override_m is not None:
            pix0 = self._t(list(cfg.pix0_override_m))
        elif self.pivot is DetectorPivot.SAMPLE:
            pix0 = full @ (-along_fast * fdet0 - along_slow * sdet0 + close_distance * odet0)
        else:
            pix0 = -along_fast * fdet - along_slow * sdet + distance * beam
        fclose_out, sclose_out = -dot(pix0, fdet), -dot(pix0, sdet)
        close_out = dot(pix0, odet)
        to_beam = (close_out / ratio) * beam - pix0
        lab = torch.eye(3, dtype=self.dtype, device=self.device)
        return DetectorGeometry(
            pix0_m=pix0, pixel_size_m=pixel, fdet=fdet, sdet=sdet, odet=odet, beam=beam,
            distance_m=close_out / ratio, close_distance_m=close_out,
            Fbeam_m=dot(to_beam, fdet), Sbeam_m=dot(to_beam, sdet),
            Fclose_m=fclose_out, Sclose_m=sclose_out,
            orgx_px=fclose_out / pixel + 0.5, orgy_px=sclose_out / pixel + 0.5,
            dials_origin_mm=1000 * torch.stack([dot(pix0, lab[2]), dot(pix0, lab[1]), -dot(pix0, lab[0])]),
            pivot=self.pivot,
        )

    def layer_spacing_m(self) -> float:
        """Depth of one sensor layer in metres (0 for an ideal detector).

        Returns
        -------
        float
        """
        return self.config.detector_thick_um * 1e-6 / self.config.detector_thicksteps

    def layer_attenuation_lengths(self) -> float:
        """Depth of one sensor layer in attenuation lengths, ``μ · spacing`` (0 when the sensor
        has no thickness). Computed as a ratio of the two depths in µm, so that it stays finite
        for any thickness (``μ`` alone overflows for a sensor thinner than about 1e-302 µm).

        Returns
        -------
        float
        """
        cfg = self.config
        if cfg.detector_thick_um <= 0:
            return 0.0
        depth_um = cfg.detector_abs_um if cfg.detector_abs_um is not None else cfg.detector_thick_um
        return cfg.detector_thick_um / cfg.detector_thicksteps / depth_um

    @property
    def layout(self) -> PixelLayout:
        """How the detector's pixels are addressed: one panel of ``(spixels, fpixels)``."""
        return PixelLayout(((self.config.spixels, self.config.fpixels),))

    def regions(self) -> Tuple[Tuple[int, int, int, int], ...]:
        """Every panel's region of interest, clipped to it (the whole panel without an ROI).

        Returns
        -------
        tuple of (fmin, fmax, smin, smax)
            Inclusive pixel bounds, one per panel.
        """
        cfg = self.config
        return (roi_bounds(cfg.roi, cfg.fpixels, cfg.spixels),)

    def pixel_mask(self) -> Optional[torch.Tensor]:
        """The configured mask as a flat tensor (total,) of bool, False where a pixel is masked,
        on the detector's device; None without a mask.

        Returns
        -------
        tensor (total,) of bool, or None
        """
        if self.config.mask is None:
            return None
        return torch.as_tensor(self.config.mask, device=self.device).reshape(-1) != 0

    def rendered_pixels(self) -> torch.Tensor:
        """Flat indices (:class:`~nanobrag_torch.layout.PixelLayout`) of the pixels inside the
        ROI and not masked, in nanoBragg's traversal order (panel by panel, slow outer, fast
        inner), by :meth:`~nanobrag_torch.layout.PixelLayout.selected_pixels`.

        Returns
        -------
        tensor (n,) of int64
        """
        return self.layout.selected_pixels(self.regions(), self.pixel_mask(), self.device)


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
        The rectangle does not lie on the detector, or it lies outside the ROI.
    """
    for axis, start, count, total in (("fast", fast0, fast_pixels, config.fpixels),
                                      ("slow", slow0, slow_pixels, config.spixels)):
        if not all(isinstance(n, numbers.Integral) and not isinstance(n, bool) for n in (start, count)):
            raise ValueError(f"detector_region: {axis}0 and {axis}_pixels must be integers, got {start!r} and {count!r}")
        if not (0 <= start and 1 <= count and start + count <= total):
            raise ValueError(f"detector_region: {axis} pixels {start} to {start + count - 1} are not on the "
                             f"detector's {total} {axis} pixels (0 to {total - 1})")
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
