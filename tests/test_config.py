"""Configurations validate on construction and raise ConfigError naming the config, the field and the value."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest
import torch

from nanobrag_torch.cli.options import RawArgs
from nanobrag_torch.cli.plan import PHYSICAL_BOUNDS
from nanobrag_torch.config import (BeamConfig, ConfigError, CrystalConfig, DetectorConfig, DetectorConvention,
                                   FieldRule, NoiseConfig, field_rule, field_rules, refinable_fields)
from nanobrag_torch.refine.parameters import REFINABLE_FIELDS

CONFIGS = (CrystalConfig, DetectorConfig, BeamConfig, NoiseConfig)


@pytest.mark.parametrize("cls, kwargs, field, shown_field, value", [
    (CrystalConfig, {"cell_a": 0.0}, "cell_a", "cell_a", "0.0"),
    (CrystalConfig, {"cell_b": -5}, "cell_b", "cell_b", "-5"),
    (CrystalConfig, {"cell_gamma": 180.0}, "cell_gamma", "cell_gamma", "180.0"),
    (CrystalConfig, {"N_cells": (5, 0, 5)}, "N_cells", "N_cells[1]", "0"),
    (CrystalConfig, {"N_cells": (5, 5)}, "N_cells", "N_cells", "(5, 5)"),
    (CrystalConfig, {"phi_steps": 0}, "phi_steps", "phi_steps", "0"),
    (CrystalConfig, {"mosaic_spread_deg": -0.1}, "mosaic_spread_deg", "mosaic_spread_deg", "-0.1"),
    (CrystalConfig, {"mosaic_domains": 2.5}, "mosaic_domains", "mosaic_domains", "2.5"),
    (CrystalConfig, {"spindle_axis": (0, 0, 0)}, "spindle_axis", "spindle_axis", "(0, 0, 0)"),
    (CrystalConfig, {"misset_deg": (0, float("nan"), 0)}, "misset_deg", "misset_deg[1]", "nan"),
    (CrystalConfig, {"mosflm_a_star": (1, 0, 0)}, "mosflm_b_star", "mosflm_b_star", "None"),
    (DetectorConfig, {"distance_mm": 0}, "distance_mm", "distance_mm", "0"),
    (DetectorConfig, {"pixel_size_mm": -0.1}, "pixel_size_mm", "pixel_size_mm", "-0.1"),
    (DetectorConfig, {"fpixels": 0}, "fpixels", "fpixels", "0"),
    (DetectorConfig, {"spixels": 10.5}, "spixels", "spixels", "10.5"),
    (DetectorConfig, {"oversample": 0}, "oversample", "oversample", "0"),
    (DetectorConfig, {"detector_thick_um": -1.0}, "detector_thick_um", "detector_thick_um", "-1.0"),
    (DetectorConfig, {"roi": (10, 5, 0, 3)}, "roi", "roi", "(10, 5, 0, 3)"),
    (DetectorConfig, {"custom_fdet_vector": (1, 0)}, "custom_fdet_vector", "custom_fdet_vector", "(1, 0)"),
    (DetectorConfig, {"fpixels": 4, "spixels": 4, "mask": np.ones((3, 4))}, "mask", "mask", "array of shape (3, 4)"),
    (BeamConfig, {"wavelength_A": 0}, "wavelength_A", "wavelength_A", "0"),
    (BeamConfig, {"wavelength_A": torch.tensor(-1.0)}, "wavelength_A", "wavelength_A", "tensor(-1.0)"),
    (BeamConfig, {"fluence": -1e20}, "fluence", "fluence", "-1e+20"),
    (BeamConfig, {"beamsize_mm": 0}, "beamsize_mm", "beamsize_mm", "0"),
    (BeamConfig, {"dispersion_percent": -1.0}, "dispersion_percent", "dispersion_percent", "-1.0"),
    (BeamConfig, {"sources": [((0, 0, 0), 1.0)]}, "sources", "sources[0] position", "(0, 0, 0)"),
    (NoiseConfig, {"intfile_scale": 0.0}, "intfile_scale", "intfile_scale", "0.0"),
    (CrystalConfig, {"mosaic_domains": 0}, "mosaic_domains", "mosaic_domains", "0"),
    (DetectorConfig, {"detector_thicksteps": -1}, "detector_thicksteps", "detector_thicksteps", "-1"),
    (BeamConfig, {"hdivsteps": 0}, "hdivsteps", "hdivsteps", "0"),
    (BeamConfig, {"dispersion_steps": 0}, "dispersion_steps", "dispersion_steps", "0"),
    (BeamConfig, {"hdivstep_mrad": 0.0}, "hdivstep_mrad", "hdivstep_mrad", "0.0"),
    (BeamConfig, {"polarization_axis": (1e-200, 0, 0)}, "polarization_axis", "polarization_axis", "(1e-200, 0, 0)"),
    (DetectorConfig, {"detector_abs_um": float("inf")}, "detector_abs_um", "detector_abs_um", "inf"),
    (NoiseConfig, {"seed": 1.5}, "seed", "seed", "1.5"),
    (CrystalConfig, {"cell_alpha": 60, "cell_beta": 60, "cell_gamma": 120}, "cell_gamma", "cell_gamma", "120"),
    (CrystalConfig, {"cell_alpha": 100, "cell_beta": 175}, "cell_beta", "cell_beta", "175"),
    (CrystalConfig, {"N_cells": (1, None, 1)}, "N_cells", "N_cells[1]", "None"),
    (DetectorConfig, {"distance_mm": "far"}, "distance_mm", "distance_mm", "'far'"),
])
def test_invalid_values_raise_naming_field_and_value(cls, kwargs, field, shown_field, value):
    with pytest.raises(ConfigError) as error:
        cls(**kwargs)
    assert isinstance(error.value, ValueError)
    assert (error.value.config, error.value.field) == (cls.__name__, field)
    assert str(error.value).startswith(f"{cls.__name__}.{shown_field} = {value} is invalid: ")


SCALAR, TRIPLE, VECTOR, MATRIX, ROI, SOURCES = "scalar", "triple", "vector", "matrix", "roi", "sources"
NUMERIC_FIELDS = {
    CrystalConfig: {"cell_a": SCALAR, "cell_b": SCALAR, "cell_c": SCALAR, "cell_alpha": SCALAR,
                    "cell_beta": SCALAR, "cell_gamma": SCALAR, "N_cells": TRIPLE, "misset_deg": TRIPLE,
                    "phi_start_deg": SCALAR, "osc_range_deg": SCALAR, "phi_steps": SCALAR, "spindle_axis": VECTOR,
                    "mosaic_spread_deg": SCALAR, "mosaic_domains": SCALAR, "mosaic_seed": SCALAR,
                    "mosflm_a_star": MATRIX, "mosflm_b_star": MATRIX, "mosflm_c_star": MATRIX,
                    "default_F": SCALAR, "fudge": SCALAR},
    DetectorConfig: {"distance_mm": SCALAR, "close_distance_mm": SCALAR, "pixel_size_mm": SCALAR,
                     "fpixels": SCALAR, "spixels": SCALAR, "beam_center_f": SCALAR, "beam_center_s": SCALAR,
                     "detector_rotx_deg": SCALAR, "detector_roty_deg": SCALAR, "detector_rotz_deg": SCALAR,
                     "detector_twotheta_deg": SCALAR, "twotheta_axis": VECTOR, "custom_fdet_vector": VECTOR,
                     "custom_sdet_vector": VECTOR, "custom_odet_vector": VECTOR, "custom_beam_vector": VECTOR,
                     "pix0_override_m": VECTOR, "oversample": SCALAR, "detector_thick_um": SCALAR,
                     "detector_thicksteps": SCALAR, "detector_abs_um": SCALAR, "roi": ROI,
                     "panel_shift_mm": TRIPLE, "panel_rotation_deg": TRIPLE},
    BeamConfig: {"wavelength_A": SCALAR, "fluence": SCALAR, "flux": SCALAR, "exposure": SCALAR,
                 "beamsize_mm": SCALAR, "polarization_factor": SCALAR, "polarization_axis": VECTOR,
                 "hdivrange_mrad": SCALAR, "vdivrange_mrad": SCALAR, "hdivstep_mrad": SCALAR,
                 "vdivstep_mrad": SCALAR, "hdivsteps": SCALAR, "vdivsteps": SCALAR, "dispersion_percent": SCALAR,
                 "dispersion_steps": SCALAR, "sources": SOURCES, "water_size_um": SCALAR, "dmin_A": SCALAR},
    NoiseConfig: {"seed": SCALAR, "adc_offset_adu": SCALAR, "intfile_scale": SCALAR},
}


def with_value(field, kind, value):
    """Config keyword arguments that put ``value`` into one element of ``field``."""
    if kind == TRIPLE:
        return {field: (1, value, 1)}
    if kind == VECTOR:
        return {field: (0.0, value, 1.0)}
    if kind == MATRIX:
        return {"mosflm_a_star": (1, 0, 0), "mosflm_b_star": (0, 1, 0), "mosflm_c_star": (0, 0, 1),
                field: (1.0, value, 1.0)}
    if kind == ROI:
        return {field: (0, value, 0, 1)}
    if kind == SOURCES:
        return {field: [((value, 0.0, 1.0), 1.0)]}
    return {field: value}


NOT_NUMERIC = {"shape", "interpolate", "detector_convention", "detector_pivot", "oversample_omega", "oversample_polar",
               "oversample_thick", "curved_detector", "point_pixel", "mask", "nopolar", "round_div"}


def test_the_table_names_every_numeric_field():
    for cls, table in NUMERIC_FIELDS.items():
        assert set(table) == {f.name for f in dataclasses.fields(cls)} - NOT_NUMERIC, cls.__name__


@pytest.mark.parametrize("cls, field, kind", [(cls, field, kind) for cls, table in NUMERIC_FIELDS.items()
                                              for field, kind in table.items()])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_nan_and_inf_are_refused_in_every_numeric_field(cls, field, kind, value):
    with pytest.raises(ConfigError) as error:
        cls(**with_value(field, kind, value))
    assert (error.value.config, error.value.field) == (cls.__name__, field)
    assert repr(value) in str(error.value)


def test_config_error_carries_the_value_and_survives_pickling():
    with pytest.raises(ConfigError) as error:
        CrystalConfig(N_cells=(5, -2, 5))
    assert error.value.value == -2
    copy = pickle.loads(pickle.dumps(error.value))
    assert (copy.config, copy.field, copy.value, str(copy)) == (
        "CrystalConfig", "N_cells", -2, "CrystalConfig.N_cells[1] = -2 is invalid: must be a finite number >= 1")


def test_valid_configs_accept_tensors_with_grad():
    phi = torch.tensor(0.3, requires_grad=True)
    crystal = CrystalConfig(cell_a=torch.tensor(50.0, requires_grad=True), phi_start_deg=phi,
                            misset_deg=(phi, 0.0, torch.tensor(1.0)))
    assert crystal.phi_start_deg is phi
    detector = DetectorConfig(distance_mm=torch.tensor(100.0, requires_grad=True),
                              detector_convention=DetectorConvention.XDS)
    assert detector.distance_mm.requires_grad


def test_fluence_from_flux_exposure_and_beamsize():
    assert BeamConfig().fluence_photons_per_m2 == BeamConfig.DEFAULT_FLUENCE
    assert BeamConfig(fluence=1e30).fluence_photons_per_m2 == 1e30
    beam = BeamConfig(flux=1e12, exposure=2.0, beamsize_mm=0.05, fluence=1e30)
    assert beam.fluence_photons_per_m2 == pytest.approx(1e12 * 2 / (0.05e-3) ** 2)


@pytest.mark.parametrize("cls", CONFIGS)
def test_configs_are_frozen(cls):
    config = cls()
    name = dataclasses.fields(cls)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(config, name, getattr(config, name))


def test_replace_makes_a_changed_copy_and_validates_it():
    assert dataclasses.replace(CrystalConfig(), N_cells=(2, 3, 4)).N_cells == (2, 3, 4)
    with pytest.raises(ConfigError, match=r"CrystalConfig.mosaic_spread_deg = 181 is invalid: must be a finite "
                                          r"number >= 0 and <= 180"):
        dataclasses.replace(CrystalConfig(), mosaic_spread_deg=181)


@pytest.mark.parametrize("cls", CONFIGS)
def test_every_field_has_a_rule(cls):
    rules = field_rules(cls)
    assert list(rules) == [f.name for f in dataclasses.fields(cls)]
    assert all(isinstance(rule, FieldRule) for rule in rules.values())
    assert set(refinable_fields(cls)) <= set(rules)


def test_field_rule_names_the_unknown_field():
    with pytest.raises(KeyError, match="DetectorConfig has no field 'distance'"):
        field_rule(DetectorConfig, "distance")
    rule = field_rule(DetectorConfig, "distance_mm")
    assert (rule.unit, rule.lower.value, rule.lower.closed, rule.upper, rule.refinable) == ("mm", 0, False, None, True)


@pytest.mark.parametrize("field, option, value, valid", [
    ("N_cells", "Na", 0.5, False), ("N_cells", "Na", 1, True), ("N_cells", "Nc", 0, False),
    ("mosaic_spread_deg", "mosaic_spread", 181.0, False), ("mosaic_spread_deg", "mosaic_spread", 180.0, True),
    ("mosaic_spread_deg", "mosaic_spread", -0.1, False), ("mosaic_spread_deg", "mosaic_spread", 0.0, True),
])
def test_config_command_and_refinement_agree(field, option, value, valid):
    """A value the config refuses, the command refuses and the refinement's bounds exclude, and
    one the config accepts, the other two accept."""
    try:
        CrystalConfig(**{field: (1, 1, value) if field == "N_cells" else value})
        config_accepts = True
    except ConfigError:
        config_accepts = False
    bound = next(bound for bound in PHYSICAL_BOUNDS if bound.field == option)
    command_accepts = bound.problem(dataclasses.replace(RawArgs(), **{option: value})) is None
    lower, upper = REFINABLE_FIELDS["crystal"][field][1]
    refinement_accepts = lower <= value <= upper
    assert (config_accepts, command_accepts, refinement_accepts) == (valid, valid, valid)
