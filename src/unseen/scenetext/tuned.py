"""The reader's tuned settings, from one file (``tuned.json`` beside this module).

Every default that was chosen on data (the confidence a word needs, where lines are cut, how far a word box reaches,
how each kind of word list is trusted, the batch lexicon's thresholds) is read from ``tuned.json``, and only the
scripts that choose them write it (``bench/scenetext/e2e.py tune``, ``bench/scenetext/batch_lexicon.py``, through
``write``). So the reader a user gets is the reader the bench reports: re-running a tuning changes both.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from pathlib import Path

from unseen.core.io import atomic_write

FILE = "tuned.json"


@functools.cache
def tuned() -> dict:
    return json.loads(resources.files("unseen.scenetext").joinpath(FILE).read_text(encoding="utf-8"))


def section(name: str) -> dict:
    return dict(tuned()[name])


def path() -> Path:
    return Path(str(resources.files("unseen.scenetext").joinpath(FILE)))


def write(updates: dict) -> Path:
    """Merge ``updates`` (top-level sections) into tuned.json; for the tuning scripts only."""
    merged = {**json.loads(path().read_text()), **updates}  # the file as it is now: another tuning may have written
    atomic_write(path(), json.dumps(merged, indent=1, ensure_ascii=False) + "\n")
    tuned.cache_clear()
    return path()
