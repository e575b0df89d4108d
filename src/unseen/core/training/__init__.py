"""The shared training core: one Accelerate loop, atomic safetensors checkpoints, LoRA."""

from unseen.core.training.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint, trainable_state
from unseen.core.training.loop import (
    TrainConfig,
    TrainResult,
    best_device,
    global_batch_indices,
    seed_everything,
    to_device,
    train,
)
from unseen.core.training.lora import apply_lora, count_parameters

__all__ = [
    "TrainConfig",
    "TrainResult",
    "apply_lora",
    "best_device",
    "count_parameters",
    "global_batch_indices",
    "latest_checkpoint",
    "load_checkpoint",
    "save_checkpoint",
    "seed_everything",
    "to_device",
    "train",
    "trainable_state",
]
