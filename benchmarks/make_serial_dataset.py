"""Make a serial-crystallography data set with nanoBragg C: one C run per still shot.

A random-atom structure in P 43 21 2 (``nanobrag_torch.datasets.random_structure_factors``;
a few anomalous scatterers make the Friedel mates differ) is written as a P1 ``-hkl`` file
listing every index to the detector corner's resolution, both mates. Each shot is a crystal
at a random orientation (uniform on SO(3), written as a MOSFLM matrix ``shot_NNN.mat``: the
columns are a*, b*, c* times λ), with a fluence ``--fluence`` times a per-shot factor
(uniform in 1 ± 30 %), a water background, mosaic domains and C's Poisson noise
(``-noisefile shot_NNN.img``; the photon counts are the pixel values less the ADC offset 40,
and as C's SMV header can overrun 512 bytes, the pixels are the file's last 2·N² bytes). The
start orientation of each shot (for a refinement) is the truth turned by 0.1–0.4° about a
random axis. ``manifest.json`` holds the commands, the true and start orientations, the
scales and the settings.

With ``--verify K`` (default 3) the first K shots also write C's ``-floatfile``; the script
renders the same command with the engine (the ``nanobragg`` command's reading of it,
``c_quirks=True``) and prints the largest relative difference of the noise-free images, and
whether the engine's noise image of C's float image equals C's noise file.

Usage (heavy: run it under ``flock /tmp/cpu.lock`` on a shared machine)::

    python benchmarks/make_serial_dataset.py --out /tmp/serial --shots 300 [--size 512] [--c-binary /tmp/nanoBragg]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from nanobrag_torch.cli.plan import parse_args
from nanobrag_torch.cli.simulate import build_simulator
from nanobrag_torch.config import DetectorConfig
from nanobrag_torch.datasets import (detector_d_min_A, oriented_reciprocal_vectors, random_rotations,
                                     random_structure_factors, rotation_by_angle)
from nanobrag_torch.io.hkl import write_hkl_file
from nanobrag_torch.noise import noise_image
from nanobrag_torch.symmetry import ReflectionSet

ADC_OFFSET = 40.0


def read_counts(path: Path, size: int) -> np.ndarray:
    """Photon counts of a C noise file: its last 2·size² bytes, less the ADC offset."""
    raw = path.read_bytes()[-2 * size * size:]
    return np.frombuffer(raw, dtype=np.uint16).reshape(size, size).astype(np.float64) - ADC_OFFSET


def write_matrix(path: Path, vectors, wavelength_A: float) -> None:
    """A MOSFLM matrix file: rows (a*x b*x c*x), (a*y b*y c*y), (a*z b*z c*z), times λ."""
    matrix = np.stack(vectors, axis=1) * wavelength_A
    path.write_text("".join(" ".join(f"{v:.15e}" for v in row) + "\n" for row in matrix))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write the data set to")
    parser.add_argument("--shots", type=int, default=300)
    parser.add_argument("--size", type=int, default=512, help="pixels per detector edge (0.172 mm pixels)")
    parser.add_argument("--distance-mm", type=float, default=150.0)
    parser.add_argument("--wavelength-A", type=float, default=1.0)
    parser.add_argument("--cell", type=float, nargs=6, default=(79.0, 79.0, 38.0, 90.0, 90.0, 90.0))
    parser.add_argument("--space-group", default="P 43 21 2")
    parser.add_argument("--n-cells", type=int, nargs=3, default=(10, 10, 20))
    parser.add_argument("--mosaic-deg", type=float, default=0.05)
    parser.add_argument("--mosaic-domains", type=int, default=5)
    parser.add_argument("--fluence", type=float, default=1e26)
    parser.add_argument("--water-um", type=float, default=1.0)
    parser.add_argument("--n-atoms", type=int, default=300)
    parser.add_argument("--n-anomalous", type=int, default=8)
    parser.add_argument("--f-anomalous", type=float, default=4.0, help="f'' of the anomalous atoms (electrons)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--verify", type=int, default=3, help="shots whose float image is compared with the engine's")
    parser.add_argument("--c-binary", default="/tmp/nanoBragg")
    args = parser.parse_args(argv)

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    detector = DetectorConfig(distance_mm=args.distance_mm, pixel_size_mm=0.172, fpixels=args.size,
                              spixels=args.size)
    d_min_A = detector_d_min_A(detector, args.wavelength_A)
    rng = np.random.default_rng(args.seed)
    truth = random_structure_factors(args.cell, args.space_group, d_min_A, args.n_atoms, args.n_anomalous,
                                     args.f_anomalous, seed=int(rng.integers(2 ** 31)))
    reflections = ReflectionSet(args.space_group, args.cell, d_min_A, anomalous=True)
    hkl_path = out / "truth_p1.hkl"
    write_hkl_file(hkl_path, reflections.p1_hkl, truth.nearest(torch.from_numpy(reflections.p1_hkl).double()))
    rotations = random_rotations(args.shots, seed=int(rng.integers(2 ** 31)))
    scales = rng.uniform(0.7, 1.3, args.shots)
    errors = rng.uniform(0.1, 0.4, args.shots)
    axes = rng.normal(size=(args.shots, 3))
    starts = np.stack([rotation_by_angle(axis, error) @ rotation
                       for axis, error, rotation in zip(axes, errors, rotations)])

    commands, differences, noise_equal = [], [], []
    environment = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    with tempfile.TemporaryDirectory() as scratch:  # C writes its Fdump.bin cache into its folder
        for number in range(args.shots):
            name = f"shot_{number:03d}"
            write_matrix(out / f"{name}.mat", oriented_reciprocal_vectors(args.cell, rotations[number]),
                         args.wavelength_A)
            words = ["-mat", str(out / f"{name}.mat"), "-hkl", str(hkl_path), "-default_F", "0",
                     "-lambda", repr(args.wavelength_A), "-distance", repr(args.distance_mm), "-pixel", "0.172",
                     "-detpixels", str(args.size), "-oversample", "1", "-nointerpolate",
                     "-Na", str(args.n_cells[0]), "-Nb", str(args.n_cells[1]), "-Nc", str(args.n_cells[2]),
                     "-fluence", repr(float(args.fluence * scales[number])), "-water", repr(args.water_um),
                     "-mosaic", repr(args.mosaic_deg), "-mosaic_domains", str(args.mosaic_domains),
                     "-mosaic_seed", str(1 + number), "-seed", str(1 + number),
                     "-noisefile", str(out / f"{name}.img")]
            verify = number < args.verify
            if verify:
                words += ["-floatfile", str(out / f"{name}.bin")]
            subprocess.run([args.c_binary, *words], cwd=scratch, env=environment, check=True,
                           stdout=subprocess.DEVNULL)
            commands.append(" ".join(["nanoBragg", *words]))
            if verify:
                c_float = np.fromfile(out / f"{name}.bin", dtype=np.float32).reshape(args.size, args.size)
                plan = parse_args([word for word in words if word not in ("-noisefile", "-floatfile")
                                   and not word.endswith((".img", ".bin"))])
                simulator, _ = build_simulator(plan)
                with torch.no_grad():
                    ours = simulator.run().numpy()
                relative = np.abs(ours - c_float) / np.maximum(np.abs(c_float), 1e-30)
                differences.append(float(relative.max()))
                noisy, _, _ = noise_image(c_float, seed=1 + number, adc_offset=ADC_OFFSET)
                noise_equal.append(bool(np.array_equal(noisy.astype(np.float64) - ADC_OFFSET,
                                                       read_counts(out / f"{name}.img", args.size))))
                print(f"{name}: max relative difference engine vs C {differences[-1]:.3g}, "
                      f"noise image identical: {noise_equal[-1]}", file=sys.stderr)

    manifest = {
        "space_group": reflections.space_group, "cell_A_deg": list(args.cell), "d_min_A": d_min_A,
        "wavelength_A": args.wavelength_A, "distance_mm": args.distance_mm, "pixel_size_mm": 0.172,
        "size_pixels": args.size, "N_cells": list(args.n_cells), "mosaic_spread_deg": args.mosaic_deg,
        "mosaic_domains": args.mosaic_domains, "nominal_fluence": args.fluence, "water_size_um": args.water_um,
        "structure": {"n_atoms": args.n_atoms, "n_anomalous": args.n_anomalous, "f_anomalous_e": args.f_anomalous,
                      "seed": args.seed},
        "truth_hkl": hkl_path.name, "adc_offset": ADC_OFFSET,
        "counts_rule": "photon counts = the noise file's last 2*size*size bytes as uint16, less adc_offset",
        "verification": {"shots": args.verify, "max_relative_difference": differences,
                         "noise_identical": noise_equal},
        "shots": [{"name": f"shot_{n:03d}", "noise_file": f"shot_{n:03d}.img", "matrix": f"shot_{n:03d}.mat",
                   "command": commands[n], "scale": float(scales[n]), "true_rotation": rotations[n].tolist(),
                   "start_rotation": starts[n].tolist(), "start_error_deg": float(errors[n]),
                   "true_reciprocal_A": [v.tolist() for v in oriented_reciprocal_vectors(args.cell, rotations[n])],
                   "start_reciprocal_A": [v.tolist() for v in oriented_reciprocal_vectors(args.cell, starts[n])]}
                  for n in range(args.shots)],
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print(f"wrote {args.shots} shots, {hkl_path.name} ({len(reflections.p1_hkl)} P1 indices to {d_min_A:.2f} Å) "
          f"and manifest.json to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
