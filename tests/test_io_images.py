"""Detector images of the field: CBF written by fabio and by the command's ``-cbffile``, NeXus
NXmx master files with external, bitshuffle/LZ4-compressed data (written with h5py and
hdf5plugin), and the command's SMV images, read back by ``read_image``."""

from __future__ import annotations

import fabio
import h5py
import hdf5plugin
import numpy as np
import pytest
from fabio.cbfimage import CbfImage

from nanobrag_torch.cli import main
from nanobrag_torch.io import DetectorImage, read_image
from nanobrag_torch.io.images import write_cbf
from nanobrag_torch.io.smv import read_smv, read_smv_header

FAST, SLOW = 24, 16
COMMAND = ["-cell", "70", "80", "90", "75", "85", "95", "-default_F", "100", "-N", "5", "-lambda", "1.2",
           "-distance", "150", "-pixel", "0.2", "-detpixels_x", str(FAST), "-detpixels_y", str(SLOW),
           "-Xbeam", "1.5", "-Ybeam", "2.1", "-oversample", "1", "-seed", "7", "-floatfile", "float.bin",
           "-intfile", "int.img", "-cbffile", "int.cbf", "-nonoise", "-nopgm", "-adc", "30"]


@pytest.fixture(scope="module")
def command_images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cbf")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        assert main(COMMAND) == 0
    return folder


def test_cbffile_is_the_intfile_image_in_fabio_and_in_read_image(command_images):
    smv = read_smv(command_images / "int.img")[0]
    cbf = fabio.open(str(command_images / "int.cbf"))
    np.testing.assert_array_equal(cbf.data, smv)
    image = read_image(command_images / "int.cbf")
    np.testing.assert_array_equal(image.counts, smv.astype(np.float64))
    assert not image.mask.any()
    header = read_smv_header(command_images / "int.img")
    assert image.pixel_size_mm == pytest.approx(float(header["PIXEL_SIZE"]), rel=1e-6)
    assert image.distance_mm == pytest.approx(float(header["DISTANCE"]), rel=1e-7)
    assert image.wavelength_A == pytest.approx(float(header["WAVELENGTH"]), rel=1e-7)
    # Pilatus' Beam_xy is (fast, slow) in pixels: nanoBragg's Fbeam, Sbeam over the pixel size
    fbeam_mm, sbeam_mm = float(header["DENZO_Y_BEAM"]), float(header["DENZO_X_BEAM"])
    assert image.beam_center_px == pytest.approx((fbeam_mm / 0.2, sbeam_mm / 0.2), rel=1e-6)


def test_smv_counts_have_the_adc_offset_removed_and_the_header_geometry(command_images):
    floats = np.fromfile(command_images / "float.bin", dtype=np.float32).reshape(SLOW, FAST).astype(np.float64)
    image = read_image(command_images / "int.img", adc_offset_adu=30)
    assert image.counts.shape == (SLOW, FAST) and image.counts.dtype == np.float64
    expected = floats * (55000.0 / floats.max())  # brightest pixel at 55000 before the offset
    assert np.abs(image.counts - expected).max() <= 0.5 + 1e-3
    assert (image.pixel_size_mm, image.distance_mm, image.wavelength_A) == (0.2, 150.0, 1.2)
    assert image.n_frames == 1 and not image.mask.any()


def test_cbf_flags_and_count_cutoff_are_masked(tmp_path):
    data = np.arange(20, dtype=np.int32).reshape(4, 5) * 100
    data[0, 1], data[2, 3] = -1, -2  # Pilatus: module gap, bad pixel
    contents = "\r\n".join(["# Pixel_size 172e-6 m x 172e-6 m", "# Count_cutoff 1500 counts",
                            "# Detector_distance 0.25000 m", "# Wavelength 1.0332 A",
                            "# Beam_xy (2.50, 1.75) pixels"])
    CbfImage(data=data, header={"_array_data.header_contents": contents}).write(str(tmp_path / "p.cbf"))
    image = read_image(tmp_path / "p.cbf")
    np.testing.assert_array_equal(image.counts, data)
    np.testing.assert_array_equal(image.mask, (data < 0) | (data >= 1500))
    np.testing.assert_array_equal(image.saturated, data >= 1500)  # the overloads; not the gap, not the bad pixel
    assert image.pixel_size_mm == pytest.approx(0.172) and image.distance_mm == pytest.approx(250.0)
    assert image.wavelength_A == pytest.approx(1.0332) and image.beam_center_px == (2.5, 1.75)


def test_write_cbf_round_trip(tmp_path):
    data = (np.arange(12, dtype=np.int32).reshape(3, 4) - 2) * 70001  # large steps: the 4-byte offsets
    write_cbf(tmp_path / "w.cbf", data, pixel_size_mm=0.075, distance_mm=120.0, wavelength_A=0.98,
              beam_center_px=(1.0, 2.0))
    np.testing.assert_array_equal(fabio.open(str(tmp_path / "w.cbf")).data, data)
    image = read_image(tmp_path / "w.cbf")
    np.testing.assert_array_equal(image.counts, data)
    assert (image.pixel_size_mm, image.distance_mm, image.wavelength_A) == pytest.approx((0.075, 120.0, 0.98))


def _nexus(folder, frames_per_file=(2, 3), panels=None, compression=True):
    """An NXmx master file linking to external data files, the frames numbered so that frame i
    holds values 1000·i + pixel index; returns the master's path and every frame."""
    frame_shape = (SLOW, FAST) if panels is None else (panels, SLOW, FAST)
    total = sum(frames_per_file)
    frames = (np.arange(total)[:, None] * 1000 + np.arange(np.prod(frame_shape))).reshape(total, *frame_shape)
    frames = frames.astype(np.uint32)
    frames[:, ..., 0, 0] = np.iinfo(np.uint32).max  # Eiger's flag of a dead pixel
    filters = hdf5plugin.Bitshuffle(cname="lz4") if compression else {}
    start = 0
    with h5py.File(folder / "master.h5", "w") as master:
        for number, count in enumerate(frames_per_file, start=1):
            name = f"data_{number:06d}.h5"
            with h5py.File(folder / name, "w") as data_file:
                data_file.create_dataset("data", data=frames[start:start + count], chunks=(1, *frame_shape),
                                         **filters)
            master[f"entry/data/data_{number:06d}"] = h5py.ExternalLink(name, "data")
            start += count
        detector = master.create_group("entry/instrument/detector")
        detector["x_pixel_size"] = 75.0
        detector["x_pixel_size"].attrs["units"] = "um"
        detector["distance"] = 0.125
        detector["distance"].attrs["units"] = "m"
        detector["beam_center_x"], detector["beam_center_y"] = 10.5, 7.25
        detector["saturation_value"] = 2000
        pixel_mask = np.zeros(frame_shape, dtype=np.uint32)
        pixel_mask[..., 3, 4] = 1
        detector["pixel_mask"] = pixel_mask
        master["entry/instrument/beam/incident_wavelength"] = 0.1
        master["entry/instrument/beam/incident_wavelength"].attrs["units"] = "nm"
    return folder / "master.h5", frames


def test_nexus_multi_frame_with_external_bitshuffle_lz4_data(tmp_path):
    master, frames = _nexus(tmp_path)
    with h5py.File(tmp_path / "data_000002.h5") as data_file:  # the data really are compressed by the plugin
        assert data_file["data"]._filters and hdf5plugin.BSHUF_ID in [int(k) for k in data_file["data"]._filters]
    for index in (0, 1, 2, 4):  # both files, both sides of the boundary
        image = read_image(master, index)
        assert isinstance(image, DetectorImage) and image.n_frames == 5
        np.testing.assert_array_equal(image.counts, frames[index].astype(np.float64))
        expected = (frames[index] >= 2000) | (frames[index] == np.iinfo(np.uint32).max)
        expected[3, 4] = True
        np.testing.assert_array_equal(image.mask, expected)
        np.testing.assert_array_equal(image.saturated, frames[index] >= 2000)  # not the gaps' largest value
    assert image.pixel_size_mm == pytest.approx(0.075) and image.distance_mm == pytest.approx(125.0)
    assert image.wavelength_A == pytest.approx(1.0) and image.beam_center_px == (10.5, 7.25)


@pytest.mark.parametrize("index", [5, -1])
def test_nexus_frame_out_of_range_names_file_and_count(tmp_path, index):
    master, _ = _nexus(tmp_path)
    with pytest.raises(ValueError, match=rf"^{master}: frame index {index} out of range: the file holds 5 frames"):
        read_image(master, index)


def test_nexus_multi_panel_frame_is_panels_slow_fast(tmp_path):
    master, frames = _nexus(tmp_path, frames_per_file=(3,), panels=2, compression=False)
    image = read_image(master, 1)
    assert image.counts.shape == image.mask.shape == (2, SLOW, FAST)
    np.testing.assert_array_equal(image.counts, frames[1])
    assert image.mask[:, 3, 4].all() and image.mask[:, 0, 0].all()


def test_nexus_missing_external_file_names_the_dataset(tmp_path):
    master, _ = _nexus(tmp_path)
    (tmp_path / "data_000002.h5").unlink()
    with pytest.raises(ValueError, match=rf"^{master}: .*data_000002"):
        read_image(master, 0)


def test_single_frame_formats_refuse_another_index(command_images):
    with pytest.raises(ValueError, match="frame index 1 out of range: the file holds 1 frame"):
        read_image(command_images / "int.cbf", 1)


def test_unknown_format_is_named(tmp_path):
    (tmp_path / "x.tif").write_bytes(b"II*\x00" + bytes(100))
    with pytest.raises(ValueError, match=rf"^{tmp_path / 'x.tif'}: not a CBF, HDF5/NeXus or SMV image"):
        read_image(tmp_path / "x.tif")
