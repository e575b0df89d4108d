"""Every verb lists in `unseen --help` and has its own help with an example."""

import os
import subprocess


def _help(cli, *args):
    result = subprocess.run([cli, *args, "--help"], capture_output=True, text=True,
                            env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    return result.stdout


def _commands(text):
    section = text.split("Commands")[1] if "Commands" in text else ""
    # a command's row starts right after the border; a wrapped help line starts with spaces
    return [line.strip("│ ").split()[0] for line in section.splitlines()[1:]
            if line.startswith("│ ") and line[2:3].strip()]


def test_root_help_lists_the_verbs(unseen_cli):
    verbs = _commands(_help(unseen_cli))
    assert {"quickstart", "assets", "data"} <= set(verbs)


def test_every_command_has_help_with_an_example(unseen_cli):
    def check(*path):
        text = _help(unseen_cli, *path)
        subcommands = _commands(text)
        if not subcommands:  # a command, not a group
            assert "Example" in text, " ".join(path)
            return 1
        return sum(check(*path, sub) for sub in subcommands)

    assert check() >= 15


def test_markdown_reports_print_as_rich_tables():
    from rich.table import Table
    from rich.text import Text

    from unseen.core.tables import markdown_tables

    report = ("| task | n |\n|---|---|\n| rte | 40 |\n| cb | 56 |\n\nGreedy generation, base → tuned.\n\n"
              "| a | b |\n|---|---|\n| 1 | 2 |\nafter\n")
    first, second, tail = markdown_tables(report)
    assert isinstance(first, Table) and [c.header for c in first.columns] == ["task", "n"] and first.row_count == 2
    assert isinstance(second, Table) and second.title == "Greedy generation, base → tuned." and second.row_count == 1
    assert isinstance(tail, Text) and tail.plain == "after"
