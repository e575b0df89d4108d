"""Greedy (best-path) CTC decoding, the one implementation every recognizer here uses.

Take the most likely class in each column, collapse runs of one class into one character and drop the blank.
Each character remembers the columns of its run (where it sits in the image) and its probability in the run's
first column (the confidence RapidOCR and PaddleOCR report).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Emission:
    index: int  # the class
    first: int  # first and last column of its run
    last: int
    prob: float  # probability in the first column


def best_path(ids: list[int], probs: list[float] | None = None, blank: int = 0) -> list[Emission]:
    """The runs of non-blank classes along a column-wise argmax ``ids``."""
    out: list[Emission] = []
    previous = blank
    for t, i in enumerate(ids):
        if i != blank and i == previous:
            out[-1] = Emission(i, out[-1].first, t, out[-1].prob)
        elif i != blank:
            out.append(Emission(i, t, t, probs[t] if probs is not None else 1.0))
        previous = i
    return out


def columns_argmax(scores: torch.Tensor) -> tuple[list[int], list[float]]:
    """[T, C] logits or log-probabilities -> (argmax class per column, its softmax probability)."""
    probs, ids = scores.float().softmax(-1).max(-1)
    return ids.tolist(), probs.tolist()


def greedy_decode(logits: torch.Tensor, characters: list[str], *,
                  empty_confidence: str = "zero") -> list[tuple[str, float]]:
    """[B, T, C] -> (text, confidence) per row; confidence = mean probability of the emitted characters (not the
    product, so it does not shrink with length). With nothing emitted: 0, or with ``empty_confidence="steps"``
    the mean over all columns (how sure the model is that there is no text)."""
    out = []
    for row in logits:
        ids, probs = columns_argmax(row)
        emitted = [e for e in best_path(ids, probs) if characters[e.index]]
        kept = [e.prob for e in emitted] or (probs if empty_confidence == "steps" else [])
        out.append(("".join(characters[e.index] for e in emitted), sum(kept) / len(kept) if kept else 0.0))
    return out
