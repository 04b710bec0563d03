"""The conventions page's figure: a DIALS experiment list's frame next to the configurations'.

Left: a still as ``dials.import`` describes it: the X-rays travel along −z, so the file's
``beam.direction`` (sample to source) is +z while nanobrag-torch's ``custom_beam_vector`` (the
propagation) is −z; the panel's ``origin`` is the outer corner of pixel (0, 0), its fast axis
+x and slow axis −y, and its normal fast × slow points downstream. Right: the corner of the
panel, pixel by pixel: the origin (``pix0_override_m``) is a corner, a pixel's centre lies
half a pixel along both axes from its corner.
"""

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.collections import PolyCollection
from matplotlib.patches import Rectangle

DISTANCE = 1.0
HALF = 0.5
fig = plt.figure(figsize=(9.5, 4.4), layout="constrained")

# --- left: the lab frame of a DIALS experiment list ---
lab = fig.add_subplot(1, 2, 1, projection="3d")
lab.set_title("A DIALS experiment list's frame")
fast, slow = np.array([1.0, 0.0, 0.0]), np.array([0.0, -1.0, 0.0])
origin = np.array([-HALF, HALF, -DISTANCE])
corners = np.array([origin, origin + 2 * HALF * fast, origin + 2 * HALF * (fast + slow), origin + 2 * HALF * slow])
lab.add_collection3d(PolyCollection([corners[:, :2]], facecolors="lightsteelblue", edgecolors="steelblue",
                                    alpha=0.5), zs=-DISTANCE, zdir="z")
TRIAD = np.array([0.55, -0.55, 0.3])
for axis, name in ((np.eye(3)[0], "x"), (np.eye(3)[1], "y"), (np.eye(3)[2], "z")):
    lab.quiver(*TRIAD, *(0.25 * axis), color="k", arrow_length_ratio=0.25)
    lab.text(*(TRIAD + 0.31 * axis), name)
lab.quiver(-0.1, 0, 0.85, 0, 0, -0.8, color="tab:red", arrow_length_ratio=0.12, lw=2)
lab.text(-0.15, 0, 0.9, "X-rays travel along −z:\ncustom_beam_vector = (0, 0, −1)", color="tab:red",
         fontsize=9, ha="right")
lab.quiver(0.1, 0, 0, 0, 0, 0.6, color="tab:brown", arrow_length_ratio=0.15, lw=1.5)
lab.text(0.15, 0, 0.45, "beam.direction = (0, 0, 1):\nfrom the sample to the source", color="tab:brown",
         fontsize=9)
lab.plot([0, 0], [0, 0], [0, -DISTANCE], color="tab:red", ls=":", lw=1)
lab.scatter(*origin, color="k", s=20)
lab.text(*(origin + [-0.05, 0.05, 0.08]), "origin: corner of pixel (0, 0)", fontsize=9, ha="right")
lab.quiver(*origin, *(0.45 * fast), color="tab:blue", arrow_length_ratio=0.2, lw=2)
lab.text(*(origin + 0.5 * fast + [0, 0.05, 0]), "fast_axis", color="tab:blue", fontsize=9)
lab.quiver(*origin, *(0.45 * slow), color="tab:green", arrow_length_ratio=0.2, lw=2)
lab.text(*(origin + 0.5 * slow + [-0.05, 0, 0]), "slow_axis", color="tab:green", fontsize=9, ha="right")
lab.quiver(0, 0, -DISTANCE, 0, 0, -0.3, color="tab:purple", arrow_length_ratio=0.2)
lab.text(0.05, 0, -DISTANCE - 0.35, "normal = fast × slow", color="tab:purple", fontsize=9)
lab.scatter(0, 0, 0, color="k", s=12)
lab.text(-0.08, 0, -0.12, "sample", fontsize=9, ha="right")
lab.set_xlim(-0.7, 0.7)
lab.set_ylim(-0.7, 0.7)
lab.set_zlim(-1.4, 0.9)
lab.set_box_aspect((1.4, 1.4, 2.3))
lab.view_init(elev=20, azim=-55)
lab.set_axis_off()

# --- right: the corner of the panel, pixel by pixel ---
grid = fig.add_subplot(1, 2, 2)
grid.set_title("The corner of the panel (pixels)")
for slow_index in range(3):
    for fast_index in range(4):
        grid.add_patch(Rectangle((fast_index, slow_index), 1, 1, facecolor="lightsteelblue", edgecolor="steelblue"))
        grid.text(fast_index + 0.5, slow_index + 0.8, f"({slow_index}, {fast_index})", ha="center", fontsize=8,
                  color="steelblue")
grid.plot(0, 0, "ko", ms=7, clip_on=False)
grid.annotate("origin / pix0_override_m", xy=(0, 0), xytext=(0.6, -0.45), fontsize=9,
              arrowprops=dict(arrowstyle="-", color="k"), annotation_clip=False)
grid.plot(0.5, 0.5, "o", color="tab:orange", ms=6)
grid.annotate("centre of pixel (0, 0):\norigin + ½ pixel along fast and slow", xy=(0.5, 0.5), xytext=(0.2, 3.55),
              fontsize=9, color="tab:orange", va="top",
              arrowprops=dict(arrowstyle="-", color="tab:orange", shrinkB=4), annotation_clip=False)
grid.annotate("", xy=(4.3, 0), xytext=(0, 0), arrowprops=dict(arrowstyle="-|>", color="tab:blue", lw=2),
              annotation_clip=False)
grid.text(4.35, 0.05, "fast", color="tab:blue", va="center")
grid.annotate("", xy=(0, 3.3), xytext=(0, 0), arrowprops=dict(arrowstyle="-|>", color="tab:green", lw=2),
              annotation_clip=False)
grid.text(0.08, 3.35, "slow", color="tab:green")
grid.text(4.0, 3.35, "labels: (slow, fast) index", ha="right", fontsize=8, color="steelblue")
grid.set_xlim(-0.4, 4.9)
grid.set_ylim(4.4, -0.8)  # the slow axis down, as the site draws images
grid.set_aspect("equal")
grid.set_axis_off()
