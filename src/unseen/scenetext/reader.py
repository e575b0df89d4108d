"""Reading word crops with the default reader: PP-OCRv6's CTC (asset ``ppocr-v6-rec``), a pool's words through its
lexicon gate, and the batch lexicon. (Whole photos: photos.py. The trained in-context decoder, E2STR-lite, is
experimental: e2str/.)

    from unseen.scenetext import Recognizer, Pool
    rec = Recognizer.load()                                # PP-OCRv6; Recognizer.load("ppocr-v4-rec"): PP-OCRv4
    rec.read([crop1, crop2], pool=Pool.load("pools/ic15"))  # -> [Reading(text, confidence, greedy, source, least_sure)]

``confidence`` means what it means for a word in a photo (reading.Word): the mean probability of the characters on
the greedy CTC path, RapidOCR's score. ``least_sure`` is the smallest of them, what the gates compare with tau.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Reading:
    text: str
    confidence: float  # mean probability of the greedy reading's characters (RapidOCR's score)
    greedy: str  # the recognizer's own reading
    source: str = "read"  # read | pool | batch: where the text came from
    least_sure: float = 0.0  # probability of the greedy reading's least sure character (what the gates compare)

    def as_dict(self) -> dict:
        return {"text": self.text, "confidence": round(self.confidence, 4), "least_sure": round(self.least_sure, 4),
                "greedy": self.greedy, "source": self.source}


class Recognizer:
    def __init__(self, encoder):
        self.encoder = encoder

    @classmethod
    def load(cls, encoder: str | None = None) -> Recognizer:
        """The default reader's recognizer (PP-OCRv6), or another by asset name (``ppocr-v4-rec``: PP-OCRv4)."""
        from unseen.scenetext.encoder import DEFAULT_ENCODER, load_encoder

        return cls(load_encoder(encoder or DEFAULT_ENCODER))

    def read(self, images, pool=None, batch_lexicon: bool = True) -> list[Reading]:
        """PIL images of word crops, read together (the batch lexicon spans them)."""
        readings, _ = gated_readings(self.encoder, list(images), pool, batch_lexicon)
        return [Reading(r.text, r.mean, r.greedy, "pool" if r.from_pool else "batch" if r.from_batch else "read",
                        r.least_sure) for r in readings]


def gated_readings(encoder, images, pool=None, batch_lexicon: bool = True):
    """(the recognizer's readings through the pool's lexicon gate, where there is a pool, then the batch lexicon when
    on, as GatedReadings with ``mean`` set; the gate or None)."""
    from unseen.scenetext.batch_lexicon import DEFAULT_BATCH_LEXICON, apply, read_crops
    from unseen.scenetext.lexicon_gate import LexiconGate

    gate = None
    if pool is not None:
        pool.check_encoder(encoder.fingerprint)
        gate = LexiconGate.from_pool(pool)
    batch = DEFAULT_BATCH_LEXICON if batch_lexicon else None
    # batch_lexicon.read_batch, keeping each crop's mean character probability beside its reading
    crops = read_crops(encoder, images, gate.labels if gate else (), pool_tau=gate.setting.tau if gate else 0.0,
                       keep_below=batch.setting.tau if batch else 0.0)
    readings = apply(crops, encoder.characters, gate, batch)
    for reading, crop in zip(readings, crops):
        reading.mean = crop.scored.mean
    return readings, gate
