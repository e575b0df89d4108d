"""The POUF objective (Tanwisuth et al., ICML 2023), as the official code computes it.

Given B target features and K class prototypes (text features of the class prompts,
or the output-layer rows of the verbalizer words), with cosine similarity
``s[i, j]`` between feature i and prototype j:

    logits    = scale * s                     (CLIP's logit scale, 100; 10 for the LM side)
    cost      = 1 - s
    transport = mean_i sum_j cost_ij softmax_j(logits_i)     features -> prototypes
              + mean_j sum_i cost_ij softmax_i(logits_j)     prototypes -> features
    mi        = mean_i H(p(y|x_i)) - H(mean_i p(y|x_i))      (negative mutual information)
    loss      = lambda_transport * transport + lambda_mi * mi

The first transport term pulls each feature towards the prototypes it is likely to
belong to; the second pulls each prototype towards the features likely to belong
to it (the softmax runs over the batch), so no prototype is left without data.
The mutual-information term makes each prediction confident while keeping the
batch's predictions spread over the classes. Official weights: 1.0 and 0.3 for
image-text models (``pouf_lvm``), 1.0 and 0.6 with scale 10 for language models
(``pouf_mlm``), whose MI term reads the model's own label logits.

Bounds: each transport term lies in [0, 2] (cosine cost in [0, 2] averaged with
probability weights) and mi lies in [-log K, 0].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["PoufLoss", "cosine_similarity", "mutual_information_loss", "pouf_loss", "transport_loss"]


def cosine_similarity(features: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """[B, D] x [K, D] -> [B, K] cosine similarities."""
    return F.normalize(features, dim=-1) @ F.normalize(prototypes, dim=-1).T


def transport_loss(similarity: torch.Tensor, scale: float | torch.Tensor) -> torch.Tensor:
    """Bidirectional transport cost between a batch of features and the prototypes.

    ``similarity``: [B, K] cosine similarities. Swapping the roles of features and
    prototypes (transposing ``similarity``) gives the same value.
    """
    logits = scale * similarity
    cost = 1.0 - similarity
    to_prototypes = (cost * logits.softmax(dim=1)).sum(dim=1).mean()  # each feature spreads over classes
    to_features = (cost * logits.softmax(dim=0)).sum(dim=0).mean()  # each class spreads over the batch
    return to_prototypes + to_features


def mutual_information_loss(logits: torch.Tensor) -> torch.Tensor:
    """Mean entropy of p(y|x) minus the entropy of the batch-mean p(y): in [-log K, 0].

    Computed from log-softmax (no epsilon), so it stays finite for saturated logits.
    """
    log_p = logits.log_softmax(dim=1)
    conditional = -(log_p.exp() * log_p).sum(dim=1).mean()
    log_marginal = torch.logsumexp(log_p, dim=0) - math.log(logits.shape[0])
    marginal = -(log_marginal.exp() * log_marginal).sum()
    return conditional - marginal


@dataclass
class PoufLoss:
    """The objective with its weights; calling it returns (loss, parts for logging)."""

    scale: float = 100.0
    lambda_transport: float = 1.0
    lambda_mi: float = 0.3

    def __call__(self, features, prototypes, logits=None):
        return pouf_loss(features, prototypes, scale=self.scale, lambda_transport=self.lambda_transport,
                         lambda_mi=self.lambda_mi, logits=logits)


def pouf_loss(
    features: torch.Tensor,
    prototypes: torch.Tensor,
    *,
    scale: float | torch.Tensor = 100.0,
    lambda_transport: float = 1.0,
    lambda_mi: float = 0.3,
    logits: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The POUF loss of a batch.

    ``features`` [B, D], ``prototypes`` [K, D]. ``logits`` [B, K] are the class scores
    the MI term reads; by default ``scale * cosine`` (the image-text models), while the
    official language-model code passes the LM's own scores at the verbalizer tokens.
    Returns the loss and a dict of floats (transport, mi, entropy, marginal entropy).
    """
    if features.shape[0] < 2:
        raise ValueError("POUF needs a batch of at least 2 target features (its second softmax runs over the batch)")
    similarity = cosine_similarity(features.float(), prototypes.float())
    transport = transport_loss(similarity, scale)
    class_logits = scale * similarity if logits is None else logits.float()
    mi = mutual_information_loss(class_logits)
    loss = lambda_transport * transport + lambda_mi * mi
    with torch.no_grad():
        log_p = class_logits.log_softmax(dim=1)
        entropy = -(log_p.exp() * log_p).sum(dim=1).mean()
    parts = {"transport": transport.item(), "mi": mi.item(), "entropy": entropy.item(),
             "marginal_entropy": (entropy - mi).item()}
    return loss, parts
