"""From scanned options to a plan: nanoBragg C's automatic choices (phi steps, mosaic domains,
sensor layers, crystal size), the beam centre and pivot of its flags, the input quirks, and the
library configurations."""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..config import (Bound, BeamConfig, CrystalConfig, DetectorConfig, DetectorConvention, FieldRule, NoiseConfig,
                      field_rule)
from ..conventions import CONVENTIONS, c_header_beam_center, command_line_pivot, default_beam_center_mm
from ..io.mosflm import read_mosflm_matrix, reciprocal_to_real_cell
from ..io.smv import read_smv, read_smv_header
from ..io.sourcefile import read_sourcefile
from ..rng import random_misset_deg
from .options import DetectorAbsorption, RawArgs, UsageError, looks_like_option, scan_arguments


# --------------------------------------------------------------------------- the plan
@dataclass
class Outputs:
    """Files the command writes (None: not written).

    Attributes
    ----------
    floatfile : str
        The float image (``-floatfile``; default ``floatimage.bin``).
    intfile : str
        The SMV integer image (``-intfile``; default ``intimage.img``).
    pgmfile : str or None
        The PGM preview (``-pgmfile``; default ``image.pgm``; None after ``-nopgm``).
    noisefile : str or None
        The SMV image with Poisson noise (``-noisefile``; default ``noiseimage.img``; None after
        ``-nonoise``).
    fdump : str or None
        The Fdump cache written after reading a text HKL file (``-dump``; default
        ``Fdump.bin``); None when none is written.
    cbffile : str or None
        The integer image as a miniCBF file (``-cbffile``); None when not asked for.
    """

    floatfile: str
    intfile: str
    pgmfile: Optional[str]
    noisefile: Optional[str]
    fdump: Optional[str]
    cbffile: Optional[str] = None


@dataclass
class Plan:
    """Everything a run needs, resolved from the command line (see ``parse_args``).

    Attributes
    ----------
    crystal, detector, beam, noise : configs
        Library configs, with nanoBragg's automatic choices already made.
    hklfile : str or None
        Text HKL file to read (then cached as ``outputs.fdump``).
    fdump_in : str or None
        Fdump cache to read when no ``-hkl`` is given and the cache exists.
    outputs : Outputs
        Files the command writes.
    pgm_scale : float or None
        ``-pgmscale`` (None: automatic).
    header : dict
        C values that only reach the SMV header and the summary (Xbeam, Ybeam, phi0, osc, ...).
    progress : bool or None
        True after ``-progress``, False after ``-noprogress``, None (neither): a progress bar
        only when stderr is a terminal.
    warnings : list of str
        Lines for stderr (C quirks reproduced, ignored options).
    inputs : list of (str, str)
        ``(flag, path)`` of every input file the command line names (``-mat``, ``-hkl``,
        ``-sourcefile``, ``-img``, ``-mask`` and the Fdump cache read), which no output may
        overwrite.
    """

    crystal: CrystalConfig
    detector: DetectorConfig
    beam: BeamConfig
    noise: NoiseConfig
    hklfile: Optional[str]
    fdump_in: Optional[str]
    outputs: Outputs
    pgm_scale: Optional[float]
    header: Dict[str, float]
    progress: Optional[bool]
    warnings: List[str]
    inputs: List[Tuple[str, str]]


def _require_file(flag: str, path: str) -> None:
    if not os.path.isfile(path):
        raise UsageError(f"{flag} {path}: no such file")
    if not os.access(path, os.R_OK):
        raise UsageError(f"{flag} {path}: file is not readable")


def _header_defaults(raw: RawArgs, argv: Sequence[str]) -> Tuple[RawArgs, Optional[np.ndarray]]:
    """Defaults from ``-mask`` and ``-img`` SMV headers (size, pixel, distance, wavelength, beam
    centre, phi), read before the options as C does. Only the mask's pixels are read: ``-img``
    takes just the header, as C does."""
    mask = None
    files = {}
    for i, arg in enumerate(argv[:-1]):
        for flag in ("-img", "-mask"):
            if looks_like_option(arg) and flag in arg:
                files[flag] = argv[i + 1]
    for flag in ("-mask", "-img"):
        if flag not in files:
            continue
        path = files[flag]
        _require_file(flag, path)
        try:
            if flag == "-mask":
                mask, header = read_smv(path)
            else:
                header = read_smv_header(path)
        except (ValueError, OSError) as error:
            raise UsageError(f"{flag} {path}: not a readable SMV image ({error})") from None
        _apply_smv_header(raw, header, f"{flag} {path}", flip_y=(flag == "-mask"))
    return raw, mask


_SMV_HEADER_FIELDS = (("SIZE1", "fpixels"), ("SIZE2", "spixels"), ("PIXEL_SIZE", "pixel"), ("DISTANCE", "distance"),
                      ("CLOSE_DISTANCE", "close_distance"), ("WAVELENGTH", "wavelength_A"), ("BEAM_CENTER_X", "Xbeam"),
                      ("BEAM_CENTER_Y", "Ybeam"), ("ORGX", "ORGX"), ("ORGY", "ORGY"), ("PHI", "phi0"),
                      ("OSC_RANGE", "osc"))
"""The SMV header keys that nanoBragg C reads from ``-img`` and ``-mask``, and the option each sets."""


def _apply_smv_header(raw: RawArgs, header: Dict[str, str], source: str, flip_y: bool) -> None:
    """Set the options of an SMV header, recording ``source`` (``"-img a.img"``) as their origin.

    A key that is absent is skipped; a value that is not a finite number is an error (C would
    read a word as 0, and pass NaN or inf on). ``-mask`` headers count BEAM_CENTER_Y from the
    other edge (C's quirk)."""
    values = {}
    for key, name in _SMV_HEADER_FIELDS:
        if key not in header:
            continue
        try:
            value = float(header[key])
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise UsageError(f"{source}: header {key}={header[key]} is not a finite number")
        values[name] = (int(value) if name in ("fpixels", "spixels") else value, f"{source} header {key}={header[key]}")
    for name, (value, origin) in values.items():
        setattr(raw, name, value)
        raw.origins[name] = origin
    raw.detsize_f = raw.pixel * raw.fpixels
    raw.detsize_s = raw.pixel * raw.spixels
    if "Ybeam" in values and flip_y:
        raw.Ybeam = raw.detsize_s - raw.Ybeam


# --------------------------------------------------------------------------- physical bounds
@dataclass(frozen=True)
class PhysicalBound:
    """The physical range of one numeric option.

    Attributes
    ----------
    field : str
        The :class:`RawArgs` attribute (each element of it, for a list); None there means not
        given, and is not checked.
    what : str
        What the value is, for the message (``"the pixel size"``).
    rule : FieldRule
        Its unit and bounds: the rule of the library config field the option sets (see
        :func:`_config_bound`), or the option's own where it sets none.
    c_instead : callable (raw, value) -> str or None, optional
        What nanoBragg C silently does with such a value instead of stopping (``"use 1 cell"``),
        or None where C runs on with it.
    """

    field: str
    what: str
    rule: FieldRule
    c_instead: Optional[Callable[[RawArgs, float], Optional[str]]] = None

    def problem(self, raw: RawArgs) -> Optional[str]:
        """The error message for the value of ``raw``, or None if it is within bounds.

        Parameters
        ----------
        raw : RawArgs
            The parsed option variables; the field ``field`` of it is checked.

        Returns
        -------
        str or None
            ``"<option as given> is not physical: <what> must be <bounds>"`` (with what C would
            do instead, where known) for the first element out of bounds, or None.
        """
        value = getattr(raw, self.field)
        for element in (value if isinstance(value, list) else [value]):
            if element is None or (math.isfinite(element) and self.rule.admits(element)):
                continue
            origin = raw.origins.get(self.field, f"{self.field} {element:g}")
            unit = f" {self.rule.unit}" if self.rule.unit else ""
            bound = f"{'' if math.isfinite(element) else 'finite and '}{self.rule.bounds_text()}{unit}"
            instead = self.c_instead(raw, element) if self.c_instead is not None else None
            return (f"{origin} is not physical: {self.what} must be {bound}"
                    + (f" (nanoBragg C would silently {instead})" if instead else ""))
        return None


def _config_bound(option: str, what: str, config_class: type, name: str,
                  c_instead: Optional[Callable[[RawArgs, float], Optional[str]]] = None) -> PhysicalBound:
    """The bound of an option that sets the config field ``config_class.name``: the field's rule."""
    return PhysicalBound(option, what, field_rule(config_class, name), c_instead)


def _own_bound(option: str, what: str, unit: str, minimum: float, inclusive: bool,
               c_instead: Optional[Callable[[RawArgs, float], Optional[str]]] = None) -> PhysicalBound:
    """The bound of an option that sets no config field of its own: ``> minimum`` (``>=`` when
    ``inclusive``), in ``unit``."""
    return PhysicalBound(option, what, FieldRule(unit, lower=Bound(minimum, inclusive)), c_instead)


def _c_pixels_instead(size_field: str) -> Callable[[RawArgs, float], str]:
    def instead(raw: RawArgs, value: float) -> str:
        if value < 0:
            return "render no pixel"
        size = getattr(raw, size_field)
        return f"take the size from -detsize, {size:g} mm: {_c_pixel_count(size, raw.pixel)} pixels"
    return instead


def _c_phisteps_instead(raw: RawArgs, value: float) -> str:
    if value == 0:
        return "use 1 step"
    steps = _resolve_phi(dataclasses.replace(raw, phisteps=None))[0]
    return f"choose {steps} step{'s' if steps > 1 else ''} itself, as without -phisteps"


def _c_domains_instead(raw: RawArgs, value: float) -> str:
    domains = _resolve_mosaic(dataclasses.replace(raw, mosaic_domains=None), [])[0]
    return f"use {domains} domain{'s' if domains > 1 else ''}, as without -mosaic_domains"


def _ignored(consequence: str) -> Callable[[RawArgs, float], str]:
    return lambda raw, value: f"ignore it: {consequence}"


_AUTOMATIC = _ignored("it chooses the value itself, as if it were not given")

def _below_lower(instead: Callable[[RawArgs, float], Optional[str]],
                 lower: float) -> Callable[[RawArgs, float], Optional[str]]:
    """``instead`` for values below ``lower``; for those above the upper bound C runs on with them."""
    return lambda raw, value: instead(raw, value) if value < lower else None


_ONE_CELL = _below_lower(lambda raw, value: "use 1 cell", 1)

PHYSICAL_BOUNDS: Tuple[PhysicalBound, ...] = (
    _config_bound("pixel", "the pixel size", DetectorConfig, "pixel_size_mm"),
    _config_bound("fpixels", "a pixel count", DetectorConfig, "fpixels", _c_pixels_instead("detsize_f")),
    _config_bound("spixels", "a pixel count", DetectorConfig, "spixels", _c_pixels_instead("detsize_s")),
    _own_bound("detsize_f", "the detector size", "mm", 0, False),
    _own_bound("detsize_s", "the detector size", "mm", 0, False),
    _config_bound("distance", "the distance", DetectorConfig, "distance_mm",
                  lambda raw, value: f"use {-value:g} mm, its absolute value" if value < 0 else None),
    _config_bound("close_distance", "the distance", DetectorConfig, "close_distance_mm"),
    _config_bound("wavelength_A", "the wavelength", BeamConfig, "wavelength_A"),
    _config_bound("Na", "the number of unit cells", CrystalConfig, "N_cells", _ONE_CELL),
    _config_bound("Nb", "the number of unit cells", CrystalConfig, "N_cells", _ONE_CELL),
    _config_bound("Nc", "the number of unit cells", CrystalConfig, "N_cells", _ONE_CELL),
    _own_bound("sample_mm", "a crystal size", "mm", 0, True, _ignored("the number of cells comes from -N")),
    _config_bound("mosaic_spread", "the mosaic spread", CrystalConfig, "mosaic_spread_deg",
                  _below_lower(_ignored("one domain, no mosaicity"), 0)),
    _config_bound("mosaic_domains", "the number of mosaic domains", CrystalConfig, "mosaic_domains",
                  _c_domains_instead),
    _config_bound("phisteps", "the number of phi steps", CrystalConfig, "phi_steps", _c_phisteps_instead),
    _own_bound("phistep", "the phi step", "degrees", 0, False, _AUTOMATIC),
    _own_bound("osc", "the oscillation range", "degrees", 0, True, _AUTOMATIC),
    _config_bound("oversample", "the oversampling", DetectorConfig, "oversample",
                  _below_lower(lambda raw, value: "choose it from the crystal size, as without -oversample", 1)),
    _config_bound("detector_thick_um", "the sensor thickness", DetectorConfig, "detector_thick_um"),
    _config_bound("detector_thicksteps", "the number of sensor layers", DetectorConfig, "detector_thicksteps",
                  _AUTOMATIC),
    _config_bound("detector_abs_um", "the attenuation depth", DetectorConfig, "detector_abs_um"),
    _config_bound("dispersion", "the spectral dispersion", BeamConfig, "dispersion_percent", _AUTOMATIC),
    _config_bound("dispsteps", "the number of wavelengths", BeamConfig, "dispersion_steps", _AUTOMATIC),
    _config_bound("hdivrange", "the divergence range", BeamConfig, "hdivrange_mrad", _AUTOMATIC),
    _config_bound("vdivrange", "the divergence range", BeamConfig, "vdivrange_mrad", _AUTOMATIC),
    _config_bound("hdivstep", "the divergence step", BeamConfig, "hdivstep_mrad", _AUTOMATIC),
    _config_bound("vdivstep", "the divergence step", BeamConfig, "vdivstep_mrad", _AUTOMATIC),
    _config_bound("hdivsteps", "the number of divergence steps", BeamConfig, "hdivsteps", _AUTOMATIC),
    _config_bound("vdivsteps", "the number of divergence steps", BeamConfig, "vdivsteps", _AUTOMATIC),
    _config_bound("fluence", "the fluence", BeamConfig, "fluence"),
    _config_bound("flux", "the flux", BeamConfig, "flux"),
    _config_bound("exposure", "the exposure time", BeamConfig, "exposure", _ignored("-fluence is used, not -flux")),
    _config_bound("beamsize_mm", "the beam size", BeamConfig, "beamsize_mm",
                  lambda raw, value: "ignore it: -fluence is used, not -flux" if value < 0 else None),
    _config_bound("polar", "the polarization factor", BeamConfig, "polarization_factor"),
    _config_bound("water_um", "the water thickness", BeamConfig, "water_size_um"),
    _config_bound("dmin", "the resolution limit", BeamConfig, "dmin_A", _ignored("no resolution cut")),
    _config_bound("fudge", "the shape factor -fudge", CrystalConfig, "fudge"),
    _config_bound("intfile_scale", "the integer-image scale", NoiseConfig, "intfile_scale", _AUTOMATIC),
    _own_bound("pgm_scale", "the PGM scale", "", 0, False, _AUTOMATIC),
)
"""Every numeric option with a physical range, in the order they are checked: a value outside
is an error naming it as it was given (flag or header), with what nanoBragg C does instead. An
option that sets a library config field takes the field's rule (unit and bounds), so that the
command refuses what the config would; the others (detector size, crystal size, phi step, C's
oscillation range, PGM scale) have their own."""

MAX_PIXELS = 2 ** 31 - 1
"""The most pixels a detector may have: nanoBragg C counts them in a C ``int``."""


def _check_physical(raw: RawArgs) -> None:
    """Stop at the first value outside its :data:`PHYSICAL_BOUNDS`."""
    for bound in PHYSICAL_BOUNDS:
        problem = bound.problem(raw)
        if problem is not None:
            raise UsageError(problem)


def _c_pixel_count(size_mm: float, pixel_mm: float) -> int:
    """C's pixel count of a detector size: ``ceil(size / pixel − ½)``."""
    count = size_mm / pixel_mm - 0.5
    if not count < MAX_PIXELS:
        raise UsageError(f"a detector {size_mm:g} mm wide in pixels of {pixel_mm:g} mm has more than "
                         f"{MAX_PIXELS} pixels (nanoBragg C's limit)")
    return int(math.ceil(count))


def _pixel_counts(raw: RawArgs) -> Tuple[int, int, float, float]:
    """fpixels, spixels and the detector sizes (mm) as C fills them in: pixel counts win over
    sizes, and a size gives ``ceil(size / pixel − ½)`` pixels."""
    detsize_f = raw.pixel * raw.fpixels if raw.fpixels is not None else raw.detsize_f
    detsize_s = raw.pixel * raw.spixels if raw.spixels is not None else raw.detsize_s
    fpixels, spixels = _c_pixel_count(detsize_f, raw.pixel), _c_pixel_count(detsize_s, raw.pixel)
    if fpixels < 1 or spixels < 1:
        raise UsageError(f"the detector has {fpixels} x {spixels} pixels: -detsize {detsize_f:g} x {detsize_s:g} mm "
                         f"is less than half a pixel of {raw.pixel:g} mm")
    if fpixels * spixels > MAX_PIXELS:
        raise UsageError(f"the detector has {fpixels} x {spixels} pixels, more than {MAX_PIXELS} "
                         f"(nanoBragg C's limit)")
    return fpixels, spixels, detsize_f, detsize_s


def _resolve_phi(raw: RawArgs) -> Tuple[int, float, float]:
    """(phi steps, C's osc, step) in degrees, completed from the given ones by nanoBragg's rules."""
    osc, step, steps = raw.osc, raw.phistep, raw.phisteps
    if steps is None:
        if osc is None:
            if step is None:
                return 1, 0.0, 0.0
            return 2, step, step
        if step is None:
            return 2, osc, osc / 2.0
        return int(math.ceil(osc / step)), osc, step
    if osc is None:
        if step is None:
            return steps, 1.0, 1.0 / steps
        return 2, step, step
    if step is None:
        return steps, osc, osc / steps
    return steps, osc, step


def _resolve_mosaic(raw: RawArgs, warnings: List[str]) -> Tuple[int, float]:
    """(domains, spread in degrees): a spread without a count gives 10 domains, no spread one."""
    spread = raw.mosaic_spread
    if spread is None or spread == 0:
        if raw.mosaic_domains is not None and raw.mosaic_domains > 1:
            warnings.append(f"-mosaic_domains {raw.mosaic_domains} without a mosaic spread: 1 domain, as nanoBragg C")
        return 1, 0.0
    if raw.mosaic_domains is None:
        warnings.append(f"-mosaic {spread:g} without -mosaic_domains: 10 domains, as nanoBragg C")
        return 10, spread
    return raw.mosaic_domains, spread


def _resolve_thickness(raw: RawArgs, warnings: List[str]) -> Dict[str, object]:
    """Library thickness fields reproducing C's layers: ``n`` layers (at least 2) spaced
    thick/(n−1) apart, or 2 layers thick/2 apart when no count is given."""
    thick = raw.detector_thick_um
    if thick <= 0:
        return {"detector_thick_um": 0.0, "detector_thicksteps": 1, "detector_abs_um": None}
    if raw.detector_absorption is DetectorAbsorption.NOTHING:
        raise UsageError("-detector_abs 0 (or inf) given before -detector_thick: nanoBragg C then "
                         "absorbs nothing in a thick sensor and writes an all-zero image")
    layers = max(raw.detector_thicksteps, 2) if raw.detector_thicksteps is not None else 2
    spacing = thick / (layers - 1) if raw.detector_thicksteps is not None else thick / 2.0
    warnings.append(f"sensor of {thick:g} um in {layers} layers {spacing:g} um apart (they span "
                    f"{spacing * layers:g} um), and only the last layer's capture fraction multiplies "
                    f"the sum: nanoBragg C's quirks, reproduced")
    depth = raw.detector_abs_um if raw.detector_absorption is DetectorAbsorption.DEPTH else thick
    return {"detector_thick_um": spacing * layers, "detector_thicksteps": layers, "detector_abs_um": depth}


def _c_unit(vector: Sequence[float]) -> Tuple[Tuple[float, float, float], float]:
    x, y, z = (float(v) for v in vector)
    magnitude = math.sqrt(x * x + y * y + z * z)
    if magnitude == 0.0:
        return (0.0, 0.0, 0.0), 0.0
    return (x / magnitude, y / magnitude, z / magnitude), magnitude


def _custom_vectors(raw: RawArgs, warnings: List[str]) -> Dict[str, Optional[Tuple[float, float, float]]]:
    """The CUSTOM convention's user vectors, with C's odet regeneration: a normal whose length is
    not exactly 1 is replaced by unit(fdet × sdet)."""
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


def _beam_centre(raw: RawArgs, fpixels: int, spixels: int) -> Tuple[Tuple[Optional[float], Optional[float]],
                                                                     Tuple[float, float]]:
    """Library (beam_center_f, beam_center_s) of C's flags (None: the convention's default) and C's
    (Xbeam, Ybeam) for the header, in mm.

    MOSFLM, DENZO and ADXV take -Xbeam/-Ybeam. XDS and DIALS place the detector by the point
    nearest the sample, from -ORGX/-ORGY (pixels); their -Xbeam/-Ybeam (else -Xclose/-Yclose)
    reach only the header. CUSTOM takes -Xbeam/-Ybeam, else -Xclose/-Yclose, else -ORGX/-ORGY.
    """
    convention, pixel = raw.convention, raw.pixel
    near_f = (raw.ORGX - 0.5) * pixel if raw.ORGX is not None else None
    near_s = (raw.ORGY - 0.5) * pixel if raw.ORGY is not None else None
    if convention in (DetectorConvention.XDS, DetectorConvention.DIALS):
        centre = (near_f, near_s)
    elif convention is DetectorConvention.CUSTOM:
        centre = (_first_given(raw.Xbeam, raw.Xclose, near_f), _first_given(raw.Ybeam, raw.Yclose, near_s))
    else:
        centre = c_header_beam_center(convention, raw.Xbeam, raw.Ybeam)
    default = default_beam_center_mm(convention, pixel, fpixels, spixels)
    x_beam, y_beam = c_header_beam_center(convention, *(_first_given(given, fallback)
                                                        for given, fallback in zip(centre, default)))
    if convention in (DetectorConvention.XDS, DetectorConvention.DIALS):
        x_beam, y_beam = _first_given(raw.Xbeam, raw.Xclose, x_beam), _first_given(raw.Ybeam, raw.Yclose, y_beam)
    return centre, (x_beam, y_beam)


def _first_given(*values: Optional[float]) -> Optional[float]:
    return next((value for value in values if value is not None), None)


def _fluence(raw: RawArgs) -> float:
    """Fluence in photons/m²: from flux·exposure/beamsize² when a flux is given."""
    beamsize_m = raw.beamsize_mm / 1000.0
    fluence = raw.fluence
    if raw.flux > 0:
        fluence = raw.flux * raw.exposure / beamsize_m / beamsize_m
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
        seed = raw.misset_seed if raw.misset_seed is not None else int(time.time())
        fields["misset_deg"] = random_misset_deg(seed)
        warnings.append(f"-misset random (seed {seed}): misset angles "
                        f"{' '.join(f'{v:g}' for v in fields['misset_deg'])} degrees")
    elif raw.misset is not None:
        fields["misset_deg"] = tuple(raw.misset)
    return fields


def _read_matrix(path: str, wavelength_A: float) -> Dict[str, object]:
    _require_file("-mat", path)
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
    """Na, Nb, Nc: sample sizes (clipped by the beam) override -N."""
    sample = list(raw.sample_mm)
    for axis, word in ((1, "high"), (2, "wide")):
        if raw.beamsize_mm < sample[axis]:
            warnings.append(f"clipping sample ({sample[axis] / 1000:g} m {word}) with beam "
                            f"({raw.beamsize_mm / 1000:g} m), as nanoBragg C")
            sample[axis] = raw.beamsize_mm
    counts = [raw.Na, raw.Nb, raw.Nc]
    if any(s > 0 for s in sample):
        for axis, length_A in enumerate(_cell_lengths_A(orientation)):
            if sample[axis] > 0:
                counts[axis] = int(math.ceil(sample[axis] / (length_A * 1e-7)))
    return tuple(counts)


def _cell_lengths_A(orientation: Dict[str, object]) -> Tuple[float, float, float]:
    """Real-space cell lengths: the -cell lengths when given (with or without a matrix, they set
    the lengths), else those of the -mat matrix."""
    if "cell_a" in orientation:
        return orientation["cell_a"], orientation["cell_b"], orientation["cell_c"]
    return reciprocal_to_real_cell(orientation["mosflm_a_star"], orientation["mosflm_b_star"],
                                   orientation["mosflm_c_star"])[:3]


def _sources(raw: RawArgs, convention_beam: Sequence[float]) -> Optional[list]:
    if raw.sourcefile is None:
        return None
    _require_file("-sourcefile", raw.sourcefile)
    beam = _c_unit(convention_beam)[0]
    default_position = tuple(-10.0 * v for v in beam)
    try:
        sources = read_sourcefile(raw.sourcefile, default_position, raw.wavelength_A)
    except (ValueError, OSError) as error:
        raise UsageError(f"-sourcefile {raw.sourcefile}: {error}") from None
    if not sources:
        raise UsageError(f"-sourcefile {raw.sourcefile}: no sources in the file")
    return [(tuple(position), wavelength_A) for position, wavelength_A in sources]


def _quirk_warnings(raw: RawArgs, phi_steps: int, interpolate: bool, has_structure_table: bool) -> List[str]:
    """One line per physics quirk of C that the library reproduces for this run."""
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
    pivot = command_line_pivot(raw.convention, raw.pivot)
    (beam_center_f, beam_center_s), (xbeam, ybeam) = _beam_centre(raw, fpixels, spixels)

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
        oversample=raw.oversample,
        oversample_omega=raw.oversample_omega, oversample_polar=raw.oversample_polar,
        oversample_thick=raw.oversample_thick, curved_detector=raw.curved, point_pixel=raw.point_pixel,
        roi=_roi(raw, fpixels, spixels), mask=mask, **_resolve_thickness(raw, warnings))
    beam = BeamConfig(
        wavelength_A=raw.wavelength_A, fluence=fluence, polarization_factor=raw.polar, nopolar=raw.nopolar,
        polarization_axis=vectors.get("polar"),
        hdivrange_mrad=raw.hdivrange, vdivrange_mrad=raw.vdivrange, hdivstep_mrad=raw.hdivstep,
        vdivstep_mrad=raw.vdivstep, hdivsteps=raw.hdivsteps, vdivsteps=raw.vdivsteps, round_div=raw.round_div,
        dispersion_percent=raw.dispersion, dispersion_steps=raw.dispsteps,
        sources=_sources(raw, convention_beam), water_size_um=raw.water_um, dmin_A=raw.dmin)
    seed = raw.seed if raw.seed is not None else int(time.time())
    noise = NoiseConfig(seed=seed, adc_offset_adu=raw.adc, intfile_scale=raw.intfile_scale)
    warnings += _quirk_warnings(raw, phi_steps, bool(raw_interpolate), structure[0] is not None or
                                structure[1] is not None)
    warnings += raw.ignored
    outputs = Outputs(floatfile=raw.floatfile, intfile=raw.intfile,
                      pgmfile=raw.pgmfile if raw.write_pgm else None,
                      noisefile=raw.noisefile if raw.calculate_noise else None,
                      fdump=raw.dumpfile if raw.hklfile is not None else None, cbffile=raw.cbffile)
    header = {"Xbeam_mm": xbeam, "Ybeam_mm": ybeam, "phi0_deg": raw.phi0, "osc_deg": osc_deg,
              "twotheta_deg": raw.twotheta, "detsize_f_mm": detsize_f, "detsize_s_mm": detsize_s,
              "noise_seed": seed, "raw_N": (raw.Na, raw.Nb, raw.Nc)}
    return Plan(crystal=crystal, detector=detector, beam=beam, noise=noise, hklfile=structure[0],
                fdump_in=structure[1], outputs=outputs, pgm_scale=raw.pgm_scale, header=header,
                progress=raw.progress, warnings=warnings, inputs=_input_files(raw, structure[1]))


def _input_files(raw: RawArgs, fdump_in: Optional[str]) -> List[Tuple[str, str]]:
    """``(flag, path)`` of the input files of a command line (see :attr:`Plan.inputs`)."""
    named = (("-mat", raw.matfile), ("-hkl", raw.hklfile), ("-sourcefile", raw.sourcefile), ("-img", raw.imgfile),
             ("-mask", raw.maskfile), ("the Fdump cache", fdump_in))
    return [(flag, path) for flag, path in named if path is not None]


def _library_seed(seed: Optional[int], default: int) -> int:
    """Library seed for C's ``-x_seed n`` (C draws with −n; n ≤ 0 makes C start from 1)."""
    if seed is None:
        return default
    return seed if seed > 0 else 1


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
