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
from unseen.instruct.heldout_report import (
    HEADLINE,
    cluster_table,
    flan_table,
    paired_table,
    plot_heldout,
    plot_intervals,
)
from unseen.instruct.paired import compare_all, compare_cluster
from unseen.instruct.templates import load_clusters
from unseen.instruct.train import InstructConfig, instruction_tune, load_model


@dataclass
class HeldoutConfig:
    models: list[str] = field(default_factory=lambda: ["gemma3-270m"])
    clusters: list[str] = field(default_factory=lambda: ["nli"])
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    # the training recipe, issue 33's options included (kl_weight, replay_fraction, prompt_loss_weight,
    # mixture.no_options_fraction; `unseen instruct heldout --kl-weight ...`): each cluster's runs use it
    train: InstructConfig = field(default_factory=InstructConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)  # its tasks are replaced by the cluster's datasets
    tasks: dict[str, list[str]] = field(default_factory=dict)  # cluster -> evaluated datasets (default: all)
    # cluster -> LoRA adapters already trained with that cluster held out (e.g. a shipped one and a second seed):
    # each evaluated as one tuned run, none retrained
    adapters: dict[str, list[str]] = field(default_factory=dict)
    # off-the-shelf models evaluated as they are beside base and tuned (e.g. an instruct model a user could
    # pick instead)
    baselines: list[str] = field(default_factory=list)


def cached_evaluation(path: Path, model_name_or_dir: str, eval_config: EvalConfig, data_dir, label: str,
                      adapter=None) -> dict:
    """The results kept at ``path``; the model is loaded (onto best_device()) only when they are missing."""
    if path.exists():
        return json.loads(path.read_text())
    model, tokenizer = load_model(model_name_or_dir, adapter)
    results = evaluate(model.to(best_device()), tokenizer, eval_config, data_dir=data_dir)
    write_results(results, path, label=label)
    return results


# (row key, per-template metric, template kind): generation metrics of direct answers and of chains of thought
GENERATION_ROWS = [(metric + suffix, metric, kind)
                   for kind, suffix in (("classification", ""), ("chain_of_thought", "_cot"))
                   for metric in ("exact_match", "option_rate", "balanced_accuracy_generated")]


# (row key, per-template metric, template kind) of rank scoring
RANK_ROWS = [(metric, metric, None) for metric in ("accuracy", HEADLINE, "balanced_accuracy_calibrated")]


def template_values(results: dict, task: str) -> dict[str, list[float]]:
    """Row key -> the metric's value on each evaluated template of ``task`` (the metrics it has)."""
    values = {}
    for key, metric, kind in RANK_ROWS + GENERATION_ROWS:
        found = [r[metric] for r in results["templates"][task].values()
                 if metric in r and (kind is None or r.get("kind") == kind)]
        if found:
            values[key] = found
    return values


def template_means(results: dict, task: str) -> dict[str, float]:
    """Row key -> the metric's mean over the evaluated templates of ``task``."""
    return {key: statistics.fmean(values) for key, values in template_values(results, task).items()}


def add_to_row(row: dict, task: str, tuned_runs: list[dict] = (), seeds: list[int] = (),
               baselines: dict | None = None) -> dict:
    """Adds further tuned runs (their ``seeds``) and baseline models' results to a summary row of ``task``: means
    and spreads over seeds and templates are recomputed, so a row can grow after its first report."""
    tuned_values = [template_values(run, task) for run in tuned_runs]
    baseline_means = {name: template_means(results, task) for name, results in (baselines or {}).items()}
    for key, entry in row.items():
        if not (isinstance(entry, dict) and "tuned_seeds" in entry):
            continue
        runs = [values[key] for values in tuned_values if key in values]
        if runs:
            known = len(entry["tuned_seeds"])
            entry["tuned_seeds"] += [statistics.fmean(values) for values in runs]
            entry["tuned_mean"] = statistics.fmean(entry["tuned_seeds"])
            entry["tuned_std_seeds"] = statistics.stdev(entry["tuned_seeds"]) if len(entry["tuned_seeds"]) > 1 else 0.0
            entry["tuned_std_templates"] = statistics.fmean(
                [entry["tuned_std_templates"]] * known + [statistics.stdev(v) if len(v) > 1 else 0.0 for v in runs])
        entry["baselines"].update({name: means[key] for name, means in baseline_means.items() if key in means})
    row["seeds"] = row.get("seeds", []) + list(seeds)
    return row


def run_heldout(config: HeldoutConfig, out_dir: str | Path, *, data_dir=None, console: Console | None = None) -> dict:
    out_dir = Path(out_dir)
    console = console or Console()
    clusters = load_clusters()
    summary: dict = {"config": dataclasses.asdict(config), "rows": [], "paired": []}
    for cluster in config.clusters:
        tasks = config.tasks.get(cluster) or clusters[cluster]
        eval_config = dataclasses.replace(config.eval, tasks=list(tasks))
        for model_name in config.models:
            label = Path(model_name).name
            console.print(f"[bold]{cluster}[/] held out, {model_name}: base model")
            base = cached_evaluation(out_dir / cluster / label / "base.json", model_name, eval_config, data_dir,
                                     f"{label} base")
            baselines = {Path(name).name: cached_evaluation(out_dir / cluster / "baselines" / f"{Path(name).name}.json",
                                                            name, eval_config, data_dir, Path(name).name)
                         for name in config.baselines}
            if cluster in config.adapters:
                tuned_runs = []
                for index, adapter in enumerate(_as_list(config.adapters[cluster])):
                    console.print(f"[bold]{cluster}[/] held out, {model_name}: the given adapter {adapter}")
                    tuned_runs.append(cached_evaluation(out_dir / cluster / label / f"adapter{index}_eval.json",
                                                        model_name, eval_config, data_dir, f"{label} + adapter",
                                                        adapter=adapter))
            else:
                tuned_runs = [tune_and_evaluate(config, cluster, model_name, seed, eval_config,
                                                out_dir / cluster / label, data_dir, console) for seed in config.seeds]
            for task in tasks:
                row = {"cluster": cluster, "model": model_name, "task": task,
                       "n": base["results"][task]["n"],
                       "constant_baseline": base["results"][task].get("constant_baseline"),
                       "uniform_baseline": base["results"][task].get("uniform_baseline"),
                       "classes": len(next(iter(base["templates"][task].values())).get("predicted_distribution", [])),
                       "tuned_from": (", ".join(_as_list(config.adapters[cluster])) if cluster in config.adapters
                                      else f"{len(tuned_runs)} seed(s) of {config.train.steps} steps")}
                for key, values in template_values(base, task).items():
                    row[key] = {"base_mean": statistics.fmean(values),
                                "base_std_templates": statistics.stdev(values) if len(values) > 1 else 0.0,
                                "tuned_mean": None, "tuned_std_seeds": 0.0, "tuned_std_templates": 0.0,
                                "tuned_seeds": [], "baselines": {}}
                add_to_row(row, task, tuned_runs, [] if cluster in config.adapters else config.seeds, baselines)
                summary["rows"].append(row)
            summary["paired"].append({"cluster": cluster, "model": model_name}
                                     | compare_cluster(base, tuned_runs, list(tasks)))
    summary["paired_all"] = paired_all(summary)
    write_summary(summary, out_dir)
    return summary


def _as_list(paths: str | list[str]) -> list[str]:
    return [paths] if isinstance(paths, str) else list(paths)


def paired_all(summary: dict) -> dict:
    """Per model, the mean over its held-out clusters of each base → tuned difference, with its interval."""
    models = dict.fromkeys(entry["model"] for entry in summary["paired"])
    return {model: compare_all([e for e in summary["paired"] if e["model"] == model and e["draws"]])
            for model in models}


def without_draws(summary: dict) -> dict:
    """The summary as JSON can hold it (the bootstrap draws kept for pooling clusters dropped)."""
    return summary | {"paired": [{k: v for k, v in entry.items() if k != "draws"} for entry in summary["paired"]]}


def write_summary(summary: dict, out_dir: Path) -> None:
    """summary.json, summary.md (per cluster, the paired intervals, then FLAN's per-dataset table), heldout.png and
    intervals.png (each base → tuned difference with its interval) under ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.json").write_text(json.dumps(without_draws(summary), indent=2) + "\n")
    (out_dir / "summary.md").write_text(cluster_table(summary) + "\n" + paired_table(summary) + "\n"
                                        + flan_table(summary))
    plot_heldout(summary, out_dir / "heldout.png")
    plot_intervals(summary, out_dir / "intervals.png")


def tune_and_evaluate(config: HeldoutConfig, cluster: str, model_name: str, seed: int, eval_config: EvalConfig,
                      model_dir: Path, data_dir=None, console: Console | None = None) -> dict:
    """Instruction-tune with ``cluster`` held out (unless that run is already there) and evaluate it."""
    console = console or Console()
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
    return cached_evaluation(results_path, str(run_dir / "model"), eval_config, data_dir,
                             f"{Path(model_name).name} seed {seed}")
