"""The public API: the top-level names, the module paths the tutorial uses, its calls, and the
names of the reference that the examples import."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest
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


ROOT = Path(__file__).resolve().parents[1]


def reference_names() -> set:
    """The full names that docs/api.rst lists (its autosummary entries, read under the
    ``currentmodule`` in force)."""
    names, module = set(), ""
    for line in (ROOT / "docs" / "api.rst").read_text(encoding="utf-8").splitlines():
        if line.startswith(".. currentmodule::"):
            module = line.split("::")[1].strip()
        elif line.startswith("   ") and not line.strip().startswith(":") and re.fullmatch(r"[\w.]+", line.strip()):
            name = line.strip()
            names.add(name if name.startswith("nanobrag_torch") else f"{module}.{name}")
    return names


def full_name(module: str, name: str) -> str:
    value = getattr(importlib.import_module(module), name)
    if hasattr(value, "__module__") and hasattr(value, "__qualname__"):
        return f"{value.__module__}.{value.__qualname__}"
    return f"{module}.{name}"


def test_the_reference_lists_the_public_names_of_the_refinement_and_the_datasets():
    from nanobrag_torch import datasets, refine

    names = reference_names()
    for name in ("find_spots", "Spots", "forward_jacobian", "refine", "RefinementResult"):
        assert name in refine.__all__
        assert full_name("nanobrag_torch.refine", name) in names, name
    for name in ("tutorial_data_paths", "tutorial_experiment", "TutorialExperiment"):
        assert full_name("nanobrag_torch.datasets", name) in names, name
    assert callable(datasets.tutorial_experiment)


@pytest.mark.parametrize("example", sorted((ROOT / "examples").rglob("*.py")), ids=lambda path: path.name)
def test_examples_import_only_names_of_the_reference(example):
    names = reference_names()
    for node in ast.walk(ast.parse(example.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            assert not any(alias.name.startswith("nanobrag_torch.") for alias in node.names), ast.unparse(node)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "nanobrag_torch":
            for alias in node.names:
                assert full_name(node.module, alias.name) in names, f"{ast.unparse(node)}: {alias.name}"
