"""How sure is each text task's POUF − zero-shot difference? Paired bootstrap over the evaluated examples.

The benchmark's evaluation splits are small (rte: 277 pairs), so a task's difference of a point or
two can be a handful of examples. This reads the run folders of `bench/pouf/bench.py text` again
(nothing is trained), checks that every accuracy matches the stored one, and resamples the
evaluated examples (10,000 times, seed 0; one resample shared by the seeds, whose differences are
averaged) for a 95 % interval of POUF (calibrated ensemble, as the benchmark reads it) minus the
calibrated zero-shot ensemble, and minus the best zero-shot row.

    .venv/bin/python bench/pouf/paired.py                                         # Gemma 3 270M, the default
    .venv/bin/python bench/pouf/paired.py --json docs/results/pouf-text.json      # SmolLM2

Writes docs/results/pouf-text-paired-<model>.md and .json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from protocol import GEMMA_JSON, RESULTS, RUNS, TEXT, load_json, machine, store_json  # noqa: E402

RESAMPLES = 10_000


def correct_vectors(runs: list[Path]) -> dict:
    """Per-example correctness of the zero-shot rows (once: the seeds share them) and of each seed's
    POUF weights (calibrated readout): {"zeroshot/<readout>": [N], "pouf/calibrated": [[N] per run]}."""
    from unseen.core.training.checkpoint import load_trainable_state
    from unseen.pouf.adapt import calibrated_ensemble, ensemble, load_selected, predict_log_probs
    from unseen.pouf.tasks import eval_labels
    from unseen.pouf.text import TextSetup, build_model, text_items

    setup = TextSetup.from_dict(json.loads((runs[0] / "pouf.json").read_text()))
    model = build_model(setup)
    items = text_items(model, setup, "eval", None)
    labels = torch.tensor(eval_labels(setup.task, limit=setup.eval_limit))
    before = predict_log_probs(model, items)
    readouts = {"single": lambda lp: lp[0], "ensemble": ensemble, "calibrated": calibrated_ensemble}
    out = {f"zeroshot/{name}": (fn(before).argmax(-1) == labels).float() for name, fn in readouts.items()}
    out["pouf/calibrated"] = []
    for run in runs:
        # POUF as it runs by default: the selected weights, or the adapted ones where the (opt-in) neighbour
        # check, which the benchmark measures on every run, sent the run back to zero-shot
        if (run / "adapted.safetensors").exists():
            load_trainable_state(model, run / "adapted.safetensors")
        else:
            load_selected(model, run)
        answers = calibrated_ensemble(predict_log_probs(model, items)).argmax(-1)
        out["pouf/calibrated"].append((answers == labels).float())
    return out


def interval(differences: torch.Tensor) -> tuple[float, float, float]:
    """differences [seeds, N] per example; mean over seeds, then a percentile bootstrap over examples."""
    per_example = differences.mean(0)
    generator = torch.Generator().manual_seed(0)
    draws = torch.randint(len(per_example), (RESAMPLES, len(per_example)), generator=generator)
    means = per_example[draws].mean(1)
    return float(per_example.mean()), float(means.quantile(0.025)), float(means.quantile(0.975))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", default=str(GEMMA_JSON))
    parser.add_argument("--tasks", default=None,
                        help="only these tasks (comma-separated); the others keep their stored rows")
    args = parser.parse_args()
    torch.set_num_threads(1)
    bench = load_json(Path(args.json))
    model_name = bench["protocol"]["model"]
    variant = "-" + model_name if model_name != TEXT["model"] else ""
    name = model_name.split("/")[-1]
    previous = load_json(RESULTS / f"pouf-text-paired-{name}.json") if args.tasks else {}
    stored_rows = previous.get("tasks", {})
    rows, started = {}, time.strftime("%Y-%m-%d %H:%M:%S")
    for task, entry in bench["tasks"].items():
        if args.tasks and task not in args.tasks.split(","):
            if task in stored_rows:
                rows[task] = stored_rows[task]
            continue
        seeds = list(entry["seeds"])
        vectors = correct_vectors([RUNS / f"text{variant}" / task / f"seed{seed}" for seed in seeds])
        for i, seed in enumerate(seeds):  # the same examples and predictions as the benchmark's
            stored = entry["seeds"][seed]
            for key, vector in vectors.items():
                kind, readout = key.split("/")
                vector = vector[i] if kind == "pouf" else vector
                reports = stored.get("adapted_before_fallback", stored["pouf"]) if kind == "pouf" else stored[kind]
                expected = reports[readout]["accuracy"]
                if round(float(vector.sum())) != round(expected * len(vector)):  # count of correct answers
                    raise SystemExit(f"{task} seed {seed} {key}: {float(vector.mean()):.4f} here, "
                                     f"{expected:.4f} stored")
        zs = entry["seeds"][next(iter(entry["seeds"]))]["zeroshot"]
        best = max(("single", "ensemble", "calibrated"), key=lambda row: zs[row]["accuracy"])
        pouf = torch.stack(vectors["pouf/calibrated"])
        rows[task] = {"n": pouf.shape[1], "seeds": pouf.shape[0], "best_row": best,
                      "vs_calibrated": interval(pouf - vectors["zeroshot/calibrated"]),
                      "vs_best": interval(pouf - vectors[f"zeroshot/{best}"])}
        print(task, rows[task], flush=True)
    store_json(RESULTS / f"pouf-text-paired-{name}.json",
           {"command": "; ".join(filter(None, [previous.get("command"), " ".join(["python", *sys.argv])])),
            "source": Path(args.json).name, "resamples": RESAMPLES,
            "machine": machine(), "started": started, "tasks": rows})
    lines = [f"# POUF text on {model_name}: paired 95 % intervals of the difference to zero-shot", "",
             f"Regenerated by `bench/pouf/paired.py --json {Path(args.json).relative_to(RESULTS.parents[1])}` from the "
             f"run folders of `bench/pouf/bench.py text` (every accuracy checked against {Path(args.json).name}); "
             f"percentile bootstrap over the evaluated examples, {RESAMPLES} resamples, seed 0, the seeds' differences "
             "averaged per example. Points of accuracy; POUF read at the calibrated ensemble.", "",
             "| task | examples | seeds | POUF − ZS calibrated | 95 % interval | best ZS row | POUF − best ZS "
             "| 95 % interval |", "|---|---|---|---|---|---|---|---|"]
    for task, row in rows.items():
        cal, best = row["vs_calibrated"], row["vs_best"]
        lines.append(f"| {task} | {row['n']} | {row['seeds']} | {100 * cal[0]:+.1f} | {100 * cal[1]:+.1f} … "
                     f"{100 * cal[2]:+.1f} | {row['best_row']} | {100 * best[0]:+.1f} | {100 * best[1]:+.1f} … "
                     f"{100 * best[2]:+.1f} |")
    info = machine()
    lines += ["", f"Machine: {info.get('cpu', info['platform'])}, {info['cpus']} CPUs, torch 1 thread; {started} "
              "(rows of tasks not named by --tasks are kept from the earlier invocation, see the JSON's command)."]
    (RESULTS / f"pouf-text-paired-{name}.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS / f'pouf-text-paired-{name}.md'}")


if __name__ == "__main__":
    main()
