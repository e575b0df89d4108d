"""Prompted language models as POUF targets.

A prompted LM classifies by reading its answer slot: the class prototypes are the
output-embedding rows of the verbalizer tokens, and the target feature is the hidden
state at the answer slot as it enters the output layer

  causal LM  the last prompt position, after the final norm (SmolLM2, Llama, Gemma, ...)
  masked LM  the ``<mask>`` position, through the LM head's transform (BERT, RoBERTa;
             masked_lm.py)

so ``feature @ prototypes.T`` are the LM's own scores of the verbalizer tokens (plus the
output bias of a masked LM): the zero-shot classifier.

Cheap adaptation of a causal LM: only the top ``tune_layers`` decoder layers change,
so the hidden states entering them are computed once, cached, and every training or
evaluation step runs only those layers. Modes:

  prompt  learnable context vectors added to the last ``n_ctx`` prompt positions (the
          template's answer lead, e.g. "\\nSentiment:") where they enter the tuned layers;
          one set per template, initialised at zero (= the zero-shot model). With
          ``tune_layers`` = all layers this is CoOp-style prompt tuning of the input embeddings.
  ln      the norm weights (and biases) of the tuned layers and the final norm
  lora    LoRA adapters (peft) on the attention and MLP projections of the tuned layers
  full    every weight of the tuned layers and the final norm

The input embeddings and the output layer (the prototypes) stay frozen.
"""

from __future__ import annotations

import copy
import string
from collections.abc import Sequence

import torch
from torch import nn

from unseen.core.errors import UnseenError
from unseen.pouf.masked_lm import MaskedPromptLM, is_masked_lm
from unseen.pouf.prompted import MODES, PromptedLM, first_token_ids


def safe_n_ctx(tokenizer, templates: Sequence[str], requested: int) -> int:
    """How many trailing prompt positions hold template words in every template: the
    literal after the last field, tokenized alone, less one token for a merge at the
    boundary. 0 when some template ends with a field (prompt mode then needs another template)."""
    counts = []
    for template in templates:
        parts = list(string.Formatter().parse(template.split("{mask}")[0]))
        trailing = ""
        for text, name, _, _ in parts:
            trailing = trailing + text if not name else ""
        if not parts or not any(name for _, name, _, _ in parts):
            trailing = template.split("{mask}")[0]
        n = len(tokenizer(trailing, add_special_tokens=False)["input_ids"]) if trailing else 0
        whole = len(tokenizer(template.split("{mask}")[0], add_special_tokens=False)["input_ids"])
        counts.append(n if n == whole else max(n - 1, 0))
    return max(0, min([requested, *counts]))


def multi_token_words(tokenizer, verbalizers, *, strip: bool = False) -> list[str]:
    """Verbalizer words that are several tokens (read at their first token)."""
    out = []
    for classes in verbalizers:
        for words in classes:
            for word in words:
                if len(tokenizer(word.strip() if strip else word, add_special_tokens=False)["input_ids"]) > 1:
                    out.append(word)
    return sorted(set(out))


FLOAT16_MAX = 6.0e4  # a little under float16's largest finite value, 65504


def compact(states: torch.Tensor) -> torch.Tensor:
    """A cached hidden state in float16 where it fits, else in float32: Gemma's residual
    stream reaches ~1e5 in a few outlier dimensions, which float16 would turn into inf."""
    fits = bool(states.abs().max() < FLOAT16_MAX) if states.numel() else True
    return states.to(torch.float16 if fits else torch.float32).cpu().clone()


class CausalPromptLM(PromptedLM):
    kind = "causal_lm"

    def __init__(self, model, tokenizer, verbalizers, *, mode: str = "prompt", tune_layers: int = 4,
                 n_ctx: int = 4, lora_r: int = 8, max_length: int = 256):
        super().__init__()
        if mode not in MODES:
            raise UnseenError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        self.lm = model
        self.tokenizer = tokenizer
        self.mode, self.max_length = mode, max_length
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        decoder = model.get_decoder() if hasattr(model, "get_decoder") else model.model
        layers = getattr(decoder, "layers", None)
        if layers is None or not hasattr(decoder, "norm"):
            raise UnseenError(f"{type(model).__name__}: expected a decoder with .layers and .norm "
                              "(Llama/Gemma/Qwen-style)")
        total = len(layers)
        if not 1 <= tune_layers <= total:
            raise UnseenError(f"tune_layers must be between 1 and {total} (the model's layers)")
        self.tune_layers, self.split = tune_layers, total - tune_layers
        # two views of the decoder sharing its modules: the frozen bottom (its output is
        # cached) and the tuned top; kept out of the module tree so parameters are not listed twice
        bottom, top = copy.copy(decoder), copy.copy(decoder)
        bottom._modules, top._modules = dict(decoder._modules), dict(decoder._modules)
        bottom.layers, bottom.norm = nn.ModuleList(layers[: self.split]), nn.Identity()
        top.layers = nn.ModuleList(layers[self.split :])
        object.__setattr__(self, "_bottom", bottom)
        object.__setattr__(self, "_top", top)
        self.verbalizer_ids = first_token_ids(tokenizer, verbalizers)
        self.num_views = len(verbalizers)
        self.num_classes = len(verbalizers[0])
        hidden = getattr(model.config, "hidden_size", None) or model.get_input_embeddings().weight.shape[1]
        self.n_ctx = n_ctx
        if mode == "prompt":
            self.context = nn.Parameter(torch.zeros(self.num_views, n_ctx, hidden))
        elif mode == "ln":
            for name, parameter in self._tuned_named_parameters():
                if "norm" in name.lower():
                    parameter.requires_grad_(True)
        elif mode == "full":
            for _, parameter in self._tuned_named_parameters():
                parameter.requires_grad_(True)
        elif mode == "lora":
            from unseen.core.training import apply_lora

            prefix = self._layer_prefix()
            indices = "|".join(str(i) for i in range(self.split, total))
            pattern = rf"{prefix}\.({indices})\..*(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
            object.__setattr__(self, "_peft", apply_lora(model, r=lora_r, alpha=2 * lora_r, target_modules=pattern))

    def _layer_prefix(self) -> str:
        first = self._top.layers[0]
        for name, module in self.lm.named_modules():
            if module is first:
                return name.rsplit(".", 1)[0].replace(".", r"\.")
        raise UnseenError("cannot locate the decoder layers for LoRA")

    def _tuned_named_parameters(self):
        for index, layer in enumerate(self._top.layers):
            for name, parameter in layer.named_parameters():
                yield f"layers.{self.split + index}.{name}", parameter
        for name, parameter in self._top.norm.named_parameters():
            yield f"norm.{name}", parameter

    # -- the frozen part, computed once ---------------------------------------------------

    def encode_ids(self, prompts: list[str]) -> list[list[int]]:
        ids = [self.tokenizer(p, add_special_tokens=True)["input_ids"] for p in prompts]
        too_short = [p for p, i in zip(prompts, ids) if len(i) <= self.n_ctx]
        if too_short and self.mode == "prompt":
            raise UnseenError(f"prompt {too_short[0][:60]!r} has no more tokens than n_ctx={self.n_ctx}")
        return [i[-self.max_length :] for i in ids]  # keep the answer slot: truncate the start

    @torch.inference_mode()
    def prepare(self, prompts: list[str], view: int, *, batch_size: int = 16, progress=None) -> list[torch.Tensor]:
        """Hidden states entering the tuned layers, one [T, D] tensor per prompt (see `compact`)."""
        ids = self.encode_ids(prompts)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out: list[torch.Tensor | None] = [None] * len(ids)
        pad = self.tokenizer.pad_token_id or 0
        device = next(self.lm.parameters()).device
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            width = max(len(ids[i]) for i in chunk)
            input_ids = torch.tensor([ids[i] + [pad] * (width - len(ids[i])) for i in chunk], device=device)
            mask = torch.tensor([[1] * len(ids[i]) + [0] * (width - len(ids[i])) for i in chunk], device=device)
            if self.split == 0:
                states = self.lm.get_input_embeddings()(input_ids)
            else:
                states = self._bottom(input_ids=input_ids, attention_mask=mask, use_cache=False).last_hidden_state
            for row, i in enumerate(chunk):
                out[i] = compact(states[row, : len(ids[i])])
            if progress is not None:
                progress(len(chunk))
        return out  # type: ignore[return-value]

    def collate(self, items: list[torch.Tensor], view: int) -> dict:
        lengths = torch.tensor([len(x) for x in items])
        width = int(lengths.max())
        states = torch.zeros(len(items), width, items[0].shape[-1])
        for row, x in enumerate(items):
            states[row, : len(x)] = x.float()
        mask = (torch.arange(width)[None, :] < lengths[:, None]).long()
        return {"states": states, "mask": mask, "lengths": lengths, "view": view}

    # -- the tuned part -------------------------------------------------------------------

    def forward(self, batch: dict) -> torch.Tensor:
        states, mask, lengths = batch["states"], batch["mask"], batch["lengths"]
        device = next(self.lm.parameters()).device
        states, mask, lengths = states.to(device), mask.to(device), lengths.to(device)
        rows = torch.arange(states.shape[0], device=device)
        if self.mode == "prompt":
            positions = lengths[:, None] - self.n_ctx + torch.arange(self.n_ctx, device=device)[None, :]
            offsets = torch.zeros_like(states)
            context = self.context[batch["view"]].unsqueeze(0).expand(len(rows), -1, -1)
            offsets[rows[:, None], positions] = context.to(states.dtype)
            states = states + offsets
        hidden = self._top(inputs_embeds=states, attention_mask=mask, use_cache=False).last_hidden_state
        return hidden[rows, lengths - 1]


def load_prompted_lm(name_or_path: str, verbalizers, *, mode: str = "prompt", tune_layers: int = 4,
                     n_ctx: int | None = None, lora_r: int = 8, templates: Sequence[str] | None = None) -> PromptedLM:
    """A causal LM (asset name, folder, hub id) or a masked LM (folder or hub id).

    With ``templates``, a causal LM's prompt mode learns at most as many context positions
    as every template has words after its last field (see :func:`safe_n_ctx`).
    """
    if is_masked_lm(name_or_path):
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(name_or_path)
            model = AutoModelForMaskedLM.from_pretrained(name_or_path, dtype=torch.float32).eval()
        except (OSError, ValueError) as err:
            raise UnseenError(f"{name_or_path}: cannot load a masked LM ({str(err).splitlines()[0]})") from None
        return MaskedPromptLM(model, tokenizer, verbalizers, mode=mode, n_ctx=n_ctx or 2, lora_r=lora_r)
    from unseen.core.assets import load_causal_lm

    model, tokenizer = load_causal_lm(name_or_path)
    n_ctx = n_ctx or 4
    if templates is not None and mode == "prompt":
        n_ctx = safe_n_ctx(tokenizer, templates, n_ctx)
        if n_ctx == 0:
            raise UnseenError("prompt mode needs template words after the last field of every template "
                              "(e.g. '{sentence}\\nSentiment:'); add an answer lead or use --mode ln")
    return CausalPromptLM(model, tokenizer, verbalizers, mode=mode, tune_layers=tune_layers, n_ctx=n_ctx, lora_r=lora_r)
