"""What every CLI module shares: consoles, the --debug flag, tables, common options."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table


class _Consoles:
    def __init__(self):
        self.stdout = Console()
        self.stderr = Console(stderr=True)

    def print(self, *args, **kwargs):
        self.stdout.print(*args, **kwargs)


@dataclass
class _State:
    debug: bool = False


console = _Consoles()
state = _State()

DataDirOption = typer.Option(
    None, "--data-dir", envvar="UNSEEN_DATA", help="Data directory (default: ../shared/data when it exists).", show_default=False
)


def table(title: str, columns: list[str], rows: list[list], justify_numbers: bool = True) -> Table:
    """A rich table; numeric columns are right-aligned."""
    result = Table(title=title, title_justify="left")
    for index, column in enumerate(columns):
        numeric = justify_numbers and rows and all(isinstance(row[index], (int, float)) for row in rows)
        result.add_column(column, justify="right" if numeric else "left")
    for row in rows:
        result.add_row(*[format_cell(cell) for cell in row])
    return result


def format_cell(cell) -> str:
    """Floats with three decimals (rates and seconds alike), everything else as text."""
    return f"{cell:.3f}" if isinstance(cell, float) else str(cell)


def optional_path(value: Optional[str]) -> Optional[Path]:
    return Path(value) if value else None
