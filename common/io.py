"""Atomic file output: nothing already written is lost or half-overwritten.

Every writer in the project goes through :func:`atomic_path`: the content is written to a temporary file in the
target's folder, which is renamed over the target (``os.replace``) only when writing succeeded, and removed otherwise.
:func:`atomic_folder` does the same for a whole folder of outputs. :func:`output_folder_writable` /
:func:`output_file_writable` check an output path at the start of a command, before any work, and
:func:`terminate_as_exit` turns SIGTERM into ``SystemExit`` so that temporary files are removed when a job is killed.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on normal exit rename it over ``path``, on error delete it.

    ``suffix`` (default: the target's own, e.g. ``.npy``, ``.gif``) ends the temporary name, for writers that infer
    the format from the extension or append one. The target's folder must exist. The file gets mode 0644.
    """
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise FileNotFoundError(f"cannot write {path}: folder {folder} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix if suffix is None else suffix, dir=folder)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; give the file ordinary permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`); returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


class OutputPathError(ValueError):
    """An output path that cannot be written (a file where a folder is expected, a read-only folder, ...)."""


def _nearest_existing(path: Path) -> Path:
    """``path`` itself or its closest existing ancestor."""
    probe = path.absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def output_folder_writable(path: str | os.PathLike, what: str = "--out") -> Path:
    """Check, before any work, that ``path`` can be an output folder: it is a folder or does not exist yet, and the
    folder itself (or its nearest existing ancestor, where it would be created) accepts a new file. The check
    creates and removes one empty temporary file there (permission bits alone do not tell, e.g. for root or on a
    read-only mount); it creates no folder. Returns ``path``; raises :class:`OutputPathError` naming ``what`` and
    the path otherwise."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"{what} {path}: expected an output folder, found an existing file")
    base = _nearest_existing(path)
    if not base.is_dir():
        raise OutputPathError(f"{what} {path}: cannot create the folder: {base} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".stepvip-write-check.", dir=base)
    except OSError as exc:
        where = "the folder" if base == path.absolute() else f"its parent {base}"
        raise OutputPathError(f"{what} {path}: expected a writable folder, {where} is not writable "
                              f"({exc.strerror or exc})") from exc
    os.close(fd)
    os.remove(probe)
    return path


def output_file_writable(path: str | os.PathLike, what: str = "--out") -> Path:
    """Like :func:`output_folder_writable` for an output *file*: ``path`` is not a folder and its folder (created
    later if missing) is writable. Returns ``path``."""
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{what} {path}: expected an output file name, found an existing folder")
    output_folder_writable(path.parent if str(path.parent) else Path("."), what=f"{what} {path}: folder")
    return path


@contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a new temporary folder beside ``path``; on normal exit it replaces ``path`` as a whole.

    The old folder (if any) is first renamed aside, the new one renamed into place, and only then the old one
    deleted; if the second rename fails the old folder is put back. A reader therefore finds either the complete
    old set of files or the complete new one under ``path``, never a mix (for an instant between the two renames
    ``path`` is absent). On any error (or ``SystemExit`` from a signal handler, :func:`terminate_as_exit`) the
    temporary folder is removed and ``path`` is left untouched. ``path``'s parent is created if missing; an
    existing *file* at ``path`` raises :class:`OutputPathError` before anything is written.

    The temporary folders carry the writer's process id and host (``.<name>.new-<pid>@<host>-*``, ``.old-`` alike). A
    writer killed outright (SIGKILL, power loss) cannot clean up, so the next call on the same host first removes the
    folders of writers that no longer run, and puts a killed writer's old set back if it died between the two renames
    (another host's folders, on a shared filesystem, are left alone: its process ids mean nothing here).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"{path}: expected an output folder, found an existing file")
    path.parent.mkdir(parents=True, exist_ok=True)
    _clean_after_killed_writers(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.new-{_writer_id()}-", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)  # mkdtemp creates 0700
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-{_writer_id()}-", dir=path.parent))
            os.rename(path, old / path.name)  # a rename within one folder tree: atomic on POSIX
        try:
            os.rename(tmp, path)
        except BaseException:
            if old is not None:
                os.rename(old / path.name, path)
                old.rmdir()
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _writer_id() -> str:
    """``<pid>@<host>``: who writes an :func:`atomic_folder` temporary folder."""
    return f"{os.getpid()}@{socket.gethostname()}"


def _writer_gone(owner: str) -> bool:
    """True when ``owner`` (``<pid>@<host>``, :func:`_writer_id`) is a process of this host that no longer runs."""
    pid, _, host = owner.partition("@")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another host's, or not one of ours: leave it
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def _clean_after_killed_writers(path: Path) -> None:
    """Remove the temporary folders of :func:`atomic_folder` writers of ``path`` that were killed outright; if one
    died between its two renames (``path`` absent, the old set inside its ``.old-`` folder), put the old set back."""
    for kind in ("old", "new"):  # old first: a restore must happen before anything else touches path
        prefix = f".{path.name}.{kind}-"
        for folder in path.parent.iterdir():
            owner = folder.name[len(prefix):].rpartition("-")[0]  # mkdtemp's random tail has no "-"
            if not (folder.name.startswith(prefix) and folder.is_dir() and _writer_gone(owner)):
                continue
            kept = folder / path.name
            if kind == "old" and kept.is_dir() and not path.exists():
                os.rename(kept, path)
            shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def terminate_as_exit(code: int = 143) -> Iterator[None]:
    """Turn SIGTERM (and SIGHUP) into ``SystemExit(code)`` inside the block, so that ``finally`` clauses and the
    context managers above remove their temporary files when a job is killed. Outside the main thread (where
    Python cannot install signal handlers) the block runs unchanged. The previous handlers are restored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame) -> None:
        raise SystemExit(code)

    signals = [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    previous = {s: signal.signal(s, handler) for s in signals}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def free_bytes(path: str | os.PathLike) -> int:
    """Free bytes on the file system that holds ``path`` (or its nearest existing ancestor)."""
    return int(shutil.disk_usage(_nearest_existing(Path(path))).free)
