"""The Poisson noise and integer images against nanoBragg C.

Golden cases: ``noise_seeded`` (manifest.json; every mean in the rejection range),
``noise_bright`` (every branch of ``poidev``, through the program) and
``noise_gaussian_draws`` (C's own ``poidev`` in the Gaussian range), described in
``golden/noise_cases.json``.
"""

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest

from nanobrag_torch.noise import PoissonGenerator, gammln, int_image, intfile_scale, noise_image

GOLDEN = Path(__file__).parent / "golden"
NOISE_CASES = json.loads((GOLDEN / "noise_cases.json").read_text())


def _load(name):
    with gzip.open(GOLDEN / name) as handle:
        return np.load(handle)


def test_noise_image_matches_c_bit_for_bit():
    float_image = _load("noise_seeded.npy.gz")
    expected = _load("noise_seeded.noise.npy.gz")
    image, photons, overloads = noise_image(float_image, seed=12345, adc_offset=40.0)
    assert (image == expected).mean() == 1.0
    assert photons == 469126  # C: "469126 photons on noise image (0 overloads)"
    assert overloads == 0



def test_noise_image_matches_c_in_every_branch_of_poidev():
    case = NOISE_CASES["noise_bright"]
    float_image = _load(case["float_image"])
    expected = _load(case["noise_image"])
    means = float_image[case["roi"][2]:case["roi"][3] + 1, case["roi"][0]:case["roi"][1] + 1]
    assert (means == 0).any() and ((means > 0) & (means < 12)).any()
    assert ((means >= 12) & (means <= 1e6)).any() and (means > 1e6).any()
    image, photons, overloads = noise_image(float_image, seed=case["seed"], adc_offset=case["adc"],
                                            roi=tuple(case["roi"]))
    assert np.array_equal(image, expected)
    assert f"{photons:.0f} photons on noise image ({overloads} overloads)" == case["stdout"]


def test_gaussian_deviates_match_c_draw_for_draw():
    case = NOISE_CASES["noise_gaussian_draws"]
    expected = _load(case["file"])
    for seed, row, c_sum in zip(case["seeds"], expected, case["sums"]):
        generator = PoissonGenerator(seed)
        draws = np.array([generator.poidev(case["mean"]) for _ in range(row.size)], dtype=np.float32)
        assert np.array_equal(draws, row), f"seed {seed}: first differing draw {np.flatnonzero(draws != row)[0]}"
        _, photons, overloads = noise_image(np.full((1, row.size), case["mean"], dtype=np.float32), seed)
        assert photons == c_sum and overloads == row.size

def test_noise_outside_roi_is_zero_and_inside_has_offset():
    float_image = np.full((6, 5), 3.0, dtype=np.float32)
    image, _, _ = noise_image(float_image, seed=1, adc_offset=40.0, roi=(1, 2, 2, 4))
    assert (image[:2] == 0).all() and (image[5] == 0).all()
    assert (image[:, 0] == 0).all() and (image[:, 3:] == 0).all()
    assert (image[2:5, 1:3] >= 40).all()


def test_poidev_large_mean_uses_gaussian_branch_and_clamps():
    generator = PoissonGenerator(seed=3)
    draws = [generator.poidev(4e6) for _ in range(200)]
    assert abs(np.mean(draws) - 4e6) < 5 * 2000
    image, _, overloads = noise_image(np.full((1, 2), 1e7, dtype=np.float32), seed=3)
    assert (image == 65535).all() and overloads == 2


def test_poidev_zero_mean_gives_zero():
    generator = PoissonGenerator(seed=9)
    assert all(generator.poidev(0.0) == 0.0 for _ in range(20))


@pytest.mark.parametrize("x", [1.0, 2.0, 5.5, 13.0, 101.0])
def test_gammln_matches_lgamma(x):
    assert gammln(x) == pytest.approx(math.lgamma(x), abs=1e-5)


def test_int_image_scale_and_rounding_as_c():
    float_image = _load("noise_seeded.npy.gz")
    scale = intfile_scale(float(float_image.max()), None)
    assert scale == pytest.approx(306.471, rel=1e-5)  # C: "intfile_scale = 306.471"
    image = int_image(float_image, scale, adc_offset=40.0)
    assert image.max() == 55040
    expected = np.floor((float_image.astype(np.float64) * scale + 40.0 + 0.5).astype(np.float32))
    assert (image == expected).all()
    roi = int_image(float_image, scale, 40.0, roi=(0, 3, 0, 1))
    assert (roi[2:] == 0).all() and (roi[:2, :4] > 0).all()


def test_intfile_scale_explicit_and_zero_image():
    assert intfile_scale(10.0, 2.5) == 2.5
    assert intfile_scale(0.0, None) == 1.0
