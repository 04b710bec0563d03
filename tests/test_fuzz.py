"""Property-based tests (hypothesis) of the command, the library's readers and its configs.

Generated inputs:

* command lines of nanoBragg's flags with valid values (every flag of the option table, on
  detectors of 1 to 8 pixels a side so that a run takes milliseconds), and the same with
  one value replaced by a malformed one, cut short, with a word dropped, or with an unknown
  flag inserted;
* input files (MOSFLM matrix, HKL list, Fdump cache, source list, SMV image for ``-img`` and
  ``-mask``) that are valid, or mutated: truncated, a byte or a word replaced, a line
  inserted, random bytes;
* configuration fields set to random numbers, NaN, infinities and None;
* beam, detector-normal and polarization directions anywhere, the six axis directions (a beam
  along the polarization axis) often.

Asserted: the command's ``main()`` never raises and returns 0 or 2; on 2 it writes exactly
one line, ``nanobragg: error: ...``, and leaves the folder as it was (pre-existing outputs
untouched, no temporary file); on 0 every image it announces is there, complete and
readable; it never lets a Python warning escape. The readers return or raise ``ValueError``
or ``FileNotFoundError`` whose message starts with the file name (and the line, for a line at
fault); the configs construct or raise a ``ConfigError`` naming a field that was set; the
polarization factor is nanoBragg's (its frame of zero vectors on the polarization axis
included) with finite gradients, and a render is finite with a finite gradient.

Budget: ``NANOBRAGG_FUZZ_EXAMPLES`` examples in all (default 3000, under a minute on two
cores), shared by the tests in proportion to :data:`SHARES`; examples are derandomized (the
same every run, so CI is reproducible). A longer search is one variable away::

    NANOBRAGG_FUZZ_EXAMPLES=100000 pytest tests/test_fuzz.py
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import string
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st

from nanobrag_torch import BeamConfig, Crystal, CrystalConfig, Detector, DetectorConfig, DetectorConvention
from nanobrag_torch import DetectorPivot, Simulator
from nanobrag_torch.cli import main, parse_args
from nanobrag_torch.cli.options import OPTIONS
from nanobrag_torch.config import ConfigError
from nanobrag_torch.datasets import tutorial_data_paths
from nanobrag_torch.io.hkl import read_fdump, read_hkl_file, write_fdump
from nanobrag_torch.io.images import read_image
from nanobrag_torch.io.mosflm import read_mosflm_matrix
from nanobrag_torch.io.smv import read_smv, read_smv_header, write_smv
from nanobrag_torch.io.sourcefile import read_sourcefile
from nanobrag_torch.physics import polarization_factor
from test_config import NUMERIC_FIELDS, with_value

TOTAL_EXAMPLES = int(os.environ.get("NANOBRAGG_FUZZ_EXAMPLES", "3000"))
SHARES = {"valid command lines": 0.12, "malformed command lines": 0.42, "malformed files, command": 0.15,
          "malformed files, readers": 0.18, "configs": 0.10, "directions": 0.015}
"""Fraction of the examples each test runs (a valid run costs about 40 ms, an error 2 ms)."""

SCRATCH = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
"""Where the examples' folders go: in memory where the system offers it, since every example
writes, renames and deletes a dozen files (8 times faster than on a disk-backed /tmp)."""


def budget(test: str):
    """Hypothesis settings of one test: its share of the examples, derandomized, no deadline."""
    return settings(max_examples=max(1, round(TOTAL_EXAMPLES * SHARES[test])), derandomize=True, database=None,
                    deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                                          HealthCheck.data_too_large])


# ----------------------------------------------------------------------------- input files
SMV_HEADER = {"HEADER_BYTES": "512", "DIM": "2", "BYTE_ORDER": "little_endian", "TYPE": "unsigned_short",
              "SIZE1": "4", "SIZE2": "4", "PIXEL_SIZE": "0.1", "DISTANCE": "100", "WAVELENGTH": "1",
              "BEAM_CENTER_X": "0.2", "BEAM_CENTER_Y": "0.2", "PHI": "0", "OSC_RANGE": "0"}


def _smv_bytes() -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "x.img"
        write_smv(path, (np.arange(16, dtype=np.uint16) % 3).reshape(4, 4), SMV_HEADER)
        return path.read_bytes()


def _fdump_bytes() -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "Fdump.bin"
        grid = torch.arange(1.0, 19.0, dtype=torch.float64).reshape(2, 3, 3)
        write_fdump(path, grid, {"h_min": -1, "h_max": 0, "k_min": 0, "k_max": 2, "l_min": -1, "l_max": 1})
        return path.read_bytes()


VALID_FILES = {
    "in.mat": tutorial_data_paths().matrix.read_bytes(),
    "in.hkl": b"0 0 0 100\n1 0 0 50.5\n0 1 -1 20\n-1 2 3 7\n",
    "sources.txt": b"-10 0 0 1 1e-10\n-10 0.1 0 1\n-10 0 0.1\n",
    "in.img": _smv_bytes(),
    "mask.img": _smv_bytes(),
    "dump.bin": _fdump_bytes(),
}
"""Valid inputs, by the name the command lines use."""

READERS = {
    "in.mat": lambda path: read_mosflm_matrix(path, 1.0),
    "in.hkl": read_hkl_file,
    "sources.txt": lambda path: read_sourcefile(path, (-10.0, 0.0, 0.0), 1.0),
    "in.img": read_smv,
    "mask.img": read_smv_header,
    "dump.bin": read_fdump,
}

OUTPUTS = ("floatimage.bin", "intimage.img", "image.pgm", "noiseimage.img", "out.bin", "out.img", "out.pgm",
           "noise.img")
"""Output names: the defaults and those the command lines choose. Each exists before a run."""

MALFORMED_WORDS = ["", "nan", "NaN", "inf", "-inf", "Infinity", "1e999", "-1e999", "0", "-0", "-1", "1e-320",
                   "0x10", "1_0", " 5", "5 ", "five", "-", "--", "-5e", ".", "+", "\u0661", "a b", "1e308", "-2",
                   "2147483648", "99999999999999999999", "-nonoise", "random", "in.mat", "out.bin", "no/such/file"]


MALFORMED_WORD = st.sampled_from(MALFORMED_WORDS) | st.text(max_size=8)


def mutations(valid: bytes):
    """A valid file, or the file truncated, with a byte or a word replaced, a line inserted, or
    random bytes."""
    words = valid.split(b" ") if b" " in valid else valid.split(b"\n")

    def replace_word(index_word):
        index, word = index_word
        copy = list(words)
        copy[index % len(copy)] = word.encode("utf-8", "surrogatepass")
        return (b" " if b" " in valid else b"\n").join(copy)

    def replace_byte(index_byte):
        index, byte = index_byte
        index %= max(len(valid), 1)
        return valid[:index] + bytes([byte]) + valid[index + 1:]

    def insert_line(index_line):
        index, line = index_line
        lines = valid.split(b"\n")
        lines.insert(index % (len(lines) + 1), line.encode("utf-8", "surrogatepass"))
        return b"\n".join(lines)

    return st.one_of(
        st.just(valid),
        st.integers(0, len(valid)).map(lambda k: valid[:k]),
        st.tuples(st.integers(0, 10 ** 6), st.sampled_from(MALFORMED_WORDS) | st.text(max_size=6)).map(replace_word),
        st.tuples(st.integers(0, 10 ** 6), st.integers(0, 255)).map(replace_byte),
        st.tuples(st.integers(0, 10 ** 6), st.text(max_size=20)).map(insert_line),
        st.binary(max_size=700),
    )


# ----------------------------------------------------------------------------- command lines
def number(low: float, high: float):
    return st.floats(low, high, allow_nan=False).map(lambda v: f"{v:.6g}")


def integer(low: int, high: int):
    return st.integers(low, high).map(str)


ANGLE, COMPONENT = number(-360, 360), number(-1, 1)
VECTOR = [COMPONENT] * 3
OUTPUT = st.sampled_from(OUTPUTS)
WORD = st.text(string.ascii_letters, min_size=1, max_size=8)
VALUES = {
    "-Na": [integer(1, 30)], "-Nb": [integer(1, 30)], "-Nc": [integer(1, 30)], "-N": [integer(1, 30)],
    "-cell": [number(20, 200)] * 3 + [number(60, 120)] * 3, "-misset": [ANGLE] * 3,
    "-samplesize": [number(0, 1e-3)], "-sample_thick": [number(0, 1e-3)], "-sample_width": [number(0, 1e-3)],
    "-sample_heigh": [number(0, 1e-3)], "-xtalsize": [number(0, 1e-3)], "-xtal_thick": [number(0, 1e-3)],
    "-xtal_width": [number(0, 1e-3)], "-xtal_heigh": [number(0, 1e-3)], "-density": [number(0, 2)],
    "-MW": [number(1, 1e5)], "-Xbeam": [number(-1, 1)], "-Ybeam": [number(-1, 1)], "-Xclose": [number(-1, 1)],
    "-Yclose": [number(-1, 1)], "-ORGX": [number(-10, 10)], "-ORGY": [number(-10, 10)],
    "-pivot": [st.sampled_from(["beam", "sample"])], "-mosflm": [], "-xds": [], "-adxv": [], "-denzo": [],
    "-dials": [], "-fdet_vector": VECTOR, "-sdet_vector": VECTOR, "-odet_vector": VECTOR, "-beam_vector": VECTOR,
    "-polar_vector": VECTOR, "-spindle_axis": VECTOR, "-twotheta_axis": VECTOR, "-pix0_vector": [number(-1, 1)] * 3,
    "-distance": [number(10, 500)], "-close_distance": [number(10, 500)],
    "-detector_abs": [st.sampled_from(["inf", "0"]) | number(1, 500)], "-detector_thick": [number(0, 500)],
    "-detector_thicksteps": [integer(1, 3)], "-twotheta": [ANGLE], "-detector_rotx": [ANGLE],
    "-detector_roty": [ANGLE], "-detector_rotz": [ANGLE], "-detsize": [number(0.1, 0.8)],
    "-detsize_f": [number(0.1, 0.8)], "-detsize_s": [number(0.1, 0.8)], "-detpixels": [integer(1, 8)],
    "-detpixels_f": [integer(1, 8)], "-detpixels_s": [integer(1, 8)], "-curved_det": [], "-pixel": [number(0.05, 0.5)],
    "-point_pixel": [], "-polar": [number(0, 1)], "-nopolar": [], "-oversample_thick": [], "-oversample_polar": [],
    "-oversample_omega": [], "-oversample": [integer(1, 2)], "-roi": [integer(-1, 8)] * 4,
    "-lambda": [number(0.5, 2)], "-energy": [number(6000, 20000)], "-fluence": [number(1e20, 1e30)],
    "-flux": [number(0, 1e14)], "-exposure": [number(0.1, 10)], "-beamsize": [number(0.01, 1)],
    "-mosaic": [number(0, 2)], "-mosaic_domains": [integer(1, 3)], "-dispersion": [number(0, 5)],
    "-dispsteps": [integer(1, 3)], "-divergence": [number(0, 2)], "-hdivrange": [number(0, 2)],
    "-vdivrange": [number(0, 2)], "-hdivstep": [number(0.5, 2)], "-hdivsteps": [integer(1, 3)],
    "-vdivstep": [number(0.5, 2)], "-vdivsteps": [integer(1, 3)], "-divsteps": [integer(1, 3)], "-round_div": [],
    "-square_div": [], "-adc": [number(-100, 100)], "-phi": [ANGLE], "-osc": [number(0, 3)],
    "-phistep": [number(0.5, 3)], "-phisteps": [integer(1, 3)], "-dmin": [number(0, 5)],
    "-mat": [st.just("in.mat")], "-hkl": [st.just("in.hkl")], "-default_F": [number(0, 1000)],
    "-dump": [st.just("dump.bin")], "-img": [st.just("in.img")], "-mask": [st.just("mask.img")],
    "-stolout": [WORD], "-stol": [WORD], "-4stol": [WORD], "-Q": [WORD], "-sourcefile": [st.just("sources.txt")],
    "-floatfile": [OUTPUT], "-intfile": [OUTPUT], "-pgmfile": [OUTPUT], "-noisefile": [OUTPUT],
    "-cbffile": [OUTPUT], "-nonoise": [], "-nopgm": [], "-scale": [number(0.1, 10)],
    "-pgmscale": [number(0.1, 10)], "-coherent": [], "-printout": [],
    "-noprogress": [], "-progress": [], "-interpolate": [], "-nointerpolate": [], "-round_xtal": [],
    "-square_xtal": [], "-gauss_xtal": [], "-tophat_spots": [], "-fudge": [number(0.5, 2)],
    "-printout_pixel": [integer(0, 8)] * 2, "-seed": [integer(-2 ** 31, 2 ** 31 - 1)],
    "-mosaic_seed": [integer(-2 ** 31, 2 ** 31 - 1)], "-misset_seed": [integer(-2 ** 31, 2 ** 31 - 1)],
    "-water": [number(0, 100)],
}
"""Valid (physical, and cheap: few sources, steps and domains) values of every flag."""

OPTION_WORDS = {key: st.tuples(*values).map(lambda vs, key=key: [key, *vs]) for key, values in VALUES.items()}
"""Each flag with its values, built once (hypothesis validates a strategy when first drawn from)."""
option = st.sampled_from(sorted(VALUES)).flatmap(OPTION_WORDS.__getitem__)
PIXELS, OVERSAMPLE, SEED = integer(1, 8), integer(1, 2), integer(1, 1000)
crystal = st.one_of(
    st.tuples(*VALUES["-cell"], number(1, 1000)).map(lambda v: ["-cell", *v[:6], "-default_F", v[6]]),
    st.just(["-mat", "in.mat", "-hkl", "in.hkl"]),
    st.just(["-mat", "in.mat", "-default_F", "10"]),
)


@st.composite
def command_lines(draw):
    """A valid command line: a crystal, a tiny detector, then up to six random options."""
    argv = draw(crystal) + ["-detpixels", draw(PIXELS), "-oversample", draw(OVERSAMPLE), "-seed", draw(SEED)]
    for words in draw(st.lists(option, max_size=6)):
        argv += words
    return argv


@st.composite
def malformed_command_lines(draw):
    """A valid command line with one word replaced, dropped or inserted, or cut short."""
    argv = draw(command_lines())
    index = draw(st.integers(0, len(argv)))
    how = draw(st.sampled_from(["replace", "drop", "unknown flag", "truncate"]))
    if how == "replace" and index < len(argv):
        argv[index] = draw(MALFORMED_WORD)
    elif how == "drop" and index < len(argv):
        del argv[index]
    elif how == "unknown flag":
        argv.insert(index, "-" + draw(st.text(string.ascii_letters + "_", min_size=1, max_size=10)))
    else:
        argv = argv[:index]
    return argv


def test_every_flag_has_valid_values():
    assert set(VALUES) == {o.key for o in OPTIONS}


@contextlib.contextmanager
def inside(folder: Path):
    previous = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


def run_command(argv, files):
    """Run ``main(argv)`` in a fresh folder holding ``files`` and a file at every output name,
    and check what it did."""
    with tempfile.TemporaryDirectory(dir=SCRATCH) as name:
        folder = Path(name)
        for file_name, content in {**{o: f"old {o}".encode() for o in OUTPUTS}, **files}.items():
            (folder / file_name).write_bytes(content)
        before = {p.name: p.read_bytes() for p in folder.iterdir()}
        out, err = io.StringIO(), io.StringIO()
        with inside(folder), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            status = main(argv)
        assert not caught, [str(w.message) for w in caught]  # the command's stderr would get them raw
        lines = [line for line in re.split("[\r\n]", err.getvalue()) if line]  # progress bars use \r
        after = {p.name: p.read_bytes() for p in folder.iterdir()}
        assert status in (0, 2)
        if status == 0 and out.getvalue().startswith("usage:"):  # a help flag anywhere: the usage only
            event("usage")
            assert after == before
            return
        event(f"exit status {status}")  # the share of each, with pytest --hypothesis-show-statistics
        if status == 2:
            assert len(lines) == 1 and re.match(r"nanobragg: error: \S", lines[0]), lines
            assert after == before
            return
        assert all(line.startswith("nanobragg: ") for line in lines), lines
        assert not [n for n in after if n.endswith(".tmp")]
        with inside(folder), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            plan = parse_args(argv)
        shape = (plan.detector.spixels, plan.detector.fpixels)
        outputs = plan.outputs
        assert len(after[outputs.floatfile]) == 4 * shape[0] * shape[1]
        for path in (outputs.intfile, outputs.noisefile):
            if path is not None:
                assert read_smv(folder / path)[0].shape == shape
        if outputs.pgmfile is not None:
            assert after[outputs.pgmfile].startswith(b"P5\n")
        if outputs.cbffile is not None:
            np.testing.assert_array_equal(read_image(folder / outputs.cbffile).counts,
                                          read_smv(folder / outputs.intfile)[0])
        written = {outputs.floatfile, outputs.intfile, outputs.pgmfile, outputs.noisefile, outputs.fdump,
                   outputs.cbffile}
        assert {n: c for n, c in after.items() if n not in written} == {
            n: c for n, c in before.items() if n not in written}


@budget("valid command lines")
@given(command_lines())
# a sensor 2.9e-303 µm thick: its attenuation coefficient overflowed to inf and 0 · inf made a
# NaN image (the layers' depths are now counted in attenuation lengths)
@example(argv=["-cell", "20", "20", "20", "60", "60", "60", "-default_F", "1", "-detpixels", "1", "-oversample",
               "1", "-seed", "1", "-oversample_thick", "-detector_thick", "2.89379e-303"])
def test_valid_command_lines(argv):
    run_command(argv, VALID_FILES)


SMALL_RUN = ["-default_F", "1", "-detpixels", "1", "-oversample", "1", "-seed", "1"]


@budget("malformed command lines")
@given(malformed_command_lines())
# found by other versions of hypothesis: a cell too small for its reciprocal cell (a clear error
# now), a divergence range whose square underflows (C's trimming divided by it), an oversampling
# whose sub-pixel table alone took 17 GB (now refused above config.MAX_OVERSAMPLE)
@example(argv=["-cell", "1e-320", "20", "20", "60", "60", "60", *SMALL_RUN, "-oversample_omega"])
@example(argv=["-cell", "20", "20", "20", "60", "60", "60", *SMALL_RUN, "-hdivrange", "6.288e-188", "-vdivrange", "1"])
@example(argv=["-cell", "159", "98", "83", "118", "93", "73", "-default_F", "228", "-detpixels", "8",
                "-oversample", "2147483648", "-detsize_f", "0.43"])
# an output named as an input file: the run destroyed its own matrix (now refused up front)
@example(argv=["-mat", "in.mat", *SMALL_RUN, "-intfile", "in.mat"])
def test_malformed_command_lines(argv):
    run_command(argv, VALID_FILES)


FILE_FLAGS = {"in.mat": ["-mat", "in.mat", "-default_F", "10"], "in.hkl": ["-cell", "50", "-hkl", "in.hkl"],
              "sources.txt": ["-cell", "50", "-default_F", "10", "-sourcefile", "sources.txt"],
              "in.img": ["-cell", "50", "-default_F", "10", "-img", "in.img"],
              "mask.img": ["-cell", "50", "-default_F", "10", "-mask", "mask.img"],
              "dump.bin": ["-cell", "50", "-dump", "dump.bin"]}
"""How a command line reads each input file (``dump.bin``: as the Fdump cache, no -hkl)."""

MUTATED_FILES = {name: st.tuples(st.just(name), mutations(content)) for name, content in VALID_FILES.items()}
input_file = st.sampled_from(sorted(VALID_FILES)).flatmap(MUTATED_FILES.__getitem__)


@budget("malformed files, command")
@given(input_file, PIXELS)
def test_malformed_input_files_through_the_command(named_content, pixels):
    name, content = named_content
    detector = [] if name == "mask.img" else ["-detpixels", pixels]
    run_command(FILE_FLAGS[name] + detector + ["-oversample", "1", "-seed", "1"], {name: content})


@budget("malformed files, readers")
@given(input_file)
def test_readers_return_or_name_the_file(named_content):
    name, content = named_content
    with tempfile.TemporaryDirectory(dir=SCRATCH) as folder:
        path = Path(folder) / name
        path.write_bytes(content)
        try:
            READERS[name](path)
            event("read")
        except (ValueError, FileNotFoundError) as error:
            event("refused")
            assert re.match(re.escape(str(path)) + r"(:\d+)?: \S", str(error)), str(error)


config_value = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70),
                         st.floats(allow_nan=True, allow_infinity=True),
                         st.sampled_from([0, -1, 1e-320, 1e308, float("nan"), float("inf")]))
config_field = st.sampled_from([(cls, field, kind) for cls, table in NUMERIC_FIELDS.items()
                                for field, kind in table.items()])


@budget("configs")
@given(st.lists(st.tuples(config_field, config_value), min_size=1, max_size=4))
def test_configs_construct_or_name_the_field(assignments):
    cls = assignments[0][0][0]
    kwargs = {}
    for (other, field, kind), value in assignments:
        if other is cls:
            kwargs.update(with_value(field, kind, value))
    try:
        cls(**kwargs)
        event("constructed")
    except ConfigError as error:
        event("refused")
        assert error.field in kwargs and error.config == cls.__name__


# ----------------------------------------------------------------------------- directions
AXIS_DIRECTIONS = [tuple(float(v) for v in row) for row in np.vstack([np.eye(3), -np.eye(3)])]
"""The six axis directions: the default polarization axes and beams of every convention, so
that a beam along (or against) the polarization axis comes up often."""

DIRECTIONS_CRYSTAL = CrystalConfig(cell_a=30.0, cell_b=35.0, cell_c=40.0, cell_alpha=90.0, cell_beta=95.0, cell_gamma=90.0,
                                   N_cells=(3, 3, 3), default_F=100.0)
"""A small crystal with spots on an 8 × 8 detector of 1 mm pixels at 50 mm."""



def _directions():
    """Non-zero vectors (not normalised: nanoBragg and the configs normalise them): an axis
    direction, scaled, or any direction."""
    scaled_axis = st.tuples(st.sampled_from(AXIS_DIRECTIONS), st.floats(0.1, 10.0)).map(
        lambda pair: tuple(pair[1] * v for v in pair[0]))
    anywhere = st.tuples(*[st.floats(-1.0, 1.0)] * 3).filter(lambda v: sum(x * x for x in v) > 1e-4)
    return st.one_of(st.sampled_from(AXIS_DIRECTIONS), scaled_axis, anywhere)


def _c_polarization(kahn, incident, diffracted, axis):
    """nanoBragg's ``polarization_factor``, line by line in NumPy, its ``unitize`` of a zero
    vector (the zero vector) and ``atan2(0, 0) = 0`` included: the reference of the frame."""
    def unitize(v):
        norm = np.linalg.norm(v)
        return v / norm if norm != 0 else np.zeros(3)
    incident, diffracted, axis = unitize(incident), unitize(diffracted), unitize(axis)
    cos2theta = incident @ diffracted
    psi = 0.0
    if kahn != 0.0:
        b_in = unitize(np.cross(axis, incident))
        e_in = unitize(np.cross(incident, b_in))
        psi = -np.arctan2(diffracted @ b_in, diffracted @ e_in)
    return 0.5 * (1.0 + cos2theta ** 2 - kahn * np.cos(2 * psi) * (1 - cos2theta ** 2))


@budget("directions")
@given(_directions(), st.lists(_directions(), min_size=1, max_size=4), _directions(), st.floats(-1.0, 1.0))
@example(incident=(0.0, 0.0, -1.0), diffracted=[(0.0, 0.0, -1.0), (1.0, 0.0, 0.0), (0.6, 0.0, -0.8)],
         axis=(0.0, 0.0, 1.0), kahn=0.5)  # a beam against the default polarization axis (DIALS' CUSTOM beam)
def test_polarization_is_nanobraggs_and_finite_in_every_direction(incident, diffracted, axis, kahn):
    def tensor(value):
        vector = torch.tensor(value, dtype=torch.float64)
        return (vector / torch.linalg.vector_norm(vector, dim=-1, keepdim=True)).requires_grad_(True)
    i, d, p = tensor(incident), tensor(diffracted), tensor(axis)
    k = torch.tensor(kahn, dtype=torch.float64, requires_grad=True)
    factor = polarization_factor(i[None], d, p, k)
    assert factor.shape == (len(diffracted), 1)
    expected = [_c_polarization(kahn, np.array(incident), np.array(v), np.array(axis)) for v in diffracted]
    np.testing.assert_allclose(factor[:, 0].detach().numpy(), expected, rtol=1e-12, atol=1e-12)
    gradients = torch.autograd.grad(factor.sum(), (i, d, p, k))
    assert all(bool(torch.isfinite(g).all()) for g in gradients), gradients


@budget("directions")
@given(_directions(), _directions(), _directions(), st.floats(-1.0, 1.0), st.floats(0.0, 0.5),
       st.sampled_from(["beam", "sample"]))
@example(beam=(0.0, 0.0, -1.0), normal=(0.0, 0.0, -1.0), axis=(0.0, 0.0, 1.0), kahn=0.0, divergence_mrad=0.0,
         pivot="beam")  # issue 25: every pixel was NaN
def test_the_render_is_finite_for_every_beam_detector_and_polarization(beam, normal, axis, kahn, divergence_mrad,
                                                                         pivot):
    """An 8 × 8 CUSTOM detector facing the beam's side of ``normal`` (its fast and slow axes
    completed to a right-handed frame; not along the beam), with divergence: the image and its
    gradient in the Kahn factor are finite."""
    odet = np.array(normal) / np.linalg.norm(normal)
    facing = odet @ np.array(beam) / np.linalg.norm(beam)
    assume(abs(facing) > 1e-3)  # a detector plane along the beam is a ValueError of its own
    odet = odet if facing > 0 else -odet  # the detector downstream of the sample
    helper = np.eye(3)[int(np.argmin(np.abs(odet)))]
    fdet = np.cross(helper, odet)
    fdet /= np.linalg.norm(fdet)
    sdet = np.cross(odet, fdet)
    detector = DetectorConfig(distance_mm=50.0, pixel_size_mm=1.0, fpixels=8, spixels=8,
                              detector_convention=DetectorConvention.CUSTOM, detector_pivot=DetectorPivot(pivot),
                              custom_fdet_vector=tuple(fdet), custom_sdet_vector=tuple(sdet),
                              custom_odet_vector=tuple(odet), custom_beam_vector=beam)
    k = torch.tensor(kahn, dtype=torch.float64, requires_grad=True)
    beam_config = BeamConfig(wavelength_A=1.0, polarization_factor=k, polarization_axis=axis,
                             hdivrange_mrad=divergence_mrad, vdivrange_mrad=divergence_mrad, hdivsteps=2, vdivsteps=2)
    image = Simulator(Crystal(DIRECTIONS_CRYSTAL), Detector(detector), beam_config).run()
    assert bool(torch.isfinite(image).all()), image
    (gradient,) = torch.autograd.grad(image.sum(), k)
    assert bool(torch.isfinite(gradient)), gradient
