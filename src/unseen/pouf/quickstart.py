"""The POUF step of `unseen quickstart`: a few POUF steps on unlabeled SST-2 sentences.

The default text model (Gemma 3 270M, unseen.pouf.text.DEFAULT_MODEL) reads two sentiment
prompts; its top layers' norm weights adapt on 120 unlabeled training sentences (their labels
are never read), and 150 validation sentences are scored before and after with the single
prompt, the raw two-prompt ensemble and the calibrated ensemble (each prompt's class prior
divided out). A minute or two on 2 CPU cores (the frozen layers' outputs are
cached under ~/.cache/unseen/pouf, so a second run is faster).
"""

from __future__ import annotations

import copy
import tempfile
import time

from unseen.core.tables import table
from unseen.pouf.adapt import AdaptConfig
from unseen.pouf.tasks import load_text_task
from unseen.pouf.text import DEFAULT_MODEL, READOUTS, TextSetup, evaluate_run, run_adapt

QUICK = {"model": DEFAULT_MODEL, "task": "sst2", "prompts": [0, 2], "unlabeled": 120, "eval": 150,
         "mode": "ln", "tune_layers": 4, "steps": 24, "batch_size": 16, "lr": 3e-3, "select_every": 8}


def run(console, data_dir=None) -> dict:
    """Adapt, evaluate, print a before/after table; returns the numbers for results.json."""
    started = time.perf_counter()
    task = copy.deepcopy(load_text_task(QUICK["task"]))
    task.prompts = [task.prompts[i] for i in QUICK["prompts"]]
    setup = TextSetup(QUICK["model"], task, mode=QUICK["mode"], tune_layers=QUICK["tune_layers"],
                      unlabeled_limit=QUICK["unlabeled"], eval_limit=QUICK["eval"])
    config = AdaptConfig(mode=QUICK["mode"], steps=QUICK["steps"], batch_size=QUICK["batch_size"], lr=QUICK["lr"],
                         scale=10.0, lambda_mi=0.6, select_every=QUICK["select_every"])
    console.print(f"POUF: {QUICK['model']} adapts the norms of its top {QUICK['tune_layers']} layers on "
                  f"{QUICK['unlabeled']} unlabeled {QUICK['task']} sentences ({QUICK['steps']} steps, labels never "
                  "read)")
    with tempfile.TemporaryDirectory(prefix="unseen-pouf-") as folder:
        _, selection = run_adapt(setup, config, folder, data_dir=data_dir, console=console)  # prints the agreement gate
        results = evaluate_run(folder, data_dir=data_dir)
    console.print(results_table(results))
    note = f"kept the {selection.reason}" if selection.fallback else f"kept step {selection.step} (label-free choice)"
    console.print(note)
    return {"config": QUICK, "zeroshot": results["zeroshot"], "pouf": results["pouf"], "selected_step": selection.step,
            "fallback": selection.fallback, "seconds": round(time.perf_counter() - started, 1)}


def results_table(results: dict):
    """Zero-shot and after POUF, per readout (what `evaluate_run` returns)."""
    rows = []
    for label, key in (("zero-shot", "zeroshot"), ("after POUF", "pouf")):
        for readout, prompts in READOUTS.items():
            r = results[key][readout]
            rows.append([label, prompts, r["n"], r["accuracy"], r["balanced_accuracy"],
                         " ".join(f"{x:.2f}" for x in r["predicted_distribution"])])
    return table(f"POUF on {QUICK['task']} validation ({QUICK['eval']} sentences, a fixed random subset)",
                 ["model", "prompts", "n", "accuracy", "balanced acc.", "predicted class shares"], rows)
