"""From detected text lines to words: crop each line, read it once, cut it into words at the recognizer's spaces
(written, or nearly: see SplitSettings).

The detector finds lines, while users (and ICDAR's ground truth) count words. PP-OCR writes a space between
the words of a line, and its CTC output says which column each character was read in: a column of the 48-pixel
high resized crop covers 8 pixels, and a character's spike sits near its middle. So a word spans from a fraction
of a character pitch before its first spike to a fraction after its last, and its log-probability columns (the
slice between the breaks around it) score it against any word list exactly as a crop of it would be scored.
A vertical line (a box at least 1.5 times taller than wide) is read turned, whichever way round reads more surely
(it may run top to bottom or bottom to top), and its words are boxed along it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from unseen.core.ctc import best_path
from unseen.scenetext.tuned import section

COLUMN = 8  # pixels of the 48-high resized crop per CTC column


_SPLIT = section("split")


@dataclass(frozen=True)
class SplitSettings:
    """Where a line is cut, and how far a word box reaches. Besides the recognizer's spaces a line is also cut where
    two characters are ``gap`` pitches apart or the space class reaches ``space_prob`` in a column between them (a
    recognizer often writes no space between words: "BEWAREOF"). A word box reaches ``lead`` and ``trail``
    character pitches beyond its first and last spike and keeps ``height`` of the line box's height (the detector's
    boxes are grown around the text). Defaults from tuned.json (bench/scenetext/e2e.py tune, photos 1-100)."""

    lead: float = _SPLIT["lead"]
    trail: float = _SPLIT["trail"]
    height: float = _SPLIT["height"]
    gap: float = float("inf") if _SPLIT["gap"] is None else _SPLIT["gap"]  # JSON has no infinity: null
    space_prob: float = _SPLIT["space_prob"]


@dataclass
class LineCrop:
    image: Image.Image | None  # the line, warped upright (RGB); None once read (see without_pixels)
    quad: np.ndarray  # [4, 2] its corners in the photo, clockwise from top-left
    to_photo: np.ndarray  # 3 x 3 perspective map from crop pixels to photo pixels
    rotated: bool  # a tall box: the crop was turned 90 degrees counter-clockwise to read it
    size: tuple[int, int] = (0, 0)  # the crop's (width, height), kept when the pixels are dropped
    flipped: bool = False  # turned half round again: a vertical line that reads bottom to top

    def without_pixels(self) -> LineCrop:
        return LineCrop(None, self.quad, self.to_photo, self.rotated, self.image.size if self.image else self.size,
                        self.flipped)

    def turned_half_round(self) -> LineCrop:
        return LineCrop(self.image.transpose(Image.Transpose.ROTATE_180), self.quad, self.to_photo, self.rotated,
                        self.size, not self.flipped)


@dataclass
class WordSpan:
    text: str
    char_probs: list[float]  # the greedy path's probability at each character's spike
    columns: tuple[int, int]  # [start, end) of the log-probability slice that reads this word
    spikes: tuple[int, int]  # first and last character column
    pitch: float  # columns per character in this line


def warp_line(bgr_photo: np.ndarray, quad: np.ndarray) -> LineCrop:
    """The quadrilateral cut out and warped to an upright rectangle (RapidOCR's crop: cubic, border replicated);
    boxes at least 1.5 times taller than wide are turned 90 degrees counter-clockwise to read."""
    import cv2

    quad = quad.astype(np.float32)
    width = int(max(np.linalg.norm(quad[0] - quad[1]), np.linalg.norm(quad[2] - quad[3])))
    height = int(max(np.linalg.norm(quad[0] - quad[3]), np.linalg.norm(quad[1] - quad[2])))
    width, height = max(width, 1), max(height, 1)
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    to_crop = cv2.getPerspectiveTransform(quad, target)
    crop = cv2.warpPerspective(bgr_photo, to_crop, (width, height), borderMode=cv2.BORDER_REPLICATE,
                               flags=cv2.INTER_CUBIC)
    rotated = height / width >= 1.5
    if rotated:
        crop = np.rot90(crop)
    image = Image.fromarray(np.ascontiguousarray(crop[:, :, ::-1]))
    return LineCrop(image, quad, np.linalg.inv(to_crop), rotated, image.size)


def split_line(log_probs: torch.Tensor, characters: list[str], settings: SplitSettings = SplitSettings()
               ) -> list[WordSpan]:
    """Greedy CTC reading of a line cut into words: at its spaces, and at wide or space-like gaps (SplitSettings)."""
    best, ids = log_probs.max(-1)
    probs, ids = best.exp().tolist(), ids.tolist()
    space = len(characters) - 1  # PP-OCR's space is its last class
    space_probs = log_probs[:, space].exp().tolist()
    # (column, character, probability) per emitted character
    chars = [(e.first, characters[e.index], e.prob) for e in best_path(ids, probs)]
    visible = [c for c in chars if c[1].strip()]
    gaps = [b[0] - a[0] for a, b in zip(visible, visible[1:])]
    # the line's character pitch: the median distance between neighbouring spikes (most are inside words)
    pitch = float(np.median(gaps)) if gaps else 3.0
    groups, current = [], []
    for t, ch, p in chars:
        if not ch.strip():
            if current:
                groups.append(current)
            current = []
            continue
        if current and (t - current[-1][0] >= settings.gap * pitch
                        or max(space_probs[current[-1][0] + 1 : t], default=0.0) >= settings.space_prob):
            groups.append(current)
            current = []
        current.append((t, ch, p))
    if current:
        groups.append(current)
    spans = []
    for k, group in enumerate(groups):
        first, last = group[0][0], group[-1][0]
        # the slice that reads this word: from just after the previous word (or space) to just before the next
        start = max([t + 1 for t, i in enumerate(ids) if i == space and t < first]
                    + ([(groups[k - 1][-1][0] + first + 1) // 2] if k else [0]))
        end = min([t for t, i in enumerate(ids) if i == space and t > last]
                  + ([(last + groups[k + 1][0][0] + 1) // 2] if k + 1 < len(groups) else [len(ids)]))
        spans.append(WordSpan("".join(ch for _, ch, _ in group), [p for _, _, p in group], (start, end),
                              (first, last), pitch))
    return spans


def word_quad(line: LineCrop, span: WordSpan, resized_width: int, settings: SplitSettings) -> np.ndarray:
    """The word's corners in the photo: its column range mapped to crop pixels, then through the line's warp."""
    import cv2

    crop_w, crop_h = line.size  # as read: a turned crop's size after turning
    scale = crop_w / resized_width
    first, last = span.spikes
    left = (first + 0.5 - settings.lead * span.pitch) * COLUMN * scale
    right = (last + 0.5 + settings.trail * span.pitch) * COLUMN * scale
    left, right = max(0.0, left), min(float(crop_w), max(right, left + 1))
    margin = crop_h * (1 - settings.height) / 2
    corners = np.array([[[left, margin], [right, margin], [right, crop_h - margin], [left, crop_h - margin]]],
                       dtype=np.float32)
    if line.flipped:  # read turned half round: back to the quarter turn first
        corners = np.stack([crop_w - corners[..., 0], crop_h - corners[..., 1]], axis=-1)
    if line.rotated:  # read turned 90 degrees counter-clockwise: (x, y) as read was (width - y, x) before turning,
        corners = np.stack([crop_h - corners[..., 1], corners[..., 0]], axis=-1)  # whose width is crop_h now
    return cv2.perspectiveTransform(corners, line.to_photo.astype(np.float32))[0]


def word_crop(bgr_photo: np.ndarray, quad: np.ndarray) -> Image.Image:
    """A word's pixels, upright, for a pool entry."""
    return warp_line(bgr_photo, quad).image
