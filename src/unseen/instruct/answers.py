"""Reading a generated answer back as one of the answer choices.

A direct answer is the first line of the output. A chain-of-thought answer (FLAN v2) is a
rationale followed by "... the answer is X" or "... answer: X": the text after the last
such marker. Either is compared with the choices after SQuAD-style normalization
(lowercase, no punctuation, no articles, single spaces), so "Yes." answers "yes". Lint
checks that every chain-of-thought template's own target parses back to its answer.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

__all__ = ["canonical_prediction", "normalize", "parse_answer"]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans({character: " " for character in string.punctuation + "“”‘’"})
# "the answer is", "answer:", "The final answer is -" ...; the last one in the text counts
_MARKER = re.compile(r"\banswer(?:\s+is)?\s*[:\-]?\s*", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")


def normalize(text: str) -> str:
    text = text.lower().translate(_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _match(text: str, normalized_choices: list[str]) -> int | None:
    candidate = normalize(text)
    return normalized_choices.index(candidate) if candidate in normalized_choices else None


def parse_answer(output: str, choices: Sequence[str], chain_of_thought: bool = False) -> int | None:
    """Index of the choice ``output`` answers, or None when it answers none (an invalid answer).

    Direct: the first non-empty line must equal a choice after normalization. Chain of thought:
    the text after the last answer marker; its first sentence must equal a choice, or else
    begin with one at a word boundary (the longest wins): "yes, because ..." answers "yes".
    """
    normalized_choices = [normalize(choice) for choice in choices]
    text = output.strip()
    if not chain_of_thought:
        return _match(text.split("\n")[0], normalized_choices)
    # the last marker whose tail parses: a choice may itself contain "answer" ("answer questions")
    for marker in reversed(list(_MARKER.finditer(text))):
        found = _parse_tail(text[marker.end() :].split("\n")[0].strip(), normalized_choices)
        if found is not None:
            return found
    return None


def _parse_tail(tail: str, normalized_choices: list[str]) -> int | None:
    for candidate in (tail, _SENTENCE_END.split(tail, maxsplit=1)[0]):
        found = _match(candidate, normalized_choices)
        if found is not None:
            return found
    words = normalize(tail)
    prefixes = [(len(choice), index) for index, choice in enumerate(normalized_choices)
                if choice and (words == choice or words.startswith(choice + " "))]
    return max(prefixes)[1] if prefixes else None


def canonical_prediction(predicted: int | None, gold: int, choices: Sequence[str]) -> int:
    """``predicted`` as a class index for scoring: the gold index when the two choices are the
    same answer after normalization (QASC lists both "energy." and "energy"), -1 when invalid."""
    if predicted is None:
        return -1
    return gold if normalize(choices[predicted]) == normalize(choices[gold]) else predicted
