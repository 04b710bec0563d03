"""The fused Bragg sum: ``Σ_orientations F_cell(hkl₀)² · F_latt(hkl)²`` with an analytic backward.

This is the hot loop of the simulator for the SQUARE crystal with nearest-neighbour structure
factors (nanoBragg's default). Autograd through the plain tensor expression would keep a dozen
(evaluations × orientations × 3) intermediates per chunk; this function keeps only its inputs
and recomputes what the backward needs. Its gradients and its forward-mode derivative are
analytic with respect to the scattering vectors ``q``, the Miller matrix, ``N_cells`` and the
amplitudes of the structure-factor table (``∂/∂F(hkl₀) = 2 F(hkl₀) L²``, added up at the
position each lookup read, when the table requires grad; a lookup outside the table reads
``default_F`` and gives the table nothing). The lattice factor is
:func:`nanobrag_torch.physics.sincg_ratio` and its backward
:func:`nanobrag_torch.physics.sincg_ratio_derivatives`; the amplitudes come from
:meth:`nanobrag_torch.structure_factors.StructureFactors.nearest`.

Two implementations of the value, the gradients and the forward-mode derivative:

* on the CPU, compiled loops (``nanobrag_torch._bragg_kernels``, numba) that make one pass
  over the evaluations without temporaries, in float64 arithmetic whatever the dtype; the
  table's gradient is a scatter-add into one float64 copy of the padded table per thread;
* elsewhere (CUDA), and under ``torch.compile``, tensor expressions (``tensor_bragg_sum_*``),
  which are also the reference that the tests hold the compiled loops to; the table's gradient
  is an ``index_add_``.

Without a table that requires grad the backward does no work for it.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import os
from types import ModuleType
from typing import Optional, Tuple

import numpy as np
import torch

from ._docs import fill_doc
from .config import CrystalShape
from .physics import lattice_factor, nearest_index, sincg_ratio, sincg_ratio_derivatives
from .structure_factors import StructureFactors

TINY = 1e-30
"""Added to π·δ so that an exact integer index gives the limit ``N`` of ``sin(Nx)/sin(x)``
without a branch; it is below the resolution of any non-zero offset in float32 and float64."""


def _lattice_terms(hkl: torch.Tensor, hkl0: torch.Tensor, n_axis: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-axis :func:`~nanobrag_torch.physics.sincg_ratio` and its ``x = πδ + TINY`` (never 0)
    for Miller indices ``hkl`` (..., 3) with nearest integers ``hkl0``."""
    x = hkl - hkl0
    x.mul_(math.pi).add_(TINY)
    return sincg_ratio(x, n_axis), x


def _ratio_derivatives(x: torch.Tensor, n_axis: torch.Tensor, ratio: torch.Tensor,
                       need_n: bool) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """:func:`~nanobrag_torch.physics.sincg_ratio_derivatives` with their limits 0 and 1 at an
    exactly integer index (``x == TINY``), where the formulas cancel to rounding noise over
    ``TINY``."""
    d_x, d_n = sincg_ratio_derivatives(x, n_axis, ratio, need_n)
    at_integer = x == TINY
    d_x.masked_fill_(at_integer, 0.0)
    if need_n:
        d_n.masked_fill_(at_integer, 1.0)
    return d_x, d_n


@fill_doc
def bragg_sum_forward(q: torch.Tensor, miller: torch.Tensor, n_cells: torch.Tensor,
                      table: StructureFactors) -> torch.Tensor:
    """``Σ_o F(hkl₀)² L(hkl)²`` of every evaluation; see :func:`bragg_sum`.

    Parameters
    ----------
    %(bragg_q)s
    %(bragg_miller)s
    %(bragg_n_cells)s
    %(bragg_table)s

    Returns
    -------
    %(bragg_value)s
    """
    loops = _cpu_loops(q)
    if loops is None:
        return tensor_bragg_sum_forward(q, miller, n_cells, table)
    values, shift = table.padded_box()
    out = np.empty(q.shape[0], dtype=_numpy_dtype(q))
    with _on_torch_threads(loops):
        loops.forward(_components(q), _axes(miller), _float64(n_cells), values, shift, out)
    return torch.from_numpy(out).to(q.dtype)


@fill_doc
def bragg_sum_backward(grad: torch.Tensor, q: torch.Tensor, miller: torch.Tensor, n_cells: torch.Tensor,
                       table: StructureFactors, need_n: bool, need_q: bool = True, need_table: bool = False
                       ) -> Tuple[Optional[torch.Tensor], torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
    """Gradients of :func:`bragg_sum_forward` with respect to ``q``, ``miller``, ``n_cells`` and
    the table's amplitudes.

    Parameters
    ----------
    %(bragg_grad)s
    %(bragg_q)s
    %(bragg_miller)s
    %(bragg_n_cells)s
    %(bragg_table)s
    %(bragg_need)s

    Returns
    -------
    %(bragg_gradients)s
    """
    loops = _cpu_loops(q)
    if loops is None:
        return tensor_bragg_sum_backward(grad, q, miller, n_cells, table, need_n, need_q, need_table)
    values, shift = table.padded_box()
    axes = _axes(miller)
    blocks = -(-q.shape[0] // loops.BLOCK)
    grad_q = np.empty((3, q.shape[0] if need_q else 0), dtype=_numpy_dtype(q))
    grad_axes = np.empty((blocks,) + axes.shape)
    grad_n = np.empty((blocks, 3))
    with _on_torch_threads(loops):
        grad_table = loops.table_gradient_copies(values.shape if need_table else None)
        loops.backward(_array(grad), _components(q), axes, _float64(n_cells), values, shift, need_q,
                       grad_q, grad_axes, grad_n, need_table, grad_table)
    grad_miller = torch.from_numpy(grad_axes.sum(0).reshape(-1, 3).T).to(miller.dtype)
    return (torch.from_numpy(grad_q).to(q.dtype).transpose(0, 1) if need_q else None, grad_miller,
            torch.from_numpy(grad_n.sum(0)).to(n_cells.dtype) if need_n else None,
            torch.from_numpy(grad_table.sum(0).reshape(-1)).to(table.values.dtype) if need_table else None)


@fill_doc
def bragg_sum_jvp(q: torch.Tensor, miller: torch.Tensor, n_cells: torch.Tensor, table: StructureFactors,
                  tangent_q: Optional[torch.Tensor], tangent_miller: Optional[torch.Tensor],
                  tangent_n: Optional[torch.Tensor], tangent_values: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Directional derivative of :func:`bragg_sum_forward` along the tangents of its inputs,
    for forward-mode automatic differentiation: the refinement's Jacobian columns come from one
    such pass each.

    Parameters
    ----------
    %(bragg_q)s
    %(bragg_miller)s
    %(bragg_n_cells)s
    %(bragg_table)s
    %(bragg_tangents)s

    Returns
    -------
    %(bragg_jvp)s
    """
    loops = _cpu_loops(q)
    if loops is None:
        return tensor_bragg_sum_jvp(q, miller, n_cells, table, tangent_q, tangent_miller, tangent_n, tangent_values)
    values, shift = table.padded_box()
    axes = _axes(miller)
    tangent_axes = _axes(tangent_miller) if tangent_miller is not None else np.zeros_like(axes)
    out = np.empty(q.shape[0], dtype=_numpy_dtype(q))
    components = _components(q)
    with _on_torch_threads(loops):
        loops.jvp(components, axes, _float64(n_cells), values, shift,
                  _components(tangent_q) if tangent_q is not None else components, tangent_q is not None,
                  tangent_axes, _float64(tangent_n) if tangent_n is not None else np.zeros(3),
                  _array(tangent_values).reshape(values.shape) if tangent_values is not None else values,
                  tangent_values is not None, out)
    return torch.from_numpy(out).to(q.dtype)


def runs_as_loops(device: torch.device) -> bool:
    """Whether the fused kernel runs as the compiled CPU loops on ``device`` (outside
    ``torch.compile``): then it keeps no temporaries per evaluation and orientation.

    Parameters
    ----------
    device : torch.device or str
        Where the kernel's inputs are.

    Returns
    -------
    bool
    """
    return torch.device(device).type == "cpu" and not torch.compiler.is_compiling()


def _cpu_loops(q: torch.Tensor) -> Optional[ModuleType]:
    """The compiled CPU loops for ``q``'s device (importing numba on the first call), or None."""
    if not runs_as_loops(q.device):
        return None
    return importlib.import_module("nanobrag_torch._bragg_kernels")


@contextlib.contextmanager
def _on_torch_threads(loops: ModuleType):
    """Run the compiled ``loops`` on PyTorch's thread count, and leave PyTorch's count as it was.

    numba's OpenMP threading layer shares the OpenMP thread count with PyTorch: restoring
    numba's own count on exit (by default the number of CPUs) would otherwise raise PyTorch's
    count too, for instance from the 1 of ``OMP_NUM_THREADS=1`` to every CPU.
    """
    count = torch.get_num_threads()
    try:
        with loops.threads(count):
            yield
    finally:
        torch.set_num_threads(count)


def _numpy_dtype(t: torch.Tensor) -> np.dtype:
    return np.float32 if t.dtype == torch.float32 else np.float64


def _array(t: torch.Tensor) -> np.ndarray:
    """A C-contiguous NumPy view (float32 stays float32; other dtypes become float64)."""
    return t.detach().to(torch.float32 if t.dtype == torch.float32 else torch.float64).contiguous().numpy()


def _components(vectors: torch.Tensor) -> np.ndarray:
    """Vectors (E, 3) as the loops' components-first (3, E) array: a view when ``vectors`` is
    itself the transpose of a contiguous (3, E) tensor, as the simulator passes them."""
    return _array(vectors.transpose(0, 1))


def _float64(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float64).contiguous().numpy()


def _axes(miller: torch.Tensor) -> np.ndarray:
    """``miller`` (3, 3·O) as the loops' ``axes`` (O, 3, 3), float64: ``axes[o, j] = miller[:, 3 o + j]``."""
    return _float64(miller.detach().transpose(0, 1).reshape(-1, 3, 3))


@fill_doc
def tensor_bragg_sum_forward(q: torch.Tensor, miller: torch.Tensor, n_cells: torch.Tensor,
                             table: StructureFactors) -> torch.Tensor:
    """:func:`bragg_sum_forward` as tensor operations (any device, ``torch.compile``).

    Parameters
    ----------
    %(bragg_q)s
    %(bragg_miller)s
    %(bragg_n_cells)s
    %(bragg_table)s

    Returns
    -------
    %(bragg_value)s
    """
    hkl = (q @ miller).unflatten(-1, (-1, 3))
    hkl0 = nearest_index(hkl)
    factors = table.nearest(hkl0)
    ratio, _ = _lattice_terms(hkl, hkl0, n_cells)
    amplitude = ratio.prod(-1).mul_(factors)
    return amplitude.mul_(amplitude).sum(-1)


@fill_doc
def tensor_bragg_sum_backward(grad: torch.Tensor, q: torch.Tensor, miller: torch.Tensor, n_cells: torch.Tensor,
                              table: StructureFactors, need_n: bool, need_q: bool = True, need_table: bool = False
                              ) -> Tuple[Optional[torch.Tensor], torch.Tensor, Optional[torch.Tensor],
                                         Optional[torch.Tensor]]:
    """:func:`bragg_sum_backward` as tensor operations, by the chain rule through
    :func:`~nanobrag_torch.physics.sincg_ratio_derivatives` (``dx/dδ = π``).

    Parameters
    ----------
    %(bragg_grad)s
    %(bragg_q)s
    %(bragg_miller)s
    %(bragg_n_cells)s
    %(bragg_table)s
    %(bragg_need)s

    Returns
    -------
    %(bragg_gradients)s
    """
    hkl = (q @ miller).unflatten(-1, (-1, 3))
    hkl0 = nearest_index(hkl)
    factors = table.nearest(hkl0).detach()
    ratio, x = _lattice_terms(hkl, hkl0, n_cells)
    lattice = ratio.prod(-1)
    grad_values = None
    if need_table:  # 2 F L² · grad, added up at the position each lookup read
        grad_values = torch.zeros_like(table.values.detach()).index_add_(
            0, table.positions(hkl0).flatten(), (2 * factors * lattice.square() * grad[:, None]).flatten().to(table.values.dtype))
    # 2 F² L · grad for each orientation, times the other two axes' ratios
    weight = factors.mul_(factors).mul_(lattice).mul_(2 * grad[:, None])
    others = ratio.roll(1, -1).mul_(ratio.roll(2, -1)).mul_(weight[..., None])
    d_x, d_n = _ratio_derivatives(x, n_cells, ratio, need_n)
    grad_hkl = d_x.mul_(math.pi).mul_(others).flatten(-2)
    grad_q = grad_hkl @ miller.transpose(0, 1) if need_q else None
    grad_miller = q.transpose(0, 1) @ grad_hkl
    grad_n = d_n.mul_(others).sum((0, 1)) if need_n else None
    return grad_q, grad_miller, grad_n, grad_values


@fill_doc
def tensor_bragg_sum_jvp(q: torch.Tensor, miller: torch.Tensor, n_cells: torch.Tensor, table: StructureFactors,
                         tangent_q: Optional[torch.Tensor], tangent_miller: Optional[torch.Tensor],
                         tangent_n: Optional[torch.Tensor], tangent_values: Optional[torch.Tensor] = None
                         ) -> torch.Tensor:
    """:func:`bragg_sum_jvp` as tensor operations.

    Parameters
    ----------
    %(bragg_q)s
    %(bragg_miller)s
    %(bragg_n_cells)s
    %(bragg_table)s
    %(bragg_tangents)s

    Returns
    -------
    %(bragg_jvp)s
    """
    hkl = (q @ miller).unflatten(-1, (-1, 3))
    hkl0 = nearest_index(hkl)
    factors = table.nearest(hkl0)
    ratio, x = _lattice_terms(hkl, hkl0, n_cells)
    d_hkl = torch.zeros_like(hkl)
    if tangent_q is not None:
        d_hkl += (tangent_q @ miller).unflatten(-1, (-1, 3))
    if tangent_miller is not None:
        d_hkl += (q @ tangent_miller).unflatten(-1, (-1, 3))
    d_x, d_n = _ratio_derivatives(x, n_cells, ratio, tangent_n is not None)
    d_ratio = d_x.mul_(math.pi).mul_(d_hkl)
    if tangent_n is not None:
        d_ratio += d_n.mul_(tangent_n)
    # d(F² L²) = 2 F² L Σ_axis (product of the other two ratios) · d(ratio) + 2 F L² dF
    lattice = ratio.prod(-1)
    others = ratio.roll(1, -1).mul_(ratio.roll(2, -1))
    derivative = (2 * factors * factors * lattice).mul_(others.mul_(d_ratio).sum(-1))
    if tangent_values is not None:
        derivative += 2 * factors * lattice.square() * tangent_values.take(table.positions(hkl0))
    return derivative.sum(-1)


class _BraggSum(torch.autograd.Function):
    """``values`` is ``table.values``, an input of its own so that autograd passes its gradient
    (and its tangent) to the kernels and on to the tensor the table was built from."""

    @staticmethod
    def forward(ctx, q, miller, n_cells, values, table):
        ctx.save_for_backward(q, miller, n_cells)
        ctx.save_for_forward(q, miller, n_cells)
        ctx.table = table
        if compile_enabled():
            return _compiled_forward()(q, miller, n_cells, table)
        return bragg_sum_forward(q, miller, n_cells, table)

    @staticmethod
    def jvp(ctx, tangent_q, tangent_miller, tangent_n, tangent_values, _):
        q, miller, n_cells = ctx.saved_tensors
        return bragg_sum_jvp(q, miller, n_cells, ctx.table, tangent_q, tangent_miller, tangent_n, tangent_values)

    @staticmethod
    def backward(ctx, grad):
        q, miller, n_cells = ctx.saved_tensors
        if torch.is_grad_enabled():
            return _differentiable_backward(ctx, grad, q, miller, n_cells)
        grad_q, grad_miller, grad_n, grad_values = bragg_sum_backward(
            grad, q, miller, n_cells, ctx.table, need_n=ctx.needs_input_grad[2], need_q=ctx.needs_input_grad[0],
            need_table=ctx.needs_input_grad[3])
        return grad_q, grad_miller if ctx.needs_input_grad[1] else None, grad_n, grad_values, None


@fill_doc
def bragg_sum_reference(q: torch.Tensor, miller: torch.Tensor, n_cells: torch.Tensor,
                        table: StructureFactors) -> torch.Tensor:
    """:func:`bragg_sum_forward` written with :func:`nanobrag_torch.physics.lattice_factor`, so
    that autograd differentiates it to any order (it keeps every intermediate).

    Parameters
    ----------
    %(bragg_q)s
    %(bragg_miller)s
    %(bragg_n_cells)s
    %(bragg_table)s

    Returns
    -------
    %(bragg_value)s
    """
    hkl = (q @ miller).unflatten(-1, (-1, 3))
    hkl0 = nearest_index(hkl.detach())
    amplitude = table.nearest(hkl0) * lattice_factor(CrystalShape.SQUARE, hkl - hkl0, n_cells, 1.0)
    return (amplitude * amplitude).sum(-1)


def _differentiable_backward(ctx, grad, q, miller, n_cells):
    """Backward for ``create_graph=True`` (double backward, Hessian-vector products): autograd
    through :func:`bragg_sum_reference` instead of the in-place analytic backward."""
    needs = ctx.needs_input_grad[:4]
    inputs = [t for t, need in zip((q, miller, n_cells, ctx.table.values), needs) if need]
    value = bragg_sum_reference(q, miller, n_cells, ctx.table)
    grads = iter(torch.autograd.grad(value, inputs, grad, create_graph=True))
    return tuple(next(grads) if need else None for need in needs) + (None,)


@fill_doc
def bragg_sum(q: torch.Tensor, miller: torch.Tensor, n_cells: torch.Tensor, table: StructureFactors) -> torch.Tensor:
    """Differentiable ``Σ_o F_cell(hkl₀)² F_latt(hkl)²`` for the SQUARE shape.

    Parameters
    ----------
    %(bragg_q)s
    %(bragg_miller)s
    %(bragg_n_cells)s
    %(bragg_table)s

    Returns
    -------
    %(bragg_value)s
    """
    return _BraggSum.apply(q, miller, n_cells, table.values, table)


_COMPILED_FORWARD = []


def compile_enabled() -> bool:
    """True when the forward kernel runs through ``torch.compile``: ``NANOBRAGG_COMPILE=1``
    asks for it, ``NANOBRAGG_DISABLE_COMPILE=1`` forbids it.

    Only the forward kernel is compiled (about 1.8x faster on the CPU); the hand-written
    backward is faster eager than as inductor compiles it. Compilation happens on the first
    call and is cached on disk by PyTorch; the eager kernel gives the same numbers.

    Returns
    -------
    bool
    """
    if os.environ.get("NANOBRAGG_DISABLE_COMPILE", "0") not in ("", "0"):
        return False
    return os.environ.get("NANOBRAGG_COMPILE", "0") not in ("", "0")


def _compiled_forward():
    """:func:`tensor_bragg_sum_forward` through ``torch.compile`` (compiled on its first call)."""
    if not _COMPILED_FORWARD:
        _COMPILED_FORWARD.append(torch.compile(tensor_bragg_sum_forward, dynamic=True))
    return _COMPILED_FORWARD[0]
