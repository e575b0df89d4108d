"""The POUF benchmark's protocol and result files, shared by bench.py (which runs it), report.py
(which tables it) and the scripts that read its runs again (paired.py, fallback_signals.py)."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

from unseen.core.io import atomic_write

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "docs" / "results"
RUNS = REPO / "runs" / "pouf-bench"
TEXT_JSON, IMAGE_JSON, SPEED_JSON = RESULTS / "pouf-text.json", RESULTS / "pouf-image.json", RESULTS / "pouf-speed.json"
# `text --prompts bench/pouf/further_tasks.yaml --json` this file
FURTHER_JSON = RESULTS / "pouf-text-further.json"
# `text --model gemma3-270m --prompts bench/pouf/further_tasks.yaml --json` this file
FURTHER_GEMMA_JSON = RESULTS / "pouf-text-further-gemma3.json"
# `text --model gemma3-270m --json` this file (shards merged by merge-text --into)
GEMMA_JSON = RESULTS / "pouf-text-gemma3.json"

TEXT_TASKS = ["sst2", "mr", "cr", "mpqa", "subj", "trec", "ag_news", "rte", "mrpc"]
# the benchmark's protocol (fixed before looking at any evaluation split; see docs/pouf.md)
TEXT = {"model": "smollm2-135m-instruct", "mode": "ln", "tune_layers": 4, "unlabeled": 400, "eval": 500,
        "steps": 80, "batch_size": 16, "lr": 3e-3, "select_every": 20}
# transductive, as the official code: each target's evaluated images (a fixed random subset of 1000)
# are also its unlabeled data
IMAGE = {"model": "conse", "targets": ["cartoon", "sketch"], "reference": "photo", "top_k": 20, "eval": 1000,
         "modes": {
             "prompt": {"steps": 300, "lr": 5e-3, "batch_size": 64, "select_every": 50, "views": 2, "unlabeled": 1000},
             "ln": {"steps": 60, "lr": 1e-3, "batch_size": 16, "select_every": 20, "views": 1, "unlabeled": 1000},
             "full": {"steps": 60, "lr": 1e-5, "batch_size": 16, "select_every": 20, "views": 1, "unlabeled": 1000},
         }}
IMAGE_MODES = list(IMAGE["modes"])
DEFAULT_IMAGE_MODE = "ln"  # what `unseen pouf adapt --images` runs without --mode (unseen.pouf.image.DEFAULT_MODE)
IMAGE_MODE_TEXT = {"prompt": "CoOp context vectors in place of \"a photo of a\", both towers frozen, "
                             "image features cached",
                   "ln": "the affine weights of every norm layer (EfficientNet's BatchNorm, MiniLM's LayerNorm)",
                   "full": "every EfficientNet and MiniLM weight"}
SEEDS = [0, 1, 2]


def machine() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        info["memory_gib"] = round(int(Path("/proc/meminfo").read_text().split()[1]) / 2**20, 1)
    except OSError:
        pass
    import torch

    info["torch"] = torch.__version__
    info["torch_threads"] = torch.get_num_threads()
    from unseen.core.run import git_commit

    info["git_commit"] = git_commit()
    return info


def load_json(path: Path) -> dict:
    """A result file, or {} where there is none yet."""
    return json.loads(path.read_text()) if path.exists() else {}


def store_json(path: Path, data: dict) -> None:
    """A result file, written atomically (each finished run is stored at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(data, indent=1) + "\n")
