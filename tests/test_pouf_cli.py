"""`unseen pouf ...` through typer's CliRunner on tiny random models."""

import json

import pytest
from typer.testing import CliRunner

from unseen.cli.pouf import app
from unseen.core.errors import UnseenError
from unseen.pouf.testing import SENTIMENT_PROMPTS, image_folder, sentiment_jsonl, tiny_causal_lm, tiny_clip

pytestmark = pytest.mark.usefixtures("one_torch_thread")

runner = CliRunner()


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("UNSEEN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "200")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("pouf-cli")
    data = sentiment_jsonl(root / "reviews.jsonl", n=32)
    (root / "prompts.yaml").write_text(SENTIMENT_PROMPTS.format(dataset=data))
    return {"lm": tiny_causal_lm(root / "lm"), "clip": tiny_clip(root / "clip"), "data": data,
            "prompts": root / "prompts.yaml", "images": image_folder(root / "images", per_class=4)}


def _ok(result):
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def test_every_command_has_an_example():
    for command in ("zeroshot", "adapt", "eval", "tasks"):
        assert "Example:" in _ok(runner.invoke(app, [command, "--help"]))


def test_tasks_lists_the_builtin_tasks():
    output = _ok(runner.invoke(app, ["tasks"]))
    assert "sst2" in output and "trec" in output and "mrpc" in output


def test_text_zeroshot_adapt_eval(tiny, tmp_path):
    common = ["--model", str(tiny["lm"]), "--task", str(tiny["data"]), "--prompts", str(tiny["prompts"]),
              "--tune-layers", "2"]
    output = _ok(runner.invoke(app, ["zeroshot", *common]))
    common.append("--no-agreement-gate")  # a random LM: its prompts agree by chance (the gate: test_pouf_agreement.py)
    assert all(f"zero-shot, {row}" in output for row in ("single prompt", "raw ensemble", "calibrated ensemble"))
    out = tmp_path / "run"
    output = _ok(runner.invoke(app, ["adapt", *common, "--mode", "ln", "--steps", "6", "--batch-size", "8",
                                     "--select-every", "3", "--out", str(out)]))
    assert "Label-free selection" in output and f"unseen pouf eval {out}" in output
    output = _ok(runner.invoke(app, ["eval", str(out)]))
    assert "POUF ln, raw ensemble" in output and "POUF ln, calibrated ensemble" in output
    assert json.loads((out / "results.json").read_text())["mode"] == "ln"


def test_image_adapt_eval(tiny, tmp_path):
    out = tmp_path / "run"
    _ok(runner.invoke(app, ["adapt", "--model", str(tiny["clip"]), "--images", str(tiny["images"]), "--mode", "prompt",
                            "--steps", "4", "--batch-size", "6", "--select-every", "2", "--views", "2", "--out",
                            str(out)]))
    output = _ok(runner.invoke(app, ["eval", str(out)]))
    assert "zero-shot, template ensemble" in output and "zero-shot, calibrated ensemble" in output
    assert "POUF prompt" in output


def test_image_adapt_defaults_to_the_measured_best_mode(tiny, tmp_path):
    out = tmp_path / "run"
    _ok(runner.invoke(app, ["adapt", "--model", str(tiny["clip"]), "--images", str(tiny["images"]), "--steps", "2",
                            "--batch-size", "6", "--select-every", "1", "--out", str(out)]))
    meta = json.loads((out / "pouf.json").read_text())
    assert meta["mode"] == "ln" and meta["views"] == 1  # the mode and views measured best on PACS (docs/pouf.md)


def test_user_errors_are_unseen_errors(tiny, tmp_path):
    result = runner.invoke(app, ["zeroshot", "--task", "sst2", "--images", str(tiny["images"])])
    assert isinstance(result.exception, UnseenError) and "exactly one of --task" in str(result.exception)
    result = runner.invoke(app, ["eval", str(tmp_path)])
    assert isinstance(result.exception, UnseenError) and "not a POUF run folder" in str(result.exception)
    classes = tmp_path / "classes.txt"
    classes.write_text("dog\nbird\ncar\n")
    result = runner.invoke(app,
                           ["zeroshot", "--model", str(tiny["clip"]), "--images", str(tiny["images"]), "--classes",
                            str(classes)])
    assert isinstance(result.exception, UnseenError) and "class 'bird' has no folder" in str(result.exception)


def test_a_run_that_cannot_beat_zero_shot_keeps_its_weights_and_says_so(tiny, tmp_path):
    """At lr 0 no checkpoint scores better than step 0 on the label-free criterion, so the run keeps
    the zero-shot weights, and adapt, the run folder and eval all say so (the collapse guard's
    fallback is tested on a run built to collapse in test_pouf_adapt.py)."""
    common = ["--model", str(tiny["lm"]), "--task", str(tiny["data"]), "--prompts", str(tiny["prompts"]),
              "--tune-layers", "2", "--no-agreement-gate"]
    out = tmp_path / "no-gain"
    output = _ok(runner.invoke(app, ["adapt", *common, "--mode", "ln", "--steps", "6", "--batch-size", "8", "--lr", "0",
                                     "--select-every", "3", "--out", str(out)]))
    assert "kept the zero-shot weights" in output
    selection = json.loads((out / "selection.json").read_text())
    assert selection["fallback"] and selection["step"] == 0
    output = _ok(runner.invoke(app, ["eval", str(out)]))
    results = json.loads((out / "results.json").read_text())
    assert results["fallback"] and "note: zero-shot weights" in output
    assert "zero-shot weights kept" in (out / "results.md").read_text()
    assert results["pouf"] == results["zeroshot"]  # the kept weights are the zero-shot weights
