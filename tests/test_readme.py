"""The README renders on GitHub as written: every table row has its header's cells, cells stay short, and the
page stays a front door (at most 150 lines)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def cells(row: str) -> list[str]:
    """A Markdown table row's cells, as GitHub splits them: at every pipe not escaped with a backslash (a pipe
    inside backticks splits the row too)."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", row.strip().strip("|"))]


def tables(text: str) -> list[list[str]]:
    found, current = [], []
    for line in text.splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            found.append(current)
            current = []
    return found + ([current] if current else [])


def test_every_readme_table_row_has_as_many_cells_as_its_header():
    found = tables(README.read_text(encoding="utf-8"))
    assert found, "the README has tables"
    for rows in found:
        width = len(cells(rows[0]))
        assert set(rows[1].replace("|", "").strip()) <= set("-: "), rows[1]
        for row in rows[2:]:
            assert len(cells(row)) == width, row


def test_readme_is_short_and_its_cells_are_short():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 150
    for rows in tables(text):
        for row in rows:
            assert all(len(cell) <= 200 for cell in cells(row)), row


def test_the_row_splitter_sees_an_unescaped_pipe_as_a_cell_break():
    assert len(cells("| a | `x|y` | b |")) == 4 and len(cells(r"| a | `x\|y` | b |")) == 3
