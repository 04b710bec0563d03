"""Readers and writers of nanoBragg's files, and the shipped tutorial data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nanobrag_torch.datasets import data_path, tutorial_data_paths
from nanobrag_torch.io.atomic import atomic_write
from nanobrag_torch.io.hkl import read_fdump, read_hkl_file, write_fdump
from nanobrag_torch.io.mosflm import read_mosflm_matrix, reciprocal_to_real_cell
from nanobrag_torch.io.pgm import write_pgm
from nanobrag_torch.io.smv import read_smv, write_smv
from nanobrag_torch.io.sourcefile import read_sourcefile


# ----------------------------------------------------------------------------- tutorial data
def test_tutorial_data_ships_with_the_package():
    paths = tutorial_data_paths()
    assert paths.matrix.name == "A.mat" and paths.matrix.is_file()
    assert paths.hkl.name == "scaled.hkl" and paths.hkl.is_file()
    with pytest.raises(FileNotFoundError, match="no_such_file"):
        data_path("no_such_file")


def test_tutorial_matrix_gives_the_published_cell():
    a_star, b_star, c_star = read_mosflm_matrix(tutorial_data_paths().matrix, 0.9768)
    cell = reciprocal_to_real_cell(a_star, b_star, c_star)
    assert [round(v, 2) for v in cell] == [26.75, 31.31, 33.67, 88.69, 71.53, 68.14]
    # tensors are accepted too
    tensors = [torch.as_tensor(v) for v in (a_star, b_star, c_star)]
    assert reciprocal_to_real_cell(*tensors) == pytest.approx(cell)


def test_matrix_columns_are_the_vectors_divided_by_the_wavelength(tmp_path):
    path = tmp_path / "m.mat"
    path.write_text("1 2 3\n4 5 7\n7 8 10\n extra MOSFLM lines are ignored 1 2 3\n")
    a_star, b_star, c_star = read_mosflm_matrix(path, 2.0)
    np.testing.assert_allclose(a_star, [0.5, 2.0, 3.5])
    np.testing.assert_allclose(b_star, [1.0, 2.5, 4.0])
    np.testing.assert_allclose(c_star, [1.5, 3.5, 5.0])


@pytest.mark.parametrize("text, message", [
    ("1 2 3 4 5 6 7 8", "nine numbers, found 8"),
    ("1 2 3 4 five 6 7 8 9", "'five'"),
    ("1 2 3 2 4 6 0 0 1", "singular"),
])
def test_bad_matrix_files_name_the_file_and_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.mat"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as error:
        read_mosflm_matrix(path, 1.0)
    assert "bad.mat" in str(error.value)


def test_missing_matrix_file():
    with pytest.raises(FileNotFoundError):
        read_mosflm_matrix("/no/such/A.mat", 1.0)


# ------------------------------------------------------------------------------ HKL files
def test_scaled_hkl_grid_ranges_and_reflections():
    grid, meta = read_hkl_file(tutorial_data_paths().hkl, default_F=0.0)
    assert tuple(grid.shape) == (49, 57, 62)
    assert int((grid > 0).sum()) == 64333
    assert (meta["h_min"], meta["h_max"]) == (-24, 24)
    assert (meta["k_min"], meta["k_max"]) == (-28, 28)
    assert (meta["l_min"], meta["l_max"]) == (-31, 30)
    assert grid[23 + 24, 15 + 28, -1 + 31] == pytest.approx(23.00)


def test_hkl_default_fill_and_duplicates(tmp_path):
    path = tmp_path / "f.hkl"
    path.write_text("0 0 0 10\n\n1 -1 2 5.5\n1 -1 2 6.5\n")
    grid, meta = read_hkl_file(path, default_F=3.0)
    assert tuple(grid.shape) == (2, 2, 3)
    assert grid[1, 0, 2] == 6.5  # the later duplicate wins
    assert grid[0, 1, 0] == 10.0
    assert grid[0, 0, 0] == 3.0  # not listed: default_F


@pytest.mark.parametrize("line, message", [
    ("1 2 3", "found 3 fields"),
    ("1 2 3 4 0.5", "found 5 fields"),
    ("1 2 x 4", "expected four numbers"),
    ("1 2.5 3 4", "integers"),
])
def test_bad_hkl_lines_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.hkl"
    path.write_text(f"0 0 0 1\n{line}\n")
    with pytest.raises(ValueError, match=message) as error:
        read_hkl_file(path)
    assert "bad.hkl:2" in str(error.value)


def test_empty_hkl_file(tmp_path):
    path = tmp_path / "empty.hkl"
    path.write_text("\n\n")
    with pytest.raises(ValueError, match="no reflections"):
        read_hkl_file(path)


def test_fdump_round_trip_and_layout(tmp_path):
    grid, meta = read_hkl_file(tutorial_data_paths().hkl)
    path = tmp_path / "Fdump.bin"
    write_fdump(path, grid, meta)
    raw = path.read_bytes()
    assert raw.startswith(b"-24 24 -28 28 -31 30\n\f")
    assert len(raw) - raw.index(b"\f") - 1 == 8 * 50 * 58 * 63  # one padding slab per axis
    again, meta_again = read_fdump(path)
    assert meta_again == meta
    assert torch.equal(again, grid)


def test_fdump_garbage_is_refused(tmp_path):
    path = tmp_path / "Fdump.bin"
    path.write_bytes(b"not a dump")
    with pytest.raises(ValueError, match="not an Fdump"):
        read_fdump(path)


# ---------------------------------------------------------------------------- images
def test_smv_round_trip_and_header_format(tmp_path):
    data = np.arange(12, dtype=np.uint16).reshape(3, 4)
    header = {"HEADER_BYTES": "512", "DIM": "2", "BYTE_ORDER": "little_endian", "TYPE": "unsigned_short",
              "SIZE1": "4", "SIZE2": "3", "DIALS_ORIGIN": "-6.5,6.5,-100"}
    path = tmp_path / "x.img"
    write_smv(path, data, header)
    raw = path.read_bytes()
    assert len(raw) == 512 + 24
    assert raw.startswith(b"{\nHEADER_BYTES=512;\nDIM=2;\n")
    assert b"DIALS_ORIGIN=-6.5,6.5,-100\n}\f" in raw
    read, read_header = read_smv(path)
    np.testing.assert_array_equal(read, data)
    assert read_header["SIZE1"] == "4" and read_header["DIALS_ORIGIN"] == "-6.5,6.5,-100"


def test_smv_header_grows_in_512_byte_steps(tmp_path):
    header = {"HEADER_BYTES": "512", "SIZE1": "1", "SIZE2": "1", "NOTE": "x" * 600}
    path = tmp_path / "long.img"
    write_smv(path, np.ones((1, 1), dtype=np.uint16), header)
    data, read_header = read_smv(path)
    assert read_header["HEADER_BYTES"] == "1024" and path.stat().st_size == 1026 and data[0, 0] == 1


def test_not_an_smv_file(tmp_path):
    path = tmp_path / "x.img"
    path.write_bytes(b"P5 this is a pgm")
    with pytest.raises(ValueError, match="not an SMV image"):
        read_smv(path)


def test_pgm_scaling_and_truncation(tmp_path):
    path = tmp_path / "x.pgm"
    write_pgm(path, np.array([[0.0, 1.0], [2.9, 1000.0]]), 10.0)
    raw = path.read_bytes()
    assert raw.startswith(b"P5\n2 2\n# pixels scaled by 10\n255\n")
    assert list(raw[-4:]) == [0, 10, 29, 255]


# ----------------------------------------------------------------------------- sources
def test_sourcefile_columns_and_defaults(tmp_path):
    path = tmp_path / "sources.txt"
    path.write_text("-10 0 0 1 1e-10\n-10,0.1;0\n\n-10\n")
    sources = read_sourcefile(path, (-7.0, 0.0, 0.0), 2e-10)
    assert len(sources) == 3
    np.testing.assert_allclose(sources[0][0], [-10, 0, 0]) and sources[0][1] == 1e-10
    np.testing.assert_allclose(sources[1][0], [-10, 0.1, 0])
    assert sources[1][1] == 2e-10
    np.testing.assert_allclose(sources[2][0], [-10, 0, 0])


@pytest.mark.parametrize("line, message", [("# a comment", "expected up to five numbers"),
                                           ("0 0 0", "zero vector"), ("-1 0 0 1 -5", "must be > 0")])
def test_bad_sourcefile_lines(tmp_path, line, message):
    path = tmp_path / "s.txt"
    path.write_text(f"-10 0 0\n{line}\n")
    with pytest.raises(ValueError, match=message) as error:
        read_sourcefile(path, (-10.0, 0.0, 0.0), 1e-10)
    assert "s.txt:2" in str(error.value)


# ------------------------------------------------------------------------- atomic writes
def test_atomic_write_replaces_only_on_success(tmp_path):
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_write(path, "wb") as handle:
            handle.write(b"half")
            raise RuntimeError("simulated failure")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]  # no temporary left behind
    with atomic_write(path, "wb") as handle:
        handle.write(b"new")
    assert path.read_bytes() == b"new"
