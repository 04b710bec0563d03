"""The tutorial's data ship inside the installed package, and its experiment is one call."""

from __future__ import annotations

import dataclasses
import json
import shlex
from importlib import metadata
from pathlib import Path

import pytest
import torch

import nanobrag_torch
from nanobrag_torch import Crystal, Detector, DetectorConvention, Simulator, detector_region, read_hkl_file
from nanobrag_torch.cli import parse_args
from nanobrag_torch.datasets import (TutorialData, TutorialExperiment, data_path, tutorial_data_paths,
                                     tutorial_experiment)


def test_tutorial_data_paths_are_real_files_in_the_package():
    paths = tutorial_data_paths()
    assert isinstance(paths, TutorialData)
    package_dir = Path(nanobrag_torch.__file__).resolve().parent
    for path, name in ((paths.matrix, "A.mat"), (paths.hkl, "scaled.hkl")):
        assert isinstance(path, Path) and path.name == name and path.is_file()
        assert path.resolve().parent == package_dir / "data"
    assert paths.matrix.read_text().split()[:1] == ["-0.02837711"]
    assert paths.hkl.stat().st_size > 1_000_000


def test_data_path_names_a_missing_file():
    assert data_path("A.mat") == tutorial_data_paths().matrix
    with pytest.raises(FileNotFoundError, match="no_such_file"):
        data_path("no_such_file")


def _installed_from_a_wheel() -> bool:
    distribution = metadata.distribution("nanobrag-torch")
    direct_url = distribution.read_text("direct_url.json")
    editable = direct_url is not None and json.loads(direct_url).get("dir_info", {}).get("editable", False)
    return not editable


@pytest.mark.skipif(not _installed_from_a_wheel(), reason="an editable install has no wheel record")
def test_the_installed_wheel_records_the_data_files():
    recorded = {str(path) for path in metadata.files("nanobrag-torch")}
    assert {"nanobrag_torch/data/A.mat", "nanobrag_torch/data/scaled.hkl"} <= recorded
    assert Path(nanobrag_torch.__file__).parent.name == "nanobrag_torch"
    assert "site-packages" in Path(nanobrag_torch.__file__).parts


def test_console_script_is_declared():
    scripts = {entry.name: entry.value for entry in metadata.entry_points(group="console_scripts")}
    assert scripts.get("nanobragg") == "nanobrag_torch.cli:main"


def test_the_tutorial_experiment_is_the_tutorials_truth():
    experiment = tutorial_experiment()
    assert isinstance(experiment, TutorialExperiment)
    with pytest.raises(dataclasses.FrozenInstanceError):
        experiment.crystal = None
    crystal, detector = experiment.crystal, experiment.detector
    assert (crystal.N_cells, crystal.mosaic_spread_deg, crystal.mosaic_domains, crystal.mosaic_seed) == ((36, 47, 29),
                                                                                                       0.2, 5, 42)
    assert (crystal.phi_start_deg, crystal.osc_range_deg, crystal.phi_steps) == (0.0, 0.0, 1)
    assert (detector.fpixels, detector.spixels, detector.detector_convention) == (2463, 2527, DetectorConvention.CUSTOM)
    assert detector.pix0_override_m is None
    assert experiment.beam.wavelength_A == 0.9768
    table = experiment.structure_factors
    assert table.grid.dtype == torch.float64 and int((table.grid > 0).sum()) == 64333
    assert tutorial_experiment(dtype=torch.float32).structure_factors.grid.dtype == torch.float32


def test_the_tutorial_command_line_reads_into_the_same_experiment(monkeypatch):
    """The ``nanobragg`` command reads the printed command line (in the data folder) into
    configurations that render the same image (on a crop of the detector, in float64)."""
    experiment = tutorial_experiment()
    monkeypatch.chdir(tutorial_data_paths().matrix.parent)
    words = shlex.split(experiment.command.replace("\\\n", " "))
    assert words[0] == "nanoBragg"
    plan = parse_args(words[1:])
    images = []
    for crystal, detector, beam, table in ((experiment.crystal, experiment.detector, experiment.beam,
                                            experiment.structure_factors),
                                           (plan.crystal, plan.detector, plan.beam, read_hkl_file(plan.hklfile))):
        region = detector_region(detector, fast0=1456, slow0=800, fast_pixels=48, slow_pixels=48)
        with torch.no_grad():
            images.append(Simulator(Crystal(crystal, table, dtype=torch.float64), Detector(region, dtype=torch.float64),
                                    beam).run())
    assert images[0].max() > 1
    assert torch.equal(images[0], images[1])
