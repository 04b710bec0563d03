"""DIALS experiment lists: write then read gives the configurations back, a hand-written file
(as DIALS writes one) reads into the geometry it describes and renders as the equivalent
hand-made detector, and malformed files raise one ValueError naming the file and the field."""

from __future__ import annotations

import copy
import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nanobrag_torch import BeamConfig, Crystal, CrystalConfig, Detector, DetectorConfig, Simulator
from nanobrag_torch.config import DetectorConvention, MultiPanelDetectorConfig
from nanobrag_torch.io.dials import Experiment, read_experiments, write_experiments

ROUND_TRIP_RTOL = 1e-13
"""Write then read recomputes a few quantities (unit axes, the reciprocal cell from the real
one, the Kahn factor from the polarization fraction): each a few roundings of float64."""


def close(a, b, where="config"):
    """Configs (or values) equal, numbers within ROUND_TRIP_RTOL (relative to the vector's size)."""
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        assert type(a) is type(b), where
        for field in dataclasses.fields(a):
            close(getattr(a, field.name), getattr(b, field.name), f"{where}.{field.name}")
    elif isinstance(a, (tuple, list)) and a and isinstance(a[0], (tuple, list, float, int)) or \
            isinstance(a, tuple) and a and dataclasses.is_dataclass(a[0]):
        assert isinstance(b, (tuple, list)) and len(a) == len(b), f"{where}: {a} != {b}"
        scale = max([abs(float(x)) for x in a if isinstance(x, (int, float))] or [1.0])
        for i, (x, y) in enumerate(zip(a, b)):
            if isinstance(x, (int, float)) and not isinstance(x, bool):
                assert math.isclose(x, y, rel_tol=0, abs_tol=ROUND_TRIP_RTOL * scale), f"{where}[{i}]: {a} != {b}"
            else:
                close(x, y, f"{where}[{i}]")
    elif isinstance(a, float):
        assert math.isclose(a, b, rel_tol=ROUND_TRIP_RTOL, abs_tol=ROUND_TRIP_RTOL), f"{where}: {a} != {b}"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def unit(v):
    v = np.asarray(v, dtype=float)
    return tuple((v / np.linalg.norm(v)).tolist())


def custom_panel(fast, slow, origin_mm, beam=(0.0, 0.0, -1.0), **changes):
    """A panel as read_experiments makes it: CUSTOM unit axes, normal fast × slow, origin in m."""
    fast, slow = unit(fast), unit(slow)
    return DetectorConfig(**{**dict(detector_convention=DetectorConvention.CUSTOM, custom_fdet_vector=fast,
                                    custom_sdet_vector=slow, custom_odet_vector=unit(np.cross(fast, slow)),
                                    custom_beam_vector=beam, pix0_override_m=tuple(x * 1e-3 for x in origin_mm),
                                    pixel_size_mm=0.1, fpixels=32, spixels=24, oversample=1), **changes})


CRYSTAL = CrystalConfig(mosflm_a_star=(0.02, 0.0, 0.0), mosflm_b_star=(0.0, 0.02, 0.0), mosflm_c_star=(0.0, 0.0, 0.02),
                        N_cells=(6, 6, 6), mosaic_spread_deg=0.05)
BEAM = BeamConfig(wavelength_A=1.1, polarization_factor=0.998, polarization_axis=(1.0, 0.0, 0.0))


def test_a_single_panel_experiment_round_trips(tmp_path):
    detector = custom_panel((1, 0.01, 0), (0.01, -1, 0), (-1.6, 1.2, -100.0), detector_thick_um=450.0,
                            detector_abs_um=250.0)
    crystal = dataclasses.replace(CRYSTAL, spindle_axis=(1.0, 0.0, 0.0), phi_start_deg=12.5, osc_range_deg=0.1)
    experiment = Experiment(crystal=crystal, detector=detector, beam=BEAM, identifier="one",
                            space_group_hall_symbol=" P 4 2", image_range=(3, 3), imageset={"__id__": "ImageSet",
                                                                                             "images": ["x.cbf"]})
    write_experiments(tmp_path / "one.expt", [experiment])
    (back,) = read_experiments(tmp_path / "one.expt")
    close(back, experiment)


def test_a_multipanel_detector_with_groups_round_trips_and_shared_models_stay_shared(tmp_path):
    panels = tuple(custom_panel((1, 0, 0), (0, -1, 0), origin) for origin in
                   [(-3.3, 2.5, -100.0), (0.1, 2.5, -100.0), (-3.3, -0.1, -100.2), (0.1, -0.1, -99.9)])
    detector = MultiPanelDetectorConfig(panels=panels, groups=((0, 1, 2, 3), (0, 1), (2,)))
    first = Experiment(crystal=CRYSTAL, detector=detector, beam=BEAM, identifier="a")
    second = Experiment(crystal=dataclasses.replace(CRYSTAL, mosflm_a_star=(0.0, 0.02, 0.0),
                                                    mosflm_b_star=(-0.02, 0.0, 0.0)),
                        detector=detector, beam=BEAM, identifier="b")
    write_experiments(tmp_path / "two.expt", [first, second])
    document = json.loads((tmp_path / "two.expt").read_text())
    assert len(document["detector"]) == 1 and len(document["beam"]) == 1 and len(document["crystal"]) == 2
    assert [e["detector"] for e in document["experiment"]] == [0, 0]
    a, b = read_experiments(tmp_path / "two.expt")
    close(a, first)
    close(b, second)
    assert a.detector is b.detector and a.beam is b.beam and a.crystal is not b.crystal


def test_groups_that_overlap_without_nesting_are_refused_on_write(tmp_path):
    panels = tuple(custom_panel((1, 0, 0), (0, -1, 0), (x, 0.0, -100.0)) for x in (-5.0, 0.0, 5.0))
    detector = MultiPanelDetectorConfig(panels=panels, groups=((0, 1), (1, 2)))
    with pytest.raises(ValueError, match=r"groups\[0\] = \(0, 1\) and groups\[1\] = \(1, 2\) overlap"):
        write_experiments(tmp_path / "x.expt", [Experiment(crystal=None, detector=detector, beam=BEAM)])
    assert not (tmp_path / "x.expt").exists()


# A file as dials.index writes it (the fields it holds, abridged to what a still needs): a beam
# travelling along −z, a 2-panel detector in a hierarchy whose group frame is shifted and
# turned by 90° about z, and a crystal with the stills fields.
HAND_WRITTEN = """{
  "__id__": "ExperimentList",
  "experiment": [
    {"__id__": "Experiment", "identifier": "c0ffee", "beam": 0, "detector": 0, "crystal": 0, "imageset": 0}
  ],
  "imageset": [{"__id__": "ImageSet", "images": ["shot_00001.cbf"]}],
  "beam": [
    {"__id__": "monochromatic", "direction": [0.0, 0.0, 1.0], "wavelength": 1.3,
     "divergence": 0.0, "sigma_divergence": 0.0, "polarization_normal": [0.0, 1.0, 0.0],
     "polarization_fraction": 0.999, "flux": 0.0, "transmission": 1.0}
  ],
  "detector": [
    {"panels": [
       {"name": "p0", "type": "SENSOR_PAD", "fast_axis": [1.0, 0.0, 0.0], "slow_axis": [0.0, -1.0, 0.0],
        "origin": [-1.0, 2.0, 0.0], "raw_image_offset": [0, 0], "image_size": [32, 24],
        "pixel_size": [0.1, 0.1], "trusted_range": [-1.0, 65535.0], "thickness": 0.0, "material": "",
        "mu": 0.0, "identifier": "", "mask": [], "gain": 1.0, "pedestal": 0.0,
        "px_mm_strategy": {"type": "SimplePxMmStrategy"}},
       {"name": "p1", "type": "SENSOR_PAD", "fast_axis": [1.0, 0.0, 0.0], "slow_axis": [0.0, -1.0, 0.0],
        "origin": [2.4, 2.0, 0.0], "raw_image_offset": [0, 0], "image_size": [32, 24],
        "pixel_size": [0.1, 0.1], "trusted_range": [-1.0, 65535.0], "thickness": 0.0, "material": "",
        "mu": 0.0, "identifier": "", "mask": [], "gain": 1.0, "pedestal": 0.0,
        "px_mm_strategy": {"type": "SimplePxMmStrategy"}}
     ],
     "hierarchy": {"name": "", "type": "", "fast_axis": [1.0, 0.0, 0.0], "slow_axis": [0.0, 1.0, 0.0],
       "origin": [0.0, 0.0, -120.0],
       "children": [
         {"name": "quad", "type": "", "fast_axis": [0.0, 1.0, 0.0], "slow_axis": [-1.0, 0.0, 0.0],
          "origin": [0.5, -0.25, 0.0], "children": [{"panel": 0}, {"panel": 1}]}
       ]}}
  ],
  "crystal": [
    {"__id__": "crystal", "real_space_a": [50.0, 0.0, 0.0], "real_space_b": [0.0, 60.0, 0.0],
     "real_space_c": [0.0, 0.0, 70.0], "space_group_hall_symbol": " P 2 2", "ML_half_mosaicity_deg": 0.02,
     "ML_domain_size_ang": 355.0}
  ]
}
"""


def test_a_hand_written_experiment_list_reads_into_its_geometry_and_renders_as_the_hand_made_detector(tmp_path):
    """The hierarchy composes: a panel's lab origin is the group's origin plus its own origin
    along the group's axes (fast (0, 1, 0), slow (−1, 0, 0), normal (0, 0, 1)), below the root
    at z = −120 mm; its axes turn with the group's. Worked out by hand:
    panel 0: origin (0.5, −0.25, −120) + (−1)·(0, 1, 0) + 2·(−1, 0, 0) = (−1.5, −1.25, −120),
    fast (0, 1, 0), slow (1, 0, 0); panel 1: (0.5, −0.25, −120) + 2.4·(0, 1, 0) + 2·(−1, 0, 0)
    = (−1.5, 2.15, −120)."""
    path = tmp_path / "indexed.expt"
    path.write_text(HAND_WRITTEN)
    (experiment,) = read_experiments(path)
    beam = (0.0, 0.0, -1.0)
    expected = MultiPanelDetectorConfig(panels=(
        custom_panel((0, 1, 0), (1, 0, 0), (-1.5, -1.25, -120.0), beam=beam),
        custom_panel((0, 1, 0), (1, 0, 0), (-1.5, 2.15, -120.0), beam=beam)), groups=((0, 1),))
    close(experiment.detector, expected)
    assert experiment.identifier == "c0ffee" and experiment.space_group_hall_symbol == " P 2 2"
    assert experiment.imageset == {"__id__": "ImageSet", "images": ["shot_00001.cbf"]}
    # polarization: E in the plane normal to y, i.e. along x; Kahn factor 2·0.999 − 1
    close(experiment.beam, BeamConfig(wavelength_A=1.3, polarization_factor=0.998, polarization_axis=(1.0, 0.0, 0.0)))
    crystal = experiment.crystal
    assert crystal.N_cells == (7, 6, 5) and crystal.mosaic_spread_deg == 0.02
    close(crystal.mosflm_a_star, (1 / 50, 0.0, 0.0))
    close(crystal.mosflm_c_star, (0.0, 0.0, 1 / 70))
    crystal = dataclasses.replace(crystal, default_F=100.0)
    with torch.no_grad():
        read = Simulator(Crystal(crystal), Detector(experiment.detector), experiment.beam).run()
        made = Simulator(Crystal(crystal), Detector(expected), experiment.beam).run()
    assert read.shape == (2, 24, 32) and float(read.sum()) > 0
    torch.testing.assert_close(read, made, rtol=1e-12, atol=0)


# ------------------------------------------------------------------ malformed files (fuzz)
DOCUMENT = json.loads(HAND_WRITTEN)


def _paths(value, prefix=()):
    """Every path (tuple of keys and indices) into a JSON value."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _paths(item, prefix + (i,))


PATHS = [path for path in _paths(DOCUMENT) if path]
WRONG_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=True),
                         st.text(max_size=4), st.lists(st.floats(-1e3, 1e3), max_size=4),
                         st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


def _mutated(document, path, action, value):
    document = copy.deepcopy(document)
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    if action == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return document


FUZZ = settings(max_examples=150, derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _read_or_value_error(path):
    """Reading returns experiments or raises a ValueError that starts with the file name."""
    try:
        return read_experiments(path)
    except ValueError as error:
        assert str(error).startswith(f"{path}: "), str(error)
        return None


@FUZZ
@given(st.integers(0, len(HAND_WRITTEN.rstrip()) - 1))  # short of the closing brace
def test_truncated_files_raise_a_value_error_naming_the_file(tmp_path, cut):
    path = tmp_path / "cut.expt"
    path.write_text(HAND_WRITTEN[:cut])
    with pytest.raises(ValueError, match=f"^{path}: "):
        read_experiments(path)


@FUZZ
@given(st.sampled_from(PATHS), st.sampled_from(["delete", "replace"]), WRONG_VALUES)
def test_a_missing_or_wrongly_typed_field_is_a_value_error_or_is_read(tmp_path, path, action, value):
    document = _mutated(DOCUMENT, path, action, value)
    file = tmp_path / "mutated.expt"
    file.write_text(json.dumps(document))
    _read_or_value_error(file)


@FUZZ
@given(st.floats(1e-5, 0.5), st.sampled_from([0, 1]))
def test_axes_that_are_not_perpendicular_are_refused(tmp_path, skew, panel):
    file = tmp_path / "skew.expt"
    file.write_text(json.dumps(_mutated(DOCUMENT, ("detector", 0, "panels", panel, "slow_axis"), "replace",
                                        [skew, -1.0, 0.0])))
    with pytest.raises(ValueError, match=rf"^{file}: detector\[0\]\.panels\[{panel}\]\.slow_axis: not perpendicular"):
        read_experiments(file)


@pytest.mark.parametrize("path, value, message", [
    (("detector", 0, "panels", 1, "fast_axis"), [1.0, 0.0], r"detector\[0\]\.panels\[1\]\.fast_axis: expected 3 "
                                                             r"numbers, got \[1\.0, 0\.0\]"),
    (("detector", 0, "panels", 0, "pixel_size"), [0.1, 0.2],
     r"detector\[0\]\.panels\[0\]\.pixel_size: expected two equal sizes"),
    (("beam", 0, "wavelength"), -1.0, r"beam\[0\]\.wavelength: must be > 0"),
    (("experiment", 0, "detector"), 3, r"experiment\[0\]\.detector: expected the index of one of the 1 detector"),
    (("crystal", 0, "real_space_c"), [0.0, 0.0, -70.0], r"crystal\[0\]\.real_space_c: .* no right-handed cell"),
    (("__id__",), "DataBlock", r"__id__: expected \"ExperimentList\""),
])
def test_malformed_fields_are_named(tmp_path, path, value, message):
    file = tmp_path / "bad.expt"
    file.write_text(json.dumps(_mutated(DOCUMENT, path, "replace", value)))
    with pytest.raises(ValueError, match=f"^{file}: {message}"):
        read_experiments(file)


def test_with_values_sets_refined_values_for_writing(tmp_path):
    experiment = Experiment(crystal=CRYSTAL, detector=custom_panel((1, 0, 0), (0, -1, 0), (-1.6, 1.2, -100.0)),
                            beam=BEAM)
    refined = experiment.with_values({"beam.wavelength_A": 1.25, "crystal.N_cells[0]": 8.0, "scale": 3.0})
    assert refined.beam.wavelength_A == 1.25 and refined.crystal.N_cells == (8.0, 6, 6)
    write_experiments(tmp_path / "refined.expt", [refined])
    (back,) = read_experiments(tmp_path / "refined.expt")
    assert back.beam.wavelength_A == 1.25


def test_a_number_too_large_for_a_double_is_named(tmp_path):
    file = tmp_path / "huge.expt"
    file.write_text(HAND_WRITTEN.replace('"wavelength": 1.3', '"wavelength": 1' + "0" * 400))
    with pytest.raises(ValueError, match=rf"^{file}: beam\[0\]\.wavelength: expected a finite number"):
        read_experiments(file)
