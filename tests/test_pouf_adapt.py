"""Label-free selection and the collapse guard, on a toy POUF target (fixed features, a learnable map)."""

import json

import pytest
import torch
from torch import nn

from unseen.core.errors import UnseenError
from unseen.pouf.adapt import AdaptConfig, adapt, predict_log_probs

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Toy(nn.Module):
    """Two Gaussian clusters; features pass through a learnable linear map (identity at start)."""

    kind = "toy"
    num_classes = 2

    def __init__(self, num_views=1):
        super().__init__()
        self.num_views = num_views
        self.map = nn.Linear(4, 4, bias=True)
        with torch.no_grad():
            self.map.weight.copy_(torch.eye(4))
            self.map.bias.zero_()
        self.register_buffer("protos", torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0]]))

    def collate(self, items, view):
        return {"x": torch.stack(items), "view": view}

    def forward(self, batch):
        return self.map(batch["x"])

    def prototypes(self, view=0):
        return self.protos

    def class_logits(self, features, view=0):
        return 10 * nn.functional.normalize(features, dim=-1) @ nn.functional.normalize(self.protos, dim=-1).T


def _items(n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    x = torch.randn(n, 4, generator=g) * 0.4
    x[:, 0] += (labels == 0).float()
    x[:, 1] += (labels == 1).float()
    return [list(x)], labels


def test_guard_rejects_collapse_and_falls_back(tmp_path):
    items, _ = _items()
    config = AdaptConfig(steps=40, batch_size=32, lr=0.3, lambda_mi=-5.0, scale=10.0, mi_on_model_logits=False,
                         select_every=10, collapse_ratio=0.8)
    model = Toy()
    selection = adapt(model, items, config, tmp_path / "run")
    collapsed = [h for h in selection.history[1:] if h["collapsed"]]
    assert len(collapsed) == 4, selection.history
    assert selection.fallback and selection.step == 0 and "collapsed" in selection.reason
    # the model now holds the zero-shot weights again
    assert torch.allclose(model.map.weight, torch.eye(4)) and torch.allclose(model.map.bias, torch.zeros(4))
    saved = json.loads((tmp_path / "run" / "selection.json").read_text())
    assert saved["fallback"] and saved["criterion"] == "objective"


def test_healthy_run_selects_an_adapted_step(tmp_path):
    items, labels = _items()
    config = AdaptConfig(steps=40, batch_size=32, lr=0.02, lambda_mi=0.3, scale=10.0, mi_on_model_logits=False,
                         select_every=10)
    model = Toy()
    before = (predict_log_probs(model, items)[0].argmax(-1) == labels).float().mean()
    selection = adapt(model, items, config, tmp_path / "run")
    after = (predict_log_probs(model, items)[0].argmax(-1) == labels).float().mean()
    assert not selection.fallback and selection.step > 0
    assert selection.score < selection.history[0]["objective"]
    assert after >= before - 0.02


def test_agreement_criterion_and_errors(tmp_path):
    items, _ = _items()
    config = AdaptConfig(steps=10, batch_size=16, lr=0.01, select="agreement", select_every=5, mi_on_model_logits=False)
    selection = adapt(Toy(), items, config, tmp_path / "a")
    assert all("agreement" in h for h in selection.history)
    with pytest.raises(UnseenError, match="unlabeled target set is empty"):
        adapt(Toy(), [[]], config, tmp_path / "b")
    with pytest.raises(UnseenError, match="at least 2 unlabeled"):
        adapt(Toy(), [items[0][:1]], config, tmp_path / "c")
    with pytest.raises(UnseenError, match="unknown selection criterion"):
        adapt(Toy(), items, AdaptConfig(select="accuracy"), tmp_path / "d")


class Diverging(Toy):
    """Turns its features into NaN from the 8th training batch on."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, batch):
        features = super().forward(batch)
        if self.training:
            self.calls += 1
            if self.calls >= 8:
                return features * float("nan")
        return features


def test_diverging_run_keeps_the_last_good_selection(tmp_path):
    items, _ = _items()
    config = AdaptConfig(steps=20, batch_size=32, lr=0.01, scale=10.0, mi_on_model_logits=False, select_every=5)
    model = Diverging()
    selection = adapt(model, items, config, tmp_path / "run")
    assert any("diverged" in str(h.get("diverged", "")) for h in selection.history)
    assert selection.step == 5 and not selection.fallback  # step 5 was scored before the loss turned NaN
    assert (tmp_path / "run" / "selected.safetensors").exists()
    assert torch.isfinite(model.map.weight).all()


def test_calibrated_mi_reads_scores_without_the_zero_shot_prior():
    """With calibrate_mi the MI term sees each view's class prior divided out: on a batch whose
    scores all lean to class 0, the marginal entropy it reads is higher than without."""
    from unseen.pouf.adapt import batch_loss

    model = Toy()
    x = torch.tensor([[1.0, 0.2, 0, 0], [0.9, 0.5, 0, 0], [1.0, 0.8, 0, 0], [0.8, 0.1, 0, 0]])
    batch = model.collate(list(x), 0)
    config = AdaptConfig(scale=10.0, lambda_mi=0.6, mi_on_model_logits=True, calibrate_mi=True)
    log_prior = model.class_logits(model(batch)).log_softmax(-1).exp().mean(0).log()[None]  # [V=1, K]
    _, plain = batch_loss(model, batch, config)
    _, calibrated = batch_loss(model, batch, config, log_prior=log_prior)
    assert calibrated["marginal_entropy"] > plain["marginal_entropy"] + 0.05
    assert calibrated["transport"] == pytest.approx(plain["transport"])  # the transport term does not read the prior
