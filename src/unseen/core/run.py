"""A run directory: ``config.yaml``, ``manifest.json`` and ``metrics.jsonl``.

The manifest records what a result depends on (package and asset versions, data
fingerprints, the git commit) so a number can be traced and regenerated.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import yaml

from unseen.core.io import atomic_write

PACKAGES = ["unseen", "torch", "transformers", "accelerate", "peft", "safetensors", "datasets", "numpy", "pillow"]


def git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=here, capture_output=True, text=True, timeout=5)
        return commit + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions(names=PACKAGES) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def write_run_files(run_dir: Path, config, *, assets=(), data=()) -> None:
    """Write config.yaml and manifest.json (atomically) for a run.

    ``assets``: asset names used; ``data``: (dataset, split) pairs used.
    """
    from unseen.core.assets import asset_version
    from unseen.core.data import fingerprint

    run_dir.mkdir(parents=True, exist_ok=True)
    config_dict = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    atomic_write(run_dir / "config.yaml", yaml.safe_dump(_plain(config_dict), sort_keys=False))
    manifest = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(sys.argv),
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "packages": package_versions(),
        "assets": {name: asset_version(name) for name in assets},
        "data": {f"{name}/{split}": fingerprint(name, split) for name, split in data},
    }
    atomic_write(run_dir / "manifest.json", json.dumps(manifest, indent=2) + "\n")


class MetricsLog:
    """Append-only JSONL of training metrics; on resume, rows past the checkpoint are dropped
    (they belong to the interrupted run and will be produced again)."""

    def __init__(self, path: Path, enabled: bool = True):
        self.path = path
        self.enabled = enabled

    def truncate_after(self, step: int) -> None:
        if not self.enabled or not self.path.exists():
            return
        kept = [line for line in self.path.read_text().splitlines() if line and json.loads(line).get("step", 0) <= step]
        atomic_write(self.path, "".join(line + "\n" for line in kept))

    def log(self, row: dict) -> None:
        if self.enabled:
            with self.path.open("a") as handle:
                handle.write(json.dumps(row) + "\n")
                handle.flush()


def read_metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line] if path.exists() else []


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
