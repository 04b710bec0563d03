"""The gallery's plotting helper: one orientation, one colour scale, matplotlib only when drawing."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from nanobrag_torch.plotting import DECADES, color_limits

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402

from nanobrag_torch.plotting import show_detector_image, show_residual  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_importing_the_package_and_the_helper_does_not_import_matplotlib():
    code = ("import sys, nanobrag_torch, nanobrag_torch.plotting, nanobrag_torch.simulator; "
            "assert 'matplotlib' not in sys.modules, sorted(m for m in sys.modules if 'matplotlib' in m)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_slow_axis_runs_down_and_fast_axis_to_the_right():
    image = np.zeros((4, 6))
    image[1, 5] = 10.0  # slow 1, fast 5
    artist = show_detector_image(image)
    ax = artist.axes
    assert artist.origin == "upper"
    assert artist.get_extent() == [-0.5, 5.5, 3.5, -0.5]
    bottom, top = ax.get_ylim()
    assert bottom > top, "slow pixel 0 must be at the top"
    left, right = ax.get_xlim()
    assert left < right, "fast pixel 0 must be at the left"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("fast pixel", "slow pixel")


def test_log_scale_spans_the_top_decades_below_the_percentile():
    rng = np.random.default_rng(0)
    image = rng.exponential(size=(100, 100))
    image[0, 0] = 1e9  # one hot pixel must not set the scale
    artist = show_detector_image(image)
    assert isinstance(artist.norm, LogNorm)
    top = np.percentile(image[image > 0], 99.9)
    assert artist.norm.vmax == pytest.approx(top)
    assert artist.norm.vmin == pytest.approx(top / 10 ** DECADES)
    assert color_limits(image) == pytest.approx((top / 10 ** DECADES, top))


def test_zero_pixels_take_the_lowest_colour():
    image = np.zeros((3, 3))
    image[1, 1] = 100.0
    artist = show_detector_image(image)
    lowest = artist.cmap(0.0)
    assert artist.cmap.get_bad() == pytest.approx(lowest)
    assert artist.cmap.get_under() == pytest.approx(lowest)


def test_shared_vmax_and_linear_scale():
    image = np.full((5, 5), 2.0)
    artist = show_detector_image(image, vmax=50.0, colorbar=False)
    assert (artist.norm.vmin, artist.norm.vmax) == pytest.approx((50.0 / 10 ** DECADES, 50.0))
    linear = show_detector_image(image, log=False, vmax=8.0, colorbar=False)
    assert not isinstance(linear.norm, LogNorm)
    assert (linear.norm.vmin, linear.norm.vmax) == (0.0, 8.0)


def test_region_keeps_the_detector_pixel_numbers():
    image = np.arange(200.0).reshape(10, 20) + 1
    artist = show_detector_image(image, region=(slice(2, 6), slice(10, 18)), title="zoom")
    np.testing.assert_array_equal(artist.get_array(), image[2:6, 10:18])
    assert artist.get_extent() == [9.5, 17.5, 5.5, 1.5]
    assert artist.axes.get_title() == "zoom"


def test_tensors_with_gradients_are_accepted():
    image = torch.rand(8, 8, dtype=torch.float32, requires_grad=True)
    artist = show_detector_image(image * 2)
    np.testing.assert_allclose(artist.get_array(), (image * 2).detach().numpy(), rtol=1e-7)


def test_colorbar_is_added_to_the_given_axes_figure():
    fig, ax = plt.subplots()
    show_detector_image(np.ones((4, 4)), ax=ax)
    assert len(fig.axes) == 2
    assert fig.axes[1].get_ylabel() == "photons per pixel"


def test_residual_is_symmetric_about_zero():
    residual = np.linspace(-3, 5, 100).reshape(10, 10)
    artist = show_residual(residual)
    scale = np.percentile(np.abs(residual), 99)
    assert (artist.norm.vmin, artist.norm.vmax) == pytest.approx((-scale, scale))
    assert artist.origin == "upper"
    fixed = show_residual(residual, scale=2.0, colorbar=False)
    assert (fixed.norm.vmin, fixed.norm.vmax) == (-2.0, 2.0)


@pytest.mark.parametrize("bad", [np.zeros(5), np.zeros((2, 2, 2))])
def test_an_image_that_is_not_2d_is_named(bad):
    with pytest.raises(ValueError, match=r"must be 2-D .* shape \("):
        show_detector_image(bad)


def test_a_region_that_is_not_two_slices_is_named():
    with pytest.raises(ValueError, match="pair of slices"):
        show_detector_image(np.ones((4, 4)), region=(1, 2))


def test_an_image_without_light_gets_a_valid_scale():
    assert color_limits(np.zeros((3, 3))) == pytest.approx((1e-4, 1.0))
    with pytest.raises(ValueError, match="vmax"):
        color_limits(np.ones((3, 3)), vmax=0.0)


def test_counts_scale_lights_every_counted_pixel_and_saturates_only_the_top():
    from nanobrag_torch.plotting import COUNT_FLOOR, count_color_scale

    counts = np.zeros((5, 5))
    counts[0, 0], counts[1, 1], counts[2, 2] = 1.0, 7.0, 40.0
    other = np.zeros((5, 5))
    other[3, 3] = 90.0
    scale = count_color_scale(counts, other)
    assert scale["vmax"] == 90.0 and scale["label"] == "photons counted"
    artist = show_detector_image(counts, **scale)
    norm = artist.norm
    assert norm.vmin == pytest.approx(COUNT_FLOOR) and norm.vmax == pytest.approx(90.0)
    assert 0.0 < norm(1.0) < norm(7.0) < norm(40.0) < 1.0
    assert count_color_scale(np.zeros((2, 2)))["vmax"] == 1.0


def test_counts_scale_needs_an_image():
    from nanobrag_torch.plotting import count_color_scale

    with pytest.raises(ValueError, match="at least one image"):
        count_color_scale()


def test_pixel_axes_have_integer_ticks():
    artist = show_residual(np.arange(36.0).reshape(6, 6) - 18, region=(slice(2, 5), slice(1, 4)))
    artist.axes.figure.canvas.draw()
    for ticks in (artist.axes.get_xticks(), artist.axes.get_yticks()):
        assert np.all(ticks == np.round(ticks)), ticks
