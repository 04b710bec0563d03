"""The amplitudes' standard errors with every shot's own parameters free.

A still records most of its reflections in part, and how much of a reflection it records turns
fast with the crystal: an orientation known to a few thousandths of a degree still moves a
partial spot's predicted photons by more than their counting error. The amplitude step
(:func:`~nanobrag_torch.refine.amplitudes.solve_amplitudes`) holds the orientations, so its
errors leave that out; the errors reported by
:func:`~nanobrag_torch.refine.dataset.refine_dataset` are these.

The Fisher matrix of the whole problem has a diagonal ``D`` in the intensities, one block ``C_s``
per shot in its own parameters (orientation, scale, background level), and between them the
couplings ``B_s`` (the reflections the shot records × its parameters). The intensities'
covariance is ``factor · (D⁻¹ + D⁻¹ B S⁻¹ Bᵀ D⁻¹)``, with ``S = C − Bᵀ D⁻¹ B`` the Schur complement
on all shots' parameters together. Two shots meet in ``S`` only through the reflections they
share, each measured by many shots; ``S`` is replaced by its per-shot blocks
``S_s = C_s − B_sᵀ D⁻¹ B_s`` (the covariance of the shot's parameters with the amplitudes free,
the other shots held), so that each shot's part is computed where the shot is held and only a
vector of the reflections' variances travels:

``var(I_j) = factor · (1 / D_j + Σ_s b_sjᵀ S_s⁻¹ b_sj / D_j²)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

from ..structure_factors import StructureFactors
from .likelihoods import Likelihood
from .shot_work import ShotWork, refined_positions, shot_model, unit_pixels


@dataclass
class ShotErrors:
    """One shot's part of the amplitudes' errors (:func:`shot_errors`).

    Attributes
    ----------
    parameter : tensor (r,) of int64
        The amplitude parameters the shot's pixels see.
    variance : tensor (r,) of float64
        ``b_sjᵀ S_s⁻¹ b_sj / D_j²`` of each (the covariance factor left out).
    stderr : tensor (5,) of float64
        The standard errors of the shot's own parameters
        (:data:`~nanobrag_torch.refine.shot_work.SHOT_PARAMETERS`) with the amplitudes free; NaN
        for one not refined.
    """

    parameter: torch.Tensor
    variance: torch.Tensor
    stderr: torch.Tensor


def shot_errors(work: ShotWork, table: StructureFactors, reflections, likelihood: Likelihood, dtype: torch.dtype,
                fisher: torch.Tensor) -> Optional[ShotErrors]:
    """A shot's part of the amplitudes' variances, and its own parameters' errors, at its values.

    Parameters
    ----------
    work : ShotWork
        The shot, with the scale and background level of the last amplitude step.
    table : StructureFactors
        The amplitudes.
    reflections : ReflectionSet
        The refined reflections.
    likelihood : Poisson, Gaussian or MeanSquaredError
        The noise model.
    dtype : torch.dtype
        Of the simulation.
    fisher : tensor (n_parameters,) of float64
        ``D``: every intensity's Fisher information over all shots
        (:attr:`~nanobrag_torch.refine.amplitudes.AmplitudeSums.fisher`).

    Returns
    -------
    ShotErrors or None
        None for a shot left out (a status other than ``"ok"``).
    """
    if work.status != "ok":
        return None
    refined = refined_positions(work)
    model, _ = shot_model(work, table, dtype, refined)
    expected, jacobian = model.expected_and_jacobian(work.values[refined], work.pixels)
    weight = likelihood.fisher_weights(expected)
    if weight.dim() == 0:
        weight = weight.expand_as(expected)
    own = jacobian.T @ (weight[:, None] * jacobian)
    keep, _, parameter, unit, _ = unit_pixels(work, reflections, dtype)
    seen, where = torch.unique(parameter, return_inverse=True)
    slope = float(work.values[3]) * unit * weight[keep]  # ∂μ/∂I · W at each pixel of one reflection
    coupling = torch.zeros((seen.numel(), len(refined)), dtype=torch.float64).index_add_(
        0, where, slope[:, None] * jacobian[keep])
    information = fisher[seen]
    measured = information > 0
    reduced = own - coupling[measured].T @ (coupling[measured] / information[measured, None])
    try:
        covariance = torch.linalg.inv(reduced)
    except RuntimeError:
        covariance = torch.full_like(reduced, math.inf)
    variance = torch.where(measured, ((coupling @ covariance) * coupling).sum(dim=1) / information.clamp(min=1e-300) ** 2,
                           torch.zeros_like(information))
    stderr = torch.full_like(work.values, math.nan)
    factor = likelihood.covariance_factor(expected, work.observed, len(refined))
    stderr[refined] = torch.sqrt(factor * torch.diagonal(covariance).clamp(min=0))
    return ShotErrors(parameter=seen, variance=variance, stderr=stderr)


def intensity_variance(fisher: torch.Tensor, extra: torch.Tensor, covariance_factor: float) -> torch.Tensor:
    """Every intensity's variance with the shots' own parameters free.

    Parameters
    ----------
    fisher : tensor (n_parameters,) of float64
        ``D``, over all shots.
    extra : tensor (n_parameters,) of float64
        :attr:`ShotErrors.variance` summed over every refined shot.
    covariance_factor : float
        The likelihood's covariance factor of the amplitude step.

    Returns
    -------
    tensor (n_parameters,) of float64
        inf for an intensity no pixel sees.
    """
    return torch.where(fisher > 0, covariance_factor * (1.0 / fisher.clamp(min=1e-300) + extra),
                       torch.full_like(fisher, math.inf))
