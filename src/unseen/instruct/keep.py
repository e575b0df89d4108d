"""Training objectives that keep what the base model knew (issue 33), beside the target-only loss.

- **KL to the base model**: on the same packed rows, the tuned model's next-token distribution is pulled towards
  the base model's, KL(base || tuned), at the positions that predict prompt tokens, answer tokens, or both. The
  base is the same peft model with its adapters disabled (``model.disable_adapter()`` under ``torch.no_grad``):
  no second copy of the weights. Gemma's output layer has 262k rows, so it is applied only at the selected
  positions, at most ``kl_max_positions`` of them per batch (drawn at random; 0 = all). ``kl_top_k`` > 0 restricts
  the KL to the base's k most likely tokens, both distributions renormalized over them: the tuned model's
  output layer then runs on k rows only (cheaper), and the term is the KL of the two conditional distributions
  on those tokens, not the full one.
- **Replay**: language modelling on the raw text fields of the training datasets' records (no template), packed
  into the same rows as separate examples, every token a target, weighted by ``replay_weight``.
- **Prompt loss**: the instruction examples' prompt tokens as targets too, each weighted ``prompt_loss_weight``
  relative to an answer token (1 = the full-sequence loss; 0 = answers only, the default).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from unseen.core.errors import UnseenError
from unseen.instruct.lm import (
    IGNORE,
    SEGMENT_ANSWER,
    SEGMENT_PROMPT,
    SEGMENT_REPLAY,
    TokenizedExample,
    _causal_lm_parts,
)
from unseen.instruct.mixture import MixtureConfig, mixture_datasets
from unseen.instruct.templates import load_records, load_templates

KL_ON = ("answer", "prompt", "both")


@dataclass
class KeepConfig:
    prompt_loss_weight: float = 0.0
    replay_weight: float = 1.0
    kl_weight: float = 0.0
    kl_on: str = "both"  # which predicted tokens: answer | prompt | both
    kl_max_positions: int = 64  # per batch, drawn at random; 0 = every selected position
    kl_top_k: int = 0  # 0 = the full vocabulary

    def __post_init__(self):
        if self.kl_on not in KL_ON:
            raise UnseenError(f"kl_on must be one of {', '.join(KL_ON)}, not {self.kl_on!r}")


def _logits(head, config, hidden: torch.Tensor) -> torch.Tensor:
    logits = head(hidden)
    cap = getattr(config, "final_logit_softcapping", None)
    return (torch.tanh(logits / cap) * cap if cap else logits).float()


def _rows_logits(head, config, hidden: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """The logits of ``tokens`` (n, k) only, from the k rows of the output layer each position needs."""
    logits = torch.einsum("nd,nkd->nk", hidden, head.weight[tokens])
    if getattr(head, "bias", None) is not None:
        logits = logits + head.bias[tokens]
    cap = getattr(config, "final_logit_softcapping", None)
    return (torch.tanh(logits / cap) * cap if cap else logits).float()


def _peft_model(model):
    while hasattr(model, "module"):
        model = model.module
    if not hasattr(model, "disable_adapter"):
        raise UnseenError("the KL term to the base model needs LoRA (the base is the model with its adapters "
                          "disabled); train with --lora or set the KL weight to 0")
    return model


def position_masks(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Boolean [rows, width - 1] masks of the positions that predict a prompt / answer / replay token (position t
    predicts token t + 1; the first token of a packed example is predicted by nothing)."""
    segments, positions = batch["segments"][:, 1:], batch["position_ids"][:, 1:]
    inside = positions != 0
    labelled = batch["labels"][:, 1:] != IGNORE
    return {"prompt": (segments == SEGMENT_PROMPT) & inside,
            "answer": (segments == SEGMENT_ANSWER) & labelled,
            "replay": (segments == SEGMENT_REPLAY) & labelled & inside}


def kl_to_base(model, batch: dict[str, torch.Tensor], hidden: torch.Tensor, where: torch.Tensor,
               max_positions: int = 0, top_k: int = 0) -> torch.Tensor:
    """Mean over the selected positions of KL(base || tuned); ``hidden``: the tuned model's final hidden states
    at positions 0 .. width - 2, ``where`` the boolean mask of the positions to use."""
    decoder, head, config = _causal_lm_parts(model)
    rows, cols = where.nonzero(as_tuple=True)
    if max_positions and len(rows) > max_positions:
        keep = torch.randperm(len(rows))[:max_positions].sort().values.to(rows.device)
        rows, cols = rows[keep], cols[keep]
    if len(rows) == 0:
        return hidden.sum() * 0.0
    with torch.no_grad(), _peft_model(model).disable_adapter():
        base_hidden = decoder(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
                              use_cache=False).last_hidden_state[rows, cols]
        base_logits = _logits(head, config, base_hidden)
    tuned = hidden[rows, cols]
    if top_k:
        tokens = base_logits.topk(min(top_k, base_logits.shape[-1]), dim=-1).indices
        # both sides through the same arithmetic on the k rows, so that equal models give exactly 0
        with torch.no_grad():
            base_logits = _rows_logits(head, config, base_hidden, tokens)
        tuned_logits = _rows_logits(head, config, tuned, tokens)
    else:
        tuned_logits = _logits(head, config, tuned)
    base_log = F.log_softmax(base_logits, -1)
    tuned_log = F.log_softmax(tuned_logits, -1)
    return (base_log.exp() * (base_log - tuned_log)).sum(-1).mean()


def keep_loss(model, batch: dict[str, torch.Tensor], keep: KeepConfig):
    """The instruction loss (answer tokens, plus prompt tokens at ``prompt_loss_weight``) + replay + KL to the base,
    with each part as a logged metric."""
    decoder, head, config = _causal_lm_parts(model)
    hidden = decoder(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
                     use_cache=False).last_hidden_state[:, :-1]
    masks = position_masks(batch)
    following = batch["input_ids"][:, 1:]

    def summed_ce(mask):
        if not mask.any():
            return hidden.sum() * 0.0, 0
        return F.cross_entropy(_logits(head, config, hidden[mask]), following[mask], reduction="sum"), int(mask.sum())

    answer_sum, answer_n = summed_ce(masks["answer"])
    total, count = answer_sum, float(answer_n)
    metrics = {"loss_answer": answer_sum.item() / max(answer_n, 1)}
    if keep.prompt_loss_weight:
        prompt_sum, prompt_n = summed_ce(masks["prompt"])
        total, count = total + keep.prompt_loss_weight * prompt_sum, count + keep.prompt_loss_weight * prompt_n
        metrics["loss_prompt"] = prompt_sum.item() / max(prompt_n, 1)
    loss = total / max(count, 1.0)
    if masks["replay"].any():
        replay_sum, replay_n = summed_ce(masks["replay"])
        metrics["loss_replay"] = replay_sum.item() / replay_n
        loss = loss + keep.replay_weight * replay_sum / replay_n
    if keep.kl_weight:
        where = {"answer": masks["answer"], "prompt": masks["prompt"],
                 "both": masks["answer"] | masks["prompt"]}[keep.kl_on]
        kl = kl_to_base(model, batch, hidden, where, keep.kl_max_positions, keep.kl_top_k)
        metrics["kl_to_base"] = kl.item()
        loss = loss + keep.kl_weight * kl
    return loss, metrics


def record_text(record: dict) -> str:
    """A record's text without a template: its string fields (and those of nested dicts), one per line."""
    lines = []
    for value in record.values():
        if isinstance(value, str) and value.strip():
            lines.append(value.strip())
        elif isinstance(value, dict):
            lines += [v.strip() for v in value.values() if isinstance(v, str) and v.strip()]
    return "\n".join(lines)


def replay_texts(config: MixtureConfig, fraction: float, *, tasks: dict | None = None,
                 data_dir: str | Path | None = None) -> list[tuple[str, str]]:
    """(dataset, text) pairs: per training dataset, ``fraction`` × its share of the mixture (cap included) of its
    train records' raw texts. Only the mixture's own datasets and train splits are read."""
    if fraction <= 0:
        return []
    tasks = tasks or load_templates()
    rng = random.Random(config.seed + 1)
    texts = []
    for name in mixture_datasets(config, tasks):
        records = load_records(tasks[name], "train", data_dir)
        wanted = round(fraction * min(config.cap, len(records)))
        for index in rng.sample(range(len(records)), min(wanted, len(records))):
            text = record_text(records[index])
            if text:
                texts.append((name, text))
    rng.shuffle(texts)
    return texts


def tokenize_replay(tokenizer, text: str, max_length: int) -> TokenizedExample:
    """Every token a target (the first is predicted by nothing); cut to ``max_length`` from the right."""
    ids = tokenizer(text)["input_ids"][:max_length]
    return TokenizedExample(ids, [IGNORE] + ids[1:], [SEGMENT_REPLAY] * len(ids))
