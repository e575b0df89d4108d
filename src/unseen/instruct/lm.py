"""Instruction tuning of a language model: one prompt format, packing, a target-only loss.

The prompt a model sees is ``input + PROMPT_SUFFIX`` and the answer follows as
separately tokenized text, both in training and in rank scoring, so the two
agree token for token.

Packing puts several examples in one row with positions restarting at 0 for each;
transformers then builds a block-diagonal causal mask (no attention across
examples) when no attention mask and no cache are passed. The loss covers target
tokens only, and the output layer runs only at the positions that predict them:
Gemma's output layer has 262k rows, so computing it everywhere would dominate.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from unseen.core.errors import UnseenError

PROMPT_SUFFIX = "\n"
IGNORE = -100


# what each token of a packed row is (``segments``): the objectives of ``keep.py`` weigh them apart
SEGMENT_PROMPT, SEGMENT_ANSWER, SEGMENT_REPLAY, SEGMENT_PAD = 0, 1, 2, -1


@dataclass
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]  # IGNORE on prompt tokens
    segments: list[int] | None = None  # default: prompt where the label is IGNORE, else answer

    def token_segments(self) -> list[int]:
        if self.segments is not None:
            return self.segments
        return [SEGMENT_PROMPT if label == IGNORE else SEGMENT_ANSWER for label in self.labels]


def tokenize_example(tokenizer, prompt: str, target: str, max_length: int) -> TokenizedExample:
    """Prompt (with the tokenizer's BOS) + target + EOS; the prompt is cut from the left if too long."""
    prompt_ids = tokenizer(prompt + PROMPT_SUFFIX)["input_ids"]
    target_ids = tokenizer(target, add_special_tokens=False)["input_ids"]
    if tokenizer.eos_token_id is not None:
        target_ids = target_ids + [tokenizer.eos_token_id]
    target_ids = target_ids[: max_length // 2]
    room = max_length - len(target_ids)
    if len(prompt_ids) > room:
        keep_bos = prompt_ids[:1] if prompt_ids and prompt_ids[0] == tokenizer.bos_token_id else []
        prompt_ids = keep_bos + prompt_ids[len(prompt_ids) - room + len(keep_bos) :]
    return TokenizedExample(prompt_ids + target_ids, [IGNORE] * len(prompt_ids) + target_ids)


def pack(examples: Sequence[TokenizedExample], max_length: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """Greedy first-fit packing into rows of at most ``max_length`` tokens.

    Each row is {"input_ids", "labels", "position_ids", "segments"} (1-D); collate pads rows.
    """
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    rows: list[list[TokenizedExample]] = []
    room: list[int] = []
    for index in order:
        example = examples[index]
        for row_index, free in enumerate(room):
            if len(example.input_ids) <= free:
                rows[row_index].append(example)
                room[row_index] -= len(example.input_ids)
                break
        else:
            rows.append([example])
            room.append(max_length - len(example.input_ids))
    packed = []
    for row in rows:
        packed.append({
            "input_ids": torch.tensor([t for e in row for t in e.input_ids]),
            "labels": torch.tensor([t for e in row for t in e.labels]),
            "position_ids": torch.cat([torch.arange(len(e.input_ids)) for e in row]),
            "segments": torch.tensor([s for e in row for s in e.token_segments()]),
        })
    return packed


def collate_packed(rows: list[dict[str, torch.Tensor]], pad_token_id: int = 0) -> dict[str, torch.Tensor]:
    """Pad packed rows to one width. Padding continues the last example's positions, so it
    forms no new sequence, and its labels are ignored; real tokens never attend to it
    because it comes after them under a causal mask."""
    width = max(len(row["input_ids"]) for row in rows)
    batch = {"input_ids": [], "labels": [], "position_ids": []}
    for row in rows:
        extra = width - len(row["input_ids"])
        batch["input_ids"].append(F.pad(row["input_ids"], (0, extra), value=pad_token_id))
        batch["labels"].append(F.pad(row["labels"], (0, extra), value=IGNORE))
        last = row["position_ids"][-1].item()
        batch["position_ids"].append(torch.cat([row["position_ids"], torch.arange(last + 1, last + 1 + extra)]))
        if "segments" in row:
            batch.setdefault("segments", []).append(F.pad(row["segments"], (0, extra), value=SEGMENT_PAD))
    return {key: torch.stack(value) for key, value in batch.items()}


def _causal_lm_parts(model):
    """(decoder stack, output layer, config) of a transformers causal LM, through DDP and peft wrappers."""
    while hasattr(model, "module"):
        model = model.module
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    decoder, head = model.get_decoder(), model.get_output_embeddings()
    if decoder is None or head is None:
        raise UnseenError(f"{type(model).__name__} has no decoder/output layer: not a causal language model")
    return decoder, head, model.config


def target_only_loss(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean cross-entropy over target tokens, with the output layer applied only where needed."""
    decoder, head, config = _causal_lm_parts(model)
    hidden = decoder(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
                     use_cache=False).last_hidden_state
    targets = batch["labels"][:, 1:]
    where = targets != IGNORE
    logits = head(hidden[:, :-1][where])
    cap = getattr(config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return F.cross_entropy(logits.float(), targets[where])


def seq2seq_loss(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Encoder-decoder models (T5): every decoder position is a target, so no packing is needed."""
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).loss


def tokenize_seq2seq(tokenizer, prompt: str, target: str, max_length: int) -> dict[str, torch.Tensor]:
    source = tokenizer(prompt, truncation=True, max_length=max_length)["input_ids"]
    labels = tokenizer(text_target=target, truncation=True, max_length=max_length // 2)["input_ids"]
    return {"input_ids": torch.tensor(source), "labels": torch.tensor(labels)}


def collate_seq2seq(rows: list[dict[str, torch.Tensor]], pad_token_id: int = 0) -> dict[str, torch.Tensor]:
    width = max(len(row["input_ids"]) for row in rows)
    label_width = max(len(row["labels"]) for row in rows)
    return {
        "input_ids": torch.stack([F.pad(r["input_ids"], (0, width - len(r["input_ids"])), value=pad_token_id)
                                  for r in rows]),
        "attention_mask": torch.stack([F.pad(torch.ones_like(r["input_ids"]), (0, width - len(r["input_ids"])))
                                       for r in rows]),
        "labels": torch.stack([F.pad(r["labels"], (0, label_width - len(r["labels"])), value=IGNORE) for r in rows]),
    }
