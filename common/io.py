"""Atomic file output: nothing already written is lost or half-overwritten.

Every writer in the project goes through :func:`atomic_path`: the content is written to a temporary file in the
target's folder, which is renamed over the target (``os.replace``) only when writing succeeded, and removed otherwise.
"""

from __future__ import annotations

import os
import tempfile
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
