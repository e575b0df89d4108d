"""POUF for prompted language models: zero-shot, adaptation and evaluation of a text task."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from unseen.core.errors import AssetMissingError, UnseenError
from unseen.core.metrics import classification_report
from unseen.core.training import trainable_state
from unseen.core.training.checkpoint import load_trainable_state
from unseen.pouf import cache, neighbours
from unseen.pouf.adapt import (
    AdaptConfig,
    adapt,
    calibrated_ensemble,
    ensemble,
    fall_back,
    keep_zero_shot,
    load_selected,
    predict_log_probs,
    update_selection_file,
)
from unseen.pouf.agreement import measure_agreement
from unseen.pouf.lm import load_prompted_lm, multi_token_words
from unseen.pouf.tasks import TextTask, eval_labels, prompt_texts, unlabeled_inputs

# the measured better base of the two offline causal LMs (docs/results/pouf.md: Gemma 3 270M beat
# SmolLM2-135M-Instruct on POUF's and on the calibrated zero-shot average over nine tasks x 3 seeds)
DEFAULT_MODEL = "gemma3-270m"
# defaults for a causal LM on a CPU: the top 4 layers are tuned on cached inputs (ln at lr 3e-3 was
# chosen with SmolLM2 on a labelled slice of the SST-2 *training* split and kept for Gemma; docs/pouf.md)
DEFAULT_MODE = "ln"
TEXT_DEFAULTS = {
    "prompt": {"lr": 3e-2, "steps": 80, "batch_size": 16},
    "ln": {"lr": 3e-3, "steps": 80, "batch_size": 16},
    "lora": {"lr": 5e-4, "steps": 80, "batch_size": 16},
    "full": {"lr": 2e-5, "steps": 80, "batch_size": 16},
}


@dataclass
class TextSetup:
    model_name: str
    task: TextTask
    mode: str = "prompt"
    tune_layers: int = 4
    n_ctx: int = 4
    lora_r: int = 8
    unlabeled_limit: int | None = 2000
    eval_limit: int | None = None
    use_cache: bool = True

    def to_dict(self) -> dict:
        return {"kind": "text", "model": self.model_name, "task": self.task.to_dict(), "mode": self.mode,
                "tune_layers": self.tune_layers, "n_ctx": self.n_ctx, "lora_r": self.lora_r,
                "unlabeled_limit": self.unlabeled_limit, "eval_limit": self.eval_limit}

    @classmethod
    def from_dict(cls, data: dict) -> "TextSetup":
        return cls(model_name=data["model"], task=TextTask.from_dict(data["task"]), mode=data["mode"],
                   tune_layers=data["tune_layers"], n_ctx=data["n_ctx"], lora_r=data["lora_r"],
                   unlabeled_limit=data["unlabeled_limit"], eval_limit=data["eval_limit"])


def _progress():
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    transient=True)


def build_model(setup: TextSetup, console=None):
    verbalizers = [p.verbalizer for p in setup.task.prompts]
    model = load_prompted_lm(setup.model_name, verbalizers, mode=setup.mode, tune_layers=setup.tune_layers,
                             n_ctx=setup.n_ctx, lora_r=setup.lora_r, templates=[p.template for p in setup.task.prompts])
    split_words = multi_token_words(model.tokenizer, verbalizers, strip=model.kind == "masked_lm")
    if split_words and console is not None:
        console.print(f"note: verbalizer words {', '.join(repr(w) for w in split_words)} are several tokens; "
                      "each is read at its first token")
    return model


def text_items(model, setup: TextSetup, role: str, data_dir=None, console=None) -> list[list]:
    """One list of prepared items per template (cached frozen computation) of the ``role`` records
    ("unlabeled" or "eval"), never reading a label: what `predict_log_probs` and `adapt` take."""
    mask = model.tokenizer.mask_token if model.kind == "masked_lm" else None
    limit = setup.unlabeled_limit if role == "unlabeled" else setup.eval_limit
    views = []
    with _progress() as bar:
        for view, prompt in enumerate(setup.task.prompts):
            texts = prompt_texts(setup.task, prompt, role, limit=limit, data_dir=data_dir, mask=mask)
            if model.kind != "causal_lm":
                views.append(model.prepare(texts, view))
                continue
            key = cache.cache_key(model=setup.model_name, split=model.split, max_length=model.max_length, texts=texts)
            job = bar.add_task(f"{role} prompt {view + 1}: encoding {len(texts)} texts (frozen layers)",
                               total=len(texts))
            views.append(cache.cached("lm-states", key,
                                      lambda: model.prepare(texts, view, progress=lambda n: bar.advance(job, n)),
                                      enabled=setup.use_cache))
            bar.remove_task(job)
    return views


# the readouts of a prompted LM, in the order tables show them; POUF's results are read at
# "calibrated" (every readout is label-free: calibration reads the evaluated texts, never labels)
READOUTS = {"single": "single prompt", "ensemble": "raw ensemble", "calibrated": "calibrated ensemble"}


def report_from_log_probs(log_probs: torch.Tensor, labels: list[int], num_classes: int) -> dict:
    """Single prompt (view 0), raw ensemble (mean of the views' log-probabilities) and
    calibrated ensemble (each view's class prior divided out first, see adapt.calibrate)."""
    predictions = {"single": log_probs[0], "ensemble": ensemble(log_probs),
                   "calibrated": calibrated_ensemble(log_probs)}
    return {name: classification_report(p.argmax(-1).tolist(), labels, num_classes) for name, p in predictions.items()}


def zeroshot(setup: TextSetup, *, data_dir=None, console=None) -> dict:
    model = build_model(setup, console)
    items = text_items(model, setup, "eval", data_dir, console)
    started = time.perf_counter()
    log_probs = predict_log_probs(model, items)
    labels = eval_labels(setup.task, limit=setup.eval_limit, data_dir=data_dir)
    report = report_from_log_probs(log_probs, labels, len(setup.task.classes))
    report["seconds"] = time.perf_counter() - started
    return report


def run_adapt(setup: TextSetup, config: AdaptConfig, out_dir, *, data_dir=None, resume=False, console=None,
              neighbour_check: bool = False, gate: bool = True):
    """Adapt on the unlabeled target texts (no label is read) and write the run folder.

    With ``gate`` (default), the task's prompts must first agree beyond chance on the unlabeled
    texts (unseen.pouf.agreement), else the zero-shot weights are kept without training. With
    ``neighbour_check``, the selected weights must also pass `neighbours.check` against zero-shot,
    or the zero-shot weights are kept (off by default: on the benchmark it also turned down
    adapted weights that were better, docs/pouf.md)."""
    out = Path(out_dir)
    model = build_model(setup, console)
    items = text_items(model, setup, "unlabeled", data_dir, console)
    if not items or not items[0]:
        raise UnseenError(f"task {setup.task.name!r}: the unlabeled target set is empty")
    out.mkdir(parents=True, exist_ok=True)
    meta = setup.to_dict() | {"adapt": config.to_dict()}
    if (out / "pouf.json").exists() and not resume and (out / "metrics.jsonl").exists():
        raise UnseenError(f"{out}: already holds a run; pass --resume to continue it or choose another --out")
    (out / "pouf.json").write_text(json.dumps(meta, indent=2) + "\n")
    assets = [setup.model_name] if "/" not in setup.model_name and not Path(setup.model_name).exists() else []
    data = _data_pairs(setup.task)
    # one prompt cannot disagree with itself; a trained run being resumed was let through (or ran without the gate)
    gated = gate and len(items) >= 2 and not (resume and (out / "metrics.jsonl").exists())
    if gated or neighbour_check:  # the zero-shot answers, for the gate and the check after selection
        zero_shot_log_probs = predict_log_probs(model, items)
        zero_shot_answers = calibrated_ensemble(zero_shot_log_probs).argmax(-1)
    if gated:
        agreement = measure_agreement(zero_shot_log_probs)
        if console is not None:
            console.print(agreement.describe())
        if not agreement.passes:
            reason = (f"the prompts' answers do not agree beyond chance ({agreement.describe()}): the model may not "
                      "read this task, and POUF would only sharpen noise (more unlabeled texts can show a weak "
                      "agreement); pass --no-agreement-gate to adapt anyway")
            return model, keep_zero_shot(model, out, config, reason, agreement_gate=agreement.as_dict())
    if neighbour_check:  # the zero-shot weights, for the check after selection
        zero_shot_state = {name: tensor.clone() for name, tensor in trainable_state(model).items()}
    selection = adapt(model, items, config, out, resume=resume, assets=assets, data=data, one_view_per_batch=True,
                      extra={"task": setup.task.name, "model": setup.model_name}, progress_label=f"POUF {setup.mode}")
    if gated:
        update_selection_file(out, agreement_gate=agreement.as_dict())
    if neighbour_check and not selection.fallback:
        selection = _neighbour_check(model, items, setup, out, selection, zero_shot_answers, zero_shot_state, data_dir,
                                     console)
    return model, selection


def _neighbour_check(model, items, setup, out: Path, selection, zero_shot_answers, zero_shot_state, data_dir, console):
    """Keep the selected weights only if their answers follow the inputs' neighbourhoods better than
    zero-shot's (unseen.pouf.neighbours); else fall back to the zero-shot weights."""
    inputs = unlabeled_inputs(setup.task, limit=setup.unlabeled_limit, data_dir=data_dir)
    adapted_answers = calibrated_ensemble(predict_log_probs(model, items)).argmax(-1)
    try:
        result = neighbours.check(inputs, zero_shot_answers, adapted_answers)
    except AssetMissingError as missing:  # the run stands; only the check is missing, and the run says so
        if console is not None:
            console.print(f"note: neighbour check skipped: {missing}")
        update_selection_file(out, neighbour_check={"skipped": str(missing)})
        return selection
    if console is not None:
        console.print(result.describe())
    if result.keep_adapted:
        update_selection_file(out, neighbour_check=result.as_dict())
        return selection
    selection = fall_back(out, selection, zero_shot_state, "the adapted answers agree less with their inputs' "
                          f"neighbours than zero-shot's ({result.describe()})", neighbour_check=result.as_dict())
    load_selected(model, out)
    return selection


def _data_pairs(task: TextTask) -> list[tuple[str, str]]:
    from unseen.core.data import dataset_names

    if task.dataset not in dataset_names():
        return []
    return [(task.dataset, s) for s in {task.unlabeled, task.eval} if s and not s.endswith(".jsonl")]


def evaluate_run(run_dir, *, data_dir=None, console=None, eval_limit: int | None = -1) -> dict:
    """Zero-shot vs adapted on the evaluation split; labels are read here and only here."""
    run = Path(run_dir)
    meta_file = run / "pouf.json"
    if not meta_file.exists():
        raise UnseenError(f"{run}: not a POUF run folder (no pouf.json)")
    meta = json.loads(meta_file.read_text())
    setup = TextSetup.from_dict(meta)
    if eval_limit != -1:
        setup.eval_limit = eval_limit
    model = build_model(setup, console)
    items = text_items(model, setup, "eval", data_dir, console)
    labels = eval_labels(setup.task, limit=setup.eval_limit, data_dir=data_dir)
    before = predict_log_probs(model, items)
    load_selected(model, run)
    after = predict_log_probs(model, items)
    k = len(setup.task.classes)
    selection = json.loads((run / "selection.json").read_text())
    adapted = None
    if (run / "adapted.safetensors").exists():  # a fallback after selection: what the adapted weights would read
        load_trainable_state(model, run / "adapted.safetensors")
        adapted = report_from_log_probs(predict_log_probs(model, items), labels, k)
    results = {
        "task": setup.task.name, "model": setup.model_name, "mode": setup.mode, "n_eval": len(labels),
        "zeroshot": report_from_log_probs(before, labels, k),
        "pouf": report_from_log_probs(after, labels, k),
        "selected_step": selection["step"], "fallback": selection["fallback"], "reason": selection["reason"],
        "seed": meta["adapt"]["seed"], "neighbour_check": selection.get("neighbour_check"),
        "agreement_gate": selection.get("agreement_gate"),
    }
    if adapted is not None:
        results["adapted_before_fallback"] = adapted
    (run / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (run / "results.md").write_text(results_markdown(results))
    return results


def results_markdown(results: dict) -> str:
    lines = [f"# POUF {results['mode']}: {results['model']} on {results['task']} ({results['n_eval']} evaluation "
             "examples)", "", "| model | prompts | accuracy | balanced accuracy |", "|---|---|---|---|"]
    for label, key in (("zero-shot", "zeroshot"), (f"POUF {results['mode']}", "pouf")):
        for readout, prompts in READOUTS.items():
            r = results[key][readout]
            lines.append(f"| {label} | {prompts} | {r['accuracy']:.4f} | {r['balanced_accuracy']:.4f} |")
    if "adapted_before_fallback" in results:  # the weights the neighbour check turned down
        r = results["adapted_before_fallback"]["calibrated"]
        lines.append(f"| POUF {results['mode']}, not kept | calibrated ensemble | {r['accuracy']:.4f} | "
                     f"{r['balanced_accuracy']:.4f} |")
    if results["fallback"]:
        note = "zero-shot weights kept: " + results["reason"]
    else:
        note = f"selected step {results['selected_step']} ({results['reason']})"
    return "\n".join(lines) + f"\n\n{note}\n"
