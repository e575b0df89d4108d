"""POUF for image-text models: zero-shot, adaptation and evaluation of an image task."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from unseen.core.errors import DataError, UnseenError
from unseen.core.metrics import classification_report
from unseen.pouf import cache
from unseen.pouf.adapt import AdaptConfig, adapt, calibrate, load_selected, predict_log_probs
from unseen.pouf.dual import ImageRef
from unseen.pouf.dual_models import OFFLINE_IMAGE_MODEL, load_dual_encoder
from unseen.pouf.tasks import DATA_SEED, ImageTask, image_records, image_templates

# ln is the measured best mode on PACS (bench/pouf/bench.py image, docs/results/pouf.md): prompt
# mode barely moves cartoon and can fall below zero-shot on a new domain; the knobs of each mode
# were chosen on PACS photos (the reference domain), never on a target's labels
DEFAULT_MODE = "ln"
IMAGE_DEFAULTS = {  # views: cached augmented views per image where features are cached (prompt), else 1
    "prompt": {"lr": 5e-3, "steps": 300, "batch_size": 64, "views": 2},
    "ln": {"lr": 1e-3, "steps": 60, "batch_size": 16, "views": 1},
    "lora": {"lr": 5e-4, "steps": 60, "batch_size": 16, "views": 1},
    "full": {"lr": 1e-5, "steps": 60, "batch_size": 16, "views": 1},
}


@dataclass
class ImageSetup:
    task: ImageTask
    model_name: str = OFFLINE_IMAGE_MODEL
    mode: str = "prompt"
    views: int = 4  # cached views of each target image: view 0 as is, the others augmented
    templates: str = "single"  # the template set of the adapted prototypes (prompt mode: its first template)
    top_k: int = 20  # ConSE only
    scale: float | None = None
    lora_r: int = 8
    holdout: float | None = None  # None: transductive (the unlabeled target images are the evaluated ones)
    unlabeled_limit: int | None = None
    eval_limit: int | None = None
    use_cache: bool = True

    def to_dict(self) -> dict:
        return {"kind": "image", "task": self.task.to_dict(), "model": self.model_name, "mode": self.mode,
                "views": self.views, "templates": self.templates, "top_k": self.top_k, "scale": self.scale,
                "lora_r": self.lora_r, "holdout": self.holdout, "unlabeled_limit": self.unlabeled_limit,
                "eval_limit": self.eval_limit}

    @classmethod
    def from_dict(cls, data: dict) -> "ImageSetup":
        fields = {k: data[k] for k in ("mode", "views", "templates", "top_k", "scale", "lora_r", "holdout",
                                       "unlabeled_limit", "eval_limit")}
        return cls(task=ImageTask.from_dict(data["task"]), model_name=data["model"], **fields)


def _progress():
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    transient=True)


def build_model(setup: ImageSetup, mode: str | None = None):
    templates = image_templates(setup.templates)
    kwargs = {"mode": mode or setup.mode, "num_views": setup.views, "scale": setup.scale, "lora_r": setup.lora_r,
              "context_template": image_templates("single")[0]}
    if setup.model_name == OFFLINE_IMAGE_MODEL:
        kwargs["top_k"] = setup.top_k
    return load_dual_encoder(setup.model_name, setup.task.prompt_names, templates, **kwargs)


def _indices(setup: ImageSetup, n: int, role: str) -> list[int]:
    indices = list(range(n))
    if setup.holdout is not None:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(DATA_SEED)).tolist()
        cut = int(round(n * setup.holdout))
        indices = sorted(order[cut:] if role == "unlabeled" else order[:cut])
    limit = setup.unlabeled_limit if role == "unlabeled" else setup.eval_limit
    if limit is not None and limit < len(indices):
        # transductive (no holdout): the same shuffle for both roles, so equal limits pick the same images
        salt = int(role == "eval") if setup.holdout is not None else 0
        order = torch.randperm(len(indices), generator=torch.Generator().manual_seed(DATA_SEED + salt)).tolist()
        indices = sorted(indices[i] for i in order[:limit])
    return indices


class _Unlabeled:
    """The target images with their labels dropped: adaptation sees only pixels."""

    def __init__(self, records):
        self.records, self.name = records, getattr(records, "name", "")

    def __len__(self):
        return len(self.records)

    def __getitem__(self, i):
        return {"image": self.records[i]["image"]}


def _records(setup: ImageSetup, data_dir):
    records = image_records(setup.task, data_dir=data_dir)
    if len(records) == 0:
        raise DataError(f"{setup.task.root}: the target set is empty")
    return records


def image_items(model, setup: ImageSetup, role: str, data_dir=None, *, views: int | None = None) -> list[list]:
    """One list per view: cached image features (frozen image tower) or image references."""
    records = _Unlabeled(_records(setup, data_dir))
    indices = _indices(setup, len(records), role)
    if not indices:
        raise DataError(f"{setup.task.root}: the {'unlabeled target' if role == 'unlabeled' else 'evaluation'} set is "
                        "empty")
    out = []
    fingerprint = _fingerprint(setup, data_dir) if model.caches_features and setup.use_cache else None
    with _progress() as bar:
        for view in range(views or setup.views):
            refs = [ImageRef(records, i, view) for i in indices]
            if not model.caches_features:
                out.append(refs)
                continue
            key = cache.cache_key(model=setup.model_name, top_k=setup.top_k, root=setup.task.root, indices=indices,
                                  view=view, n=len(records), fingerprint=fingerprint)
            job = bar.add_task(f"{role} view {view}: encoding {len(refs)} images (frozen image tower)", total=len(refs))
            out.append(cache.cached("image-features", key,
                                    lambda: model.prepare(refs, view, progress=lambda n: bar.advance(job, n)),
                                    enabled=setup.use_cache))
            bar.remove_task(job)
    return out


def _fingerprint(setup: ImageSetup, data_dir) -> str:
    root = Path(setup.task.root)
    if root.is_dir():
        listing = sorted(f"{p.relative_to(root)}:{p.stat().st_size}" for p in root.rglob("*") if p.is_file())
        return cache.cache_key(listing=listing)
    from unseen.core.data import fingerprint

    dataset, _, split = setup.task.root.partition("/")
    return fingerprint(dataset, split, data_dir)


def labels_of(setup: ImageSetup, data_dir=None) -> list[int]:
    """Labels of the evaluated images: read only by the final evaluation."""
    records = _records(setup, data_dir)
    indices = _indices(setup, len(records), "eval")
    return [int(records[i]["label"]) for i in indices]


# the zero-shot readouts, in the order tables show them (all label-free)
READOUTS = {"single": "single template", "ensemble": "template ensemble", "calibrated": "calibrated ensemble"}


def _logits(features: torch.Tensor, prototypes: torch.Tensor, scale: float) -> torch.Tensor:
    return scale * F.normalize(features, dim=-1) @ F.normalize(prototypes, dim=-1).T


def _report(logits: torch.Tensor, labels, k) -> dict:
    return classification_report(logits.argmax(-1).tolist(), labels, k)


def zeroshot(setup: ImageSetup, *, data_dir=None) -> dict:
    """Single template, template ensemble (CLIP's: normalised class embeddings averaged over the
    templates) and that ensemble calibrated on the evaluated images (adapt.calibrate, label-free)."""
    model = build_model(setup, mode="prompt")
    items = image_items(model, setup, "eval", data_dir, views=1)
    features = torch.stack(items[0])
    labels = labels_of(setup, data_dir)
    k = len(setup.task.classes)
    started = time.perf_counter()
    with torch.no_grad():
        single = _logits(features, model.class_embeddings(image_templates("single")), model.scale)
        ensemble = _logits(features, model.class_embeddings(image_templates("ensemble")), model.scale)
    calibrated = calibrate(ensemble.log_softmax(-1))
    return {"single": _report(single, labels, k), "ensemble": _report(ensemble, labels, k),
            "calibrated": _report(calibrated, labels, k), "seconds": time.perf_counter() - started}


def run_adapt(setup: ImageSetup, config: AdaptConfig, out_dir, *, data_dir=None, resume=False):
    out = Path(out_dir)
    model = build_model(setup)
    items = image_items(model, setup, "unlabeled", data_dir)
    out.mkdir(parents=True, exist_ok=True)
    if (out / "metrics.jsonl").exists() and not resume:
        raise UnseenError(f"{out}: already holds a run; pass --resume to continue it or choose another --out")
    (out / "pouf.json").write_text(json.dumps(setup.to_dict() | {"adapt": config.to_dict()}, indent=2) + "\n")
    assets = ["efficientnet-lite0", "minilm-l6-v2"] if setup.model_name == OFFLINE_IMAGE_MODEL else []
    root = setup.task.root
    data = [tuple(root.split("/", 1))] if not Path(root).is_dir() and "/" in root else []
    selection = adapt(model, items, config, out, resume=resume, assets=assets, data=data, one_view_per_batch=False,
                      extra={"task": setup.task.name, "model": setup.model_name}, progress_label=f"POUF {setup.mode}")
    return model, selection


def evaluate_run(run_dir, *, data_dir=None, eval_limit: int | None = -1) -> dict:
    """Zero-shot (single, ensemble) vs the selected weights; labels are read here and only here."""
    run = Path(run_dir)
    if not (run / "pouf.json").exists():
        raise UnseenError(f"{run}: not a POUF run folder (no pouf.json)")
    meta = json.loads((run / "pouf.json").read_text())
    setup = ImageSetup.from_dict(meta)
    if eval_limit != -1:
        setup.eval_limit = eval_limit
    labels = labels_of(setup, data_dir)
    k = len(setup.task.classes)
    zs = zeroshot(setup, data_dir=data_dir)
    model = build_model(setup)
    load_selected(model, run)
    model.eval()
    if model.caches_features:
        items = image_items(model, setup, "eval", data_dir, views=1)
    else:
        refs = image_items(model, setup, "eval", data_dir, views=1)
        with _progress() as bar:
            job = bar.add_task(f"encoding {len(refs[0])} images (adapted image tower)", total=len(refs[0]))
            items = [model.image_features(refs[0], progress=lambda n: bar.advance(job, n))]
    with torch.no_grad():
        log_probs = predict_log_probs(model, items, views=[0])
    adapted = _report(log_probs[0], labels, k)
    selection = json.loads((run / "selection.json").read_text())
    results = {"task": setup.task.name, "model": setup.model_name, "mode": setup.mode, "n_eval": len(labels),
               "zeroshot": {name: zs[name] for name in READOUTS},
               "pouf": {"single": adapted, "calibrated": _report(calibrate(log_probs[0]), labels, k)},
               "selected_step": selection["step"], "fallback": selection["fallback"], "reason": selection["reason"],
               "seed": meta["adapt"]["seed"]}
    (run / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [f"# POUF {setup.mode}: {setup.model_name} on {setup.task.name} ({len(labels)} images)", "",
             "| model | accuracy | balanced accuracy |", "|---|---|---|",
             *[f"| zero-shot, {label} | {zs[name]['accuracy']:.4f} | {zs[name]['balanced_accuracy']:.4f} |"
               for name, label in READOUTS.items()],
             f"| POUF {setup.mode} | {adapted['accuracy']:.4f} | {adapted['balanced_accuracy']:.4f} |",
             f"| POUF {setup.mode}, calibrated | {results['pouf']['calibrated']['accuracy']:.4f} | "
             f"{results['pouf']['calibrated']['balanced_accuracy']:.4f} |", ""]
    (run / "results.md").write_text("\n".join(lines))
    return results
