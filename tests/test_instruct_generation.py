"""Generation as a result beside rank scoring: decoding that stops at the end of the answer,
answers read back as options (chain of thought included), the metrics, and --adapter."""

import json

import pytest
import torch
from transformers import AutoTokenizer, Gemma3ForCausalLM, Gemma3TextConfig, LlamaConfig, LlamaForCausalLM

from unseen.core.assets import resolve_model_dir
from unseen.core.errors import UnseenError
from unseen.core.training import apply_lora
from unseen.instruct.answers import canonical_prediction, normalize, parse_answer
from unseen.instruct.evaluate import EvalConfig, evaluate, markdown_table
from unseen.instruct.generation import answer_token_cap, greedy_generate
from unseen.instruct.train import adapter_folder, load_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")
PREFIX = "A shared instruction that every prompt of the call begins with. "
PROMPTS = [PREFIX + "Q: is it?", PREFIX + "Q: a much longer prompt with more words in it", PREFIX + "mid"]


# ---------------------------------------------------------------- reading answers back


def test_direct_answers_match_after_normalization():
    choices = ["yes", "no", "the ground"]
    assert normalize("  The  Ground! ") == "ground"
    assert parse_answer("Yes.", choices) == 0
    assert parse_answer("\n no \nbecause I say so", choices) == 1  # the first line counts
    assert parse_answer("ground", choices) == 2
    assert parse_answer("yes, because", choices) is None  # a direct answer must be the option itself
    assert parse_answer("", choices) is None


def test_chain_of_thought_answer_is_read_after_the_last_marker():
    choices = ["yes", "no"]
    assert parse_answer("Fish swim. So the answer is no.", choices, chain_of_thought=True) == 1
    assert parse_answer("The answer is not obvious. Birds fly. The answer: yes", choices, chain_of_thought=True) == 0
    assert parse_answer("Birds fly. Therefore, the answer is yes, because they have wings.", choices, True) == 0
    assert parse_answer("Birds fly, so yes.", choices, chain_of_thought=True) is None  # no marker: invalid
    assert parse_answer("no", choices, chain_of_thought=True) is None
    # a choice that itself contains "answer": the last marker whose tail parses wins
    assert parse_answer("Teachers do that. So the answer is answer questions.", ["ask", "answer questions"], True) == 1
    # sentences as choices (Sen-Making): the choice's own period does not get in the way
    sentences = ["He drinks apple.", "He drinks milk."]
    assert parse_answer("Apples are eaten. So the answer is He drinks apple.", sentences, True) == 0


def test_choices_equal_after_normalization_count_as_the_same_answer():
    choices = ["energy.", "liver", "energy"]  # QASC lists both
    assert parse_answer("So the answer is energy.", choices, True) == 0
    assert canonical_prediction(0, 2, choices) == 2
    assert canonical_prediction(1, 2, choices) == 1
    assert canonical_prediction(None, 2, choices) == -1


# ---------------------------------------------------------------- decoding


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(resolve_model_dir("smollm2-135m-instruct"))


def _tiny(kind, tokenizer):
    torch.manual_seed(0)
    common = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                  bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                  pad_token_id=tokenizer.pad_token_id)
    if kind == "llama":
        return LlamaForCausalLM(LlamaConfig(**common)).eval()
    config = Gemma3TextConfig(**common, head_dim=8, sliding_window=16,
                              layer_types=["sliding_attention", "full_attention"])
    return Gemma3ForCausalLM(config).eval()


@pytest.mark.parametrize("kind", ["llama", "gemma"])
def test_greedy_generate_equals_transformers_generate(tokenizer, kind):
    """Batched, shared prefix run once, rows leaving the batch at their own caps: the same tokens
    as ``model.generate`` on each prompt alone (Gemma: sliding-window layers too)."""
    model = _tiny(kind, tokenizer)
    caps = [12, 5, 20]
    ours = greedy_generate(model, tokenizer, PROMPTS, caps, batch_size=3, stop_at_newline=False)
    for prompt, cap, text in zip(PROMPTS, caps, ours):
        batch = tokenizer([prompt], return_tensors="pt")
        generated = model.generate(**batch, max_new_tokens=cap, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        assert text == tokenizer.decode(generated[0, batch["input_ids"].shape[1] :], skip_special_tokens=True)


class SymbolTokenizer:
    """Bytes as ids (0 = pad, 1 = BOS); ``decode`` shows ``newline_id`` as a newline, others as 'x'."""

    pad_token_id, bos_token_id = 0, 1

    def __init__(self, newline_id=None, eos_token_id=None):
        self.newline_id, self.eos_token_id = newline_id, eos_token_id

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": ([1] if add_special_tokens else []) + [b + 2 for b in text.encode()]}

    def decode(self, ids, skip_special_tokens=True):
        ids = [i for i in ids if not (skip_special_tokens and i == self.eos_token_id)]
        return "".join("\n" if i == self.newline_id else "x" for i in ids)


@pytest.fixture(scope="module")
def byte_lm():
    torch.manual_seed(1)
    config = LlamaConfig(vocab_size=258, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4,
                         num_key_value_heads=2, max_position_embeddings=512, bos_token_id=1, eos_token_id=None)
    model = LlamaForCausalLM(config).eval()
    model.generation_config.eos_token_id = None
    (reference,) = greedy_generate(model, SymbolTokenizer(), ["Q: what?"], 30, stop_at_newline=False)
    assert len(reference) == 30
    ids = model.generate(torch.tensor([SymbolTokenizer()("Q: what?")["input_ids"]]), max_new_tokens=30, do_sample=False)
    tokens = ids[0, -30:].tolist()
    stop = next(k for k in range(2, 30) if tokens[k] not in tokens[:k])  # a token seen first at step k
    return model, tokens, stop


def _generate_counting_forwards(model, tokenizer) -> tuple[str, int]:
    """The greedy answer to one prompt and the number of forward passes it took."""
    calls = []
    handle = model.register_forward_hook(lambda *args: calls.append(1))
    try:
        (text,) = greedy_generate(model, tokenizer, ["Q: what?"], 30)
    finally:
        handle.remove()
    return text, len(calls)


def test_decoding_stops_at_the_first_newline_after_text(byte_lm):
    model, tokens, stop = byte_lm
    text, calls = _generate_counting_forwards(model, SymbolTokenizer(newline_id=tokens[stop]))
    assert text == "x" * stop + "\n"
    assert calls == stop + 1  # the prompt pass gives the first token, one step for each of the rest


def test_decoding_stops_at_eos_and_drops_it(byte_lm):
    model, tokens, stop = byte_lm
    text, calls = _generate_counting_forwards(model, SymbolTokenizer(eos_token_id=tokens[stop]))
    assert text == "x" * stop and calls == stop + 1


def test_answer_token_cap_is_near_the_longest_option(tokenizer):
    longest = len(tokenizer("reading a long book", add_special_tokens=False)["input_ids"])
    assert answer_token_cap(tokenizer, ["yes", "reading a long book"], slack=4) == longest + 4


# ---------------------------------------------------------------- metrics through evaluate()


@pytest.fixture(scope="module")
def tiny_llama_dir(tmp_path_factory, tokenizer):
    folder = tmp_path_factory.mktemp("tiny-llama-generation")
    _tiny("llama", tokenizer).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_generation_metrics_and_baselines_from_known_outputs(tokenizer, tiny_llama_dir, data_dir, monkeypatch):
    """Direct answers right on every example, chains of thought right except one invalid: the metrics follow."""
    import unseen.instruct.evaluate as evaluate_module

    def fake_generate(model, tokenizer, prompts, caps, config, progress=False):
        outputs = []
        for prompt in prompts:
            answer = gold[prompt]
            if "step by step" in prompt:  # chain of thought: a rationale, then the answer
                answer = "It is so. So the answer is " + answer + "." if len(outputs) else "I cannot tell."
            outputs.append(answer.upper())  # normalization ignores case
        return outputs

    from unseen.instruct import load_records, load_templates, render

    task = load_templates()["creak"]
    records = load_records(task, "eval")[:8]
    gold = {}
    for template in task.templates:
        for record in records:
            if not template.turned_around:
                example = render(template, record)
                gold[example.input + "\n"] = example.answer
    monkeypatch.setattr(evaluate_module, "_generate", fake_generate)
    model, tok = load_model(str(tiny_llama_dir))
    config = EvalConfig(tasks=["creak"], templates=["creak_question", "creak_cot_step_by_step"], limit=8, generate=True)
    results = evaluate(model, tok, config, progress=False)
    direct = results["templates"]["creak"]["creak_question"]
    cot = results["templates"]["creak"]["creak_cot_step_by_step"]
    assert direct["exact_match"] == direct["option_rate"] == direct["balanced_accuracy_generated"] == 1.0
    assert "balanced_accuracy" in direct and "balanced_accuracy" not in cot  # rank scoring for direct templates only
    assert cot["kind"] == "chain_of_thought" and cot["exact_match"] == cot["option_rate"] == 7 / 8
    labels = [r["label"] for r in records]
    assert cot["constant_baseline"] == max(labels.count(0), labels.count(1)) / 8 and cot["uniform_baseline"] == 0.5
    summary = results["results"]["creak"]
    assert summary["exact_match"]["templates"] == 1 and summary["exact_match_cot"]["mean"] == 7 / 8
    assert summary["uniform_baseline"] == 0.5
    table = markdown_table(results, "tiny")
    assert "| tiny | creak | 1 | 100.0 ± 0.0 (100.0) |" in table and "uniform guess" in table


def test_chain_of_thought_templates_need_generate(tiny_llama_dir, data_dir):
    model, tokenizer = load_model(str(tiny_llama_dir))
    results = evaluate(model, tokenizer, EvalConfig(tasks=["qasc"], limit=2), progress=False)
    assert not any("cot" in name for name in results["templates"]["qasc"])  # skipped without generation
    with pytest.raises(UnseenError, match="need --generate"):
        evaluate(model, tokenizer, EvalConfig(tasks=["qasc"], templates=["qasc_cot_step_by_step"], limit=2),
                 progress=False)
    results = evaluate(model, tokenizer, EvalConfig(tasks=["qasc"], templates=["qasc_plain", "qasc_cot_step_by_step"],
                                                    limit=3, generate=True), progress=False)
    cot = results["templates"]["qasc"]["qasc_cot_step_by_step"]
    assert 0 <= cot["exact_match"] <= cot["option_rate"] <= 1 and cot["uniform_baseline"] == 1 / 8


# ---------------------------------------------------------------- --adapter


def test_adapter_save_and_load_round_trip(tiny_llama_dir, tmp_path, tokenizer, data_dir):
    base, _ = load_model(str(tiny_llama_dir))
    tuned = apply_lora(base, r=2, alpha=4)
    torch.manual_seed(3)
    with torch.no_grad():
        for name, parameter in tuned.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.5)  # a fresh adapter is the identity; make it change the model
    ids = tokenizer(["Is the sky blue?"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        expected = tuned(input_ids=ids).logits
        untuned = load_model(str(tiny_llama_dir))[0](input_ids=ids).logits
    assert not torch.allclose(expected, untuned, atol=1e-3)
    tuned.save_pretrained(tmp_path / "run" / "model")
    assert (tmp_path / "run" / "model" / "adapter_model.safetensors").stat().st_size < 1_000_000
    for where in (tmp_path / "run" / "model", tmp_path / "run"):  # the adapter folder, or the run folder
        assert adapter_folder(where) == tmp_path / "run" / "model"
        loaded, _ = load_model(str(tiny_llama_dir), adapter=where)
        with torch.no_grad():
            assert torch.allclose(loaded(input_ids=ids).logits, expected, atol=1e-5)
    with pytest.raises(UnseenError, match="no LoRA adapter"):
        adapter_folder(tmp_path)

    from typer.testing import CliRunner

    from unseen.cli.instruct import app

    out = tmp_path / "eval.json"
    result = CliRunner().invoke(app, ["eval", "--model", str(tiny_llama_dir), "--adapter", str(tmp_path / "run"),
                                      "--tasks", "creak", "--templates", "creak_question,creak_cot_step_by_step",
                                      "--limit", "2", "--generate", "--out", str(out)])
    assert result.exit_code == 0, result.output
    written = json.loads(out.read_text())
    assert written["adapter"] == str(tmp_path / "run") and "exact_match_cot" in written["results"]["creak"]
    assert "CoT exact match" in out.with_suffix(".md").read_text()


def test_eval_reads_the_split_asked_for(tiny_llama_dir, tmp_path, data_dir, monkeypatch):
    from typer.testing import CliRunner

    from unseen.cli.instruct import app
    from unseen.instruct import templates as templates_module

    read, real = [], templates_module.load_dataset
    monkeypatch.setattr(templates_module, "load_dataset",
                        lambda name, split=None, **kw: read.append(split) or real(name, split, **kw))

    out = tmp_path / "eval.json"
    args = ["eval", "--model", str(tiny_llama_dir), "--tasks", "rte", "--templates", "rte_given_passage",
            "--limit", "2", "--out", str(out)]
    result = CliRunner().invoke(app, args + ["--split", "train"])
    assert result.exit_code == 0, result.output
    written = json.loads(out.read_text())
    assert written["config"]["split"] == "train" and written["results"]["rte"]["n"] == 2
    assert set(read) == {"train"}  # RTE's eval split is validation
    # a split the dataset lacks is named before the model loads (a path that is no model would fail later)
    result = CliRunner().invoke(app, ["eval", "--model", str(tmp_path / "no-model"), "--tasks", "rte",
                                      "--split", "nosuch", "--out", str(out)])
    assert result.exit_code != 0 and "has no split 'nosuch'" in str(result.exception) + result.output


def test_heldout_protocol_reports_generation(tiny_llama_dir, tmp_path, data_dir):
    from unseen.instruct.heldout import HeldoutConfig, run_heldout
    from unseen.instruct.mixture import MixtureConfig
    from unseen.instruct.train import InstructConfig

    config = HeldoutConfig(
        models=[str(tiny_llama_dir)], clusters=["commonsense"], seeds=[0], tasks={"commonsense": ["ecqa"]},
        train=InstructConfig(mixture=MixtureConfig(cap=2), max_length=96, steps=2, batch_size=2, lora_r=2),
        eval=EvalConfig(templates=["ecqa_plain", "ecqa_cot_step_by_step"], limit=3, generate=True),
    )
    (row,) = run_heldout(config, tmp_path / "heldout")["rows"]
    assert {"exact_match", "option_rate", "exact_match_cot", "balanced_accuracy"} <= set(row)
    assert row["uniform_baseline"] == pytest.approx(0.2)
    assert "CoT exact match" in (tmp_path / "heldout" / "summary.md").read_text()


def test_heldout_evaluates_a_given_adapter_beside_baselines(tiny_llama_dir, tmp_path, data_dir):
    """--adapter CLUSTER=PATH is evaluated instead of training; a baseline model sits in every metric;
    --max-templates."""
    from typer.testing import CliRunner

    from unseen.cli.instruct import app
    from unseen.instruct.heldout import HeldoutConfig, run_heldout
    from unseen.instruct.mixture import MixtureConfig
    from unseen.instruct.train import InstructConfig, instruction_tune

    adapter = tmp_path / "adapter"
    instruction_tune(InstructConfig(model=str(tiny_llama_dir), mixture=MixtureConfig(heldout=["commonsense"], cap=2),
                                    max_length=96, steps=1, batch_size=2, lora_r=2), adapter)
    config = HeldoutConfig(
        models=[str(tiny_llama_dir)], clusters=["commonsense"], tasks={"commonsense": ["copa"]},
        eval=EvalConfig(max_templates=2, limit=3, generate=True),
        adapters={"commonsense": [str(adapter), str(adapter)]},  # two given adapters: two tuned runs (seeds)
        baselines=[str(tiny_llama_dir)],  # the base model again: its baseline figures must equal the base's
    )
    out = tmp_path / "heldout"
    summary = run_heldout(config, out)
    (row,) = summary["rows"]
    assert row["tuned_from"] == f"{adapter}, {adapter}" and not list(out.rglob("seed0"))  # nothing trained
    assert len(row["exact_match"]["tuned_seeds"]) == 2
    for index in (0, 1):
        assert (out / "commonsense" / tiny_llama_dir.name / f"adapter{index}_eval.json").exists()
    (paired,) = summary["paired"]
    copa = paired["datasets"]["copa"]
    assert copa["n"] == 3 and len(copa["templates"]) == 2
    assert copa["exact_match"]["tuned"] == pytest.approx(row["exact_match"]["tuned_mean"])
    assert copa["exact_match"]["base"] == pytest.approx(row["exact_match"]["base_mean"])
    assert "paired bootstrap interval" in (out / "summary.md").read_text()
    assert "draws" not in json.loads((out / "summary.json").read_text())["paired"][0]
    assert (out / "intervals.png").stat().st_size > 0
    base = json.loads((out / "commonsense" / tiny_llama_dir.name / "base.json").read_text())
    assert len(base["templates"]["copa"]) == 2
    for metric in ("balanced_accuracy", "exact_match", "option_rate"):
        assert row[metric]["baselines"][tiny_llama_dir.name] == pytest.approx(row[metric]["base_mean"])
    assert f"{tiny_llama_dir.name} bal. acc." in (out / "summary.md").read_text()

    result = CliRunner().invoke(app, ["heldout", "--models", str(tiny_llama_dir), "--adapter", "commonsense",
                                      "--out", str(tmp_path / "other")])
    assert isinstance(result.exception, UnseenError) and "expected CLUSTER=PATH" in str(result.exception)
    assert not (tmp_path / "other").exists()


# ---------------------------------------------------------------- the quickstart's adapter step


def test_quickstart_adapter_step_on_a_tiny_model(tiny_llama_dir, tmp_path, data_dir):
    """Base vs base + an fp16-stored adapter, by generation only: one rich table, the numbers, results.md lines."""
    from io import StringIO

    from rich.console import Console
    from safetensors.torch import load_file, save_file

    from unseen.instruct import quickstart

    tuned = apply_lora(load_model(str(tiny_llama_dir))[0], r=2, alpha=4)
    tuned.save_pretrained(tmp_path / "adapter")
    weights = tmp_path / "adapter" / "adapter_model.safetensors"  # stored in fp16, as the shipped adapter is
    save_file({k: v.half() for k, v in load_file(weights).items()}, weights)
    settings = {"model": str(tiny_llama_dir), "adapter": str(tmp_path / "adapter"), "task": "ecqa",
                "templates": ["ecqa_plain"], "limit": 3}
    output = StringIO()
    step = quickstart.run(Console(file=output, width=200), settings, data_dir)
    printed = output.getvalue()
    assert "Held-out ecqa by generation" in printed and "valid options" in printed and "|---" not in printed
    for label in ("base", "tuned"):
        assert step[label]["n"] == 3 and 0 <= step[label]["exact_match"] <= step[label]["option_rate"] <= 1
        assert isinstance(step[label]["sample_output"], str)
    assert step["uniform_baseline"] == pytest.approx(0.2)
    assert any("| base |" in line or "base |" in line for line in quickstart.results_markdown(step))


def test_quickstart_config_names_the_shipped_adapter_and_real_templates():
    from importlib import resources

    import yaml

    from unseen.instruct import load_templates
    from unseen.instruct.quickstart import shipped_adapter

    config = resources.files("unseen.configs").joinpath("quickstart.yaml").read_text()
    settings = yaml.safe_load(config)["instruct_adapter"]
    adapter = adapter_folder(shipped_adapter(settings["adapter"]))
    assert (adapter / "adapter_model.safetensors").stat().st_size <= 10 * 1024 * 1024
    task = load_templates()[settings["task"]]
    assert task.cluster == "commonsense"  # held out of the adapter's training
    assert set(settings["templates"]) <= {t.id for t in task.templates if t.classification and not t.chain_of_thought}
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == settings["model"]
