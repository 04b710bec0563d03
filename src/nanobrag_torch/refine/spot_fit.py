"""Refinement of the geometry on the positions of the observed spots.

Once the spots are indexed, each one has a nearest reciprocal-lattice point in its best
mosaic domain. A still catches that point off the Ewald sphere by its excitation error, which
moves the spot only along the diffracted direction ``s``; the part of ``rlp − q``
perpendicular to ``s`` is the spot's position error. Minimising it over every parameter that
moves spots (orientation, cell, detector geometry, wavelength) is cheap — a
few hundred spots — and brings parameters that shift spots by many pixels (distance, beam
centre) into the narrow basin of the image likelihood. Spots are weighted by
``exp(−d²/2σ²)`` (iteratively reweighted least squares), so that spots that do not index
drop out; σ shrinks from stage to stage.
"""

from __future__ import annotations

import math
from typing import Sequence, Tuple

import torch

from .._docs import fill_doc
import torch.autograd.forward_ad as forward_ad

from .model import ExperimentModel
from .parameters import Parameter
from .spots import Spots

TOLERANCES_PX = (2.0, 1.0, 0.5)
"""Width σ of the spot weights at each stage, in pixels (the reach of one pixel in reciprocal
space, :meth:`~nanobrag_torch.refine.model.ExperimentModel.pixel_in_reciprocal_space_per_A`)."""

ITERATIONS_PER_TOLERANCE = 4
"""Gauss–Newton steps at each width, at most."""

RELATIVE_COST_CHANGE = 1e-3
"""A width is done when a step lowers the robust cost by less than this fraction."""

MIN_SPOTS = 10
"""Fewer spots than this: the positions are not fitted."""


@fill_doc
def position_errors(model: ExperimentModel, values: Sequence[torch.Tensor], spots: Spots) -> torch.Tensor:
    """Per spot, the part of (nearest lattice point − q) perpendicular to the diffracted
    direction, for its best-matching mosaic domain.

    Parameters
    ----------
    %(experiment_model)s
    values : sequence of tensor ()
        One value per refined parameter.
    %(observed_spots)s

    Returns
    -------
    tensor (n, 3)
        In Å⁻¹, differentiable in ``values``.
    """
    q, direction, cells = model.spot_geometry(values, spots.panel, spots.slow_px, spots.fast_px)
    hkl = torch.einsum("dij,nj->dni", cells, q)
    lattice_point = torch.einsum("dij,dnj->dni", torch.linalg.inv(cells), torch.round(hkl.detach()))
    difference = lattice_point - q
    perpendicular = difference - (difference * direction).sum(-1, keepdim=True) * direction
    best = torch.linalg.vector_norm(difference.detach(), dim=-1).argmin(dim=0)
    return perpendicular[best, torch.arange(q.shape[0])]


@fill_doc
def fit_spot_positions(model: ExperimentModel, parameters: Sequence[Parameter], x: torch.Tensor, spots: Spots,
                       lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """Move the parameters that move spots so that the indexed spots sit where they are observed.

    Parameters
    ----------
    %(experiment_model)s
    %(refined_parameters)s
    %(parameter_values)s
    %(observed_spots)s
    lower, upper : tensor (P,)
        Bounds.

    Returns
    -------
    tensor (P,)
        New values (unchanged if there are too few spots or nothing moves spots).
    """
    indices = [p for p, parameter in enumerate(parameters) if parameter.fitted_to_spot_positions]
    if not indices or len(spots) < MIN_SPOTS:
        return x
    pixel = model.pixel_in_reciprocal_space_per_A(x)
    for tolerance in TOLERANCES_PX:
        tolerance *= pixel
        damping = 1e-3
        for _ in range(ITERATIONS_PER_TOLERANCE):
            errors, jacobian = _linearize(model, x, indices, spots)
            weights = torch.exp(-(errors * errors).sum(-1) / (2 * tolerance ** 2)).repeat_interleave(3)
            residual = errors.reshape(-1)
            matrix = jacobian.T @ (weights[:, None] * jacobian)
            gradient = jacobian.T @ (weights * residual)
            cost = _robust_cost(errors, tolerance)
            diagonal = torch.diag(torch.diag(matrix).clamp(min=1e-300))
            candidate_cost = cost
            while damping < 1e12:
                step = torch.linalg.lstsq(matrix + damping * diagonal, -gradient[:, None]).solution[:, 0]
                candidate = x.clone()
                candidate[indices] = x[indices] + step
                candidate = torch.minimum(torch.maximum(candidate, lower), upper)
                with torch.no_grad():
                    candidate_cost = _robust_cost(position_errors(model, list(candidate.unbind()), spots), tolerance)
                if math.isfinite(candidate_cost) and candidate_cost < cost:
                    x, damping = candidate, max(damping / 10, 1e-9)
                    break
                damping *= 10
            if not cost - candidate_cost > RELATIVE_COST_CHANGE * cost:
                break
    return x


def _robust_cost(errors: torch.Tensor, tolerance: float) -> float:
    """``Σ 1 − exp(−d²/2σ²)``: the spots that do not index count 1 each, whatever their error."""
    return float((1 - torch.exp(-(errors * errors).sum(-1) / (2 * tolerance ** 2))).sum())


def _linearize(model: ExperimentModel, x: torch.Tensor, indices: Sequence[int], spots: Spots
               ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Position errors (n, 3) and their Jacobian (3n, k) with respect to ``indices``, by forward mode."""
    columns = []
    errors = None
    with torch.no_grad():
        for p in indices:
            with forward_ad.dual_level():
                values = list(x.unbind())
                values[p] = forward_ad.make_dual(values[p], torch.ones_like(values[p]))
                primal, tangent = forward_ad.unpack_dual(position_errors(model, values, spots))
            errors = primal
            columns.append(torch.zeros_like(primal).reshape(-1) if tangent is None else tangent.reshape(-1))
    return errors, torch.stack(columns, dim=1)
