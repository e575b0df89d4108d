"""Rank scoring shares the prompt across options; it must equal a plain full forward."""

import copy

import pytest
import torch
from transformers import Gemma3ForCausalLM, Gemma3TextConfig, LlamaConfig, LlamaForCausalLM

from unseen.core.metrics import balanced_accuracy, constant_answer_accuracy
from unseen.core.scoring import SharedPrefix, quantize_for_cpu, score_options


class ByteTokenizer:
    """Enough of a tokenizer for the scorer: bytes as ids, 0 = pad."""

    pad_token_id = 0

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": ([1] if add_special_tokens else []) + [b + 2 for b in text.encode()][:250]}


@pytest.fixture(scope="module")
def tiny_lm():
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=258, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    return LlamaForCausalLM(config).eval(), ByteTokenizer()


def _reference(model, tokenizer, prompt, option):
    prompt_ids = tokenizer(prompt)["input_ids"]
    option_ids = tokenizer(option, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt_ids + option_ids])
    with torch.no_grad():
        log_probs = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1)
    return sum(log_probs[len(prompt_ids) - 1 + k, token].item() for k, token in enumerate(option_ids))


def test_multi_token_options_match_full_forward(tiny_lm):
    model, tokenizer = tiny_lm
    prompts = ["Premise: a cat sat.\nAnswer:", "Q?"]
    options = [[" yes", " no", " maybe not", "x"], [" entailment", " contradiction"]]
    scores = score_options(model, tokenizer, prompts, options)
    for prompt, opts, result in zip(prompts, options, scores):
        for option, value, count in zip(opts, result.loglik, result.num_tokens):
            assert value == pytest.approx(_reference(model, tokenizer, prompt, option), abs=1e-4)
            assert count == len(option.encode())
        assert result.normalized[0] == pytest.approx(result.loglik[0] / result.num_tokens[0])


def test_single_token_options_batched_with_left_padding(tiny_lm):
    model, tokenizer = tiny_lm
    prompts = ["short", "a much longer prompt than the other one", "mid-sized prompt"]
    options = [["a", "b"]] * 3
    scores = score_options(model, tokenizer, prompts, options, batch_size=3)
    for prompt, result in zip(prompts, scores):
        for option, value in zip(["a", "b"], result.loglik):
            assert value == pytest.approx(_reference(model, tokenizer, prompt, option), abs=1e-4)


PROMPTS = ["Premise: a cat sat.\nAnswer:", "Q?", "short", "a much longer prompt than the other ones",
           "mid-sized prompt"]
OPTIONS = [[" yes", " no", " maybe not", "x"], [" entailment", " contradiction"], ["a", "b"], ["a", "b"], [" c", "dd"]]


def test_batch_size_changes_no_score(tiny_lm):
    model, tokenizer = tiny_lm
    one = score_options(model, tokenizer, PROMPTS, OPTIONS, batch_size=1)
    for batch_size in (2, 8):
        for a, b in zip(one, score_options(model, tokenizer, PROMPTS, OPTIONS, batch_size=batch_size)):
            assert b.loglik == pytest.approx(a.loglik, abs=1e-4)
            assert b.num_tokens == a.num_tokens


FEWSHOT = "Premise: the dog ran.\nHypothesis: an animal moved.\nAnswer: yes\n\n"


@pytest.mark.parametrize("batch_size", [1, 2, 8])
def test_a_prefix_shared_by_every_prompt_runs_once_and_changes_no_score(tiny_lm, batch_size):
    model, tokenizer = tiny_lm
    prompts = [FEWSHOT + p for p in PROMPTS]
    shared = SharedPrefix.of(model, [tokenizer(p)["input_ids"] for p in prompts], torch.device("cpu"))
    assert shared is not None and shared.length == 1 + len(FEWSHOT)  # BOS + the exemplar
    single = score_options(model, tokenizer, prompts, [["a", "b"]] * len(prompts), batch_size=batch_size)
    multi = score_options(model, tokenizer, prompts, OPTIONS, batch_size=batch_size)
    for prompt, opts, one, many in zip(prompts, OPTIONS, single, multi):
        for option, value in zip(["a", "b"], one.loglik):
            assert value == pytest.approx(_reference(model, tokenizer, prompt, option), abs=1e-4)
        for option, value in zip(opts, many.loglik):
            assert value == pytest.approx(_reference(model, tokenizer, prompt, option), abs=1e-4)


def test_shared_prefix_on_a_sliding_window_model():
    """Gemma 3 alternates sliding-window and global layers; prompts shorter than the window share."""
    torch.manual_seed(0)
    config = Gemma3TextConfig(vocab_size=258, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                              num_attention_heads=4,
                              num_key_value_heads=2, head_dim=8, sliding_window=512, max_position_embeddings=1024,
                              layer_types=["sliding_attention", "full_attention"] * 2)
    model, tokenizer = Gemma3ForCausalLM(config).eval(), ByteTokenizer()
    prompts = [FEWSHOT + p for p in PROMPTS]
    assert SharedPrefix.of(model, [tokenizer(p)["input_ids"] for p in prompts], torch.device("cpu")) is not None
    for prompt, opts, result in zip(prompts, OPTIONS, score_options(model, tokenizer, prompts, OPTIONS, batch_size=3)):
        for option, value in zip(opts, result.loglik):
            assert value == pytest.approx(_reference(model, tokenizer, prompt, option), abs=1e-4)


def test_no_prefix_sharing_where_a_sliding_window_could_see_the_padding(tiny_lm):
    model, tokenizer = tiny_lm
    prompts = [tokenizer(FEWSHOT + p)["input_ids"] for p in PROMPTS]
    windowed = copy.deepcopy(model)
    windowed.config.sliding_window = 100  # longer than the prefix (65), shorter than the longest prompt (105)
    shared = SharedPrefix.of(windowed, prompts, torch.device("cpu"))
    assert shared.serves([ids for ids in prompts if len(ids) < 100]) and not shared.serves(prompts)
    windowed.config.sliding_window = 60  # shorter than the prefix itself
    assert SharedPrefix.of(windowed, prompts, torch.device("cpu")) is None
    assert SharedPrefix.of(model, prompts[:1], torch.device("cpu")) is None  # one prompt: nothing to share


def test_int8_scores_stay_close_to_fp32(tiny_lm):
    model, tokenizer = tiny_lm
    quantized = quantize_for_cpu(copy.deepcopy(model))
    # the body is int8, the output layer (a lookup-sized product) stays exact
    assert isinstance(quantized.model.layers[0].mlp.down_proj, torch.ao.nn.quantized.dynamic.Linear)
    assert type(quantized.lm_head) is torch.nn.Linear
    exact = score_options(model, tokenizer, PROMPTS, OPTIONS)
    for a, b in zip(exact, score_options(quantized, tokenizer, PROMPTS, OPTIONS, batch_size=2)):
        assert b.loglik == pytest.approx(a.loglik, rel=1e-3, abs=0.02)


def test_balanced_accuracy_does_not_reward_a_constant_answer():
    labels = [0, 0, 0, 1]
    assert constant_answer_accuracy(labels) == 0.75
    assert balanced_accuracy([0, 0, 0, 0], labels) == 0.5
    assert balanced_accuracy([0, 0, 1, 1], labels) == pytest.approx((2 / 3 + 1) / 2)
