"""Classification metrics that do not reward a shift of answer bias."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence


def accuracy(predictions: Sequence[int], labels: Sequence[int]) -> float:
    return sum(p == y for p, y in zip(predictions, labels)) / max(len(labels), 1)


def balanced_accuracy(predictions: Sequence[int], labels: Sequence[int]) -> float:
    """Mean over the classes present in ``labels`` of the recall of that class
    (macro-averaged recall): always answering one class scores 1/K."""
    per_class = {}
    for label in set(labels):
        members = [p for p, y in zip(predictions, labels) if y == label]
        per_class[label] = sum(p == label for p in members) / len(members)
    return sum(per_class.values()) / max(len(per_class), 1)


def constant_answer_accuracy(labels: Sequence[int]) -> float:
    """Accuracy of the best always-the-same-answer baseline (the majority class)."""
    return Counter(labels).most_common(1)[0][1] / len(labels) if labels else 0.0


def prediction_distribution(predictions: Sequence[int], num_classes: int) -> list[float]:
    counts = Counter(predictions)
    return [counts.get(k, 0) / max(len(predictions), 1) for k in range(num_classes)]


def classification_report(predictions: Sequence[int], labels: Sequence[int], num_classes: int) -> dict:
    return {
        "n": len(labels),
        "accuracy": accuracy(predictions, labels),
        "balanced_accuracy": balanced_accuracy(predictions, labels),
        "constant_baseline": constant_answer_accuracy(labels),
        "predicted_distribution": prediction_distribution(predictions, num_classes),
    }
