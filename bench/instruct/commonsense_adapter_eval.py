"""Base vs the shipped commonsense-held-out adapter on the held-out commonsense cluster.

Gemma 3 270M base and the same model with ``src/unseen/instruct/weights/flan-commonsense-heldout``
(trained by ``bench/instruct/train_commonsense_adapter.py``, commonsense never seen) are
evaluated zero-shot on COPA, PIQA, ECQA and Sen-Making with two direct OPTIONS templates
each, by rank scoring and by greedy generation (``unseen instruct eval --generate``). Writes
``docs/results/instruct_commonsense_adapter.{json,md}``.

    OMP_NUM_THREADS=1 python bench/instruct/commonsense_adapter_eval.py                 # both models, 50 examples
    OMP_NUM_THREADS=1 python bench/instruct/commonsense_adapter_eval.py --only base     # one side (runs in parallel)

Each side's results are kept under --cache-dir and reused, so the two sides can run as
separate processes and the report is written once both exist.
"""

import argparse
import json
import os
import platform
import time
from dataclasses import asdict
from pathlib import Path

import torch

from unseen.instruct.evaluate import EvalConfig, evaluate, markdown_table
from unseen.instruct.train import load_model

ROOT = Path(__file__).resolve().parents[2]
ADAPTER = ROOT / "src/unseen/instruct/weights/flan-commonsense-heldout"
TASKS = ["copa", "piqa", "ecqa", "sensemaking"]
# the first two direct templates of each dataset in docs/results/instruct_generation_base.md
TEMPLATES = ["copa_what_was", "copa_more_likely", "piqa_how_accomplish", "piqa_which_sensible",
             "ecqa_plain", "ecqa_question_answer", "sensemaking_question", "sensemaking_against_common_sense"]
# (label, results key, per-template metric)
COLUMNS = [("rank bal. acc.", "balanced_accuracy"), ("exact match", "exact_match"), ("valid options", "option_rate"),
           ("gen. bal. acc.", "balanced_accuracy_generated")]


def run_side(side: str, config: EvalConfig, adapter: Path, path: Path) -> dict:
    if path.exists():
        return json.loads(path.read_text())
    started = time.perf_counter()
    model, tokenizer = load_model("gemma3-270m", adapter if side == "tuned" else None)
    results = evaluate(model, tokenizer, config)
    results["wall_seconds"] = time.perf_counter() - started
    results["adapter"] = str(adapter.relative_to(ROOT)) if side == "tuned" else None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    return results


def cell(summary: dict) -> str:
    return f"{summary['mean'] * 100:.1f} ± {summary['std'] * 100:.1f}" if summary else "–"


def report(sides: dict, meta: dict) -> str:
    lines = ["# The shipped adapter: Gemma 3 270M base vs commonsense-held-out LoRA, on held-out commonsense", "",
             f"Command: `{meta['command']}`; seed {meta['seed']}; {meta['limit']} first validation examples per "
             f"dataset, 2 direct OPTIONS templates each ({', '.join(TEMPLATES)}); fp32, {meta['threads']} thread; "
             f"machine: {meta['machine']} (shared with other jobs, so seconds are only indicative: "
             f"base {sides['base']['wall_seconds'] / 60:.1f} min, tuned {sides['tuned']['wall_seconds'] / 60:.1f} "
             f"min). Adapter: {meta['adapter']}.", "",
             "Mean ± std over the 2 templates, in %. Generation: greedy, the first line read back as an option "
             "(invalid = wrong).", "",
             "| task | model | " + " | ".join(label for label, _ in COLUMNS) + " | majority | uniform |",
             "|---|---|" + "---|" * (len(COLUMNS) + 2)]
    for task in TASKS:
        for side in ("base", "tuned"):
            m = sides[side]["results"][task]
            lines.append(f"| {task} | {side} | " + " | ".join(cell(m.get(key, {})) for _, key in COLUMNS)
                         + f" | {m['constant_baseline'] * 100:.1f} | {m['uniform_baseline'] * 100:.1f} |")
    means = {side: {key: sum(sides[side]["results"][t][key]["mean"] for t in TASKS) / len(TASKS) for _, key in COLUMNS}
             for side in sides}
    lines += [f"| **mean** | {side} | " + " | ".join(f"{means[side][key] * 100:.1f}" for _, key in COLUMNS) + " | | |"
              for side in ("base", "tuned")]
    lines += ["", "One raw generated answer per template (the first example):", "",
              "| template | target | base | tuned |", "|---|---|---|---|"]
    for task in TASKS:
        for template, result in sides["base"]["templates"][task].items():
            tuned = sides["tuned"]["templates"][task][template]
            sample, tuned_sample = result["samples"][0], tuned["samples"][0]
            clean = [text.replace("|", "\\|") for text in (sample["target"], sample["output"], tuned_sample["output"])]
            lines.append(f"| {template} | {clean[0]} | {clean[1]} | {clean[2]} |")
    lines += ["", "Full per-template tables (`unseen instruct eval` format):", ""]
    for side in ("base", "tuned"):
        lines += [markdown_table(sides[side], f"gemma3-270m {side}")]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--only", choices=["base", "tuned"])
    parser.add_argument("--adapter", type=Path, default=ADAPTER)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache-dir", type=Path, default=Path("runs/commonsense-adapter-eval"))
    parser.add_argument("--out", type=Path, default=ROOT / "docs/results/instruct_commonsense_adapter.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = EvalConfig(tasks=TASKS, templates=TEMPLATES, limit=args.limit, generate=True, seed=0)
    sides = {side: run_side(side, config, args.adapter, args.cache_dir / f"{side}_limit{args.limit}.json")
             for side in ([args.only] if args.only else ["base", "tuned"])}
    if args.only:
        return
    adapter = args.adapter.resolve()
    meta = {"command": f"OMP_NUM_THREADS=1 python bench/instruct/commonsense_adapter_eval.py --limit {args.limit}",
            "seed": 0, "limit": args.limit, "threads": args.threads, "eval_config": asdict(config),
            "adapter": str(adapter.relative_to(ROOT)) if adapter.is_relative_to(ROOT) else str(args.adapter),
            "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    training = args.adapter / "training.json"
    if training.exists():
        meta["adapter_training"] = json.loads(training.read_text())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "base": sides["base"], "tuned": sides["tuned"]}, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(report(sides, meta))
    print(args.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
