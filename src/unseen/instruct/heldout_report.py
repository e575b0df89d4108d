"""The held-out protocol's report: a FLAN-style table per held-out task, one per held-out cluster
(mean over its evaluated datasets) with the issue's targets, and bar plots, one panel per metric."""

from __future__ import annotations

import statistics
from pathlib import Path

from unseen.instruct.paired import METRICS as PAIRED_METRICS
from unseen.instruct.paired import cell, verdict

HEADLINE = "balanced_accuracy"
# (row key, label) of the metrics compared per cluster and plotted; generation = direct answers by greedy decoding
METRICS = [(HEADLINE, "rank-scoring balanced acc."), ("exact_match", "generation exact match"),
           ("option_rate", "valid-option rate"), ("balanced_accuracy_generated", "generation balanced acc.")]


def _pct(value) -> str:
    return "–" if value is None else f"{value * 100:.1f}"


def _change(entry: dict | None) -> str:
    return f"{entry['base_mean'] * 100:.1f} → {entry['tuned_mean'] * 100:.1f}" if entry else "–"


def _baseline_names(summary: dict) -> list[str]:
    return sorted({name for row in summary["rows"] for key, _ in METRICS
                   for name in row.get(key, {}).get("baselines", {})})


def flan_table(summary: dict) -> str:
    baselines = _baseline_names(summary)
    lines = ["| held out | model | task | n | always-same | accuracy base → tuned | balanced acc. base (± templates) | "
             "balanced acc. tuned (± seeds) | Δ balanced | calibrated bal. base → tuned |"
             + "".join(f" {name} bal. acc. |" for name in baselines),
             "|---|---|---|---|---|---|---|---|---|---|" + "---|" * len(baselines)]
    for row in summary["rows"]:
        acc, bal = row.get("accuracy", {}), row.get(HEADLINE, {})
        lines.append(
            f"| {row['cluster']} | {row['model']} | {row['task']} | {row['n']} | {_pct(row['constant_baseline'])} | "
            f"{_change(acc)} | {bal['base_mean'] * 100:.1f} ± {bal['base_std_templates'] * 100:.1f} | "
            f"{bal['tuned_mean'] * 100:.1f} ± {bal['tuned_std_seeds'] * 100:.1f} | "
            f"{(bal['tuned_mean'] - bal['base_mean']) * 100:+.1f} | "
            f"{_change(row.get('balanced_accuracy_calibrated'))} |"
            + "".join(f" {_pct(bal['baselines'].get(name))} |" for name in baselines)
        )
    generated = [row for row in summary["rows"] if "exact_match" in row or "exact_match_cot" in row]
    if generated:
        header = ("| held out | model | task | majority | uniform | exact match | valid options | balanced acc. "
                  "(generated) | CoT exact match | CoT valid options |")
        note = "Greedy generation, base → tuned (mean over templates and seeds); invalid answers count as wrong."
        lines += ["", note, "", header + "".join(f" {name} exact match / valid |" for name in baselines),
                  "|---|---|---|---|---|---|---|---|---|---|" + "---|" * len(baselines)]
        for row in generated:
            others = "".join(f" {_pct(row.get('exact_match', {}).get('baselines', {}).get(name))} / "
                             f"{_pct(row.get('option_rate', {}).get('baselines', {}).get(name))} |"
                             for name in baselines)
            lines.append(f"| {row['cluster']} | {row['model']} | {row['task']} | {_pct(row['constant_baseline'])} | "
                         f"{_pct(row.get('uniform_baseline'))} | {_change(row.get('exact_match'))} | "
                         f"{_change(row.get('option_rate'))} | {_change(row.get('balanced_accuracy_generated'))} | "
                         f"{_change(row.get('exact_match_cot'))} | {_change(row.get('option_rate_cot'))} |" + others)
    return "\n".join(lines) + "\n"


def cluster_summary(summary: dict) -> list[dict]:
    """Per (cluster, model): the mean over its evaluated datasets of base, tuned and baseline values of each metric."""
    groups: dict[tuple, list[dict]] = {}
    for row in summary["rows"]:
        groups.setdefault((row["cluster"], row["model"]), []).append(row)
    out = []
    for (cluster, model), rows in groups.items():
        uniform = [row["uniform_baseline"] for row in rows if row.get("uniform_baseline") is not None]
        entry = {"cluster": cluster, "model": model, "tasks": [row["task"] for row in rows],
                 "majority": statistics.fmean(row["constant_baseline"] for row in rows),
                 "uniform": statistics.fmean(uniform) if uniform else None,
                 "min_tuned_option_rate": min((row["option_rate"]["tuned_mean"] for row in rows
                                               if "option_rate" in row), default=None)}
        for key, _ in METRICS:
            present = [row[key] for row in rows if key in row]
            if not present:
                continue
            entry[key] = {"base": statistics.fmean(e["base_mean"] for e in present),
                          "tuned": statistics.fmean(e["tuned_mean"] for e in present),
                          "baselines": {name: statistics.fmean(e["baselines"][name] for e in present)
                                        for name in present[0].get("baselines", {})
                                        if all(name in e.get("baselines", {}) for e in present)}}
        out.append(entry)
    return out


def cluster_table(summary: dict) -> str:
    """FLAN's figure as a table: per held-out cluster, base vs tuned (and baselines) on each metric."""
    clusters = cluster_summary(summary)
    baselines = _baseline_names(summary)
    header = "| held out | model | datasets | majority | uniform |"
    for _, label in METRICS:
        header += f" {label}: base → tuned |" + "".join(f" {label}: {name} |" for name in baselines)
    lines = [header, "|---|---|---|---|---|" + "---|" * (len(METRICS) * (1 + len(baselines)))]
    for entry in clusters:
        line = (f"| {entry['cluster']} | {entry['model']} | {', '.join(entry['tasks'])} | {_pct(entry['majority'])} | "
                f"{_pct(entry['uniform'])} |")
        for key, _ in METRICS:
            values = entry.get(key)
            line += (f" {values['base'] * 100:.1f} → {values['tuned'] * 100:.1f} |" if values else " – |")
            line += "".join(f" {_pct(values['baselines'].get(name)) if values else '–'} |" for name in baselines)
        lines.append(line)
    return "\n".join(lines) + "\n"


def paired_table(summary: dict) -> str:
    """Per held-out cluster and its datasets, base → tuned on the same examples: each difference with its 95 %
    paired bootstrap interval (``paired.py``), and what the interval says."""
    entries = [e for e in summary.get("paired", []) if e.get("datasets")]
    if not entries:
        return ""
    header = "| held out | dataset | n | " + " | ".join(PAIRED_METRICS.values()) + " |"
    lines = ["Base → tuned, tuned − base [95 % paired bootstrap interval], in points; a difference is above or below "
             "zero only where its interval excludes zero (verdicts: ↑ above, ↓ below, = not resolved).", "",
             header, "|---|---|---|" + "---|" * len(PAIRED_METRICS)]

    def cells(figures: dict) -> str:
        return " | ".join(f"{cell(figures.get(m))} {_arrow(figures.get(m))}" for m in PAIRED_METRICS)

    for entry in entries:
        for task, figures in entry["datasets"].items():
            lines.append(f"| {entry['cluster']} | {task} | {figures['n']} | {cells(figures)} |")
        if len(entry["datasets"]) > 1:
            n = sum(f["n"] for f in entry["datasets"].values())
            lines.append(f"| **{entry['cluster']}** | mean | {n} | {cells(entry['mean'])} |")
    for model, figures in summary.get("paired_all", {}).items():
        if figures and len(entries) > 1:
            lines.append(f"| **all clusters** ({model}) | mean of clusters | | {cells(figures)} |")
    return "\n".join(lines) + "\n"


def _arrow(figures: dict | None) -> str:
    return {"above": "↑", "below": "↓", "not resolved": "="}[verdict(figures)] if figures else ""


def plot_intervals(summary: dict, path: Path) -> None:
    """One panel per metric: tuned − base per held-out dataset and cluster mean, with its 95 % paired interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = []  # (label, figures by metric, is a cluster mean)
    for entry in summary.get("paired", []):
        points += [(f"{task} ({entry['cluster']})", figures, False) for task, figures in entry["datasets"].items()]
        if len(entry["datasets"]) > 1:
            points.append((f"{entry['cluster']}: mean", entry["mean"], True))
    for model, figures in summary.get("paired_all", {}).items():
        if figures:
            points.append((f"all clusters ({model})", figures, True))
    if not points:
        return
    size = (2.6 * len(PAIRED_METRICS) + 2.2, 0.28 * len(points) + 1.4)
    figure, axes = plt.subplots(1, len(PAIRED_METRICS), figsize=size, sharey=True, squeeze=False)
    y = list(range(len(points)))[::-1]
    for axis, (metric, label) in zip(axes[0], PAIRED_METRICS.items()):
        for row, (_, figures, mean) in zip(y, points):
            f = figures.get(metric)
            if not f:
                continue
            low, high = (v * 100 for v in f["interval"])
            middle = f["difference"] * 100
            colour = {"above": "tab:green", "below": "tab:red"}.get(verdict(f), "grey")
            axis.errorbar(middle, row, xerr=[[middle - low], [high - middle]],
                          fmt="D" if mean else "o", color=colour, markersize=5 if mean else 3.5, capsize=2)
        axis.axvline(0, color="black", linewidth=0.8)
        axis.set_title(f"{label}\ntuned − base (points)", fontsize=8)
        axis.tick_params(labelsize=7)
    axes[0, 0].set_yticks(y, [label for label, _, _ in points], fontsize=7)
    figure.suptitle("Held-out clusters, zero-shot: instruction tuning's effect with 95 % paired bootstrap intervals "
                    "(green above zero, red below, grey not resolved)", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_heldout(summary: dict, path: Path) -> None:
    """One panel per metric: base, tuned (± seeds) and each baseline model per held-out task; dashes mark
    the chance level (balanced accuracy) or the uniform-guessing expectation (exact match)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [row for row in summary["rows"] if HEADLINE in row]
    if not rows:
        return
    panels = [(key, label) for key, label in METRICS if any(key in row for row in rows)]
    baselines = _baseline_names(summary)
    series = 2 + len(baselines)
    width = 0.8 / series
    labels = [f"{row['task']}\n({row['cluster']})" for row in rows]
    figure, axes = plt.subplots(len(panels), 1, figsize=(max(5, 0.9 * len(rows) + 1), 2.6 * len(panels)), squeeze=False)
    shots = summary.get("config", {}).get("eval", {}).get("shots", 0)
    for axis, (key, label) in zip(axes[:, 0], panels):
        x = list(range(len(rows)))
        entries = [row.get(key) for row in rows]
        columns = [(f"base ({f'{shots}-shot' if shots else 'zero-shot'})",
                    [e["base_mean"] if e else 0 for e in entries], None),
                   ("instruction-tuned", [e["tuned_mean"] if e else 0 for e in entries],
                    [e["tuned_std_seeds"] if e else 0 for e in entries])]
        columns += [(name, [e["baselines"].get(name, 0) if e else 0 for e in entries], None) for name in baselines]
        for k, (name, values, errors) in enumerate(columns):
            offsets = [i - 0.4 + width * (k + 0.5) for i in x]
            axis.bar(offsets, [v * 100 for v in values], width=width, label=name,
                     yerr=[e * 100 for e in errors] if errors else None, capsize=2)
        for i, row in enumerate(rows):
            level = (1 / row["classes"] if row.get("classes") else None) if "balanced" in key else (
                row.get("uniform_baseline") if key == "exact_match" else None)
            if level:
                axis.hlines(level * 100, i - 0.45, i + 0.45, color="grey", linewidth=0.8, linestyle="--")
        axis.set_ylabel(f"{label} (%)", fontsize=8)
        axis.set_xticks(x, labels, fontsize=7)
        axis.set_ylim(0, 100)
    axes[0, 0].set_title("Held-out clusters, zero-shot: mean over templates (dashes: chance / uniform guess)",
                         fontsize=9)
    axes[0, 0].legend(fontsize=7, ncol=series)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
