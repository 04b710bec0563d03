"""Atomic writes: a failed write leaves neither a half-written file nor a clobbered one."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from nanobrag_torch.io.atomic import atomic_write
from nanobrag_torch.io.smv import write_smv


def test_existing_file_survives_a_failure_inside_the_block(tmp_path):
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="simulated"):
        with atomic_write(path, "wb") as handle:
            handle.write(b"half")
            raise RuntimeError("simulated failure")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]  # no temporary left behind


def test_success_replaces_the_file(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    with atomic_write(path, "w") as handle:
        handle.write("new")
        assert path.read_text() == "old"  # nothing visible until the block ends
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_a_failed_write_creates_no_file(tmp_path):
    path = tmp_path / "new.bin"
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(path) as handle:
            handle.write(b"x")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_a_writer_that_fails_keeps_the_old_image(tmp_path):
    path = tmp_path / "intimage.img"
    path.write_bytes(b"old image")
    with pytest.raises(UnicodeEncodeError):  # SMV headers are ASCII
        write_smv(path, np.zeros((2, 2), dtype=np.uint16), {"HEADER_BYTES": "512", "NOTE": "Å"})
    assert path.read_bytes() == b"old image"
    assert [p.name for p in tmp_path.iterdir()] == ["intimage.img"]


def test_permissions_follow_the_umask_or_the_replaced_file(tmp_path):
    previous = os.umask(0o022)
    try:
        fresh = tmp_path / "fresh.bin"
        with atomic_write(fresh) as handle:
            handle.write(b"x")
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o644
    finally:
        os.umask(previous)
    private = tmp_path / "private.bin"
    private.write_bytes(b"old")
    private.chmod(0o600)
    with atomic_write(private) as handle:
        handle.write(b"new")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600


def test_missing_folder_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        with atomic_write(tmp_path / "no" / "such" / "file.bin"):
            pass
