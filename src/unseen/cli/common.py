"""What every CLI module shares: consoles, the --debug flag, tables, common options."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from unseen.core.tables import format_cell, table  # noqa: F401  (re-exported for the CLI modules)


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


def optional_path(value: Optional[str]) -> Optional[Path]:
    return Path(value) if value else None
