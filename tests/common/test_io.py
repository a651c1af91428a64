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


# ---------------------------------------------------------------- output checks and whole-folder replacement


def test_output_folder_writable(tmp_path, monkeypatch):
    from common.io import OutputPathError, output_file_writable, output_folder_writable

    assert output_folder_writable(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert os.listdir(tmp_path) == []  # the check creates nothing
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputPathError, match=r"--out .*/f: expected an output folder, found an existing file"):
        output_folder_writable(tmp_path / "f")
    with pytest.raises(OutputPathError, match="is a file, not a folder"):
        output_folder_writable(tmp_path / "f" / "sub", what="--dir")
    with pytest.raises(OutputPathError, match="found an existing folder"):
        output_file_writable(tmp_path)
    assert output_file_writable(tmp_path / "x.npy") == tmp_path / "x.npy"

    import common.io as io

    def refuse(*args, **kwargs):  # a read-only folder (permission bits do not stop root, so simulate the refusal)
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(io.tempfile, "mkstemp", refuse)
    with pytest.raises(OutputPathError, match="not writable .*Permission denied"):
        output_folder_writable(tmp_path / "ro")
    assert sorted(os.listdir(tmp_path)) == ["f"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_output_folder_read_only(tmp_path):
    from common.io import OutputPathError, output_folder_writable

    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(OutputPathError, match="not writable"):
            output_folder_writable(ro)
    finally:
        ro.chmod(0o700)


def _files(folder):
    return {p.name: p.read_text() for p in folder.iterdir()}


def test_atomic_folder_replaces_the_whole_set(tmp_path):
    from common.io import atomic_folder

    target = tmp_path / "run"
    with atomic_folder(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target and not target.exists()
        (tmp / "a.txt").write_text("old a")
        (tmp / "b.txt").write_text("old b")
    assert _files(target) == {"a.txt": "old a", "b.txt": "old b"}
    assert oct(target.stat().st_mode & 0o777) == "0o755"
    with atomic_folder(target) as tmp:
        (tmp / "a.txt").write_text("new a")
        assert _files(target) == {"a.txt": "old a", "b.txt": "old b"}  # readers see the old set meanwhile
    assert _files(target) == {"a.txt": "new a"}  # the new set, not a mix (b.txt of the old set is gone)
    assert os.listdir(tmp_path) == ["run"]  # no temporary or old folder left


def test_atomic_folder_failure_keeps_the_old_set(tmp_path):
    from common.io import atomic_folder

    target = tmp_path / "run"
    target.mkdir()
    (target / "a.txt").write_text("old")
    for exc in (RuntimeError("writer died"), SystemExit(143), KeyboardInterrupt()):
        with pytest.raises(type(exc)):
            with atomic_folder(target) as tmp:
                (tmp / "a.txt").write_text("half")
                raise exc
        assert _files(target) == {"a.txt": "old"}
        assert os.listdir(tmp_path) == ["run"]


def test_atomic_folder_cleans_up_after_a_writer_killed_outright(tmp_path):
    """SIGKILL leaves a writer's temporary folders behind; the next write removes those of dead writers only, and
    restores the old set when the writer died between its two renames."""
    import socket
    import subprocess
    import sys

    from common.io import atomic_folder

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    host = socket.gethostname()
    gone, alive = f"{int(dead.stdout)}@{host}", f"{os.getpid()}@{host}"
    target = tmp_path / "run"
    (tmp_path / f".run.new-{gone}-abc").mkdir()  # killed while writing
    (tmp_path / f".run.old-{gone}-def" / "run").mkdir(parents=True)  # killed between the renames: run absent
    (tmp_path / f".run.old-{gone}-def" / "run" / "a.txt").write_text("old a")
    (tmp_path / f".run.new-{alive}-ghi").mkdir()  # a writer still running: not ours to touch
    (tmp_path / f".run.new-{int(dead.stdout)}@elsewhere-jkl").mkdir()  # another host's writer: its pid means nothing
    with atomic_folder(target) as tmp:
        assert _files(target) == {"a.txt": "old a"}  # the old set is back before the new one is written
        (tmp / "a.txt").write_text("new a")
    assert _files(target) == {"a.txt": "new a"}
    left = [f".run.new-{alive}-ghi", f".run.new-{int(dead.stdout)}@elsewhere-jkl", "run"]
    assert sorted(os.listdir(tmp_path)) == sorted(left)


def test_atomic_folder_puts_the_old_set_back_when_the_final_rename_fails(tmp_path, monkeypatch):
    import common.io as io
    from common.io import atomic_folder

    target = tmp_path / "run"
    target.mkdir()
    (target / "a.txt").write_text("old")
    real = os.rename
    calls = []

    def flaky(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # the new folder into place
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(io.os, "rename", flaky)
    with pytest.raises(OSError, match="No space"):
        with atomic_folder(target) as tmp:
            (tmp / "a.txt").write_text("new")
    monkeypatch.undo()
    assert _files(target) == {"a.txt": "old"}
    assert os.listdir(tmp_path) == ["run"]  # neither the new folder nor the aside folder is left


def test_atomic_folder_refuses_a_file(tmp_path):
    from common.io import OutputPathError, atomic_folder

    (tmp_path / "run").write_text("x")
    with pytest.raises(OutputPathError, match="existing file"):
        with atomic_folder(tmp_path / "run"):
            pass
    assert os.listdir(tmp_path) == ["run"]


def test_terminate_as_exit_cleans_up_atomic_writes(tmp_path):
    import signal

    from common.io import terminate_as_exit

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as exc:
        with terminate_as_exit():
            with atomic_path(tmp_path / "big.npy") as tmp:
                tmp.write_text("partial")
                os.kill(os.getpid(), signal.SIGTERM)
    assert exc.value.code == 143
    assert os.listdir(tmp_path) == []
    assert signal.getsignal(signal.SIGTERM) == before


def test_demo_outputs_are_all_or_nothing(tmp_path):
    """A command wrapped by ``all_or_nothing`` replaces its ``--out`` folder as a whole on success (no stale files of
    an earlier run) and leaves it untouched when it fails or raises."""
    import argparse

    from common.recon.cli import all_or_nothing

    out = tmp_path / "run"
    out.mkdir()
    (out / "old_method.gif").write_text("old")

    def ok(args):
        (args.out / "samples.nc").write_text("new")
        return 0

    def fails(args):
        (args.out / "half.nc").write_text("partial")
        return 2

    def raises(args):
        (args.out / "half.nc").write_text("partial")
        raise RuntimeError("killed")

    assert all_or_nothing(fails)(argparse.Namespace(out=out)) == 2
    with pytest.raises(RuntimeError):
        all_or_nothing(raises)(argparse.Namespace(out=out))
    assert sorted(p.name for p in out.iterdir()) == ["old_method.gif"]
    args = argparse.Namespace(out=out)
    assert all_or_nothing(ok)(args) == 0 and args.out == out
    assert sorted(p.name for p in out.iterdir()) == ["samples.nc"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no temporary folders left
