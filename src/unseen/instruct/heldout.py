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
from unseen.instruct.heldout_report import HEADLINE, cluster_table, flan_table, plot_heldout
from unseen.instruct.templates import load_clusters
from unseen.instruct.train import InstructConfig, instruction_tune, load_model


@dataclass
class HeldoutConfig:
    models: list[str] = field(default_factory=lambda: ["gemma3-270m"])
    clusters: list[str] = field(default_factory=lambda: ["nli"])
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    train: InstructConfig = field(default_factory=InstructConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)  # its tasks are replaced by the cluster's datasets
    tasks: dict[str, list[str]] = field(default_factory=dict)  # cluster -> evaluated datasets (default: all)
    # cluster -> a LoRA adapter already trained with that cluster held out (e.g. a shipped one): evaluated, not retrained
    adapters: dict[str, str] = field(default_factory=dict)
    # off-the-shelf models evaluated as they are beside base and tuned (e.g. an instruct model a user could pick instead)
    baselines: list[str] = field(default_factory=list)


def _evaluated(path: Path, model_name_or_dir: str, eval_config: EvalConfig, data_dir, label: str, adapter=None) -> dict:
    """The results kept at ``path``; the model is loaded (onto best_device()) only when they are missing."""
    if path.exists():
        return json.loads(path.read_text())
    model, tokenizer = load_model(model_name_or_dir, adapter)
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
            baselines = {Path(name).name: _evaluated(out_dir / cluster / "baselines" / f"{Path(name).name}.json", name,
                                                     eval_config, data_dir, Path(name).name)
                         for name in config.baselines}
            if cluster in config.adapters:
                console.print(f"[bold]{cluster}[/] held out, {model_name}: the given adapter {config.adapters[cluster]}")
                tuned_runs = [_evaluated(out_dir / cluster / label / "adapter_eval.json", model_name, eval_config, data_dir,
                                         f"{label} + adapter", adapter=config.adapters[cluster])]
            else:
                tuned_runs = [_tuned(config, cluster, model_name, seed, eval_config, out_dir / cluster / label, data_dir, console)
                              for seed in config.seeds]
            for task in tasks:
                row = {"cluster": cluster, "model": model_name, "task": task,
                       "n": base["results"][task]["n"],
                       "constant_baseline": base["results"][task].get("constant_baseline"),
                       "uniform_baseline": base["results"][task].get("uniform_baseline"),
                       "classes": len(next(iter(base["templates"][task].values())).get("predicted_distribution", [])),
                       "tuned_from": config.adapters.get(cluster, f"{len(tuned_runs)} seed(s) of {config.train.steps} steps")}
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
                        "baselines": {name: statistics.fmean(values) for name, results in baselines.items()
                                      if (values := _per_template(results, task, metric, kind))},
                    }
                summary["rows"].append(row)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out_dir / "summary.md").write_text(cluster_table(summary) + "\n" + flan_table(summary))
    plot_heldout(summary, out_dir / "heldout.png")
    return summary


def _tuned(config: HeldoutConfig, cluster: str, model_name: str, seed: int, eval_config: EvalConfig, model_dir: Path,
           data_dir, console: Console) -> dict:
    """Instruction-tune with ``cluster`` held out (unless that run is already there) and evaluate it."""
    run_dir = model_dir / f"seed{seed}"
    results_path = run_dir / "eval.json"
    if not results_path.exists() and not (run_dir / "model").exists():
        train_config = dataclasses.replace(
            config.train, model=model_name, seed=seed,
            mixture=dataclasses.replace(config.train.mixture, heldout=[cluster]),
        )
        console.print(f"[bold]{cluster}[/] held out, {model_name}: instruction tuning, seed {seed}")
        instruction_tune(train_config, run_dir, resume=(run_dir / "checkpoints").exists(), data_dir=data_dir)
    if not results_path.exists():
        console.print(f"[bold]{cluster}[/] held out, {model_name}: tuned model, seed {seed}")
    return _evaluated(results_path, str(run_dir / "model"), eval_config, data_dir, f"{Path(model_name).name} seed {seed}")
