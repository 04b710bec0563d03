"""MTZ files through gemmi: merged amplitudes written and read back (by gemmi and by
``read_mtz_amplitudes``, expanded to P1 by the space group), anomalous pairs kept apart, and
unmerged intensities whose stored indices and M/ISYM give back the observed ones."""

from __future__ import annotations

import gemmi
import numpy as np
import pytest
import torch

from nanobrag_torch.io import read_mtz_amplitudes, write_mtz_amplitudes, write_unmerged_mtz

CELL = (50.0, 60.0, 70.0, 90.0, 90.0, 90.0)


def _asu_reflections(space_group: str, limit: int = 3):
    """Every reflection of the reciprocal ASU with |h|, |k|, |l| <= limit that is not
    systematically absent, from gemmi's own ASU test."""
    group = gemmi.SpaceGroup(space_group)
    asu, ops = gemmi.ReciprocalAsu(group), group.operations()
    span = range(-limit, limit + 1)
    return np.array([(h, k, l) for h in span for k in span for l in span
                     if (h, k, l) != (0, 0, 0) and asu.is_in([h, k, l])
                     and not ops.is_systematically_absent([h, k, l])], dtype=np.int64)


def _lookup(structure, hkl):
    return structure.nearest(torch.tensor(np.asarray(hkl, dtype=np.float64))).numpy()


def test_amplitudes_round_trip_through_gemmi(tmp_path):
    hkl = _asu_reflections("P 21 21 21")
    F = 10.0 + np.arange(len(hkl), dtype=np.float64)  # exact in float32
    sigma = 0.5 + np.arange(len(hkl)) % 4
    F[3] = np.nan  # missing
    write_mtz_amplitudes(tmp_path / "m.mtz", hkl, F, sigma, cell_A_deg=CELL, space_group="P 21 21 21")
    mtz = gemmi.read_mtz_file(str(tmp_path / "m.mtz"))
    assert mtz.column_labels() == ["H", "K", "L", "F", "SIGF"]
    assert mtz.spacegroup.hm == "P 21 21 21" and mtz.cell.parameters == pytest.approx(CELL)
    data = np.array(mtz)
    np.testing.assert_array_equal(data[:, :3], hkl)
    np.testing.assert_array_equal(data[:, 3], F)  # NaN where missing
    np.testing.assert_array_equal(data[:, 4], sigma)


def test_p212121_expands_to_the_right_p1_set(tmp_path):
    hkl = _asu_reflections("P 21 21 21")
    F = 10.0 + np.arange(len(hkl), dtype=np.float64)
    write_mtz_amplitudes(tmp_path / "m.mtz", hkl, F, np.ones(len(hkl)), cell_A_deg=CELL, space_group="P 21 21 21")
    structure = read_mtz_amplitudes(tmp_path / "m.mtz", default_F=-1.0)
    expected = {}
    for index, value in zip(hkl.tolist(), F):  # the equivalents by gemmi's operations, and Friedel mates
        for op in gemmi.SpaceGroup("P 21 21 21").operations().sym_ops:
            equivalent = op.apply_to_hkl(index)
            expected[tuple(equivalent)] = expected[tuple(-v for v in equivalent)] = value
    box = [(h, k, l) for h in range(-3, 4) for k in range(-3, 4) for l in range(-3, 4)]
    values = _lookup(structure, box)
    for index, value in zip(box, values):
        assert value == expected.get(index, -1.0), index
    absent = [index for index in box if gemmi.SpaceGroup("P 21 21 21").operations().is_systematically_absent(index)]
    assert absent and (_lookup(structure, absent) == -1.0).all()  # (1 0 0), (0 3 0), ...: not given any F
    assert len(expected) == int((values != -1.0).sum())


def test_anomalous_pair_keeps_friedel_mates_apart(tmp_path):
    hkl = _asu_reflections("P 21 21 21", limit=2)
    n = len(hkl)
    F = np.full(n, 50.0)
    plus, minus = 40.0 + np.arange(n), 60.0 + np.arange(n)
    minus[0] = np.nan  # missing F(-): taken from F
    write_mtz_amplitudes(tmp_path / "a.mtz", hkl, F, np.ones(n), cell_A_deg=CELL, space_group="P 21 21 21",
                         F_plus=plus, sigma_F_plus=np.ones(n), F_minus=minus, sigma_F_minus=np.ones(n))
    assert gemmi.read_mtz_file(str(tmp_path / "a.mtz")).column_labels() == [
        "H", "K", "L", "F", "SIGF", "F(+)", "SIGF(+)", "F(-)", "SIGF(-)"]
    structure = read_mtz_amplitudes(tmp_path / "a.mtz")
    group = gemmi.SpaceGroup("P 21 21 21").operations()
    for row in range(1, n):
        if group.is_reflection_centric(hkl[row].tolist()):
            continue
        assert _lookup(structure, [hkl[row]]) == plus[row]
        assert _lookup(structure, [-hkl[row]]) == minus[row]
    assert _lookup(structure, [-hkl[0]]) == (plus[0] if group.is_reflection_centric(hkl[0].tolist()) else 50.0)
    mean = read_mtz_amplitudes(tmp_path / "a.mtz", column="SIGF")  # a column without a pair: Friedel's law
    assert _lookup(mean, [hkl[1]]) == _lookup(mean, [-hkl[1]]) == 1.0


def test_sigma_column_drops_reflections_without_sigma(tmp_path):
    hkl = np.array([[1, 2, 3], [2, 2, 2]])
    write_mtz_amplitudes(tmp_path / "s.mtz", hkl, [5.0, 6.0], [np.nan, 1.0], cell_A_deg=CELL, space_group="P 1")
    structure = read_mtz_amplitudes(tmp_path / "s.mtz", sigma_column="SIGF", default_F=0.5)
    assert _lookup(structure, hkl).tolist() == [0.5, 6.0]
    with pytest.raises(ValueError, match=r"s\.mtz: no column 'SIGX' \(sigma_column\)"):
        read_mtz_amplitudes(tmp_path / "s.mtz", sigma_column="SIGX")
    with pytest.raises(ValueError, match=r"s\.mtz: no column 'FP' .*the file has H, K, L, F, SIGF"):
        read_mtz_amplitudes(tmp_path / "s.mtz", column="FP")


def test_unmerged_round_trip_gives_observed_indices_back(tmp_path):
    rng = np.random.default_rng(3)
    observed = rng.integers(-4, 5, size=(40, 3))
    observed = observed[np.abs(observed).sum(axis=1) > 0]
    n = len(observed)
    batch = rng.integers(1, 6, size=n)
    intensity, sigma = rng.integers(0, 1000, n).astype(float), rng.integers(1, 30, n).astype(float)
    xdet, ydet = rng.integers(0, 2000, n) + 0.25, rng.integers(0, 2000, n) + 0.5
    scale = rng.integers(1, 100, n) / 8.0
    write_unmerged_mtz(tmp_path / "u.mtz", cell_A_deg=CELL, space_group="P 21 21 21", batch=batch, hkl=observed,
                       intensity=intensity, sigma_intensity=sigma, xdet=xdet, ydet=ydet,
                       extra_columns={"SCALE": scale})
    mtz = gemmi.read_mtz_file(str(tmp_path / "u.mtz"))
    assert mtz.column_labels() == ["H", "K", "L", "M/ISYM", "BATCH", "I", "SIGI", "XDET", "YDET", "SCALE"]
    assert sorted(b.number for b in mtz.batches) == sorted(set(batch.tolist()))  # an unmerged file
    data = np.array(mtz)
    asu = gemmi.ReciprocalAsu(mtz.spacegroup)
    assert all(asu.is_in(index) for index in data[:, :3].astype(int).tolist())  # stored: the ASU
    for column, values in zip(range(4, 10), (batch, intensity, sigma, xdet, ydet, scale)):
        np.testing.assert_array_equal(data[:, column], values)
    assert mtz.switch_to_original_hkl()
    np.testing.assert_array_equal(np.array(mtz)[:, :3], observed)


@pytest.mark.parametrize("bad, message", [
    (dict(space_group="P 99 99"), "space_group 'P 99 99': not a space group"),
    (dict(cell_A_deg=(50, 60, 70, 90, 90)), "cell_A_deg must be six positive numbers"),
    (dict(hkl=[[1, 2, 3.5]]), "hkl must be integer Miller indices"),
    (dict(batch=[0]), "batch must be integer batch numbers >= 1"),
    (dict(intensity=[1.0, 2.0]), r"intensity must have shape \(1,\)"),
    (dict(extra_columns={"I": [1.0]}), "extra_columns: the label 'I' is taken"),
])
def test_unmerged_writer_refuses_bad_arguments(tmp_path, bad, message):
    arguments = dict(cell_A_deg=CELL, space_group="P 1", batch=[1], hkl=[[1, 2, 3]], intensity=[1.0],
                     sigma_intensity=[1.0], xdet=[0.0], ydet=[0.0])
    with pytest.raises(ValueError, match=message):
        write_unmerged_mtz(tmp_path / "u.mtz", **{**arguments, **bad})
    assert not list(tmp_path.iterdir())


def test_partial_anomalous_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="need all of F_plus, sigma_F_plus, F_minus, sigma_F_minus; got only F_plus"):
        write_mtz_amplitudes(tmp_path / "m.mtz", [[1, 2, 3]], [1.0], [1.0], cell_A_deg=CELL, space_group="P 1",
                             F_plus=[1.0])
