"""FLAN's two ablations on one held-out cluster (NLI), with the generation metrics beside rank scoring.

- **no templates**: the same mixture, but each example as its raw fields ('name: value' lines) with
  the label word as target (FLAN Figure 8's "no template" setup): does the gain come from the
  instructions or from multi-task fine-tuning as such?
- **number of clusters**: trained on one cluster only (sentiment) instead of all but NLI (FLAN
  Figure 6 at its smallest point).

Same model, training and evaluation settings as ``heldout_all.py``, whose results file gives the
"all other clusters, templates" row and the base model's figures (checked to share these settings):
only the two ablated models are trained and evaluated here.

    # two workers, one per core, then the report (computes nothing that is already there):
    OMP_NUM_THREADS=1 python bench/instruct/heldout_ablations.py --only no-templates
    OMP_NUM_THREADS=1 python bench/instruct/heldout_ablations.py --only one-cluster
    OMP_NUM_THREADS=1 python bench/instruct/heldout_ablations.py

Writes ``docs/results/instruct_heldout_ablations.{json,md,png}``. The shipped report was measured at 40 examples ×
4 templates against the main run of that time; it is regenerated with
``git show 46731a9:docs/results/instruct_heldout_all.json > /tmp/main40.json`` and
``--limit 40 --templates 4 --main-results /tmp/main40.json``.
"""

import argparse
import dataclasses
import json
import os
import platform
import time
from pathlib import Path

import torch
from heldout_all import ROOT, heldout_config

from unseen.instruct.heldout import template_means, tune_and_evaluate
from unseen.instruct.heldout_report import METRICS

# setting -> (run folder, change to the training mixture)
ABLATIONS = {
    "no templates": ("no-templates", {"raw_inputs": True}),
    "one cluster (sentiment)": ("one-cluster", {"datasets": ["sst2", "mr", "cr", "mpqa"]}),
}


def main_rows(results_path: Path, config, cluster: str) -> list[dict]:
    """The main run's rows for ``cluster`` from heldout_all.py's results, which must share ``config``'s settings."""
    results = json.loads(results_path.read_text())
    meta = results["meta"]
    for section, ours in (("train", config.train), ("eval", config.eval)):
        theirs = {k: v for k, v in meta[section].items() if k not in ("tasks", "mixture")}
        mine = {k: v for k, v in dataclasses.asdict(ours).items() if k in theirs}
        if theirs != mine:
            changed = sorted(k for k in theirs if theirs[k] != mine.get(k))
            raise SystemExit(f"{results_path}: its {section} settings differ from this run's in {', '.join(changed)}")
    rows = [row for row in results["rows"] if row["cluster"] == cluster]
    # the run of this seed (the results may hold more seeds than the ablations, which run one)
    picked = [row.get("seeds", [meta.get("seed")]).index(config.seeds[0]) for row in rows]
    return [{"setting": "all other clusters, templates", "task": row["task"], "n": row["n"],
             **{key: {"base": row[key]["base_mean"], "tuned": row[key]["tuned_seeds"][k]} for key, _ in METRICS
                if key in row}}
            for row, k in zip(rows, picked)]


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(row["task"] for row in rows))
    settings = ["base"] + list(dict.fromkeys(row["setting"] for row in rows))
    figure, axes = plt.subplots(1, len(METRICS), figsize=(4 * len(METRICS), 3.4))
    width = 0.8 / len(settings)
    for axis, (key, label) in zip(axes, METRICS):
        for s, setting in enumerate(settings):
            values = []
            for task in tasks:
                row = next(r for r in rows if r["task"] == task)
                if setting == "base":
                    values.append(row[key]["base"] * 100)
                else:
                    tuned = next(r for r in rows if r["task"] == task and r["setting"] == setting)
                    values.append(tuned[key]["tuned"] * 100)
            axis.bar([t + (s - (len(settings) - 1) / 2) * width for t in range(len(tasks))], values, width=width,
                     label=setting)
        axis.set_xticks(range(len(tasks)), tasks)
        axis.set_title(label, fontsize=9)
        axis.set_ylim(0, 100)
    axes[0].set_ylabel("%")
    axes[0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cluster", default="nli")
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--templates", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", default=None,
                        help="Comma-separated run folders (no-templates, one-cluster): compute only these, without the "
                             "report (for one worker per core)")
    parser.add_argument("--main-results", type=Path, default=ROOT / "docs/results/instruct_heldout_all.json",
                        help="heldout_all.py's results (base model and the all-clusters model)")
    parser.add_argument("--out", type=Path, default=Path("runs/heldout-ablations"))
    parser.add_argument("--results", type=Path, default=ROOT / "docs/results/instruct_heldout_ablations.json")
    args = parser.parse_args()
    args.seeds = [args.seed]
    torch.set_num_threads(args.threads)
    config = heldout_config([args.cluster], args)
    rows = main_rows(args.main_results, config, args.cluster)
    if not rows:
        raise SystemExit(f"{args.main_results}: no rows for held-out {args.cluster}")
    eval_config = dataclasses.replace(config.eval, tasks=[row["task"] for row in rows])
    for name, (folder, change) in ABLATIONS.items():
        if args.only and folder not in args.only.split(","):
            continue
        ablated = dataclasses.replace(config, train=dataclasses.replace(
            config.train, mixture=dataclasses.replace(config.train.mixture, **change)))
        results = tune_and_evaluate(ablated, args.cluster, "gemma3-270m", args.seed, eval_config, args.out / folder)
        for main_row in rows[:len(eval_config.tasks)]:
            means = template_means(results, main_row["task"])
            rows.append({"setting": name, "task": main_row["task"], "n": main_row["n"],
                         **{key: {"base": main_row[key]["base"], "tuned": means[key]} for key, _ in METRICS
                            if key in main_row and key in means}})
    if args.only:
        return
    lines = [f"# FLAN ablations on held-out {args.cluster}: templates and number of training clusters", "",
             f"Command: `OMP_NUM_THREADS=1 python bench/instruct/heldout_ablations.py`; seed {args.seed}; Gemma 3 270M "
             f"base, LoRA, {args.steps} steps × batch 4 × 128 tokens each; evaluation as in instruct_heldout_all.md "
             f"(first {args.templates} templates, first {args.limit} examples, zero-shot); machine: {platform.node()} "
             f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}; "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.", "",
             "| task | trained on | " + " | ".join(label for _, label in METRICS) + " |",
             "|---|---|" + "---|" * len(METRICS)]
    for task in dict.fromkeys(row["task"] for row in rows):
        first = next(row for row in rows if row["task"] == task)
        cells = [f"{first[key]['base'] * 100:.1f}" if key in first else "–" for key, _ in METRICS]
        lines.append(f"| {task} | (base model) | " + " | ".join(cells) + " |")
        for row in (r for r in rows if r["task"] == task):
            cells = [f"{row[key]['tuned'] * 100:.1f}" if key in row else "–" for key, _ in METRICS]
            lines.append(f"| {task} | {row['setting']} | " + " | ".join(cells) + " |")
    lines += ["", "![ablations](instruct_heldout_ablations.png)", ""]
    args.results.write_text(json.dumps({"rows": rows, "ablations": {k: v[1] for k, v in ABLATIONS.items()},
                                        "cluster": args.cluster}, indent=2) + "\n")
    plot(rows, args.results.with_suffix(".png"))
    args.results.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
