"""forward_jacobian: one forward-mode pass per parameter, against reverse-mode autograd in float64."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from nanobrag_torch import BeamConfig, Crystal, CrystalConfig, Detector, DetectorConfig, Simulator
from nanobrag_torch.refine import forward_jacobian


def reverse_jacobian(function, values):
    return torch.autograd.functional.jacobian(function, values)


def test_a_function_of_three_parameters_matches_reverse_mode():
    def function(x):
        grid = torch.arange(20, dtype=torch.float64).reshape(4, 5)
        return torch.sin(x[0] * grid) * x[1] ** 2 + torch.exp(-x[2] * grid) / (1 + x[0])

    values = torch.tensor([0.3, -1.2, 0.05], dtype=torch.float64)
    value, jacobian = forward_jacobian(function, values)
    assert value.shape == (4, 5) and jacobian.shape == (4, 5, 3)
    assert torch.equal(value, function(values))
    torch.testing.assert_close(jacobian, reverse_jacobian(function, values), rtol=1e-12, atol=1e-12)


def test_the_simulated_image_matches_reverse_mode():
    """Distance, beam centre and phi of a small still: the simulator's forward-mode derivatives
    (its fused kernel's JVP) against its backward."""
    crystal = CrystalConfig(cell_a=30, cell_b=32, cell_c=34, cell_alpha=88, N_cells=(3, 3, 3), default_F=100,
                            mosaic_spread_deg=0.5, mosaic_domains=3)
    detector = DetectorConfig(distance_mm=50, fpixels=12, spixels=12, pixel_size_mm=0.5)
    beam = BeamConfig(wavelength_A=1.0)

    def image(x):
        detector_config = dataclasses.replace(detector, distance_mm=x[0], beam_center_f=x[1])
        crystal_config = dataclasses.replace(crystal, phi_start_deg=x[2])
        return Simulator(Crystal(crystal_config, dtype=torch.float64), Detector(detector_config, dtype=torch.float64),
                         beam).run()

    values = torch.tensor([50.0, 3.2, 10.0], dtype=torch.float64)
    value, jacobian = forward_jacobian(image, values)
    assert value.max() > 0 and bool((jacobian != 0).any(dim=(0, 1)).all())
    torch.testing.assert_close(value, image(values), rtol=1e-12, atol=0)
    torch.testing.assert_close(jacobian, reverse_jacobian(image, values), rtol=1e-9, atol=1e-9 * value.max().item())


def test_a_parameter_the_output_does_not_depend_on_has_a_zero_column():
    value, jacobian = forward_jacobian(lambda x: 3 * x[:1], torch.tensor([1.0, 2.0]))
    assert torch.equal(value, torch.tensor([3.0]))
    assert torch.equal(jacobian, torch.tensor([[3.0, 0.0]]))
    value, jacobian = forward_jacobian(lambda x: torch.ones(2), torch.tensor([1.0]))
    assert torch.equal(jacobian, torch.zeros(2, 1))


@pytest.mark.parametrize("values", [torch.tensor(1.0), torch.ones(2, 2), torch.ones(0)])
def test_values_must_be_a_non_empty_vector(values):
    with pytest.raises(ValueError, match="1-d tensor"):
        forward_jacobian(lambda x: x, values)
