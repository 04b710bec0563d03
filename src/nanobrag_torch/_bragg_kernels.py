"""Compiled (numba) CPU loops of the fused Bragg sum ``Σ_o F(hkl₀)² L(hkl)²``: its value, its
reverse-mode gradients and its forward-mode derivative, each in one pass over the evaluations
without temporaries.

Private module, imported by :mod:`nanobrag_torch.kernels` only when the fused kernel runs on
the CPU, so that ``import nanobrag_torch`` never imports numba. The tensor kernels of
:mod:`nanobrag_torch.kernels` (used on other devices) are the reference; the tests check that
both agree.

The arithmetic is in float64 whatever the dtype of the tensors; results are stored in the
dtype of ``q``. The lattice factor is the
SQUARE one, ``L = Π_axis sin(N π δ) / sin(π δ)`` with ``δ`` the offset of h, k or l from its
nearest integer ``ceil(h − ½)``; ``sin(π m)`` and ``cos(π m)`` come from :func:`_sin_cos_pi`,
a polynomial after an exact reduction of ``m`` to [−½, ½], which the compiler vectorises
(calls to the C library's ``sin`` would not be).

Shared arguments (NumPy arrays, C-contiguous):

``q`` : float32 or float64 (3, E)
    Scattering vectors (1/m), components first.
``axes`` : float64 (O, 3, 3)
    ``axes[o, j]`` is the real-space vector (m) of axis j (a, b, c) of orientation o, so that
    ``q · axes[o, j]`` is the Miller index of that axis.
``n_cells`` : float64 (3,)
    Na, Nb, Nc.
``values`` : float32 or float64 (H, K, L)
    Amplitudes of the padded structure-factor table; an index ``hkl₀`` reads
    ``values[clamp(hkl₀ + shift, 0, shape − 1)]`` (see :class:`nanobrag_torch.structure_factors.StructureFactors`).
``shift`` : float64 (3,)
    Offset from Miller index to table position.

Evaluations are processed in blocks of :data:`BLOCK`, spread over numba's threads; every sum
runs in a fixed order, so the results do not depend on the thread count. The one exception is
the gradient with respect to the table (``need_table`` of :func:`backward`): a scatter-add
that each thread makes into its own float64 copy of the padded table (race-free; threads ×
table of memory, 8 MB per thread for a table of 100³), summed by the caller, so its rounding
(not its value) depends on how the blocks fall to the threads.
"""

from __future__ import annotations

import contextlib
import math

import numba
import numpy as np
from numba import prange

from ._numba import cached_jit

BLOCK = 256
"""Evaluations per block: the unit of work of a thread, and of the partial sums of the gradients."""

_SIN = tuple((-1.0) ** k / math.factorial(2 * k + 1) for k in range(11))
"""Taylor coefficients of ``sin(y) / y`` in ``y²``; on |y| ≤ π/2 the first omitted term is below 2e-18."""
_COS = tuple((-1.0) ** k / math.factorial(2 * k) for k in range(12))
"""Taylor coefficients of ``cos(y)`` in ``y²``; on |y| ≤ π/2 the first omitted term is below 1e-19."""



@contextlib.contextmanager
def threads(count: int):
    """Run the loops on ``count`` of numba's threads (at most ``NUMBA_NUM_THREADS``), then
    restore the previous count.

    Parameters
    ----------
    count : int
        Threads wanted; clipped to ``1 .. NUMBA_NUM_THREADS``.

    Yields
    ------
    None
        Once, with the thread count set; the previous count is restored on leaving.
    """
    previous = numba.get_num_threads()
    numba.set_num_threads(max(1, min(count, numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        numba.set_num_threads(previous)


def table_gradient_copies(shape):
    """The ``grad_table`` argument of :func:`backward`: float64 zeros, one copy of the padded
    table of ``shape`` (H, K, L) per thread that the loops now run on; shape (1, 1, 1, 1) for
    ``shape`` None (no table gradient).

    Parameters
    ----------
    shape : tuple of 3 ints or None
        Shape of the padded table, or None.

    Returns
    -------
    ndarray of float64 (threads, H, K, L)
    """
    if shape is None:
        return np.zeros((1, 1, 1, 1))
    return np.zeros((numba.get_num_threads(),) + tuple(shape))


_OPTIONS = {"nogil": True, "error_model": "numpy"}
_inline = numba.njit(inline="always", **_OPTIONS)  # compiled into the cached kernels that call it


@_inline
def _horner(y2, coefficients):
    value = coefficients[len(coefficients) - 1]
    for i in range(len(coefficients) - 2, -1, -1):
        value = value * y2 + coefficients[i]
    return value


@_inline
def _sin_cos_pi_reduced(r):
    """``sin(π r)`` and ``cos(π r)`` for |r| ≤ ½: the Taylor polynomials at ``y = π r``."""
    y = r * math.pi
    y2 = y * y
    return y * _horner(y2, _SIN), _horner(y2, _COS)


@_inline
def _sin_cos_pi(m):
    """``sin(π m)`` and ``cos(π m)`` for a real ``m``: ``m = k + r`` with ``k`` the nearest integer
    (exact), then ``(−1)^k`` times :func:`_sin_cos_pi_reduced` of ``r``."""
    k = np.floor(m + 0.5)
    sin_r, cos_r = _sin_cos_pi_reduced(m - k)
    sign = 1.0 - 2.0 * (k - 2.0 * np.floor(0.5 * k))
    return sign * sin_r, sign * cos_r


@_inline
def _ratio(delta, n):
    """``sin(N π δ) / sin(π δ)`` for an offset |δ| ≤ ½ from the nearest integer; its limit ``N``
    at ``δ = 0``."""
    ratio = _sin_cos_pi(n * delta)[0] / _sin_cos_pi_reduced(delta)[0]
    return n if delta == 0.0 else ratio


@_inline
def _ratio_derivatives(delta, n):
    """``r = sin(N x) / sin(x)`` at ``x = π δ`` (|δ| ≤ ½), ``∂r/∂x = (N cos(N x) − r cos x) / sin x``
    and ``∂r/∂N = x cos(N x) / sin x``; their limits ``N``, 0 and 1 at ``δ = 0``. One division."""
    sin_x, cos_x = _sin_cos_pi_reduced(delta)
    sin_nx, cos_nx = _sin_cos_pi(n * delta)
    inverse_sin_x = 1.0 / sin_x
    ratio = sin_nx * inverse_sin_x
    d_x = (n * cos_nx - ratio * cos_x) * inverse_sin_x
    d_n = math.pi * delta * cos_nx * inverse_sin_x
    zero = delta == 0.0
    return n if zero else ratio, 0.0 if zero else d_x, 1.0 if zero else d_n


@_inline
def _orientation(axes, o):
    """The nine components of orientation ``o``'s axes, as scalars (kept in registers)."""
    return (axes[o, 0, 0], axes[o, 0, 1], axes[o, 0, 2], axes[o, 1, 0], axes[o, 1, 1], axes[o, 1, 2],
            axes[o, 2, 0], axes[o, 2, 1], axes[o, 2, 2])


@_inline
def _position(h0, k0, l0, values, shift):
    """Where the table's amplitude at the integer-valued indices ``(h0, k0, l0)`` lies in
    ``values``: ``(i, j, k)``, clamped into the padded box."""
    i = min(max(h0 + shift[0], 0.0), values.shape[0] - 1.0)
    j = min(max(k0 + shift[1], 0.0), values.shape[1] - 1.0)
    k = min(max(l0 + shift[2], 0.0), values.shape[2] - 1.0)
    return int(i), int(j), int(k)


@cached_jit(parallel=True, fastmath={"contract"}, **_OPTIONS)
def forward(q, axes, n_cells, values, shift, out):
    """``out[e] = Σ_o F(hkl₀)² L(hkl)²`` for every evaluation ``e``; ``out`` (E,)."""
    count = q.shape[1]
    for block in prange((count + BLOCK - 1) // BLOCK):
        start = block * BLOCK
        size = min(BLOCK, count - start)
        total = np.zeros(size)
        for o in range(axes.shape[0]):
            a = _orientation(axes, o)
            for i in range(size):
                x, y, z = q[0, start + i], q[1, start + i], q[2, start + i]
                h = x * a[0] + y * a[1] + z * a[2]
                k = x * a[3] + y * a[4] + z * a[5]
                l = x * a[6] + y * a[7] + z * a[8]
                h0, k0, l0 = np.ceil(h - 0.5), np.ceil(k - 0.5), np.ceil(l - 0.5)
                amplitude = (values[_position(h0, k0, l0, values, shift)] * _ratio(h - h0, n_cells[0])
                             * _ratio(k - k0, n_cells[1]) * _ratio(l - l0, n_cells[2]))
                total[i] += amplitude * amplitude
        for i in range(size):  # a loop: a slice assignment here keeps the loops above from vectorising
            out[start + i] = total[i]


@cached_jit(parallel=True, fastmath={"reassoc", "contract"}, **_OPTIONS)
def backward(grad, q, axes, n_cells, values, shift, need_q, grad_q, grad_axes, grad_n, need_table, grad_table):
    """Gradients of :func:`forward` given ``grad`` (E,) = ∂loss/∂out.

    ``grad_q`` (3, E) receives ∂loss/∂q when ``need_q``. ``grad_axes`` float64
    (blocks, O, 3, 3) and ``grad_n`` float64 (blocks, 3) receive each block's share of
    ∂loss/∂axes and ∂loss/∂n_cells; the caller sums them over the blocks. When
    ``need_table``, ``grad_table`` float64 (threads, H, K, L), zeros on entry and one copy of the
    padded table per thread of the loop (``numba.get_num_threads()``), receives in copy ``t`` the
    ∂loss/∂values, ``2 F L² · grad`` at the position each lookup read, of the blocks that
    thread ``t`` ran; the caller sums the copies. Without ``need_table`` it is not touched
    (shape (1, 1, 1, 1) will do).
    """
    count = q.shape[1]
    for block in prange((count + BLOCK - 1) // BLOCK):
        thread = numba.get_thread_id() if need_table else 0
        start = block * BLOCK
        size = min(BLOCK, count - start)
        block_grad_q = np.zeros((3, size))
        n_a = n_b = n_c = 0.0
        for o in range(axes.shape[0]):
            a = _orientation(axes, o)
            g0 = g1 = g2 = g3 = g4 = g5 = g6 = g7 = g8 = 0.0
            for i in range(size):
                x, y, z = q[0, start + i], q[1, start + i], q[2, start + i]
                h = x * a[0] + y * a[1] + z * a[2]
                k = x * a[3] + y * a[4] + z * a[5]
                l = x * a[6] + y * a[7] + z * a[8]
                h0, k0, l0 = np.ceil(h - 0.5), np.ceil(k - 0.5), np.ceil(l - 0.5)
                factor = values[_position(h0, k0, l0, values, shift)]
                r_h, dx_h, dn_h = _ratio_derivatives(h - h0, n_cells[0])
                r_k, dx_k, dn_k = _ratio_derivatives(k - k0, n_cells[1])
                r_l, dx_l, dn_l = _ratio_derivatives(l - l0, n_cells[2])
                # ∂(F² L²)/∂r_h = 2 F² L r_k r_l, and so on; ∂r/∂(h) = π ∂r/∂x
                weight = 2.0 * factor * factor * r_h * r_k * r_l * grad[start + i]
                w_h, w_k, w_l = weight * r_k * r_l, weight * r_h * r_l, weight * r_h * r_k
                d_h, d_k, d_l = math.pi * w_h * dx_h, math.pi * w_k * dx_k, math.pi * w_l * dx_l
                n_a += w_h * dn_h
                n_b += w_k * dn_k
                n_c += w_l * dn_l
                g0 += d_h * x
                g1 += d_h * y
                g2 += d_h * z
                g3 += d_k * x
                g4 += d_k * y
                g5 += d_k * z
                g6 += d_l * x
                g7 += d_l * y
                g8 += d_l * z
                if need_q:
                    block_grad_q[0, i] += d_h * a[0] + d_k * a[3] + d_l * a[6]
                    block_grad_q[1, i] += d_h * a[1] + d_k * a[4] + d_l * a[7]
                    block_grad_q[2, i] += d_h * a[2] + d_k * a[5] + d_l * a[8]
            if need_table:  # a loop of its own: a scatter in the loop above keeps it from vectorising
                for i in range(size):
                    x, y, z = q[0, start + i], q[1, start + i], q[2, start + i]
                    h = x * a[0] + y * a[1] + z * a[2]
                    k = x * a[3] + y * a[4] + z * a[5]
                    l = x * a[6] + y * a[7] + z * a[8]
                    h0, k0, l0 = np.ceil(h - 0.5), np.ceil(k - 0.5), np.ceil(l - 0.5)
                    position = _position(h0, k0, l0, values, shift)
                    lattice = _ratio(h - h0, n_cells[0]) * _ratio(k - k0, n_cells[1]) * _ratio(l - l0, n_cells[2])
                    # ∂(F² L²)/∂F = 2 F L²
                    grad_table[thread, position[0], position[1], position[2]] += (
                        2.0 * values[position] * lattice * lattice * grad[start + i])
            grad_axes[block, o, 0, 0], grad_axes[block, o, 0, 1], grad_axes[block, o, 0, 2] = g0, g1, g2
            grad_axes[block, o, 1, 0], grad_axes[block, o, 1, 1], grad_axes[block, o, 1, 2] = g3, g4, g5
            grad_axes[block, o, 2, 0], grad_axes[block, o, 2, 1], grad_axes[block, o, 2, 2] = g6, g7, g8
        grad_n[block, 0], grad_n[block, 1], grad_n[block, 2] = n_a, n_b, n_c
        if need_q:
            for axis in range(3):
                for i in range(size):
                    grad_q[axis, start + i] = block_grad_q[axis, i]


@cached_jit(parallel=True, fastmath={"contract"}, **_OPTIONS)
def jvp(q, axes, n_cells, values, shift, tangent_q, has_tangent_q, tangent_axes, tangent_n, tangent_values,
        has_tangent_values, out):
    """Directional derivative of :func:`forward` along the tangents ``tangent_q`` (3, E; read only
    when ``has_tangent_q``), ``tangent_axes`` (O, 3, 3), ``tangent_n`` (3,) and ``tangent_values``
    (the shape of ``values``; read only when ``has_tangent_values``); ``out`` (E,)."""
    count = q.shape[1]
    for block in prange((count + BLOCK - 1) // BLOCK):
        start = block * BLOCK
        size = min(BLOCK, count - start)
        total = np.zeros(size)
        for o in range(axes.shape[0]):
            a = _orientation(axes, o)
            t = _orientation(tangent_axes, o)
            for i in range(size):
                x, y, z = q[0, start + i], q[1, start + i], q[2, start + i]
                h = x * a[0] + y * a[1] + z * a[2]
                k = x * a[3] + y * a[4] + z * a[5]
                l = x * a[6] + y * a[7] + z * a[8]
                d_h = x * t[0] + y * t[1] + z * t[2]
                d_k = x * t[3] + y * t[4] + z * t[5]
                d_l = x * t[6] + y * t[7] + z * t[8]
                if has_tangent_q:
                    tx, ty, tz = tangent_q[0, start + i], tangent_q[1, start + i], tangent_q[2, start + i]
                    d_h += tx * a[0] + ty * a[1] + tz * a[2]
                    d_k += tx * a[3] + ty * a[4] + tz * a[5]
                    d_l += tx * a[6] + ty * a[7] + tz * a[8]
                h0, k0, l0 = np.ceil(h - 0.5), np.ceil(k - 0.5), np.ceil(l - 0.5)
                position = _position(h0, k0, l0, values, shift)
                factor = values[position]
                r_h, dx_h, dn_h = _ratio_derivatives(h - h0, n_cells[0])
                r_k, dx_k, dn_k = _ratio_derivatives(k - k0, n_cells[1])
                r_l, dx_l, dn_l = _ratio_derivatives(l - l0, n_cells[2])
                # d(F² L²) = 2 F² L Σ_axis (the other two ratios) · dr, dr = π ∂r/∂x dh + ∂r/∂N dN,
                # plus 2 F L² dF along a table tangent
                dr_h = math.pi * dx_h * d_h + dn_h * tangent_n[0]
                dr_k = math.pi * dx_k * d_k + dn_k * tangent_n[1]
                dr_l = math.pi * dx_l * d_l + dn_l * tangent_n[2]
                lattice = r_h * r_k * r_l
                total[i] += (2.0 * factor * factor * lattice
                             * (r_k * r_l * dr_h + r_h * r_l * dr_k + r_h * r_k * dr_l))
                if has_tangent_values:
                    total[i] += 2.0 * factor * lattice * lattice * tangent_values[position]
        for i in range(size):  # a loop: a slice assignment here keeps the loops above from vectorising
            out[start + i] = total[i]
