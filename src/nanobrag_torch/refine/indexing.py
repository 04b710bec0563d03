"""Global search of the crystal orientation (and mosaic spread): index the observed spots.

A spot at scattering vector q lies close to a reciprocal-lattice point of one of the mosaic
domains when the crystal is in the right orientation: ``h = a·q``, ``k = b·q``, ``l = c·q``
are then nearly integers. The score of an orientation counts the spots that are within a
reciprocal-space tolerance of a lattice point. It is evaluated on a grid of rotations
spanning the directions the refined orientation parameters can move (unrotated domain only,
loose tolerance), then polished on finer grids of rotation and mosaic spread with tighter
tolerances, each spot scored against its best-matching domain. The polish matters: the
domains are rotated away from the crystal's own orientation, so the orientation that indexes
the most spots with one domain is off by a good part of the mosaic spread.

This is cheap (a few hundred spots) and finds orientations far outside the basin of the image
likelihood, where the simulated spots and the observed ones do not overlap at all.
"""

from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import torch

from .._docs import fill_doc

from ..geometry import rotation_about_axis
from .model import ExperimentModel
from .parameters import Parameter, mosaic_spread_index
from .spots import Spots

SEARCH_HALF_WIDTH_DEG = 4.0
"""The coarse grid covers rotations up to this angle about every direction the orientation
parameters span."""

GRID_STEP_DEG = {0: 1.0, 1: 0.02, 2: 0.1, 3: 0.25}
"""Coarse grid step by the number of independent rotation directions."""

COARSE_TOLERANCE_PX = 4.0
"""Reciprocal-space tolerance of the coarse grid, in pixels (the reach of one pixel in
reciprocal space, :meth:`~nanobrag_torch.refine.model.ExperimentModel.pixel_in_reciprocal_space_per_A`:
0.00076 Å⁻¹ for the tutorial's Pilatus at 231 mm)."""

POLISH_TOLERANCES_PX = (2.0, 1.0, 0.66)
"""Tolerances of the polishing grids, in pixels; each grid's rotation step is a quarter of the
previous."""

SPREAD_RANGE = 6.0
"""The spreads tried go from the start / 6 to the start × 6 (:func:`spread_grid`)."""

SPREAD_WHEN_ZERO_DEG = (0.01, 2.0)
"""Spreads tried when the start is 0."""

MIN_INDEXED_SPOTS = 5.0
"""An orientation is accepted only if it indexes more spots than this (and more than the start)."""


def indexing_score(matrix_A: torch.Tensor, q_per_A: torch.Tensor, direction: torch.Tensor, rotations: torch.Tensor,
                   tolerance_per_A: float, excitation_per_A: float, domains: Optional[torch.Tensor] = None
                   ) -> torch.Tensor:
    """Soft count of the spots that index in each candidate orientation.

    A spot's distance to its nearest lattice point has two parts: along the diffracted
    direction ``s`` (the excitation error, up to the width of a reflection in a still) and
    across it (the spot's position error). Each gets its own tolerance.

    Parameters
    ----------
    matrix_A : tensor (3, 3)
        Rows a, b, c of the unrotated crystal in Å.
    q_per_A : tensor (n, 3)
        Scattering vectors of the spots in Å⁻¹.
    direction : tensor (n, 3)
        Unit diffracted directions of the spots.
    rotations : tensor (B, 3)
        Rotation vectors (radians) applied to the crystal in the lab frame.
    tolerance_per_A : float
        Width σ of the Gaussian weight of the position error.
    excitation_per_A : float
        Width of the Gaussian weight of the excitation error.
    domains : tensor (B, D, 3, 3), optional
        Lab-frame rotations of the mosaic domains of each candidate (default: one unrotated domain).

    Returns
    -------
    tensor (B,)
        ``Σ_spots max_domain exp(−d⊥²/2σ² − d∥²/2σ∥²)``.
    """
    angle = torch.linalg.vector_norm(rotations, dim=-1)
    axis = torch.where(angle[:, None] > 0, rotations / angle.clamp(min=1e-300)[:, None],
                       torch.tensor([0.0, 0.0, 1.0], dtype=rotations.dtype))
    rotation = rotation_about_axis(axis, angle)[:, None]
    if domains is not None:
        rotation = domains @ rotation  # a domain turns the already rotated crystal
    # h = (R a) · q = a · (Rᵀ q): work in the crystal's frame, where q and s are turned by Rᵀ
    q = torch.einsum("bdji,nj->bdni", rotation, q_per_A)
    s = torch.einsum("bdji,nj->bdni", rotation, direction)
    hkl = q @ matrix_A.T
    offset = (torch.round(hkl) - hkl) @ torch.linalg.inv(matrix_A).T
    along = (offset * s).sum(-1)
    across = (offset * offset).sum(-1) - along * along
    weight = torch.exp(-across / (2 * tolerance_per_A ** 2) - along * along / (2 * excitation_per_A ** 2))
    return weight.max(dim=1).values.sum(-1)


@fill_doc
def rotation_generators(model: ExperimentModel, x: torch.Tensor, indices: Sequence[int]) -> torch.Tensor:
    """Lab-frame rotation vector per unit of each orientation parameter.

    From ``M(θ + dθ) = M(θ) (1 − [ω]ₓ)`` for the rows M of the cell vectors.

    Parameters
    ----------
    %(experiment_model)s
    %(parameter_values)s
    indices : sequence of int
        Positions of the orientation parameters in ``x``.

    Returns
    -------
    tensor (3, k)
        Radians per unit of each of the k parameters.
    """
    if not indices:
        return torch.zeros(3, 0, dtype=torch.float64)
    jacobian, matrix = _matrix_jacobian(model, x, indices)
    inverse = torch.linalg.inv(matrix)
    columns = []
    for column in jacobian.T:
        skew = -inverse @ column.reshape(3, 3)
        skew = (skew - skew.T) / 2
        columns.append(torch.stack([skew[2, 1], skew[0, 2], skew[1, 0]]))
    return torch.stack(columns, dim=1)


@fill_doc
def search_orientation(model: ExperimentModel, parameters: Sequence[Parameter], x: torch.Tensor,
                       spots: Spots) -> Tuple[torch.Tensor, float, float]:
    """Move the orientation parameters and the mosaic spread (those refined) to the values that
    index the most spots.

    Parameters
    ----------
    %(experiment_model)s
    %(refined_parameters)s
    %(parameter_values)s
    %(observed_spots)s

    Returns
    -------
    x : tensor (P,)
        New values (unchanged when nothing indexes clearly better than the start).
    start_score, best_score : float
        Indexed spots (soft count at the finest tolerance) at the start and at the result.
    """
    indices = [p for p, parameter in enumerate(parameters) if parameter.is_orientation]
    spread_index = mosaic_spread_index(parameters)
    with torch.no_grad():
        q, direction, cells = model.spot_geometry(list(x.unbind()), spots.panel, spots.slow_px, spots.fast_px)
    matrix = cells[0]
    rocking = model.reflection_width_per_A(x)
    start_spread = float(x[spread_index]) if spread_index is not None else float(
        model.configs["crystal"].mosaic_spread_deg)
    pixel = model.pixel_in_reciprocal_space_per_A(x)
    finest = POLISH_TOLERANCES_PX[-1] * pixel
    no_rotation = torch.zeros(1, 3, dtype=torch.float64)
    def score(rotations, tolerance, domains=None):
        return _best(matrix, q, direction, rotations, tolerance, max(tolerance, rocking), domains)

    start_score = score(no_rotation, finest, model.domain_rotations(x, torch.tensor([start_spread])))[1]
    basis = _basis(rotation_generators(model, x, indices))
    rank = basis.shape[1]
    step = math.radians(GRID_STEP_DEG[rank])
    ticks = torch.deg2rad(torch.arange(-SEARCH_HALF_WIDTH_DEG, SEARCH_HALF_WIDTH_DEG + 1e-9, GRID_STEP_DEG[rank],
                                       dtype=torch.float64))
    coefficients = _grid(ticks, rank)
    best, _ = score(coefficients @ basis.T, COARSE_TOLERANCE_PX * pixel)
    best = coefficients[best]
    spreads = spread_grid(start_spread, spread_index, parameters)
    for tolerance in POLISH_TOLERANCES_PX:
        tolerance *= pixel
        step /= 4
        candidates = best + _grid(torch.arange(-3, 4, dtype=torch.float64) * step, rank)
        domains = model.domain_rotations(x, spreads)
        pairs = torch.cartesian_prod(torch.arange(len(candidates)), torch.arange(len(spreads))).reshape(-1, 2)
        index, _ = score(candidates[pairs[:, 0]] @ basis.T, tolerance, domains[pairs[:, 1]])
        best, spread = candidates[pairs[index, 0]], float(spreads[pairs[index, 1]])
        spreads = _refined_spreads(spread, spreads, spread_index, parameters)
    rotation = basis @ best
    best_score = score(rotation[None], finest, model.domain_rotations(x, torch.tensor([spread])))[1]
    if best_score <= max(start_score, MIN_INDEXED_SPOTS):
        return x, start_score, start_score
    if indices:
        x = _parameters_for_rotation(model, x, indices, matrix, rotation)
    if spread_index is not None:
        x[spread_index] = spread
    return x, start_score, best_score


def _grid(ticks: torch.Tensor, rank: int) -> torch.Tensor:
    """Every combination of ``ticks`` in ``rank`` dimensions, (len(ticks)**rank, rank)."""
    if rank == 0:
        return torch.zeros(1, 0, dtype=torch.float64)
    return torch.cartesian_prod(*[ticks] * rank).reshape(-1, rank)


def _basis(generators: torch.Tensor) -> torch.Tensor:
    """Orthonormal basis (3, r) of the rotations the generators span."""
    if generators.shape[1] == 0:
        return generators
    basis, singular, _ = torch.linalg.svd(generators, full_matrices=False)
    return basis[:, singular > 1e-6 * singular.max()]


@fill_doc
def spread_grid(start: float, spread_index: Optional[int], parameters: Sequence[Parameter],
                points: int = 25) -> torch.Tensor:
    """Mosaic spreads to try around ``start`` (degrees): ``points`` in geometric progression from
    ``start / SPREAD_RANGE`` to ``start · SPREAD_RANGE`` (:data:`SPREAD_WHEN_ZERO_DEG` when
    ``start`` is 0), within the parameter's bounds; ``start`` alone when the spread is not
    refined (``spread_index`` None). The search's first polishing grid (25 points), and the
    likelihood scan of :func:`~nanobrag_torch.refine.refine`'s choice stage.

    Parameters
    ----------
    start : float
        The spread in degrees to search around.
    spread_index : int or None
        Position of the mosaic spread among ``parameters``; None when it is not refined.
    %(refined_parameters)s
    points : int
        Spreads in the grid.

    Returns
    -------
    tensor (m,) of float64
        Distinct spreads in degrees, within the spread's bounds.
    """
    if spread_index is None:
        return torch.tensor([start], dtype=torch.float64)
    low, high = (start / SPREAD_RANGE, start * SPREAD_RANGE) if start > 0 else SPREAD_WHEN_ZERO_DEG
    grid = torch.logspace(math.log10(low), math.log10(high), points, dtype=torch.float64)
    bounds = parameters[spread_index]
    return grid.clamp(bounds.lower, bounds.upper).unique()


def _refined_spreads(spread: float, previous: torch.Tensor, spread_index: Optional[int],
                     parameters: Sequence[Parameter]) -> torch.Tensor:
    """Spreads of the next polishing grid: around the best, a quarter of the previous ratio apart."""
    if spread_index is None or len(previous) < 2:
        return previous
    ratio = float(previous[1] / previous[0]) ** 0.25
    grid = spread * ratio ** torch.arange(-4, 5, dtype=torch.float64)
    bounds = parameters[spread_index]
    return grid.clamp(bounds.lower, bounds.upper).unique()


def _best(matrix, q, direction, rotations, tolerance, excitation, domains=None) -> Tuple[int, float]:
    """Index and score of the best candidate (scored in chunks to bound memory)."""
    chunk = max(1, 4096 // (1 if domains is None else domains.shape[1]))
    scores = []
    for start in range(0, len(rotations), chunk):
        part = None if domains is None else domains[start:start + chunk]
        scores.append(indexing_score(matrix, q, direction, rotations[start:start + chunk], tolerance, excitation, part))
    scores = torch.cat(scores)
    index = int(torch.argmax(scores))
    return index, float(scores[index])


def _matrix_jacobian(model: ExperimentModel, x: torch.Tensor, indices: Sequence[int]) -> Tuple[torch.Tensor, torch.Tensor]:
    """d(cell matrix of the unrotated domain)/d(parameters ``indices``) as (9, k), and the matrix (3, 3)."""
    leaf = x.detach().clone().requires_grad_(True)
    nowhere = torch.zeros(0, dtype=torch.float64)
    matrix = model.spot_geometry(list(leaf.unbind()), nowhere.long(), nowhere, nowhere)[2][0]
    rows = [torch.autograd.grad(matrix.reshape(-1)[i], leaf, retain_graph=True)[0][list(indices)] for i in range(9)]
    return torch.stack(rows), matrix.detach()


def _parameters_for_rotation(model: ExperimentModel, x: torch.Tensor, indices: List[int], matrix: torch.Tensor,
                             rotation: torch.Tensor) -> torch.Tensor:
    """Values of the orientation parameters whose cell matrix is ``matrix`` rotated by
    ``rotation``: a few Gauss–Newton steps on the matrix difference."""
    angle = torch.linalg.vector_norm(rotation)
    target = matrix @ rotation_about_axis(rotation / angle, angle).T if angle > 0 else matrix
    x = x.clone()
    for _ in range(4):
        jacobian, current = _matrix_jacobian(model, x, indices)
        residual = (target - current).reshape(-1, 1)
        x[indices] += torch.linalg.lstsq(jacobian, residual).solution[:, 0]
    return x
