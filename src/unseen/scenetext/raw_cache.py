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

import torch

from unseen.core.io import atomic_path, file_digest


class RawCache:
    def __init__(self, root, reader):
        self.root, self.reader = Path(root), reader

    def entry(self, path) -> Path:
        key = hashlib.sha256(f"{self.reader.fingerprint}|{file_digest(path)}".encode()).hexdigest()[:32]
        return self.root / key[:2] / f"{key}.pt"

    def get(self, path):
        """The cached RawPhoto, or None. Its ``path`` is the one asked for (the entry may come from a copy)."""
        entry = self.entry(path)
        if not entry.exists():
            return None
        raw = torch.load(entry, weights_only=False)
        raw.path = str(path)
        return raw

    def read(self, path):
        """The photo's RawPhoto: from the cache, or detected and read now and then cached."""
        raw = self.get(path)
        if raw is None:
            raw = self.reader.detect_and_read(path)
            entry = self.entry(path)
            entry.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(entry) as partial:
                torch.save(raw, partial)
        return raw
