"""The default reader's base, PP-OCRv6 small: its kept columns against the full output, accented words, the raw-reading
cache's key, and the tuned settings' single source."""

import json
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw, ImageFont

from unseen.core.ctc import greedy_decode

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def encoder():
    from unseen.scenetext.onnx_encoder import OnnxCTCEncoder

    return OnnxCTCEncoder("ppocr-v6-rec")


def line_crops(data_dir, numbers=(2, 5, 11)):
    from unseen.core.assets import load_asset
    from unseen.scenetext.photos import load_photo
    from unseen.scenetext.words import warp_line

    detector, crops = load_asset("ppocr-v6-det"), []
    for n in numbers:
        bgr, _, _ = load_photo(data_dir / "str" / "ic15_e2e" / "test" / "images" / f"img_{n}.jpg")
        crops += [warp_line(bgr, quad).image for quad in detector(bgr)[0]]
    return crops


@pytest.mark.slow
def test_kept_columns_read_and_score_as_the_full_output(encoder, data_dir):
    """Greedy reading on the kept columns = greedy on all 18,710 (another script's character shown as U+FFFD); a word
    spelled with kept characters has the same CTC log-likelihood on both."""
    from unseen.scenetext.lexicon import ctc_scores
    from unseen.scenetext.onnx_encoder import OTHER

    crops = line_crops(data_dir)
    assert len(crops) >= 10
    full = dict(encoder.full_probs(crops))
    kept_index = {c: i for i, c in enumerate(encoder.characters) if i}
    full_index = {c: i for i, c in enumerate(encoder.full_characters) if i}
    for i, compact in encoder.ctc_log_probs(crops):
        log_full = torch.from_numpy(full[i]).clamp_min(1e-30).log()
        reading = greedy_decode(log_full[None], encoder.full_characters)[0][0]
        expected = "".join(c if c in kept_index else OTHER for c in reading)
        assert greedy_decode(compact[None], encoder.characters)[0][0] == expected
        for word in {reading.strip().split(" ")[0] or "A", "HOTEL", "Café"}:
            if all(c in kept_index for c in word):
                ours = ctc_scores(compact, [[kept_index[c] for c in word]])[0]
                theirs = ctc_scores(log_full, [[full_index[c] for c in word]])[0]
                assert ours == pytest.approx(theirs, abs=1e-3), word


def render_line(words, path, size=(900, 240)):
    font = ImageFont.truetype("DejaVuSans-Bold.ttf", 40)
    image = Image.new("RGB", size, "white")
    ImageDraw.Draw(image).text((60, 90), " ".join(words), fill="black", font=font)
    image.save(path)
    return path


@pytest.mark.slow
def test_accented_words_read_with_their_accents(tmp_path):
    """PP-OCRv6 reads Latin-script languages: a photo of "Café Straße" gives both words with their accents, and an
    accented word list corrects to accented words (the 36-character protocol is the evaluation's, not the reader's)."""
    from unseen.scenetext.lexicon import Lexicon
    from unseen.scenetext.photos import PhotoReader

    reader = PhotoReader.load()
    path = render_line(["Café", "Straße"], tmp_path / "sign.png")
    [reading] = reader.read([path])
    assert [w.text for w in reading.words] == ["Café", "Straße"]
    [listed] = reader.read([path], lexicon=Lexicon(["CAFÉ", "STRASSE", "STRAẞE", "Straße"]))
    assert [w.text.upper() for w in listed.words][0] == "CAFÉ"


class FakeReader:
    """What RawCache needs of a reader: a fingerprint, and detect_and_read (counted)."""

    def __init__(self, fingerprint):
        self.fingerprint, self.calls = fingerprint, 0

    def detect_and_read(self, path):
        from unseen.scenetext.reading import RawPhoto

        self.calls += 1
        return RawPhoto(str(path), 10, 10, 1.0, [("line", self.fingerprint)])


def test_raw_cache_is_keyed_by_reader_and_photo_content(tmp_path):
    from unseen.scenetext.raw_cache import RawCache

    photo = tmp_path / "a.jpg"
    photo.write_bytes(b"some photo bytes")
    first, other = FakeReader("model-a"), FakeReader("model-b")
    assert RawCache(tmp_path / "cache", first).read(photo).lines == [("line", "model-a")]
    assert RawCache(tmp_path / "cache", first).read(photo).lines == [("line", "model-a")] and first.calls == 1
    # another model (or setting, or backend) never gets the first one's reading
    assert RawCache(tmp_path / "cache", other).read(photo).lines == [("line", "model-b")] and other.calls == 1
    copy = tmp_path / "copy.jpg"
    copy.write_bytes(photo.read_bytes())
    assert RawCache(tmp_path / "cache", first).read(copy).path == str(copy) and first.calls == 1
    photo.write_bytes(b"changed bytes")
    RawCache(tmp_path / "cache", first).read(photo)
    assert first.calls == 2


@pytest.mark.slow
def test_reader_fingerprint_names_weights_and_settings():
    from unseen.scenetext.photos import PhotoReader

    reader = PhotoReader.load()
    before = reader.fingerprint
    reader.detector.settings = reader.detector.settings.with_(box_thresh=0.6)
    assert reader.fingerprint != before
    assert PhotoReader.load(base="ppocr-v4").fingerprint not in (before, reader.fingerprint)


@pytest.mark.slow
def test_reader_loads_the_tuned_detector_with_its_tuned_settings(monkeypatch):
    from unseen.scenetext import tuned
    from unseen.scenetext.photos import PhotoReader

    shipped = tuned.tuned()
    monkeypatch.setattr(tuned, "tuned", lambda: {**shipped, "detector": "ppocr-v6-det",
                                                 "detector_settings": {"box_thresh": 0.45}})
    reader = PhotoReader.load()
    assert reader.detector.settings.box_thresh == 0.45 and "PP-OCRv6_det_small.onnx" in reader.detector.fingerprint
    monkeypatch.setattr(tuned, "tuned", lambda: {**shipped, "detector": "ppocr-v6-det-int8", "detector_settings": {}})
    int8 = PhotoReader.load()
    assert int8.detector.settings.box_thresh == 0.5 and "-int8-" in int8.detector.fingerprint


def test_shipped_settings_are_the_tuning_output():
    """The library's defaults come from tuned.json, and tuned.json holds what the tuning record says was chosen."""
    from unseen.scenetext import tuned
    from unseen.scenetext.adapt import DOMAIN_LIST, GENERAL_LIST, SELF_LABELLED_AS
    from unseen.scenetext.batch_lexicon import DEFAULT_BATCH_LEXICON
    from unseen.scenetext.reading import ReadSettings

    shipped = tuned.tuned()
    record = json.loads((ROOT / "docs" / "results" / "scenetext_e2e_tuning.json").read_text())
    chosen = record["read"]["chosen"]
    settings = ReadSettings()
    assert settings.min_confidence == chosen["min_confidence"] == shipped["read"]["min_confidence"]
    for key in ("lead", "trail", "height", "space_prob"):
        assert getattr(settings.split, key) == chosen[key] == shipped["split"][key]
    assert (settings.split.gap == float("inf")) == (chosen["gap"] is None)
    assert settings.trim == record["trim"]["chosen"] == shipped["read"]["trim"]
    fields = ("tau", "delta", "restrict", "drop_below", "keep_beyond_list")
    vocabularies = record["vocabularies"]
    assert {k: getattr(DOMAIN_LIST, k) for k in fields} == {k: vocabularies["domain_list"][k] for k in fields}
    general = vocabularies["general_list"] if vocabularies["general_list_used"] else {
        "tau": 0.0, "delta": 0.0, "restrict": False, "drop_below": -10.0, "keep_beyond_list": False}
    assert {k: getattr(GENERAL_LIST, k) for k in fields} == {k: general[k] for k in fields}
    assert SELF_LABELLED_AS == record["self_labelled_as"]["chosen"] == shipped["self_labelled_as"]
    assert shipped["detector"] == record["detector"]["chosen"]
    assert shipped["detector_settings"] == record["detect"]["written"]
    batch = json.loads((ROOT / "docs" / "results" / "scenetext_batch_lexicon.json").read_text())
    chosen_batch = batch["chosen"]
    assert DEFAULT_BATCH_LEXICON.min_confidence == chosen_batch["min_confidence"]
    assert DEFAULT_BATCH_LEXICON.min_length == chosen_batch.get("min_length", 1)
    assert (DEFAULT_BATCH_LEXICON.setting.tau, DEFAULT_BATCH_LEXICON.setting.delta) == (
        chosen_batch["tau"], chosen_batch["delta"])
