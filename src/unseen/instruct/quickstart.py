"""The shipped-adapter step of `unseen quickstart`: Gemma 3 270M base vs the same model with the
LoRA adapter instruction-tuned with the commonsense cluster held out, on a held-out commonsense
task, by greedy generation only (rank scoring is the instruct step's job; generation is where
instruction tuning shows at this size). Settings: ``instruct_adapter`` in configs/quickstart.yaml.
"""

from __future__ import annotations

import time
from pathlib import Path

from unseen.core.tables import shorten, table
from unseen.instruct.evaluate import EvalConfig, evaluate
from unseen.instruct.train import adapter_folder, load_model


def shipped_adapter(name: str) -> Path:
    """A folder under ``unseen/instruct/weights`` (shipped in the wheel), or any adapter path."""
    return adapter_folder(name)


def run(console, settings: dict, data_dir=None) -> dict:
    """Evaluate both models, print one rich table, return the numbers for results.json."""
    started = time.perf_counter()
    task = settings["task"]
    config = EvalConfig(tasks=[task], templates=list(settings["templates"]), limit=settings["limit"],
                        generate=True, rank_scoring=False)
    adapter = shipped_adapter(settings["adapter"])
    numbers = {}
    for label, adapter_path in (("base", None), ("tuned", adapter)):
        model, tokenizer = load_model(settings["model"], adapter_path)
        results = evaluate(model, tokenizer, config, data_dir=data_dir, progress=False)
        summary = results["results"][task]
        first_template = next(iter(results["templates"][task].values()))
        sample = first_template["samples"][0]
        numbers[label] = {"exact_match": summary["exact_match"]["mean"], "option_rate": summary["option_rate"]["mean"],
                          "n": summary["n"], "templates": summary["exact_match"]["templates"],
                          "sample_output": sample["output"], "sample_target": sample["target"]}
    baselines = {key: summary[key] for key in ("constant_baseline", "uniform_baseline")}
    step = {"config": settings, "adapter": str(adapter), **numbers, **baselines,
            "seconds": round(time.perf_counter() - started, 1)}
    console.print(results_table(step))
    return step


def results_table(step: dict):
    """The step's terminal table: base and tuned, with the first example's answer and target."""
    settings = step["config"]
    rows = [[f"{settings['model']} {label}", step[label]["n"], step[label]["exact_match"], step[label]["option_rate"],
             shorten(repr(step[label]["sample_output"]), 60), shorten(repr(step[label]["sample_target"]), 60)]
            for label in ("base", "tuned")]
    title = (f"Held-out {settings['task']} by generation ({len(settings['templates'])} templates, first "
             f"{settings['limit']}; majority {step['constant_baseline']:.3f}, uniform {step['uniform_baseline']:.3f})")
    return table(title, ["model", "n", "exact match", "valid options", "first answer", "target"], rows)


def results_markdown(step: dict) -> list[str]:
    """The step's section of results.md."""
    settings = step["config"]
    lines = [f"## Instruct adapter: held-out {settings['task']} by generation, base vs commonsense-held-out LoRA", "",
             "| model | n | exact match | valid options | first answer | majority | uniform |",
             "|---|---|---|---|---|---|---|"]
    for label in ("base", "tuned"):
        r = step[label]
        answer = r["sample_output"].replace("|", "\\|")
        lines.append(f"| {settings['model']} {label} | {r['n']} | {r['exact_match']:.3f} | {r['option_rate']:.3f} | "
                     f"{answer} | {step['constant_baseline']:.3f} | {step['uniform_baseline']:.3f} |")
    return lines + [""]
