"""The agreement gate that keeps a POUF text run at zero-shot where the prompts agree only by chance."""

import json

import pytest
import torch

from unseen.pouf.adapt import AdaptConfig
from unseen.pouf.agreement import fleiss_kappa, measure_agreement
from unseen.pouf.tasks import load_text_task
from unseen.pouf.testing import SENTIMENT_PROMPTS, sentiment_jsonl, tiny_causal_lm
from unseen.pouf.text import TextSetup, evaluate_run, run_adapt

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Fleiss (1971) as worked on Wikipedia's "Fleiss' kappa" page: 10 subjects, 14 raters, 5 categories, kappa 0.210
FLEISS_COUNTS = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
                 [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]


def test_fleiss_kappa_matches_the_worked_example():
    columns = [[c for c, count in enumerate(row) for _ in range(count)] for row in FLEISS_COUNTS]
    answers = torch.tensor(columns).T  # [14 raters, 10 subjects]
    kappa, _ = fleiss_kappa(answers, 5)
    assert kappa == pytest.approx(0.210, abs=1e-3)
    same = torch.randint(3, (1, 50), generator=torch.Generator().manual_seed(0)).repeat(4, 1)
    assert fleiss_kappa(same, 3)[0] == pytest.approx(1.0)


def test_z_is_standard_normal_when_raters_answer_independently():
    """The null standard error is right: with independent answers (unequal class shares), z has mean
    0 and standard deviation 1, so z >= 1.96 happens about 2.5 % of the time."""
    generator = torch.Generator().manual_seed(0)
    zs = torch.tensor([fleiss_kappa((torch.rand(3, 300, generator=generator) < 0.7).long(), 2)[1] for _ in range(400)])
    assert abs(float(zs.mean())) < 0.15 and 0.85 < float(zs.std()) < 1.15
    assert float((zs >= 1.96).float().mean()) < 0.06


def test_gate_reads_the_calibrated_answers():
    """Two prompts whose raw answers are one class everywhere (a verbalizer prior) but whose calibrated
    answers follow the same signal pass; prompts that answer independently do not."""
    generator = torch.Generator().manual_seed(0)
    signal = torch.randn(200, generator=generator)
    agreeing = torch.stack([torch.stack([torch.zeros(200),
                                         signal + 5.0 + 0.3 * torch.randn(200, generator=generator)], -1)
                            for _ in range(2)]).log_softmax(-1)
    assert (agreeing.argmax(-1) == 1).all()
    gate = measure_agreement(agreeing)
    assert gate.passes and gate.kappa > 0.5 and (gate.templates, gate.texts) == (2, 200)
    independent = torch.randn(3, 200, 2, generator=generator).log_softmax(-1)
    assert not measure_agreement(independent).passes


# the toy sentiment task's first prompt, then the same template again with the answer words given per test
PROMPTS = (SENTIMENT_PROMPTS.rsplit("  - ", 1)[0]
           + '  - {{template: "review: {{text}} \\nsentiment:", verbalizer: [{second}]}}\n')


def _setup(tmp_path, second):
    data = sentiment_jsonl(tmp_path / "reviews.jsonl", n=48)
    (tmp_path / "prompts.yaml").write_text(PROMPTS.format(dataset=data, second=second))
    return TextSetup(str(tiny_causal_lm(tmp_path / "lm")), load_text_task(str(data), tmp_path / "prompts.yaml"),
                     mode="ln", tune_layers=1)


def test_prompts_that_contradict_each_other_keep_zero_shot_without_training(tmp_path, monkeypatch):
    """The second prompt swaps the first one's answer words, so after calibration they disagree on
    every text: the gate keeps the zero-shot weights, trains nothing, and the run says why."""
    monkeypatch.setenv("UNSEEN_CACHE", str(tmp_path / "cache"))
    setup = _setup(tmp_path, '" good", " bad"')
    config = AdaptConfig(mode="ln", steps=6, batch_size=8, lr=1e-2, select_every=3)
    _, selection = run_adapt(setup, config, tmp_path / "run")
    run = tmp_path / "run"
    assert selection.fallback and "do not agree beyond chance" in selection.reason
    assert not (run / "metrics.jsonl").exists()  # no training step ran
    saved = json.loads((run / "selection.json").read_text())
    gate = saved["agreement_gate"]
    assert saved["trained"] is False and not gate["passes"] and gate["kappa"] < -0.9
    results = evaluate_run(run)
    assert results["fallback"] and results["pouf"] == results["zeroshot"] and not results["agreement_gate"]["passes"]
    # the user can still adapt: the gate is a default, not a wall
    _, selection = run_adapt(setup, config, run, gate=False)
    assert (run / "metrics.jsonl").exists() and [h["step"] for h in selection.history] == [0, 3, 6]
    # resuming that run with the gate on does not send its adapted weights back
    _, selection = run_adapt(setup, AdaptConfig(mode="ln", steps=9, batch_size=8, lr=1e-2, select_every=3), run,
                             resume=True)
    assert [h["step"] for h in selection.history] == [0, 3, 6,
                                                      9] and "do not agree beyond chance" not in selection.reason
    assert json.loads((run / "selection.json").read_text()).get("trained") is not False


def test_prompts_that_agree_go_on_to_adapt(tmp_path, monkeypatch):
    monkeypatch.setenv("UNSEEN_CACHE", str(tmp_path / "cache"))
    setup = _setup(tmp_path, '" bad", " good"')  # the same prompt twice: perfect agreement
    _, selection = run_adapt(setup, AdaptConfig(mode="ln", steps=6, batch_size=8, lr=1e-2, select_every=3),
                             tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "selection.json").read_text())
    assert saved["agreement_gate"]["passes"] and saved["agreement_gate"]["kappa"] == pytest.approx(1.0)
    assert (tmp_path / "run" / "metrics.jsonl").exists() and [h["step"] for h in selection.history] == [0, 3, 6]
