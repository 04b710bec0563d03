"""A region of a detector as a detector of its own: the same pixels at the same places, so its
image is the full image's crop, in every convention and pivot; the beam centre stays
differentiable; the ROI and the mask are cut; bad regions are refused by name."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nanobrag_torch import (BeamConfig, Crystal, CrystalConfig, Detector, DetectorConfig, DetectorConvention,
                            DetectorPivot, Simulator, detector_region)

FPIXELS, SPIXELS, PIXEL_MM = 40, 32, 0.4
REGION = dict(fast0=13, slow0=6, fast_pixels=17, slow_pixels=21)
TILTED = dict(detector_rotx_deg=2.0, detector_roty_deg=-3.0, detector_rotz_deg=1.5, detector_twotheta_deg=4.0)


def full_config(convention, pivot=None, **changes):
    settings = dict(distance_mm=60.0, pixel_size_mm=PIXEL_MM, fpixels=FPIXELS, spixels=SPIXELS,
                    detector_convention=convention, detector_pivot=pivot, **TILTED)
    settings.update(changes)
    return DetectorConfig(**settings)


def image(detector_config):
    """A float64 still of a 12 Å cubic cell (every amplitude 10): spots across the small detector."""
    crystal = Crystal(CrystalConfig(cell_a=12, cell_b=12, cell_c=12, N_cells=(4, 4, 4), default_F=10.0,
                                    misset_deg=(10.0, 20.0, 30.0)))
    return Simulator(crystal, Detector(detector_config), BeamConfig(wavelength_A=1.2)).run()


def crop(full_image, fast0, slow0, fast_pixels, slow_pixels):
    return full_image[slow0:slow0 + slow_pixels, fast0:fast0 + fast_pixels]


def assert_same_pixels(full, region, fast0, slow0):
    """The region's pixel (0, 0) is the full detector's (fast0, slow0); axes unchanged (float64)."""
    expected = full.pix0_m + full.pixel_size_m * (fast0 * full.fdet + slow0 * full.sdet)
    torch.testing.assert_close(region.pix0_m, expected, rtol=0, atol=1e-15)
    for axis in ("fdet", "sdet", "odet", "beam"):
        torch.testing.assert_close(getattr(region, axis), getattr(full, axis), rtol=0, atol=1e-15)


@pytest.mark.parametrize("convention", list(DetectorConvention))
@pytest.mark.parametrize("pivot", [None, DetectorPivot.BEAM, DetectorPivot.SAMPLE])
@pytest.mark.parametrize("beam_center", [None, (5.3, 7.9)])
def test_region_has_the_full_detectors_pixels(convention, pivot, beam_center):
    centre = dict(beam_center_f=beam_center[0], beam_center_s=beam_center[1]) if beam_center else {}
    config = full_config(convention, pivot, **centre)
    region = detector_region(config, **REGION)
    assert (region.fpixels, region.spixels) == (REGION["fast_pixels"], REGION["slow_pixels"])
    assert_same_pixels(Detector(config).geometry(), Detector(region).geometry(), REGION["fast0"], REGION["slow0"])


@pytest.mark.parametrize("convention", [DetectorConvention.MOSFLM, DetectorConvention.XDS, DetectorConvention.ADXV])
@pytest.mark.parametrize("curved", [False, True])
def test_region_image_is_the_full_images_crop(convention, curved):
    config = full_config(convention, curved_detector=curved)
    full_image = image(config)
    expected = crop(full_image, **REGION)
    assert expected.max() > 1e3 * expected[expected > 0].min()  # spots and the dark between them
    torch.testing.assert_close(image(detector_region(config, **REGION)), expected,
                               rtol=1e-9, atol=1e-12 * float(full_image.max()))


def test_pix0_override_moves_along_the_rotated_axes():
    config = full_config(DetectorConvention.CUSTOM, pix0_override_m=(-0.007, 0.006, 0.061))
    region = detector_region(config, **REGION)
    assert_same_pixels(Detector(config).geometry(), Detector(region).geometry(), REGION["fast0"], REGION["slow0"])
    assert all(isinstance(value, float) for value in region.pix0_override_m)


def test_roi_and_mask_are_cut_to_the_region():
    mask = np.ones((SPIXELS, FPIXELS), dtype=np.int8)
    mask[10, 20] = 0
    config = full_config(DetectorConvention.MOSFLM, roi=(15, 100, 0, 12), mask=mask)
    region = detector_region(config, **REGION)
    assert region.roi == (2, 16, 0, 6)
    assert region.mask.shape == (REGION["slow_pixels"], REGION["fast_pixels"])
    assert region.mask[10 - REGION["slow0"], 20 - REGION["fast0"]] == 0 and int(region.mask.sum()) == 17 * 21 - 1
    torch.testing.assert_close(image(region), crop(image(config), **REGION))


def test_beam_centre_gradient_flows_through_the_region():
    beam_f = torch.tensor(6.1, dtype=torch.float64, requires_grad=True)
    config = full_config(DetectorConvention.MOSFLM, beam_center_f=beam_f, beam_center_s=7.3)
    region = detector_region(config, **REGION)
    (gradient,) = torch.autograd.grad(region.beam_center_f, beam_f)
    assert float(gradient) == 1.0


@pytest.mark.parametrize("region, message", [
    (dict(fast0=30, slow0=0, fast_pixels=11, slow_pixels=5), "fast pixels 30 to 40"),
    (dict(fast0=0, slow0=-1, fast_pixels=5, slow_pixels=5), "slow pixels -1 to 3"),
    (dict(fast0=0, slow0=0, fast_pixels=0, slow_pixels=5), "fast pixels 0 to -1"),
    (dict(fast0=1.0, slow0=0, fast_pixels=5, slow_pixels=5), "fast0 and fast_pixels must be integers"),
])
def test_regions_off_the_detector_are_refused(region, message):
    with pytest.raises(ValueError, match=message):
        detector_region(full_config(DetectorConvention.MOSFLM), **region)


def test_region_outside_the_roi_is_refused():
    config = full_config(DetectorConvention.MOSFLM, roi=(0, 5, 0, 5))
    with pytest.raises(ValueError, match=r"outside the ROI \(0, 5, 0, 5\)"):
        detector_region(config, **REGION)


def test_a_moved_detector_is_not_cut():
    """A panel move turns about the centre of all the pixels: the region's own centre differs,
    so a region of a moved detector is refused rather than placed elsewhere."""
    config = DetectorConfig(fpixels=20, spixels=10, panel_rotation_deg=(0.0, 0.0, 1.0))
    with pytest.raises(ValueError, match=r"detector_region: the detector is moved .* panel_rotation_deg = "
                                         r"\(0\.0, 0\.0, 1\.0\)"):
        detector_region(config, 0, 0, 5, 5)
