"""`unseen pouf`: prompt-oriented unsupervised fine-tuning (POUF, Tanwisuth et al. 2023)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from unseen.cli.common import DataDirOption, console, table

app = typer.Typer(
    help="POUF: adapt a zero-shot, prompt-based model to a target task or domain with unlabeled target data only.",
    no_args_is_help=True,
)

TaskOption = typer.Option(None, "--task",
                          help="Text task: a built-in name (sst2, trec, ...) or a .jsonl file (with --prompts).")
ImagesOption = typer.Option(None, "--images",
                            help="Image task: an ImageFolder (<dir>/<class>/<image>) or dataset/split, e.g. "
                                 "pacs/sketch.")
ClassesOption = typer.Option(None, "--classes",
                             help="Class-name file for --images: one per line, 'folder' or 'folder: prompt name'.")
PromptsOption = typer.Option(None, "--prompts",
                             help="YAML with templates and verbalizers (default: the built-in prompts.yaml).")
ModelOption = typer.Option(None, "--model", "-m",
                           help="Text: causal LM asset/folder/hub id or a masked LM folder (default gemma3-270m). "
                                "Images: conse (offline), a Hugging Face CLIP folder, or open_clip:ARCH[:PRETRAINED].")


def _kind(task: Optional[str], images: Optional[str]) -> str:
    from unseen.core.errors import UnseenError

    if bool(task) == bool(images):
        raise UnseenError("give exactly one of --task (text) or --images (image folder or dataset/split)")
    return "text" if task else "image"


def _text_setup(model, task, prompts, data_dir, *, mode: str = "prompt", tune_layers: int = 4, n_ctx: int = 4,
                lora_r: int = 8, unlabeled_limit: int | None = None, eval_limit: int | None = None):
    """A text task's setup; its dataset must be there (local or on a reachable hub) before the model loads."""
    from unseen.core.data import check_available
    from unseen.pouf.tasks import load_text_task
    from unseen.pouf.text import DEFAULT_MODEL, TextSetup

    setup = TextSetup(model_name=model or DEFAULT_MODEL, task=load_text_task(task, prompts), mode=mode,
                      tune_layers=tune_layers, n_ctx=n_ctx, lora_r=lora_r, unlabeled_limit=unlabeled_limit,
                      eval_limit=eval_limit)
    check_available([setup.task.dataset], data_dir)
    return setup


def _image_setup(model, images, classes, data_dir, *, mode: str = "prompt", views: int = 1, templates: str = "single",
                 lora_r: int = 8, unlabeled_limit: int | None = None, eval_limit: int | None = None,
                 holdout: float | None = None):
    """An image task's setup (reading the task reads its images' folder or dataset at once)."""
    from unseen.pouf.dual_models import OFFLINE_IMAGE_MODEL
    from unseen.pouf.image import ImageSetup
    from unseen.pouf.tasks import load_image_task

    task = load_image_task(images, classes, data_dir=data_dir)
    return ImageSetup(task=task, model_name=model or OFFLINE_IMAGE_MODEL, mode=mode, views=views, templates=templates,
                      lora_r=lora_r, holdout=holdout, unlabeled_limit=unlabeled_limit, eval_limit=eval_limit)


def _report_rows(label: str, report: dict) -> list:
    dist = " ".join(f"{x:.2f}" for x in report["predicted_distribution"])
    return [label, report["n"], report["accuracy"], report["balanced_accuracy"], report["constant_baseline"], dist]


COLUMNS = ["model", "n", "accuracy", "balanced acc.", "always-majority", "predicted class shares"]


@app.command("zeroshot")
def zeroshot(
    model: Optional[str] = ModelOption,
    task: Optional[str] = TaskOption,
    images: Optional[str] = ImagesOption,
    classes: Optional[Path] = ClassesOption,
    prompts: Optional[Path] = PromptsOption,
    eval_limit: Optional[int] = typer.Option(None, "--eval-limit",
                                             help="Evaluate on a fixed random subset of this size."),
    tune_layers: int = typer.Option(4, "--tune-layers",
                                    help="Causal LM: layers above the cached frozen part (shares the cache with "
                                         "adapt)."),
    data_dir: Optional[str] = DataDirOption,
):
    """Zero-shot accuracy: single prompt, raw prompt ensemble, calibrated ensemble (label-free).

    Example: unseen pouf zeroshot --task sst2 --eval-limit 200
    """
    kind = _kind(task, images)
    if kind == "text":
        from unseen.pouf import text

        setup = _text_setup(model, task, prompts, data_dir, tune_layers=tune_layers, eval_limit=eval_limit)
        report = text.zeroshot(setup, data_dir=data_dir, console=console)
        title = f"Zero-shot {setup.model_name} on {setup.task.name} ({len(setup.task.prompts)} prompts in the ensemble)"
    else:
        from unseen.pouf import image

        setup = _image_setup(model, images, classes, data_dir, eval_limit=eval_limit)
        report = image.zeroshot(setup, data_dir=data_dir)
        title = f"Zero-shot {setup.model_name} on {setup.task.name}"
    readouts = text.READOUTS if kind == "text" else image.READOUTS
    rows = [_report_rows(f"zero-shot, {label}", report[name]) for name, label in readouts.items()]
    console.print(table(title, COLUMNS, rows))
    console.print("calibrated ensemble: each prompt's class prior over these inputs divided out before averaging "
                  "(label-free)")


@app.command("adapt")
def adapt_command(
    out: Path = typer.Option(..., "--out", "-o",
                             help="Run folder to create (config, metrics, checkpoints, selected weights)."),
    model: Optional[str] = ModelOption,
    task: Optional[str] = TaskOption,
    images: Optional[str] = ImagesOption,
    classes: Optional[Path] = ClassesOption,
    prompts: Optional[Path] = PromptsOption,
    mode: Optional[str] = typer.Option(None, "--mode",
                                       help="prompt | ln | lora | full (default ln: the measured best for text and "
                                            "images, docs/pouf.md)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Optimizer steps (default depends on the mode)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size",
                                             help="Target examples per POUF batch (default depends on the mode)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Learning rate (default depends on the mode)."),
    seed: int = typer.Option(0, "--seed"),
    lambda_mi: Optional[float] = typer.Option(None, "--lambda-mi",
                                              help="Weight of the mutual-information term (0.6 text, 0.3 images)."),
    scale: Optional[float] = typer.Option(None, "--scale",
                                          help="Logit scale of the transport plan (10 text, 100 images)."),
    select: str = typer.Option("objective", "--select", help="Label-free checkpoint selection: objective | agreement."),
    select_every: int = typer.Option(25, "--select-every", help="Steps between label-free checkpoint scores."),
    tune_layers: int = typer.Option(4, "--tune-layers",
                                    help="Causal LM: how many top layers adapt (their inputs are cached)."),
    n_ctx: int = typer.Option(4, "--n-ctx",
                              help="Causal LM prompt mode: learnable context positions (at most the template's answer "
                                   "lead)."),
    lora_r: int = typer.Option(8, "--lora-r", help="LoRA rank."),
    views: Optional[int] = typer.Option(None, "--views",
                                        help="Images: views per image, the first as is, the others augmented (default: "
                                             "2 in prompt mode, else 1)."),
    templates: str = typer.Option("single", "--templates",
                                  help="Images, non-prompt modes: class-prompt templates, single | ensemble."),
    holdout: Optional[float] = typer.Option(None, "--holdout",
                                            help="Images: fraction kept apart for evaluation (default: transductive)."),
    unlabeled_limit: Optional[int] = typer.Option(2000, "--unlabeled-limit",
                                                  help="Use at most this many unlabeled target examples."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run in --out."),
    neighbour_check: bool = typer.Option(False, "--neighbour-check/--no-neighbour-check",
                                         help="Text, opt-in: keep the adapted weights only if their answers agree with "
                                              "the inputs' neighbours (MiniLM) better than zero-shot's, else keep "
                                              "zero-shot (measured: docs/pouf.md)."),
    agreement_gate: bool = typer.Option(True, "--agreement-gate/--no-agreement-gate",
                                        help="Text: adapt only if the prompts' zero-shot answers agree beyond chance "
                                             "on the unlabeled texts (Fleiss kappa, z >= 1.96), else keep zero-shot "
                                             "without training (docs/pouf.md)."),
    data_dir: Optional[str] = DataDirOption,
):
    """Adapt on unlabeled target data; no label is read (see `unseen pouf eval`).

    Example: unseen pouf adapt --task sst2 --mode ln --out runs/pouf-sst2
    """
    from unseen.core.errors import UnseenError
    from unseen.pouf.adapt import AdaptConfig

    kind = _kind(task, images)
    if kind == "text":
        from unseen.pouf import text

        mode = mode or text.DEFAULT_MODE
        if mode not in text.TEXT_DEFAULTS:
            raise UnseenError(f"unknown mode {mode!r}; choose one of {', '.join(text.TEXT_DEFAULTS)}")
        setup = _text_setup(model, task, prompts, data_dir, mode=mode, tune_layers=tune_layers, n_ctx=n_ctx,
                            lora_r=lora_r, unlabeled_limit=unlabeled_limit)
        defaults = {"scale": 10.0, "lambda_mi": 0.6, "mi_on_model_logits": True, **text.TEXT_DEFAULTS[mode]}
    else:
        from unseen.pouf import image

        mode = mode or image.DEFAULT_MODE
        if mode not in image.IMAGE_DEFAULTS:
            raise UnseenError(f"unknown mode {mode!r}; choose one of {', '.join(image.IMAGE_DEFAULTS)}")
        views = views or image.IMAGE_DEFAULTS[mode]["views"]
        setup = _image_setup(model, images, classes, data_dir, mode=mode, views=views, templates=templates,
                             lora_r=lora_r, unlabeled_limit=unlabeled_limit, holdout=holdout)
        defaults = {"scale": 100.0, "lambda_mi": 0.3, "mi_on_model_logits": False, **image.IMAGE_DEFAULTS[mode]}
        if scale is not None:
            setup.scale = scale
    config = AdaptConfig(mode=mode, steps=steps or defaults["steps"], batch_size=batch_size or defaults["batch_size"],
                         lr=lr if lr is not None else defaults["lr"], seed=seed,
                         scale=scale if scale is not None else defaults["scale"],
                         lambda_mi=lambda_mi if lambda_mi is not None else defaults["lambda_mi"],
                         mi_on_model_logits=defaults["mi_on_model_logits"], select=select, select_every=select_every)
    if kind == "text":
        _, selection = text.run_adapt(setup, config, out, data_dir=data_dir, resume=resume, console=console,
                                      neighbour_check=neighbour_check, gate=agreement_gate)
    else:
        _, selection = image.run_adapt(setup, config, out, data_dir=data_dir, resume=resume)
    rows = [[h["step"], round(h["objective"], 4), round(h["agreement"], 3), round(h["balance"], 3),
             "collapsed" if h.get("collapsed") else "", "<- kept" if h["step"] == selection.step else ""]
            for h in selection.history if h.get("step") is not None]
    if rows:  # none where the agreement gate kept zero-shot before training
        columns = ["step", "POUF objective", "view agreement", "class balance", "guard", ""]
        console.print(table("Label-free selection (held-out unlabeled slice)", columns, rows))
    # a fallback's reason starts with "zero-shot weights: ..."
    kept = f"kept the {selection.reason}" if selection.fallback else f"kept step {selection.step}: {selection.reason}"
    console.print(kept)
    console.print(f"run written to {out}; evaluate with: unseen pouf eval {out}")


@app.command("eval")
def eval_command(
    run: Path = typer.Argument(..., help="A run folder written by `unseen pouf adapt`."),
    eval_limit: Optional[int] = typer.Option(None, "--eval-limit",
                                             help="Evaluate on a fixed random subset of this size."),
    data_dir: Optional[str] = DataDirOption,
):
    """Evaluate a run on the labelled evaluation split: zero-shot vs POUF (labels are read only here).

    Example: unseen pouf eval runs/pouf-sst2
    """
    from unseen.core.data import check_available
    from unseen.core.errors import UnseenError

    meta_file = run / "pouf.json"
    if not meta_file.exists():
        raise UnseenError(f"{run}: not a POUF run folder (no pouf.json)")
    meta = json.loads(meta_file.read_text())
    kind = meta.get("kind")
    task = meta.get("task", {})
    check_available([task.get("dataset") or task.get("root", "").partition("/")[0]], data_dir)  # before the model loads
    if kind == "text":
        from unseen.pouf import text

        results = text.evaluate_run(run, data_dir=data_dir, console=console,
                                    eval_limit=-1 if eval_limit is None else eval_limit)
        rows = [_report_rows(f"{label}, {prompts}", results[key][readout])
                for label, key in (("zero-shot", "zeroshot"), (f"POUF {results['mode']}", "pouf"))
                for readout, prompts in text.READOUTS.items()]
        if "adapted_before_fallback" in results:  # the adapted weights the neighbour check turned down
            rows.append(_report_rows(f"POUF {results['mode']} (not kept), calibrated ensemble",
                                     results["adapted_before_fallback"]["calibrated"]))
    else:
        from unseen.pouf import image

        results = image.evaluate_run(run, data_dir=data_dir, eval_limit=-1 if eval_limit is None else eval_limit)
        rows = [_report_rows(f"zero-shot, {label}", results["zeroshot"][name])
                for name, label in image.READOUTS.items()]
        rows += [_report_rows(f"POUF {results['mode']}", results["pouf"]["single"]),
                 _report_rows(f"POUF {results['mode']}, calibrated", results["pouf"]["calibrated"])]
    console.print(table(f"{results['model']} on {results['task']}", COLUMNS, rows))
    if results["fallback"]:
        console.print(f"note: {results['reason']}")
    console.print(f"results written to {run}/results.json and results.md")


@app.command("tasks")
def tasks_command():
    """List the built-in text tasks with their prompts.

    Example: unseen pouf tasks
    """
    from unseen.pouf.tasks import builtin_text_tasks

    rows = []
    for name, spec in builtin_text_tasks().items():
        rows.append([name, spec["dataset"], f"{spec.get('unlabeled')} -> {spec.get('eval')}",
                     ", ".join(spec["classes"]), len(spec["prompts"])])
    console.print(table("Built-in POUF text tasks",
                        ["task", "dataset", "unlabeled -> eval", "classes", "prompts"], rows))
