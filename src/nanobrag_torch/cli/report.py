"""What the command prints and writes: C's set-up summary, image statistics, the SMV header, the
PGM scale, and the output files."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Dict, Optional

import numpy as np
import torch

from .._docs import fill_doc
from ..config import DetectorConfig, DetectorPivot
from ..io.atomic import atomic_write
from ..io.images import write_cbf
from ..io.mosflm import cell_parameters
from ..io.pgm import write_pgm
from ..io.smv import write_smv
from ..layout import roi_bounds
from ..models.detector import DetectorGeometry
from ..noise import int_image, intfile_scale, noise_image
from ..prepared import PreparedRun
from ..simulator import Simulator
from .options import PROGRAM
from .plan import Plan


@dataclass
class Statistics:
    """nanoBragg's image statistics over the rendered pixels.

    Attributes
    ----------
    max_I : float
        The largest value, in photons (0 without rendered pixels).
    max_fast, max_slow : int
        Pixel coordinates of the (first) largest value.
    mean : float
        Mean value, in photons.
    rms : float
        Root mean square ``sqrt(Σ v² / (n − 1))`` over the n rendered pixels.
    rmsd : float
        Root mean square deviation from ``mean`` over the ROI (masked pixels included), as C
        computes it.
    """

    max_I: float
    max_fast: int
    max_slow: int
    mean: float
    rms: float
    rmsd: float


def image_statistics(image: np.ndarray, detector: DetectorConfig) -> Statistics:
    """max, mean and rms over rendered (ROI, unmasked) pixels, rmsd over the ROI.

    Parameters
    ----------
    image : ndarray (spixels, fpixels)
        The float image, photons per pixel.
    detector : DetectorConfig
        Gives the ROI and the mask.

    Returns
    -------
    Statistics
    """
    spixels, fpixels = image.shape
    fmin, fmax, smin, smax = roi_bounds(detector.roi, fpixels, spixels)
    in_roi = np.zeros(image.shape, dtype=bool)
    in_roi[smin:smax + 1, fmin:fmax + 1] = True
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


@fill_doc
def smv_header(plan: Plan, geometry: DetectorGeometry, fpixels: int, spixels: int) -> Dict[str, str]:
    """The SMV header nanoBragg writes, values formatted as C's ``%g``.

    Parameters
    ----------
    %(plan)s
    geometry : DetectorGeometry
        The run's detector geometry (beam centre, distances, origins, axes).
    %(fpixels_spixels)s

    Returns
    -------
    dict of str
        Keys and formatted values, in the order they are written
        (:func:`~nanobrag_torch.io.smv.write_smv`).
    """
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


def pgm_scale(requested: Optional[float], statistics: Statistics, int_scale: float) -> float:
    """PGM scale: ``-pgmscale`` if given, else 250/(5·rmsd), else the integer-image scale.

    Parameters
    ----------
    requested : float or None
        The ``-pgmscale`` value, if given.
    statistics : Statistics
        The float image's statistics (its ``rmsd``).
    int_scale : float
        The integer image's scale (:func:`~nanobrag_torch.noise.intfile_scale`).

    Returns
    -------
    float
        Grey levels per photon.
    """
    if requested is not None:
        return requested
    if statistics.rmsd > 0:
        return 250.0 / (5.0 * statistics.rmsd)
    return int_scale


@fill_doc
def print_setup(plan: Plan, simulator: Simulator, prepared: PreparedRun, geometry: DetectorGeometry, out) -> None:
    """The set-up summary, in the words and formats of nanoBragg C's stdout.

    Parameters
    ----------
    %(plan)s
    simulator : Simulator
        The simulator built from the plan (its crystal's cell vectors are printed).
    %(prepared)s
    geometry : DetectorGeometry
        The detector's geometry (:meth:`Detector.geometry
        <nanobrag_torch.models.detector.Detector.geometry>`), whose derived quantities are printed.
    %(out)s
    """
    det, cry = plan.detector, plan.crystal
    with torch.no_grad():
        real = [v.detach().cpu().numpy() for v in simulator.crystal.real_space_vectors_A()]
        recip = [v.detach().cpu().numpy() for v in simulator.crystal.reciprocal_vectors_per_A()]
    pixel_m = float(geometry.pixel_size_m)
    print(f"nanoBragg nanocrystal diffraction simulator - nanobrag-torch {PROGRAM} command", file=out)
    print(f"{det.detector_convention.value} convention selected.", file=out)
    print("pivoting detector around " + ("direct beam spot" if geometry.pivot is DetectorPivot.BEAM
                                         else "sample"), file=out)
    print("Unit Cell: " + " ".join(f"{v:g}" for v in cell_parameters(*real)), file=out)
    print("Recp Cell: " + " ".join(f"{v:g}" for v in cell_parameters(*recip)), file=out)
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
    print(f"  created a total of {prepared.n_sources} sources", file=out)
    print(f"  created a total of {cry.mosaic_domains} mosaic domains", file=out)
    print(f"  {cry.shape.value} xtal: {cry.N_cells[0]}x{cry.N_cells[1]}x{cry.N_cells[2]} cells", file=out)
    print(f"  Kahn polarization factor: {float(plan.beam.polarization_factor):f}"
          + (" (polarization correction off)" if plan.beam.nopolar else ""), file=out)
    print(f"  incident fluence: {float(plan.beam.fluence):g} photons/m^2", file=out)
    print(f"  distance={float(geometry.distance_m):g} detsize={det.fpixels * pixel_m:g}x"
          f"{det.spixels * pixel_m:g}  pixel={pixel_m:g} meters ({det.fpixels}x{det.spixels} pixels)", file=out)
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
    print(f"  {prepared.n_sources} sources", file=out)
    print(f"  {cry.mosaic_domains} mosaic domains over mosaic spread of {float(cry.mosaic_spread_deg):g} degrees",
          file=out)
    phi_end = float(cry.phi_start_deg) + plan.header["osc_deg"]
    print(f"  {cry.phi_steps} phi steps from {float(cry.phi_start_deg):g} to {phi_end:g} degrees", file=out)
    print(f"  {prepared.oversample}x{prepared.oversample} pixel oversample steps", file=out)
    if plan.outputs.noisefile is not None:
        print(f"  noise image seed: {-plan.noise.seed}", file=out)


@fill_doc
def write_outputs(plan: Plan, prepared: PreparedRun, geometry: DetectorGeometry, floats: np.ndarray, out) -> None:
    """Float, integer (SMV, and miniCBF with ``-cbffile``), PGM and noise images, in C's order
    and words.

    Each file is written atomically; the lines C prints about them go to ``out``.

    Parameters
    ----------
    %(plan)s
    %(prepared)s
    geometry : DetectorGeometry
        The detector's geometry, for the SMV and CBF headers.
    floats : ndarray (spixels, fpixels)
        The rendered float image, photons per pixel.
    %(out)s
    """
    det = plan.detector
    print(f"writing {plan.outputs.floatfile} as {floats.size} 4-byte floats", file=out)
    with atomic_write(plan.outputs.floatfile, "wb") as handle:
        handle.write(np.ascontiguousarray(floats, dtype=np.float32).tobytes())
    stats = image_statistics(floats, det)
    n = prepared.oversample
    pixel_m = float(geometry.pixel_size_m)
    fdet = pixel_m / n * (stats.max_fast * n + n - 1) + pixel_m / n / 2
    sdet = pixel_m / n * (stats.max_slow * n + n - 1) + pixel_m / n / 2
    print(f"max_I = {stats.max_I:g}  at {fdet:g} {sdet:g}", file=out)
    print(f"mean= {stats.mean:g} rms= {stats.rms:g} rmsd= {stats.rmsd:g}", file=out)
    scale = intfile_scale(stats.max_I, plan.noise.intfile_scale)
    print(f"intfile_scale = {scale:g}", file=out)
    header = smv_header(plan, geometry, det.fpixels, det.spixels)
    print(f"writing {plan.outputs.intfile} as 2-byte integers", file=out)
    integers = int_image(floats, scale, plan.noise.adc_offset_adu, det.roi)
    write_smv(plan.outputs.intfile, integers, header)
    if plan.outputs.cbffile is not None:
        print(f"writing {plan.outputs.cbffile} as a miniCBF of the same integers", file=out)
        write_cbf(plan.outputs.cbffile, integers, pixel_size_mm=det.pixel_size_mm,
                  distance_mm=float(geometry.distance_m) * 1000, wavelength_A=float(plan.beam.wavelength_A),
                  beam_center_px=(float(geometry.Fbeam_m) * 1000 / det.pixel_size_mm,
                                  float(geometry.Sbeam_m) * 1000 / det.pixel_size_mm))
    if plan.outputs.pgmfile is not None:
        scale_pgm = pgm_scale(plan.pgm_scale, stats, scale)
        print(f"writing {plan.outputs.pgmfile} as 1-byte pixels, scaled by {scale_pgm:g}", file=out)
        write_pgm(plan.outputs.pgmfile, floats, scale_pgm)
    if plan.outputs.noisefile is not None:
        noisy, photons, overloads = noise_image(floats, plan.noise.seed, plan.noise.adc_offset_adu, det.roi)
        print(f"{photons:.0f} photons on noise image ({overloads} overloads)", file=out)
        print(f"writing {plan.outputs.noisefile} as 2-byte integers", file=out)
        write_smv(plan.outputs.noisefile, noisy, header)
