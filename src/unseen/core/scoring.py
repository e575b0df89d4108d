"""Rank classification with a causal LM: the log-likelihood of each answer option.

The prompt is run once per example; its key/value cache is shared by all options,
and the output layer (262k rows for Gemma) is applied only at positions whose
next token is scored. When every option is a single token, prompts are batched
(left-padded, sorted by length) and only the last position reaches the output layer.
"""

from __future__ import annotations

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


@torch.inference_mode()
def score_options(
    model,
    tokenizer,
    prompts: Sequence[str],
    options: Sequence[Sequence[str]],
    *,
    batch_size: int = 8,
    progress: bool = False,
) -> list[OptionScores]:
    """Scores of ``options[i]`` as continuations of ``prompts[i]``."""
    if len(prompts) != len(options):
        raise UnseenError(f"{len(prompts)} prompts but {len(options)} option lists")
    option_ids = [_option_ids(tokenizer, opts) for opts in options]
    prompt_ids = [tokenizer(prompt)["input_ids"] for prompt in prompts]
    device = next(model.parameters()).device
    results: list[OptionScores | None] = [None] * len(prompts)
    single_token = all(len(ids) == 1 for opts in option_ids for ids in opts)
    order = sorted(range(len(prompts)), key=lambda i: len(prompt_ids[i]))
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("scoring", total=len(prompts))
        if single_token:
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                log_probs = _last_position_log_probs(model, [prompt_ids[i] for i in chunk], tokenizer, device)
                for row, i in enumerate(chunk):
                    scores = [log_probs[row, ids[0]].item() for ids in option_ids[i]]
                    results[i] = OptionScores(scores, [1] * len(scores))
                bar.advance(task, len(chunk))
        else:
            for i in order:
                results[i] = _score_with_shared_prompt(model, prompt_ids[i], option_ids[i], tokenizer, device)
                bar.advance(task)
    return results  # type: ignore[return-value]


def _last_position_log_probs(model, batch_ids: list[list[int]], tokenizer, device) -> torch.Tensor:
    width = max(len(ids) for ids in batch_ids)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in batch_ids], device=device)
    mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in batch_ids], device=device)
    # left padding: positions must count real tokens only, or RoPE sees shifted positions
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=input_ids, attention_mask=mask, position_ids=positions, logits_to_keep=1).logits
    return torch.log_softmax(logits[:, -1].float(), dim=-1)


def _score_with_shared_prompt(model, prompt: list[int], options: list[list[int]], tokenizer, device) -> OptionScores:
    prompt_tensor = torch.tensor([prompt], device=device)
    output = model(input_ids=prompt_tensor, use_cache=True, logits_to_keep=1)
    first_token_log_probs = torch.log_softmax(output.logits[0, -1].float(), dim=-1)
    cache = output.past_key_values
    # all options continue the same cached prompt in one batch; the last token of an
    # option needs no logits, so the options' own positions are [0, len-1)
    width = max(len(ids) for ids in options)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids in options], device=device)
    scores = [first_token_log_probs[ids[0]].item() for ids in options]
    if width > 1:
        cache.batch_repeat_interleave(len(options))
        mask = torch.ones(len(options), len(prompt) + width, dtype=torch.long, device=device)
        positions = torch.arange(len(prompt), len(prompt) + width, device=device).expand(len(options), -1)
        logits = model(
            input_ids=input_ids, attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True
        ).logits
        log_probs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
        for row, ids in enumerate(options):
            targets = torch.tensor(ids[1:], dtype=torch.long, device=device)
            scores[row] += log_probs[row, torch.arange(len(ids) - 1, device=device), targets].sum().item()
    return OptionScores(scores, [len(ids) for ids in options])
