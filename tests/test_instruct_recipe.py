"""Issue 33 on tiny random models: the KL term to the base, replay, prompt loss, the OPTIONS mix, and a recipe
search that never reads a held-out cluster's data."""

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from unseen.core.assets import resolve_model_dir
from unseen.core.errors import UnseenError
from unseen.core.training import apply_lora
from unseen.instruct import templates as templates_module
from unseen.instruct.keep import KeepConfig, keep_loss, record_text, tokenize_replay
from unseen.instruct.lm import collate_packed, pack, target_only_loss, tokenize_example
from unseen.instruct.mixture import MixtureConfig, build_mixture
from unseen.instruct.recipe import check_held_in, check_nested
from unseen.instruct.templates import heldout_datasets

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(resolve_model_dir("smollm2-135m-instruct"))


def tiny_lora_model(tokenizer, seed=0):
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    return apply_lora(LlamaForCausalLM(config), r=2, alpha=4)


@pytest.fixture(scope="module")
def batch(tokenizer):
    examples = [tokenize_example(tokenizer, f"Question {i}: is the sky blue on a clear day?", "yes" * (i + 1), 64)
                for i in range(3)]
    examples.append(tokenize_replay(tokenizer, "A raw training text, with no template around it at all.", 64))
    return collate_packed(pack(examples, max_length=80), pad_token_id=tokenizer.pad_token_id)


def test_kl_to_base_is_exactly_zero_with_a_fresh_adapter(tokenizer, batch):
    model = tiny_lora_model(tokenizer)  # peft initializes B = 0: the tuned model is the base
    with torch.no_grad():
        for keep in (KeepConfig(kl_weight=1.0, kl_on="both", kl_max_positions=0),
                     KeepConfig(kl_weight=1.0, kl_on="prompt", kl_max_positions=5),
                     KeepConfig(kl_weight=1.0, kl_on="answer", kl_top_k=7)):
            _, metrics = keep_loss(model, batch, keep)
            assert metrics["kl_to_base"] == 0.0


def test_default_objective_is_the_target_only_loss(tokenizer, batch):
    model = tiny_lora_model(tokenizer)
    no_replay = {key: value[:, :] for key, value in batch.items()}
    no_replay["segments"] = no_replay["segments"].clamp(max=1)  # replay tokens read as answers: same labels
    with torch.no_grad():
        loss, _ = keep_loss(model, no_replay, KeepConfig())
        assert loss.item() == pytest.approx(target_only_loss(model, no_replay).item(), abs=1e-6)


def test_each_option_changes_the_loss(tokenizer, batch):
    model = tiny_lora_model(tokenizer)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.5)  # the adapter now moves the model away from the base
        plain, metrics = keep_loss(model, batch, KeepConfig(replay_weight=0.0))
        assert "loss_replay" in metrics
        with_replay, _ = keep_loss(model, batch, KeepConfig(replay_weight=1.0))
        assert with_replay.item() == pytest.approx(plain.item() + metrics["loss_replay"], rel=1e-5)
        with_prompt, metrics = keep_loss(model, batch, KeepConfig(replay_weight=0.0, prompt_loss_weight=1.0))
        assert with_prompt.item() != pytest.approx(plain.item()) and metrics["loss_prompt"] > 0
        for keep in (KeepConfig(replay_weight=0.0, kl_weight=1.0, kl_on=on, kl_max_positions=0, kl_top_k=k)
                     for on in ("answer", "prompt", "both") for k in (0, 20)):
            with_kl, metrics = keep_loss(model, batch, keep)
            assert metrics["kl_to_base"] > 0
            assert with_kl.item() == pytest.approx(plain.item() + metrics["kl_to_base"], rel=1e-5)
    loss, _ = keep_loss(model, batch, KeepConfig(kl_weight=1.0))
    loss.backward()  # the KL term sends gradients to the adapter only
    assert all(p.grad is None for n, p in model.named_parameters() if "lora" not in n)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for n, p in model.named_parameters() if "lora_A" in n)


def test_kl_needs_lora_and_a_known_place(tokenizer, batch):
    model = tiny_lora_model(tokenizer).get_base_model()
    with pytest.raises(UnseenError, match="needs LoRA"):
        keep_loss(model, batch, KeepConfig(kl_weight=1.0))
    with pytest.raises(UnseenError, match="kl_on"):
        KeepConfig(kl_on="everywhere")


def test_replay_text_and_no_options_mix(data_dir):
    assert record_text({"premise": "A cat.", "label": 1, "translation": {"de": "Katze", "en": "Cat"}}) == \
        "A cat.\nKatze\nCat"
    plain = build_mixture(MixtureConfig(heldout=["nli"], cap=6, datasets=["sst2"], seed=0))
    mixed = build_mixture(MixtureConfig(heldout=["nli"], cap=6, datasets=["sst2"], seed=0, no_options_fraction=1.0))
    assert sum("OPTIONS:" in e.input for e in plain) > 0 and not any("OPTIONS:" in e.input for e in mixed)
    assert build_mixture(MixtureConfig(heldout=["nli"], cap=6, datasets=["sst2"], seed=0,
                                       no_options_fraction=0.0)) == plain  # off: the mixture is unchanged


def _search_module():
    spec = importlib.util.spec_from_file_location("recipe_search", REPO / "bench/instruct/recipe_search.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["recipe_search"] = module
    spec.loader.exec_module(module)
    return module


def test_recipe_search_never_reads_a_heldout_cluster(monkeypatch, data_dir):
    search = _search_module()
    forbidden = set(heldout_datasets(search.HELDOUT))
    assert {"copa", "piqa", "ecqa", "sensemaking"} <= forbidden
    read = []
    real = templates_module.load_dataset

    def guarded(name, split=None, **kwargs):
        if Path(str(name)).name in forbidden:
            raise AssertionError(f"the recipe search read held-out data: {name} {split}")
        read.append((Path(str(name)).name, split))
        return real(name, split, **kwargs)

    monkeypatch.setattr(templates_module, "load_dataset", guarded)
    args = SimpleNamespace(steps=1, seed=0, limit=2, templates=1, recipes=list(search.RECIPES))
    monkeypatch.setattr(search, "base_config", lambda a: search.InstructConfig(
        model="x", mixture=MixtureConfig(heldout=[search.HELDOUT], cap=3)))
    data = search.build_data(args)
    assert data["replay"] and data["mixture"] and set(data["eval"]) == set(search.EVAL_TASKS)
    assert ("sst2", "validation") in read and ("sst2", "train") in read
    assert not {name for name, _ in read} & forbidden


def _nested_module():
    _search_module()
    spec = importlib.util.spec_from_file_location("nested_proxy", REPO / "bench/instruct/nested_proxy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_nested_proxy_never_reads_commonsense_or_a_split_the_protocol_evaluates(monkeypatch, tokenizer, data_dir):
    import dataclasses

    from unseen.instruct.evaluate import evaluate

    nested = _nested_module()
    tasks = templates_module.load_templates()
    proxy = nested.proxy_tasks()
    assert proxy == {"nli": "snli", "sentiment": "mr", "misc": "ag_news", "closed_book_qa": "arc_challenge"}
    forbidden_data = set(heldout_datasets(nested.OUTER))
    # (dataset folder, split name) of every split the 7-cluster protocol evaluates: the proxy scores on none of them
    # (training may read some: WiC and WSC train on the split they are evaluated on when their cluster is held out)
    protocol_splits = {(tasks[t].dataset, tasks[t].splits["eval"]) for names in nested.TASKS.values() for t in names}
    read = []
    real = templates_module.load_dataset

    def guarded(name, split=None, **kwargs):
        key = (Path(str(name)).name, split)
        if key[0] in forbidden_data:
            raise AssertionError(f"the nested proxy read commonsense data: {key}")
        read.append(key)
        return real(name, split, **kwargs)

    monkeypatch.setattr(templates_module, "load_dataset", guarded)
    model = tiny_lora_model(tokenizer).eval()
    args = SimpleNamespace(steps=1, seed=0, limit=2, templates=1)
    for inner, dataset in proxy.items():
        config = nested.train_config(inner, "replay_no_options_r4", args)
        mixture = build_mixture(dataclasses.replace(config.mixture, cap=2))
        assert mixture and dataset not in {example.dataset for example in mixture}
        read.clear()
        results = evaluate(model, tokenizer, nested.eval_config(dataset, args), progress=False)
        assert results["results"][dataset]["n"] == 2
        assert read == [(tasks[dataset].dataset, tasks[dataset].splits["train"])]
        assert not set(read) & protocol_splits


def test_nested_check_refuses_outer_and_trained_datasets():
    assert check_nested(["commonsense"], "nli", ["snli"]) == ["snli"]
    with pytest.raises(UnseenError, match="held-out cluster"):
        check_nested(["commonsense"], "nli", ["copa"])
    with pytest.raises(UnseenError, match="not in cluster nli"):
        check_nested(["commonsense"], "nli", ["mr"])


def test_shots_from_the_split_being_evaluated_are_refused(tokenizer):
    from unseen.instruct.evaluate import EvalConfig, evaluate

    with pytest.raises(UnseenError, match="exemplars from the split being evaluated"):
        evaluate(None, tokenizer, EvalConfig(tasks=["rte"], split="train", shots=1), progress=False)


def test_held_in_check_refuses_heldout_and_same_split_datasets():
    assert check_held_in(["commonsense"], ["sst2", "rte"]) == ["sst2", "rte"]
    with pytest.raises(UnseenError, match="held-out cluster"):
        check_held_in(["commonsense"], ["sst2", "copa"])
    with pytest.raises(UnseenError, match="same split"):
        check_held_in(["commonsense"], ["wic"])


def test_instruction_tuning_with_every_option(tokenizer, tmp_path, data_dir):
    from unseen.instruct.train import InstructConfig, instruction_tune

    folder = tmp_path / "tiny"
    tiny_lora_model(tokenizer).get_base_model().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    config = InstructConfig(model=str(folder), mixture=MixtureConfig(heldout=["nli"], cap=2, no_options_fraction=0.5),
                            max_length=96, steps=3, batch_size=2, save_every=0, lora_r=2, warmup_steps=0,
                            kl_weight=1.0, kl_top_k=16, replay_fraction=1.0, prompt_loss_weight=0.1)
    result = instruction_tune(config, tmp_path / "run")
    last = result.history[-1]
    assert {"loss_answer", "loss_prompt", "kl_to_base"} <= set(last) and last["kl_to_base"] > 0
    assert any("loss_replay" in row for row in result.history)
    assert "replay_texts" in (tmp_path / "run" / "config.yaml").read_text()
    with pytest.raises(UnseenError, match="needs LoRA"):
        instruction_tune(InstructConfig(model=str(folder), lora=False, kl_weight=1.0), tmp_path / "full")
