"""Paired bootstrap intervals of base → tuned differences (unseen.instruct.paired) on made-up evaluations."""

import numpy as np
import pytest

from unseen.instruct.paired import compare_all, compare_cluster, verdict


def evaluation(task_predictions: dict[str, tuple[list, list, list]]) -> dict:
    """An evaluate()-shaped result: task -> (labels, rank predictions, generated predictions; None = invalid)."""
    return {"templates": {task: {f"{task}_t": {"labels": labels, "rank_predictions": rank,
                                              "generated_predictions": generated}}
                          for task, (labels, rank, generated) in task_predictions.items()}}


def test_identical_models_differ_by_exactly_zero():
    labels = [0, 1] * 50
    run = evaluation({"a": (labels, labels, [None] * 100)})
    result = compare_cluster(run, [run], ["a"])["datasets"]["a"]
    for metric in ("exact_match", "option_rate", "balanced_accuracy", "balanced_accuracy_generated"):
        assert result[metric]["difference"] == 0 and result[metric]["interval"] == [0, 0]
        assert verdict(result[metric]) == "not resolved"
    assert result["option_rate"]["base"] == 0 and result["balanced_accuracy"]["base"] == 1


def test_an_all_right_model_is_above_an_all_wrong_one():
    labels = [0, 1, 2, 0] * 25
    wrong = [(y + 1) % 3 for y in labels]
    result = compare_cluster(evaluation({"a": (labels, wrong, wrong)}), [evaluation({"a": (labels, labels, labels)})],
                             ["a"])["datasets"]["a"]["exact_match"]
    assert (result["base"], result["tuned"], result["interval"]) == (0, 1, [1, 1]) and verdict(result) == "above"


def test_interval_width_matches_the_normal_approximation():
    """Two independent coin-flip models on 400 examples: the difference's standard error is sqrt(2 * .25 / 400)."""
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 400).tolist()
    base, tuned = (evaluation({"a": (labels, rng.integers(0, 2, 400).tolist(), labels)}) for _ in range(2))
    result = compare_cluster(base, [tuned], ["a"])["datasets"]["a"]["balanced_accuracy"]
    low, high = result["interval"]
    assert low < result["difference"] < high
    assert (high - low) / 2 == pytest.approx(1.96 * np.sqrt(2 * 0.25 / 400), rel=0.15)


def test_correlated_models_get_the_narrow_paired_interval():
    """Tuned = base with 8 of 400 wrong answers made right: every per-example difference is 0 or +1, so the paired
    interval is that of a proportion of 8 / 400 (half-width 1.96 * sqrt(.02 * .98 / 400) = 1.4 points) and lies
    above zero. Resampling the two sides independently would treat them as two unrelated 50 % models: half-width
    1.96 * sqrt(2 * .25 / 400) = 6.9 points, an interval that holds zero."""
    n = 400
    labels = [0, 1] * (n // 2)
    base_answers = [y if i < n // 2 else 1 - y for i, y in enumerate(labels)]  # right on the first half only
    flipped = range(n // 2, n // 2 + 8)
    tuned_answers = [labels[i] if i in flipped else a for i, a in enumerate(base_answers)]
    base = evaluation({"a": (labels, labels, base_answers)})
    tuned = evaluation({"a": (labels, labels, tuned_answers)})
    result = compare_cluster(base, [tuned], ["a"])["datasets"]["a"]["exact_match"]
    assert (result["base"], result["tuned"], result["difference"]) == (0.5, pytest.approx(0.52), pytest.approx(0.02))
    low, high = result["interval"]
    paired = 1.96 * np.sqrt(0.02 * 0.98 / n)
    unpaired = 1.96 * np.sqrt(2 * 0.25 / n)
    assert (high - low) / 2 == pytest.approx(paired, rel=0.25)
    assert high - low < unpaired / 2  # the unpaired width is 4.9 times the paired one
    assert low > 0 and verdict(result) == "above"
    # the tuned figure's own interval is a single model's: as wide as an unpaired difference's over sqrt(2)
    tuned_low, tuned_high = result["tuned_interval"]
    assert (tuned_high - tuned_low) / 2 == pytest.approx(unpaired / np.sqrt(2), rel=0.15)


def test_cluster_and_overall_figures_are_means_of_their_parts():
    rng = np.random.default_rng(2)
    tasks = {}
    for task, n in (("a", 60), ("b", 90)):
        labels = rng.integers(0, 3, n).tolist()
        tasks[task] = labels
    base = evaluation({t: (y, rng.integers(0, 3, len(y)).tolist(), rng.integers(0, 3, len(y)).tolist())
                       for t, y in tasks.items()})
    seeds = [evaluation({t: (y, y, rng.integers(0, 3, len(y)).tolist()) for t, y in tasks.items()}) for _ in range(2)]
    result = compare_cluster(base, seeds, ["a", "b"])
    for metric in ("exact_match", "balanced_accuracy"):
        parts = [result["datasets"][t][metric]["difference"] for t in ("a", "b")]
        assert result["mean"][metric]["difference"] == pytest.approx(np.mean(parts))
    assert result["mean"]["balanced_accuracy"]["tuned"] == 1.0
    overall = compare_all([result, result])
    assert overall["exact_match"]["difference"] == pytest.approx(result["mean"]["exact_match"]["difference"])


def test_different_examples_are_refused():
    base = evaluation({"a": ([0, 1, 0], [0, 1, 0], [0, 1, 0])})
    tuned = evaluation({"a": ([1, 1, 0], [0, 1, 0], [0, 1, 0])})
    with pytest.raises(ValueError, match="different examples"):
        compare_cluster(base, [tuned], ["a"])


def test_compare_command_writes_the_table_and_names_bad_files(tmp_path):
    import json

    from typer.testing import CliRunner

    from unseen.cli.instruct import app
    from unseen.core.errors import UnseenError

    labels = [0, 1] * 20
    base, tuned = tmp_path / "base.json", tmp_path / "tuned.json"
    base.write_text(json.dumps(evaluation({"rte": (labels, [0] * 40, [None] * 40)})))
    tuned.write_text(json.dumps(evaluation({"rte": (labels, labels, labels)})))
    out = tmp_path / "results" / "compare.json"
    result = CliRunner().invoke(app, ["compare", str(base), str(tuned), "--out", str(out)])
    assert result.exit_code == 0, result.output
    figures = json.loads(out.read_text())["datasets"]["rte"]
    assert figures["option_rate"]["difference"] == 1 and figures["balanced_accuracy"]["difference"] == 0.5
    table = out.with_suffix(".md").read_text()
    assert "| rte | 40 | exact match | 0.0 | 100.0 | +100.0 | [+100.0, +100.0] | above |" in table

    other = tmp_path / "other.json"
    other.write_text(json.dumps(evaluation({"rte": ([1, 0] * 20, labels, labels)})))
    for args, message in (([str(base), str(other)], "different examples"),
                          ([str(tmp_path / "missing.json"), str(tuned)], "missing.json: not a readable results JSON"),
                          ([str(out.with_suffix(".md")), str(tuned)], "compare.md: not a readable results JSON")):
        result = CliRunner().invoke(app, ["compare", *args])
        assert isinstance(result.exception, UnseenError) and message in str(result.exception), result.output
