"""Every continuous parameter of the simulation is differentiable, and the gradients are exact.

* ``gradcheck`` (float64, a 16 × 16 detector with spots on it) for every parameter of
  :mod:`nanobrag_torch.config` that may be a tensor, in the default and the C-quirk mode;
  ``gradgradcheck`` for a few, on the fused kernel and on the autograd path;
* the fused Bragg-sum kernel against plain autograd through :mod:`nanobrag_torch.physics`, and
  its compiled CPU loops against its tensor expressions;
* no NaN or inf at the special points (phi = 0, mosaic spread = 0, integer h, k, l, a pixel
  exactly on the beam, two-theta = 0);
* the seeded mosaic domains do not depend on the spread;
* the tutorial's refinement geometry: central differences and float32 against float64.
"""

import dataclasses
import warnings
from importlib.resources import files

import numpy as np
import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from nanobrag_torch import (BeamConfig, Crystal, CrystalConfig, CrystalShape, Detector, DetectorConfig,
                            DetectorConvention, Simulator, StructureFactors)
from nanobrag_torch.kernels import (bragg_sum, bragg_sum_backward, bragg_sum_forward, bragg_sum_jvp,
                                   tensor_bragg_sum_backward, tensor_bragg_sum_forward, tensor_bragg_sum_jvp)
from nanobrag_torch.physics import lattice_factor, nearest_index, polarization_factor, sincg_fraction
from nanobrag_torch.rng import mosaic_axes_and_factors
from nanobrag_torch.constants import R_E_SQR_M2

F64 = torch.float64

SMALL_CRYSTAL = dict(cell_a=70.0, cell_b=80.0, cell_c=90.0, cell_alpha=75.0, cell_beta=85.0, cell_gamma=95.0,
                     misset_deg=(10.0, -20.0, 30.0), default_F=100.0, N_cells=(4, 4, 4),
                     phi_start_deg=0.3, osc_range_deg=0.4, phi_steps=2,
                     mosaic_spread_deg=0.5, mosaic_domains=3, mosaic_seed=7)
SMALL_DETECTOR = dict(distance_mm=100.0, pixel_size_mm=0.3, fpixels=16, spixels=16,
                      beam_center_f=2.2, beam_center_s=3.1, oversample=1)
SMALL_BEAM = dict(wavelength_A=1.0, polarization_factor=0.5)


def render(crystal=None, detector=None, beam=None, c_quirks=False, dtype=F64, device="cpu", hkl=None):
    """Image of the small test case with some fields replaced."""
    crystal_cfg = CrystalConfig(**{**SMALL_CRYSTAL, **(crystal or {})})
    detector_cfg = DetectorConfig(**{**SMALL_DETECTOR, **(detector or {})})
    beam_cfg = BeamConfig(**{**SMALL_BEAM, **(beam or {})})
    xtal = Crystal(crystal_cfg, hkl, device=device, dtype=dtype)
    sim = Simulator(xtal, Detector(detector_cfg, device=device, dtype=dtype), beam_cfg, c_quirks=c_quirks)
    return sim.run()


def _small_reciprocal_vectors():
    """a*, b*, c* (Å⁻¹) of the small test crystal, to give as a MOSFLM orientation."""
    crystal = Crystal(CrystalConfig(**SMALL_CRYSTAL), dtype=F64)
    return [v.detach() for v in crystal.reciprocal_vectors_per_A()]


def _with_matrix(which, vector):
    vectors = dict(zip(("mosflm_a_star", "mosflm_b_star", "mosflm_c_star"), _small_reciprocal_vectors()))
    vectors[which] = vector
    lengths = dict.fromkeys(("cell_a", "cell_b", "cell_c", "cell_alpha", "cell_beta", "cell_gamma"))
    return render(crystal=dict(**lengths, **vectors, misset_deg=(0.0, 0.0, 0.0)))


def _misset(axis):
    def image(angle):
        misset = list(SMALL_CRYSTAL["misset_deg"])
        misset[axis] = angle
        return render(crystal=dict(misset_deg=tuple(misset)))
    return image


# name -> (image as a function of the parameter, value, scale). The parameter is ``scale · x``
# with x the checked input, so that parameters of very different magnitude (fluence ~1e29) are
# perturbed by a meaningful relative step.
PARAMETERS = {
    **{name: (lambda x, name=name: render(crystal={name: x}), SMALL_CRYSTAL[name], 1.0)
       for name in ("cell_a", "cell_b", "cell_c", "cell_alpha", "cell_beta", "cell_gamma",
                    "phi_start_deg", "osc_range_deg", "mosaic_spread_deg")},
    **{f"misset_deg[{axis}]": (_misset(axis), SMALL_CRYSTAL["misset_deg"][axis], 1.0) for axis in range(3)},
    "N_cells": (lambda n: render(crystal=dict(N_cells=n)), [4.3, 3.6, 5.2], 1.0),
    **{name: (lambda v, name=name: _with_matrix(name, v), vector, 1.0)
       for name, vector in zip(("mosflm_a_star", "mosflm_b_star", "mosflm_c_star"),
                               [v.tolist() for v in _small_reciprocal_vectors()])},
    **{name: (lambda x, name=name: render(detector={name: x}), value, 1.0)
       for name, value in (("distance_mm", 100.0), ("beam_center_f", 2.2), ("beam_center_s", 3.1),
                           ("detector_rotx_deg", 2.0), ("detector_roty_deg", -3.0), ("detector_rotz_deg", 4.0),
                           ("detector_twotheta_deg", 5.0))},
    "wavelength_A": (lambda x: render(beam=dict(wavelength_A=x)), 1.0, 1.0),
    "polarization_factor": (lambda x: render(beam=dict(polarization_factor=x)), 0.5, 1.0),
    "fluence": (lambda x: render(beam=dict(fluence=x)), 1.2, 1e29),
    "flux": (lambda x: render(beam=dict(flux=x, exposure=2.0, beamsize_mm=0.05)), 3.0, 1e12),
}


def _input(value, device="cpu"):
    return torch.tensor(value, dtype=F64, device=device, requires_grad=True)


def _scaled(image, scale):
    return image if scale == 1.0 else (lambda x: image(x * scale))


def test_small_case_has_spots_on_the_detector():
    image = render()
    assert image.max() > 100 * image.median()
    assert (image > 0.1 * image.max()).sum() >= 3


@pytest.mark.parametrize("name", sorted(PARAMETERS))
def test_gradcheck(name):
    image, value, scale = PARAMETERS[name]
    x = _input(value)
    (grad,) = torch.autograd.grad(_scaled(image, scale)(x).sum(), x)
    assert grad.abs().max() > 0, "the image depends on the parameter"
    assert gradcheck(_scaled(image, scale), (x,), fast_mode=True)


@pytest.mark.parametrize("name", ["phi_start_deg", "mosaic_spread_deg", "distance_mm", "polarization_factor"])
def test_gradcheck_with_c_quirks(name):
    _, value, _ = PARAMETERS[name]
    group = "detector" if name == "distance_mm" else "beam" if name == "polarization_factor" else "crystal"
    assert gradcheck(lambda x: render(**{group: {name: x}}, c_quirks=True), (_input(value),), fast_mode=True)


def test_full_jacobian_for_phi_and_distance():
    def image(phi, distance):
        return render(crystal=dict(phi_start_deg=phi), detector=dict(distance_mm=distance, fpixels=6, spixels=6))
    assert gradcheck(image, (_input(0.3), _input(100.0)))


@pytest.mark.parametrize("name", ["phi_start_deg", "distance_mm", "N_cells"])
def test_gradgradcheck_fused_kernel(name):
    image, value, _ = PARAMETERS[name]
    assert gradgradcheck(image, (_input(value),), fast_mode=True)


@pytest.mark.parametrize("shape", [CrystalShape.ROUND, CrystalShape.GAUSS])
def test_gradgradcheck_autograd_shapes(shape):
    def image(spread):
        return render(crystal=dict(mosaic_spread_deg=spread, shape=shape))
    assert gradgradcheck(image, (_input(0.5),), fast_mode=True)


def _random_table(generator, dtype=F64):
    grid = torch.rand((7, 9, 5), generator=generator, dtype=dtype) * 50 + 1
    metadata = dict(h_min=-3, h_max=3, k_min=-4, k_max=4, l_min=-2, l_max=2)
    return grid, metadata


@pytest.mark.parametrize("shape", [CrystalShape.ROUND, CrystalShape.GAUSS, CrystalShape.TOPHAT])
def test_gradcheck_other_shapes(shape):
    def image(phi):
        return render(crystal=dict(phi_start_deg=phi, shape=shape))
    assert gradcheck(image, (_input(0.3),), fast_mode=True)


def test_gradcheck_tricubic_interpolation():
    hkl = _random_table(torch.Generator().manual_seed(3))
    def image(phi):
        return render(crystal=dict(phi_start_deg=phi, interpolate=True, cell_a=30.0, cell_b=35.0, cell_c=40.0),
                      hkl=hkl)
    assert gradcheck(image, (_input(0.3),), fast_mode=True)


def test_gradcheck_through_c_interpolation_switch_off_across_chunks():
    """C switches interpolation off at the first out-of-range lookup (here half-way down the
    image); the switch-off travels from chunk to chunk as a value, so the chunks recomputed in the
    backward pass are those of the forward pass and the gradient is the image's."""
    grid = torch.rand((7, 7, 7), generator=torch.Generator().manual_seed(4), dtype=F64) * 50 + 1
    hkl = (grid, dict(h_min=-3, h_max=3, k_min=-3, k_max=3, l_min=-3, l_max=3))

    def image(phi, c_quirks=True):
        crystal = Crystal(CrystalConfig(**{**SMALL_CRYSTAL, "cell_a": 40.0, "cell_b": 40.0, "cell_c": 40.0,
                                           "phi_start_deg": phi, "interpolate": True}), hkl)
        detector = Detector(DetectorConfig(**{**SMALL_DETECTOR, "beam_center_f": 2.4, "beam_center_s": 0.3}))
        return Simulator(crystal, detector, BeamConfig(**SMALL_BEAM), c_quirks=c_quirks).run(pixel_batch_size=40)

    with pytest.warns(UserWarning, match="interpolation switched off"):
        quirky = image(_input(0.3)).detach()
    intended = image(_input(0.3), c_quirks=False).detach()
    first_row_off = int(((quirky - intended).abs() > 1e-9 * intended.max()).any(-1).nonzero()[0])
    assert 2 <= first_row_off <= 12, "the switch-off happens inside the image"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        assert gradcheck(image, (_input(0.3),), fast_mode=True)


# --------------------------------------------------- fused kernel = plain autograd


def _physics_bragg_sum(q, miller, n_cells, factors):
    """The Bragg sum written with the physics functions (what the fused kernel replaces)."""
    hkl = (q @ miller).unflatten(-1, (-1, 3))
    hkl0 = nearest_index(hkl.detach())
    amplitude = factors.nearest(hkl0) * lattice_factor(CrystalShape.SQUARE, hkl - hkl0, n_cells, 1.0)
    return (amplitude * amplitude).sum(-1)


def test_fused_kernel_equals_autograd_through_physics():
    generator = torch.Generator().manual_seed(11)
    grid, metadata = _random_table(generator)
    factors = StructureFactors(grid, metadata, default_F=7.0)
    q = (torch.randn((500, 3), generator=generator, dtype=F64) * 3).requires_grad_()
    miller = (torch.eye(3, dtype=F64).repeat(1, 4)
              + 0.2 * torch.randn((3, 12), generator=generator, dtype=F64)).requires_grad_()
    n_cells = torch.tensor([4.3, 3.0, 6.7], dtype=F64, requires_grad=True)
    grad = torch.randn(500, generator=generator, dtype=F64)

    reference = _physics_bragg_sum(q, miller, n_cells, factors)
    expected = torch.autograd.grad(reference, (q, miller, n_cells), grad)
    with torch.no_grad():
        fused = bragg_sum_forward(q, miller, n_cells, factors)
        analytic = bragg_sum_backward(grad, q, miller, n_cells, factors, need_n=True)

    hkl = q.detach() @ miller.detach()
    assert ((hkl < -4) | (hkl > 4)).any(), "some lookups fall outside the table"
    torch.testing.assert_close(fused, reference.detach(), rtol=1e-12, atol=1e-9)
    for got, want in zip(analytic, expected):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_cpu_loops_equal_tensor_kernels(dtype):
    """On the CPU the value, gradients and forward-mode derivative come from compiled loops
    (float64 inside); the tensor expressions that other devices run give the same numbers, to
    the dtype's rounding. Lookups inside and outside the table, and exactly integer indices."""
    generator = torch.Generator().manual_seed(13)
    grid, metadata = _random_table(generator)
    factors = StructureFactors(grid, metadata, default_F=7.0, dtype=dtype)
    q = torch.randn((700, 3), generator=generator, dtype=F64) * 3
    q[:100] = torch.randint(-6, 7, (100, 3), generator=generator).to(F64)
    miller = torch.eye(3, dtype=F64).repeat(1, 4) + 0.2 * torch.randn((3, 12), generator=generator, dtype=F64)
    miller[:, :3] = torch.eye(3, dtype=F64)  # the first orientation maps the integer q to integer h, k, l
    n_cells = torch.tensor([4.3, 3.0, 6.7], dtype=F64)
    grad = torch.randn(700, generator=generator, dtype=F64)
    tangents = (torch.randn((700, 3), generator=generator, dtype=F64), torch.randn((3, 12), generator=generator,
                                                                                    dtype=F64), torch.randn(3, dtype=F64))
    q, miller, n_cells, grad = (t.to(dtype) for t in (q, miller, n_cells, grad))
    tangents = tuple(t.to(dtype) for t in tangents)
    tolerance = dict(rtol=1e-11, atol=1e-11) if dtype == F64 else dict(rtol=2e-3, atol=1e-3)

    def close(got, want):
        scale = float(want.abs().max())
        torch.testing.assert_close(got / scale, want / scale, **tolerance)

    close(bragg_sum_forward(q, miller, n_cells, factors), tensor_bragg_sum_forward(q, miller, n_cells, factors))
    for got, want in zip(bragg_sum_backward(grad, q, miller, n_cells, factors, need_n=True, need_table=True),
                         tensor_bragg_sum_backward(grad, q, miller, n_cells, factors, need_n=True, need_table=True)):
        assert got.dtype == dtype
        close(got, want)
    without_q = bragg_sum_backward(grad, q, miller, n_cells, factors, need_n=False, need_q=False)
    assert without_q[0] is None and without_q[2] is None and without_q[3] is None
    tangent_values = torch.randn(factors.values.shape, generator=generator, dtype=F64).to(dtype)
    for tangent in (tangents, (tangents[0], None, None), (None, tangents[1], None), (None, None, tangents[2]),
                    tangents + (tangent_values,), (None, None, None, tangent_values)):
        close(bragg_sum_jvp(q, miller, n_cells, factors, *tangent),
              tensor_bragg_sum_jvp(q, miller, n_cells, factors, *tangent))


@pytest.mark.parametrize("count", [1, 2])
def test_cpu_loops_leave_torch_thread_count(count):
    """The compiled loops run on PyTorch's thread count and leave it as it was (numba's OpenMP
    layer shares it: restoring numba's own count once raised PyTorch's to every CPU)."""
    generator = torch.Generator().manual_seed(3)
    grid, metadata = _random_table(generator)
    factors = StructureFactors(grid, metadata, default_F=7.0, dtype=F64)
    q = torch.randn((300, 3), generator=generator, dtype=F64)
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        bragg_sum_forward(q, torch.eye(3, dtype=F64), torch.tensor([3.0, 4.0, 5.0], dtype=F64), factors)
        assert torch.get_num_threads() == count
    finally:
        torch.set_num_threads(previous)


def test_fused_image_gradients_equal_autograd_image_gradients():
    """The fused kernel and the autograd path (the same prepared run with the fused kernel
    switched off) give the same image and the same gradients, the structure-factor table's
    included."""
    grid, metadata = _random_table(torch.Generator().manual_seed(5))
    crystal = dict(cell_a=30.0, cell_b=35.0, cell_c=40.0, interpolate=False)

    def image_and_grads(fused):
        phi, distance, n_cells = _input(0.3), _input(100.0), _input([4.3, 3.6, 5.2])
        table = grid.clone().requires_grad_()
        xtal = Crystal(CrystalConfig(**{**SMALL_CRYSTAL, **crystal, "phi_start_deg": phi, "N_cells": n_cells}),
                       (table, metadata), dtype=F64)
        detector = Detector(DetectorConfig(**{**SMALL_DETECTOR, "distance_mm": distance}), dtype=F64)
        sim = Simulator(xtal, detector, BeamConfig(**SMALL_BEAM))
        prepared = sim.prepare()
        assert prepared.fused
        if not fused:
            prepared = dataclasses.replace(prepared, options=dataclasses.replace(prepared.options, fused=False))
        image = sim.run(prepared=prepared)
        return image.detach(), torch.autograd.grad(image.square().sum(), (phi, distance, n_cells, table))

    fused_image, fused_grads = image_and_grads(True)
    autograd_image, autograd_grads = image_and_grads(False)
    torch.testing.assert_close(fused_image, autograd_image, rtol=1e-10, atol=1e-12)
    for got, want in zip(fused_grads, autograd_grads):
        torch.testing.assert_close(got, want, rtol=1e-8, atol=1e-10)


def test_gradcheck_through_the_command_line_simulator():
    """The ``nanobragg`` command's plan and simulator (C-quirk mode) carry the same gradients."""
    from nanobrag_torch.cli import build_simulator, parse_args

    plan = parse_args("-cell 70 80 90 75 85 95 -misset 10 -20 30 -default_F 100 -N 4 -distance 100 -pixel 0.3 "
                      "-detpixels 16 -lambda 1 -mosaic 0.5 -mosaic_domains 3 -mosaic_seed 7 -phi 0.3 -osc 0.4 "
                      "-phisteps 2 -oversample 1".split())

    def image(phi, distance, wavelength, n_cells):
        crystal = dataclasses.replace(plan.crystal, phi_start_deg=phi, N_cells=n_cells)
        detector = dataclasses.replace(plan.detector, distance_mm=distance)
        beam = dataclasses.replace(plan.beam, wavelength_A=wavelength)
        simulator, _ = build_simulator(dataclasses.replace(plan, crystal=crystal, detector=detector, beam=beam))
        assert simulator.c_quirks
        return simulator.run()

    assert gradcheck(image, (_input(0.3), _input(100.0), _input(1.0), _input([4.3, 3.6, 5.2])), fast_mode=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ["phi_start_deg", "distance_mm", "N_cells", "wavelength_A"])
def test_gradcheck_on_cuda(name):
    value = PARAMETERS[name][1]
    group = {"distance_mm": "detector", "wavelength_A": "beam"}.get(name, "crystal")
    def image(x):
        image = render(**{group: {name: x}}, device="cuda")
        assert image.is_cuda
        return image
    assert gradcheck(image, (_input(value, device="cuda"),), fast_mode=True)


# ------------------------------------------------------------- special points


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_lattice_factors_at_integer_indices_are_finite(dtype):
    delta = torch.zeros((2, 3), dtype=dtype, requires_grad=True)
    n_cells = torch.tensor([3.0, 4.0, 5.0], dtype=dtype, requires_grad=True)
    value = sincg_fraction(delta[0, 0], n_cells[0])
    d_delta, d_n = torch.autograd.grad(value, (delta, n_cells))
    assert value.item() == 3.0
    assert d_delta.abs().sum() == 0 and d_n.tolist() == [1.0, 0.0, 0.0]
    reciprocal = torch.eye(3, dtype=dtype) * 0.01
    for shape in CrystalShape:
        value = lattice_factor(shape, delta, n_cells, 1.0, reciprocal)
        grads = torch.autograd.grad(value.sum(), (delta, n_cells), allow_unused=True)
        assert torch.isfinite(value).all(), shape
        assert all(g is None or torch.isfinite(g).all() for g in grads), shape


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_fused_kernel_at_integer_indices(dtype):
    """h, k, l exactly integer (q = 0 and q on a reciprocal-lattice point): value F²(Na Nb Nc)²,
    zero gradient in q, dI/dNa = 2 F² Na Nb² Nc²."""
    table = StructureFactors(default_F=10.0, dtype=dtype)
    q = torch.tensor([[0.0, 0.0, 0.0], [2.0, -1.0, 3.0]], dtype=dtype, requires_grad=True)
    miller = torch.eye(3, dtype=dtype, requires_grad=True)
    n_cells = torch.tensor([3.0, 4.0, 5.0], dtype=dtype, requires_grad=True)
    value = bragg_sum(q, miller, n_cells, table)
    d_q, d_miller, d_n = torch.autograd.grad(value.sum(), (q, miller, n_cells))
    expected = 100.0 * 60.0 ** 2
    assert value.tolist() == [expected, expected]
    assert d_q.abs().max() == 0
    assert torch.isfinite(d_miller).all()
    torch.testing.assert_close(d_n, 2 * 2 * 100.0 * torch.tensor([3 * 20.0 ** 2, 4 * 15.0 ** 2, 5 * 12.0 ** 2],
                                                               dtype=dtype))


def test_polarization_on_the_beam_is_one_and_smooth():
    incident = torch.tensor([1.0, 0.0, 0.0], dtype=F64)
    diffracted = incident.clone().requires_grad_()
    kahn = _input(0.7)
    value = polarization_factor(incident, diffracted, torch.tensor([0.0, 0.0, 1.0], dtype=F64), kahn)
    grads = torch.autograd.grad(value, (diffracted, kahn))
    assert value.item() == 1.0
    assert all(torch.isfinite(g).all() for g in grads)


def _all_parameters_at_special_points():
    """Every differentiable parameter as a tensor, at phi = 0, mosaic 0, misset 0, all detector
    angles 0 (two-theta included) and the beam centre on the centre of pixel (8, 8)."""
    crystal = dict(cell_a=_input(100.0), cell_b=_input(100.0), cell_c=_input(100.0),
                   cell_alpha=_input(90.0), cell_beta=_input(90.0), cell_gamma=_input(90.0),
                   misset_deg=(_input(0.0), _input(0.0), _input(0.0)), phi_start_deg=_input(0.0),
                   osc_range_deg=_input(0.0), phi_steps=1, mosaic_spread_deg=_input(0.0),
                   N_cells=_input([3.0, 4.0, 5.0]))
    detector = dict(distance_mm=_input(100.0), beam_center_f=_input(2.4), beam_center_s=_input(2.4),
                    detector_rotx_deg=_input(0.0), detector_roty_deg=_input(0.0),
                    detector_rotz_deg=_input(0.0), detector_twotheta_deg=_input(0.0))
    beam = dict(wavelength_A=_input(1.0), polarization_factor=_input(0.0), fluence=_input(1e29))
    return crystal, detector, beam


def _leaves(*groups):
    leaves = []
    for group in groups:
        for value in group.values():
            values = value if isinstance(value, tuple) else (value,)
            leaves += [v for v in values if isinstance(v, torch.Tensor)]
    return leaves


@pytest.mark.parametrize("c_quirks", [False, True])
@pytest.mark.parametrize("shape", list(CrystalShape))
def test_no_nan_at_special_points(shape, c_quirks):
    crystal, detector, beam = _all_parameters_at_special_points()
    image = render(crystal=dict(crystal, shape=shape), detector=detector, beam=beam, c_quirks=c_quirks)
    leaves = _leaves(crystal, detector, beam)
    grads = torch.autograd.grad(image.square().sum(), leaves, allow_unused=True)
    assert torch.isfinite(image).all()
    assert image[8, 8] == image.max(), "the direct beam pixel is the brightest"
    assert all(torch.isfinite(g).all() for g in grads if g is not None)
    if shape is not CrystalShape.TOPHAT:  # piecewise constant in the crystal's orientation
        assert all(g is not None for g in grads)


def test_pixel_exactly_on_the_beam():
    """pix0 placed so that pixel (8, 8)'s centre is exactly on the beam: q = 0 there, every
    domain gives h = k = l = 0, and the value is F² (Na Nb Nc)² Ω with Ω = pixel² / distance²."""
    pixel_m = torch.tensor(0.3, dtype=F64) * 1e-3
    centre = pixel_m * 8.5
    pix0 = (0.1, centre, -centre)
    crystal, _, beam = _all_parameters_at_special_points()
    crystal.update(mosaic_spread_deg=_input(0.5), mosaic_domains=3)
    image = render(crystal=crystal, detector=dict(pix0_override_m=pix0), beam=dict(beam, fluence=1 / R_E_SQR_M2))
    leaves = _leaves(crystal, beam)
    grads = torch.autograd.grad(image[8, 8], leaves, allow_unused=True)
    expected = SMALL_CRYSTAL["default_F"] ** 2 * 60.0 ** 2 * (0.3e-3 / 0.1) ** 2
    assert image[8, 8].item() == pytest.approx(expected, rel=1e-12)
    assert all(g is None or torch.isfinite(g).all() for g in grads)


# ------------------------------------------------------------------ mosaic seed


def test_mosaic_domains_do_not_depend_on_the_spread():
    axes, factors = mosaic_axes_and_factors(42, 5)
    for spread in (0.0, 0.2, 1.0):
        crystal = Crystal(CrystalConfig(mosaic_spread_deg=spread, mosaic_domains=5, mosaic_seed=42), dtype=F64)
        rotations = crystal.mosaic_rotations()
        # R = cos θ I + sin θ [u]x + (1 − cos θ) u uᵀ: axis from the antisymmetric part, angle from the trace
        angle = torch.arccos(((rotations.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1))
        assert np.allclose(angle.numpy(), np.radians(spread) * factors, atol=1e-7)
        if spread > 0:
            antisymmetric = rotations - rotations.transpose(-1, -2)
            axis = torch.stack([antisymmetric[:, 2, 1], antisymmetric[:, 0, 2], antisymmetric[:, 1, 0]], -1)
            axis = axis[1:] / axis[1:].norm(dim=-1, keepdim=True)
            assert np.allclose(axis.numpy(), axes[1:], atol=1e-9)
    again_axes, again_factors = mosaic_axes_and_factors(42, 5)
    assert (again_axes == axes).all() and (again_factors == factors).all()


def test_image_is_smooth_in_the_mosaic_spread():
    """image(s + ds) − image(s) is O(ds) pixel by pixel, with the slope autograd gives."""
    spread = _input(0.5)
    image = render(crystal=dict(mosaic_spread_deg=spread))
    (slope,) = torch.autograd.grad(image.sum(), spread)
    with torch.no_grad():
        base = render()
        changes = {ds: render(crystal=dict(mosaic_spread_deg=0.5 + ds)) - base for ds in (1e-3, 1e-4)}
    torch.testing.assert_close(changes[1e-3], 10 * changes[1e-4], rtol=0.02, atol=1e-3 * base.max().item())
    assert changes[1e-4].sum().item() / 1e-4 == pytest.approx(slope.item(), rel=1e-3)


# -------------------------------------------------------- the tutorial geometry


TUTORIAL_WAVELENGTH_A = 0.9768
TUTORIAL_DETECTOR = DetectorConfig(
    distance_mm=231.274660, pixel_size_mm=0.172, fpixels=2463, spixels=2527,
    detector_convention=DetectorConvention.CUSTOM, beam_center_f=217.742295, beam_center_s=213.907080,
    custom_fdet_vector=(0.999982, -0.005998, -0.000118), custom_sdet_vector=(-0.005998, -0.999970, -0.004913),
    custom_odet_vector=(-0.000088, 0.004914, -0.999988), custom_beam_vector=(0.00051387949, 0.0, -0.99999986),
    pix0_override_m=(-216.336293e-3, 215.205512e-3, -230.200866e-3), oversample=1)
TUTORIAL_BEAM = BeamConfig(wavelength_A=TUTORIAL_WAVELENGTH_A, flux=1e18, exposure=1.0, beamsize_mm=1.0)


@pytest.fixture(scope="module")
def tutorial():
    """Loss of the tutorial's refinement (MSE against the image at phi 0°, mosaic 0.2°) and its
    gradient, as functions of phi_start_deg and mosaic_spread_deg."""
    data = files("nanobrag_torch") / "data"
    matrix = np.loadtxt(str(data / "A.mat"))[:3] / TUTORIAL_WAVELENGTH_A
    reflections = np.loadtxt(str(data / "scaled.hkl"))
    indices = reflections[:, :3].astype(int)
    low, high = indices.min(0), indices.max(0)
    grid = np.zeros(high - low + 1)
    grid[tuple((indices - low).T)] = reflections[:, 3]
    metadata = dict(zip(("h_min", "k_min", "l_min"), low.tolist()), **dict(zip(("h_max", "k_max", "l_max"),
                                                                               high.tolist())))

    def image(phi, mosaic, dtype):
        config = CrystalConfig(mosflm_a_star=matrix[:, 0], mosflm_b_star=matrix[:, 1], mosflm_c_star=matrix[:, 2],
                               N_cells=(36, 47, 29), spindle_axis=(-1, 0, 0), mosaic_seed=42, mosaic_domains=5,
                               phi_start_deg=phi, mosaic_spread_deg=mosaic)
        crystal = Crystal(config, (torch.tensor(grid), metadata), dtype=dtype)
        return Simulator(crystal, Detector(TUTORIAL_DETECTOR, dtype=dtype), TUTORIAL_BEAM).run()

    with torch.no_grad():
        target = image(0.0, 0.2, torch.float32)

    def loss(phi, mosaic, dtype=torch.float32):
        with torch.no_grad():
            return torch.nn.functional.mse_loss(image(phi, mosaic, dtype), target.to(dtype)).item()

    def gradient(phi, mosaic, dtype=torch.float32):
        phi, mosaic = (torch.tensor(v, dtype=dtype, requires_grad=True) for v in (phi, mosaic))
        value = torch.nn.functional.mse_loss(image(phi, mosaic, dtype), target.to(dtype))
        return [g.item() for g in torch.autograd.grad(value, (phi, mosaic))]

    return loss, gradient


@pytest.fixture(scope="module")
def tutorial_gradient_at_phi_zero(tutorial):
    _, gradient = tutorial
    return gradient(0.0, 0.3)


def test_tutorial_phi_gradient_matches_central_difference(tutorial):
    """The seed tutorial's check: phi = 0.5°, eps = 0.001°, agreement within 5 % in float32."""
    loss, gradient = tutorial
    eps = 1e-3
    numerical = (loss(0.5 + eps, 0.2) - loss(0.5 - eps, 0.2)) / (2 * eps)
    analytic, _ = gradient(0.5, 0.2)
    assert analytic == pytest.approx(numerical, rel=0.05)


def test_tutorial_mosaic_gradient_matches_central_difference(tutorial, tutorial_gradient_at_phi_zero):
    loss, _ = tutorial
    eps = 1e-3
    numerical = (loss(0.0, 0.3 + eps) - loss(0.0, 0.3 - eps)) / (2 * eps)
    assert tutorial_gradient_at_phi_zero[1] == pytest.approx(numerical, rel=0.05)


def test_tutorial_gradient_at_phi_zero_float32_matches_float64(tutorial, tutorial_gradient_at_phi_zero):
    _, gradient = tutorial
    reference = gradient(0.0, 0.3, torch.float64)
    assert tutorial_gradient_at_phi_zero == pytest.approx(reference, rel=0.02)
