"""The lexicon gate (pool labels scored by the recognizer's CTC, PP-OCRv6 by default, used only where its reading
is unsure): mechanics on tiny hand-made log-probabilities, pools that record it, and the CLI with bad inputs."""

import importlib.util
import json

import pytest
import torch
from conftest import missing_module
from typer.testing import CliRunner

from unseen.core.errors import DataError, UnseenError
from unseen.scenetext.lexicon_gate import (
    GATE_OFF,
    GateSetting,
    LexiconGate,
    choose_setting,
    gated_text,
    leave_one_out_setting,
    score_log_probs,
)
from unseen.scenetext.pool import Pool

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CHARACTERS = ["<blank>", "a", "b", "c", "d", " "]  # PaddleOCR's layout: blank first, space last


def log_probs(columns: list[dict[str, float]], characters: list[str] = CHARACTERS) -> torch.Tensor:
    """One column per dict of character -> probability; the rest of each column's mass goes to blank."""
    rows = []
    for column in columns:
        p = torch.full((len(characters),), 1e-4)
        for ch, value in column.items():
            p[characters.index(ch)] = value
        p[0] = max(1.0 - sum(column.values()), 1e-4)
        rows.append((p / p.sum()).log())
    return torch.stack(rows)


# reads "ab" greedily, but unsure of "b" (0.5, with "c" close at 0.45)
UNSURE_AB = [{"a": 0.95}, {}, {"b": 0.5, "c": 0.45}, {}]
SURE_CD = [{"c": 0.97}, {}, {"d": 0.97}, {}]


def test_scores_greedy_reading_confidence_and_labels():
    crop = score_log_probs(log_probs(UNSURE_AB), CHARACTERS, ["ac", "ab", "xyz", ""])
    # least sure: the smallest character probability (what tau is compared with); mean: the reading's confidence
    assert crop.greedy == "ab" and crop.least_sure == pytest.approx(0.5, abs=0.01)
    assert crop.mean == pytest.approx((0.95 + 0.5) / 2, abs=0.01)
    assert set(crop.label_ll) == {"ac"}  # the greedy reading is scored apart; unspellable and empty labels never win
    assert crop.label_ll["ac"] < crop.greedy_ll


def test_gate_replaces_only_unsure_readings_that_a_label_explains():
    crop = score_log_probs(log_probs(UNSURE_AB), CHARACTERS, ["ac"])
    assert gated_text(crop, {"ac"}, GATE_OFF) == "ab"  # tau 0: never
    assert gated_text(crop, {"ac"}, GateSetting(0.9, 0.0)) == "ab"  # "ac" explains the image less well
    assert gated_text(crop, {"ac"}, GateSetting(0.9, -1.0)) == "ac"  # a lexicon bonus lets it in
    assert gated_text(crop, {"ac"}, GateSetting(0.4, -1.0)) == "ab"  # not unsure enough for this tau
    assert gated_text(crop, set(), GateSetting(0.9, -1.0)) == "ab"  # no candidate in this pool
    sure = score_log_probs(log_probs(SURE_CD), CHARACTERS, ["cc"])
    assert gated_text(sure, {"cc"}, GateSetting(0.9, -8.0)) == "cd"


def test_setting_is_chosen_by_net_gain_and_stays_off_without_one():
    crops = [score_log_probs(log_probs(UNSURE_AB), CHARACTERS, ["ac", "cd"]),
             score_log_probs(log_probs(SURE_CD), CHARACTERS, ["ac", "cd"])]
    setting, grid = choose_setting(crops, ["ac", "cd"], [{"ac", "cd"}] * 2, "test")
    assert (setting.fixed, setting.broken) == (1, 0) and not setting.off and setting.chosen_by == "test"
    assert len(grid) > 50
    # the label is the reading already: nothing to gain, so the most conservative setting, off
    setting, _ = choose_setting(crops, ["ab", "cd"], [{"ac", "cd"}] * 2, "test")
    assert setting.off and (setting.fixed, setting.broken) == (0, 0)
    # leave-one-out: each crop's own label is not its candidate, so two distinct words teach nothing
    setting, _ = leave_one_out_setting(crops, ["ac", "cd"])
    assert setting.off


class FakeEncoder:
    """What the gate needs of PPOCREncoder: characters, a fingerprint, CTC log-probabilities per crop."""

    characters = CHARACTERS
    fingerprint = "ppocr-v4-test"

    def ctc_log_probs(self, images):
        for i, columns in enumerate(images):
            yield i, log_probs(columns, self.characters)


def test_lexicon_gate_fits_on_its_pool_and_reads():
    encoder = FakeEncoder()
    # the pool holds "ac" twice: the unsure crop is fixed by the other copy's label (leave-one-out)
    gate = LexiconGate.fit(encoder, [UNSURE_AB, [{"a": 0.97}, {}, {"c": 0.97}, {}], SURE_CD], ["ac", "ac", "cd"])
    assert not gate.setting.off and gate.setting.fixed == 1
    readings = gate.read(encoder, [UNSURE_AB, SURE_CD])
    assert [(r.text, r.greedy, r.from_pool) for r in readings] == [("ac", "ab", True), ("cd", "cd", False)]
    with pytest.raises(UnseenError, match="context pool is empty"):
        LexiconGate.fit(encoder, [], [])


def test_gate_chosen_on_other_labelled_crops_where_leave_one_out_sees_nothing():
    encoder = FakeEncoder()
    pool_images, labels = [SURE_CD, [{"a": 0.97}, {}, {"c": 0.97}, {}]], ["cd", "ac"]
    assert LexiconGate.fit(encoder, pool_images, labels).setting.off  # two distinct words teach nothing
    gate = LexiconGate.fit(encoder, pool_images, labels, held_out=([UNSURE_AB], ["ac"]))
    assert not gate.setting.off and (gate.setting.fixed, gate.setting.broken) == (1, 0)
    assert gate.setting.chosen_by == "1 other labelled crops"


def test_pool_records_its_gate_and_refuses_bad_pools(tmp_path):
    pool = Pool("ppocr-v4-test", ["ac", "cd"], ["x", "y"], ["", ""], [torch.zeros(4, 120), torch.zeros(4, 120)],
                gate={"tau": 0.9, "delta": -6.0, "fixed": 3, "broken": 0, "chosen_by": "leave-one-out on the pool"})
    pool.save(tmp_path / "p")
    again = Pool.load(tmp_path / "p")
    assert again.gate == pool.gate and LexiconGate.from_pool(again).setting == GateSetting(**pool.gate)
    with pytest.raises(UnseenError, match="context pool is empty"):
        LexiconGate.from_pool(Pool("ppocr-v4-test"))
    with pytest.raises(UnseenError, match="has no gate setting"):
        LexiconGate.from_pool(Pool("ppocr-v4-test", ["ac"], ["x"], [""], [torch.zeros(4, 120)]))
    with pytest.raises(UnseenError, match="read it with --encoder ppocr-v4-rec") as err:
        again.check_encoder("crnn-0123456789abcdef")
    assert "\n" not in str(err.value)
    with pytest.raises(UnseenError, match="pool was built with encoder crnn-") as err:
        Pool("crnn-0123456789abcdef").check_encoder("ppocr-v4-test")
    assert "\n" not in str(err.value)


# ---- the CLI on real crops with the default reader (PP-OCRv6) and PP-OCRv4 -----------------------

def _needs_wheel():
    for module in ("rapidocr", "rapidocr_onnxruntime", "onnx"):
        if importlib.util.find_spec(module) is None:
            missing_module(module, "pip install rapidocr==3.10.0 rapidocr_onnxruntime onnx")


def _json_row(output: str) -> dict:
    """The one JSON object `unseen str read --json` prints for one crop (a summary line follows it)."""
    (row,) = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return row


@pytest.fixture(scope="module")
def crops(tmp_path_factory, shared_data):
    """A labels.tsv folder of 8 real IC15 test crops."""
    from unseen.scenetext.evaluate import load_records

    root = tmp_path_factory.mktemp("crops")
    (root / "images").mkdir()
    lines = []
    for i, record in enumerate(load_records("ic15", "test", shared_data, limit=8)):
        record["image"].save(root / "images" / f"w{i}.png")
        lines.append(f"images/w{i}.png\t{record['text']}")
    (root / "labels.tsv").write_text("\n".join(lines) + "\n")
    return root


def test_cli_builds_a_gated_pool_and_reads_and_evaluates_with_it(tmp_path, crops):
    _needs_wheel()
    from unseen.cli.scenetext import app

    runner = CliRunner()
    pool = tmp_path / "pool"
    # PP-OCRv6 with the lexicon gate is the default reader: no --encoder needed
    result = runner.invoke(app, ["pool", "build", "--images", str(crops), "--labels", str(crops / "labels.tsv"),
                                 "--out", str(pool)])
    assert result.exit_code == 0, result.output
    assert "lexicon gate:" in result.output
    meta = json.loads((pool / "pool.json").read_text())
    assert meta["encoder"].startswith("ppocr-v6-rec-") and set(meta["gate"]) >= {"tau", "delta", "chosen_by"}
    assert not (pool / "features.safetensors").exists()  # a PP-OCRv6 pool keeps words only
    result = runner.invoke(app, ["pool", "add", str(pool), "--image", str(crops / "images" / "w0.png"),
                                 "--text", "JOINT"])
    assert result.exit_code == 0 and "now 9 samples" in " ".join(result.output.split()), result.output
    assert "gate" in json.loads((pool / "pool.json").read_text())  # chosen again for the new labels
    result = runner.invoke(app, ["read", str(crops / "images" / "w1.png"), "--pool", str(pool), "--json"])
    assert result.exit_code == 0, result.output
    row = _json_row(result.output)
    assert set(row) == {"image", "text", "confidence", "least_sure", "greedy", "from_pool", "from_batch"}
    assert 0 <= row["least_sure"] <= row["confidence"] <= 1  # the least sure character, the mean of them
    out = tmp_path / "eval.json"
    result = runner.invoke(app, ["eval", "--dataset", str(crops), "--pool", str(pool), "--baseline", "ppocr",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    payload = json.loads(out.read_text())
    assert payload["ours"]["encoder"] == "ppocr-v6-rec" and payload["ours"]["gate"]["chosen_by"]
    assert payload["ours"]["batch_lexicon"] is True  # on by default
    assert len(payload["ppocr"]["predictions"]) == 8  # --baseline ppocr: PP-OCRv4's greedy reading, beside
    # PP-OCRv4 refuses this pool in one line, and says how to read with it
    result = runner.invoke(app, ["read", str(crops / "images" / "w1.png"), "--pool", str(pool),
                                 "--encoder", "ppocr-v4-rec"])
    assert isinstance(result.exception, UnseenError) and "--encoder ppocr-v6-rec" in str(result.exception)
    assert "\n" not in str(result.exception)


def test_cli_reads_crops_with_pp_ocr_v6_by_default_and_v4_when_asked(tmp_path, crops):
    _needs_wheel()
    from unseen.cli.scenetext import app

    runner = CliRunner()
    out = {}
    for name, extra in (("v6", []), ("v4", ["--encoder", "ppocr-v4-rec"])):
        result = runner.invoke(app, ["eval", "--dataset", str(crops), "--no-batch-lexicon", "--out",
                                     str(tmp_path / f"{name}.json"), *extra])
        assert result.exit_code == 0, result.output
        out[name] = json.loads((tmp_path / f"{name}.json").read_text())["ours"]
    assert (out["v6"]["encoder"], out["v4"]["encoder"]) == ("ppocr-v6-rec", "ppocr-v4-rec")
    from unseen.scenetext.encoder import load_encoder
    from unseen.scenetext.evaluate import load_records, ppocr_baseline
    from unseen.scenetext.lexicon_gate import read_plain

    images = [r["image"] for r in load_records(str(crops), None)]
    assert out["v4"]["predictions"] == ppocr_baseline(images)[0]  # PP-OCRv4's own greedy reading
    assert out["v6"]["predictions"] == [r.text for r in read_plain(load_encoder("ppocr-v6-rec"), images)]
    result = runner.invoke(app, ["read", str(crops / "images" / "w1.png"), "--encoder", "ppocr-v4-rec", "--json"])
    assert result.exit_code == 0, result.output
    assert _json_row(result.output)["text"] == out["v4"]["predictions"][1]


def test_cli_chooses_the_gate_on_other_crops_and_again_after_pool_add(tmp_path, crops):
    _needs_wheel()
    from unseen.cli.scenetext import app

    runner = CliRunner()
    pool = tmp_path / "pool"
    build = ["pool", "build", "--images", str(crops), "--labels", str(crops / "labels.tsv"), "--limit", "4",
             "--gate-on", "3", "--out", str(pool)]
    result = runner.invoke(app, build + ["--encoder", "easyocr-english-g2"])
    assert isinstance(result.exception, UnseenError) and "drop --weights" in str(result.exception)
    assert not pool.exists()
    result = runner.invoke(app, build)
    assert result.exit_code == 0, result.output
    meta = json.loads((pool / "pool.json").read_text())
    assert meta["count"] == 4 and len(meta["gate_crops"]) == 3 and meta["gate"]["chosen_by"] == "3 other labelled crops"
    assert not {c["source"] for c in meta["gate_crops"]} & {s["source"] for s in meta["samples"]}  # none in the pool
    assert all((pool / c["file"]).exists() for c in meta["gate_crops"])
    result = runner.invoke(app, ["pool", "add", str(pool), "--image", str(crops / "images" / "w0.png"),
                                 "--text", "JOINT"])
    assert result.exit_code == 0, result.output
    assert json.loads((pool / "pool.json").read_text())["gate"]["chosen_by"] == "3 other labelled crops"


def test_cli_gate_bad_input(tmp_path, crops):
    _needs_wheel()
    from unseen.cli.scenetext import app
    from unseen.scenetext.encoder import load_encoder

    runner = CliRunner()
    (tmp_path / "bad.png").write_bytes(b"nope")
    result = runner.invoke(app, ["read", str(tmp_path / "bad.png"), "--encoder", "ppocr-v4-rec"])
    # a file that is not an image is skipped with a one-line reason, and the exit status says so
    assert result.exit_code == 3 and "bad.png: cannot decode image" in result.output
    image = str(crops / "images" / "w0.png")
    Pool(load_encoder("ppocr-v4-rec").fingerprint).save(tmp_path / "empty")
    result = runner.invoke(app, ["read", image, "--encoder", "ppocr-v4-rec", "--pool", str(tmp_path / "empty")])
    assert isinstance(result.exception, UnseenError) and "context pool is empty" in str(result.exception)
    Pool("crnn-0123456789abcdef", ["a"], ["x"], ["f"], [torch.zeros(3, 353)]).save(tmp_path / "crnn")
    result = runner.invoke(app, ["read", image, "--encoder", "ppocr-v4-rec", "--pool", str(tmp_path / "crnn")])
    assert isinstance(result.exception, UnseenError) and "pool was built with encoder crnn-" in str(result.exception)
    assert "\n" not in str(result.exception)
    result = runner.invoke(app, ["read", image, "--encoder", "tesseract"])
    assert isinstance(result.exception, UnseenError)
    assert "known: ppocr-v6-rec, easyocr-english-g2, ppocr-v4-rec" in str(result.exception)


def test_cli_pool_from_a_dataset_skips_labels_outside_the_charset(tmp_path, crops):
    """A dataset's label the reader cannot write is skipped with a notice, not a refusal of the whole pool; the
    user's own labels file still fails on it (test_scenetext_data). PP-OCRv6 writes accented Latin words (CAFÉ,
    Straße), PP-OCRv4 and E2STR-lite only printable ASCII."""
    _needs_wheel()
    import shutil

    from unseen.cli.scenetext import app

    source = tmp_path / "source"
    shutil.copytree(crops, source)
    with (source / "labels.tsv").open("a") as handle:
        handle.write("images/w0.png\tCAFÉ\nimages/w1.png\t水\n")
    result = CliRunner().invoke(app, ["pool", "build", "--from", str(source), "--out", str(tmp_path / "pool")])
    assert result.exit_code == 0, result.output
    assert "skipped 1 sample(s)" in " ".join(result.output.split()) and "'水'" in result.output
    assert "CAFÉ" in [s["text"] for s in json.loads((tmp_path / "pool" / "pool.json").read_text())["samples"]]
    result = CliRunner().invoke(app, ["pool", "build", "--from", str(source), "--out", str(tmp_path / "pool4"),
                                      "--encoder", "ppocr-v4-rec"])
    assert result.exit_code == 0, result.output
    assert "skipped 2 sample(s)" in " ".join(result.output.split()) and "'CAFÉ'" in result.output
    assert json.loads((tmp_path / "pool4" / "pool.json").read_text())["count"] == 8


def test_a_pp_ocr_v6_pool_takes_accented_labels(tmp_path, crops):
    """Labels with accents (Café, Straße) join a PP-OCRv6 pool and its gate; PP-OCRv4 refuses them in one line."""
    _needs_wheel()
    from unseen.cli.scenetext import app
    from unseen.scenetext.lexicon_gate import LexiconGate

    labels = tmp_path / "labels.tsv"
    labels.write_text(f"{crops / 'images' / 'w0.png'}\tCafé\n{crops / 'images' / 'w1.png'}\tStraße\n",
                      encoding="utf-8")
    result = CliRunner().invoke(app, ["pool", "build", "--labels", str(labels), "--out", str(tmp_path / "pool")])
    assert result.exit_code == 0, result.output
    pool = Pool.load(tmp_path / "pool")
    assert pool.texts == ["Café", "Straße"] and LexiconGate.from_pool(pool).labels == ["Café", "Straße"]
    result = CliRunner().invoke(app, ["pool", "build", "--labels", str(labels), "--out", str(tmp_path / "pool4"),
                                      "--encoder", "ppocr-v4-rec"])
    assert isinstance(result.exception, DataError) and "'é' (U+00E9)" in str(result.exception)
    assert "\n" not in str(result.exception)


def test_the_default_reader_reads_an_accented_word_with_its_accent():
    """PP-OCRv6 writes Latin-script accents (PP-OCRv4 could not): a rendered "Café" (DejaVu Sans, height 48, black
    on white) reads "Café" through Recognizer.load().read, confidence the mean character probability, least_sure
    the smallest."""
    _needs_wheel()
    from unseen.core.assets.checks import render_word
    from unseen.scenetext.reader import Recognizer

    recognizer = Recognizer.load()
    assert recognizer.encoder.fingerprint.startswith("ppocr-v6-rec-")
    (reading,) = recognizer.read([render_word("Café", height=48)])
    assert (reading.text, reading.greedy, reading.source) == ("Café", "Café", "read")
    assert 0 < reading.least_sure <= reading.confidence <= 1
    assert set(reading.as_dict()) == {"text", "confidence", "least_sure", "greedy", "source"}
