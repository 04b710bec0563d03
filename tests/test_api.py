"""The public API: the top-level names, the module paths the tutorial uses, and its calls."""

from __future__ import annotations

import importlib

import torch

import nanobrag_torch


def test_top_level_names():
    from nanobrag_torch import (Beam, BeamConfig, Crystal, CrystalConfig, CrystalShape,  # noqa: F401
                                Detector, DetectorConfig, DetectorConvention, DetectorPivot, NoiseConfig,
                                Simulator, StructureFactors, read_hkl_file, read_mosflm_matrix,
                                reciprocal_to_real_cell, tutorial_data_paths)
    assert len(set(nanobrag_torch.__all__)) == len(nanobrag_torch.__all__)
    for name in nanobrag_torch.__all__:
        assert getattr(nanobrag_torch, name).__module__.startswith("nanobrag_torch."), name


def test_module_paths_of_the_tutorial():
    paths = {"nanobrag_torch.config": ["CrystalConfig", "DetectorConfig", "BeamConfig", "DetectorConvention"],
             "nanobrag_torch.models.crystal": ["Crystal"], "nanobrag_torch.models.detector": ["Detector"],
             "nanobrag_torch.simulator": ["Simulator"],
             "nanobrag_torch.io.mosflm": ["read_mosflm_matrix", "reciprocal_to_real_cell"],
             "nanobrag_torch.io.hkl": ["read_hkl_file"], "nanobrag_torch.datasets": ["tutorial_data_paths"]}
    for module, names in paths.items():
        for name in names:
            assert getattr(importlib.import_module(module), name) is getattr(nanobrag_torch, name)


def test_the_tutorial_calls(tmp_path):
    """The seed tutorial's way: keyword configs, hkl_data then hkl_metadata set on the crystal,
    keyword Simulator arguments with an explicit (matching) device and dtype."""
    from nanobrag_torch import BeamConfig, Crystal, CrystalConfig, Detector, DetectorConfig, Simulator
    from nanobrag_torch.io.hkl import read_hkl_file

    path = tmp_path / "small.hkl"
    path.write_text("".join(f"{h} {k} {l} {10 + h + k + l}\n" for h in range(-3, 4) for k in range(-3, 4)
                            for l in range(-3, 4)))
    hkl_grid, hkl_meta = read_hkl_file(str(path), default_F=0.0)
    device, dtype = torch.device("cpu"), torch.float32
    beam_config = BeamConfig(wavelength_A=1.0)
    crystal = Crystal(CrystalConfig(cell_a=30, cell_b=30, cell_c=30, N_cells=(3, 3, 3)), beam_config=beam_config,
                      device=device, dtype=dtype)
    crystal.hkl_data = hkl_grid.to(device=device, dtype=dtype)
    crystal.hkl_metadata = hkl_meta
    detector = Detector(DetectorConfig(distance_mm=50, fpixels=16, spixels=16, pixel_size_mm=0.5), device=device,
                        dtype=dtype)
    simulator = Simulator(crystal=crystal, detector=detector, beam_config=beam_config, device=device, dtype=dtype)
    image = simulator.run(pixel_batch_size=128)
    assert image.shape == (16, 16) and image.dtype == dtype and image.max() > 0
