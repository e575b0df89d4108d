"""On-disk cache of frozen computation (hidden states entering the tuned layers, image
features of augmented views), so that repeated runs on a CPU skip the frozen encoder.

A cache file is keyed by everything its content depends on; it is a safetensors file
holding the items concatenated along their first axis, with their lengths.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from unseen.core.assets import cache_dir
from unseen.core.io import atomic_path


def cache_key(**parts) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def cache_path(kind: str, key: str) -> Path:
    folder = cache_dir() / "pouf" / kind
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{key}.safetensors"


def save_items(path: Path, items: list[torch.Tensor]) -> None:
    lengths = torch.tensor([len(x) for x in items], dtype=torch.long)
    data = torch.cat([x.reshape(len(x), -1) for x in items]) if items else torch.zeros(0)
    shape = torch.tensor(list(items[0].shape[1:]))
    with atomic_path(path) as temporary:  # a killed run never leaves half a cache file under the real name
        save_file({"data": data.contiguous(), "lengths": lengths, "shape": shape}, temporary)


def load_items(path: Path) -> list[torch.Tensor] | None:
    if not path.exists():
        return None
    try:
        tensors = load_file(path)
    except Exception:  # noqa: BLE001 - a damaged cache file is recomputed, never trusted
        path.unlink(missing_ok=True)
        return None
    if tensors["data"].is_floating_point() and not torch.isfinite(tensors["data"]).all():
        path.unlink(missing_ok=True)  # written before states out of float16's range were kept in float32
        return None
    shape = tensors["shape"].tolist()
    chunks = torch.split(tensors["data"], tensors["lengths"].tolist())
    return [chunk.reshape(len(chunk), *shape) for chunk in chunks]


def cached(kind: str, key: str, compute, *, enabled: bool = True) -> list[torch.Tensor]:
    """``compute()`` once per key; later calls read the file."""
    if not enabled:
        return compute()
    path = cache_path(kind, key)
    items = load_items(path)
    if items is None:
        items = compute()
        save_items(path, items)
    return items
