"""Multi-panel detectors: the configuration's rules, the panels' pixels, and the panel and group
moves (shift and rotation) checked against independent pixel identities. Parity with nanoBragg C
panel by panel is in test_parity.py."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from nanobrag_torch import BeamConfig, ConfigError, Crystal, CrystalConfig, Detector, DetectorConfig, Simulator
from nanobrag_torch.config import DetectorConvention, MultiPanelDetectorConfig
from nanobrag_torch.refine.parameters import configs_with, parse_parameters

PIXEL_MM = 0.1
FAST, SLOW = 20, 16


def panel(origin_mm, **changes):
    """A CUSTOM panel facing the beam (+x), fast along +z, slow along −y, its corner at ``origin_mm``."""
    return DetectorConfig(**{**dict(detector_convention=DetectorConvention.CUSTOM, custom_fdet_vector=(0, 0, 1),
                                    custom_sdet_vector=(0, -1, 0), custom_odet_vector=(1, 0, 0),
                                    custom_beam_vector=(1, 0, 0), pix0_override_m=tuple(x * 1e-3 for x in origin_mm),
                                    pixel_size_mm=PIXEL_MM, fpixels=FAST, spixels=SLOW, oversample=1), **changes})


MOVED_RTOL = 1e-9
"""A moved panel's pixel positions differ from the reference's by rounding (~1e-16 relative);
where a lattice factor is steep (N = 5) that changes a pixel by up to ~1e-12 relative: far
below this, and far above it any error of a pixel's position (1e-3 of a pixel moves a spot's
pixels by ~1e-3 relative)."""

PANELS = (panel((100.0, 1.0, -2.2)), panel((100.0, 1.5, 0.3)))


def render(detector_config, grad=False):
    crystal = Crystal(CrystalConfig(cell_a=70, cell_b=80, cell_c=90, cell_alpha=75, cell_beta=85, cell_gamma=95,
                                    misset_deg=(10, -20, 30), default_F=100, N_cells=(5, 5, 5)))
    simulator = Simulator(crystal, Detector(detector_config), BeamConfig(wavelength_A=1.0))
    if grad:
        return simulator.run()
    with torch.no_grad():
        return simulator.run()


def test_a_multipanel_image_is_panels_slow_fast_and_a_single_panel_stays_slow_fast():
    image = render(MultiPanelDetectorConfig(panels=PANELS))
    assert image.shape == (2, SLOW, FAST)
    for i, config in enumerate(PANELS):
        torch.testing.assert_close(image[i], render(config), rtol=1e-13, atol=0)
    assert render(PANELS[0]).shape == (SLOW, FAST)
    assert Detector(MultiPanelDetectorConfig(panels=PANELS)).layout.panel_shapes == ((SLOW, FAST),) * 2


def test_each_panel_keeps_its_own_roi_and_mask():
    mask = torch.ones(SLOW, FAST)
    mask[3, 4] = 0
    config = MultiPanelDetectorConfig(panels=(PANELS[0], dataclasses.replace(PANELS[1], roi=(2, 10, 1, 8),
                                                                             mask=mask)))
    image, whole = render(config), render(MultiPanelDetectorConfig(panels=PANELS))
    torch.testing.assert_close(image[0], whole[0], rtol=0, atol=0)
    expected = torch.zeros(SLOW, FAST, dtype=whole.dtype)
    expected[1:9, 2:11] = whole[1, 1:9, 2:11]
    expected[3, 4] = 0
    torch.testing.assert_close(image[1], expected, rtol=0, atol=0)


def test_geometry_of_a_multipanel_detector_points_to_geometries():
    detector = Detector(MultiPanelDetectorConfig(panels=PANELS))
    with pytest.raises(ValueError, match="2 panels; geometries"):
        detector.geometry()
    assert len(detector.geometries()) == 2
    torch.testing.assert_close(detector.geometries()[1].pix0_m, torch.tensor([0.1, 1.5e-3, 0.3e-3],
                                                                             dtype=torch.float64))


@pytest.mark.parametrize("changes, message", [
    (dict(oversample=2), r"panels\[1\]\.oversample = 2 is invalid: must equal panel 0's oversample = 1"),
    (dict(detector_thick_um=50.0), r"panels\[1\]\.detector_thick_um = 50\.0 is invalid"),
    (dict(custom_beam_vector=(1, 0.01, 0)), r"panels\[1\]\.beam direction = .* the beam direction must equal"),
    (dict(detector_convention=DetectorConvention.XDS), r"panels\[1\]\.beam direction"),
])
def test_panels_must_share_the_beam_and_the_sensor_settings(changes, message):
    with pytest.raises(ConfigError, match=r"MultiPanelDetectorConfig\." + message):
        MultiPanelDetectorConfig(panels=(PANELS[0], dataclasses.replace(PANELS[1], **changes)))


@pytest.mark.parametrize("fields, message", [
    (dict(panels=PANELS[:1]), r"panels = .* at least two DetectorConfig"),
    (dict(panels=(PANELS[0], "panel")), r"panels\[1\] = 'panel' is invalid: must be a DetectorConfig"),
    (dict(panels=PANELS, groups=((0, 2),)), r"groups\[0\] = \(0, 2\) is invalid: .* from 0 to 1"),
    (dict(panels=PANELS, groups=((0, 0),)), r"groups\[0\] = \(0, 0\) is invalid: must be a tuple of distinct"),
    (dict(panels=PANELS, groups=((0, 1),), group_shift_mm=((0, 0),)), r"group_shift_mm\[0\] = \(0, 0\) .* 3 values"),
    (dict(panels=PANELS, groups=((0, 1),), group_rotation_deg=((0, 0, 0), (0, 0, 0))),
     r"group_rotation_deg = .* one triple per group \(1\)"),
    (dict(panels=PANELS, groups=((0, 1),), group_rotation_deg=((0, float("nan"), 0),)),
     r"group_rotation_deg\[0\]\[1\] = nan is invalid: must be finite"),
])
def test_malformed_multipanel_configs_are_refused_by_field(fields, message):
    with pytest.raises(ConfigError, match=r"MultiPanelDetectorConfig\." + message):
        MultiPanelDetectorConfig(**fields)


def test_a_shift_of_one_pixel_along_fast_moves_the_image_by_one_pixel():
    """Shifting a panel by one pixel along its fast axis puts its pixel (s, f) where pixel
    (s, f + 1) was: the shifted image is the unshifted one of a wider panel, cut one column on."""
    wide = render(dataclasses.replace(PANELS[0], fpixels=FAST + 1))
    shifted = render(dataclasses.replace(PANELS[0], panel_shift_mm=(PIXEL_MM, 0.0, 0.0)))
    torch.testing.assert_close(shifted, wide[:, 1:], rtol=MOVED_RTOL, atol=0)


def test_a_half_turn_about_the_normal_turns_the_image_through_the_panel_centre():
    """A half turn about the normal through the panel's centre takes pixel (s, f) to
    (S − 1 − s, F − 1 − f): the turned image is the unturned one flipped along both axes."""
    turned = render(dataclasses.replace(PANELS[0], panel_rotation_deg=(0.0, 0.0, 180.0)))
    torch.testing.assert_close(turned, render(PANELS[0]).flip(0, 1), rtol=MOVED_RTOL, atol=0)


def test_a_group_moves_its_panels_as_one_body():
    """A group of both panels shifted by one pixel along the first panel's fast axis shifts
    each of them (their axes are parallel); a half turn of a group holding one panel is the
    panel's own half turn (the group's centre is the panel's); panels outside a group stay."""
    shifted = render(MultiPanelDetectorConfig(panels=PANELS, groups=((0, 1),), group_shift_mm=((PIXEL_MM, 0, 0),)))
    for i, config in enumerate(PANELS):
        torch.testing.assert_close(shifted[i], render(dataclasses.replace(config, fpixels=FAST + 1))[:, 1:],
                                   rtol=MOVED_RTOL, atol=0)
    turned = render(MultiPanelDetectorConfig(panels=PANELS, groups=((1,),), group_rotation_deg=((0, 0, 180.0),)))
    torch.testing.assert_close(turned[0], render(PANELS[0]), rtol=0, atol=0)
    torch.testing.assert_close(turned[1], render(PANELS[1]).flip(0, 1), rtol=MOVED_RTOL, atol=0)


def test_gradients_of_a_panel_shift_and_a_group_rotation_match_finite_differences():
    """The refinement's route (parameter names, configs_with, the render) is differentiable in a
    panel's shift and a group's rotation: autograd against central differences of step h, whose
    error is O(h²) times the third derivative (about 1e-6 relative here)."""
    configs = {"crystal": CrystalConfig(), "detector": MultiPanelDetectorConfig(panels=PANELS, groups=((0, 1),)),
               "beam": BeamConfig()}
    parameters, start = parse_parameters({"detector.panels[1].shift_mm[0]": 0.05,
                                          "detector.groups[0].rotation_deg[2]": 0.3}, configs)
    weights = torch.linspace(0, 1, 2 * SLOW * FAST, dtype=torch.float64).reshape(2, SLOW, FAST)

    def loss(values, grad=False):
        _, detector, _ = configs_with(configs, parameters, values)
        return (render(detector, grad=grad) * weights).sum()

    values = [v.clone().requires_grad_() for v in start.unbind()]
    gradients = torch.autograd.grad(loss(values, grad=True), values)
    step = 1e-4
    for k, gradient in enumerate(gradients):
        up, down = [float(v) for v in start], [float(v) for v in start]
        up[k] += step
        down[k] -= step
        difference = (float(loss(up)) - float(loss(down))) / (2 * step)
        assert abs(float(gradient)) > 1e-3
        assert float(gradient) == pytest.approx(difference, rel=1e-5)


def test_panel_and_group_parameter_names():
    multi = {"crystal": CrystalConfig(), "detector": MultiPanelDetectorConfig(panels=PANELS, groups=((1,),)),
             "beam": BeamConfig()}
    (parameter,), _ = parse_parameters({"detector.panels[1].rotation_deg[2]": 0.0}, multi)
    assert (parameter.field, parameter.panel, parameter.index) == ("panel_rotation_deg", 1, 2)
    (parameter,), _ = parse_parameters({"detector.panels[0].pixel_size_mm": 0.1}, multi)
    assert (parameter.field, parameter.panel, parameter.index) == ("pixel_size_mm", 0, None)
    for name, message in [("detector.distance_mm", r"several panels; name the panel, e.g. 'detector.panels\[0\]"),
                          ("detector.panels[2].shift_mm[0]", r"has 2 panels \(0 to 1\)"),
                          ("detector.groups[1].shift_mm[0]", r"has 1 groups \(0 to 0\)"),
                          ("detector.groups[0].rotation_deg", r"holds 3 values"),
                          ("detector.groups[0].distance_mm[0]", r"'shift_mm\[i\]' and 'rotation_deg\[i\]'")]:
        with pytest.raises(ValueError, match=message):
            parse_parameters({name: 0.0}, multi)
    single = dict(multi, detector=PANELS[0])
    with pytest.raises(ValueError, match="a DetectorConfig of one panel"):
        parse_parameters({"detector.panels[0].shift_mm[0]": 0.0}, single)
    (parameter,), _ = parse_parameters({"detector.panel_shift_mm[1]": 0.0}, single)
    assert (parameter.field, parameter.panel, parameter.index) == ("panel_shift_mm", None, 1)


def _quadrant(k, **changes):
    """Panel k of a 2 × 2 detector of 120 × 120 pixels at 80 mm around the beam (+x), 1.8 mm
    gaps between the panels."""
    fast_mm = -12.9 if k % 2 == 0 else 0.9
    slow_mm = -12.9 if k < 2 else 0.9
    return panel((80.0, -slow_mm, fast_mm), fpixels=120, spixels=120, **changes)


def test_a_shifted_and_turned_panel_is_refined_back():
    """Panel 2 of a quadrant detector is 0.3 mm off along fast, −0.2 mm along slow and turned
    0.3° in its plane; refined from where it should be (all moves 0) against the noise-free
    image of the truth, the refinement finds it (to a tenth of its standard errors)."""
    from nanobrag_torch.refine import refine

    crystal = CrystalConfig(cell_a=30.0, cell_b=35.0, cell_c=40.0, cell_beta=95.0, misset_deg=(10.0, 20.0, 30.0),
                            N_cells=(20, 20, 20), default_F=100.0, mosaic_spread_deg=0.3, mosaic_domains=5,
                            mosaic_seed=11)
    beam = BeamConfig(wavelength_A=1.0, fluence=3e25)
    truth = {"detector.panels[2].shift_mm[0]": 0.3, "detector.panels[2].shift_mm[1]": -0.2,
             "detector.panels[2].rotation_deg[2]": 0.3}
    moved = _quadrant(2, panel_shift_mm=(0.3, -0.2, 0.0), panel_rotation_deg=(0.0, 0.0, 0.3))
    true_detector = MultiPanelDetectorConfig(panels=(_quadrant(0), _quadrant(1), moved, _quadrant(3)))
    with torch.no_grad():
        observed = Simulator(Crystal(crystal), Detector(true_detector), beam).run()
    assert float(observed[2].sum()) > 100  # the moved panel holds spots
    start = MultiPanelDetectorConfig(panels=tuple(_quadrant(k) for k in range(4)))
    result = refine(observed, {name: 0.0 for name in truth}, crystal=crystal, detector=start, beam=beam,
                    dtype=torch.float64)
    assert result.converged, result.message
    for name, value in truth.items():
        assert abs(result.values[name] - value) < 0.1 * result.stderr[name], (name, result.values[name])
