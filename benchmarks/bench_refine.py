"""Time the refinement of the tutorial experiment and check it reaches the statistical limit.

The experiment is the seed tutorial's, as nanoBragg C runs it (``-pix0_vector_mm`` is ignored
by C, so the detector is placed by the beam centre and distance): the full 2463 × 2527 Pilatus,
A.mat and scaled.hkl, N = 36 × 47 × 29, five mosaic domains (seed 42) spread by 0.2°, a still at
phi 0°. Targets: the noise-free float image, and Poisson-noise images made with the package's
noise (bit-identical to ``nanobragg -seed n``'s noise image). Each case prints the wall time of
``refine`` (the first one in the process includes PyTorch's one-time set-up of forward-mode
differentiation), the simulator evaluations, and every parameter's error in standard errors,
with the limits the refinement is held to: 1e-4° on noise-free images, 5 standard errors (or
0.005°, 0.02 mm, 0.01 mm, whichever is larger) on noisy ones.

``--coverage N`` checks the error bars instead: it refines the detector case (the last of the
capture range, five parameters) on the noise images of seeds 1 to N and prints every
parameter's pulls, ``(estimate − truth) / standard error``. Honest error bars give pulls of
mean 0 and standard deviation 1, within the scatter of N draws.

Usage::

    python benchmarks/bench_refine.py                 # the tutorial problem: phi and mosaic, from (1°, 0.5°)
    python benchmarks/bench_refine.py --all           # and the capture range: far starts, misset, detector
    python benchmarks/bench_refine.py --threads 1 --seed 7
    python benchmarks/bench_refine.py --coverage 40   # pulls of the detector case over 40 noise images
"""

from __future__ import annotations

import argparse
import sys
import time

TRUTH = {"crystal.phi_start_deg": 0.0, "crystal.mosaic_spread_deg": 0.2, "crystal.misset_deg[0]": 0.0,
         "crystal.misset_deg[1]": 0.0, "crystal.misset_deg[2]": 0.0, "detector.distance_mm": 231.27466,
         "detector.beam_center_f": 217.742295, "detector.beam_center_s": 213.90708}
FLOOR = {"deg": 0.005, "distance_mm": 0.02, "beam_center": 0.01}
TUTORIAL = ("noise-free", {"crystal.phi_start_deg": 1.0, "crystal.mosaic_spread_deg": 0.5})
CASES = [
    ("noisy", {"crystal.phi_start_deg": 1.0, "crystal.mosaic_spread_deg": 0.5}),
    ("noisy", {"crystal.phi_start_deg": 2.5, "crystal.mosaic_spread_deg": 0.05}),
    ("noisy", {"crystal.phi_start_deg": -2.5, "crystal.mosaic_spread_deg": 0.8}),
    ("noisy", {"crystal.misset_deg[0]": 2.5, "crystal.misset_deg[1]": -2.5, "crystal.misset_deg[2]": 2.5,
               "crystal.mosaic_spread_deg": 0.8}),
    ("noisy", {"crystal.phi_start_deg": -2.5, "crystal.mosaic_spread_deg": 0.05, "detector.distance_mm": 230.27466,
               "detector.beam_center_f": 218.242295, "detector.beam_center_s": 213.40708}),
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--all", action="store_true", help="also run the capture-range cases")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the noise image (nanobragg -seed)")
    parser.add_argument("--coverage", type=int, metavar="N",
                        help="instead: pulls of the detector case over the noise images of seeds 1 to N")
    args = parser.parse_args()
    if args.coverage is not None and args.coverage < 2:
        parser.error(f"--coverage needs at least 2 noise images, got {args.coverage}")
    return args


def limit(name: str, stderr: float) -> float:
    floor = FLOOR["deg"] if name.endswith("_deg") or "_deg[" in name else (
        FLOOR["distance_mm"] if "distance" in name else FLOOR["beam_center"])
    return max(5 * stderr, floor)


def tutorial_problem(threads: int, seed: int) -> dict:
    """The tutorial experiment and its target images.

    Sets torch's thread count to ``threads``. Returns a dict with ``experiment`` (as
    :func:`nanobrag_torch.datasets.tutorial_experiment` returns it) and ``images``: the
    noise-free float image (``"noise-free"``) and a Poisson-noise image of it made with
    ``seed`` (``"noisy"``), as float64 arrays.
    """
    import numpy as np
    import torch

    from nanobrag_torch import Crystal, Detector, Simulator
    from nanobrag_torch.datasets import tutorial_experiment
    from nanobrag_torch.noise import noise_image

    torch.set_num_threads(threads)
    experiment = tutorial_experiment()
    with torch.no_grad():
        expected = Simulator(Crystal(experiment.crystal, experiment.structure_factors), Detector(experiment.detector),
                             experiment.beam).run()
    images = {"noise-free": expected.numpy(),
              "noisy": noise_image(expected.numpy(), seed=seed, adc_offset=0.0)[0].astype(np.float64)}
    return {"experiment": experiment, "images": images}


def refine_case(problem: dict, target: str, start: dict):
    """Refine ``problem``'s ``target`` image (``"noise-free"`` or ``"noisy"``) from the
    parameter values ``start``; returns the wall time of ``refine`` (s) and its result."""
    from nanobrag_torch.refine import refine

    experiment = problem["experiment"]
    begin = time.perf_counter()
    result = refine(problem["images"][target], start, crystal=experiment.crystal, detector=experiment.detector,
                    beam=experiment.beam, structure_factors=experiment.structure_factors, progress=False)
    return time.perf_counter() - begin, result


def coverage(threads: int, images: int) -> None:
    """Print the pulls of the detector case over the noise images of seeds 1 to ``images``,
    then each parameter's mean and standard deviation of them."""
    import numpy as np

    from nanobrag_torch.noise import noise_image

    problem = tutorial_problem(threads, 1)
    expected = problem["images"]["noise-free"]
    target, start = CASES[-1]
    pulls = {}
    for seed in range(1, images + 1):
        problem["images"][target] = noise_image(expected, seed=seed, adc_offset=0.0)[0].astype(np.float64)
        seconds, result = refine_case(problem, target, start)
        for name in result.names:
            pulls.setdefault(name, []).append((result.values[name] - TRUTH[name]) / result.stderr[name])
        shown = "  ".join(f"{pulls[name][-1]:+.2f}" for name in result.names)
        print(f"seed {seed:3d}: {seconds:5.1f} s, pulls {shown}", flush=True)
    print(f"\n{images} noise images; calibrated pulls scatter by {1 / np.sqrt(images):.2f} in the mean and "
          f"{1 / np.sqrt(2 * (images - 1)):.2f} in the standard deviation")
    for name, values in pulls.items():
        print(f"  {name:<28s} mean {np.mean(values):+.2f}  standard deviation {np.std(values, ddof=1):.2f}  "
              f"largest {np.max(np.abs(values)):.2f}")


def main() -> int:
    args = parse_args()
    import torch

    if args.coverage is not None:
        coverage(args.threads, args.coverage)
        return 0
    problem = tutorial_problem(args.threads, args.seed)
    print(f"tutorial experiment: 2463x2527 pixels, float32, {torch.get_num_threads()} threads, torch "
          f"{torch.__version__}; noise image seed {args.seed}: {problem['images']['noisy'].sum():.0f} photons")
    failures = 0
    for target, start in [TUTORIAL] + (CASES if args.all else CASES[:1]):
        seconds, result = refine_case(problem, target, start)
        print(f"\n{target}, start {start}\n  {seconds:.1f} s, {result.evaluations} simulator evaluations, "
              f"{result.pixels} pixels, {result.message}")
        for name in result.names:
            error = result.values[name] - TRUTH[name]
            bound = 1e-4 if target == "noise-free" else limit(name, result.stderr[name])
            ok = abs(error) <= bound
            failures += not ok
            print(f"  {name:<28s} error {error:+.2e}  ({error / result.stderr[name]:+.2f} standard errors of "
                  f"{result.stderr[name]:.2e})  limit {bound:.1e}  {'ok' if ok else 'OUTSIDE'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
