"""Reading a batch of one domain: words PP-OCRv4 reads surely in some crops help it read the others.

Crops of one domain repeat words (a shop name on many photos, the same sign from several angles).
PP-OCRv4 reads the whole batch once; its sure readings (every character at least
``min_confidence``) form the batch lexicon. Each unsure crop (confidence below tau) then has those
words scored by CTC log-likelihood, exactly as the lexicon gate scores pool labels, and the best
replaces the greedy reading where log p(word | x) > log p(greedy | x) + delta. No label is read:
the lexicon is unlabeled data, and (min_confidence, tau, delta) were chosen once on IC15's *train*
split (``bench/scenetext/batch_lexicon.py``), never on an evaluated set. tau never exceeds
min_confidence, so a crop is never offered its own reading.

With a pool, its labels are tried first (the pool's own gate setting); a crop the pool left alone
may then take a batch word.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from unseen.scenetext.charset import latin
from unseen.scenetext.lexicon_gate import (
    GatedReading,
    GateSetting,
    LexiconGate,
    ScoredCrop,
    gated_text,
    score_log_probs,
)
from unseen.scenetext.tuned import section

_TUNED = section("batch_lexicon")  # chosen on IC15 train crops by bench/scenetext/batch_lexicon.py (tuned.json)


@dataclass(frozen=True)
class BatchLexicon:
    min_confidence: float = _TUNED["min_confidence"]  # a reading this sure joins the lexicon
    setting: GateSetting = GateSetting(_TUNED["tau"], _TUNED["delta"], chosen_by="IC15 train")
    # ... if it has this many characters: a one-letter batch word explains a short unsure word too easily
    min_length: int = _TUNED.get("min_length", 1)

    def __post_init__(self):
        if self.setting.tau > self.min_confidence:
            raise ValueError("tau above min_confidence would offer a crop its own reading")

    def describe(self) -> str:
        return (f"batch lexicon (readings sure to {self.min_confidence}, of {self.min_length}+ characters; "
                f"tau={self.setting.tau}, delta={self.setting.delta})")


DEFAULT_BATCH_LEXICON = BatchLexicon()


@dataclass
class BatchCrop:
    """A crop's greedy reading (and pool scores) plus, where it is unsure, the log-probabilities of
    blank and the printable ASCII characters: all a batch word needs to be scored later (CTC reads
    only the blank's and the word's own columns, so the score equals the full one)."""

    scored: ScoredCrop
    spelling_log_probs: torch.Tensor | None


def spelling_columns(characters: list[str]) -> tuple[list[int], list[str]]:
    """The recognizer's columns of the blank and of the characters a batch word may be spelled with (printable
    ASCII, Latin-1 and Latin Extended-A: accented words count), and the character each stands for ("" for blank)."""
    columns = [i for i, c in enumerate(characters) if i > 0 and latin(c)]
    return [0, *columns], ["", *(characters[i] for i in columns)]


def read_crops(encoder, images, pool_labels=(), *, pool_tau: float = 0.0, keep_below: float = 0.0) -> list[BatchCrop]:
    """One PP-OCRv4 pass: each crop's ScoredCrop (pool labels scored where confidence < pool_tau), and
    its ASCII log-probabilities where confidence < keep_below (the batch lexicon's tau)."""
    columns, _ = spelling_columns(encoder.characters)
    crops: list = [None] * len(images)
    for i, log_probs in encoder.ctc_log_probs(images):
        scored = score_log_probs(log_probs, encoder.characters, list(pool_labels), unsure_below=pool_tau)
        kept = log_probs[:, columns].clone() if scored.least_sure < keep_below else None
        crops[i] = BatchCrop(scored, kept)
    return crops


def lexicon_of(crops: list[BatchCrop], min_confidence: float, min_length: int = 1) -> list[str]:
    """The sure readings of the batch, of ``min_length`` characters or more, that can be spelled with the batch
    lexicon's characters (spelling_columns)."""
    return sorted({c.scored.greedy for c in crops
                   if c.scored.greedy and len(c.scored.greedy) >= min_length and c.scored.least_sure >= min_confidence
                   and all(latin(ch) for ch in c.scored.greedy)})


def best_word(spelling_log_probs: torch.Tensor, characters: list[str], words: list[str]) -> tuple[float, str] | None:
    """(log-likelihood, word) of the batch word that best explains the crop; None without words."""
    index = {c: i for i, c in enumerate(characters)}
    words = [w for w in words if all(ch in index for ch in w)]
    if not words:
        return None
    targets = [torch.tensor([index[c] for c in w], dtype=torch.long) for w in words]
    steps = spelling_log_probs.shape[0]
    nll = F.ctc_loss(spelling_log_probs[:, None].expand(steps, len(words), -1), torch.cat(targets),
                     torch.full((len(words),), steps, dtype=torch.long), torch.tensor([len(t) for t in targets]),
                     blank=0, reduction="none")
    best = int(nll.argmin())
    return -float(nll[best]), words[best]


def apply(crops: list[BatchCrop], encoder_characters, gate: LexiconGate | None = None,
          batch: BatchLexicon | None = DEFAULT_BATCH_LEXICON, extra_words=()) -> list[GatedReading]:
    """The pool's gate first (where there is a pool), then the batch lexicon on what it left alone.
    ``extra_words``: sure readings from outside the batch (a pool's self-labelled words) join its lexicon."""
    _, characters = spelling_columns(encoder_characters)
    words = sorted(set(lexicon_of(crops, batch.min_confidence, batch.min_length)) | set(extra_words)) if batch else []
    candidates = set(gate.labels) if gate else set()
    out = []
    for crop in crops:
        scored = crop.scored
        text = gated_text(scored, candidates, gate.setting) if gate else scored.greedy
        from_pool, from_batch = text != scored.greedy, False
        if batch and not from_pool and scored.least_sure < batch.setting.tau and crop.spelling_log_probs is not None:
            found = best_word(crop.spelling_log_probs, characters, [w for w in words if w != scored.greedy])
            if found and found[0] > scored.greedy_ll + batch.setting.delta:
                text, from_batch = found[1], True
        out.append(GatedReading(text, scored.greedy, scored.least_sure, from_pool, from_batch, mean=scored.mean))
    return out


def read_batch(encoder, images, gate: LexiconGate | None = None,
               batch: BatchLexicon | None = DEFAULT_BATCH_LEXICON) -> list[GatedReading]:
    """PP-OCRv4's readings of a batch of one domain: through the pool's gate when given, then the batch lexicon."""
    crops = read_crops(encoder, images, gate.labels if gate else (), pool_tau=gate.setting.tau if gate else 0.0,
                       keep_below=batch.setting.tau if batch else 0.0)
    return apply(crops, encoder.characters, gate, batch)
