"""Scene-text metrics as the field reports them.

The standard protocol ("36-char") lower-cases both strings and keeps only [a-z0-9] before
comparing; "cased" keeps case but only letters and digits; "full" compares the 94 printable
ASCII characters (case and punctuation kept, spaces dropped). For each: word accuracy and the
mean of 1 - normalized edit distance, 1 - ED(p, g) / max(|p|, |g|) (0 distance if both empty).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

PROTOCOLS = ("36", "cased", "full")


def normalize(text: str, protocol: str = "36") -> str:
    if protocol == "36":
        return re.sub(r"[^a-z0-9]", "", text.lower())
    if protocol == "cased":
        return re.sub(r"[^A-Za-z0-9]", "", text)
    if protocol == "full":
        return "".join(c for c in text if "!" <= c <= "~")
    raise ValueError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (unit costs)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def one_minus_ned(prediction: str, target: str) -> float:
    longest = max(len(prediction), len(target))
    return 1.0 if longest == 0 else 1.0 - edit_distance(prediction, target) / longest


def score(predictions: Sequence[str], targets: Sequence[str], protocol: str = "36") -> dict:
    """{"n", "accuracy", "one_minus_ned"} (fractions in [0, 1]) under one protocol."""
    if len(predictions) != len(targets):
        raise ValueError(f"{len(predictions)} predictions for {len(targets)} targets")
    pairs = [(normalize(p, protocol), normalize(t, protocol)) for p, t in zip(predictions, targets)]
    n = max(len(pairs), 1)
    return {
        "n": len(pairs),
        "accuracy": sum(p == t for p, t in pairs) / n,
        "one_minus_ned": sum(one_minus_ned(p, t) for p, t in pairs) / n,
    }


def report(predictions: Sequence[str], targets: Sequence[str]) -> dict:
    """Every protocol: {"36": {...}, "cased": {...}, "full": {...}}."""
    return {protocol: score(predictions, targets, protocol) for protocol in PROTOCOLS}


def correct(prediction: str, target: str, protocol: str = "36") -> bool:
    return normalize(prediction, protocol) == normalize(target, protocol)
