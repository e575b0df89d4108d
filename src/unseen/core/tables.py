"""Result tables for the terminal (rich), shared by the CLI and the methods' quickstart steps.

A table never cuts a cell to an ellipsis, whatever the terminal's width: when its columns fit
side by side (each at least as wide as its longest word), long cells wrap at spaces; when they
do not, every row is shown as a block of ``column  value`` lines (see :class:`FitTable`). The
Markdown and JSON files a command writes hold the full table either way.
"""

from __future__ import annotations

from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table


class FitTable(Table):
    """A rich Table that fits the width it is rendered at without truncating any cell.

    * all columns fit at their natural widths: rendered as is;
    * all columns fit at the width of their longest word: the spare width goes to the columns
      that need it, cells wrap at spaces (never inside a word);
    * otherwise: one block per row, a ``column | value`` line per cell (the vertical layout).
    Any word longer than the whole line folds onto the next line instead of being cut.
    """

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if not self.columns:
            yield from super().__rich_console__(console, options)
            return
        available = options.max_width - self._extra_width
        measures = [self._measure_column(console, options, column) for column in self.columns]
        if sum(m.maximum for m in measures) <= available:
            yield self._copy([None] * len(measures))
        elif sum(m.minimum for m in measures) <= available:
            yield self._copy(_share(available, [m.minimum for m in measures], [m.maximum for m in measures]),
                             padding=[self._get_padding_width(i) for i in range(len(measures))])
        else:
            yield self._vertical()

    def _copy(self, widths: list[int | None], padding: list[int] | None = None) -> Table:
        """The same table as a plain rich Table, with the given column widths (padding included)."""
        result = Table(title=self.title, title_justify=self.title_justify, caption=self.caption)
        for index, column in enumerate(self.columns):
            width = widths[index] - padding[index] if widths[index] is not None and padding else None
            result.add_column(column.header, justify=column.justify, overflow="fold", width=width)
        for row in zip(*(column.cells for column in self.columns)):
            result.add_row(*row)
        return result

    def _vertical(self) -> Table:
        """One block per row: a line per column with its header and the row's value."""
        result = Table(title=self.title, title_justify=self.title_justify, caption=self.caption, show_header=False)
        result.add_column("column", style="bold", overflow="fold")
        result.add_column("value", overflow="fold")
        headers = [column.header for column in self.columns]
        rows = list(zip(*(column.cells for column in self.columns)))
        for number, row in enumerate(rows):
            for index, (header, cell) in enumerate(zip(headers, row)):
                result.add_row(header, cell, end_section=index == len(row) - 1 and number < len(rows) - 1)
        return result


def _share(available: int, minimum: list[int], maximum: list[int]) -> list[int]:
    """Column widths: each its minimum, plus the spare width shared in proportion to what each
    column still lacks of its maximum (no column above its maximum)."""
    widths = list(minimum)
    spare = available - sum(widths)
    wanting = [high - low for low, high in zip(minimum, maximum)]
    total = sum(wanting)
    if total <= 0 or spare <= 0:
        return widths
    for index, want in enumerate(wanting):
        widths[index] += min(want, spare * want // total)
    leftover = available - sum(widths)
    for index in sorted(range(len(widths)), key=lambda i: wanting[i], reverse=True):  # the rounding remainder
        if leftover <= 0:
            break
        extra = min(leftover, maximum[index] - widths[index])
        widths[index] += extra
        leftover -= extra
    return widths


def table(title: str, columns: list[str], rows: list[list], justify_numbers: bool = True) -> FitTable:
    """A rich table (see :class:`FitTable`); numeric columns are right-aligned."""
    result = FitTable(title=title, title_justify="left")
    for index, column in enumerate(columns):
        numeric = justify_numbers and rows and all(isinstance(row[index], (int, float)) for row in rows)
        result.add_column(column, justify="right" if numeric else "left")
    for row in rows:
        result.add_row(*[format_cell(cell) for cell in row])
    return result


def shorten(text: str, width: int) -> str:
    """``text`` up to ``width`` characters, saying how many more there were: a deliberate cut of a
    long value (a passage, a generated answer) whose full text is in the record or the result file,
    marked so that it cannot be mistaken for a cell the terminal was too narrow for."""
    if len(text) <= width:
        return text
    return f"{text[:width].rstrip()} [+{len(text) - width} chars]"


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
        separator = index + 1 < len(lines) and set(lines[index + 1].replace("|", "").strip()) <= set("-: ")
        if line.startswith("|") and separator:
            columns = [cell.strip() for cell in line.strip("|").split("|")]
            index += 2
            rows = []
            while index < len(lines) and lines[index].startswith("|"):
                rows.append([cell.strip() for cell in lines[index].strip("|").split("|")])
                index += 1
            blocks.append(table(caption or "", columns, rows, justify_numbers=False))
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
