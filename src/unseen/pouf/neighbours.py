"""A label-free check of POUF's text result against zero-shot: do the inputs' neighbours agree?

POUF's selection scores checkpoints with its own objective, which training lowers, so the adapted
weights always win it, also where adaptation moved the predictions the wrong way. A view that POUF
never touches can tell: a sentence encoder (MiniLM) places similar inputs near each other, and a
better classifier's answers agree more with the answers given to their neighbours.

For the zero-shot and the adapted predictions on the unlabeled texts, the check measures the
k-nearest-neighbour agreement in the encoder's space, corrected for chance (answers that put almost
everything in one class agree trivially):

    kappa = (observed - expected) / (1 - expected),  expected = sum_c share_c ** 2

The adapted weights are kept only where their kappa is higher than zero-shot's. k = 10 and the
strict comparison were fixed before the check was first run; no label is read.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

NEIGHBOURS = 10
ENCODER = "minilm-l6-v2"


@dataclass
class NeighbourCheck:
    zero_shot: float  # kappa of the zero-shot predictions
    adapted: float  # kappa of the adapted predictions
    k: int
    encoder: str
    texts: int

    @property
    def keep_adapted(self) -> bool:
        return self.adapted > self.zero_shot

    def describe(self) -> str:
        return (f"neighbour agreement (kappa, {self.k} nearest of {self.texts} unlabeled texts in {self.encoder}): "
                f"zero-shot {self.zero_shot:.3f}, adapted {self.adapted:.3f}")

    def as_dict(self) -> dict:
        return asdict(self) | {"keep_adapted": self.keep_adapted}


@torch.no_grad()
def embed_texts(texts: list[str], encoder: str = ENCODER, batch_size: int = 64) -> torch.Tensor:
    """[N, D] unit-length mean-pooled sentence embeddings (sentence-transformers' recipe)."""
    from unseen.core.assets import load_sentence_encoder, mean_pooled

    model, tokenizer = load_sentence_encoder(encoder)
    out = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(texts[start : start + batch_size], padding=True, truncation=True, max_length=128,
                          return_tensors="pt")
        out.append(mean_pooled(model(**batch).last_hidden_state, batch["attention_mask"]))
    return torch.cat(out)


def neighbour_kappa(embeddings: torch.Tensor, predictions: torch.Tensor, k: int = NEIGHBOURS) -> float:
    """Chance-corrected share of each example's k nearest neighbours (cosine) that got its answer."""
    n = len(predictions)
    k = min(k, n - 1)
    if k < 1:
        return 0.0
    similarity = embeddings @ embeddings.T
    similarity.fill_diagonal_(-float("inf"))
    nearest = similarity.topk(k, dim=1).indices
    observed = float((predictions[nearest] == predictions[:, None]).float().mean())
    shares = torch.bincount(predictions).float() / n
    expected = float((shares**2).sum())
    return 0.0 if expected >= 1.0 else (observed - expected) / (1.0 - expected)


def check(texts: list[str], zero_shot: torch.Tensor, adapted: torch.Tensor, *, k: int = NEIGHBOURS,
          encoder: str = ENCODER, embeddings: torch.Tensor | None = None) -> NeighbourCheck:
    """Compare the zero-shot and adapted answers ([N] class indices) on the same unlabeled texts."""
    embeddings = embed_texts(texts, encoder) if embeddings is None else embeddings
    return NeighbourCheck(neighbour_kappa(embeddings, zero_shot, k), neighbour_kappa(embeddings, adapted, k), k,
                          encoder, len(texts))
