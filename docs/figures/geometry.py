"""The physics page's geometry figure: the lab frame, the detector and the Ewald sphere.

Left: the MOSFLM convention in the lab frame (the beam along +x, the detector normal
along the beam, fast axis +z, slow axis −y), the corner of pixel (0, 0), a pixel and the
scattered direction to it. Right: the same scattering in reciprocal space, the Ewald
sphere of radius 1/λ through the origin, and the scattering vector q from the origin to
the point where the scattered direction meets the sphere.
"""

import matplotlib.pyplot as plt
import numpy as np

DISTANCE = 1.0
HALF = 0.55
fig = plt.figure(figsize=(9, 4.4), layout="constrained")

# --- left: the lab frame and the detector (x along the beam, drawn to the right) ---
lab = fig.add_subplot(1, 2, 1, projection="3d")
lab.set_title("Lab frame and detector (MOSFLM)")
corner = np.array([DISTANCE, HALF, -HALF])
fast, slow = np.array([0.0, 0.0, 1.0]), np.array([0.0, -1.0, 0.0])
panel = np.array([corner, corner + 2 * HALF * fast, corner + 2 * HALF * (fast + slow), corner + 2 * HALF * slow])
lab.add_collection3d(plt.matplotlib.collections.PolyCollection(
    [panel[:, [1, 2]]], facecolors="lightsteelblue", edgecolors="steelblue", alpha=0.5), zs=DISTANCE, zdir="x")
for axis, name in ((np.eye(3)[0], "x"), (np.eye(3)[1], "y"), (np.eye(3)[2], "z")):
    lab.quiver(0, 0, 0, *(0.35 * axis), color="k", arrow_length_ratio=0.2)
    lab.text(*(0.42 * axis), name)
lab.quiver(-0.6, 0, 0, 0.55, 0, 0, color="tab:red", arrow_length_ratio=0.15, lw=2)
lab.text(-0.6, 0, 0.08, "beam $\\hat{\\mathbf{b}}$", color="tab:red")
lab.plot([0, DISTANCE], [0, 0], [0, 0], color="tab:red", ls=":", lw=1)
lab.scatter(*corner, color="k", s=20)
lab.text(*(corner + [0, 0.05, -0.12]), "$\\mathbf{p}_0$: corner of pixel (0, 0)", fontsize=10)
lab.quiver(*corner, *(0.45 * fast), color="tab:blue", arrow_length_ratio=0.2, lw=2)
lab.text(*(corner + 0.5 * fast + [0, 0.03, 0]), "fast $\\hat{\\mathbf{f}}$", color="tab:blue")
lab.quiver(*corner, *(0.45 * slow), color="tab:green", arrow_length_ratio=0.2, lw=2)
lab.text(*(corner + 0.5 * slow + [0, 0, -0.1]), "slow $\\hat{\\mathbf{s}}$", color="tab:green")
lab.quiver(DISTANCE, 0, 0, 0.3, 0, 0, color="tab:purple", arrow_length_ratio=0.2)
lab.text(DISTANCE + 0.3, 0, -0.12, "normal $\\hat{\\mathbf{o}}$", color="tab:purple")
pixel = np.array([DISTANCE, -0.25, 0.3])
lab.plot(*np.stack([np.zeros(3), pixel]).T, color="tab:orange", lw=2)
lab.scatter(*pixel, color="tab:orange", s=20)
lab.text(*(pixel + [0, 0, 0.06]), "pixel $\\mathbf{p}$", color="tab:orange")
lab.text(0, 0, -0.15, "sample", fontsize=10)
lab.set_xlim(-0.6, 1.3)
lab.set_ylim(-0.7, 0.7)
lab.set_zlim(-0.7, 0.7)
lab.set_box_aspect((1.9, 1.4, 1.4))
lab.view_init(elev=18, azim=-60)
lab.set_axis_off()

# --- right: the Ewald construction in the plane of the beam and the scattered ray ---
ewald = fig.add_subplot(1, 2, 2)
ewald.set_title("Ewald sphere (reciprocal space, units of 1/λ)")
two_theta = np.deg2rad(40.0)
incident = np.array([1.0, 0.0])
scattered = np.array([np.cos(two_theta), np.sin(two_theta)])
centre = -incident
angles = np.linspace(0, 2 * np.pi, 400)
ewald.plot(centre[0] + np.cos(angles), centre[1] + np.sin(angles), color="gray")
ewald.annotate("", xy=(0, 0), xytext=centre,
               arrowprops=dict(arrowstyle="-|>", color="tab:red", lw=2))
ewald.text(-0.6, -0.12, "$\\hat{\\mathbf{i}}/\\lambda$", color="tab:red", ha="center")
tip = centre + scattered
ewald.annotate("", xy=tip, xytext=centre, arrowprops=dict(arrowstyle="-|>", color="tab:orange", lw=2))
ewald.text(*(centre + 0.55 * scattered + [-0.05, 0.08]), "$\\hat{\\mathbf{d}}/\\lambda$",
           color="tab:orange", ha="right")
ewald.annotate("", xy=tip, xytext=(0, 0), arrowprops=dict(arrowstyle="-|>", color="k", lw=2))
ewald.text(*(0.5 * tip + [0.06, 0.0]), "$\\mathbf{q} = (\\hat{\\mathbf{d}} - \\hat{\\mathbf{i}})/\\lambda$")
ewald.plot(*centre, "o", color="gray", ms=4)
ewald.text(centre[0], centre[1] - 0.13, "sample", ha="center", fontsize=10, color="gray")
ewald.plot(0, 0, "ko", ms=4)
ewald.text(0.04, -0.12, "origin of\nreciprocal space", fontsize=10)
arc = np.linspace(0, two_theta, 50)
ewald.plot(centre[0] + 0.3 * np.cos(arc), centre[1] + 0.3 * np.sin(arc), color="k", lw=0.8)
ewald.text(centre[0] + 0.33, centre[1] + 0.1, "2θ", fontsize=9)
ewald.set_aspect("equal")
ewald.set_xlim(-2.15, 0.6)
ewald.set_ylim(-1.15, 1.2)
ewald.set_axis_off()
