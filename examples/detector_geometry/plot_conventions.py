"""
Detector conventions
====================

nanoBragg knows five named conventions for where the beam goes, how the detector's fast
and slow axes lie in the laboratory frame, and how a beam centre given in millimetres
becomes a position on the detector: MOSFLM (the default), DENZO, XDS, DIALS and ADXV.
This example draws each convention's frame, works out the beam-centre rules, and then
simulates *one* experiment in all five to show that — given the same physical set-up —
they produce the same image, except ADXV, whose image comes out mirrored.
"""

# %%
# Imports
# -------
import matplotlib.pyplot as plt
import numpy as np
import torch
from mpl_toolkits.mplot3d.art3d import Poly3DCollection

from nanobrag_torch import (
    Crystal,
    CrystalConfig,
    Detector,
    DetectorConfig,
    DetectorConvention,
    DetectorPivot,
    Simulator,
    beam_center_for_pixel,
    default_beam_center_mm,
)
from nanobrag_torch.conventions import CONVENTIONS, c_header_beam_center
from nanobrag_torch.plotting import show_detector_image

NAMED = [DetectorConvention.MOSFLM, DetectorConvention.DENZO, DetectorConvention.XDS,
         DetectorConvention.DIALS, DetectorConvention.ADXV]

# %%
# The vectors of each convention
# ------------------------------
# :data:`~nanobrag_torch.conventions.CONVENTIONS` holds, for every convention, the beam
# direction, the fast axis ``fdet`` (along a row of pixels), the slow axis ``sdet``
# (from row to row), the detector normal ``odet``, the two-theta, polarization and
# spindle axes, the pivot of the detector rotations, and the beam-centre rule.
# Everything that depends on the convention reads this one table: the library, the
# ``nanobragg`` command and this page. MOSFLM and DENZO send the beam along +x; XDS,
# DIALS and ADXV along +z.
print(f"{'':8}{'beam':>13}{'fast':>13}{'slow':>13}{'normal':>13}{'spindle':>13}  pivot")
for convention in NAMED:
    v = CONVENTIONS[convention]
    print(
        f"{convention.name:8}"
        + "".join(
            f"{str(vec):>13}"
            for vec in (v.beam, v.fdet, v.sdet, v.odet, v.spindle_axis)
        )
        + f"  {v.pivot.name}"
    )

# %%
# Drawing the frames
# ------------------
# :meth:`Detector.geometry() <nanobrag_torch.models.detector.Detector.geometry>` returns
# where the detector actually is, in metres: ``pix0_m`` (the outer corner of pixel (0,
# 0)), the unit axes ``fdet``, ``sdet``, ``odet`` and the beam. Below, a 100 × 80 mm
# detector of 1 mm pixels at 100 mm, each convention with its default beam centre. The
# sample sits at the origin; the black arrow is the beam; red and blue arrows start at
# pix0 and point along fast and slow; green is the normal.
#
# Two things to notice. In MOSFLM, DENZO, XDS and DIALS, fast × slow points along the
# beam: seen from the sample, the pixel grid has the same handedness. In ADXV it points
# against the beam: its frame is the mirror image of the others.
def frame_corners(geometry, fpixels, spixels, pixel_m):
    """The detector's four corners in mm, for drawing."""
    f, s, p0 = geometry.fdet.numpy(), geometry.sdet.numpy(), geometry.pix0_m.numpy()
    width, height = fpixels * pixel_m, spixels * pixel_m
    corners = [p0, p0 + width * f, p0 + width * f + height * s, p0 + height * s, p0]
    return 1000 * np.array(corners)


def draw_convention(ax, convention):
    cfg = DetectorConfig(distance_mm=100.0, pixel_size_mm=1.0, fpixels=100, spixels=80,
                         detector_convention=convention)
    g = Detector(cfg).geometry()
    corners = frame_corners(g, cfg.fpixels, cfg.spixels, 1e-3)
    ax.plot(*corners.T, color="gray")
    ax.add_collection3d(Poly3DCollection([corners[:4]], color="lightgray", alpha=0.4))
    p0 = 1000 * g.pix0_m.numpy()
    centre = corners[:4].mean(axis=0)
    beam_end = 1000 * (g.distance_m * g.beam).numpy()
    ax.quiver(
        *(-0.4 * beam_end), *(1.4 * beam_end), color="black", arrow_length_ratio=0.1
    )
    ax.quiver(
        *p0, *(60 * g.fdet.numpy()), color="tab:red", arrow_length_ratio=0.2, lw=2
    )
    ax.quiver(
        *p0, *(60 * g.sdet.numpy()), color="tab:blue", arrow_length_ratio=0.2, lw=2
    )
    ax.quiver(
        *centre, *(60 * g.odet.numpy()), color="tab:green", arrow_length_ratio=0.2, lw=2
    )
    ax.scatter(*p0, color="k", s=12)
    ax.text(*p0, " pix0", fontsize=8)
    ax.scatter(0, 0, 0, color="orange", s=30)
    ax.set_xlabel("x (mm)")
    ax.set_ylabel("y (mm)")
    ax.set_zlabel("z (mm)")
    for setter in (ax.set_xlim, ax.set_ylim, ax.set_zlim):
        setter(-60, 140)
    handed = (
        "fast × slow = +beam"
        if torch.dot(torch.linalg.cross(g.fdet, g.sdet), g.beam) > 0
        else "fast × slow = −beam"
    )
    ax.set_title(f"{convention.name}\n{handed}", fontsize=10)


fig = plt.figure(figsize=(15, 9))
for index, convention in enumerate(NAMED):
    ax = fig.add_subplot(2, 3, index + 1, projection="3d")
    draw_convention(ax, convention)
    ax.view_init(elev=20, azim=-60 if CONVENTIONS[convention].beam[0] else -120)
legend = fig.add_subplot(2, 3, 6)
legend.axis("off")
for row, (color, text) in enumerate([("orange", "sample (origin)"), ("black", "beam"),
                                     ("tab:red", "fast axis fdet, from pix0"),
                                     ("tab:blue", "slow axis sdet, from pix0"),
                                     ("tab:green", "detector normal odet")]):
    legend.plot([0.05, 0.2], [0.8 - 0.12 * row] * 2, color=color, lw=3)
    legend.text(0.25, 0.8 - 0.12 * row, text, va="center")
legend.set_xlim(0, 1)
legend.set_ylim(0, 1)
fig.tight_layout()
plt.show()

# %%
# Beam-centre rules
# -----------------
# The beam centre is given in millimetres, but each convention measures it differently
# (the table is also on the page :ref:`physics-conventions`):
#
# * **MOSFLM**: ``Xbeam`` runs along the *slow* axis and ``Ybeam`` along the *fast* one
#   (in the library: ``beam_center_s`` = Xbeam, ``beam_center_f`` = Ybeam), and half a
#   pixel is added to both. The default is the middle of the detector plus half a pixel.
# * **DENZO**: as MOSFLM without the half pixel.
# * **ADXV**: ``Xbeam`` along fast, ``Ybeam`` along slow but measured from the *far*
#   edge.
# * **XDS** and **DIALS**: the centre is the point of the detector closest to the sample
#   (the library takes it in mm, ``(ORGX − ½) · pixel``); these conventions pivot about
#   the sample.
#
# These rules live in one place, ``nanobrag_torch.conventions``, which the library, the
# ``nanobragg`` command and this page all call:
# :func:`~nanobrag_torch.conventions.default_beam_center_mm` gives the beam centre of a
# configuration that names none, and
# :func:`~nanobrag_torch.conventions.beam_center_for_pixel` the beam centre that puts
# the beam on a chosen pixel. Where the beam really lands is read back from the
# detector's :meth:`~nanobrag_torch.models.detector.Detector.geometry`: ``Fbeam_m`` and
# ``Sbeam_m`` are measured from the outer corner of pixel (0, 0), so in pixel
# coordinates with pixel centres on integers (the middle of a 1024-pixel detector is
# then 511.5) the beam is at ``Fbeam_m / pixel_size_m − ½``. The *default* beam
# positions differ by up to one pixel:
def beam_pixel(geometry):
    """Where the direct beam hits, in pixel coordinates (pixel centres at integers)."""
    return tuple(
        float(position / geometry.pixel_size_m - 0.5)
        for position in (geometry.Fbeam_m, geometry.Sbeam_m)
    )


print("default beam position on a 1024 × 1024 detector of 0.1 mm pixels (fast, slow):")
for convention in NAMED:
    default_f, default_s = default_beam_center_mm(convention, 0.1, 1024, 1024)
    fast, slow = beam_pixel(
        Detector(DetectorConfig(detector_convention=convention)).geometry()
    )
    print(
        f"  {convention.name:7} ({fast:6.1f}, {slow:6.1f})   default beam_center_f, _s "
        "= "
        f"({default_f:.2f}, {default_s:.2f}) mm"
    )

# %%
# One experiment, five conventions
# --------------------------------
# A convention is a choice of laboratory frame, so the *same* experiment must be
# described differently in each. For every convention we
#
# 1. rotate the crystal into its lab frame with the rotation that takes MOSFLM's beam
#    and fast axis onto the convention's (the crystal is given by its reciprocal vectors
#    a*, b*, c*, as from a MOSFLM matrix), and
# 2. translate one beam position — fast pixel 50, slow pixel 40, on a 160 × 128 detector
#    of 0.6 mm pixels — into that convention's beam-centre numbers with
#    :func:`~nanobrag_torch.conventions.beam_center_for_pixel` (printed below also as
#    the nanoBragg flags that say the same, from
#    :func:`~nanobrag_torch.conventions.c_header_beam_center`).
#
# The crystal has five cells along each axis, so its spots are broad, and the reflection
# (0, 0, 0) shows where the direct beam lands.
FPIXELS, SPIXELS, PIXEL_MM = 160, 128, 0.6
BEAM_FAST, BEAM_SLOW = 50.0, 40.0

reference = Crystal(
    CrystalConfig(cell_a=40.0, cell_b=50.0, cell_c=60.0, misset_deg=(10.0, 20.0, 30.0))
)
a_star, b_star, c_star = (v.detach() for v in reference.reciprocal_vectors_per_A())


def lab_frame(convention):
    """Columns: beam, fast axis and their cross product, in the convention's frame."""
    v = CONVENTIONS[convention]
    beam = torch.tensor(v.beam, dtype=torch.float64)
    fast = torch.tensor(v.fdet, dtype=torch.float64)
    return torch.stack([beam, fast, torch.linalg.cross(beam, fast)], dim=1)


def as_flags(convention, beam_center_f, beam_center_s, geometry):
    """The same beam centre as nanoBragg command-line flags: XDS and DIALS place the
    detector by its point nearest the sample (``-ORGX``, ``-ORGY`` in pixels), the
    others by ``-Xbeam``, ``-Ybeam`` in C's naming of the two axes."""
    if CONVENTIONS[convention].pivot is DetectorPivot.SAMPLE:
        return (
            f"-ORGX {float(geometry.orgx_px):.1f} -ORGY {float(geometry.orgy_px):.1f}"
        )
    x_beam, y_beam = c_header_beam_center(convention, beam_center_f, beam_center_s)
    return f"-Xbeam {x_beam:.2f} -Ybeam {y_beam:.2f}"


images = {}
print(
    f"{'':8}{'beam_center_f':>14}{'beam_center_s':>14}  {'nanoBragg flags':26}beam at "
    "(fast, slow)"
)
for convention in NAMED:
    rotation = lab_frame(convention) @ lab_frame(DetectorConvention.MOSFLM).T
    crystal = Crystal(
        CrystalConfig(
            mosflm_a_star=rotation @ a_star,
            mosflm_b_star=rotation @ b_star,
            mosflm_c_star=rotation @ c_star,
            N_cells=(5, 5, 5),
            default_F=100.0,
        )
    )
    centre_f, centre_s = beam_center_for_pixel(
        convention, BEAM_FAST, BEAM_SLOW, PIXEL_MM, FPIXELS, SPIXELS
    )
    detector = Detector(
        DetectorConfig(
            fpixels=FPIXELS,
            spixels=SPIXELS,
            pixel_size_mm=PIXEL_MM,
            detector_convention=convention,
            beam_center_f=centre_f,
            beam_center_s=centre_s,
        )
    )
    geometry = detector.geometry()
    fast, slow = beam_pixel(geometry)
    print(
        f"{convention.name:8}{centre_f:>14.2f}{centre_s:>14.2f}  "
        f"{as_flags(convention, centre_f, centre_s, geometry):26}({fast:.1f}, "
        f"{slow:.1f})"
    )
    images[convention] = Simulator(crystal, detector).run().numpy()

# %%
# The five images
# ---------------
# MOSFLM, DENZO, XDS and DIALS agree to rounding error: the simulation runs in float64
# (the default dtype of :class:`~nanobrag_torch.models.crystal.Crystal` and
# :class:`~nanobrag_torch.models.detector.Detector`), and the five runs differ only in
# the rotations that carry the crystal and the detector into each frame, so the images
# agree to about 10⁻¹³ of the brightest pixel — the last digits of float64's sixteen.
# ADXV's is the same image mirrored about the row of the beam: its frame has the other
# handedness, which is why ADXV measures ``Ybeam`` from the far edge. (The comparison
# uses the rows that both images have: slow pixels 0 to 80, mirrored about 40.)
mosflm = images[DetectorConvention.MOSFLM]
rows = np.arange(0, int(2 * BEAM_SLOW) + 1)
for convention, image in images.items():
    same = np.abs(image - mosflm).max() / mosflm.max()
    mirrored = (
        np.abs(image[(2 * BEAM_SLOW - rows).astype(int)] - mosflm[rows]).max()
        / mosflm.max()
    )
    print(
        f"{convention.name:7} max |image − MOSFLM| / max: {same:.1e}   mirrored about "
        "the beam row: "
        f"{mirrored:.1e}"
    )

# %%
# Drawn on one colour scale, with the beam marked: ADXV's spots sit on the other side of
# the beam's row.
fig, axes = plt.subplots(1, 5, figsize=(17, 3.4), layout="constrained", sharey=True)
top = np.percentile(mosflm[mosflm > 0], 99.9)
for ax, (convention, image) in zip(axes, images.items()):
    artist = show_detector_image(
        image, ax, title=convention.name, vmax=top, colorbar=False
    )
    ax.plot(BEAM_FAST, BEAM_SLOW, "c+", ms=12, mew=1.5)
    ax.axhline(BEAM_SLOW, color="c", lw=0.5, ls=":")
for ax in axes[1:]:
    ax.set_ylabel("")
fig.colorbar(artist, ax=axes, label="photons per pixel", shrink=0.9)
plt.show()

# %%
# Summary
# -------
# * A convention fixes the lab frame (beam, fast, slow, normal, spindle), the pivot, and
#   how the beam-centre numbers are read. Given the same physical set-up, every
#   convention renders the same image, ADXV's mirrored about the beam's row.
# * Beam centres are *not* interchangeable between conventions: MOSFLM swaps X and Y and
#   adds half a pixel, ADXV counts Y from the far edge, XDS and DIALS give the point
#   closest to the sample. ``Detector(...).geometry()`` tells you where the beam really
#   lands (``Fbeam_m``, ``Sbeam_m``), and ``orgx_px``, ``orgy_px`` and
#   ``dials_origin_mm`` give the same geometry in XDS's and DIALS's own terms.

# sphinx_gallery_thumbnail_number = 1
