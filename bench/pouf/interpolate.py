"""Weight interpolation between the zero-shot and the adapted POUF weights (WiSE-FT, Wortsman
et al., CVPR 2022), measured on finished text benchmark runs (runs/pouf-bench/text/TASK/seedN).

    .venv/bin/python bench/pouf/interpolate.py [--tasks sst2,subj] [--json docs/results/pouf-interpolate.json]

For each run: the tuned tensors become ``zero_shot + alpha * (adapted - zero_shot)``; the
evaluation split is read at the calibrated ensemble for alpha in ALPHAS (alpha 1 is plain
POUF, alpha 0 zero-shot). The adapted weights are those POUF selected before any neighbour
check (adapted.safetensors where the check fell back, else selected.safetensors).

The rule for a default, written down before this script first ran: alpha = 0.5 (WiSE-FT's own
default; no other value is a candidate, the others are reported for information) becomes the
text default only if, over the 9 tasks x 3 seeds, it raises both the average difference to the
best zero-shot row and the worst task's difference, compared with plain POUF (alpha 1).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "src"))

from unseen.core.training import trainable_state  # noqa: E402
from unseen.core.training.checkpoint import load_trainable_state  # noqa: E402
from unseen.pouf import text  # noqa: E402
from unseen.pouf.adapt import calibrated_ensemble, predict_log_probs  # noqa: E402
from unseen.pouf.tasks import eval_labels  # noqa: E402

RUNS = REPO / "runs" / "pouf-bench" / "text"
ALPHAS = [0.0, 0.25, 0.5, 0.75, 1.0]
CANDIDATE = 0.5


def accuracy(log_probs: torch.Tensor, labels: list[int]) -> float:
    predictions = calibrated_ensemble(log_probs).argmax(-1)
    return float((predictions == torch.tensor(labels)).float().mean())


def measure_run(run: Path) -> dict:
    setup = text.TextSetup.from_dict(json.loads((run / "pouf.json").read_text()))
    model = text.build_model(setup)
    items = text._items(model, setup, "eval", None)
    labels = eval_labels(setup.task, limit=setup.eval_limit)
    zero_shot = {k: v.clone() for k, v in trainable_state(model).items()}
    adapted_file = run / "adapted.safetensors" if (run / "adapted.safetensors").exists() else run / "selected.safetensors"
    adapted = load_file(str(adapted_file))
    result = {}
    for alpha in ALPHAS:
        mixed = {k: zero_shot[k] + alpha * (adapted[k] - zero_shot[k]) for k in zero_shot}
        path = run / ".interpolated.safetensors"
        save_file(mixed, str(path))
        load_trainable_state(model, path)
        path.unlink()
        result[str(alpha)] = accuracy(predict_log_probs(model, items), labels)
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=None)
    parser.add_argument("--json", default=str(REPO / "runs" / "pouf-interpolate.json"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    bench = json.loads((REPO / "docs" / "results" / "pouf-text.json").read_text())
    best_zero_shot = {task: max(next(iter(entry["seeds"].values()))["zeroshot"][k]["accuracy"]
                                for k in ("single", "ensemble", "calibrated"))
                      for task, entry in bench["tasks"].items()}
    tasks = args.tasks.split(",") if args.tasks else sorted(p.name for p in RUNS.iterdir())
    out_path = Path(args.json)
    done = json.loads(out_path.read_text()) if out_path.exists() else {}
    for task in tasks:
        for run in sorted((RUNS / task).glob("seed*")):
            key = f"{task}/{run.name}"
            if key not in done:
                done[key] = measure_run(run)
                out_path.write_text(json.dumps(done, indent=2) + "\n")
            print(key, " ".join(f"{a}:{done[key][str(a)] * 100:.1f}" for a in ALPHAS), flush=True)
    print("\n| task | best ZS | " + " | ".join(f"alpha {a}" for a in ALPHAS) + " |")
    print("|---|---|" + "---|" * len(ALPHAS))
    deltas = {a: [] for a in ALPHAS}
    for task in sorted({k.split("/")[0] for k in done}):
        if task not in best_zero_shot:
            continue
        means = {a: statistics.mean(v[str(a)] for k, v in done.items() if k.startswith(task + "/")) for a in ALPHAS}
        for a in ALPHAS:
            deltas[a].append(100 * (means[a] - best_zero_shot[task]))
        print(f"| {task} | {100 * best_zero_shot[task]:.1f} | " + " | ".join(f"{100 * means[a]:.1f}" for a in ALPHAS) + " |")
    for a in ALPHAS:
        if deltas[a]:
            print(f"alpha {a}: mean delta vs best ZS {statistics.mean(deltas[a]):+.2f}, worst {min(deltas[a]):+.2f}")


if __name__ == "__main__":
    main()
