"""The batch lexicon: sure readings of a batch offered to its unsure crops (tiny hand-made
log-probabilities; the CLI on real crops is in test_scenetext_gate.py)."""

from dataclasses import replace

import pytest
from test_scenetext_gate import FakeEncoder as GateFakeEncoder  # tests/ is on sys.path
from test_scenetext_gate import log_probs as gate_log_probs

from unseen.scenetext.batch_lexicon import (
    BatchLexicon,
    apply,
    best_word,
    lexicon_of,
    read_batch,
    read_crops,
    spelling_columns,
)
from unseen.scenetext.lexicon_gate import GateSetting, LexiconGate, score_log_probs

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CHARACTERS = ["<blank>", "a", "b", "c", "d", "\u6c34", " "]  # blank first, one non-ASCII class, space last


class FakeEncoder(GateFakeEncoder):
    characters = CHARACTERS


def log_probs(columns):
    return gate_log_probs(columns, CHARACTERS)


SURE_AC = [{"a": 0.97}, {}, {"c": 0.97}, {}]
UNSURE_AB = [{"a": 0.95}, {}, {"b": 0.5, "c": 0.45}, {}]  # greedy "ab", "ac" nearly as likely
SURE_CD = [{"c": 0.97}, {}, {"d": 0.97}, {}]
SURE_NON_ASCII = [{"\u6c34": 0.97}, {}]
BATCH = BatchLexicon(0.9, GateSetting(0.9, -3.0), min_length=1)  # the two-letter words below may join


def test_lexicon_holds_sure_latin_readings_only():
    crops = read_crops(FakeEncoder(), [SURE_AC, UNSURE_AB, SURE_CD, SURE_NON_ASCII], keep_below=0.9)
    assert lexicon_of(crops, 0.9) == ["ac", "cd"]
    assert lexicon_of(crops, 0.9, min_length=3) == []  # too short to join: "ab" keeps its own reading below
    assert [r.text for r in apply(crops, CHARACTERS, batch=replace(BATCH, min_length=3))][1] == "ab"
    assert [c.spelling_log_probs is not None for c in crops] == [False, True, False, False]  # kept where unsure only
    assert crops[1].spelling_log_probs.shape == (4, 5)  # blank + the 4 Latin classes (a, b, c, d)
    assert spelling_columns(["", "a", "é", "ß", "\u6c34", "\ufffd", " "]) == ([0, 1, 2, 3], ["", "a", "é", "ß"])


def test_spelling_columns_score_a_word_as_the_full_log_probabilities_do():
    crop = read_crops(FakeEncoder(), [UNSURE_AB], keep_below=0.9)[0]
    full = score_log_probs(log_probs(UNSURE_AB), CHARACTERS, ["ac"]).label_ll["ac"]
    ll, word = best_word(crop.spelling_log_probs, ["", "a", "b", "c", "d"], ["ac", "cd"])
    assert word == "ac" and ll == pytest.approx(full, abs=1e-5)


def test_unsure_crop_takes_a_batch_word_and_sure_ones_stay():
    readings = read_batch(FakeEncoder(), [SURE_AC, UNSURE_AB, SURE_CD], batch=BATCH)
    assert [(r.text, r.greedy, r.from_batch, r.from_pool) for r in readings] == [
        ("ac", "ac", False, False), ("ac", "ab", True, False), ("cd", "cd", False, False)]
    # alone in its batch, the unsure crop has no lexicon; a strict delta keeps its reading too
    assert read_batch(FakeEncoder(), [UNSURE_AB], batch=BATCH)[0].text == "ab"
    strict = BatchLexicon(0.9, GateSetting(0.9, 2.0), min_length=1)
    assert read_batch(FakeEncoder(), [SURE_AC, UNSURE_AB], batch=strict)[1].text == "ab"
    assert read_batch(FakeEncoder(), [SURE_AC, UNSURE_AB], batch=None)[1].text == "ab"  # switched off


def test_pool_labels_come_first_then_the_batch():
    gate = LexiconGate(["ac"], GateSetting(0.9, -1.0))  # the pool's label is tried first
    readings = read_batch(FakeEncoder(), [SURE_AC, UNSURE_AB], gate, BATCH)
    assert (readings[1].text, readings[1].from_pool, readings[1].from_batch) == ("ac", True, False)
    gate = LexiconGate(["dd"], GateSetting(0.9, 0.0))  # the pool explains nothing: the batch word does
    readings = apply(read_crops(FakeEncoder(), [SURE_AC, UNSURE_AB], ["dd"], pool_tau=0.9, keep_below=0.9),
                     CHARACTERS, gate, BATCH)
    assert (readings[1].text, readings[1].from_pool, readings[1].from_batch) == ("ac", False, True)


def test_tau_above_min_confidence_is_refused():
    with pytest.raises(ValueError, match="its own reading"):
        BatchLexicon(0.8, GateSetting(0.9, -3.0))


# ---- real IC15 crops with the default reader -----------------------------------------------------

@pytest.mark.slow
@pytest.mark.needs_data("str/ic15/test")
def test_the_default_reader_fixes_real_unsure_crops_with_the_batch_lexicon(data_dir):
    """Crops of words IC15 shows several times, read together by the default reader (batch lexicon on by default):
    a crop read unsurely takes the word read surely elsewhere. The batch is chosen by the labels, not by the
    readings: the 8 most repeated words of >= 3 characters (36-character form), up to 8 crops each, in file order,
    so a change of recognizer changes which crops are fixed, not the search. Without the batch lexicon every
    reading is the recognizer's own."""
    from collections import defaultdict

    from unseen.scenetext.evaluate import load_records
    from unseen.scenetext.metrics import normalize
    from unseen.scenetext.reader import Recognizer

    groups = defaultdict(list)
    for record in load_records("ic15", "test", data_dir):
        groups[normalize(record["text"])].append(record)
    repeated = sorted((w for w, g in groups.items() if len(w) >= 3 and len(g) >= 3), key=lambda w: (-len(groups[w]), w))
    batch = [record for word in repeated[:8] for record in groups[word][:8]]
    recognizer = Recognizer.load()
    readings = recognizer.read([record["image"] for record in batch])
    right = [normalize(r.text) == normalize(record["text"]) for r, record in zip(readings, batch)]
    greedy_right = [normalize(r.greedy) == normalize(record["text"]) for r, record in zip(readings, batch)]
    fixed = [(r.greedy, r.text) for r, now, before in zip(readings, right, greedy_right) if now and not before]
    broken = [(r.greedy, r.text) for r, now, before in zip(readings, right, greedy_right) if before and not now]
    assert fixed, f"the batch lexicon fixed none of {len(batch)} crops of {repeated[:8]}"
    assert not broken, f"the batch lexicon broke {broken} (fixed {fixed})"
    assert all(r.source == "batch" for r in readings if r.text != r.greedy)
    off = recognizer.read([record["image"] for record in batch], batch_lexicon=False)
    assert [r.text for r in off] == [r.greedy for r in readings]
