"""The POUF loss: symmetry, bounds, gradients, and a synthetic case it must solve."""

import math

import pytest
import torch
import torch.nn.functional as F

from unseen.pouf.loss import cosine_similarity, mutual_information_loss, pouf_loss, transport_loss

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _reference_transport(features, prototypes, scale):
    # the official pouf_lvm code, written out literally
    f = F.normalize(features, dim=-1)
    p = F.normalize(prototypes, dim=-1)
    sim = f @ p.T
    logits = scale * sim
    cost = 1 - sim
    return (cost * F.softmax(logits, dim=1)).sum(1).mean() + (cost * F.softmax(logits, dim=0)).sum(0).mean()


def _reference_im(logits):
    softmax_out = F.softmax(logits, dim=1)
    entropy = torch.mean(torch.sum(-softmax_out * torch.log(softmax_out + 1e-5), dim=1))
    m = softmax_out.mean(dim=0)
    return entropy - torch.sum(-m * torch.log(m + 1e-6))


def test_matches_the_official_formulas():
    torch.manual_seed(0)
    features, prototypes = torch.randn(16, 32), torch.randn(5, 32)
    for scale in (1.0, 10.0, 100.0):
        sim = cosine_similarity(features, prototypes)
        assert transport_loss(sim,
                              scale).item() == pytest.approx(_reference_transport(features, prototypes, scale).item(),
                                                             abs=1e-5)
        assert mutual_information_loss(scale * sim).item() == pytest.approx(_reference_im(scale * sim).item(), abs=1e-3)


def test_transport_is_symmetric_in_features_and_prototypes():
    torch.manual_seed(1)
    a, b = torch.randn(12, 8), torch.randn(12, 8)
    sim = cosine_similarity(a, b)
    assert transport_loss(sim, 7.0).item() == pytest.approx(transport_loss(sim.T, 7.0).item(), abs=1e-6)


def test_transport_bounds():
    torch.manual_seed(2)
    for _ in range(20):
        sim = cosine_similarity(torch.randn(9, 4), torch.randn(3, 4))
        value = transport_loss(sim, 50.0).item()
        assert 0.0 <= value <= 4.0
    # features sitting exactly on their prototypes, one per class: near zero cost
    prototypes = torch.eye(4)
    assert transport_loss(cosine_similarity(prototypes.repeat(3, 1), prototypes), 100.0).item() < 1e-3


def test_mutual_information_bounds():
    torch.manual_seed(3)
    k = 6
    for scale in (0.1, 1.0, 10.0, 1000.0):
        value = mutual_information_loss(scale * torch.randn(32, k)).item()
        assert -math.log(k) - 1e-5 <= value <= 1e-5
    # confident and balanced: the minimum, -log K
    balanced = 1000.0 * torch.eye(k).repeat(4, 1)
    assert mutual_information_loss(balanced).item() == pytest.approx(-math.log(k), abs=1e-4)
    # everything on one class, confidently: 0 (no information)
    collapsed = torch.zeros(24, k)
    collapsed[:, 2] = 1000.0
    assert mutual_information_loss(collapsed).item() == pytest.approx(0.0, abs=1e-4)


def test_gradients_are_finite_even_when_saturated():
    torch.manual_seed(4)
    features = torch.randn(8, 16, requires_grad=True)
    prototypes = torch.randn(3, 16, requires_grad=True)
    big_logits = (1e4 * torch.randn(8, 3)).requires_grad_()
    loss, parts = pouf_loss(features, prototypes, scale=100.0, logits=big_logits)
    loss.backward()
    for tensor in (features, prototypes, big_logits):
        assert torch.isfinite(tensor.grad).all()
    assert set(parts) == {"transport", "mi", "entropy", "marginal_entropy"}
    with pytest.raises(ValueError, match="at least 2"):
        pouf_loss(features[:1], prototypes)


def test_aligning_rotated_prototypes_recovers_accuracy():
    """Classes are clusters around K directions; the zero-shot prototypes are those
    directions rotated away so that zero-shot accuracy is poor. Minimising the POUF
    loss over the prototypes alone (features fixed, as in prompt tuning with cached
    features) moves them back onto the clusters, without any label."""
    torch.manual_seed(5)
    k, d, per_class = 4, 16, 64
    centers = F.normalize(torch.randn(k, d), dim=-1) * 3
    labels = torch.arange(k).repeat_interleave(per_class)
    features = centers[labels] + 0.6 * torch.randn(k * per_class, d)
    # a rotation in the plane of consecutive centers: prototype j leans towards class j+1
    rotated = 0.55 * centers + 0.45 * centers.roll(-1, dims=0)
    accuracy = lambda p: (cosine_similarity(features, p).argmax(1) == labels).float().mean().item()  # noqa: E731
    before = accuracy(rotated)
    prototypes = rotated.clone().requires_grad_()
    optimizer = torch.optim.Adam([prototypes], lr=0.1)
    generator = torch.Generator().manual_seed(0)
    for _ in range(80):
        batch = torch.randperm(len(labels), generator=generator)[:64]
        loss, _ = pouf_loss(features[batch], prototypes, scale=20.0, lambda_mi=0.3)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = accuracy(prototypes.detach())
    assert before < 0.75
    assert after > 0.95
