"""Serial crystallography: ``refine_dataset`` against conventional integration and merging, on a
dataset made with nanoBragg C (``benchmarks/make_serial_dataset.py``).

For each number of shots (a quarter, half and all of the dataset by default) it measures, each in
a fresh process:

* the conventional method (``integrate_and_merge(partiality=False)``: summation integration and
  mean merging) handed the TRUE orientations and scales, and handed the start orientations;
* the model-partiality merging (``integrate_and_merge``'s default, ``partiality=True``) handed the
  TRUE orientations and scales: what the summed spots give when the model's partialities are
  exact;
* ``refine_dataset`` from the start orientations (the analyst's knowledge: nominal fluence, the
  indexed orientation): amplitudes (CC and R after a least-squares scale, against the truth),
  anomalous differences (CCano), orientation errors (median, 90th percentile), the calibration of
  the amplitudes' error bars (standard deviation of ``(F − F_true)/σ_F`` after the scale), the wall
  time and the peak resident memory of the process.

With ``--dask-shots N`` it also times ``refine_dataset`` on the first N shots with a Dask
``LocalCluster`` of one and of two single-threaded worker processes, and compares the amplitudes
with the in-process run. With ``--streamed-shots N`` it refines the first N shots given as the
paths of their image files, which ``refine_dataset`` reads one at a time (the peak memory is
then the refinement's own, with no copy of the images).

Usage (heavy: nothing else may run while it times)::

    python benchmarks/make_serial_dataset.py --out /tmp/serial --shots 240 --size 512
    python benchmarks/bench_serial.py /tmp/serial [--shots 60 120 240] [--dask-shots 60] [--streamed-shots 2000]
                                      [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch


def load_shots(folder: Path, count: int, orientation: str = "start", files: bool = False):
    """The first ``count`` shots of a dataset folder, with the analyst's configurations: their
    counts read here, or (``files``) the paths of their image files, which ``refine_dataset``
    reads one at a time when it prepares them."""
    from nanobrag_torch.config import BeamConfig, CrystalConfig, DetectorConfig
    from nanobrag_torch.refine.dataset import Shot

    manifest = json.loads((folder / "manifest.json").read_text())
    size = manifest["size_pixels"]
    detector = DetectorConfig(distance_mm=manifest["distance_mm"], pixel_size_mm=manifest["pixel_size_mm"],
                              fpixels=size, spixels=size, oversample=1)
    beam = BeamConfig(wavelength_A=manifest["wavelength_A"], fluence=manifest["nominal_fluence"],
                      water_size_um=manifest["water_size_um"])
    shots = []
    for number, entry in enumerate(manifest["shots"][:count]):
        if files:
            counts = str(folder / entry["noise_file"])
        else:
            raw = (folder / entry["noise_file"]).read_bytes()[-2 * size * size:]
            counts = np.frombuffer(raw, dtype=np.uint16).reshape(size, size).astype(np.float64) - manifest["adc_offset"]
        a_star, b_star, c_star = entry[f"{orientation}_reciprocal_A"]
        crystal = CrystalConfig(mosflm_a_star=tuple(a_star), mosflm_b_star=tuple(b_star), mosflm_c_star=tuple(c_star),
                                N_cells=tuple(manifest["N_cells"]), mosaic_spread_deg=manifest["mosaic_spread_deg"],
                                mosaic_domains=manifest["mosaic_domains"], mosaic_seed=1 + number, default_F=0.0,
                                interpolate=False)
        shots.append(Shot(counts, crystal, detector, beam, entry["name"]))
    return manifest, shots


def truth(folder: Path, manifest):
    """The true amplitudes in the layout of an anomalous ReflectionSet."""
    from nanobrag_torch.io.hkl import read_hkl_file
    from nanobrag_torch.symmetry import ReflectionSet

    reflections = ReflectionSet(manifest["space_group"], manifest["cell_A_deg"], manifest["d_min_A"], anomalous=True)
    table = read_hkl_file(str(folder / manifest["truth_hkl"]))
    return reflections, reflections.from_structure_factors(table).numpy()


def misorientation_deg(first, second) -> float:
    from nanobrag_torch.models.crystal import Crystal

    a = torch.stack(Crystal(first, dtype=torch.float64).reciprocal_vectors_per_A(), dim=1).numpy()
    b = torch.stack(Crystal(second, dtype=torch.float64).reciprocal_vectors_per_A(), dim=1).numpy()
    rotation = b @ np.linalg.inv(a)
    return float(np.degrees(np.arccos(np.clip((np.trace(rotation) - 1) / 2, -1, 1))))


def amplitude_figures(merged, reflections, true_values):
    """CC, R, CCano and the error bars' calibration of merged amplitudes against the truth.

    The merged ``F`` of an anomalous dataset stands for both Friedel mates (their weighted mean
    amplitude, or the amplitude of their mean intensity), so it is compared with
    ``sqrt((F(+)² + F(−)²)/2)`` of the truth, which either equals to first order in the anomalous
    difference; ``F(+)`` and ``F(−)`` are compared with their own truths (``cc_mates``, ``r_mates``).
    """
    from nanobrag_torch.refine.merging import compare_amplitudes

    n = len(reflections.hkl)
    true_plus = true_values[:n]
    true_minus = true_values[reflections.parameter_of(-reflections.hkl)]
    true_mean = np.sqrt((true_plus ** 2 + true_minus ** 2) / 2)
    cc, r = compare_amplitudes(merged.F, true_mean)
    figures = {"cc": cc, "r": r, "reflections": int(np.isfinite(merged.F).sum())}
    if merged.F_plus is not None:
        figures["cc_mates"], figures["r_mates"] = compare_amplitudes(np.concatenate([merged.F_plus, merged.F_minus]),
                                                                     np.concatenate([true_plus, true_minus]))
        both = np.isfinite(merged.F_plus) & np.isfinite(merged.F_minus) & ~reflections.centric
        figures["cc_anomalous"] = float(np.corrcoef((merged.F_plus - merged.F_minus)[both],
                                                    (true_plus - true_minus)[both])[0, 1])
    known = np.isfinite(merged.F) & np.isfinite(merged.sigma_F) & (merged.sigma_F > 0)
    scale = (merged.F[known] @ true_mean[known]) / (merged.F[known] @ merged.F[known])
    pulls = (scale * merged.F[known] - true_mean[known]) / (scale * merged.sigma_F[known])
    figures["pull_std"] = float(np.std(pulls))
    figures["pull_robust_std"] = float(np.median(np.abs(pulls)) / 0.6745)
    return figures


def single(folder: Path, count: int, method: str, workers: int) -> dict:
    """One measurement, in this (fresh) process."""
    from nanobrag_torch.refine.dataset import refine_dataset
    from nanobrag_torch.refine.merging import integrate_and_merge

    manifest, shots = load_shots(folder, count, files=method == "refine-streamed")
    reflections, true_values = truth(folder, manifest)
    group, d_min = manifest["space_group"], manifest["d_min_A"]
    start = time.perf_counter()
    if method in ("conventional-true", "partiality-true"):
        _, true_shots = load_shots(folder, count, "true")
        scales = [entry["scale"] for entry in manifest["shots"][:count]]
        result = {"merged": integrate_and_merge(true_shots, group, d_min, anomalous=True, scales=scales,
                                                partiality=method == "partiality-true")}
    elif method == "conventional-start":
        result = {"merged": integrate_and_merge(shots, group, d_min, anomalous=True, partiality=False)}
    else:
        client = None
        if workers:
            from dask.distributed import Client, LocalCluster

            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True)
            client = Client(cluster)
        refined = refine_dataset(shots, group, d_min, anomalous=True, client=client)
        result = {"merged": refined.merged, "refined": refined}
        if client is not None:
            client.close()
            cluster.close()
    seconds = time.perf_counter() - start
    figures = amplitude_figures(result["merged"], reflections, true_values)
    figures.update(method=method, shots=count, workers=workers, seconds=seconds,
                   peak_rss_GiB=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20)
    if "refined" in result:
        _, true_shots = load_shots(folder, count, "true", files=True)  # their crystals only
        errors = np.array([misorientation_deg(s.crystal, t.crystal)
                           for s, t in zip(result["refined"].shots, true_shots) if s.status == "ok"])
        figures.update(orientation_median_deg=float(np.median(errors)), orientation_p90_deg=float(np.percentile(errors, 90)),
                       shots_ok=int(sum(s.status == "ok" for s in result["refined"].shots)),
                       cycles=len(result["refined"].history), F=np.nan_to_num(result["merged"].F, nan=-1).tolist())
    return figures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--shots", type=int, nargs="*", help="numbers of shots (default: a quarter, half, all)")
    parser.add_argument("--dask-shots", type=int, default=0, help="also time Dask with 1 and 2 workers on this many")
    parser.add_argument("--streamed-shots", type=int, default=0,
                        help="also refine this many shots given as image files (read when needed)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--single", nargs=3, metavar=("SHOTS", "METHOD", "WORKERS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.single:
        print(json.dumps(single(args.folder, int(args.single[0]), args.single[1], int(args.single[2]))))
        return 0
    total = len(json.loads((args.folder / "manifest.json").read_text())["shots"])
    counts = args.shots or sorted({max(1, total // 4), max(1, total // 2), total})
    runs = [(n, method, 0) for n in counts
            for method in ("conventional-true", "conventional-start", "partiality-true", "refine")]
    if args.dask_shots:
        runs += [(args.dask_shots, "refine", 0), (args.dask_shots, "refine", 1), (args.dask_shots, "refine", 2)]
    if args.streamed_shots:
        runs.append((args.streamed_shots, "refine-streamed", 0))
    rows = []
    for n, method, workers in runs:
        output = subprocess.run([sys.executable, __file__, str(args.folder), "--single", str(n), method, str(workers)],
                                check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(output.strip().splitlines()[-1]))
        row = rows[-1]
        extra = (f"  orientation median {row['orientation_median_deg']:.4f}° p90 {row['orientation_p90_deg']:.4f}°"
                 if "orientation_median_deg" in row else "")
        print(f"{method:19s} shots {n:4d} workers {workers}: CC {row['cc']:.3f} R {row['r']:.3f} "
              f"F± R {row.get('r_mates', float('nan')):.3f} CCano {row.get('cc_anomalous', float('nan')):.3f} pull std {row['pull_std']:.2f} "
              f"({row['pull_robust_std']:.2f} robust)  {row['seconds']:.0f} s  {row['peak_rss_GiB']:.2f} GiB{extra}",
              flush=True)
    if args.dask_shots:
        here, one, two = [row for row in rows if row["shots"] == args.dask_shots and row["method"] == "refine"][-3:]
        known = np.array(here["F"]) > 0
        difference = np.max(np.abs(np.array(two["F"])[known] - np.array(here["F"])[known]) / np.array(here["F"])[known])
        print(f"Dask: 1 worker {one['seconds']:.0f} s, 2 workers {two['seconds']:.0f} s "
              f"(ratio {two['seconds'] / one['seconds']:.2f}); largest relative difference of F to this process "
              f"{difference:.1e}")
    if args.json:
        args.json.write_text(json.dumps([{k: v for k, v in row.items() if k != "F"} for row in rows], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
