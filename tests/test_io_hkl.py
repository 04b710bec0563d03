"""HKL text files and nanoBragg's Fdump.bin cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nanobrag_torch import Crystal, CrystalConfig, Detector, DetectorConfig, Simulator, StructureFactors
from nanobrag_torch.datasets import tutorial_data_paths
from nanobrag_torch.io.hkl import read_fdump, read_hkl_file, write_fdump


def test_scaled_hkl_grid_ranges_and_reflections():
    grid, meta = read_hkl_file(tutorial_data_paths().hkl, default_F=0.0)
    assert grid.dtype == torch.float64
    assert tuple(grid.shape) == (49, 57, 62)
    assert int((grid > 0).sum()) == 64333
    assert (meta["h_min"], meta["h_max"]) == (-24, 24)
    assert (meta["k_min"], meta["k_max"]) == (-28, 28)
    assert (meta["l_min"], meta["l_max"]) == (-31, 30)
    assert (meta["h_range"], meta["k_range"], meta["l_range"]) == (49, 57, 62)
    assert grid[23 + 24, 15 + 28, -1 + 31] == pytest.approx(23.00)  # the file's first line: 23 15 -1 23.00


def test_default_fill_and_duplicates(tmp_path):
    path = tmp_path / "f.hkl"
    path.write_text("0 0 0 10\n\n1 -1 2 5.5\n   \n1 -1 2 6.5\n")
    grid, meta = read_hkl_file(path, default_F=3.0)
    assert tuple(grid.shape) == (2, 2, 3)
    assert meta == {"h_min": 0, "h_max": 1, "k_min": -1, "k_max": 0, "l_min": 0, "l_max": 2,
                    "h_range": 2, "k_range": 2, "l_range": 3}
    assert grid[1, 0, 2] == 6.5  # the later duplicate wins
    assert grid[0, 1, 0] == 10.0
    assert grid[0, 0, 0] == 3.0  # not listed: default_F
    assert int((grid == 3.0).sum()) == 2 * 2 * 3 - 2


def test_a_read_table_is_structure_factors_that_unpack_as_the_pair(tmp_path):
    """read_hkl_file and read_fdump return a StructureFactors (the file's fill value as its
    default_F) that unpacks as the seed tutorial's (grid, metadata); a crystal gives the same
    image from either, with its own default_F outside the box."""
    path = tmp_path / "f.hkl"
    path.write_text("0 0 0 10\n1 -1 2 5.5\n")
    table = read_hkl_file(path, default_F=3.0)
    assert isinstance(table, StructureFactors) and table.default_F == 3.0
    grid, meta = table
    assert grid is table.grid and meta is table.metadata
    write_fdump(tmp_path / "Fdump.bin", *table)
    cached = read_fdump(tmp_path / "Fdump.bin")
    assert isinstance(cached, StructureFactors) and torch.equal(cached.grid, grid) and cached.default_F == 0.0
    config = CrystalConfig(cell_a=30, cell_b=35, cell_c=40, N_cells=(3, 3, 3), default_F=50.0)
    detector = Detector(DetectorConfig(distance_mm=100, pixel_size_mm=0.3, fpixels=10, spixels=10))
    images = [Simulator(Crystal(config, factors), detector).run() for factors in (table, (grid, meta), cached)]
    assert torch.equal(images[0], images[1]) and torch.equal(images[0], images[2])


def test_indices_written_as_integral_floats_are_accepted(tmp_path):
    path = tmp_path / "f.hkl"
    path.write_text("1.0 2 -3 4e1\n")
    grid, meta = read_hkl_file(path)
    assert tuple(grid.shape) == (1, 1, 1) and grid[0, 0, 0] == 40.0
    assert (meta["h_min"], meta["k_min"], meta["l_min"]) == (1, 2, -3)


@pytest.mark.parametrize("line, message", [
    ("1 2 3", "found 3 fields"),
    ("1 2 3 4 0.5", "found 5 fields"),
    ("1 2 x 4", "expected four numbers"),
    ("1 2.5 3 4", "integers"),
    ("1 2 3 nan", "finite"),
    ("inf 2 3 4", "finite"),
    ("# a comment", "expected four numbers"),
    ("1 2 \xff 4", "not a text file"),
    ("1 2 3000000000 4", "reflection 1 2 3000000000 makes the table 2 x 3 x 3000000001"),
])
def test_bad_lines_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.hkl"
    path.write_bytes(f"0 0 0 1\n\n{line}\n".encode("latin-1"))
    with pytest.raises(ValueError, match=message) as error:
        read_hkl_file(path)
    assert "bad.hkl:3:" in str(error.value)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.hkl"
    path.write_text("\n  \n")
    with pytest.raises(ValueError, match="no reflections") as error:
        read_hkl_file(path)
    assert "empty.hkl" in str(error.value)


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="nothere.hkl"):
        read_hkl_file("/no/such/nothere.hkl")


def test_fdump_layout_has_one_padding_slab_per_axis(tmp_path):
    """nanoBragg's layout: header line, form feed, then (range+1)³ doubles, C order, zero padding last."""
    grid = torch.arange(2 * 3 * 4, dtype=torch.float64).reshape(2, 3, 4) + 1
    meta = {"h_min": -1, "h_max": 0, "k_min": 5, "k_max": 7, "l_min": -2, "l_max": 1,
            "h_range": 2, "k_range": 3, "l_range": 4}
    path = tmp_path / "Fdump.bin"
    write_fdump(path, grid, meta)
    raw = path.read_bytes()
    header = b"-1 0 5 7 -2 1\n\f"
    assert raw.startswith(header)
    values = np.frombuffer(raw[len(header):], dtype=np.float64)
    assert values.size == 3 * 4 * 5
    padded = values.reshape(3, 4, 5)
    np.testing.assert_array_equal(padded[:2, :3, :4], grid.numpy())
    assert not padded[2].any() and not padded[:, 3].any() and not padded[:, :, 4].any()


def test_fdump_round_trip_of_the_tutorial_table(tmp_path):
    grid, meta = read_hkl_file(tutorial_data_paths().hkl, default_F=1.5)
    path = tmp_path / "Fdump.bin"
    write_fdump(path, grid, meta)
    raw = path.read_bytes()
    assert raw.startswith(b"-24 24 -28 28 -31 30\n\f")
    assert len(raw) - raw.index(b"\f") - 1 == 8 * 50 * 58 * 63
    again, meta_again = read_fdump(path)
    assert meta_again == meta
    assert again.dtype == torch.float64 and torch.equal(again, grid)


@pytest.mark.parametrize("content, message", [
    (b"not a dump", "not an Fdump"),
    (b"0 0 0 0 0 0\n\f" + b"\0" * 8, "expected 64"),
    (b"0 -1 0 0 0 0\n\f", "h_max = -1 below h_min = 0"),
    (b"0 1 0 0 0 0\n\f" + np.array([0, 0, 0, 0, np.nan, 0, 0, 0, 0, 0, 0, 0]).tobytes(), r"F\(1 0 0\) = nan"),
])
def test_bad_fdump_is_refused(tmp_path, content, message):
    path = tmp_path / "Fdump.bin"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as error:
        read_fdump(path)
    assert "Fdump.bin" in str(error.value)
