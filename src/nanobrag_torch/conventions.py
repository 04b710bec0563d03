"""Detector conventions: one table row per convention, and the rules that read it.

A convention (MOSFLM, XDS, DIALS, ADXV, DENZO, CUSTOM) fixes the laboratory frame (beam,
detector fast and slow axes and normal, two-theta axis, polarization axis, spindle), the
default pivot, and how the beam centre is given. Everything that depends on the convention
reads :data:`CONVENTIONS` through the functions below: the library's
:class:`~nanobrag_torch.models.detector.Detector`, the ``nanobragg`` command and the gallery.

Positions on the detector are measured in millimetres along the fast and slow axes from the
outer corner of pixel (0, 0); the centre of pixel (fast ``i``, slow ``j``) is at
``((i + ½) · pixel, (j + ½) · pixel)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from ._docs import fill_doc
from .config import DetectorConfig, DetectorConvention, DetectorPivot, Scalar

Direction = Tuple[float, float, float]
"""A lab-frame direction (x, y, z)."""


@dataclass(frozen=True)
class Convention:
    """What one detector convention fixes.

    Attributes
    ----------
    beam, fdet, sdet, odet : tuple of 3 floats
        Unit beam propagation direction, detector fast axis, slow axis and normal of an
        unrotated detector.
    twotheta_axis, polarization_axis, spindle_axis : tuple of 3 floats
        Default two-theta axis, E-vector direction and crystal rotation axis.
    pivot : DetectorPivot
        Default pivot of the detector rotations.
    pivot_from_flags : bool
        Whether the ``nanobragg`` command takes the pivot from the pivot-setting flags (CUSTOM
        only); a named convention forces its own pivot, as nanoBragg C does.
    x_beam_along_slow : bool
        Whether C's ``Xbeam`` (and the SMV header's ``BEAM_CENTER_X``) is the coordinate along
        the slow axis, and ``Ybeam`` the one along the fast axis (MOSFLM, DENZO).
    half_pixel_added : bool
        Whether the beam point lies half a pixel further along both axes than the beam centre
        says (MOSFLM).
    from_far_edge : tuple of 2 bools
        For the fast and the slow beam-centre coordinate: whether it is measured from the far
        edge of the detector (ADXV's slow coordinate).
    default_beam_past_middle_px : float
        The default beam point lies this many pixels past the middle of the detector along both
        axes (MOSFLM 1, DENZO and ADXV ½, the others 0).
    """

    beam: Direction
    fdet: Direction
    sdet: Direction
    odet: Direction
    twotheta_axis: Direction
    polarization_axis: Direction
    spindle_axis: Direction
    pivot: DetectorPivot
    pivot_from_flags: bool
    x_beam_along_slow: bool
    half_pixel_added: bool
    from_far_edge: Tuple[bool, bool]
    default_beam_past_middle_px: float


_BEAM, _SAMPLE = DetectorPivot.BEAM, DetectorPivot.SAMPLE

CONVENTIONS: Dict[DetectorConvention, Convention] = {
    DetectorConvention.MOSFLM: Convention(
        beam=(1, 0, 0), fdet=(0, 0, 1), sdet=(0, -1, 0), odet=(1, 0, 0), twotheta_axis=(0, 0, -1),
        polarization_axis=(0, 0, 1), spindle_axis=(0, 0, 1), pivot=_BEAM, pivot_from_flags=False,
        x_beam_along_slow=True, half_pixel_added=True, from_far_edge=(False, False), default_beam_past_middle_px=1.0),
    DetectorConvention.DENZO: Convention(
        beam=(1, 0, 0), fdet=(0, 0, 1), sdet=(0, -1, 0), odet=(1, 0, 0), twotheta_axis=(0, 0, -1),
        polarization_axis=(0, 0, 1), spindle_axis=(0, 0, 1), pivot=_BEAM, pivot_from_flags=False,
        x_beam_along_slow=True, half_pixel_added=False, from_far_edge=(False, False), default_beam_past_middle_px=0.5),
    DetectorConvention.ADXV: Convention(
        beam=(0, 0, 1), fdet=(1, 0, 0), sdet=(0, -1, 0), odet=(0, 0, 1), twotheta_axis=(-1, 0, 0),
        polarization_axis=(1, 0, 0), spindle_axis=(1, 0, 0), pivot=_BEAM, pivot_from_flags=False,
        x_beam_along_slow=False, half_pixel_added=False, from_far_edge=(False, True), default_beam_past_middle_px=0.5),
    DetectorConvention.XDS: Convention(
        beam=(0, 0, 1), fdet=(1, 0, 0), sdet=(0, 1, 0), odet=(0, 0, 1), twotheta_axis=(1, 0, 0),
        polarization_axis=(1, 0, 0), spindle_axis=(1, 0, 0), pivot=_SAMPLE, pivot_from_flags=False,
        x_beam_along_slow=False, half_pixel_added=False, from_far_edge=(False, False), default_beam_past_middle_px=0.0),
    DetectorConvention.DIALS: Convention(
        beam=(0, 0, 1), fdet=(1, 0, 0), sdet=(0, 1, 0), odet=(0, 0, 1), twotheta_axis=(0, 1, 0),
        polarization_axis=(0, 1, 0), spindle_axis=(0, 1, 0), pivot=_SAMPLE, pivot_from_flags=False,
        x_beam_along_slow=False, half_pixel_added=False, from_far_edge=(False, False), default_beam_past_middle_px=0.0),
    DetectorConvention.CUSTOM: Convention(
        beam=(1, 0, 0), fdet=(0, 0, 1), sdet=(0, -1, 0), odet=(1, 0, 0), twotheta_axis=(0, 1, 0),
        polarization_axis=(0, 0, 1), spindle_axis=(0, 0, 1), pivot=_BEAM, pivot_from_flags=True,
        x_beam_along_slow=False, half_pixel_added=False, from_far_edge=(False, False), default_beam_past_middle_px=0.0),
}
"""Every convention's row. CUSTOM starts from its row and replaces the vectors the user gives;
its default two-theta axis is +y, not MOSFLM's −z."""


def initial_vectors(config: DetectorConfig) -> Tuple:
    """The beam direction and the axes of a detector before its rotations: the convention's, or
    for CUSTOM the vectors given (each the convention's row where not given); not normalised.

    Parameters
    ----------
    config : DetectorConfig
        The detector's configuration.

    Returns
    -------
    beam, fdet, sdet, odet : sequences of 3 numbers
        Beam propagation direction, fast axis, slow axis and normal.
    """
    row = CONVENTIONS[config.detector_convention]
    custom = config.detector_convention is DetectorConvention.CUSTOM

    def pick(given, default):
        return given if (custom and given is not None) else default

    return (pick(config.custom_beam_vector, row.beam), pick(config.custom_fdet_vector, row.fdet),
            pick(config.custom_sdet_vector, row.sdet), pick(config.custom_odet_vector, row.odet))


# ----------------------------------------------------------------------------- pivot
@fill_doc
def detector_pivot(convention: DetectorConvention, requested: Optional[DetectorPivot]) -> DetectorPivot:
    """The pivot of the library's detector: the requested one, else the convention's default.

    Parameters
    ----------
    %(convention)s
    requested : DetectorPivot or None
        The configured pivot (``DetectorConfig.detector_pivot``); None for the convention's.

    Returns
    -------
    DetectorPivot
    """
    return requested if requested is not None else CONVENTIONS[convention].pivot


@fill_doc
def command_line_pivot(convention: DetectorConvention, last_pivot_flag: DetectorPivot) -> DetectorPivot:
    """The pivot nanoBragg C uses: a named convention forces its own, CUSTOM keeps the pivot of
    the last pivot-setting flag (``-pivot``, ``-Xbeam``, ``-Xclose``, ``-distance``, ...).

    Parameters
    ----------
    %(convention)s
    last_pivot_flag : DetectorPivot
        The pivot that the last pivot-setting flag on the command line implies.

    Returns
    -------
    DetectorPivot
    """
    row = CONVENTIONS[convention]
    return last_pivot_flag if row.pivot_from_flags else row.pivot


# ----------------------------------------------------------------------------- beam centre
@fill_doc
def beam_point(convention: DetectorConvention, beam_center_f: Scalar, beam_center_s: Scalar,
               pixel_size: Scalar, fpixels: int, spixels: int) -> Tuple[Scalar, Scalar]:
    """The point of the detector that a beam centre names, along fast and slow.

    With the BEAM pivot it is where the beam meets the detector (nanoBragg's Fbeam, Sbeam);
    with the SAMPLE pivot it is the point closest to the sample (Fclose, Sclose). Plain
    arithmetic: tensors keep their gradients.

    Parameters
    ----------
    %(convention)s
    beam_center_f, beam_center_s : float or tensor
        Beam centre in the convention's terms (see
        :class:`~nanobrag_torch.config.DetectorConfig`).
    pixel_size : float or tensor
        Pixel edge, in the unit of the beam centre.
    %(fpixels_spixels)s

    Returns
    -------
    fast, slow : float or tensor
        In the unit of the beam centre, from the outer corner of pixel (0, 0).
    """
    row = CONVENTIONS[convention]
    shift = pixel_size / 2 if row.half_pixel_added else 0.0
    return tuple(count * pixel_size - centre + shift if far else centre + shift
                 for centre, count, far in zip((beam_center_f, beam_center_s), (fpixels, spixels), row.from_far_edge))


@fill_doc
def beam_center_for_pixel(convention: DetectorConvention, fast_px: float, slow_px: float, pixel_size_mm: float,
                          fpixels: int, spixels: int) -> Tuple[float, float]:
    """The beam centre that puts the beam on the centre of a pixel.

    The inverse of ``beam_point`` for the point ``((fast_px + ½) · pixel, (slow_px + ½) ·
    pixel)``, the centre of pixel (``fast_px``, ``slow_px``); fractional pixel coordinates name
    points between centres. For an unrotated detector whose normal is along the beam (every
    named convention, and CUSTOM with its default vectors) the beam then meets the detector
    there, with either pivot.

    Parameters
    ----------
    %(convention)s
    fast_px, slow_px : float
        Pixel coordinates of the beam (pixel centres at integers).
    %(pixel_size_mm)s
    %(fpixels_spixels)s

    Returns
    -------
    beam_center_f, beam_center_s : float
        In mm, for :class:`~nanobrag_torch.config.DetectorConfig`.
    """
    return beam_center_for_point(convention, (fast_px + 0.5) * pixel_size_mm, (slow_px + 0.5) * pixel_size_mm,
                                 pixel_size_mm, fpixels, spixels)


@fill_doc
def beam_center_for_point(convention: DetectorConvention, fast: Scalar, slow: Scalar, pixel_size: Scalar,
                          fpixels: int, spixels: int) -> Tuple[Scalar, Scalar]:
    """The beam centre that names a point of the detector: the inverse of :func:`beam_point`.

    Plain arithmetic: tensors keep their gradients.

    Parameters
    ----------
    %(convention)s
    fast, slow : float or tensor
        The point, from the outer corner of pixel (0, 0) along the fast and slow axes.
    pixel_size : float or tensor
        Pixel edge, in the unit of ``fast`` and ``slow``.
    %(fpixels_spixels)s

    Returns
    -------
    beam_center_f, beam_center_s : float or tensor
        In the unit of ``fast`` and ``slow``.
    """
    row = CONVENTIONS[convention]
    shift = pixel_size / 2 if row.half_pixel_added else 0.0
    return tuple(count * pixel_size - point + shift if far else point - shift
                 for point, count, far in zip((fast, slow), (fpixels, spixels), row.from_far_edge))


@fill_doc
def default_beam_center_mm(convention: DetectorConvention, pixel_size_mm: float, fpixels: int,
                           spixels: int) -> Tuple[float, float]:
    """The beam centre of a :class:`~nanobrag_torch.config.DetectorConfig` that gives none.

    nanoBragg's defaults put the beam at the middle of the detector, moved by
    :attr:`Convention.default_beam_past_middle_px` pixels along both axes: on a 1024 × 1024
    detector at pixel coordinate 512.5 for MOSFLM, 512 for DENZO and ADXV, and 511.5 (the
    middle) for XDS, DIALS and CUSTOM.

    Parameters
    ----------
    %(convention)s
    %(pixel_size_mm)s
    %(fpixels_spixels)s

    Returns
    -------
    beam_center_f, beam_center_s : float
        In mm.
    """
    past = CONVENTIONS[convention].default_beam_past_middle_px
    return beam_center_for_pixel(convention, fpixels / 2 - 0.5 + past, spixels / 2 - 0.5 + past, pixel_size_mm,
                                 fpixels, spixels)


@fill_doc
def c_header_beam_center(convention: DetectorConvention, beam_center_f: float,
                         beam_center_s: float) -> Tuple[float, float]:
    """nanoBragg C's ``(Xbeam, Ybeam)`` (the SMV header's BEAM_CENTER_X/Y) of a beam centre.

    MOSFLM and DENZO call the slow coordinate X; the others call the fast one X. The mapping
    swaps or keeps the pair, so it also turns C's ``(Xbeam, Ybeam)`` into
    ``(beam_center_f, beam_center_s)``.

    Parameters
    ----------
    %(convention)s
    beam_center_f, beam_center_s : float
        Beam centre along fast and slow, in mm, as
        :class:`~nanobrag_torch.config.DetectorConfig` gives it.

    Returns
    -------
    x_beam, y_beam : float
        C's ``Xbeam`` and ``Ybeam``, in mm.
    """
    if CONVENTIONS[convention].x_beam_along_slow:
        return beam_center_s, beam_center_f
    return beam_center_f, beam_center_s
