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
from noise_reference import ReferencePoissonGenerator, reference_noise_image
from noise_reference import gammln as reference_gammln

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
        differ = np.flatnonzero(draws != row)
        assert differ.size == 0, f"seed {seed}: draws {differ[:5]} differ from C"
        _, photons, overloads = noise_image(np.full((1, row.size), case["mean"], dtype=np.float32), seed)
        assert photons == c_sum and overloads == row.size


def _means_in_every_branch(rng, shape):
    """Float32 means covering 0, tiny, the direct method (< 12), rejection (12 to 1e6), the
    Gaussian branch (> 1e6), the boundaries between them and a few negative values, shuffled."""
    n = shape[0] * shape[1]
    edges = np.array([0.0, -0.5, -1e-3, 1e-38, 1e-30, 11.999999, 12.0, 12.000001, 1e6,
                      np.nextafter(np.float32(1e6), np.float32(2e6)), 3.4e38], dtype=np.float32)
    k = (n - edges.size) // 5
    parts = [np.zeros(k), 10.0 ** rng.uniform(-30, -2, k), rng.uniform(0, 12, k),
             np.exp(rng.uniform(np.log(12), np.log(1e6), k)),
             np.exp(rng.uniform(np.log(1e6), np.log(1e9), n - edges.size - 4 * k))]
    means = np.concatenate(parts + [edges]).astype(np.float32)
    rng.shuffle(means)
    return means.reshape(shape)


@pytest.mark.parametrize("seed", [1, 12345, 987654321, 0, -7, 2 ** 40 + 5])
def test_compiled_noise_image_equals_reference_port(seed):
    rng = np.random.default_rng(seed % 2 ** 32)
    means = _means_in_every_branch(rng, (48, 64))
    for adc, roi in ((40.0, None), (-100.0, (3, 60, 1, 40)), (7.5, (10, 9, 0, 47))):
        image, photons, overloads = noise_image(means, seed, adc, roi)
        ref_image, ref_photons, ref_overloads = reference_noise_image(means, seed, adc, roi)
        differ = np.count_nonzero(image != ref_image)
        assert differ == 0, f"adc {adc}, roi {roi}: {differ} pixels differ"
        assert photons == ref_photons and overloads == ref_overloads
    assert overloads == 0 and photons == 0.0  # the last ROI is empty


@pytest.mark.parametrize("seed", [3, 42, -11])
def test_compiled_deviates_equal_reference_port_draw_for_draw(seed):
    means = _means_in_every_branch(np.random.default_rng(seed % 2 ** 32), (1, 600)).ravel().tolist()
    compiled, reference = PoissonGenerator(seed), ReferencePoissonGenerator(seed)
    for mean in means:
        assert compiled.poidev(mean) == reference.poidev(mean), mean
        assert compiled.gaussdev() == reference.gaussdev()


def test_compiled_gammln_equals_reference_port():
    xs = np.concatenate([[1e-30, 0.5, 1.0, 2.0, 12.0, 13.0, 1e6 + 1.0, 1e30],
                         np.random.default_rng(5).uniform(1.0, 2e6, 500)])
    for x in xs.tolist():
        assert gammln(x) == reference_gammln(x), x


def test_noise_image_names_a_bad_value():
    image = np.ones((3, 4), dtype=np.float32)
    image[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"float_image\[2, 1\] is nan"):
        noise_image(image, seed=1)
    noise_image(image, seed=1, roi=(2, 3, 0, 2))  # the NaN is outside the ROI
    with pytest.raises(ValueError, match="2-D"):
        noise_image(np.ones(5), seed=1)
    with pytest.raises(ValueError, match=r"noise seed 36893488147419103232"):
        noise_image(image, seed=2 ** 65)
    with pytest.raises(ValueError, match="noise seed must be an integer, got 'x'"):
        PoissonGenerator("x")

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


def test_int_image_scale_from_the_brightest_pixel_as_c():
    float_image = _load("noise_seeded.npy.gz")
    scale = intfile_scale(float(float_image.max()), None)
    assert scale == pytest.approx(306.471, rel=1e-5)  # C: "intfile_scale = 306.471"
    assert int_image(float_image, scale, adc_offset=40.0).max() == 55040  # 55000 + adc


# C: intimage = floorf(clamp(float pixel * scale + adc, 0, 65535) + 0.5), the argument of floorf
# being a float. Expected ADU worked out by hand for scale 1 and adc 40.
INT_IMAGE_PIXELS = [
    (0.0, 40),  # 40.5 -> 40
    (2.5, 43),  # 42.5 + 0.5 = 43 exactly: halves round up
    (1.4, 41),  # 41.4 + 0.5 = 41.9 -> 41
    (-0.5, 40),  # 39.5 + 0.5 = 40
    (-39.6, 0),  # 0.4 + 0.5 = 0.9 -> 0
    (-40.2, 0),  # -0.2 clamps to 0
    (-1e6, 0),  # clamps to 0
    (65494.5, 65535),  # 65534.5 + 0.5 = 65535
    (65495.5, 65535),  # 65535.5 clamps to 65535, + 0.5 = 65535.5 -> 65535 (no wrap to 0)
    (1e30, 65535),
    (0.49999997, 41),  # 40.99999997 is 41.0 in float32 before floorf; a double floor gives 40
]


def test_int_image_rounds_and_clamps_hand_computed_pixels():
    values = np.array([[v for v, _ in INT_IMAGE_PIXELS]], dtype=np.float32)
    expected = np.array([[adu for _, adu in INT_IMAGE_PIXELS]], dtype=np.uint16)
    assert np.array_equal(int_image(values, 1.0, adc_offset=40.0), expected)


def test_int_image_scale_offset_and_float32_pixels():
    assert int_image(np.array([[3.25]]), 2.0, adc_offset=40.0)[0, 0] == 47  # 46.5 + 0.5
    assert int_image(np.array([[5.0]]), 1.0, adc_offset=-10.0)[0, 0] == 0  # -5 clamps to 0
    # The float image is float32, as in C: 1.0000499512 is 1.0000499487f, so the pixel is
    # 10000.49949 + 0.5 -> 10000.99902f -> 10000 (from the double 1.0000499512 it would be 10001).
    assert int_image(np.array([[1.0000499512]]), 1e4, adc_offset=0.0)[0, 0] == 10000


def test_int_image_is_zero_outside_the_roi():
    image = int_image(np.full((3, 4), 10.0, dtype=np.float32), 1.0, adc_offset=40.0, roi=(1, 2, 0, 1))
    assert np.array_equal(image, [[0, 50, 50, 0], [0, 50, 50, 0], [0, 0, 0, 0]])
    clipped = int_image(np.full((2, 2), 10.0, dtype=np.float32), 1.0, adc_offset=40.0, roi=(-5, 0, 1, 9))
    assert np.array_equal(clipped, [[0, 0], [50, 0]])


def test_intfile_scale_explicit_and_zero_image():
    assert intfile_scale(10.0, 2.5) == 2.5
    assert intfile_scale(0.0, None) == 1.0
