"""Base → tuned on the same held-out examples: each difference with a 95 % paired bootstrap interval.

Per dataset, a metric is the mean over the evaluated templates (and, for the tuned side, over its runs: training
seeds or given adapters). One resample of the examples is shared by every template and run, and balanced accuracy is
recomputed on each resample. A cluster's figure is the mean of its datasets' figures, each dataset resampled on its
own; "all clusters" is the mean of the clusters. A difference is above or below zero only where its interval
excludes zero (``verdict``). The evaluations must keep per-example labels and predictions (``evaluate`` does).
"""

from __future__ import annotations

import numpy as np

RESAMPLES = 10_000
# row key (as in the held-out summary) -> label
METRICS = {
    "exact_match": "exact match",
    "option_rate": "valid-option rate",
    "balanced_accuracy_generated": "generation balanced acc.",
    "balanced_accuracy": "rank-scoring balanced acc.",
}
_NEEDS = {"exact_match": "generated_predictions", "option_rate": "generated_predictions",
          "balanced_accuracy_generated": "generated_predictions", "balanced_accuracy": "rank_predictions"}


def _balanced(predictions: np.ndarray, labels: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Balanced accuracy for each resample: predictions/labels [N], rows [R, N] example indices -> [R]."""
    p, y = predictions[rows], labels[rows]
    recalls = []
    for label in np.unique(labels):
        members = y == label
        counts = members.sum(1)
        hits = (members & (p == label)).sum(1)
        recalls.append(np.where(counts > 0, hits / np.maximum(counts, 1), np.nan))
    return np.nanmean(np.stack(recalls), axis=0)


def _metric(name: str, run: dict, rows: np.ndarray) -> np.ndarray:
    labels = run["labels"]
    if name == "exact_match":
        return (run["generated_predictions"][rows] == labels[rows]).mean(1)
    if name == "option_rate":
        return (run["generated_predictions"][rows] >= 0).mean(1)
    if name == "balanced_accuracy_generated":
        return _balanced(run["generated_predictions"], labels, rows)
    return _balanced(run["rank_predictions"], labels, rows)


def per_example(results: dict, task: str) -> dict[str, dict[str, np.ndarray]]:
    """Template id -> its per-example arrays (an invalid generated answer is -1); templates without them left out."""
    out = {}
    for name, result in results["templates"].get(task, {}).items():
        if "labels" not in result:
            continue
        out[name] = {key: np.array([-1 if v is None else v for v in result[key]])
                     for key in ("labels", "rank_predictions", "generated_predictions") if key in result}
    return out


def _draws(base: dict, tuned: list[dict], task: str, rng: np.random.Generator) -> dict[str, dict]:
    """Metric -> point values and per-resample values [R] of base and tuned on ``task`` (templates both sides have)."""
    before = per_example(base, task)
    after = [per_example(run, task) for run in tuned]
    names = sorted(set(before).intersection(*after))
    if not names:
        return {}
    n = len(before[names[0]]["labels"])
    for side in [before, *after]:
        for name in names:
            if len(side[name]["labels"]) != n or not (side[name]["labels"] == before[name]["labels"]).all():
                raise ValueError(f"{task}/{name}: base and tuned were evaluated on different examples")
    rows = rng.integers(0, n, size=(RESAMPLES, n))
    everything = np.arange(n)[None]
    out = {"n": n, "templates": names}
    for metric, field in _NEEDS.items():
        if not all(field in side[name] for side in [before, *after] for name in names):
            continue
        out[metric] = {
            "base": np.mean([_metric(metric, before[k], everything)[0] for k in names]),
            "tuned": np.mean([_metric(metric, run[k], everything)[0] for run in after for k in names]),
            "base_draws": np.mean([_metric(metric, before[k], rows) for k in names], axis=0),
            "tuned_draws": np.mean([_metric(metric, run[k], rows) for run in after for k in names], axis=0),
        }
    return out


def _summarize(base: float, tuned: float, base_draws: np.ndarray, tuned_draws: np.ndarray) -> dict:
    low, high = np.percentile(tuned_draws - base_draws, [2.5, 97.5])
    tuned_low, tuned_high = np.percentile(tuned_draws, [2.5, 97.5])
    return {"base": float(base), "tuned": float(tuned), "difference": float(tuned - base),
            "interval": [float(low), float(high)], "tuned_interval": [float(tuned_low), float(tuned_high)]}


def _mean_of(parts: list[dict]) -> dict:
    return {key: np.mean([p[key] for p in parts], axis=0) for key in ("base", "tuned", "base_draws", "tuned_draws")}


def compare_cluster(base: dict, tuned: list[dict], tasks: list[str], seed: int = 0) -> dict:
    """{"datasets": {task: {"n", "templates", metric: summary}}, "mean": {metric: summary}, "draws": ...};
    a summary holds base, tuned, difference, its interval, and the tuned figure's own interval. ``draws``
    (per-resample cluster values) lets ``compare_all`` pool clusters; it is dropped before writing JSON."""
    rng = np.random.default_rng(seed)
    by_task = {task: _draws(base, tuned, task, rng) for task in tasks}
    by_task = {task: d for task, d in by_task.items() if d}
    datasets = {task: {"n": d["n"], "templates": d["templates"]}
                | {m: _summarize(**d[m]) for m in METRICS if m in d} for task, d in by_task.items()}
    cluster_draws = {m: _mean_of([d[m] for d in by_task.values()]) for m in METRICS
                     if by_task and all(m in d for d in by_task.values())}
    return {"datasets": datasets, "mean": {m: _summarize(**v) for m, v in cluster_draws.items()},
            "draws": cluster_draws}


def compare_all(clusters: list[dict]) -> dict:
    """The mean over clusters (each a ``compare_cluster`` result) of every metric, with its interval."""
    return {m: _summarize(**_mean_of([c["draws"][m] for c in clusters]))
            for m in METRICS if clusters and all(m in c["draws"] for c in clusters)}


def verdict(summary: dict) -> str:
    low, high = summary["interval"]
    return "above" if low > 0 else "below" if high < 0 else "not resolved"


def interval_text(interval: list[float]) -> str:
    """'[low, high]' in signed points."""
    return f"[{interval[0] * 100:+.1f}, {interval[1] * 100:+.1f}]"


def cell(summary: dict | None) -> str:
    """'base → tuned, ±d [low, high]' in points."""
    if not summary:
        return "–"
    return (f"{summary['base'] * 100:.1f} → {summary['tuned'] * 100:.1f}, {summary['difference'] * 100:+.1f} "
            f"{interval_text(summary['interval'])}")


COMPARISON_COLUMNS = ["dataset", "n", "metric", "base", "tuned", "tuned − base", "95 % interval", "verdict"]


def comparison_rows(result: dict) -> list[list[str]]:
    """A ``compare_cluster`` result as rows of COMPARISON_COLUMNS (percentages); the mean over datasets last."""
    parts = [(task, figures["n"], figures) for task, figures in result["datasets"].items()]
    if len(parts) > 1:
        parts.append(("mean", sum(n for _, n, _ in parts), result["mean"]))
    rows = []
    for task, n, figures in parts:
        for metric, label in METRICS.items():
            if metric in figures:
                f = figures[metric]
                rows.append([task, str(n), label, f"{f['base'] * 100:.1f}", f"{f['tuned'] * 100:.1f}",
                             f"{f['difference'] * 100:+.1f}", interval_text(f["interval"]), verdict(f)])
    return rows


def comparison_markdown(rows: list[list[str]]) -> str:
    """``comparison_rows`` as a Markdown table."""
    lines = ["| " + " | ".join(COMPARISON_COLUMNS) + " |", "|" + "---|" * len(COMPARISON_COLUMNS)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows]) + "\n"
