"""The amplitude step of a dataset refinement: intensities from pixels linear in them.

For fixed geometry every compared pixel is ``μ = a · I[j] + c`` in the intensity ``I = |F|²`` of
the one reflection parameter ``j`` it sees (:class:`~nanobrag_torch.refine.shot_work.AmplitudeTerms`),
so the loss separates into one convex problem per parameter. :func:`solve_intensities` solves them
all at once by projected Fisher scoring (``I ≥ 0``); the sums it needs over the pixels of every
shot (:func:`intensity_sums`) are computed where the shots are held, and only ``I`` and the sums
(three numbers per parameter) travel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Optional, Tuple

import torch

from .likelihoods import Likelihood
from .shot_work import AmplitudeTerms

MAX_ITERATIONS = 50
"""Fisher-scoring iterations of one amplitude step at most."""

RELATIVE_TOLERANCE = 1e-6
"""Converged when no intensity moves by more than this fraction of its standard error."""


@dataclass
class IntensitySums:
    """Per-parameter sums over pixels of the amplitude problem.

    Attributes
    ----------
    loss : tensor (n,)
        The likelihood's loss of each parameter's pixels.
    gradient : tensor (n,)
        ``Σ a ∂L/∂μ``.
    fisher : tensor (n,)
        ``Σ a² W``: the Fisher-scoring curvature of each intensity (W the likelihood's weights).
    pixels : tensor (n,)
        Pixels that see each parameter.
    """

    loss: torch.Tensor
    gradient: torch.Tensor
    fisher: torch.Tensor
    pixels: torch.Tensor

    def __add__(self, other: "IntensitySums") -> "IntensitySums":
        return IntensitySums(self.loss + other.loss, self.gradient + other.gradient, self.fisher + other.fisher,
                             self.pixels + other.pixels)


def intensity_sums(terms: Iterable[Optional[AmplitudeTerms]], intensities: torch.Tensor,
                   likelihood: Likelihood) -> IntensitySums:
    """The sums of :class:`IntensitySums` over the pixels of some shots.

    Parameters
    ----------
    terms : iterable of AmplitudeTerms or None
        The shots' terms (None for a shot left out).
    intensities : tensor (n,) of float64
        The intensities ``|F|²`` of every parameter.
    likelihood : Poisson, Gaussian or MeanSquaredError
        The noise model.

    Returns
    -------
    IntensitySums
    """
    n = intensities.numel()
    zeros = torch.zeros(n, dtype=torch.float64)
    sums = IntensitySums(zeros, zeros.clone(), zeros.clone(), zeros.clone())
    for shot in terms:
        if shot is None or shot.parameter.numel() == 0:
            continue
        expected = shot.a * intensities[shot.parameter] + shot.c
        loss = _pixel_losses(likelihood, expected, shot.observed)
        gradient = shot.a * likelihood.gradient(expected, shot.observed)
        fisher = shot.a * shot.a * likelihood.fisher_weights(expected)
        sums.loss.index_add_(0, shot.parameter, loss)
        sums.gradient.index_add_(0, shot.parameter, gradient)
        sums.fisher.index_add_(0, shot.parameter, fisher)
        sums.pixels.index_add_(0, shot.parameter, torch.ones_like(loss))
    return sums


def _pixel_losses(likelihood: Likelihood, expected: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
    """The likelihood's loss of every pixel on its own (its loss is a sum over pixels)."""
    return torch.vmap(lambda e, o: likelihood.loss(e[None], o[None]))(expected, observed)


def solve_intensities(sums: Callable[[torch.Tensor], IntensitySums], start: torch.Tensor,
                      covariance_factor: float) -> Tuple[torch.Tensor, torch.Tensor, IntensitySums]:
    """Minimise the separable loss over ``I ≥ 0`` by projected Fisher scoring.

    Each parameter takes the step ``−g/H``, projected onto ``I ≥ 0``; where its loss rose, the
    step is halved (the problems are independent, so each parameter keeps its own step).

    Parameters
    ----------
    sums : callable
        ``sums(I)``: the :class:`IntensitySums` of every parameter at intensities ``I``.
    start : tensor (n,) of float64
        Starting intensities (negative ones start at 0).
    covariance_factor : float
        The likelihood's covariance factor (2 for a deviance, twice the negative log-likelihood).

    Returns
    -------
    intensities : tensor (n,)
    variance : tensor (n,)
        ``factor / H``: inf for a parameter no pixel sees.
    last : IntensitySums
        The sums at the solution.
    """
    intensities = start.clamp(min=0).clone()
    current = sums(intensities)
    for _ in range(MAX_ITERATIONS):
        measured = current.fisher > 0
        step = torch.where(measured, -current.gradient / current.fisher.clamp(min=1e-300), torch.zeros_like(intensities))
        for _ in range(30):
            candidate = (intensities + step).clamp(min=0)
            trial = sums(candidate)
            worse = trial.loss > current.loss + 1e-12 * current.loss.abs()
            if not bool(worse.any()):
                break
            step = torch.where(worse, step / 2, step)
        else:
            candidate = torch.where(worse, intensities, candidate)
            trial = sums(candidate)
        moved = (candidate - intensities).abs()
        intensities, current = candidate, trial
        sigma = torch.sqrt(covariance_factor / current.fisher.clamp(min=1e-300))
        if bool((moved[measured] <= RELATIVE_TOLERANCE * sigma[measured]).all()):
            break
    variance = torch.where(current.fisher > 0, covariance_factor / current.fisher.clamp(min=1e-300),
                           torch.full_like(intensities, float("inf")))
    return intensities, variance, current
