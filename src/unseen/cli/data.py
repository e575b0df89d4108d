"""`unseen data`: the datasets `unseen` loads by name."""

from __future__ import annotations

from typing import Optional

import typer

from unseen.cli.common import DataDirOption, console, table
from unseen.core.data import dataset_names, dataset_spec, load_dataset, resolve_data_dir, split_names, split_size
from unseen.core.tables import shorten

app = typer.Typer(help="List and inspect datasets (shared data directory or the Hugging Face hub).",
                  no_args_is_help=True)


@app.command("list")
def list_datasets(data_dir: Optional[str] = DataDirOption):
    """List every registered dataset with its splits and sizes.

    Example: unseen data list --data-dir ../shared/data
    """
    root = resolve_data_dir(data_dir)
    rows = []
    for name in dataset_names():
        spec = dataset_spec(name)
        splits = split_names(name, data_dir) if root is not None else []
        sizes = ", ".join(f"{split} {split_size(name, split, data_dir)}" for split in splits) or "(hub only)"
        rows.append([name, spec.kind, sizes])
    console.print(table(f"Datasets in {root or 'the Hugging Face hub'}", ["name", "kind", "splits (records)"], rows))


def _short(value, width: int = 90) -> str:
    if hasattr(value, "size") and hasattr(value, "mode"):
        return f"<image {value.size[0]}x{value.size[1]} {value.mode}>"
    return shorten(str(value).replace("\n", "\\n"), width)


@app.command("show")
def show(
    name: str = typer.Argument(...,
                               help="Dataset name, or a path to a .jsonl file, labels.tsv folder, LMDB or image "
                                    "folder."),
    split: Optional[str] = typer.Option(None, "--split", "-s", help="Split (default: the only one)."),
    n: int = typer.Option(3, "-n", help="Number of records to show."),
    data_dir: Optional[str] = DataDirOption,
):
    """Show the first records of a split, with label names where known.

    Example: unseen data show rte --split validation -n 3
    """
    records = load_dataset(name, split, data_dir=data_dir)
    shown = records[: max(n, 0)]
    fields = list(shown[0]) if shown else []
    rows = []
    for record in shown:
        cells = []
        for field in fields:
            value = record[field]
            names = records.features.get(field)
            if names and isinstance(value, int) and 0 <= value < len(names):
                value = f"{value} ({names[value]})"
            cells.append(_short(value))
        rows.append(cells)
    console.print(table(f"{name} / {split or 'default'}: {len(records)} records", fields, rows, justify_numbers=False))
