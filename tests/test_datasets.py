"""The tutorial's data ship inside the installed package."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import pytest

import nanobrag_torch
from nanobrag_torch.datasets import TutorialData, data_path, tutorial_data_paths


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
