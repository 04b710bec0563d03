"""Levenberg–Marquardt with Fisher scoring on the likelihood of a set of pixels."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Tuple

import torch

from .._docs import fill_doc

from .likelihoods import Likelihood
from .model import ExperimentModel

MAX_ITERATIONS = 50
"""Iterations of one local refinement at most."""

STEP_TOLERANCE_SIGMA = 0.01
"""Converged when every step is below this fraction of the parameter's standard error."""


@fill_doc
class PixelObjective:
    """The loss of a likelihood over a fixed set of pixels, its gradient and Fisher matrix.

    The pixels' quantities stay on the model's device; what the solver works with (loss,
    gradient, Fisher matrix) comes back in float64 on the CPU, beside the parameter vectors.

    Parameters
    ----------
    %(experiment_model)s
    likelihood : Poisson, Gaussian or MeanSquaredError
        The noise model of the observed counts.
    observed : tensor (pixels,)
        Observed counts, flat (:class:`~nanobrag_torch.layout.PixelLayout`), float64, on the
        model's device.
    pixels : tensor (n,)
        Flat indices of the pixels evaluated, on the model's device.
    """

    def __init__(self, model: ExperimentModel, likelihood: Likelihood, observed: torch.Tensor, pixels: torch.Tensor):
        self.model = model
        self.likelihood = likelihood
        self.pixels = pixels
        self.observed = observed[pixels]

    @fill_doc
    def loss(self, x: torch.Tensor) -> float:
        """The loss at ``x``.

        Parameters
        ----------
        %(parameter_values)s

        Returns
        -------
        float
            May be inf or NaN where the model is not finite.
        """
        return float(self.likelihood.loss(self.model.expected(x, self.pixels), self.observed))

    @fill_doc
    def linearize(self, x: torch.Tensor) -> Tuple[float, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Loss, gradient (P,) and Fisher-scoring matrix ``Jᵀ W J`` (P, P) on the CPU, and the
        expected counts (n,) on the model's device.

        Parameters
        ----------
        %(parameter_values)s

        Returns
        -------
        loss : float
        gradient : tensor (P,)
        matrix : tensor (P, P)
            Float64, on the CPU.
        expected : tensor (n,)
            On the model's device.

        Raises
        ------
        ValueError
            The image does not depend on a parameter (its Jacobian column is zero).
        """
        expected, jacobian = self.model.expected_and_jacobian(x, self.pixels)
        constant = [parameter.name for parameter, dead in zip(self.model.parameters, (jacobian == 0).all(dim=0))
                    if dead]
        if constant:
            raise ValueError(f"the image does not depend on {', '.join(constant)} (at {x.tolist()}, over the "
                             f"{self.pixels.numel()} pixels near the spots): it cannot be refined; check that the "
                             f"configuration uses the field (e.g. pix0_override_m places the detector without "
                             f"distance_mm and the beam centre, and mosaic_domains=1 has no spread)")
        loss = float(self.likelihood.loss(expected, self.observed))
        gradient = jacobian.T @ self.likelihood.gradient(expected, self.observed)
        matrix = jacobian.T @ (self.likelihood.fisher_weights(expected)[:, None] * jacobian)
        return loss, gradient.cpu(), matrix.cpu(), expected

    @fill_doc
    def covariance(self, matrix: torch.Tensor, expected: torch.Tensor, n_parameters: int) -> torch.Tensor:
        """Covariance of the estimates from the Fisher-scoring matrix.

        Parameters
        ----------
        matrix : tensor (P, P)
            The Fisher-scoring matrix ``Jᵀ W J``.
        %(expected)s
        %(n_parameters)s

        Returns
        -------
        tensor (P, P)
            Inf everywhere where the matrix is singular.
        """
        factor = self.likelihood.covariance_factor(expected, self.observed, n_parameters)
        try:
            return factor * torch.linalg.inv(matrix)
        except RuntimeError:
            return torch.full_like(matrix, math.inf)


@dataclass
class LocalResult:
    """Outcome of :func:`levenberg_marquardt`.

    Attributes
    ----------
    x : tensor (P,)
        The final values.
    loss : float
        The loss at ``x``.
    converged : bool
        Whether the convergence test was met.
    message : str
        How the refinement ended.
    matrix : tensor (P, P)
        The Fisher-scoring matrix ``Jᵀ W J`` at ``x``.
    expected : tensor (n,)
        The expected counts at ``x``.
    """

    x: torch.Tensor
    loss: float
    converged: bool
    message: str
    matrix: torch.Tensor
    expected: torch.Tensor


@fill_doc
def levenberg_marquardt(objective: PixelObjective, x: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor,
                        on_iteration: Callable[[torch.Tensor, float], None],
                        max_iterations: int = MAX_ITERATIONS) -> LocalResult:
    """Minimise the objective from ``x`` inside the bounds.

    Each iteration solves ``(H + λ diag H) δ = −g`` with the Fisher-scoring matrix ``H``
    (exact Jacobian, no second derivatives), projects ``x + δ`` onto the bounds, and keeps the
    step only if the loss is finite and lower; otherwise ``λ`` grows tenfold and the step
    shrinks. It stops when every step is below :data:`STEP_TOLERANCE_SIGMA` standard errors,
    or when no step lowers the loss any more (the precision of the simulation is reached).

    Parameters
    ----------
    objective : PixelObjective
        The loss to minimise.
    %(parameter_values)s
    lower, upper : tensor (P,)
        Bounds.
    on_iteration : callable
        Called as ``on_iteration(x, loss)`` after every accepted step.
    max_iterations : int
        Iterations at most.

    Returns
    -------
    LocalResult
    """
    damping = 1e-3
    loss, gradient, matrix, expected = objective.linearize(x)
    if not math.isfinite(loss):
        return LocalResult(x, loss, False, "the loss is not finite at the starting point of the local refinement",
                           matrix, expected)
    n = x.numel()
    for _ in range(max_iterations):
        diagonal = torch.diag(torch.diag(matrix).clamp(min=1e-300))
        accepted = False
        while damping < 1e12:
            step = solve_linear(matrix + damping * diagonal, -gradient)
            candidate = torch.minimum(torch.maximum(x + step, lower), upper)
            candidate_loss = objective.loss(candidate) if torch.isfinite(candidate).all() else math.nan
            if math.isfinite(candidate_loss) and candidate_loss < loss:
                accepted = True
                break
            damping *= 10
        if not accepted:
            return LocalResult(x, loss, True, "converged: no step lowers the loss (the precision of the simulation)",
                               matrix, expected)
        step = candidate - x
        x, loss = candidate, candidate_loss
        on_iteration(x, loss)
        damping = max(damping / 10, 1e-9)
        loss, gradient, matrix, expected = objective.linearize(x)
        standard_errors = torch.sqrt(torch.diag(objective.covariance(matrix, expected, n)).clamp(min=0))
        if bool((step.abs() <= STEP_TOLERANCE_SIGMA * standard_errors).all()):
            return LocalResult(x, loss, True, f"converged: the last step was below {STEP_TOLERANCE_SIGMA:g} "
                                              f"standard errors", matrix, expected)
    return LocalResult(x, loss, False, f"not converged after {max_iterations} iterations", matrix, expected)


def solve_linear(matrix: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """``matrix⁻¹ rhs``, by least squares where the matrix is singular.

    Parameters
    ----------
    matrix : tensor (P, P)
        The system's matrix.
    rhs : tensor (P,) or (P, K)
        Its right-hand side: one vector, or one per column.

    Returns
    -------
    tensor of the shape of ``rhs``
    """
    try:
        return torch.linalg.solve(matrix, rhs)
    except RuntimeError:
        columns = rhs[:, None] if rhs.ndim == 1 else rhs
        solution = torch.linalg.lstsq(matrix, columns).solution
        return solution[:, 0] if rhs.ndim == 1 else solution
