"""Run a plan: check the outputs can be written, build the library objects, simulate with a
progress bar, and write the files."""

from __future__ import annotations

import os
import re
import sys
from typing import List, Sequence

import numpy as np

from .options import PROGRAM, UsageError
from .plan import Outputs, Plan
from .report import _print_setup, _write_outputs


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
    from ..models.crystal import Crystal
    from ..models.detector import Detector
    from ..simulator import Simulator

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
    from ..io import hkl
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
        from ..io.hkl import write_fdump
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
