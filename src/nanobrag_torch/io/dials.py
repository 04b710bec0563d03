"""DIALS experiment lists (``.expt``, the dxtbx JSON schema): :func:`read_experiments` and
:func:`write_experiments`.

An experiment list holds top-level lists of models (``beam``, ``detector``, ``goniometer``,
``scan``, ``crystal``, ``imageset``) and an ``experiment`` list whose entries refer to them by
index; experiments that share a model refer to the same index. Every vector is in DIALS's
laboratory frame, which the configurations use as theirs:

* the beam's ``direction`` points from the sample to the source, so nanoBragg's beam vector
  (the propagation direction, ``DetectorConfig.custom_beam_vector``) is its negative;
* a panel's ``origin`` is the outer corner of its pixel (0, 0) in mm
  (``DetectorConfig.pix0_override_m`` in metres), its ``fast_axis`` and ``slow_axis`` are the
  panel's axes and its normal is ``fast × slow``;
* the beam's ``polarization_normal`` is the normal of the plane the E-vector lies in, with
  ``polarization_fraction`` of the intensity polarized in that plane: nanoBragg's polarization
  axis is ``beam × normal`` and its Kahn factor is ``2 · fraction − 1``;
* the crystal's ``real_space_a/b/c`` (Å) are the cell vectors at the goniometer's datum
  (φ = 0), after its fixed rotation and before its setting rotation, both of which are folded
  into the crystal's vectors and the spindle axis on reading.

What an experiment list does not hold keeps the configurations' defaults: the flux and
fluence, the mosaic domains and seed, the structure factors (``default_F`` 0), the number of
phi steps (1), the oversampling (1) and the sensor's layers (1). The stills fields
``ML_half_mosaicity_deg`` and ``ML_domain_size_ang`` become ``mosaic_spread_deg`` (both are
half-widths: nanoBragg's spread is the largest rotation of a domain from the mean orientation,
so the factor is 1) and ``N_cells`` (the domain size over each cell edge, rounded, at least 1).
A scan's first image gives ``phi_start_deg`` and ``osc_range_deg``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..config import BeamConfig, CrystalConfig, DetectorConfig, DetectorConvention, MultiPanelDetectorConfig
from .atomic import atomic_write
from .text import read_text

DetectorConfigs = Union[DetectorConfig, MultiPanelDetectorConfig]
"""A detector of one panel or of several."""

AXIS_TOLERANCE = 1e-6
"""Largest ``|cos|`` of the angle between a panel's fast and slow axes (and deviation of a
rotation matrix from orthonormal) that an experiment list may have: DIALS writes them to
double precision, so anything larger is an error in the file."""

DEFAULT_POLARIZATION_NORMAL = (0.0, 1.0, 0.0)
"""dxtbx's polarization normal when a beam gives none."""
DEFAULT_POLARIZATION_FRACTION = 0.999
"""dxtbx's polarization fraction when a beam gives none."""
DEFAULT_HALL_SYMBOL = " P 1"
"""Space group of a crystal that names none."""
TRUSTED_RANGE = (0.0, 65535.0)
"""The trusted range written for every panel: that of nanoBragg's 16-bit SMV images (a read
one is checked and not used)."""


@dataclass(frozen=True)
class Experiment:
    """One experiment of an experiment list, as configurations.

    Attributes
    ----------
    crystal : CrystalConfig or None
        Orientation (``mosflm_a_star/b_star/c_star`` from the real-space vectors), phi settings
        and spindle axis, and the stills' mosaic spread and domain size; None for an experiment
        without a crystal (as ``dials.import`` writes).
    detector : DetectorConfig or MultiPanelDetectorConfig
        CUSTOM panels placed by ``pix0_override_m``, with the beam's propagation direction;
        a detector of one panel is a ``DetectorConfig``.
    beam : BeamConfig
        Wavelength, polarization axis and Kahn factor.
    identifier : str
        The experiment's identifier (``""`` for none).
    space_group_hall_symbol : str
        The crystal's space group (Hall symbol).
    image_range : tuple of 2 ints
        The scan's first and last image (``(1, 1)`` for a still).
    imageset : dict or None
        The imageset entry as read (where the images are), written back unchanged.
    """

    crystal: Optional[CrystalConfig]
    detector: DetectorConfigs
    beam: BeamConfig
    identifier: str = ""
    space_group_hall_symbol: str = DEFAULT_HALL_SYMBOL
    image_range: Tuple[int, int] = (1, 1)
    imageset: Optional[Dict[str, Any]] = None

    def with_configs(self, crystal: Optional[CrystalConfig] = None, detector: Optional[DetectorConfigs] = None,
                     beam: Optional[BeamConfig] = None) -> "Experiment":
        """A copy with the configurations given replaced (the others kept): how refined
        configurations are written back, e.g. ``experiment.with_configs(*configs_with(...))``
        or ``experiment.with_values(result.values)``.

        Parameters
        ----------
        crystal, detector, beam : config, optional
            The new configurations (tensor fields are written as their values).

        Returns
        -------
        Experiment
        """
        changes = {name: value for name, value in (("crystal", crystal), ("detector", detector), ("beam", beam))
                   if value is not None}
        return dataclasses.replace(self, **changes)

    def with_values(self, values: Mapping[str, float]) -> "Experiment":
        """A copy with refined parameter values set in its configurations.

        Parameters
        ----------
        values : mapping of str to float
            Values by parameter name, as :attr:`RefinementResult.values
            <nanobrag_torch.refine.result.RefinementResult.values>` holds them (``"scale"`` is
            not a configuration field and is skipped).

        Returns
        -------
        Experiment

        Raises
        ------
        ValueError
            A name that is not a refinable parameter of these configurations.
        """
        from ..refine.parameters import configs_with, parse_parameters

        configs = {"crystal": self.crystal, "detector": self.detector, "beam": self.beam}
        chosen = {name: value for name, value in values.items() if name != "scale"}
        if not chosen:
            return self
        parameters, start = parse_parameters(chosen, configs, {name: (None, None) for name in chosen})
        crystal, detector, beam = configs_with(configs, parameters, [float(v) for v in start])
        return self.with_configs(crystal, detector, beam)


# ---------------------------------------------------------------------------------- reading
class _Reader:
    """Typed access to the parsed JSON, each failure a ValueError naming the file and field."""

    def __init__(self, path: Union[str, Path]):
        self.path = path

    def fail(self, where: str, problem: str) -> None:
        raise ValueError(f"{self.path}: {where}: {problem}")

    def mapping(self, value: Any, where: str) -> Dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(where, f"expected an object, got {_show(value)}")
        return value

    def items(self, value: Any, where: str) -> List[Any]:
        if not isinstance(value, list):
            self.fail(where, f"expected a list, got {_show(value)}")
        return value

    def get(self, obj: Dict[str, Any], key: str, where: str, default: Any = KeyError) -> Any:
        if key not in obj or obj[key] is None:
            if default is KeyError:
                self.fail(f"{where}.{key}", "missing")
            return default
        return obj[key]

    def number(self, value: Any, where: str, at_least: Optional[float] = None, above: Optional[float] = None) -> float:
        if not _finite_number(value):
            self.fail(where, f"expected a finite number, got {_show(value)}")
        if at_least is not None and value < at_least:
            self.fail(where, f"must be >= {at_least:g}, got {value!r}")
        if above is not None and value <= above:
            self.fail(where, f"must be > {above:g}, got {value!r}")
        return float(value)

    def integer(self, value: Any, where: str, at_least: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < at_least:
            self.fail(where, f"expected an integer >= {at_least}, got {_show(value)}")
        return value

    def numbers(self, value: Any, where: str, count: int) -> np.ndarray:
        if not (isinstance(value, list) and len(value) == count and all(_finite_number(v) for v in value)):
            self.fail(where, f"expected {count} numbers, got {_show(value)}")
        return np.array(value, dtype=float)

    def direction(self, value: Any, where: str) -> np.ndarray:
        vector = self.numbers(value, where, 3)
        length = float(np.linalg.norm(vector))
        if not (1e-150 < length < 1e150):
            self.fail(where, f"expected a direction, got the vector {value} of length {length:g}")
        return vector

    def rotation(self, value: Any, where: str) -> np.ndarray:
        matrix = self.numbers(value, where, 9).reshape(3, 3)
        if not np.allclose(matrix @ matrix.T, np.eye(3), rtol=0, atol=AXIS_TOLERANCE) or np.linalg.det(matrix) < 0:
            self.fail(where, f"expected a rotation matrix (9 numbers, row by row), got {value}")
        return matrix

    def index(self, experiment: Dict[str, Any], key: str, models: Dict[str, List[Any]], where: str,
              required: bool) -> Optional[int]:
        value = experiment.get(key)
        if value is None:
            if required:
                self.fail(f"{where}.{key}", "missing")
            return None
        count = len(models.get(key, []))
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < count:
            self.fail(f"{where}.{key}", f"expected the index of one of the {count} {key} models, got {_show(value)}")
        return value



MIN_CELL_LENGTH_A = 0.5
"""Shortest cell vector a crystal model may have, Å (no crystal's cell is shorter)."""

MAX_CELL_LENGTH_A = 1e5
"""Longest cell vector a crystal model may have, Å."""

def _finite_number(value: Any) -> bool:
    """A JSON number (not a bool) that is a finite double (JSON integers may be of any size)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _show(value: Any) -> str:
    text = json.dumps(value) if _jsonable(value) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def read_experiments(path: Union[str, Path]) -> List[Experiment]:
    """Read a DIALS experiment list.

    Parameters
    ----------
    path : str or Path
        The ``.expt`` (JSON) file.

    Returns
    -------
    list of Experiment
        In the file's order; experiments that share a model (the same index) share its
        configuration object (the detector's together with the beam's, whose direction the
        detector configuration carries).

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        The file is not JSON, not an experiment list, or a field is missing, of the wrong type
        or unsupported (non-square pixels, axes that are not perpendicular, a left-handed
        cell); the message names the file and the field (``"refined.expt:
        detector[0].panels[1].fast_axis: expected 3 numbers, got ..."``).
    """
    reader = _Reader(path)
    text = read_text(path)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        reader.fail(f"line {error.lineno} column {error.colno}", f"not JSON ({error.msg})")
    except RecursionError:
        reader.fail("(document)", "nested too deeply to be an experiment list")
    root = reader.mapping(document, "(document)")
    if root.get("__id__") != "ExperimentList":
        reader.fail("__id__", f"expected \"ExperimentList\", got {_show(root.get('__id__'))}")
    models = {key: reader.items(root.get(key) or [], key)
              for key in ("beam", "detector", "goniometer", "scan", "crystal", "imageset")}
    beams: Dict[int, Tuple[BeamConfig, Tuple[float, float, float]]] = {}
    detectors: Dict[Tuple[int, int], DetectorConfigs] = {}
    crystals: Dict[Tuple[Optional[int], ...], Tuple[CrystalConfig, str]] = {}
    experiments = []
    for e, entry in enumerate(reader.items(reader.get(root, "experiment", "(document)"), "experiment")):
        where = f"experiment[{e}]"
        entry = reader.mapping(entry, where)
        index = {key: reader.index(entry, key, models, where, key in ("beam", "detector"))
                 for key in ("beam", "detector", "goniometer", "scan", "crystal", "imageset")}
        if index["beam"] not in beams:
            beams[index["beam"]] = _read_beam(reader, models["beam"][index["beam"]], f"beam[{index['beam']}]")
        beam, propagation = beams[index["beam"]]
        key = (index["detector"], index["beam"])
        if key not in detectors:
            detectors[key] = _read_detector(reader, models["detector"][index["detector"]],
                                            f"detector[{index['detector']}]", propagation)
        crystal, hall = None, DEFAULT_HALL_SYMBOL
        if index["crystal"] is not None:
            key = (index["crystal"], index["goniometer"], index["scan"])
            if key not in crystals:
                crystals[key] = _read_crystal(reader, models, index)
            crystal, hall = crystals[key]
        image_range = (1, 1)
        if index["scan"] is not None:
            image_range = _image_range(reader, models["scan"][index["scan"]], f"scan[{index['scan']}]")
        imageset = None
        if index["imageset"] is not None:
            imageset = reader.mapping(models["imageset"][index["imageset"]], f"imageset[{index['imageset']}]")
        identifier = entry.get("identifier") or ""
        if not isinstance(identifier, str):
            reader.fail(f"{where}.identifier", f"expected a string, got {_show(identifier)}")
        experiments.append(Experiment(crystal=crystal, detector=detectors[(index["detector"], index["beam"])],
                                      beam=beam, identifier=identifier, space_group_hall_symbol=hall,
                                      image_range=image_range, imageset=imageset))
    return experiments


def _read_beam(reader: _Reader, obj: Any, where: str) -> Tuple[BeamConfig, Tuple[float, float, float]]:
    obj = reader.mapping(obj, where)
    direction = reader.direction(reader.get(obj, "direction", where), f"{where}.direction")
    wavelength = reader.number(reader.get(obj, "wavelength", where), f"{where}.wavelength", above=0)
    normal = reader.direction(reader.get(obj, "polarization_normal", where, list(DEFAULT_POLARIZATION_NORMAL)),
                              f"{where}.polarization_normal")
    fraction = reader.number(reader.get(obj, "polarization_fraction", where, DEFAULT_POLARIZATION_FRACTION),
                             f"{where}.polarization_fraction", at_least=0)
    if fraction > 1:
        reader.fail(f"{where}.polarization_fraction", f"must be <= 1, got {fraction!r}")
    propagation = -direction
    axis = np.cross(propagation / np.linalg.norm(propagation), normal / np.linalg.norm(normal))
    if np.linalg.norm(axis) < AXIS_TOLERANCE:
        reader.fail(f"{where}.polarization_normal", f"{normal.tolist()} is parallel to the beam direction "
                                                     f"{direction.tolist()}")
    beam = _config(reader, where, BeamConfig, wavelength_A=wavelength, polarization_factor=2 * fraction - 1,
                   polarization_axis=tuple((axis / np.linalg.norm(axis)).tolist()))
    return beam, tuple(propagation.tolist())


def _config(reader: _Reader, where: str, cls, **fields):
    """A configuration, its ConfigError (a field outside its rule) named by the file's field."""
    try:
        return cls(**fields)
    except ValueError as error:
        reader.fail(where, str(error))


def _read_detector(reader: _Reader, obj: Any, where: str, propagation: Tuple[float, float, float]) -> DetectorConfigs:
    obj = reader.mapping(obj, where)
    panels = reader.items(reader.get(obj, "panels", where), f"{where}.panels")
    if not panels:
        reader.fail(f"{where}.panels", "a detector needs at least one panel")
    frames = [_local_frame(reader, reader.mapping(p, f"{where}.panels[{k}]"), f"{where}.panels[{k}]")
              for k, p in enumerate(panels)]
    groups: List[Tuple[int, ...]] = []
    if obj.get("hierarchy") is not None:
        frames = _hierarchy(reader, obj["hierarchy"], f"{where}.hierarchy", frames, groups)
    configs = [_read_panel(reader, panel, f"{where}.panels[{k}]", frame, propagation)
               for k, (panel, frame) in enumerate(zip(panels, frames))]
    if len(configs) == 1:
        return configs[0]
    return _config(reader, where, MultiPanelDetectorConfig, panels=tuple(configs), groups=tuple(groups))


Frame = Tuple[np.ndarray, np.ndarray, np.ndarray]
"""Origin (mm), fast axis and slow axis of a panel or a hierarchy node."""


def _local_frame(reader: _Reader, obj: Dict[str, Any], where: str) -> Frame:
    fast = reader.direction(reader.get(obj, "fast_axis", where), f"{where}.fast_axis")
    slow = reader.direction(reader.get(obj, "slow_axis", where), f"{where}.slow_axis")
    origin = reader.numbers(reader.get(obj, "origin", where), f"{where}.origin", 3)
    fast, slow = fast / np.linalg.norm(fast), slow / np.linalg.norm(slow)
    cosine = abs(float(fast @ slow))
    if cosine > AXIS_TOLERANCE:
        reader.fail(f"{where}.slow_axis", f"not perpendicular to fast_axis (the angle between them is "
                                          f"{math.degrees(math.acos(min(cosine, 1.0))):.6g} degrees from 0 or 180)")
    return origin, fast, slow


def _within(parent: Frame, local: Frame) -> Frame:
    """A node's lab frame from its parent's lab frame and its own frame in the parent's."""
    origin, fast, slow = parent
    basis = np.stack([fast, slow, np.cross(fast, slow)], axis=1)  # columns: the parent's axes
    return origin + basis @ local[0], basis @ local[1], basis @ local[2]


def _hierarchy(reader: _Reader, node: Any, where: str, locals_: List[Frame], groups: List[Tuple[int, ...]],
               parent: Optional[Frame] = None) -> List[Frame]:
    """The panels' lab frames from their frames within the hierarchy's groups; ``groups``
    receives every group below the root (depth first), each as its sorted panel indices."""
    frames: List[Optional[Frame]] = [None] * len(locals_)

    def visit(node: Any, where: str, frame: Frame, depth: int) -> List[int]:
        node = reader.mapping(node, where)
        if depth > 64:
            reader.fail(where, "the hierarchy is nested more than 64 deep")
        if "panel" in node:
            k = node["panel"]
            if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < len(locals_):
                reader.fail(f"{where}.panel", f"expected a panel index from 0 to {len(locals_) - 1}, got {_show(k)}")
            if frames[k] is not None:
                reader.fail(f"{where}.panel", f"panel {k} appears twice in the hierarchy")
            frames[k] = _within(frame, locals_[k])
            return [k]
        own = _within(frame, _local_frame(reader, node, where))
        members: List[int] = []
        position = len(groups)
        for c, child in enumerate(reader.items(reader.get(node, "children", where), f"{where}.children")):
            members += visit(child, f"{where}.children[{c}]", own, depth + 1)
        if depth > 0:
            if not members:
                reader.fail(f"{where}.children", "a group holds no panel")
            groups.insert(position, tuple(sorted(members)))
        return members

    lab = (np.zeros(3), np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]))
    visit(node, where, lab, 0)
    missing = [k for k, frame in enumerate(frames) if frame is None]
    if missing:
        reader.fail(where, f"panels {missing} are not in the hierarchy")
    return frames


def _read_panel(reader: _Reader, obj: Dict[str, Any], where: str, frame: Frame,
                propagation: Tuple[float, float, float]) -> DetectorConfig:
    origin_mm, fast, slow = frame
    pixel = reader.numbers(reader.get(obj, "pixel_size", where), f"{where}.pixel_size", 2)
    if not (pixel > 0).all() or abs(pixel[0] - pixel[1]) > 1e-9 * pixel[0]:
        reader.fail(f"{where}.pixel_size", f"expected two equal sizes > 0 (nanoBragg's pixels are square), got "
                                           f"{pixel.tolist()}")
    size = reader.get(obj, "image_size", where)
    if not (isinstance(size, list) and len(size) == 2):
        reader.fail(f"{where}.image_size", f"expected 2 integers (fast, slow), got {_show(size)}")
    fpixels = reader.integer(size[0], f"{where}.image_size[0]", 1)
    spixels = reader.integer(size[1], f"{where}.image_size[1]", 1)
    if obj.get("trusted_range") is not None:
        reader.numbers(obj["trusted_range"], f"{where}.trusted_range", 2)
    thickness_mm = reader.number(reader.get(obj, "thickness", where, 0.0), f"{where}.thickness", at_least=0)
    mu_per_mm = reader.number(reader.get(obj, "mu", where, 0.0), f"{where}.mu", at_least=0)
    if thickness_mm > 0 and mu_per_mm == 0:
        reader.fail(f"{where}.mu", "a sensor of thickness > 0 needs its attenuation coefficient mu > 0")
    sensor = {}
    if thickness_mm > 0:
        sensor = dict(detector_thick_um=thickness_mm * 1000, detector_abs_um=1000 / mu_per_mm)
    normal = np.cross(fast, slow)
    return _config(reader, where, DetectorConfig, detector_convention=DetectorConvention.CUSTOM,
                   custom_fdet_vector=tuple(fast.tolist()), custom_sdet_vector=tuple(slow.tolist()),
                   custom_odet_vector=tuple((normal / np.linalg.norm(normal)).tolist()),
                   custom_beam_vector=propagation, pix0_override_m=tuple((origin_mm * 1e-3).tolist()),
                   pixel_size_mm=float(pixel[0]), fpixels=fpixels, spixels=spixels, oversample=1, **sensor)


def _image_range(reader: _Reader, obj: Any, where: str) -> Tuple[int, int]:
    obj = reader.mapping(obj, where)
    value = reader.get(obj, "image_range", where, [1, 1])
    if not (isinstance(value, list) and len(value) == 2):
        reader.fail(f"{where}.image_range", f"expected 2 integers, got {_show(value)}")
    first = reader.integer(value[0], f"{where}.image_range[0]", 0)
    last = reader.integer(value[1], f"{where}.image_range[1]", first)
    return first, last


def _read_crystal(reader: _Reader, models: Dict[str, List[Any]], index: Dict[str, Optional[int]]
                  ) -> Tuple[CrystalConfig, str]:
    where = f"crystal[{index['crystal']}]"
    obj = reader.mapping(models["crystal"][index["crystal"]], where)
    real = np.stack([reader.numbers(reader.get(obj, f"real_space_{axis}", where), f"{where}.real_space_{axis}", 3)
                     for axis in "abc"])
    hall = reader.get(obj, "space_group_hall_symbol", where, DEFAULT_HALL_SYMBOL)
    if not isinstance(hall, str):
        reader.fail(f"{where}.space_group_hall_symbol", f"expected a string, got {_show(hall)}")
    fields: Dict[str, Any] = {}
    if index["goniometer"] is not None:
        g_where = f"goniometer[{index['goniometer']}]"
        gonio = reader.mapping(models["goniometer"][index["goniometer"]], g_where)
        axis = reader.direction(reader.get(gonio, "rotation_axis", g_where), f"{g_where}.rotation_axis")
        fixed = reader.rotation(reader.get(gonio, "fixed_rotation", g_where, np.eye(3).reshape(-1).tolist()),
                                f"{g_where}.fixed_rotation")
        setting = reader.rotation(reader.get(gonio, "setting_rotation", g_where, np.eye(3).reshape(-1).tolist()),
                                  f"{g_where}.setting_rotation")
        real = real @ (setting @ fixed).T
        fields["spindle_axis"] = tuple((setting @ axis).tolist())
    if index["scan"] is not None:
        s_where = f"scan[{index['scan']}]"
        scan = reader.mapping(models["scan"][index["scan"]], s_where)
        start, width = reader.numbers(reader.get(scan, "oscillation", s_where, [0.0, 0.0]), f"{s_where}.oscillation", 2)
        fields.update(phi_start_deg=float(start), osc_range_deg=float(width))
    lengths = np.linalg.norm(real, axis=1)
    for name, length in zip(("real_space_a", "real_space_b", "real_space_c"), lengths):
        if not MIN_CELL_LENGTH_A <= float(length) <= MAX_CELL_LENGTH_A:
            reader.fail(f"{where}.{name}", f"a cell vector {float(length):g} Å long (expected "
                        f"{MIN_CELL_LENGTH_A:g} to {MAX_CELL_LENGTH_A:g} Å)")
    volume = float(real[0] @ np.cross(real[1], real[2]))
    if not volume > 1e-6 * float(np.prod(lengths)):
        reader.fail(f"{where}.real_space_c", f"the cell vectors make no right-handed cell (a . (b x c) = {volume:g})")
    reciprocal = [np.cross(real[1], real[2]) / volume, np.cross(real[2], real[0]) / volume,
                  np.cross(real[0], real[1]) / volume]
    if obj.get("ML_half_mosaicity_deg") is not None:
        fields["mosaic_spread_deg"] = reader.number(obj["ML_half_mosaicity_deg"], f"{where}.ML_half_mosaicity_deg",
                                                    at_least=0)
    if obj.get("ML_domain_size_ang") is not None:
        domain = reader.number(obj["ML_domain_size_ang"], f"{where}.ML_domain_size_ang", above=0)
        fields["N_cells"] = tuple(max(1, int(round(domain / float(length)))) for length in lengths)
    config = _config(reader, where, CrystalConfig, mosflm_a_star=tuple(reciprocal[0].tolist()),
                     mosflm_b_star=tuple(reciprocal[1].tolist()), mosflm_c_star=tuple(reciprocal[2].tolist()),
                     **fields)
    return config, hall


# ---------------------------------------------------------------------------------- writing
def write_experiments(path: Union[str, Path], experiments: Sequence[Experiment]) -> None:
    """Write an experiment list that DIALS reads (the dxtbx JSON schema), atomically.

    Every model is written once and referred to by index: experiments whose models are equal
    (the same configuration, or configurations that write the same) share one entry. A
    panel's shift and rotation and its groups' moves are written as where they put the panel;
    the groups become the detector's hierarchy (with frames equal to the lab frame). Tensor
    fields are written as their values.

    Parameters
    ----------
    path : str or Path
        The ``.expt`` file to write.
    experiments : sequence of Experiment
        The experiments, e.g. :func:`read_experiments`'s, with refined configurations
        (:meth:`Experiment.with_values`).

    Raises
    ------
    ValueError
        The groups of a detector overlap without one holding the other (DIALS's hierarchy is a
        tree), or the polarization axis is parallel to the beam.
    """
    lists: Dict[str, List[Any]] = {key: [] for key in ("beam", "detector", "goniometer", "scan", "crystal",
                                                       "imageset")}
    entries = []
    for experiment in experiments:
        with torch.no_grad():
            detector, propagation, convention = _detector_dict(experiment.detector)
            entry: Dict[str, Any] = {"__id__": "Experiment", "identifier": experiment.identifier}
            entry["beam"] = _shared(lists["beam"], _beam_dict(experiment.beam, propagation, convention))
            entry["detector"] = _shared(lists["detector"], detector)
            if experiment.crystal is not None:
                crystal, goniometer, scan = _crystal_dicts(experiment, convention)
                entry["crystal"] = _shared(lists["crystal"], crystal)
                if goniometer is not None:
                    entry["goniometer"] = _shared(lists["goniometer"], goniometer)
                    entry["scan"] = _shared(lists["scan"], scan)
            if experiment.imageset is not None:
                entry["imageset"] = _shared(lists["imageset"], experiment.imageset)
        entries.append(entry)
    document = {"__id__": "ExperimentList", "experiment": entries, **lists}
    with atomic_write(path, "w") as handle:
        json.dump(document, handle, indent=2)
        handle.write("\n")


def _shared(models: List[Any], model: Any) -> int:
    """The index of ``model`` in ``models``, appended when no equal model is there."""
    for i, existing in enumerate(models):
        if existing == model:
            return i
    models.append(model)
    return len(models) - 1


def _floats(vector) -> List[float]:
    return [float(v) for v in (vector.detach().cpu().reshape(-1) if isinstance(vector, torch.Tensor) else vector)]


def _detector_dict(config: DetectorConfigs):
    from ..models.detector import Detector

    detector = Detector(config)
    geometries = detector.geometries()
    panels = []
    for k, (panel, geometry) in enumerate(zip(detector.panel_configs, geometries)):
        thickness_mm = float(panel.detector_thick_um) / 1000
        depth_um = panel.detector_abs_um if panel.detector_abs_um is not None else panel.detector_thick_um
        panels.append({
            "name": f"panel{k}", "type": "SENSOR_PAD", "fast_axis": _floats(geometry.fdet),
            "slow_axis": _floats(geometry.sdet), "origin": _floats(geometry.pix0_m * 1000),
            "raw_image_offset": [0, 0], "image_size": [panel.fpixels, panel.spixels],
            "pixel_size": [float(geometry.pixel_size_m) * 1000] * 2, "trusted_range": list(TRUSTED_RANGE),
            "thickness": thickness_mm, "material": "", "mu": 1000 / float(depth_um) if thickness_mm > 0 else 0.0,
            "identifier": "", "mask": [], "gain": 1.0, "pedestal": 0.0,
            "px_mm_strategy": {"type": "SimplePxMmStrategy"},
        })
    document: Dict[str, Any] = {"panels": panels}
    if isinstance(config, MultiPanelDetectorConfig):
        document["hierarchy"] = _hierarchy_dict(config)
    return document, _floats(geometries[0].beam), detector.convention


def _node(name: str, children: List[Any]) -> Dict[str, Any]:
    return {"name": name, "type": "", "fast_axis": [1.0, 0.0, 0.0], "slow_axis": [0.0, 1.0, 0.0],
            "origin": [0.0, 0.0, 0.0], "children": children}


def _hierarchy_dict(config: MultiPanelDetectorConfig) -> Dict[str, Any]:
    """The groups as a tree of nodes in the lab frame: each group under the smallest group that
    holds it, the panels of no smaller group as leaves."""
    sets = [frozenset(group) for group in config.groups]
    for a in range(len(sets)):
        for b in range(a + 1, len(sets)):
            if sets[a] & sets[b] and not (sets[a] <= sets[b] or sets[b] <= sets[a]):
                raise ValueError(f"MultiPanelDetectorConfig.groups[{a}] = {config.groups[a]} and groups[{b}] = "
                                 f"{config.groups[b]} overlap without one holding the other: DIALS's hierarchy "
                                 f"is a tree")
            if sets[a] == sets[b]:
                raise ValueError(f"MultiPanelDetectorConfig.groups[{a}] and groups[{b}] hold the same panels "
                                 f"{config.groups[a]}: DIALS's hierarchy has one node for them")

    def parent(g: Optional[int], members: frozenset) -> Optional[int]:
        holders = [h for h, s in enumerate(sets) if h != g and members <= s and s != members]
        return min(holders, key=lambda h: len(sets[h]), default=None)

    def children(g: Optional[int]) -> List[Any]:
        subgroups = [h for h in range(len(sets)) if parent(h, sets[h]) == g]
        covered = set().union(*(sets[h] for h in subgroups)) if subgroups else set()
        within = sets[g] if g is not None else frozenset(range(config.n_panels))
        return ([_node(f"group{h}", children(h)) for h in subgroups]
                + [{"panel": k} for k in sorted(within - covered)])

    return _node("detector", children(None))


def _beam_dict(config: BeamConfig, propagation: List[float], convention) -> Dict[str, Any]:
    beam = np.array(propagation)
    beam = beam / np.linalg.norm(beam)
    axis = np.array(_floats(config.polarization_axis if config.polarization_axis is not None
                            else convention.polarization_axis))
    normal = np.cross(axis / np.linalg.norm(axis), beam)
    if np.linalg.norm(normal) < AXIS_TOLERANCE:
        raise ValueError(f"BeamConfig.polarization_axis = {axis.tolist()} is parallel to the beam {beam.tolist()}: "
                         f"it leaves no plane of polarization to write")
    return {"__id__": "monochromatic", "direction": (-beam).tolist(), "wavelength": float(config.wavelength_A),
            "divergence": 0.0, "sigma_divergence": 0.0,
            "polarization_normal": (normal / np.linalg.norm(normal)).tolist(),
            "polarization_fraction": (1 + float(config.polarization_factor)) / 2, "flux": 0.0,
            "transmission": 1.0, "sample_to_source_distance": 0.0}


def _crystal_dicts(experiment: Experiment, convention):
    from ..models.crystal import Crystal

    config = experiment.crystal
    vectors = [np.array(_floats(v)) for v in Crystal(config).real_space_vectors_A()]
    crystal: Dict[str, Any] = {"__id__": "crystal", "real_space_a": vectors[0].tolist(),
                               "real_space_b": vectors[1].tolist(), "real_space_c": vectors[2].tolist(),
                               "space_group_hall_symbol": experiment.space_group_hall_symbol}
    n_cells = [float(n) for n in config.N_cells]
    if float(config.mosaic_spread_deg) > 0 or any(n != 1 for n in n_cells):
        crystal["ML_half_mosaicity_deg"] = float(config.mosaic_spread_deg)
        crystal["ML_domain_size_ang"] = float(np.mean([n * np.linalg.norm(v) for n, v in zip(n_cells, vectors)]))
    rotates = (config.spindle_axis is not None or float(config.phi_start_deg) != 0
               or float(config.osc_range_deg) != 0)
    if not rotates:
        return crystal, None, None
    axis = config.spindle_axis if config.spindle_axis is not None else convention.spindle_axis
    identity = np.eye(3).reshape(-1).tolist()
    goniometer = {"rotation_axis": _floats(axis), "fixed_rotation": identity, "setting_rotation": identity}
    first, last = experiment.image_range
    scan = {"image_range": [first, last], "batch_offset": 0,
            "oscillation": [float(config.phi_start_deg), float(config.osc_range_deg)],
            "valid_image_ranges": {}}
    return crystal, goniometer, scan
