"""The ``nanobragg`` command: nanoBragg C's command line on top of the library.

``nanobragg`` (or ``python -m nanobrag_torch``) takes nanoBragg C's flags, prints a summary
like C's, and writes the same files: the raw float image (``-floatfile``, default
``floatimage.bin``), the noiseless SMV integer image (``-intfile``, default ``intimage.img``),
the same integers as a miniCBF file when ``-cbffile`` names one, the 8-bit PGM (``-pgmfile``,
default ``image.pgm``, unless ``-nopgm``), the Poisson noise SMV
image (``-noisefile``, default ``noiseimage.img``, unless ``-nonoise``) and, after reading a text
HKL file, the ``Fdump.bin`` cache (``-dump``). It is a drop-in replacement for the C program.

The package: :mod:`~nanobrag_torch.cli.options` (the flag table and the scan of the
arguments), :mod:`~nanobrag_torch.cli.plan` (C's automatic choices, the library configs),
:mod:`~nanobrag_torch.cli.simulate` (running a plan) and :mod:`~nanobrag_torch.cli.report`
(the summary and the output files).

Options are matched as C matches them: an argument selects every option whose text it
*contains* (``-matrix`` is ``-mat``; ``-twotheta_axis`` also sets the two-theta angle;
``-misset_seed`` also sets the misset angles), with C's exact and length-checked exceptions.
Input quirks of C are reproduced and reported with one warning line each on stderr; physics
quirks are reproduced by the library's ``c_quirks`` switch (see the Physics model page of the
documentation).

Deliberate differences from C, all failing loudly instead of silently:

* an unknown option, a stray argument, a missing or non-numeric value is an error
  (C ignores unknown arguments and reads a missing number as 0), and so is a value that is
  not finite (``nan``, ``inf``, ``1e999``), on any flag and in an ``-img``/``-mask`` header;
* a value outside its physical range is an error naming it as it was given, with what C
  would have done instead where C silently substitutes something: a pixel size, distance or
  wavelength ≤ 0, a pixel count, ``-N``, mosaic domains, phi steps, oversampling or any other
  count ≤ 0 (``-detpixels 0``: C takes the size from ``-detsize``; ``-N 0``: C uses one cell;
  ``-distance -5``: C uses 5 mm), a negative size, spread, range or thickness. The table is
  :data:`~nanobrag_torch.cli.plan.PHYSICAL_BOUNDS`;
* an unreadable input file, a malformed matrix or HKL file, no ``-cell``/``-mat``, no
  structure factors, or an unwritable output path is an error before anything is simulated.

Every error is one line ``nanobragg: error: ...`` on stderr (and nothing else: the warnings
of a run are printed once its inputs have been read) and exit status 2; no output file is
touched (outputs are written to a temporary name and renamed).
"""

from __future__ import annotations

import sys
from typing import Optional, Sequence

from .options import ERROR_EXIT, OPTIONS, PROGRAM, UsageError, library_message, scan_arguments
from .plan import Plan, parse_args
from .simulate import build_simulator, run

__all__ = ["main", "parse_args", "build_simulator", "run", "scan_arguments", "Plan"]


def _usage() -> str:
    names = sorted({o.key for o in OPTIONS})
    return (f"usage: {PROGRAM} -mat auto.mat -hkl Fs.hkl [options]  (or -cell a b c al be ga -default_F F)\n"
            f"options (as nanoBragg C; see the documentation): {' '.join(names)}\n")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``nanobragg`` / ``python -m nanobrag_torch``; returns the exit status.

    Every error is one line ``nanobragg: error: <what>`` on stderr and status 2, with no
    traceback and no output file written.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments, without the program name, as nanoBragg C takes them. Default:
        ``sys.argv[1:]``.

    Returns
    -------
    int
        The exit status: 0 on success (and for ``-h``), 2 for an error, 130 when interrupted.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "-help", "--help") for a in argv):
        sys.stdout.write(_usage())
        return 0
    try:
        return run(parse_args(argv))
    except UsageError as error:
        message = str(error)
    except (ValueError, OSError, RuntimeError, MemoryError) as error:
        message = library_message(error)
    except KeyboardInterrupt:
        print(f"\n{PROGRAM}: interrupted", file=sys.stderr)
        return 130
    print(f"{PROGRAM}: error: {_one_line(message)}", file=sys.stderr)
    return ERROR_EXIT


def _one_line(message: str) -> str:
    """``message`` with its control characters (a line break or carriage return inside a bad
    argument or file name) written as escapes, so that the error stays one line."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in message)
