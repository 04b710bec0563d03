"""
Detector rotations and pivots
=============================

A detector can be tilted (``detector_rotx_deg``, ``detector_roty_deg``,
``detector_rotz_deg``, about the lab axes in that order) and swung out on a two-theta
arm (``detector_twotheta_deg``, about the convention's two-theta axis). What stays fixed
while it moves is the *pivot*: with the BEAM pivot, the point where the direct beam hits
the detector stays on the same pixel; with the SAMPLE pivot, the whole detector turns
about the sample, carrying the point closest to the sample with it. This example draws
both.
"""

# %%
# Imports
# -------
import matplotlib.pyplot as plt
import numpy as np
import torch

from nanobrag_torch import Detector, DetectorConfig, DetectorPivot

# %%
# Seen from above
# ---------------
# MOSFLM convention: the beam runs along +x, the two-theta axis is −z, so a two-theta
# swing moves the detector in the x–y plane and we can look at it from above (down the z
# axis). The detector is 100 mm wide along slow (−y) at 100 mm. For each pivot, the
# detector at two-theta 0°, 20° and 40°; the dot marks where the beam hits the
# detector's plane.


def beam_hit(geometry):
    """Where the beam line meets the detector plane, in the lab frame (m)."""
    along = torch.dot(geometry.pix0_m, geometry.odet) / torch.dot(
        geometry.beam, geometry.odet
    )
    return along * geometry.beam


def slow_edge(geometry, spixels, pixel_m):
    """The two ends of the detector's slow edge through pix0, in mm."""
    start = geometry.pix0_m
    return (
        1000 * torch.stack([start, start + spixels * pixel_m * geometry.sdet]).numpy()
    )


fig, axes = plt.subplots(1, 2, figsize=(12, 5.5), sharey=True)
print(f"{'pivot':8}{'2θ (°)':>8}   beam hits at (fast, slow) pixel   pix0 (mm)")
for ax, pivot in zip(axes, (DetectorPivot.BEAM, DetectorPivot.SAMPLE)):
    for twotheta, color in zip(
        (0.0, 20.0, 40.0), ("tab:blue", "tab:orange", "tab:green")
    ):
        config = DetectorConfig(
            distance_mm=100.0,
            pixel_size_mm=1.0,
            fpixels=100,
            spixels=100,
            detector_pivot=pivot,
            detector_twotheta_deg=twotheta,
        )
        g = Detector(config).geometry()
        edge = slow_edge(g, config.spixels, 1e-3)
        ax.plot(
            edge[:, 0], edge[:, 1], color=color, lw=3, label=f"2θ = {twotheta:.0f}°"
        )
        hit = beam_hit(g)
        ax.plot(1000 * hit[0], 1000 * hit[1], "o", color=color)
        ax.annotate(
            "",
            xy=1000 * (g.pix0_m + 30e-3 * g.odet)[:2].numpy(),
            xytext=1000 * g.pix0_m[:2].numpy(),
            arrowprops=dict(arrowstyle="->", color=color),
        )
        fast = (torch.dot(hit - g.pix0_m, g.fdet) / 1e-3 - 0.5).item()
        slow = (torch.dot(hit - g.pix0_m, g.sdet) / 1e-3 - 0.5).item()
        print(f"{pivot.name:8}{twotheta:>8.0f}   ({fast:6.1f}, {slow:6.1f})"
              f"{'':18}({', '.join(f'{1000 * v:6.1f}' for v in g.pix0_m.tolist())})")
    ax.plot([-20, 160], [0, 0], "k-", lw=1)
    ax.plot(0, 0, "k*", ms=12)
    ax.text(-18, 3, "beam →")
    ax.set_title(f"{pivot.name} pivot")
    ax.set_xlabel("x (mm), along the beam")
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
axes[0].set_ylabel("y (mm)")
fig.tight_layout()
plt.show()

# %%
# With the BEAM pivot the beam keeps hitting pixel (50.5, 50.5) — the MOSFLM default
# centre — and the detector pivots about that point: its far edge moves away from the
# beam. With the SAMPLE pivot the detector swings about the sample at a fixed distance,
# and the beam falls further and further off its centre (at 40° it only meets the
# detector's plane outside the detector). The arrows are the normal ``odet``, drawn from
# pix0.
#
# nanoBragg forces the pivot of a named convention (BEAM for MOSFLM, DENZO and ADXV,
# SAMPLE for XDS and DIALS) and chooses it from the flags in the CUSTOM one; the library
# takes ``detector_pivot`` as given and otherwise uses the convention's.
#
# The three detector rotations work the same way. A 10° tilt about each lab axis in
# turn, BEAM pivot, projected on the y–z plane (the beam runs into the page): rotx spins
# the detector about the beam, roty and rotz tilt it, which shortens it in this view and
# turns its normal away from the beam.
fig, axes = plt.subplots(1, 4, figsize=(15, 4.2), sharex=True, sharey=True)
rotations = {
    "no rotation": {},
    "rotx = 10°": dict(detector_rotx_deg=10.0),
    "roty = 10°": dict(detector_roty_deg=10.0),
    "rotz = 10°": dict(detector_rotz_deg=10.0),
}
for ax, (title, rotation) in zip(axes, rotations.items()):
    config = DetectorConfig(
        distance_mm=100.0, pixel_size_mm=1.0, fpixels=100, spixels=100, **rotation
    )
    g = Detector(config).geometry()
    f, s, p0 = g.fdet.numpy(), g.sdet.numpy(), g.pix0_m.numpy()
    corners = 1000 * np.array(
        [p0, p0 + 0.1 * f, p0 + 0.1 * f + 0.1 * s, p0 + 0.1 * s, p0]
    )
    ax.fill(-corners[:, 1], corners[:, 2], color="lightgray", edgecolor="gray")
    ax.annotate(
        "",
        xy=(-1000 * (p0[1] + 0.04 * f[1]), 1000 * (p0[2] + 0.04 * f[2])),
        xytext=(-1000 * p0[1], 1000 * p0[2]),
        arrowprops=dict(arrowstyle="->", color="tab:red", lw=2),
    )
    ax.annotate(
        "",
        xy=(-1000 * (p0[1] + 0.04 * s[1]), 1000 * (p0[2] + 0.04 * s[2])),
        xytext=(-1000 * p0[1], 1000 * p0[2]),
        arrowprops=dict(arrowstyle="->", color="tab:blue", lw=2),
    )
    hit = beam_hit(g).numpy()
    ax.plot(-1000 * hit[1], 1000 * hit[2], "k+", ms=12)
    ax.set_title(
        f"{title}\nnormal = ({', '.join(f'{v:.2f}' for v in g.odet.tolist())})",
        fontsize=10,
    )
    ax.set_xlabel("−y (mm)")
    ax.set_aspect("equal")
axes[0].set_ylabel("z (mm)")
fig.tight_layout()
plt.show()

# %%
# Red is the fast axis and blue the slow axis, both from pix0; + is where the beam hits.
# The rotations are differentiable like every other angle: a refinement can tilt the
# detector as well as turn the crystal.

# sphinx_gallery_thumbnail_number = 1
