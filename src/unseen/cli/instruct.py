"""`unseen instruct`: look at the FLAN instruction templates on real data, and check them."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape

from unseen.cli.common import DataDirOption, console, table
from unseen.core.data import check_available
from unseen.core.errors import UnseenError
from unseen.core.tables import markdown_tables, shorten
from unseen.instruct import lint, load_clusters, load_records, load_templates, render

app = typer.Typer(
    help="FLAN instruction tuning: templates, lint, zero-shot evaluation, training, the held-out protocol.",
    no_args_is_help=True,
)

TemplatesDirOption = typer.Option(
    None, "--templates-dir", help="An extra template YAML file or folder (repeatable); it replaces the package file of "
                                  "its dataset."
)


@app.command("templates")
def templates(
    dataset: str = typer.Argument(..., help="Dataset name, e.g. rte."),
    n: int = typer.Option(2, "--n", min=0, help="Examples rendered per template."),
    split: Optional[str] = typer.Option(None, "--split",
                                        help="Split name or role (train, eval); default: the eval split."),
    template_id: Optional[str] = typer.Option(None, "--template", help="Show only this template id."),
    max_chars: int = typer.Option(600, "--max-chars", min=0, help="Shorten longer inputs (0: never)."),
    templates_dir: Optional[List[Path]] = TemplatesDirOption,
    data_dir: Optional[str] = DataDirOption,
):
    """Show a dataset's templates rendered on its first examples.

    Example: unseen instruct templates rte --n 1 --template rte_given_passage
    """
    tasks = load_templates(*(templates_dir or []))
    if dataset not in tasks:
        raise UnseenError(f"no templates for dataset {dataset!r}; datasets: {', '.join(sorted(tasks))}")
    task = tasks[dataset]
    chosen = [task.template(template_id)] if template_id else task.templates
    role = split or "eval"
    records = load_records(task, role, data_dir) if n else []
    turned = sum(template.turned_around for template in task.templates)
    splits = ", ".join(f"{key}={value}" for key, value in task.splits.items())
    console.print(
        f"[bold]{escape(dataset)}[/]: cluster {escape(task.cluster)}, metric {task.metric}, splits {escape(splits)}; "
        f"{len(task.templates)} templates ({turned} turned around); showing split "
        f"{escape(task.splits.get(role, role))}",
        highlight=False,
    )
    rows = []
    for template in chosen:
        kind = ", ".join(
            [("options" if template.options else "no options") if template.classification
             else f"generative ({template.metric})"]
            + (["turned around"] if template.turned_around else [])
            + ([f"filter: {template.filter}"] if template.filter else [])
        )
        shown = 0
        for index, record in enumerate(records[:1000]):
            example = render(template, record)
            if example is None:
                continue
            text = shorten(example.input, max_chars) if max_chars else example.input
            rows.append([escape(template.id), escape(kind), index, escape(text), escape(example.target)])
            shown += 1
            if shown == n:
                break
        if not shown:
            rows.append([escape(template.id), escape(kind), "-", "(no example shown)", ""])
    console.print(table(f"{dataset} templates", ["template", "kind", "example", "input", "target"], rows))


@app.command("lint")
def lint_command(
    data_dir: Optional[str] = DataDirOption,
    templates_dir: Optional[List[Path]] = TemplatesDirOption,
    dataset: Optional[List[str]] = typer.Option(None, "--dataset", help="Check only this dataset (repeatable)."),
    max_examples: int = typer.Option(200, "--max-examples", min=1, help="Examples checked per split."),
):
    """Check every template on the first examples of every split; exit code 1 if anything is wrong.

    Checks: renders without unknown fields, targets among the answer choices, label in range,
    every required record field used, no stray braces, no duplicates, at most 3 turned around.

    Example: unseen instruct lint --data-dir ../shared/data --templates-dir my_templates/
    """
    tasks = load_templates(*(templates_dir or []))
    for name in dataset or []:
        if name not in tasks:
            raise UnseenError(f"no templates for dataset {name!r}; datasets: {', '.join(sorted(tasks))}")
    if dataset:
        tasks = {name: task for name, task in tasks.items() if name in dataset}
    problems = lint(tasks, data_dir=data_dir, max_examples=max_examples)
    count = sum(len(task.templates) for task in tasks.values())
    if problems:
        rows = [[escape(p.source), escape(p.template or "-"), escape(p.message)] for p in problems]
        console.print(table(f"{len(problems)} problem(s) in {len(tasks)} datasets",
                            ["file", "template", "problem"], rows))
        raise typer.Exit(1)
    console.print(
        f"ok: {len(tasks)} datasets, {count} templates, the first {max_examples} examples of every split: no problems",
        highlight=False,
    )


# keeping what the base knew (issue 33): shared by `train` and `heldout`; unseen.instruct.keep explains each. Their own
# help panel: its table is sized by these options alone, so their names fit an 80-column terminal
KEEP_PANEL = "Keeping what the base knew"
PromptLossOption = typer.Option(0.0, "--prompt-loss-weight", rich_help_panel=KEEP_PANEL, min=0.0,
                                help="Prompt tokens as targets too, weighted against answer tokens (1: the "
                                     "full-sequence loss; 0: answers only).")
KlWeightOption = typer.Option(0.0, "--kl-weight", rich_help_panel=KEEP_PANEL, min=0.0,
                              help="Weight of KL(base || tuned) of the next-token distributions on the same rows; the "
                                   "base is the LoRA model with its adapters disabled (LoRA only).")
KlOnOption = typer.Option("both", "--kl-on", rich_help_panel=KEEP_PANEL,
                          help="Where the KL applies: positions predicting answer, prompt or both kinds of tokens.")
KlPositionsOption = typer.Option(64, "--kl-max-positions", rich_help_panel=KEEP_PANEL, min=0,
                                 help="KL positions per batch at most, drawn at random (0: all); the 262k-row output "
                                      "layer runs only at these.")
KlTopKOption = typer.Option(0, "--kl-top-k", rich_help_panel=KEEP_PANEL, min=0,
                            help="KL over the base's top-k tokens only, both renormalized over them (0: full "
                                 "vocabulary).")
ReplayOption = typer.Option(0.0, "--replay-fraction", rich_help_panel=KEEP_PANEL, min=0.0,
                            help="Raw texts of the training datasets (no template) per mixture example, trained by "
                                 "language modelling.")
ReplayWeightOption = typer.Option(1.0, "--replay-weight", rich_help_panel=KEEP_PANEL, min=0.0,
                                  help="Weight of the replay loss.")
NoOptionsOption = typer.Option(0.0, "--no-options-fraction", rich_help_panel=KEEP_PANEL, min=0.0, max=1.0,
                               help="Share of the examples whose template lists OPTIONS rendered without the list "
                                    "(FLAN 2022's mix).")
LoraROption = typer.Option(16, "--lora-r", min=1, help="LoRA rank (alpha = 2 r).")


def _keep_options(prompt_loss_weight, kl_weight, kl_on, kl_max_positions, kl_top_k, replay_fraction,
                  replay_weight, lora_r) -> dict:
    if kl_on not in ("answer", "prompt", "both"):
        raise UnseenError(f"--kl-on {kl_on!r}: expected answer, prompt or both")
    return {"prompt_loss_weight": prompt_loss_weight, "kl_weight": kl_weight, "kl_on": kl_on,
            "kl_max_positions": kl_max_positions, "kl_top_k": kl_top_k, "replay_fraction": replay_fraction,
            "replay_weight": replay_weight, "lora_r": lora_r, "lora_alpha": 2 * lora_r}


def _split_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


@app.command("eval")
def eval_command(
    model: str = typer.Option("smollm2-135m-instruct", "--model",
                              help="Asset name, model folder, hub id, or a run's model/ folder."),
    adapter: Optional[Path] = typer.Option(None, "--adapter",
                                           help="A LoRA adapter folder (peft; or a run folder holding model/) applied "
                                                "to --model, e.g. a shipped instruction-tuned adapter."),
    tasks: str = typer.Option("rte", "--tasks", help="Comma-separated datasets."),
    templates: str = typer.Option("all", "--templates", help="'all' or comma-separated template ids."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="First N examples of each task."),
    split: str = typer.Option("eval", "--split",
                              help="The split evaluated: its role in the task file ('eval', 'train') or a split name."),
    shots: int = typer.Option(0, "--shots", min=0, help="Exemplars from the train split, in the same template."),
    calibrate: bool = typer.Option(False, "--calibrate", help="Also report content-free calibrated scores."),
    generate: bool = typer.Option(False, "--generate",
                                  help="Also decode greedily (stopping at the end of the answer's line) and read the "
                                       "answer back as an option: exact match, valid-option rate, balanced accuracy, "
                                       "beside the majority and uniform baselines; runs the chain-of-thought "
                                       "templates."),
    turned_around: bool = typer.Option(False, "--turned-around",
                                       help="Also evaluate turned-around (generative) templates."),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    int8: bool = typer.Option(False, "--int8",
                              help="CPU only: int8 dynamic quantization of the transformer body's linear layers "
                                   "(embeddings and output layer stay fp32). Faster scoring; scores move slightly, so "
                                   "predictions with close options can change (docs/instruct.md, 'Scoring speed')."),
    out: Path = typer.Option(Path("results/instruct_eval.json"), "--out",
                             help="Results JSON; a Markdown table goes beside it."),
    templates_dir: Optional[List[Path]] = TemplatesDirOption,
    data_dir: Optional[str] = DataDirOption,
):
    """Zero- or few-shot evaluation over templates: per template, and mean ± std (max) over templates.

    The default scoring is exact fp32; --int8 is the faster, approximate CPU path.

    Example: unseen instruct eval --model smollm2-135m-instruct --tasks rte,cb --limit 50 --out results/rte_cb.json

    Example: unseen instruct eval --model gemma3-270m --adapter runs/flan-commonsense --tasks ecqa --generate
    """
    from unseen.instruct.evaluate import EvalConfig, evaluate, markdown_table, write_results
    from unseen.instruct.train import load_model

    config = EvalConfig(tasks=_split_list(tasks), templates="all" if templates == "all" else _split_list(templates),
                        limit=limit, split=split, shots=shots, calibrate=calibrate, generate=generate,
                        include_turned_around=turned_around, batch_size=batch_size)
    loaded = load_templates(*(templates_dir or []))
    for name in config.tasks:
        if name not in loaded:
            raise UnseenError(f"no templates for task {name!r}; tasks: {', '.join(sorted(loaded))}")
    check_available([loaded[name].dataset for name in config.tasks], data_dir)  # before the model loads
    if split != "eval":  # a missing split is named before the model loads too
        for name in config.tasks:
            load_records(loaded[name], split, data_dir)
    label = f"{model} + {adapter}" if adapter else model
    with console.stdout.status(f"loading {label}..."):
        lm, tokenizer = load_model(model, adapter)
    if int8:
        from unseen.core.scoring import quantize_for_cpu

        lm = quantize_for_cpu(lm)
    else:
        from unseen.core.training import best_device

        lm = lm.to(best_device())
    results = evaluate(lm, tokenizer, config, data_dir=data_dir, tasks=loaded)
    results["model"] = model
    results["adapter"] = str(adapter) if adapter else None
    results["quantization"] = "int8-dynamic" if int8 else None
    write_results(results, out, label=label)
    for block in markdown_tables(markdown_table(results, label)):
        console.print(block)
    console.print(f"results written to {out} and {out.with_suffix('.md')}")


@app.command("compare")
def compare_command(
    base: Path = typer.Argument(..., help="`unseen instruct eval --generate` results of the model before tuning."),
    tuned: List[Path] = typer.Argument(..., help="Results after tuning, on the same examples and templates (several: "
                                                 "seeds, averaged)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Also write the comparison as JSON, a Markdown table "
                                                           "beside it."),
):
    """Base → tuned on the same examples: each difference with a 95 % paired bootstrap interval over the examples.

    Per dataset: exact match, valid-option rate, balanced accuracy of the generated answers, rank-scoring balanced
    accuracy (means over templates); a difference is above or below zero only where its interval excludes it.

    Example: unseen instruct compare runs/base.json runs/tuned.json --out results/base_vs_tuned.json
    """
    import json

    from unseen.core.io import atomic_write
    from unseen.instruct.paired import COMPARISON_COLUMNS, compare_cluster, comparison_markdown, comparison_rows

    def read(path: Path) -> dict:
        try:
            results = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise UnseenError(f"{path}: not a readable results JSON ({error})") from None
        if not isinstance(results, dict) or "templates" not in results:
            raise UnseenError(f"{path}: no per-template results; give files written by `unseen instruct eval --out`")
        return results

    before, after = read(base), [read(path) for path in tuned]
    try:
        result = compare_cluster(before, after, list(before["templates"]))
    except ValueError as error:
        raise UnseenError(f"{base} vs {', '.join(map(str, tuned))}: {error}") from None
    if not result["datasets"]:
        raise UnseenError(f"{base}: no per-example predictions shared by the files; evaluate both with "
                          "`unseen instruct eval --generate` on the same --tasks, --templates and --limit")
    rows = comparison_rows(result)
    console.print(table(f"{base.name} → {', '.join(path.name for path in tuned)}", COMPARISON_COLUMNS, rows))
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(out, json.dumps({"base": str(base), "tuned": [str(p) for p in tuned]}
                                     | {k: v for k, v in result.items() if k != "draws"}, indent=1) + "\n")
        atomic_write(out.with_suffix(".md"), comparison_markdown(rows))
        console.print(f"written to {out} and {out.with_suffix('.md')}")


@app.command("train")
def train_command(
    model: str = typer.Option("smollm2-135m-instruct", "--model", help="Asset name, model folder or hub id."),
    heldout: str = typer.Option("nli", "--heldout", help="Clusters held out of training (comma-separated)."),
    steps: int = typer.Option(200, "--steps", min=1),
    lora: bool = typer.Option(True, "--lora/--full", help="LoRA adapters (default) or full fine-tuning."),
    cap: int = typer.Option(1000, "--cap", min=1, help="Examples per dataset at most (examples-proportional mixing)."),
    fewshot_fraction: float = typer.Option(0.0, "--fewshot-fraction", min=0.0, max=1.0,
                                           help="Share of few-shot examples."),
    max_length: int = typer.Option(256, "--max-length", min=16, help="Tokens per packed row."),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    lr: float = typer.Option(2e-4, "--lr"),
    seed: int = typer.Option(0, "--seed"),
    save_every: int = typer.Option(50, "--save-every", min=0),
    raw_inputs: bool = typer.Option(False, "--raw-inputs",
                                    help="Ablation: no templates, the record's fields as inputs."),
    datasets: Optional[str] = typer.Option(None, "--datasets", help="Only these training datasets (ablation)."),
    prompt_loss_weight: float = PromptLossOption,
    kl_weight: float = KlWeightOption,
    kl_on: str = KlOnOption,
    kl_max_positions: int = KlPositionsOption,
    kl_top_k: int = KlTopKOption,
    replay_fraction: float = ReplayOption,
    replay_weight: float = ReplayWeightOption,
    no_options_fraction: float = NoOptionsOption,
    lora_r: int = LoraROption,
    out: Path = typer.Option(..., "--out", help="Run directory."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint."),
    data_dir: Optional[str] = DataDirOption,
):
    """Instruction-tune a model on the FLAN mixture with the given clusters held out.

    The panel "Keeping what the base knew" (docs/instruct.md) lists options against forgetting; all off by default.

    Example: unseen instruct train --model smollm2-135m-instruct --heldout nli --steps 200 --lora --out runs/flan-nli
    """
    from unseen.instruct.mixture import MixtureConfig, mixture_datasets
    from unseen.instruct.train import InstructConfig, instruction_tune

    mixture = MixtureConfig(heldout=_split_list(heldout), cap=cap, fewshot_fraction=fewshot_fraction,
                            datasets=_split_list(datasets) if datasets else None, raw_inputs=raw_inputs,
                            no_options_fraction=no_options_fraction, seed=seed)
    keep = _keep_options(prompt_loss_weight, kl_weight, kl_on, kl_max_positions, kl_top_k, replay_fraction,
                         replay_weight, lora_r)
    check_available(mixture_datasets(mixture), data_dir)  # before the model loads
    config = InstructConfig(model=model, mixture=mixture, max_length=max_length, lora=lora, steps=steps,
                            batch_size=batch_size, lr=lr, save_every=save_every, seed=seed, **keep)
    result = instruction_tune(config, out, resume=resume, data_dir=data_dir)
    console.print(f"trained {result.steps} steps, final loss {result.final_loss:.4f}; model in {out / 'model'}")


def _cluster_paths(values: list[str]) -> dict[str, list[str]]:
    pairs: dict[str, list[str]] = {}
    for value in values:
        cluster, sep, path = value.partition("=")
        if not sep or not cluster or not path:
            raise UnseenError(f"--adapter {value!r}: expected CLUSTER=PATH, e.g. commonsense=runs/flan-commonsense")
        pairs.setdefault(cluster, []).append(path)
    return pairs


@app.command("heldout")
def heldout_command(
    models: str = typer.Option("gemma3-270m", "--models",
                               help="Comma-separated models (asset names, folders, hub ids)."),
    clusters: str = typer.Option("nli", "--clusters", help="Comma-separated clusters, each held out in its own run."),
    seeds: str = typer.Option("0,1", "--seeds", help="Training seeds."),
    steps: int = typer.Option(200, "--steps", min=1),
    lora: bool = typer.Option(True, "--lora/--full"),
    cap: int = typer.Option(1000, "--cap", min=1),
    templates: str = typer.Option("all", "--templates", help="'all' or comma-separated template ids."),
    max_templates: Optional[int] = typer.Option(None, "--max-templates", min=1,
                                                help="The first N templates of each task (file order, direct answers "
                                                     "first)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="First N examples of each evaluated task."),
    calibrate: bool = typer.Option(True, "--calibrate/--no-calibrate"),
    baselines: Optional[str] = typer.Option(None, "--baselines",
                                            help="Comma-separated models evaluated as they are, beside base and tuned "
                                                 "(e.g. an off-the-shelf instruct model)."),
    adapters: Optional[List[str]] = typer.Option(None, "--adapter",
                                                 help="CLUSTER=PATH: a LoRA adapter already trained with CLUSTER held "
                                                      "out, evaluated instead of training (repeatable; several "
                                                      "for one cluster are its seeds)."),
    generate: bool = typer.Option(False, "--generate",
                                  help="Also evaluate by greedy generation (exact match, valid options)."),
    prompt_loss_weight: float = PromptLossOption,
    kl_weight: float = KlWeightOption,
    kl_on: str = KlOnOption,
    kl_max_positions: int = KlPositionsOption,
    kl_top_k: int = KlTopKOption,
    replay_fraction: float = ReplayOption,
    replay_weight: float = ReplayWeightOption,
    no_options_fraction: float = NoOptionsOption,
    lora_r: int = LoraROption,
    out: Path = typer.Option(Path("runs/heldout"), "--out"),
    data_dir: Optional[str] = DataDirOption,
):
    """The whole FLAN protocol: per held-out cluster, base vs instruction-tuned, a FLAN-style table and a bar plot.

    Finished pieces under --out are reused, so an interrupted protocol continues where it stopped.

    Example: unseen instruct heldout --models smollm2-135m-instruct --clusters nli --seeds 0 --steps 100 --limit 100
    """
    from unseen.instruct.evaluate import EvalConfig
    from unseen.instruct.heldout import HeldoutConfig, run_heldout
    from unseen.instruct.mixture import MixtureConfig, mixture_datasets
    from unseen.instruct.train import InstructConfig

    config = HeldoutConfig(
        models=_split_list(models), clusters=_split_list(clusters), seeds=[int(s) for s in _split_list(seeds)],
        train=InstructConfig(steps=steps, lora=lora,
                             mixture=MixtureConfig(cap=cap, no_options_fraction=no_options_fraction),
                             **_keep_options(prompt_loss_weight, kl_weight, kl_on, kl_max_positions, kl_top_k,
                                             replay_fraction, replay_weight, lora_r)),
        eval=EvalConfig(templates="all" if templates == "all" else _split_list(templates), max_templates=max_templates,
                        limit=limit, calibrate=calibrate, generate=generate),
        baselines=_split_list(baselines) if baselines else [], adapters=_cluster_paths(adapters or []),
    )
    members = load_clusters()
    needed = [dataset for cluster in config.clusters for dataset in members.get(cluster, [])]
    needed += [dataset for cluster in config.clusters if cluster not in config.adapters
               for dataset in mixture_datasets(MixtureConfig(heldout=[cluster]))]
    check_available(needed, data_dir)  # before the first model loads
    run_heldout(config, out, data_dir=data_dir, console=console.stdout)
    for block in markdown_tables((out / "summary.md").read_text()):
        console.print(block)
    console.print(f"table: {out / 'summary.md'}, plots: {out / 'heldout.png'}, {out / 'intervals.png'}")
