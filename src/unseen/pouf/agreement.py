"""A label-free gate before POUF's text adaptation: do the task's prompts agree beyond chance?

POUF sharpens what the zero-shot classifier already says about the unlabeled texts. Where the
model does not read the task, its prompts (templates) answer independently of one another,
and sharpening would only make noise confident. Measured on the benchmark (docs/pouf.md): SmolLM2's
calibrated templates on SUBJ agree no better than chance (Fleiss kappa 0.003) and POUF lost 6.3
points there; on every task where POUF gained, the templates agreed far beyond chance (z >= 2.9).

The gate is Fleiss' kappa of the calibrated templates' answers on the unlabeled texts, tested
against its null of independent answers (Fleiss, Nee & Landis 1979):

    var0 = 2 / (N n (n - 1)) * ((sum_j p_j q_j) ** 2 - sum_j p_j q_j (q_j - p_j)) / (sum_j p_j q_j) ** 2

with N texts, n templates, p_j the share of class j among all answers, q_j = 1 - p_j. The
adapted run goes ahead only if z = kappa / sqrt(var0) reaches 1.96 (one-sided 2.5 %, the
textbook level; the rule was written after the benchmark's kappas had been computed, see
docs/pouf.md). No label is read.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from unseen.pouf.adapt import calibrate

Z_MIN = 1.96


@dataclass
class AgreementGate:
    kappa: float  # Fleiss' kappa of the calibrated templates' answers
    z: float  # kappa over its standard error under independent answers
    templates: int
    texts: int
    z_min: float = Z_MIN

    @property
    def passes(self) -> bool:
        return self.z >= self.z_min

    def describe(self) -> str:
        return (f"prompt agreement on {self.texts} unlabeled texts: Fleiss kappa {self.kappa:.3f} over "
                f"{self.templates} calibrated prompts, z {self.z:.1f} (gate: z >= {self.z_min})")

    def as_dict(self) -> dict:
        return asdict(self) | {"passes": self.passes}


def fleiss_kappa(answers: torch.Tensor, num_classes: int) -> tuple[float, float]:
    """(kappa, z) of [n raters, N items] class indices; z is kappa over its null standard error."""
    raters, items = answers.shape
    if raters < 2 or items < 1:
        raise ValueError("Fleiss' kappa needs at least 2 raters and 1 item")
    counts = torch.stack([(answers == c).sum(0) for c in range(num_classes)], 1).double()  # [N, K]
    observed = float(((counts * (counts - 1)).sum(1) / (raters * (raters - 1))).mean())
    shares = counts.sum(0) / (items * raters)
    spread = shares * (1 - shares)
    expected = float((shares**2).sum())
    if expected >= 1.0:  # every answer the same class: no evidence either way
        return 0.0, 0.0
    kappa = (observed - expected) / (1 - expected)
    total = float(spread.sum())
    variance = 2 / (items * raters * (raters - 1)) * (total**2 - float((spread * (1 - 2 * shares)).sum())) / total**2
    return kappa, kappa / math.sqrt(variance) if variance > 0 else 0.0


def measure_agreement(log_probs: torch.Tensor) -> AgreementGate:
    """Gate from the zero-shot class log-probabilities [templates, texts, classes] on the unlabeled texts."""
    answers = calibrate(log_probs).argmax(-1)
    kappa, z = fleiss_kappa(answers, log_probs.shape[-1])
    return AgreementGate(kappa, z, log_probs.shape[0], log_probs.shape[1])
