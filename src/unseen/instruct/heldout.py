"""The FLAN protocol: for each held-out cluster, instruction-tune on the other clusters and
evaluate zero-shot on the held-out one, base model versus tuned, over templates and seeds.

Every finished piece (a base evaluation, a training run, a tuned evaluation) is kept
under ``out_dir`` and reused, so an interrupted protocol continues where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from unseen.core.training import best_device
from unseen.instruct.evaluate import EvalConfig, evaluate, write_results
from unseen.instruct.templates import load_clusters
from unseen.instruct.train import InstructConfig, instruction_tune, load_model

HEADLINE = "balanced_accuracy"


@dataclass
class HeldoutConfig:
    models: list[str] = field(default_factory=lambda: ["gemma3-270m"])
    clusters: list[str] = field(default_factory=lambda: ["nli"])
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    train: InstructConfig = field(default_factory=InstructConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)  # its tasks are replaced by the cluster's datasets
    tasks: dict[str, list[str]] = field(default_factory=dict)  # cluster -> evaluated datasets (default: all)


def _evaluated(path: Path, model_name_or_dir: str, eval_config: EvalConfig, data_dir, label: str) -> dict:
    """The results kept at ``path``; the model is loaded (onto best_device()) only when they are missing."""
    if path.exists():
        return json.loads(path.read_text())
    model, tokenizer = load_model(model_name_or_dir)
    results = evaluate(model.to(best_device()), tokenizer, eval_config, data_dir=data_dir)
    write_results(results, path, label=label)
    return results


# (row key, per-template metric, template kind): generation metrics of direct answers and of chains of thought
GENERATION_ROWS = [(metric + suffix, metric, kind) for kind, suffix in (("classification", ""), ("chain_of_thought", "_cot"))
                   for metric in ("exact_match", "option_rate", "balanced_accuracy_generated")]


def _per_template(results: dict, task: str, metric: str, kind: str | None = None) -> list[float]:
    return [r[metric] for r in results["templates"][task].values() if metric in r and (kind is None or r.get("kind") == kind)]


def run_heldout(config: HeldoutConfig, out_dir: str | Path, *, data_dir=None, console: Console | None = None) -> dict:
    out_dir = Path(out_dir)
    console = console or Console()
    clusters = load_clusters()
    summary: dict = {"config": dataclasses.asdict(config), "rows": []}
    for cluster in config.clusters:
        tasks = config.tasks.get(cluster) or clusters[cluster]
        eval_config = dataclasses.replace(config.eval, tasks=list(tasks))
        for model_name in config.models:
            label = Path(model_name).name
            console.print(f"[bold]{cluster}[/] held out, {model_name}: base model")
            base = _evaluated(out_dir / cluster / label / "base.json", model_name, eval_config, data_dir, f"{label} base")
            tuned_runs = []
            for seed in config.seeds:
                run_dir = out_dir / cluster / label / f"seed{seed}"
                results_path = run_dir / "eval.json"
                if not results_path.exists():
                    train_config = dataclasses.replace(
                        config.train, model=model_name, seed=seed,
                        mixture=dataclasses.replace(config.train.mixture, heldout=[cluster]),
                    )
                    if not (run_dir / "model").exists():
                        console.print(f"[bold]{cluster}[/] held out, {model_name}: instruction tuning, seed {seed}")
                        instruction_tune(train_config, run_dir, resume=(run_dir / "checkpoints").exists(), data_dir=data_dir)
                    console.print(f"[bold]{cluster}[/] held out, {model_name}: tuned model, seed {seed}")
                tuned_runs.append(_evaluated(results_path, str(run_dir / "model"), eval_config, data_dir, f"{label} seed {seed}"))
            for task in tasks:
                row = {"cluster": cluster, "model": model_name, "task": task,
                       "n": base["results"][task]["n"],
                       "constant_baseline": base["results"][task].get("constant_baseline"),
                       "uniform_baseline": base["results"][task].get("uniform_baseline"),
                       "classes": len(next(iter(base["templates"][task].values())).get("predicted_distribution", []))}
                rank = [(metric, metric, None) for metric in ("accuracy", HEADLINE, "balanced_accuracy_calibrated")]
                for key, metric, kind in rank + GENERATION_ROWS:
                    base_values = _per_template(base, task, metric, kind)
                    if not base_values:
                        continue
                    seed_means = [statistics.fmean(_per_template(r, task, metric, kind)) for r in tuned_runs]
                    row[key] = {
                        "base_mean": statistics.fmean(base_values),
                        "base_std_templates": statistics.stdev(base_values) if len(base_values) > 1 else 0.0,
                        "tuned_mean": statistics.fmean(seed_means),
                        "tuned_std_seeds": statistics.stdev(seed_means) if len(seed_means) > 1 else 0.0,
                        "tuned_std_templates": statistics.fmean(
                            statistics.stdev(v) if len(v) > 1 else 0.0
                            for v in (_per_template(r, task, metric, kind) for r in tuned_runs)),
                        "tuned_seeds": seed_means,
                    }
                summary["rows"].append(row)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out_dir / "summary.md").write_text(flan_table(summary))
    plot_heldout(summary, out_dir / "heldout.png")
    return summary


def flan_table(summary: dict) -> str:
    lines = ["| held out | model | task | n | always-same | accuracy base → tuned | balanced acc. base (± templates) | "
             "balanced acc. tuned (± seeds) | Δ balanced | calibrated bal. base → tuned |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in summary["rows"]:
        acc, bal = row.get("accuracy", {}), row.get(HEADLINE, {})
        cal = row.get("balanced_accuracy_calibrated")
        cal_text = f"{cal['base_mean'] * 100:.1f} → {cal['tuned_mean'] * 100:.1f}" if cal else "–"
        lines.append(
            f"| {row['cluster']} | {row['model']} | {row['task']} | {row['n']} | {row['constant_baseline'] * 100:.1f} | "
            f"{acc['base_mean'] * 100:.1f} → {acc['tuned_mean'] * 100:.1f} | "
            f"{bal['base_mean'] * 100:.1f} ± {bal['base_std_templates'] * 100:.1f} | "
            f"{bal['tuned_mean'] * 100:.1f} ± {bal['tuned_std_seeds'] * 100:.1f} | "
            f"{(bal['tuned_mean'] - bal['base_mean']) * 100:+.1f} | {cal_text} |"
        )
    generated = [row for row in summary["rows"] if "exact_match" in row or "exact_match_cot" in row]
    if generated:
        def change(row, key):
            entry = row.get(key)
            return f"{entry['base_mean'] * 100:.1f} → {entry['tuned_mean'] * 100:.1f}" if entry else "–"

        lines += ["", "Greedy generation, base → tuned (mean over templates and seeds); invalid answers count as wrong.", "",
                  ("| held out | model | task | majority | uniform | exact match | valid options | balanced acc. (generated) | "
                   "CoT exact match | CoT valid options |"), "|---|---|---|---|---|---|---|---|---|---|"]
        for row in generated:
            uniform = f"{row['uniform_baseline'] * 100:.1f}" if row.get("uniform_baseline") is not None else "–"
            lines.append(f"| {row['cluster']} | {row['model']} | {row['task']} | {row['constant_baseline'] * 100:.1f} | {uniform} | "
                         f"{change(row, 'exact_match')} | {change(row, 'option_rate')} | "
                         f"{change(row, 'balanced_accuracy_generated')} | {change(row, 'exact_match_cot')} | "
                         f"{change(row, 'option_rate_cot')} |")
    return "\n".join(lines) + "\n"


def plot_heldout(summary: dict, path: Path) -> None:
    """Grouped bars: balanced accuracy of base and tuned models per held-out task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [row for row in summary["rows"] if HEADLINE in row]
    if not rows:
        return
    labels = [f"{row['task']}\n{Path(row['model']).name}" for row in rows]
    base = [row[HEADLINE]["base_mean"] * 100 for row in rows]
    tuned = [row[HEADLINE]["tuned_mean"] * 100 for row in rows]
    errors = [row[HEADLINE]["tuned_std_seeds"] * 100 for row in rows]
    chance = [100 / row["classes"] if row.get("classes") else None for row in rows]
    x = range(len(rows))
    figure, axis = plt.subplots(figsize=(max(4, 1.6 * len(rows)), 3.5))
    shots = summary.get("config", {}).get("eval", {}).get("shots", 0)
    axis.bar([i - 0.2 for i in x], base, width=0.4, label=f"base ({f'{shots}-shot' if shots else 'zero-shot'})")
    axis.bar([i + 0.2 for i in x], tuned, width=0.4, yerr=errors, capsize=3, label="instruction-tuned")
    axis.set_xticks(list(x), labels, fontsize=8)
    axis.set_ylabel("balanced accuracy (%)")
    axis.set_title("Held-out clusters: mean over templates")
    for i, level in zip(x, chance):  # balanced accuracy of any constant answer: 1 / classes
        if level:
            axis.hlines(level, i - 0.45, i + 0.45, color="grey", linewidth=0.8, linestyle="--")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
