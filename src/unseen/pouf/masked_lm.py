"""A masked LM (BERT, RoBERTa, DistilBERT) as a POUF target, read at its ``<mask>`` position.

The causal-LM side is in lm.py, the shared interface in prompted.py; this adapter runs the whole
encoder at every step (no cache), so it is meant for a GPU.
"""

from __future__ import annotations

import torch
from torch import nn

from unseen.core.errors import UnseenError
from unseen.pouf.prompted import MODES, PromptedLM, first_token_ids


class MaskedPromptLM(PromptedLM):
    """A masked LM (BERT, RoBERTa, DistilBERT through AutoModelForMaskedLM) read at ``<mask>``.

    There is no cache here: every step runs the whole encoder (use a GPU). Modes: prompt
    (learnable offsets on the input embeddings of the ``n_ctx`` tokens before the mask),
    ln, lora (query/value projections), full (the encoder; embeddings and head frozen).
    """

    kind = "masked_lm"

    def __init__(self, model, tokenizer, verbalizers, *, mode: str = "prompt", n_ctx: int = 2, lora_r: int = 8,
                 max_length: int = 256, **_):
        super().__init__()
        if mode not in MODES:
            raise UnseenError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        if tokenizer.mask_token is None:
            raise UnseenError(f"{type(model).__name__}: the tokenizer has no mask token")
        self.lm, self.tokenizer, self.mode, self.n_ctx, self.max_length = model, tokenizer, mode, n_ctx, max_length
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        wordpiece = not any(t.startswith(("Ġ", "▁")) for t in list(tokenizer.get_vocab())[:2000])
        self.verbalizer_ids = first_token_ids(tokenizer, verbalizers, strip=wordpiece)
        self.num_views, self.num_classes = len(verbalizers), len(verbalizers[0])
        self.transform = self._head_transform()
        encoder = model.base_model
        hidden = model.get_input_embeddings().weight.shape[1]
        if mode == "prompt":
            self.context = nn.Parameter(torch.zeros(self.num_views, n_ctx, hidden))
        elif mode == "ln":
            for name, parameter in encoder.named_parameters():
                if ("norm" in name.lower() or name.endswith("bias")) and "embeddings" not in name:
                    parameter.requires_grad_(True)
        elif mode == "full":
            for name, parameter in encoder.named_parameters():
                if "embeddings" not in name:
                    parameter.requires_grad_(True)
        elif mode == "lora":
            from unseen.core.training import apply_lora

            targets = [n for n in ("query", "value", "q_lin", "v_lin")
                       if any(m.endswith(n) for m, _ in model.named_modules())]
            object.__setattr__(self, "_peft", apply_lora(model, r=lora_r, alpha=2 * lora_r, target_modules=targets))

    def _head_transform(self):
        lm = self.lm
        if hasattr(lm, "cls") and hasattr(lm.cls, "predictions"):  # BERT
            return lm.cls.predictions.transform
        if hasattr(lm, "lm_head") and hasattr(lm.lm_head, "dense"):  # RoBERTa, XLM-R
            head = lm.lm_head
            return lambda x: head.layer_norm(torch.nn.functional.gelu(head.dense(x)))
        if hasattr(lm, "vocab_transform"):  # DistilBERT
            return lambda x: lm.vocab_layer_norm(lm.activation(lm.vocab_transform(x)))
        raise UnseenError(f"{type(lm).__name__}: unsupported masked LM head (BERT, RoBERTa and DistilBERT heads are "
                          "known)")

    def prepare(self, prompts: list[str], view: int, *, progress=None, **_) -> list[list[int]]:
        out = []
        for prompt in prompts:
            ids = self.tokenizer(prompt, truncation=True, max_length=self.max_length)["input_ids"]
            if self.tokenizer.mask_token_id not in ids:
                raise UnseenError(f"prompt {prompt[:60]!r}: the mask token was truncated away or is missing")
            out.append(ids)
        if progress is not None:
            progress(len(prompts))
        return out

    def collate(self, items: list[list[int]], view: int) -> dict:
        width = max(len(x) for x in items)
        pad = self.tokenizer.pad_token_id or 0
        input_ids = torch.tensor([x + [pad] * (width - len(x)) for x in items])
        mask = (torch.arange(width)[None, :] < torch.tensor([len(x) for x in items])[:, None]).long()
        positions = torch.tensor([x.index(self.tokenizer.mask_token_id) for x in items])
        return {"input_ids": input_ids, "mask": mask, "mask_positions": positions, "view": view}

    def forward(self, batch: dict) -> torch.Tensor:
        device = next(self.lm.parameters()).device
        input_ids, mask = batch["input_ids"].to(device), batch["mask"].to(device)
        positions = batch["mask_positions"].to(device)
        embeds = self.lm.get_input_embeddings()(input_ids)
        rows = torch.arange(len(input_ids), device=device)
        if self.mode == "prompt":
            ctx_positions = positions[:, None] - self.n_ctx + torch.arange(self.n_ctx, device=device)[None, :]
            ctx_positions = ctx_positions.clamp(min=1)
            offsets = torch.zeros_like(embeds)
            offsets[rows[:, None], ctx_positions] = self.context[batch["view"]].unsqueeze(0).expand(len(rows), -1, -1)
            embeds = embeds + offsets
        hidden = self.lm.base_model(inputs_embeds=embeds, attention_mask=mask).last_hidden_state
        return self.transform(hidden[rows, positions])


def is_masked_lm(name_or_path: str) -> bool:
    """True when a model folder or hub id holds a masked LM (by its config's architectures)."""
    from pathlib import Path

    from unseen.core.assets import asset_names

    if name_or_path in asset_names():
        return False
    config_file = Path(name_or_path).expanduser() / "config.json"
    if config_file.exists():
        import json

        architectures = json.loads(config_file.read_text()).get("architectures") or []
        return any("MaskedLM" in a for a in architectures)
    try:
        from transformers import AutoConfig

        architectures = AutoConfig.from_pretrained(name_or_path).architectures or []
    except (OSError, ValueError):
        return False
    return any("MaskedLM" in a for a in architectures)
