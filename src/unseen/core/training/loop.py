"""The one training loop every method uses, on Hugging Face Accelerate.

    result = train(model, loss_fn, dataset, TrainConfig(out_dir="runs/x", steps=200))

``loss_fn(model, batch)`` returns the mean loss of a batch (or ``(loss, metrics)``);
``dataset`` is any sequence of examples and ``collate`` turns a list of them into a
batch. The same code runs on one CPU, one GPU or ``accelerate launch`` on many.

Data order is a pure function of (seed, step): step k reads global batch k of a
seeded permutation, split across processes and accumulation micro-steps. Hence a
resumed run reads exactly what the uninterrupted one would have read, and 1 or N
processes see the same global batches.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from safetensors.torch import save_file

from unseen.core.errors import DivergenceError, UnseenError
from unseen.core.run import MetricsLog, write_run_files
from unseen.core.training.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint, trainable_state


@dataclass
class TrainConfig:
    out_dir: str
    steps: int = 100
    batch_size: int = 8  # global: examples per optimizer step, over all processes and micro-steps
    grad_accum: int = 1
    lr: float = 1e-4
    weight_decay: float = 0.0
    warmup_steps: int = 0
    schedule: str = "constant"  # any transformers.get_scheduler name: constant, linear, cosine, ...
    max_grad_norm: float | None = 1.0
    seed: int = 0
    mixed_precision: str = "auto"  # auto: bf16 on a GPU that has it, fp32 elsewhere
    save_every: int = 0  # steps between checkpoints; 0 saves only at the end
    keep_checkpoints: int = 2
    log_every: int = 1
    extra: dict = field(default_factory=dict)  # the method's own settings, recorded in config.yaml


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    final_loss: float
    history: list[dict]


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices): call before building a model."""
    set_seed(seed)


def default_collate(examples: list) -> object:
    return torch.utils.data.default_collate(examples)


def best_device() -> torch.device:
    """Where inference should run: $UNSEEN_DEVICE if set, else a CUDA GPU, Apple's MPS, or the CPU.

    Training needs no such choice: Accelerate places the model (and `accelerate launch`
    spreads it over processes)."""
    if choice := os.environ.get("UNSEEN_DEVICE"):
        return torch.device(choice)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def to_device(batch, device):
    if torch.is_tensor(batch):
        return batch.to(device)
    if isinstance(batch, dict):
        return {key: to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(value, device) for value in batch)
    return batch


def global_batch_indices(num_examples: int, batch_size: int, seed: int, step: int) -> list[int]:
    """Indices of global batch ``step``: epochs are seeded permutations, the last partial batch dropped."""
    batches_per_epoch = num_examples // batch_size
    if batches_per_epoch == 0:
        raise UnseenError(f"the training set has {num_examples} examples, fewer than one batch of {batch_size}")
    epoch, position = divmod(step, batches_per_epoch)
    order = torch.randperm(num_examples, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    return order[position * batch_size : (position + 1) * batch_size].tolist()


def _mixed_precision(choice: str) -> str:
    if choice != "auto":
        return choice
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


def train(
    model: torch.nn.Module,
    loss_fn: Callable,
    dataset: Sequence,
    config: TrainConfig,
    *,
    collate: Callable = default_collate,
    resume: bool = False,
    assets: Sequence[str] = (),
    data: Sequence[tuple[str, str]] = (),
    on_step: Callable[[int, torch.nn.Module], dict | None] | None = None,
    progress_label: str = "training",
) -> TrainResult:
    accelerator = Accelerator(
        gradient_accumulation_steps=config.grad_accum, mixed_precision=_mixed_precision(config.mixed_precision)
    )
    world, rank = accelerator.num_processes, accelerator.process_index
    micro_batch, remainder = divmod(config.batch_size, world * config.grad_accum)
    if remainder or micro_batch == 0:
        raise UnseenError(
            f"batch size {config.batch_size} does not split into {world} processes x {config.grad_accum} accumulation "
            "steps"
        )
    run_dir = Path(config.out_dir)
    checkpoint = latest_checkpoint(run_dir) if resume else None
    if accelerator.is_main_process and checkpoint is None:
        if (run_dir / "metrics.jsonl").exists() and not resume:
            raise UnseenError(f"{run_dir}: already holds a run; pass --resume to continue it or choose another --out")
        write_run_files(run_dir, config, assets=assets, data=data)
    accelerator.wait_for_everyone()

    parameters = [p for p in model.parameters() if p.requires_grad]
    if not parameters:
        raise UnseenError("the model has no trainable parameters")
    optimizer = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)
    from transformers import get_scheduler

    scheduler = get_scheduler(config.schedule, optimizer, num_warmup_steps=config.warmup_steps,
                              num_training_steps=config.steps)
    start_step = 0
    if checkpoint is not None:
        start_step = load_checkpoint(checkpoint, model, optimizer, scheduler, rank=rank)["step"]
    # the scheduler stays ours: Accelerate would step it once per process
    model, optimizer = accelerator.prepare(model, optimizer)

    metrics = MetricsLog(run_dir / "metrics.jsonl", enabled=accelerator.is_main_process)
    metrics.truncate_after(start_step)
    history: list[dict] = []
    started = time.time()
    loss_value = math.nan
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
               TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, disable=not accelerator.is_local_main_process) as progress:
        task = progress.add_task(progress_label, total=config.steps, completed=start_step, info="")
        model.train()
        for step in range(start_step, config.steps):
            indices = global_batch_indices(len(dataset), config.batch_size, config.seed, step)
            step_losses, step_metrics = [], {}
            for micro in range(config.grad_accum):
                offset = (micro * world + rank) * micro_batch
                batch = to_device(collate([dataset[i] for i in indices[offset : offset + micro_batch]]),
                                  accelerator.device)
                with accelerator.accumulate(model), accelerator.autocast():
                    output = loss_fn(model, batch)
                    loss, extra = output if isinstance(output, tuple) else (output, {})
                    if not torch.isfinite(loss):
                        raise DivergenceError(f"step {step + 1}: the loss is {loss.item()} (diverged); lower --lr")
                    accelerator.backward(loss)
                    if accelerator.sync_gradients and config.max_grad_norm:
                        accelerator.clip_grad_norm_(parameters, config.max_grad_norm)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                step_losses.append(loss.detach())
                for key, value in extra.items():
                    step_metrics[key] = step_metrics.get(key, 0.0) + float(value) / config.grad_accum
            scheduler.step()
            loss_value = accelerator.reduce(torch.stack(step_losses).mean(), reduction="mean").item()
            done = step + 1
            row = {"step": done, "loss": loss_value, "lr": scheduler.get_last_lr()[0],
                   "elapsed_s": round(time.time() - started, 3)}
            row.update(step_metrics)
            if on_step is not None:
                row.update(on_step(done, accelerator.unwrap_model(model)) or {})
            history.append(row)
            if done % config.log_every == 0 or done == config.steps:
                metrics.log(row)
            progress.update(task, advance=1, info=f"loss {loss_value:.4f}")
            if (config.save_every and done % config.save_every == 0) or done == config.steps:
                save_checkpoint(
                    run_dir, done, accelerator.unwrap_model(model), optimizer.optimizer, scheduler,
                    {"step": done, "seed": config.seed, "batch_size": config.batch_size},
                    rank=rank, is_main=accelerator.is_main_process, keep=config.keep_checkpoints,
                    barrier=accelerator.wait_for_everyone,
                )
    if accelerator.is_main_process:
        save_file(trainable_state(accelerator.unwrap_model(model)), run_dir / "model.safetensors")
    accelerator.wait_for_everyone()
    model.eval()
    return TrainResult(run_dir=run_dir, steps=config.steps, final_loss=loss_value, history=history)
