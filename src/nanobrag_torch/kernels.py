"""The fused Bragg sum: ``Σ_orientations F_cell(hkl₀)² · F_latt(hkl)²`` with an analytic backward.

This is the hot loop of the simulator for the SQUARE crystal with nearest-neighbour structure
factors (nanoBragg's default). Autograd through the plain tensor expression would keep a dozen
(evaluations × orientations × 3) intermediates per chunk; this function keeps only its inputs
and recomputes what the backward needs, with the derivative of ``sin(Nπδ)/sin(πδ)`` written out.
It gives the same numbers as :func:`nanobrag_torch.physics.lattice_factor` and
:meth:`nanobrag_torch.physics.StructureFactors.nearest`.
"""

from __future__ import annotations

import math
import os
from typing import Optional, Tuple

import torch

from .config import CrystalShape
from .physics import StructureFactors, lattice_factor, nearest_index


class PaddedTable:
    """A structure-factor table padded by one cell of ``default_F`` on every side, so that any
    out-of-range index clamps onto the padding and reads ``default_F``.

    Parameters
    ----------
    factors : StructureFactors
    dtype : torch.dtype
    device : torch.device
    """

    def __init__(self, factors: StructureFactors, dtype: torch.dtype, device: torch.device):
        if factors.grid is None:
            self.values = torch.full((1,), factors.default_F, dtype=dtype, device=device)
            self.upper = self.shift = self.strides = torch.zeros(3, dtype=dtype, device=device)
            return
        grid = factors.grid.detach()
        padded = torch.nn.functional.pad(grid[None, None], (1, 1, 1, 1, 1, 1), value=factors.default_F)[0, 0]
        device = grid.device
        # the flat index is computed in floating point: exact below 2**24 cells in float32
        index_dtype = dtype if padded.numel() < 2 ** 24 else torch.float64
        self.values = padded.to(dtype).reshape(-1)
        self.shift = torch.tensor([1 - m for m in factors.minimum], dtype=index_dtype, device=device)
        self.upper = torch.tensor([s - 1 for s in padded.shape], dtype=index_dtype, device=device)
        self.strides = torch.tensor([padded.shape[1] * padded.shape[2], padded.shape[2], 1], dtype=index_dtype,
                                    device=device)

    def lookup(self, hkl0: torch.Tensor) -> torch.Tensor:
        """Amplitudes at integer-valued ``hkl0`` (..., 3)."""
        offset = torch.minimum((hkl0.to(self.shift.dtype) + self.shift).clamp_(min=0), self.upper)
        if torch.compiler.is_compiling():
            index = (offset * self.strides).sum(-1)  # inductor fuses this into the kernel's loop
        else:
            index = offset @ self.strides  # eager: one BLAS call beats a strided last-axis sum
        return self.values.take(index.to(torch.int64))


TINY = 1e-30
"""Added to π·δ so that an exact integer index gives the limit ``N`` of ``sin(Nx)/sin(x)``
without a branch; it is below the resolution of any non-zero offset in float32 and float64."""


def _lattice_terms(hkl: torch.Tensor, hkl0: torch.Tensor, n_axis: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-axis ``sin(Nπδ)/sin(πδ)`` and ``πδ`` (never exactly 0) for Miller indices ``hkl`` (..., 3)
    with nearest integers ``hkl0``."""
    x = hkl - hkl0
    x.mul_(math.pi).add_(TINY)
    ratio = torch.sin(x * n_axis)
    ratio.div_(torch.sin(x))
    return ratio, x


def bragg_sum_forward(q: torch.Tensor, miller: torch.Tensor, n_cells: torch.Tensor,
                      table: PaddedTable) -> torch.Tensor:
    """``Σ_o F(hkl₀)² L(hkl)²`` for scattering vectors ``q`` (E, 3) and ``miller`` (3, 3·O)."""
    hkl = (q @ miller).unflatten(-1, (-1, 3))
    hkl0 = nearest_index(hkl)
    factors = table.lookup(hkl0)
    ratio, _ = _lattice_terms(hkl, hkl0, n_cells)
    amplitude = ratio.prod(-1).mul_(factors)
    return amplitude.mul_(amplitude).sum(-1)


def bragg_sum_backward(grad: torch.Tensor, q: torch.Tensor, miller: torch.Tensor, n_cells: torch.Tensor,
                       table: PaddedTable, need_n: bool) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """Gradients of :func:`bragg_sum_forward` with respect to ``q``, ``miller`` and ``n_cells``.

    With ``r = sin(Nx)/sin(x)`` and ``x = πδ``: ``dr/dδ = π (N cos(Nx) − r cos x) / sin x`` and
    ``dr/dN = x cos(Nx) / sin x``.
    """
    hkl = (q @ miller).unflatten(-1, (-1, 3))
    hkl0 = nearest_index(hkl)
    factors = table.lookup(hkl0)
    ratio, x = _lattice_terms(hkl, hkl0, n_cells)
    # 2 F² L · grad for each orientation, times the other two axes' ratios
    weight = factors.mul_(factors).mul_(ratio.prod(-1)).mul_(2 * grad[:, None])
    others = ratio.roll(1, -1).mul_(ratio.roll(2, -1)).mul_(weight[..., None])
    inverse_sin = torch.sin(x).reciprocal_()
    nx = x * n_cells
    cos_nx = torch.cos(nx)
    d_ratio = (n_cells * cos_nx).sub_(ratio.mul_(torch.cos(x))).mul_(inverse_sin).mul_(math.pi)
    grad_hkl = d_ratio.mul_(others).flatten(-2)
    grad_q = grad_hkl @ miller.transpose(0, 1)
    grad_miller = q.transpose(0, 1) @ grad_hkl
    grad_n = None
    if need_n:
        grad_n = cos_nx.mul_(x).mul_(inverse_sin).mul_(others).sum((0, 1))
    return grad_q, grad_miller, grad_n


class _BraggSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, miller, n_cells, table):
        ctx.save_for_backward(q, miller, n_cells)
        ctx.table = table
        return _forward_kernel()(q, miller, n_cells, table)

    @staticmethod
    def backward(ctx, grad):
        q, miller, n_cells = ctx.saved_tensors
        if torch.is_grad_enabled():
            return _differentiable_backward(ctx, grad, q, miller, n_cells)
        grad_q, grad_miller, grad_n = bragg_sum_backward(
            grad, q, miller, n_cells, ctx.table, ctx.needs_input_grad[2])
        return (grad_q if ctx.needs_input_grad[0] else None,
                grad_miller if ctx.needs_input_grad[1] else None,
                grad_n, None)


def bragg_sum_reference(q: torch.Tensor, miller: torch.Tensor, n_cells: torch.Tensor,
                        table: PaddedTable) -> torch.Tensor:
    """:func:`bragg_sum_forward` written with :func:`nanobrag_torch.physics.lattice_factor`, so
    that autograd differentiates it to any order (it keeps every intermediate)."""
    hkl = (q @ miller).unflatten(-1, (-1, 3))
    hkl0 = nearest_index(hkl.detach())
    amplitude = table.lookup(hkl0) * lattice_factor(CrystalShape.SQUARE, hkl - hkl0, n_cells, 1.0)
    return (amplitude * amplitude).sum(-1)


def _differentiable_backward(ctx, grad, q, miller, n_cells):
    """Backward for ``create_graph=True`` (double backward, Hessian-vector products): autograd
    through :func:`bragg_sum_reference` instead of the in-place analytic backward."""
    needs = ctx.needs_input_grad[:3]
    inputs = [t for t, need in zip((q, miller, n_cells), needs) if need]
    value = bragg_sum_reference(q, miller, n_cells, ctx.table)
    grads = iter(torch.autograd.grad(value, inputs, grad, create_graph=True))
    return tuple(next(grads) if need else None for need in needs) + (None,)


def bragg_sum(q: torch.Tensor, miller: torch.Tensor, n_cells: torch.Tensor, table: PaddedTable) -> torch.Tensor:
    """Differentiable ``Σ_o F_cell(hkl₀)² F_latt(hkl)²`` for the SQUARE shape.

    Parameters
    ----------
    q : tensor (E, 3)
        Scattering vectors in 1/m.
    miller : tensor (3, 3·O)
        Columns are the real-space vectors a, b, c (m) of each of the O orientations, so that
        ``q @ miller`` gives h, k, l.
    n_cells : tensor (3,)
        Na, Nb, Nc (real values allowed).
    table : PaddedTable
        Structure factors.

    Returns
    -------
    tensor (E,)
    """
    return _BraggSum.apply(q, miller, n_cells, table)


_COMPILED_FORWARD = []


def compile_enabled() -> bool:
    """True when the forward kernel runs through ``torch.compile``: ``NANOBRAGG_COMPILE=1``
    asks for it, ``NANOBRAGG_DISABLE_COMPILE=1`` forbids it.

    Only the forward kernel is compiled (about 1.8x faster on the CPU); the hand-written
    backward is faster eager than as inductor compiles it. Compilation happens on the first
    call and is cached on disk by PyTorch; the eager kernel gives the same numbers.
    """
    if os.environ.get("NANOBRAGG_DISABLE_COMPILE", "0") not in ("", "0"):
        return False
    return os.environ.get("NANOBRAGG_COMPILE", "0") not in ("", "0")


def _forward_kernel():
    if not compile_enabled():
        return bragg_sum_forward
    if not _COMPILED_FORWARD:
        _COMPILED_FORWARD.append(torch.compile(bragg_sum_forward, dynamic=True))
    return _COMPILED_FORWARD[0]
