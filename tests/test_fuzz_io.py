"""Property-based tests (hypothesis) of the readers of the field's files: CBF and HDF5/NeXus
images (``read_image``) and MTZ amplitudes (``read_mtz_amplitudes``).

Generated inputs: valid files mutated as in ``test_fuzz.py`` (truncated, a byte or a word
replaced, a line inserted, random bytes), and structurally wrong files written with h5py and
gemmi: datasets missing, of the wrong type or shape, columns missing or of the wrong type.

Asserted: a reader returns or raises one ``ValueError`` whose message starts with the file's
name (never another exception type); a mutated image that is read gives the original counts
(the CBF's Content-MD5 and the HDF5 file's checksums catch a changed byte), never silently
wrong ones. Budget: a share of ``NANOBRAGG_FUZZ_EXAMPLES`` (see ``test_fuzz.py``),
derandomized.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import gemmi
import h5py
import hdf5plugin
import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from nanobrag_torch.io import read_image, read_mtz_amplitudes, write_mtz_amplitudes
from nanobrag_torch.io.images import write_cbf
from test_fuzz import SCRATCH, TOTAL_EXAMPLES, mutations

SHARE = 0.02
"""Fraction of ``NANOBRAGG_FUZZ_EXAMPLES`` each test here runs (60 of the default 3000)."""

FRAME = (np.arange(20, dtype=np.int32).reshape(4, 5) * 37) % 251


def budget():
    return settings(max_examples=max(1, round(TOTAL_EXAMPLES * SHARE)), derandomize=True, database=None,
                    deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _file_bytes(write) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "file"
        write(path)
        return path.read_bytes()


def _write_nexus(path) -> None:
    """A single-file NXmx master: checksummed (fletcher32) compressed data and pixel mask, and
    checksummed metadata (the latest file format)."""
    with h5py.File(path, "w", libver="latest") as master:
        filters = dict(chunks=(1, 4, 5), fletcher32=True, **hdf5plugin.Bitshuffle(cname="lz4"))
        master.create_dataset("entry/data/data", data=np.stack([FRAME, FRAME + 1]).astype(np.uint16), **filters)
        mask = np.zeros((4, 5), dtype=np.uint8)
        mask[1, 2] = 1
        master.create_dataset("entry/instrument/detector/pixel_mask", data=mask, chunks=(4, 5), fletcher32=True)


VALID = {
    "image.cbf": _file_bytes(lambda path: write_cbf(path, FRAME, pixel_size_mm=0.172, distance_mm=100.0,
                                                    wavelength_A=1.0, beam_center_px=(2.0, 1.5))),
    "image.h5": _file_bytes(_write_nexus),
    "f.mtz": _file_bytes(lambda path: write_mtz_amplitudes(path, [[1, 2, 3], [2, 0, 0], [0, 1, 1]], [10.0, 20.0, 5.0],
                                                           [1.0, 1.0, 1.0], cell_A_deg=(50, 60, 70, 90, 90, 90),
                                                           space_group="P 21 21 21")),
}
CBF_BLOB = VALID["image.cbf"][VALID["image.cbf"].index(b"\x0c\x1a\x04\xd5"):]


def _refused_or_read(path: Path, read):
    """``read(path)``, or None after checking the error is a ValueError that names the file."""
    try:
        result = read(path)
    except ValueError as error:
        event("refused")
        assert re.match(re.escape(str(path)) + r": \S", str(error)), str(error)
        return None
    event("read")
    return result


def _in_file(name: str, content: bytes, read):
    with tempfile.TemporaryDirectory(dir=SCRATCH) as folder:
        path = Path(folder) / name
        path.write_bytes(content)
        return _refused_or_read(path, read)


@budget()
@given(mutations(VALID["image.cbf"]))
def test_mutated_cbf_is_refused_or_gives_the_original_counts(content):
    image = _in_file("image.cbf", content, read_image)
    if image is not None:
        assert CBF_BLOB[:-40] in content  # the data section is intact
        np.testing.assert_array_equal(image.counts.ravel(), FRAME.ravel())


@budget()
@given(mutations(VALID["image.h5"]), st.integers(0, 2))
def test_mutated_nexus_is_refused_or_gives_the_original_counts(content, index):
    image = _in_file("image.h5", content, lambda path: read_image(path, index))
    if image is not None:
        np.testing.assert_array_equal(image.counts, FRAME + index)
        if image.mask.sum() != 1 or not image.mask[1, 2]:
            # the pixel mask is optional in NXmx: a mutation of its name leaves a valid file without one
            assert not image.mask.any()
            assert not _has_pixel_mask(content)


def _has_pixel_mask(content: bytes) -> bool:
    with tempfile.TemporaryDirectory(dir=SCRATCH) as folder:
        path = Path(folder) / "image.h5"
        path.write_bytes(content)
        with h5py.File(path, "r") as master:
            return "entry/instrument/detector/pixel_mask" in master


@budget()
@given(mutations(VALID["f.mtz"]))
def test_mutated_mtz_is_refused_or_read(content):
    _in_file("f.mtz", content, read_mtz_amplitudes)


DTYPES = st.sampled_from(["u1", "u2", "u4", "i4", "f4", "f8", "S4", "?"])


@st.composite
def nexus_structures(draw):
    """What an NXmx file holds at each path: absent, or an array of some type and shape."""
    def array(shapes):
        dtype, shape = draw(DTYPES), draw(shapes)
        size = int(np.prod(shape))
        values = np.arange(size).reshape(shape) % 7
        return values.astype(dtype) if dtype != "S4" else values.astype(str).astype("S4")

    shapes = st.sampled_from([(), (3,), (2, 4, 5), (1, 4, 5), (2, 2, 4, 5), (4, 5), (2, 3, 3), (0, 4, 5)])
    content = {}
    for name in ("entry/data/data", "entry/data/data_000001", "entry/instrument/detector/pixel_mask",
                 "entry/instrument/detector/x_pixel_size", "entry/instrument/detector/saturation_value",
                 "entry/instrument/beam/incident_wavelength"):
        if draw(st.booleans()):
            content[name] = array(shapes)
    if draw(st.booleans()):
        content["entry/data"] = None  # a dataset where the group should be
    return content, draw(st.integers(-1, 3))


@budget()
@given(nexus_structures())
def test_nexus_of_any_structure_is_read_or_refused_naming_the_file(structure):
    content, index = structure
    with tempfile.TemporaryDirectory(dir=SCRATCH) as folder:
        path = Path(folder) / "master.h5"
        with h5py.File(path, "w") as master:
            if "entry/data" in content and content.pop("entry/data") is None:
                master["entry/data"] = 0
                content = {k: v for k, v in content.items() if not k.startswith("entry/data/")}
            for name, values in content.items():
                master[name] = values
        image = _refused_or_read(path, lambda p: read_image(p, index))
        if image is not None:
            data = content.get("entry/data/data", content.get("entry/data/data_000001"))
            np.testing.assert_array_equal(image.counts, data[index].astype(np.float64))


COLUMN_TYPES = st.sampled_from(list("HFGQLJKDRIYB"))


@budget()
@given(st.lists(st.tuples(st.sampled_from(["F", "SIGF", "F(+)", "F(-)", "FP", "I"]), COLUMN_TYPES), max_size=4,
                unique_by=lambda c: c[0]),
       st.lists(st.lists(st.sampled_from([0.0, 1.0, -2.0, 2.5, np.nan, np.inf, 1e30, -1e9]), min_size=7, max_size=7),
                max_size=4),
       st.sampled_from(["F", "FP", "I"]), st.sampled_from([None, "SIGF"]))
def test_mtz_of_any_columns_is_read_or_refused_naming_the_file(columns, rows, column, sigma):
    with tempfile.TemporaryDirectory(dir=SCRATCH) as folder:
        path = Path(folder) / "f.mtz"
        mtz = gemmi.Mtz(with_base=True)
        mtz.spacegroup = gemmi.SpaceGroup("P 1")
        mtz.set_cell_for_all(gemmi.UnitCell(50, 60, 70, 90, 90, 90))
        mtz.add_dataset("x")
        for label, kind in columns:
            mtz.add_column(label, kind)
        if rows:
            mtz.set_data(np.array([row[:3 + len(columns)] for row in rows], dtype=np.float32))
        mtz.write_to_file(str(path))
        _refused_or_read(path, lambda p: read_mtz_amplitudes(p, column=column, sigma_column=sigma))
