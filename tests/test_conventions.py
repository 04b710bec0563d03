"""Detector conventions: the beam-centre rules put the beam where they say, the defaults are
nanoBragg's, and the pivot rules of the library and the command."""

from __future__ import annotations

import pytest
import torch

from nanobrag_torch import (BeamConfig, Crystal, CrystalConfig, Detector, DetectorConfig, DetectorConvention,
                            DetectorPivot, Simulator, beam_center_for_pixel, default_beam_center_mm)
from nanobrag_torch.conventions import CONVENTIONS, c_header_beam_center, command_line_pivot, detector_pivot

FPIXELS, SPIXELS, PIXEL_MM = 24, 20, 0.6


def beam_pixel(detector):
    """Where the beam meets the (unrotated) detector, in pixel coordinates (centres at integers)."""
    geometry = detector.geometry()
    pixel = geometry.pixel_size_m
    return float(geometry.Fbeam_m / pixel - 0.5), float(geometry.Sbeam_m / pixel - 0.5)


@pytest.mark.parametrize("convention", list(DetectorConvention))
@pytest.mark.parametrize("pivot", [None, DetectorPivot.BEAM, DetectorPivot.SAMPLE])
def test_beam_center_for_pixel_puts_the_beam_on_that_pixel(convention, pivot):
    centre = beam_center_for_pixel(convention, 7.0, 12.0, PIXEL_MM, FPIXELS, SPIXELS)
    detector = Detector(DetectorConfig(fpixels=FPIXELS, spixels=SPIXELS, pixel_size_mm=PIXEL_MM,
                                       detector_convention=convention, detector_pivot=pivot,
                                       beam_center_f=centre[0], beam_center_s=centre[1]))
    assert beam_pixel(detector) == pytest.approx((7.0, 12.0), abs=1e-9)


@pytest.mark.parametrize("convention", list(DetectorConvention))
def test_the_direct_beam_is_rendered_on_the_centre_of_that_pixel(convention):
    """Only F(000) is non-zero, and the (000) spot of a 20 Å cell spans a few pixels: the
    brightest pixel is the beam's, and its neighbours on either side are equally bright because
    the beam meets the detector at the pixel's centre (the cell's axes are along the lab axes, so
    the spot is symmetric about the beam)."""
    fast, slow = 9, 6
    centre = beam_center_for_pixel(convention, fast, slow, PIXEL_MM, FPIXELS, SPIXELS)
    grid = torch.zeros((3, 3, 3), dtype=torch.float64)
    grid[1, 1, 1] = 100.0
    metadata = dict(h_min=-1, h_max=1, k_min=-1, k_max=1, l_min=-1, l_max=1)
    crystal = Crystal(CrystalConfig(cell_a=20, cell_b=20, cell_c=20, N_cells=(3, 3, 3), interpolate=False),
                      (grid, metadata))
    detector = Detector(DetectorConfig(distance_mm=50, fpixels=FPIXELS, spixels=SPIXELS, pixel_size_mm=PIXEL_MM,
                                       detector_convention=convention, beam_center_f=centre[0],
                                       beam_center_s=centre[1]))
    image = Simulator(crystal, detector, BeamConfig(wavelength_A=1.0)).run()
    assert divmod(int(image.argmax()), FPIXELS) == (slow, fast)
    torch.testing.assert_close(image[slow, fast - 1], image[slow, fast + 1], rtol=1e-12, atol=0)
    torch.testing.assert_close(image[slow - 1, fast], image[slow + 1, fast], rtol=1e-12, atol=0)
    assert 0 < image[slow, fast + 1] < image[slow, fast] and 0 < image[slow + 1, fast] < image[slow, fast]


@pytest.mark.parametrize("convention, expected_px", [
    (DetectorConvention.MOSFLM, 512.5), (DetectorConvention.DENZO, 512.0), (DetectorConvention.ADXV, 512.0),
    (DetectorConvention.XDS, 511.5), (DetectorConvention.DIALS, 511.5), (DetectorConvention.CUSTOM, 511.5),
])
def test_default_beam_centre_is_nanobraggs(convention, expected_px):
    default = default_beam_center_mm(convention, 0.1, 1024, 1024)
    assert default == pytest.approx(beam_center_for_pixel(convention, expected_px, expected_px, 0.1, 1024, 1024))
    implicit = Detector(DetectorConfig(detector_convention=convention))
    explicit = Detector(DetectorConfig(detector_convention=convention, beam_center_f=default[0],
                                       beam_center_s=default[1]))
    assert beam_pixel(implicit) == pytest.approx((expected_px, expected_px), abs=1e-9)
    torch.testing.assert_close(implicit.geometry().pix0_m, explicit.geometry().pix0_m, rtol=1e-14, atol=0)


def test_c_header_names_mosflm_and_denzo_slow_coordinate_x():
    # nanoBragg's default MOSFLM header: Xbeam = (Ds + p)/2 along slow, Ybeam = (Df + p)/2 along fast
    f, s = default_beam_center_mm(DetectorConvention.MOSFLM, 0.1, 100, 200)
    assert c_header_beam_center(DetectorConvention.MOSFLM, f, s) == pytest.approx(((20 + 0.1) / 2, (10 + 0.1) / 2))
    assert c_header_beam_center(DetectorConvention.DENZO, 1.0, 2.0) == (2.0, 1.0)
    for convention in (DetectorConvention.ADXV, DetectorConvention.XDS, DetectorConvention.DIALS,
                       DetectorConvention.CUSTOM):
        assert c_header_beam_center(convention, 1.0, 2.0) == (1.0, 2.0)
    # ADXV measures the slow coordinate from the far edge: default Ybeam = (Ds − p)/2
    assert default_beam_center_mm(DetectorConvention.ADXV, 0.1, 100, 200) == pytest.approx((5.05, 9.95))


def test_pivot_rules():
    for convention, row in CONVENTIONS.items():
        assert detector_pivot(convention, None) is row.pivot
        assert detector_pivot(convention, DetectorPivot.SAMPLE) is DetectorPivot.SAMPLE
        for flag in DetectorPivot:
            expected = flag if convention is DetectorConvention.CUSTOM else row.pivot
            assert command_line_pivot(convention, flag) is expected
    assert {c for c, row in CONVENTIONS.items() if row.pivot is DetectorPivot.SAMPLE} == {
        DetectorConvention.XDS, DetectorConvention.DIALS}


def test_every_convention_has_orthonormal_axes_and_the_normal_along_the_beam():
    for convention, row in CONVENTIONS.items():
        fdet, sdet, odet = (torch.tensor(v, dtype=torch.float64) for v in (row.fdet, row.sdet, row.odet))
        assert torch.equal(torch.tensor(row.beam, dtype=torch.float64), odet), convention
        assert abs(float(torch.dot(torch.linalg.cross(fdet, sdet), odet))) == 1.0, convention  # ADXV's is left-handed
