"""The performance issue's benchmarks in one run, side by side with nanoBragg C.

Measures, on this machine and in this run, each as the median over ``--repeats`` rounds:

* the seed command (the tutorial's nanoBragg command line: 2463 × 2527 Pilatus, real HKL,
  10 phi steps), whole process as a user times it (start-up, reading files, rendering,
  writing files), with ``-nonoise`` and with the noise image (C's default), for nanoBragg C
  (``--c PATH``, ``OMP_NUM_THREADS`` = ``--threads``) and for ``python -m nanobrag_torch``;
* nanoBragg C on the library benchmark's experiment (the seed experiment as a still with 5
  mosaic domains, :data:`bench_seed_experiment.C_ARGS`), whole process: the reference of the
  library's ratios;
* the library on that experiment, float32, by ``bench_seed_experiment.py --json`` in a fresh
  process: first call (import, set-up, first image; and the part of it that is ``import
  torch``), forward image, forward + backward (MSE with respect to phi and the mosaic
  spread), peak resident memory;
* start-up, in a fresh process: ``import nanobrag_torch.cli``, then numba's import and the
  loading of the cached Bragg loops (their first call, on one scattering vector), which every
  CPU render pays;
* the refinement of the tutorial problem (``bench_refine.refine_case`` on the noise-free image,
  from phi 1°, mosaic 0.5°), in this process.

Within a round the processes run in turn, C first; the ratios are medians of the per-round
ratios, so that a machine whose speed drifts during the run still gives comparable ratios.
The load average before and after is printed: on a shared machine, quote it with the numbers.

``--quick`` is a smoke test (well under a minute, numbers meaningless): one round, the
commands on a 64 × 64 region of interest, the library on a 128 × 128 square, no refinement.

Usage::

    PYTHONPATH=src python benchmarks/run_all.py --c /tmp/nanoBragg [--repeats 3] [--threads 2]
    PYTHONPATH=src python benchmarks/run_all.py --quick
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = ROOT / "src" / "nanobrag_torch" / "data"
sys.path[:0] = [str(HERE), str(ROOT / "src")]  # the refinement runs here, on this checkout as the children do
from bench_refine import TUTORIAL, refine_case, tutorial_problem  # noqa: E402
from bench_seed_experiment import C_ARGS as LIBRARY_EXPERIMENT  # noqa: E402

SEED_COMMAND = [
    "-mat", "A.mat", "-floatfile", "img.bin", "-hkl", "scaled.hkl", "-nonoise", "-nointerpolate",
    "-oversample", "1", "-exposure", "1", "-flux", "1e18", "-beamsize", "1.0", "-spindle_axis", "-1", "0", "0",
    "-Xbeam", "217.742295", "-Ybeam", "213.907080", "-distance", "231.274660", "-lambda", "0.976800",
    "-pixel", "0.172", "-detpixels_x", "2463", "-detpixels_y", "2527",
    "-odet_vector", "-0.000088", "0.004914", "-0.999988", "-sdet_vector", "-0.005998", "-0.999970", "-0.004913",
    "-fdet_vector", "0.999982", "-0.005998", "-0.000118", "-pix0_vector_mm", "-216.336293", "215.205512",
    "-230.200866", "-beam_vector", "0.00051387949", "0.0", "-0.99999986", "-Na", "36", "-Nb", "47", "-Nc", "29",
    "-osc", "0.1", "-phi", "0", "-phisteps", "10", "-detector_rotx", "0", "-detector_roty", "0",
    "-detector_rotz", "0", "-twotheta", "0",
]
"""The seed's command line (``shared/seed/real_world_refinement_tutorial_spec.md``, "Background")."""

QUICK_ROI = ["-roi", "1200", "1263", "1200", "1263"]
"""``--quick``: the commands render a 64 × 64 region of interest only."""

STARTUP = r"""
import json, time
import numpy as np
t = time.perf_counter(); import nanobrag_torch.cli; cli = time.perf_counter() - t
t = time.perf_counter()
from nanobrag_torch import _bragg_kernels as loops
loops.forward(np.zeros((3, 1)), np.eye(3)[None], np.ones(3), np.ones((1, 1, 1)), np.zeros(3), np.empty(1))
print(json.dumps({"cli": cli, "loops": time.perf_counter() - t}))
"""
"""Child process: seconds of ``import nanobrag_torch.cli``, then of importing numba and the
Bragg loops and loading their cached machine code (the first call, on one float64 scattering
vector as the command renders)."""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--c", dest="c_binary", help="nanoBragg C binary (without it, no C times and no ratios)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds (median), default 3")
    parser.add_argument("--threads", type=int, default=2, help="C's OMP_NUM_THREADS and torch's thread count")
    parser.add_argument("--quick", action="store_true", help="smoke test: one small round, no refinement")
    args = parser.parse_args()
    if args.repeats < 1 or args.threads < 1:
        parser.error(f"--repeats and --threads must be at least 1, got {args.repeats} and {args.threads}")
    return args


def wall_time(command, cwd, env) -> float:
    """Seconds from start to exit of ``command``; its output is discarded, a failure raises."""
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def child_json(command, env) -> dict:
    """The JSON object that ``command`` prints last."""
    result = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def commands(c_binary, quick: bool) -> dict:
    """The whole-process runs of a round, by row name, C's before ours."""
    roi = QUICK_ROI if quick else []
    ours = [sys.executable, "-m", "nanobrag_torch"]
    with_noise = [a for a in SEED_COMMAND if a != "-nonoise"]
    runs = {}
    if c_binary:
        runs["C: library experiment (still, 5 domains), forward"] = [c_binary, *LIBRARY_EXPERIMENT, *roi]
        runs["C: seed command, -nonoise"] = [c_binary, *SEED_COMMAND, *roi]
    runs["nanobragg: seed command, -nonoise"] = ours + SEED_COMMAND + roi
    if c_binary:
        runs["C: seed command, with noise image"] = [c_binary, *with_noise, *roi]
    runs["nanobragg: seed command, with noise image"] = ours + with_noise + roi
    return runs


def main() -> int:
    args = parse_args()
    rounds = 1 if args.quick else args.repeats
    load_before = os.getloadavg()
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
    c_binary = str(Path(args.c_binary).resolve()) if args.c_binary else None
    runs = commands(c_binary, args.quick)
    library_command = [sys.executable, str(HERE / "bench_seed_experiment.py"), "--json", "--repeats", "2"]
    library_command += ["--crop", "128"] if args.quick else []
    times = {name: [] for name in runs}
    library, startup = [], []
    with tempfile.TemporaryDirectory() as work:
        for name in ("A.mat", "scaled.hkl"):
            shutil.copy(DATA / name, work)
        for _ in range(rounds):
            for name, command in runs.items():
                times[name].append(wall_time(command, work, env))
            library.append(child_json(library_command, env))
            startup.append(child_json([sys.executable, "-c", STARTUP], env))
    refinement = []
    if not args.quick:
        problem = tutorial_problem(args.threads, seed=1)
        refinement = [refine_case(problem, *TUTORIAL)[0] for _ in range(rounds)]
    load_after = os.getloadavg()

    c_forward = times.get("C: library experiment (still, 5 domains), forward")
    rows = []
    for name, values in times.items():
        reference = times.get(name.replace("nanobragg:", "C:")) if name.startswith("nanobragg:") else None
        rows.append((name, values, reference))
    for key, title in (("forward_s", "forward image"), ("forward_backward_s", "forward + backward (MSE, phi and mosaic)")):
        rows.append((f"library: {title}", [run[key] for run in library], c_forward))
    rows.append(("library: first call (fresh process: import, set-up, first image)",
                 [run["first_call_s"] for run in library], None))
    rows.append(("library: first call, of it import torch", [run["import_torch_s"] for run in library], None))
    rows.append(("start-up: import nanobrag_torch.cli", [run["cli"] for run in startup], None))
    rows.append(("start-up: import numba, load the cached Bragg loops", [run["loops"] for run in startup], None))
    rows.append(("refinement of the tutorial problem (bench_refine)", refinement, None))

    print(f"{sys.platform}, {os.cpu_count()} CPUs, {args.threads} threads, torch {library[0]['torch']}, "
          f"{rounds} rounds{', --quick (not a benchmark)' if args.quick else ''}; "
          f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after")
    print("\n| measurement | median | ratio to C |\n|---|---|---|")
    for name, values, reference in rows:
        if not values:
            print(f"| {name} | not run{' (--quick)' if args.quick else ''} | |")
            continue
        ratio = f"{statistics.median(v / r for v, r in zip(values, reference)):.2f}×" if reference else ""
        print(f"| {name} | {statistics.median(values):.2f} s | {ratio} |")
    peak = statistics.median(run["peak_gib"] for run in library)
    print(f"| library: peak resident memory (forward and backward) | {peak:.2f} GiB | |")
    print("\nRatios: each command to C's same command; the library's times to C's whole-process forward "
          "image of the library experiment.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
