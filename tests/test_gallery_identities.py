"""The identities the gallery shows, re-derived in float64 with tolerances valid on any CPU.

The examples print these numbers and ``tests/site`` reads them from the built pages; here
the same statements are checked without a documentation build, in float64, and once more
single-threaded by ``tox -e threads1``.

Tolerances: a float64 Miller index h ≈ 30 carries a rounding error of about 30 × 1.1e-16,
and on the flank of a spot of N = 10 cells the intensity changes by about 2πN ≈ 60 times
that, relatively, per unit of h: two routes to the same image agree to a few 1e-13 of the
brightest pixel on any CPU. The checks allow 1e-11.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nanobrag_torch import (Crystal, CrystalConfig, Detector, DetectorConfig, DetectorConvention, Simulator,
                            beam_center_for_pixel)
from nanobrag_torch.conventions import CONVENTIONS

F64 = torch.float64
IDENTITY_RTOL = 1e-11

# --------------------------------------------------------------------------------------------
# examples/extensions/plot_oscillation.py: an oscillation is the mean of its stills

OSCILLATION_CRYSTAL = dict(cell_a=70.0, cell_b=80.0, cell_c=90.0, N_cells=(10, 10, 10), default_F=100.0,
                           misset_deg=(10.0, 20.0, 30.0))
OSCILLATION_DETECTOR = Detector(DetectorConfig(fpixels=512, spixels=512, pixel_size_mm=0.2,
                                               roi=(40, 103, 40, 103)), dtype=F64)


def _oscillation_image(**rotation) -> np.ndarray:
    crystal = Crystal(CrystalConfig(**OSCILLATION_CRYSTAL, **rotation), dtype=F64)
    return Simulator(crystal, OSCILLATION_DETECTOR).run().numpy()


@pytest.mark.parametrize("start, osc, steps", [(0.0, 0.1, 10), (0.35, 0.2, 4)])
def test_oscillation_is_the_mean_of_its_stills(start, osc, steps):
    oscillation = _oscillation_image(phi_start_deg=start, osc_range_deg=osc, phi_steps=steps)
    stills = [_oscillation_image(phi_start_deg=start + k * osc / steps) for k in range(steps)]
    assert oscillation.max() > 100, "the region must hold spots for the comparison to mean something"
    difference = np.abs(np.mean(stills, axis=0) - oscillation).max() / oscillation.max()
    assert difference < IDENTITY_RTOL, f"oscillation vs mean of stills: {difference:.2e} of the maximum"


# --------------------------------------------------------------------------------------------
# examples/detector_geometry/plot_conventions.py: one experiment in five conventions

FPIXELS, SPIXELS, PIXEL_MM = 160, 128, 0.6
BEAM_FAST, BEAM_SLOW = 50.0, 40.0
NAMED = [DetectorConvention.MOSFLM, DetectorConvention.DENZO, DetectorConvention.XDS,
         DetectorConvention.DIALS, DetectorConvention.ADXV]
"""The five conventions, MOSFLM (the reference of the image comparison) first."""


def _lab_frame(convention):
    vectors = CONVENTIONS[convention]
    beam = torch.tensor(vectors.beam, dtype=F64)
    fast = torch.tensor(vectors.fdet, dtype=F64)
    return torch.stack([beam, fast, torch.linalg.cross(beam, fast)], dim=1)


@pytest.fixture(scope="module")
def five_conventions():
    reference = Crystal(CrystalConfig(cell_a=40.0, cell_b=50.0, cell_c=60.0, misset_deg=(10.0, 20.0, 30.0)),
                        dtype=F64)
    stars = [v.detach() for v in reference.reciprocal_vectors_per_A()]
    result = {}
    for convention in NAMED:
        rotation = _lab_frame(convention) @ _lab_frame(DetectorConvention.MOSFLM).T
        a_star, b_star, c_star = (rotation @ v for v in stars)
        crystal = Crystal(CrystalConfig(mosflm_a_star=a_star, mosflm_b_star=b_star, mosflm_c_star=c_star,
                                        N_cells=(5, 5, 5), default_F=100.0), dtype=F64)
        centre_f, centre_s = beam_center_for_pixel(convention, BEAM_FAST, BEAM_SLOW, PIXEL_MM, FPIXELS, SPIXELS)
        detector = Detector(DetectorConfig(fpixels=FPIXELS, spixels=SPIXELS, pixel_size_mm=PIXEL_MM,
                                           detector_convention=convention, beam_center_f=centre_f,
                                           beam_center_s=centre_s), dtype=F64)
        result[convention] = (detector.geometry(), Simulator(crystal, detector).run().numpy())
    return result


@pytest.mark.parametrize("convention", NAMED, ids=lambda c: c.name)
def test_beam_centre_rules_put_the_beam_on_the_chosen_pixel(five_conventions, convention):
    geometry, _ = five_conventions[convention]
    fast = float(geometry.Fbeam_m / geometry.pixel_size_m - 0.5)
    slow = float(geometry.Sbeam_m / geometry.pixel_size_m - 0.5)
    assert (fast, slow) == pytest.approx((BEAM_FAST, BEAM_SLOW), abs=1e-9)


@pytest.mark.parametrize("convention", NAMED[1:], ids=lambda c: c.name)
def test_one_experiment_gives_one_image_in_every_convention(five_conventions, convention):
    """Each other convention against MOSFLM (``NAMED[0]``): comparing MOSFLM with itself would test nothing."""
    mosflm = five_conventions[DetectorConvention.MOSFLM][1]
    image = five_conventions[convention][1]
    assert mosflm.max() > 100
    rows = np.arange(0, int(2 * BEAM_SLOW) + 1)
    same = np.abs(image - mosflm).max() / mosflm.max()
    mirrored = np.abs(image[(2 * BEAM_SLOW - rows).astype(int)] - mosflm[rows]).max() / mosflm.max()
    if convention is DetectorConvention.ADXV:
        assert mirrored < IDENTITY_RTOL, f"ADXV vs MOSFLM mirrored about the beam row: {mirrored:.2e}"
        assert same > 0.1, "ADXV's frame has the other handedness: its image must be mirrored"
    else:
        assert same < IDENTITY_RTOL, f"{convention.name} vs MOSFLM: {same:.2e} of the maximum"
