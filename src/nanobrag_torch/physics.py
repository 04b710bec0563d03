"""Pure tensor functions of nanoBragg's physics: Miller indices, the lattice factor of every
crystal shape, and polarization.

The SQUARE lattice factor's per-axis ratio ``sin(Nπδ)/sin(πδ)`` is written once, in
:func:`sincg_ratio` (with its derivatives beside it); :func:`lattice_factor` and the fused
kernel (:mod:`nanobrag_torch.kernels`) both evaluate it.

Every function is differentiable and free of NaN in value and gradient at the special points
(integer Miller indices, a pixel on the beam), and accurate in float32: the nearest integer
is taken off h, k, l before any trigonometry.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import torch

from .config import CrystalShape
from .geometry import unit_or_zero

ROUND_SHAPE_NORM = 0.723601254558268
"""nanoBragg's normalisation of the ROUND lattice factor."""

GAUSS_WIDTH = 0.63
"""nanoBragg's width constant of the GAUSS shape."""

TOPHAT_RADIUS_SQR = 0.3969
"""nanoBragg's cut of the TOPHAT shape, ``0.63²`` as C writes it."""

SERIES_BELOW = 1e-4
"""Below this ``|π δ|``, :func:`sincg_fraction` uses the Taylor series of :func:`sincg_ratio`."""


def nearest_index(h: torch.Tensor) -> torch.Tensor:
    """Nearest integer as nanoBragg takes it: ``ceil(h - 0.5)`` (ties go down).

    Parameters
    ----------
    h : tensor
        Fractional Miller indices.

    Returns
    -------
    tensor
        The nearest integers, as floating-point values of ``h``'s dtype.
    """
    return torch.ceil(h - 0.5)


def sincg_ratio(x: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """``sin(N x) / sin(x)`` for ``x = π δ`` with ``δ`` the fractional index offset; ``x`` must not be 0.

    The per-axis factor of the SQUARE lattice factor: equal, up to a sign that the intensity
    squares away, to nanoBragg's ``sincg(π h, N) = sin(N π h) / sin(π h)`` with ``h = h₀ + δ``
    for integer N; for real N the smooth continuation in N. Its derivatives are
    :func:`sincg_ratio_derivatives`.

    Parameters
    ----------
    x : tensor
        ``π δ`` (radians), never 0.
    n : tensor
        The number of cells N along the axis (broadcast against ``x``; real values allowed).

    Returns
    -------
    tensor
        ``sin(N x) / sin(x)``.
    """
    return torch.sin(n * x).div_(torch.sin(x))


def sincg_ratio_derivatives(x: torch.Tensor, n: torch.Tensor, ratio: torch.Tensor,
                            need_n: bool = True) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Derivatives of :func:`sincg_ratio` ``r = sin(N x) / sin(x)``, given ``r``.

    Parameters
    ----------
    x : tensor
        ``π δ`` (radians), never 0.
    n : tensor
        The number of cells N along the axis.
    ratio : tensor
        ``r = sincg_ratio(x, n)``, already computed.
    need_n : bool
        Whether to compute ``∂r/∂N`` too.

    Returns
    -------
    d_x : tensor
        ``∂r/∂x = (N cos(N x) − r cos x) / sin x``.
    d_n : tensor or None
        ``∂r/∂N = x cos(N x) / sin x`` (None unless ``need_n``).
    """
    inverse_sin = torch.sin(x).reciprocal_()
    cos_nx = torch.cos(n * x)
    d_x = (n * cos_nx).sub_(ratio * torch.cos(x)).mul_(inverse_sin)
    d_n = cos_nx.mul_(x).mul_(inverse_sin) if need_n else None
    return d_x, d_n


def sincg_fraction(delta: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """:func:`sincg_ratio` at ``x = π δ`` for the fractional index offset ``δ`` in [-½, ½], at δ = 0 too.

    For ``|π δ| <`` :data:`SERIES_BELOW` the Taylor series ``N (1 − (N² − 1) x² / 6)`` replaces
    the ratio, so that the value at δ = 0 is the limit N and the first and second derivatives
    are exact there (autograd through the ratio itself would divide 0 by 0).

    Parameters
    ----------
    delta : tensor
        Fractional index offsets ``δ``, in [-½, ½].
    n : tensor
        The number of cells N along the axis.

    Returns
    -------
    tensor
        ``sin(N π δ) / sin(π δ)``, N where ``δ = 0``.
    """
    x = math.pi * delta
    small = x.abs() < SERIES_BELOW
    ratio = sincg_ratio(torch.where(small, torch.ones_like(x), x), n)
    series = n * (1 - (n * n - 1) * x * x / 6)
    return torch.where(small, series, ratio)


def _sinc3(x_sqr: torch.Tensor) -> torch.Tensor:
    """``3 (sin x / x − cos x) / x²`` as a function of ``x²``; 1 at 0, smooth gradient."""
    small = x_sqr < 1e-6
    x = torch.sqrt(torch.where(small, torch.ones_like(x_sqr), x_sqr))
    exact = 3 * (torch.sin(x) / x - torch.cos(x)) / (x * x)
    series = 1 - x_sqr / 10
    return torch.where(small, series, exact)


def lattice_factor(
    shape: CrystalShape,
    delta_hkl: torch.Tensor,
    n_cells: torch.Tensor,
    fudge: float,
    reciprocal_A: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Lattice factor ``F_latt`` of a crystal of ``Na × Nb × Nc`` cells.

    SQUARE: the product over the three axes of :func:`sincg_fraction`. ROUND:
    ``Na Nb Nc · 0.7236 · sinc3(π √(fudge Σ δ² N²))``. GAUSS:
    ``Na Nb Nc · exp(−r*² · fudge / 0.63)`` and TOPHAT: ``Na Nb Nc`` where
    ``r*² · fudge < 0.3969``, else 0, with ``r*² = |δh a* + δk b* + δl c*|² (Na Nb Nc)²`` in
    Å⁻² (see the Physics model page of the documentation).

    Parameters
    ----------
    shape : CrystalShape
        Crystal shape: SQUARE, ROUND, GAUSS or TOPHAT.
    delta_hkl : tensor (..., 3)
        Fractional Miller indices minus their nearest integers.
    n_cells : tensor (3,)
        Na, Nb, Nc.
    fudge : float
        Width factor of the ROUND, GAUSS and TOPHAT shapes.
    reciprocal_A : tensor (3, 3), optional
        Rows a*, b*, c* in Å⁻¹ of the unrotated crystal (GAUSS and TOPHAT only).

    Returns
    -------
    tensor (...)
        ``F_latt`` of every offset.
    """
    if shape is CrystalShape.SQUARE:
        return (sincg_fraction(delta_hkl[..., 0], n_cells[0])
                * sincg_fraction(delta_hkl[..., 1], n_cells[1])
                * sincg_fraction(delta_hkl[..., 2], n_cells[2]))
    n_total = n_cells[0] * n_cells[1] * n_cells[2]
    if shape is CrystalShape.ROUND:
        hrad_sqr = (delta_hkl * delta_hkl * n_cells * n_cells).sum(dim=-1)
        return n_total * ROUND_SHAPE_NORM * _sinc3(math.pi ** 2 * hrad_sqr * fudge)
    rstar = delta_hkl @ reciprocal_A
    rstar_sqr = (rstar * rstar).sum(dim=-1) * n_total * n_total
    if shape is CrystalShape.GAUSS:
        return n_total * torch.exp(-rstar_sqr / GAUSS_WIDTH * fudge)
    inside = rstar_sqr * fudge < TOPHAT_RADIUS_SQR
    return torch.where(inside, n_total * torch.ones_like(rstar_sqr), torch.zeros_like(rstar_sqr))


def polarization_factor(
    incident: torch.Tensor,
    diffracted: torch.Tensor,
    axis: torch.Tensor,
    kahn_factor: torch.Tensor,
) -> torch.Tensor:
    """Kahn polarization factor ``½ (1 + cos²2θ − K cos 2ψ sin²2θ)`` of every diffracted
    direction for every source.

    Written as ``½ (1 + (d·i)² − K ((d·E)² − (d·B)²))`` with ``B = unit(p × i)`` and
    ``E = unit(i × B)``, which is the same quantity without the angle ψ, so it stays smooth
    on the beam axis. The three projections of all the directions come from one matrix
    product, and their weighted squares from another (sums over a last axis of length 3 are
    several times slower on the CPU).

    A source along the polarization axis has no E-B frame: nanoBragg's ``unitize`` makes
    ``B`` and ``E`` zero vectors, ``ψ = −atan2(0, 0) = 0`` and the factor
    ``½ (1 + cos²2θ − K sin²2θ)``; so here too (``geometry.unit_or_zero``),
    with finite value and gradient.

    Parameters
    ----------
    incident : tensor (K, 3) or (3,)
        Unit propagation directions of the K sources (or of one).
    diffracted : tensor (..., 3)
        Unit diffracted directions.
    axis : tensor (3,)
        Polarization (E-vector) axis.
    kahn_factor : tensor ()
        Kahn factor K.

    Returns
    -------
    tensor (..., K), or (...) for one incident direction of shape (3,)
    """
    b_axis = unit_or_zero(torch.linalg.cross(axis.expand_as(incident), incident, dim=-1))
    e_axis = unit_or_zero(torch.linalg.cross(incident, b_axis, dim=-1))
    frame = torch.stack((incident, e_axis, b_axis), dim=-2)  # (K, 3, 3) or (3, 3): rows i, E, B
    # projections (K, 3, N) or (3, N) of the N directions, each row contiguous
    projections = (frame.reshape(-1, 3) @ diffracted.reshape(-1, 3).transpose(0, 1)).unflatten(0, frame.shape[:-1])
    # without a frame (E = B = 0), cos 2ψ = 1: −K sin²2θ = −K + K (d·i)²
    frameless = kahn_factor * ((b_axis * b_axis).sum(dim=-1, keepdim=True) == 0)  # (K, 1) or (1,)
    weights = 0.5 * torch.cat((1 + frameless, (-kahn_factor).expand_as(frameless), kahn_factor.expand_as(frameless)),
                              dim=-1)  # (K, 3) or (3,): of (d·i)², (d·E)², (d·B)²
    factor = (weights[..., None, :] @ (projections * projections))[..., 0, :] + 0.5 * (1 - frameless)  # (K, N) or (N,)
    return factor.movedim(0, -1).reshape(diffracted.shape[:-1] + incident.shape[:-1])
