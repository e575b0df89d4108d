"""Result tables for the terminal (rich), shared by the CLI and the methods' quickstart steps."""

from __future__ import annotations

from rich.table import Table


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
