"""Configuration of a simulation: crystal, detector, beam and noise.

Every config is a frozen dataclass that validates its values on construction and raises
:class:`ConfigError` (a :class:`ValueError`) naming the config, the field and the bad value; a
changed copy is made with :func:`dataclasses.replace`, which validates it again.
Lengths and angles carry their unit in the field name (``distance_mm``, ``phi_start_deg``);
the models convert them to SI (metres, radians) once, as nanoBragg C does.

Each field's rule (unit, bounds, number of values, whether the refinement may move it) is written
once, as the field's metadata (a :class:`FieldRule`, read with :func:`field_rule`); the configs'
validation, the refinement's default bounds and the command line's range checks all read it.

Every continuous field may be a Python number or a 0-d :class:`torch.Tensor`, including one
with ``requires_grad=True``; the simulated image is then differentiable with respect to it.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any, Dict, List, Optional, Sequence, Tuple, Type, Union

import torch

Scalar = Union[float, torch.Tensor]
"""A Python number or a 0-d tensor (possibly requiring grad)."""

DEFAULT_CELL_LENGTH_A = 100.0
"""Unit-cell length of :class:`CrystalConfig` when neither it nor a MOSFLM matrix is given (Å)."""
DEFAULT_CELL_ANGLE_DEG = 90.0
"""Unit-cell angle of :class:`CrystalConfig` when not given (degrees)."""
NOISE_SEED_LIMIT = 2 ** 62
"""Largest magnitude of a noise seed: the generator's arithmetic is in 64-bit integers."""
MAX_OVERSAMPLE = 1000
"""The most sub-pixels per pixel edge: a million sub-pixels per pixel, far beyond any crystal
nanoBragg's automatic choice serves, each pixel a million times the work of one. Above it the
sub-pixel tables alone would exhaust a machine's memory (``-oversample 2147483648`` asked for
17 GB), and nanoBragg C would loop for ever."""

MIN_RELATIVE_CELL_VOLUME = 1e-6
"""Cell volume over a·b·c below which three cell angles are refused as making no cell (an
exactly flat cell, such as 60°, 60°, 120°, computes to about 1e-8, not 0)."""


class ConfigError(ValueError):
    """An invalid configuration value.

    The message reads ``"DetectorConfig.distance_mm = -1 is invalid: must be a finite number > 0"``.

    Parameters
    ----------
    config : str
        Name of the config class (``"DetectorConfig"``).
    field : str
        Name of the dataclass field (``"N_cells"``, also for a bad element of it).
    value : object
        The value given.
    problem : str
        What is wrong with it.
    element : str
        Which part of the field, if not all of it (``"[1]"`` for ``N_cells[1]``).

    Attributes
    ----------
    config, field, value
        As given.
    """

    def __init__(self, config: str, field: str, value: Any, problem: str, element: str = ""):
        super().__init__(f"{config}.{field}{element} = {_describe(value)} is invalid: {problem}")
        self.config = config
        self.field = field
        self.value = value
        self._details = (problem, element)

    def __reduce__(self):
        return type(self), (self.config, self.field, self.value, *self._details)


class DetectorConvention(Enum):
    """Named detector conventions of nanoBragg (how beam, axes and beam centre are defined)."""

    MOSFLM = "mosflm"
    XDS = "xds"
    DIALS = "dials"
    ADXV = "adxv"
    DENZO = "denzo"
    CUSTOM = "custom"


class DetectorPivot(Enum):
    """The point that stays fixed when the detector is rotated."""

    BEAM = "beam"
    SAMPLE = "sample"


class CrystalShape(Enum):
    """Shape of the crystal, which sets the lattice factor ``F_latt``."""

    SQUARE = "square"
    ROUND = "round"
    GAUSS = "gauss"
    TOPHAT = "tophat"


RULE_KEY = "nanobrag_torch.rule"
"""Key of a field's :class:`FieldRule` in its dataclass metadata."""

REAL, INTEGER, VECTOR, OTHER = "real", "integer", "vector", "other"
"""Kinds of field: a finite number (Python number or 0-d tensor) within the bounds; a Python or
NumPy integer (not a bool) within the bounds; three finite numbers that are not the zero vector
(a direction, or a MOSFLM reciprocal vector); anything else, which its config checks itself."""


@dataclass(frozen=True)
class Bound:
    """One end of a field's range.

    Attributes
    ----------
    value : int or float
        The limit, in the field's unit.
    closed : bool
        True when the limit itself is allowed (``>=``, ``<=``), False when it is not (``>``, ``<``).
    """

    value: Union[int, float]
    closed: bool


@dataclass(frozen=True)
class FieldRule:
    """The rule of one config field, written once as its dataclass metadata.

    Attributes
    ----------
    unit : str
        Unit of the value (``"mm"``, ``"degrees"``, ``"Å"``; ``""`` for a count or a pure number).
    lower, upper : Bound or None
        Ends of the allowed range; None for no limit on that side. Only REAL and INTEGER fields
        have bounds (each element of a field of several values is checked against them).
    kind : str
        ``REAL``, ``INTEGER``, ``VECTOR`` or ``OTHER``.
    length : int
        Number of values: 1 for a scalar, 3 for a triple or a vector, 4 for the ROI.
    optional : bool
        True when ``None`` is accepted (it means: not given; the default applies).
    refinable : bool
        True for the continuous fields the simulator is differentiable in, which the refinement
        may move (:data:`nanobrag_torch.refine.parameters.REFINABLE_FIELDS`).
    note : str
        Why the bounds are where they are, added to the error message (``""``: evident).
    """

    unit: str = ""
    lower: Optional[Bound] = None
    upper: Optional[Bound] = None
    kind: str = REAL
    length: int = 1
    optional: bool = False
    refinable: bool = False
    note: str = ""

    def admits(self, value: float) -> bool:
        """True when ``value`` (a plain number) lies within the bounds (NaN never does).

        Parameters
        ----------
        value : float
            A plain number (one element of a field of several values), in the field's unit.

        Returns
        -------
        bool
            Whether it lies within ``lower`` and ``upper``.
        """
        if isinstance(value, float) and math.isnan(value):
            return False
        above = self.lower is None or (value >= self.lower.value if self.lower.closed else value > self.lower.value)
        below = self.upper is None or (value <= self.upper.value if self.upper.closed else value < self.upper.value)
        return above and below

    def bounds_text(self) -> str:
        """The bounds as a message writes them: ``"> 0"``, ``">= 0 and <= 180"``; ``""`` for none.

        Returns
        -------
        str
            The bounds, without the unit.
        """
        parts = []
        if self.lower is not None:
            parts.append(f"{'>=' if self.lower.closed else '>'} {_number_text(self.lower.value)}")
        if self.upper is not None:
            parts.append(f"{'<=' if self.upper.closed else '<'} {_number_text(self.upper.value)}")
        return " and ".join(parts)

    def requirement(self) -> str:
        """What a value of a REAL or INTEGER field must be, as a :class:`ConfigError` says it
        (``"must be a finite number > 0"``, ``"must be an integer >= 1"``).

        Returns
        -------
        str
            The requirement, with ``note`` in parentheses when there is one.
        """
        bounds = self.bounds_text()
        if self.kind == INTEGER:
            text = "must be an integer" + (f" {bounds}" if bounds else "")
        else:
            text = f"must be a finite number {bounds}" if bounds else "must be finite"
        return text + (f" ({self.note})" if self.note else "")


_PIXEL_INDEX = FieldRule("pixels", kind=INTEGER)
"""An element of the ROI: any integer (the ROI's ordering is checked with the whole ROI)."""


def _number_text(value: Union[int, float]) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def _rule(default: Any, unit: str = "", *, above: Optional[float] = None, at_least: Optional[float] = None,
         below: Optional[float] = None, at_most: Optional[float] = None, kind: str = REAL, length: int = 1,
         optional: bool = False, refinable: bool = False, note: str = "") -> Any:
    """A dataclass field with ``default`` and its :class:`FieldRule` as metadata.

    Parameters
    ----------
    default : object
        The field's default value (immutable: a number, tuple, enum or None).
    unit : str
        Unit of the value.
    above, at_least : float, optional
        Open or closed lower bound (at most one of them).
    below, at_most : float, optional
        Open or closed upper bound (at most one of them).
    kind, length, optional, refinable, note
        As in :class:`FieldRule`.

    Returns
    -------
    dataclasses.Field
    """
    if above is not None and at_least is not None or below is not None and at_most is not None:
        raise ValueError("give at most one lower bound (above or at_least) and one upper bound (below or at_most)")
    lower = Bound(above, False) if above is not None else Bound(at_least, True) if at_least is not None else None
    upper = Bound(below, False) if below is not None else Bound(at_most, True) if at_most is not None else None
    return field(default=default, metadata={RULE_KEY: FieldRule(unit, lower, upper, kind, length, optional,
                                                                refinable, note)})


def field_rules(config_class: Type) -> Dict[str, FieldRule]:
    """Every field's rule of a config class, in the order of the fields.

    Parameters
    ----------
    config_class : type
        :class:`CrystalConfig`, :class:`DetectorConfig`, :class:`BeamConfig` or :class:`NoiseConfig`
        (or an instance of one).

    Returns
    -------
    dict of str to FieldRule
    """
    return {f.name: f.metadata[RULE_KEY] for f in fields(config_class)}


def field_rule(config_class: Type, name: str) -> FieldRule:
    """The rule of one field (``field_rule(DetectorConfig, "distance_mm")``).

    Parameters
    ----------
    config_class : type
        A config class, as for :func:`field_rules`.
    name : str
        The field.

    Returns
    -------
    FieldRule

    Raises
    ------
    KeyError
        ``name`` is not a field of ``config_class``.
    """
    rules = field_rules(config_class)
    if name not in rules:
        raise KeyError(f"{config_class.__name__} has no field {name!r}; its fields: {', '.join(rules)}")
    return rules[name]


def refinable_fields(config_class: Type) -> Dict[str, FieldRule]:
    """The rules of the fields of ``config_class`` that the refinement may move, in field order.

    Parameters
    ----------
    config_class : type
        A config class, as for :func:`field_rules`.

    Returns
    -------
    dict of str to FieldRule
    """
    return {name: r for name, r in field_rules(config_class).items() if r.refinable}


def _value(x: Scalar) -> float:
    """Plain float of a number or tensor, for validation only (never on the way to the image);
    NaN for anything else (None, a string), which every check refuses."""
    if isinstance(x, torch.Tensor):
        return float(x.detach().reshape(-1)[0]) if x.numel() == 1 else float("nan")
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def _describe(value: Any) -> str:
    """The value as a message shows it: arrays of more than three numbers by their shape."""
    if hasattr(value, "shape") and math.prod(value.shape) > 3:
        return f"array of shape {tuple(value.shape)}"
    if isinstance(value, torch.Tensor):
        return f"tensor({value.detach().cpu().tolist()})"
    return repr(value)


def _require(cls: str, name: str, value: Any, ok: bool, what: str, element: str = "") -> None:
    if not ok:
        raise ConfigError(cls, name, value, what, element)


def _elements(value: Any) -> Optional[List[Any]]:
    """The values of a field of several values (a sequence or a tensor), or None when it is not one."""
    if isinstance(value, torch.Tensor):
        return list(value.reshape(-1).unbind()) if value.dim() > 0 else None
    try:
        return list(value)
    except TypeError:
        return None


def _check_value(cls: str, name: str, value: Any, rule: FieldRule, element: str = "") -> None:
    """Require one value of a REAL or INTEGER field to be a finite number (an integer, not a bool,
    for INTEGER) within the rule's bounds."""
    if rule.kind == INTEGER:
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool) and rule.admits(value)
    else:
        number = _value(value)
        ok = math.isfinite(number) and rule.admits(number)
    _require(cls, name, value, ok, rule.requirement(), element)


def _vector3(cls: str, name: str, value: Any, element: str = "") -> None:
    """Require three finite numbers that are not the zero vector."""
    if isinstance(value, torch.Tensor):
        ok = value.numel() == 3
        comps = value.detach().reshape(-1).tolist() if ok else []
    else:
        try:
            comps = [_value(c) for c in value]
        except (TypeError, ValueError):
            comps = []
        ok = len(comps) == 3
    _require(cls, name, value, ok and all(math.isfinite(c) for c in comps), "must be three finite numbers", element)
    _require(cls, name, value, 0 < sum(c * c for c in comps) < math.inf,
             "must not be the zero vector, nor so short or long that its squared length is 0 or inf", element)


def _check_rules(config: Any) -> None:
    """Check every REAL, INTEGER and VECTOR field of ``config`` against its :class:`FieldRule`,
    in the order of the fields (``None`` passes where the rule is optional)."""
    cls = type(config).__name__
    for name, rule in field_rules(config).items():
        value = getattr(config, name)
        if rule.kind == OTHER or (value is None and rule.optional):
            continue
        if rule.kind == VECTOR:
            _vector3(cls, name, value)
        elif rule.length == 1:
            _check_value(cls, name, value, rule)
        else:
            items = _elements(value)
            _require(cls, name, value, items is not None and len(items) == rule.length,
                     f"needs {rule.length} values")
            for i, item in enumerate(items):
                _check_value(cls, name, item, rule, f"[{i}]")


def _cell_angles_make_a_cell(cls: str, config: "CrystalConfig") -> None:
    """Three angles make a cell when each is less than the sum of the other two and the three add
    up to less than 360°: then ``V / (a b c) = 2 √(sin(s) sin(s − α) sin(s − β) sin(s − γ))``
    with ``s = (α + β + γ) / 2`` is real and positive; it must reach
    :data:`MIN_RELATIVE_CELL_VOLUME`. The at_fault of the angles given is named at fault."""
    names = ("cell_alpha", "cell_beta", "cell_gamma")
    given = {name: getattr(config, name) for name in names}
    degrees = {name: DEFAULT_CELL_ANGLE_DEG if value is None else _value(value) for name, value in given.items()}
    half_sum = math.radians(sum(degrees.values())) / 2
    factor = math.sin(half_sum) * math.prod(math.sin(half_sum - math.radians(v)) for v in degrees.values())
    at_fault = max((name for name in names if given[name] is not None), key=lambda name: degrees[name], default=None)
    if at_fault is None:  # the default angles make a cell
        return
    others = " and ".join(f"{name} = {degrees[name]:g}" for name in names if name != at_fault)
    _require(cls, at_fault, given[at_fault], factor > 0 and 2 * math.sqrt(factor) >= MIN_RELATIVE_CELL_VOLUME,
             f"with {others} the angles make no unit cell (each must be less than the sum of the other two, "
             f"and the three less than 360 degrees)")


def _cell_volume_is_representable(cls: str, config: "CrystalConfig") -> None:
    """The cell's volume and its inverse (which scales the reciprocal cell) must both be finite,
    non-zero numbers for every angles that make a cell (``V ≥ a b c ·``
    :data:`MIN_RELATIVE_CELL_VOLUME`): a length such as 1e-320 Å or 1e300 Å passes the check of
    its sign but leaves no reciprocal cell to compute with. The length furthest from 1 Å (on a
    log scale) is named at fault."""
    names = ("cell_a", "cell_b", "cell_c")
    given = {name: getattr(config, name) for name in names if getattr(config, name) is not None}
    if not given:
        return
    lengths = [_value(getattr(config, name)) if name in given else DEFAULT_CELL_LENGTH_A for name in names]
    volume = math.prod(lengths)
    at_fault = max(given, key=lambda name: abs(math.log(_value(given[name]))))
    others = " and ".join(f"{name} = {length:g}" for name, length in zip(names, lengths) if name != at_fault)
    _require(cls, at_fault, given[at_fault], 0 < volume < math.inf and math.isfinite(1 / (volume * MIN_RELATIVE_CELL_VOLUME)),
             f"with {others} the cell's volume ({volume:g} cubic Å before the angles) is too small or too "
             f"large to compute its reciprocal cell")


@dataclass(frozen=True)
class CrystalConfig:
    """The crystal: unit cell, orientation, rotation, mosaicity, size and shape.

    Parameters
    ----------
    cell_a, cell_b, cell_c : float or tensor, optional
        Unit-cell lengths in Å. Default 100 Å when no MOSFLM matrix is given. When a matrix
        is given as well, the matrix sets the directions and these set the lengths (as
        nanoBragg's ``-mat`` with ``-cell``).
    cell_alpha, cell_beta, cell_gamma : float or tensor, optional
        Unit-cell angles in degrees. Default 90°.
    N_cells : tuple of 3 numbers or tensors
        Number of unit cells along a, b, c (``-Na -Nb -Nc``), each at least 1. Real values are
        allowed and differentiable for the SQUARE shape.
    misset_deg : tuple of 3 numbers or tensors
        Misset rotation about lab x, then y, then z, in degrees, applied to the reciprocal
        vectors before anything else.
    phi_start_deg, osc_range_deg : float or tensor
        Spindle angle of the first phi step and the total oscillation, in degrees.
    phi_steps : int
        Number of phi steps; step k is at ``phi_start + k * osc_range / phi_steps``.
    spindle_axis : tuple of 3 numbers, optional
        Rotation axis in the lab frame. Default: the detector convention's axis.
    mosaic_spread_deg : float or tensor
        Maximum rotation angle of a mosaic domain, in degrees, 0 to 180 (nanoBragg's cap angle).
    mosaic_domains : int
        Number of mosaic domains; domain 0 is the unrotated crystal.
    mosaic_seed : int
        Seed of the domain generator; ``mosaic_seed=n`` draws the same domains as
        nanoBragg's ``-mosaic_seed n``. The domain axes do not depend on the spread.
    mosflm_a_star, mosflm_b_star, mosflm_c_star : sequence of 3 numbers or tensor, optional
        Reciprocal vectors in Å⁻¹ (already divided by the wavelength, as returned by
        :func:`nanobrag_torch.io.mosflm.read_mosflm_matrix`).
    default_F : float
        Structure factor for reflections absent from the HKL table (electrons).
    shape : CrystalShape
        Crystal shape for the lattice factor.
    fudge : float
        Width factor for the ROUND, GAUSS and TOPHAT shapes (``-fudge``).
    interpolate : bool, optional
        Tricubic interpolation of structure factors. ``None`` selects it as nanoBragg does:
        on when any of ``N_cells`` is at most 2.
    """

    cell_a: Optional[Scalar] = _rule(None, "Å", above=0, optional=True, refinable=True)
    cell_b: Optional[Scalar] = _rule(None, "Å", above=0, optional=True, refinable=True)
    cell_c: Optional[Scalar] = _rule(None, "Å", above=0, optional=True, refinable=True)
    cell_alpha: Optional[Scalar] = _rule(None, "degrees", above=0, below=180, optional=True, refinable=True)
    cell_beta: Optional[Scalar] = _rule(None, "degrees", above=0, below=180, optional=True, refinable=True)
    cell_gamma: Optional[Scalar] = _rule(None, "degrees", above=0, below=180, optional=True, refinable=True)
    N_cells: Sequence[Scalar] = _rule((1, 1, 1), at_least=1, length=3, refinable=True)
    misset_deg: Sequence[Scalar] = _rule((0.0, 0.0, 0.0), "degrees", length=3, refinable=True)
    phi_start_deg: Scalar = _rule(0.0, "degrees", refinable=True)
    osc_range_deg: Scalar = _rule(0.0, "degrees", refinable=True)
    phi_steps: int = _rule(1, kind=INTEGER, at_least=1)
    spindle_axis: Optional[Sequence[float]] = _rule(None, kind=VECTOR, length=3, optional=True)
    mosaic_spread_deg: Scalar = _rule(0.0, "degrees", at_least=0, at_most=180, refinable=True)
    mosaic_domains: int = _rule(1, kind=INTEGER, at_least=1)
    mosaic_seed: int = _rule(12345678, kind=INTEGER)
    mosflm_a_star: Optional[Any] = _rule(None, "Å⁻¹", kind=VECTOR, length=3, optional=True, refinable=True)
    mosflm_b_star: Optional[Any] = _rule(None, "Å⁻¹", kind=VECTOR, length=3, optional=True, refinable=True)
    mosflm_c_star: Optional[Any] = _rule(None, "Å⁻¹", kind=VECTOR, length=3, optional=True, refinable=True)
    default_F: float = _rule(0.0, "electrons")
    shape: CrystalShape = _rule(CrystalShape.SQUARE, kind=OTHER)
    fudge: float = _rule(1.0, above=0)
    interpolate: Optional[bool] = _rule(None, kind=OTHER, optional=True)

    def __post_init__(self) -> None:
        name = "CrystalConfig"
        _check_rules(self)
        matrix = {vec: getattr(self, vec) for vec in ("mosflm_a_star", "mosflm_b_star", "mosflm_c_star")}
        missing = [vec for vec, value in matrix.items() if value is None]
        if 0 < len(missing) < 3:
            raise ConfigError(name, missing[0], None, "give all three of mosflm_a_star, mosflm_b_star, "
                              "mosflm_c_star, or none")
        _cell_angles_make_a_cell(name, self)
        _cell_volume_is_representable(name, self)
        _require(name, "shape", self.shape, isinstance(self.shape, CrystalShape), "must be a CrystalShape")

    @property
    def has_mosflm_matrix(self) -> bool:
        """True when the orientation comes from MOSFLM reciprocal vectors."""
        return self.mosflm_a_star is not None


@dataclass(frozen=True)
class DetectorConfig:
    """The detector: size, pixels, position, orientation and response.

    Parameters
    ----------
    distance_mm : float or tensor
        Sample-to-detector distance along the beam (BEAM pivot) in mm.
    close_distance_mm : float or tensor, optional
        Perpendicular sample-to-plane distance in mm; when given, the detector is placed by it
        (``distance = close_distance / (beam · normal)``), as ``-close_distance``.
    pixel_size_mm : float
        Pixel edge length in mm.
    fpixels, spixels : int
        Number of pixels along the fast and slow axes.
    beam_center_f, beam_center_s : float or tensor, optional
        Beam centre in mm along the fast and slow axes, in the convention's own terms:
        MOSFLM/DENZO: ``beam_center_s`` = Xbeam, ``beam_center_f`` = Ybeam; ADXV/CUSTOM:
        ``beam_center_f`` = Xbeam, ``beam_center_s`` = Ybeam; XDS/DIALS: the point of the
        detector closest to the sample ((ORGX − ½)·pixel, (ORGY − ½)·pixel). The rules are
        in ``nanobrag_torch.conventions``;
        :func:`~nanobrag_torch.conventions.beam_center_for_pixel` gives the centre that puts
        the beam on a given pixel. Default:
        :func:`~nanobrag_torch.conventions.default_beam_center_mm`.
    detector_convention : DetectorConvention
        Convention for beam direction, detector axes and beam centre.
    detector_pivot : DetectorPivot, optional
        Pivot of the rotations. Default: BEAM for MOSFLM, DENZO, ADXV and CUSTOM, SAMPLE for
        XDS and DIALS.
    detector_rotx_deg, detector_roty_deg, detector_rotz_deg : float or tensor
        Detector rotations about lab x, then y, then z, in degrees.
    detector_twotheta_deg : float or tensor
        Detector swing about ``twotheta_axis``, in degrees.
    twotheta_axis : tuple of 3 numbers, optional
        Two-theta axis. Default: the convention's axis.
    custom_fdet_vector, custom_sdet_vector, custom_odet_vector, custom_beam_vector : tuple, optional
        Unit vectors of the CUSTOM convention (fast axis, slow axis, detector normal, beam
        propagation). Ignored by named conventions.
    pix0_override_m : tuple of 3 numbers or tensors, optional
        Lab position in metres of the corner of pixel (0, 0). When given, it places the
        detector directly (beam centre and pivot are then not used).
    oversample : int, optional
        Sub-pixels per pixel edge, 1 to ``MAX_OVERSAMPLE``. ``None`` chooses it from the crystal
        size as nanoBragg does (the simulator raises a :class:`ConfigError` when that choice exceeds
        ``MAX_OVERSAMPLE``).
    oversample_omega, oversample_polar, oversample_thick : bool
        Evaluate the solid angle, polarization or capture fraction for every sub-pixel instead
        of once per pixel.
    curved_detector : bool
        Put every pixel at the same distance from the sample (``-curved_det``).
    point_pixel : bool
        Solid angle ``1/R²`` instead of the pixel's area over ``R²`` (``-point_pixel``).
    detector_thick_um : float
        Sensor thickness in µm (0: an ideal, infinitely thin absorber).
    detector_thicksteps : int
        Number of depth layers.
    detector_abs_um : float, optional
        Attenuation depth in µm. Default: the thickness.
    roi : tuple of 4 ints, optional
        ``(fmin, fmax, smin, smax)``, inclusive, 0-based; pixels outside are 0.
    mask : array of shape (spixels, fpixels), optional
        Pixels where the mask is 0 are not rendered.
    panel_shift_mm : tuple of 3 numbers or tensors
        Moves the placed detector (after the rotations, the pivot or ``pix0_override_m``) by
        these distances in mm along its own fast axis, slow axis and normal: a panel's
        refinable offset. Default: no shift.
    panel_rotation_deg : tuple of 3 numbers or tensors
        Turns the placed detector about its own fast axis, then its slow axis, then its normal
        (the axes as placed, through the centre of the pixel area), in degrees, before
        ``panel_shift_mm`` moves it. Default: no rotation.
    """

    distance_mm: Scalar = _rule(100.0, "mm", above=0, refinable=True)
    close_distance_mm: Optional[Scalar] = _rule(None, "mm", above=0, optional=True, refinable=True)
    pixel_size_mm: Scalar = _rule(0.1, "mm", above=0, refinable=True)
    fpixels: int = _rule(1024, kind=INTEGER, at_least=1)
    spixels: int = _rule(1024, kind=INTEGER, at_least=1)
    beam_center_f: Optional[Scalar] = _rule(None, "mm", optional=True, refinable=True)
    beam_center_s: Optional[Scalar] = _rule(None, "mm", optional=True, refinable=True)
    detector_convention: DetectorConvention = _rule(DetectorConvention.MOSFLM, kind=OTHER)
    detector_pivot: Optional[DetectorPivot] = _rule(None, kind=OTHER, optional=True)
    detector_rotx_deg: Scalar = _rule(0.0, "degrees", refinable=True)
    detector_roty_deg: Scalar = _rule(0.0, "degrees", refinable=True)
    detector_rotz_deg: Scalar = _rule(0.0, "degrees", refinable=True)
    detector_twotheta_deg: Scalar = _rule(0.0, "degrees", refinable=True)
    twotheta_axis: Optional[Sequence[float]] = _rule(None, kind=VECTOR, length=3, optional=True)
    custom_fdet_vector: Optional[Sequence[float]] = _rule(None, kind=VECTOR, length=3, optional=True)
    custom_sdet_vector: Optional[Sequence[float]] = _rule(None, kind=VECTOR, length=3, optional=True)
    custom_odet_vector: Optional[Sequence[float]] = _rule(None, kind=VECTOR, length=3, optional=True)
    custom_beam_vector: Optional[Sequence[float]] = _rule(None, kind=VECTOR, length=3, optional=True)
    pix0_override_m: Optional[Sequence[Scalar]] = _rule(None, "m", length=3, optional=True, refinable=True)
    oversample: Optional[int] = _rule(1, kind=INTEGER, at_least=1, at_most=MAX_OVERSAMPLE, optional=True,
                                     note=f"{MAX_OVERSAMPLE ** 2:,} sub-pixels per pixel at most")
    oversample_omega: bool = _rule(False, kind=OTHER)
    oversample_polar: bool = _rule(False, kind=OTHER)
    oversample_thick: bool = _rule(False, kind=OTHER)
    curved_detector: bool = _rule(False, kind=OTHER)
    point_pixel: bool = _rule(False, kind=OTHER)
    detector_thick_um: float = _rule(0.0, "µm", at_least=0)
    detector_thicksteps: int = _rule(1, kind=INTEGER, at_least=1)
    detector_abs_um: Optional[float] = _rule(None, "µm", above=0, optional=True)
    roi: Optional[Tuple[int, int, int, int]] = _rule(None, "pixels", kind=OTHER, length=4, optional=True)
    mask: Optional[Any] = _rule(None, kind=OTHER, optional=True)
    panel_shift_mm: Sequence[Scalar] = _rule((0.0, 0.0, 0.0), "mm", length=3, refinable=True)
    panel_rotation_deg: Sequence[Scalar] = _rule((0.0, 0.0, 0.0), "degrees", length=3, refinable=True)

    def __post_init__(self) -> None:
        name = "DetectorConfig"
        _check_rules(self)
        _require(name, "detector_convention", self.detector_convention,
                 isinstance(self.detector_convention, DetectorConvention), "must be a DetectorConvention")
        _require(name, "detector_pivot", self.detector_pivot,
                 self.detector_pivot is None or isinstance(self.detector_pivot, DetectorPivot),
                 "must be a DetectorPivot or None")
        if self.roi is not None:
            _require(name, "roi", self.roi, len(self.roi) == 4, "must be four integers (fmin, fmax, smin, smax)")
            for i, bound in enumerate(self.roi):
                _check_value(name, "roi", bound, _PIXEL_INDEX, f"[{i}]")
            fmin, fmax, smin, smax = self.roi
            _require(name, "roi", self.roi, 0 <= fmin <= fmax and 0 <= smin <= smax,
                     "needs 0 <= fmin <= fmax and 0 <= smin <= smax")
        if self.mask is not None:
            shape = tuple(self.mask.shape)
            _require(name, "mask", self.mask, shape == (self.spixels, self.fpixels),
                     f"must have shape (spixels, fpixels) = ({self.spixels}, {self.fpixels})")


SHARED_PANEL_FIELDS = ("oversample", "oversample_omega", "oversample_polar", "oversample_thick", "curved_detector",
                      "point_pixel", "detector_thick_um", "detector_thicksteps", "detector_abs_um")
"""Fields of :class:`DetectorConfig` that every panel of a :class:`MultiPanelDetectorConfig` must
share: the render samples, weighs and absorbs with one setting for all panels."""

BEAM_DIRECTION_TOLERANCE = 1e-9
"""Largest difference between two panels' unit beam directions that counts as the same beam."""


@dataclass(frozen=True)
class MultiPanelDetectorConfig:
    """A detector of several panels in one lab frame, each a :class:`DetectorConfig`.

    Every panel is placed by its own configuration (any convention; typically CUSTOM vectors
    with ``pix0_override_m``) and renders its own ``(spixels, fpixels)`` pixels; the simulator's
    images are ``(panels, slow, fast)``. The panels share one beam direction and the settings
    in ``SHARED_PANEL_FIELDS``; the defaults that the beam and the crystal take from a
    convention (polarization axis, spindle axis) are panel 0's.

    Parameters
    ----------
    panels : tuple of DetectorConfig
        The panels, at least two (a detector of one panel is a :class:`DetectorConfig`).
    groups : tuple of tuples of int
        Groups of panel indices (the DIALS hierarchy's groups), each moved as one body by its
        entry of ``group_shift_mm`` and ``group_rotation_deg``. Default: no groups.
    group_shift_mm : tuple of (3 numbers or tensors)
        One shift per group in mm, along the fast axis, slow axis and normal of the group's
        first panel (as placed by its own configuration). Empty (the default): no shifts.
    group_rotation_deg : tuple of (3 numbers or tensors)
        One rotation per group in degrees, about the same three axes in turn, through the
        group's centre (the mean of its panels' centres), applied before the group's shift.
        Empty (the default): no rotations. The groups move in the order given, each after the
        panels' own ``panel_shift_mm`` and ``panel_rotation_deg``.
    """

    panels: Tuple[DetectorConfig, ...] = _rule((), kind=OTHER)
    groups: Tuple[Tuple[int, ...], ...] = _rule((), kind=OTHER)
    group_shift_mm: Tuple[Sequence[Scalar], ...] = _rule((), "mm", kind=OTHER, length=3, refinable=True)
    group_rotation_deg: Tuple[Sequence[Scalar], ...] = _rule((), "degrees", kind=OTHER, length=3, refinable=True)

    def __post_init__(self) -> None:
        name = "MultiPanelDetectorConfig"
        _require(name, "panels", self.panels, isinstance(self.panels, tuple) and len(self.panels) >= 2,
                 "must be a tuple of at least two DetectorConfig (a detector of one panel is a DetectorConfig)")
        for i, panel in enumerate(self.panels):
            _require(name, "panels", panel, isinstance(panel, DetectorConfig), "must be a DetectorConfig", f"[{i}]")
        first = self.panels[0]
        beam = _unit_beam_direction(first)
        for i, panel in enumerate(self.panels[1:], start=1):
            for shared in SHARED_PANEL_FIELDS:
                _require(name, "panels", getattr(panel, shared), getattr(panel, shared) == getattr(first, shared),
                         f"must equal panel 0's {shared} = {getattr(first, shared)!r}: the render uses one for "
                         f"all panels", f"[{i}].{shared}")
            other = _unit_beam_direction(panel)
            same_beam = max(abs(a - b) for a, b in zip(beam, other)) <= BEAM_DIRECTION_TOLERANCE
            _require(name, "panels", tuple(other), same_beam,
                     f"the beam direction must equal panel 0's {tuple(beam)} (all panels share one beam; check "
                     f"detector_convention and custom_beam_vector)", f"[{i}].beam direction")
        _require(name, "groups", self.groups, isinstance(self.groups, tuple),
                 "must be a tuple of tuples of panel indices")
        for g, group in enumerate(self.groups):
            ok = (isinstance(group, tuple) and len(group) >= 1
                  and all(isinstance(i, numbers.Integral) and not isinstance(i, bool) and 0 <= i < len(self.panels)
                          for i in group) and len(set(group)) == len(group))
            _require(name, "groups", group, ok, f"must be a tuple of distinct panel indices from 0 to "
                     f"{len(self.panels) - 1}", f"[{g}]")
        rules = field_rules(self)
        for field_name in ("group_shift_mm", "group_rotation_deg"):
            value = getattr(self, field_name)
            _require(name, field_name, value, isinstance(value, tuple) and len(value) in (0, len(self.groups)),
                     f"must be empty or hold one triple per group ({len(self.groups)})")
            for g, triple in enumerate(value):
                items = _elements(triple)
                _require(name, field_name, triple, items is not None and len(items) == 3, "needs 3 values", f"[{g}]")
                for k, item in enumerate(items):
                    _check_value(name, field_name, item, rules[field_name], f"[{g}][{k}]")

    @property
    def n_panels(self) -> int:
        """Number of panels."""
        return len(self.panels)


def _unit_beam_direction(config: DetectorConfig) -> List[float]:
    """The unit beam propagation direction a detector configuration sets, as plain numbers."""
    from .conventions import initial_vectors  # conventions reads this module's enums

    beam = [_value(c) for c in initial_vectors(config)[0]]
    length = math.sqrt(sum(c * c for c in beam))
    return [c / length for c in beam]


@dataclass(frozen=True)
class BeamConfig:
    """The X-ray beam: wavelength, fluence, polarization, divergence and dispersion.

    Parameters
    ----------
    wavelength_A : float or tensor
        Central wavelength in Å.
    fluence : float or tensor, optional
        Photons per m². Default 1.25932e29 (so that r_e² · fluence = 1), unless ``flux`` is
        given.
    flux : float or tensor
        Photons per second; when > 0 it sets ``fluence = flux · exposure / beamsize²``.
    exposure : float
        Exposure time in seconds.
    beamsize_mm : float
        Beam edge length in mm.
    polarization_factor : float or tensor
        Kahn polarization factor, −1 to 1 (0: unpolarized, 1: fully polarized along the axis).
    nopolar : bool
        Switch the polarization correction off (factor 1).
    polarization_axis : tuple of 3 numbers, optional
        E-vector direction. Default: the detector convention's axis.
    hdivrange_mrad, vdivrange_mrad, hdivstep_mrad, vdivstep_mrad : float, optional
        Horizontal and vertical divergence ranges (≥ 0) and steps (> 0), in mrad.
    hdivsteps, vdivsteps : int, optional
        Number of divergence points per direction. Missing values are chosen as nanoBragg does.
    round_div : bool
        Trim the divergence grid to an ellipse.
    dispersion_percent : float
        Full spectral width Δλ/λ in percent.
    dispersion_steps : int, optional
        Number of wavelengths across the dispersion.
    sources : sequence of ((x, y, z), wavelength_A), optional
        Explicit sources (position vector towards the source, any length; wavelength in Å).
        When given, the divergence and dispersion grid is not generated.
    water_size_um : float
        Thickness of water in the beam for the water background, in µm.
    dmin_A : float
        Resolution cut in Å: scattering beyond it is skipped (0: no cut).
    """

    wavelength_A: Scalar = _rule(1.0, "Å", above=0, refinable=True)
    fluence: Optional[Scalar] = _rule(None, "photons/m²", above=0, optional=True, refinable=True)
    flux: Scalar = _rule(0.0, "photons/s", at_least=0)
    exposure: Scalar = _rule(1.0, "s", above=0)
    beamsize_mm: Scalar = _rule(0.1, "mm", above=0)
    polarization_factor: Scalar = _rule(0.0, at_least=-1, at_most=1, refinable=True)
    nopolar: bool = _rule(False, kind=OTHER)
    polarization_axis: Optional[Sequence[float]] = _rule(None, kind=VECTOR, length=3, optional=True)
    hdivrange_mrad: Optional[float] = _rule(None, "mrad", at_least=0, optional=True)
    vdivrange_mrad: Optional[float] = _rule(None, "mrad", at_least=0, optional=True)
    hdivstep_mrad: Optional[float] = _rule(None, "mrad", above=0, optional=True)
    vdivstep_mrad: Optional[float] = _rule(None, "mrad", above=0, optional=True)
    hdivsteps: Optional[int] = _rule(None, kind=INTEGER, at_least=1, optional=True)
    vdivsteps: Optional[int] = _rule(None, kind=INTEGER, at_least=1, optional=True)
    round_div: bool = _rule(True, kind=OTHER)
    dispersion_percent: float = _rule(0.0, "%", at_least=0)
    dispersion_steps: Optional[int] = _rule(None, kind=INTEGER, at_least=1, optional=True)
    sources: Optional[Sequence[Tuple[Sequence[float], float]]] = _rule(None, kind=OTHER, optional=True)
    water_size_um: float = _rule(0.0, "µm", at_least=0)
    dmin_A: float = _rule(0.0, "Å", at_least=0)

    DEFAULT_FLUENCE = 125932015286227086360700780544.0

    def __post_init__(self) -> None:
        name = "BeamConfig"
        _check_rules(self)
        if self.sources is not None:
            _require(name, "sources", self.sources, len(self.sources) >= 1, "needs at least one source")
            wavelength_rule = field_rule(BeamConfig, "wavelength_A")
            for i, (position, wavelength) in enumerate(self.sources):
                _vector3(name, "sources", position, element=f"[{i}] position")
                _check_value(name, "sources", wavelength, wavelength_rule, f"[{i}] wavelength_A")

    @property
    def fluence_photons_per_m2(self) -> Scalar:
        """Integrated fluence in photons/m²: from flux·exposure/beamsize² when a flux is given."""
        if _value(self.flux) > 0:
            beamsize_m = self.beamsize_mm * 1e-3
            return self.flux * self.exposure / (beamsize_m * beamsize_m)
        if self.fluence is not None:
            return self.fluence
        return self.DEFAULT_FLUENCE


@dataclass(frozen=True)
class NoiseConfig:
    """How the integer and noise images are made from the float image.

    Parameters
    ----------
    seed : int, optional
        Seed of the Poisson noise (``-seed n``). ``None`` takes it from the clock.
    adc_offset_adu : float
        Constant added to every pixel of the integer and noise images.
    intfile_scale : float, optional
        Scale of the noiseless integer image; ``None`` puts the brightest pixel at 55000.
    """

    seed: Optional[int] = _rule(None, kind=INTEGER, at_least=-NOISE_SEED_LIMIT, at_most=NOISE_SEED_LIMIT,
                               optional=True, note="±2**62, the range of the noise generator's 64-bit arithmetic")
    adc_offset_adu: float = _rule(40.0, "ADU")
    intfile_scale: Optional[float] = _rule(None, "ADU/photon", above=0, optional=True)

    def __post_init__(self) -> None:
        _check_rules(self)
