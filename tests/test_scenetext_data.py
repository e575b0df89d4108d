"""unseen.scenetext on real word crops: data loading, encoder, pools, metrics, CLI and bad input."""

import json

import pytest
import torch
from conftest import missing_module
from PIL import Image
from typer.testing import CliRunner

from unseen.core.errors import DataError, UnseenError
from unseen.scenetext.e2str.model import E2STR, E2STRConfig

TINY = E2STRConfig(d_model=32, n_layer=2, n_head=2, d_ff=64, dropout=0.0)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny tensors: one thread is faster


@pytest.fixture(scope="module")
def encoder():
    from unseen.scenetext.encoder import FrozenEncoder

    return FrozenEncoder()


@pytest.fixture(scope="module")
def ic15(shared_data):
    from unseen.scenetext.evaluate import load_records

    return load_records("ic15", "test", shared_data, limit=12)


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory, encoder):
    from unseen.scenetext.e2str.recognizer import save_model_file

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "tiny.safetensors"
    return save_model_file(E2STR(TINY), path, encoder=encoder.fingerprint, stage=1)


@pytest.fixture(scope="module")
def crops(tmp_path_factory, ic15):
    """A labels.tsv word-crop folder of 6 real IC15 test crops."""
    root = tmp_path_factory.mktemp("crops")
    (root / "images").mkdir()
    lines = []
    for i, record in enumerate(ic15[:6]):
        record["image"].save(root / "images" / f"w{i}.png")
        lines.append(f"images/w{i}.png\t{record['text']}")
    (root / "labels.tsv").write_text("\n".join(lines) + "\n")
    return root


def test_real_crops_load_and_encode(ic15, encoder):
    from unseen.scenetext.encoder import canonical_width

    assert ic15[0]["text"] == "JOINT" and ic15[0]["image"].mode == "RGB"
    visuals = encoder.encode([r["image"] for r in ic15[:4]])
    for record, tokens in zip(ic15, visuals):
        assert tokens.shape == (canonical_width(record["image"]) // 4 - 1, 353)
        assert torch.allclose(tokens[:, 256:].exp().sum(-1), torch.ones(tokens.shape[0]), atol=1e-4)
    # batching does not change an image's tokens (same-width batches only)
    alone = encoder.encode([ic15[2]["image"]])[0]
    assert torch.allclose(alone, visuals[2], atol=1e-4)


def test_metrics_on_real_crops_with_the_crnn(ic15, encoder):
    from unseen.scenetext.encoder import FrozenEncoder
    from unseen.scenetext.evaluate import easyocr_baseline
    from unseen.scenetext.metrics import report

    predictions, _ = easyocr_baseline([r["image"] for r in ic15], encoder.crnn)
    ours = [FrozenEncoder.ctc_reading(v) for v in encoder.encode([r["image"] for r in ic15])]
    result = report(predictions, [r["text"] for r in ic15])
    assert 0.2 <= result["36"]["accuracy"] <= 1.0  # EasyOCR reads about a third to a half of IC15
    assert result["36"]["one_minus_ned"] >= result["36"]["accuracy"]
    assert sum(a.lower() == b.lower() for a, b in zip(predictions, ours)) >= 8  # same CRNN, width rounding aside


def test_ic15_alnum_filter(shared_data):
    from unseen.scenetext.evaluate import load_records

    records = load_records("ic15", "test", shared_data, filter="alnum", limit=40)
    assert all(r["text"].isalnum() and r["text"].isascii() for r in records)


def test_pool_build_save_load_retrieve(tmp_path, crops, encoder):
    from unseen.scenetext.pool import Pool, read_labels_file

    pool = Pool.new(encoder, root=tmp_path / "pool")
    assert pool.add(read_labels_file(crops / "labels.tsv"), encoder) == 6
    pool.save()
    again = Pool.load(tmp_path / "pool")
    assert again.texts == pool.texts and len(list((tmp_path / "pool" / "images").iterdir())) == 6
    idx, sims = again.retrieve(torch.stack([encoder.pooled(v.float()) for v in pool.visuals[:2]]), 3)
    assert idx[:, 0].tolist() == [0, 1] and sims[0, 0] == pytest.approx(1.0, abs=1e-2)
    assert (sims[:, :-1] >= sims[:, 1:]).all()


def test_pool_bad_input(tmp_path, crops, encoder):
    from unseen.scenetext.pool import Pool, PoolSample, read_labels_file

    pool = Pool.new(encoder)
    with pytest.raises(UnseenError, match="context pool is empty"):
        pool.retrieve(torch.zeros(1, 256), 2)
    labels = tmp_path / "labels.tsv"
    labels.write_text(f"{crops}/images/w0.png\tJOINT\n{crops}/images/w1.png\tCAFÉ\n")
    with pytest.raises(DataError, match=r"labels.tsv:2: label 'CAFÉ' has characters outside"):
        pool.add(read_labels_file(labels), encoder)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match="broken.png.*cannot decode image"):
        pool.add([PoolSample(tmp_path / "broken.png", "X", "broken.png")], encoder)
    with pytest.raises(DataError, match="zero size|cannot decode"):
        pool.add([PoolSample(Image.new("RGB", (0, 5)), "X", "empty.png", where="empty.png")], encoder)
    other = Pool("crnn-someothermodel", ["a"], ["x"], ["f"], [torch.zeros(3, 353)])
    with pytest.raises(UnseenError, match="pool was built with encoder crnn-someothermodel"):
        other.check_encoder(encoder.fingerprint)
    with pytest.raises(DataError, match="not a context pool"):
        Pool.load(tmp_path)


def test_recognizer_reads_with_context(tiny_weights, ic15, encoder):
    from unseen.scenetext.e2str.recognizer import Recognizer
    from unseen.scenetext.pool import Pool, PoolSample

    rec = Recognizer.load(tiny_weights, encoder)
    pool = Pool.new(encoder)
    pool.add([PoolSample(r["image"], r["text"], r["path"]) for r in ic15[6:]], encoder)
    images = [r["image"] for r in ic15[:3]]
    plain = rec.read(images)
    assert all(r.context == [] and 0 < r.confidence <= 1 for r in plain)
    ctx = rec.read(images, pool=pool, n=2)
    assert all(len(r.context) == 2 and r.context[0][2] >= r.context[1][2] for r in ctx)
    rand = rec.read(images, pool=pool, n=2, context="random", seed=1)
    assert all(len(r.context) == 2 for r in rand)
    # batch composition does not change a reading
    assert [r.text for r in rec.read(images[:1], pool=pool, n=2)] == [ctx[0].text]
    foreign = Pool("crnn-someothermodel", ["a"], ["x"], ["f"], [torch.zeros(3, 353)])
    with pytest.raises(UnseenError, match="rebuild the pool"):
        rec.read(images, pool=foreign, n=2)


def test_lmdb_input(tmp_path, ic15):
    from unseen.core.data import write_lmdb
    from unseen.scenetext.evaluate import load_records

    write_lmdb(ic15[:3], tmp_path / "lmdb")
    records = load_records(str(tmp_path / "lmdb"), None)
    assert [r["text"] for r in records] == [r["text"] for r in ic15[:3]]


def test_cli_pool_read_eval(tmp_path, crops, tiny_weights):
    from unseen.cli.scenetext import app

    runner = CliRunner()
    pool = tmp_path / "pool"
    result = runner.invoke(app, ["pool", "build", "--images", str(crops), "--labels", str(crops / "labels.tsv"),
                                 "--out", str(pool), "--weights", str(tiny_weights)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["pool", "add", str(pool), "--image", str(crops / "images" / "w0.png"),
                                 "--text", "JOINT", "--weights", str(tiny_weights)])
    assert result.exit_code == 0 and "now 7 samples" in " ".join(result.output.split())
    result = runner.invoke(app, ["pool", "ls", str(pool), "--limit", "3"])
    assert result.exit_code == 0 and "7 samples" in " ".join(result.output.split())
    result = runner.invoke(app, ["read", str(crops / "images" / "w1.png"), "--pool", str(pool), "--explain", "--json",
                                 "--weights", str(tiny_weights)])
    assert result.exit_code == 0, result.output
    row = json.loads(result.output.strip().splitlines()[-1])
    assert set(row) == {"image", "text", "confidence", "context"} and len(row["context"]) == 2
    out = tmp_path / "eval.json"
    result = runner.invoke(app, ["eval", "--dataset", str(crops), "--pool", str(pool), "--baseline", "easyocr",
                                 "--weights", str(tiny_weights), "--out", str(out)])
    assert result.exit_code == 0, result.output
    payload = json.loads(out.read_text())
    assert payload["n"] == 6 and "easyocr" in payload and 0 <= payload["ours"]["metrics"]["36"]["accuracy"] <= 1


def test_cli_bad_input(tmp_path, crops, tiny_weights):
    from unseen.cli.scenetext import app

    runner = CliRunner()
    (tmp_path / "bad.png").write_bytes(b"nope")
    # an image that cannot be read is skipped, named on one line, with exit status 3 (even when it is the only one)
    result = runner.invoke(app, ["read", str(tmp_path / "bad.png"), "--weights", str(tiny_weights)])
    assert result.exit_code == 3 and "bad.png" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["read", str(crops / "images" / "w0.png"), "--pool", str(tmp_path),
                                 "--weights", str(tiny_weights)])
    assert isinstance(result.exception, DataError) and "not a context pool" in str(result.exception)
    empty = tmp_path / "empty_pool"
    labels = tmp_path / "none.tsv"
    labels.write_text("")
    result = runner.invoke(app, ["pool", "build", "--labels", str(labels), "--out", str(empty),
                                 "--weights", str(tiny_weights)])
    assert result.exit_code == 0
    result = runner.invoke(app, ["read", str(crops / "images" / "w0.png"), "--pool", str(empty),
                                 "--weights", str(tiny_weights)])
    assert isinstance(result.exception, UnseenError) and "empty" in str(result.exception)
    result = runner.invoke(app, ["train", "--stage", "2", "--out", str(tmp_path / "r")])
    assert isinstance(result.exception, UnseenError) and "--init" in str(result.exception)


def test_every_command_has_an_example():
    from unseen.cli.scenetext import app, pool_app

    for group in (app, pool_app):
        for command in group.registered_commands:
            assert "Example: unseen str" in (command.callback.__doc__ or ""), command.callback.__name__


def test_shipped_weights_read_real_crops(ic15, encoder):
    from unseen.scenetext.e2str.recognizer import Recognizer, default_weights

    path = default_weights()
    assert path.exists(), "the shipped recognizer is missing: bench/scenetext/train_default.sh makes it"
    assert path.stat().st_size < 20 * 2**20
    rec = Recognizer.load(None, encoder)
    readings = rec.read([r["image"] for r in ic15])
    from unseen.scenetext.metrics import score

    assert score([r.text for r in readings], [r["text"] for r in ic15])["accuracy"] >= 0.25


def test_ctc_log_likelihood_prefers_the_crnn_reading(ic15, encoder):
    tokens = encoder.encode([ic15[0]["image"]])[0]
    reading = encoder.ctc_reading(tokens).strip()
    best = encoder.ctc_log_likelihood(tokens, reading)
    assert best <= 0
    assert encoder.ctc_log_likelihood(tokens, reading + reading[-1] * 2) < best  # a repeated tail is unlikely
    assert encoder.ctc_log_likelihood(tokens, "é") == float("-inf")  # the CRNN cannot write it


def test_joint_ctc_rescoring_picks_among_candidates(ic15, encoder, tiny_weights):
    """With the CTC weight at 1 the reading is the candidate the CRNN likes best; at 0, the decoder's own."""
    from unseen.scenetext.e2str.recognizer import Recognizer

    rec = Recognizer.load(tiny_weights, encoder)
    visuals = rec.encode([r["image"] for r in ic15[:4]])
    plain = [r.text for r in rec.read_visuals(visuals, ctc_weight=0.0)]
    ctc_only = [r.text for r in rec.read_visuals(visuals, ctc_weight=1.0)]
    for v, decoder_text, chosen in zip(visuals, plain, ctc_only):
        candidates = [c for c in (decoder_text, encoder.ctc_reading(v).strip()) if c]
        assert chosen in candidates
        assert encoder.ctc_log_likelihood(v, chosen) == max(encoder.ctc_log_likelihood(v, c) for c in candidates)


def test_quickstart_step_runs(shared_data):
    import importlib.util

    from rich.console import Console

    from unseen.scenetext.quickstart import run

    if importlib.util.find_spec("onnxruntime") is None:
        missing_module("onnxruntime", "the quickstart reads with PP-OCRv6, asset ppocr-v6-rec")
    console = Console(record=True, width=160)
    summary = run(console, shared_data, pool_size=5, queries=6)
    assert summary["pool_size"] == 5 and summary["queries"] == 6 and summary["encoder"] == "ppocr-v6-rec"
    assert 0 <= summary["accuracy_with_pool"] <= 1 and set(summary["gate"]) >= {"tau", "delta"}
    text = " ".join(console.export_text().split())  # the title wraps at the table's width
    assert "pool or the batch lexicon fixed or" in text and "changed but wrong either way" in text
    assert summary["from_pool"] + summary["from_batch"] >= summary["fixed"] + summary["broken"]
