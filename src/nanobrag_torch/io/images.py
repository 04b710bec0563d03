"""Detector images of the field: CBF (Pilatus, through fabio), HDF5/NeXus NXmx master files
with their external data files (Eiger, through h5py and hdf5plugin) and SMV, read into photon
counts, a mask of untrusted pixels and the geometry their headers give; and the command's
miniCBF output.

fabio, h5py and hdf5plugin are optional dependencies (``pip install nanobrag-torch[io]``),
imported by the functions that need them.
"""

from __future__ import annotations

import io

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import numpy as np

from .._docs import fill_doc
from .atomic import atomic_write
from .smv import read_smv

SMV_MAGIC = b"{\nHEADER_BYT"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
CBF_MAGIC = b"###CBF"
SMV_SATURATED_ADU = 65535
"""The largest value of a 16-bit SMV pixel: a pixel there was clamped (an overload)."""
DEFAULT_ADC_OFFSET_ADU = 40.0
"""The ADC offset nanoBragg adds to its integer images unless ``-adc`` says otherwise."""
_NXMX_DETECTOR = "entry/instrument/detector"
_LENGTH_UNITS_M = {"m": 1.0, "meter": 1.0, "meters": 1.0, "metre": 1.0, "mm": 1e-3, "millimeter": 1e-3,
                   "um": 1e-6, "micron": 1e-6, "microns": 1e-6, "micrometer": 1e-6}
_WAVELENGTH_UNITS_A = {"angstrom": 1.0, "angstroms": 1.0, "a": 1.0, "nm": 10.0, "m": 1e10}


@dataclass(frozen=True)
class DetectorImage:
    """A detector image read by :func:`read_image`: counts, untrusted pixels and the geometry
    the file's header gives (None for what it does not give).

    Attributes
    ----------
    counts : ndarray of float64, (slow, fast) or (n_panels, slow, fast)
        Photon counts (for an SMV image, the stored values less the ADC offset).
    mask : ndarray of bool, same shape
        True where a pixel is not to be trusted: flagged by the detector (negative values, the
        NeXus ``pixel_mask``, an integer type's largest value) or at or above the saturation
        (overload) value.
    saturated : ndarray of bool, same shape
        The part of ``mask`` at or above the saturation (overload) value: pixels that counted
        more photons than they could record (a subset of ``mask``; gaps and bad pixels are not
        in it).
    pixel_size_mm : float or None
        Side of a pixel.
    distance_mm : float or None
        Sample-to-detector distance.
    wavelength_A : float or None
        X-ray wavelength.
    beam_center_px : tuple of 2 floats or None
        The direct beam on the detector, (fast, slow) in pixels from the first pixel's outer
        corner.
    n_frames : int
        The number of frames in the file (1 for CBF and SMV).
    """

    counts: np.ndarray
    mask: np.ndarray
    saturated: np.ndarray
    pixel_size_mm: Optional[float] = None
    distance_mm: Optional[float] = None
    wavelength_A: Optional[float] = None
    beam_center_px: Optional[Tuple[float, float]] = None
    n_frames: int = 1


def read_image(path: Union[str, Path], index: int = 0, *,
               adc_offset_adu: float = DEFAULT_ADC_OFFSET_ADU) -> DetectorImage:
    """Read one frame of a CBF, HDF5/NeXus (NXmx) or SMV detector image.

    The format is recognised by the file's first bytes. CBF: the counts as stored; negative
    values (Pilatus' −1 gaps, −2 bad pixels) and values at or above the header's
    ``Count_cutoff`` are masked. HDF5: a NeXus NXmx master file, whose ``/entry/data`` holds
    ``data`` or the ``data_000001``, ``data_000002``, ... datasets (frames, slow, fast) or
    (frames, n_panels, slow, fast), often external links to other files, compressed with
    bitshuffle/LZ4 as Eiger writes them; masked: ``pixel_mask`` nonzero, values at or above
    ``saturation_value``, negative values and the largest value of an unsigned type. SMV: the
    stored values less ``adc_offset_adu`` (the ``-adc`` the command wrote them with);
    saturated pixels (65535) are masked.

    Parameters
    ----------
    path : str or Path
        The image file (for NeXus, the master file).
    index : int
        The frame to read, from 0 (only 0 for CBF and SMV).
    adc_offset_adu : float
        SMV only: the offset subtracted from the stored values.

    Returns
    -------
    DetectorImage

    Raises
    ------
    ImportError
        fabio (CBF) or h5py and hdf5plugin (HDF5) are not installed.
    FileNotFoundError
        The file does not exist.
    ValueError
        Not one of the three formats, a file that cannot be read whole (truncated, corrupt, a
        missing dataset or external file, data of the wrong type or shape), or an ``index``
        out of range: the message names the file and the field (and the number of frames).
    """
    path = Path(path)
    with open(path, "rb") as handle:
        start = handle.read(16)
    if start.startswith(HDF5_MAGIC):
        return _read_nexus(path, index)
    _check_single_frame(path, index)
    if start.startswith(CBF_MAGIC):
        return _read_cbf(path)
    if start.startswith(SMV_MAGIC):
        return _read_smv_image(path, adc_offset_adu)
    raise ValueError(f"{path}: not a CBF, HDF5/NeXus or SMV image (it starts with {start[:8]!r})")


def _check_single_frame(path, index: int) -> None:
    if index != 0:
        raise ValueError(f"{path}: frame index {index} out of range: the file holds 1 frame")


# ----------------------------------------------------------------------------- SMV
def _read_smv_image(path, adc_offset_adu: float) -> DetectorImage:
    data, header = read_smv(path)
    pixel = _header_float(path, header, "PIXEL_SIZE")
    beam = None
    if pixel and "DENZO_X_BEAM" in header and "DENZO_Y_BEAM" in header:  # nanoBragg's: Sbeam, Fbeam in mm
        fast_mm, slow_mm = _header_float(path, header, "DENZO_Y_BEAM"), _header_float(path, header, "DENZO_X_BEAM")
        beam = (fast_mm / pixel, slow_mm / pixel)
    saturated = data >= SMV_SATURATED_ADU
    return DetectorImage(counts=data.astype(np.float64) - float(adc_offset_adu), mask=saturated, saturated=saturated,
                         pixel_size_mm=pixel, distance_mm=_header_float(path, header, "DISTANCE"),
                         wavelength_A=_header_float(path, header, "WAVELENGTH"), beam_center_px=beam)


def _header_float(path, header: Dict[str, str], key: str) -> Optional[float]:
    """A number of an SMV header, None when the key is absent."""
    if key not in header:
        return None
    try:
        return float(header[key])
    except ValueError:
        raise ValueError(f"{path}: the SMV header's {key}={header[key]!r} is not a number") from None


# ----------------------------------------------------------------------------- CBF
def _fabio():
    try:
        import fabio.cbfimage
    except ImportError:
        raise ImportError("reading and writing CBF images needs fabio: pip install nanobrag-torch[io]") from None
    return fabio


_PILATUS_FIELDS = {
    "pixel_size": re.compile(r"#\s*Pixel_size\s+([-+0-9.eE]+)\s*m"),
    "distance": re.compile(r"#\s*Detector_distance\s+([-+0-9.eE]+)\s*m"),
    "wavelength": re.compile(r"#\s*Wavelength\s+([-+0-9.eE]+)\s*A"),
    "beam": re.compile(r"#\s*Beam_xy\s*\(\s*([-+0-9.eE]+)\s*,\s*([-+0-9.eE]+)\s*\)\s*pixels"),
    "cutoff": re.compile(r"#\s*Count_cutoff\s+([-+0-9.eE]+)"),
}


def _read_cbf(path) -> DetectorImage:
    fabio = _fabio()
    raw = path.read_bytes()
    fields = _cbf_binary_fields(path, raw)
    try:
        image = fabio.cbfimage.CbfImage()
        image.read(_EndOfFile(raw))
        data = np.asarray(image.data)
        header = dict(image.header)
    except Exception as error:  # fabio raises many types on a corrupt file: one ValueError names it
        raise ValueError(f"{path}: not a readable CBF image ({type(error).__name__}: {error})") from None
    shape = (fields["X-Binary-Size-Second-Dimension"], fields["X-Binary-Size-Fastest-Dimension"])
    if data.shape != shape or data.dtype.kind not in "iu":
        raise ValueError(f"{path}: the CBF binary section decodes to {data.dtype} {data.shape}, but its header "
                         f"(X-Binary-Size-*-Dimension) declares integers {shape}")
    text = str(header.get("_array_data.header_contents", ""))

    def number(name: str, group: int = 1) -> Optional[float]:
        match = _PILATUS_FIELDS[name].search(text)
        return float(match.group(group)) if match else None

    counts = data.astype(np.float64)
    cutoff = number("cutoff")
    saturated = counts >= cutoff if cutoff is not None else np.zeros(counts.shape, dtype=bool)
    mask = (counts < 0) | saturated
    pixel_m, distance_m = number("pixel_size"), number("distance")
    beam = (number("beam", 1), number("beam", 2)) if number("beam") is not None else None
    return DetectorImage(counts=counts, mask=mask, saturated=saturated, pixel_size_mm=None if pixel_m is None else pixel_m * 1e3,
                         distance_mm=None if distance_m is None else distance_m * 1e3,
                         wavelength_A=number("wavelength"), beam_center_px=beam)


class _EndOfFile(io.BytesIO):
    """The file's bytes as a stream that raises at its end instead of returning nothing: fabio's
    CBF reader waits for more bytes without end when a damaged header hides the binary
    section's start from it."""

    def read(self, size: Optional[int] = -1) -> bytes:
        if size is not None and size > 0 and self.tell() >= len(self.getbuffer()):
            raise EOFError("read past the end of the file")
        return super().read(size)


def _cbf_binary_fields(path, raw: bytes) -> Dict[str, int]:
    """The MIME header of a CBF's binary section, checked against the bytes that follow: the
    declared size present and, when the header gives it, its MD5 digest equal, so that a
    truncated or corrupted file is refused instead of decoded into wrong counts."""
    import base64
    import hashlib

    starter = raw.find(b"\x0c\x1a\x04\xd5")
    if starter < 0:
        raise ValueError(f"{path}: the CBF has no binary section (no start marker)")
    fields: Dict[str, int] = {}
    md5 = None
    for line in raw[:starter].decode("ascii", errors="replace").splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "Content-MD5":
            md5 = value
        elif key in ("X-Binary-Size", "X-Binary-Size-Fastest-Dimension", "X-Binary-Size-Second-Dimension"):
            if not value.isdigit() or int(value) < 1:
                raise ValueError(f"{path}: the CBF field {key} is {value!r}, not an integer >= 1")
            fields[key] = int(value)
    for key in ("X-Binary-Size", "X-Binary-Size-Fastest-Dimension", "X-Binary-Size-Second-Dimension"):
        if key not in fields:
            raise ValueError(f"{path}: the CBF binary section has no {key}")
    blob = raw[starter + 4:starter + 4 + fields["X-Binary-Size"]]
    if len(blob) < fields["X-Binary-Size"]:
        raise ValueError(f"{path}: the CBF is truncated: {len(blob)} bytes of data, X-Binary-Size declares "
                         f"{fields['X-Binary-Size']}")
    if md5 is not None and base64.b64encode(hashlib.md5(blob).digest()).decode("ascii") != md5:
        raise ValueError(f"{path}: the CBF data do not match their Content-MD5 (the file is corrupt)")
    return fields


@fill_doc
def write_cbf(path: Union[str, Path], data: np.ndarray, *, pixel_size_mm: float, distance_mm: float,
              wavelength_A: float, beam_center_px: Tuple[float, float]) -> None:
    """Write an integer image as a miniCBF file with a Pilatus header.

    The header's ``_array_data.header_contents`` carries ``Pixel_size``, ``Detector_distance``
    (m), ``Wavelength`` (Å) and ``Beam_xy`` (pixels) in the words Pilatus detectors write
    them, so that fabio, DIALS and :func:`read_image` find the geometry.

    Parameters
    ----------
    %(write_path)s
    data : ndarray (slow, fast) of integers
        The pixels, stored as 32-bit integers with CBF's byte-offset compression.
    pixel_size_mm : float
        Side of a pixel.
    distance_mm : float
        Sample-to-detector distance.
    wavelength_A : float
        X-ray wavelength.
    beam_center_px : tuple of 2 floats
        The direct beam, (fast, slow) in pixels from the first pixel's outer corner.
    """
    cbfimage = _fabio().cbfimage
    fast_px, slow_px = beam_center_px
    contents = "\r\n".join([
        "# Detector: nanobrag-torch simulated detector",
        f"# Pixel_size {pixel_size_mm * 1e-3:.6e} m x {pixel_size_mm * 1e-3:.6e} m",
        f"# Detector_distance {distance_mm * 1e-3:.8g} m",
        f"# Wavelength {wavelength_A:.8g} A",
        f"# Beam_xy ({fast_px:.8g}, {slow_px:.8g}) pixels",
    ])
    image = cbfimage.CbfImage(data=np.ascontiguousarray(data, dtype=np.int32),
                     header={"_array_data.header_convention": "PILATUS_1.2",
                             "_array_data.header_contents": contents})
    with tempfile.TemporaryDirectory() as folder:
        scratch = os.path.join(folder, "image.cbf")
        image.write(scratch)
        encoded = Path(scratch).read_bytes()
    with atomic_write(path, "wb") as handle:
        handle.write(encoded)


# ----------------------------------------------------------------------------- HDF5 / NeXus
def _h5py():
    try:
        import h5py
        import hdf5plugin  # noqa: F401  (registers the bitshuffle/LZ4 filters Eiger data need)
    except ImportError:
        raise ImportError("reading HDF5/NeXus images needs h5py and hdf5plugin: "
                          "pip install nanobrag-torch[io]") from None
    return h5py


def _read_nexus(path, index: int) -> DetectorImage:
    h5py = _h5py()
    try:
        with h5py.File(path, "r") as master:
            return _read_nxmx(path, master, index)
    except (OSError, KeyError, RuntimeError, TypeError, ValueError, AttributeError) as error:
        if isinstance(error, ValueError) and str(error).startswith(f"{path}: "):
            raise  # ours, naming the field
        raise ValueError(f"{path}: not a readable HDF5/NeXus image ({type(error).__name__}: {error})") from None


def _read_nxmx(path, master, index: int) -> DetectorImage:
    h5py = _h5py()
    group = master.get("entry/data")
    if not isinstance(group, h5py.Group):
        raise ValueError(f"{path}: no /entry/data group (not a NeXus NXmx master file)")
    names = ["data"] if "data" in group else sorted(n for n in group if re.fullmatch(r"data_\d+", n))
    if not names:
        raise ValueError(f"{path}: /entry/data holds neither 'data' nor 'data_000001', ...")
    blocks = []
    for name in names:
        dataset = group.get(name)
        if dataset is None:
            raise ValueError(f"{path}: /entry/data/{name} cannot be opened (missing external file?)")
        if not isinstance(dataset, h5py.Dataset) or dataset.ndim not in (3, 4) or dataset.dtype.kind not in "iuf":
            raise ValueError(f"{path}: /entry/data/{name} must be numbers (frames, slow, fast) or (frames, "
                             f"panels, slow, fast), got {getattr(dataset, 'dtype', type(dataset).__name__)} "
                             f"{getattr(dataset, 'shape', '')}")
        blocks.append((name, dataset))
    frame_shapes = {dataset.shape[1:] for _, dataset in blocks}
    if len(frame_shapes) != 1:
        raise ValueError(f"{path}: the datasets of /entry/data have different frame shapes {sorted(frame_shapes)}")
    n_frames = sum(dataset.shape[0] for _, dataset in blocks)
    if not 0 <= index < n_frames:
        raise ValueError(f"{path}: frame index {index} out of range: the file holds {n_frames} frames")
    local = index
    for name, dataset in blocks:
        if local < dataset.shape[0]:
            break
        local -= dataset.shape[0]
    frame = np.asarray(dataset[local])
    counts = frame.astype(np.float64)
    mask = ~np.isfinite(counts) | (counts < 0)
    if frame.dtype.kind == "u":
        mask |= frame == np.iinfo(frame.dtype).max
    saturation = _scalar(path, master, f"{_NXMX_DETECTOR}/saturation_value")
    saturated = counts >= saturation if saturation is not None else np.zeros(counts.shape, dtype=bool)
    mask |= saturated
    pixel_mask = master.get(f"{_NXMX_DETECTOR}/pixel_mask")
    if pixel_mask is not None:
        values = np.asarray(pixel_mask)
        if values.shape != frame.shape or values.dtype.kind not in "iub":
            raise ValueError(f"{path}: {_NXMX_DETECTOR}/pixel_mask is {values.dtype} {values.shape}, expected "
                             f"integers of the frames' shape {frame.shape}")
        mask |= values != 0
    pixel_m = _length_m(path, master, f"{_NXMX_DETECTOR}/x_pixel_size")
    distance_m = _length_m(path, master, f"{_NXMX_DETECTOR}/distance")
    if distance_m is None:
        distance_m = _length_m(path, master, f"{_NXMX_DETECTOR}/detector_distance")
    beam_x = _scalar(path, master, f"{_NXMX_DETECTOR}/beam_center_x")
    beam_y = _scalar(path, master, f"{_NXMX_DETECTOR}/beam_center_y")
    return DetectorImage(counts=counts, mask=mask, saturated=saturated,
                         pixel_size_mm=None if pixel_m is None else pixel_m * 1e3,
                         distance_mm=None if distance_m is None else distance_m * 1e3,
                         wavelength_A=_wavelength_A(path, master),
                         beam_center_px=None if beam_x is None or beam_y is None else (beam_x, beam_y),
                         n_frames=n_frames)


def _scalar(path, master, name: str) -> Optional[float]:
    """A finite number of the file, None when the dataset is absent."""
    dataset = master.get(name)
    if dataset is None:
        return None
    try:
        value = np.asarray(dataset[()], dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: /{name} is not a number") from None
    if value.size != 1 or not np.isfinite(value).all():
        raise ValueError(f"{path}: /{name} must be one finite number, got {value.ravel()[:4].tolist()}")
    return float(value.ravel()[0])


def _units(dataset) -> str:
    units = dataset.attrs.get("units", "")
    return (units.decode("ascii", errors="replace") if isinstance(units, bytes) else str(units)).strip().lower()


def _length_m(path, master, name: str) -> Optional[float]:
    """A length in metres (NXmx's default unit), converted from its ``units`` attribute."""
    value = _scalar(path, master, name)
    if value is None:
        return None
    units = _units(master[name]) or "m"
    if units not in _LENGTH_UNITS_M:
        raise ValueError(f"{path}: /{name} has units {units!r}, not a length unit (m, mm, um)")
    return value * _LENGTH_UNITS_M[units]


def _wavelength_A(path, master) -> Optional[float]:
    for name in ("entry/instrument/beam/incident_wavelength", "entry/sample/beam/incident_wavelength"):
        value = _scalar(path, master, name)
        if value is not None:
            units = _units(master[name]) or "angstrom"
            if units not in _WAVELENGTH_UNITS_A:
                raise ValueError(f"{path}: /{name} has units {units!r}, not angstrom or nm")
            return value * _WAVELENGTH_UNITS_A[units]
    return None
