"""LoRA through peft: wrap a transformers model so only low-rank adapters train."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch

# the attention and MLP projections of Llama/Gemma/Mistral-style models
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def apply_lora(
    model: torch.nn.Module,
    *,
    r: int = 16,
    alpha: int = 32,
    dropout: float = 0.0,
    target_modules: Sequence[str] | str = DEFAULT_TARGETS,
):
    """A peft model whose base weights are frozen; ``save_pretrained`` writes only the adapter."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=list(target_modules) if not isinstance(target_modules, str) else target_modules,
        bias="none",
    )
    with quiet_peft():
        return get_peft_model(model, config)


@contextmanager
def quiet_peft() -> Iterator[None]:
    """Around peft wrapping a transformers model (``get_peft_model``, ``PeftModel.from_pretrained``).

    peft 0.21 reads ``model.is_gradient_checkpointing`` whenever it wraps a model; transformers
    5.23 deprecated that property for ``is_activation_checkpointing`` and warns (FutureWarning)
    on every read. The warning is about peft's code, not ours or the user's, and says nothing a
    user can act on, so exactly that message is ignored here, where peft wraps, and nowhere else.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        yield


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts; tied weights counted once."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
