"""Issue 33: a held-in proxy for held-out transfer, to choose a training recipe without any held-out cluster.

Held-in validation (recipe_search.py) cannot separate the recipes: tuning does not lower rank scoring on datasets
it trained on, while on held-out clusters it does (TREC, ARC-Easy). This proxy asks the held-out question inside the
commonsense-held-out setting, nested: for each inner cluster X that the commonsense-held-out model trains on, a model
is trained with the recipe on all clusters but commonsense and X (the protocol's settings: 80 steps × 4 × 128
tokens, LoRA r = 16 unless the recipe changes it) and scored zero-shot on one dataset of X, reading the first
--limit examples of its TRAIN split only. The dataset is fixed by rule before any run
(``unseen.instruct.recipe.nested_proxy_tasks``: the first of X's datasets that the 7-cluster protocol does not
evaluate), commonsense is never read, and no split the protocol evaluates is read
(tests/test_instruct_recipe.py). Each recipe is compared with the base and with answer-only (the default), mean
over the inner clusters, with 95 % paired bootstrap intervals over the examples.

    # two workers, one per core (every finished piece is kept under --out and reused):
    OMP_NUM_THREADS=1 python bench/instruct/nested_proxy.py --clusters nli,misc --no-report
    OMP_NUM_THREADS=1 python bench/instruct/nested_proxy.py --clusters sentiment,closed_book_qa --no-report
    # then the report, from what is there:
    OMP_NUM_THREADS=1 python bench/instruct/nested_proxy.py --report

Writes ``docs/results/instruct_nested_proxy.{json,md}``.
"""

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import torch

from unseen.instruct.evaluate import EvalConfig
from unseen.instruct.heldout import cached_evaluation, template_means
from unseen.instruct.mixture import MixtureConfig
from unseen.instruct.paired import compare_all, compare_cluster
from unseen.instruct.recipe import check_nested, nested_proxy_tasks, recipe_config
from unseen.instruct.train import InstructConfig, instruction_tune

sys.path.insert(0, str(Path(__file__).parent))
from heldout_all import TASKS  # noqa: E402  (the protocol's evaluated datasets, which the proxy avoids)
from recipe_search import METRICS, RECIPES, choose, recipe_cells, summary_figures, training_facts, verdict, write_report  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
OUTER = ["commonsense"]


def proxy_tasks() -> dict[str, str]:
    return nested_proxy_tasks(OUTER, TASKS)


def train_config(inner: str, recipe: str, args) -> InstructConfig:
    """heldout_all.py's training settings with ``inner`` held out beside commonsense, and the recipe's changes."""
    base = InstructConfig(model="gemma3-270m", mixture=MixtureConfig(cap=1000, heldout=OUTER + [inner]),
                          max_length=128, lora=True, steps=args.steps, batch_size=4, save_every=25, seed=args.seed)
    return recipe_config(base, RECIPES[recipe][0])


def eval_config(dataset: str, args) -> EvalConfig:
    return EvalConfig(tasks=[dataset], max_templates=args.templates, limit=args.limit, generate=True, calibrate=True,
                      split="train")


def eval_name(args, stem: str) -> str:
    return f"{stem}-train-n{args.limit}-t{args.templates}.json"


def base_results(inner: str, dataset: str, args) -> dict:
    path = args.out / inner / eval_name(args, "base")
    return cached_evaluation(path, "gemma3-270m", eval_config(dataset, args), None, f"gemma3-270m base on {dataset}")


def recipe_results(inner: str, dataset: str, recipe: str, args, train: bool = True) -> dict | None:
    run_dir = args.out / inner / recipe
    if not (run_dir / "model").exists():
        if not train:
            return None
        print(f"training {recipe} without commonsense and {inner}", flush=True)
        instruction_tune(train_config(inner, recipe, args), run_dir, resume=(run_dir / "checkpoints").exists())
    path = run_dir / eval_name(args, "eval")
    if not path.exists() and not train:
        return None
    return cached_evaluation(path, str(run_dir / "model"), eval_config(dataset, args), None, f"{recipe} on {dataset}")


def summarize(base: dict, runs: dict, proxy: dict, args) -> dict:
    """``base``: inner -> results; ``runs``: recipe -> inner -> results (recipes finished on every inner cluster)."""
    recipes = {}
    reference = runs.get("answer_only")
    for name, by_inner in runs.items():
        vs_base = {inner: compare_cluster(base[inner], [by_inner[inner]], [proxy[inner]], seed=args.seed)
                   for inner in proxy}
        entry = {"what": RECIPES[name][1], "changes": RECIPES[name][0],
                 "per_cluster": {inner: {m: template_means(by_inner[inner], proxy[inner]).get(m) for m, _ in METRICS}
                                 for inner in proxy},
                 "training": {inner: training_facts(args.out / inner / name) for inner in proxy},
                 "vs_base": {m: summary_figures(s) for m, s in compare_all(list(vs_base.values())).items()}}
        if reference is not None and name != "answer_only":
            vs_ref = [compare_cluster(reference[inner], [by_inner[inner]], [proxy[inner]], seed=args.seed)
                      for inner in proxy]
            entry["vs_answer_only"] = {m: summary_figures(s) for m, s in compare_all(vs_ref).items()}
        recipes[name] = entry
    return {"proxy": proxy, "recipes": recipes,
            "base_per_cluster": {inner: {m: template_means(base[inner], proxy[inner]).get(m) for m, _ in METRICS}
                                 for inner in proxy}}


def markdown(summary: dict, meta: dict) -> str:
    proxy = summary["proxy"]
    lines = ["# Nested held-in proxy for held-out transfer (issue 33)", "",
             f"Setting: **{', '.join(OUTER)}** held out (never read). For each inner cluster, a model trained on all "
             f"clusters but {', '.join(OUTER)} and that cluster ({meta['steps']} steps × 4 packed rows of 128 tokens, "
             f"lr 2e-4, LoRA r = 16 unless the recipe changes it, seed {meta['seed']}), scored zero-shot on one of its "
             f"datasets: the first {meta['limit']} examples of the TRAIN split (which the held-out protocol never "
             f"evaluates), the first {meta['templates']} direct templates, rank scoring and greedy generation. Inner "
             "cluster → dataset, by a rule fixed before the runs (the first dataset clusters.yaml lists for the "
             "cluster that the protocol does not evaluate): "
             + ", ".join(f"{c} → {d}" for c, d in proxy.items()) + ".", "",
             f"Command: `{meta['command']}`; machine: {meta['machine']}; {meta['date']}. {meta['note']}", "",
             "Means over the inner clusters (%); differences with 95 % paired bootstrap intervals over the examples.",
             "", "| recipe | what | " + " | ".join(label for _, label in METRICS) + " |",
             "|---|---|" + "---|" * len(METRICS)]
    base = summary["base_per_cluster"]
    lines.append("| (base model) | | " + " | ".join(
        f"{100 * sum(base[c][m] for c in proxy) / len(proxy):.1f}" for m, _ in METRICS) + " |")
    for name, entry in summary["recipes"].items():
        lines.append(f"| {name} | {entry['what']} | " + " | ".join(recipe_cells(entry)) + " |")
    lines += ["", "Cells: tuned (tuned − base [interval]); vs answer-only: recipe − answer-only [interval].", "",
              "Per inner cluster (valid-option rate / exact match / rank balanced accuracy, %):", "",
              "| recipe | " + " | ".join(f"{c} ({d})" for c, d in proxy.items()) + " |", "|---|" + "---|" * len(proxy)]

    def per(row):
        return " | ".join(" / ".join(f"{100 * row[c][m]:.1f}" for m, _ in METRICS) for c in proxy)

    lines.append(f"| (base model) | {per(base)} |")
    lines += [f"| {name} | {per(entry['per_cluster'])} |" for name, entry in summary["recipes"].items()]
    if summary.get("unfinished"):
        lines += ["", "Not finished on every inner cluster, so not compared: " + ", ".join(summary["unfinished"]) + "."]
    lines += ["", f"Rule (the held-in search's, on the proxy's means): {summary['choice']['rule']}.", "",
              f"Winner: **{verdict(summary)}**.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipes", default="answer_only,kl_answer_top20,replay_no_options_r4,steps40,kl",
                        help=f"comma-separated, of {', '.join(RECIPES)}")
    parser.add_argument("--clusters", default=None, help="inner clusters to run (default: all the rule gives)")
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--templates", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "runs/nested_proxy")
    parser.add_argument("--report", action="store_true", help="only the report, from the runs already there")
    parser.add_argument("--no-report", action="store_true", help="train and evaluate only (one worker)")
    parser.add_argument("--note", default="", help="a line for the report (e.g. the workers' commands)")
    parser.add_argument("--results", type=Path, default=ROOT / "docs/results/instruct_nested_proxy")
    args = parser.parse_args()
    recipes = [name.strip() for name in args.recipes.split(",") if name.strip()]
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    proxy = proxy_tasks()
    clusters = args.clusters.split(",") if args.clusters else list(proxy)
    for inner in clusters:
        check_nested(OUTER, inner, [proxy[inner]])
    started = time.time()
    train = not args.report
    base = {inner: base_results(inner, proxy[inner], args) for inner in clusters}
    runs = {name: {inner: recipe_results(inner, proxy[inner], name, args, train) for inner in clusters}
            for name in (RECIPES if args.report else recipes)}
    if args.no_report:
        return
    finished = {name: by_inner for name, by_inner in runs.items() if all(by_inner.values())}
    if "answer_only" in finished:  # the reference first
        finished = {"answer_only": finished.pop("answer_only")} | finished
    summary = summarize(base, finished, {c: proxy[c] for c in clusters}, args)
    summary["choice"] = choose(summary)
    summary["unfinished"] = [name for name, by_inner in runs.items() if any(by_inner.values())
                             and not all(by_inner.values())]
    shown = [a for i, a in enumerate(sys.argv[1:]) if a != "--note" and (i == 0 or sys.argv[i] != "--note")]
    meta = {"command": "OMP_NUM_THREADS=1 python bench/instruct/nested_proxy.py " + " ".join(shown),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
                       f"{torch.get_num_threads()} thread(s) per worker",
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "note": args.note, "outer": OUTER,
            "steps": args.steps, "limit": args.limit, "templates": args.templates, "seed": args.seed,
            "wall_s_this_call": round(time.time() - started, 1)}
    write_report(args.results, summary, meta, markdown)


if __name__ == "__main__":
    main()
