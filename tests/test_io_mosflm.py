"""MOSFLM matrices: the reciprocal vectors and the real cell they give."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nanobrag_torch.datasets import tutorial_data_paths
from nanobrag_torch.io.mosflm import read_mosflm_matrix, reciprocal_to_real_cell

TUTORIAL_WAVELENGTH_A = 0.9768


def test_tutorial_matrix_gives_the_published_cell():
    a_star, b_star, c_star = read_mosflm_matrix(tutorial_data_paths().matrix, TUTORIAL_WAVELENGTH_A)
    for vector in (a_star, b_star, c_star):
        assert vector.shape == (3,) and vector.dtype == np.float64
    cell = reciprocal_to_real_cell(a_star, b_star, c_star)
    assert [round(v, 2) for v in cell] == [26.75, 31.31, 33.67, 88.69, 71.53, 68.14]


def test_real_cell_accepts_tensors():
    vectors = read_mosflm_matrix(tutorial_data_paths().matrix, TUTORIAL_WAVELENGTH_A)
    tensors = [torch.as_tensor(v, dtype=torch.float32).requires_grad_() for v in vectors]
    assert reciprocal_to_real_cell(*tensors) == pytest.approx(reciprocal_to_real_cell(*vectors), rel=1e-5)


def test_orthorhombic_cell_round_trip():
    cell = reciprocal_to_real_cell([1 / 70, 0, 0], [0, 1 / 80, 0], [0, 0, 1 / 90])
    assert cell == pytest.approx((70, 80, 90, 90, 90, 90))


def test_matrix_columns_are_the_vectors_divided_by_the_wavelength(tmp_path):
    path = tmp_path / "m.mat"
    path.write_text("1 2 3\n4 5 7\n7 8 10\n extra MOSFLM lines are ignored 1 2 3\n")
    a_star, b_star, c_star = read_mosflm_matrix(path, 2.0)
    np.testing.assert_allclose(a_star, [0.5, 2.0, 3.5])
    np.testing.assert_allclose(b_star, [1.0, 2.5, 4.0])
    np.testing.assert_allclose(c_star, [1.5, 3.5, 5.0])


@pytest.mark.parametrize("text, message", [
    ("1 2 3 4 5 6 7 8", "nine numbers, found 8"),
    ("", "nine numbers, found 0"),
    ("1 2 3\n4 five 6 7 8 9", "bad.mat:2: expected nine numbers, found 'five'"),
    ("1 2 3\n4 5 6\n7 nan 9", "bad.mat:3: 'nan' is not a finite number"),
    ("1 2 3 4 1e999 6 7 8 9", "bad.mat:1: '1e999' is not a finite number"),
    ("1 2 3 4 \xff 6", "bad.mat:1: not a text file"),
    ("1 2 3 2 4 6 0 0 1", "singular"),
])
def test_bad_matrix_files_name_the_file_and_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.mat"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(ValueError, match=message) as error:
        read_mosflm_matrix(path, 1.0)
    assert "bad.mat" in str(error.value)


def test_wavelength_must_be_positive(tmp_path):
    path = tmp_path / "m.mat"
    path.write_text("1 0 0 0 1 0 0 0 1")
    with pytest.raises(ValueError, match="wavelength_A"):
        read_mosflm_matrix(path, 0.0)


def test_missing_matrix_file():
    with pytest.raises(FileNotFoundError, match="A.mat"):
        read_mosflm_matrix("/no/such/A.mat", 1.0)
