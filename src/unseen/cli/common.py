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


def _existing_data_dir(ctx: typer.Context, param: typer.CallbackParam, value: Optional[str]) -> Optional[str]:
    """A data directory given with --data-dir must exist: checked as the command line is read, so a
    typo fails at once (one line naming it), before any model loads. ($UNSEEN_DATA is checked where
    data is read: the commands that need data check it before their slow steps, and one that reads
    only a user's own files does not need it.)"""
    from click.core import ParameterSource

    if value and ctx.get_parameter_source(param.name) == ParameterSource.COMMANDLINE:
        from unseen.core.data import resolve_data_dir

        resolve_data_dir(value)
    return value


DataDirOption = typer.Option(
    None, "--data-dir", envvar="UNSEEN_DATA", help="Data directory (default: ../shared/data when it exists).",
    show_default=False, callback=_existing_data_dir,
)


def optional_path(value: Optional[str]) -> Optional[Path]:
    return Path(value) if value else None
