"""Structure factors: nanoBragg's lookup rules, checked against a plain dictionary of reflections."""

from __future__ import annotations

import itertools

import pytest
import torch

from nanobrag_torch import StructureFactors
from nanobrag_torch.structure_factors import as_structure_factors

F64 = torch.float64
METADATA = dict(h_min=-2, h_max=1, k_min=0, k_max=2, l_min=-1, l_max=3)
SHAPE = (4, 3, 5)


def table(dtype=F64):
    grid = torch.arange(1, 1 + 4 * 3 * 5, dtype=dtype).reshape(SHAPE)
    return grid, StructureFactors(grid, METADATA, default_F=-7.0)


def expected_nearest(grid, h, k, l):
    """nanoBragg: the table value inside h_min ≤ h ≤ h_max (and k, l), default_F outside."""
    inside = -2 <= h <= 1 and 0 <= k <= 2 and -1 <= l <= 3
    return float(grid[h + 2, k, l + 1]) if inside else -7.0


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_nearest_inside_and_outside_the_table(dtype):
    grid, factors = table(dtype)
    indices = list(itertools.product(range(-5, 4), range(-3, 6), range(-4, 7))) + [(-10 ** 6, 0, 0), (0, 10 ** 6, 2)]
    hkl0 = torch.tensor(indices, dtype=dtype)
    got = factors.nearest(hkl0)
    assert got.dtype == dtype
    assert got.tolist() == [expected_nearest(grid, *index) for index in indices]
    assert factors.nearest(hkl0[1:].reshape(2, -1, 3)).shape == (2, (len(indices) - 1) // 2)


def test_without_a_table_every_amplitude_is_default_F():
    factors = StructureFactors(default_F=12.5, dtype=torch.float32)
    hkl0 = torch.tensor([[0.0, 0.0, 0.0], [-300.0, 7.0, 1e6]], dtype=torch.float32)
    assert factors.nearest(hkl0).tolist() == [12.5, 12.5]
    assert not factors.has_table and not factors.requires_grad
    assert not factors.interpolation_valid(hkl0).any()


def test_interpolation_is_valid_two_indices_inside_the_edges():
    factors = StructureFactors(torch.zeros(5, 5, 9, dtype=F64), dict(h_min=-2, h_max=2, k_min=0, k_max=4,
                                                                      l_min=-4, l_max=4))
    hkl = torch.tensor([[0.0, 2.0, 0.0], [0.0, 2.0, 2.0], [0.0, 2.0, 2.01], [-0.01, 2.0, 0.0], [0.3, 1.9, -1.5]],
                       dtype=F64)
    assert factors.interpolation_valid(hkl).tolist() == [True, True, False, False, False]


def test_tricubic_is_exact_for_a_cubic_polynomial():
    """4-point Lagrange interpolation reproduces any polynomial of degree ≤ 3 in each index."""
    h, k, l = torch.meshgrid(*(torch.arange(-4.0, 5.0, dtype=F64),) * 3, indexing="ij")

    def cubic(h, k, l):
        return 2 + h ** 3 - 0.5 * h * k ** 2 + 0.1 * k ** 3 * l + l ** 2 - 3 * h * k * l

    factors = StructureFactors(cubic(h, k, l), dict(h_min=-4, h_max=4, k_min=-4, k_max=4, l_min=-4, l_max=4))
    points = torch.rand((200, 3), generator=torch.Generator().manual_seed(1), dtype=F64) * 4 - 2
    assert factors.interpolation_valid(points).all()
    torch.testing.assert_close(factors.tricubic(points), cubic(*points.unbind(-1)), rtol=1e-12, atol=1e-12)


def test_a_table_that_needs_a_gradient_gets_one_through_the_lookup():
    grid = torch.ones(SHAPE, dtype=F64, requires_grad=True)
    factors = StructureFactors(grid, METADATA)
    assert factors.requires_grad
    value = factors.nearest(torch.tensor([[0.0, 1.0, 2.0], [0.0, 1.0, 2.0], [9.0, 0.0, 0.0]], dtype=F64)).sum()
    (gradient,) = torch.autograd.grad(value, grid)
    assert gradient[2, 1, 3] == 2 and gradient.sum() == 2


@pytest.mark.parametrize("grid, metadata, message", [
    (torch.zeros(SHAPE), None, "needs its metadata"),
    (torch.zeros(SHAPE), {k: v for k, v in METADATA.items() if k != "l_max"}, "lacks l_max"),
    (torch.zeros((4, 3, 4)), METADATA, r"shape \(4, 3, 4\) but the metadata's index ranges \(h -2..1, k 0..2, "
                                       r"l -1..3\) need \(4, 3, 5\)"),
])
def test_inconsistent_tables_are_errors(grid, metadata, message):
    with pytest.raises(ValueError, match=message):
        StructureFactors(grid, metadata)


def test_as_structure_factors_one_rule_for_every_form():
    """The table's grid as given, the crystal's default_F outside it; a table already right is
    returned itself, so that the crystals of a refinement share it."""
    grid, factors = table()
    same = as_structure_factors(factors, -7.0, dtype=F64, device=torch.device("cpu"))
    assert same is factors
    for given in (factors, (grid, METADATA)):
        made = as_structure_factors(given, 2.5, dtype=torch.float32)
        assert made is not factors and made.default_F == 2.5 and made.values.dtype == torch.float32
        hkl = torch.tensor([[0.0, 1.0, 2.0], [5.0, 0.0, 0.0]])
        assert made.nearest(hkl).tolist() == [float(grid[2, 1, 3]), 2.5]
    none = as_structure_factors(None, 4.0)
    assert not none.has_table and none.nearest(torch.zeros(1, 3, dtype=F64)).tolist() == [4.0]
    with pytest.raises(ValueError, match="got str"):
        as_structure_factors("table.hkl", 0.0)
