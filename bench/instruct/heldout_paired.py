"""Base → tuned on the same held-out examples, with 95 % paired bootstrap intervals over the examples.

Reads two `unseen instruct eval --generate --out X.json` results of one model without and with an adapter (each
template's per-example labels, rank-scoring predictions and generated answers), and for every dataset reports,
averaged over its templates: generation exact match, valid-option rate, balanced accuracy of the generated
answers (invalid = wrong), rank-scoring balanced accuracy; each base → tuned difference with a 95 % interval from
10,000 resamples of the examples (seed 0; one resample shared by the templates, balanced accuracy recomputed on
each). A difference is "above" or "below" only where its interval excludes zero.

    T=copa_what_was,copa_more_likely,copa_pick,copa_consider
    T=$T,ecqa_plain,ecqa_question_answer,ecqa_common_sense,ecqa_fits_best
    unseen instruct eval --model gemma3-270m --tasks copa,ecqa --templates $T --limit 200 --generate \\
        --out runs/h28/base.json
    unseen instruct eval --model gemma3-270m --adapter src/unseen/instruct/weights/flan-commonsense-heldout \\
        --tasks copa,ecqa --templates $T --limit 200 --generate --out runs/h28/tuned.json
    python bench/instruct/heldout_paired.py runs/h28/base.json runs/h28/tuned.json \\
        --stem instruct_heldout_commonsense_paired
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parents[2] / "docs" / "results"
RESAMPLES = 10_000


def balanced(predictions: np.ndarray, labels: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Balanced accuracy for each resample: predictions/labels [N], rows [R, N] example indices -> [R]."""
    p, y = predictions[rows], labels[rows]
    recalls = []
    for label in np.unique(labels):
        members = y == label
        counts = members.sum(1)
        hits = (members & (p == label)).sum(1)
        recalls.append(np.where(counts > 0, hits / np.maximum(counts, 1), np.nan))
    return np.nanmean(np.stack(recalls), axis=0)


METRICS = {
    "exact match": lambda t, rows: (t["generated_predictions"][rows] == t["labels"][rows]).mean(1),
    "valid-option rate": lambda t, rows: (t["generated_predictions"][rows] >= 0).mean(1),
    "generation balanced acc.": lambda t, rows: balanced(t["generated_predictions"], t["labels"], rows),
    "rank-scoring balanced acc.": lambda t, rows: balanced(t["rank_predictions"], t["labels"], rows),
}


def templates_of(path: Path, task: str) -> dict[str, dict]:
    per_template = json.loads(path.read_text())["templates"][task]
    return {name: {key: np.array([-1 if v is None else v for v in r[key]])
                   for key in ("labels", "rank_predictions", "generated_predictions")}
            for name, r in per_template.items() if "generated_predictions" in r and "rank_predictions" in r}


def compare(base: Path, tuned: Path) -> dict:
    rng = np.random.default_rng(0)
    out = {}
    for task in json.loads(base.read_text())["templates"]:
        before, after = templates_of(base, task), templates_of(tuned, task)
        names = sorted(set(before) & set(after))
        n = len(before[names[0]]["labels"])
        assert all((before[k]["labels"] == after[k]["labels"]).all() and len(before[k]["labels"]) == n for k in names)
        rows = rng.integers(0, n, size=(RESAMPLES, n))
        everything = np.arange(n)[None]
        out[task] = {"n": n, "templates": names}
        for metric, fn in METRICS.items():
            point = [np.mean([fn(side[k], everything)[0] for k in names]) for side in (before, after)]
            diffs = np.mean([fn(after[k], rows) - fn(before[k], rows) for k in names], axis=0)
            low, high = np.percentile(diffs, [2.5, 97.5])
            out[task][metric] = {"base": 100 * point[0], "tuned": 100 * point[1],
                                 "difference": 100 * (point[1] - point[0]), "interval": [100 * low, 100 * high]}
    return out


def verdict(row: dict) -> str:
    low, high = row["interval"]
    return "above" if low > 0 else "below" if high < 0 else "not resolved"


def markdown(result: dict, command: str) -> str:
    lines = ["# Held-out FLAN, base → tuned on the same examples, with paired intervals", "",
             f"Command: `{command}`; {RESAMPLES:,} bootstrap resamples of the examples (seed 0); "
             f"{platform.node() or 'vm'} {platform.machine()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
             "", "| dataset | n | metric | base | tuned | tuned − base [95 % interval] | verdict |",
             "|---|---|---|---|---|---|---|"]
    for task, rows in result.items():
        for metric in METRICS:
            r = rows[metric]
            lines.append(f"| {task} | {rows['n']} | {metric} | {r['base']:.1f} | {r['tuned']:.1f} | "
                         f"{r['difference']:+.1f} [{r['interval'][0]:+.1f}, {r['interval'][1]:+.1f}] | {verdict(r)} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", type=Path)
    parser.add_argument("tuned", type=Path)
    parser.add_argument("--stem", default="instruct_heldout_paired")
    args = parser.parse_args()
    result = compare(args.base, args.tuned)
    command = f"python bench/instruct/heldout_paired.py {args.base} {args.tuned} --stem {args.stem}"
    (RESULTS / f"{args.stem}.json").write_text(json.dumps({"command": command, "tasks": result}, indent=1) + "\n")
    (RESULTS / f"{args.stem}.md").write_text(markdown(result, command))
    print(markdown(result, command))


if __name__ == "__main__":
    main()
