"""Time the Poisson noise image: start-up cost, numba compile and cache, 6 M pixels in-process.

Prints, each as the median of ``--repeats`` runs:

* import: ``import nanobrag_torch.cli`` in a fresh process (numba must not be imported by it),
  and ``import numba`` after it, which runs that need a noise image pay on top;
* compile: the first ``noise_image`` call of a fresh process with an empty numba cache
  (``NUMBA_CACHE_DIR`` set to a new temporary folder), numba already imported: compile, draw;
* cached: the same in later fresh processes, which load the kernels from that cache; the noise
  image's whole cost to a fresh process is this plus ``import numba``;
* in-process: ``noise_image`` of the full Pilatus detector (2527 × 2463 pixels) once compiled,
  for a seed-like image (the tutorial's 256 × 256 beam-centre crop, tiled: about 6,000
  photons in all) and for bright images (flat means from 0 to 10⁷, and a log-uniform mix).

With ``--reference`` it also times the pure-Python port (tests/noise_reference.py, the previous
implementation and the tests' oracle) on the seed-like image, once: about 13 s.

Usage::

    PYTHONPATH=src python benchmarks/bench_noise.py [--repeats 5] [--reference]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CROP = ROOT / "tests" / "golden" / "tutorial_crop_beam.npy.gz"
SHAPE = (2527, 2463)

# Run in a fresh interpreter: time the imports, then the first and second noise_image calls.
CHILD = r"""
import json, sys, time
t = time.perf_counter(); import nanobrag_torch.cli; t_cli = time.perf_counter() - t
numba_by_cli = "numba" in sys.modules
import numpy as np
t = time.perf_counter(); import numba; t_numba = time.perf_counter() - t
from nanobrag_torch.noise import noise_image
image = np.load(sys.argv[1])
t = time.perf_counter(); noise_image(image, 12345); t_first = time.perf_counter() - t
t = time.perf_counter(); noise_image(image, 12345); t_second = time.perf_counter() - t
print(json.dumps({"cli": t_cli, "numba_by_cli": numba_by_cli, "numba": t_numba,
                  "first": t_first, "second": t_second}))
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="runs per measurement (median)")
    parser.add_argument("--reference", action="store_true",
                        help="also time the pure-Python port on the seed-like image (about 13 s)")
    return parser.parse_args()


def seed_like_image() -> np.ndarray:
    """The tutorial's beam-centre crop tiled over the Pilatus detector (float32 photons)."""
    with gzip.open(CROP) as handle:
        crop = np.load(handle)
    reps = (-(-SHAPE[0] // crop.shape[0]), -(-SHAPE[1] // crop.shape[1]))
    return np.ascontiguousarray(np.tile(crop, reps)[:SHAPE[0], :SHAPE[1]], dtype=np.float32)


def bright_images() -> dict:
    """Flat images of several means and a log-uniform mix from 1e-3 to 1e7 (photons)."""
    images = {f"flat {mean:g}": np.full(SHAPE, mean, dtype=np.float32) for mean in (0.0, 5.0, 1e3, 5e5, 1e7)}
    rng = np.random.default_rng(0)
    images["log-uniform 1e-3..1e7"] = (10.0 ** rng.uniform(-3, 7, SHAPE)).astype(np.float32)
    return images


def fresh_process_runs(image_path: str, cache_dir: str, repeats: int) -> list:
    """Child-process measurements: the first with an empty cache folder, then ``repeats`` cached."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    runs = []
    for _ in range(repeats + 1):
        result = subprocess.run([sys.executable, "-c", CHILD, image_path], env=env, check=True,
                                capture_output=True, text=True)
        runs.append(json.loads(result.stdout.strip().splitlines()[-1]))
    return runs


def main() -> None:
    args = parse_args()
    from nanobrag_torch.noise import noise_image

    seed_image = seed_like_image()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_noise_") as tmp:
        path = os.path.join(tmp, "seed_like.npy")
        np.save(path, seed_image)
        runs = fresh_process_runs(path, os.path.join(tmp, "numba_cache"), args.repeats)
    compiled, cached = runs[0], runs[1:]
    if any(run["numba_by_cli"] for run in runs):
        rows.append(("WARNING: import nanobrag_torch.cli imported numba", "", ""))
    median = lambda key: statistics.median(run[key] for run in cached)  # noqa: E731
    rows += [
        ("import nanobrag_torch.cli (fresh process)", f"{median('cli'):.2f} s", "every run"),
        ("import numba after it", f"{median('numba'):.2f} s", "runs with a noise image"),
        ("first noise_image, empty numba cache", f"{compiled['first']:.2f} s", "compile + draw, once per install"),
        ("first noise_image, cached kernels", f"{median('first'):.2f} s", "load the cache + draw"),
        ("  noise cost of a fresh process", f"{median('numba') + median('first'):.2f} s", "import numba + the above"),
        ("second noise_image, same process", f"{median('second'):.2f} s", "draw only"),
    ]

    noise_image(seed_image[:1, :1], 1)  # compile or load in this process
    images = {"seed-like (%.0f photons)" % seed_image.sum(dtype=np.float64): seed_image}
    images.update(bright_images())
    for label, image in images.items():
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            _, photons, overloads = noise_image(image, 12345)
            times.append(time.perf_counter() - start)
        rows.append((f"in-process 6 M pixels, {label}", f"{statistics.median(times):.3f} s",
                     f"{photons:.4g} photons, {overloads} overloads"))

    if args.reference:
        sys.path.insert(0, str(ROOT / "tests"))
        from noise_reference import reference_noise_image
        start = time.perf_counter()
        reference_noise_image(seed_image, 12345)
        rows.append(("pure-Python port, seed-like image", f"{time.perf_counter() - start:.2f} s", "once"))

    width = max(len(row[0]) for row in rows)
    print(f"noise image benchmark, {os.cpu_count()} CPUs, medians of {args.repeats} "
          f"(load average {os.getloadavg()[0]:.1f})")
    for name, value, note in rows:
        print(f"  {name:<{width}}  {value:>8}  {note}")


if __name__ == "__main__":
    main()
