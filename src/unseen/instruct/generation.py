"""Greedy decoding for evaluation that stops as soon as the answer is complete.

An answer is one line, so a row stops at the first newline that follows some text, at
EOS, or at its own token cap (for a classification template: near its longest option;
more for chain of thought). ``transformers``' ``generate`` would run every row of a
batch to ``max_new_tokens`` unless all of them emit EOS, and a base model rarely does.

The prompts run the way the rank scorer runs them (``unseen.core.scoring``): batched,
left-padded, sorted by length, tokens shared by every prompt run once, logits only at
the last position. Each step then feeds one token per row through the key/value cache,
and rows that have finished leave the batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from rich.progress import Progress

from unseen.core.scoring import SharedPrefix, pad_id, run_prompts

__all__ = ["answer_token_cap", "greedy_generate"]


def answer_token_cap(tokenizer, choices: Sequence[str], slack: int = 4) -> int:
    """New tokens enough for the longest choice, plus ``slack`` for a leading space, a period
    and the newline that ends it."""
    return max(len(tokenizer(choice, add_special_tokens=False)["input_ids"]) for choice in choices) + slack


def _eos_ids(model, tokenizer) -> set[int]:
    ids = {tokenizer.eos_token_id}
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids |= set(configured) if isinstance(configured, (list, tuple)) else {configured}
    return {i for i in ids if i is not None}


def _line_done(text: str) -> bool:
    """A newline after some text ends the answer; leading blank lines do not (outputs are stripped)."""
    return "\n" in text.lstrip()


@torch.inference_mode()
def greedy_generate(model, tokenizer, prompts: Sequence[str], max_new_tokens: int | Sequence[int], *,
                    batch_size: int = 8, stop_at_newline: bool = True, share_prefix: bool = True,
                    progress: bool = False) -> list[str]:
    """The greedy continuation of each prompt (special tokens dropped), up to ``max_new_tokens``
    (one cap for all, or one per prompt), cut at the first newline after text when
    ``stop_at_newline``. Encoder-decoder models go through ``model.generate``."""
    caps = [max_new_tokens] * len(prompts) if isinstance(max_new_tokens, int) else list(max_new_tokens)
    if getattr(model.config, "is_encoder_decoder", False):
        return _seq2seq_generate(model, tokenizer, prompts, caps, batch_size)
    device = next(model.parameters()).device
    prompt_ids = [tokenizer(prompt)["input_ids"] for prompt in prompts]
    order = sorted(range(len(prompts)), key=lambda i: len(prompt_ids[i]))
    shared = SharedPrefix.of(model, prompt_ids, device) if share_prefix else None
    eos, pad = _eos_ids(model, tokenizer), pad_id(tokenizer)
    outputs: list[str] = [""] * len(prompts)
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("generating", total=len(prompts))
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            texts = _generate_batch(model, tokenizer, [prompt_ids[i] for i in chunk], [caps[i] for i in chunk],
                                    device, shared, eos, pad, stop_at_newline)
            for i, text in zip(chunk, texts):
                outputs[i] = text
            bar.advance(task, len(chunk))
    return outputs


def _generate_batch(model, tokenizer, batch_ids, caps, device, shared, eos, pad, stop_at_newline) -> list[str]:
    output, mask = run_prompts(model, batch_ids, pad, device, shared, use_cache=True)
    cache = output.past_key_values
    next_position = mask.sum(-1)  # positions count real tokens only (left padding)
    tokens = output.logits[:, -1].argmax(-1)
    generated: list[list[int]] = [[] for _ in batch_ids]
    active = list(range(len(batch_ids)))  # batch rows still decoding, in cache order
    while True:
        keep = []
        for slot, row in enumerate(active):
            token = tokens[slot].item()
            if token in eos:
                continue
            generated[row].append(token)
            if len(generated[row]) >= caps[row]:
                continue
            if stop_at_newline and _line_done(tokenizer.decode(generated[row], skip_special_tokens=True)):
                continue
            keep.append(slot)
        if not keep:
            break
        if len(keep) < len(active):  # finished rows leave the batch, and their cache with them
            index = torch.tensor(keep, device=device)
            cache.batch_select_indices(index)
            mask, next_position, tokens = mask[index], next_position[index], tokens[index]
            active = [active[slot] for slot in keep]
        mask = torch.cat([mask, mask.new_ones(len(active), 1)], dim=1)
        output = model(input_ids=tokens[:, None], attention_mask=mask, position_ids=next_position[:, None],
                       past_key_values=cache, use_cache=True, logits_to_keep=1)
        cache, next_position = output.past_key_values, next_position + 1
        tokens = output.logits[:, -1].argmax(-1)
    return [tokenizer.decode(ids, skip_special_tokens=True) for ids in generated]


def _seq2seq_generate(model, tokenizer, prompts, caps, batch_size) -> list[str]:
    device = next(model.parameters()).device
    outputs = []
    for start in range(0, len(prompts), batch_size):
        batch = tokenizer(list(prompts[start : start + batch_size]), return_tensors="pt", padding=True).to(device)
        generated = model.generate(**batch, max_new_tokens=max(caps[start : start + batch_size]), do_sample=False,
                                   pad_token_id=tokenizer.pad_token_id)
        outputs += [tokenizer.decode(sequence, skip_special_tokens=True) for sequence in generated]
    return outputs
