"""`unseen quickstart`: the main job on the embedded defaults (configs/quickstart.yaml)."""

from __future__ import annotations

import json
import time
from importlib import resources
from pathlib import Path
from typing import Optional

import typer
import yaml

from unseen.cli.common import DataDirOption, console, table


def _defaults() -> dict:
    return yaml.safe_load(resources.files("unseen.configs").joinpath("quickstart.yaml").read_text(encoding="utf-8"))


def quickstart(
    out: Path = typer.Option(Path("runs/quickstart"), "--out", help="Where results.json and results.md go."),
    limit: Optional[int] = typer.Option(None, "--limit",
                                        help="Examples in the zero-shot evaluation (default from the config)."),
    skip_assets: bool = typer.Option(False, "--skip-assets", help="Skip loading every asset."),
    data_dir: Optional[str] = DataDirOption,
):
    """Check the assets, tour the data, then a short step per method: FLAN, POUF, scene text.

    Takes a few minutes on 2 CPU cores (the first run also converts the language
    models to safetensors once).

    Example: unseen quickstart --limit 100
    """
    from unseen.cli.data import show
    from unseen.core.assets.checks import check_asset
    from unseen.core.data import check_available, load_dataset
    from unseen.core.metrics import classification_report

    config = _defaults()
    check_available(_datasets(config), data_dir)  # missing data fails here, in a second, not after the slow steps
    from unseen.scenetext.icdar import dataset_root

    dataset_root(data_dir)  # the ICDAR 2015 photos of the scene-text step (a folder, not a registered dataset)
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {"config": config}

    if not skip_assets:
        console.print("[bold]1. Assets[/]: load each offline model and ask it for one real output")
        rows = []
        for name in config["assets"]:
            with console.stdout.status(f"loading {name}..."):
                check = check_asset(name)
            rows.append([name, "ok" if check.ok else "FAILED", round(check.load_seconds, 1), check.output])
        console.print(table("Assets", ["asset", "status", "load s", "output"], rows))
        results["assets"] = [dict(zip(["asset", "status", "load_s", "output"], row)) for row in rows]

    console.print("[bold]2. Data[/]: records load by name with Hugging Face field names")
    for item in config["data_tour"]["show"]:
        show(item["dataset"], item["split"], item["n"], data_dir)

    step = config["zeroshot"]
    limit = limit or step["limit"]
    console.print(f"[bold]3. Zero-shot[/]: {step['model']} on {step['dataset']}/{step['split']} "
                  f"(first {limit}), rank scoring")
    from unseen.core.assets import load_causal_lm
    from unseen.core.scoring import score_options

    records = load_dataset(step["dataset"], step["split"], data_dir=data_dir)[:limit]
    model, tokenizer = load_causal_lm(step["model"])
    started = time.perf_counter()
    prompts = [step["prompt"].format(**record) for record in records]
    scores = score_options(model, tokenizer, prompts, [step["options"]] * len(prompts), progress=True)
    seconds = time.perf_counter() - started
    predictions = [max(range(len(s.loglik)), key=s.loglik.__getitem__) for s in scores]
    report = classification_report(predictions, [r["label"] for r in records], len(step["options"]))
    report["examples_per_second"] = len(records) / seconds
    results["zeroshot"] = report
    _write(out, results)
    console.print(
        table(
            "Zero-shot rank classification",
            ["model", "task", "n", "accuracy", "balanced acc.", "always-majority", "ex/s"],
            [[step["model"], step["dataset"], report["n"], report["accuracy"], report["balanced_accuracy"],
              report["constant_baseline"], report["examples_per_second"]]],
        )
    )
    instruct_step = config["instruct"]
    console.print(f"[bold]4. Instruct[/]: {instruct_step['model']} zero-shot on held-out {instruct_step['task']} "
                  f"with {len(instruct_step['templates'])} templates")
    from unseen.instruct.evaluate import EvalConfig, evaluate

    if instruct_step["model"] != config["zeroshot"]["model"]:
        model, tokenizer = load_causal_lm(instruct_step["model"])

    instruct_results = evaluate(
        model, tokenizer,
        EvalConfig(tasks=[instruct_step["task"]], templates=instruct_step["templates"], limit=instruct_step["limit"]),
        data_dir=data_dir,
    )
    console.print(table("Instruct: held-out task, rank scoring, mean ± std (max) over templates",
                        ["model", "task", "n", "templates", "accuracy", "balanced acc.", "always-majority"],
                        _instruct_rows(instruct_results["results"], instruct_step["model"])))
    results["instruct"] = instruct_results["results"]
    _write(out, results)

    adapter_step = config["instruct_adapter"]
    console.print(f"[bold]5. Instruct adapter[/]: {adapter_step['model']} base vs its shipped LoRA adapter "
                  f"(instruction-tuned with commonsense held out) on held-out {adapter_step['task']}, by generation")
    from unseen.instruct import quickstart as adapter_quickstart

    results["instruct_adapter"] = adapter_quickstart.run(console.stdout, adapter_step, data_dir)
    _write(out, results)

    # each method adds its own short step; the step prints its table and returns its numbers
    from unseen.pouf import quickstart as pouf_step

    console.print("[bold]6. POUF[/]: unsupervised adaptation of a prompted model")
    results["pouf"] = pouf_step.run(console.stdout, data_dir)
    _write(out, results)

    from unseen.scenetext import quickstart as str_step

    console.print("[bold]7. Scene text[/]: read two ICDAR 2015 photos end to end, then IC15 crops without and with "
                  "a small pool")
    results["scenetext_photos"] = str_step.run_photos(console.stdout, data_dir, out)
    _write(out, results)
    results["scenetext"] = str_step.run(console.stdout, data_dir)
    _write(out, results)
    console.print(f"results written to {out}/results.json and results.md")


def _datasets(config: dict) -> list[str]:
    """Every dataset the quickstart reads: the config's, and those of the POUF step (sst2) and the
    scene-text step (ic15), which keep their settings in their own modules."""
    return [item["dataset"] for item in config["data_tour"]["show"]] + [
        config["zeroshot"]["dataset"], config["instruct"]["task"], config["instruct_adapter"]["task"], "sst2", "ic15"]


def _percent(summary: dict) -> str:
    return f"{summary['mean'] * 100:.1f} ± {summary['std'] * 100:.1f} ({summary['max'] * 100:.1f})" if summary else "–"


def _instruct_rows(per_task: dict, model: str) -> list[list]:
    return [[model, task, m["n"], m.get("accuracy", {}).get("templates", 0), _percent(m.get("accuracy", {})),
             _percent(m.get("balanced_accuracy", {})),
             f"{m['constant_baseline'] * 100:.1f}" if "constant_baseline" in m else "–"]
            for task, m in per_task.items()]


def _write(out: Path, results: dict) -> None:
    """Written after every step, so a failure late in the run keeps the finished steps."""
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (out / "results.md").write_text(results_markdown(results))


def results_markdown(results: dict) -> str:
    lines = ["# unseen quickstart results", ""]
    if "zeroshot" in results:
        step, report = results["config"]["zeroshot"], results["zeroshot"]
        lines += ["## Zero-shot rank classification", "",
                  "| model | task | n | accuracy | balanced accuracy | always-majority |", "|---|---|---|---|---|---|",
                  f"| {step['model']} | {step['dataset']}/{step['split']} | {report['n']} | {report['accuracy']:.3f} | "
                  f"{report['balanced_accuracy']:.3f} | {report['constant_baseline']:.3f} |", ""]
    if "instruct" in results:
        from unseen.instruct.evaluate import markdown_table

        lines += ["## Instruct: held-out task, mean ± std (max) over templates", "",
                  markdown_table({"results": results["instruct"]}, results["config"]["instruct"]["model"])]
    if "instruct_adapter" in results:
        from unseen.instruct.quickstart import results_markdown as adapter_markdown

        lines += adapter_markdown(results["instruct_adapter"])
    if "pouf" in results:
        pouf = results["pouf"]
        lines += ["## POUF", "", "| model | prompts | accuracy | balanced accuracy |", "|---|---|---|---|"]
        for label, key in (("zero-shot", "zeroshot"), ("after POUF", "pouf")):
            for readout, r in pouf[key].items():
                lines.append(f"| {label} | {readout} | {r['accuracy']:.3f} | {r['balanced_accuracy']:.3f} |")
        lines.append("")
    if "scenetext_photos" in results:
        lines += ["## Scene text in whole photos (ICDAR 2015 test)", "",
                  "| photo | words read | drawn |", "|---|---|---|"]
        step = results["scenetext_photos"]
        for i, photo in enumerate(step["photos"]):
            words = " ".join(w["text"] for w in photo["words"]) or "(none)"
            drawn = Path(step["drawn"][i]).name if i < len(step["drawn"]) else ""
            lines.append(f"| {Path(photo['path']).name} | {words} | {drawn} |")
        lines.append("")
    if "scenetext" in results:
        s = results["scenetext"]
        lines += ["## Scene text (IC15 test crops, 36-character word accuracy)", "",
                  "| crops | recognizer | pool | no context | with pool + batch lexicon | fixed | broken |",
                  "|---|---|---|---|---|---|---|",
                  f"| {s['queries']} | {s.get('encoder', 'e2str-lite')} | "
                  f"{s['pool_size']} IC15-train crops ({s['n']}) | {s['accuracy_no_context']:.3f} | "
                  f"{s['accuracy_with_pool']:.3f} | {s['fixed']} | {s['broken']} |", ""]
    return "\n".join(lines) + "\n"
