"""E2STR's Split-and-Transform: related samples made from one labelled word image.

Split: cut the image between character boxes into a contiguous span of characters; its label
is the substring. Transform: a copy with colour jitter and a small rotation, same label. A
context-training sequence shuffles several of these (plus unrelated samples) into one stream,
so the decoder learns to read a character by looking at how the same character looked, and
was labelled, in the other segments.

Character boxes come from the renderer for synthetic words; for real crops without boxes they
come from the CRNN's CTC alignment (``boxes_from_ctc``) when its reading equals the label.
"""

from __future__ import annotations

import random

import numpy as np
from PIL import Image, ImageOps


def random_span(n: int, rng: random.Random, min_len: int = 1) -> tuple[int, int]:
    """A contiguous span [i, j) of a word of n characters, shorter than the word."""
    length = rng.randint(min_len, max(min_len, n - 1))
    start = rng.randint(0, n - length)
    return start, start + length


def crop_span(image: Image.Image, boxes, i: int, j: int, rng: random.Random | None = None) -> Image.Image:
    """The columns of characters i..j-1: cut halfway between neighbouring boxes (or at the edge)."""
    left = 0.0 if i == 0 else (boxes[i - 1][2] + boxes[i][0]) / 2
    right = float(image.width) if j == len(boxes) else (boxes[j - 1][2] + boxes[j][0]) / 2
    if rng is not None:  # a little slack, as a human cropper would leave
        h = image.height
        left = max(0.0, left - rng.uniform(0, 0.05) * h)
        right = min(float(image.width), right + rng.uniform(0, 0.05) * h)
    left, right = int(round(left)), int(round(right))
    right = max(right, left + 2)
    return image.crop((left, 0, min(right, image.width), image.height))


def transform(image: Image.Image, rng: random.Random) -> Image.Image:
    """Colour jitter (brightness, contrast, channel shuffle, sometimes inversion) and rotation."""
    arr = np.asarray(image.convert("RGB"), dtype=np.float32)
    arr = arr[:, :, rng.sample(range(3), 3)]
    mean = arr.mean()
    arr = (arr - mean) * rng.uniform(0.6, 1.4) + mean + rng.uniform(-40, 40)
    if rng.random() < 0.2:
        arr = 255 - arr
    out = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    angle = rng.uniform(-8, 8)
    if abs(angle) > 0.5:
        fill = tuple(int(v) for v in np.asarray(out).reshape(-1, 3).mean(0))
        out = out.rotate(angle, resample=Image.BICUBIC, expand=True, fillcolor=fill)
    if rng.random() < 0.3:
        out = ImageOps.autocontrast(out)
    return out


def boxes_from_ctc(image: Image.Image, spans: list[tuple[int, int]], width: int, step: int = 4,
                   lead: float = 1.5) -> list[tuple[float, float, float, float]]:
    """Approximate character boxes in ``image`` pixels from CTC time steps.

    The encoder sees the image ``width`` px wide and time step t covers about columns step * t ..
    step * (t + 2) (the CRNN: 4 px). The CRNN's CTC spike for a character comes near the
    character's left edge, so a character is taken to run from ``lead`` steps before its first
    spike to ``lead`` steps before the next character's.
    """
    scale = image.width / width
    starts = [max(0.0, step * (a - lead) * scale) for a, _ in spans]
    ends = starts[1:] + [float(image.width)]
    return [(x0, 0.0, x1, float(image.height)) for x0, x1 in zip(starts, ends)]
