"""Parity with nanoBragg C on the 37 golden cases (tests/golden, copied from shared/golden).

Each case runs twice: through the library path (``parse_args`` + ``build_simulator``, float64)
and through the command (``python -m nanobrag_torch ... -floatfile out.bin`` in a temporary
folder holding A.mat and scaled.hkl). The two tutorial cases are 256×256 crops of a 2463×2527
detector; they are rendered as a ROI. Pass: correlation ≥ 0.9999 and relative L1 ≤ 1e-3.
"""

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nanobrag_torch.cli import build_simulator, parse_args

GOLDEN = Path(__file__).parent / "golden"
DATA = Path(__file__).parents[1] / "src" / "nanobrag_torch" / "data"
CASES = json.loads((GOLDEN / "manifest.json").read_text())["cases"]
OUTPUT_FLAGS = {"-floatfile", "-floatimage", "-intfile", "-noisefile", "-pgmfile", "-img", "-mask"}


def metrics(ours, ref):
    a = ours.astype(np.float64).ravel()
    b = ref.astype(np.float64).ravel()
    rel_l1 = np.abs(a - b).sum() / (np.abs(b).sum() or 1.0)
    corr = 1.0 if a.std() == 0 and b.std() == 0 and np.allclose(a, b) else float(np.corrcoef(a, b)[0, 1])
    return corr, rel_l1


def case_args(case):
    """The C arguments without output files, plus the ROI of a cropped case."""
    args, i = [], 0
    raw = case["args"]
    while i < len(raw):
        if raw[i] in OUTPUT_FLAGS:
            i += 2
            continue
        args.append(raw[i])
        i += 1
    if case.get("crop_of_full_image"):
        (s0, s1), (f0, f1) = case["crop_slow"], case["crop_fast"]
        args += ["-roi", str(f0), str(f1 - 1), str(s0), str(s1 - 1)]
    return args + ["-nonoise", "-nopgm", "-noprogress"]


def crop(image, case):
    if case.get("crop_of_full_image"):
        (s0, s1), (f0, f1) = case["crop_slow"], case["crop_fast"]
        return image.reshape(case["full_shape"])[s0:s1, f0:f1]
    return image.reshape(case["shape"])


def reference(case):
    with gzip.open(GOLDEN / case["file"]) as handle:
        return np.load(handle)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    for name in ("A.mat", "scaled.hkl"):
        shutil.copy(DATA / name, tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def assert_parity(ours, case):
    corr, rel = metrics(crop(ours, case), reference(case))
    assert corr >= 0.9999 and rel <= 1e-3, f"{case['id']}: corr={corr:.6f} relL1={rel:.2e}"


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_library_path(case, workdir):
    simulator, _ = build_simulator(parse_args(case_args(case)), dtype=torch.float64)
    with torch.no_grad():
        image = simulator.run().numpy().astype(np.float32)
    assert_parity(image, case)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_command(case, workdir):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [
        str(Path(__file__).parents[1] / "src"), os.environ.get("PYTHONPATH")])))
    command = [sys.executable, "-m", "nanobrag_torch"] + case_args(case) + ["-floatfile", "out.bin"]
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "writing out.bin as" in result.stdout
    assert_parity(np.fromfile(workdir / "out.bin", dtype="<f4"), case)


TUTORIAL_CROPS = [c for c in CASES if c.get("crop_of_full_image")]


@pytest.mark.parametrize("case", TUTORIAL_CROPS, ids=[c["id"] for c in TUTORIAL_CROPS])
def test_library_path_float32_tutorial_crops(case, workdir):
    """The refinement precision: in float32 the full-size tutorial geometry still matches C."""
    simulator, _ = build_simulator(parse_args(case_args(case)), dtype=torch.float32)
    with torch.no_grad():
        image = simulator.run()
    assert image.dtype == torch.float32
    assert_parity(image.numpy(), case)
