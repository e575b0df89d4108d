"""Rank classification with a causal LM: the log-likelihood of each answer option.

Prompts are batched (left-padded, sorted by length) and run once; their key/value
cache is shared by all options, which continue it in one batch. The output layer
(262k rows for Gemma) is applied only at positions whose next token is scored:
the last prompt position and the options' own positions. When every option is a
single token, the prompt pass alone gives the scores. Tokens that begin every
prompt (few-shot exemplars, a fixed instruction) run once for the whole call: their
cache is copied into each batch, which then runs only the rest of its prompts.

``quantize_for_cpu`` trades exactness for speed on a CPU (int8 dynamic quantization
of the transformer body); see docs/instruct.md, "Scoring speed".
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from rich.progress import Progress

from unseen.core.errors import UnseenError


@dataclass
class OptionScores:
    loglik: list[float]  # summed log-likelihood of each option's tokens
    num_tokens: list[int]

    @property
    def normalized(self) -> list[float]:
        """Per-token log-likelihood (the length-normalized score)."""
        return [score / max(count, 1) for score, count in zip(self.loglik, self.num_tokens)]


def _option_ids(tokenizer, options: Sequence[str]) -> list[list[int]]:
    ids = [tokenizer(option, add_special_tokens=False)["input_ids"] for option in options]
    empty = [option for option, tokens in zip(options, ids) if not tokens]
    if empty:
        raise UnseenError(f"answer option {empty[0]!r} encodes to no tokens")
    return ids


def quantize_for_cpu(model):
    """``model`` with every ``nn.Linear`` of its transformer body in int8 (dynamic quantization), in place.

    On a CPU the scoring cost is the body's matrix products, already near the fp32 peak, so
    the only way to go much faster is cheaper arithmetic: int8 weights, activations quantized
    per call. Embeddings and the output layer stay fp32 (they are a lookup and a few rows).
    Approximate: on SmolLM2-135M and Gemma 3 270M the score error (up to about a nat) exceeds
    their RTE/CB option margins and flips many answers; check accuracy on your task.
    """
    if next(model.parameters()).device.type != "cpu":
        raise UnseenError("int8 dynamic quantization runs on the CPU only; drop --int8 on a GPU")
    head = model.get_output_embeddings()
    names = {name for name, module in model.named_modules()
             if isinstance(module, torch.nn.Linear) and module is not head}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's notice that eager quantization moves to torchao
        return torch.ao.quantization.quantize_dynamic(model.eval(), names, dtype=torch.qint8, inplace=True)


@torch.inference_mode()
def score_options(
    model,
    tokenizer,
    prompts: Sequence[str],
    options: Sequence[Sequence[str]],
    *,
    batch_size: int = 8,
    progress: bool = False,
    share_prefix: bool = True,
) -> list[OptionScores]:
    """Scores of ``options[i]`` as continuations of ``prompts[i]``; ``share_prefix=False`` runs
    every prompt whole (the same scores, slower when the prompts begin alike)."""
    if len(prompts) != len(options):
        raise UnseenError(f"{len(prompts)} prompts but {len(options)} option lists")
    option_ids = [_option_ids(tokenizer, opts) for opts in options]
    prompt_ids = [tokenizer(prompt)["input_ids"] for prompt in prompts]
    device = next(model.parameters()).device
    results: list[OptionScores | None] = [None] * len(prompts)
    encoder_decoder = bool(getattr(model.config, "is_encoder_decoder", False))
    single_token = not encoder_decoder and all(len(ids) == 1 for opts in option_ids for ids in opts)
    order = sorted(range(len(prompts)), key=lambda i: len(prompt_ids[i]))
    shared = SharedPrefix.of(model, prompt_ids, device) if share_prefix and not encoder_decoder else None
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("scoring", total=len(prompts))
        if single_token:
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                log_probs = _last_position_log_probs(model, [prompt_ids[i] for i in chunk], tokenizer, device, shared)
                for row, i in enumerate(chunk):
                    scores = [log_probs[row, ids[0]].item() for ids in option_ids[i]]
                    results[i] = OptionScores(scores, [1] * len(scores))
                bar.advance(task, len(chunk))
        else:
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                batch_prompts, batch_options = [prompt_ids[i] for i in chunk], [option_ids[i] for i in chunk]
                if encoder_decoder:
                    scored = _score_seq2seq(model, batch_prompts, batch_options, tokenizer, device)
                else:
                    scored = _score_batch_with_shared_prompts(model, batch_prompts, batch_options, tokenizer,
                                                              device, shared)
                for i, result in zip(chunk, scored):
                    results[i] = result
                bar.advance(task, len(chunk))
    return results  # type: ignore[return-value]


def _left_padded(batch_ids: list[list[int]], pad: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    width = max(len(ids) for ids in batch_ids)
    input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in batch_ids], device=device)
    mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in batch_ids], device=device)
    # left padding: positions must count real tokens only, or RoPE sees shifted positions
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return input_ids, mask, positions


class SharedPrefix:
    """The tokens every prompt of a call begins with, run once; each batch continues a copy of their cache."""

    MIN_TOKENS = 16  # below this the copy costs about what it saves

    def __init__(self, length: int, cache, window: int | None):
        self.length, self.cache, self.window = length, cache, window

    @classmethod
    def of(cls, model, prompt_ids: list[list[int]], device) -> "SharedPrefix | None":
        if len(prompt_ids) < 2:
            return None
        first, length = prompt_ids[0], min(len(ids) for ids in prompt_ids) - 1  # every prompt keeps a token of its own
        for ids in prompt_ids[1:]:
            length = next((k for k in range(length) if ids[k] != first[k]), length)
        window = getattr(model.config, "sliding_window", None)
        if length < cls.MIN_TOKENS or (window and length >= window):
            return None
        output = model(input_ids=torch.tensor([first[:length]], device=device), use_cache=True, logits_to_keep=1)
        return cls(length, output.past_key_values, window)

    def serves(self, batch_ids: list[list[int]]) -> bool:
        # the batch's padding sits between the prefix and the rest of each prompt; a sliding-window
        # layer measures its window in cache slots, padding included, so a batch whose prompts
        # reach the window runs whole instead
        return not self.window or max(len(ids) for ids in batch_ids) < self.window

    def continued(self, rows: int):
        cache = copy.deepcopy(self.cache)
        cache.batch_repeat_interleave(rows)
        return cache


def run_prompts(model, batch_ids: list[list[int]], pad: int, device, shared: SharedPrefix | None, use_cache: bool):
    """One forward over a batch of prompts, logits at the last position only; returns (output, attention mask)."""
    if shared is None or not shared.serves(batch_ids):
        input_ids, mask, positions = _left_padded(batch_ids, pad, device)
        output = model(input_ids=input_ids, attention_mask=mask, position_ids=positions, use_cache=use_cache,
                       logits_to_keep=1)
        return output, mask
    input_ids, mask, positions = _left_padded([ids[shared.length :] for ids in batch_ids], pad, device)
    mask = torch.cat([torch.ones(len(batch_ids), shared.length, dtype=mask.dtype, device=device), mask], dim=1)
    output = model(input_ids=input_ids, attention_mask=mask, position_ids=positions + shared.length,
                   past_key_values=shared.continued(len(batch_ids)), use_cache=True, logits_to_keep=1)
    return output, mask


def pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


def _last_position_log_probs(model, batch_ids: list[list[int]], tokenizer, device, shared=None) -> torch.Tensor:
    output, _ = run_prompts(model, batch_ids, pad_id(tokenizer), device, shared, use_cache=False)
    return torch.log_softmax(output.logits[:, -1].float(), dim=-1)


def _score_batch_with_shared_prompts(model, prompts, options, tokenizer, device, shared=None) -> list[OptionScores]:
    """Prompts run once (left-padded batch, cache kept); then every option of every prompt
    continues its prompt's cache in one batch of prompts x options rows."""
    pad = pad_id(tokenizer)
    output, mask = run_prompts(model, prompts, pad, device, shared, use_cache=True)
    first = torch.log_softmax(output.logits[:, -1].float(), dim=-1)
    per_prompt = max(len(opts) for opts in options)
    # pad every prompt's option list to the same count so the cache repeats evenly
    padded_options = [opts + [opts[0]] * (per_prompt - len(opts)) for opts in options]
    width = max(len(ids) for opts in padded_options for ids in opts)
    rows = [ids + [pad] * (width - len(ids)) for opts in padded_options for ids in opts]
    scores = [[first[b, ids[0]].item() for ids in opts] for b, opts in enumerate(options)]
    if width > 1:
        cache = output.past_key_values
        cache.batch_repeat_interleave(per_prompt)
        option_mask = torch.ones(len(rows), width, dtype=mask.dtype, device=device)
        full_mask = torch.cat([mask.repeat_interleave(per_prompt, dim=0), option_mask], dim=1)
        lengths = mask.sum(-1).repeat_interleave(per_prompt)
        option_positions = lengths.unsqueeze(1) + torch.arange(width, device=device)
        logits = model(input_ids=torch.tensor(rows, device=device), attention_mask=full_mask,
                       position_ids=option_positions, past_key_values=cache, use_cache=True).logits
        log_probs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
        for b, opts in enumerate(options):
            for k, ids in enumerate(opts):
                row = b * per_prompt + k
                steps = torch.arange(len(ids) - 1, device=device)
                targets = torch.tensor(ids[1:], dtype=torch.long, device=device)
                scores[b][k] += log_probs[row, steps, targets].sum().item()
    return [OptionScores(values, [len(ids) for ids in opts]) for values, opts in zip(scores, options)]


def _score_seq2seq(model, prompts, options, tokenizer, device) -> list[OptionScores]:
    """Encoder-decoder models (T5): the encoder runs once per prompt, the decoder once per option."""
    pad = pad_id(tokenizer)
    width = max(len(ids) for ids in prompts)
    input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids in prompts], device=device)
    mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids in prompts], device=device)
    encoded = model.get_encoder()(input_ids=input_ids, attention_mask=mask)
    rows = [(b, ids) for b, opts in enumerate(options) for ids in opts]
    label_width = max(len(ids) for _, ids in rows)
    labels = torch.tensor([ids + [-100] * (label_width - len(ids)) for _, ids in rows], device=device)
    owners = torch.tensor([b for b, _ in rows], device=device)
    logits = model(encoder_outputs=(encoded.last_hidden_state[owners],), attention_mask=mask[owners],
                   labels=labels).logits
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    token_scores = log_probs.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1) * (labels != -100)
    totals = token_scores.sum(-1).tolist()
    results, row = [], 0
    for opts in options:
        results.append(OptionScores(totals[row : row + len(opts)], [len(ids) for ids in opts]))
        row += len(opts)
    return results
