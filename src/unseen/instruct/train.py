"""Instruction tuning (FLAN) on the shared training core, and loading the result back."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from unseen.core.assets import load_causal_lm
from unseen.core.errors import UnseenError
from unseen.core.training import TrainConfig, TrainResult, apply_lora, count_parameters, seed_everything, train
from unseen.core.training.lora import quiet_peft
from unseen.instruct.keep import KeepConfig, keep_loss, replay_texts, tokenize_replay
from unseen.instruct.lm import (
    collate_packed,
    collate_seq2seq,
    pack,
    seq2seq_loss,
    target_only_loss,
    tokenize_example,
    tokenize_seq2seq,
)
from unseen.instruct.mixture import MixtureConfig, build_mixture
from unseen.instruct.templates import load_templates


@dataclass
class InstructConfig:
    model: str = "smollm2-135m-instruct"
    mixture: MixtureConfig = field(default_factory=MixtureConfig)
    max_length: int = 256  # tokens per packed row
    lora: bool = True
    lora_r: int = 16
    lora_alpha: int = 32
    steps: int = 200
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 2e-4
    warmup_steps: int = 10
    schedule: str = "cosine"
    save_every: int = 50
    seed: int = 0
    # keeping what the base knew (issue 33; ``keep.py``): all off by default, which is the target-only loss
    prompt_loss_weight: float = 0.0  # prompt tokens as targets too, weighted against answer tokens (1: full sequence)
    kl_weight: float = 0.0  # KL(base || tuned) of the next-token distributions; LoRA only (base = adapters off)
    kl_on: str = "both"  # positions that predict: answer | prompt | both
    kl_max_positions: int = 64  # per batch, drawn at random (0: all); the 262k-row output layer runs only there
    kl_top_k: int = 0  # > 0: the base's top-k tokens only, both renormalized over them
    replay_fraction: float = 0.0  # raw texts of the training datasets (no template), per mixture example
    replay_weight: float = 1.0  # weight of their language-modelling loss

    def keep(self) -> KeepConfig:
        return KeepConfig(prompt_loss_weight=self.prompt_loss_weight, replay_weight=self.replay_weight,
                          kl_weight=self.kl_weight, kl_on=self.kl_on, kl_max_positions=self.kl_max_positions,
                          kl_top_k=self.kl_top_k)

    def keeps(self) -> bool:
        """True when an objective beyond the target-only loss is on."""
        return bool(self.prompt_loss_weight or self.kl_weight or self.replay_fraction)


def adapter_folder(path: str | Path) -> Path:
    """The folder holding a peft adapter: ``path`` itself, a run folder's ``model/``, or the name of an adapter
    shipped in ``unseen/instruct/weights`` (``flan-commonsense-heldout``)."""
    from importlib import resources

    path = Path(path)
    shipped = Path(str(resources.files("unseen.instruct").joinpath("weights", path.name)))
    for folder in (path, path / "model", *([shipped] if not path.exists() and len(path.parts) == 1 else [])):
        if (folder / "adapter_config.json").exists():
            return folder
    raise UnseenError(f"{path}: no LoRA adapter here (adapter_config.json), nor in {path / 'model'}, "
                      "nor an adapter shipped with unseen")


def load_model(name_or_path: str, adapter: str | Path | None = None):
    """(model, tokenizer) for an asset, a model folder, a hub id, or one of our LoRA runs;
    ``adapter``: a LoRA adapter folder (or a run folder) applied to that model and merged."""
    if adapter is not None:
        from peft import PeftModel

        model, tokenizer = load_model(name_or_path)
        with quiet_peft():
            model = PeftModel.from_pretrained(model, adapter_folder(adapter))
        return model.merge_and_unload().eval(), tokenizer
    path = Path(name_or_path)
    if (path / "adapter_config.json").exists():
        from peft import PeftModel

        base_name = json.loads((path / "adapter_config.json").read_text())["base_model_name_or_path"]
        model, tokenizer = load_model(base_name)
        with quiet_peft():
            model = PeftModel.from_pretrained(model, path)
        return model.merge_and_unload().eval(), tokenizer
    if path.is_dir() and (path / "config.json").exists():
        config = json.loads((path / "config.json").read_text())
        if config.get("is_encoder_decoder"):
            from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

            return AutoModelForSeq2SeqLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)
    return load_causal_lm(name_or_path)


def instruction_tune(config: InstructConfig, out_dir: str | Path, *, resume: bool = False,
                     data_dir=None) -> TrainResult:
    seed_everything(config.seed)
    model, tokenizer = load_model(config.model)
    encoder_decoder = bool(getattr(model.config, "is_encoder_decoder", False))
    keep = config.keep()  # checks kl_on
    if config.keeps() and encoder_decoder:
        raise UnseenError("the prompt loss, replay and the KL term are for causal LMs, not encoder-decoder models")
    if config.kl_weight and not config.lora:
        raise UnseenError("the KL term to the base model needs LoRA (the base is the model with its adapters "
                          "disabled); train with --lora or set the KL weight to 0")
    if config.lora:
        targets = ("q", "k", "v", "o") if encoder_decoder else None
        model = apply_lora(model, r=config.lora_r, alpha=config.lora_alpha,
                           **({"target_modules": targets} if targets else {}))
    mixture_config = dataclasses.replace(config.mixture, seed=config.seed)
    mixture = build_mixture(mixture_config, data_dir=data_dir)
    replay = replay_texts(mixture_config, config.replay_fraction, data_dir=data_dir)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    if encoder_decoder:
        rows = [tokenize_seq2seq(tokenizer, e.input, e.target, config.max_length) for e in mixture]
        loss_fn, collate = seq2seq_loss, partial(collate_seq2seq, pad_token_id=pad)
    else:
        tokenized = [tokenize_example(tokenizer, e.input, e.target, config.max_length) for e in mixture]
        tokenized += [tokenize_replay(tokenizer, text, config.max_length) for _, text in replay]
        rows = pack(tokenized, config.max_length, seed=config.seed)
        loss_fn = partial(keep_loss, keep=keep) if config.keeps() else target_only_loss
        collate = partial(collate_packed, pad_token_id=pad)
    if len(rows) < config.batch_size:
        raise UnseenError(f"the mixture fills {len(rows)} rows, fewer than one batch of {config.batch_size}")
    trainable, total = count_parameters(model)
    extra = {
        "instruct": dataclasses.asdict(config),
        "mixture_examples": len(mixture),
        "replay_texts": len(replay),
        "packed_rows": len(rows),
        "examples_per_dataset": dict(sorted(Counter(e.dataset for e in mixture).items())),
        "trainable_parameters": trainable,
        "total_parameters": total,
    }
    train_config = TrainConfig(
        out_dir=str(out_dir), steps=config.steps, batch_size=config.batch_size, grad_accum=config.grad_accum,
        lr=config.lr, warmup_steps=config.warmup_steps, schedule=config.schedule, save_every=config.save_every,
        seed=config.seed, extra=extra,
    )
    tasks = load_templates()
    datasets_used = sorted({(e.dataset, tasks[e.dataset].splits["train"]) for e in mixture}
                           | {(name, tasks[name].splits["train"]) for name, _ in replay})
    assets = [config.model] if "/" not in config.model and not Path(config.model).exists() else []
    result = train(model, loss_fn, rows, train_config, collate=collate, resume=resume, assets=assets,
                   data=datasets_used, progress_label="instruction tuning")
    _save_model(model, tokenizer, config, Path(out_dir) / "model")
    return result


def _save_model(model, tokenizer, config: InstructConfig, folder: Path) -> None:
    if config.lora:
        # point the adapter at our asset name, so `load_model(folder)` finds its base anywhere
        for adapter in model.peft_config.values():
            adapter.base_model_name_or_path = config.model
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


