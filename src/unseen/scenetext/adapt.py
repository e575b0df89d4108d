"""Label-free adaptation of the words read on a set of photos: pool gate, vocabulary, batch lexicon.

Each word arrives as its greedy PP-OCRv4 reading and the slice of its line's CTC log-probabilities (words.py),
which scores any candidate word exactly as a crop of the word would. In order:

1. a labelled pool's words, through the pool's lexicon gate (its own tau and delta, lexicon_gate.py);
2. a vocabulary (lexicon.py): the best vocabulary word replaces the reading where
   log p(word | x) > log p(reading | x) + delta (case folded, as ICDAR compares); with ``restrict`` a word the
   vocabulary cannot explain is dropped, as end-to-end systems with a per-photo list do (with ``keep_beyond_list``
   not a reading holding a character that none of the list's words has: the list cannot speak against it);
3. the batch lexicon (batch_lexicon.py): words read surely anywhere in the photos read together, plus a pool's
   self-labelled words from earlier photos, offered to the words that are still unsure.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from unseen.scenetext.batch_lexicon import (
    DEFAULT_BATCH_LEXICON,
    BatchCrop,
    BatchLexicon,
    apply,
    lexicon_of,
    spelling_columns,
)
from unseen.scenetext.lexicon_gate import LexiconGate, score_log_probs
from unseen.scenetext.reading import ReadSettings, Word
from unseen.scenetext.tuned import section, tuned


@dataclass(frozen=True)
class VocabularySettings:
    """tau: only readings whose least sure character is below tau may change (1.01: all); delta: how much better, in
    CTC log-likelihood, the best vocabulary word must explain the word than the reading does (negative: the
    vocabulary is trusted over the reading); restrict: drop a word the vocabulary cannot explain within
    ``drop_below`` of its reading; keep_beyond_list: restrict never drops a reading holding a character that none of
    the list's words has (ICDAR 2015's lists hold no digit, its photos hold prices and door numbers). Chosen per
    vocabulary on ICDAR 2015 photos 1-100 (bench/scenetext/e2e.py)."""

    tau: float = 1.01
    delta: float = -3.0
    restrict: bool = False
    drop_below: float = -10.0
    keep_beyond_list: bool = False


# Chosen on ICDAR 2015 photos 1-100 (bench/scenetext/e2e.py tune, read from tuned.json): a list of the domain's
# words (per-photo lists, a short list) may drop words it cannot explain; a general dictionary only corrects.
_VOCABULARY = section("vocabulary")
DOMAIN_LIST = VocabularySettings(**_VOCABULARY["domain_list"])
GENERAL_LIST = VocabularySettings(**_VOCABULARY["general_list"])
GENERAL_LIST_WORDS = _VOCABULARY["general_list_words"]  # larger lists are read as general dictionaries
# how a pool's self-labelled words are used: "batch" (batch-lexicon words) or "vocabulary" (bench/scenetext/e2e.py
# stream chooses on photos 1-100)
SELF_LABELLED_AS = tuned()["self_labelled_as"]


def settings_for(lexicon) -> VocabularySettings:
    """DOMAIN_LIST for per-photo lists and lists of up to GENERAL_LIST_WORDS words, else GENERAL_LIST."""
    sizes = [len(x) for x in lexicon.values()] if isinstance(lexicon, dict) else [len(lexicon)]
    return DOMAIN_LIST if max(sizes, default=0) <= GENERAL_LIST_WORDS else GENERAL_LIST


def _folded_score(lexicon, log_probs: torch.Tensor, characters: list[str], text: str) -> float:
    """log p(text | x) on the vocabulary's case-folded columns, comparable with its words' scores."""
    from unseen.scenetext.lexicon import ctc_scores

    folded, folded_chars = lexicon.fold(log_probs, characters)
    index = {c: i for i, c in enumerate(folded_chars) if i > 0}
    ids = [index.get(c) for c in text.upper()]
    return ctc_scores(folded, [ids])[0] if ids and None not in ids else float("-inf")


def vocabulary_candidate(lexicon, log_probs, characters, reading: str) -> tuple[str | None, float, float]:
    """(best vocabulary word or None, its log-likelihood, the reading's), both on case-folded columns."""
    found = lexicon.decode(log_probs, characters, top_k=1)
    own = _folded_score(lexicon, log_probs, characters, reading)
    return (found[0][0], found[0][1], own) if found else (None, float("-inf"), own)


def vocabulary_choice(candidate, reading: str, least_sure: float, settings: VocabularySettings,
                      beyond_list: bool = False):
    """(text, in_vocabulary), or None where ``restrict`` drops the word. A reading the vocabulary holds, or one it
    replaced, is vouched for by the vocabulary. ``beyond_list``: the reading holds a character none of the list's
    words has (Lexicon.cannot_spell); with ``settings.keep_beyond_list`` it is never dropped."""
    word, score, own = candidate
    if word is not None and word.upper() == reading.upper():
        return reading, True
    if word is not None and least_sure < settings.tau and score > own + settings.delta:
        return word, True
    if settings.restrict and score < own + settings.drop_below and not (beyond_list and settings.keep_beyond_list):
        return None
    return reading, False


def batch_setting(batch_lexicon: bool | BatchLexicon) -> BatchLexicon | None:
    """The BatchLexicon that ``batch_lexicon`` (True, False or a setting) stands for; None for none."""
    return (DEFAULT_BATCH_LEXICON if batch_lexicon is True else batch_lexicon) or None


def sure_words(raw_words, characters, batch_lexicon: bool | BatchLexicon = True) -> list[str]:
    """The words of one photo (``raw[i]`` of adapt_words) that join the batch lexicon: read surely, spelled with
    its characters. The batch lexicon of photos adapted together is the union of theirs."""
    batch = batch_setting(batch_lexicon)
    if batch is None:
        return []
    crops = [BatchCrop(score_log_probs(log_probs, characters, []), None) for _, _, log_probs in raw_words]
    return lexicon_of(crops, batch.min_confidence, batch.min_length)


def adapt_words(readings, raw, characters, *, lexicon=None, vocabulary: VocabularySettings | None = None,
                pool=None, batch_lexicon: bool | BatchLexicon = True, settings=None, memo: dict | None = None,
                self_labelled_as: str = SELF_LABELLED_AS, batch_words=()):
    """Fill ``readings[i].words`` from ``raw[i]`` = [(WordSpan, quad, log-probability slice)] for photo i.
    ``memo``: a dict kept across calls on the same readings and the same ``lexicon`` (a settings search) to decode
    each word only once; keyed by photo path and word position.
    ``self_labelled_as``: how a pool's self-labelled words are used, "batch" (batch-lexicon words, offered to
    unsure words) or "vocabulary" (a word list read with GENERAL_LIST, where the user gave none).
    ``batch_words``: sure words of other photos of the collection (sure_words) that join these photos' own in the
    batch lexicon: a collection adapted a few photos at a time, with the union of all its photos' sure words, reads
    exactly as if it were adapted at once."""
    from unseen.scenetext.lexicon import Lexicon, lexicon_for

    settings = settings or ReadSettings()
    if lexicon is not None and vocabulary is None:
        vocabulary = settings_for(lexicon)
    batch = batch_setting(batch_lexicon)
    gate, earlier_words = None, []
    if pool is not None and len(pool):
        earlier_words = sorted({t for t, own in zip(pool.texts, pool.self_labelled) if own})
        if pool.labelled and pool.gate:
            gate = LexiconGate.from_pool(pool)
    if earlier_words and lexicon is None and self_labelled_as == "vocabulary":
        lexicon, vocabulary = Lexicon(earlier_words), GENERAL_LIST
    columns, _ = spelling_columns(characters)
    crops, where = [], []
    for i, words in enumerate(raw):
        for j, (span, _, log_probs) in enumerate(words):
            scored = score_log_probs(log_probs, characters, gate.labels if gate else [],
                                     unsure_below=gate.setting.tau if gate else 0.0)
            keep = batch is not None and scored.least_sure < batch.setting.tau
            crops.append(BatchCrop(scored, log_probs[:, columns].clone() if keep else None))
            where.append((i, j))
    extra_words = sorted(set(earlier_words) | set(batch_words))
    adapted = apply(crops, characters, gate, batch, extra_words=extra_words) if crops else []
    for reading in readings:
        reading.words = []
    for (i, j), gated in zip(where, adapted):
        span, quad, log_probs = raw[i][j]
        confidence = sum(span.char_probs) / len(span.char_probs)
        text, source = gated.text, "pool" if gated.from_pool else "batch" if gated.from_batch else "read"
        photo_lexicon = lexicon_for(lexicon, readings[i].name) if lexicon is not None else None
        vouched = False
        if photo_lexicon is not None and source != "pool":
            key = (readings[i].path, j)
            if memo is None or key not in memo:
                candidate = vocabulary_candidate(photo_lexicon, log_probs, characters, span.text)
                if memo is not None:
                    memo[key] = candidate
            beyond = (vocabulary.restrict and vocabulary.keep_beyond_list
                      and photo_lexicon.cannot_spell(span.text.strip(settings.trim)))
            choice = vocabulary_choice(memo[key] if memo is not None else candidate, span.text,
                                       min(span.char_probs), vocabulary, beyond)
            if choice is None:
                continue
            vouched = choice[1]
            if choice[0] != span.text:
                text, source = choice[0], "vocabulary"
        # an unsure word stays only if a vocabulary vouches for it
        if confidence < settings.min_confidence and not vouched:
            continue
        text = text.strip(settings.trim) if settings.trim else text
        if len(text) < settings.min_length or not any(ch.isalnum() for ch in text):
            continue
        least_sure = min(span.char_probs)
        sure = least_sure >= (batch or DEFAULT_BATCH_LEXICON).min_confidence
        readings[i].words.append(Word(text, quad, confidence, span.text, source, sure, least_sure))
