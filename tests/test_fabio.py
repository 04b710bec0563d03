"""The command's SMV images open in fabio, the standard Python reader of detector images, with
the pixels and the geometry that were asked for; and so do those of a full-size Pilatus."""

from __future__ import annotations

import fabio
import numpy as np
import pytest

from nanobrag_torch.cli import build_simulator, main, parse_args
from nanobrag_torch.cli.report import smv_header
from nanobrag_torch.datasets import tutorial_data_paths
from nanobrag_torch.io.smv import format_smv_header, read_smv, write_smv

FAST, SLOW = 24, 16
COMMAND = ["-cell", "70", "80", "90", "75", "85", "95", "-default_F", "100", "-N", "5", "-lambda", "1.2",
           "-distance", "150", "-pixel", "0.2", "-detpixels_x", str(FAST), "-detpixels_y", str(SLOW),
           "-Xbeam", "1.5", "-Ybeam", "2.1", "-oversample", "1", "-seed", "7", "-floatfile", "float.bin",
           "-intfile", "int.img", "-noisefile", "noise.img", "-nopgm"]

SEED_PILATUS = ["-mat", str(tutorial_data_paths().matrix), "-default_F", "100", "-lambda", "0.9768",
                "-distance", "231.274660", "-pixel", "0.172", "-detpixels_x", "2463", "-detpixels_y", "2527",
                "-Xbeam", "217.742295", "-Ybeam", "213.907080", "-spindle_axis", "-1", "0", "0",
                "-odet_vector", "-0.000088", "0.004914", "-0.999988",
                "-sdet_vector", "-0.005998", "-0.999970", "-0.004913",
                "-fdet_vector", "0.999982", "-0.005998", "-0.000118",
                "-beam_vector", "0.00051387949", "0.0", "-0.99999986", "-N", "1", "-oversample", "1"]
"""The tutorial's experiment: the full Pilatus 6M geometry, whose header values are long."""


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fabio")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        assert main(COMMAND) == 0
    return folder


@pytest.mark.parametrize("name", ["int.img", "noise.img"])
def test_images_open_in_fabio_with_our_pixels_and_geometry(images, name):
    image = fabio.open(str(images / name))
    assert image.data.shape == (SLOW, FAST) and image.data.dtype == np.uint16
    np.testing.assert_array_equal(image.data, read_smv(images / name)[0])
    header = image.header
    assert (int(header["SIZE1"]), int(header["SIZE2"])) == (FAST, SLOW)
    assert float(header["PIXEL_SIZE"]) == 0.2
    assert float(header["DISTANCE"]) == 150.0
    assert float(header["WAVELENGTH"]) == 1.2
    assert (float(header["BEAM_CENTER_X"]), float(header["BEAM_CENTER_Y"])) == (1.5, 2.1)


def test_integer_image_in_fabio_is_the_float_image_scaled(images):
    floats = np.fromfile(images / "float.bin", dtype=np.float32).reshape(SLOW, FAST).astype(np.float64)
    counts = fabio.open(str(images / "int.img")).data.astype(np.float64)
    expected = floats * (55000.0 / floats.max()) + 40.0  # brightest pixel at 55000, ADC offset 40
    assert np.abs(counts - expected).max() <= 0.5 + 1e-3
    assert counts.max() == 55040


def test_noise_image_in_fabio_counts_photons_around_the_float_image(images):
    floats = np.fromfile(images / "float.bin", dtype=np.float32).reshape(SLOW, FAST).astype(np.float64)
    photons = fabio.open(str(images / "noise.img")).data.astype(np.float64) - 40.0
    assert photons.min() >= 0
    assert abs(photons.sum() - floats.sum()) < 5 * np.sqrt(floats.sum()) + 1


def test_pilatus_header_fits_the_bytes_it_declares_and_fabio_finds_every_pixel(tmp_path):
    """nanoBragg C declares 512 header bytes and writes 516 for this geometry, shifting every
    pixel; ours declares what it writes (the next multiple of 512)."""
    plan = parse_args(SEED_PILATUS)
    simulator, _ = build_simulator(plan)
    fpixels, spixels = plan.detector.fpixels, plan.detector.spixels
    header = smv_header(plan, simulator.detector.geometry(), fpixels, spixels)
    block = format_smv_header(header)
    declared = int(block[block.index(b"HEADER_BYTES=") + 13:].split(b";")[0])
    assert len(block) == declared and declared % 512 == 0
    assert block.index(b"}\f") + 2 <= declared
    data = np.zeros((spixels, fpixels), dtype=np.uint16)
    data[0, 0], data[0, -1], data[-1, 0], data[-1, -1] = 1, 2, 3, 4
    write_smv(tmp_path / "pilatus.img", data, header)
    image = fabio.open(str(tmp_path / "pilatus.img"))
    assert image.data.shape == (2527, 2463)
    assert [image.data[0, 0], image.data[0, -1], image.data[-1, 0], image.data[-1, -1]] == [1, 2, 3, 4]
    assert float(image.header["PIXEL_SIZE"]) == 0.172 and float(image.header["DISTANCE"]) == 231.275
