"""
Your first diffraction pattern
==============================

Simulate the still diffraction image of a small crystal on nanoBragg's default detector,
look at it, and see what one change — the size of the crystal — does to it.

A simulation needs three things: a crystal
(:class:`~nanobrag_torch.config.CrystalConfig`), a detector
(:class:`~nanobrag_torch.config.DetectorConfig`) and a beam
(:class:`~nanobrag_torch.config.BeamConfig`). Each config is a plain dataclass with the
unit in every field name; the models turn them into tensors, and :meth:`Simulator.run()
<nanobrag_torch.simulator.Simulator.run>` renders the image.
"""

# %%
# Imports
# -------
import matplotlib.pyplot as plt
import numpy as np
import torch

from nanobrag_torch import (
    BeamConfig,
    Crystal,
    CrystalConfig,
    Detector,
    DetectorConfig,
    Simulator,
)
from nanobrag_torch.plotting import show_detector_image

# %%
# Crystal, detector and beam
# --------------------------
# An orthorhombic cell of 70 × 80 × 90 Å, ten unit cells along each axis, and every
# structure factor set to 100 electrons (``default_F``; there is no HKL file here). The
# misset rotates the crystal away from its default orientation, where a* points along
# the beam, so that many reflections are in diffracting position at once.
#
# The detector keeps nanoBragg's defaults: the MOSFLM convention, 1024 × 1024 pixels of
# 0.1 mm at 100 mm from the sample, the beam in the middle. The beam is 1 Å X-rays at
# the default fluence.
crystal_config = CrystalConfig(
    cell_a=70.0, cell_b=80.0, cell_c=90.0,
    N_cells=(10, 10, 10),
    default_F=100.0,
    misset_deg=(10.0, 20.0, 30.0),
)
detector_config = DetectorConfig()
beam_config = BeamConfig(wavelength_A=1.0)

print(f"detector: {detector_config.fpixels} × {detector_config.spixels} pixels of "
      f"{detector_config.pixel_size_mm} mm at {detector_config.distance_mm} mm, "
      f"{detector_config.detector_convention.name} convention")


def simulate(crystal_config, detector_config=detector_config, beam_config=beam_config):
    """The float image (photons per pixel) of a crystal on the detector, in float64."""
    crystal = Crystal(crystal_config, dtype=torch.float64)
    detector = Detector(detector_config, dtype=torch.float64)
    return Simulator(crystal, detector, beam_config).run()


image = simulate(crystal_config)
print(f"image: shape {tuple(image.shape)} (slow, fast), dtype {image.dtype}")

# %%
# What the numbers mean
# ---------------------
# Each pixel holds the **expected number of photons** it collects (nanoBragg's
# ``floatimage.bin``):
#
# .. math::
#
#    I = r_e^2 \, \Phi \, \langle F_\text{cell}^2 \, F_\text{latt}^2 \rangle \, \Omega
#    \, P
#
# with :math:`r_e^2` the square of the classical electron radius (m²), :math:`\Phi` the
# fluence (photons/m²), :math:`F_\text{cell}` the structure factor (electrons),
# :math:`F_\text{latt}` the lattice factor of the N × N × N cells — N³ at the exact
# Bragg condition, small in between —, :math:`\Omega` the solid angle of the pixel and
# :math:`P` the polarization factor. The average runs over sub-pixels, sources, phi
# steps and mosaic domains (the whole sum, factor by factor, is on the page
# :ref:`physics-model`). Nothing is counted yet: Poisson noise and the detector's
# integer counts come later (:func:`~nanobrag_torch.noise.noise_image`).
#
# The default fluence is chosen so that :math:`r_e^2 \Phi = 1`, which makes the numbers
# easy to read: a pixel exactly on a Bragg peak holds about
# :math:`F^2 N^6 \Omega = 100^2 \cdot 10^6 \cdot 10^{-6} = 10^4` photons.
img = image.numpy()
print(f"brightest pixel: {img.max():.3g} photons")
print(f"median pixel:    {np.median(img):.3g} photons")
print(f"total:           {img.sum():.3g} photons")
print(f"pixels above 1 photon: {(img > 1).sum():,} of {img.size:,}")

# %%
# Look at it
# ----------
# :func:`~nanobrag_torch.plotting.show_detector_image` draws every detector image of
# this gallery the same way: the fast axis to the right and the slow axis down (element
# ``[s, f]`` at row ``s`` from the top), and the photon counts on a logarithmic colour
# scale over four decades, whose top is the 99.9th percentile of the lit pixels, so that
# the few brightest pixels do not make every other spot look faint.
#
# The spots line up on arcs — the intersections of the Ewald sphere with the planes of
# the reciprocal lattice. Between the bright spots, the faint grid is the side lobes of
# the lattice factor of a box-shaped crystal (``shape=CrystalShape.SQUARE``, nanoBragg's
# default).
fig, ax = plt.subplots(figsize=(7, 6.2), layout="constrained")
show_detector_image(img, ax, title="70 × 80 × 90 Å cell, N = 10, λ = 1 Å")
plt.show()

# %%
# One change: a smaller crystal
# -----------------------------
# Halve the crystal to 5 × 5 × 5 cells. The lattice factor of N cells is a peak of
# height N³ and width ∝ 1/N in reciprocal space, so each spot becomes about twice as
# wide, its peak photon count drops by about 2⁶ = 64, and the photons integrated over
# the detector — the number of cells scattering, N³ — drop by 2³ = 8.
small_config = CrystalConfig(
    cell_a=70.0, cell_b=80.0, cell_c=90.0,
    N_cells=(5, 5, 5),
    default_F=100.0,
    misset_deg=(10.0, 20.0, 30.0),
)
small = simulate(small_config).numpy()

peak_ratio = img.max() / small.max()
total_ratio = img.sum() / small.sum()
print(
    f"peak ratio  N=10 / N=5: {peak_ratio:.1f}  (2^6 = 64 at the exact Bragg condition)"
)
print(f"total ratio N=10 / N=5: {total_ratio:.2f}  (2^3 = 8)")

# %%
# Side by side, each on its own scale, with a zoom on the same corner (the axes keep the
# detector's pixel numbers): the small crystal's spots are broader and more of them
# light up, because a broad peak touches the Ewald sphere from further away.
zoom = (slice(100, 260), slice(100, 260))
fig, axes = plt.subplots(2, 2, figsize=(10, 9), layout="constrained")
show_detector_image(img, axes[0, 0], title="N = 10")
show_detector_image(small, axes[0, 1], title="N = 5")
show_detector_image(img, axes[1, 0], region=zoom, title="N = 10, zoom")
show_detector_image(small, axes[1, 1], region=zoom, title="N = 5, zoom")
for ax in axes[0]:
    ax.add_patch(plt.Rectangle((100, 100), 160, 160, fill=False, color="cyan", lw=1))
plt.show()

# %%
# A cut through a spot
# --------------------
# A row through the brightest spot of the zoomed corner: the large crystal's peak is
# higher and narrower; the areas under the two curves (summed over both directions of
# the detector) differ by the factor 8 above.
corner = img[zoom]
row, column = np.unravel_index(np.argmax(corner), corner.shape)
row += zoom[0].start
column += zoom[1].start
window = np.arange(column - 12, column + 13)
fig, ax = plt.subplots(figsize=(7, 4))
ax.plot(window, img[row, window], "o-", label="N = 10")
ax.plot(window, small[row, window], "s-", label="N = 5")
ax.set_yscale("log")
ax.set_xlabel("fast pixel")
ax.set_ylabel("photons per pixel")
ax.set_title(f"slow pixel {row}")
ax.grid(alpha=0.3)
ax.legend()
fig.tight_layout()
plt.show()

# %%
# Next steps
# ----------
# * *Detector geometry*: how the MOSFLM, XDS, DIALS, ADXV and DENZO conventions place
#   the detector and the beam centre, and what rotations and pivots do.
# * Every continuous field above may be a tensor with ``requires_grad=True``; the
#   gradient examples show how to check and use the derivatives.

# sphinx_gallery_thumbnail_number = 1
