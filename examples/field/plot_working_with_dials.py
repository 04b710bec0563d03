"""
Working with DIALS
==================

Much of today's diffraction data is processed with DIALS, which keeps everything it
knows about an experiment — the beam, the detector, the crystal's cell and orientation —
in an *experiment list*, a JSON file with the suffix ``.expt``.
:func:`~nanobrag_torch.io.dials.read_experiments` turns such a file into the
configurations this library renders, and
:func:`~nanobrag_torch.io.dials.write_experiments` writes configurations back, so that a
geometry refined here can go on to integration in DIALS. This page goes once round that
loop:

1. write the experiment list of an indexed still, as DIALS writes it;
2. read it and render the image it predicts;
3. make an "observed" image with a detector that is not where the file says: half a
   millimetre further away and its beam centre off by about two pixels;
4. refine the detector's position against the observed counts, write the refined
   experiment list, and compare its fields with the truth.
"""

# %%
# An experiment list
# ------------------
# An ``.expt`` file holds lists of models (``beam``, ``detector``, ``crystal``,
# ``imageset``, and for a rotation scan ``goniometer`` and ``scan``), and a list of
# experiments that refer to them by index. Below is the file of one indexed still much
# as ``dials.stills_process`` writes it (the image set cut down to its file name): a
# beam of 1 Å, a detector of one panel of 256 × 256 pixels of 0.172 mm about 80 mm from
# the crystal, and a tetragonal crystal (a = b = 79 Å, c = 38 Å, space group P 4₃2₁2)
# in some orientation. Two conventions of DIALS matter here, and :ref:`the conventions
# page <conventions-dials>` lists them all:
#
# * the beam's ``direction`` points from the sample **towards the source**. The beam
#   below travels along −z, so its ``direction`` is +z; nanoBragg's beam vector is the
#   direction the beam travels, the negative of this one;
# * a panel's ``origin`` is the position (mm) of the outer **corner of pixel (0, 0)**,
#   not of its centre; ``fast_axis`` runs along a row of pixels, ``slow_axis`` from row
#   to row, and the normal is fast × slow. Here the fast axis is +x and the slow axis
#   −y, so the normal is −z: it points along the beam, away from the crystal, and the
#   detector images on this page are the detector as seen from the crystal.
import dataclasses
import json
import shutil
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from nanobrag_torch import Crystal, Detector, Simulator
from nanobrag_torch.datasets import random_rotations, random_structure_factors
from nanobrag_torch.io.dials import read_experiments, write_experiments
from nanobrag_torch.noise import noise_image
from nanobrag_torch.plotting import (
    count_color_scale,
    show_detector_image,
    show_residual,
)
from nanobrag_torch.refine import refine

CELL = (79.0, 79.0, 38.0, 90.0, 90.0, 90.0)
orientation = random_rotations(1, seed=7)[0]  # the crystal's rotation from a along x
real_space = orientation @ np.diag(CELL[:3])  # columns: the cell vectors a, b, c (Å)

indexed = {
    "__id__": "ExperimentList",
    "experiment": [
        {
            "__id__": "Experiment",
            "identifier": "shot-0001",
            "beam": 0,
            "detector": 0,
            "crystal": 0,
            "imageset": 0,
        }
    ],
    "beam": [
        {
            "__id__": "monochromatic",
            "direction": [0.0, 0.0, 1.0],
            "wavelength": 1.0,
            "divergence": 0.0,
            "sigma_divergence": 0.0,
            "polarization_normal": [0.0, 1.0, 0.0],
            "polarization_fraction": 0.999,
            "flux": 0.0,
            "transmission": 1.0,
            "sample_to_source_distance": 0.0,
        }
    ],
    "detector": [
        {
            "panels": [
                {
                    "name": "Panel",
                    "type": "SENSOR_PAD",
                    "fast_axis": [1.0, 0.0, 0.0],
                    "slow_axis": [0.0, -1.0, 0.0],
                    "origin": [-22.07, 21.95, -80.0],
                    "raw_image_offset": [0, 0],
                    "image_size": [256, 256],
                    "pixel_size": [0.172, 0.172],
                    "trusted_range": [0.0, 65535.0],
                    "thickness": 0.45,
                    "material": "Si",
                    "mu": 3.96,
                    "identifier": "",
                    "mask": [],
                    "gain": 1.0,
                    "pedestal": 0.0,
                    "px_mm_strategy": {"type": "SimplePxMmStrategy"},
                }
            ]
        }
    ],
    "crystal": [
        {
            "__id__": "crystal",
            "real_space_a": real_space[:, 0].tolist(),
            "real_space_b": real_space[:, 1].tolist(),
            "real_space_c": real_space[:, 2].tolist(),
            "space_group_hall_symbol": " P 4nw 2abw",
            "ML_half_mosaicity_deg": 0.02,
            "ML_domain_size_ang": 400.0,
        }
    ],
    "imageset": [{"__id__": "ImageSet", "images": ["shot_0001.cbf"]}],
}

folder = Path(tempfile.mkdtemp())
(folder / "indexed.expt").write_text(json.dumps(indexed, indent=2))
print(f"indexed.expt: {(folder / 'indexed.expt').stat().st_size} bytes")

# %%
# Reading it
# ----------
# :func:`~nanobrag_torch.io.dials.read_experiments` returns one
# :class:`~nanobrag_torch.io.dials.Experiment` per experiment of the file, each with a
# crystal, a detector and a beam configuration. The detector is a CUSTOM one, placed by
# the corner of its pixel (0, 0) (``pix0_override_m``, in metres) with the file's axes;
# its beam vector is the negative of the file's ``direction``. The crystal's real-space
# vectors become the reciprocal vectors a*, b*, c*, and the domain size of 400 Å
# becomes the number of unit cells along each axis.
(experiment,) = read_experiments(folder / "indexed.expt")
detector, crystal = experiment.detector, experiment.crystal
travel = tuple(x + 0.0 for x in detector.custom_beam_vector)  # + 0.0: no −0.0
print(f"beam vector (direction of travel): {travel}")
print(f"fast axis {detector.custom_fdet_vector}, "
      f"slow axis {detector.custom_sdet_vector}")
corner_m = tuple(round(x, 6) for x in detector.pix0_override_m)
print(f"corner of pixel (0, 0): {corner_m} m")
print(f"pixels: {detector.fpixels} × {detector.spixels} of {detector.pixel_size_mm} mm")
print(f"sensor: {detector.detector_thick_um:.0f} µm thick, attenuation depth "
      f"{detector.detector_abs_um:.1f} µm")
print(f"wavelength {experiment.beam.wavelength_A} Å, Kahn polarization factor "
      f"{experiment.beam.polarization_factor:.3f}, E-vector along "
      f"{experiment.beam.polarization_axis}")
print(f"cells per domain N = {crystal.N_cells}, mosaic spread "
      f"{crystal.mosaic_spread_deg}° over {crystal.mosaic_domains} domain")
print(f"space group (Hall symbol): {experiment.space_group_hall_symbol!r}")

# %%
# What the file does not say
# --------------------------
# An experiment list says nothing about the structure factors, the photon flux or how
# many mosaic domains to draw. The structure factors here are those of a made-up
# structure of 100 atoms in the cell
# (:func:`~nanobrag_torch.datasets.random_structure_factors`), to 2 Å, beyond the
# resolution of the detector's corners; the fluence is chosen so that the brightest
# pixels expect one or two hundred photons. With one mosaic domain (the default) the
# crystal is rendered in its mean orientation, and the file's mosaicity plays no part.
structure_factors = random_structure_factors(
    CELL, "P 43 21 2", d_min_A=2.0, n_atoms=100, n_anomalous=0, f_anomalous_e=0.0,
    seed=3,
)
beam = dataclasses.replace(experiment.beam, fluence=1e27)


def render(detector_config):
    """Expected photons per pixel of the file's crystal and beam on a detector
    (float64, no gradient)."""
    with torch.no_grad():
        crystal_model = Crystal(crystal, structure_factors=structure_factors)
        return Simulator(crystal_model, Detector(detector_config), beam).run().numpy()


predicted = render(detector)
print(f"expected photons on the detector: {predicted.sum():.0f}, "
      f"brightest pixel {predicted.max():.1f}")

# %%
# The observed image
# ------------------
# The detector in the file is not quite where the real one was. The real one stood
# 0.5 mm further from the crystal, and 0.30 mm along its fast axis and −0.25 mm along
# its slow axis from where the file puts it: its beam centre is off by 1.7 and 1.5
# pixels. A panel's ``panel_shift_mm`` is such a move, along the panel's own fast axis,
# slow axis and normal, and :meth:`~nanobrag_torch.io.dials.Experiment.with_values`
# sets it by the names the refinement uses. The observed image is a Poisson draw of the
# true detector's expected image (nanoBragg's noise generator, seed 5).
TRUTH = {
    "detector.panel_shift_mm[0]": 0.30,
    "detector.panel_shift_mm[1]": -0.25,
    "detector.panel_shift_mm[2]": 0.50,
}
NAMES = list(TRUTH)
true_experiment = experiment.with_values(TRUTH)
expected = render(true_experiment.detector)
counts = noise_image(expected, seed=5, adc_offset=0.0)[0].astype(np.float64)
print(f"photons counted: {counts.sum():.0f}, brightest pixel {counts.max():.0f}, "
      f"pixels with a photon: {int((counts > 0).sum())} of {counts.size}")

# %%
# On the left, the observed counts; in the middle and on the right, the counts less the
# image the file predicts, over the whole detector and in a zoom on a few spots. Each
# spot leaves a red crescent (more photons observed than predicted) beside a blue one:
# the spots are observed a pixel or two from where the file puts them, and further from
# the beam centre the further away the detector is.
ZOOM = (slice(150, 230), slice(150, 230))
fig, axes = plt.subplots(1, 3, figsize=(17, 5.4), layout="constrained")
show_detector_image(
    counts, axes[0], title="observed counts", **count_color_scale(counts)
)
show_residual(counts - predicted, axes[1], title="observed − predicted by the file",
              label="photons per pixel")
show_residual(counts - predicted, axes[2], region=ZOOM, title="the same, zoomed")
plt.show()

# %%
# Refining the detector's position
# --------------------------------
# The three components of the panel's shift are refined from zero, the position in the
# file, by maximising the Poisson likelihood of the counts
# (:func:`~nanobrag_torch.refine.refine`); the crystal and the beam are held at the
# file's values. The configurations go in as :func:`read_experiments` returned them.
start = {name: 0.0 for name in NAMES}
result = refine(
    counts,
    start,
    crystal=crystal,
    detector=detector,
    beam=beam,
    structure_factors=structure_factors,
    progress=False,
)
print(result.summary())
print()
print(f"{'parameter':<28}{'start':>8}{'refined':>10}{'± error':>9}{'truth':>8}"
      f"{'pull':>7}")
for name in NAMES:
    value, error = result.values[name], result.stderr[name]
    print(f"{name:<28}{start[name]:>8.3f}{value:>10.4f}{error:>9.4f}{TRUTH[name]:>8.3f}"
          f"{(value - TRUTH[name]) / error:>+7.2f}")

# %%
# The refined shifts are within 1.5 µm of the truth, and the pulls, (refined − truth)
# / standard error, are of order one: none is beyond two, and the error bars are to be
# believed. A shift along the normal is known five times less well than one in the
# plane: moving the detector away spreads the spots from the beam centre in proportion
# to their distance from it, a small effect on a detector that spans only 22 mm either
# side of the beam, while a shift in the plane moves every spot by the same amount.
#
# Writing the refined experiment list
# -----------------------------------
# :meth:`Experiment.with_values(result.values)
# <nanobrag_torch.io.dials.Experiment.with_values>` sets the refined shifts in the
# configurations, and :func:`~nanobrag_torch.io.dials.write_experiments` writes them as
# DIALS has them: the shift goes into the panel's ``origin`` (DIALS has no separate
# shift), and everything else is written back as it was read, the image set included.
# For comparison we write the true experiment list too.
write_experiments(folder / "refined.expt", [experiment.with_values(result.values)])
write_experiments(folder / "truth.expt", [true_experiment])
files = {
    name: json.loads((folder / f"{name}.expt").read_text())
    for name in ("indexed", "refined", "truth")
}
print("files:", ", ".join(sorted(path.name for path in folder.iterdir())))
print("image set written back:", files["refined"]["imageset"])

# %%
# The fields a crystallographer looks at are the panel's ``origin`` and what follows
# from it: the distance of the detector plane from the crystal (origin · normal, since
# the crystal sits at the origin of the laboratory frame) and the beam centre, the point
# where the beam meets the panel, in millimetres along the fast and slow axes from the
# corner of pixel (0, 0), and in pixels.


def distance_and_beam_centre(document):
    """The first panel's distance (mm) and beam centre (mm along fast and slow from the
    corner of pixel (0, 0)) in an experiment list read as JSON."""
    panel = document["detector"][0]["panels"][0]
    origin, fast, slow = (
        np.array(panel[key]) for key in ("origin", "fast_axis", "slow_axis")
    )
    normal = np.cross(fast, slow)
    travel = -np.array(document["beam"][0]["direction"])
    hit = travel * (origin @ normal) / (travel @ normal)  # the beam meets the plane
    return origin @ normal, (hit - origin) @ fast, (hit - origin) @ slow


pixel = indexed["detector"][0]["panels"][0]["pixel_size"][0]
print(f"{'':9}{'origin (mm)':>30}{'distance':>10}{'beam centre (mm)':>20}"
      f"{'(pixels)':>18}")
for name, document in files.items():
    origin = document["detector"][0]["panels"][0]["origin"]
    distance, centre_f, centre_s = distance_and_beam_centre(document)
    print(f"{name:<9}" + "".join(f"{x:>10.4f}" for x in origin) + f"{distance:>10.4f}"
          f"{centre_f:>10.4f}{centre_s:>10.4f}{centre_f / pixel:>9.3f}"
          f"{centre_s / pixel:>9.3f}")

# %%
# The refined file puts the detector where the true one stood, to about a micrometre,
# and its beam centre to a few thousandths of a pixel: the difference between the
# refined and the true origin is the difference between the refined and the true
# shifts, since the panel's axes are the laboratory's x, −y and −z. Read back with
# :func:`read_experiments`, the refined file renders the image of the true detector to
# within a photon:
refined_experiment = read_experiments(folder / "refined.expt")[0]
refined = render(refined_experiment.detector)
print(f"refined file: largest difference from the true expected image "
      f"{np.abs(refined - expected).max():.3f} photons (brightest pixel "
      f"{expected.max():.1f})")
print(f"the file as indexed: largest difference "
      f"{np.abs(predicted - expected).max():.1f} photons")
shutil.rmtree(folder)  # the temporary directory and its three files

# %%
# What it means
# -------------
# An experiment list carries the whole geometry of an experiment, in DIALS's laboratory
# frame, and nothing of what the simulation needs besides: structure factors, flux,
# mosaic domains. Read with :func:`read_experiments`, it is a set of configurations like
# any other, and a refinement's result goes back into it with
# :meth:`~nanobrag_torch.io.dials.Experiment.with_values` and
# :func:`write_experiments`. The next page does the same for a detector of several
# panels, each of which may be out of place on its own.
#
# sphinx_gallery_thumbnail_number = 1
