"""Raw readings on disk: what ``PhotoReader.detect_and_read`` returns for a photo, kept so that a photo is detected
and read once however often its words are adapted (a settings search, a rerun with another word list, a resumed
collection).

An entry is keyed by the photo's bytes and the reader's fingerprint (detector weights and settings, recognizer
weights, preprocessing, kept columns, backend, format): another model or setting never reads a stale entry, and a
photo renamed or copied is still found. Entries are written atomically, so a run killed mid-write leaves none.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from pickle import UnpicklingError

import torch

from unseen.core.io import atomic_path, file_digest


class RawCache:
    """``hits`` and ``misses`` count what ``read`` found; a damaged entry (or one written by something else) reads
    as missing and is replaced."""

    def __init__(self, root, reader):
        self.root, self.reader = Path(root), reader
        self.hits = self.misses = 0

    def entry(self, path) -> Path:
        key = hashlib.sha256(f"{self.reader.fingerprint}|{file_digest(path)}".encode()).hexdigest()[:32]
        return self.root / key[:2] / f"{key}.pt"

    def get(self, path, entry: Path | None = None):
        """The cached RawPhoto, or None. Its ``path`` is the one asked for (the entry may come from a copy).
        ``entry``: the path's entry when the caller has it (it costs a hash of the photo's bytes)."""
        entry = entry or self.entry(path)
        if not entry.exists():
            return None
        try:
            raw = torch.load(entry, weights_only=False)
        except (OSError, EOFError, RuntimeError, ValueError, AttributeError, ImportError, UnpicklingError):
            return None  # damaged on disk, or not ours: read the photo again
        raw.path = str(path)
        return raw

    def put(self, path, raw, entry: Path | None = None) -> None:
        """Cache ``raw`` as the photo's RawPhoto, atomically (a run killed mid-write leaves no entry)."""
        entry = entry or self.entry(path)
        entry.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(entry) as partial:
            torch.save(raw, partial)

    def read(self, path):
        """The photo's RawPhoto: from the cache, or detected and read now and then cached."""
        entry = self.entry(path)
        raw = self.get(path, entry)
        if raw is not None:
            self.hits += 1
            return raw
        self.misses += 1
        raw = self.reader.detect_and_read(path)
        self.put(path, raw, entry)
        return raw
