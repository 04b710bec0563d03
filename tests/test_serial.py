"""Serial crystallography: the random-atom structure, the engine's data set (as the nanoBragg
command renders it) and conventional integration and merging against the truth."""

from __future__ import annotations

import numpy as np
import pytest
import torch

gemmi = pytest.importorskip("gemmi")

from nanobrag_torch.cli import build_simulator, parse_args  # noqa: E402
from nanobrag_torch.datasets import (oriented_reciprocal_vectors, random_rotations, random_structure_factors,  # noqa: E402
                                     serial_dataset)
from nanobrag_torch.io.hkl import read_hkl_file, write_hkl_file  # noqa: E402
from nanobrag_torch.noise import noise_image  # noqa: E402
from nanobrag_torch.refine.merging import compare_amplitudes, integrate_and_merge  # noqa: E402
from nanobrag_torch.symmetry import ReflectionSet  # noqa: E402

CELL = (79.0, 79.0, 38.0, 90.0, 90.0, 90.0)
GROUP = "P 43 21 2"


@pytest.fixture(scope="module")
def dataset():
    return serial_dataset(20)


def _direct_amplitudes(hkl, seed, n_atoms, n_anomalous, f_anomalous_e, f_e=7.0, b_factor_A2=20.0):
    """F of P1 indices from the atoms expanded by gemmi's apply_to_xyz, one atom at a time."""
    positions = np.random.default_rng(seed).random((n_atoms, 3))
    total = np.zeros(len(hkl), dtype=complex)
    for op in gemmi.SpaceGroup(GROUP).operations():
        for atom, position in enumerate(positions):
            x = np.array(op.apply_to_xyz(list(position)))
            f = f_e + (1j * f_anomalous_e if atom < n_anomalous else 0)
            total += f * np.exp(2j * np.pi * (hkl @ x))
    inverse_d2 = (hkl / np.array(CELL[:3])) ** 2
    return np.abs(total) * np.exp(-b_factor_A2 * inverse_d2.sum(axis=1) / 4)


def test_random_structure_factors_are_those_of_the_expanded_atoms_at_every_p1_index():
    table = random_structure_factors(CELL, GROUP, 6.0, n_atoms=5, n_anomalous=2, f_anomalous_e=3.0, seed=7)
    reflections = ReflectionSet(GROUP, CELL, 6.0)
    present = reflections.parameter_of(reflections.p1_hkl) >= 0
    hkl = reflections.p1_hkl[present][::5]
    expected = _direct_amplitudes(hkl, 7, 5, 2, 3.0)
    looked_up = table.nearest(torch.from_numpy(hkl).double()).numpy()
    # 40 atoms summed in another order: a few ulps of the largest term (|f| ≈ 7.6 e) each
    np.testing.assert_allclose(looked_up, expected, rtol=0, atol=40 * 8 * 2.0 ** -52 * 10)
    absent = reflections.p1_hkl[~present]
    assert (table.nearest(torch.from_numpy(absent).double()) == 0).all()


def test_anomalous_scatterers_make_the_friedel_mates_of_acentric_reflections_differ():
    reflections = ReflectionSet(GROUP, CELL, 6.0)
    acentric, centric = reflections.hkl[~reflections.centric], reflections.hkl[reflections.centric]
    for n_anomalous, differ in ((0, False), (2, True)):
        table = random_structure_factors(CELL, GROUP, 6.0, n_atoms=5, n_anomalous=n_anomalous, f_anomalous_e=3.0,
                                         seed=7)
        plus, minus = (table.nearest(torch.from_numpy(sign * acentric).double()) for sign in (1, -1))
        assert (not torch.allclose(plus, minus, rtol=1e-6)) == differ
        torch.testing.assert_close(table.nearest(torch.from_numpy(centric).double()),
                                   table.nearest(torch.from_numpy(-centric).double()), rtol=1e-12, atol=1e-12)


def test_write_hkl_file_round_trips_through_the_reader(tmp_path):
    reflections = ReflectionSet(GROUP, CELL, 8.0)
    table = random_structure_factors(CELL, GROUP, 8.0, n_atoms=5, n_anomalous=2, f_anomalous_e=3.0, seed=1)
    amplitudes = table.nearest(torch.from_numpy(reflections.p1_hkl).double())
    write_hkl_file(tmp_path / "p1.hkl", reflections.p1_hkl, amplitudes)
    read = read_hkl_file(tmp_path / "p1.hkl")
    assert torch.equal(read.nearest(torch.from_numpy(reflections.p1_hkl).double()), amplitudes)
    with pytest.raises(ValueError, match=r"F\(1 2 3\) = nan"):
        write_hkl_file(tmp_path / "bad.hkl", [[1, 2, 3]], [float("nan")])


def test_random_rotations_are_proper_and_spread_over_so3():
    rotations = random_rotations(2000, seed=0)
    np.testing.assert_allclose(rotations @ rotations.transpose(0, 2, 1), np.broadcast_to(np.eye(3), (2000, 3, 3)),
                               atol=1e-14)
    np.testing.assert_allclose(np.linalg.det(rotations), 1.0, atol=1e-14)
    # uniform on SO(3): every column is uniform on the sphere, so each component has mean 0, variance 1/3
    assert np.abs(rotations.mean(axis=0)).max() < 4 / np.sqrt(3 * 2000)
    assert np.abs((rotations ** 2).mean(axis=0) - 1 / 3).max() < 0.04


def test_the_dataset_is_what_the_nanobragg_command_renders(dataset, tmp_path):
    """Shot 0 through the command's reading of the C command line (parity-tested against C)."""
    shot, truth_crystal = dataset.shots[0], dataset.true_crystals[0]
    reflections = dataset.reflections
    write_hkl_file(tmp_path / "p1.hkl", reflections.p1_hkl,
                   dataset.structure_factors.nearest(torch.from_numpy(reflections.p1_hkl).double()))
    vectors = np.stack([truth_crystal.mosflm_a_star, truth_crystal.mosflm_b_star, truth_crystal.mosflm_c_star], axis=1)
    (tmp_path / "shot.mat").write_text("\n".join(" ".join(repr(float(v)) for v in row) for row in vectors * 1.0))
    n_a, n_b, n_c = truth_crystal.N_cells
    command = (f"-mat {tmp_path / 'shot.mat'} -hkl {tmp_path / 'p1.hkl'} -default_F 0 -lambda 1.0 -distance "
               f"{shot.detector.distance_mm} -pixel {shot.detector.pixel_size_mm} -detpixels {shot.detector.fpixels} "
               f"-oversample 1 -Na {n_a} -Nb {n_b} -Nc {n_c} -fluence {float(shot.beam.fluence * dataset.true_scales[0])!r} "
               f"-water {shot.beam.water_size_um} -seed 1")
    simulator, _ = build_simulator(parse_args(command.split()))
    with torch.no_grad():
        rendered = simulator.run().numpy()
    # float64 sums in the same order, from a matrix printed with 17 digits: ~1e-15 relative, steep
    # lattice factors amplify the last digit of the vectors
    np.testing.assert_allclose(rendered, dataset.expected[0], rtol=1e-11, atol=0)
    noisy, _, _ = noise_image(dataset.expected[0], seed=1)
    assert np.array_equal(shot.observed, noisy.astype(np.float64) - 40)


def test_the_dataset_holds_its_truth(dataset):
    assert len(dataset.shots) == 20 and dataset.expected.shape == (20, 128, 128)
    assert (np.abs(dataset.true_scales - 1) <= 0.3).all() and dataset.true_scales.std() > 0.1
    for start, truth, error in zip(dataset.start_crystals, dataset.true_crystals, dataset.start_errors_deg):
        b_start, b_true = (np.stack([c.mosflm_a_star, c.mosflm_b_star, c.mosflm_c_star]) for c in (start, truth))
        turn = np.linalg.solve(b_true, b_start).T  # b_start rows = turn @ b_true rows
        angle = np.degrees(np.arccos((np.trace(turn) - 1) / 2))
        assert 0.1 <= error <= 0.4 and angle == pytest.approx(error, abs=1e-9)
    assert all(shot.crystal is start for shot, start in zip(dataset.shots, dataset.start_crystals))
    torch.testing.assert_close(dataset.true_values, dataset.reflections.from_structure_factors(dataset.structure_factors))
    rotation = np.eye(3)
    assert np.allclose(np.stack(oriented_reciprocal_vectors(CELL, rotation)), np.diag(1 / np.array(CELL[:3])))


def test_compare_amplitudes_of_a_scaled_copy_and_of_noise():
    truth = np.random.default_rng(0).uniform(10, 100, 500)
    assert compare_amplitudes(3 * truth, truth) == pytest.approx((1.0, 0.0), abs=1e-12)
    with_gaps = np.where(np.arange(500) % 7 == 0, np.nan, 2 * truth)
    assert compare_amplitudes(with_gaps, truth) == pytest.approx((1.0, 0.0), abs=1e-12)
    cc, r = compare_amplitudes(np.random.default_rng(1).uniform(10, 100, 500), truth)
    assert abs(cc) < 0.2 and r > 0.2


def test_merging_the_true_orientations_recovers_the_amplitudes_and_their_anomalous_differences(dataset):
    shots = [shot._replace(crystal=crystal) for shot, crystal in zip(dataset.shots, dataset.true_crystals)]
    d_min = dataset.reflections.d_min_A
    merged = integrate_and_merge(shots, GROUP, d_min, anomalous=True, scales=dataset.true_scales)
    plain = ReflectionSet(GROUP, CELL, d_min)
    truth = plain.from_structure_factors(dataset.structure_factors).numpy()
    cc, r = compare_amplitudes(merged.F, truth)
    assert np.isfinite(merged.F).sum() > 500 and merged.n_shots == 20
    assert cc > 0.9 and r < 0.2  # 0.954 and 0.106 when written
    values = dataset.true_values.numpy()
    true_plus, true_minus = values[:len(plain.hkl)], values[dataset.reflections.parameter_of(-plain.hkl)]
    both = np.isfinite(merged.F_plus) & np.isfinite(merged.F_minus) & ~plain.centric
    assert both.sum() > 200
    anomalous_cc = np.corrcoef(merged.F_plus[both] - merged.F_minus[both], (true_plus - true_minus)[both])[0, 1]
    assert anomalous_cc > 0.5  # 0.67 when written
    centric = plain.centric & np.isfinite(merged.F_plus)
    assert np.array_equal(merged.F_plus[centric], merged.F_minus[centric])
    # without the true scales the amplitudes are worse: the scales matter
    unscaled, _ = compare_amplitudes(integrate_and_merge(shots, GROUP, d_min).F, truth)
    assert unscaled < cc
