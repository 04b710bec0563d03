"""
A refinement loop of your own: the misset angles by gradient descent
=====================================================================

The library's :func:`~nanobrag_torch.refine.refine` refines the orientation for you (see
:ref:`sphx_glr_auto_examples_refinement_plot_geometry_refinement.py`). This page shows
the other way, for a method developer who wants their own loss or optimiser: every
parameter of the configuration can be a tensor that requires grad, so a loop of a few
lines recovers a crystal's three misset angles from its still image with a PyTorch
optimiser. The "measured" image is simulated at the true angles; the refinement starts
about half a degree off on every axis.
"""

# %%
# Imports and set-up
# ------------------
# A 128 × 128 detector of 0.4 mm pixels at 100 mm, a crystal of 5 × 5 × 5 cells of
# 70 × 80 × 90 Å, float32 on the CPU. The small crystal has broad spots, so images at
# nearby orientations overlap and the loss has a slope toward the answer from half a
# degree away (the refinement tutorial shows what happens when it does not).
import matplotlib.pyplot as plt
import numpy as np
import torch

from nanobrag_torch import Crystal, CrystalConfig, Detector, DetectorConfig, Simulator
from nanobrag_torch.plotting import show_detector_image, show_residual

DTYPE = torch.float32
TRUE_MISSET = (10.0, 20.0, 30.0)
START_MISSET = (10.6, 19.5, 30.4)

detector = Detector(
    DetectorConfig(fpixels=128, spixels=128, pixel_size_mm=0.4), dtype=DTYPE
)


def simulate(misset_deg):
    """The still image for misset angles (numbers or 0-d tensors), in degrees."""
    crystal = Crystal(
        CrystalConfig(
            cell_a=70.0,
            cell_b=80.0,
            cell_c=90.0,
            N_cells=(5, 5, 5),
            default_F=100.0,
            misset_deg=misset_deg,
        ),
        dtype=DTYPE,
    )
    return Simulator(crystal, detector, dtype=DTYPE).run()


with torch.no_grad():
    measured = simulate(TRUE_MISSET)
    initial = simulate(START_MISSET)

# %%
# The loss
# --------
# One minus the Pearson correlation between the simulated and the measured image: it
# compares where the intensity is, not its overall scale, and is 0 for a perfect match.


def correlation_loss(predicted):
    p = predicted - predicted.mean()
    t = measured - measured.mean()
    return 1 - (p * t).sum() / torch.sqrt((p * p).sum() * (t * t).sum())


print(f"loss at the start: {correlation_loss(initial).item():.3f}")

# %%
# Refinement
# ----------
# The three angles are tensors that require grad, passed as the ``misset_deg`` tuple.
# Adam with a learning rate of 0.05° per step and a cosine schedule that brings the
# steps to zero, so that the angles settle instead of jittering around the minimum.
angles = [
    torch.tensor(value, dtype=DTYPE, requires_grad=True) for value in START_MISSET
]
optimizer = torch.optim.Adam(angles, lr=0.05)
ITERATIONS = 100
scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=ITERATIONS)

history = {"loss": [], "angles": []}
for iteration in range(ITERATIONS):
    optimizer.zero_grad()
    loss = correlation_loss(simulate(tuple(angles)))
    loss.backward()
    optimizer.step()
    scheduler.step()
    history["loss"].append(loss.item())
    history["angles"].append([angle.item() for angle in angles])
    if iteration % 20 == 0 or iteration == ITERATIONS - 1:
        print(f"iteration {iteration:2d}  loss {loss.item():.2e}  misset "
              + ", ".join(f"{angle.item():7.3f}" for angle in angles))

with torch.no_grad():
    final = simulate(tuple(angles))
errors = [abs(angle.item() - true) for angle, true in zip(angles, TRUE_MISSET)]
print("final errors (°): " + ", ".join(f"{error:.4f}" for error in errors))

# %%
# Convergence
# -----------
# The loss falls by orders of magnitude; it bounces early on, while Adam's steps are
# still large, and settles as the schedule shrinks them.
trajectory = np.array(history["angles"])
fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), layout="constrained")
axes[0].semilogy(history["loss"])
axes[0].set_xlabel("iteration")
axes[0].set_ylabel("1 − correlation")
axes[0].set_title("loss")
for axis, (name, true) in enumerate(zip("xyz", TRUE_MISSET)):
    axes[1].plot(trajectory[:, axis] - true, label=f"misset about {name}")
axes[1].axhline(0, color="k", lw=0.8)
axes[1].set_xlabel("iteration")
axes[1].set_ylabel("refined − true (°)")
axes[1].set_title("misset angles")
axes[1].legend()
for ax in axes:
    ax.grid(alpha=0.3)
plt.show()

# %%
# Before and after
# ----------------
# Measured image, the start and the refined model on one colour scale, and the residual
# of each against the measured image, also on one scale: after refinement the residual
# is gone.
fig, axes = plt.subplots(2, 3, figsize=(13, 8.4), layout="constrained")
top = np.percentile(measured[measured > 0].numpy(), 99.9)
residual_scale = np.percentile(np.abs((initial - measured).numpy()), 99)
for column, (title, image) in enumerate(
    [("measured", measured), ("start", initial), ("refined", final)]
):
    picture = show_detector_image(
        image, axes[0, column], title=title, vmax=top, colorbar=False
    )
    if column:
        difference = show_residual(
            image - measured,
            axes[1, column],
            title=f"{title} − measured",
            scale=residual_scale,
            colorbar=False,
        )
fig.colorbar(picture, ax=axes[0], label="photons per pixel", shrink=0.8)
fig.colorbar(difference, ax=axes[1], label="photons per pixel", shrink=0.8)
axes[1, 0].axis("off")
axes[1, 0].text(0.0, 0.5, "true:    " + ", ".join(f"{v:.3f}°" for v in TRUE_MISSET)
                + "\nstart:   " + ", ".join(f"{v:.3f}°" for v in START_MISSET)
                + "\nrefined: " + ", ".join(f"{a.item():.3f}°" for a in angles),
                family="monospace", va="center")
plt.show()

# %%
# Going further
# -------------
# The same loop refines any other continuous parameter: add ``cell_a`` or ``N_cells`` to
# the tensors, or refine against an oscillation image (``phi_steps``,
# ``osc_range_deg``). From further away, first find the orientation from the spots, as
# :func:`~nanobrag_torch.refine.refine` does (:ref:`refinement`).

# sphinx_gallery_thumbnail_number = 2
