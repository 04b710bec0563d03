"""Run a plan: check the outputs can be written, build the library objects, simulate with a
progress bar, and write the files."""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from tqdm import tqdm

from ..io.hkl import read_fdump, read_hkl_file, write_fdump
from ..models.crystal import Crystal
from ..models.detector import Detector
from ..simulator import Simulator
from ..structure_factors import StructureFactors
from .options import PROGRAM, UsageError, library_message
from .plan import Outputs, Plan
from .report import print_setup, write_outputs


def _check_writable(outputs: Sequence[Tuple[str, str]], inputs: Sequence[Tuple[str, str]]) -> None:
    """Fail before simulating if an output file, given as (flag, path), could not be written, if
    two outputs are the same file (the later would silently replace the earlier), or if an
    output is one of the ``inputs`` (flag, path) the run reads (it would be destroyed)."""
    read = {os.path.realpath(path): (flag, path) for flag, path in inputs}
    seen = {}
    for flag, path in outputs:
        if not path:
            raise UsageError(f"{flag} needs a file name, got ''")
        if os.path.realpath(path) in read:
            source_flag, source = read[os.path.realpath(path)]
            raise UsageError(f"{flag} {path} is the input file of {source_flag} {source}: writing it would "
                             f"destroy the input; name another output file")
        same = seen.setdefault(os.path.realpath(path), (flag, path))
        if same != (flag, path):
            raise UsageError(f"{same[0]} {same[1]} and {flag} {path} are the same file: one output would "
                             f"replace the other")
        folder = os.path.dirname(os.path.abspath(path))
        if os.path.isdir(path):
            raise UsageError(f"cannot write {path}: it is a directory")
        if not os.path.isdir(folder):
            raise UsageError(f"cannot write {path}: folder {folder} does not exist")
        if not os.access(folder, os.W_OK | os.X_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
            raise UsageError(f"cannot write {path}: permission denied")


def _output_paths(outputs: Outputs) -> List[Tuple[str, str]]:
    """(flag, path) of every file the run writes."""
    named = (("-floatfile", outputs.floatfile), ("-intfile", outputs.intfile), ("-pgmfile", outputs.pgmfile),
             ("-noisefile", outputs.noisefile), ("-cbffile", outputs.cbffile), ("-dump", outputs.fdump))
    return [(flag, path) for flag, path in named if path is not None]


def build_simulator(plan: Plan, device="cpu", dtype=None) -> Tuple[Simulator, Optional[StructureFactors]]:
    """The library objects of a plan: the simulator and the structure factors it uses.

    Parameters
    ----------
    plan : Plan
        The command's plan: the library configurations and the outputs, from ``parse_args``.
    device : str or torch.device
        Device of the crystal's and detector's tensors. Default: the CPU.
    dtype : torch.dtype, optional
        Default float64 (parity with C).

    Returns
    -------
    simulator : Simulator
        Built with ``c_quirks=True``.
    structure : StructureFactors or None
        The HKL table read from ``-hkl`` or the Fdump cache (it unpacks as ``grid, metadata``);
        None for a pure ``-default_F`` run.
    """
    dtype = torch.float64 if dtype is None else dtype
    structure = _read_structure_factors(plan)
    crystal = Crystal(plan.crystal, structure, device=device, dtype=dtype)
    detector = Detector(plan.detector, device=device, dtype=dtype)
    simulator = Simulator(crystal=crystal, detector=detector, beam_config=plan.beam, c_quirks=True)
    return simulator, structure


def _read_structure_factors(plan: Plan) -> Optional[StructureFactors]:
    if plan.hklfile is not None:
        try:
            return read_hkl_file(plan.hklfile, plan.crystal.default_F)
        except (ValueError, OSError) as error:
            raise UsageError(f"-hkl {library_message(error)}") from None
    if plan.fdump_in is not None:
        try:
            return read_fdump(plan.fdump_in)
        except (ValueError, OSError) as error:
            raise UsageError(f"{plan.fdump_in}: not a readable Fdump cache ({library_message(error)}); "
                             f"delete it or give -hkl") from None
    return None


@contextlib.contextmanager
def progress_bar(stream, requested: Optional[bool]) -> Iterator[Optional[Callable[[int, int], None]]]:
    """A tqdm progress bar of the rendered pixels, for :meth:`Simulator.run`'s ``progress``.

    Parameters
    ----------
    stream : text stream
        Where the bar is drawn (the command's stderr).
    requested : bool or None
        True (``-progress``): always; False (``-noprogress``): never; None: only when ``stream``
        is a terminal, so that logs, pipes and the documentation's captured output never get one.

    Yields
    ------
    callable or None
        ``update(done_pixels, total_pixels)``, or None when no bar is drawn.
    """
    show = requested if requested is not None else stream.isatty()
    if not show:
        yield None
        return
    bars: List[tqdm] = []

    def update(done: int, total: int) -> None:
        if not bars:  # the total is known from the first report on
            bars.append(tqdm(total=total, file=stream, desc=PROGRAM, unit="pixel", unit_scale=True))
        bars[0].update(done - bars[0].n)

    try:
        yield update
    finally:
        for bar in bars:
            bar.close()


def run(plan: Plan, out=None, err=None) -> int:
    """Simulate a plan and write its files; returns the exit status (0).

    Parameters
    ----------
    plan : Plan
        The command's plan: the library configurations and the outputs, from ``parse_args``.
    out, err : text streams, optional
        Summary and warnings/progress streams (default stdout and stderr).

    Returns
    -------
    int
        The exit status, 0.

    Notes
    -----
    Everything that can fail on the inputs (the outputs' folders, the structure factors, the
    set-up) is done before the plan's warnings are printed, so that a failing run prints only
    its error line. The library's warnings during the run become warning lines too.
    """
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    _check_writable(_output_paths(plan.outputs), plan.inputs)
    simulator, structure = build_simulator(plan)
    with torch.no_grad():
        prepared = simulator.prepare()
        geometry = simulator.detector.geometry()
    for line in plan.warnings:
        print(f"{PROGRAM}: warning: {line}", file=err)
    if plan.outputs.fdump is not None:
        print(f"writing dump file for next time: {plan.outputs.fdump}", file=out)
        write_fdump(plan.outputs.fdump, *structure)
    print_setup(plan, simulator, prepared, geometry, out)
    with progress_bar(err, plan.progress) as progress, warnings.catch_warnings(record=True) as caught, \
            torch.no_grad():
        warnings.simplefilter("always")
        image = simulator.run(progress=progress, prepared=prepared)
    for warning in caught:
        print(f"{PROGRAM}: warning: {warning.message}", file=err)
    write_outputs(plan, prepared, geometry, _float_image(image), out)
    return 0


def _float_image(image: torch.Tensor) -> np.ndarray:
    """The rendered image in single precision, as the files hold it; an error naming the first
    pixel that is not finite there (the intensity overflowed), before any file is written."""
    values = image.detach().cpu().numpy()
    finite = np.isfinite(values) & (np.abs(values) <= np.finfo(np.float32).max)
    if not finite.all():
        slow, fast = np.argwhere(~finite)[0]
        raise UsageError(f"pixel (fast {fast}, slow {slow}) of the image is {values[slow, fast]:g} photons, which "
                         f"single-precision files cannot hold: check -fluence or -flux, -default_F and the "
                         f"amplitudes of -hkl")
    return values.astype(np.float32)
