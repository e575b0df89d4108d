"""The recognizer's character set and its token ids.

95 printable ASCII characters (digits, letters, punctuation, space). Token ids: 0 = padding,
1 = BOS (starts every text segment), 2 = EOS (ends it), 3.. = the characters in CHARSET order.
"""

from __future__ import annotations

import string

from unseen.core.errors import DataError

CHARSET = string.digits + string.ascii_letters + string.punctuation + " "
assert len(CHARSET) == 95 and len(set(CHARSET)) == 95
PAD, BOS, EOS = 0, 1, 2
N_SPECIAL = 3
VOCAB_SIZE = len(CHARSET) + N_SPECIAL
_ID = {c: i + N_SPECIAL for i, c in enumerate(CHARSET)}


def latin(character: str) -> bool:
    """Printable ASCII (not the space) or Latin-1 Supplement/Latin Extended-A: the characters the default reader
    keeps a column for and spells words with (é, ß, ł, œ; onnx_encoder.py)."""
    if len(character) != 1:
        return False
    code = ord(character)
    return 0x21 <= code <= 0x7E or 0xA1 <= code <= 0x17F


def unsupported(text: str) -> list[str]:
    """Characters of ``text`` the recognizer cannot produce, in order of appearance."""
    return list(dict.fromkeys(c for c in text if c not in _ID))


def check_label(text: str, where: str, spelling: frozenset[str] | None = None) -> str:
    """Return ``text`` if the recognizer can write every character (``spelling``: its characters; default CHARSET,
    E2STR-lite's), else raise a one-line DataError."""
    if not text or not text.strip():
        raise DataError(f"{where}: empty label")
    bad = unsupported(text) if spelling is None else list(dict.fromkeys(c for c in text if c not in spelling))
    if bad:
        shown = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in bad[:3])
        allowed = ("printable ASCII letters, digits, punctuation and space" if spelling is None
                   else "the Latin-script characters the recognizer keeps (ASCII, Latin-1, Latin Extended-A)")
        raise DataError(f"{where}: label {text!r} has characters outside the recognizer's charset: {shown}; "
                        f"allowed are {allowed}")
    return text


def encode(text: str) -> list[int]:
    """BOS c1 .. cn EOS (characters outside CHARSET are dropped: check_label first where it matters)."""
    return [BOS] + [_ID[c] for c in text if c in _ID] + [EOS]


def decode(ids) -> str:
    out = []
    for i in ids:
        i = int(i)
        if i == EOS:
            break
        if i >= N_SPECIAL:
            out.append(CHARSET[i - N_SPECIAL])
    return "".join(out)


def in_charset(text: str) -> bool:
    return bool(text) and not unsupported(text)
