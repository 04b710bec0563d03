"""SMV images and PGM previews."""

from __future__ import annotations

import numpy as np
import pytest

from nanobrag_torch.io.pgm import write_pgm
from nanobrag_torch.io.smv import read_smv, write_smv

HEADER = {"HEADER_BYTES": "512", "DIM": "2", "BYTE_ORDER": "little_endian", "TYPE": "unsigned_short",
          "SIZE1": "4", "SIZE2": "3", "DIALS_ORIGIN": "-6.5,6.5,-100", "BEAMLINE": "fake"}


def test_smv_layout_and_round_trip(tmp_path):
    data = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000).astype(np.uint16)
    path = tmp_path / "x.img"
    write_smv(path, data, HEADER)
    raw = path.read_bytes()
    assert len(raw) == 512 + 3 * 4 * 2
    text = raw[:512]
    assert text.startswith(b"{\nHEADER_BYTES=512;\nDIM=2;\nBYTE_ORDER=little_endian;\n")
    assert b"DIALS_ORIGIN=-6.5,6.5,-100\nBEAMLINE=fake;\n}\f" in text
    assert text.rstrip(b" ").endswith(b"}\f")
    # pixels: little-endian uint16, fast index fastest
    np.testing.assert_array_equal(np.frombuffer(raw[512:], dtype="<u2").reshape(3, 4), data)
    read, header = read_smv(path)
    assert read.shape == (3, 4) and read.dtype == np.uint16
    np.testing.assert_array_equal(read, data)
    assert header == HEADER


def test_smv_big_endian_file_is_read(tmp_path):
    header = dict(HEADER, BYTE_ORDER="big_endian", SIZE1="2", SIZE2="1")
    path = tmp_path / "big.img"
    text = "{\n" + "".join(f"{k}={v};\n" for k, v in header.items()) + "}\f"
    path.write_bytes(text.encode().ljust(512) + np.array([1, 258], dtype=">u2").tobytes())
    data, _ = read_smv(path)
    np.testing.assert_array_equal(data, [[1, 258]])


def test_smv_header_grows_in_512_byte_steps(tmp_path):
    header = {"HEADER_BYTES": "512", "SIZE1": "1", "SIZE2": "1", "NOTE": "x" * 600}
    path = tmp_path / "long.img"
    write_smv(path, np.ones((1, 1), dtype=np.uint16), header)
    data, read_header = read_smv(path)
    assert read_header["HEADER_BYTES"] == "1024" and path.stat().st_size == 1026 and data[0, 0] == 1


@pytest.mark.parametrize("content, message", [
    (b"P5 this is a pgm", "not an SMV image"),
    (b"{\nHEADER_BYTES=512;\n}\f".ljust(512), "needs SIZE1, an integer >= 1$"),
    (b"{\nHEADER_BYTES=512;\nSIZE1=0;\nSIZE2=4;\n}\f".ljust(512), "needs SIZE1, an integer >= 1; it has SIZE1=0"),
    (b"{\nHEADER_BYTES=-512;\nSIZE1=1;\nSIZE2=4;\n".ljust(512), "no closing"),
    (b"{\nHEADER_BYTES=16;\nSIZE1=1;\nSIZE2=1;\n}\f".ljust(512), "runs to byte 39, past the HEADER_BYTES=16"),
    (b"{\nHEADER_BYTES=512;\nSIZE1=4;\nSIZE2=4;\n}\f".ljust(512) + b"\0" * 10, "expected 32"),
])
def test_bad_smv_files_are_refused(tmp_path, content, message):
    path = tmp_path / "x.img"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as error:
        read_smv(path)
    assert "x.img" in str(error.value)


def test_pgm_header_scaling_and_truncation(tmp_path):
    path = tmp_path / "x.pgm"
    image = np.array([[0.0, 1.0, 2.99], [25.0, 1000.0, 0.05]])  # 2 slow rows, 3 fast columns
    write_pgm(path, image, 10.0)
    raw = path.read_bytes()
    header = b"P5\n3 2\n# pixels scaled by 10\n255\n"
    assert raw.startswith(header)
    assert list(raw[len(header):]) == [0, 10, 29, 250, 255, 0]
