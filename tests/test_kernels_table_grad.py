"""The structure-factor table's gradient from the fused Bragg-sum kernel.

* the compiled CPU loops' ``∂/∂values`` against the tensor kernel's ``index_add_`` and against
  central differences (exact for a value quadratic in each amplitude), lookups in and out of the
  table; at one and at several threads;
* the forward-mode derivative along a table tangent against the tensor kernel and the
  reverse-mode gradient; second derivatives with a table;
* a rendered image whose structure factors require grad takes the fused kernel, with the
  compiled table accumulation, and has the gradients of the autograd path; without a table
  gradient the accumulation is skipped.
"""

import dataclasses

import numba
import pytest
import torch

from nanobrag_torch import BeamConfig, Crystal, CrystalConfig, Detector, DetectorConfig, Simulator, StructureFactors
from nanobrag_torch import _bragg_kernels, kernels
from nanobrag_torch.kernels import (bragg_sum, bragg_sum_backward, bragg_sum_jvp, bragg_sum_reference,
                                   tensor_bragg_sum_backward, tensor_bragg_sum_jvp)

F64 = torch.float64
METADATA = dict(h_min=-3, h_max=3, k_min=-4, k_max=4, l_min=-2, l_max=2)
DEFAULT_F = 7.0


def _case(seed, dtype=F64, count=600):
    """A random table (7 × 9 × 5) and random q, miller (4 orientations), real N and ∂loss/∂value;
    some lookups fall outside the table."""
    generator = torch.Generator().manual_seed(seed)
    grid = torch.rand((7, 9, 5), generator=generator, dtype=F64) * 50 + 1
    q = torch.randn((count, 3), generator=generator, dtype=F64) * 3
    miller = torch.eye(3, dtype=F64).repeat(1, 4) + 0.2 * torch.randn((3, 12), generator=generator, dtype=F64)
    n_cells = torch.tensor([4.3, 3.0, 6.7], dtype=F64)
    grad = torch.randn(count, generator=generator, dtype=F64)
    hkl = q @ miller
    assert ((hkl < -4.5) | (hkl > 4.5)).any(), "some lookups fall outside the table"
    return tuple(t.to(dtype) for t in (grid, q, miller, n_cells, grad))


def _table_gradient(grad, q, miller, n_cells, table, backward):
    """∂loss/∂values of ``backward`` (the compiled or the tensor kernel), as the padded table."""
    with torch.no_grad():
        *_, grad_values = backward(grad, q, miller, n_cells, table, need_n=False, need_q=False, need_table=True)
    return grad_values


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_compiled_table_gradient_equals_tensor_kernel(dtype):
    """Compiled scatter-add (float64 inside) = ``index_add_`` of the tensor kernel, to the dtype's
    rounding; the other gradients are unchanged by asking for the table's."""
    grid, q, miller, n_cells, grad = _case(1, dtype)
    table = StructureFactors(grid, METADATA, DEFAULT_F)
    got = _table_gradient(grad, q, miller, n_cells, table, bragg_sum_backward)
    want = _table_gradient(grad, q, miller, n_cells, table, tensor_bragg_sum_backward)
    assert got.dtype == dtype and got.shape == table.values.shape
    scale = float(want.abs().max())
    tolerance = dict(rtol=1e-12, atol=1e-12) if dtype == F64 else dict(rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got / scale, want / scale, **tolerance)
    border = torch.ones(table.padded_box()[0].shape, dtype=torch.bool)
    border[1:-1, 1:-1, 1:-1] = False
    assert got.reshape(table.padded_box()[0].shape)[border].abs().sum() > 0, "some lookups read the default_F border"
    with_table = bragg_sum_backward(grad, q, miller, n_cells, table, need_n=True, need_table=True)
    without = bragg_sum_backward(grad, q, miller, n_cells, table, need_n=True)
    assert without[3] is None
    for a, b in zip(with_table[:3], without[:3]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=0.0)


def test_table_gradient_equals_central_differences():
    """The gradient with respect to the user's grid (through ``bragg_sum``'s autograd and the
    table's padding) against central differences of the compiled forward, for every entry. The
    value is quadratic in each amplitude, so the difference is exact but for rounding:
    ``ε`` = 1 (amplitudes 1 … 51), error ~ 1e-16 · value / ε."""
    grid, q, miller, n_cells, grad = _case(2)
    leaf = grid.clone().requires_grad_()
    value = bragg_sum(q, miller, n_cells, StructureFactors(leaf, METADATA, DEFAULT_F))
    (analytic,) = torch.autograd.grad(value, leaf, grad)

    def loss(shifted):
        with torch.no_grad():
            return float(grad @ bragg_sum(q, miller, n_cells, StructureFactors(shifted, METADATA, DEFAULT_F)))

    step = 1.0
    numeric = torch.empty_like(grid)
    for index in range(grid.numel()):
        bump = torch.zeros(grid.numel(), dtype=F64)
        bump[index] = step
        bump = bump.reshape(grid.shape)
        numeric.view(-1)[index] = (loss(grid + bump) - loss(grid - bump)) / (2 * step)
    assert (analytic != 0).sum() > grid.numel() // 4, "many entries are read"
    scale = float(analytic.abs().max())
    torch.testing.assert_close(analytic / scale, numeric / scale, rtol=0.0, atol=1e-10)


@pytest.mark.parametrize("threads", sorted({1, 2, numba.config.NUMBA_NUM_THREADS}))
def test_table_gradient_at_thread_counts(threads):
    """One partial table per thread, summed after: the same gradient (to float64 rounding) at
    every thread count, with enough blocks (E = 4000, 16 blocks) for each thread to get several."""
    grid, q, miller, n_cells, grad = _case(3, count=4000)
    table = StructureFactors(grid, METADATA, DEFAULT_F)
    want = _table_gradient(grad, q, miller, n_cells, table, tensor_bragg_sum_backward)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        got = _table_gradient(grad, q, miller, n_cells, table, bragg_sum_backward)
    finally:
        torch.set_num_threads(previous)
    scale = float(want.abs().max())
    torch.testing.assert_close(got / scale, want / scale, rtol=1e-12, atol=1e-13)


def test_forward_mode_along_a_table_tangent():
    """``jvp`` along a tangent of the table: compiled = tensor kernel, and ``vᵀ (J t) = (vᵀ J) t``
    with the reverse-mode table gradient; through ``forward_ad`` from the user's grid too."""
    grid, q, miller, n_cells, grad = _case(4)
    table = StructureFactors(grid, METADATA, DEFAULT_F)
    tangent = torch.randn(table.values.shape, generator=torch.Generator().manual_seed(5), dtype=F64)
    compiled = bragg_sum_jvp(q, miller, n_cells, table, None, None, None, tangent)
    tensor = tensor_bragg_sum_jvp(q, miller, n_cells, table, None, None, None, tangent)
    scale = float(tensor.abs().max())
    torch.testing.assert_close(compiled / scale, tensor / scale, rtol=1e-12, atol=1e-13)
    reverse = _table_gradient(grad, q, miller, n_cells, table, bragg_sum_backward)
    torch.testing.assert_close(grad @ compiled, reverse @ tangent, rtol=1e-11, atol=0.0)

    grid_tangent = tangent.reshape(table.padded_box()[0].shape)[1:-1, 1:-1, 1:-1]
    with torch.autograd.forward_ad.dual_level():
        dual = torch.autograd.forward_ad.make_dual(grid, grid_tangent)
        dual_table = StructureFactors(dual, METADATA, DEFAULT_F)
        fused = torch.autograd.forward_ad.unpack_dual(bragg_sum(q, miller, n_cells, dual_table)).tangent
        reference = torch.autograd.forward_ad.unpack_dual(bragg_sum_reference(q, miller, n_cells, dual_table)).tangent
    torch.testing.assert_close(fused / scale, reference / scale, rtol=1e-12, atol=1e-13)


def test_second_derivatives_with_a_table_gradient():
    """``create_graph=True`` (autograd through ``bragg_sum_reference``) carries the table too:
    ``gradgradcheck`` with respect to the grid and q together."""
    grid, q, miller, n_cells, _ = _case(8, count=40)

    def value(grid, q):
        return bragg_sum(q, miller, n_cells, StructureFactors(grid, METADATA, DEFAULT_F))

    inputs = (grid.requires_grad_(), (q * 0.6).requires_grad_())
    assert torch.autograd.gradgradcheck(value, inputs, fast_mode=True)


# --------------------------------------------------------------------------- rendered images

CRYSTAL = dict(cell_a=30.0, cell_b=35.0, cell_c=40.0, cell_alpha=85.0, cell_beta=95.0, cell_gamma=92.0,
               misset_deg=(10.0, -20.0, 30.0), default_F=DEFAULT_F, N_cells=(4, 3, 5), interpolate=False,
               phi_start_deg=0.3, osc_range_deg=0.4, phi_steps=2, mosaic_spread_deg=0.5, mosaic_domains=3,
               mosaic_seed=7)
DETECTOR = dict(distance_mm=50.0, pixel_size_mm=1.0, fpixels=12, spixels=12, beam_center_f=2.2, beam_center_s=1.1,
                oversample=1)


def _simulator(grid, phi):
    crystal = Crystal(CrystalConfig(**{**CRYSTAL, "phi_start_deg": phi}), (grid, METADATA), dtype=F64)
    return Simulator(crystal, Detector(DetectorConfig(**DETECTOR), dtype=F64),
                     BeamConfig(wavelength_A=1.0, polarization_factor=0.5))


class _Spy:
    """Records the ``need_table`` and ``grad_table`` shape of every call of the compiled backward."""

    def __init__(self, monkeypatch):
        self.calls = []
        compiled = _bragg_kernels.backward

        def backward(*args):
            self.calls.append((args[-2], args[-1].shape))
            return compiled(*args)

        monkeypatch.setattr(_bragg_kernels, "backward", backward)


def test_image_table_gradient_takes_the_fused_kernel_and_equals_autograd(monkeypatch):
    """Structure factors that require grad: the run uses the fused kernel, whose compiled loops
    accumulate the table's gradient (not the autograd fallback); the image and its gradients
    with respect to the grid and phi equal those of the autograd path (the same run with the
    fused kernel switched off)."""
    generator = torch.Generator().manual_seed(6)
    grid = torch.rand((7, 9, 5), generator=generator, dtype=F64) * 50 + 1

    def image_and_grads(fused):
        leaf = grid.clone().requires_grad_()
        phi = torch.tensor(0.3, dtype=F64, requires_grad=True)
        simulator = _simulator(leaf, phi)
        prepared = simulator.prepare()
        assert prepared.fused, "a table that requires grad keeps the fused kernel"
        if not fused:
            prepared = dataclasses.replace(prepared, options=dataclasses.replace(prepared.options, fused=False))
        image = simulator.run(prepared=prepared)
        return image.detach(), torch.autograd.grad(image.square().sum(), (leaf, phi))

    spy = _Spy(monkeypatch)
    monkeypatch.setattr(kernels, "_differentiable_backward", None)  # called: a TypeError
    fused_image, fused_grads = image_and_grads(True)
    assert spy.calls and all(need and shape[1:] == (9, 11, 7) for need, shape in spy.calls)
    autograd_image, autograd_grads = image_and_grads(False)
    assert fused_image.max() > 100 * fused_image.median(), "the image has spots"
    assert (fused_grads[0] != 0).sum() > 10, "the image depends on many table entries"
    torch.testing.assert_close(fused_image, autograd_image, rtol=1e-12, atol=0.0)
    for got, want in zip(fused_grads, autograd_grads):
        scale = float(want.abs().max())
        torch.testing.assert_close(got / scale, want / scale, rtol=0.0, atol=1e-10)


def test_no_table_accumulation_without_a_table_gradient(monkeypatch):
    """A table that does not require grad: the compiled backward skips the table (``need_table``
    False, a 1-element placeholder), as in the seed benchmark's phi and mosaic gradients."""
    grid = torch.rand((7, 9, 5), generator=torch.Generator().manual_seed(7), dtype=F64) * 50 + 1
    phi = torch.tensor(0.3, dtype=F64, requires_grad=True)
    spy = _Spy(monkeypatch)
    image = _simulator(grid, phi).run()
    (grad_phi,) = torch.autograd.grad(image.sum(), phi)
    assert grad_phi != 0
    assert spy.calls and all(not need and shape == (1, 1, 1, 1) for need, shape in spy.calls)
