"""Pure tensor functions of nanoBragg's physics: Miller indices, lattice factors,
structure-factor lookup and polarization.

Every function is differentiable and free of NaN in value and gradient at the special points
(integer Miller indices, a pixel on the beam), and accurate in float32: the nearest integer
is taken off h, k, l before any trigonometry.
"""

from __future__ import annotations

import math
from typing import Dict, Optional, Tuple

import torch

from .config import CrystalShape

ROUND_SHAPE_NORM = 0.723601254558268
"""nanoBragg's normalisation of the ROUND lattice factor."""

GAUSS_WIDTH = 0.63
"""nanoBragg's width constant of the GAUSS and TOPHAT shapes."""


def nearest_index(h: torch.Tensor) -> torch.Tensor:
    """Nearest integer as nanoBragg takes it: ``ceil(h - 0.5)`` (ties go down)."""
    return torch.ceil(h - 0.5)


def sincg_fraction(delta: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """``sin(N π δ) / sin(π δ)`` for the fractional index offset ``δ`` in [-½, ½].

    Equal, up to a sign that the intensity squares away, to nanoBragg's
    ``sincg(π h, N) = sin(N π h) / sin(π h)`` with ``h = h₀ + δ`` for integer N. For real N it
    is the smooth continuation in N. At δ = 0 the value is the limit N, with a finite
    gradient (a Taylor series is used for ``|δ| < 1e-4``).
    """
    x = math.pi * delta
    small = x.abs() < 1e-4
    x_safe = torch.where(small, torch.ones_like(x), x)
    ratio = torch.sin(n * x_safe) / torch.sin(x_safe)
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
    """Lattice factor ``F_latt`` of a crystal of ``Na × Nb × Nc`` cells (spec §8.3).

    Parameters
    ----------
    shape : CrystalShape
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
    inside = rstar_sqr * fudge < GAUSS_WIDTH ** 2
    return torch.where(inside, n_total * torch.ones_like(rstar_sqr), torch.zeros_like(rstar_sqr))


class StructureFactors:
    """Structure-factor table with nanoBragg's lookup rules (spec §9.3–9.4).

    Parameters
    ----------
    grid : tensor (h_range, k_range, l_range), optional
        Amplitudes indexed from (h_min, k_min, l_min); ``None`` means every F is ``default_F``.
    metadata : dict, optional
        ``h_min``, ``k_min``, ``l_min`` and the maxima.
    default_F : float
        Amplitude outside the table.
    """

    def __init__(self, grid: Optional[torch.Tensor], metadata: Optional[Dict[str, int]], default_F: float):
        self.grid = grid
        self.default_F = default_F
        if grid is not None:
            if metadata is None:
                raise ValueError("Crystal.hkl_metadata is None but hkl_data is set: give the metadata "
                                 "returned by read_hkl_file (h_min, h_max, ...)")
            self.minimum = (int(metadata["h_min"]), int(metadata["k_min"]), int(metadata["l_min"]))
            self.maximum = (int(metadata["h_max"]), int(metadata["k_max"]), int(metadata["l_max"]))
            expected = tuple(hi - lo + 1 for lo, hi in zip(self.minimum, self.maximum))
            if tuple(grid.shape) != expected:
                raise ValueError(f"Crystal.hkl_data has shape {tuple(grid.shape)} but hkl_metadata ranges "
                                 f"need {expected}")
            self.flat = grid.reshape(-1)
            self.strides = (grid.shape[1] * grid.shape[2], grid.shape[2], 1)

    @property
    def has_table(self) -> bool:
        """True when a table of reflections was given."""
        return self.grid is not None

    def nearest(self, hkl0: torch.Tensor) -> torch.Tensor:
        """Amplitude at the integer indices ``hkl0`` (..., 3), default_F outside the table."""
        if self.grid is None:
            return torch.full(hkl0.shape[:-1], self.default_F, dtype=hkl0.dtype, device=hkl0.device)
        index, inside = self._flat_index(hkl0.to(torch.int64))
        values = self.flat[index]
        return torch.where(inside, values, torch.full_like(values, self.default_F))

    def _flat_index(self, hkl_int: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        inside = torch.ones(hkl_int.shape[:-1], dtype=torch.bool, device=hkl_int.device)
        index = torch.zeros(hkl_int.shape[:-1], dtype=torch.int64, device=hkl_int.device)
        for axis in range(3):
            offset = hkl_int[..., axis] - self.minimum[axis]
            span = self.maximum[axis] - self.minimum[axis] + 1
            inside &= (offset >= 0) & (offset < span)
            index = index + offset.clamp(0, span - 1) * self.strides[axis]
        return index, inside

    def interpolation_valid(self, hkl: torch.Tensor) -> torch.Tensor:
        """Where tricubic interpolation is allowed: ``min + 2 <= h <= max - 2`` on every axis."""
        valid = torch.ones(hkl.shape[:-1], dtype=torch.bool, device=hkl.device)
        for axis in range(3):
            valid &= (hkl[..., axis] >= self.minimum[axis] + 2) & (hkl[..., axis] <= self.maximum[axis] - 2)
        return valid

    def tricubic(self, hkl: torch.Tensor) -> torch.Tensor:
        """Tensor-product 4-point Lagrange interpolation of the amplitude at fractional ``hkl``.

        Uses the 4×4×4 table points ``floor(h) - 1 … floor(h) + 2`` as nanoBragg's ``polin3``.
        Only meaningful where :meth:`interpolation_valid` holds; elsewhere the points are
        clamped into the table.
        """
        base = torch.floor(hkl.detach())
        nodes = torch.arange(-1.0, 3.0, dtype=hkl.dtype, device=hkl.device)
        weights, indices = [], []
        for axis in range(3):
            t = (hkl[..., axis] - base[..., axis])[..., None]
            axis_weights = []
            for j in range(4):
                w = torch.ones_like(t)
                for i in range(4):
                    if i != j:
                        w = w * (t - nodes[i]) / (nodes[j] - nodes[i])
                axis_weights.append(w)
            weights.append(torch.cat(axis_weights, dim=-1))
            offset = (base[..., axis, None] + nodes).to(torch.int64) - self.minimum[axis]
            span = self.maximum[axis] - self.minimum[axis] + 1
            indices.append(offset.clamp(0, span - 1) * self.strides[axis])
        index = (indices[0][..., :, None, None] + indices[1][..., None, :, None] + indices[2][..., None, None, :])
        weight = weights[0][..., :, None, None] * weights[1][..., None, :, None] * weights[2][..., None, None, :]
        return (weight * self.flat[index]).sum((-1, -2, -3))


def polarization_factor(
    incident: torch.Tensor,
    diffracted: torch.Tensor,
    axis: torch.Tensor,
    kahn_factor: torch.Tensor,
) -> torch.Tensor:
    """Kahn polarization factor ``½ (1 + cos²2θ − K cos 2ψ sin²2θ)`` (spec §7.2).

    Written as ``½ (1 + (i·d)² − K ((d·E)² − (d·B)²))`` with ``B = unit(p × i)`` and
    ``E = unit(i × B)``, which is the same quantity without the angle ψ, so it stays smooth
    on the beam axis.

    Parameters
    ----------
    incident : tensor (..., 3)
        Unit propagation direction of the incident beam.
    diffracted : tensor (..., 3)
        Unit diffracted direction.
    axis : tensor (3,)
        Polarization (E-vector) axis.
    kahn_factor : tensor ()
        Kahn factor K.
    """
    b_axis = torch.linalg.cross(axis.expand_as(incident), incident, dim=-1)
    b_axis = b_axis / torch.linalg.vector_norm(b_axis, dim=-1, keepdim=True)
    e_axis = torch.linalg.cross(incident, b_axis, dim=-1)
    e_axis = e_axis / torch.linalg.vector_norm(e_axis, dim=-1, keepdim=True)
    cos2theta = (incident * diffracted).sum(-1)
    e_component = (diffracted * e_axis).sum(-1)
    b_component = (diffracted * b_axis).sum(-1)
    return 0.5 * (1 + cos2theta * cos2theta - kahn_factor * (e_component ** 2 - b_component ** 2))
