"""
Real-world refinement: a Pilatus detector in CUSTOM geometry
=============================================================

This chapter refines two physical parameters of a real experiment against its image,
with the derivatives of the simulated image from automatic differentiation: the
crystal's rotation about the spindle (``phi_start_deg``) and its mosaic spread
(``mosaic_spread_deg``).

It uses real crystallographic data that ship with the package — a MOSFLM orientation
matrix (``A.mat``) and 64,333 measured structure factors (``scaled.hkl``) — and the full
2463 × 2527-pixel Pilatus geometry of this nanoBragg command, a still (one phi step) of
a crystal with five mosaic domains spread by 0.2°::

    nanoBragg -mat A.mat -hkl scaled.hkl -nonoise -nointerpolate -oversample 1 \\
      -exposure 1 -flux 1e18 -beamsize 1.0 -spindle_axis -1 0 0 \\
      -Xbeam 217.742295 -Ybeam 213.907080 -distance 231.274660 -lambda 0.976800 \\
      -pixel 0.172 -detpixels_x 2463 -detpixels_y 2527 \\
      -odet_vector -0.000088 0.004914 -0.999988 \\
      -sdet_vector -0.005998 -0.999970 -0.004913 \\
      -fdet_vector 0.999982 -0.005998 -0.000118 \\
      -beam_vector 0.00051387949 0.0 -0.99999986 -Na 36 -Nb 47 -Nc 29 \\
      -phi 0 -osc 0 -phisteps 1 -mosaic 0.2 -mosaic_domains 5 -mosaic_seed 42

One difference: this page also places the detector by the experiment's measured position
of pixel (0, 0) (``-pix0_vector_mm -216.336293 215.205512 -230.200866``), which
nanoBragg C reads but then replaces (see below), so C's image of this command is about 6
pixels off ours.

The "experimental" image is simulated at the true parameters; the refinement starts one
degree away in phi and with more than twice the true mosaicity, and has to find its way
back. Along the way we see why the textbook recipe — Adam on the mean squared error,
from that starting point — does not get there, and what does.
"""

# %%
# Set-up
# ------
# Everything runs on the CPU in single precision unless a GPU is present. float32 is
# accurate enough for refinement here: the simulator takes the nearest integer off the
# Miller indices before any trigonometry, so the lattice factor keeps its precision.
import dataclasses
import os
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import SymLogNorm, to_rgb

from nanobrag_torch import (Crystal, Detector, Simulator, detector_region,
                            read_hkl_file, read_mosflm_matrix, reciprocal_to_real_cell,
                            tutorial_data_paths)
from nanobrag_torch.datasets import tutorial_experiment
from nanobrag_torch.noise import noise_image
from nanobrag_torch.plotting import (color_limits, count_color_scale,
                                     show_detector_image, show_residual)

TUTORIAL_START = time.perf_counter()
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
dtype = torch.float32
print(f"device: {device}, PyTorch {torch.__version__}")

# %%
# 1. Real crystallographic data
# -----------------------------
# ``A.mat`` is a MOSFLM orientation matrix: its three columns are the reciprocal cell
# vectors a*, b*, c* scaled by the wavelength, so it encodes both the unit cell and the
# crystal's orientation. ``scaled.hkl`` lists h, k, l and the structure-factor amplitude
# F of every measured reflection. Both files ship inside the package.
data = tutorial_data_paths()

WAVELENGTH_A = 0.976800  # ~12.7 keV
a_star, b_star, c_star = read_mosflm_matrix(str(data.matrix), WAVELENGTH_A)
cell = reciprocal_to_real_cell(a_star, b_star, c_star)
print(f"unit cell from A.mat: a={cell[0]:.2f} b={cell[1]:.2f} c={cell[2]:.2f} Å, "
      f"α={cell[3]:.2f}° β={cell[4]:.2f}° γ={cell[5]:.2f}°")

hkl_grid, hkl_meta = read_hkl_file(str(data.hkl), default_F=0.0)
print(f"scaled.hkl: {(hkl_grid > 0).sum().item():,} reflections, "
      f"h {hkl_meta['h_min']}…{hkl_meta['h_max']}, "
      f"k {hkl_meta['k_min']}…{hkl_meta['k_max']}, "
      f"l {hkl_meta['l_min']}…{hkl_meta['l_max']}")

# %%
# 2. The experiment
# -----------------
# :func:`~nanobrag_torch.datasets.tutorial_experiment` returns the experiment's three
# configurations, read from the command above, and its structure factors (in the
# simulation's precision, on its device). The detector is a Pilatus-like 2463 × 2527
# array of 0.172 mm pixels, slightly tilted, described in the CUSTOM convention by
# explicit unit vectors: ``fdet`` along the pixel columns (fast axis), ``sdet`` along
# the rows (slow axis), ``odet`` the normal pointing away from the sample, and the beam
# direction (:ref:`physics-conventions` draws them). We set the measured corner of pixel
# (0, 0) as ``pix0_override_m``.
#
# .. note::
#    nanoBragg C parses ``-pix0_vector_mm`` but then recomputes pix0 from the beam
#    centre (see :ref:`physics-c-quirks`), so its image differs from this one by about 6
#    pixels. The library uses the given position; the ``nanobragg`` command reproduces C
#    and says so.
experiment = tutorial_experiment(dtype=dtype, device=device)
PIX0_MM = (-216.336293, 215.205512, -230.200866)
detector_config = dataclasses.replace(
    experiment.detector, pix0_override_m=tuple(x * 1e-3 for x in PIX0_MM))
beam_config = experiment.beam
print(f"detector: {detector_config.fpixels} × {detector_config.spixels} pixels of "
      f"{detector_config.pixel_size_mm} mm at {detector_config.distance_mm} mm; "
      f"λ = {beam_config.wavelength_A} Å")

# %%
# 3. Truth and starting point
# ---------------------------
# The crystal has 36 × 47 × 29 unit cells and five mosaic domains drawn with a fixed
# seed. The seed matters: the domains' axes and relative angles come from it, and the
# spread only scales the angles, so the image is a smooth function of
# ``mosaic_spread_deg`` and its gradient means something. A single still image keeps
# each forward pass under a second.
TRUE_PHI, TRUE_MOSAIC = 0.0, 0.2
INIT_PHI, INIT_MOSAIC = 1.0, 0.5
print(f"truth: phi {TRUE_PHI}°, mosaic spread {TRUE_MOSAIC}°")
print(f"start: phi {INIT_PHI}°, mosaic spread {INIT_MOSAIC}°")

detector = Detector(detector_config, device=device, dtype=dtype)
structure_factors = experiment.structure_factors


def simulate(phi_deg, mosaic_deg, on=detector):
    """The expected image at the given phi and mosaic spread (numbers or tensors)."""
    crystal_config = dataclasses.replace(experiment.crystal, phi_start_deg=phi_deg,
                                         mosaic_spread_deg=mosaic_deg)
    crystal = Crystal(crystal_config, structure_factors, device=device, dtype=dtype)
    return Simulator(crystal, on, beam_config).run()


def mse(image, reference):
    """The mean squared error of an image against a reference."""
    return torch.nn.functional.mse_loss(image, reference)


with torch.no_grad():
    target = simulate(TRUE_PHI, TRUE_MOSAIC)
print(f"target: {target.sum().item():.0f} photons in {target.numel():,} pixels, "
      f"brightest pixel {target.max().item():.0f}, "
      f"{(target > 1).sum().item():,} pixels above one photon")

# %%
# 4. The target, and what a measurement of it would look like
# -----------------------------------------------------------
# :func:`~nanobrag_torch.plotting.show_detector_image` shows the expected photons on a
# logarithmic scale over four decades, fast axis to the right, slow axis down.
#
# Be aware how faint this exposure is: about six thousand photons over 6.2 million
# pixels. The expected image (left) is what the refinement below is given — a noise-free
# target, which shows that the method finds the truth, not how well a measurement
# determines it. A real detector counts photons: the middle panel is one Poisson draw of
# the same exposure (:func:`~nanobrag_torch.noise.noise_image`, nanoBragg's own random
# numbers), summed over blocks of 8 × 8 pixels so that single spots show at this size,
# on a scale for counts (:func:`~nanobrag_torch.plotting.count_color_scale`); the zoom
# on the right shows the pixels: most count nothing, spots are a few grainy counts.
# :ref:`sphx_glr_auto_examples_refinement_plot_noise_and_error_bars.py` refines against
# such images and shows the error bars they allow.
expected = target.cpu().numpy().astype(np.float64)
counts = noise_image(expected, seed=1, adc_offset=0.0)[0].astype(np.float64)
print(f"one Poisson draw: {counts.sum():.0f} photons counted, "
      f"{int((counts > 0).sum()):,} pixels with at least one")



def blocks(image, size):
    """Photons summed over blocks of size × size pixels (an image, or a tensor)."""
    image = np.asarray(image.detach().cpu() if torch.is_tensor(image) else image)
    rows, cols = image.shape[0] // size, image.shape[1] // size
    shape = (rows, size, cols, size)
    return image[:rows * size, :cols * size].reshape(shape).sum(axis=(1, 3))


ZOOM = (slice(780, 1020), slice(1380, 1620))
BIN = 8
fig, axes = plt.subplots(1, 3, figsize=(15, 5.4), layout="constrained")
show_detector_image(target, axes[0], title="target: expected photons")
binned_counts = blocks(counts, BIN)
show_detector_image(binned_counts, axes[1], title=f"one exposure, {BIN} × {BIN} blocks",
                    **count_color_scale(binned_counts,
                                        label=f"photons counted per {BIN} × {BIN}"))
axes[1].set_xlabel(f"fast block of {BIN}")
axes[1].set_ylabel(f"slow block of {BIN}")
show_detector_image(counts, axes[2], region=ZOOM, title="counted photons (zoom)",
                    **count_color_scale(counts))
plt.show()

# %%
# 5. The initial guess against the target
# ---------------------------------------
# One degree of rotation is a lot for a still image: each reflection is excited over
# only about a tenth of a degree, so the initial guess lights up a largely different set
# of spots.
with torch.no_grad():
    initial_pattern = simulate(INIT_PHI, INIT_MOSAIC)
initial_loss = mse(initial_pattern, target).item()
print(f"initial MSE: {initial_loss:.4e}")

fig, axes = plt.subplots(1, 3, figsize=(15, 5.4), layout="constrained")
show_detector_image(target, axes[0],
                    title=f"target\nphi {TRUE_PHI}°, mosaic {TRUE_MOSAIC}°")
show_detector_image(initial_pattern, axes[1],
                    title=f"initial guess\nphi {INIT_PHI}°, mosaic {INIT_MOSAIC}°")
show_residual(initial_pattern - target, axes[2], title="initial guess − target")
plt.show()

# %%
# 6. The landscape the textbook recipe walks on
# ---------------------------------------------
# The textbook recipe — Adam with a learning rate of 0.05 on the mean squared error
# (MSE) of the image, 30 iterations — follows the slope of the MSE. Below is that
# landscape along phi in steps of 0.05°, at the starting mosaic spread and at the true
# one, on a 384 × 768-pixel region of the detector
# (:func:`~nanobrag_torch.models.detector.detector_region`: the same pixels at the same
# place, a twentieth of the cost).
REGION = dict(fast0=1248, slow0=688, fast_pixels=384, slow_pixels=768)
region = Detector(detector_region(detector_config, **REGION), device=device,
                  dtype=dtype)
with torch.no_grad():
    region_target = simulate(TRUE_PHI, TRUE_MOSAIC, on=region)
    scan_phi = np.round(np.linspace(-0.5, 1.5, 41), 6)
    landscape = {mosaic: np.array([mse(simulate(float(phi), mosaic, on=region),
                                       region_target).item() for phi in scan_phi])
                 for mosaic in (INIT_MOSAIC, TRUE_MOSAIC)}

# %%
# The MSE is exactly zero at the truth (same parameters, same image), which a
# logarithmic axis cannot show: the curve stops above it and a triangle marks the zero.
# At the true mosaic spread the minimum is a needle: a fifth of a degree away the MSE is
# back to the level of the rest of the scan, because the simulated spots no longer
# overlap the observed ones, and moving a spot that overlaps nothing changes nothing. At
# the starting mosaic spread the spots are broader and the well wider, but one degree
# away the landscape is flat, with small dips of its own: there is no slope to follow
# back to the truth.
fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
for mosaic, values in landscape.items():
    shown = values > 0
    ax.plot(scan_phi[shown], values[shown], ".-", label=f"mosaic spread {mosaic}°")
floor = min(values[values > 0].min() for values in landscape.values()) / 10
ax.plot([TRUE_PHI], [floor], "v", color="k", ms=9, label="MSE = 0 at the truth")
ax.axvline(INIT_PHI, color="gray", ls=":", lw=1, label="start")
ax.set_xlabel("phi_start_deg (°)")
ax.set_ylabel("MSE against the target (region)")
ax.set_yscale("log")
ax.set_ylim(floor / 2, None)
ax.grid(alpha=0.3)
ax.legend(loc="lower right")
plt.show()
for mosaic, values in landscape.items():
    print(f"mosaic {mosaic}°: MSE at phi 1.0° {values[scan_phi == 1.0][0]:.3e}, "
          f"at 0.5° {values[scan_phi == 0.5][0]:.3e}, "
          f"at 0.2° {values[scan_phi == 0.2][0]:.3e}")

# %%
# The textbook recipe, run
# ------------------------
# Adam (learning rate 0.05) on the MSE for 30 iterations, from the start, the mosaic
# spread kept in [0.01°, 2°], on a 160 × 160-pixel window of the region (30 gradients
# cost less there; a gradient only sees the pixels where the simulated or the observed
# image is bright, so the window changes the cost, not the behaviour).
window = Detector(detector_region(detector_config, fast0=1456, slow0=800,
                                  fast_pixels=160, slow_pixels=160),
                  device=device, dtype=dtype)
with torch.no_grad():
    window_target = simulate(TRUE_PHI, TRUE_MOSAIC, on=window)
phi = torch.tensor(INIT_PHI, dtype=dtype, device=device, requires_grad=True)
mosaic = torch.tensor(INIT_MOSAIC, dtype=dtype, device=device, requires_grad=True)
optimizer = torch.optim.Adam([phi, mosaic], lr=0.05)
adam_path = [(phi.item(), mosaic.item())]
for _ in range(30):
    optimizer.zero_grad()
    loss = mse(simulate(phi, mosaic, on=window), window_target)
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        mosaic.clamp_(min=0.01, max=2.0)
    adam_path.append((phi.item(), mosaic.item()))
adam_phi, adam_mosaic = adam_path[-1]
print(f"Adam on the MSE after 30 iterations: phi {adam_phi:+.3f}° "
      f"(error {abs(adam_phi - TRUE_PHI):.3f}°), mosaic {adam_mosaic:.3f}°")

# %%
# It ends where the flat landscape leaves it, far from the truth.
# :ref:`sphx_glr_auto_examples_refinement_plot_capture_range.py` maps where this recipe
# works (only from within about a tenth of a degree) from 24 starts.
#
# 7. Refinement with the library
# ------------------------------
# :func:`~nanobrag_torch.refine.refine` starts from the spots and ends on the pixels. It
# finds the bright spots of the observed image, indexes them on a grid of crystal
# rotations and mosaic spreads (a spot predicted where one is observed counts, however
# far the start was), and then maximises the likelihood of every pixel near the spots
# with Levenberg–Marquardt steps on the exact derivatives of the simulated image. The
# likelihood is Poisson's: a pixel expecting μ photons that counts n costs ``μ − n log
# μ``, the law of a photon-counting detector like this Pilatus. :ref:`refinement`
# describes the method.
#
# The configuration holds the starting values; the parameters to refine are named by
# configuration and field.
from nanobrag_torch.refine import refine

start_crystal = dataclasses.replace(experiment.crystal, phi_start_deg=INIT_PHI,
                                    mosaic_spread_deg=INIT_MOSAIC)
result = refine(target, {"crystal.phi_start_deg": INIT_PHI,
                         "crystal.mosaic_spread_deg": INIT_MOSAIC},
                crystal=start_crystal, detector=detector_config, beam=beam_config,
                structure_factors=structure_factors, likelihood="poisson", dtype=dtype,
                device=device)
print(result.summary())

# %%
# Every step of the refinement is in ``result.history``: the stage, the loss over the
# pixels it compared, and the parameters. The loss is the Poisson deviance (twice the
# negative log likelihood, up to a constant), which is zero for a perfect fit.
print(f"{'step':>4} | {'stage':<18} | {'deviance':>10} | {'pixels':>8} | "
      f"{'phi (°)':>11} | {'mosaic (°)':>11}")
for entry in result.history:
    values = entry["values"]
    print(f"{entry['iteration']:4d} | {entry['stage']:<18} | {entry['loss']:10.3e} | "
          f"{entry['pixels']:8d} | {values['crystal.phi_start_deg']:+11.7f} | "
          f"{values['crystal.mosaic_spread_deg']:11.7f}")

# %%
# 8. Results
# ----------
# The image's MSE is the yardstick from start to end: the full-size simulation against
# the target, at the initial and at the refined parameters.
refined_phi = result.values["crystal.phi_start_deg"]
refined_mosaic = result.values["crystal.mosaic_spread_deg"]
with torch.no_grad():
    final_pattern = simulate(refined_phi, refined_mosaic)
final_loss = mse(final_pattern, target).item()

print(f"{'parameter':<20} | {'truth':>8} | {'start':>8} | {'refined':>12} | "
      f"{'error':>10}")
for name, truth, start, refined in (("phi_start_deg", TRUE_PHI, INIT_PHI, refined_phi),
                                    ("mosaic_spread_deg", TRUE_MOSAIC, INIT_MOSAIC,
                                     refined_mosaic)):
    print(f"{name:<20} | {truth:>8.3f} | {start:>8.3f} | {refined:>12.7f} | "
          f"{abs(refined - truth):>10.2e}")
print(f"image MSE: {initial_loss:.4e} at the start, {final_loss:.4e} refined "
      f"({initial_loss / final_loss:.1e} times smaller)")

# %%
# The target has no noise, so the refinement lands on the truth to within the single
# precision of the simulation. The standard errors in the summary say something else:
# how far a *measured* image of this experiment — the faint, grainy one of section 4 —
# would let the refinement stray. No method does better on real data, and
# :ref:`sphx_glr_auto_examples_refinement_plot_noise_and_error_bars.py` shows the
# refinement reaching them.
#
# 9. Convergence
# --------------
# Each parameter's error on a logarithmic axis, so that the last orders of magnitude
# show, with the standard error of a noisy image of this experiment for scale. The first
# steps are the orientation search (from one degree to a few hundredths); the local
# stage then gains several orders of magnitude in a few steps, as Newton-like methods do
# near the minimum.
steps = np.array([entry["iteration"] for entry in result.history])
stages = [entry["stage"] for entry in result.history]
stage_colors = {"start": "gray", "orientation search": "tab:blue",
                "spot positions": "tab:green", "spread scan": "tab:purple",
                "local": "tab:red"}
colors = [stage_colors.get(stage, "k") for stage in stages]

fig, axes = plt.subplots(2, 2, figsize=(12, 10), layout="constrained")
losses = [max(entry["loss"], 1e-30) for entry in result.history]
axes[0, 0].semilogy(steps, losses, "-", color="lightgray")
axes[0, 0].scatter(steps, losses, c=colors, zorder=3)
axes[0, 0].set_ylabel("Poisson deviance over the compared pixels")
axes[0, 0].set_title("loss")
for ax, name, key, truth in ((axes[0, 1], "phi", "crystal.phi_start_deg", TRUE_PHI),
                             (axes[1, 0], "mosaic spread", "crystal.mosaic_spread_deg",
                              TRUE_MOSAIC)):
    errors = np.array([abs(entry["values"][key] - truth) for entry in result.history])
    ax.semilogy(steps, np.maximum(errors, 1e-9), "-", color="lightgray")
    ax.scatter(steps, np.maximum(errors, 1e-9), c=colors, zorder=3)
    ax.axhline(result.stderr[key], color="k", ls=":", lw=1,
               label="standard error of a noisy image")
    ax.axhline(1e-4, color="tab:purple", ls="--", lw=1, label="1e-4°")
    ax.set_ylabel(f"|{name} − truth| (°)")
    ax.set_title(f"{name} error")
    ax.legend(loc="upper right")
for ax in (axes[0, 0], axes[0, 1], axes[1, 0]):
    ax.set_xlabel("step")
    ax.grid(True, alpha=0.3)
for stage, color in stage_colors.items():
    if stage in stages:
        axes[0, 0].scatter([], [], c=color, label=stage)
axes[0, 0].legend(loc="upper right")
show_residual(final_pattern - target, axes[1, 1], title="refined − target")
plt.show()

# %%
# 10. Gradient check
# ------------------
# Everything above rests on the derivatives of the simulated image. The analytic
# gradient of the MSE with respect to phi, from autograd through the whole simulation,
# against a central finite difference at phi = 0.5°.
TEST_PHI, STEP_DEG = 0.5, 0.001
with torch.no_grad():
    numerical_grad = (mse(simulate(TEST_PHI + STEP_DEG, TRUE_MOSAIC), target).item()
                      - mse(simulate(TEST_PHI - STEP_DEG, TRUE_MOSAIC), target).item()
                      ) / (2 * STEP_DEG)
phi_test = torch.tensor(TEST_PHI, device=device, dtype=dtype, requires_grad=True)
mse(simulate(phi_test, TRUE_MOSAIC), target).backward()
analytical_grad = phi_test.grad.item()
rel_error = abs(analytical_grad - numerical_grad) / (abs(numerical_grad) + 1e-10)
print(f"d MSE / d phi at {TEST_PHI}°: autograd {analytical_grad:.6f}, "
      f"central difference {numerical_grad:.6f}, relative difference {rel_error:.2e}")
runtime_s = time.perf_counter() - TUTORIAL_START

# %%
# 11. The refinement as an animation
# ----------------------------------
# Target, prediction and residual at every step of the refinement, with the parameters
# in the box beside them. The images are summed over blocks of 3 × 3 pixels, about the
# resolution of the page. The residual's colour scale is logarithmic on both sides of
# zero and fixed by the first frame, so that it fades, decade by decade, as the
# refinement converges. Below the GIF, the same animation to step through.
from matplotlib.animation import FuncAnimation
from PIL import Image

BLOCK = 3
shown_target = blocks(target, BLOCK)
with torch.no_grad():
    predictions = [blocks(simulate(entry["values"]["crystal.phi_start_deg"],
                                   entry["values"]["crystal.mosaic_spread_deg"]), BLOCK)
                   for entry in result.history]
_, top = color_limits(shown_target)
residual_max = float(np.percentile(np.abs(predictions[0] - shown_target), 99.9))
label = f"photons per {BLOCK} × {BLOCK} pixels"

fig, axes = plt.subplots(2, 2, figsize=(8, 7.6), layout="constrained")
show_detector_image(shown_target, axes[0, 0], vmax=top, title="target", label=label)
prediction_artist = show_detector_image(predictions[0], axes[0, 1], vmax=top,
                                        label=label)
residual_artist = show_residual(predictions[0] - shown_target, axes[1, 0],
                                title="prediction − target", colorbar=False)
residual_artist.set_norm(SymLogNorm(linthresh=residual_max * 1e-4, vmin=-residual_max,
                                    vmax=residual_max))
fig.colorbar(residual_artist, ax=axes[1, 0], label=label, extend="both")
for ax in axes.flat[:3]:
    ax.set_xlabel(f"fast block of {BLOCK}")
    ax.set_ylabel(f"slow block of {BLOCK}")
axes[1, 1].axis("off")
parameter_text = axes[1, 1].text(0.05, 0.5, "", transform=axes[1, 1].transAxes,
                                 fontsize=11, family="monospace", va="center",
                                 bbox=dict(boxstyle="round", facecolor="wheat",
                                           alpha=0.9))


def show_step(index):
    """Draw the prediction, residual and parameters of refinement step ``index``."""
    entry = result.history[index]
    phi_now = entry["values"]["crystal.phi_start_deg"]
    mosaic_now = entry["values"]["crystal.mosaic_spread_deg"]
    prediction_artist.set_data(predictions[index])
    residual_artist.set_data(predictions[index] - shown_target)
    axes[0, 1].set_title(f"prediction, step {entry['iteration']}")
    parameter_text.set_text(f"step {entry['iteration']}: {entry['stage']}\n\n"
                            f"deviance     {entry['loss']:.3e}\n\n"
                            f"phi          {phi_now:+.6f}°\n"
                            f"mosaic       {mosaic_now:.6f}°\n\n"
                            f"phi error    {abs(phi_now - TRUE_PHI):.1e}°\n"
                            f"mosaic error {abs(mosaic_now - TRUE_MOSAIC):.1e}°")
    return [prediction_artist, residual_artist, parameter_text]


def rgb_frame(index):
    """Step ``index`` drawn as an RGB image."""
    show_step(index)
    fig.canvas.draw()
    return Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())


# a GIF holds 256 colours: one palette for the whole GIF, made of the two colour maps
# (120 and 100 steps, so colour bars stay smooth), greys for text and axes, and the
# parameter box's colour; no dithering, so text stays sharp
box = 0.9 * np.array(to_rgb("wheat")) + 0.1
colours = np.concatenate([plt.get_cmap("magma")(np.linspace(0, 1, 120))[:, :3],
                          plt.get_cmap("RdBu_r")(np.linspace(0, 1, 100))[:, :3],
                          np.linspace(0, 1, 30)[:, None].repeat(3, axis=1),
                          np.linspace(box, 0.3 * box, 6)])
palette = Image.new("P", (1, 1))
palette.putpalette((255 * colours).round().astype(np.uint8).ravel().tolist())
frames = [rgb_frame(index) for index in range(len(result.history))]
GIF_PATH = "real_world_refinement_animation.gif"
gif_frames = [frame.quantize(palette=palette, dither=Image.Dither.NONE)
              for frame in frames]
gif_frames[0].save(GIF_PATH, save_all=True, append_images=gif_frames[1:], duration=700,
                   loop=0)
animation = FuncAnimation(fig, show_step, frames=len(result.history), interval=700)

# %%
# 12. What we set out to show, and what we found
# ----------------------------------------------
# The refinement must recover both parameters to well within a tenth of a degree, make
# the image fit by more than a factor of ten in MSE, rest on derivatives that agree with
# finite differences, and fit in the time of a coffee on a laptop CPU. The run time
# depends on the machine that built this page (:doc:`/performance` has measured
# numbers).
with Image.open(GIF_PATH) as gif:
    frame_count = gif.n_frames
gif_mb = os.path.getsize(GIF_PATH) / 2**20
phi_error = abs(refined_phi - TRUE_PHI)
mosaic_error = abs(refined_mosaic - TRUE_MOSAIC)
loss_reduction = initial_loss / final_loss
criteria = [
    ("phi recovered", "error < 0.1°", f"{phi_error:.1e}°", phi_error < 0.1),
    ("mosaic spread recovered", "error < 0.1°", f"{mosaic_error:.1e}°",
     mosaic_error < 0.1),
    ("image fits", "MSE > 10 × smaller", f"{loss_reduction:.1e} ×",
     loss_reduction > 10),
    ("gradient right", "within 5 % of FD", f"{100 * rel_error:.2f} %",
     rel_error < 0.05),
    ("runtime, without animation", "< 2 min", f"{runtime_s:.0f} s", runtime_s < 120),
    ("animation", "> 1 frame", f"{frame_count} frames", frame_count > 1),
    ("animation's GIF", "< 50 MB", f"{gif_mb:.1f} MB", gif_mb < 50),
]
print(f"{'criterion':<27} | {'target':<18} | {'result':<11} | verdict")
for name, goal, found, met in criteria:
    print(f"{name:<27} | {goal:<18} | {found:<11} | {'met' if met else 'not met'}")

# %%
# Summary
# -------
# * Real data — a MOSFLM matrix and measured structure factors — and a tilted Pilatus
#   detector in the CUSTOM convention, simulated at full size.
# * The MSE of a still image has no slope toward an orientation one degree away, so the
#   textbook recipe (Adam on the MSE) does not get back from there.
# * :func:`~nanobrag_torch.refine.refine` indexes the spots first and then maximises the
#   Poisson likelihood with exact derivatives: it reaches the noise-free truth to far
#   better than 1e-4° in both parameters and reports the standard errors a measured
#   image would have.
# * The derivatives it rests on agree with finite differences.
#
# Next: :ref:`sphx_glr_auto_examples_refinement_plot_noise_and_error_bars.py` (the same
# refinement on counted photons),
# :ref:`sphx_glr_auto_examples_refinement_plot_capture_range.py`,
# :ref:`sphx_glr_auto_examples_refinement_plot_geometry_refinement.py` and
# :ref:`sphx_glr_auto_examples_extensions_plot_rotation_series.py`.

# sphinx_gallery_thumbnail_number = 1
