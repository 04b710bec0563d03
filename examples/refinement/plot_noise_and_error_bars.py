"""
Noisy data and error bars
=========================

A measured diffraction image is not the expected image: every pixel counts photons, and
the count is a Poisson draw around the expected value. A refinement against such an
image returns estimates that scatter from one exposure to the next, and
:func:`~nanobrag_torch.refine.refine` reports how much with a standard error for each
parameter. This page asks whether those error bars can be trusted:

1. refine the crystal's rotation (``phi_start_deg``) and mosaic spread from a wrong
   start against one Poisson-noise image of the tutorial's experiment;
2. compare the standard errors with the Cramér–Rao bound, the smallest standard error
   any unbiased estimator can reach, computed here from scratch with forward-mode
   derivatives;
3. repeat the refinement on many independent noise images and check that the errors,
   measured in standard errors, are distributed like a unit normal.
"""

# %%
# The experiment
# --------------
# The tutorial's experiment, as :func:`~nanobrag_torch.datasets.tutorial_experiment`
# returns it: the MOSFLM matrix ``A.mat`` and the structure factors ``scaled.hkl`` that
# ship with the package, a tilted Pilatus-like detector of 2463 × 2527 pixels of 0.172
# mm at 231 mm, λ = 0.9768 Å, a crystal of 36 × 47 × 29 cells with five mosaic domains
# spread by 0.2°, a still at phi = 0°. The detector is placed by its beam centre and
# distance, as nanoBragg reads this command line:
import dataclasses

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Rectangle

from nanobrag_torch import Crystal, Detector, NoiseConfig, Simulator, detector_region
from nanobrag_torch.datasets import tutorial_experiment
from nanobrag_torch.noise import noise_image
from nanobrag_torch.plotting import show_detector_image
from nanobrag_torch.refine import forward_jacobian, refine

experiment = tutorial_experiment()
print(experiment.command)
NOISE = NoiseConfig(
    seed=1
)  # nanoBragg's -seed 1: the seed of the noise image, and its ADC offset

TRUTH = {"crystal.phi_start_deg": 0.0, "crystal.mosaic_spread_deg": 0.2}
START = {"crystal.phi_start_deg": 1.0, "crystal.mosaic_spread_deg": 0.5}
NAMES = list(TRUTH)


def simulate(
    phi_deg,
    mosaic_deg,
    detector_config=experiment.detector,
    dtype=torch.float32,
    pixels=None,
):
    """Expected photons per pixel for a phi and a mosaic spread (numbers or 0-d
    tensors); only the flat ``pixels`` when they are given."""
    crystal_config = dataclasses.replace(
        experiment.crystal, phi_start_deg=phi_deg, mosaic_spread_deg=mosaic_deg
    )
    simulator = Simulator(
        Crystal(crystal_config, experiment.structure_factors, dtype=dtype),
        Detector(detector_config, dtype=dtype),
        experiment.beam,
    )
    return simulator.run(pixels=pixels)


# %%
# One noisy exposure
# ------------------
# The expected image is simulated in double precision, as the ``nanobragg`` command
# does, and :func:`nanobrag_torch.noise.noise_image` draws the Poisson counts with
# nanoBragg's own random-number generator: for the same seed this is, bit for bit, the
# noise image that ``nanobragg ... -seed 1 -noisefile noise.img`` writes. The image
# carries the ADC offset of 40 counts per pixel; subtracting it gives the photon counts
# the refinement takes.
with torch.no_grad():
    expected = simulate(
        TRUTH["crystal.phi_start_deg"],
        TRUTH["crystal.mosaic_spread_deg"],
        dtype=torch.float64,
    ).numpy()
adc_offset = NOISE.adc_offset_adu
noisy, drawn, overloads = noise_image(expected, seed=NOISE.seed, adc_offset=adc_offset)
counts = noisy.astype(np.float64) - adc_offset

print(f"expected photons on the detector: {expected.sum():.1f}")
print(f"photons drawn (seed {NOISE.seed}): {drawn:.0f}, {overloads} overloads")
print(f"brightest pixel: expected {expected.max():.1f}, counted {counts.max():.0f}")
print(f"pixels with at least one photon: {int((counts > 0).sum())} of {counts.size}")

# %%
# About six thousand photons over six million pixels. A handful of spots hold hundreds
# of photons; most hold a few or a few tens, and their shapes are visibly grainy (the
# zoom, on the right). On the left, the whole detector with the counts summed over
# blocks of 8 × 8 pixels, so that single spots remain visible at this size. The box
# marks a 512 × 512 region we come back to at the end of the page.
CROP = (slice(1421, 1421 + 512), slice(938, 938 + 512))
ZOOM = (slice(780, 1020), slice(1380, 1620))

BIN = 8
rows, cols = counts.shape[0] // BIN, counts.shape[1] // BIN
binned = counts[:rows * BIN, :cols * BIN].reshape(rows, BIN, cols, BIN).sum(axis=(1, 3))

fig, axes = plt.subplots(1, 3, figsize=(17, 5.8), layout="constrained")
whole = show_detector_image(
    binned,
    axes[0],
    title=f"photon counts in {BIN} × {BIN}-pixel blocks",
    label=f"photons per {BIN} × {BIN} pixels",
)
whole.set_extent((-0.5, cols * BIN - 0.5, rows * BIN - 0.5, -0.5))
axes[0].set_xlim(-0.5, cols * BIN - 0.5)
axes[0].set_ylim(rows * BIN - 0.5, -0.5)
axes[0].add_patch(
    Rectangle((CROP[1].start, CROP[0].start), 512, 512, fill=False, ec="w", lw=1)
)
top = float(expected[ZOOM].max())
show_detector_image(
    expected, axes[1], region=ZOOM, vmax=top, title="expected photons (zoom)"
)
show_detector_image(
    counts, axes[2], region=ZOOM, vmax=top, title="counted photons (zoom)"
)
plt.show()

# %%
# Refinement from a wrong start
# -----------------------------
# The refinement starts 1° away in phi and with two and a half times the true mosaic
# spread, the tutorial's starting point, and maximises the Poisson likelihood of the
# counts. Its first stages index the spots to find the orientation; its last stage is
# Levenberg–Marquardt with Fisher scoring on the exact forward-mode Jacobian (see
# :ref:`refinement`). The standard errors are the square roots of the diagonal of the
# inverse Fisher information at the estimate.
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
print()
for name in NAMES:
    error = result.values[name] - TRUTH[name]
    print(
        f"estimate {name}: {result.values[name]:.6f} ± {result.stderr[name]:.6f} "
        f"(truth {TRUTH[name]:.6f}, "
        f"error {error / result.stderr[name]:+.2f} standard errors)"
    )

# %%
# Both estimates land within a standard error or so of the truth, and the standard
# errors are small: under a thousandth of a degree, although the whole image holds only
# six thousand photons, because every one of the nearly one hundred spots with more than
# a few photons constrains the orientation.
#
# The Cramér–Rao bound
# --------------------
# For independent Poisson counts with expected values μᵢ(θ), the Fisher information is
#
# .. math:: F_{jk} = \sum_i \frac{1}{\mu_i} \frac{\partial \mu_i}{\partial \theta_j}
#           \frac{\partial \mu_i}{\partial \theta_k},
#
# and no unbiased estimator has a smaller covariance than F⁻¹: the square roots of its
# diagonal are the Cramér–Rao bounds. We compute F at the *true* parameters,
# independently of the refinement: the Jacobian J of the expected image, one
# forward-mode pass per parameter
# (:func:`~nanobrag_torch.refine.jacobian.forward_jacobian`), over every pixel that
# expects more than 10⁻⁶ photons. The pixels left out hold less than 10⁻⁴ of the
# photons, and their derivatives are as small.


def fisher_information(detector_config, pixels):
    """Σ JᵀJ/μ at the truth over the flat ``pixels``, float64 (P × P)."""
    with torch.no_grad():
        mu, jacobian = forward_jacobian(
            lambda values: simulate(
                *values, detector_config=detector_config, pixels=pixels
            ),
            torch.tensor([TRUTH[name] for name in NAMES], dtype=torch.float32),
        )
    jacobian, mu = jacobian.to(torch.float64), mu.to(torch.float64)
    return jacobian.T @ (jacobian / mu[:, None])


pixels = torch.from_numpy(np.flatnonzero(expected > 1e-6))
fisher = fisher_information(experiment.detector, pixels)
bound = torch.sqrt(torch.diag(torch.linalg.inv(fisher)))
print(f"Fisher information over {pixels.numel()} pixels (μ > 1e-6 photons)")
print(
    f"{'':6}{'parameter':<26} {'standard error':>15} {'Cramér–Rao bound':>17} "
    f"{'ratio':>7}"
)
for name, limit in zip(NAMES, bound.tolist()):
    print(
        f"bound {name:<26} {result.stderr[name]:>15.3e} {limit:>17.3e} "
        f"{result.stderr[name] / limit:>7.3f}"
    )

# %%
# The refinement's standard errors and the bound agree to about a percent. They are not
# the same computation: the refinement evaluates the Fisher information at its
# *estimate*, over the pixels near the spots it predicts or observes, in the course of
# its last step; the bound above is evaluated at the *truth*, over a million pixels.
# Near the truth the information changes little, so the reported error bars are the best
# achievable ones, and an estimator that reaches them is efficient.
#
# That is a statement about the *width* of the error bars. Whether the estimates
# actually scatter by that much is a question about many exposures.
#
# Many exposures
# --------------
# We draw 40 independent noise images (seeds 101 to 140), refine each, and look at the
# *pulls* (estimate − truth) / standard error. If the error bars are right and the
# estimator unbiased, the pulls of each parameter follow a normal distribution of mean 0
# and standard deviation 1.
#
# Forty refinements of the full detector would take a quarter of an hour on one CPU
# core, so the repeats use the 512 × 512 region boxed above as a detector of its own
# (:func:`~nanobrag_torch.models.detector.detector_region`): the same geometry, with the
# beam centre moved so that every pixel sees what the full detector's pixel does. It
# holds about 1,500 photons in some thirty spots, a few of them bright; the error bars
# are wider, which is all the crop changes. And each refinement starts at the truth: how
# far away a start may be is the subject of
# :ref:`sphx_glr_auto_examples_refinement_plot_capture_range.py`; here we ask what the
# refinement does with the noise once it is in the basin of the likelihood. Starting at
# the truth does not pull the answer to it: the local stage moves to the maximum of each
# image's likelihood, and stops only when its steps fall below a hundredth of a standard
# error.
SEEDS = range(101, 141)
crop_detector = detector_region(
    experiment.detector,
    fast0=CROP[1].start,
    slow0=CROP[0].start,
    fast_pixels=512,
    slow_pixels=512,
)
with torch.no_grad():
    crop_expected = simulate(
        TRUTH["crystal.phi_start_deg"],
        TRUTH["crystal.mosaic_spread_deg"],
        detector_config=crop_detector,
        dtype=torch.float64,
    ).numpy()
print(f"cropped detector: {crop_expected.shape[1]} × {crop_expected.shape[0]} pixels, "
      f"{crop_expected.sum():.0f} expected photons")
print(f"same pixels as the full detector: max |difference| = "
      f"{np.abs(crop_expected - expected[CROP]).max():.1e} photons")

estimates = {name: [] for name in NAMES}
errors = {name: [] for name in NAMES}
for seed in SEEDS:
    crop_counts = noise_image(crop_expected, seed=seed, adc_offset=0.0)[0].astype(
        np.float64
    )
    repeat = refine(
        crop_counts,
        TRUTH,
        crystal=experiment.crystal,
        detector=crop_detector,
        beam=experiment.beam,
        structure_factors=experiment.structure_factors,
        progress=False,
    )
    for name in NAMES:
        estimates[name].append(repeat.values[name])
        errors[name].append(repeat.stderr[name])

# %%
# The pulls
# ---------
# For each parameter: the histogram of the 40 pulls against the unit normal density, and
# the numbers that summarise them. With 40 draws, the mean of calibrated pulls scatters
# by about 1/√40 ≈ 0.16 around 0 and their standard deviation by about 1/√78 ≈ 0.11
# around 1.
crop_bound = torch.sqrt(
    torch.diag(
        torch.linalg.inv(
            fisher_information(
                crop_detector, torch.from_numpy(np.flatnonzero(crop_expected > 1e-6))
            )
        )
    )
).tolist()
pulls = {
    name: (np.array(estimates[name]) - TRUTH[name]) / np.array(errors[name])
    for name in NAMES
}

fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), layout="constrained")
grid = np.linspace(-4, 4, 200)
for ax, name in zip(axes, NAMES):
    ax.hist(
        pulls[name],
        bins=np.linspace(-4, 4, 17),
        density=True,
        color="tab:blue",
        alpha=0.6,
        edgecolor="k",
        label=f"{len(SEEDS)} noise images",
    )
    ax.plot(
        grid,
        np.exp(-(grid**2) / 2) / np.sqrt(2 * np.pi),
        "k-",
        lw=2,
        label="unit normal",
    )
    ax.set_xlabel("(estimate − truth) / standard error")
    ax.set_ylabel("density")
    ax.set_title(name)
    ax.legend()
    ax.grid(alpha=0.3)
plt.show()

for name, limit in zip(NAMES, crop_bound):
    print(
        f"pulls {name}: mean {pulls[name].mean():+.3f}, std "
        f"{pulls[name].std(ddof=1):.3f} "
        f"({len(SEEDS)} images)"
    )
    print(
        f"spread {name}: std of estimates {np.std(estimates[name], ddof=1):.3e}, "
        f"mean standard error {np.mean(errors[name]):.3e}, Cramér–Rao bound {limit:.3e}"
    )

# %%
# What it means
# -------------
# The pulls are centred on zero and as wide as the unit normal, within what 40 draws can
# tell: the estimates scatter from one noise image to the next by what the reported
# standard error says, and that standard error is the Cramér–Rao bound of the cropped
# detector. The standard errors themselves hardly vary between images: they depend on
# the expected image at the estimate, not on the noise.
#
# The error bars are statistical. They describe the scatter due to photon counting when
# the model is right; a parameter that is held at a wrong value (a detector distance off
# by a millimetre, say) biases the refined ones by more than their error bars, and no
# amount of repeated exposures shows it. The next page refines the detector geometry
# along with the orientation, and looks at how the estimates' errors are correlated.

# sphinx_gallery_thumbnail_number = 2
