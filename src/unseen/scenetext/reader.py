"""Reading word crops with the default reader: PP-OCRv4's CTC, a pool's words through its lexicon gate, and the
batch lexicon. (Whole photos: photos.py. The trained in-context decoder, E2STR-lite, is experimental: e2str/.)

    from unseen.scenetext import Recognizer, Pool
    rec = Recognizer.load()                                       # PP-OCRv4 (our port)
    rec.read([crop1, crop2], pool=Pool.load("pools/ic15"))        # -> [Reading(text, confidence, greedy, source)]
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Reading:
    text: str
    confidence: float  # the greedy reading's least sure character
    greedy: str  # PP-OCRv4's own reading
    source: str = "read"  # read | pool | batch: where the text came from


class Recognizer:
    def __init__(self, encoder):
        self.encoder = encoder

    @classmethod
    def load(cls) -> Recognizer:
        from unseen.scenetext.encoder import load_encoder

        return cls(load_encoder("ppocr-v4-rec"))

    def read(self, images, pool=None, batch_lexicon: bool = True) -> list[Reading]:
        """PIL images of word crops, read together (the batch lexicon spans them)."""
        readings, _ = gated_readings(self.encoder, list(images), pool, batch_lexicon)
        return [Reading(r.text, r.confidence, r.greedy, "pool" if r.from_pool else "batch" if r.from_batch else "read")
                for r in readings]


def gated_readings(encoder, images, pool=None, batch_lexicon: bool = True):
    """(PP-OCRv4's readings through the pool's lexicon gate, where there is a pool, then the batch lexicon when on;
    the gate or None)."""
    from unseen.scenetext.batch_lexicon import DEFAULT_BATCH_LEXICON, read_batch
    from unseen.scenetext.lexicon_gate import LexiconGate

    gate = None
    if pool is not None:
        pool.check_encoder(encoder.fingerprint)
        gate = LexiconGate.from_pool(pool)
    return read_batch(encoder, images, gate, DEFAULT_BATCH_LEXICON if batch_lexicon else None), gate
