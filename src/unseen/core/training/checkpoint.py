"""Checkpoints that a SIGKILL cannot corrupt and that resume a run exactly.

A checkpoint is a folder ``checkpoints/step-000120/`` holding
  model.safetensors        the tensors training changes (trainable parameters, buffers)
  optimizer.safetensors    the optimizer's per-parameter state tensors
  rng-rank{R}.safetensors  each process's torch RNG state (dropout, augmentation)
  state.json               step, data position, optimizer param groups, scheduler,
                           python/numpy RNG states
It is written under a temporary name and renamed into place, and ``latest`` (a
one-line file, also replaced atomically) names the newest complete one.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from unseen.core.errors import UnseenError
from unseen.core.io import atomic_write


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Parameters that require grad (tied ones once) plus persistent buffers (e.g. BatchNorm
    statistics). Frozen weights are not saved: they come back when the model is rebuilt."""
    state = {name: p for name, p in model.named_parameters() if p.requires_grad}
    persistent = set(model.state_dict(keep_vars=True))
    state.update({name: b for name, b in model.named_buffers() if name in persistent})
    return {name: tensor.detach().contiguous().cpu() for name, tensor in state.items()}


def load_trainable_state(model: torch.nn.Module, path: Path) -> None:
    copy_trainable_state(model, load_file(path), where=str(path))


def copy_trainable_state(model: torch.nn.Module, tensors: dict[str, torch.Tensor], *, where: str = "state") -> None:
    """Copy tensors named as `trainable_state` names them into the model (in place)."""
    own = dict(model.named_parameters())
    own.update(dict(model.named_buffers()))
    missing = [name for name in tensors if name not in own]
    if missing:
        raise UnseenError(f"{where}: checkpoint tensor {missing[0]!r} does not exist in the model (another model?)")
    with torch.no_grad():
        for name, tensor in tensors.items():
            own[name].copy_(tensor)


def _flatten_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    state_dict = optimizer.state_dict()
    tensors, scalars = {}, {}
    for param_id, param_state in state_dict["state"].items():
        for key, value in param_state.items():
            if torch.is_tensor(value):
                tensors[f"{param_id}.{key}"] = value.detach().contiguous().cpu()
            else:
                scalars[f"{param_id}.{key}"] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for flat, value in list(tensors.items()) + list(meta["scalars"].items()):
        param_id, key = flat.split(".", 1)
        state.setdefault(int(param_id), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(
    run_dir: Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler,
    data_position: dict,
    *,
    rank: int = 0,
    is_main: bool = True,
    keep: int = 2,
    barrier=lambda: None,
) -> Path:
    """Write checkpoint ``step``; every process writes its RNG state, the main one the rest."""
    checkpoints = run_dir / "checkpoints"
    final = checkpoints / f"step-{step:06d}"
    staging = checkpoints / f".staging-step-{step:06d}"
    if is_main:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    barrier()
    save_file({"torch": torch.get_rng_state()}, staging / f"rng-rank{rank}.safetensors")
    if is_main:
        save_file(trainable_state(model), staging / "model.safetensors")
        optimizer_tensors, optimizer_meta = _flatten_optimizer(optimizer)
        save_file(optimizer_tensors, staging / "optimizer.safetensors")
        numpy_state = np.random.get_state()
        state = {
            "step": step,
            "data_position": data_position,
            "optimizer": optimizer_meta,
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "python_rng": _jsonable(random.getstate()),
            "numpy_rng": [numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]],
        }
        (staging / "state.json").write_text(json.dumps(state))
    barrier()
    if is_main:
        shutil.rmtree(final, ignore_errors=True)
        os.replace(staging, final)
        atomic_write(checkpoints / "latest", final.name + "\n")
        for old in sorted(checkpoints.glob("step-*"))[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    barrier()
    return final


def latest_checkpoint(run_dir: Path) -> Path | None:
    pointer = run_dir / "checkpoints" / "latest"
    if not pointer.exists():
        return None
    path = pointer.parent / pointer.read_text().strip()
    if not (path / "state.json").exists():
        raise UnseenError(f"{pointer}: names {path.name}, which is incomplete or missing")
    return path


def load_checkpoint(path: Path, model, optimizer, scheduler, *, rank: int = 0) -> dict:
    """Restore everything ``save_checkpoint`` wrote; returns state.json (step, data position)."""
    state = json.loads((path / "state.json").read_text())
    load_trainable_state(model, path / "model.safetensors")
    optimizer.load_state_dict(_unflatten_optimizer(load_file(path / "optimizer.safetensors"), state["optimizer"]))
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    random.setstate(_tuples(state["python_rng"]))
    numpy_state = state["numpy_rng"]
    np.random.set_state((numpy_state[0], np.array(numpy_state[1], dtype=np.uint32), *numpy_state[2:]))
    rng_file = path / f"rng-rank{rank}.safetensors"
    if rng_file.exists():  # absent when resuming with more processes than were saved
        torch.set_rng_state(load_file(rng_file)["torch"])
    return state


def _jsonable(value):
    return [_jsonable(v) for v in value] if isinstance(value, (tuple, list)) else value


def _tuples(value):
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value
