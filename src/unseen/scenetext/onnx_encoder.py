"""The default reader's recognizer: PP-OCRv6 small (asset ``ppocr-v6-rec``) through onnxruntime, its CTC columns
kept for the Latin script.

PP-OCRv6 scores 18,710 classes per column, 15,908 of them Chinese characters. Everything the reader does after
reading (word cuts, the batch lexicon, word lists, the pool gate) needs the log-probabilities of the characters a
word may be spelled with, kept per word until the whole collection is read; all 18,710 would cost 75 kB per column.
So each column keeps the blank, every printable ASCII and Latin-1/Latin Extended-A character the model has (é, ß,
ł, œ: the Latin-script languages PP-OCRv6 reads), one column for "another character" (shown as U+FFFD, holding the
winner's probability where such a character wins the column) and the space, last, as in PaddleOCR's own layout.
So the greedy reading is RapidOCR's, with U+FFFD where it reads another script, and a word spelled with kept
characters scores exactly as on the full output (tests/test_scenetext_v6.py).
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
from PIL import Image

from unseen.core.io import file_digest
from unseen.core.models.ppocr import READ_BATCH_SIZE, same_width_batches, to_array
from unseen.scenetext.charset import latin

OTHER = "\ufffd"  # stands for every character outside the kept set
KEPT_SET_VERSION = "ascii-latin1-latinA-other-winner-v2"


class OnnxCTCEncoder:
    """``ctc_log_probs(images)`` yields (index, [T, K] log-probabilities) over ``characters`` (blank "", the kept
    characters, OTHER, " "). ``fingerprint`` names the model file, its preprocessing and the kept set: pools and
    cached readings made with another differ."""

    def __init__(self, name: str = "ppocr-v6-rec", recognizer=None):
        from unseen.core.assets import asset_file, load_asset

        self.name = name
        self.recognizer = recognizer or load_asset(name)
        full = self.recognizer.characters
        self.full_characters = full
        keep = [i for i, c in enumerate(full[1:-1], 1) if latin(c)]
        self._kept = np.array([0, *keep])
        other = np.ones(len(full), dtype=bool)
        other[[0, *keep, len(full) - 1]] = False
        self._other = other
        self._space = len(full) - 1
        self.characters = ["", *[full[i] for i in keep], OTHER, " "]
        self.spelling = frozenset(self.characters[1:-2]) | {" "}  # what a label or word may be written with
        digest = hashlib.sha256(f"{name}-h48-w320-cv2linear-bgr-{KEPT_SET_VERSION}".encode())
        digest.update(file_digest(asset_file(name) if recognizer is None else recognizer.path).encode())
        self.fingerprint = f"{name}-{digest.hexdigest()[:16]}"

    def compact(self, probs: np.ndarray) -> torch.Tensor:
        """[..., C] probabilities over all classes -> [..., K] log-probabilities over ``characters``. The OTHER
        column holds the winning character's probability where another script's character wins the column, and 0
        elsewhere: greedy reading needs no more of it, and no word spelled with kept characters reads it (one
        argmax over the classes instead of a maximum over the 18,392 others: a quarter of the cost)."""
        winner = probs.argmax(-1)[..., None]
        other = np.where(self._other[winner], np.take_along_axis(probs, winner, -1), 0.0)
        columns = np.concatenate([probs[..., self._kept], other, probs[..., self._space : self._space + 1]], axis=-1)
        return torch.from_numpy(np.log(np.maximum(columns, 1e-30)))

    def batches(self, images: list[Image.Image], batch_size: int = READ_BATCH_SIZE):
        """(indices, [B, 3, 48, W] input) for crops of one padded width (same_width_batches)."""
        for chunk in same_width_batches(images, batch_size):
            yield chunk, np.stack([to_array(images[i]) for i in chunk])

    def full_probs(self, images: list[Image.Image], batch_size: int = READ_BATCH_SIZE):
        """(index, [T, C] probabilities over all 18,710 classes) per crop: for tests and for reading other scripts."""
        for chunk, x in self.batches(images, batch_size):
            probs = self.recognizer.probabilities(x)
            for j, i in enumerate(chunk):
                yield i, probs[j]

    @torch.no_grad()
    def ctc_log_probs(self, images: list[Image.Image], batch_size: int = READ_BATCH_SIZE):
        for chunk, x in self.batches(images, batch_size):
            log_probs = self.compact(self.recognizer.probabilities(x))
            for j, i in enumerate(chunk):
                yield i, log_probs[j]

