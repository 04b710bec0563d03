"""Source lists (-sourcefile)."""

from __future__ import annotations

import numpy as np
import pytest

from nanobrag_torch.io.sourcefile import read_sourcefile

DEFAULT_POSITION_M = (-7.0, 0.5, 0.25)
DEFAULT_WAVELENGTH_A = 2.0


def test_columns_delimiters_and_defaults(tmp_path):
    path = tmp_path / "sources.txt"
    path.write_text("-10 0 0 1 1e-10\n-10,0.1;0\n\n-10\t0:0!3\n-10\n")
    sources = read_sourcefile(path, DEFAULT_POSITION_M, DEFAULT_WAVELENGTH_A)
    assert len(sources) == 4
    positions = [position for position, _ in sources]
    wavelengths = [wavelength for _, wavelength in sources]
    np.testing.assert_allclose(positions[0], [-10, 0, 0])
    np.testing.assert_allclose(positions[1], [-10, 0.1, 0])
    np.testing.assert_allclose(positions[2], [-10, 0, 0])  # the intensity (3) is read and not used
    np.testing.assert_allclose(positions[3], [-10, 0.5, 0.25])  # missing Y, Z: the defaults
    # the file's wavelengths are in metres (as nanoBragg's); the reader returns Å
    assert wavelengths == [pytest.approx(1.0, rel=1e-15), DEFAULT_WAVELENGTH_A, DEFAULT_WAVELENGTH_A,
                           DEFAULT_WAVELENGTH_A]
    assert all(position.shape == (3,) for position in positions)


def test_empty_file_has_no_sources(tmp_path):
    path = tmp_path / "none.txt"
    path.write_text("\n\n")
    assert read_sourcefile(path, DEFAULT_POSITION_M, DEFAULT_WAVELENGTH_A) == []


@pytest.mark.parametrize("line, message", [
    ("# a comment", "expected up to five numbers"),
    ("-1 0 0 1 1e-10 7", "more than five"),
    ("0 0 0", "zero vector"),
    ("-1 0 0 1 -5", "must be > 0"),
    ("-1 0 0 1 1e300", "must be > 0 \\(and finite in Å\\)"),
    ("-1 nan 0", "not finite"),
    ("1e-200 0 0", "zero vector, or its squared length"),
])
def test_bad_lines_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "s.txt"
    path.write_text(f"-10 0 0\n{line}\n")
    with pytest.raises(ValueError, match=message) as error:
        read_sourcefile(path, DEFAULT_POSITION_M, DEFAULT_WAVELENGTH_A)
    assert "s.txt:2:" in str(error.value)


def test_missing_file():
    with pytest.raises(FileNotFoundError):
        read_sourcefile("/no/such/sources.txt", DEFAULT_POSITION_M, DEFAULT_WAVELENGTH_A)
