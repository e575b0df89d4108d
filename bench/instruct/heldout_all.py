"""The FLAN protocol over every held-out cluster on Gemma 3 270M base, sized for 2 CPU cores.

Per held-out cluster (nli, sentiment, misc, closed_book_qa, commonsense, reading_comprehension,
coreference): a LoRA model instruction-tuned on all other clusters (``unseen instruct heldout``'s
``run_heldout``), evaluated zero-shot on two of the cluster's datasets beside the base model and
SmolLM2-135M-Instruct (an off-the-shelf instruct model a user could pick instead), by rank scoring
and by greedy generation, with the majority-class and uniform-guessing baselines. Two training
seeds per cluster; commonsense's are the shipped adapter
(``src/unseen/instruct/weights/flan-commonsense-heldout``, ``train_commonsense_adapter.py`` seed 0)
and the same recipe with seed 1 (trained here when missing). Every base → tuned difference gets a
95 % paired bootstrap interval over the examples (``unseen.instruct.paired``).

    # two workers, one per core (each finished piece is kept under --out and reused):
    OMP_NUM_THREADS=1 python bench/instruct/heldout_all.py --clusters nli,sentiment,misc,commonsense
    OMP_NUM_THREADS=1 python bench/instruct/heldout_all.py --clusters reading_comprehension,closed_book_qa,coreference
    # then the report over all clusters (computes nothing that is already there):
    OMP_NUM_THREADS=1 python bench/instruct/heldout_all.py

Writes ``docs/results/instruct_heldout_all.{json,md,png}``. With ``--recipe NAME`` (issue 33) every model is trained
with one of recipe_search.py's recipes instead (commonsense too, not the shipped adapter); give it its own
``--out`` and ``--results``, and ``--available`` for a report over the clusters that finished.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from unseen.instruct.evaluate import EvalConfig
from unseen.instruct.heldout import HeldoutConfig, paired_all, run_heldout, without_draws, write_summary
from unseen.instruct.heldout_report import (
    cluster_summary,
    cluster_table,
    flan_table,
    paired_table,
    plot_heldout,
    plot_intervals,
)
from unseen.instruct.mixture import MixtureConfig
from unseen.instruct.paired import interval_text, verdict
from unseen.instruct.recipe import recipe_config
from unseen.instruct.train import InstructConfig

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "src/unseen/instruct/weights/flan-commonsense-heldout"
# two evaluated datasets per held-out cluster (the cluster's others stay out of training all the same)
TASKS = {
    "nli": ["rte", "cb"],
    "sentiment": ["sst2", "cr"],
    "misc": ["trec", "wic"],
    "commonsense": ["copa", "ecqa"],
    "reading_comprehension": ["boolq", "openbookqa"],
    "closed_book_qa": ["arc_easy", "strategyqa"],
    "coreference": ["wsc"],
}


def second_commonsense_seed(out: Path) -> Path:
    """The shipped adapter's recipe with seed 1 (its seed 0 is the shipped adapter), trained when missing."""
    run_dir = out / "commonsense-seed1"
    adapter = run_dir / "adapter"
    if not (adapter / "adapter_model.safetensors").exists():
        recipe = json.loads((SHIPPED / "training.json").read_text())["instruct_config"]
        subprocess.run([sys.executable, str(ROOT / "bench/instruct/train_commonsense_adapter.py"),
                        "--steps", str(recipe["steps"]), "--batch-size", str(recipe["batch_size"]),
                        "--max-length", str(recipe["max_length"]), "--seed", "1", "--run-dir", str(run_dir),
                        "--weights", str(adapter)], check=True)
    return adapter


def heldout_config(clusters: list[str], args, baselines=("smollm2-135m-instruct",)) -> HeldoutConfig:
    """The protocol's settings (``args``: steps, limit, templates, seeds, out; ``recipe``: one of recipe_search.py's
    RECIPES, whose commonsense models are then trained too), shared with heldout_ablations.py."""
    train = InstructConfig(model="gemma3-270m", mixture=MixtureConfig(cap=1000), max_length=128, lora=True,
                           steps=args.steps, batch_size=4, save_every=25)
    recipe = getattr(args, "recipe", None)
    if recipe:
        from recipe_search import RECIPES

        train = recipe_config(train, RECIPES[recipe][0])
        adapters = {}
    else:
        adapters = {"commonsense": [str(SHIPPED)] + ([str(second_commonsense_seed(args.out))]
                                                      if "commonsense" in clusters and 1 in args.seeds else [])}
    return HeldoutConfig(
        models=["gemma3-270m"], clusters=clusters, seeds=list(args.seeds), tasks={c: TASKS[c] for c in clusters},
        train=train, eval=EvalConfig(max_templates=args.templates, limit=args.limit, generate=True, calibrate=True),
        adapters=adapters, baselines=list(baselines),
    )


def run_clusters(clusters: list[str], args) -> dict:
    """run_heldout one cluster at a time, so that the baseline models can differ per cluster: a report
    (--available) shows the baselines that were evaluated and computes none."""
    summary = None
    for cluster in clusters:
        baselines = args.baselines.split(",") if args.baselines else []
        cluster_args = args
        if args.available:
            baselines = [name for name in baselines if (args.out / cluster / "baselines" / f"{name}.json").exists()]
            cluster_args = argparse.Namespace(**vars(args) | {"seeds": _finished_seeds(cluster, args)})
        part = run_heldout(heldout_config([cluster], cluster_args, baselines), args.out)
        if summary is None:
            summary = part
        else:
            summary["rows"] += part["rows"]
            summary["paired"] += part["paired"]
    summary["paired_all"] = paired_all(summary)
    write_summary(summary, args.out)
    return summary


def _finished_seeds(cluster: str, args) -> list[int]:
    """The seeds of --seeds whose evaluation is under --out (--available trains nothing)."""
    folder = args.out / cluster / "gemma3-270m"
    if cluster == "commonsense" and not args.recipe:  # the shipped adapter (seed 0) and its seed-1 twin
        return [seed for seed in args.seeds if (folder / f"adapter{seed}_eval.json").exists()]
    return [seed for seed in args.seeds if (folder / f"seed{seed}" / "eval.json").exists()]


def _baseline_clusters(rows: list[dict]) -> str:
    clusters = dict.fromkeys(row["cluster"] for row in rows if row.get("exact_match", {}).get("baselines"))
    return ", ".join(clusters) or "none"


def targets(summary: dict, clusters: list[dict], model: str = "gemma3-270m") -> dict:
    """The protocol's targets, checked on the measured figures and their paired intervals."""
    paired = {e["cluster"]: e["mean"] for e in summary["paired"] if e["model"] == model and e["mean"]}
    uniform = {e["cluster"]: e["uniform"] for e in clusters if e["model"] == model}
    em = {c: figures["exact_match"] for c, figures in paired.items() if "exact_match" in figures}
    rank = summary["paired_all"].get(model, {}).get("balanced_accuracy")
    option_rates = {row["task"]: row["option_rate"]["tuned_mean"] for row in summary["rows"]
                    if row["model"] == model and "option_rate" in row}
    return {
        "valid_option_rate_at_least_95_every_dataset": all(v >= 0.95 for v in option_rates.values()),
        "tuned_option_rates": option_rates,
        "exact_match_gain_by_cluster": {c: f["difference"] for c, f in em.items()},
        "exact_match_gain_interval_by_cluster": {c: f["interval"] for c, f in em.items()},
        "clusters_exact_match_plus_10": sum(f["difference"] >= 0.10 for f in em.values()),
        "clusters_exact_match_above_base": sum(verdict(f) == "above" for f in em.values()),
        # the tuned figure's own interval lies above uniform guessing
        "clusters_exact_match_above_uniform": sum(bool(uniform.get(c)) and f["tuned_interval"][0] > uniform[c]
                                                  for c, f in em.items()),
        "rank_balanced_accuracy_verdict_by_cluster": {c: verdict(f["balanced_accuracy"]) for c, f in paired.items()
                                                      if "balanced_accuracy" in f},
        "rank_balanced_accuracy_mean_change": rank["difference"] if rank else None,
        "rank_balanced_accuracy_mean_change_interval": rank["interval"] if rank else None,
    }


def _seeds_note(rows: list[dict]) -> str:
    by_seeds: dict[str, list[str]] = {}
    for row in rows:
        seeds = row["seeds"]  # none where a given adapter was evaluated
        clusters = by_seeds.setdefault(", ".join(map(str, seeds)), [])
        if seeds and row["cluster"] not in clusters:
            clusters.append(row["cluster"])
    runs = "; ".join(f"{seeds} ({', '.join(clusters)})" for seeds, clusters in by_seeds.items() if seeds)
    shipped = "; the shipped adapter is one model" if "" in by_seeds else ""
    return f"Training seeds: {runs}{shipped}. 'tuned' is the mean over seeds, ± the spread over seeds."


def _recipe_text(name: str) -> str:
    from recipe_search import RECIPES

    return RECIPES[name][1]


def report(summary: dict, meta: dict, checks: dict) -> str:
    rank_change = checks["rank_balanced_accuracy_mean_change"]
    rank_verdicts = checks["rank_balanced_accuracy_verdict_by_cluster"]
    rank_line = "–." if rank_change is None else (
        f"**{rank_change * 100:+.1f} points {interval_text(checks['rank_balanced_accuracy_mean_change_interval'])}** "
        "(mean of clusters); per cluster: " + ", ".join(f"{c} {v}" for c, v in rank_verdicts.items()) + ".")
    recipe = meta.get("recipe")
    commonsense = ("" if "commonsense" not in meta["clusters_reported"] else
                   "; commonsense: the recipe's models, trained here" if recipe else
                   f"; commonsense: the shipped adapter's recipe ({meta['shipped_adapter']['steps']} steps × batch "
                   f"{meta['shipped_adapter']['batch_size']}, same settings otherwise), seed 0 being the shipped "
                   "adapter itself")
    lines = ["# The FLAN protocol " + ("over every held-out cluster" if len(meta["clusters_reported"]) == len(TASKS)
                                       else "on " + ", ".join(meta["clusters_reported"]) + " held out")
             + ": Gemma 3 270M base vs instruction-tuned (LoRA)" + (f", recipe {recipe}" if recipe else ""), "",
             f"Command: `{meta['command']}` (two workers, then the report); seeds "
             f"{', '.join(map(str, meta['seeds']))}; machine: {meta['machine']}; {meta['date']}.", "",
             f"Training: LoRA r={meta['train']['lora_r']} on every linear layer, {meta['train']['steps']} steps × "
             f"batch {meta['train']['batch_size']} × {meta['train']['max_length']} tokens, lr {meta['train']['lr']}, "
             f"at most {meta['train']['mixture']['cap']} examples per dataset, all other clusters (FLAN's rule: "
             f"`clusters.yaml`)" + (f", recipe `{recipe}` of bench/instruct/recipe_search.py ({_recipe_text(recipe)})"
                                     if recipe else "") + f"{commonsense}. {_seeds_note(summary['rows'])}", "",
             f"Evaluation: zero-shot, the first {meta['eval']['max_templates']} templates of each dataset (file order, "
             f"direct answers), the first n validation examples of each dataset, or the whole split where it is "
             f"smaller (n per dataset below: {meta['limits']}); rank scoring and greedy generation "
             "(stopping at the answer's line; invalid answers count as wrong). Baselines: majority class, uniform "
             "guessing over the options, SmolLM2-135M-Instruct as it ships ("
             + ("on every cluster)." if all(c in meta["baseline_clusters"] for c in meta["clusters_reported"]) else
                f"evaluated on {meta['baseline_clusters']}; left out elsewhere for lack of CPU time)."), "",
             "Intervals: 95 % paired bootstrap over the examples (10,000 resamples, seed 0; one resample shared by "
             "the templates and seeds of a dataset; a cluster is the mean of its datasets, each resampled on its own; "
             "`unseen.instruct.paired`). A difference is called above or below zero only where its interval "
             "excludes zero.", "",
             *([f"Not finished in the session's CPU time, so not reported: "
                f"{', '.join(c for c in TASKS if c not in meta['clusters_reported'])}.", ""]
               if len(meta["clusters_reported"]) < len(TASKS) else []),
             "## Base → tuned, with intervals", "", paired_table(summary), "",
             f"![held-out differences with intervals]({meta['stem']}_intervals.png)", "",
             "## Targets", "",
             f"- valid-option rate of the tuned model ≥ 95 % on every held-out dataset: "
             f"**{'met' if checks['valid_option_rate_at_least_95_every_dataset'] else 'not met'}** "
             f"({', '.join(f'{t} {v * 100:.0f}' for t, v in checks['tuned_option_rates'].items())});",
             "- generation exact match ≥ 10 points above base on ≥ 4 clusters: "
             f"**{checks['clusters_exact_match_plus_10']} of {len(checks['exact_match_gain_by_cluster'])}**; above "
             f"base (interval above zero) on **{checks['clusters_exact_match_above_base']}** ("
             + ", ".join(f"{c} {g * 100:+.1f} {interval_text(checks['exact_match_gain_interval_by_cluster'][c])}"
                         for c, g in checks["exact_match_gain_by_cluster"].items()) + ");",
             "- tuned exact match above uniform guessing (its interval above the uniform level) on ≥ 4 clusters: "
             f"**{checks['clusters_exact_match_above_uniform']}**;",
             "- rank-scoring balanced accuracy on average no more than 1 point below base: " + rank_line, "",
             "## Per held-out cluster (mean over its evaluated datasets, with SmolLM2)", "", cluster_table(summary),
             "", "## Per held-out dataset", "", flan_table(summary), "",
             f"![held-out clusters]({meta['stem']}.png)", ""]
    return "\n".join(lines)


def run_and_describe(clusters: list[str], args) -> tuple[dict | None, dict | None]:
    """The protocol over ``clusters`` and its settings for the report; (None, None) for a worker covering some."""
    # the settings for the report; --available must not train commonsense's second seed here either
    config = heldout_config(clusters, argparse.Namespace(**vars(args) | {"seeds": [0]}) if args.available else args)
    summary = run_clusters(clusters, args)  # a worker's summary.md covers its clusters; the full run rewrites it
    if len(clusters) != len(TASKS) and not args.available:
        return None, None
    shipped = json.loads((SHIPPED / "training.json").read_text())["instruct_config"]
    by_n: dict[int, set] = {}
    for row in summary["rows"]:
        by_n.setdefault(row["n"], set()).add(row["task"])
    command = "OMP_NUM_THREADS=1 python bench/instruct/heldout_all.py"
    if args.recipe:  # a diagnostic run: everything that places and limits it (the main report keeps its command)
        results = args.results.resolve()
        command += (f" --recipe {args.recipe} --seeds {','.join(map(str, args.seeds))} --out {args.out}"
                    f" --results {results.relative_to(ROOT) if results.is_relative_to(ROOT) else results}"
                    + (f" --baselines '{args.baselines}'" if args.baselines != "smollm2-135m-instruct" else "")
                    + (f" --clusters {args.clusters}" if set(args.clusters.split(",")) != set(TASKS) else "")
                    + (" --available" if args.available else ""))
    meta = {"command": command, "seeds": args.seeds, "recipe": args.recipe,
            "train": asdict(config.train), "eval": asdict(config.eval), "tasks": config.tasks,
            "shipped_adapter": shipped,
            "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "limits": "; ".join(f"{n} for {', '.join(sorted(names))}"
                                for n, names in sorted(by_n.items(), reverse=True)),
            "clusters_reported": clusters,
            "baseline_clusters": _baseline_clusters(summary["rows"])}
    return summary, meta


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clusters", default=",".join(TASKS))
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--limit", type=int, default=200, help="Examples per dataset at most")
    parser.add_argument("--templates", type=int, default=2, help="Templates per dataset (the first, direct ones)")
    parser.add_argument("--seeds", type=lambda text: [int(seed) for seed in text.split(",")], default=[0, 1],
                        help="Training seeds, comma-separated")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("runs/heldout-all"))
    parser.add_argument("--baselines", default="smollm2-135m-instruct",
                        help="Comma-separated models evaluated as they ship ('' for none)")
    parser.add_argument("--available", action="store_true",
                        help="Report over the clusters whose evaluation is finished under --out (computes nothing)")
    parser.add_argument("--results", type=Path, default=ROOT / "docs/results/instruct_heldout_all.json")
    parser.add_argument("--recipe", default=None,
                        help="Train with one of bench/instruct/recipe_search.py's recipes (issue 33), e.g. kl_answer")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clusters = args.clusters.split(",")
    if args.available:
        clusters = [c for c in clusters if list((args.out / c).glob("gemma3-270m/*eval.json"))
                    or list((args.out / c).glob("gemma3-270m/seed*/eval.json"))]
    summary, meta = run_and_describe(clusters, args)
    if summary is None:
        return
    meta["stem"] = args.results.stem
    clusters_summary = cluster_summary(summary)
    checks = targets(summary, clusters_summary)
    kept = without_draws(summary)
    args.results.write_text(json.dumps({"meta": meta, "clusters": clusters_summary, "targets": checks,
                                        "paired": kept["paired"], "paired_all": kept["paired_all"],
                                        "rows": summary["rows"]}, indent=2) + "\n")
    plot_heldout(summary, args.results.with_suffix(".png"))
    plot_intervals(summary, args.results.with_name(args.results.stem + "_intervals.png"))
    args.results.with_suffix(".md").write_text(report(summary, meta, checks))
    print(args.results.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
