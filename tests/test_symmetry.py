"""ReflectionSet: the ASU and its parameters against gemmi's own ASU mapping, absences and Friedel mates."""

from __future__ import annotations

import numpy as np
import pytest
import torch

gemmi = pytest.importorskip("gemmi")

from nanobrag_torch.structure_factors import StructureFactors  # noqa: E402
from nanobrag_torch.symmetry import ReflectionSet  # noqa: E402

CASES = [("P 21 21 21", (40.0, 50.0, 60.0, 90.0, 90.0, 90.0), 6.0),
         ("P 43 21 2", (79.0, 79.0, 38.0, 90.0, 90.0, 90.0), 5.0)]


@pytest.fixture(params=CASES, ids=[case[0] for case in CASES])
def case(request):
    return request.param


def _equivalents(space_group, hkl):
    """Every index equivalent to ``hkl`` by a rotation of the group (gemmi's apply_to_hkl)."""
    return [tuple(op.apply_to_hkl(list(map(int, hkl)))) for op in gemmi.SpaceGroup(space_group).operations()]


def test_equivalents_map_to_the_parameter_of_gemmis_asu_reflection(case):
    space_group, cell, d_min = case
    reflections = ReflectionSet(space_group, cell, d_min)
    group = gemmi.SpaceGroup(space_group)
    asu, operations = gemmi.ReciprocalAsu(group), group.operations()
    parameters = reflections.parameter_of(reflections.p1_hkl)
    rows = {tuple(hkl): row for row, hkl in enumerate(reflections.hkl)}
    for hkl, parameter in zip(reflections.p1_hkl, parameters):
        index = list(map(int, hkl))
        if operations.is_systematically_absent(index):
            assert parameter == -1, hkl
        else:
            assert parameter == rows[tuple(asu.to_asu(index, operations)[0])], hkl
    assert len(set(parameters[parameters >= 0])) == reflections.n_parameters == len(reflections.hkl)


def test_absences_000_and_beyond_d_min_have_no_parameter():
    reflections = ReflectionSet("P 43 21 2", (79.0, 79.0, 38.0, 90.0, 90.0, 90.0), 5.0)
    # 0 0 l needs l = 4n (43 screw), h 0 0 needs h even (21 screw); 0 0 16 is beyond 5 Å (d = 2.4 Å)
    assert list(reflections.parameter_of([[0, 0, 1], [0, 0, 2], [0, 0, 3], [1, 0, 0], [3, 0, 0], [0, 0, 0],
                                          [0, 0, 16]])) == [-1] * 7
    assert (reflections.parameter_of([[0, 0, 4], [2, 0, 0], [0, 2, 0], [0, 0, -4]]) >= 0).all()


def test_anomalous_splits_the_friedel_mates_of_acentric_reflections_only(case):
    space_group, cell, d_min = case
    plain = ReflectionSet(space_group, cell, d_min)
    split = ReflectionSet(space_group, cell, d_min, anomalous=True)
    assert np.array_equal(plain.hkl, split.hkl) and np.array_equal(plain.centric, split.centric)
    centric = np.array([gemmi.SpaceGroup(space_group).operations().is_reflection_centric(list(map(int, h)))
                        for h in split.hkl])
    assert np.array_equal(split.centric, centric) and centric.any() and (~centric).any()
    assert split.n_parameters == len(split.hkl) + int((~centric).sum())
    plus, minus = split.parameter_of(split.hkl), split.parameter_of(-split.hkl)
    assert np.array_equal(plus, np.arange(len(split.hkl)))
    assert np.array_equal(minus[centric], plus[centric])
    assert (minus[~centric] >= len(split.hkl)).all() and len(set(minus[~centric])) == int((~centric).sum())
    assert np.array_equal(plain.parameter_of(-plain.hkl), np.arange(len(plain.hkl)))
    # every equivalent of −h is F(−), every equivalent of h is F(+)
    for row in np.flatnonzero(~centric)[:20]:
        same = split.parameter_of(_equivalents(space_group, split.hkl[row]))
        mates = split.parameter_of([[-v for v in hkl] for hkl in _equivalents(space_group, split.hkl[row])])
        assert (same == row).all() and (mates == minus[row]).all()
        assert split.is_plus(_equivalents(space_group, split.hkl[row])).all()
        assert not split.is_plus(-split.hkl[row:row + 1]).any()
    rows, signs = split.asu_rows_of_parameters
    assert np.array_equal(split.parameter_of(signs[:, None] * split.hkl[rows]), np.arange(split.n_parameters))


def test_values_table_values_round_trip_and_the_table_holds_every_equivalent(case):
    space_group, cell, d_min = case
    reflections = ReflectionSet(space_group, cell, d_min, anomalous=True)
    values = torch.from_numpy(np.random.default_rng(3).uniform(1, 100, reflections.n_parameters))
    table = reflections.structure_factors(values, default_F=-1.0)
    assert isinstance(table, StructureFactors) and table.default_F == -1.0
    looked_up = table.nearest(torch.from_numpy(reflections.p1_hkl).double()).numpy()
    parameters = reflections.parameter_of(reflections.p1_hkl)
    assert np.array_equal(looked_up, np.where(parameters >= 0, values.numpy()[parameters], -1.0))
    # the mean of at most 2 × 8 equal numbers: a few ulps of rounding in the sum
    torch.testing.assert_close(reflections.from_structure_factors(table), values, rtol=16 * 2.0 ** -52, atol=0)


def test_the_table_keeps_the_gradient_of_the_values():
    reflections = ReflectionSet("P 21 21 21", (40.0, 50.0, 60.0, 90.0, 90.0, 90.0), 8.0)
    values = torch.ones(reflections.n_parameters, dtype=torch.float64, requires_grad=True)
    table = reflections.structure_factors(values)
    table.nearest(torch.tensor([[1.0, 2.0, 3.0], [-1.0, 2.0, -3.0]], dtype=torch.float64)).sum().backward()
    expected = np.zeros(reflections.n_parameters)
    expected[reflections.parameter_of([[1, 2, 3]])[0]] = 2
    assert np.array_equal(values.grad.numpy(), expected)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="space_group = 'P 7'"):
        ReflectionSet("P 7", (40, 50, 60, 90, 90, 90), 5.0)
    with pytest.raises(ValueError, match="cell_A_deg"):
        ReflectionSet("P 1", (40, 50, 60, 90, 90), 5.0)
    with pytest.raises(ValueError, match="d_min_A = 0"):
        ReflectionSet("P 1", (40, 50, 60, 90, 90, 90), 0)
    reflections = ReflectionSet("P 1", (40, 50, 60, 90, 90, 90), 10.0)
    with pytest.raises(ValueError, match=r"expected \(%d,\)" % reflections.n_parameters):
        reflections.structure_factors(np.ones(3))
