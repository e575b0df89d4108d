"""`unseen instruct`: look at the FLAN instruction templates on real data, and check them."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape

from unseen.cli.common import DataDirOption, console, table
from unseen.core.errors import UnseenError
from unseen.instruct import lint, load_records, load_templates, render

app = typer.Typer(
    help="FLAN instruction templates (datasets as natural-language instructions): show and check them.",
    no_args_is_help=True,
)

TemplatesDirOption = typer.Option(
    None, "--templates-dir", help="An extra template YAML file or folder (repeatable); it replaces the package file of its dataset."
)


@app.command("templates")
def templates(
    dataset: str = typer.Argument(..., help="Dataset name, e.g. rte."),
    n: int = typer.Option(2, "--n", min=0, help="Examples rendered per template."),
    split: Optional[str] = typer.Option(None, "--split", help="Split name or role (train, eval); default: the eval split."),
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
        f"{len(task.templates)} templates ({turned} turned around); showing split {escape(task.splits.get(role, role))}",
        highlight=False,
    )
    rows = []
    for template in chosen:
        kind = ", ".join(
            [("options" if template.options else "no options") if template.classification else f"generative ({template.metric})"]
            + (["turned around"] if template.turned_around else [])
            + ([f"filter: {template.filter}"] if template.filter else [])
        )
        shown = 0
        for index, record in enumerate(records[:1000]):
            example = render(template, record)
            if example is None:
                continue
            text = example.input if not max_chars or len(example.input) <= max_chars else example.input[:max_chars] + " …"
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
        console.print(table(f"{len(problems)} problem(s) in {len(tasks)} datasets", ["file", "template", "problem"], rows))
        raise typer.Exit(1)
    console.print(
        f"ok: {len(tasks)} datasets, {count} templates, the first {max_examples} examples of every split: no problems",
        highlight=False,
    )
