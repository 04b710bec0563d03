"""The ``nanobragg`` command: nanoBragg C's command line on top of the library.

``nanobragg`` (or ``python -m nanobrag_torch``) takes nanoBragg C's flags, prints a summary
like C's, and writes the same files: the raw float image (``-floatfile``, default
``floatimage.bin``), the noiseless SMV integer image (``-intfile``, default ``intimage.img``),
the 8-bit PGM (``-pgmfile``, default ``image.pgm``, unless ``-nopgm``), the Poisson noise SMV
image (``-noisefile``, default ``noiseimage.img``, unless ``-nonoise``) and, after reading a text
HKL file, the ``Fdump.bin`` cache (``-dump``). It is a drop-in replacement for the C program.

Options are matched as C matches them: an argument selects every option whose text it
*contains* (``-matrix`` is ``-mat``; ``-twotheta_axis`` also sets the two-theta angle;
``-misset_seed`` also sets the misset angles), with C's exact and length-checked exceptions
(spec §2.2). Input quirks of C are reproduced and reported with one warning line each on
stderr; physics quirks are reproduced by the library's ``c_quirks`` switch (spec §12).

Deliberate differences from C, all failing loudly instead of silently:

* an unknown option, a stray argument, a missing or non-numeric value is an error
  (C ignores unknown arguments and reads a missing number as 0);
* non-physical values are errors: ``-pixel``, ``-distance``, ``-close_distance``,
  ``-lambda``/``-energy`` ≤ 0, negative pixel counts, negative ``-N`` (``-N 0`` keeps C's
  meaning, one cell: every N ≤ 1 is one cell);
* an unreadable input file, a malformed matrix or HKL file, no ``-cell``/``-mat``, no
  structure factors, or an unwritable output path is an error before anything is simulated.

Every error is one line ``nanobragg: error: ...`` on stderr and exit status 2; no output file
is touched (outputs are written to a temporary name and renamed).
"""

from __future__ import annotations

import math
import os
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .config import (BeamConfig, CrystalConfig, CrystalShape, DetectorConfig, DetectorConvention,
                     DetectorPivot, NoiseConfig)

PROGRAM = "nanobragg"
ERROR_EXIT = 2
RTD = 180.0 * (1.0 / math.pi)
KEV_ANGSTROM = 12398.42
DEFAULT_FLUENCE = BeamConfig.DEFAULT_FLUENCE


class UsageError(Exception):
    """A problem with the command line or an input file; reported as one line, exit status 2."""


# --------------------------------------------------------------------------- value parsing
_C_FLOAT_PREFIX = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_C_INT_PREFIX = re.compile(r"\s*[+-]?\d+")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _c_atof(text: str) -> float:
    """C's ``atof``: the leading number of ``text``, or 0."""
    match = _C_FLOAT_PREFIX.match(text)
    return float(match.group()) if match else 0.0


def _c_atoi(text: str) -> int:
    """C's ``atoi``: the leading integer of ``text``, or 0."""
    match = _C_INT_PREFIX.match(text)
    return int(match.group()) if match else 0


def _is_number(text: str) -> bool:
    return bool(_NUMBER.match(text))


def _looks_like_option(text: str) -> bool:
    return text.startswith("-") and len(text) > 1 and not _is_number(text)


# --------------------------------------------------------------------------- raw C state
@dataclass
class RawArgs:
    """nanoBragg C's option variables after parsing, in C's units and with C's "unset" markers.

    ``None`` means "not given" (C's NaN or −1 defaults). Lengths are in mm, angles in degrees.
    """

    Na: int = 1
    Nb: int = 1
    Nc: int = 1
    cell: Optional[List[float]] = None
    misset: Optional[Tuple[float, float, float]] = None
    misset_random: bool = False
    sample_mm: List[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    Xbeam: Optional[float] = None
    Ybeam: Optional[float] = None
    Xclose: Optional[float] = None
    Yclose: Optional[float] = None
    ORGX: Optional[float] = None
    ORGY: Optional[float] = None
    pivot: DetectorPivot = DetectorPivot.BEAM
    convention: DetectorConvention = DetectorConvention.MOSFLM
    vectors: Dict[str, Tuple[float, float, float]] = field(default_factory=dict)
    pix0_given: bool = False
    distance: float = 100.0
    close_distance: Optional[float] = None
    detector_mu_set: bool = False
    detector_abs_um: Optional[float] = None
    detector_thick_um: float = 0.0
    detector_thicksteps: int = -1
    twotheta: float = 0.0
    rot: List[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    detsize_f: float = 102.4
    detsize_s: float = 102.4
    fpixels: int = 0
    spixels: int = 0
    curved: bool = False
    pixel: float = 0.1
    point_pixel: bool = False
    polar: float = 0.0
    nopolar: bool = False
    oversample: int = -1
    oversample_thick: bool = False
    oversample_polar: bool = False
    oversample_omega: bool = False
    roi: Optional[List[int]] = None
    wavelength_A: float = 1.0
    wavelength_flag: str = "-lambda"
    fluence: float = DEFAULT_FLUENCE
    flux: float = 0.0
    exposure: float = 1.0
    beamsize_mm: float = 0.1
    mosaic_spread: Optional[float] = None
    mosaic_domains: int = -1
    dispersion: float = 0.0
    dispsteps: int = -1
    hdivrange: Optional[float] = None
    vdivrange: Optional[float] = None
    hdivstep: Optional[float] = None
    vdivstep: Optional[float] = None
    hdivsteps: int = -1
    vdivsteps: int = -1
    round_div: bool = True
    adc: float = 40.0
    phi0: float = 0.0
    osc: Optional[float] = None
    phistep: Optional[float] = None
    phisteps: int = -1
    dmin: float = 0.0
    matfile: Optional[str] = None
    hklfile: Optional[str] = None
    default_F: float = 0.0
    dumpfile: str = "Fdump.bin"
    imgfile: Optional[str] = None
    maskfile: Optional[str] = None
    sourcefile: Optional[str] = None
    floatfile: str = "floatimage.bin"
    intfile: str = "intimage.img"
    pgmfile: str = "image.pgm"
    noisefile: str = "noiseimage.img"
    write_pgm: bool = True
    calculate_noise: bool = True
    intfile_scale: float = 0.0
    pgm_scale: float = 0.0
    progress: bool = True
    interpolate: Optional[bool] = None
    shape: CrystalShape = CrystalShape.SQUARE
    fudge: float = 1.0
    seed: Optional[int] = None
    mosaic_seed: Optional[int] = None
    misset_seed: Optional[int] = None
    water_um: float = 0.0
    ignored: List[str] = field(default_factory=list)


# --------------------------------------------------------------------------- option table
STOP = "stop"
"""Returned by a handler to end the processing of the current argument (C's ``continue``)."""


@dataclass(frozen=True)
class Option:
    """One nanoBragg option: how C recognises it, how many values it reads, what it sets.

    Attributes
    ----------
    key : str
        The option's name, used in messages.
    patterns : tuple of (text, rule)
        ``rule`` is ``"sub"`` (C's ``strstr``), ``"exact"`` (``strcmp``) or an int: ``strstr``
        plus ``strlen(arg) == rule``.
    nargs : int
        Values read after the argument (``-cell`` reads up to 6, stopping at a ``-``).
    kind : str
        ``"float"``, ``"int"``, ``"str"`` (a file name or a word) or ``"flag"``.
    apply : callable
        ``apply(raw, values)`` sets the C variables; may return :data:`STOP`.
    """

    key: str
    patterns: Tuple[Tuple[str, object], ...]
    nargs: int
    kind: str
    apply: Callable[[RawArgs, list], Optional[str]]

    def matches(self, arg: str) -> bool:
        for text, rule in self.patterns:
            if rule == "exact":
                if arg == text:
                    return True
            elif text in arg and (rule == "sub" or len(arg) == rule):
                return True
        return False

    def exactly(self, arg: str) -> bool:
        return any(arg == text for text, _ in self.patterns)


def _opt(key, nargs, kind, apply, *extra_patterns, rule="sub"):
    patterns = ((key, rule),) + tuple((p, "sub") if isinstance(p, str) else p for p in extra_patterns)
    return Option(key, patterns, nargs, kind, apply)


def _set(name):
    def apply(raw, values):
        setattr(raw, name, values[0])
    return apply


def _set_const(name, value):
    def apply(raw, values):
        setattr(raw, name, value)
    return apply


def _beam_pivot(name):
    def apply(raw, values):
        setattr(raw, name, values[0])
        raw.pivot = DetectorPivot.BEAM
    return apply


def _sample_pivot(name):
    def apply(raw, values):
        setattr(raw, name, values[0])
        raw.pivot = DetectorPivot.SAMPLE
    return apply


def _convention(convention, pivot):
    def apply(raw, values):
        raw.convention = convention
        raw.pivot = pivot
    return apply


def _custom_vector(name):
    def apply(raw, values):
        raw.convention = DetectorConvention.CUSTOM
        raw.vectors[name] = tuple(values)
    return apply


def _apply_N(raw, values):
    raw.Na = raw.Nb = raw.Nc = values[0]
    return STOP


def _apply_one_N(name):
    def apply(raw, values):
        setattr(raw, name, values[0])
        return STOP
    return apply


def _apply_cell(raw, values):
    cell = list(values) + [None] * (6 - len(values))
    a = cell[0] if cell[0] is not None else 0.0
    b = cell[1] if cell[1] is not None else a
    c = cell[2] if cell[2] is not None else a
    angles = [v if (v is not None and v > 0) else 90.0 for v in cell[3:]]
    raw.cell = [a, b, c] + angles


def _apply_misset(raw, values):
    if values[0] == "random":
        raw.misset_random = True
        return STOP
    raw.misset_random = False
    raw.misset = tuple(values)


def _apply_sample(axes):
    def apply(raw, values):
        for axis in axes:
            raw.sample_mm[axis] = values[0]
    return apply


def _apply_pivot(raw, values):
    word = values[0]
    if "sample" in word:
        raw.pivot = DetectorPivot.SAMPLE
    if "beam" in word:
        raw.pivot = DetectorPivot.BEAM


def _apply_pix0(raw, values):
    raw.convention = DetectorConvention.CUSTOM
    raw.pix0_given = True


def _apply_detector_abs(raw, values):
    word = values[0]
    if "inf" in word or _c_atof(word) == 0.0:
        raw.detector_thick_um = 0.0
        raw.detector_abs_um = None
        raw.detector_mu_set = "zero"
    else:
        raw.detector_abs_um = _c_atof(word)
        raw.detector_mu_set = True


def _apply_twotheta(raw, values):
    raw.twotheta = values[0]
    raw.pivot = DetectorPivot.SAMPLE


def _apply_rot(axis):
    def apply(raw, values):
        raw.rot[axis] = values[0]
    return apply


def _apply_detsize(raw, values):
    raw.detsize_f = raw.detsize_s = values[0]


def _apply_detpixels(raw, values):
    raw.fpixels = raw.spixels = values[0]


def _apply_polar(raw, values):
    raw.polar = values[0]
    raw.nopolar = False


def _apply_oversample_flag(name):
    def apply(raw, values):
        setattr(raw, name, True)
        return STOP
    return apply


def _apply_lambda(raw, values):
    raw.wavelength_A = values[0]
    raw.wavelength_flag = "-lambda"


def _apply_energy(raw, values):
    raw.wavelength_flag = "-energy"
    raw.wavelength_A = KEV_ANGSTROM / values[0] if values[0] != 0 else 0.0


def _apply_divergence(raw, values):
    raw.hdivrange = raw.vdivrange = values[0]


def _apply_divsteps(raw, values):
    raw.hdivsteps = raw.vdivsteps = values[0]


def _apply_pgmfile(raw, values):
    raw.pgmfile = values[0]
    raw.write_pgm = True


def _apply_noisefile(raw, values):
    raw.noisefile = values[0]
    raw.calculate_noise = True


def _apply_pgmscale(raw, values):
    raw.pgm_scale = values[0]
    raw.write_pgm = True


def _apply_seed(name):
    def apply(raw, values):
        setattr(raw, name, values[0])
    return apply


def _ignore(note):
    def apply(raw, values):
        raw.ignored.append(note)
    return apply


# The table follows the order of nanoBragg.c's parser: an argument triggers every option it
# matches, in this order, until a handler returns STOP.
OPTIONS: Tuple[Option, ...] = (
    _opt("-Na", 1, "int", _apply_one_N("Na")),
    _opt("-Nb", 1, "int", _apply_one_N("Nb")),
    _opt("-Nc", 1, "int", _apply_one_N("Nc")),
    _opt("-N", 1, "int", _apply_N, rule="exact"),
    _opt("-cell", 6, "cell", _apply_cell),
    _opt("-misset", 3, "misset", _apply_misset),
    _opt("-samplesize", 1, "float", _apply_sample((0, 1, 2)), "-sample_size"),
    _opt("-sample_thick", 1, "float", _apply_sample((0,)), "-sample_x"),
    _opt("-sample_width", 1, "float", _apply_sample((1,)), "-sample_y", "-width"),
    _opt("-sample_heigh", 1, "float", _apply_sample((2,)), "-sample_z", "-heigh"),
    _opt("-xtalsize", 1, "float", _apply_sample((0, 1, 2)), "-xtal_size"),
    _opt("-xtal_thick", 1, "float", _apply_sample((0,)), "-xtal_x"),
    _opt("-xtal_width", 1, "float", _apply_sample((1,)), "-xtal_y", "-width"),
    _opt("-xtal_heigh", 1, "float", _apply_sample((2,)), "-xtal_z", "-heigh"),
    _opt("-density", 1, "float", _ignore("-density is only printed by nanoBragg; ignored"), "-sample_den"),
    _opt("-MW", 1, "float", _ignore("-MW is only printed by nanoBragg; ignored"), ("-molec", "sub"), rule="exact"),
    _opt("-Xbeam", 1, "float", _beam_pivot("Xbeam")),
    _opt("-Ybeam", 1, "float", _beam_pivot("Ybeam")),
    _opt("-Xclose", 1, "float", _sample_pivot("Xclose")),
    _opt("-Yclose", 1, "float", _sample_pivot("Yclose")),
    _opt("-ORGX", 1, "float", _sample_pivot("ORGX")),
    _opt("-ORGY", 1, "float", _sample_pivot("ORGY")),
    _opt("-pivot", 1, "word", _apply_pivot),
    _opt("-mosflm", 0, "flag", _convention(DetectorConvention.MOSFLM, DetectorPivot.BEAM)),
    _opt("-xds", 0, "flag", _convention(DetectorConvention.XDS, DetectorPivot.SAMPLE)),
    _opt("-adxv", 0, "flag", _convention(DetectorConvention.ADXV, DetectorPivot.BEAM)),
    _opt("-denzo", 0, "flag", _convention(DetectorConvention.DENZO, DetectorPivot.BEAM)),
    _opt("-dials", 0, "flag", _convention(DetectorConvention.DIALS, DetectorPivot.BEAM)),
    _opt("-fdet_vector", 3, "float", _custom_vector("fdet")),
    _opt("-sdet_vector", 3, "float", _custom_vector("sdet")),
    _opt("-odet_vector", 3, "float", _custom_vector("odet")),
    _opt("-beam_vector", 3, "float", _custom_vector("beam")),
    _opt("-polar_vector", 3, "float", _custom_vector("polar")),
    _opt("-spindle_axis", 3, "float", _custom_vector("spindle")),
    _opt("-twotheta_axis", 3, "float", _custom_vector("twotheta_axis")),
    _opt("-pix0_vector", 3, "float", _apply_pix0),
    _opt("-distance", 1, "float", _beam_pivot("distance")),
    _opt("-close_distance", 1, "float", _sample_pivot("close_distance")),
    _opt("-detector_abs", 1, "word", _apply_detector_abs),
    _opt("-detector_thick", 1, "float", _set("detector_thick_um"), rule=15),
    _opt("-detector_thicksteps", 1, "int", _set("detector_thicksteps"), "-thicksteps"),
    _opt("-twotheta", 1, "float", _apply_twotheta),
    _opt("-detector_rotx", 1, "float", _apply_rot(0)),
    _opt("-detector_roty", 1, "float", _apply_rot(1)),
    _opt("-detector_rotz", 1, "float", _apply_rot(2)),
    _opt("-detsize", 1, "float", _apply_detsize, rule=8),
    _opt("-detsize_f", 1, "float", _set("detsize_f")),
    _opt("-detsize_s", 1, "float", _set("detsize_s")),
    _opt("-detpixels", 1, "int", _apply_detpixels, rule=10),
    _opt("-detpixels_f", 1, "int", _set("fpixels"), "-detpixels_x"),
    _opt("-detpixels_s", 1, "int", _set("spixels"), "-detpixels_y"),
    _opt("-curved_det", 0, "flag", _set_const("curved", True)),
    _opt("-pixel", 1, "float", _set("pixel")),
    _opt("-point_pixel", 0, "flag", _set_const("point_pixel", True)),
    _opt("-polar", 1, "float", _apply_polar, rule=6),
    _opt("-nopolar", 0, "flag", _set_const("nopolar", True)),
    _opt("-oversample_thick", 0, "flag", _apply_oversample_flag("oversample_thick")),
    _opt("-oversample_polar", 0, "flag", _apply_oversample_flag("oversample_polar")),
    _opt("-oversample_omega", 0, "flag", _apply_oversample_flag("oversample_omega")),
    _opt("-oversample", 1, "int", _set("oversample")),
    _opt("-roi", 4, "int", lambda raw, values: setattr(raw, "roi", list(values))),
    _opt("-lambda", 1, "float", _apply_lambda, "-wave"),
    _opt("-energy", 1, "float", _apply_energy),
    _opt("-fluence", 1, "float", _set("fluence")),
    _opt("-flux", 1, "float", _set("flux")),
    _opt("-exposure", 1, "float", _set("exposure")),
    _opt("-beamsize", 1, "float", _set("beamsize_mm")),
    _opt("-mosaic", 1, "float", _set("mosaic_spread"), "-mosaici", "-mosaic_spr", rule=7),
    _opt("-mosaic_domains", 1, "int", _set("mosaic_domains"), "-mosaic_dom"),
    _opt("-dispersion", 1, "float", _set("dispersion")),
    _opt("-dispsteps", 1, "int", _set("dispsteps")),
    _opt("-divergence", 1, "float", _apply_divergence),
    _opt("-hdivrange", 1, "float", _set("hdivrange")),
    _opt("-vdivrange", 1, "float", _set("vdivrange")),
    _opt("-hdivstep", 1, "float", _set("hdivstep"), rule=9),
    _opt("-hdivsteps", 1, "int", _set("hdivsteps")),
    _opt("-vdivstep", 1, "float", _set("vdivstep"), rule=9),
    _opt("-vdivsteps", 1, "int", _set("vdivsteps")),
    _opt("-divsteps", 1, "int", _apply_divsteps),
    _opt("-round_div", 0, "flag", _set_const("round_div", True)),
    _opt("-square_div", 0, "flag", _set_const("round_div", False)),
    _opt("-adc", 1, "float", _set("adc")),
    _opt("-phi", 1, "float", _set("phi0"), rule=4),
    _opt("-osc", 1, "float", _set("osc")),
    _opt("-phistep", 1, "float", _set("phistep"), rule=8),
    _opt("-phisteps", 1, "int", _set("phisteps")),
    _opt("-dmin", 1, "float", _set("dmin")),
    _opt("-mat", 1, "str", _set("matfile")),
    _opt("-hkl", 1, "str", _set("hklfile")),
    _opt("-default_F", 1, "float", _set("default_F")),
    _opt("-dump", 1, "str", _set("dumpfile")),
    _opt("-img", 1, "str", _set("imgfile")),
    _opt("-mask", 1, "str", _set("maskfile")),
    _opt("-stolout", 1, "str", _ignore("-stolout is not used by nanoBragg; ignored")),
    _opt("-stol", 1, "str", _ignore("-stol files are read but never used by nanoBragg; ignored"), rule=5),
    _opt("-4stol", 1, "str", _ignore("-4stol files are read but never used by nanoBragg; ignored"), rule=6),
    _opt("-Q", 1, "str", _ignore("-Q files are read but never used by nanoBragg; ignored"), rule=2),
    _opt("-sourcefile", 1, "str", _set("sourcefile")),
    _opt("-floatfile", 1, "str", _set("floatfile"), "-floatimage"),
    _opt("-intfile", 1, "str", _set("intfile"), "-intimage"),
    _opt("-pgmfile", 1, "str", _apply_pgmfile, "-pgmimage"),
    _opt("-noisefile", 1, "str", _apply_noisefile, "-noiseimage"),
    _opt("-nonoise", 0, "flag", _set_const("calculate_noise", False)),
    _opt("-nopgm", 0, "flag", _set_const("write_pgm", False)),
    _opt("-scale", 1, "float", _set("intfile_scale")),
    _opt("-pgmscale", 1, "float", _apply_pgmscale),
    _opt("-coherent", 0, "flag", _ignore("-coherent has no effect in nanoBragg; ignored")),
    _opt("-printout", 0, "flag", _ignore("-printout (per-pixel console dump) is not implemented; ignored")),
    _opt("-noprogress", 0, "flag", _set_const("progress", False)),
    _opt("-progress", 0, "flag", _set_const("progress", True)),
    _opt("-interpolate", 0, "flag", _set_const("interpolate", True)),
    _opt("-nointerpolate", 0, "flag", _set_const("interpolate", False)),
    _opt("-round_xtal", 0, "flag", _set_const("shape", CrystalShape.ROUND)),
    _opt("-square_xtal", 0, "flag", _set_const("shape", CrystalShape.SQUARE)),
    _opt("-gauss_xtal", 0, "flag", _set_const("shape", CrystalShape.GAUSS)),
    _opt("-tophat_spots", 0, "flag", _set_const("shape", CrystalShape.TOPHAT), "-binary_spots"),
    _opt("-fudge", 1, "float", _set("fudge")),
    _opt("-printout_pixel", 2, "int", _ignore("-printout_pixel is not implemented; ignored")),
    _opt("-seed", 1, "int", _apply_seed("seed")),
    _opt("-mosaic_seed", 1, "int", _apply_seed("mosaic_seed")),
    _opt("-misset_seed", 1, "int", _apply_seed("misset_seed")),
    _opt("-water", 1, "float", _set("water_um")),
)

_SILENT_SECONDARY = {"-printout"}
"""Options whose substring triggering by a longer option changes nothing worth a warning."""


# --------------------------------------------------------------------------- scanning
def _primary_option(arg: str, matched: Sequence[Option]) -> Option:
    """The option an argument names: the exact one if any, else the longest matching text."""
    for option in matched:
        if option.exactly(arg):
            return option
    return max(matched, key=lambda o: max(len(t) for t, _ in o.patterns if t in arg))


def _strict_values(option: Option, arg: str, argv: Sequence[str], i: int, warnings: List[str]) -> list:
    """Read and check the values of the option an argument names."""
    if option.kind == "flag":
        return []
    if option.kind == "cell":
        texts = []
        for text in argv[i + 1:i + 7]:
            if text.startswith("-"):
                break
            texts.append(text)
        if not texts:
            raise UsageError(f"{arg} needs the cell: a [b c alpha beta gamma] (Å, degrees)")
        return [_strict_float(arg, t) for t in texts]
    if option.kind == "misset" and i + 1 < len(argv) and "rand" in argv[i + 1]:
        return ["random"]
    texts = list(argv[i + 1:i + 1 + option.nargs])
    if len(texts) < option.nargs:
        raise UsageError(f"{arg} needs {option.nargs} value{'s' if option.nargs > 1 else ''}, "
                         f"got {len(texts)}")
    if option.kind in ("str", "word"):
        if texts[0].startswith("-"):
            raise UsageError(f"{arg} needs a {'file name' if option.kind == 'str' else 'value'}, "
                             f"got the option '{texts[0]}'")
        return texts
    if option.kind == "int":
        return [_strict_int(arg, t, warnings) for t in texts]
    return [_strict_float(arg, t) for t in texts]


def _strict_float(flag: str, text: str) -> float:
    if not _is_number(text):
        raise UsageError(f"{flag} needs a number, got '{text}'")
    return float(text)


def _strict_int(flag: str, text: str, warnings: List[str]) -> int:
    value = _strict_float(flag, text)
    integer = _c_atoi(text)
    if integer != value:
        warnings.append(f"{flag} {text}: nanoBragg reads an integer here (C atoi); using {integer}")
    return integer


def _lenient_values(option: Option, argv: Sequence[str], i: int) -> Optional[list]:
    """Values as C reads them for an option triggered only by substring (atof/atoi, no checks).

    Returns None when C would not trigger it (too few arguments follow)."""
    if option.kind == "flag":
        return []
    if option.kind == "misset" and i + 1 < len(argv) and "rand" in argv[i + 1]:
        return ["random"]
    texts = list(argv[i + 1:i + 1 + option.nargs])
    if len(texts) < option.nargs:
        return None
    if option.kind in ("str", "word"):
        return texts
    convert = _c_atoi if option.kind == "int" else _c_atof
    return [convert(t) for t in texts]


def scan_arguments(argv: Sequence[str], raw: Optional[RawArgs] = None) -> Tuple[RawArgs, List[str]]:
    """Apply nanoBragg's options left to right to a :class:`RawArgs`.

    Parameters
    ----------
    argv : sequence of str
        The arguments (without the program name).
    raw : RawArgs, optional
        Start state (defaults from ``-img``/``-mask`` headers); a new one by default.

    Returns
    -------
    raw : RawArgs
    warnings : list of str
        One line per C input quirk that changed something.

    Raises
    ------
    UsageError
        Unknown option, stray argument, missing or non-numeric value.
    """
    raw = raw if raw is not None else RawArgs()
    warnings: List[str] = []
    consumed = set()
    for i, arg in enumerate(argv):
        if i in consumed:
            continue
        if not _looks_like_option(arg):
            raise UsageError(f"unexpected argument '{arg}' (not an option, nor the value of one)")
        matched = [o for o in OPTIONS if o.matches(arg)]
        if not matched:
            raise UsageError(f"unknown option '{arg}'")
        primary = _primary_option(arg, matched)
        if primary.key == "-curved_det" and i == len(argv) - 1:
            warnings.append("-curved_det is the last argument: nanoBragg C ignores it there; ignored")
            continue
        values = _strict_values(primary, arg, argv, i, warnings)
        consumed.update(range(i + 1, i + 1 + len(values)))
        for option in matched:
            if option is primary:
                outcome = option.apply(raw, values)
            else:
                secondary = _lenient_values(option, argv, i)
                if secondary is None:
                    continue
                outcome = option.apply(raw, secondary)
                if option.key not in _SILENT_SECONDARY:
                    shown = " ".join(str(v) for v in secondary)
                    warnings.append(f"{arg} also acts as {option.key}{' ' + shown if shown else ''} "
                                    f"(nanoBragg C matches options by substring); reproduced")
            if outcome == STOP:
                break
    return raw, warnings


# --------------------------------------------------------------------------- the plan
@dataclass
class Outputs:
    """Files the command writes (None: not written)."""

    floatfile: str
    intfile: str
    pgmfile: Optional[str]
    noisefile: Optional[str]
    fdump: Optional[str]


@dataclass
class Plan:
    """Everything a run needs, resolved from the command line (see :func:`parse_args`).

    Attributes
    ----------
    crystal, detector, beam, noise : configs
        Library configs, with nanoBragg's automatic choices already made.
    hklfile : str or None
        Text HKL file to read (then cached as ``outputs.fdump``).
    fdump_in : str or None
        Fdump cache to read when no ``-hkl`` is given and the cache exists.
    outputs : Outputs
    pgm_scale : float
        ``-pgmscale`` (≤ 0: automatic).
    header : dict
        C values that only reach the SMV header and the summary (Xbeam, Ybeam, phi0, osc, ...).
    progress : bool
        ``-noprogress`` not given.
    warnings : list of str
        Lines for stderr (C quirks reproduced, ignored options).
    """

    crystal: CrystalConfig
    detector: DetectorConfig
    beam: BeamConfig
    noise: NoiseConfig
    hklfile: Optional[str]
    fdump_in: Optional[str]
    outputs: Outputs
    pgm_scale: float
    header: Dict[str, float]
    progress: bool
    warnings: List[str]


def _require_file(flag: str, path: str) -> None:
    if not os.path.isfile(path):
        raise UsageError(f"{flag} {path}: no such file")
    if not os.access(path, os.R_OK):
        raise UsageError(f"{flag} {path}: file is not readable")


def _header_defaults(raw: RawArgs, argv: Sequence[str]) -> Tuple[RawArgs, Optional[np.ndarray]]:
    """Defaults from ``-mask`` and ``-img`` SMV headers, read before the options (spec §10.6)."""
    mask = None
    files = {}
    for i, arg in enumerate(argv[:-1]):
        for flag in ("-img", "-mask"):
            if _looks_like_option(arg) and flag in arg:
                files[flag] = argv[i + 1]
    for flag in ("-mask", "-img"):
        if flag not in files:
            continue
        from .io.smv import read_smv
        path = files[flag]
        _require_file(flag, path)
        try:
            data, header = read_smv(path)
        except (ValueError, OSError) as error:
            raise UsageError(f"{flag} {path}: not a readable SMV image ({error})") from None
        _apply_smv_header(raw, header, flip_y=(flag == "-mask"))
        if flag == "-mask":
            mask = np.asarray(data)
    return raw, mask


def _apply_smv_header(raw: RawArgs, header: Dict[str, str], flip_y: bool) -> None:
    def number(key):
        try:
            return float(header[key])
        except (KeyError, ValueError):
            return None

    if number("SIZE1") is not None:
        raw.fpixels = int(number("SIZE1"))
    if number("SIZE2") is not None:
        raw.spixels = int(number("SIZE2"))
    if number("PIXEL_SIZE") is not None:
        raw.pixel = number("PIXEL_SIZE")
    raw.detsize_f = raw.pixel * raw.fpixels
    raw.detsize_s = raw.pixel * raw.spixels
    for key, name in (("DISTANCE", "distance"), ("CLOSE_DISTANCE", "close_distance"),
                      ("WAVELENGTH", "wavelength_A"), ("BEAM_CENTER_X", "Xbeam"), ("ORGX", "ORGX"),
                      ("ORGY", "ORGY"), ("PHI", "phi0"), ("OSC_RANGE", "osc")):
        if number(key) is not None:
            setattr(raw, name, number(key))
    if number("BEAM_CENTER_Y") is not None:
        raw.Ybeam = raw.detsize_s - number("BEAM_CENTER_Y") if flip_y else number("BEAM_CENTER_Y")


def _check_physical(raw: RawArgs) -> None:
    """Reject values that have no physical meaning (C would run on and write nonsense)."""
    checks = (
        ("-pixel", raw.pixel, raw.pixel > 0),
        ("-distance", raw.distance, raw.distance > 0),
        (raw.wavelength_flag, raw.wavelength_A, raw.wavelength_A > 0 and math.isfinite(raw.wavelength_A)),
        ("-detpixels", raw.fpixels, raw.fpixels >= 0),
        ("-detpixels", raw.spixels, raw.spixels >= 0),
        ("-detsize", raw.detsize_f, raw.detsize_f > 0),
        ("-detsize", raw.detsize_s, raw.detsize_s > 0),
        ("-dispersion", raw.dispersion, raw.dispersion >= 0),
        ("-water", raw.water_um, raw.water_um >= 0),
        ("-dmin", raw.dmin, raw.dmin >= 0),
        ("-fudge", raw.fudge, raw.fudge > 0),
    )
    for flag, value, ok in checks:
        if not ok:
            shown = f"{KEV_ANGSTROM / value:g} eV" if flag == "-energy" and value else f"{value:g}"
            raise UsageError(f"{flag} {shown} is not physical (must be > 0)"
                             if flag not in ("-detpixels", "-dispersion", "-water", "-dmin")
                             else f"{flag} {shown} must not be negative")
    if raw.close_distance is not None and raw.close_distance <= 0:
        raise UsageError(f"-close_distance {raw.close_distance:g} is not physical (must be > 0)")
    for name in ("Na", "Nb", "Nc"):
        if getattr(raw, name) < 0:
            raise UsageError(f"-{name} {getattr(raw, name)} is not physical "
                             f"(cells must be >= 0; 0 and 1 both mean one cell)")


def _pixel_counts(raw: RawArgs) -> Tuple[int, int, float, float]:
    """fpixels, spixels and the detector sizes (mm) as C fills them in (spec §2.1 step 3)."""
    detsize_f = raw.pixel * raw.fpixels if raw.fpixels else raw.detsize_f
    detsize_s = raw.pixel * raw.spixels if raw.spixels else raw.detsize_s
    fpixels = int(math.ceil(detsize_f / raw.pixel - 0.5))
    spixels = int(math.ceil(detsize_s / raw.pixel - 0.5))
    if fpixels < 1 or spixels < 1:
        raise UsageError(f"the detector has {fpixels} x {spixels} pixels: check -detsize/-detpixels/-pixel")
    return fpixels, spixels, detsize_f, detsize_s


def _resolve_phi(raw: RawArgs) -> Tuple[int, float, float]:
    """(phi steps, C's osc, step) by nanoBragg's rules (spec §11.1), degrees."""
    osc = raw.osc if raw.osc is not None else -1.0
    step = raw.phistep if raw.phistep is not None else -1.0
    steps = raw.phisteps
    if steps < 0:
        if osc < 0:
            if step <= 0:
                return 1, 0.0, 0.0
            return 2, step, step
        if step <= 0:
            return 2, osc, osc / 2.0
        return int(math.ceil(osc / step)), osc, step
    steps = max(steps, 1)
    if osc < 0:
        if step <= 0:
            return steps, 1.0, 1.0 / steps
        return 2, step, step
    if step < 0:
        return steps, osc, osc / steps
    return steps, osc, step


def _resolve_mosaic(raw: RawArgs, warnings: List[str]) -> Tuple[int, float]:
    """(domains, spread in degrees) by nanoBragg's rules (spec §11.4)."""
    spread = raw.mosaic_spread
    if spread is None or spread <= 0:
        return 1, 0.0
    if raw.mosaic_domains <= 0:
        warnings.append(f"-mosaic {spread:g} without -mosaic_domains: 10 domains, as nanoBragg C")
        return 10, spread
    return raw.mosaic_domains, spread


def _resolve_thickness(raw: RawArgs, warnings: List[str]) -> Dict[str, object]:
    """Library thickness fields reproducing C's layer spacing thick/(n−1) (spec §11.3)."""
    thick = raw.detector_thick_um
    if thick <= 0:
        return {"detector_thick_um": 0.0, "detector_thicksteps": 1, "detector_abs_um": None}
    if raw.detector_mu_set == "zero":
        raise UsageError("-detector_abs 0 (or inf) given before -detector_thick: nanoBragg C then "
                         "absorbs nothing in a thick sensor and writes an all-zero image")
    layers = max(raw.detector_thicksteps, 2) if raw.detector_thicksteps > 0 else 2
    spacing = thick / (layers - 1) if raw.detector_thicksteps > 0 else thick / 2.0
    warnings.append(f"sensor of {thick:g} um in {layers} layers {spacing:g} um apart (they span "
                    f"{spacing * layers:g} um), and only the last layer's capture fraction multiplies "
                    f"the sum: nanoBragg C's quirks, reproduced")
    depth = raw.detector_abs_um if raw.detector_mu_set is True else thick
    return {"detector_thick_um": spacing * layers, "detector_thicksteps": layers, "detector_abs_um": depth}


def _c_unit(vector: Sequence[float]) -> Tuple[Tuple[float, float, float], float]:
    x, y, z = (float(v) for v in vector)
    magnitude = math.sqrt(x * x + y * y + z * z)
    if magnitude == 0.0:
        return (0.0, 0.0, 0.0), 0.0
    return (x / magnitude, y / magnitude, z / magnitude), magnitude


def _custom_vectors(raw: RawArgs, warnings: List[str]) -> Dict[str, Optional[Tuple[float, float, float]]]:
    """The CUSTOM convention's user vectors, with C's odet regeneration (spec §5.2)."""
    from .models.detector import CONVENTIONS
    defaults = CONVENTIONS[DetectorConvention.CUSTOM]
    for name, vector in raw.vectors.items():
        if name != "odet" and _c_unit(vector)[1] == 0.0:
            raise UsageError(f"-{name}{'_vector' if name in ('fdet', 'sdet', 'beam', 'polar') else ''}"
                             f" {' '.join(f'{v:g}' for v in vector)} is the zero vector")
    fdet = _c_unit(raw.vectors.get("fdet", defaults.fdet))[0]
    sdet = _c_unit(raw.vectors.get("sdet", defaults.sdet))[0]
    odet, magnitude = _c_unit(raw.vectors.get("odet", defaults.odet))
    if magnitude != 1.0:
        odet = _c_unit(np.cross(fdet, sdet))[0]
        warnings.append(f"odet vector has length {magnitude:.17g}, not exactly 1: replaced by "
                        f"unit(fdet x sdet) = ({odet[0]:g}, {odet[1]:g}, {odet[2]:g}), as nanoBragg C does")
    return {"fdet": fdet, "sdet": sdet, "odet": odet, "beam": raw.vectors.get("beam"),
            "polar": raw.vectors.get("polar"), "spindle": raw.vectors.get("spindle"),
            "twotheta_axis": raw.vectors.get("twotheta_axis")}


def _beam_centre(raw: RawArgs, fpixels: int, spixels: int) -> Tuple[Optional[float], Optional[float],
                                                                     float, float]:
    """Library (beam_center_f, beam_center_s) and C's (Xbeam, Ybeam) for the header, in mm."""
    pixel = raw.pixel
    size_f, size_s = fpixels * pixel, spixels * pixel
    fclose = (raw.ORGX - 0.5) * pixel if raw.ORGX is not None else None
    sclose = (raw.ORGY - 0.5) * pixel if raw.ORGY is not None else None
    xclose = raw.Xclose if raw.Xclose is not None else (fclose if fclose is not None else size_f / 2)
    yclose = raw.Yclose if raw.Yclose is not None else (sclose if sclose is not None else size_s / 2)
    convention = raw.convention
    if convention in (DetectorConvention.MOSFLM, DetectorConvention.DENZO):
        xbeam = raw.Xbeam if raw.Xbeam is not None else (size_s + pixel) / 2
        ybeam = raw.Ybeam if raw.Ybeam is not None else (size_f + pixel) / 2
        return raw.Ybeam, raw.Xbeam, xbeam, ybeam
    if convention is DetectorConvention.ADXV:
        xbeam = raw.Xbeam if raw.Xbeam is not None else (size_f + pixel) / 2
        ybeam = raw.Ybeam if raw.Ybeam is not None else (size_s - pixel) / 2
        return raw.Xbeam, raw.Ybeam, xbeam, ybeam
    xbeam = raw.Xbeam if raw.Xbeam is not None else xclose
    ybeam = raw.Ybeam if raw.Ybeam is not None else yclose
    if convention is DetectorConvention.CUSTOM:
        return xbeam, ybeam, xbeam, ybeam
    return fclose, sclose, xbeam, ybeam


def _resolve_pivot(raw: RawArgs) -> DetectorPivot:
    """Named conventions force the pivot; CUSTOM keeps the last pivot-setting flag (spec §5.2)."""
    forced = {DetectorConvention.XDS: DetectorPivot.SAMPLE, DetectorConvention.DIALS: DetectorPivot.SAMPLE,
              DetectorConvention.CUSTOM: raw.pivot}
    return forced.get(raw.convention, DetectorPivot.BEAM)


def _fluence(raw: RawArgs) -> float:
    """Fluence in photons/m² (spec §1.3): from flux·exposure/beamsize² when a flux is given."""
    beamsize_m = raw.beamsize_mm / 1000.0
    fluence = raw.fluence
    if raw.flux != 0.0 and raw.exposure > 0 and beamsize_m >= 0:
        fluence = raw.flux * raw.exposure / beamsize_m / beamsize_m if beamsize_m > 0 else math.inf
    if not (math.isfinite(fluence) and fluence > 0):
        raise UsageError(f"the fluence is {fluence:g} photons/m^2: check -fluence, or -flux, -exposure "
                         f"and -beamsize")
    return fluence


def _orientation(raw: RawArgs, warnings: List[str]) -> Dict[str, object]:
    """Cell, MOSFLM vectors and misset angles for :class:`CrystalConfig`."""
    fields: Dict[str, object] = {}
    if raw.matfile is None and (raw.cell is None or raw.cell[0] == 0.0):
        raise UsageError("no crystal: give -cell a b c alpha beta gamma, or -mat file.mat")
    if raw.cell is not None:
        a, b, c, alpha, beta, gamma = raw.cell
        if min(a, b, c) <= 0:
            raise UsageError(f"-cell {a:g} {b:g} {c:g}: cell lengths must be > 0")
        if max(alpha, beta, gamma) >= 180:
            raise UsageError(f"-cell angles {alpha:g} {beta:g} {gamma:g} must be below 180 degrees")
        fields.update(cell_a=a, cell_b=b, cell_c=c, cell_alpha=alpha, cell_beta=beta, cell_gamma=gamma)
    if raw.matfile is not None:
        fields.update(_read_matrix(raw.matfile, raw.wavelength_A))
    if raw.misset_random:
        from .rng import random_misset_deg
        seed = raw.misset_seed if raw.misset_seed is not None else int(time.time())
        fields["misset_deg"] = random_misset_deg(seed)
        warnings.append(f"-misset random (seed {seed}): misset angles "
                        f"{' '.join(f'{v:g}' for v in fields['misset_deg'])} degrees")
    elif raw.misset is not None:
        fields["misset_deg"] = tuple(raw.misset)
    return fields


def _read_matrix(path: str, wavelength_A: float) -> Dict[str, object]:
    _require_file("-mat", path)
    from .io.mosflm import read_mosflm_matrix
    try:
        a_star, b_star, c_star = read_mosflm_matrix(path, wavelength_A)
    except (ValueError, OSError) as error:
        raise UsageError(f"-mat {path}: {error}") from None
    vectors = np.array([np.asarray(v, dtype=float).reshape(3) for v in (a_star, b_star, c_star)])
    if not np.isfinite(vectors).all() or abs(np.linalg.det(vectors)) == 0.0:
        raise UsageError(f"-mat {path}: the matrix is singular (its reciprocal vectors are coplanar)")
    return {"mosflm_a_star": tuple(vectors[0]), "mosflm_b_star": tuple(vectors[1]),
            "mosflm_c_star": tuple(vectors[2])}


def _cells_from_sample(raw: RawArgs, orientation: Dict[str, object], warnings: List[str]) -> Tuple[int, int, int]:
    """Na, Nb, Nc: sample sizes (clipped by the beam) override -N; every N ≤ 1 is 1 (spec §3.5)."""
    sample = list(raw.sample_mm)
    if raw.beamsize_mm >= 0:
        for axis, word in ((1, "high"), (2, "wide")):
            if raw.beamsize_mm < sample[axis]:
                warnings.append(f"clipping sample ({sample[axis] / 1000:g} m {word}) with beam "
                                f"({raw.beamsize_mm / 1000:g} m), as nanoBragg C")
                sample[axis] = raw.beamsize_mm
    counts = [raw.Na, raw.Nb, raw.Nc]
    if any(s > 0 for s in sample):
        from .models.crystal import Crystal
        vectors = Crystal(CrystalConfig(**orientation)).real_space_vectors_A()
        for axis, vector in enumerate(vectors):
            if sample[axis] > 0:
                length_mm = float(np.linalg.norm(vector.detach().numpy())) * 1e-7
                counts[axis] = int(math.ceil(sample[axis] / length_mm))
    return tuple(max(n, 1) for n in counts)


def _sources(raw: RawArgs, convention_beam: Sequence[float]) -> Optional[list]:
    if raw.sourcefile is None:
        return None
    _require_file("-sourcefile", raw.sourcefile)
    from .io.sourcefile import read_sourcefile
    beam = _c_unit(convention_beam)[0]
    default_position = tuple(-10.0 * v for v in beam)
    try:
        sources = read_sourcefile(raw.sourcefile, default_position, raw.wavelength_A * 1e-10)
    except (ValueError, OSError) as error:
        raise UsageError(f"-sourcefile {raw.sourcefile}: {error}") from None
    if not sources:
        raise UsageError(f"-sourcefile {raw.sourcefile}: no sources in the file")
    return [(tuple(position), wavelength_m * 1e10) for position, wavelength_m in sources]


def _quirk_warnings(raw: RawArgs, phi_steps: int, interpolate: bool, has_structure_table: bool) -> List[str]:
    """One line per physics quirk of C that the library reproduces for this run (spec §12)."""
    lines = []
    if raw.phi0 == 0.0 and phi_steps > 1:
        lines.append("phi starts at exactly 0 with several phi steps: nanoBragg C reuses the last step's "
                     "rotation for the phi = 0 step; reproduced")
    flags = [f"-oversample_{n}" for n in ("thick", "polar", "omega") if getattr(raw, f"oversample_{n}")]
    if flags:
        lines.append(f"{' '.join(flags)}: nanoBragg C multiplies the running sum, not each term, by the "
                     f"factor (the terms compound); reproduced")
    if raw.water_um > 0:
        lines.append("-water: nanoBragg C scales the water background twice by r_e^2*fluence and divides "
                     "it by the number of steps; reproduced")
    if interpolate and has_structure_table:
        lines.append("tricubic interpolation on: as nanoBragg C, it switches off for the rest of the image "
                     "at the first reflection too close to the edge of the HKL table")
    return lines


def parse_args(argv: Sequence[str]) -> Plan:
    """Turn nanoBragg's command line into a :class:`Plan` (configs, files, warnings).

    Nothing is written and nothing is simulated; input files named on the command line are
    read (the matrix, SMV headers and the source file) or checked (HKL, Fdump).

    Parameters
    ----------
    argv : sequence of str
        Arguments without the program name.

    Returns
    -------
    Plan

    Raises
    ------
    UsageError
        With a one-line message naming the flag, value or file at fault.
    """
    argv = list(argv)
    raw, mask = _header_defaults(RawArgs(), argv)
    raw, warnings = scan_arguments(argv, raw)
    _check_physical(raw)
    fpixels, spixels, detsize_f, detsize_s = _pixel_counts(raw)
    fluence = _fluence(raw)
    orientation = _orientation(raw, warnings)
    cells = _cells_from_sample(raw, orientation, warnings)

    structure = _structure_source(raw, warnings)
    raw_interpolate = raw.interpolate if raw.interpolate is not None else min(raw.Na, raw.Nb, raw.Nc) <= 2
    phi_steps, osc_deg, phistep_deg = _resolve_phi(raw)
    domains, spread = _resolve_mosaic(raw, warnings)
    pivot = _resolve_pivot(raw)
    beam_center_f, beam_center_s, xbeam, ybeam = _beam_centre(raw, fpixels, spixels)

    from .models.detector import CONVENTIONS
    custom = raw.convention is DetectorConvention.CUSTOM
    vectors = _custom_vectors(raw, warnings) if custom else {}
    if raw.pix0_given:
        warnings.append("-pix0_vector values are ignored, as in nanoBragg C: pix0 follows from the beam "
                        "centre, distance and pivot (the flag only selects the CUSTOM convention)")
    convention_beam = vectors.get("beam") or CONVENTIONS[raw.convention].beam
    if mask is not None and mask.shape != (spixels, fpixels):
        raise UsageError(f"-mask {raw.maskfile}: image is {mask.shape[1]} x {mask.shape[0]} pixels, "
                         f"the detector {fpixels} x {spixels}")

    crystal = CrystalConfig(
        N_cells=cells, phi_start_deg=raw.phi0, osc_range_deg=phistep_deg * phi_steps, phi_steps=phi_steps,
        spindle_axis=vectors.get("spindle"), mosaic_spread_deg=spread, mosaic_domains=domains,
        mosaic_seed=_library_seed(raw.mosaic_seed, 12345678), default_F=raw.default_F,
        shape=raw.shape, fudge=raw.fudge, interpolate=bool(raw_interpolate), **orientation)
    detector = DetectorConfig(
        distance_mm=raw.distance, close_distance_mm=raw.close_distance, pixel_size_mm=raw.pixel,
        fpixels=fpixels, spixels=spixels, beam_center_f=beam_center_f, beam_center_s=beam_center_s,
        detector_convention=raw.convention, detector_pivot=pivot,
        detector_rotx_deg=raw.rot[0], detector_roty_deg=raw.rot[1], detector_rotz_deg=raw.rot[2],
        detector_twotheta_deg=raw.twotheta, twotheta_axis=vectors.get("twotheta_axis"),
        custom_fdet_vector=vectors.get("fdet"), custom_sdet_vector=vectors.get("sdet"),
        custom_odet_vector=vectors.get("odet"), custom_beam_vector=vectors.get("beam"),
        oversample=raw.oversample if raw.oversample > 0 else None,
        oversample_omega=raw.oversample_omega, oversample_polar=raw.oversample_polar,
        oversample_thick=raw.oversample_thick, curved_detector=raw.curved, point_pixel=raw.point_pixel,
        roi=_roi(raw, fpixels, spixels), mask=mask, **_resolve_thickness(raw, warnings))
    beam = BeamConfig(
        wavelength_A=raw.wavelength_A, fluence=fluence, polarization_factor=raw.polar, nopolar=raw.nopolar,
        polarization_axis=vectors.get("polar"),
        hdivrange_mrad=_given(raw.hdivrange, 0.0), vdivrange_mrad=_given(raw.vdivrange, 0.0),
        hdivstep_mrad=_given(raw.hdivstep, 1e-300), vdivstep_mrad=_given(raw.vdivstep, 1e-300),
        hdivsteps=raw.hdivsteps if raw.hdivsteps >= 0 else None,
        vdivsteps=raw.vdivsteps if raw.vdivsteps >= 0 else None, round_div=raw.round_div,
        dispersion_percent=raw.dispersion, dispersion_steps=raw.dispsteps if raw.dispsteps >= 0 else None,
        sources=_sources(raw, convention_beam), water_size_um=raw.water_um, dmin_A=raw.dmin)
    seed = raw.seed if raw.seed is not None else int(time.time())
    noise = NoiseConfig(seed=seed, adc_offset_adu=raw.adc,
                        intfile_scale=raw.intfile_scale if raw.intfile_scale > 0 else None)
    warnings += _quirk_warnings(raw, phi_steps, bool(raw_interpolate), structure[0] is not None or
                                structure[1] is not None)
    warnings += raw.ignored
    outputs = Outputs(floatfile=raw.floatfile, intfile=raw.intfile,
                      pgmfile=raw.pgmfile if raw.write_pgm else None,
                      noisefile=raw.noisefile if raw.calculate_noise else None,
                      fdump=raw.dumpfile if raw.hklfile is not None else None)
    header = {"Xbeam_mm": xbeam, "Ybeam_mm": ybeam, "phi0_deg": raw.phi0, "osc_deg": osc_deg,
              "twotheta_deg": raw.twotheta, "detsize_f_mm": detsize_f, "detsize_s_mm": detsize_s,
              "noise_seed": seed, "raw_N": (raw.Na, raw.Nb, raw.Nc)}
    return Plan(crystal=crystal, detector=detector, beam=beam, noise=noise, hklfile=structure[0],
                fdump_in=structure[1], outputs=outputs, pgm_scale=raw.pgm_scale, header=header,
                progress=raw.progress, warnings=warnings)


def _library_seed(seed: Optional[int], default: int) -> int:
    """Library seed for C's ``-x_seed n`` (C draws with −n; n ≤ 0 makes C start from 1)."""
    if seed is None:
        return default
    return seed if seed > 0 else 1


def _given(value: Optional[float], minimum: float) -> Optional[float]:
    """A raw range/step value for BeamConfig: None when C counts it as not given (below minimum)."""
    return value if value is not None and value >= minimum else None


def _roi(raw: RawArgs, fpixels: int, spixels: int) -> Optional[Tuple[int, int, int, int]]:
    if raw.roi is None:
        return None
    fmin, fmax, smin, smax = raw.roi
    fmin, smin = max(fmin, 0), max(smin, 0)
    fmax = fmax if fmax >= 0 else fpixels
    smax = smax if smax >= 0 else spixels
    if fmin > fmax or smin > smax or fmin >= fpixels or smin >= spixels:
        raise UsageError(f"-roi {' '.join(map(str, raw.roi))} selects no pixel of the "
                         f"{fpixels} x {spixels} detector")
    return fmin, fmax, smin, smax


def _structure_source(raw: RawArgs, warnings: List[str]) -> Tuple[Optional[str], Optional[str]]:
    """(HKL text file, Fdump file to read); checks that some structure factor exists."""
    if raw.hklfile is not None:
        _require_file("-hkl", raw.hklfile)
        return raw.hklfile, None
    if os.path.isfile(raw.dumpfile):
        warnings.append(f"no -hkl: structure factors are read from {raw.dumpfile} left by an earlier run, "
                        f"as nanoBragg C does")
        return None, raw.dumpfile
    if raw.default_F == 0.0:
        raise UsageError(f"no structure factors: give -hkl file.hkl or -default_F F "
                         f"(and no {raw.dumpfile} cache is here)")
    return None, None


# --------------------------------------------------------------------------- running
CONFIG_FIELD_FLAGS = {
    "distance_mm": "-distance", "close_distance_mm": "-close_distance", "pixel_size_mm": "-pixel",
    "fpixels": "-detpixels", "spixels": "-detpixels", "beam_center_f": "-Xbeam/-Ybeam",
    "beam_center_s": "-Xbeam/-Ybeam", "oversample": "-oversample", "detector_thick_um": "-detector_thick",
    "detector_thicksteps": "-detector_thicksteps", "detector_abs_um": "-detector_abs", "roi": "-roi",
    "wavelength_A": "-lambda", "fluence": "-fluence", "polarization_factor": "-polar",
    "hdivrange_mrad": "-hdivrange", "vdivrange_mrad": "-vdivrange", "hdivstep_mrad": "-hdivstep",
    "vdivstep_mrad": "-vdivstep", "dispersion_percent": "-dispersion", "water_size_um": "-water",
    "dmin_A": "-dmin", "N_cells": "-N", "misset_deg": "-misset", "phi_start_deg": "-phi",
    "osc_range_deg": "-osc", "phi_steps": "-phisteps", "mosaic_spread_deg": "-mosaic",
    "mosaic_domains": "-mosaic_domains", "default_F": "-default_F", "fudge": "-fudge",
    "adc_offset_adu": "-adc", "intfile_scale": "-scale", "sources": "-sourcefile",
    "spindle_axis": "-spindle_axis", "twotheta_axis": "-twotheta_axis", "polarization_axis": "-polar_vector",
}


def _library_message(error: Exception) -> str:
    """A library exception as one line, naming the command-line flag of a config field."""
    message = " ".join(str(error).split()) or type(error).__name__
    match = re.search(r"\b(?:Crystal|Detector|Beam|Noise)Config\.(\w+)", message)
    if match and match.group(1) in CONFIG_FIELD_FLAGS:
        message = f"{CONFIG_FIELD_FLAGS[match.group(1)]}: {message}"
    if isinstance(error, OSError) and error.filename and str(error.filename) not in message:
        message = f"{error.filename}: {message}"
    return message


def _check_writable(paths: Sequence[str]) -> None:
    """Fail before simulating if an output file could not be written."""
    for path in paths:
        folder = os.path.dirname(os.path.abspath(path))
        if os.path.isdir(path):
            raise UsageError(f"cannot write {path}: it is a directory")
        if not os.path.isdir(folder):
            raise UsageError(f"cannot write {path}: folder {folder} does not exist")
        if not os.access(folder, os.W_OK | os.X_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
            raise UsageError(f"cannot write {path}: permission denied")


def _output_paths(outputs: Outputs) -> List[str]:
    paths = [outputs.floatfile, outputs.intfile, outputs.pgmfile, outputs.noisefile, outputs.fdump]
    return [p for p in paths if p is not None]


def build_simulator(plan: Plan, device="cpu", dtype=None):
    """The library objects of a plan: the simulator and the structure factors it uses.

    Parameters
    ----------
    plan : Plan
    device : str or torch.device
    dtype : torch.dtype, optional
        Default float64 (parity with C).

    Returns
    -------
    simulator : Simulator
        Built with ``c_quirks=True``.
    structure : tuple (grid, metadata) or None
        The HKL table read from ``-hkl`` or the Fdump cache; None for a pure ``-default_F`` run.
    """
    import torch
    from .models.crystal import Crystal
    from .models.detector import Detector
    from .simulator import Simulator

    dtype = torch.float64 if dtype is None else dtype
    crystal = Crystal(plan.crystal, beam_config=plan.beam, device=device, dtype=dtype)
    structure = _read_structure_factors(plan)
    if structure is not None:
        crystal.hkl_data, crystal.hkl_metadata = structure
    detector = Detector(plan.detector, device=device, dtype=dtype)
    simulator = Simulator(crystal=crystal, detector=detector, beam_config=plan.beam, device=device,
                          dtype=dtype, c_quirks=True)
    return simulator, structure


def _read_structure_factors(plan: Plan):
    if plan.hklfile is None and plan.fdump_in is None:
        return None
    from .io import hkl
    if plan.hklfile is not None:
        try:
            return tuple(hkl.read_hkl_file(plan.hklfile, plan.crystal.default_F))
        except (ValueError, OSError) as error:
            raise UsageError(f"-hkl {_library_message(error)}") from None
    if plan.fdump_in is not None:
        try:
            return tuple(hkl.read_fdump(plan.fdump_in))
        except (ValueError, OSError) as error:
            raise UsageError(f"{plan.fdump_in}: not a readable Fdump cache ({_library_message(error)}); "
                             f"delete it or give -hkl") from None


class _ProgressBar:
    """A one-line progress meter on stderr, drawn only when stderr is a terminal."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.last = -1

    def __call__(self, done: int, total: int) -> None:
        percent = int(100 * done / max(total, 1))
        if percent != self.last:
            self.last = percent
            bar = "#" * (percent // 4)
            self.stream.write(f"\r{PROGRAM}: [{bar:<25}] {percent:3d}% of {total} pixels")
            if done >= total:
                self.stream.write("\n")
            self.stream.flush()


@dataclass
class Statistics:
    """nanoBragg's image statistics over rendered pixels (spec §10.2)."""

    max_I: float
    max_fast: int
    max_slow: int
    mean: float
    rms: float
    rmsd: float


def image_statistics(image: np.ndarray, detector: DetectorConfig) -> Statistics:
    """max, mean and rms over rendered (ROI, unmasked) pixels, rmsd over the ROI."""
    spixels, fpixels = image.shape
    fmin, fmax, smin, smax = detector.roi if detector.roi is not None else (0, fpixels - 1, 0, spixels - 1)
    in_roi = np.zeros(image.shape, dtype=bool)
    in_roi[max(smin, 0):smax + 1, max(fmin, 0):fmax + 1] = True
    rendered = in_roi if detector.mask is None else in_roi & (np.asarray(detector.mask) != 0)
    values = image.astype(np.float64)[rendered]
    count = max(values.size, 1)
    denominator = max(values.size - 1, 1)
    flat = int(np.argmax(np.where(rendered, image, -np.inf))) if values.size else 0
    roi_values = image.astype(np.float64)[in_roi]
    mean = float(values.sum() / count)
    return Statistics(
        max_I=float(values.max()) if values.size else 0.0, max_fast=flat % fpixels, max_slow=flat // fpixels,
        mean=mean, rms=math.sqrt(float((values ** 2).sum()) / denominator),
        rmsd=math.sqrt(float(((roi_values - mean) ** 2).sum()) / max(roi_values.size - 1, 1)))


def smv_header(plan: Plan, geometry, fpixels: int, spixels: int) -> Dict[str, str]:
    """The SMV header nanoBragg writes (spec §10.5), values formatted as C's ``%g``."""
    pixel = plan.detector.pixel_size_mm
    fbeam = float(geometry.Fbeam_m) * 1000
    sbeam = float(geometry.Sbeam_m) * 1000
    dials = [float(v) for v in geometry.dials_origin_mm]
    h = plan.header
    return {
        "HEADER_BYTES": "512", "DIM": "2", "BYTE_ORDER": "little_endian" if sys.byteorder == "little"
        else "big_endian", "TYPE": "unsigned_short", "SIZE1": f"{fpixels}", "SIZE2": f"{spixels}",
        "PIXEL_SIZE": f"{pixel:g}", "DISTANCE": f"{float(geometry.distance_m) * 1000:g}",
        "WAVELENGTH": f"{float(plan.beam.wavelength_A):g}",
        "BEAM_CENTER_X": f"{h['Xbeam_mm']:g}", "BEAM_CENTER_Y": f"{h['Ybeam_mm']:g}",
        "ADXV_CENTER_X": f"{fbeam:g}", "ADXV_CENTER_Y": f"{spixels * pixel - sbeam:g}",
        "MOSFLM_CENTER_X": f"{sbeam - 0.5 * pixel:g}", "MOSFLM_CENTER_Y": f"{fbeam - 0.5 * pixel:g}",
        "DENZO_X_BEAM": f"{sbeam:g}", "DENZO_Y_BEAM": f"{fbeam:g}",
        "DIALS_ORIGIN": ",".join(f"{v:g}" for v in dials),
        "XDS_ORGX": f"{float(geometry.orgx_px):g}", "XDS_ORGY": f"{float(geometry.orgy_px):g}",
        "CLOSE_DISTANCE": f"{float(geometry.close_distance_m) * 1000:g}",
        "PHI": f"{h['phi0_deg']:g}", "OSC_START": f"{h['phi0_deg']:g}", "OSC_RANGE": f"{h['osc_deg']:g}",
        "TWOTHETA": f"{h['twotheta_deg']:g}", "DETECTOR_SN": "000", "BEAMLINE": "fake",
    }


def pgm_scale(requested: float, statistics: Statistics, int_scale: float) -> float:
    """PGM scale: ``-pgmscale`` if > 0, else 250/(5·rmsd), else the integer-image scale (spec §10.8)."""
    if requested > 0:
        return requested
    if statistics.rmsd > 0:
        return 250.0 / (5.0 * statistics.rmsd)
    return int_scale


def _cell_parameters(vectors) -> Tuple[float, ...]:
    a, b, c = (np.asarray(v, dtype=float) for v in vectors)

    def angle(u, v):
        return math.degrees(math.acos(max(-1.0, min(1.0, float(u @ v) / (np.linalg.norm(u) * np.linalg.norm(v))))))

    return (np.linalg.norm(a), np.linalg.norm(b), np.linalg.norm(c), angle(b, c), angle(c, a), angle(a, b))


def _print_setup(plan: Plan, simulator, out) -> None:
    """The set-up summary, in the words and formats of nanoBragg C's stdout."""
    import torch
    geometry = simulator.detector.geometry
    det, cry = plan.detector, plan.crystal
    with torch.no_grad():
        real = [v.detach().cpu().numpy() for v in simulator.crystal.real_space_vectors_A()]
        recip = [v.detach().cpu().numpy() for v in simulator.crystal.reciprocal_vectors_per_A()]
    print(f"nanoBragg nanocrystal diffraction simulator - nanobrag-torch {PROGRAM} command", file=out)
    print(f"{det.detector_convention.value} convention selected.", file=out)
    print("pivoting detector around " + ("direct beam spot" if geometry.pivot is DetectorPivot.BEAM
                                         else "sample"), file=out)
    print("Unit Cell: " + " ".join(f"{v:g}" for v in _cell_parameters(real)), file=out)
    print("Recp Cell: " + " ".join(f"{v:g}" for v in _cell_parameters(recip)), file=out)
    print(f"volume = {float(np.dot(real[0], np.cross(real[1], real[2]))):g} A^3", file=out)
    for title, names, vectors in (("real-space cell vectors (Angstrom):", "     a           b           c",
                                   real),
                                  ("reciprocal-space cell vectors (Angstrom^-1):",
                                   "     a_star      b_star      c_star", recip)):
        print(title, file=out)
        print(names, file=out)
        fmt = "{:11.8f}" if "star" in names else "{:.8f}"
        for axis, label in enumerate("XYZ"):
            print(f"{label}: " + " ".join(fmt.format(float(v[axis])) for v in vectors), file=out)
    size = [float(np.linalg.norm(v)) * n * 1e-4 for v, n in zip(real, cry.N_cells)]
    print(f"crystal is {size[0]:g} x {size[1]:g} x {size[2]:g} microns", file=out)
    print(f"  created a total of {simulator.n_sources} sources", file=out)
    print(f"  created a total of {cry.mosaic_domains} mosaic domains", file=out)
    print(f"  {cry.shape.value} xtal: {cry.N_cells[0]}x{cry.N_cells[1]}x{cry.N_cells[2]} cells", file=out)
    print(f"  Kahn polarization factor: {float(plan.beam.polarization_factor):f}"
          + (" (polarization correction off)" if plan.beam.nopolar else ""), file=out)
    print(f"  incident fluence: {float(plan.beam.fluence):g} photons/m^2", file=out)
    print(f"  distance={float(geometry.distance_m):g} detsize={det.fpixels * det.pixel_size_mm / 1000:g}x"
          f"{det.spixels * det.pixel_size_mm / 1000:g}  pixel={det.pixel_size_mm / 1000:g} meters "
          f"({det.fpixels}x{det.spixels} pixels)", file=out)
    print(f"  Fbeam={float(geometry.Fbeam_m):g} Sbeam={float(geometry.Sbeam_m):g}", file=out)
    print(f"  Fclose={float(geometry.Fclose_m):g} Sclose={float(geometry.Sclose_m):g}", file=out)
    for label, vector in (("DIRECTION_OF_DETECTOR_X-AXIS", geometry.fdet), ("DIRECTION_OF_DETECTOR_Y-AXIS",
                                                                              geometry.sdet),
                          ("DIRECTION_OF_DETECTOR_Z-AXIS", geometry.odet), ("INCIDENT_BEAM_DIRECTION",
                                                                            geometry.beam)):
        print(f"  {label}= " + " ".join(f"{float(v):g}" for v in vector), file=out)
    print("  dials origin= " + " ".join(f"{float(v):g}" for v in geometry.dials_origin_mm), file=out)
    fmin, fmax, smin, smax = det.roi if det.roi is not None else (0, det.fpixels, 0, det.spixels)
    print(f"  roi: {fmin} < x < {fmax} && {smin} < y < {smax}", file=out)
    print(f"  {simulator.n_sources} sources", file=out)
    print(f"  {cry.mosaic_domains} mosaic domains over mosaic spread of {float(cry.mosaic_spread_deg):g} degrees",
          file=out)
    phi_end = float(cry.phi_start_deg) + plan.header["osc_deg"]
    print(f"  {cry.phi_steps} phi steps from {float(cry.phi_start_deg):g} to {phi_end:g} degrees", file=out)
    print(f"  {simulator.oversample}x{simulator.oversample} pixel oversample steps", file=out)
    if plan.outputs.noisefile is not None:
        print(f"  noise image seed: {-plan.noise.seed}", file=out)


def _write_bytes(path: str, payload: bytes) -> None:
    from .io.atomic import atomic_write
    with atomic_write(path, "wb") as handle:
        handle.write(payload)


def _write_outputs(plan: Plan, simulator, floats: np.ndarray, out) -> None:
    """Float, integer, PGM and noise images, in C's order and words (spec §10)."""
    from .io.pgm import write_pgm
    from .io.smv import write_smv
    from .noise import int_image, intfile_scale, noise_image

    det = plan.detector
    print(f"writing {plan.outputs.floatfile} as {floats.size} 4-byte floats", file=out)
    _write_bytes(plan.outputs.floatfile, np.ascontiguousarray(floats, dtype=np.float32).tobytes())
    stats = image_statistics(floats, det)
    n = simulator.oversample
    pixel_m = det.pixel_size_mm / 1000.0
    fdet = pixel_m / n * (stats.max_fast * n + n - 1) + pixel_m / n / 2
    sdet = pixel_m / n * (stats.max_slow * n + n - 1) + pixel_m / n / 2
    print(f"max_I = {stats.max_I:g}  at {fdet:g} {sdet:g}", file=out)
    print(f"mean= {stats.mean:g} rms= {stats.rms:g} rmsd= {stats.rmsd:g}", file=out)
    scale = intfile_scale(stats.max_I, plan.noise.intfile_scale)
    print(f"intfile_scale = {scale:g}", file=out)
    header = smv_header(plan, simulator.detector.geometry, det.fpixels, det.spixels)
    print(f"writing {plan.outputs.intfile} as 2-byte integers", file=out)
    write_smv(plan.outputs.intfile, int_image(floats, scale, plan.noise.adc_offset_adu, det.roi), header)
    if plan.outputs.pgmfile is not None:
        scale_pgm = pgm_scale(plan.pgm_scale, stats, scale)
        print(f"writing {plan.outputs.pgmfile} as 1-byte pixels, scaled by {scale_pgm:g}", file=out)
        write_pgm(plan.outputs.pgmfile, floats, scale_pgm)
    if plan.outputs.noisefile is not None:
        noisy, photons, overloads = noise_image(floats, plan.noise.seed, plan.noise.adc_offset_adu, det.roi)
        print(f"{photons:.0f} photons on noise image ({overloads} overloads)", file=out)
        print(f"writing {plan.outputs.noisefile} as 2-byte integers", file=out)
        write_smv(plan.outputs.noisefile, noisy, header)


def run(plan: Plan, out=None, err=None) -> int:
    """Simulate a plan and write its files; returns the exit status (0).

    Parameters
    ----------
    plan : Plan
    out, err : text streams, optional
        Summary and warnings/progress streams (default stdout and stderr).
    """
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    for line in plan.warnings:
        print(f"{PROGRAM}: warning: {line}", file=err)
    _check_writable(_output_paths(plan.outputs))
    simulator, structure = build_simulator(plan)
    if plan.outputs.fdump is not None:
        from .io.hkl import write_fdump
        print(f"writing dump file for next time: {plan.outputs.fdump}", file=out)
        write_fdump(plan.outputs.fdump, *structure)
    _print_setup(plan, simulator, out)
    progress = _ProgressBar(err) if plan.progress and err.isatty() else None
    import torch
    with torch.no_grad():
        image = simulator.run(progress=progress)
    floats = image.detach().cpu().numpy().astype(np.float32)
    _write_outputs(plan, simulator, floats, out)
    return 0


def _usage() -> str:
    names = sorted({o.key for o in OPTIONS})
    return (f"usage: {PROGRAM} -mat auto.mat -hkl Fs.hkl [options]  (or -cell a b c al be ga -default_F F)\n"
            f"options (as nanoBragg C; see the documentation): {' '.join(names)}\n")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``nanobragg`` / ``python -m nanobrag_torch``; returns the exit status.

    Every error is one line ``nanobragg: error: <what>`` on stderr and status 2, with no
    traceback and no output file written.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "-help", "--help") for a in argv):
        sys.stdout.write(_usage())
        return 0
    try:
        return run(parse_args(argv))
    except UsageError as error:
        message = str(error)
    except (ValueError, OSError, RuntimeError) as error:
        message = _library_message(error)
    except KeyboardInterrupt:
        print(f"\n{PROGRAM}: interrupted", file=sys.stderr)
        return 130
    print(f"{PROGRAM}: error: {message}", file=sys.stderr)
    return ERROR_EXIT
