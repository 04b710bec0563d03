"""
A multi-panel detector
======================

Large detectors are built of modules: a Jungfrau or an Eiger is a mosaic of sensor
panels, each mounted on its own and each a little out of place. DIALS describes such a
detector as a list of panels, each with its own origin and axes, arranged in a
hierarchy of groups that move together; this library does the same with
:class:`~nanobrag_torch.config.MultiPanelDetectorConfig`. This page builds a detector of
four panels around the beam, draws it in the laboratory frame and renders its image,
one image per panel, and then finds, from one noisy image, where one of its panels and
the detector as a whole really are.
"""

# %%
# Four panels
# -----------
# Each panel is a :class:`~nanobrag_torch.config.DetectorConfig` of its own: 256 × 256
# pixels of 0.172 mm (44 mm square), placed with the CUSTOM convention by the position
# of the outer corner of its pixel (0, 0) (``pix0_override_m``) and by its fast and
# slow axes. The laboratory frame is DIALS's: the beam travels along −z, the crystal
# sits at the origin, the fast axis of every panel is +x and its slow axis −y, so that
# the normal fast × slow points along the beam. The four panels stand 120 mm from the
# crystal with gaps of 1 mm between them, the beam passing through the middle of the
# cross the gaps make. Panel 0 is at the top left as seen from the crystal, panel 1 at
# the top right, panels 2 and 3 below them.
import dataclasses

import matplotlib.pyplot as plt
import numpy as np
import torch
from mpl_toolkits.mplot3d.art3d import Poly3DCollection

from nanobrag_torch import (
    BeamConfig,
    Crystal,
    CrystalConfig,
    Detector,
    DetectorConfig,
    DetectorConvention,
    MultiPanelDetectorConfig,
    Simulator,
)
from nanobrag_torch.datasets import (
    oriented_reciprocal_vectors,
    random_rotations,
    random_structure_factors,
)
from nanobrag_torch.noise import noise_image
from nanobrag_torch.plotting import (
    count_color_scale,
    show_detector_image,
    show_residual,
)
from nanobrag_torch.refine import refine

PIXELS, PIXEL_MM, GAP_MM, DISTANCE_MM = 256, 0.172, 1.0, 120.0
SIZE_MM = PIXELS * PIXEL_MM


def panel(column, row):
    """The panel in ``column`` 0 (left) or 1 (right) and ``row`` 0 (top) or 1 (bottom),
    as seen from the crystal."""
    left = -SIZE_MM - GAP_MM / 2 if column == 0 else GAP_MM / 2
    top = SIZE_MM + GAP_MM / 2 if row == 0 else -GAP_MM / 2
    return DetectorConfig(
        detector_convention=DetectorConvention.CUSTOM,
        custom_fdet_vector=(1.0, 0.0, 0.0),
        custom_sdet_vector=(0.0, -1.0, 0.0),
        custom_odet_vector=(0.0, 0.0, -1.0),
        custom_beam_vector=(0.0, 0.0, -1.0),
        pix0_override_m=(left * 1e-3, top * 1e-3, -DISTANCE_MM * 1e-3),
        pixel_size_mm=PIXEL_MM,
        fpixels=PIXELS,
        spixels=PIXELS,
        oversample=1,
    )


# the four panels, and one group that holds them all: the detector as one body
nominal = MultiPanelDetectorConfig(
    panels=(panel(0, 0), panel(1, 0), panel(0, 1), panel(1, 1)),
    groups=((0, 1, 2, 3),),
)
for k, geometry in enumerate(Detector(nominal).geometries()):
    corner = (geometry.pix0_m * 1000).tolist()
    print(f"panel {k}: corner of pixel (0, 0) at "
          f"({corner[0]:+7.2f}, {corner[1]:+7.2f}, {corner[2]:+7.2f}) mm, "
          f"fast {geometry.fdet.tolist()}, slow {geometry.sdet.tolist()}")

# %%
# The detector in the laboratory
# ------------------------------
# Each panel drawn where its geometry
# (:meth:`Detector.geometries() <nanobrag_torch.models.detector.Detector.geometries>`)
# puts it, with its fast (red) and slow (blue) axes from the corner of pixel (0, 0),
# the beam (black) through the crystal at the origin, and the laboratory axes.


def draw_detector(ax, config):
    """Draw every panel of ``config`` in the lab frame (mm) on 3-D axes ``ax``."""
    for k, geometry in enumerate(Detector(config).geometries()):
        origin = geometry.pix0_m.numpy() * 1000
        fast = geometry.fdet.numpy() * SIZE_MM
        slow = geometry.sdet.numpy() * SIZE_MM
        corners = [origin, origin + fast, origin + fast + slow, origin + slow]
        ax.add_collection3d(
            Poly3DCollection([corners], color="tab:orange", alpha=0.3, edgecolor="k")
        )
        for axis, colour in ((fast, "tab:red"), (slow, "tab:blue")):
            ax.quiver(*origin, *(0.4 * axis), color=colour, arrow_length_ratio=0.2)
        ax.text(*(origin + 0.5 * (fast + slow)), f"panel {k}", ha="center")


fig = plt.figure(figsize=(11, 5.5), layout="constrained")
ax = fig.add_subplot(projection="3d")
draw_detector(ax, nominal)
ax.quiver(0, 0, 60, 0, 0, -195, color="k", arrow_length_ratio=0.05)
ax.text(0, 0, 65, "beam", ha="center")
ax.scatter([0], [0], [0], color="k", s=30)
ax.text(0, 4, 0, "crystal")
for vector, label in (((30, 0, 0), "x"), ((0, 30, 0), "y"), ((0, 0, 30), "z")):
    ax.quiver(0, 0, 0, *vector, color="tab:gray", arrow_length_ratio=0.15)
    ax.text(*(1.15 * np.array(vector)), label, color="tab:gray")
ax.set_xlabel("x (mm)")
ax.set_ylabel("y (mm)")
ax.set_zlabel("z (mm)")
ax.set_xlim(-50, 50)
ax.set_ylim(-50, 50)
ax.set_zlim(-140, 60)
ax.view_init(elev=20, azim=-60, vertical_axis="y")
ax.set_box_aspect((100, 100, 200), zoom=1.3)  # x, y, z as the ranges shown
ax.set_title("four panels 120 mm from the crystal; fast axes red, slow axes blue")
plt.show()

# %%
# The crystal and its image
# -------------------------
# A tetragonal crystal (a = b = 79 Å, c = 38 Å, P 4₃2₁2, 5 × 5 × 10 cells) in a random
# orientation, with the amplitudes of a made-up structure of 100 atoms
# (:func:`~nanobrag_torch.datasets.random_structure_factors`) to 2 Å, beyond the
# resolution of the detector's corners. The simulator renders every panel in one call
# and returns a tensor of shape ``(panels, slow, fast)``; a pixel is named by its panel,
# its slow and its fast index.
CELL = (79.0, 79.0, 38.0, 90.0, 90.0, 90.0)
orientation = random_rotations(1, seed=4)[0]
a_star, b_star, c_star = oriented_reciprocal_vectors(CELL, orientation)
crystal = CrystalConfig(
    mosflm_a_star=tuple(a_star), mosflm_b_star=tuple(b_star),
    mosflm_c_star=tuple(c_star), N_cells=(5, 5, 10),
)
structure_factors = random_structure_factors(
    CELL, "P 43 21 2", d_min_A=2.0, n_atoms=100, n_anomalous=0, f_anomalous_e=0.0,
    seed=3,
)
beam = BeamConfig(wavelength_A=1.0, fluence=2e27)


def render(detector_config):
    """Expected photons per pixel, (panels, slow, fast), float64, no gradient."""
    with torch.no_grad():
        simulator = Simulator(
            Crystal(crystal, structure_factors), Detector(detector_config), beam
        )
        return simulator.run().numpy()


predicted = render(nominal)
print(f"image: shape {predicted.shape} (panels, slow, fast), "
      f"{predicted.sum():.0f} expected photons")

# %%
# Where the panels really are
# ---------------------------
# The real detector is not the nominal one. As a whole it stands 0.4 mm further from the
# crystal — a shift of the group that holds all four panels along its normal
# (``group_shift_mm``) — and panel 1 was mounted 0.35 mm off along its fast axis, −0.20
# mm along its slow axis, and turned by 0.5° in its plane, about its normal through its
# centre (``panel_shift_mm`` and ``panel_rotation_deg``); its corners are up to 1.6
# pixels from where they should be. The observed image is a Poisson draw (nanoBragg's
# generator, seeds 9 to 12, one per panel) of the true detector's expected image.
TRUTH = {
    "detector.groups[0].shift_mm[2]": 0.40,
    "detector.panels[1].shift_mm[0]": 0.35,
    "detector.panels[1].shift_mm[1]": -0.20,
    "detector.panels[1].rotation_deg[2]": 0.50,
}
NAMES = list(TRUTH)


def placed(values):
    """The nominal detector moved by the four parameters at ``values`` (by name)."""
    moved = dataclasses.replace(
        nominal.panels[1],
        panel_shift_mm=(
            values["detector.panels[1].shift_mm[0]"],
            values["detector.panels[1].shift_mm[1]"],
            0.0,
        ),
        panel_rotation_deg=(0.0, 0.0, values["detector.panels[1].rotation_deg[2]"]),
    )
    return dataclasses.replace(
        nominal,
        panels=(nominal.panels[0], moved, *nominal.panels[2:]),
        group_shift_mm=((0.0, 0.0, values["detector.groups[0].shift_mm[2]"]),),
    )


true_detector = placed(TRUTH)
expected = render(true_detector)
counts = np.stack([
    noise_image(image, seed=9 + k, adc_offset=0.0)[0].astype(np.float64)
    for k, image in enumerate(expected)
])
for k in range(len(counts)):
    print(f"panel {k}: {counts[k].sum():>6.0f} photons counted, brightest pixel "
          f"{counts[k].max():>4.0f}")

# %%
# The observed counts, one image per panel, each drawn as it is seen from the crystal
# (fast to the right, slow down) and placed where its panel is, on one colour scale.
# Look closely at panel 1, top right: nothing there betrays, at this scale, that it is
# out of place.
scale = count_color_scale(*counts)
fig, axes = plt.subplots(2, 2, figsize=(10, 9), layout="constrained")
for k, ax in enumerate(axes.flat):
    artist = show_detector_image(
        counts[k], ax, title=f"panel {k}", colorbar=False, vmax=scale["vmax"],
        decades=scale["decades"],
    )
fig.colorbar(artist, ax=axes, label=scale["label"], extend="both", shrink=0.8)
plt.show()

# %%
# Refinement from the nominal geometry
# ------------------------------------
# The four parameters are named by panel and group index, as
# :ref:`the conventions page <conventions-dials>` describes, and refined from zero,
# the nominal geometry, against the counts of all four panels with the Poisson
# likelihood (:func:`~nanobrag_torch.refine.refine`); the crystal and the beam are held.
start = {name: 0.0 for name in NAMES}
result = refine(
    counts,
    start,
    crystal=crystal,
    detector=nominal,
    beam=beam,
    structure_factors=structure_factors,
    progress=False,
)
print(result.summary())
print()
print(f"{'parameter':<36}{'start':>7}{'refined':>10}{'± error':>9}{'truth':>8}"
      f"{'pull':>7}")
for name in NAMES:
    value, error = result.values[name], result.stderr[name]
    print(f"{name:<36}{start[name]:>7.2f}{value:>10.4f}{error:>9.4f}{TRUTH[name]:>8.2f}"
          f"{(value - TRUTH[name]) / error:>+7.2f}")

# %%
# All four come back to within two standard errors of the truth: the detector's
# distance to a few micrometres, the place of panel 1 to about a micrometre, and its
# turn to a few thousandths of a degree. The distance's standard error is twice those of
# the panel's shifts in its plane: moving the whole detector away changes the spots'
# positions in proportion to their distance from the beam, while a shift of panel 1
# moves every spot on it by the same amount.
#
# The residuals before and after
# ------------------------------
# The counts less the expected image at the start (left) and at the refined geometry
# (right), for panel 1, the panel that was out of place, and panel 2, which was not.
# At the start every spot on panel 1 leaves a red and a blue crescent, side by side;
# the spots on panel 2, moved only by the detector's distance, less so. After the
# refinement what is left is the noise.
at_refined = render(placed(result.values))
limit = float(np.percentile(np.abs(counts - predicted), 99.9))
fig, axes = plt.subplots(2, 2, figsize=(11, 9.5), layout="constrained")
for row, k in enumerate((1, 2)):
    for column, (model, when) in enumerate(
        ((predicted, "nominal geometry"), (at_refined, "refined geometry"))
    ):
        show_residual(
            counts[k] - model[k], axes[row, column], scale=limit,
            title=f"panel {k}, {when}", label="observed − expected photons",
        )
fig.suptitle("observed counts less the expected image")
plt.show()
for k in range(len(counts)):
    squares = [np.sum((counts[k] - model[k]) ** 2)
               for model in (predicted, at_refined, expected)]
    print(f"panel {k}: sum of squared residuals {squares[0]:>8.0f} at the start, "
          f"{squares[1]:>6.0f} refined, {squares[2]:>6.0f} at the truth")

# %%
# On every panel the refined geometry leaves the residuals the truth leaves, the
# photon-counting noise, and on panel 1 it took away nearly all of them.
#
# What it means
# -------------
# A detector of several panels is several detectors that share a beam and a laboratory
# frame, and the refinement treats each panel's position as a parameter like any other:
# here four of them, from one still, to a few micrometres. The same names move the
# panels of a detector read from a DIALS experiment list
# (:func:`~nanobrag_torch.io.dials.read_experiments`), whose hierarchy becomes the
# configuration's groups; the previous page,
# :ref:`sphx_glr_auto_examples_field_plot_working_with_dials.py`, shows how a refined
# geometry goes back into the file.
#
# sphinx_gallery_thumbnail_number = 1
