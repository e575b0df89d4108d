"""Instruction tuning mechanics on tiny random models: packing, target-only loss, T5, a full run."""

import json

import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, T5Config, T5ForConditionalGeneration

from unseen.core.assets import asset_file, resolve_model_dir
from unseen.core.scoring import score_options
from unseen.instruct.evaluate import EvalConfig, evaluate, markdown_table
from unseen.instruct.lm import (
    IGNORE,
    collate_packed,
    collate_seq2seq,
    pack,
    seq2seq_loss,
    target_only_loss,
    tokenize_example,
    tokenize_seq2seq,
)
from unseen.instruct.mixture import MixtureConfig, build_mixture
from unseen.instruct.templates import heldout_datasets
from unseen.instruct.train import InstructConfig, instruction_tune, load_model


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(resolve_model_dir("smollm2-135m-instruct"))


@pytest.fixture(scope="module")
def tiny_llama_dir(tmp_path_factory, tokenizer):
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    folder = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_mixture_holds_out_the_cluster_and_its_relatives(data_dir):
    mixture = build_mixture(MixtureConfig(heldout=["nli"], cap=5, seed=1))
    datasets = {example.dataset for example in mixture}
    assert not datasets & set(heldout_datasets("nli"))
    assert "mrpc" not in datasets  # paraphrase goes with NLI
    assert {"sst2", "boolq", "copa"} <= datasets
    assert max(sum(e.dataset == name for e in mixture) for name in datasets) <= 5
    assert build_mixture(MixtureConfig(heldout=["nli"], cap=5, seed=1)) == mixture  # seeded


def test_fewshot_examples_repeat_the_template(data_dir):
    mixture = build_mixture(MixtureConfig(heldout=["nli"], cap=4, fewshot_fraction=1.0, max_shots=2,
                                          datasets=["sst2"], seed=0))
    assert all("\n\n" in example.input for example in mixture)


def test_packed_loss_equals_separate_losses(tokenizer, tiny_llama_dir):
    model = LlamaForCausalLM.from_pretrained(tiny_llama_dir).eval()
    examples = [tokenize_example(tokenizer, f"Question {i}: is this long enough?", "yes" * (i + 1),
                                 64) for i in range(3)]
    packed = collate_packed(pack(examples, max_length=200), pad_token_id=tokenizer.pad_token_id)
    assert packed["input_ids"].shape[0] == 1
    with torch.no_grad():
        packed_loss = target_only_loss(model, packed)
        total, count = 0.0, 0
        for example in examples:
            ids = torch.tensor([example.input_ids])
            labels = torch.tensor([example.labels])
            reference = model(input_ids=ids, labels=labels).loss  # transformers' own loss, full logits
            n = (labels[:, 1:] != IGNORE).sum().item()
            total, count = total + reference.item() * n, count + n
    assert packed_loss.item() == pytest.approx(total / count, abs=1e-5)


def test_long_prompts_are_cut_from_the_left_keeping_the_target(tokenizer):
    example = tokenize_example(tokenizer, "word " * 500, "the answer", max_length=32)
    assert len(example.input_ids) == 32
    target = [t for t in example.labels if t != IGNORE]
    assert tokenizer.decode(target[:-1]) == "the answer"


@pytest.fixture(scope="module")
def tiny_t5():
    tokenizer = AutoTokenizer.from_pretrained(asset_file("minilm-l6-v2"))  # any offline tokenizer will do
    config = T5Config(vocab_size=tokenizer.vocab_size, d_model=32, d_ff=64, d_kv=8, num_layers=1, num_heads=2,
                      decoder_start_token_id=tokenizer.pad_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    return T5ForConditionalGeneration(config).eval(), tokenizer


def test_seq2seq_loss_and_scoring(tiny_t5):
    model, tokenizer = tiny_t5
    rows = [tokenize_seq2seq(tokenizer, "premise: a cat. hypothesis: an animal.", "yes", 64),
            tokenize_seq2seq(tokenizer, "short", "no way", 64)]
    batch = collate_seq2seq(rows, pad_token_id=tokenizer.pad_token_id)
    assert torch.isfinite(seq2seq_loss(model, batch))
    scores = score_options(model, tokenizer, ["is it?", "a longer prompt here"], [["yes", "no way"], ["maybe"]])
    with torch.no_grad():
        source = tokenizer("is it?", return_tensors="pt")
        labels = tokenizer(text_target="no way", add_special_tokens=False, return_tensors="pt")["input_ids"]
        log_probs = torch.log_softmax(model(**source, labels=labels).logits, -1)
        reference = log_probs[0, torch.arange(labels.shape[1]), labels[0]].sum().item()
    assert scores[0].loglik[1] == pytest.approx(reference, abs=1e-4)
    assert len(scores[1].loglik) == 1


def test_lora_instruction_tuning_run_then_evaluate(tiny_llama_dir, tmp_path, data_dir):
    config = InstructConfig(model=str(tiny_llama_dir), mixture=MixtureConfig(heldout=["nli"], cap=3, seed=0),
                            max_length=128, steps=3, batch_size=2, save_every=2, lora=True, lora_r=2)
    result = instruction_tune(config, tmp_path / "run")
    assert result.steps == 3
    run = tmp_path / "run"
    assert (run / "model" / "adapter_config.json").exists()
    extra = (run / "config.yaml").read_text()
    assert "examples_per_dataset" in extra and "rte" not in json.dumps(result.history)
    model, tokenizer = load_model(str(run / "model"))
    results = evaluate(model, tokenizer, EvalConfig(tasks=["rte", "cb"], templates="all", limit=4, calibrate=True),
                       progress=False)
    rte = results["results"]["rte"]
    assert rte["accuracy"]["templates"] == 8 and 0 <= rte["accuracy"]["mean"] <= 1
    assert "balanced_accuracy_calibrated" in rte and rte["constant_baseline"] >= 0.5
    assert "| rte | 4 | 8 |" in markdown_table(results)


def test_heldout_protocol_table_plot_and_reuse(tiny_llama_dir, tmp_path, data_dir):
    from unseen.instruct.heldout import HeldoutConfig, run_heldout

    config = HeldoutConfig(
        models=[str(tiny_llama_dir)], clusters=["nli"], seeds=[0], tasks={"nli": ["rte"]},
        train=InstructConfig(mixture=MixtureConfig(cap=2), max_length=96, steps=2, batch_size=2, lora_r=2),
        eval=EvalConfig(templates=["rte_given_passage", "rte_premise_hypothesis"], limit=6),
    )
    summary = run_heldout(config, tmp_path / "heldout")
    (row,) = summary["rows"]
    assert row["task"] == "rte" and row["classes"] == 2
    assert 0 <= row["balanced_accuracy"]["base_mean"] <= 1 and len(row["balanced_accuracy"]["tuned_seeds"]) == 1
    assert (tmp_path / "heldout" / "heldout.png").stat().st_size > 1000
    assert "| nli |" in (tmp_path / "heldout" / "summary.md").read_text()
    eval_file = next((tmp_path / "heldout").rglob("seed0/eval.json"))
    stamp = eval_file.stat().st_mtime_ns
    run_heldout(config, tmp_path / "heldout")  # everything reused, nothing recomputed
    assert eval_file.stat().st_mtime_ns == stamp


def test_a_summary_row_grows_by_a_seed_and_a_baseline_as_if_run_together():
    """add_to_row (heldout_all.py --extend): a later seed and baseline give the row one run with both would give."""
    from unseen.instruct.heldout import add_to_row

    def results(values):  # one task, two direct-answer templates: (balanced accuracy, exact match) each
        return {"templates": {"rte": {f"t{i}": {"balanced_accuracy": b, "exact_match": e, "kind": "classification"}
                                      for i, (b, e) in enumerate(values)}}}

    def empty_row():
        return {"task": "rte",
                **{key: {"base_mean": 0.5, "tuned_seeds": [], "tuned_std_templates": 0.0, "baselines": {}}
                   for key in ("balanced_accuracy", "exact_match")}}

    first, second = results([(0.5, 0.2), (0.7, 0.4)]), results([(0.6, 0.6), (0.6, 0.8)])
    baseline = results([(0.1, 0.0), (0.3, 0.2)])
    grown = add_to_row(add_to_row(empty_row(), "rte", [first], [0]), "rte", [second], [1], {"smol": baseline})
    assert grown == add_to_row(empty_row(), "rte", [first, second], [0, 1], {"smol": baseline})
    assert grown["seeds"] == [0, 1]
    assert grown["exact_match"]["tuned_seeds"] == pytest.approx([0.3, 0.7])
    assert grown["exact_match"]["tuned_mean"] == pytest.approx(0.5)
    assert grown["exact_match"]["tuned_std_seeds"] == pytest.approx(0.2828, abs=1e-4)
    assert grown["balanced_accuracy"]["tuned_std_templates"] == pytest.approx((0.1414 + 0.0) / 2, abs=1e-4)
    assert grown["balanced_accuracy"]["baselines"] == {"smol": pytest.approx(0.2)}
