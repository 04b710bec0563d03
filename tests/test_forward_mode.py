"""Forward-mode derivatives (the refinement's Jacobian columns) and rendering a set of pixels.

* the fused kernel's ``jvp`` against central differences of its forward, for tangents of the
  scattering vectors, the cell vectors and a real ``N_cells``;
* a whole image's forward-mode derivative with respect to every kind of parameter against the
  reverse-mode gradient of the same image (``vᵀ (J t) = (vᵀ J) t``), on the fused and the
  autograd paths;
* ``Simulator.run(pixels=...)`` returns exactly those pixels of the full image.
"""

import dataclasses

import pytest
import torch
import torch.autograd.forward_ad as forward_ad

from nanobrag_torch import (BeamConfig, Crystal, CrystalConfig, CrystalShape, Detector, DetectorConfig, Simulator,
                            StructureFactors)
from nanobrag_torch.kernels import bragg_sum_forward, bragg_sum_jvp

F64 = torch.float64
CRYSTAL = CrystalConfig(cell_a=70.0, cell_b=80.0, cell_c=90.0, cell_alpha=75.0, cell_beta=85.0, cell_gamma=95.0,
                        misset_deg=(10.0, -20.0, 30.0), default_F=100.0, N_cells=(4, 5, 3),
                        phi_start_deg=0.3, osc_range_deg=0.4, phi_steps=2,
                        mosaic_spread_deg=0.5, mosaic_domains=3, mosaic_seed=7)
DETECTOR = DetectorConfig(distance_mm=100.0, pixel_size_mm=0.3, fpixels=16, spixels=16,
                          beam_center_f=2.2, beam_center_s=3.1, oversample=1)
BEAM = BeamConfig(wavelength_A=1.0, polarization_factor=0.5)


def image(crystal=CRYSTAL, detector=DETECTOR, beam=BEAM, **run):
    simulator = Simulator(Crystal(crystal, dtype=F64), Detector(detector, dtype=F64), beam)
    return simulator.run(**run)


def test_kernel_jvp_matches_central_differences():
    generator = torch.Generator().manual_seed(3)
    q = torch.randn(64, 3, generator=generator, dtype=F64) * 3e9
    miller = torch.randn(3, 9, generator=generator, dtype=F64) * 3e-9
    n_cells = torch.tensor([5.0, 7.3, 3.0], dtype=F64)
    table = StructureFactors(None, None, 10.0)
    tangents = (torch.randn(q.shape, generator=generator, dtype=F64) * 1e9,
                torch.randn(miller.shape, generator=generator, dtype=F64) * 1e-9,
                torch.randn(3, generator=generator, dtype=F64))
    step = 1e-6
    plus = bragg_sum_forward(q + step * tangents[0], miller + step * tangents[1], n_cells + step * tangents[2], table)
    minus = bragg_sum_forward(q - step * tangents[0], miller - step * tangents[1], n_cells - step * tangents[2], table)
    expected = (plus - minus) / (2 * step)
    jvp = bragg_sum_jvp(q, miller, n_cells, table, *tangents)
    torch.testing.assert_close(jvp, expected, rtol=1e-6, atol=1e-9 * float(expected.abs().max()))
    only_q = bragg_sum_jvp(q, miller, n_cells, table, tangents[0], None, None)
    assert not torch.equal(only_q, jvp)


FIELDS = [
    ("crystal", "phi_start_deg", None), ("crystal", "mosaic_spread_deg", None), ("crystal", "misset_deg", 1),
    ("crystal", "cell_b", None), ("crystal", "N_cells", 0), ("detector", "distance_mm", None),
    ("detector", "beam_center_f", None), ("detector", "detector_rotz_deg", None), ("beam", "wavelength_A", None),
]


def _replace(configs, group, field, index, value):
    current = getattr(configs[group], field)
    if index is not None:
        items = list(current)
        items[index] = value
        value = tuple(items)
    return {**configs, group: dataclasses.replace(configs[group], **{field: value})}


@pytest.mark.parametrize("shape", [CrystalShape.SQUARE, CrystalShape.GAUSS], ids=["fused", "autograd"])
@pytest.mark.parametrize("group,field,index", FIELDS, ids=[f"{g}.{f}{'' if i is None else [i]}" for g, f, i in FIELDS])
def test_forward_mode_equals_reverse_mode(group, field, index, shape):
    configs = {"crystal": dataclasses.replace(CRYSTAL, shape=shape), "detector": DETECTOR, "beam": BEAM}
    current = getattr(configs[group], field)
    start = float(current if index is None else current[index])
    weights = torch.rand(DETECTOR.spixels, DETECTOR.fpixels, generator=torch.Generator().manual_seed(1), dtype=F64)

    leaf = torch.tensor(start, dtype=F64, requires_grad=True)
    rendered = image(**_replace(configs, group, field, index, leaf))
    (reverse,) = torch.autograd.grad((weights * rendered).sum(), leaf)

    with torch.no_grad(), forward_ad.dual_level():
        dual = forward_ad.make_dual(torch.tensor(start, dtype=F64), torch.tensor(1.0, dtype=F64))
        tangent = forward_ad.unpack_dual(image(**_replace(configs, group, field, index, dual))).tangent
    assert tangent is not None and float(tangent.abs().max()) > 0
    torch.testing.assert_close((weights * tangent).sum(), reverse, rtol=1e-9, atol=0)


def test_run_renders_the_given_pixels_only():
    full = image().reshape(-1)
    pixels = torch.tensor([0, 17, 100, 255, 3])
    torch.testing.assert_close(image(pixels=pixels), full[pixels], rtol=1e-13, atol=0)
    assert image(pixels=torch.tensor([], dtype=torch.int64)).shape == (0,)


@pytest.mark.parametrize("pixels,words", [(torch.tensor([0, 256]),
                                           r"outside the detector.s 256 pixels \(\(spixels, fpixels\) = \(16, 16\)"),
                                          (torch.tensor([-1]), "outside"),
                                          (torch.tensor([0.0, 1.0]), "integer flat pixel indices"),
                                          (torch.tensor([[0, 1]]), "1-D")])
def test_run_rejects_bad_pixels(pixels, words):
    with pytest.raises(ValueError, match=words):
        image(pixels=pixels)
