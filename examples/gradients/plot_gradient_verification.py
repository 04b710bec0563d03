"""
Checking gradients against finite differences
=============================================

Every continuous parameter of a simulation may be a tensor with ``requires_grad=True``,
and autograd then gives the derivative of anything computed from the image. Before
trusting those derivatives in a refinement, check them: here the gradient of an image
loss with respect to five physical parameters — detector distance, cell length, spindle
angle, mosaic spread and wavelength — against central finite differences, then
:func:`torch.autograd.gradcheck` on the image itself.
"""

# %%
# Imports
# -------
# Gradient checks are done in float64: a central difference with step h has a truncation
# error of order h² and a rounding error of order ε/h, and only double precision leaves
# a range of h where both are small.
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

DTYPE = torch.float64

# %%
# A small experiment
# ------------------
# A triclinic cell of 4 × 4 × 4 unit cells, a 0.4° oscillation in two phi steps and
# three mosaic domains, on a 64 × 64 detector of 0.2 mm pixels: small enough for a few
# hundred simulations in seconds, rich enough that every parameter changes the image.
NOMINAL = dict(
    distance_mm=100.0,
    cell_a=70.0,
    phi_start_deg=0.3,
    mosaic_spread_deg=0.5,
    wavelength_A=1.0,
)
UNITS = dict(
    distance_mm="mm",
    cell_a="Å",
    phi_start_deg="°",
    mosaic_spread_deg="°",
    wavelength_A="Å",
)


def simulate(
    distance_mm, cell_a, phi_start_deg, mosaic_spread_deg, wavelength_A, pixels=64
):
    """The image as a function of the five parameters (numbers or 0-d tensors)."""
    crystal = Crystal(
        CrystalConfig(
            cell_a=cell_a,
            cell_b=80.0,
            cell_c=90.0,
            cell_alpha=75.0,
            cell_beta=85.0,
            cell_gamma=95.0,
            misset_deg=(10.0, -20.0, 30.0),
            N_cells=(4, 4, 4),
            default_F=100.0,
            phi_start_deg=phi_start_deg,
            osc_range_deg=0.4,
            phi_steps=2,
            mosaic_spread_deg=mosaic_spread_deg,
            mosaic_domains=3,
            mosaic_seed=7,
        ),
        dtype=DTYPE,
    )
    detector = Detector(
        DetectorConfig(
            distance_mm=distance_mm,
            pixel_size_mm=0.2,
            fpixels=pixels,
            spixels=pixels,
            oversample=1,
        ),
        dtype=DTYPE,
    )
    beam = BeamConfig(wavelength_A=wavelength_A, polarization_factor=0.5)
    return Simulator(crystal, detector, beam, dtype=DTYPE).run()


# %%
# The loss
# --------
# The mean squared difference to a "measured" image taken at slightly different
# parameters, as in a refinement. We differentiate at the nominal values.
TRUE = dict(
    distance_mm=100.3,
    cell_a=70.2,
    phi_start_deg=0.35,
    mosaic_spread_deg=0.45,
    wavelength_A=1.002,
)
with torch.no_grad():
    measured = simulate(**TRUE)


def loss_of(**parameters):
    return torch.mean((simulate(**parameters) - measured) ** 2)


print(f"measured image: max {measured.max():.3g} photons, "
      f"{int((measured > 0.01 * measured.max()).sum())} pixels above 1 % of it")

# %%
# Autograd
# --------
# Turn every parameter into a 0-d tensor that requires grad, pass them straight into the
# configs, and back-propagate once: one backward pass gives all five derivatives.
leaves = {
    name: torch.tensor(value, dtype=DTYPE, requires_grad=True)
    for name, value in NOMINAL.items()
}
loss = loss_of(**leaves)
loss.backward()
autograd = {name: leaf.grad.item() for name, leaf in leaves.items()}
print(f"loss at the nominal parameters: {loss.item():.6g}")

# %%
# Central finite differences
# --------------------------
# ``(L(x + h) − L(x − h)) / 2h`` with a step chosen for each parameter — about 10⁻⁵ of
# its scale, small against the width of a spot in that parameter.
STEPS = dict(
    distance_mm=1e-3,
    cell_a=1e-4,
    phi_start_deg=1e-5,
    mosaic_spread_deg=1e-5,
    wavelength_A=1e-6,
)


def central_difference(name, step):
    with torch.no_grad():
        plus = loss_of(**{**NOMINAL, name: NOMINAL[name] + step}).item()
        minus = loss_of(**{**NOMINAL, name: NOMINAL[name] - step}).item()
    return (plus - minus) / (2 * step)


finite = {name: central_difference(name, STEPS[name]) for name in NOMINAL}

print(
    f"{'parameter':20}{'value':>10}{'step h':>10}{'autograd':>16}"
    f"{'finite diff.':>16}{'rel. error':>12}"
)
errors = {}
for name in NOMINAL:
    errors[name] = abs(autograd[name] - finite[name]) / abs(finite[name])
    print(
        f"{name:20}{NOMINAL[name]:>10g}{STEPS[name]:>10.0e}{autograd[name]:>16.6e}"
        f"{finite[name]:>16.6e}"
        f"{errors[name]:>12.1e}"
    )

# %%
# The loss along each parameter, and the tangent
# ----------------------------------------------
# The derivative is the slope of the loss at the nominal value. Below, the loss along
# each parameter with the others held, and the tangent line whose slope autograd gave.
#
# Along most parameters the minimum is *not* where the measured image was taken
# (dotted): the other four are off as well, and they are correlated — distance,
# wavelength and cell length all stretch the pattern — so one can partly make up for
# another. A refinement has to move them together, which is what the gradient tells it
# how to do.
SPANS = dict(
    distance_mm=0.6,
    cell_a=0.4,
    phi_start_deg=0.1,
    mosaic_spread_deg=0.2,
    wavelength_A=0.004,
)

fig, axes = plt.subplots(1, 5, figsize=(17, 3.6))
with torch.no_grad():
    for ax, name in zip(axes, NOMINAL):
        values = NOMINAL[name] + np.linspace(-SPANS[name], SPANS[name], 21)
        losses = [loss_of(**{**NOMINAL, name: float(value)}).item() for value in values]
        near = NOMINAL[name] + np.linspace(-0.3, 0.3, 2) * SPANS[name]
        ax.plot(values, losses, "o-", ms=3, color="tab:blue", label="loss")
        ax.plot(
            near,
            loss.item() + autograd[name] * (near - NOMINAL[name]),
            color="tab:red",
            lw=2,
            label="autograd tangent",
        )
        ax.plot(NOMINAL[name], loss.item(), "ko")
        ax.axvline(TRUE[name], color="gray", ls=":", label="measured at")
        ax.set_xlabel(f"{name} ({UNITS[name]})")
        ax.set_title(f"rel. error {errors[name]:.0e}", fontsize=10)
        ax.grid(alpha=0.3)
axes[0].set_ylabel("MSE (photons²)")
axes[0].legend(fontsize=8)
fig.tight_layout()
plt.show()

# %%
# How the error depends on the step
# ---------------------------------
# The relative difference between autograd and the central difference for
# ``phi_start_deg`` as the step shrinks: it falls as h² (truncation) until rounding
# takes over, as ε/h. The agreement at the bottom of the V is the best a finite
# difference can show; autograd has no step at all.
steps = np.logspace(-9, -1, 17)
step_errors = [
    abs(central_difference("phi_start_deg", step) - autograd["phi_start_deg"])
    / abs(autograd["phi_start_deg"])
    for step in steps
]
fig, ax = plt.subplots(figsize=(6, 4))
ax.loglog(steps, step_errors, "o-")
ax.set_xlabel("step h (degrees)")
ax.set_ylabel("|FD − autograd| / |autograd|")
ax.set_title("phi_start_deg")
ax.grid(alpha=0.3, which="both")
fig.tight_layout()
plt.show()
best = int(np.argmin(step_errors))
print(f"best agreement: {step_errors[best]:.1e} at h = {steps[best]:.0e}°")

# %%
# gradcheck
# ---------
# :func:`torch.autograd.gradcheck` checks the derivative of the whole image, not only of
# one loss: it compares the Jacobian from autograd with one from finite differences (in
# ``fast_mode``, projected on random vectors), for all five parameters at once, and
# returns whether they agree within its default tolerances (``raise_exception=False``:
# it reports instead of raising). A 16 × 16 detector keeps it quick.
inputs = tuple(
    torch.tensor(value, dtype=DTYPE, requires_grad=True) for value in NOMINAL.values()
)
passed = torch.autograd.gradcheck(
    lambda *x: simulate(*x, pixels=16), inputs, fast_mode=True, raise_exception=False
)
print(f"gradcheck over {', '.join(NOMINAL)}: {passed}")

# %%
# What the test suite checks
# --------------------------
# The repository's test suite (``tests/test_gradients.py``) runs checks like these on
# every continuous parameter of the configs (cell lengths and angles, misset, phi,
# oscillation, mosaic spread, ``N_cells``, the MOSFLM vectors, distance, beam centre,
# detector rotations and two-theta, wavelength, polarization, fluence and flux):
# ``gradcheck`` in the default and the C-quirk mode, second derivatives with
# ``gradgradcheck``, the fused kernel's hand-written backward against plain autograd,
# finite gradients at special points (phi = 0, zero mosaic spread, a pixel exactly on
# the beam), and the refinement tutorial's own derivatives against central differences
# in float32 and float64. The list, with tolerances, is on the page
# :doc:`/differentiable_parameters`.

# sphinx_gallery_thumbnail_number = 1
