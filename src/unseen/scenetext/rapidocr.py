"""RapidOCR as users install it, the photo baseline: ``pip install rapidocr==3.10.0`` (PP-OCRv6 small detector and
recognizer, PP-OCRv4 direction classifier, onnxruntime, its config.yaml defaults). ``rapidocr-onnxruntime==1.4.4``
(PP-OCRv4) is kept by name as the historical baseline.

Two ways to read a photo with it: its default output, one box and text per line (``read_lines``), and its word-box
option (``read_words``, ``return_word_box=True``). In 3.10 the word boxes come ready-made, one per word (it also
splits a word where two characters are more than 5 CTC columns apart), but the score it attaches to the k-th word is
the probability of the line's k-th character (``CalRecBoxes`` zips words with per-character scores); it is kept as
given. 1.4.4 gives a box per character, which we join into words at its spaces.

RapidOCR 3.10 keeps the options of a call for the calls after it (``update_params`` sets them on the engine): after
``engine(path, return_word_box=True)`` or ``use_rec=False`` every later call does the same. So every call here
restates the steps and the word-box option; other options (``text_score``, ``box_thresh``) set by a caller stay.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

VERSIONS = {"3.10": "rapidocr==3.10.0", "1.4.4": "rapidocr-onnxruntime==1.4.4"}
SHIPPED = {"use_det": True, "use_cls": True, "use_rec": True}  # 3.10's config.yaml, restated on every call


@dataclass
class SpottedWord:
    quad: np.ndarray
    text: str
    confidence: float


def load_rapidocr(version: str = "3.10"):
    """A RapidOCR engine with its shipped defaults (3.10 logs warnings only: the log level changes no reading)."""
    from unseen.core.errors import AssetMissingError

    if version not in VERSIONS:
        raise ValueError(f"RapidOCR {version!r}: known versions are {', '.join(VERSIONS)}")
    try:
        if version == "1.4.4":
            from rapidocr_onnxruntime import RapidOCR

            return RapidOCR()
        import onnxruntime  # noqa: F401  (3.10 does not depend on it, but runs on it by default)
        from rapidocr import RapidOCR
    except ImportError as err:
        needs = ("pyclipper, shapely, opencv and onnxruntime; run: pip install --no-deps rapidocr-onnxruntime==1.4.4"
                 if version == "1.4.4" else "omegaconf, colorlog, six, shapely, pyclipper, opencv and onnxruntime; "
                 "run: pip install rapidocr==3.10.0 onnxruntime")
        raise AssetMissingError(f"the RapidOCR {version} baseline needs {VERSIONS[version]} and its dependencies "
                                f"{needs} ({err})") from None
    return RapidOCR(params={"Global.log_level": "warning"})


def _is_144(engine) -> bool:
    return type(engine).__module__.startswith("rapidocr_onnxruntime")


def read_lines(engine, path) -> list[SpottedWord]:
    """RapidOCR's default output: one box and text per detected line."""
    if _is_144(engine):
        result, _ = engine(str(path))
        return [SpottedWord(np.array(box, np.float32), text, float(score)) for box, text, score in result or []]
    out = engine(str(path), **SHIPPED, return_word_box=False)
    if not out.txts:
        return []
    return [SpottedWord(np.array(box, np.float32), text, float(score))
            for box, text, score in zip(out.boxes, out.txts, out.scores, strict=True)]


def read_words(engine, path) -> list[SpottedWord]:
    """RapidOCR with ``return_word_box=True``: one box per word, in reading order."""
    if _is_144(engine):
        return _join_characters(engine(str(path), return_word_box=True)[0])
    out = engine(str(path), **SHIPPED, return_word_box=True)
    if not out.txts:
        return []
    return [SpottedWord(np.array(box, np.float32), text, float(score))
            for _line, line_words in zip(out.txts, out.word_results, strict=True)  # a word list per line
            for text, score, box in line_words]


def _join_characters(result) -> list[SpottedWord]:
    """1.4.4's character boxes joined into one box per space-separated word."""
    words = []
    for _box, _text, _score, char_boxes, chars, char_scores in result or []:
        current: list[tuple] = []
        for quad, ch, sc in [*zip(char_boxes, chars, char_scores), (None, " ", 0.0)]:
            if ch != " ":
                current.append((quad, ch, sc))
                continue
            if current:
                first, last = np.array(current[0][0], np.float32), np.array(current[-1][0], np.float32)
                words.append(SpottedWord(np.array([first[0], last[1], last[2], first[3]]),
                                         "".join(c for _, c, _ in current),
                                         float(np.mean([s for _, _, s in current]))))
            current = []
    return words


def read_beside(reader, engines: dict, paths, on_photo=None) -> tuple[list, dict, dict, dict]:
    """Our PhotoReader and RapidOCR engines ({name: engine}, may be empty) on the same photos, alternating photo by
    photo so that all see the same machine. Returns (our raw readings, lines, words, seconds): ``lines[name]`` and
    ``words[name]`` hold one list of SpottedWord per photo (``read_lines``, ``read_words``); ``seconds`` has "ours",
    each name (its lines) and "<name> words" (its word-box pass, a whole second run). ``on_photo(count, seconds)``
    after each photo (progress)."""
    if not isinstance(engines, dict):
        raise TypeError("read_beside takes {name: engine}, e.g. {'rapidocr': load_rapidocr()}")
    raws, lines, words = [], {name: [] for name in engines}, {name: [] for name in engines}
    seconds = {"ours": 0.0, **{key: 0.0 for name in engines for key in (name, f"{name} words")}}
    for count, path in enumerate(paths, start=1):
        started = time.perf_counter()
        raws.append(reader.detect_and_read(path))
        seconds["ours"] += time.perf_counter() - started
        for name, engine in engines.items():
            for out, key, read in ((lines, name, read_lines), (words, f"{name} words", read_words)):
                started = time.perf_counter()
                out[name].append(read(engine, path))
                seconds[key] += time.perf_counter() - started
        if on_photo:
            on_photo(count, seconds)
    return raws, lines, words, seconds
