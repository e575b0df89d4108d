"""Terminal tables stay readable at 80 columns: no cell cut to an ellipsis, every cell's text shown.

The tables are built by the code that prints them (with their real column names and typical
values, including the widest: `unseen instruct eval --generate`, the held-out summary, POUF's
steps), rendered through a rich Console of a given width."""

import io
import os
import subprocess

import pytest
from rich.console import Console

from unseen.core.tables import FitTable, markdown_tables, shorten, table

MODEL = "gemma3-270m + runs/flan-commonsense"
SUMMARY = {"mean": 0.5723, "std": 0.0311, "max": 0.6, "templates": 2}


def render(blocks, width: int = 80) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None, legacy_windows=False)
    for block in blocks if isinstance(blocks, list) else [blocks]:
        console.print(block)
    return console.file.getvalue()


def cells_of(blocks) -> list[str]:
    blocks = blocks if isinstance(blocks, list) else [blocks]
    tables = [block for block in blocks if isinstance(block, FitTable)]
    assert tables, "no table rendered"
    return [str(cell) for t in tables for column in t.columns for cell in [column.header, *column.cells]]


def assert_readable(blocks, width: int = 80) -> str:
    output = render(blocks, width)
    assert "…" not in output, output
    assert max(len(line) for line in output.splitlines()) <= width, output
    shown = set(output.replace("│", " ").replace("┃", " ").split())
    for cell in cells_of(blocks):
        missing = [word for word in cell.split() if word not in shown]
        assert not missing, f"{cell!r}: {missing} not shown at {width} columns\n{output}"
    return output


def instruct_eval_results() -> dict:
    task = {"n": 25, "accuracy": SUMMARY, "accuracy_norm": SUMMARY, "balanced_accuracy": SUMMARY,
            "balanced_accuracy_calibrated": SUMMARY, "exact_match": SUMMARY, "option_rate": SUMMARY,
            "balanced_accuracy_generated": SUMMARY, "exact_match_cot": SUMMARY, "option_rate_cot": SUMMARY,
            "balanced_accuracy_generated_cot": SUMMARY, "constant_baseline": 0.24, "uniform_baseline": 0.2}
    return {"results": {"ecqa": task, "qasc": dict(task, n=114), "rte": {"n": 50, "accuracy": SUMMARY,
                                                                        "constant_baseline": 0.5}}}


def heldout_summary() -> dict:
    entry = {"base_mean": 0.51, "base_std_templates": 0.02, "tuned_mean": 0.58, "tuned_std_seeds": 0.01,
             "tuned_std_templates": 0.03, "tuned_seeds": [0, 1], "baselines": {"smollm2-135m-instruct": 0.55}}
    row = {"cluster": "commonsense", "model": "gemma3-270m", "task": "ecqa", "n": 743, "constant_baseline": 0.24,
           "uniform_baseline": 0.2, "classes": 5, "tuned_from": "2 seed(s) of 200 steps"}
    row |= {key: entry for key in ("accuracy", "balanced_accuracy", "balanced_accuracy_calibrated", "exact_match",
                                   "option_rate", "balanced_accuracy_generated", "exact_match_cot", "option_rate_cot")}
    return {"rows": [row, dict(row, task="sensemaking", n=759)]}


def report(accuracy: float = 0.61) -> dict:
    return {"n": 150, "accuracy": accuracy, "balanced_accuracy": accuracy - 0.01, "constant_baseline": 0.51,
            "predicted_distribution": [0.48, 0.52]}


@pytest.mark.parametrize("width", [80, 60, 120])
def test_instruct_eval_tables_with_generation(width):
    from unseen.instruct.evaluate import markdown_table

    assert_readable(markdown_tables(markdown_table(instruct_eval_results(), MODEL)), width)


@pytest.mark.parametrize("width", [80, 60])
def test_heldout_summary_tables(width):
    from unseen.instruct.heldout_report import cluster_table, flan_table

    summary = heldout_summary()
    assert_readable(markdown_tables(cluster_table(summary) + "\n" + flan_table(summary)), width)


def test_quickstart_steps_tables():
    from unseen.cli.quickstart import _instruct_rows
    from unseen.instruct.quickstart import results_table as adapter_table
    from unseen.pouf.quickstart import results_table as pouf_table

    readouts = {name: report() for name in ("single", "ensemble", "calibrated")}
    assert_readable(pouf_table({"zeroshot": readouts, "pouf": readouts}))
    answer = {"n": 25, "exact_match": 0.28, "option_rate": 0.92, "sample_output": "a long answer " * 8,
              "sample_target": "the river bank"}
    config = {"model": "gemma3-270m", "task": "ecqa", "templates": ["ecqa_plain", "ecqa_question_answer"], "limit": 25}
    step = {"config": config, "base": answer, "tuned": answer, "constant_baseline": 0.24, "uniform_baseline": 0.2}
    assert_readable(adapter_table(step))
    assets = [["smollm2-135m-instruct", "ok", 20.5,
               "'The capital of Italy is Rome. The capital of France is' -> 'Paris.\\n\\nThe answer'"],
              ["efficientnet-lite0", "ok", 0.1,
               "PACS photo/elephant: an elephant class is top-1 for 6/8 photos (most often 'tusker')"]]
    assert_readable(table("Assets", ["asset", "status", "load s", "output"], assets))
    assert_readable(table("Zero-shot rank classification",
                          ["model", "task", "n", "accuracy", "balanced acc.", "always-majority", "ex/s"],
                          [["smollm2-135m-instruct", "sst2", 200, 0.78, 0.779, 0.51, 23.4]]))
    metrics = {"rte": {"n": 50, "accuracy": SUMMARY, "balanced_accuracy": SUMMARY, "constant_baseline": 0.5}}
    assert_readable(table("Instruct: held-out task, rank scoring, mean ± std (max) over templates",
                          ["model", "task", "n", "templates", "accuracy", "balanced acc.", "always-majority"],
                          _instruct_rows(metrics, "smollm2-135m-instruct")))


def test_pouf_cli_tables():
    from unseen.cli.pouf import COLUMNS, _report_rows

    rows = [_report_rows(label, report()) for label in ("zero-shot, single prompt", "POUF ln, calibrated ensemble",
                                                        "POUF ln (not kept), calibrated ensemble")]
    assert_readable(table("gemma3-270m on sst2", COLUMNS, rows))
    history = [[0, 0.6931, 0.812, 0.998, "", ""], [24, 0.6512, 0.845, 0.991, "collapsed", "<- kept"]]
    assert_readable(table("Label-free selection (held-out unlabeled slice)",
                          ["step", "POUF objective", "view agreement", "class balance", "guard", ""], history))


def test_a_table_too_wide_for_its_columns_turns_vertical():
    columns = [f"column number {i}" for i in range(12)]
    blocks = table("wide", columns, [[f"value-{i}-{j}" for i in range(12)] for j in range(2)])
    output = assert_readable(blocks, 80)
    assert sum(line.count("column number 3") for line in output.splitlines()) == 2  # one line per row


def test_a_word_longer_than_the_line_folds_instead_of_being_cut():
    word = "x" * 150
    output = render(table("long", ["path"], [[word]]), 80)
    assert "…" not in output and "".join(output.replace("│", "").split()).count(word) == 1


def test_shorten_says_how_much_it_left_out():
    assert shorten("short", 10) == "short"
    assert shorten("a" * 30, 10) == "aaaaaaaaaa [+20 chars]"


def _cli(unseen_cli, *args):
    result = subprocess.run([unseen_cli, *args], capture_output=True, text=True, env={**os.environ, "COLUMNS": "80"})
    assert result.returncode == 0, result.stderr
    assert "…" not in result.stdout, result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= 80, result.stdout
    return result.stdout


def test_cli_listings_at_80_columns(unseen_cli):
    assert "minilm-l6-v2" in _cli(unseen_cli, "assets", "list")
    assert "ag_news" in _cli(unseen_cli, "pouf", "tasks")


@pytest.mark.needs_data
def test_cli_data_and_templates_at_80_columns(unseen_cli):
    assert "passage" in _cli(unseen_cli, "data", "show", "boolq", "--split", "validation", "-n", "2")
    assert "rte_given_passage" in _cli(unseen_cli, "instruct", "templates", "rte", "--n", "1")
