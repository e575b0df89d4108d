"""POUF benchmark report: docs/results/pouf.md and pouf.png from the JSON files of bench/pouf/bench.py.

    .venv/bin/python bench/pouf/bench.py report
"""

from __future__ import annotations

import statistics

from protocol import (
    DEFAULT_IMAGE_MODE,
    FURTHER_GEMMA_JSON,
    FURTHER_JSON,
    GEMMA_JSON,
    IMAGE_JSON,
    IMAGE_MODE_TEXT,
    IMAGE_MODES,
    RESULTS,
    SPEED_JSON,
    TEXT_JSON,
    load_json,
)

from unseen.pouf.text import DEFAULT_MODEL


def _mean_std(values):
    values = [100 * v for v in values]
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _fmt(values) -> str:
    mean, std = _mean_std(values)
    return f"{mean:.1f} ± {std:.1f}" if len(values) > 1 else f"{mean:.1f} (1 seed)"


def _without_check(run: dict) -> dict:
    """What the run reads without the (opt-in) neighbour check: the weights selection chose."""
    return run.get("adapted_before_fallback", run["pouf"])


def _gated(run: dict) -> bool:
    """The agreement gate kept the zero-shot weights without training."""
    return not (run.get("agreement_gate") or {}).get("passes", True)


def _gate_cell(runs: list[dict]) -> str:
    gate = runs[0].get("agreement_gate")
    if not gate:
        return "–"
    return f"{gate['kappa']:.3f} (z {gate['z']:.1f}){', kept ZS' if not gate['passes'] else ''}"


def _text_rows(text: dict) -> tuple[list[str], dict]:
    """The text table (zero-shot rows, POUF as it runs by default, POUF with the neighbour check) and its summary."""
    lines = [
        "| task | ZS single | ZS raw ens. | ZS calibrated | best ZS | POUF raw ens. | POUF calibrated | Δ vs best ZS "
        "| Δ vs ZS calibrated | balanced acc. best ZS → POUF | prompt agreement κ (z) | kept zero-shot (guard) "
        "| with neighbour check | check kept zero-shot | neighbour kappa ZS → adapted |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    plot = {}
    best_deltas, calibrated_deltas, best_all, pouf_all, checked_deltas, raw_all = [], [], [], [], [], []
    ungated = {}  # task -> POUF's mean where the gate kept zero-shot, as the runs before the gate read
    for name, entry in text["tasks"].items():
        runs = list(entry["seeds"].values())
        if not runs:
            continue
        zs = runs[0]["zeroshot"]
        best = max(("single", "ensemble", "calibrated"), key=lambda row: zs[row]["accuracy"])
        pouf = [_without_check(r)["calibrated"]["accuracy"] for r in runs]
        if entry.get("seeds_before_gate") and all(_gated(r) for r in runs):
            earlier = [_without_check(r)["calibrated"]["accuracy"] for r in entry["seeds_before_gate"].values()]
            ungated[name] = (statistics.mean(earlier) - zs["calibrated"]["accuracy"],
                             statistics.mean(pouf) - zs["calibrated"]["accuracy"])
        best_delta = statistics.mean(pouf) - zs[best]["accuracy"]
        calibrated_delta = statistics.mean(pouf) - zs["calibrated"]["accuracy"]
        best_deltas.append(best_delta)
        calibrated_deltas.append(calibrated_delta)
        best_all.append(zs[best]["accuracy"])
        pouf_all.append(statistics.mean(pouf))
        raw_all.append(statistics.mean(_without_check(r)["ensemble"]["accuracy"] for r in runs))
        adapted = _fmt([_without_check(r)["calibrated"]["balanced_accuracy"] for r in runs])
        bal = f"{100 * zs[best]['balanced_accuracy']:.1f} → {adapted}"
        guard = sum(bool(r["fallback"]) and "adapted_before_fallback" not in r and not _gated(r) for r in runs)
        checked = [r["pouf"]["calibrated"]["accuracy"] for r in runs]
        checked_deltas.append(statistics.mean(checked) - zs[best]["accuracy"])
        check_fell_back = sum("adapted_before_fallback" in r for r in runs)
        checks = [r["neighbour_check"] for r in runs
                  if r.get("neighbour_check") and "zero_shot" in r["neighbour_check"]]
        kappa = (f"{statistics.mean(c['zero_shot'] for c in checks):.3f} → "
                 f"{statistics.mean(c['adapted'] for c in checks):.3f}" if checks else "–")
        cells = [f"{100 * zs[row]['accuracy']:.1f}" for row in ("single", "ensemble", "calibrated")]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {100 * zs[best]['accuracy']:.1f} | "
                     f"{_fmt([_without_check(r)['ensemble']['accuracy'] for r in runs])} | {_fmt(pouf)} | "
                     f"{100 * best_delta:+.1f} | {100 * calibrated_delta:+.1f} | {bal} | {_gate_cell(runs)} | "
                     f"{guard}/{len(runs)} | {_fmt(checked)} | {check_fell_back}/{len(runs)} | {kappa} |")
        plot[name] = ([100 * zs[row]["accuracy"] for row in ("single", "ensemble", "calibrated")], _mean_std(pouf))
    if best_deltas:
        seeds = min(len(e["seeds"]) for e in text["tasks"].values())
        lines += ["",
                  f"Average over {len(best_deltas)} tasks: best zero-shot row {100 * statistics.mean(best_all):.1f}, "
                  f"POUF {100 * statistics.mean(pouf_all):.1f} ({100 * statistics.mean(best_deltas):+.1f} points; "
                  f"target +3). Worst task: {100 * min(best_deltas):+.1f} (target: none below −1). Against the "
                  "calibrated zero-shot ensemble alone (the row a user gets without labels): "
                  f"{100 * statistics.mean(calibrated_deltas):+.1f} on average, worst "
                  f"{100 * min(calibrated_deltas):+.1f}. POUF read at its raw ensemble instead: "
                  f"{100 * statistics.mean(raw_all):.1f}. With the neighbour check (opt-in): "
                  f"{100 * statistics.mean(checked_deltas):+.1f} on average vs best zero-shot, worst "
                  f"{100 * min(checked_deltas):+.1f}. Seeds per task: at least {seeds} of {len(text['seeds'])}."]
        for name, (before, after) in ungated.items():
            lines[-1] += (f" The agreement gate kept {name} at zero-shot; its runs before the gate read "
                          f"{100 * before:+.1f} against the calibrated row ({100 * after:+.1f} now).")
        lines.append("")
    return lines, plot


def _gate_command(data: dict) -> str:
    """Runs stored before the agreement gate: the command that measured it on them (bench.py gate)."""
    if not data.get("gate_command"):
        return ""
    return f"; the agreement gate measured on these runs afterwards: `{data['gate_command']}`"


def _default_mark(data: dict) -> str:
    return " (the text default of `unseen pouf`)" if data["protocol"]["model"] == DEFAULT_MODEL else ""


def report() -> None:
    text, image, speed = load_json(TEXT_JSON), load_json(IMAGE_JSON), load_json(SPEED_JSON)
    lines = ["# POUF results", "",
             "Regenerated by `bench/pouf/bench.py` (text, image, speed, then report). Accuracy in %, mean ± std over "
             "the seeds; the zero-shot rows do not depend on the seed. No target label is used for training or for "
             "choosing the checkpoint (label-free selection, see docs/pouf.md).", ""]
    plot = {}
    if text.get("tasks"):
        p = text["protocol"]
        lines += [f"## Text: SmolLM2-135M-Instruct, zero-shot vs POUF{_default_mark(text)}", "",
                  f"Protocol: POUF mode `{p['mode']}` on the top {p['tune_layers']} layers (inputs cached), "
                  f"{p['steps']} steps, batch {p['batch_size']}, lr {p['lr']}, the task's prompts as views; unlabeled "
                  f"data: {p['unlabeled']} texts of the train split (labels dropped); evaluation: {p['eval']} examples "
                  "of the test/validation split (a fixed random subset where larger; ag_news: disjoint halves of its "
                  f"test split). Seeds: {', '.join(str(s) for s in text['seeds'])}. Command: "
                  f"`{text['command']}`{_gate_command(text)}.", "",
                  "POUF is read with the calibrated prompt ensemble (the default readout, fixed before these runs). It "
                  "is compared with the *best* of the three label-free zero-shot rows of each task; picking that row "
                  "takes the labels, so this baseline is stronger than any a user could pick without them.", "",
                  "POUF columns are what `unseen pouf adapt` gives by default. The *agreement gate* (on by default) "
                  "adapts only where the calibrated prompts' zero-shot answers on the unlabeled texts agree beyond "
                  "chance (Fleiss κ, z ≥ 1.96; else the zero-shot weights are kept, *kept ZS*). *With neighbour check* "
                  "is the opt-in `--neighbour-check` (docs/pouf.md), measured on the same runs: it keeps the zero-shot "
                  "weights where the adapted answers agree less with their inputs' neighbours (MiniLM, 10 nearest, "
                  "chance-corrected kappa) than zero-shot's. *Kept zero-shot (guard)* counts the collapse guard's and "
                  "the selection's own fallbacks.", ""]
        rows, plot = _text_rows(text)
        lines += rows
        further = load_json(FURTHER_JSON)
        if further.get("tasks"):
            lines += ["### Further tasks", "",
                      "Tasks the neighbour check was not developed on, same protocol, prompts from "
                      f"{further['prompts']} (written before any run), seeds {', '.join(map(str, further['seeds']))}; "
                      f"finished here: {', '.join(further['tasks'])}. Command: "
                      f"`{further['command']}`{_gate_command(further)}.", ""]
            lines += _text_rows(further)[0]
        gemma = load_json(GEMMA_JSON)
        if gemma.get("tasks"):
            lines += [f"### The same tasks on Gemma 3 270M{_default_mark(gemma)}", "",
                      "The other causal LM shipped offline (pretrained only, twice SmolLM2's parameters, most of them "
                      "its 262k-word embedding), same protocol and prompts, fixed before its first run (top 4 of its "
                      f"18 layers tuned); seeds {', '.join(map(str, gemma['seeds']))}. Command: "
                      f"`{gemma['command']}`{_gate_command(gemma)}.", ""]
            lines += _text_rows(gemma)[0]
        further_gemma = load_json(FURTHER_GEMMA_JSON)
        if further_gemma.get("tasks"):
            lines += ["### Further tasks on Gemma 3 270M", "",
                      "Tasks neither the default model nor the agreement gate was developed on: snli and boolq with "
                      "the prompts above, creak and strategyqa with prompts added to the same file before their first "
                      f"run; seeds {', '.join(map(str, further_gemma['seeds']))}; finished here: "
                      f"{', '.join(further_gemma['tasks'])}. Command: `{further_gemma['command']}`.", ""]
            lines += _text_rows(further_gemma)[0]
        seconds = [r.get("adapt_seconds", 0) for e in text["tasks"].values() for r in e["seeds"].values()
                   if not _gated(r)]
        if seconds:
            lines += [f"Adaptation wall time per run (caching the frozen layers included on the first seed): median "
                      f"{statistics.median(seconds):.0f} s on {text['machine'].get('cpus')} shared CPU cores.", ""]
    if image.get("domains"):
        p = image["protocol"]
        lines += ["## Images: ConSE (EfficientNet-Lite0 × MiniLM) on PACS", "",
                  f"ConSE top-{p['top_k']} (see docs/pouf.md). Targets are adapted on their images without labels and "
                  f"evaluated on a fixed random subset of {p['eval']} of the same images (transductive, as in the "
                  "official code). "
                  + " ".join(f"POUF {mode}: {IMAGE_MODE_TEXT[mode]}, {knobs['steps']} steps, lr {knobs['lr']}, "
                             f"{knobs['views']} view(s) per image." for mode, knobs in p["modes"].items()) + " "
                  f"Command: `{image['command']}`.", "",
                  f"The default mode is `{DEFAULT_IMAGE_MODE}`; Δ compares it with the best of the three label-free "
                  "zero-shot rows (CLIP's template ensemble averages normalised class embeddings; the calibrated row "
                  "divides that ensemble's class prior over the evaluated images out).", "",
                  "| domain | ZS single | ZS ensemble | ZS calibrated | " + " | ".join(f"POUF {m}" for m in IMAGE_MODES)
                  + f" | Δ {DEFAULT_IMAGE_MODE} vs best ZS |", "|---|---|---|---|" + "---|" * len(IMAGE_MODES) + "---|"]
        balanced = ["", "Balanced accuracy (mean recall over the 7 classes; any constant answer scores 14.3) and the "
                    "accuracy of always giving the most frequent class, so that a shift of the predicted class "
                    "distribution is not mistaken for adaptation:", "",
                    "| domain | always-same | ZS single | ZS ensemble | ZS calibrated | "
                    + " | ".join(f"POUF {m}" for m in IMAGE_MODES) + " |",
                    "|---|---|---|---|---|" + "---|" * len(IMAGE_MODES)]
        for domain, entry in image["domains"].items():
            zs = entry.get("zeroshot", {})
            if not zs and entry.get("runs"):  # the zero-shot scores measured inside the runs (same images)
                zs = next(iter(entry["runs"].values()))["zeroshot"]
            name = f"{domain}{' (reference)' if domain == p['reference'] else ''}"
            for metric, rows in (("accuracy", lines), ("balanced_accuracy", balanced)):
                cells = [f"{100 * zs[kind][metric]:.1f}" if kind in zs else "–"
                         for kind in ("single", "ensemble", "calibrated")]
                for mode in IMAGE_MODES:
                    values = [r["pouf"]["single"][metric] for k, r in entry.get("runs", {}).items()
                              if k.startswith(mode + "/")]
                    cells.append(_fmt(values) if values else "–")
                default = [r["pouf"]["single"][metric] for k, r in entry.get("runs", {}).items()
                           if k.startswith(DEFAULT_IMAGE_MODE + "/")]
                if metric == "accuracy":
                    best = max(zs[kind][metric] for kind in ("single", "ensemble", "calibrated") if kind in zs)
                    cells.append(f"{100 * (statistics.mean(default) - best):+.1f}" if default else "–")
                if metric == "balanced_accuracy":
                    cells.insert(0, f"{100 * zs['single']['constant_baseline']:.1f}" if zs else "–")
                rows.append(f"| {name} | " + " | ".join(cells) + " |")
        lines += balanced + [""]
    if speed.get("timings"):
        t = speed["timings"]
        lines += ["## Speed: one prompt-tuning step", "",
                  f"Batch of {speed['protocol']['batch']} PACS sketches, ConSE, POUF loss + backward + AdamW on the "
                  f"context vectors; median of {speed['protocol']['repeats']} steps, same process, back to back.", "",
                  "| step | median | min |", "|---|---|---|"]
        for name, timing in t.items():
            lines.append(f"| {name} | {1000 * timing['median_s']:.1f} ms | {1000 * timing['min_s']:.1f} ms |")
        lines += ["", f"Cached features make the step {speed['ratio']:.0f}x faster.", ""]
    for data in (text, image, speed):
        if data:
            m = data["machine"]
            lines.append(f"- {data['kind']}: {m.get('cpu', '?')}, {m.get('cpus')} CPUs, {m.get('memory_gib', '?')} "
                         f"GiB, torch {m.get('torch')} ({m.get('torch_threads')} threads), commit "
                         f"{m.get('git_commit')}, {data.get('started')} – {data.get('finished', data.get('started'))}")
    (RESULTS / "pouf.md").write_text("\n".join(lines) + "\n")
    if plot:
        _plot(plot, image, min(len(e["seeds"]) for e in text["tasks"].values()))
    print(f"wrote {RESULTS / 'pouf.md'}")


def _plot(text_rows: dict, image: dict, seeds: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2 if image.get("domains") else 1, figsize=(13, 4.2), squeeze=False,
                                gridspec_kw={"width_ratios": [3, 1]} if image.get("domains") else None)
    ax = axes[0][0]
    names = list(text_rows)
    x = range(len(names))
    width = 0.2
    zero_shot = [("zero-shot, single prompt", "#dddddd"), ("zero-shot, raw ensemble", "#aaaaaa"),
                 ("zero-shot, calibrated ensemble", "#666666")]
    for offset, (label, color) in enumerate(zero_shot):
        ax.bar([i + (offset - 1.5) * width for i in x], [text_rows[n][0][offset] for n in names], width, label=label,
               color=color)
    ax.bar([i + 1.5 * width for i in x], [text_rows[n][1][0] for n in names], width,
           yerr=[text_rows[n][1][1] for n in names], label="POUF, calibrated ensemble", color="#2a7ab9", capsize=2)
    ax.set_xticks(list(x), names)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"SmolLM2-135M-Instruct: zero-shot vs POUF (at least {seeds} seed{'s' if seeds > 1 else ''})")
    ax.legend(fontsize=8, loc="lower right")
    if image.get("domains"):
        ax = axes[0][1]
        domains = list(image["domains"])
        colors = {"prompt": "#2a7ab9", "ln": "#4daf4a", "full": "#d9822b", "lora": "#984ea3"}
        series = [("zero-shot single", lambda e: [e["zeroshot"]["single"]["accuracy"]], "#bbbbbb"),
                  ("zero-shot ensemble", lambda e: [e["zeroshot"]["ensemble"]["accuracy"]], "#aaaaaa"),
                  ("zero-shot calibrated", lambda e: [e["zeroshot"]["calibrated"]["accuracy"]], "#666666")]
        series += [(f"POUF {mode}", lambda e, mode=mode: [r["pouf"]["single"]["accuracy"] for k, r in e["runs"].items()
                                                          if k.startswith(mode + "/")], colors.get(mode, "#333333"))
                   for mode in IMAGE_MODES]
        width = 0.8 / len(series)
        for offset, (label, getter, color) in enumerate(series):
            values = [getter(image["domains"][d]) or [0] for d in domains]
            means = [_mean_std(v) for v in values]
            ax.bar([i + (offset - (len(series) - 1) / 2) * width for i in range(len(domains))],
                   [m for m, _ in means], width, yerr=[s for _, s in means], label=label, color=color, capsize=2)
        ax.set_xticks(range(len(domains)), domains)
        ax.set_ylim(0, 100)
        ax.set_title("ConSE on PACS")
        ax.legend(fontsize=7, loc="upper right")
    figure.tight_layout()
    figure.savefig(RESULTS / "pouf.png", dpi=110)
