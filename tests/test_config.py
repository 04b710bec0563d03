"""Configurations validate on construction and name the field and the value."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nanobrag_torch.config import (BeamConfig, CrystalConfig, DetectorConfig, DetectorConvention, NoiseConfig)


@pytest.mark.parametrize("cls, kwargs, field, value", [
    (CrystalConfig, {"cell_a": 0.0}, "cell_a", "0.0"),
    (CrystalConfig, {"cell_b": -5}, "cell_b", "-5"),
    (CrystalConfig, {"cell_gamma": 180.0}, "cell_gamma", "180.0"),
    (CrystalConfig, {"N_cells": (5, 0, 5)}, "N_cells[1]", "0"),
    (CrystalConfig, {"N_cells": (5, 5)}, "N_cells", "(5, 5)"),
    (CrystalConfig, {"phi_steps": 0}, "phi_steps", "0"),
    (CrystalConfig, {"mosaic_spread_deg": -0.1}, "mosaic_spread_deg", "-0.1"),
    (CrystalConfig, {"mosaic_domains": 2.5}, "mosaic_domains", "2.5"),
    (CrystalConfig, {"spindle_axis": (0, 0, 0)}, "spindle_axis", "(0, 0, 0)"),
    (CrystalConfig, {"misset_deg": (0, float("nan"), 0)}, "misset_deg[1]", "nan"),
    (CrystalConfig, {"mosflm_a_star": (1, 0, 0)}, "mosflm_a_star", "only some"),
    (DetectorConfig, {"distance_mm": 0}, "distance_mm", "0"),
    (DetectorConfig, {"pixel_size_mm": -0.1}, "pixel_size_mm", "-0.1"),
    (DetectorConfig, {"fpixels": 0}, "fpixels", "0"),
    (DetectorConfig, {"spixels": 10.5}, "spixels", "10.5"),
    (DetectorConfig, {"oversample": 0}, "oversample", "0"),
    (DetectorConfig, {"detector_thick_um": -1.0}, "detector_thick_um", "-1.0"),
    (DetectorConfig, {"roi": (10, 5, 0, 3)}, "roi", "(10, 5, 0, 3)"),
    (DetectorConfig, {"custom_fdet_vector": (1, 0)}, "custom_fdet_vector", "(1, 0)"),
    (DetectorConfig, {"fpixels": 4, "spixels": 4, "mask": np.ones((3, 4))}, "mask", "shape (3, 4)"),
    (BeamConfig, {"wavelength_A": 0}, "wavelength_A", "0"),
    (BeamConfig, {"wavelength_A": torch.tensor(-1.0)}, "wavelength_A", "tensor(-1.0)"),
    (BeamConfig, {"fluence": -1e20}, "fluence", "-1e+20"),
    (BeamConfig, {"beamsize_mm": 0}, "beamsize_mm", "0"),
    (BeamConfig, {"dispersion_percent": -1.0}, "dispersion_percent", "-1.0"),
    (BeamConfig, {"sources": [((0, 0, 0), 1.0)]}, "sources[0] position", "(0, 0, 0)"),
    (NoiseConfig, {"intfile_scale": 0.0}, "intfile_scale", "0.0"),
])
def test_invalid_values_raise_naming_field_and_value(cls, kwargs, field, value):
    with pytest.raises(ValueError) as error:
        cls(**kwargs)
    message = str(error.value)
    assert f"{cls.__name__}.{field}" in message or f"{cls.__name__}: " in message
    assert value in message


def test_valid_configs_accept_tensors_with_grad():
    phi = torch.tensor(0.3, requires_grad=True)
    crystal = CrystalConfig(cell_a=torch.tensor(50.0, requires_grad=True), phi_start_deg=phi,
                            misset_deg=(phi, 0.0, torch.tensor(1.0)))
    assert crystal.phi_start_deg is phi
    detector = DetectorConfig(distance_mm=torch.tensor(100.0, requires_grad=True),
                              detector_convention=DetectorConvention.XDS)
    assert detector.pixel_size_m == pytest.approx(1e-4)


def test_fluence_from_flux_exposure_and_beamsize():
    assert BeamConfig().fluence_photons_per_m2 == BeamConfig.DEFAULT_FLUENCE
    assert BeamConfig(fluence=1e30).fluence_photons_per_m2 == 1e30
    beam = BeamConfig(flux=1e12, exposure=2.0, beamsize_mm=0.05, fluence=1e30)
    assert beam.fluence_photons_per_m2 == pytest.approx(1e12 * 2 / (0.05e-3) ** 2)
