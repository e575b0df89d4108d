"""Atomic file writes: a reader (or a killed run) never sees half a file under the real name.

    atomic_write(path, text_or_bytes)        # the common case
    with atomic_path(path) as temporary:     # a writer that wants a path (save_file, save_pretrained)
        save_file(tensors, temporary)

The data goes to a hidden temporary name beside ``path`` (same folder, so the same file
system) and is renamed onto ``path`` only when the write finished; on an exception the
temporary file is removed and ``path`` keeps its old content. The temporary name carries
the process id, so two processes writing the same file (a shared cache) do not collide.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "atomic_write"]


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` when the block succeeds."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def atomic_write(path: str | Path, data: str | bytes, *, encoding: str = "utf-8") -> Path:
    """Write ``data`` (text or bytes) to ``path`` atomically; returns ``path``."""
    path = Path(path)
    with atomic_path(path) as temporary:
        if isinstance(data, bytes):
            temporary.write_bytes(data)
        else:
            temporary.write_text(data, encoding=encoding)
    return path


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes: a model or a photo named by its content, not its path."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
