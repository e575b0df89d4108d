"""POUF on prompted language models: mechanics on tiny random models (the real runs live in bench/pouf)."""

import json

import pytest
import torch

from unseen.core.errors import DataError, UnseenError
from unseen.core.scoring import score_options
from unseen.pouf import cache
from unseen.pouf.adapt import AdaptConfig, predict_log_probs
from unseen.pouf.lm import CausalPromptLM, load_prompted_lm
from unseen.pouf.masked_lm import MaskedPromptLM
from unseen.pouf.tasks import eval_labels, eval_texts, load_text_task, unlabeled_texts
from unseen.pouf.testing import SENTIMENT_PROMPTS, sentiment_jsonl, tiny_causal_lm, tiny_masked_lm, tiny_tokenizer
from unseen.pouf.text import TextSetup, build_model, evaluate_run, run_adapt, text_items, zeroshot

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("UNSEEN_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("pouf-text")
    data = sentiment_jsonl(root / "reviews.jsonl", n=48)
    (root / "prompts.yaml").write_text(SENTIMENT_PROMPTS.format(dataset=data))
    return {"lm": tiny_causal_lm(root / "lm"), "mlm": tiny_masked_lm(root / "mlm"), "data": data,
            "prompts": root / "prompts.yaml", "root": root}


def _task(tiny):
    return load_text_task(str(tiny["data"]), tiny["prompts"])


def test_task_yaml_and_label_free_reading(tiny):
    task = _task(tiny)
    assert task.classes == ["negative", "positive"] and len(task.prompts) == 2 and task.holdout == 0.5
    unlabeled = unlabeled_texts(task, task.prompts[0])
    evaluated = eval_texts(task, task.prompts[0])
    assert len(unlabeled) + len(evaluated) == 48 and not set(unlabeled) & set(evaluated) or len(set(unlabeled)) < 24
    assert all(text.startswith("review: ") and text.endswith("\nsentiment:") for text in unlabeled)
    assert len(eval_labels(task)) == len(evaluated)


def test_builtin_tasks_parse():
    for name in ("sst2", "mr", "cr", "mpqa", "subj", "trec", "ag_news", "rte", "mrpc"):
        task = load_text_task(name)
        assert all(len(p.verbalizer) == len(task.classes) for p in task.prompts)
    with pytest.raises(UnseenError, match="unknown text task"):
        load_text_task("nope")


def test_bad_task_files_say_where(tmp_path, tiny):
    bad = tmp_path / "bad.yaml"
    bad.write_text(SENTIMENT_PROMPTS.format(dataset=tiny["data"]).replace('[" bad", " good"]', '[" bad"]'))
    with pytest.raises(DataError, match=r"prompt 1: verbalizer has 1 entries but there are 2 classes"):
        load_text_task(str(tiny["data"]), bad)
    wrong_field = tmp_path / "field.yaml"
    wrong_field.write_text(SENTIMENT_PROMPTS.format(dataset=tiny["data"]).replace("{text} \\nit", "{sentence} \\nit"))
    task = load_text_task(str(tiny["data"]), wrong_field)
    with pytest.raises(DataError, match=r"template field 'sentence' is not in the record"):
        unlabeled_texts(task, task.prompts[1])
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    (tmp_path / "e.yaml").write_text(SENTIMENT_PROMPTS.format(dataset=empty))
    task = load_text_task(str(empty), tmp_path / "e.yaml")
    with pytest.raises(DataError, match="the unlabeled target set is empty"):
        unlabeled_texts(task, task.prompts[0])


def test_causal_features_are_the_lms_own_verbalizer_scores(tiny):
    """Bottom (cached) + top layers == the whole LM; the class logits rank like rank scoring."""
    task = _task(tiny)
    model = build_model(TextSetup(str(tiny["lm"]), task, tune_layers=2, use_cache=False))
    assert isinstance(model, CausalPromptLM) and model.split == 1
    items = text_items(model, TextSetup(str(tiny["lm"]), task, tune_layers=2, use_cache=False), "eval", None)
    log_probs = predict_log_probs(model, items)
    texts = eval_texts(task, task.prompts[0])
    scores = score_options(model.lm, model.tokenizer, texts, [[" bad", " good"]] * len(texts))
    reference = torch.tensor([s.loglik for s in scores]).log_softmax(-1)
    assert torch.allclose(log_probs[0], reference, atol=1e-4)


def test_states_beyond_float16_are_cached_exactly(tiny):
    """Gemma's residual stream reaches ~1e5, past float16: such states are cached in float32
    (the scores still match a whole-LM forward), and a cache file holding inf is recomputed."""
    task = _task(tiny)
    setup = TextSetup(str(tiny["lm"]), task, tune_layers=2)
    model = build_model(setup)
    with torch.no_grad():
        model.lm.get_input_embeddings().weight.mul_(1e7)  # RMSNorm keeps the layers' arithmetic finite
    texts = eval_texts(task, task.prompts[0])
    items = model.prepare(texts, 0)
    assert items[0].dtype == torch.float32 and items[0].abs().max() > 65504
    log_probs = predict_log_probs(model, [items])[0]
    scores = score_options(model.lm, model.tokenizer, texts, [[" bad", " good"]] * len(texts))
    assert torch.allclose(log_probs, torch.tensor([s.loglik for s in scores]).log_softmax(-1), atol=1e-3)

    path = cache.cache_path("lm-states", "stale")
    cache.save_items(path, [torch.full((3, 4), float("inf"), dtype=torch.float16)])
    assert cache.cached("lm-states", "stale", lambda: [torch.ones(3, 4)])[0].eq(1).all()  # not the inf file
    with pytest.raises(UnseenError, match="class scores are not finite"):
        predict_log_probs(model, [[torch.full_like(items[0], float("nan"))]])


def test_masked_lm_reads_the_mask_through_the_head_transform(tiny):
    model = load_prompted_lm(str(tiny["mlm"]), [[[" bad"], [" good"]]], mode="prompt")
    assert isinstance(model, MaskedPromptLM)
    prompt = f"review: the movie was good \nsentiment: {model.tokenizer.mask_token}"
    batch = model.collate(model.prepare([prompt], 0), 0)
    with torch.no_grad():
        logits = model.class_logits(model(batch), 0)
        full = model.lm(input_ids=batch["input_ids"],
                        attention_mask=batch["mask"]).logits[0, batch["mask_positions"][0]]
    ids = [model.tokenizer.convert_tokens_to_ids(w) for w in ("bad", "good")]
    assert torch.allclose(logits[0], full[ids], atol=1e-4)


def test_multi_token_verbalizers(tiny):
    # several tokens with distinct first tokens: read at the first token
    model = load_prompted_lm(str(tiny["lm"]), [[[" very bad"], [" good"]]], mode="ln", tune_layers=1)
    assert model.verbalizer_ids == [[[model.tokenizer.convert_tokens_to_ids("very")],
                                     [model.tokenizer.convert_tokens_to_ids("good")]]]
    # the same first token for two classes cannot be told apart: a clear error
    with pytest.raises(UnseenError, match=r"'.*very bad' and '.*very good' start with the same token"):
        load_prompted_lm(str(tiny["lm"]), [[[" very bad"], [" very good"]]], mode="ln", tune_layers=1)


@pytest.mark.parametrize("mode", ["prompt", "ln", "lora", "full"])
def test_modes_train_only_their_parameters_in_the_top_layers(tiny, mode):
    model = load_prompted_lm(str(tiny["lm"]), [[[" bad"], [" good"]]], mode=mode, tune_layers=1)
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable
    if mode == "prompt":
        assert trainable == ["context"]
    else:
        assert all(".layers.2." in name or ".norm." in name for name in trainable), trainable
        assert not any("embed" in name or "lm_head" in name for name in trainable)
    if mode == "lora":
        assert all("lora_" in name for name in trainable)


def test_adapt_then_eval_end_to_end(tiny, tmp_path):
    task = _task(tiny)
    setup = TextSetup(str(tiny["lm"]), task, mode="prompt", tune_layers=2)
    config = AdaptConfig(mode="prompt", steps=12, batch_size=8, lr=1e-2, select_every=4)
    _, selection = run_adapt(setup, config, tmp_path / "run", gate=False)  # a random LM: its prompts agree by chance
    run = tmp_path / "run"
    for name in ("pouf.json", "config.yaml", "manifest.json", "metrics.jsonl", "selected.safetensors",
                 "selection.json"):
        assert (run / name).exists(), name
    assert [h["step"] for h in selection.history] == [0, 4, 8, 12]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert "select_objective" in rows[3] and "transport" in rows[0] and "mi" in rows[0]
    results = evaluate_run(run)
    assert set(results["zeroshot"]) == {"single", "ensemble", "calibrated"} and results["n_eval"] == 24
    assert (run / "results.md").read_text().startswith("# POUF prompt")
    # the zero-shot report of eval equals the zero-shot command's
    assert results["zeroshot"] == {k: v for k, v in zeroshot(setup).items() if k != "seconds"}
    with pytest.raises(UnseenError, match="already holds a run"):
        run_adapt(setup, config, run, gate=False)


def test_resume_continues_the_run(tiny, tmp_path):
    setup = TextSetup(str(tiny["lm"]), _task(tiny), mode="ln", tune_layers=1)
    run_adapt(setup, AdaptConfig(mode="ln", steps=6, batch_size=8, lr=1e-2, select_every=3, save_every=3),
              tmp_path / "r", gate=False)
    _, selection = run_adapt(setup,
                             AdaptConfig(mode="ln", steps=9, batch_size=8, lr=1e-2, select_every=3, save_every=3),
                             tmp_path / "r", resume=True, gate=False)
    assert [h["step"] for h in selection.history] == [0, 3, 6, 9]


def test_tokenizer_helper_is_word_level():
    tokenizer = tiny_tokenizer()
    assert len(tokenizer(" very good", add_special_tokens=False)["input_ids"]) == 2
