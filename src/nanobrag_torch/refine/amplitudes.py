"""The amplitude step of a dataset refinement: intensities, scales and background levels from
pixels that are linear in them.

For fixed orientations every compared pixel is ``μ = s · u · I[j] + b · w``
(:class:`~nanobrag_torch.refine.shot_work.AmplitudeTerms`): linear in the intensity ``I = |F|²``
of the one reflection parameter ``j`` it sees, and in its shot's scale ``s`` and background
level ``b``. For fixed ``s, b`` the loss separates into one convex problem per parameter; for
fixed ``I`` into one small problem per shot. :func:`solve_amplitudes` alternates the two to
convergence, which needs no rendering: only ``I, s, b`` travel to where the shots are held and
per-parameter and per-shot sums (:func:`amplitude_sums`) come back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import torch

from .likelihoods import Likelihood
from .shot_work import AmplitudeTerms

MAX_ITERATIONS = 100
"""Alternations of the intensities and the shots' factors at most."""

TOLERANCE_SIGMA = 1e-3
"""Converged when no intensity, scale or level moves by more than this fraction of its
standard error."""

HALVINGS = 30
"""Step halvings a parameter (or a shot) may take before it stays where it is."""


@dataclass
class AmplitudeSums:
    """Sums over pixels of the amplitude problem, by parameter and by shot.

    Attributes
    ----------
    loss, gradient, fisher : tensor (n,)
        By intensity parameter: the loss of its pixels, ``Σ s u ∂L/∂μ`` and ``Σ (s u)² W``
        (W the likelihood's Fisher weights).
    pixels : tensor (n,)
        Pixels that see each parameter.
    shot_loss : tensor (S,)
        By shot: the loss of its pixels.
    shot_gradient : tensor (S, 2)
        ``Σ (u I, w) ∂L/∂μ``: the gradient in the shot's scale and level.
    shot_fisher : tensor (S, 2, 2)
        ``Σ (u I, w)ᵀ W (u I, w)``.
    """

    loss: torch.Tensor
    gradient: torch.Tensor
    fisher: torch.Tensor
    pixels: torch.Tensor
    shot_loss: torch.Tensor
    shot_gradient: torch.Tensor
    shot_fisher: torch.Tensor

    def __add__(self, other: "AmplitudeSums") -> "AmplitudeSums":
        return AmplitudeSums(*(getattr(self, name) + getattr(other, name) for name in self.__dataclass_fields__))


def amplitude_sums(terms: Optional[AmplitudeTerms], intensities: torch.Tensor, scales: torch.Tensor,
                   levels: torch.Tensor, likelihood: Likelihood) -> AmplitudeSums:
    """The sums of :class:`AmplitudeSums` over some shots' pixels.

    Parameters
    ----------
    terms : AmplitudeTerms or None
        The shots' pixels (None: no pixel).
    intensities : tensor (n,) of float64
        ``|F|²`` of every parameter.
    scales, levels : tensor (S,) of float64
        Every shot's scale and background level (by position in the dataset).
    likelihood : Poisson, Gaussian or MeanSquaredError
        The noise model.

    Returns
    -------
    AmplitudeSums
    """
    n, shots = intensities.numel(), scales.numel()
    zeros = torch.zeros(n, dtype=torch.float64)
    sums = AmplitudeSums(zeros, zeros.clone(), zeros.clone(), zeros.clone(), torch.zeros(shots, dtype=torch.float64),
                         torch.zeros((shots, 2), dtype=torch.float64), torch.zeros((shots, 2, 2), dtype=torch.float64))
    if terms is None or terms.parameter.numel() == 0:
        return sums
    signal = terms.unit * intensities[terms.parameter]
    scale = scales[terms.shot]
    expected = scale * signal + levels[terms.shot] * terms.background
    loss = likelihood.pixel_losses(expected, terms.observed)
    slope = likelihood.gradient(expected, terms.observed)
    weight = likelihood.fisher_weights(expected)
    if weight.dim() == 0:
        weight = weight.expand_as(expected)
    a = scale * terms.unit
    sums.loss.index_add_(0, terms.parameter, loss)
    sums.gradient.index_add_(0, terms.parameter, a * slope)
    sums.fisher.index_add_(0, terms.parameter, a * a * weight)
    sums.pixels.index_add_(0, terms.parameter, torch.ones_like(loss))
    derivatives = torch.stack([signal, terms.background], dim=1)
    sums.shot_loss.index_add_(0, terms.shot, loss)
    sums.shot_gradient.index_add_(0, terms.shot, derivatives * slope[:, None])
    sums.shot_fisher.index_add_(0, terms.shot, derivatives[:, :, None] * derivatives[:, None, :] * weight[:, None, None])
    return sums


Sums = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], AmplitudeSums]


def solve_amplitudes(sums: Sums, intensities: torch.Tensor, scales: torch.Tensor, levels: torch.Tensor,
                     covariance_factor: float) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                                                        AmplitudeSums]:
    """Minimise the loss over ``I ≥ 0``, ``s > 0``, ``b ≥ 0`` by alternating projected Fisher
    scoring of the intensities (each parameter on its own) and of each shot's two factors.

    Each parameter (and each shot) keeps its own step, halved where its own loss rose (the
    problems of one kind are independent of each other). At the end the scales are divided
    by their mean over the shots that have pixels and the intensities multiplied by it: the
    amplitudes are on the scale of the shots' nominal fluence.

    Parameters
    ----------
    sums : callable
        ``sums(I, s, b)``: the :class:`AmplitudeSums` at those values.
    intensities : tensor (n,) of float64
        Starting intensities (negative ones start at 0).
    scales, levels : tensor (S,) of float64
        Starting scales and background levels of every shot.
    covariance_factor : float
        The likelihood's covariance factor (2 for a deviance, twice the negative log-likelihood).

    Returns
    -------
    intensities : tensor (n,)
    variance : tensor (n,)
        ``factor / H`` of each intensity (the shots' factors fixed); inf for a parameter no
        pixel sees.
    scales, levels : tensor (S,)
    last : AmplitudeSums
        The sums at the solution.
    """
    intensities = intensities.clamp(min=0).clone()
    scales, levels = scales.clone(), levels.clone()
    current = sums(intensities, scales, levels)
    for _ in range(MAX_ITERATIONS):
        new_intensities, current = _intensity_step(sums, intensities, scales, levels, current)
        new_scales, new_levels, current = _shot_step(sums, new_intensities, scales, levels, current)
        sigma_I = torch.sqrt(covariance_factor / current.fisher.clamp(min=1e-300))
        measured = current.fisher > 0
        shot_sigma = torch.sqrt(covariance_factor / torch.diagonal(current.shot_fisher, dim1=1, dim2=2).clamp(min=1e-300))
        moves = [((new_intensities - intensities).abs() / sigma_I)[measured],
                 ((new_scales - scales).abs() / shot_sigma[:, 0]), ((new_levels - levels).abs() / shot_sigma[:, 1])]
        intensities, scales, levels = new_intensities, new_scales, new_levels
        if all(bool((move <= TOLERANCE_SIGMA).all()) for move in moves):
            break
    has_pixels = current.shot_fisher[:, 0, 0] > 0
    mean_scale = float(scales[has_pixels].mean()) if bool(has_pixels.any()) else 1.0
    scales = torch.where(has_pixels, scales / mean_scale, scales)
    intensities = intensities * mean_scale
    current = sums(intensities, scales, levels)
    variance = torch.where(current.fisher > 0, covariance_factor / current.fisher.clamp(min=1e-300),
                           torch.full_like(intensities, float("inf")))
    return intensities, variance, scales, levels, current


def _intensity_step(sums: Sums, intensities, scales, levels, current: AmplitudeSums):
    """One projected Fisher-scoring step of every intensity, each halved until its loss does
    not rise."""
    measured = current.fisher > 0
    step = torch.where(measured, -current.gradient / current.fisher.clamp(min=1e-300), torch.zeros_like(intensities))
    candidate, trial = intensities, current
    for _ in range(HALVINGS):
        candidate = (intensities + step).clamp(min=0)
        trial = sums(candidate, scales, levels)
        worse = trial.loss > current.loss + 1e-12 * current.loss.abs()
        if not bool(worse.any()):
            return candidate, trial
        step = torch.where(worse, step / 2, step)
    candidate = torch.where(worse, intensities, candidate)
    return candidate, sums(candidate, scales, levels)


def _shot_step(sums: Sums, intensities, scales, levels, current: AmplitudeSums):
    """One projected Fisher-scoring step of every shot's scale and level, each shot's halved
    until its loss does not rise. A factor the shot's pixels do not determine stays."""
    fisher, gradient = current.shot_fisher, current.shot_gradient
    diagonal = torch.diagonal(fisher, dim1=1, dim2=2)
    free = diagonal > 0
    regular = fisher + torch.diag_embed(torch.where(free, 1e-12 * diagonal, torch.ones_like(diagonal)))
    step = -torch.linalg.solve(regular, torch.where(free, gradient, torch.zeros_like(gradient)))
    step = torch.where(free, step, torch.zeros_like(step))
    factors = torch.stack([scales, levels], dim=1)
    lowest = torch.tensor([1e-12, 0.0], dtype=torch.float64)
    candidate, trial = factors, current
    for _ in range(HALVINGS):
        candidate = torch.maximum(factors + step, lowest)
        trial = sums(intensities, candidate[:, 0], candidate[:, 1])
        worse = trial.shot_loss > current.shot_loss + 1e-12 * current.shot_loss.abs()
        if not bool(worse.any()):
            return candidate[:, 0], candidate[:, 1], trial
        step = torch.where(worse[:, None], step / 2, step)
    candidate = torch.where(worse[:, None], factors, candidate)
    trial = sums(intensities, candidate[:, 0], candidate[:, 1])
    return candidate[:, 0], candidate[:, 1], trial
