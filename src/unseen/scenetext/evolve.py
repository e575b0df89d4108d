"""E2STR's "ego-evolving" without training: the reader's sure readings join a pool as self-labelled words.

A photo's words that the recognizer read surely (every character at least as sure as the batch lexicon asks) go
into the pool with their crops, marked ``self_labelled``. Later photos read with the pool get them as batch-
lexicon words (adapt.py): a shop name read clearly once helps read it where it is blurred or small. Nothing is
trained and no label is needed; ``unseen str pool ls`` shows the self-labelled entries and ``pool rm
--self-labelled`` removes them.
"""

from __future__ import annotations

from unseen.scenetext.charset import latin
from unseen.scenetext.pool import PoolSample


def sure_words(reading, min_length: int = 3) -> list:
    """The words of a PhotoReading worth keeping: read surely by the recognizer itself, letters and digits (accented
    ones too) that the pool can spell, not too short."""
    return [w for w in reading.words if w.sure and w.source == "read" and len(w.text) >= min_length
            and w.text.isalnum() and all(map(latin, w.text))]


def evolve_pool(pool, readings, encoder, *, known_once: bool = True) -> int:
    """Add each photo's sure words, with their crops, to ``pool`` as self-labelled samples; returns how many.
    ``known_once``: a word the pool already holds is not added again (its vocabulary is what is used)."""
    from unseen.scenetext.photos import load_photo
    from unseen.scenetext.words import word_crop

    held = {t.upper() for t in pool.texts}
    added = 0
    for reading in readings:
        words = [w for w in sure_words(reading) if not (known_once and w.text.upper() in held)]
        if not words:
            continue
        bgr, scale, _ = load_photo(reading.path)
        samples = [PoolSample(word_crop(bgr, w.quad * scale), w.text, f"{reading.path}#{i}", where=reading.path)
                   for i, w in enumerate(words)]
        added += pool.add(samples, encoder, self_labelled=True)
        held |= {w.text.upper() for w in words}
    return added
