"""The calibrated prompt ensemble (batch calibration) against the raw one, on a synthetic case."""

import torch

from unseen.core.metrics import classification_report
from unseen.pouf.adapt import calibrate, calibrated_ensemble, ensemble


def _biased_views(n: int = 400, seed: int = 0):
    """Three prompts that each see the true class through noise, but two of them carry a strong
    prior towards one class (as a verbalizer word the LM likes): [V, N, K] log-probabilities."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=generator)
    signal = torch.nn.functional.one_hot(labels, 2).float() * 2.0
    views = []
    for bias in (torch.tensor([0.0, 4.5]), torch.tensor([0.0, 4.0]), torch.tensor([0.5, 0.0])):
        logits = signal + bias + torch.randn(n, 2, generator=generator)
        views.append(logits.log_softmax(-1))
    return torch.stack(views), labels.tolist()


def test_calibration_removes_the_prompts_prior_and_the_ensemble_recovers():
    log_probs, labels = _biased_views()
    raw = classification_report(ensemble(log_probs).argmax(-1).tolist(), labels, 2)
    calibrated = classification_report(calibrated_ensemble(log_probs).argmax(-1).tolist(), labels, 2)
    assert raw["predicted_distribution"][1] > 0.85  # the raw ensemble answers the favoured class almost always
    assert raw["balanced_accuracy"] < 0.65
    assert calibrated["balanced_accuracy"] > 0.8 and calibrated["balanced_accuracy"] > raw["balanced_accuracy"] + 0.15
    assert 0.35 < calibrated["predicted_distribution"][1] < 0.65


def test_calibrated_views_are_distributions_with_a_flat_mean():
    log_probs, _ = _biased_views(n=50)
    calibrated = calibrate(log_probs)
    assert torch.allclose(calibrated.exp().sum(-1), torch.ones(3, 50), atol=1e-5)
    # the mean class probability of each calibrated view is much flatter than before
    before = log_probs.exp().mean(1)
    after = calibrated.exp().mean(1)
    assert ((after - 0.5).abs() < (before - 0.5).abs()).all()


def test_calibration_reads_no_labels_and_keeps_a_balanced_prompt():
    """A prompt with no prior is left almost as it is: calibration does not invent a bias."""
    generator = torch.Generator().manual_seed(1)
    labels = torch.arange(200) % 2
    logits = torch.nn.functional.one_hot(labels, 2).float() * 2.0 + torch.randn(200, 2, generator=generator)
    log_probs = logits.log_softmax(-1).unsqueeze(0)
    same = (calibrate(log_probs).argmax(-1) == log_probs.argmax(-1)).float().mean()
    assert same > 0.95
