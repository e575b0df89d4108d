"""The neighbour check that can send a POUF text run back to its zero-shot weights."""

import json

import pytest
import torch
import torch.nn.functional as F
from conftest import missing_module

from unseen.pouf import neighbours
from unseen.pouf.adapt import AdaptConfig, calibrated_ensemble, predict_log_probs
from unseen.pouf.tasks import load_text_task, unlabeled_inputs
from unseen.pouf.testing import SENTIMENT_PROMPTS, sentiment_jsonl, tiny_causal_lm
from unseen.pouf.text import TextSetup, build_model, evaluate_run, run_adapt, text_items

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _clusters(n=60, k=3, seed=0):
    """n points in k well-separated clusters, and their cluster index."""
    generator = torch.Generator().manual_seed(seed)
    truth = torch.arange(n) % k
    centres = torch.randn(k, 16, generator=generator) * 5
    return F.normalize(centres[truth] + torch.randn(n, 16, generator=generator), dim=-1), truth


def test_kappa_rewards_answers_that_follow_the_neighbourhoods():
    embeddings, truth = _clusters()
    assert neighbours.neighbour_kappa(embeddings, truth) > 0.9
    shuffled = truth[torch.randperm(len(truth), generator=torch.Generator().manual_seed(1))]
    assert abs(neighbours.neighbour_kappa(embeddings, shuffled)) < 0.2
    # one answer for everything agrees with every neighbour, but only by chance: kappa 0
    assert neighbours.neighbour_kappa(embeddings, torch.zeros_like(truth)) == 0.0
    # a degenerate near-constant answer does not beat the cluster answers either
    almost = torch.zeros_like(truth)
    almost[:2] = 1
    assert neighbours.neighbour_kappa(embeddings, almost) < neighbours.neighbour_kappa(embeddings, truth)


def test_check_keeps_the_adapted_answers_only_when_they_follow_the_neighbourhoods_better():
    embeddings, truth = _clusters()
    noisy = truth.clone()
    noisy[::4] = (noisy[::4] + 1) % 3
    texts = [f"text {i}" for i in range(len(truth))]
    assert neighbours.check(texts, noisy, truth, embeddings=embeddings).keep_adapted
    result = neighbours.check(texts, truth, noisy, embeddings=embeddings)
    assert not result.keep_adapted and result.as_dict()["keep_adapted"] is False
    assert "zero-shot" in result.describe() and result.texts == len(texts)
    assert not neighbours.check(texts, truth, truth, embeddings=embeddings).keep_adapted  # a tie keeps zero-shot


def test_sentence_encoder_places_paraphrases_together():
    from unseen.core.assets import asset_file
    from unseen.core.errors import AssetMissingError

    try:
        asset_file(neighbours.ENCODER)
    except AssetMissingError as missing:
        missing_module(neighbours.ENCODER, str(missing))
    e = neighbours.embed_texts(["a wonderful, moving film", "a great and touching movie",
                                "the bank raised interest rates"])
    assert torch.allclose(e.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert e[0] @ e[1] > e[0] @ e[2] + 0.2


def _tiny(tmp_path, monkeypatch):
    """A tiny causal LM and a sentiment task with its prompts file, with a private feature cache."""
    monkeypatch.setenv("UNSEEN_CACHE", str(tmp_path / "cache"))
    data = sentiment_jsonl(tmp_path / "reviews.jsonl", n=48)
    (tmp_path / "prompts.yaml").write_text(SENTIMENT_PROMPTS.format(dataset=data))
    return tiny_causal_lm(tmp_path / "lm"), data, tmp_path / "prompts.yaml"


def test_a_run_whose_answers_lose_the_neighbour_check_keeps_the_zero_shot_weights(tmp_path, monkeypatch):
    lm, data, prompts = _tiny(tmp_path, monkeypatch)
    setup = TextSetup(str(lm), load_text_task(str(data), prompts), mode="ln", tune_layers=2)
    model = build_model(setup)
    zero_shot = calibrated_ensemble(predict_log_probs(model, text_items(model, setup, "unlabeled", None))).argmax(-1)
    assert len(unlabeled_inputs(setup.task)) == len(zero_shot)
    # an encoder under which the zero-shot answers are the neighbourhoods exactly: no adapted answer can beat them
    monkeypatch.setattr(neighbours, "embed_texts", lambda texts, encoder=None: F.one_hot(zero_shot, 2).float())
    config = AdaptConfig(mode="ln", steps=6, batch_size=8, lr=3e-2, select_every=3)
    _, selection = run_adapt(setup, config, tmp_path / "run", neighbour_check=True, gate=False)
    assert selection.fallback and selection.step == 0 and "neighbours" in selection.reason
    saved = json.loads((tmp_path / "run" / "selection.json").read_text())
    assert saved["fallback"] and saved["adapted_step"] > 0 and saved["neighbour_check"]["keep_adapted"] is False
    results = evaluate_run(tmp_path / "run")
    assert results["fallback"] and results["pouf"] == results["zeroshot"]  # the kept weights are the zero-shot weights


def test_cli_runs_the_check_only_when_asked(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from unseen.cli.pouf import app

    lm, data, prompts = _tiny(tmp_path, monkeypatch)
    # every input its own far-away point: no neighbour shares an answer by closeness, kappa < 0 for both
    monkeypatch.setattr(neighbours, "embed_texts", lambda texts, encoder=None: torch.eye(len(texts)))
    common = ["adapt", "--model", str(lm), "--task", str(data), "--prompts", str(prompts), "--tune-layers", "2",
              "--mode", "ln", "--steps", "4", "--batch-size", "8",
              "--select-every", "2", "--lr", "3e-2", "--no-agreement-gate"]
    runner = CliRunner()
    result = runner.invoke(app, [*common, "--out", str(tmp_path / "plain")])
    assert result.exit_code == 0, result.output
    assert "neighbour_check" not in json.loads((tmp_path / "plain" / "selection.json").read_text())
    result = runner.invoke(app, [*common, "--neighbour-check", "--out", str(tmp_path / "checked")])
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "checked" / "selection.json").read_text())
    assert "neighbour_check" in saved or saved["fallback"]  # measured, unless selection itself kept zero-shot
    assert ("neighbour agreement" in result.output) == ("neighbour_check" in saved)
