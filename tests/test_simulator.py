"""Simulator behaviour beyond parity: chunking, intended physics versus C's quirks, dtypes and
devices, structure-factor inputs, and what one run computes (each thing once)."""

from __future__ import annotations

import dataclasses
import math
import warnings

import pytest
import torch

from nanobrag_torch import (Beam, BeamConfig, ConfigError, Crystal, CrystalConfig, CrystalShape, Detector,
                            DetectorConfig, Simulator, StructureFactors)
from nanobrag_torch.constants import R_E_SQR_M2
from nanobrag_torch.layout import PixelLayout
from nanobrag_torch.prepared import APPLIED_AFTER_CHUNKS, FUSED_KERNEL_INPUTS, MAX_KEPT_BYTES, PanelPlanes, PreparedRun
from nanobrag_torch.render import render


def simulate(crystal=None, detector=None, beam=None, dtype=torch.float64, c_quirks=False, **run):
    crystal_config = CrystalConfig(**{**dict(cell_a=70, cell_b=80, cell_c=90, cell_alpha=75, cell_beta=85,
                                             cell_gamma=95, misset_deg=(10, -20, 30), default_F=100,
                                             N_cells=(5, 5, 5)), **(crystal or {})})
    detector_config = DetectorConfig(**{**dict(distance_mm=100, pixel_size_mm=0.1, fpixels=48, spixels=40,
                                                oversample=1), **(detector or {})})
    simulator = Simulator(Crystal(crystal_config, dtype=dtype), Detector(detector_config, dtype=dtype),
                          BeamConfig(**(beam or {})), c_quirks=c_quirks)
    return simulator, simulator.run(**run)


def test_chunking_does_not_change_the_image():
    _, whole = simulate()
    _, chunked = simulate(pixel_batch_size=7)
    assert whole.shape == (40, 48)
    torch.testing.assert_close(chunked, whole, rtol=1e-13, atol=0)


def test_a_large_run_recomputes_chunks_even_through_the_fused_kernel():
    """What the fused kernel's chunks keep for the backward pass is bounded: beyond
    MAX_KEPT_BYTES the chunks are recomputed instead."""
    simulator, _ = simulate()
    prepared = simulator.prepare()
    crystal_gradient = dataclasses.replace(prepared, cell_vectors_m=prepared.cell_vectors_m.clone().requires_grad_())
    assert prepared.kept_bytes_per_pixel() == 8 * 8  # one sub-pixel, layer and source; 8 float64 numbers
    largest_kept = MAX_KEPT_BYTES // prepared.kept_bytes_per_pixel()
    assert not crystal_gradient.recomputes_chunks(largest_kept)
    assert crystal_gradient.recomputes_chunks(largest_kept + 1)
    assert not prepared.recomputes_chunks(10 ** 12)  # no gradient: nothing to keep


def test_progress_reports_every_chunk():
    calls = []
    simulate(pixel_batch_size=500, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (1920, 1920) and len(calls) == 4


def test_roi_and_mask_leave_zeros_and_keep_the_rest():
    _, full = simulate()
    _, roi = simulate(detector={"roi": (5, 20, 3, 10)})
    assert roi[3:11, 5:21].equal(full[3:11, 5:21])
    outside = torch.ones_like(roi, dtype=torch.bool)
    outside[3:11, 5:21] = False
    assert (roi[outside] == 0).all()
    mask = torch.ones(40, 48)
    mask[0, 0] = 0
    _, masked = simulate(detector={"mask": mask})
    assert masked[0, 0] == 0 and masked[0, 1] == full[0, 1]


def test_float32_agrees_with_float64():
    _, double = simulate()
    _, single = simulate(dtype=torch.float32)
    assert single.dtype == torch.float32
    torch.testing.assert_close(single.double(), double, rtol=2e-3, atol=1e-3 * float(double.max()))


def test_phi_carry_over_only_with_c_quirks():
    """Three steps from phi = 0: the intended image averages the steps at 0°, 1° and 2°; C's
    reuses the last step's rotation for the step at exactly 0, so it averages 2°, 1° and 2°."""
    steps = {"phi_start_deg": 0.0, "osc_range_deg": 3.0, "phi_steps": 3}
    _, intended = simulate(steps)
    _, quirky = simulate(steps, c_quirks=True)
    single = {angle: simulate({"phi_start_deg": angle})[1] for angle in (0.0, 1.0, 2.0)}
    torch.testing.assert_close(intended, (single[0.0] + single[1.0] + single[2.0]) / 3, rtol=1e-12, atol=0)
    torch.testing.assert_close(quirky, (2 * single[2.0] + single[1.0]) / 3, rtol=1e-12, atol=0)
    assert (quirky - intended).abs().max() > 0.03 * intended.max(), "the carry-over changes the image"


def test_water_background_intended_is_single_scaled():
    """With every F = 0 the image is the water background alone. C multiplies it by r_e² · fluence
    a second time (7.94 at 1e30 photons/m²) and divides it by the steps (1 here): the ratio is
    exact up to the rounding of a product of a few float64 factors (a few 1e-16)."""
    beam = {"water_size_um": 0.05, "fluence": 1e30}
    _, intended = simulate({"default_F": 0.0}, beam=beam)
    _, quirky = simulate({"default_F": 0.0}, beam=beam, c_quirks=True)
    assert (intended > 0).all()
    torch.testing.assert_close(quirky / intended, torch.full_like(intended, R_E_SQR_M2 * 1e30), rtol=1e-14, atol=0)
    _, with_bragg = simulate(beam=beam)
    _, bragg_only = simulate(beam={"fluence": 1e30})
    torch.testing.assert_close(with_bragg - bragg_only, intended, rtol=1e-9, atol=1e-12 * float(with_bragg.max()))


def test_thickness_intended_weights_each_layer_by_its_capture():
    detector = {"detector_thick_um": 300.0, "detector_thicksteps": 3, "detector_abs_um": 200.0}
    _, intended = simulate(detector=detector)
    _, quirky = simulate(detector=detector, c_quirks=True)
    _, thin = simulate()
    # intended: the layers' captures add up to about 1 - exp(-thickness/depth) of the photons
    # (a little more at oblique incidence); C sums the three layers and multiplies by the last
    # layer's capture only
    absorbed = 1 - math.exp(-300 / 200)
    assert absorbed <= float(intended.sum() / thin.sum()) <= 1.0
    last_layer = math.exp(-200 / 200) - math.exp(-300 / 200)
    assert float(quirky.sum() / thin.sum()) == pytest.approx(3 * last_layer, rel=0.05)


def test_oversample_thick_without_thickness_zeroes_the_image_only_in_c():
    _, intended = simulate(detector={"oversample_thick": True})
    _, quirky = simulate(detector={"oversample_thick": True}, c_quirks=True)
    assert intended.sum() > 0 and quirky.sum() == 0


@pytest.mark.parametrize("shape", list(CrystalShape))
def test_every_shape_renders_finite_images(shape):
    _, image = simulate({"shape": shape})
    assert torch.isfinite(image).all() and image.sum() > 0


def test_c_interpolation_switch_off_warns_once():
    grid = torch.rand(5, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 100
    meta = dict(h_min=-2, h_max=2, k_min=-2, k_max=2, l_min=-2, l_max=2)
    config = CrystalConfig(cell_a=70, cell_b=80, cell_c=90, N_cells=(2, 2, 2), interpolate=True)
    detector = Detector(DetectorConfig(distance_mm=100, fpixels=16, spixels=16))
    images = []
    for batch in (None, 5):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            images.append(Simulator(Crystal(config, (grid, meta)), detector, c_quirks=True).run(batch))
        assert sum("interpolation switched off" in str(w.message) for w in caught) == 1
    assert torch.isfinite(images[0]).all()
    assert torch.equal(images[0], images[1]), "the switch-off carries over from chunk to chunk"
    intended = Simulator(Crystal(config, (grid, meta)), detector).run()
    assert not torch.equal(intended, images[0])


def test_compiled_kernel_gives_the_eager_numbers(monkeypatch):
    """NANOBRAGG_COMPILE=1 runs the forward kernel through torch.compile; same image, same gradient."""
    def image_and_gradient():
        phi = torch.tensor(0.3, dtype=torch.float32, requires_grad=True)
        _, image = simulate({"phi_start_deg": phi, "mosaic_spread_deg": 0.3, "mosaic_domains": 3},
                            dtype=torch.float32)
        image.square().sum().backward()
        return image.detach(), phi.grad

    monkeypatch.setenv("NANOBRAGG_COMPILE", "0")
    eager_image, eager_grad = image_and_gradient()
    monkeypatch.setenv("NANOBRAGG_COMPILE", "1")
    compiled_image, compiled_grad = image_and_gradient()
    torch.testing.assert_close(compiled_image, eager_image, rtol=1e-5, atol=1e-6 * float(eager_image.max()))
    torch.testing.assert_close(compiled_grad, eager_grad, rtol=1e-4, atol=0)


# ------------------------------------------------------------------ devices and dtypes
def test_device_and_dtype_follow_the_crystal_and_the_detector():
    crystal = Crystal(CrystalConfig(default_F=1.0, N_cells=(3, 3, 3)), dtype=torch.float32)
    simulator = Simulator(crystal, Detector(DetectorConfig(fpixels=8, spixels=8), dtype=torch.float32))
    assert (simulator.device, simulator.dtype) == (torch.device("cpu"), torch.float32)
    assert simulator.beam.dtype == torch.float32
    assert simulator.run().dtype == torch.float32


@pytest.mark.parametrize("crystal, detector, simulator, message", [
    ({"dtype": torch.float32}, {}, {}, "the crystal's dtype is torch.float32 but the detector's is torch.float64"),
    ({}, {"device": "meta"}, {}, "the crystal's device is cpu but the detector's is meta"),
    ({}, {}, {"dtype": torch.float32}, r"Simulator\(dtype=torch.float32\) but the crystal and detector have dtype "
                                        r"torch.float64"),
    ({}, {}, {"device": "meta"}, r"Simulator\(device=meta\) but the crystal and detector have device cpu"),
])
def test_disagreeing_devices_or_dtypes_are_errors(crystal, detector, simulator, message):
    with pytest.raises(ValueError, match=message):
        Simulator(Crystal(CrystalConfig(), **crystal), Detector(DetectorConfig(), **detector), **simulator)


# ------------------------------------------------------------------ structure factors
def _table():
    grid = torch.rand((7, 9, 5), generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 50 + 1
    return grid, dict(h_min=-3, h_max=3, k_min=-4, k_max=4, l_min=-2, l_max=2)


def _image(crystal):
    config = DetectorConfig(distance_mm=100, pixel_size_mm=0.3, fpixels=12, spixels=12)
    return Simulator(crystal, Detector(config)).run()


def test_structure_factors_argument_and_the_tutorial_attributes_give_the_same_image():
    config = CrystalConfig(cell_a=30, cell_b=35, cell_c=40, N_cells=(4, 4, 4), default_F=3.0)
    grid, metadata = _table()
    from_pair = _image(Crystal(config, (grid, metadata)))
    from_object = _image(Crystal(config, StructureFactors(grid, metadata, default_F=3.0)))
    crystal = Crystal(config, beam_config=BeamConfig())  # the tutorial's call: the data set on the crystal,
    crystal.hkl_data = grid.float()                      # the table before its metadata
    crystal.hkl_metadata = metadata
    assert crystal.hkl_metadata is metadata
    from_attributes = _image(crystal)
    assert torch.equal(from_pair, from_object)
    torch.testing.assert_close(from_attributes, from_pair, rtol=1e-6, atol=0)  # the float32 table
    assert not torch.equal(from_pair, _image(Crystal(config)))


def test_inconsistent_structure_factors_are_errors_when_used():
    config = CrystalConfig(cell_a=30, default_F=3.0)
    grid, metadata = _table()
    crystal = Crystal(config)
    crystal.hkl_data = grid
    with pytest.raises(ValueError, match="needs its metadata"):
        _image(crystal)
    crystal.hkl_metadata = dict(metadata, l_max=3)
    with pytest.raises(ValueError, match=r"has shape \(7, 9, 5\) but .* need \(7, 9, 6\)"):
        _image(crystal)
    with pytest.raises(ValueError, match="must be a StructureFactors, a .grid, metadata. pair or None, got float"):
        Crystal(config, 3.0)


def test_outside_the_table_the_crystal_default_F_applies_whatever_the_table_carries():
    """One rule (as_structure_factors): read_hkl_file's StructureFactors carries the file's fill
    value, and a crystal uses its own default_F outside the box, as with the (grid, metadata) pair."""
    config = CrystalConfig(cell_a=30, cell_b=35, cell_c=40, N_cells=(4, 4, 4), default_F=3.0)
    grid, metadata = _table()
    from_pair = _image(Crystal(config, (grid, metadata)))
    assert torch.equal(_image(Crystal(config, StructureFactors(grid, metadata, default_F=0.0))), from_pair)
    outside = torch.tensor([[10.0, 0.0, 0.0]], dtype=torch.float64)
    assert Crystal(config, StructureFactors(grid, metadata, default_F=0.0)).structure_factors().nearest(
        outside).tolist() == [3.0]


# ------------------------------------------------------------------ computed once per run
@pytest.fixture
def calls(monkeypatch):
    """Counts of detector geometries (all panels' at once), source lists and structure-factor
    tables built."""
    counts = {"geometry": 0, "sources": 0, "structure factors": 0}

    def counting(cls, name, key):
        original = getattr(cls, name)

        def wrapper(*args, **kwargs):
            counts[key] += 1
            return original(*args, **kwargs)
        monkeypatch.setattr(cls, name, wrapper)

    counting(Detector, "geometries", "geometry")
    counting(Beam, "sources", "sources")
    counting(StructureFactors, "__init__", "structure factors")
    return counts


@pytest.mark.parametrize("requires_grad", [False, True])
def test_one_run_builds_geometry_sources_and_table_once(calls, requires_grad):
    phi = torch.tensor(0.2, dtype=torch.float64, requires_grad=requires_grad)
    config = CrystalConfig(cell_a=30, cell_b=35, cell_c=40, N_cells=(4, 4, 4), phi_start_deg=phi,
                           mosaic_spread_deg=0.2, mosaic_domains=2)
    detector = DetectorConfig(distance_mm=100, pixel_size_mm=0.3, fpixels=12, spixels=10, oversample=None)
    beam = BeamConfig(hdivrange_mrad=1.0, hdivsteps=2)
    image = Simulator(Crystal(config, _table()), Detector(detector), beam).run(pixel_batch_size=17)
    if requires_grad:
        image.sum().backward()
    assert calls == {"geometry": 1, "sources": 1, "structure factors": 1}


def test_one_command_run_builds_geometry_sources_and_table_once(calls, tmp_path, monkeypatch, capsys):
    from nanobrag_torch.cli import main
    from nanobrag_torch.io.hkl import write_fdump

    monkeypatch.chdir(tmp_path)
    write_fdump("Fdump.bin", *_table())
    argv = ("-cell 30 35 40 90 90 90 -N 4 -distance 100 -pixel 0.3 -detpixels 12 -divergence 1 -divsteps 2 "
            "-nonoise -nopgm -noprogress").split()
    assert main(argv) == 0
    assert "sources" in capsys.readouterr().out
    # the run's geometry, and the report's (its derived quantities: beam centre, XDS and DIALS
    # origins), which the prepared run does not carry
    assert calls == {"geometry": 2, "sources": 1, "structure factors": 1}


def test_recompute_is_decided_by_every_prepared_tensor():
    """A prepared tensor that needs a gradient makes chunks recompute in the backward pass, unless
    the fused kernel differentiates it itself."""
    simulator, _ = simulate()
    prepared = simulator.prepare()
    assert prepared.fused and not prepared.recomputes_chunks()
    tensors = {field.name: value for field in dataclasses.fields(PreparedRun)
               if isinstance(value := getattr(prepared, field.name), torch.Tensor)}
    assert set(tensors) > {"incident", "wavelength_m", "water_background", "cell_vectors_m"}
    for name, value in tensors.items():
        changed = dataclasses.replace(prepared, **{name: value.detach().clone().requires_grad_()})
        unfused = dataclasses.replace(changed, options=dataclasses.replace(changed.options, fused=False))
        if name in APPLIED_AFTER_CHUNKS:  # multiplies the rendered chunks: nothing kept for it
            assert not changed.recomputes_chunks() and not unfused.recomputes_chunks(), name
            continue
        assert changed.recomputes_chunks() is (name not in FUSED_KERNEL_INPUTS), name
        assert unfused.recomputes_chunks(), name
    panels = dataclasses.replace(prepared.panels, origin_m=prepared.panels.origin_m.clone().requires_grad_())
    assert dataclasses.replace(prepared, panels=panels).recomputes_chunks()


def test_automatic_oversampling_beyond_the_cap_is_a_config_error():
    """A 0.1 mm crystal 100 mm away at 1 Å on 0.1 mm pixels: nanoBragg's rule asks for about
    3,000 sub-pixels per edge (9 million per pixel); refused with the numbers and the way out."""
    crystal = Crystal(CrystalConfig(cell_a=100, cell_b=100, cell_c=100, N_cells=(10000, 10000, 10000), default_F=1.0))
    detector = Detector(DetectorConfig(distance_mm=100, pixel_size_mm=0.1, fpixels=4, spixels=4, oversample=None))
    expected = (r"DetectorConfig.oversample = None is invalid: .* is 300[01] for a 100 µm crystal, "
                r"more than MAX_OVERSAMPLE = 1000; give a value \(-oversample\)")
    with pytest.raises(ConfigError, match=expected):
        Simulator(crystal, detector, BeamConfig(wavelength_A=1.0)).run()


def test_the_render_reads_only_the_prepared_run_and_renders_panels_apart():
    """A prepared run of two panels (here the planes of two differently placed detectors)
    renders each panel as the run of that detector alone does: the render takes its pixels'
    panel from the flat index and reads nothing but the PreparedRun."""
    near = {"distance_mm": 90, "detector_rotz_deg": 3.0}
    far = {"distance_mm": 120, "detector_roty_deg": -4.0, "beam_center_f": 1.7}
    first, first_image = simulate(detector=near)
    second, second_image = simulate(detector=far)
    one, two = first.prepare(), second.prepare()
    both = dataclasses.replace(one, layout=PixelLayout(one.layout.panel_shapes * 2), regions=one.regions * 2,
                               panels=PanelPlanes.of([first.detector.geometry(), second.detector.geometry()]))
    image = render(both)
    assert image.shape == (2, 40, 48)
    torch.testing.assert_close(image[0], first_image, rtol=1e-13, atol=0)
    torch.testing.assert_close(image[1], second_image, rtol=1e-13, atol=0)
    pixels = torch.tensor([40 * 48 + 5, 3, 2 * 40 * 48 - 1, 40 * 48 - 1])
    torch.testing.assert_close(render(both, pixels=pixels), image.reshape(-1)[pixels], rtol=1e-13, atol=0)


def test_a_simulator_renders_only_the_runs_it_prepared():
    first, _ = simulate()
    second, _ = simulate({"misset_deg": (0, 0, 0)})
    with pytest.raises(ValueError, match="another simulator"):
        first.run(prepared=second.prepare())
    torch.testing.assert_close(render(second.prepare()), second.run(), rtol=0, atol=0)
