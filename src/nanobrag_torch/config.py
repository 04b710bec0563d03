"""Configuration of a simulation: crystal, detector, beam and noise.

Every config is a plain dataclass that validates its values on construction and raises
:class:`ConfigError` (a :class:`ValueError`) naming the config, the field and the bad value.
Lengths and angles carry their unit in the field name (``distance_mm``, ``phi_start_deg``);
the models convert them to SI (metres, radians) once, as nanoBragg C does.

Every continuous field may be a Python number or a 0-d :class:`torch.Tensor`, including one
with ``requires_grad=True``; the simulated image is then differentiable with respect to it.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from enum import Enum
from typing import Any, Optional, Sequence, Tuple, Union

import torch

Scalar = Union[float, torch.Tensor]
"""A Python number or a 0-d tensor (possibly requiring grad)."""

DEFAULT_CELL_LENGTH_A = 100.0
"""Unit-cell length of :class:`CrystalConfig` when neither it nor a MOSFLM matrix is given (Å)."""
DEFAULT_CELL_ANGLE_DEG = 90.0
"""Unit-cell angle of :class:`CrystalConfig` when not given (degrees)."""
NOISE_SEED_LIMIT = 2 ** 62
"""Largest magnitude of a noise seed: the generator's arithmetic is in 64-bit integers."""
MAX_OVERSAMPLE = 1000
"""The most sub-pixels per pixel edge: a million sub-pixels per pixel, far beyond any crystal
nanoBragg's automatic choice serves, each pixel a million times the work of one. Above it the
sub-pixel tables alone would exhaust a machine's memory (``-oversample 2147483648`` asked for
17 GB), and nanoBragg C would loop for ever."""

MIN_RELATIVE_CELL_VOLUME = 1e-6
"""Cell volume over a·b·c below which three cell angles are refused as making no cell (an
exactly flat cell, such as 60°, 60°, 120°, computes to about 1e-8, not 0)."""


class ConfigError(ValueError):
    """An invalid configuration value.

    The message reads ``"DetectorConfig.distance_mm = -1 is invalid: must be a finite number > 0"``.

    Parameters
    ----------
    config : str
        Name of the config class (``"DetectorConfig"``).
    field : str
        Name of the dataclass field (``"N_cells"``, also for a bad element of it).
    value : object
        The value given.
    problem : str
        What is wrong with it.
    element : str
        Which part of the field, if not all of it (``"[1]"`` for ``N_cells[1]``).

    Attributes
    ----------
    config, field, value
        As given.
    """

    def __init__(self, config: str, field: str, value: Any, problem: str, element: str = ""):
        super().__init__(f"{config}.{field}{element} = {_describe(value)} is invalid: {problem}")
        self.config = config
        self.field = field
        self.value = value
        self._details = (problem, element)

    def __reduce__(self):
        return type(self), (self.config, self.field, self.value, *self._details)


class DetectorConvention(Enum):
    """Named detector conventions of nanoBragg (how beam, axes and beam centre are defined)."""

    MOSFLM = "mosflm"
    XDS = "xds"
    DIALS = "dials"
    ADXV = "adxv"
    DENZO = "denzo"
    CUSTOM = "custom"


class DetectorPivot(Enum):
    """The point that stays fixed when the detector is rotated."""

    BEAM = "beam"
    SAMPLE = "sample"


class CrystalShape(Enum):
    """Shape of the crystal, which sets the lattice factor ``F_latt``."""

    SQUARE = "square"
    ROUND = "round"
    GAUSS = "gauss"
    TOPHAT = "tophat"


def _value(x: Scalar) -> float:
    """Plain float of a number or tensor, for validation only (never on the way to the image);
    NaN for anything else (None, a string), which every check refuses."""
    if isinstance(x, torch.Tensor):
        return float(x.detach().reshape(-1)[0]) if x.numel() == 1 else float("nan")
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def _describe(value: Any) -> str:
    """The value as a message shows it: arrays of more than three numbers by their shape."""
    if hasattr(value, "shape") and math.prod(value.shape) > 3:
        return f"array of shape {tuple(value.shape)}"
    if isinstance(value, torch.Tensor):
        return f"tensor({value.detach().cpu().tolist()})"
    return repr(value)


def _require(cls: str, name: str, value: Any, ok: bool, what: str, element: str = "") -> None:
    if not ok:
        raise ConfigError(cls, name, value, what, element)


def _positive(cls: str, name: str, value: Scalar, element: str = "") -> None:
    v = _value(value)
    _require(cls, name, value, math.isfinite(v) and v > 0, "must be a finite number > 0", element)


def _non_negative(cls: str, name: str, value: Scalar, element: str = "") -> None:
    v = _value(value)
    _require(cls, name, value, math.isfinite(v) and v >= 0, "must be a finite number >= 0", element)


def _finite(cls: str, name: str, value: Scalar, element: str = "") -> None:
    _require(cls, name, value, math.isfinite(_value(value)), "must be finite", element)


def _integer(cls: str, name: str, value: Any, minimum: Optional[int] = None, element: str = "") -> None:
    """Require a Python or NumPy integer (not a bool, not a float) of at least ``minimum``."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    ok = ok and (minimum is None or value >= minimum)
    _require(cls, name, value, ok, "must be an integer" + (f" >= {minimum}" if minimum is not None else ""), element)


def _vector3(cls: str, name: str, value: Any, nonzero: bool = True, element: str = "") -> None:
    if isinstance(value, torch.Tensor):
        ok = value.numel() == 3
        comps = value.detach().reshape(-1).tolist() if ok else []
    else:
        try:
            comps = [_value(c) for c in value]
        except (TypeError, ValueError):
            comps = []
        ok = len(comps) == 3
    _require(cls, name, value, ok and all(math.isfinite(c) for c in comps), "must be three finite numbers", element)
    if nonzero:
        _require(cls, name, value, 0 < sum(c * c for c in comps) < math.inf,
                 "must not be the zero vector, nor so short or long that its squared length is 0 or inf", element)


def _cell_angles_make_a_cell(cls: str, config: "CrystalConfig") -> None:
    """Three angles make a cell when each is less than the sum of the other two and the three add
    up to less than 360°: then ``V / (a b c) = 2 √(sin(s) sin(s − α) sin(s − β) sin(s − γ))``
    with ``s = (α + β + γ) / 2`` is real and positive; it must reach
    :data:`MIN_RELATIVE_CELL_VOLUME`. The at_fault of the angles given is named at fault."""
    names = ("cell_alpha", "cell_beta", "cell_gamma")
    given = {name: getattr(config, name) for name in names}
    degrees = {name: DEFAULT_CELL_ANGLE_DEG if value is None else _value(value) for name, value in given.items()}
    half_sum = math.radians(sum(degrees.values())) / 2
    factor = math.sin(half_sum) * math.prod(math.sin(half_sum - math.radians(v)) for v in degrees.values())
    at_fault = max((name for name in names if given[name] is not None), key=lambda name: degrees[name], default=None)
    if at_fault is None:  # the default angles make a cell
        return
    others = " and ".join(f"{name} = {degrees[name]:g}" for name in names if name != at_fault)
    _require(cls, at_fault, given[at_fault], factor > 0 and 2 * math.sqrt(factor) >= MIN_RELATIVE_CELL_VOLUME,
             f"with {others} the angles make no unit cell (each must be less than the sum of the other two, "
             f"and the three less than 360 degrees)")


def _cell_volume_is_representable(cls: str, config: "CrystalConfig") -> None:
    """The cell's volume and its inverse (which scales the reciprocal cell) must both be finite,
    non-zero numbers for every angles that make a cell (``V ≥ a b c ·``
    :data:`MIN_RELATIVE_CELL_VOLUME`): a length such as 1e-320 Å or 1e300 Å passes the check of
    its sign but leaves no reciprocal cell to compute with. The length furthest from 1 Å (on a
    log scale) is named at fault."""
    names = ("cell_a", "cell_b", "cell_c")
    given = {name: getattr(config, name) for name in names if getattr(config, name) is not None}
    if not given:
        return
    lengths = [_value(getattr(config, name)) if name in given else DEFAULT_CELL_LENGTH_A for name in names]
    volume = math.prod(lengths)
    at_fault = max(given, key=lambda name: abs(math.log(_value(given[name]))))
    others = " and ".join(f"{name} = {length:g}" for name, length in zip(names, lengths) if name != at_fault)
    _require(cls, at_fault, given[at_fault], 0 < volume < math.inf and math.isfinite(1 / (volume * MIN_RELATIVE_CELL_VOLUME)),
             f"with {others} the cell's volume ({volume:g} cubic Å before the angles) is too small or too "
             f"large to compute its reciprocal cell")


@dataclass
class CrystalConfig:
    """The crystal: unit cell, orientation, rotation, mosaicity, size and shape.

    Parameters
    ----------
    cell_a, cell_b, cell_c : float or tensor, optional
        Unit-cell lengths in Å. Default 100 Å when no MOSFLM matrix is given. When a matrix
        is given as well, the matrix sets the directions and these set the lengths (as
        nanoBragg's ``-mat`` with ``-cell``).
    cell_alpha, cell_beta, cell_gamma : float or tensor, optional
        Unit-cell angles in degrees. Default 90°.
    N_cells : tuple of 3 numbers or tensors
        Number of unit cells along a, b, c (``-Na -Nb -Nc``). Real values are allowed and
        differentiable for the SQUARE shape.
    misset_deg : tuple of 3 numbers or tensors
        Misset rotation about lab x, then y, then z, in degrees, applied to the reciprocal
        vectors before anything else.
    phi_start_deg, osc_range_deg : float or tensor
        Spindle angle of the first phi step and the total oscillation, in degrees.
    phi_steps : int
        Number of phi steps; step k is at ``phi_start + k * osc_range / phi_steps``.
    spindle_axis : tuple of 3 numbers, optional
        Rotation axis in the lab frame. Default: the detector convention's axis.
    mosaic_spread_deg : float or tensor
        Maximum rotation angle of a mosaic domain, in degrees (nanoBragg's cap angle).
    mosaic_domains : int
        Number of mosaic domains; domain 0 is the unrotated crystal.
    mosaic_seed : int
        Seed of the domain generator; ``mosaic_seed=n`` draws the same domains as
        nanoBragg's ``-mosaic_seed n``. The domain axes do not depend on the spread.
    mosflm_a_star, mosflm_b_star, mosflm_c_star : sequence of 3 numbers or tensor, optional
        Reciprocal vectors in Å⁻¹ (already divided by the wavelength, as returned by
        :func:`nanobrag_torch.io.mosflm.read_mosflm_matrix`).
    default_F : float
        Structure factor for reflections absent from the HKL table (electrons).
    shape : CrystalShape
        Crystal shape for the lattice factor.
    fudge : float
        Width factor for the ROUND, GAUSS and TOPHAT shapes (``-fudge``).
    interpolate : bool, optional
        Tricubic interpolation of structure factors. ``None`` selects it as nanoBragg does:
        on when any of ``N_cells`` is at most 2.
    """

    cell_a: Optional[Scalar] = None
    cell_b: Optional[Scalar] = None
    cell_c: Optional[Scalar] = None
    cell_alpha: Optional[Scalar] = None
    cell_beta: Optional[Scalar] = None
    cell_gamma: Optional[Scalar] = None
    N_cells: Sequence[Scalar] = (1, 1, 1)
    misset_deg: Sequence[Scalar] = (0.0, 0.0, 0.0)
    phi_start_deg: Scalar = 0.0
    osc_range_deg: Scalar = 0.0
    phi_steps: int = 1
    spindle_axis: Optional[Sequence[float]] = None
    mosaic_spread_deg: Scalar = 0.0
    mosaic_domains: int = 1
    mosaic_seed: int = 12345678
    mosflm_a_star: Optional[Any] = None
    mosflm_b_star: Optional[Any] = None
    mosflm_c_star: Optional[Any] = None
    default_F: float = 0.0
    shape: CrystalShape = CrystalShape.SQUARE
    fudge: float = 1.0
    interpolate: Optional[bool] = None

    def __post_init__(self) -> None:
        name = "CrystalConfig"
        matrix = {vec: getattr(self, vec) for vec in ("mosflm_a_star", "mosflm_b_star", "mosflm_c_star")}
        missing = [vec for vec, value in matrix.items() if value is None]
        if 0 < len(missing) < 3:
            raise ConfigError(name, missing[0], None, "give all three of mosflm_a_star, mosflm_b_star, "
                              "mosflm_c_star, or none")
        for vec_name in ("mosflm_a_star", "mosflm_b_star", "mosflm_c_star"):
            vec = getattr(self, vec_name)
            if vec is not None:
                _vector3(name, vec_name, vec)
        for length in ("cell_a", "cell_b", "cell_c"):
            if getattr(self, length) is not None:
                _positive(name, length, getattr(self, length))
        for angle in ("cell_alpha", "cell_beta", "cell_gamma"):
            value = getattr(self, angle)
            if value is not None:
                v = _value(value)
                _require(name, angle, value, 0 < v < 180, "must be between 0 and 180 degrees")
        _cell_angles_make_a_cell(name, self)
        _cell_volume_is_representable(name, self)
        _require(name, "N_cells", self.N_cells, len(self.N_cells) == 3, "needs three values")
        for i, n in enumerate(self.N_cells):
            _positive(name, "N_cells", n, f"[{i}]")
        _require(name, "misset_deg", self.misset_deg, len(self.misset_deg) == 3, "needs three angles")
        for i, angle in enumerate(self.misset_deg):
            _finite(name, "misset_deg", angle, f"[{i}]")
        _finite(name, "phi_start_deg", self.phi_start_deg)
        _finite(name, "osc_range_deg", self.osc_range_deg)
        _integer(name, "phi_steps", self.phi_steps, 1)
        if self.spindle_axis is not None:
            _vector3(name, "spindle_axis", self.spindle_axis)
        _non_negative(name, "mosaic_spread_deg", self.mosaic_spread_deg)
        _integer(name, "mosaic_domains", self.mosaic_domains, 1)
        _integer(name, "mosaic_seed", self.mosaic_seed)
        _finite(name, "default_F", self.default_F)
        _require(name, "shape", self.shape, isinstance(self.shape, CrystalShape), "must be a CrystalShape")
        _positive(name, "fudge", self.fudge)

    @property
    def has_mosflm_matrix(self) -> bool:
        """True when the orientation comes from MOSFLM reciprocal vectors."""
        return self.mosflm_a_star is not None


@dataclass
class DetectorConfig:
    """The detector: size, pixels, position, orientation and response.

    Parameters
    ----------
    distance_mm : float or tensor
        Sample-to-detector distance along the beam (BEAM pivot) in mm.
    close_distance_mm : float or tensor, optional
        Perpendicular sample-to-plane distance in mm; when given, the detector is placed by it
        (``distance = close_distance / (beam · normal)``), as ``-close_distance``.
    pixel_size_mm : float
        Pixel edge length in mm.
    fpixels, spixels : int
        Number of pixels along the fast and slow axes.
    beam_center_f, beam_center_s : float or tensor, optional
        Beam centre in mm along the fast and slow axes, in the convention's own terms:
        MOSFLM/DENZO: ``beam_center_s`` = Xbeam, ``beam_center_f`` = Ybeam; ADXV/CUSTOM:
        ``beam_center_f`` = Xbeam, ``beam_center_s`` = Ybeam; XDS/DIALS: the point of the
        detector closest to the sample ((ORGX − ½)·pixel, (ORGY − ½)·pixel). The rules are
        in ``nanobrag_torch.conventions``;
        :func:`~nanobrag_torch.conventions.beam_center_for_pixel` gives the centre that puts
        the beam on a given pixel. Default:
        :func:`~nanobrag_torch.conventions.default_beam_center_mm`.
    detector_convention : DetectorConvention
        Convention for beam direction, detector axes and beam centre.
    detector_pivot : DetectorPivot, optional
        Pivot of the rotations. Default: BEAM for MOSFLM, DENZO, ADXV and CUSTOM, SAMPLE for
        XDS and DIALS.
    detector_rotx_deg, detector_roty_deg, detector_rotz_deg : float or tensor
        Detector rotations about lab x, then y, then z, in degrees.
    detector_twotheta_deg : float or tensor
        Detector swing about ``twotheta_axis``, in degrees.
    twotheta_axis : tuple of 3 numbers, optional
        Two-theta axis. Default: the convention's axis.
    custom_fdet_vector, custom_sdet_vector, custom_odet_vector, custom_beam_vector : tuple, optional
        Unit vectors of the CUSTOM convention (fast axis, slow axis, detector normal, beam
        propagation). Ignored by named conventions.
    pix0_override_m : tuple of 3 numbers or tensors, optional
        Lab position in metres of the corner of pixel (0, 0). When given, it places the
        detector directly (beam centre and pivot are then not used).
    oversample : int, optional
        Sub-pixels per pixel edge, 1 to ``MAX_OVERSAMPLE``. ``None`` chooses it from the crystal
        size as nanoBragg does (the simulator raises a :class:`ConfigError` when that choice exceeds
        ``MAX_OVERSAMPLE``).
    oversample_omega, oversample_polar, oversample_thick : bool
        Evaluate the solid angle, polarization or capture fraction for every sub-pixel instead
        of once per pixel.
    curved_detector : bool
        Put every pixel at the same distance from the sample (``-curved_det``).
    point_pixel : bool
        Solid angle ``1/R²`` instead of the pixel's area over ``R²`` (``-point_pixel``).
    detector_thick_um : float
        Sensor thickness in µm (0: an ideal, infinitely thin absorber).
    detector_thicksteps : int
        Number of depth layers.
    detector_abs_um : float, optional
        Attenuation depth in µm. Default: the thickness.
    roi : tuple of 4 ints, optional
        ``(fmin, fmax, smin, smax)``, inclusive, 0-based; pixels outside are 0.
    mask : array of shape (spixels, fpixels), optional
        Pixels where the mask is 0 are not rendered.
    """

    distance_mm: Scalar = 100.0
    close_distance_mm: Optional[Scalar] = None
    pixel_size_mm: Scalar = 0.1
    fpixels: int = 1024
    spixels: int = 1024
    beam_center_f: Optional[Scalar] = None
    beam_center_s: Optional[Scalar] = None
    detector_convention: DetectorConvention = DetectorConvention.MOSFLM
    detector_pivot: Optional[DetectorPivot] = None
    detector_rotx_deg: Scalar = 0.0
    detector_roty_deg: Scalar = 0.0
    detector_rotz_deg: Scalar = 0.0
    detector_twotheta_deg: Scalar = 0.0
    twotheta_axis: Optional[Sequence[float]] = None
    custom_fdet_vector: Optional[Sequence[float]] = None
    custom_sdet_vector: Optional[Sequence[float]] = None
    custom_odet_vector: Optional[Sequence[float]] = None
    custom_beam_vector: Optional[Sequence[float]] = None
    pix0_override_m: Optional[Sequence[Scalar]] = None
    oversample: Optional[int] = 1
    oversample_omega: bool = False
    oversample_polar: bool = False
    oversample_thick: bool = False
    curved_detector: bool = False
    point_pixel: bool = False
    detector_thick_um: float = 0.0
    detector_thicksteps: int = 1
    detector_abs_um: Optional[float] = None
    roi: Optional[Tuple[int, int, int, int]] = None
    mask: Optional[Any] = None

    def __post_init__(self) -> None:
        name = "DetectorConfig"
        _positive(name, "distance_mm", self.distance_mm)
        if self.close_distance_mm is not None:
            _positive(name, "close_distance_mm", self.close_distance_mm)
        _positive(name, "pixel_size_mm", self.pixel_size_mm)
        for count in ("fpixels", "spixels"):
            _integer(name, count, getattr(self, count), 1)
        for centre in ("beam_center_f", "beam_center_s"):
            if getattr(self, centre) is not None:
                _finite(name, centre, getattr(self, centre))
        _require(name, "detector_convention", self.detector_convention,
                 isinstance(self.detector_convention, DetectorConvention), "must be a DetectorConvention")
        _require(name, "detector_pivot", self.detector_pivot,
                 self.detector_pivot is None or isinstance(self.detector_pivot, DetectorPivot),
                 "must be a DetectorPivot or None")
        for angle in ("detector_rotx_deg", "detector_roty_deg", "detector_rotz_deg", "detector_twotheta_deg"):
            _finite(name, angle, getattr(self, angle))
        for vec in ("custom_fdet_vector", "custom_sdet_vector", "custom_beam_vector"):
            if getattr(self, vec) is not None:
                _vector3(name, vec, getattr(self, vec))
        if self.custom_odet_vector is not None:
            _vector3(name, "custom_odet_vector", self.custom_odet_vector)
        if self.twotheta_axis is not None:
            _vector3(name, "twotheta_axis", self.twotheta_axis)
        if self.pix0_override_m is not None:
            _vector3(name, "pix0_override_m", self.pix0_override_m, nonzero=False)
        if self.oversample is not None:
            _integer(name, "oversample", self.oversample, 1)
            _require(name, "oversample", self.oversample, self.oversample <= MAX_OVERSAMPLE,
                     f"must be at most {MAX_OVERSAMPLE} ({MAX_OVERSAMPLE ** 2:,} sub-pixels per pixel)")
        _non_negative(name, "detector_thick_um", self.detector_thick_um)
        _integer(name, "detector_thicksteps", self.detector_thicksteps, 1)
        if self.detector_abs_um is not None:
            _positive(name, "detector_abs_um", self.detector_abs_um)
        if self.roi is not None:
            _require(name, "roi", self.roi, len(self.roi) == 4, "must be four integers (fmin, fmax, smin, smax)")
            for i, bound in enumerate(self.roi):
                _integer(name, "roi", bound, element=f"[{i}]")
            fmin, fmax, smin, smax = self.roi
            _require(name, "roi", self.roi, 0 <= fmin <= fmax and 0 <= smin <= smax,
                     "needs 0 <= fmin <= fmax and 0 <= smin <= smax")
        if self.mask is not None:
            shape = tuple(self.mask.shape)
            _require(name, "mask", self.mask, shape == (self.spixels, self.fpixels),
                     f"must have shape (spixels, fpixels) = ({self.spixels}, {self.fpixels})")


@dataclass
class BeamConfig:
    """The X-ray beam: wavelength, fluence, polarization, divergence and dispersion.

    Parameters
    ----------
    wavelength_A : float or tensor
        Central wavelength in Å.
    fluence : float or tensor, optional
        Photons per m². Default 1.25932e29 (so that r_e² · fluence = 1), unless ``flux`` is
        given.
    flux : float or tensor
        Photons per second; when > 0 it sets ``fluence = flux · exposure / beamsize²``.
    exposure : float
        Exposure time in seconds.
    beamsize_mm : float
        Beam edge length in mm.
    polarization_factor : float or tensor
        Kahn polarization factor (0: unpolarized, 1: fully polarized along the axis).
    nopolar : bool
        Switch the polarization correction off (factor 1).
    polarization_axis : tuple of 3 numbers, optional
        E-vector direction. Default: the detector convention's axis.
    hdivrange_mrad, vdivrange_mrad, hdivstep_mrad, vdivstep_mrad : float, optional
        Horizontal and vertical divergence ranges (≥ 0) and steps (> 0), in mrad.
    hdivsteps, vdivsteps : int, optional
        Number of divergence points per direction. Missing values are chosen as nanoBragg does.
    round_div : bool
        Trim the divergence grid to an ellipse.
    dispersion_percent : float
        Full spectral width Δλ/λ in percent.
    dispersion_steps : int, optional
        Number of wavelengths across the dispersion.
    sources : sequence of ((x, y, z), wavelength_A), optional
        Explicit sources (position vector towards the source, any length; wavelength in Å).
        When given, the divergence and dispersion grid is not generated.
    water_size_um : float
        Thickness of water in the beam for the water background, in µm.
    dmin_A : float
        Resolution cut in Å: scattering beyond it is skipped (0: no cut).
    """

    wavelength_A: Scalar = 1.0
    fluence: Optional[Scalar] = None
    flux: Scalar = 0.0
    exposure: Scalar = 1.0
    beamsize_mm: Scalar = 0.1
    polarization_factor: Scalar = 0.0
    nopolar: bool = False
    polarization_axis: Optional[Sequence[float]] = None
    hdivrange_mrad: Optional[float] = None
    vdivrange_mrad: Optional[float] = None
    hdivstep_mrad: Optional[float] = None
    vdivstep_mrad: Optional[float] = None
    hdivsteps: Optional[int] = None
    vdivsteps: Optional[int] = None
    round_div: bool = True
    dispersion_percent: float = 0.0
    dispersion_steps: Optional[int] = None
    sources: Optional[Sequence[Tuple[Sequence[float], float]]] = None
    water_size_um: float = 0.0
    dmin_A: float = 0.0

    DEFAULT_FLUENCE = 125932015286227086360700780544.0

    def __post_init__(self) -> None:
        name = "BeamConfig"
        _positive(name, "wavelength_A", self.wavelength_A)
        if self.fluence is not None:
            _positive(name, "fluence", self.fluence)
        _non_negative(name, "flux", self.flux)
        _positive(name, "exposure", self.exposure)
        _positive(name, "beamsize_mm", self.beamsize_mm)
        _finite(name, "polarization_factor", self.polarization_factor)
        if self.polarization_axis is not None:
            _vector3(name, "polarization_axis", self.polarization_axis)
        for range_name in ("hdivrange_mrad", "vdivrange_mrad"):
            if getattr(self, range_name) is not None:
                _non_negative(name, range_name, getattr(self, range_name))
        for step_name in ("hdivstep_mrad", "vdivstep_mrad"):
            if getattr(self, step_name) is not None:
                _positive(name, step_name, getattr(self, step_name))
        for count in ("hdivsteps", "vdivsteps", "dispersion_steps"):
            if getattr(self, count) is not None:
                _integer(name, count, getattr(self, count), 1)
        _non_negative(name, "dispersion_percent", self.dispersion_percent)
        if self.sources is not None:
            _require(name, "sources", self.sources, len(self.sources) >= 1, "needs at least one source")
            for i, (position, wavelength) in enumerate(self.sources):
                _vector3(name, "sources", position, element=f"[{i}] position")
                _positive(name, "sources", wavelength, f"[{i}] wavelength_A")
        _non_negative(name, "water_size_um", self.water_size_um)
        _non_negative(name, "dmin_A", self.dmin_A)

    @property
    def fluence_photons_per_m2(self) -> Scalar:
        """Integrated fluence in photons/m²: from flux·exposure/beamsize² when a flux is given."""
        if _value(self.flux) > 0:
            beamsize_m = self.beamsize_mm * 1e-3
            return self.flux * self.exposure / (beamsize_m * beamsize_m)
        if self.fluence is not None:
            return self.fluence
        return self.DEFAULT_FLUENCE


@dataclass
class NoiseConfig:
    """How the integer and noise images are made from the float image.

    Parameters
    ----------
    seed : int, optional
        Seed of the Poisson noise (``-seed n``). ``None`` takes it from the clock.
    adc_offset_adu : float
        Constant added to every pixel of the integer and noise images.
    intfile_scale : float, optional
        Scale of the noiseless integer image; ``None`` puts the brightest pixel at 55000.
    """

    seed: Optional[int] = None
    adc_offset_adu: float = 40.0
    intfile_scale: Optional[float] = None

    def __post_init__(self) -> None:
        if self.seed is not None:
            _integer("NoiseConfig", "seed", self.seed)
            _require("NoiseConfig", "seed", self.seed, abs(self.seed) <= NOISE_SEED_LIMIT,
                     "must be within ±2**62, the range of the noise generator's 64-bit arithmetic")
        _finite("NoiseConfig", "adc_offset_adu", self.adc_offset_adu)
        if self.intfile_scale is not None:
            _positive("NoiseConfig", "intfile_scale", self.intfile_scale)
