"""
Geometry refinement
===================

The tutorial refines the crystal and trusts the detector. In practice neither is known
exactly: the distance from the crystal to the detector and the point where the direct
beam meets the detector (the beam centre) are measured to a fraction of a millimetre,
and errors of that size move every spot by pixels. This page refines the crystal's
orientation (three misset angles), its mosaic spread, the detector distance and both
components of the beam centre — seven parameters — together, from one noisy still image
and a wrong start, and then asks how the errors of the estimates are related: which
parameters the image can tell apart, and which it confuses.
"""

# %%
# The experiment
# --------------
# The tutorial's experiment (:func:`~nanobrag_torch.datasets.tutorial_experiment`, as on
# the previous page): ``A.mat`` and ``scaled.hkl``, the tilted Pilatus-like detector of
# 2463 × 2527 pixels of 0.172 mm at 231.27 mm, λ = 0.9768 Å, 36 × 47 × 29 cells with
# five mosaic domains spread by 0.2°, a still at phi = 0°. The detector is placed by its
# distance and beam centre, the two quantities we refine. The beam runs along −z, the
# spindle along −x; so ``misset_deg[2]`` turns the crystal about the beam,
# ``misset_deg[0]`` and ``misset_deg[1]`` about the detector's fast and slow directions.
import dataclasses

import matplotlib.pyplot as plt
import numpy as np
import torch

from nanobrag_torch import Crystal, Detector, Simulator
from nanobrag_torch.datasets import tutorial_experiment
from nanobrag_torch.noise import noise_image
from nanobrag_torch.plotting import show_detector_image, show_residual
from nanobrag_torch.refine import forward_jacobian, refine

experiment = tutorial_experiment()
NOISE_SEED = 2  # nanoBragg's -seed 2
PIXEL_MM = experiment.detector.pixel_size_mm

TRUTH = {
    "crystal.misset_deg[0]": 0.0,
    "crystal.misset_deg[1]": 0.0,
    "crystal.misset_deg[2]": 0.0,
    "crystal.mosaic_spread_deg": 0.2,
    "detector.distance_mm": 231.27466,
    "detector.beam_center_f": 217.742295,
    "detector.beam_center_s": 213.90708,
}
START = {
    "crystal.misset_deg[0]": 0.5,
    "crystal.misset_deg[1]": -0.5,
    "crystal.misset_deg[2]": 0.5,
    "crystal.mosaic_spread_deg": 0.4,
    "detector.distance_mm": 232.0,
    "detector.beam_center_f": 218.0,
    "detector.beam_center_s": 213.6,
}
NAMES = list(TRUTH)
SHORT = ["misset x", "misset y", "misset z", "mosaic", "distance", "beam f", "beam s"]


def simulate(values, dtype=torch.float32, pixels=None):
    """Expected photons per pixel with the seven parameters at ``values`` (numbers or
    0-d tensors, by name); only the flat ``pixels`` when they are given."""
    crystal_config = dataclasses.replace(
        experiment.crystal,
        misset_deg=tuple(values[f"crystal.misset_deg[{i}]"] for i in range(3)),
        mosaic_spread_deg=values["crystal.mosaic_spread_deg"],
    )
    detector_config = dataclasses.replace(
        experiment.detector,
        distance_mm=values["detector.distance_mm"],
        beam_center_f=values["detector.beam_center_f"],
        beam_center_s=values["detector.beam_center_s"],
    )
    simulator = Simulator(
        Crystal(crystal_config, experiment.structure_factors, dtype=dtype),
        Detector(detector_config, dtype=dtype),
        experiment.beam,
    )
    return simulator.run(pixels=pixels)


# %%
# The observed image and the wrong start
# --------------------------------------
# The "observed" image is a Poisson-noise image (seed 2, nanoBragg's generator; the ADC
# offset removed) of the expected image at the true parameters. The start is off by half
# a degree about every axis, twice the mosaic spread, 0.73 mm in distance and about 0.3
# mm in each component of the beam centre — one and a half to two pixels.
with torch.no_grad():
    expected = simulate(TRUTH).numpy()
counts = noise_image(expected, seed=NOISE_SEED, adc_offset=0.0)[0].astype(np.float64)
print(f"photons counted: {counts.sum():.0f}")
print(f"{'parameter':<26} {'truth':>12} {'start':>12} {'start − truth':>14}")
for name in NAMES:
    print(
        f"{name:<26} {TRUTH[name]:>12.6f} {START[name]:>12.6f} "
        f"{START[name] - TRUTH[name]:>+14.6f}"
    )

# %%
# A zoom on a few spots: the observed counts, and the expected image at the start on the
# same colour scale. At the start the spots lie several pixels from where they are
# observed, and their brightness is different: some that are bright in the observed
# image are faint at the start, and the other way round.
ZOOM = (slice(780, 1020), slice(1380, 1620))
zoom_pixels = torch.from_numpy(
    np.ravel_multi_index(np.mgrid[ZOOM].reshape(2, -1), expected.shape)
)
zoom_shape = (ZOOM[0].stop - ZOOM[0].start, ZOOM[1].stop - ZOOM[1].start)


def zoomed(image):
    """The zoom region of a flat ``run(pixels=zoom_pixels)`` result, placed back into a
    full-size array so that the plotting helpers label the detector's pixel numbers."""
    full = np.zeros(expected.shape)
    full[ZOOM] = image.reshape(zoom_shape).numpy()
    return full


with torch.no_grad():
    at_start = zoomed(simulate(START, pixels=zoom_pixels))
top = float(expected[ZOOM].max())

fig, axes = plt.subplots(1, 2, figsize=(12, 5.2), layout="constrained")
show_detector_image(counts, axes[0], region=ZOOM, vmax=top, title="observed counts")
show_detector_image(
    at_start, axes[1], region=ZOOM, vmax=top, title="expected at the start"
)
plt.show()

# %%
# Refinement
# ----------
# :func:`~nanobrag_torch.refine.refine` with the Poisson likelihood. Its orientation
# search indexes the observed spots to find the orientation and the mosaic spread; the
# fit of the spot positions then moves the distance and the beam centre (and the
# orientation) so that the indexed spots land where they are observed; the last stage
# maximises the likelihood of the counts over the pixels near the spots (see
# :ref:`refinement`).
result = refine(
    counts,
    START,
    crystal=experiment.crystal,
    detector=experiment.detector,
    beam=experiment.beam,
    structure_factors=experiment.structure_factors,
    likelihood="poisson",
    progress=False,
)
print(result.summary())
print(f"converged: {result.converged}")
print()
for name in NAMES:
    error = result.values[name] - TRUTH[name]
    print(
        f"estimate {name}: {result.values[name]:.6f} ± {result.stderr[name]:.6f} "
        f"(truth {TRUTH[name]:.6f}, "
        f"error {error / result.stderr[name]:+.2f} standard errors)"
    )

# %%
# Every estimate is within three standard errors of the truth; with seven parameters,
# one beyond two standard errors is nothing unusual (the chance is about one in four).
# Whether the error bars are honest is a question about many noise images:
# the repository's benchmark ``bench_refine.py --coverage`` asks it of this experiment
# with phi, the mosaic spread, the distance and the beam centre refined, and finds them
# honest (see :ref:`refinement`). The errors of the start were hundreds of standard
# errors: 0.5° of orientation is six hundred times its standard error of about 0.0008°,
# 0.73 mm of distance two hundred and fifty times its 0.003 mm. The beam centre is known
# to better than a hundredth of a pixel.
#
# The stages on the way (``result.history``):
stages = {}
for entry in result.history:
    stages.setdefault(entry["stage"], []).append(entry)
for stage, entries in stages.items():
    last = entries[-1]["values"]
    misset = ", ".join(f"{last[name]:+.3f}" for name in NAMES[:3])
    print(
        f"{stage:<20} {len(entries):>2} step(s); then distance "
        f"{last['detector.distance_mm']:.3f} mm, "
        f"beam centre ({last['detector.beam_center_f']:.3f}, "
        f"{last['detector.beam_center_s']:.3f}) mm, "
        f"misset ({misset})°, mosaic {last['crystal.mosaic_spread_deg']:.3f}°"
    )

# %%
# Correlations of the estimates
# -----------------------------
# ``result.covariance`` is the inverse of the Fisher information at the estimate, and
# ``result.correlation`` scales it to correlations: the entry for two parameters is +1
# or −1 when the image can only tell a combination of the two, and 0 when the errors of
# the two estimates are independent.
correlation = result.correlation.numpy()
fig, ax = plt.subplots(figsize=(7.5, 6.5), layout="constrained")
picture = ax.imshow(correlation, cmap="RdBu_r", vmin=-1, vmax=1)
for i in range(len(NAMES)):
    for j in range(len(NAMES)):
        ax.text(j, i, f"{correlation[i, j]:+.2f}", ha="center", va="center", fontsize=9,
                color="white" if abs(correlation[i, j]) > 0.6 else "black")
ax.set_xticks(range(len(NAMES)), SHORT, rotation=45, ha="right")
ax.set_yticks(range(len(NAMES)), SHORT)
ax.set_title("correlation of the estimates")
fig.colorbar(picture, ax=ax, label="correlation")
plt.show()

print("correlation matrix (rows and columns in the order of result.names):")
for name, row in zip(NAMES, correlation):
    print(f"correlation {name:<26} " + " ".join(f"{value:+.3f}" for value in row))
pairs = sorted(
    (
        (abs(correlation[i, j]), NAMES[i], NAMES[j], correlation[i, j])
        for i in range(len(NAMES))
        for j in range(i + 1, len(NAMES))
    ),
    reverse=True,
)
print("\nlargest correlations:")
for _, first, second, value in pairs[:4]:
    print(f"  {first} / {second}: {value:+.3f}")

# %%
# No two parameters are strongly correlated: the largest correlations are about 0.2 in
# size. Seven parameters, and the image tells each apart from the others. That is not a
# matter of course; the reason is that each parameter changes the image in its own way.
#
# How each parameter changes the image
# ------------------------------------
# We take the four brightest spots, at different places around the beam centre, and
# compute for each parameter the change of the expected image when the parameter moves
# by one standard error, ``∂μ/∂θ · σ(θ)``: one forward-mode pass per parameter over 32 ×
# 32 pixels around each spot, at the estimate
# (:func:`~nanobrag_torch.refine.jacobian.forward_jacobian`). For each spot and
# parameter the table gives the change of the spot's photons and the shift of its
# centroid (photon-weighted mean position), in pixels; the figure shows the derivative
# images near each spot's peak (red: more photons, blue: fewer; one colour scale for
# each spot, in photons per pixel for a change of one standard error).
# (slow, fast) pixels of the four brightest spots
SPOTS = [(1624, 1442), (1033, 683), (901, 1292), (1676, 1010)]
HALF = 16
windows = [
    np.mgrid[s - HALF : s + HALF, f - HALF : f + HALF].reshape(2, -1) for s, f in SPOTS
]
spot_pixels = torch.from_numpy(
    np.concatenate([np.ravel_multi_index(w, expected.shape) for w in windows])
)


def spot_windows(flat):
    """A flat result over the spots' windows as a full-size image (zero elsewhere),
    float64."""
    full = np.zeros(expected.shape)
    for k, (slow, fast) in enumerate(windows):
        full[slow, fast] = flat[k * (2 * HALF) ** 2:(k + 1) * (2 * HALF) ** 2].numpy()
    return full


with torch.no_grad():
    mu, jacobian = forward_jacobian(
        lambda values: simulate(dict(zip(NAMES, values)), pixels=spot_pixels),
        torch.tensor([result.values[name] for name in NAMES], dtype=torch.float32),
    )
derivatives = {
    name: spot_windows(jacobian[:, k].to(torch.float64) * result.stderr[name])
    for k, name in enumerate(NAMES)
}
mu = spot_windows(mu.to(torch.float64))
# the beam centre in pixels
beam_f = result.values["detector.beam_center_f"] / PIXEL_MM - 0.5
beam_s = result.values["detector.beam_center_s"] / PIXEL_MM - 0.5

for k, (slow, fast) in enumerate(windows):
    photons = mu[slow, fast].sum()
    centre_s, centre_f = (mu[slow, fast] * slow).sum() / photons, (
        mu[slow, fast] * fast
    ).sum() / photons
    print(
        f"spot {k + 1}: {photons:.0f} photons, {centre_f - beam_f:+.0f} px (fast), "
        f"{centre_s - beam_s:+.0f} px "
        f"(slow) from the beam centre"
    )
    print(
        f"    {'one standard error of':<28} {'photons':>9}  {'shift fast':>10} "
        f"{'shift slow':>10}"
    )
    for name in NAMES:
        change = derivatives[name][slow, fast]
        total = change.sum()
        shift_f = ((change * fast).sum() - centre_f * total) / photons
        shift_s = ((change * slow).sum() - centre_s * total) / photons
        print(
            f"    {name:<28} {100 * total / photons:>+8.3f}%  {shift_f:>+10.4f} "
            f"{shift_s:>+10.4f}"
        )

# the figure shows 12 × 12 pixels about each spot's peak, on one colour scale per spot
SHOWN = 6
fig, axes = plt.subplots(
    len(SPOTS), len(NAMES) + 1, figsize=(19, 9.6), layout="constrained"
)
for row, (slow, fast) in enumerate(SPOTS):
    region = (slice(slow - SHOWN, slow + SHOWN), slice(fast - SHOWN, fast + SHOWN))
    scale = max(np.abs(derivative[region]).max() for derivative in derivatives.values())
    show_detector_image(mu, axes[row, 0], region=region, colorbar=False,
                        title=f"spot {row + 1}: expected" if row == 0 else None)
    axes[row, 0].set_ylabel(f"spot {row + 1}\nslow pixel")
    for column, (name, short) in enumerate(zip(NAMES, SHORT), start=1):
        artist = show_residual(
            derivatives[name],
            axes[row, column],
            region=region,
            scale=scale,
            colorbar=False,
            title=f"{short}" if row == 0 else None,
        )
        axes[row, column].set_ylabel("")
    fig.colorbar(artist, ax=axes[row, 1:].tolist(), label="photons per s.e.", pad=0.01)
    for ax in axes[row]:
        if row < len(SPOTS) - 1:
            ax.set_xlabel("")
plt.show()

# %%
# What the numbers and the picture say, parameter by parameter:
#
# * **beam centre** (``beam f``, ``beam s``): every spot shifts by the same amount along
#   the same axis, and no spot's photons change: the whole pattern slides;
# * **distance**: the spots shift too, but each along the line from the beam centre
#   (outwards for a longer distance), and their photons do not change: the pattern
#   scales about the beam centre;
# * **misset about the beam** (``misset z``): the spots shift across those lines, and
#   their photons do not change: the pattern turns about the beam centre;
# * **misset about the fast and slow axes** (``misset x``, ``misset y``): the spots'
#   photons change, by a few tenths of a percent per standard error, and the spots shift
#   a little. A still catches each reflection in a thin slice of its width; turning the
#   crystal about an axis across the beam moves the reflections through the Ewald
#   sphere, so they are excited more or less;
# * **mosaic spread**: the photons change too, by a different amount for each spot, and
#   the spots change shape (each is the sum of five domains' spots, which move apart).
#
# A slide, a scaling, a turn, changes of brightness that differ from spot to spot, and a
# change of shape are different patterns over about a hundred spots, so the fit can tell
# the parameters apart. Two parameters are correlated where their patterns partly agree
# over the pixels that carry the information, and the largest entries of the matrix are
# such partial agreements: the rotations about the fast and slow axes also shift the
# spots a little, partly as the turn about the beam does (``misset x`` and ``misset y``
# with ``misset z``: +0.19 and +0.18), and they change the spots' brightness, as the
# mosaic spread does (``misset y`` with ``mosaic``: +0.18). A turn about the beam centre
# and a slide of it (``misset z`` with ``beam s``: −0.22), or a scaling about it and a
# slide (``distance`` with ``beam f`` and ``beam s``: −0.15 and +0.13), agree only
# through the spots' uneven spread around the beam: with spots of equal weight all round
# it, a turn or a scaling would move them in all directions equally and never look like
# a slide. The spots here do surround the beam, but a few bright ones carry much of the
# information (the four above hold a third of the photons), so the cancellation is not
# complete.
#
# Parameters that trade against each other strongly are those whose patterns agree
# everywhere. Refining ``phi_start_deg`` together with all three misset angles is the
# extreme case — four rotations for a three-dimensional orientation, so the Fisher
# information is singular and the refinement's message names the parameters it cannot
# tell apart (see :ref:`refinement`).
#
# Before and after
# ----------------
# The residual (expected − observed) in the zoom, at the start and at the estimate, on
# one colour scale: after the refinement only the photon noise remains.
with torch.no_grad():
    at_estimate = zoomed(simulate(result.values, pixels=zoom_pixels))
residual_scale = float(np.percentile(np.abs(at_start[ZOOM] - counts[ZOOM]), 99.9))
fig, axes = plt.subplots(1, 2, figsize=(12, 5.2), layout="constrained")
show_residual(
    at_start - counts,
    axes[0],
    region=ZOOM,
    scale=residual_scale,
    title="start − observed",
)
show_residual(
    at_estimate - counts,
    axes[1],
    region=ZOOM,
    scale=residual_scale,
    title="estimate − observed",
)
plt.show()

# sphinx_gallery_thumbnail_number = 2
