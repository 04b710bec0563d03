"""Refinable parameters: their names, bounds, and how values enter the configurations.

A parameter is named by its configuration and field, with an index for a field that holds
three values: ``"crystal.phi_start_deg"``, ``"crystal.misset_deg[0]"``,
``"detector.distance_mm"``, ``"beam.wavelength_A"``; ``"scale"`` is an overall factor on the
simulated image. The refinable fields are the continuous fields the simulator is
differentiable in; which they are, and their default bounds, come from the configurations' field
rules (:func:`nanobrag_torch.config.refinable_fields`).
"""

from __future__ import annotations

import dataclasses
import math
import re
import sys
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from .._docs import fill_doc
from ..config import BeamConfig, CrystalConfig, DetectorConfig, FieldRule, MultiPanelDetectorConfig, refinable_fields
from ..conventions import default_beam_center_mm

SCALE = "scale"
"""Name of the overall scale factor of the simulated image."""

BACKGROUND_SCALE = "background_scale"
"""Name of the factor on the given background image (a per-shot water or air scattering level)."""

IMAGE_FACTORS = (SCALE, BACKGROUND_SCALE)
"""Parameters that multiply a term of the expected counts instead of changing a configuration."""

_TINY = sys.float_info.min

CONFIG_CLASSES = {"crystal": CrystalConfig, "detector": DetectorConfig, "beam": BeamConfig}
"""The configuration class of each group of parameter names."""

OPEN_BOUND_MARGIN = 1e-9
"""How far inside an open bound of a field's rule the solver's closed bound lies, in the field's
unit: the solver may reach its bounds, the configuration refuses an open bound itself, so a field
that must be > 0 is kept at 1e-9 or more (and a cell angle below 180 at 180 − 1e-9 or less)."""


def solver_bounds(rule: FieldRule) -> Tuple[float, float]:
    """The closed (lower, upper) bounds the refinement keeps a field in by default.

    Parameters
    ----------
    rule : FieldRule
        The field's rule; a closed bound is kept, an open one moved ``OPEN_BOUND_MARGIN`` (1e-9)
        inwards, a missing one is infinite.

    Returns
    -------
    (float, float)
        In the field's unit.
    """
    lower = -math.inf if rule.lower is None else rule.lower.value + (0 if rule.lower.closed else OPEN_BOUND_MARGIN)
    upper = math.inf if rule.upper is None else rule.upper.value - (0 if rule.upper.closed else OPEN_BOUND_MARGIN)
    return float(lower), float(upper)


REFINABLE_FIELDS: Dict[str, Dict[str, Tuple[int, Tuple[float, float]]]] = {
    config: {name: (rule.length if rule.length > 1 else 0, solver_bounds(rule))
             for name, rule in refinable_fields(cls).items()}
    for config, cls in CONFIG_CLASSES.items()
}
"""Every refinable field by configuration: its number of values (0 for a scalar) and its default
bounds, the ``solver_bounds`` of its rule (N ≥ 1, 0 ≤ mosaic spread ≤ 180°, lengths > 0)."""

ORIENTATION_FIELDS = ("phi_start_deg", "misset_deg")
"""Crystal fields that only rotate the crystal: the global orientation search moves them."""

NOT_FITTED_TO_SPOT_POSITIONS = ("N_cells", "fluence", "polarization_factor", "mosaic_spread_deg")
"""Fields the fit of the spot positions leaves to the image likelihood: those that change how
bright the spots are but not where they are, and the mosaic spread, which moves the spots of
the rotated domains in a way entangled with which domain a spot belongs to (the orientation
search sets it)."""

_UNSET_ALLOWED = ("beam_center_f", "beam_center_s")
"""Fields whose ``None`` (the convention's default) a starting value may replace."""

_NAME = re.compile(r"^(crystal|detector|beam)\.(\w+)(?:\[(\d)\])?$")
_PART_NAME = re.compile(r"^detector\.(panels|groups)\[(\d+)\]\.(\w+)(?:\[(\d)\])?$")

PANEL_ALIASES = {"shift_mm": "panel_shift_mm", "rotation_deg": "panel_rotation_deg"}
"""Short names of a panel's move in ``"detector.panels[k].<name>[i]"``: its
``DetectorConfig.panel_shift_mm`` and ``panel_rotation_deg``."""
GROUP_FIELDS = {"shift_mm": "group_shift_mm", "rotation_deg": "group_rotation_deg"}
"""The fields of a group's move in ``"detector.groups[g].<name>[i]"``: its entry of
``MultiPanelDetectorConfig.group_shift_mm`` and ``group_rotation_deg``."""


@dataclass(frozen=True)
class Parameter:
    """One refined parameter.

    Attributes
    ----------
    name : str
        ``"config.field"`` or ``"config.field[i]"``, or ``"scale"`` or ``"background_scale"``.
    config : str
        ``"crystal"``, ``"detector"``, ``"beam"``, or the image factor's name.
    field : str
        Field of the configuration (the image factor's name for the two image factors).
    index : int or None
        Position in a three-valued field.
    lower, upper : float
        Bounds the refinement keeps the value in.
    panel : int or None
        The panel of a multi-panel detector whose ``field`` it is (a ``DetectorConfig`` field).
    group : int or None
        The group of a multi-panel detector whose move it is (``field`` is
        ``group_shift_mm`` or ``group_rotation_deg``).
    """

    name: str
    config: str
    field: str
    index: Optional[int]
    lower: float
    upper: float
    panel: Optional[int] = None
    group: Optional[int] = None

    @property
    def is_orientation(self) -> bool:
        """True for the crystal's rotation angles (phi and misset)."""
        return self.config == "crystal" and self.field in ORIENTATION_FIELDS

    @property
    def is_mosaic_spread(self) -> bool:
        """True for the crystal's mosaic spread."""
        return self.config == "crystal" and self.field == "mosaic_spread_deg"

    @property
    def fitted_to_spot_positions(self) -> bool:
        """True when the spot-position fit moves the parameter: it moves spots on the detector
        in a way the positions alone determine (see :data:`NOT_FITTED_TO_SPOT_POSITIONS`)."""
        return self.config not in IMAGE_FACTORS and self.field not in NOT_FITTED_TO_SPOT_POSITIONS


@fill_doc
def mosaic_spread_index(parameters: Sequence[Parameter]) -> Optional[int]:
    """Position of the mosaic spread among ``parameters``, or None when it is not refined.

    Parameters
    ----------
    %(refined_parameters)s

    Returns
    -------
    int or None
        The index of the first parameter that is the mosaic spread, or None.
    """
    return next((p for p, parameter in enumerate(parameters) if parameter.is_mosaic_spread), None)


@fill_doc
def parse_parameters(parameters: Mapping[str, float], configs: Mapping[str, object],
                     bounds: Optional[Mapping[str, Tuple[float, float]]] = None
                     ) -> Tuple[List[Parameter], torch.Tensor]:
    """Check the names, attach bounds, and return the parameters and their starting values.

    Parameters
    ----------
    parameters : mapping of str to float
        Starting value of each parameter to refine, by name.
    %(refine_configs)s
    bounds : mapping of str to (float, float), optional
        Bounds that replace the defaults, by name (``None`` or ±inf for an open side).

    Returns
    -------
    parameters : list of Parameter
    start : tensor (P,), float64

    Raises
    ------
    ValueError
        No parameters, an unknown or non-refinable name, a non-finite start, a start outside
        its bounds, a field the configuration leaves unset, or bounds for a name not refined.
    """
    if not parameters:
        raise ValueError("parameters is empty: name at least one parameter to refine, "
                         "e.g. {'crystal.phi_start_deg': 1.0}")
    bounds = dict(bounds or {})
    unknown = set(bounds) - set(parameters)
    if unknown:
        raise ValueError(f"bounds given for {sorted(unknown)}, which are not refined (parameters: {sorted(parameters)})")
    parsed, start = [], []
    for name, value in parameters.items():
        parameter = _parameter(name, configs)
        lower, upper = bounds.get(name, (parameter.lower, parameter.upper))
        lower = -math.inf if lower is None else float(lower)
        upper = math.inf if upper is None else float(upper)
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"parameters[{name!r}] = {value!r}: the starting value must be finite")
        if not lower <= value <= upper:
            raise ValueError(f"parameters[{name!r}] = {value!r} is outside its bounds [{lower:g}, {upper:g}]")
        parsed.append(dataclasses.replace(parameter, lower=lower, upper=upper))
        start.append(value)
    return parsed, torch.tensor(start, dtype=torch.float64)


def _parameter(name: str, configs: Mapping[str, object]) -> Parameter:
    if name == SCALE:
        return Parameter(SCALE, SCALE, SCALE, None, _TINY, math.inf)
    if name == BACKGROUND_SCALE:
        return Parameter(BACKGROUND_SCALE, BACKGROUND_SCALE, BACKGROUND_SCALE, None, 0.0, math.inf)
    part = _PART_NAME.match(name) if isinstance(name, str) else None
    if part is not None:
        return _part_parameter(name, part, configs["detector"])
    match = _NAME.match(name) if isinstance(name, str) else None
    if match is None:
        raise ValueError(f"parameter name {name!r} is not 'scale', 'background_scale' nor 'crystal.<field>', "
                         f"'detector.<field>' or 'beam.<field>' (with [0], [1] or [2] for a field of three "
                         f"values), nor 'detector.panels[k].<field>' or 'detector.groups[g].shift_mm[i]' / "
                         f"'rotation_deg[i]'")
    config, field, index = match.group(1), match.group(2), match.group(3)
    if config == "detector" and isinstance(configs["detector"], MultiPanelDetectorConfig):
        raise ValueError(f"parameter {name!r}: the detector has several panels; name the panel, e.g. "
                         f"'detector.panels[0].{field}" + (f"[{index}]'" if index is not None else "'"))
    return _checked(name, config, field, index, configs[config], REFINABLE_FIELDS[config])


def _part_parameter(name: str, match: "re.Match", detector: object) -> Parameter:
    """A parameter of one panel or one group of a multi-panel detector."""
    kind, number, field, index = match.group(1), int(match.group(2)), match.group(3), match.group(4)
    if not isinstance(detector, MultiPanelDetectorConfig):
        raise ValueError(f"parameter {name!r}: the detector is a DetectorConfig of one panel; name its fields "
                         f"as 'detector.<field>' (its move: 'detector.panel_shift_mm[i]', "
                         f"'detector.panel_rotation_deg[i]')")
    count = detector.n_panels if kind == "panels" else len(detector.groups)
    if number >= count:
        raise ValueError(f"parameter {name!r}: the detector has {count} {kind} (0 to {count - 1})")
    if kind == "panels":
        parameter = _checked(name, "detector", PANEL_ALIASES.get(field, field), index, detector.panels[number],
                             REFINABLE_FIELDS["detector"])
        return dataclasses.replace(parameter, panel=number)
    if field not in GROUP_FIELDS:
        raise ValueError(f"parameter {name!r}: a group's parameters are 'shift_mm[i]' and 'rotation_deg[i]'")
    if index is None or int(index) >= 3:
        raise ValueError(f"parameter {name!r}: a group's {field} holds 3 values; name one, e.g. "
                         f"'detector.groups[{number}].{field}[0]'")
    return Parameter(name, "detector", GROUP_FIELDS[field], int(index), -math.inf, math.inf, group=number)


def _checked(name: str, config: str, field: str, index: Optional[str], target: object,
             fields: Dict[str, Tuple[int, Tuple[float, float]]]) -> Parameter:
    """The parameter of ``field`` of the configuration ``target``, its index checked."""
    if field not in fields:
        raise ValueError(f"parameter {name!r}: {config}.{field} is not a refinable field; refinable {config} "
                         f"fields: {', '.join(sorted(fields))}")
    length, (lower, upper) = fields[field]
    if length and index is None:
        raise ValueError(f"parameter {name!r}: {config}.{field} holds {length} values; name one, "
                         f"e.g. '{config}.{field}[0]'")
    if not length and index is not None:
        raise ValueError(f"parameter {name!r}: {config}.{field} holds one value; drop the index")
    if index is not None and int(index) >= length:
        raise ValueError(f"parameter {name!r}: index {index} is out of range for {config}.{field} "
                         f"({length} values)")
    if getattr(target, field) is None and field not in _UNSET_ALLOWED:
        raise ValueError(f"parameter {name!r}: {config}.{field} is not set in the {config} configuration; "
                         f"the refinement only moves fields the configuration uses")
    return Parameter(name, config, field, None if index is None else int(index), lower, upper)


@fill_doc
def configs_with(configs: Mapping[str, object], parameters: Sequence[Parameter],
                 values: Sequence[torch.Tensor]) -> Tuple[CrystalConfig, DetectorConfig, BeamConfig]:
    """The crystal, detector and beam configurations with the refined fields set to ``values``
    (tensors, possibly carrying gradients or tangents); a configuration without a refined field
    is returned as it is, and the scale, not a field, is skipped.

    Parameters
    ----------
    %(refine_configs)s
    %(refined_parameters)s
    values : sequence of tensor ()
        The value of each parameter, in the order of ``parameters``.

    Returns
    -------
    crystal : CrystalConfig
    detector : DetectorConfig or MultiPanelDetectorConfig
        A panel's parameter replaces the field of that panel's configuration, a group's its
        entry of ``group_shift_mm`` or ``group_rotation_deg`` (made of zeros for every group when
        the configuration gives none).
    beam : BeamConfig
    """
    updates: Dict[str, Dict[str, object]] = {"crystal": {}, "detector": {}, "beam": {}}
    panel_updates: Dict[int, Dict[str, object]] = {}
    group_updates: Dict[str, List[List[object]]] = {}
    for parameter, value in zip(parameters, values):
        if parameter.config in IMAGE_FACTORS:
            continue
        if parameter.group is not None:
            detector = configs["detector"]
            moves = group_updates.setdefault(parameter.field, [
                _as_items(triple) for triple in (getattr(detector, parameter.field)
                                                 or [(0.0, 0.0, 0.0)] * len(detector.groups))])
            moves[parameter.group][parameter.index] = value
            continue
        if parameter.panel is not None:
            changes, target = panel_updates.setdefault(parameter.panel, {}), configs["detector"].panels[parameter.panel]
        else:
            changes, target = updates[parameter.config], configs[parameter.config]
        if parameter.index is None:
            changes[parameter.field] = value
        else:
            items = changes.setdefault(parameter.field, _as_items(getattr(target, parameter.field)))
            items[parameter.index] = value
    if panel_updates:
        panels = configs["detector"].panels
        updates["detector"]["panels"] = tuple(_replaced(panel, panel_updates.get(k, {}))
                                              for k, panel in enumerate(panels))
    for field, moves in group_updates.items():
        updates["detector"][field] = tuple(tuple(move) for move in moves)
    return tuple(_replaced(configs[name], updates[name]) for name in ("crystal", "detector", "beam"))


@fill_doc
def parameters_at(names: Sequence[str], configs: Mapping[str, object]) -> Tuple[List[Parameter], torch.Tensor]:
    """The named parameters with their default bounds, started at the configurations' values.

    Parameters
    ----------
    names : sequence of str
        Parameter names (:func:`parse_parameters`), each once.
    %(refine_configs)s

    Returns
    -------
    parameters : list of Parameter
    start : tensor (P,), float64

    Raises
    ------
    ValueError
        A name given twice, or as for :func:`parse_parameters`.
    """
    repeated = sorted({name for name in names if list(names).count(name) > 1})
    if repeated:
        raise ValueError(f"parameters named more than once: {repeated}")
    values = {name: config_value(_parameter(name, configs), configs) for name in names}
    return parse_parameters(values, configs)


@fill_doc
def config_value(parameter: Parameter, configs: Mapping[str, object]) -> float:
    """The value a configuration gives a parameter's field (the inverse of :func:`configs_with`).

    Parameters
    ----------
    parameter : Parameter
        A parameter of a configuration field (not an image factor).
    %(refine_configs)s

    Returns
    -------
    float
        A group's move that the configuration leaves unset is 0, a beam centre the
        convention's default (:func:`~nanobrag_torch.conventions.default_beam_center_mm`).
    """
    if parameter.group is not None:
        detector = configs["detector"]
        moves = getattr(detector, parameter.field) or [(0.0, 0.0, 0.0)] * len(detector.groups)
        return float(moves[parameter.group][parameter.index])
    target = (configs["detector"].panels[parameter.panel] if parameter.panel is not None
              else configs[parameter.config])
    value = getattr(target, parameter.field)
    if value is None:  # only a beam centre may be unset (parse_parameters)
        default = default_beam_center_mm(target.detector_convention, target.pixel_size_mm, target.fpixels,
                                         target.spixels)
        return float(default[_UNSET_ALLOWED.index(parameter.field)])
    return float(value if parameter.index is None else value[parameter.index])


def _replaced(config, changes: Dict[str, object]):
    """``config`` with ``changes`` (lists of values become tuples); itself when there are none."""
    if not changes:
        return config
    return dataclasses.replace(config, **{field: tuple(v) if isinstance(v, list) else v
                                          for field, v in changes.items()})


def _as_items(value) -> List[object]:
    if isinstance(value, torch.Tensor):
        return list(value.reshape(-1).unbind())
    return list(value)
