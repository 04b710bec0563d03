"""Time the seed experiment: full Pilatus detector, real HKL, 5 mosaic domains, float32.

Measures, on the CPU unless ``--device cuda``:

* first call: the first forward image of a fresh process (imports, set-up, and compilation when
  on), and the part of it that is ``import torch``;
* forward: median wall time of the image over ``--repeats`` runs;
* forward + backward: median time of an MSE loss and its gradient with respect to
  ``phi_start_deg`` and ``mosaic_spread_deg``;
* peak memory: the process's peak resident set size (CPU) or peak allocated memory (CUDA).

Given ``--c-binary PATH`` (nanoBragg C), it times C on the same experiment in the same run
(``OMP_NUM_THREADS`` = the torch thread count) and prints the ratios. With ``--json`` it
prints the numbers as one JSON object instead (``benchmarks/run_all.py`` reads it). ``--crop N``
renders only an N × N square at the detector's centre (a smoke test, not a benchmark).

Usage::

    python benchmarks/bench_seed_experiment.py [--repeats 5] [--compile] [--c-binary ./nanoBragg] [--json] [--crop 256]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

C_ARGS = [
    "-mat", "A.mat", "-hkl", "scaled.hkl", "-nonoise", "-nointerpolate", "-oversample", "1",
    "-exposure", "1", "-flux", "1e18", "-beamsize", "1.0", "-spindle_axis", "-1", "0", "0",
    "-Xbeam", "217.742295", "-Ybeam", "213.907080", "-distance", "231.274660", "-lambda", "0.976800",
    "-pixel", "0.172", "-detpixels_x", "2463", "-detpixels_y", "2527",
    "-odet_vector", "-0.000088", "0.004914", "-0.999988",
    "-sdet_vector", "-0.005998", "-0.999970", "-0.004913",
    "-fdet_vector", "0.999982", "-0.005998", "-0.000118",
    "-beam_vector", "0.00051387949", "0.0", "-0.99999986",
    "-Na", "36", "-Nb", "47", "-Nc", "29", "-osc", "0", "-phi", "0", "-phisteps", "1",
    "-mosaic", "0.2", "-mosaic_domains", "5", "-mosaic_seed", "42",
    "-floatfile", "img.bin", "-nopgm", "-noprogress",
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per measurement (median)")
    parser.add_argument("--device", default="cpu", help="torch device (cpu or cuda)")
    parser.add_argument("--compile", action="store_true", help="run the kernels through torch.compile")
    parser.add_argument("--c-binary", help="path of a nanoBragg C binary to time on the same experiment")
    parser.add_argument("--json", action="store_true", help="print the numbers as one JSON object")
    parser.add_argument("--crop", type=int, help="render only an N x N square at the detector's centre")
    return parser.parse_args()


def build(torch, device, dtype):
    """The seed experiment's simulator factory and the tutorial's target image."""
    from nanobrag_torch.config import BeamConfig, CrystalConfig, DetectorConfig, DetectorConvention
    from nanobrag_torch.datasets import tutorial_data_paths
    from nanobrag_torch.io.hkl import read_hkl_file
    from nanobrag_torch.io.mosflm import read_mosflm_matrix
    from nanobrag_torch.models.crystal import Crystal
    from nanobrag_torch.models.detector import Detector
    from nanobrag_torch.simulator import Simulator

    paths = tutorial_data_paths()
    a_star, b_star, c_star = read_mosflm_matrix(str(paths.matrix), 0.9768)
    grid, meta = read_hkl_file(str(paths.hkl))
    beam = BeamConfig(wavelength_A=0.9768, flux=1e18, exposure=1.0, beamsize_mm=1.0)
    detector = Detector(DetectorConfig(
        distance_mm=231.274660, pixel_size_mm=0.172, fpixels=2463, spixels=2527,
        detector_convention=DetectorConvention.CUSTOM, beam_center_f=217.742295, beam_center_s=213.907080,
        custom_fdet_vector=(0.999982, -0.005998, -0.000118), custom_sdet_vector=(-0.005998, -0.999970, -0.004913),
        custom_odet_vector=(-0.000088, 0.004914, -0.999988), custom_beam_vector=(0.00051387949, 0.0, -0.99999986),
        oversample=1), device=device, dtype=dtype)

    def simulator(phi, mosaic):
        crystal = Crystal(CrystalConfig(
            mosflm_a_star=a_star, mosflm_b_star=b_star, mosflm_c_star=c_star, N_cells=(36, 47, 29),
            spindle_axis=(-1, 0, 0), phi_start_deg=phi, mosaic_spread_deg=mosaic, mosaic_domains=5,
            mosaic_seed=42), (grid, meta), device=device, dtype=dtype)
        return Simulator(crystal, detector, beam, device=device, dtype=dtype)

    return simulator


def centre_square(torch, size: int, spixels: int = 2527, fpixels: int = 2463):
    """Flat indices of the ``size`` × ``size`` pixels at the centre of the detector."""
    if not 0 < size <= min(spixels, fpixels):
        raise ValueError(f"--crop must be between 1 and {min(spixels, fpixels)}, got {size}")
    slow = torch.arange(size) + (spixels - size) // 2
    fast = torch.arange(size) + (fpixels - size) // 2
    return (slow[:, None] * fpixels + fast).flatten()


def median_time(function, repeats, synchronize):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_c(binary, repeats, threads):
    from nanobrag_torch.datasets import tutorial_data_paths

    paths = tutorial_data_paths()
    with tempfile.TemporaryDirectory() as work:
        shutil.copy(paths.matrix, work)
        shutil.copy(paths.hkl, work)
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            subprocess.run([binary, *C_ARGS], cwd=work, env=env, check=True, capture_output=True)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    args = parse_args()
    if args.compile:
        os.environ["NANOBRAGG_COMPILE"] = "1"
    start = time.perf_counter()
    import torch

    import_torch_s = time.perf_counter() - start
    device = torch.device(args.device)
    dtype = torch.float32
    cuda = device.type == "cuda"
    synchronize = torch.cuda.synchronize if cuda else (lambda: None)
    simulator = build(torch, device, dtype)
    pixels = centre_square(torch, args.crop) if args.crop else None
    with torch.no_grad():
        target = simulator(0.0, 0.2).run(pixels=pixels)
    synchronize()
    first_call_s = time.perf_counter() - start

    def forward():
        with torch.no_grad():
            simulator(0.0, 0.2).run(pixels=pixels)

    phi = torch.tensor(0.5, device=device, dtype=dtype, requires_grad=True)
    mosaic = torch.tensor(0.3, device=device, dtype=dtype, requires_grad=True)

    def forward_backward():
        loss = torch.nn.functional.mse_loss(simulator(phi, mosaic).run(pixels=pixels), target)
        loss.backward()

    forward_backward()  # first backward (and compilation of the backward kernel, when on)
    forward_s = median_time(forward, args.repeats, synchronize)
    forward_backward_s = median_time(forward_backward, args.repeats, synchronize)
    if cuda:
        peak_gib = torch.cuda.max_memory_allocated() / 2 ** 30
    else:
        peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2 ** 30

    threads = torch.get_num_threads()
    c_s = time_c(args.c_binary, args.repeats, threads) if args.c_binary else None
    if args.json:
        print(json.dumps({"device": str(device), "threads": threads, "compile": args.compile,
                          "torch": torch.__version__, "first_call_s": first_call_s,
                          "import_torch_s": import_torch_s, "forward_s": forward_s,
                          "forward_backward_s": forward_backward_s, "peak_gib": peak_gib, "c_forward_s": c_s,
                          "crop": args.crop}))
        return 0
    area = f"{args.crop}x{args.crop} of 2463x2527" if args.crop else "2463x2527"
    print(f"seed experiment: {area} pixels, N 36x47x29, 5 mosaic domains, 1 phi step, float32, "
          f"{device}, {threads} threads, torch.compile {'on' if args.compile else 'off'}, torch {torch.__version__}")
    rows = [("first call (import, set-up, first image)", first_call_s),
            ("  of it, import torch", import_torch_s),
            ("forward image (median)", forward_s),
            ("forward + backward, MSE wrt phi and mosaic (median)", forward_backward_s)]
    for name, seconds in rows:
        ratio = f"  ({seconds / c_s:.2f}x C forward)" if c_s else ""
        print(f"  {name:<55s} {seconds:7.2f} s{ratio}")
    print(f"  {'peak memory':<55s} {peak_gib:7.2f} GiB")
    if c_s:
        print(f"  {'nanoBragg C forward image (median, same threads)':<55s} {c_s:7.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
