"""Peak memory of a large render: 4096 × 4096 pixels, 10 mosaic domains, oversample 2, float32.

The tutorial's crystal (its MOSFLM matrix and structure factors, N = 36 × 47 × 29) on a
4096 × 4096 detector of 0.172 mm pixels at 231 mm, 10 mosaic domains of 0.2°, 2 × 2
sub-pixels: 671 million evaluations per image. Each case runs in a fresh process, since the
peak resident set size (``ru_maxrss``) is a process's:

* ``forward``: the image, without gradients;
* ``crystal``: forward and backward of the mean squared image with respect to ``phi_start_deg`` and
  ``mosaic_spread_deg`` (the fused kernel's backward keeps only its inputs);
* ``all``: with respect to those and the distance and the wavelength too, which makes every
  chunk of pixels be recomputed in the backward pass instead of kept.

It prints the peak resident memory and the wall time of each case; the design bound on the
peak is 3 GiB. Benchmarks measure; the tests never time anything.

Usage::

    PYTHONPATH=src python benchmarks/bench_memory.py [--cases forward crystal all] [--device cpu] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from typing import Optional

PIXELS = 4096
DOMAINS = 10
OVERSAMPLE = 2
BOUND_GIB = 3.0
CASES = ("forward", "crystal", "all")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES), help="cases to run")
    parser.add_argument("--device", default="cpu", help="torch device (cpu or cuda)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice); on a shared "
                        "machine, 1 avoids the threads waiting for each other")
    parser.add_argument("--child", choices=CASES, help=argparse.SUPPRESS)
    return parser.parse_args()


def run_case(case: str, device_name: str, threads: Optional[int]) -> dict:
    """Render (and differentiate) once in this process; the peak memory and the time."""
    import torch

    if threads is not None:
        torch.set_num_threads(threads)

    from nanobrag_torch import (BeamConfig, Crystal, CrystalConfig, Detector, DetectorConfig, Simulator,
                                read_hkl_file, read_mosflm_matrix, tutorial_data_paths)

    device, dtype = torch.device(device_name), torch.float32
    paths = tutorial_data_paths()
    a_star, b_star, c_star = read_mosflm_matrix(paths.matrix, 0.9768)
    structure_factors = read_hkl_file(paths.hkl)
    wants_grad = case != "forward"
    phi = torch.tensor(0.5, dtype=dtype, device=device, requires_grad=wants_grad)
    mosaic = torch.tensor(0.2, dtype=dtype, device=device, requires_grad=wants_grad)
    distance = torch.tensor(231.27, dtype=dtype, device=device, requires_grad=case == "all")
    wavelength = torch.tensor(0.9768, dtype=dtype, device=device, requires_grad=case == "all")
    crystal = Crystal(CrystalConfig(mosflm_a_star=a_star, mosflm_b_star=b_star, mosflm_c_star=c_star,
                                    N_cells=(36, 47, 29), phi_start_deg=phi, mosaic_spread_deg=mosaic,
                                    mosaic_domains=DOMAINS, mosaic_seed=42, interpolate=False),
                      structure_factors, device=device, dtype=dtype)
    detector = Detector(DetectorConfig(distance_mm=distance, pixel_size_mm=0.172, fpixels=PIXELS, spixels=PIXELS,
                                       oversample=OVERSAMPLE), device=device, dtype=dtype)
    simulator = Simulator(crystal, detector, BeamConfig(wavelength_A=wavelength, fluence=1e24))
    start = time.perf_counter()
    if wants_grad:
        image = simulator.run()
        loss = image.square().mean()
        loss.backward()
    else:
        with torch.no_grad():
            image = simulator.run()
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"case": case, "seconds": time.perf_counter() - start, "peak_gib": peak / 2 ** 30,
            "threads": torch.get_num_threads(), "torch": torch.__version__,
            "image_max": float(image.detach().max())}


def main() -> int:
    args = parse_args()
    if args.child:
        print(json.dumps(run_case(args.child, args.device, args.threads)))
        return 0
    memory = "peak allocated" if args.device.startswith("cuda") else "peak resident"
    print(f"{PIXELS} x {PIXELS} pixels, {DOMAINS} mosaic domains, oversample {OVERSAMPLE}, float32, {args.device}")
    worst = 0.0
    for case in args.cases:
        threads = ["--threads", str(args.threads)] if args.threads is not None else []
        child = subprocess.run([sys.executable, __file__, "--child", case, "--device", args.device, *threads],
                               check=True, capture_output=True, text=True)
        result = json.loads(child.stdout.strip().splitlines()[-1])
        worst = max(worst, result["peak_gib"])
        print(f"  {case:<8s} {memory} {result['peak_gib']:6.2f} GiB  {result['seconds']:7.1f} s  "
              f"({result['threads']} threads, torch {result['torch']}, brightest pixel {result['image_max']:.3g})")
    print(f"  worst peak {worst:.2f} GiB: {'within' if worst <= BOUND_GIB else 'ABOVE'} the {BOUND_GIB:g} GiB bound")
    return 0 if worst <= BOUND_GIB else 1


if __name__ == "__main__":
    sys.exit(main())
