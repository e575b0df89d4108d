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


def markdown_tables(text: str) -> list:
    """Rich renderables for a Markdown report: each pipe table becomes a rich table (titled by the
    paragraph just before it), other paragraphs stay text. Reports are written once as Markdown
    (files, docs) and shown in a terminal without the wrapping of raw pipes."""
    from rich.text import Text

    blocks, lines, caption = [], text.splitlines(), None
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("|") and index + 1 < len(lines) and set(lines[index + 1].replace("|", "").strip()) <= set("-: "):
            columns = [cell.strip() for cell in line.strip("|").split("|")]
            index += 2
            rows = []
            while index < len(lines) and lines[index].startswith("|"):
                rows.append([cell.strip() for cell in lines[index].strip("|").split("|")])
                index += 1
            result = Table(title=caption or "", title_justify="left")
            for column in columns:
                result.add_column(column)
            for row in rows:
                result.add_row(*row)
            blocks.append(result)
            caption = None
            continue
        if line.strip():
            if caption is not None:
                blocks.append(Text(caption))
            caption = line.strip()
        index += 1
    if caption is not None:
        blocks.append(Text(caption))
    return blocks
