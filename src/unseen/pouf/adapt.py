"""POUF adaptation on unlabeled target data, with label-free checkpoint selection.

The official code picks its best epoch by accuracy on the labelled target test set.
Here no label is read before the final evaluation:

* a slice of the unlabeled target data is held out from training (``select_fraction``);
* every ``select_every`` steps (and at step 0, the zero-shot weights) the held-out slice
  is scored with the POUF objective itself (``select="objective"``, lower is better) or
  with the agreement of the predictions across views (``select="agreement"``: templates
  for a prompted LM, augmentations for an image model);
* a collapse guard rejects a checkpoint whose predictions on the held-out slice have
  become much less balanced than the zero-shot model's (normalised entropy of the
  predicted class distribution below ``collapse_ratio`` times the zero-shot one), or
  whose loss is not finite;
* the best accepted checkpoint is kept in ``selected.safetensors``; if none beats the
  zero-shot weights on the criterion, the zero-shot weights are kept (``fallback``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import save_file

from unseen.core.errors import DivergenceError, UnseenError
from unseen.core.io import atomic_path, atomic_write
from unseen.core.training import TrainConfig, seed_everything, train, trainable_state
from unseen.core.training.checkpoint import load_trainable_state
from unseen.pouf.loss import pouf_loss


@dataclass
class AdaptConfig:
    mode: str = "prompt"
    steps: int = 200
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    scale: float = 10.0  # logit scale of the transport plan: 10 for LMs, CLIP's 100 for image-text models
    lambda_transport: float = 1.0
    lambda_mi: float = 0.6  # 0.6 for LMs, 0.3 for image-text models (the official weights)
    mi_on_model_logits: bool = True  # the LM side reads its own verbalizer scores in the MI term
    calibrate_mi: bool = False  # the MI term reads the scores with each view's zero-shot class prior divided out
    select: str = "objective"  # objective | agreement
    select_every: int = 25
    select_fraction: float = 0.2
    select_max: int = 256
    collapse_ratio: float = 0.5
    seed: int = 0
    save_every: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Selection:
    step: int = 0
    score: float = math.inf
    fallback: bool = True
    reason: str = "zero-shot weights (no checkpoint evaluated yet)"
    history: list[dict] = field(default_factory=list)


# --- batches ----------------------------------------------------------------------------


class PoufBatches(torch.utils.data.Dataset):
    """Pre-drawn POUF batches: item i is a whole batch (the loss needs the batch together:
    its second softmax runs over the batch). Text views (templates) have their own
    verbalizers, so a batch holds one view; image views (augmentations) share the
    prototypes, so each example draws its own view."""

    def __init__(self, model, items: Sequence[Sequence], indices: Sequence[int], batch_size: int, num_batches: int,
                 seed: int, one_view_per_batch: bool):
        if len(indices) < 2:
            raise UnseenError(f"POUF needs at least 2 unlabeled target examples for training; got {len(indices)}")
        self.model, self.items = model, items
        batch_size = min(batch_size, len(indices))
        generator = torch.Generator().manual_seed(seed)
        views = len(items)
        self.batches = []
        pool: list[int] = []
        for b in range(num_batches):
            if len(pool) < batch_size:
                pool = [indices[i] for i in torch.randperm(len(indices), generator=generator).tolist()]
            chosen, pool = pool[:batch_size], pool[batch_size:]
            if one_view_per_batch:
                view = int(torch.randint(views, (1,), generator=generator))
                self.batches.append((chosen, [view] * len(chosen)))
            else:
                self.batches.append((chosen, torch.randint(views, (len(chosen),), generator=generator).tolist()))

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, i):
        chosen, views = self.batches[i]
        return self.model.collate([self.items[v][j] for j, v in zip(chosen, views)],
                                  views[0] if len(set(views)) == 1 else views)


def _single(batch):
    return batch[0]


def batch_loss(model, batch: dict, config: AdaptConfig, features: torch.Tensor | None = None,
               log_prior: torch.Tensor | None = None):
    """POUF's loss of one batch; ``log_prior`` [V, K] (with ``calibrate_mi``) is subtracted from the
    scores the MI term reads, so that it starts from the calibrated zero-shot classifier."""
    features = model(batch) if features is None else features
    view = batch["view"] if isinstance(batch["view"], int) else 0
    prototypes = model.prototypes(view)
    logits = model.class_logits(features, view) if config.mi_on_model_logits else None
    if log_prior is not None and logits is not None:
        logits = logits - log_prior[view].to(logits)
    return pouf_loss(features, prototypes, scale=config.scale, lambda_transport=config.lambda_transport,
                     lambda_mi=config.lambda_mi, logits=logits)


# --- prediction and label-free statistics -----------------------------------------------


@torch.no_grad()
def predict_log_probs(model, items: Sequence[Sequence], *, views: Sequence[int] | None = None, indices=None,
                      batch_size: int = 32, progress=None) -> torch.Tensor:
    """[V, N, K] log-probabilities over the classes, per view."""
    was_training = model.training
    model.eval()
    views = list(range(len(items))) if views is None else list(views)
    out = []
    for view in views:
        chosen = list(range(len(items[view]))) if indices is None else list(indices)
        rows = []
        # sort by size for less padding, then restore the order
        sizes = [len(items[view][i]) if hasattr(items[view][i], "__len__") else 1 for i in chosen]
        order = sorted(range(len(chosen)), key=sizes.__getitem__)
        result = torch.empty(len(chosen), model.num_classes)
        for start in range(0, len(order), batch_size):
            part = order[start : start + batch_size]
            batch = model.collate([items[view][chosen[p]] for p in part], view)
            logits = model.class_logits(model(batch), view).float()
            if not torch.isfinite(logits).all():  # would read as one class everywhere, silently
                raise UnseenError(f"view {view}: the model's class scores are not finite (inf or nan in its hidden "
                                  "states); try float32 weights or another model")
            result[torch.tensor(part)] = logits.log_softmax(-1).cpu()
            if progress is not None:
                progress(len(part))
        rows.append(result)
        out.append(torch.cat(rows))
    model.train(was_training)
    return torch.stack(out)


def ensemble(log_probs: torch.Tensor) -> torch.Tensor:
    """Average the views' class log-probabilities: [V, N, K] -> [N, K]."""
    return log_probs.mean(0)


def calibrate(log_probs: torch.Tensor) -> torch.Tensor:
    """Batch calibration (Zhou et al., ICLR 2024), label-free: divide each view's class
    probabilities by their mean over the unlabeled examples, then renormalise. [..., N, K].

    Why: a prompt's verbalizer words carry a prior (SmolLM2 says " positive" more often than
    " negative"); averaging raw log-probabilities of such prompts can land below any single
    prompt. Removing each prompt's own prior first makes the ensemble an ensemble of votes."""
    return (log_probs - log_class_prior(log_probs)).log_softmax(-1)


def log_class_prior(log_probs: torch.Tensor) -> torch.Tensor:
    """[..., N, K] -> [..., 1, K]: log of the class probabilities averaged over the examples."""
    return torch.logsumexp(log_probs, dim=-2, keepdim=True) - math.log(log_probs.shape[-2])


def calibrated_ensemble(log_probs: torch.Tensor) -> torch.Tensor:
    """[V, N, K] -> [N, K]: each view calibrated on the examples, then averaged."""
    return ensemble(calibrate(log_probs))


def _normalised_entropy(distribution: torch.Tensor) -> float:
    p = distribution.clamp_min(1e-12)
    return float(-(p * p.log()).sum() / math.log(len(p)))


@torch.no_grad()
def selection_stats(model, items, indices: Sequence[int], config: AdaptConfig, log_prior=None) -> dict:
    """Label-free statistics of the held-out unlabeled slice (one encoder pass per view)."""
    was_training = model.training
    model.eval()
    objective, count = 0.0, 0
    log_probs = torch.empty(len(items), len(indices), model.num_classes)
    for view in range(len(items)):
        for start in range(0, len(indices), config.batch_size):
            chunk = list(indices[start : start + config.batch_size])
            batch = model.collate([items[view][i] for i in chunk], view)
            features = model(batch)
            if len(chunk) >= 2:
                loss, _ = batch_loss(model, batch, config, features=features, log_prior=log_prior)
                objective += loss.item() * len(chunk)
                count += len(chunk)
            scores = model.class_logits(features, view).float()
            log_probs[view, start : start + len(chunk)] = scores.log_softmax(-1).cpu()
    model.train(was_training)
    predictions = log_probs.argmax(-1)  # [V, N]
    agreement = float((predictions == predictions[0]).all(0).float().mean())
    combined = ensemble(log_probs).argmax(-1)
    distribution = torch.bincount(combined, minlength=model.num_classes).float() / len(combined)
    return {
        "objective": objective / max(count, 1),
        "agreement": agreement,
        "balance": _normalised_entropy(distribution),
        "predicted": [round(float(x), 4) for x in distribution],
    }


# --- the run -----------------------------------------------------------------------------


def _write_json(path: Path, data) -> None:
    atomic_write(path, json.dumps(data, indent=2) + "\n")


def _save_state(model, path: Path) -> None:
    with atomic_path(path) as temporary:
        save_file(trainable_state(model), temporary)


def adapt(model, items: Sequence[Sequence], config: AdaptConfig, out_dir: str | Path, *, resume: bool = False,
          assets: Sequence[str] = (), data: Sequence[tuple[str, str]] = (), one_view_per_batch: bool = True,
          extra: dict | None = None, progress_label: str = "POUF") -> Selection:
    """Adapt ``model`` on the unlabeled ``items`` (one list per view) and keep the selected weights.

    Writes into ``out_dir``: the core's run files (config.yaml, manifest.json,
    metrics.jsonl with the selection statistics, checkpoints/), ``selected.safetensors``
    (the trainable tensors of the selected step) and ``selection.json``.
    """
    out = Path(out_dir)
    n = len(items[0])
    if n == 0:
        raise UnseenError("the unlabeled target set is empty")
    if config.select not in ("objective", "agreement"):
        raise UnseenError(f"unknown selection criterion {config.select!r}; choose objective or agreement")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(config.seed + 7)).tolist()
    held = min(config.select_max, int(n * config.select_fraction)) if n >= 10 else 0
    select_indices, train_indices = sorted(order[:held]), order[held:]
    if not select_indices:
        select_indices = train_indices  # tiny target sets: score on the training data itself
    seed_everything(config.seed)
    selection_file, selected_file = out / "selection.json", out / "selected.safetensors"

    def score(stats: dict) -> float:
        return stats["objective"] if config.select == "objective" else -stats["agreement"]

    log_prior = None
    if config.calibrate_mi and config.mi_on_model_logits:  # each view's zero-shot class prior on the training slice
        log_prior = log_class_prior(predict_log_probs(model, items, indices=train_indices)).squeeze(-2)  # [V, K]
    if resume and selection_file.exists() and (out / "metrics.jsonl").exists():  # else nothing was trained yet
        saved = json.loads(selection_file.read_text())
        selection = Selection(**{k: saved[k] for k in ("step", "score", "fallback", "reason", "history")})
        zero_shot = selection.history[0]
    else:
        zero_shot = {"step": 0, **selection_stats(model, items, select_indices, config, log_prior)}
        selection = Selection(step=0, score=score(zero_shot), fallback=True,
                              reason="zero-shot weights: no adapted checkpoint scored better", history=[zero_shot])
        out.mkdir(parents=True, exist_ok=True)
        if (out / "metrics.jsonl").exists():
            raise UnseenError(f"{out}: already holds a run; pass --resume to continue it or choose another --out")
        _save_state(model, selected_file)
        _write_json(selection_file, asdict(selection) | {"criterion": config.select})

    def on_step(step: int, current) -> dict:
        if step % config.select_every and step != config.steps:
            return {}
        stats = {"step": step, **selection_stats(current, items, select_indices, config, log_prior)}
        collapsed = (stats["balance"] < config.collapse_ratio * zero_shot["balance"]
                     or not math.isfinite(stats["objective"]))
        stats["collapsed"] = collapsed
        selection.history.append(stats)
        value = score(stats)
        if not collapsed and value < selection.score:
            selection.step, selection.score, selection.fallback = step, value, False
            selection.reason = f"best {config.select} on the held-out unlabeled slice"
            _save_state(current, selected_file)
        _write_json(selection_file, asdict(selection) | {"criterion": config.select})
        return {f"select_{k}": v for k, v in stats.items() if k not in ("step", "predicted")}

    # a fixed number of pre-drawn batches (not `steps`), so that resuming with more steps reads what an
    # uninterrupted run would have read
    dataset = PoufBatches(model, items, train_indices, config.batch_size, max(config.steps, 2000), config.seed,
                          one_view_per_batch)
    train_config = TrainConfig(
        out_dir=str(out), steps=config.steps, batch_size=1, lr=config.lr, weight_decay=config.weight_decay,
        seed=config.seed, save_every=config.save_every, max_grad_norm=1.0,
        extra={"pouf": config.to_dict(), "pouf_batch_size": config.batch_size, **(extra or {})},
    )
    try:
        train(model, lambda m, b: batch_loss(m, b, config, log_prior=log_prior), dataset, train_config, collate=_single,
              resume=resume, assets=assets, data=data, on_step=on_step, progress_label=progress_label)
    except DivergenceError as err:  # the best checkpoint before it (or zero-shot) stands
        selection.history.append({"step": None, "diverged": str(err)})
        if selection.fallback:
            selection.reason = f"zero-shot weights: training diverged ({err})"
        _write_json(selection_file, asdict(selection) | {"criterion": config.select})
    if selection.fallback:
        if any(h.get("collapsed") for h in selection.history[1:]):
            selection.reason = "zero-shot weights: adaptation collapsed (class balance fell) or did not beat zero-shot"
    _write_json(selection_file, asdict(selection) | {"criterion": config.select})
    load_selected(model, out)
    return selection


def keep_zero_shot(model, out_dir: str | Path, config: AdaptConfig, reason: str, **record) -> Selection:
    """Write a run folder that keeps the zero-shot weights without training (a check before
    adaptation found nothing to adapt to); selection.json says why and keeps what was measured."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _save_state(model, out / "selected.safetensors")
    selection = Selection(step=0, fallback=True, reason=f"zero-shot weights: {reason}")
    written = {k: v for k, v in asdict(selection).items() if k != "score"}  # no criterion was scored
    _write_json(out / "selection.json", written | {"criterion": config.select, "trained": False, **record})
    return selection


def fall_back(out_dir: str | Path, selection: Selection, zero_shot_state: dict, reason: str, **record) -> Selection:
    """Keep the zero-shot weights after all (a check after selection found the adapted ones worse):
    they become selected.safetensors (the adapted ones move to adapted.safetensors), and
    selection.json says why and keeps what the check measured."""
    out = Path(out_dir)
    os.replace(out / "selected.safetensors", out / "adapted.safetensors")  # still there for a user who wants them
    with atomic_path(out / "selected.safetensors") as temporary:
        save_file(zero_shot_state, temporary)
    adapted_step = selection.step
    selection.step, selection.fallback, selection.reason = 0, True, f"zero-shot weights: {reason}"
    update_selection_file(out, **asdict(selection), adapted_step=adapted_step, **record)
    return selection


def update_selection_file(out_dir: str | Path, **fields) -> None:
    """Add or replace fields of a finished run's selection.json (written atomically)."""
    path = Path(out_dir) / "selection.json"
    _write_json(path, json.loads(path.read_text()) | fields)


def load_selected(model, out_dir: str | Path) -> None:
    path = Path(out_dir) / "selected.safetensors"
    if not path.exists():
        raise UnseenError(f"{out_dir}: no selected.safetensors (the run did not finish its first step)")
    load_trainable_state(model, path)

