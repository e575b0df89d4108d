"""Issue 33: training recipes that keep what the base model knew, chosen on HELD-IN validation data only.

One held-out setting (commonsense, the shipped adapter's): every recipe is Gemma 3 270M base + LoRA
instruction-tuned on all the other clusters, and is scored on the evaluation splits of datasets it WAS trained on
whose evaluation split is not their training split (``unseen.instruct.recipe.check_held_in``): SST-2, RTE, QASC
and StrategyQA validation, the first --limit examples, the first --templates direct templates, rank scoring and
greedy generation. No held-out cluster's data is read (tests/test_instruct_recipe.py checks this function's data).
Every recipe is compared with the base model and with the answer-only recipe (the shipped one at --steps), each
difference with a 95 % paired bootstrap interval over the examples (``unseen.instruct.paired``).

    # trains and evaluates what is missing under --out (each finished piece is kept; a run resumes):
    OMP_NUM_THREADS=1 python bench/instruct/recipe_search.py --recipes answer_only,kl,replay,no_options
    # the report only, from what is there:
    OMP_NUM_THREADS=1 python bench/instruct/recipe_search.py --report

Writes ``docs/results/instruct_recipe_search.{json,md}``.
"""

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from unseen.instruct.evaluate import EvalConfig
from unseen.instruct.heldout import cached_evaluation, template_means
from unseen.instruct.mixture import MixtureConfig
from unseen.instruct.paired import compare_cluster, interval_text
from unseen.instruct.recipe import check_held_in, recipe_config, search_data
from unseen.instruct.train import InstructConfig, instruction_tune

ROOT = Path(__file__).resolve().parents[2]
HELDOUT = "commonsense"
EVAL_TASKS = ["sst2", "rte", "qasc", "strategyqa"]  # held-in with commonsense out; validation splits
# name -> (what it changes from the answer-only recipe, why)
RECIPES = {
    "answer_only": ({}, "the shipped recipe: loss on answer tokens only, LoRA r = 16"),
    "kl": ({"kl_weight": 1.0, "kl_on": "both", "kl_max_positions": 64},
           "+ KL to the base on prompt and answer positions, weight 1, 64 positions per batch"),
    "kl_answer": ({"kl_weight": 1.0, "kl_on": "answer", "kl_max_positions": 0},
                  "+ KL to the base on the answer positions only, weight 1"),
    # added 2026-12-07 (fourth session): KL on the answers cost answer form on held-out clusters; on the prompt
    # alone it leaves the answer distribution free while holding the body to the base on the same text
    "kl_prompt": ({"kl_weight": 1.0, "kl_on": "prompt", "kl_max_positions": 64},
                  "+ KL to the base on the prompt positions only, weight 1, 64 positions per batch"),
    # added 2026-12-07 (fifth session): KL on the answers kept rank scoring on held-out TREC but cost answer form,
    # pulling all of the answer's distribution back to the base; restricted to the base's 20 likeliest tokens (both
    # renormalized) it keeps their order while leaving the mass free to move onto the options
    "kl_answer_top20": ({"kl_weight": 1.0, "kl_on": "answer", "kl_max_positions": 0, "kl_top_k": 20},
                        "+ KL to the base on the answer positions, over the base's 20 likeliest tokens only"),
    # added 2026-12-08 for the nested proxy (nested_proxy.py), where answer-only loses rank scoring as on held-out
    # clusters: fewer updates (the "fewer or smaller updates"), the learning-rate schedule over 40 steps
    "steps40": ({"steps": 40}, "40 training steps instead of the held-out protocol's 80 (its schedule over 40)"),
    "replay": ({"replay_fraction": 0.25, "replay_weight": 0.5},
               "+ replay: raw training texts (no template), 0.25 per example, LM loss weight 0.5"),
    "no_options": ({"mixture.no_options_fraction": 0.3},
                   "30 % of the OPTIONS templates rendered without the options list"),
    "prompt_loss": ({"prompt_loss_weight": 0.1}, "prompt tokens as targets at weight 0.1 (1 = full sequence)"),
    "r4": ({"lora_r": 4, "lora_alpha": 8}, "LoRA rank 4 instead of 16"),
    # added after the single changes were scored: the three whose rank-scoring difference to answer-only was >= 0
    "replay_no_options_r4": ({"replay_fraction": 0.25, "replay_weight": 0.5, "mixture.no_options_fraction": 0.3,
                              "lora_r": 4, "lora_alpha": 8}, "replay, the OPTIONS mix and LoRA rank 4 together"),
}
METRICS = [("option_rate", "valid-option rate"), ("exact_match", "generation exact match"),
           ("balanced_accuracy", "rank-scoring balanced acc.")]


def base_config(args) -> InstructConfig:
    """The shipped adapter's recipe (train_commonsense_adapter.py) at the search's step count."""
    return InstructConfig(model="gemma3-270m", mixture=MixtureConfig(heldout=[HELDOUT], cap=1000), max_length=128,
                          lora=True, lora_r=16, lora_alpha=32, steps=args.steps, batch_size=4, lr=2e-4,
                          save_every=10, seed=args.seed)


def eval_config(args) -> EvalConfig:
    return EvalConfig(tasks=list(EVAL_TASKS), max_templates=args.templates, limit=args.limit, generate=True)


def build_data(args, data_dir=None) -> dict:
    """All the data the search reads (the mixture, replay texts and held-in evaluation records)."""
    replay = max(RECIPES[name][0].get("replay_fraction", 0.0) for name in args.recipes)
    return search_data(base_config(args).mixture, EVAL_TASKS, replay_fraction=replay, data_dir=data_dir)


def eval_file(folder: Path, args, stem: str = "eval") -> Path:
    """Results are kept per evaluation size, so that a larger --limit evaluates again instead of reusing."""
    return folder / f"{stem}-n{args.limit}-t{args.templates}.json"


def run_recipe(name: str, args) -> dict:
    run_dir = args.out / name
    config = recipe_config(base_config(args), RECIPES[name][0])
    if not (run_dir / "model").exists():
        print(f"training {name}", flush=True)
        instruction_tune(config, run_dir, resume=(run_dir / "checkpoints").exists())
    return cached_evaluation(eval_file(run_dir, args), str(run_dir / "model"), eval_config(args), None, name)


def training_facts(run_dir: Path) -> dict:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    last = rows[-10:]
    # elapsed_s restarts when a run resumes: the median step time of consecutive rows
    deltas = sorted(b["elapsed_s"] - a["elapsed_s"] for a, b in zip(rows, rows[1:]) if b["elapsed_s"] > a["elapsed_s"])
    facts = {"steps": rows[-1]["step"], "s_per_step": deltas[len(deltas) // 2] if deltas else None}
    for key in ("loss", "loss_answer", "loss_replay", "kl_to_base"):
        values = [r[key] for r in last if key in r]
        if values:
            facts[f"{key}_last10"] = sum(values) / len(values)
    facts.setdefault("loss_answer_last10", facts["loss_last10"])  # the target-only loss is the answer loss
    return facts


def summarize(base: dict, runs: dict[str, dict], args) -> dict:
    tasks = list(EVAL_TASKS)
    reference = runs.get("answer_only")
    recipes = {}
    for name, results in runs.items():
        vs_base = compare_cluster(base, [results], tasks, seed=args.seed)
        entry = {"changes": RECIPES[name][0], "what": RECIPES[name][1],
                 "config": dataclasses.asdict(recipe_config(base_config(args), RECIPES[name][0])),
                 "training": training_facts(args.out / name),
                 "per_task": {t: {m: template_means(results, t).get(m) for m, _ in METRICS} for t in tasks},
                 "vs_base": {m: summary_figures(vs_base["mean"].get(m)) for m, _ in METRICS}}
        if reference is not None and name != "answer_only":
            vs_ref = compare_cluster(reference, [results], tasks, seed=args.seed)
            entry["vs_answer_only"] = {m: summary_figures(vs_ref["mean"].get(m)) for m, _ in METRICS}
        recipes[name] = entry
    return {"base_per_task": {t: {m: template_means(base, t).get(m) for m, _ in METRICS} for t in tasks},
            "recipes": recipes}


def summary_figures(summary):
    """A paired summary without its resamples: what the reports keep."""
    return None if summary is None else {k: summary[k] for k in ("base", "tuned", "difference", "interval")}


RULE = ("fixed before the runs: a recipe replaces answer-only (the default) only if its rank-scoring balanced "
        "accuracy is above answer-only's (paired interval above 0) while neither its valid-option rate nor its exact "
        "match is below answer-only's (interval entirely under 0)")


def choose(summary: dict) -> dict:
    """The recipe that wins by RULE, or None."""
    winners = []
    for name, entry in summary["recipes"].items():
        ref = entry.get("vs_answer_only")
        if not ref or not ref["balanced_accuracy"]:
            continue
        if (ref["balanced_accuracy"]["interval"][0] > 0
                and all(ref[m]["interval"][1] >= 0 for m in ("option_rate", "exact_match"))):
            winners.append((ref["balanced_accuracy"]["difference"], name))
    return {"rule": RULE, "winner": max(winners)[1] if winners else None}


def recipe_cells(entry: dict) -> list[str]:
    """Per metric: tuned (tuned − base [interval]), and recipe − answer-only [interval] where compared."""
    cells = []
    for m, _ in METRICS:
        s = entry["vs_base"][m]
        cell = f"{100 * s['tuned']:.1f} ({100 * s['difference']:+.1f} {interval_text(s['interval'])})"
        ref = entry.get("vs_answer_only")
        if ref and ref.get(m):
            cell += f"; vs answer-only {100 * ref[m]['difference']:+.1f} {interval_text(ref[m]['interval'])}"
        cells.append(cell)
    return cells


def verdict(summary: dict) -> str:
    compared = [name for name, entry in summary["recipes"].items() if entry.get("vs_answer_only")]
    if not compared:
        return "not decided: no recipe was compared with answer-only; the default stays"
    return summary["choice"]["winner"] or "none: the default (answer-only) stays"


def markdown(summary: dict, meta: dict) -> str:
    lines = ["# Recipe search on held-in validation (issue 33)", "",
             f"Held out: **{HELDOUT}** (never read). Evaluated on held-in validation splits: "
             f"{', '.join(EVAL_TASKS)}; the first {meta['limit']} examples × the first {meta['templates']} direct "
             f"templates each. Gemma 3 270M base, LoRA, {meta['steps']} steps × 4 packed rows of 128 tokens, lr 2e-4, "
             f"seed {meta['seed']}. Means over the {len(EVAL_TASKS)} datasets (%); differences with 95 % paired "
             "bootstrap intervals over the examples.", "",
             f"Command: `{meta['command']}`; machine: {meta['machine']}. {meta['note']}", "",
             "| recipe | what | " + " | ".join(label for _, label in METRICS) + " | s/step (median; shared machine) |",
             "|---|---|" + "---|" * (len(METRICS) + 1)]
    base = summary["base_per_task"]
    lines.append("| (base model) | | " + " | ".join(
        f"{100 * sum(base[t][m] for t in EVAL_TASKS) / len(EVAL_TASKS):.1f}" for m, _ in METRICS) + " | |")
    for name, entry in summary["recipes"].items():
        lines.append(f"| {name} | {entry['what']} | " + " | ".join(recipe_cells(entry))
                     + f" | {entry['training']['s_per_step'] or 0:.1f} |")
    lines += ["", "Cells: tuned (tuned − base [interval]); vs answer-only: recipe − answer-only [interval].", "",
              "Per dataset (valid-option rate / exact match / rank balanced accuracy, %):", "",
              "| recipe | " + " | ".join(EVAL_TASKS) + " |", "|---|" + "---|" * len(EVAL_TASKS)]

    def per(row):
        return " | ".join(" / ".join(f"{100 * row[t][m]:.1f}" for m, _ in METRICS) for t in EVAL_TASKS)

    lines.append(f"| (base model) | {per(base)} |")
    lines += [f"| {name} | {per(entry['per_task'])} |" for name, entry in summary["recipes"].items()]
    if summary.get("unfinished"):
        lines += ["", "Runs without an evaluation (training figures only; means of the last 10 logged steps):", "",
                  "| recipe | steps reached | loss | answer loss | replay loss | KL to base |",
                  "|---|---|---|---|---|---|"]
        for name, facts in summary["unfinished"].items():
            cells = [f"{facts[k]:.3f}" if k in facts else "–"
                     for k in ("loss_last10", "loss_answer_last10", "loss_replay_last10", "kl_to_base_last10")]
            lines.append(f"| {name} | {facts['steps']} of {meta['steps']} | " + " | ".join(cells) + " |")
    lines += ["", f"Rule: {summary['choice']['rule']}.", "", f"Winner: **{verdict(summary)}**.", ""]
    return "\n".join(lines)


def write_report(results: Path, summary: dict, meta: dict, render) -> None:
    """``results``.json (meta and summary) and ``results``.md (``render(summary, meta)``), printed too."""
    results.parent.mkdir(parents=True, exist_ok=True)
    results.with_suffix(".json").write_text(json.dumps(meta | summary, indent=1, default=str) + "\n")
    text = render(summary, meta)
    results.with_suffix(".md").write_text(text)
    print(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipes", default="answer_only,kl,replay,no_options",
                        help=f"comma-separated, of {', '.join(RECIPES)}")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--limit", type=int, default=60)
    parser.add_argument("--templates", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "runs/recipe_search")
    parser.add_argument("--report", action="store_true", help="only the report, from the runs already there")
    parser.add_argument("--no-report", action="store_true",
                        help="train and evaluate --recipes only (a second worker): no base model, no report")
    parser.add_argument("--note", default="", help="a line for the report (e.g. the workers' commands, the load)")
    parser.add_argument("--results", type=Path, default=ROOT / "docs/results/instruct_recipe_search")
    args = parser.parse_args()
    args.recipes = [name.strip() for name in args.recipes.split(",") if name.strip()]
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    check_held_in([HELDOUT], EVAL_TASKS)
    started = time.time()
    if args.no_report:
        for name in args.recipes:
            run_recipe(name, args)
        return
    base = cached_evaluation(eval_file(args.out, args, "base"), "gemma3-270m", eval_config(args), None,
                             "gemma3-270m base")
    runs = {}
    for name in (RECIPES if args.report else args.recipes):
        if args.report and not eval_file(args.out / name, args).exists():
            continue
        runs[name] = run_recipe(name, args)
    summary = summarize(base, runs, args)
    summary["choice"] = choose(summary)
    summary["unfinished"] = {name: training_facts(args.out / name) for name in RECIPES
                             if name not in runs and (args.out / name / "metrics.jsonl").exists()
                             and not (args.out / name / "model").exists()}
    shown = [a for i, a in enumerate(sys.argv[1:]) if a != "--note" and (i == 0 or sys.argv[i] != "--note")]
    meta = {"command": "OMP_NUM_THREADS=1 python bench/instruct/recipe_search.py " + " ".join(shown),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared), torch {torch.__version__}, "
                       f"{torch.get_num_threads()} thread(s)",
            "note": args.note, "heldout": HELDOUT, "eval_tasks": EVAL_TASKS, "steps": args.steps, "limit": args.limit,
            "templates": args.templates, "seed": args.seed, "wall_s_this_call": round(time.time() - started, 1)}
    write_report(args.results, summary, meta, markdown)


if __name__ == "__main__":
    main()
