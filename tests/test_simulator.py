"""Simulator behaviour beyond parity: chunking, intended physics versus C's quirks, dtypes."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from nanobrag_torch.config import BeamConfig, CrystalConfig, CrystalShape, DetectorConfig
from nanobrag_torch.models.crystal import Crystal
from nanobrag_torch.models.detector import Detector
from nanobrag_torch.simulator import Simulator


def simulate(crystal=None, detector=None, beam=None, dtype=torch.float64, c_quirks=False, **run):
    crystal_config = CrystalConfig(cell_a=70, cell_b=80, cell_c=90, cell_alpha=75, cell_beta=85, cell_gamma=95,
                                   misset_deg=(10, -20, 30), default_F=100, N_cells=(5, 5, 5),
                                   **(crystal or {}))
    detector_config = DetectorConfig(**{**dict(distance_mm=100, pixel_size_mm=0.1, fpixels=48, spixels=40,
                                                oversample=1), **(detector or {})})
    simulator = Simulator(Crystal(crystal_config, dtype=dtype), Detector(detector_config, dtype=dtype),
                          BeamConfig(**(beam or {})), dtype=dtype, c_quirks=c_quirks)
    return simulator, simulator.run(**run)


def test_chunking_does_not_change_the_image():
    _, whole = simulate()
    _, chunked = simulate(pixel_batch_size=7)
    assert whole.shape == (40, 48)
    torch.testing.assert_close(chunked, whole, rtol=1e-13, atol=0)


def test_progress_reports_every_chunk():
    calls = []
    simulate(pixel_batch_size=500, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (1920, 1920) and len(calls) == 4


def test_roi_and_mask_leave_zeros_and_keep_the_rest():
    _, full = simulate()
    _, roi = simulate(detector={"roi": (5, 20, 3, 10)})
    assert roi[3:11, 5:21].equal(full[3:11, 5:21])
    outside = torch.ones_like(roi, dtype=torch.bool)
    outside[3:11, 5:21] = False
    assert (roi[outside] == 0).all()
    mask = torch.ones(40, 48)
    mask[0, 0] = 0
    _, masked = simulate(detector={"mask": mask})
    assert masked[0, 0] == 0 and masked[0, 1] == full[0, 1]


def test_float32_agrees_with_float64():
    _, double = simulate()
    _, single = simulate(dtype=torch.float32)
    assert single.dtype == torch.float32
    torch.testing.assert_close(single.double(), double, rtol=2e-3, atol=1e-3 * float(double.max()))


def test_phi_carry_over_only_with_c_quirks():
    crystal = {"phi_start_deg": 0.0, "osc_range_deg": 3.0, "phi_steps": 3}
    intended, _ = simulate(crystal)
    quirky, _ = simulate(crystal, c_quirks=True)
    torch.testing.assert_close(intended.crystal.phi_angles_rad(), torch.deg2rad(torch.tensor([0.0, 1.0, 2.0],
                                                                                              dtype=torch.float64)))
    torch.testing.assert_close(quirky.crystal.phi_angles_rad(c_quirks=True),
                               torch.deg2rad(torch.tensor([2.0, 1.0, 2.0], dtype=torch.float64)))


def test_water_background_intended_is_single_scaled():
    beam = {"water_size_um": 0.05, "fluence": 1e30}
    _, intended = simulate(beam=beam)
    _, quirky = simulate(beam=beam, c_quirks=True)
    _, no_water = simulate(beam={"fluence": 1e30})
    background_intended = (intended - no_water).min()
    background_quirky = (quirky - no_water).min()
    # C multiplies the background by r_e² · fluence a second time (7.9 at 1e30 photons/m²)
    assert float(background_quirky / background_intended) == pytest.approx(7.94079248018965e-30 * 1e30, rel=0.05)


def test_thickness_intended_weights_each_layer_by_its_capture():
    detector = {"detector_thick_um": 300.0, "detector_thicksteps": 3, "detector_abs_um": 200.0}
    _, intended = simulate(detector=detector)
    _, quirky = simulate(detector=detector, c_quirks=True)
    _, thin = simulate()
    # intended: the layers' captures add up to about 1 - exp(-thickness/depth) of the photons
    # (a little more at oblique incidence); C sums the three layers and multiplies by the last
    # layer's capture only
    absorbed = 1 - math.exp(-300 / 200)
    assert absorbed <= float(intended.sum() / thin.sum()) <= 1.0
    last_layer = math.exp(-200 / 200) - math.exp(-300 / 200)
    assert float(quirky.sum() / thin.sum()) == pytest.approx(3 * last_layer, rel=0.05)


def test_oversample_thick_without_thickness_zeroes_the_image_only_in_c():
    _, intended = simulate(detector={"oversample_thick": True})
    _, quirky = simulate(detector={"oversample_thick": True}, c_quirks=True)
    assert intended.sum() > 0 and quirky.sum() == 0


@pytest.mark.parametrize("shape", list(CrystalShape))
def test_every_shape_renders_finite_images(shape):
    _, image = simulate({"shape": shape})
    assert torch.isfinite(image).all() and image.sum() > 0


def test_c_interpolation_switch_off_warns_once():
    grid = torch.rand(5, 5, 5, dtype=torch.float64) * 100
    meta = dict(h_min=-2, h_max=2, k_min=-2, k_max=2, l_min=-2, l_max=2)
    config = CrystalConfig(cell_a=70, cell_b=80, cell_c=90, N_cells=(2, 2, 2), interpolate=True)
    crystal = Crystal(config)
    crystal.hkl_data, crystal.hkl_metadata = grid, meta
    detector = Detector(DetectorConfig(distance_mm=100, fpixels=16, spixels=16))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image = Simulator(crystal, detector, c_quirks=True).run()
    assert sum("interpolation switched off" in str(w.message) for w in caught) == 1
    assert torch.isfinite(image).all()


def test_compiled_kernel_gives_the_eager_numbers(monkeypatch):
    """NANOBRAGG_COMPILE=1 runs the forward kernel through torch.compile; same image, same gradient."""
    def image_and_gradient():
        phi = torch.tensor(0.3, dtype=torch.float32, requires_grad=True)
        _, image = simulate({"phi_start_deg": phi, "mosaic_spread_deg": 0.3, "mosaic_domains": 3},
                            dtype=torch.float32)
        image.square().sum().backward()
        return image.detach(), phi.grad

    monkeypatch.setenv("NANOBRAGG_COMPILE", "0")
    eager_image, eager_grad = image_and_gradient()
    monkeypatch.setenv("NANOBRAGG_COMPILE", "1")
    compiled_image, compiled_grad = image_and_gradient()
    torch.testing.assert_close(compiled_image, eager_image, rtol=1e-5, atol=1e-6 * float(eager_image.max()))
    torch.testing.assert_close(compiled_grad, eager_grad, rtol=1e-4, atol=0)
