"""RapidOCR 1.4.4 as shipped (PP-OCRv4 det + direction classifier + rec through onnxruntime, its defaults): the
baseline a user would run on photos. Its lines are one box each; with its word-box option (``return_word_box``)
it gives a box per character, which we join into words at its spaces."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class SpottedWord:
    quad: np.ndarray
    text: str
    confidence: float


def load_rapidocr():
    from unseen.core.errors import AssetMissingError

    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError as err:
        raise AssetMissingError(f"the RapidOCR baseline needs rapidocr-onnxruntime==1.4.4 and its dependencies "
                                f"({err}); run: unseen assets install ppocr-v4-rec") from None
    return RapidOCR()


def read_lines(engine, path) -> list[SpottedWord]:
    """RapidOCR's default output: one box and text per detected line."""
    result, _ = engine(str(path))
    return [SpottedWord(np.array(box, dtype=np.float32), text, float(score)) for box, text, score in result or []]


def read_words(engine, path) -> list[SpottedWord]:
    """RapidOCR with ``return_word_box=True``: its character boxes joined into one box per space-separated word."""
    result, _ = engine(str(path), return_word_box=True)
    words = []
    for box, text, score, char_boxes, chars, char_scores in result or []:
        current: list[tuple] = []
        for quad, ch, sc in [*zip(char_boxes, chars, char_scores), (None, " ", 0.0)]:
            if ch == " ":
                if current:
                    first, last = np.array(current[0][0], np.float32), np.array(current[-1][0], np.float32)
                    words.append(SpottedWord(np.array([first[0], last[1], last[2], first[3]]),
                                             "".join(c for _, c, _ in current),
                                             float(np.mean([s for _, _, s in current]))))
                current = []
            else:
                current.append((quad, ch, sc))
    return words


def read_beside(reader, engine, paths, on_photo=None) -> tuple[list, list, list, dict]:
    """(our PhotoReader's raw readings, RapidOCR's lines, RapidOCR's word boxes, seconds) for the same photos,
    alternating photo by photo so that both see the same machine. Seconds: {"ours", "rapidocr"}; the word-box pass
    is not timed. Without ``engine`` only ours. ``on_photo(count, seconds)`` after each photo (progress)."""
    import time

    raws, lines, words, seconds = [], [], [], {"ours": 0.0, "rapidocr": 0.0}
    for count, path in enumerate(paths, start=1):
        started = time.perf_counter()
        raws.append(reader.detect_and_read(path))
        seconds["ours"] += time.perf_counter() - started
        if engine is not None:
            started = time.perf_counter()
            lines.append(read_lines(engine, path))
            seconds["rapidocr"] += time.perf_counter() - started
            words.append(read_words(engine, path))
        if on_photo:
            on_photo(count, seconds)
    return raws, lines, words, seconds
