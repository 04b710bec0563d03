"""nanoBragg C's options: the command's flag table (:data:`OPTIONS`), C-style number parsing, the
raw option state, the scan of the argument list that fills it, and the table of which flag sets
which library config field (:data:`CONFIG_FIELD_FLAGS`, for error messages).

Options are matched as C matches them: an argument selects every option whose text it
*contains*, in the table's order, with C's exact and length-checked exceptions.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..config import BeamConfig, ConfigError, CrystalShape, DetectorConvention, DetectorPivot


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
_INTEGER = re.compile(r"[+-]?\d+")
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


def looks_like_option(text: str) -> bool:
    """Whether a command-line word is an option (``-x``), not a value (``-5``, ``-.5e3``).

    Parameters
    ----------
    text : str
        A word of the command line.

    Returns
    -------
    bool
        True when it starts with ``-``, is longer than that, and is not a number.
    """
    return text.startswith("-") and len(text) > 1 and not _is_number(text)


class DetectorAbsorption(Enum):
    """What ``-detector_abs`` set, if anything."""

    NOT_GIVEN = "not given"
    """The attenuation depth is the sensor thickness."""
    DEPTH = "depth"
    """An attenuation depth in µm (``RawArgs.detector_abs_um``)."""
    NOTHING = "0 or inf"
    """``-detector_abs 0`` or ``inf``: nanoBragg C then absorbs nothing in a thick sensor."""


# --------------------------------------------------------------------------- raw C state
@dataclass
class RawArgs:
    """nanoBragg C's option variables after parsing, in C's units and with C's "unset" markers.

    ``None`` means "not given" (C's NaN, 0 or −1 defaults). Lengths are in mm, angles in degrees.
    ``origins`` records, for each field set from the command line or an ``-img``/``-mask``
    header, where its value came from (``"-detpixels_x 0"``, ``"-img a.img header
    PIXEL_SIZE=0"``), so that an error about the value can name it as it was given. Each
    attribute is named by the options that set it.

    Attributes
    ----------
    Na, Nb, Nc : int
        Unit cells along a, b and c (``-Na``, ``-Nb``, ``-Nc``, ``-N``).
    cell : list of 6 floats or None
        ``-cell``: a, b, c (Å) and alpha, beta, gamma (degrees), missing values filled as C does.
    misset : tuple of 3 floats or None
        ``-misset`` rotations about x, y and z, in degrees.
    misset_random : bool
        ``-misset random``: a random orientation (from ``misset_seed``).
    sample_mm : list of 3 floats
        Crystal size along x, y and z (``-samplesize``, ``-xtal_thick``, ``-xtal_width``, ...).
    Xbeam, Ybeam : float or None
        ``-Xbeam``, ``-Ybeam``: the beam centre, in mm (beam pivot).
    Xclose, Yclose : float or None
        ``-Xclose``, ``-Yclose``: the point of the detector closest to the sample, in mm
        (sample pivot).
    ORGX, ORGY : float or None
        ``-ORGX``, ``-ORGY``: XDS's origin, in pixels (sample pivot).
    pivot : DetectorPivot
        ``-pivot``, or the pivot that the last beam-centre or distance option implies.
    convention : DetectorConvention
        ``-mosflm``, ``-xds``, ``-adxv``, ``-denzo``, ``-dials``; CUSTOM after a vector option.
    vectors : dict of str to tuple of 3 floats
        The vectors given (``fdet``, ``sdet``, ``odet``, ``beam``, ``polar``, ``spindle``,
        ``twotheta_axis``), by the name of their option.
    pix0_given : bool
        ``-pix0_vector`` was given (its values are ignored, as in C: it only selects CUSTOM).
    distance : float
        ``-distance``, in mm (beam pivot).
    close_distance : float or None
        ``-close_distance``, in mm (sample pivot).
    detector_absorption : DetectorAbsorption
        What ``-detector_abs`` set, if anything.
    detector_abs_um : float or None
        ``-detector_abs``: the attenuation depth, in µm.
    detector_thick_um : float
        ``-detector_thick``: the sensor thickness, in µm.
    detector_thicksteps : int or None
        ``-detector_thicksteps``: sensor layers.
    twotheta : float
        ``-twotheta``: the detector's two-theta angle, in degrees.
    rot : list of 3 floats
        ``-detector_rotx``, ``-detector_roty``, ``-detector_rotz``, in degrees.
    detsize_f, detsize_s : float
        ``-detsize``, ``-detsize_f``, ``-detsize_s``: the detector's size, in mm.
    fpixels, spixels : int or None
        ``-detpixels``, ``-detpixels_f``, ``-detpixels_s``: pixels along fast and slow.
    curved : bool
        ``-curved_det``.
    pixel : float
        ``-pixel``: the pixel size, in mm.
    point_pixel : bool
        ``-point_pixel``.
    polar : float
        ``-polar``: the Kahn polarization factor.
    nopolar : bool
        ``-nopolar``.
    oversample : int or None
        ``-oversample``: sub-pixels per pixel edge.
    oversample_thick, oversample_polar, oversample_omega : bool
        ``-oversample_thick``, ``-oversample_polar``, ``-oversample_omega``.
    roi : list of 4 ints or None
        ``-roi``: fmin, fmax, smin, smax.
    wavelength_A : float
        ``-lambda`` (or ``-energy``, converted), in Å.
    fluence : float
        ``-fluence``, in photons per m².
    flux : float
        ``-flux``, in photons per second (0: not given).
    exposure : float
        ``-exposure``, in s.
    beamsize_mm : float
        ``-beamsize``, in mm.
    mosaic_spread : float or None
        ``-mosaic``, in degrees.
    mosaic_domains : int or None
        ``-mosaic_domains``.
    dispersion : float
        ``-dispersion``, in percent.
    dispsteps : int or None
        ``-dispsteps``: wavelengths.
    hdivrange, vdivrange : float or None
        ``-hdivrange``, ``-vdivrange`` (``-divergence``): the divergence ranges, in mrad.
    hdivstep, vdivstep : float or None
        ``-hdivstep``, ``-vdivstep``, in mrad.
    hdivsteps, vdivsteps : int or None
        ``-hdivsteps``, ``-vdivsteps`` (``-divsteps``).
    round_div : bool
        ``-round_div`` (True) or ``-square_div`` (False).
    adc : float
        ``-adc``: the offset of the integer images, in ADU.
    phi0 : float
        ``-phi``: the start of the rotation, in degrees.
    osc : float or None
        ``-osc``: the oscillation range, in degrees.
    phistep : float or None
        ``-phistep``, in degrees.
    phisteps : int or None
        ``-phisteps``.
    dmin : float
        ``-dmin``: the resolution limit, in Å (0: none).
    matfile, hklfile : str or None
        ``-mat``, ``-hkl``: the orientation matrix and the text HKL file.
    default_F : float
        ``-default_F``: the structure factor of reflections without one.
    dumpfile : str
        ``-dump``: the Fdump cache.
    imgfile, maskfile : str or None
        ``-img``, ``-mask``: SMV files whose headers give defaults (size, pixel, distance,
        wavelength, beam centre, phi); the mask's pixels are read too.
    sourcefile : str or None
        ``-sourcefile``.
    floatfile, intfile, pgmfile, noisefile : str
        ``-floatfile``, ``-intfile``, ``-pgmfile``, ``-noisefile``: the output files' names.
    cbffile : str or None
        ``-cbffile``: the integer image as a miniCBF file too (None: not written).
    write_pgm, calculate_noise : bool
        Whether the PGM preview and the noise image are written (``-nopgm``, ``-nonoise``).
    intfile_scale : float or None
        ``-scale``: of the integer image (None: automatic).
    pgm_scale : float or None
        ``-pgmscale`` (None: automatic).
    progress : bool or None
        ``-progress`` (True), ``-noprogress`` (False), or neither (None).
    interpolate : bool or None
        ``-interpolate`` (True), ``-nointerpolate`` (False), or neither (None: C's automatic
        choice).
    shape : CrystalShape
        ``-round_xtal``, ``-square_xtal``, ``-gauss_xtal``, ``-tophat_spots``.
    fudge : float
        ``-fudge``.
    seed, mosaic_seed, misset_seed : int or None
        ``-seed``, ``-mosaic_seed``, ``-misset_seed``.
    water_um : float
        ``-water``: the water thickness, in µm.
    ignored : list of str
        A warning for each option that is read and ignored.
    origins : dict of str to str
        Field name to the option or header entry that set it, as given.
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
    detector_absorption: DetectorAbsorption = DetectorAbsorption.NOT_GIVEN
    detector_abs_um: Optional[float] = None
    detector_thick_um: float = 0.0
    detector_thicksteps: Optional[int] = None
    twotheta: float = 0.0
    rot: List[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    detsize_f: float = 102.4
    detsize_s: float = 102.4
    fpixels: Optional[int] = None
    spixels: Optional[int] = None
    curved: bool = False
    pixel: float = 0.1
    point_pixel: bool = False
    polar: float = 0.0
    nopolar: bool = False
    oversample: Optional[int] = None
    oversample_thick: bool = False
    oversample_polar: bool = False
    oversample_omega: bool = False
    roi: Optional[List[int]] = None
    wavelength_A: float = 1.0
    fluence: float = DEFAULT_FLUENCE
    flux: float = 0.0
    exposure: float = 1.0
    beamsize_mm: float = 0.1
    mosaic_spread: Optional[float] = None
    mosaic_domains: Optional[int] = None
    dispersion: float = 0.0
    dispsteps: Optional[int] = None
    hdivrange: Optional[float] = None
    vdivrange: Optional[float] = None
    hdivstep: Optional[float] = None
    vdivstep: Optional[float] = None
    hdivsteps: Optional[int] = None
    vdivsteps: Optional[int] = None
    round_div: bool = True
    adc: float = 40.0
    phi0: float = 0.0
    osc: Optional[float] = None
    phistep: Optional[float] = None
    phisteps: Optional[int] = None
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
    cbffile: Optional[str] = None
    write_pgm: bool = True
    calculate_noise: bool = True
    intfile_scale: Optional[float] = None
    pgm_scale: Optional[float] = None
    progress: Optional[bool] = None
    interpolate: Optional[bool] = None
    shape: CrystalShape = CrystalShape.SQUARE
    fudge: float = 1.0
    seed: Optional[int] = None
    mosaic_seed: Optional[int] = None
    misset_seed: Optional[int] = None
    water_um: float = 0.0
    ignored: List[str] = field(default_factory=list)
    origins: Dict[str, str] = field(default_factory=dict)


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
        ``"float"``, ``"int"``, ``"str"`` (a file name), ``"word"``, ``"cell"`` (1 to 6 numbers),
        ``"misset"`` (3 numbers or ``random``), ``"number_or_inf"`` (a number, or a word
        containing ``inf``) or ``"flag"``.
    apply : callable
        ``apply(raw, values)`` sets the C variables; may return :data:`STOP`.
    """

    key: str
    patterns: Tuple[Tuple[str, object], ...]
    nargs: int
    kind: str
    apply: Callable[[RawArgs, list], Optional[str]]

    def matches(self, arg: str) -> bool:
        """Whether C's parser triggers this option on ``arg`` (by any of its ``patterns``).

        Parameters
        ----------
        arg : str
            A word of the command line.

        Returns
        -------
        bool
            True when a pattern matches by its rule (``strstr``, ``strcmp`` or ``strstr`` and a
            length).
        """
        for text, rule in self.patterns:
            if rule == "exact":
                if arg == text:
                    return True
            elif text in arg and (rule == "sub" or len(arg) == rule):
                return True
        return False

    def exactly(self, arg: str) -> bool:
        """Whether ``arg`` is exactly one of the option's spellings (not a longer word).

        Parameters
        ----------
        arg : str
            A word of the command line.

        Returns
        -------
        bool
            True when ``arg`` equals the text of one of ``patterns``.
        """
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
    depth = values[0]
    if isinstance(depth, str):  # the word C reads as "absorb nothing", or a value read leniently
        depth = 0.0 if "inf" in depth else _c_atof(depth)
    if depth == 0.0:
        raw.detector_thick_um = 0.0
        raw.detector_abs_um = None
        raw.detector_absorption = DetectorAbsorption.NOTHING
    else:
        raw.detector_abs_um = depth
        raw.detector_absorption = DetectorAbsorption.DEPTH


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


def _apply_energy(raw, values):
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
    _opt("-detector_abs", 1, "number_or_inf", _apply_detector_abs),
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
    _opt("-lambda", 1, "float", _set("wavelength_A"), "-wave"),
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
    _opt("-cbffile", 1, "str", _set("cbffile")),
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
    if option.kind == "number_or_inf":
        return [texts[0] if "inf" in texts[0] else _strict_float(arg, texts[0])]
    if option.kind in ("str", "word"):
        if texts[0].startswith("-"):
            raise UsageError(f"{arg} needs a {'file name' if option.kind == 'str' else 'value'}, "
                             f"got the option '{texts[0]}'")
        return texts
    if option.kind == "int":
        return [_strict_int(arg, t, warnings) for t in texts]
    return [_strict_float(arg, t) for t in texts]


def _strict_float(flag: str, text: str) -> float:
    """A decimal number, finite (``nan``, ``inf`` and overflowing numbers such as ``1e999`` are
    refused: C's ``atof`` would pass them on into the image)."""
    try:
        value: Optional[float] = float(text)
    except ValueError:
        value = None
    if value is not None and not math.isfinite(value):
        raise UsageError(f"{flag} {text} is not a finite number")
    if value is None or not _is_number(text):
        raise UsageError(f"{flag} needs a number, got '{text}'")
    return value


def _strict_int(flag: str, text: str, warnings: List[str]) -> int:
    value = _strict_float(flag, text)
    integer = _c_atoi(text)
    if not _INTEGER.fullmatch(text) and integer != value:
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
    if option.kind in ("str", "word", "number_or_inf"):
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
        if not looks_like_option(arg):
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
                outcome = _apply_recording_origins(option, raw, values, " ".join(argv[i:i + 1 + len(values)]))
            else:
                secondary = _lenient_values(option, argv, i)
                if secondary is None:
                    continue
                typed = " ".join(argv[i:i + 1 + len(secondary)])
                outcome = _apply_recording_origins(option, raw, secondary,
                                                   f"{typed} (read as {option.key} by substring)")
                if option.key not in _SILENT_SECONDARY:
                    shown = " ".join(str(v) for v in secondary)
                    warnings.append(f"{arg} also acts as {option.key}{' ' + shown if shown else ''} "
                                    f"(nanoBragg C matches options by substring); reproduced")
            if outcome == STOP:
                break
    return raw, warnings


def _apply_recording_origins(option: Option, raw: RawArgs, values: list, origin: str) -> Optional[str]:
    """Apply an option and record ``origin`` in ``raw.origins`` for every field it changed."""
    before = {name: copy.copy(value) for name, value in vars(raw).items() if name not in ("ignored", "origins")}
    outcome = option.apply(raw, values)
    for name, value in before.items():
        if getattr(raw, name) != value:
            raw.origins[name] = origin
    return outcome


# --------------------------------------------------------------------------- library errors
CONFIG_FIELD_FLAGS: Dict[str, str] = {
    "cell_a": "-cell", "cell_b": "-cell", "cell_c": "-cell", "cell_alpha": "-cell", "cell_beta": "-cell",
    "cell_gamma": "-cell",
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
    "adc_offset_adu": "-adc", "intfile_scale": "-scale", "seed": "-seed", "mosaic_seed": "-mosaic_seed", "sources": "-sourcefile",
    "spindle_axis": "-spindle_axis", "twotheta_axis": "-twotheta_axis", "polarization_axis": "-polar_vector",
}
"""The flag that sets each library config field, to name it in an error about the field."""


def library_message(error: Exception) -> str:
    """A library exception as one line; a :class:`~nanobrag_torch.config.ConfigError` is prefixed
    with the flag of its field, an :class:`OSError` with its file.

    Parameters
    ----------
    error : Exception
        Raised by the library while the command planned or ran.

    Returns
    -------
    str
        The message on one line (whitespace collapsed; the exception's type when it has none).
    """
    message = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, ConfigError) and error.field in CONFIG_FIELD_FLAGS:
        message = f"{CONFIG_FIELD_FLAGS[error.field]}: {message}"
    if isinstance(error, OSError) and error.filename and str(error.filename) not in message:
        message = f"{error.filename}: {message}"
    return message
