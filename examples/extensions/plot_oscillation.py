"""
Oscillation images
==================

A still image records only the reflections that happen to sit on the Ewald sphere, and
most of them only in part. Rotating the crystal about the spindle during the exposure —
an *oscillation* — sweeps reflections through the sphere and records them whole.
nanoBragg integrates an oscillation as a sum of stills: ``phi_steps`` orientations
spread over ``osc_range_deg``. This example compares a still with a 0.1° oscillation in
ten steps, shows that the oscillation is the average of its stills, and looks at how
many steps an oscillation needs.
"""

# %%
# Imports
# -------
import matplotlib.pyplot as plt
import numpy as np
import torch

from nanobrag_torch import Crystal, CrystalConfig, Detector, DetectorConfig, Simulator
from nanobrag_torch.plotting import show_detector_image

DTYPE = torch.float32

# %%
# Still and oscillation
# ---------------------
# A crystal of 10 × 10 × 10 cells of 70 × 80 × 90 Å — about 0.8 µm across, so a
# reflection is in diffracting position over a few tenths of a degree of rotation — on a
# 512 × 512 detector of 0.2 mm pixels. The spindle is the MOSFLM convention's, +z (the
# detector's fast axis). Float32 keeps the runs short; the simulator is accurate in
# single precision.
#
# Three exposures: a still at phi = 0, the 0.1° oscillation in ten steps of the
# refinement tutorial's experiment, and a 1° oscillation, also in ten steps of 0.1°.
CRYSTAL = dict(
    cell_a=70.0,
    cell_b=80.0,
    cell_c=90.0,
    N_cells=(10, 10, 10),
    default_F=100.0,
    misset_deg=(10.0, 20.0, 30.0),
)
detector = Detector(
    DetectorConfig(fpixels=512, spixels=512, pixel_size_mm=0.2), dtype=DTYPE
)


def simulate(detector=detector, **rotation):
    """Float image of the crystal for the given phi_start_deg / osc_range_deg /
    phi_steps, in the detector's dtype."""
    crystal = Crystal(CrystalConfig(**CRYSTAL, **rotation), dtype=detector.dtype)
    return Simulator(crystal, detector).run().numpy()


exposures = {
    "still, phi = 0°": simulate(phi_start_deg=0.0),
    "0° → 0.1°, 10 steps": simulate(phi_start_deg=0.0, osc_range_deg=0.1, phi_steps=10),
    "0° → 1°, 10 steps": simulate(phi_start_deg=0.0, osc_range_deg=1.0, phi_steps=10),
}
still = exposures["still, phi = 0°"]
oscillation = exposures["0° → 0.1°, 10 steps"]
VMAX = np.percentile(still[still > 0], 99.9)

# %%
# The three images, zoomed on a 128 × 128 corner of the detector and drawn on the
# still's colour scale. In the still, the spots lie on thin arcs where the reciprocal
# lattice cuts the Ewald sphere. The 0.1° oscillation barely differs — a tenth of a
# degree is less than a reflection's width — but over 1° the arcs widen into bands (the
# *lunes* of a rotation photograph) as more reflections pass through the sphere.
ZOOM = (slice(40, 168), slice(40, 168))
fig, axes = plt.subplots(1, 3, figsize=(15, 5), layout="constrained", sharey=True)
for ax, (title, image) in zip(axes, exposures.items()):
    artist = show_detector_image(
        image, ax, region=ZOOM, title=title, vmax=VMAX, colorbar=False
    )
for ax in axes[1:]:
    ax.set_ylabel("")
fig.colorbar(artist, ax=axes, label="photons per pixel", shrink=0.85)
plt.show()

# %%
# The image is the *average* over the phi steps (nanoBragg divides by the number of
# steps, as it does for sources, mosaic domains and sub-pixels), so a pixel's value
# stays comparable between a still and an oscillation: the mean photon count per unit
# exposure across the rotation. The total over the detector stays about the same; the
# number of bright pixels grows with the range as the intensity spreads over more
# reflections.
threshold = 0.01 * still.max()
for title, image in exposures.items():
    print(
        f"{title:22} pixels above 1 % of the still's brightest: "
        f"{int((image > threshold).sum()):5d}   "
        f"total photons: {image.sum():.4g}"
    )

# %%
# An oscillation is the mean of its stills
# ----------------------------------------
# Step k sits at ``phi_start + k · osc_range / phi_steps``: 0°, 0.01°, …, 0.09° for the
# 0.1° oscillation. Ten separate stills at those angles, averaged, reproduce its image.
#
# To *show* an identity, compare in float64. In float32, every Miller index h ≈ 20
# carries a rounding error of about 20 × 6 × 10⁻⁸ ≈ 10⁻⁶, and on the flank of a spot of
# a crystal of N = 10 cells the intensity changes by about 2πN ≈ 60 times that,
# relatively, per unit of h. Two routes to the same image — one oscillation in ten
# steps, or ten stills whose angles are computed separately — round differently and may
# differ by up to about 10⁻⁴ of the brightest pixel; how much depends on the CPU (its
# vector instructions and its thread count change the roundings), not on the physics. In
# float64 the same comparison shows a difference near 10⁻¹⁶, the rounding of double
# precision: the identity holds. A region of 128 × 128 pixels (``roi``: only those
# pixels are rendered) keeps the float64 runs short.
ROI = (40, 167, 40, 167)  # fast min, fast max, slow min, slow max, inclusive
roi64 = Detector(
    DetectorConfig(fpixels=512, spixels=512, pixel_size_mm=0.2, roi=ROI),
    dtype=torch.float64,
)
oscillation64 = simulate(roi64, phi_start_deg=0.0, osc_range_deg=0.1, phi_steps=10)
stills64 = [simulate(roi64, phi_start_deg=0.01 * k) for k in range(10)]
difference64 = (
    np.abs(np.mean(stills64, axis=0) - oscillation64).max() / oscillation64.max()
)
print(f"float64: max |mean of stills − oscillation| / max = {difference64:.1e}")

# %%
# The same comparison in float32, on the whole detector: within the 10⁻⁴ that single
# precision allows here (the exact number varies from one CPU to another).
stills = [simulate(phi_start_deg=0.01 * k) for k in range(10)]
difference32 = np.abs(np.mean(stills, axis=0) - oscillation).max() / oscillation.max()
print(f"float32: max |mean of stills − oscillation| / max = {difference32:.1e}")

# %%
# How many steps?
# ---------------
# A step must be finer than the angular width of a reflection, or the "oscillation" is a
# few separate stills and spots between them are missed or counted unevenly. Here the 1°
# oscillation, in the same 128 × 128 region (in float32 again), with more and more
# steps. The total settles once a step is below about a tenth of a degree, comfortably
# under a reflection's width.
roi_detector = Detector(
    DetectorConfig(fpixels=512, spixels=512, pixel_size_mm=0.2, roi=ROI), dtype=DTYPE
)
step_counts = [1, 2, 3, 5, 10, 20, 40, 80]
totals = [
    simulate(roi_detector, phi_start_deg=0.0, osc_range_deg=1.0, phi_steps=n).sum()
    for n in step_counts
]
fig, ax = plt.subplots(figsize=(6.5, 4), layout="constrained")
ax.plot([1.0 / n for n in step_counts], totals, "o-")
ax.set_xscale("log")
ax.invert_xaxis()
ax.set_xlabel("step = osc_range_deg / phi_steps (°)")
ax.set_ylabel("photons in the region")
ax.set_title("1° oscillation: total intensity vs. step size")
ax.grid(alpha=0.3, which="both")
plt.show()
converged = abs(totals[-1] - totals[-2]) / totals[-1]
print(f"40 → 80 steps changes the total by {100 * converged:.2f} %")

# %%
# Summary
# -------
# * ``osc_range_deg`` and ``phi_steps`` turn a still into an oscillation image, the mean
#   of ``phi_steps`` stills across the range; ``phi_start_deg`` and ``osc_range_deg``
#   are differentiable like every other angle.
# * Choose the step below the angular width of a reflection, roughly
#   ``d / (N · cell)`` radians for spacing d.
# * The refinement tutorial refines a still; with ``phi_steps=10, osc_range_deg=0.1``
#   the same code refines against an oscillation image, at ten times the cost per
#   iteration.

# sphinx_gallery_thumbnail_number = 1
