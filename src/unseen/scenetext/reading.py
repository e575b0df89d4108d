"""What the photo reader produces, and what it keeps: plain data shared by photos.py (reading) and adapt.py
(adaptation), so that neither imports the other.

``confidence`` has one meaning everywhere (words in photos and word crops alike): the mean probability of the
characters on the greedy CTC path, RapidOCR's score. ``least_sure`` is the smallest of those probabilities; the
gates (batch lexicon, pool, vocabulary) compare it with their thresholds, since one doubtful character is enough to
make a reading worth a second look.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from unseen.scenetext.tuned import section
from unseen.scenetext.words import SplitSettings


@dataclass
class Word:
    text: str
    quad: np.ndarray  # [4, 2] photo pixels, clockwise from top-left
    confidence: float  # mean probability of the characters read (RapidOCR's score)
    greedy: str  # the recognizer's own reading, before any adaptation
    source: str = "read"  # read | batch | vocabulary | pool: where the text came from
    sure: bool = False  # every character read at least as surely as the batch lexicon asks
    least_sure: float = 0.0  # probability of the least sure character read

    def as_dict(self) -> dict:
        return {"text": self.text, "quad": [[round(float(x), 1), round(float(y), 1)] for x, y in self.quad],
                "confidence": round(self.confidence, 4), "least_sure": round(self.least_sure, 4),
                "greedy": self.greedy, "source": self.source}


@dataclass
class PhotoReading:
    path: str
    width: int
    height: int
    words: list[Word] = field(default_factory=list)

    @property
    def name(self) -> str:
        return Path(self.path).stem

    def as_dict(self) -> dict:
        return {"path": self.path, "width": self.width, "height": self.height,
                "words": [w.as_dict() for w in self.words]}


@dataclass
class RawPhoto:
    """A photo detected and read, before words are cut and adapted: its lines as (LineCrop without pixels, resized
    width, [T, K] CTC log-probabilities), and the scale from photo pixels to the pixels they were read at. All that
    adaptation and word boxes need, and no pixels: a collection's RawPhotos stay small (reader.py caches them)."""

    path: str
    width: int
    height: int
    scale: float
    lines: list[tuple]


_READ = section("read")


@dataclass(frozen=True)
class ReadSettings:
    """What the reader keeps. Defaults from tuned.json (chosen on ICDAR 2015 photos 1-100, bench/scenetext/e2e.py)."""

    min_confidence: float = _READ["min_confidence"]  # words read less surely are dropped unless a vocabulary
    # vouches for them (RapidOCR drops lines below 0.5)
    min_length: int = _READ["min_length"]
    split: SplitSettings = SplitSettings()
    trim: str = _READ.get("trim", "")  # characters taken off a word's ends ("areas." -> "areas"; "" keeps all)
