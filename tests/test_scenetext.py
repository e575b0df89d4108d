"""unseen.scenetext mechanics on tiny configs: charset, metrics, renderer, splits, model, training."""

import random

import pytest
import torch

from unseen.core.errors import DataError
from unseen.scenetext import metrics
from unseen.scenetext.charset import BOS, EOS, check_label, decode, encode
from unseen.scenetext.e2str.data import model_inputs, pack
from unseen.scenetext.e2str.model import E2STR, E2STRConfig, cross_mask
from unseen.scenetext.e2str.render import WordRenderer, find_fonts
from unseen.scenetext.e2str.splits import crop_span, random_span, transform

TINY = E2STRConfig(d_model=32, n_layer=2, n_head=2, d_ff=64, dropout=0.0)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny tensors: one thread is faster


def test_charset_round_trip_and_errors():
    ids = encode("Hello, World 42!")
    assert ids[0] == BOS and ids[-1] == EOS
    assert decode(ids[1:]) == "Hello, World 42!"
    assert check_label("EXIT", "x") == "EXIT"
    with pytest.raises(DataError, match=r"labels.tsv:7: label 'CAFÉ' has characters outside .*'É' \(U\+00C9\)"):
        check_label("CAFÉ", "labels.tsv:7")
    with pytest.raises(DataError, match="empty label"):
        check_label("  ", "labels.tsv:8")


def test_metrics_protocols():
    assert metrics.normalize("Don't-Stop 24/7", "36") == "dontstop247"
    assert metrics.normalize("Don't-Stop", "cased") == "DontStop"
    assert metrics.normalize("Don't Stop", "full") == "Don'tStop"
    assert metrics.edit_distance("kitten", "sitting") == 3
    assert metrics.one_minus_ned("abcd", "abcf") == pytest.approx(0.75)
    assert metrics.one_minus_ned("", "") == 1.0
    result = metrics.score(["HOTEL", "caf", "Exit!"], ["hotel", "cafe", "EXIT"], "36")
    assert result["accuracy"] == pytest.approx(2 / 3)
    assert result["one_minus_ned"] == pytest.approx((1 + 0.75 + 1) / 3)
    full = metrics.report(["HOTEL", "caf", "Exit!"], ["hotel", "cafe", "EXIT"])
    assert full["cased"]["accuracy"] == 0 and full["full"]["accuracy"] == 0


@pytest.fixture(scope="module")
def renderer():
    return WordRenderer(find_fonts()[:6])


def test_renderer_boxes_follow_characters(renderer):
    rng = random.Random(3)
    for word in ["Hotel", "EXIT 24", "a,b"]:
        sample = renderer.render(word, rng)
        assert sample.image.height == 64 and sample.image.mode == "RGB"
        assert len(sample.boxes) == len(word)
        centres = [(b[0] + b[2]) / 2 for b in sample.boxes]
        assert centres == sorted(centres)  # left to right, even after rotation/perspective
        for x0, y0, x1, y1 in sample.boxes:
            assert -2 <= x0 < x1 <= sample.image.width + 2


def test_split_and_transform(renderer):
    rng = random.Random(0)
    sample = renderer.render("PARKING", rng)
    i, j = random_span(7, rng)
    assert 0 <= i < j <= 7 and j - i < 7
    piece = crop_span(sample.image, sample.boxes, 2, 5)
    assert piece.height == 64 and piece.width < sample.image.width
    assert abs(piece.width - (sample.boxes[4][2] - sample.boxes[1][2]) ) < sample.image.width * 0.5
    moved = transform(sample.image, rng)
    assert moved.mode == "RGB" and moved.height >= 64


def _vis(T, seed):
    return torch.randn(T, TINY.d_visual, generator=torch.Generator().manual_seed(seed))


def test_pack_layouts():
    seqs = [[(_vis(5, 0), "ab"), (_vis(4, 1), "xyz")], [(_vis(3, 2), "q")]]
    right = pack(seqs)
    assert right["tokens"].shape == (2, 7)  # BOS a b BOS x y z
    assert right["targets"][0].tolist()[:3] == encode("ab")[1:]
    assert right["slot"][0].tolist() == [0, 0, 0, 1, 1, 1, 1]
    assert right["pos"][0].tolist() == [0, 1, 2, 0, 1, 2, 3]
    assert right["vslot"][1].tolist() == [0, 0, 0] + [-1] * 6
    left = pack([[(_vis(5, 0), "ab"), (_vis(4, 1), None)], [(_vis(3, 2), None)]], left_pad=True)
    assert left["tokens"][:, -1].tolist() == [BOS, BOS] and left["tokens"][1, 0] == 0


def test_cross_attention_sees_only_its_own_image():
    torch.manual_seed(0)
    model = E2STR(TINY).eval()
    a, b = _vis(6, 0), _vis(5, 1)
    batch = pack([[(a, "ab"), (b, "cd")]])
    mask = cross_mask(batch["slot"], batch["vslot"], batch["tokens"] != 0)
    assert mask[0, :3, :6].all() and not mask[0, :3, 6:].any()  # segment 1 -> image 1 only
    assert mask[0, 3:, 6:].all() and not mask[0, 3:, :6].any()  # segment 2 -> image 2 only
    # the first segment cannot see the second image (causal + own-image cross-attention) ...
    other = pack([[(a, "ab"), (_vis(5, 9), "cd")]])
    out1, out2 = model(*model_inputs(batch)), model(*model_inputs(other))
    assert torch.allclose(out1[0, :3], out2[0, :3], atol=1e-6)
    # ... while the second segment reads the first image's information through the text stream
    changed = pack([[(_vis(6, 7), "ab"), (b, "cd")]])
    assert not torch.allclose(model(*model_inputs(changed))[0, 3:], out1[0, 3:], atol=1e-4)


def test_generate_matches_teacher_forcing_and_batching():
    torch.manual_seed(1)
    model = E2STR(TINY).eval()
    ctx, query = _vis(8, 3), _vis(6, 4)
    single = pack([[(ctx, "hello"), (query, None)]], left_pad=True)
    ids, conf = model.generate(*model_inputs(single), max_len=6)
    both = pack([[(ctx, "hello"), (query, None)], [(_vis(9, 5), None)]], left_pad=True)
    ids2, conf2 = model.generate(*model_inputs(both), max_len=6)
    assert ids2[0] == ids[0] and conf2[0] == pytest.approx(conf[0], abs=1e-5)
    # the cached decoding equals a full forward over the generated text
    text = decode(ids[0])
    full = model(*model_inputs(pack([[(ctx, "hello"), (query, text)]])))
    steps = full[0, -len(text) - 1 :].clone()
    steps[:, :2] = -1e9  # generate never emits PAD or BOS
    predicted = steps.argmax(-1).tolist()
    assert predicted[: len(text)] == ids[0][: len(text)]


def test_tiny_training_learns():
    from unseen.scenetext.e2str.train import finetune, loss_fn

    torch.manual_seed(0)
    words = ["ab", "ba", "abc", "cab"]
    visuals = [_vis(4, k) for k in range(4)]
    model = E2STR(TINY)
    batch = pack([[(v, w)] for v, w in zip(visuals, words)])
    before = loss_fn(model, batch)[0].item()
    finetune(model, visuals, words, steps=80, lr=3e-3, batch_size=4)
    assert loss_fn(model, batch)[0].item() < before * 0.2
    readings = [decode(model.generate(*model_inputs(pack([[(v, None)]], left_pad=True)))[0][0]) for v in visuals]
    assert readings == words


def test_model_file_round_trip(tmp_path):
    from unseen.core.errors import UnseenError
    from unseen.scenetext.e2str.recognizer import load_model_file, save_model_file

    model = E2STR(TINY)
    path = save_model_file(model, tmp_path / "w.safetensors", encoder="crnn-x", stage=1, half=True)
    loaded, meta = load_model_file(path)
    assert meta["encoder"] == "crnn-x" and loaded.cfg == TINY
    assert torch.allclose(loaded.tok.weight, model.tok.weight.half().float())
    (tmp_path / "bad.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(UnseenError, match="cannot read recognizer weights"):
        load_model_file(tmp_path / "bad.safetensors")


def test_neighbour_context_sequences_end_with_the_query_after_other_groups(tmp_path):
    from unseen.scenetext.e2str.store import D_VISUAL, FeatureStore
    from unseen.scenetext.e2str.train import ContextSequences
    from unseen.scenetext.encoder import FrozenEncoder

    store = FeatureStore.create(tmp_path / "store", "test-encoder")
    generator = torch.Generator().manual_seed(0)
    visuals = [torch.randn(6, D_VISUAL, generator=generator) for _ in range(12)]
    store.append(visuals, [f"w{i}" for i in range(12)], [i // 3 for i in range(12)], ["synthetic"] * 12)
    assert ContextSequences(store, seed=0).neighbours is None  # the default keeps stage 2 as it was
    shaped = ContextSequences(store, seed=0, p_neighbours=1.0, max_segments=4)
    keys = torch.stack([FrozenEncoder.pooled(store.visual(i).float()) for i in range(len(store))])
    for i in range(20):
        *context, query = shaped.spec(i)
        assert 1 <= len(context) <= 3
        assert all(store.items[j]["group"] != store.items[query]["group"] for j in context)
        similarity = [float(keys[query] @ keys[j]) for j in context]
        assert similarity == sorted(similarity)  # the most similar sits nearest the query
        others = [j for j in range(len(store)) if store.items[j]["group"] != store.items[query]["group"]]
        best = sorted(others, key=lambda j: -float(keys[query] @ keys[j]))[: len(context)]
        assert sorted(context) == sorted(best)
