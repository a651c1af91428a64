"""Atomic writes: a failed writer leaves the old file intact and no temporary file behind."""

import os

import pytest

from common.io import atomic_path, atomic_write_text


def test_success_replaces_and_failure_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.npy"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            assert tmp.parent == tmp_path and tmp.suffix == ".npy" and tmp != target
            tmp.write_text("half")
            raise RuntimeError("writer died")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.npy"]
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert oct(target.stat().st_mode & 0o777) == "0o644"


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        atomic_write_text(tmp_path / "nope" / "x.txt", "x")
