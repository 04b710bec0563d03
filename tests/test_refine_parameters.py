"""Every refinable field (:data:`nanobrag_torch.refine.parameters.REFINABLE_FIELDS`) reaches the
image: the refinement's configuration of the field gives an exact, finite, non-zero derivative."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from nanobrag_torch import BeamConfig, Crystal, CrystalConfig, DetectorConfig
from nanobrag_torch.refine.model import ExperimentModel
from nanobrag_torch.config import field_rule
from nanobrag_torch.refine.parameters import (OPEN_BOUND_MARGIN, REFINABLE_FIELDS, configs_with, parse_parameters,
                                              solver_bounds)

CELL = dict(cell_a=70.0, cell_b=80.0, cell_c=90.0, cell_alpha=75.0, cell_beta=85.0, cell_gamma=95.0)
CRYSTAL = CrystalConfig(**CELL, misset_deg=(10.0, -20.0, 30.0), default_F=100.0, N_cells=(4, 4, 4),
                        phi_start_deg=0.3, osc_range_deg=0.4, phi_steps=2, mosaic_spread_deg=0.5,
                        mosaic_domains=3, mosaic_seed=7)
DETECTOR = DetectorConfig(distance_mm=100.0, pixel_size_mm=0.3, fpixels=16, spixels=16, beam_center_f=2.2,
                          beam_center_s=3.1, detector_rotx_deg=1.0, detector_twotheta_deg=2.0, oversample=1)
BEAM = BeamConfig(wavelength_A=1.0, polarization_factor=0.5, fluence=1e24)


def _matrix_crystal():
    """The same crystal given by its MOSFLM vectors instead of its cell."""
    vectors = [v.detach() for v in Crystal(CRYSTAL).reciprocal_vectors_per_A()]
    return dataclasses.replace(CRYSTAL, **dict.fromkeys(CELL), misset_deg=(0.0, 0.0, 0.0),
                               mosflm_a_star=tuple(vectors[0].tolist()), mosflm_b_star=tuple(vectors[1].tolist()),
                               mosflm_c_star=tuple(vectors[2].tolist()))


CONFIGS_USING = {
    "mosflm_a_star": {"crystal": _matrix_crystal()}, "mosflm_b_star": {"crystal": _matrix_crystal()},
    "mosflm_c_star": {"crystal": _matrix_crystal()},
    "close_distance_mm": {"detector": dataclasses.replace(DETECTOR, close_distance_mm=99.0)},
    "pix0_override_m": {"detector": dataclasses.replace(DETECTOR, pix0_override_m=(0.1, 0.0022, -0.0031))},
}
"""Configurations in which a field is used (the others are used by the default ones)."""

NAMES = [f"{config}.{field}" + (f"[{index}]" if length else "")
         for config, fields in REFINABLE_FIELDS.items() for field, (length, _) in fields.items()
         for index in (range(length) if length else [None])] + ["scale"]


@pytest.mark.parametrize("name", NAMES)
def test_every_refinable_field_has_a_derivative(name):
    field = name.split(".")[-1].split("[")[0]
    configs = {"crystal": CRYSTAL, "detector": DETECTOR, "beam": BEAM, **CONFIGS_USING.get(field, {})}
    current = 1.0 if name == "scale" else getattr(configs[name.split(".")[0]], field)
    if "[" in name:
        current = current[int(name[-2])]
    parameters, x = parse_parameters({name: float(current)}, configs)
    model = ExperimentModel(configs, None, parameters, torch.zeros(256, dtype=torch.float64), torch.float64,
                            torch.device("cpu"))
    pixels = torch.arange(256)
    expected, jacobian = model.expected_and_jacobian(x, pixels)
    assert bool(torch.isfinite(jacobian).all()) and float(jacobian.abs().max()) > 0, name
    applied = dict(zip(("crystal", "detector", "beam"), configs_with(configs, parameters, list(x.unbind()))))
    for group in applied:
        assert (applied[group] is configs[group]) == (not name.startswith(group + ".")), (name, group)
    torch.testing.assert_close(expected, model.expected(x, pixels), rtol=1e-12, atol=0)


CLASSES = {"crystal": CrystalConfig, "detector": DetectorConfig, "beam": BeamConfig}


@pytest.mark.parametrize("config, field", [(config, field) for config, fields in REFINABLE_FIELDS.items()
                                           for field in fields])
def test_default_bounds_come_from_the_field_rule(config, field):
    rule = field_rule(CLASSES[config], field)
    length, (lower, upper) = REFINABLE_FIELDS[config][field]
    assert rule.refinable and (lower, upper) == solver_bounds(rule)
    assert length == (rule.length if rule.length > 1 else 0)
    for bound in (lower, upper):
        assert not math.isfinite(bound) or rule.admits(bound), "the solver stays where the config accepts"


def test_an_open_bound_becomes_a_closed_one_just_inside():
    assert solver_bounds(field_rule(DetectorConfig, "distance_mm")) == (OPEN_BOUND_MARGIN, math.inf)
    assert solver_bounds(field_rule(CrystalConfig, "cell_alpha")) == (OPEN_BOUND_MARGIN, 180 - OPEN_BOUND_MARGIN)
    assert solver_bounds(field_rule(CrystalConfig, "mosaic_spread_deg")) == (0.0, 180.0)
    assert solver_bounds(field_rule(CrystalConfig, "N_cells")) == (1.0, math.inf)


@pytest.mark.parametrize("name, value", [("crystal.N_cells[1]", 0.5), ("crystal.mosaic_spread_deg", 181.0),
                                         ("beam.polarization_factor", 1.5)])
def test_a_start_the_config_refuses_is_outside_the_bounds(name, value):
    with pytest.raises(ValueError, match=r"is outside its bounds"):
        parse_parameters({name: value}, {"crystal": CRYSTAL, "detector": DETECTOR, "beam": BEAM})
