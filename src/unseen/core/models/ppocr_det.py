"""PaddleOCR's DB text detectors (PP-OCRv6 small, and PP-OCRv4 mobile as history), run through onnxruntime with
RapidOCR 3.10's pre- and post-processing (its config.yaml: short side 736, ``limit_type min``, thresh 0.3,
box_thresh 0.5, unclip 1.6, dilation, "fast" box score).

The weights ship in ``rapidocr==3.10.0`` (``PP-OCRv6_det_small.onnx``) and ``rapidocr-onnxruntime==1.4.4``
(``ch_PP-OCRv4_det_infer.onnx``). Nothing here trains the detector or reads its features, so onnxruntime, which *is*
the reference, gives RapidOCR's boxes exactly and at its speed.

    photo (BGR uint8) -> cap the long side, pad very flat images, resize so the short side is 736 (multiples of 32)
    -> DB probability map -> binarise at ``thresh``, dilate 2 x 2 -> contours -> minimum-area rectangles
    -> keep those whose mean probability >= ``box_thresh`` -> "unclip" (grow by area * ratio / perimeter)
    -> quadrilaterals in photo pixels, clockwise from top-left, sorted top-to-bottom, left-to-right
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class DetectorSettings:
    """RapidOCR 3.10's defaults (its config.yaml), plus ``max_input_side``: a cap on the network input, so a
    20,000-pixel panorama is read smaller instead of exhausting memory."""

    limit_side_len: int = 736  # the short side is brought to this length ("min"), or the long side capped ("max")
    limit_type: str = "min"
    thresh: float = 0.3  # probability that counts as text
    box_thresh: float = 0.5  # mean probability a box needs
    unclip_ratio: float = 1.6
    max_candidates: int = 1000
    max_side_len: int = 2000  # RapidOCR's global cap on the photo's long side
    min_side_len: int = 30
    min_height: int = 30  # flatter images are padded top and bottom
    width_height_ratio: float = 8
    max_input_side: int = 4096

    def with_(self, **changes) -> DetectorSettings:
        return replace(self, **changes)


_NORMALIZED = (np.arange(256, dtype=np.float32) / 255.0 - 0.5) / 0.5  # uint8 -> [-1, 1], float32 throughout


def _resize_to_32(img, ratio: float):
    import cv2

    h, w = img.shape[:2]
    resize_h, resize_w = int(round(int(h * ratio) / 32) * 32), int(round(int(w * ratio) / 32) * 32)
    resize_h, resize_w = max(resize_h, 32), max(resize_w, 32)
    return cv2.resize(img, (resize_w, resize_h)), h / resize_h, w / resize_w


def _min_area_quad(points) -> tuple[np.ndarray, float]:
    """The minimum-area rectangle around ``points`` as 4 corners (top-left, top-right, bottom-right, bottom-left
    by RapidOCR's rule) and its shorter side."""
    import cv2

    rect = cv2.minAreaRect(points)
    corners = sorted(cv2.boxPoints(rect).tolist(), key=lambda p: p[0])
    left = sorted(corners[:2], key=lambda p: p[1])
    right = sorted(corners[2:], key=lambda p: p[1])
    return np.array([left[0], right[0], right[1], left[1]], dtype=np.float32), min(rect[1])


def _box_score(prob: np.ndarray, quad: np.ndarray) -> float:
    """Mean probability inside the quadrilateral (RapidOCR's "fast" score: its integer polygon)."""
    import cv2

    h, w = prob.shape
    x0, y0 = np.clip(np.floor(quad.min(0)), 0, [w - 1, h - 1]).astype(int)
    x1, y1 = np.clip(np.ceil(quad.max(0)), 0, [w - 1, h - 1]).astype(int)
    mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), dtype=np.uint8)
    cv2.fillPoly(mask, (quad - [x0, y0]).reshape(1, -1, 2).astype(np.int32), 1)
    return cv2.mean(prob[y0 : y1 + 1, x0 : x1 + 1], mask)[0]


def _unclip(quad: np.ndarray, ratio: float) -> np.ndarray:
    """Grow the shrunk text kernel back to the text: offset by area * ratio / perimeter (DB's rule), round joins."""
    import pyclipper

    x, y = quad[:, 0], quad[:, 1]
    area = 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))
    perimeter = np.linalg.norm(quad - np.roll(quad, 1, axis=0), axis=1).sum()
    offset = pyclipper.PyclipperOffset()
    offset.AddPath(quad, pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    return np.array(offset.Execute(area * ratio / perimeter)).reshape(-1, 1, 2)


def _clockwise(quad: np.ndarray) -> np.ndarray:
    """Top-left, top-right, bottom-right, bottom-left: the two leftmost points by y, then the two rightmost."""
    by_x = quad[np.argsort(quad[:, 0], kind="stable")]
    left, right = by_x[:2][np.argsort(by_x[:2, 1], kind="stable")], by_x[2:][np.argsort(by_x[2:, 1], kind="stable")]
    return np.array([left[0], right[0], right[1], left[1]], dtype=np.float32)


def _reading_order(quads: list[np.ndarray]) -> list[int]:
    """RapidOCR 3.10's order: boxes sorted by their top-left y, a new row wherever that y jumps by 10 px or more,
    left to right within a row. Returns the positions of ``quads`` in that order."""
    if not quads:
        return []
    tops = np.array([q[0][1] for q in quads])
    by_y = np.argsort(tops, kind="stable")
    rows = np.concatenate([[0], np.cumsum(np.diff(tops[by_y]) >= 10)])
    lefts = np.array([quads[i][0][0] for i in by_y])
    return [int(by_y[i]) for i in np.lexsort((lefts, rows))]


class DBDetector:
    def __init__(self, path, settings: DetectorSettings = DetectorSettings(), threads: int | None = None):
        from unseen.core.io import file_digest
        from unseen.core.models.ppocr_onnx import onnx_session

        self.session = onnx_session(path, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.settings = settings
        self._weights = f"{Path(path).name}-{file_digest(path)[:16]}"

    @property
    def fingerprint(self) -> str:
        """The weights and every setting: what a cache of its boxes must be keyed by."""
        return f"{self._weights}|{self.settings}"

    @staticmethod
    def network_input(scaled: np.ndarray) -> np.ndarray:
        """A BGR uint8 image already at the detector's scale as the network's [1, 3, H, W] float32 input."""
        import cv2

        # (x / 255 - 0.5) / 0.5 through a 256-entry table, laid out as the network's contiguous NCHW input: the
        # same values as the arithmetic, in a fifth of its time (onnxruntime would copy a transposed view anyway)
        return np.ascontiguousarray(cv2.LUT(scaled, _NORMALIZED).transpose(2, 0, 1))[None]

    def probability_map(self, bgr: np.ndarray) -> np.ndarray:
        """The DB text-probability map of an image already brought to the detector's scale (H, W multiples of 32)."""
        return self.session.run(None, {self.input_name: self.network_input(bgr)})[0][0, 0]

    @staticmethod
    def scaled(bgr: np.ndarray, s: DetectorSettings):
        """(the photo as the network sees it, the (width, height) boxes are found in, (ratio_w, ratio_h) from those
        to photo pixels, rows padded on top)."""
        import cv2

        raw_h, raw_w = bgr.shape[:2]
        img, ratio_h, ratio_w = bgr, 1.0, 1.0
        if max(raw_h, raw_w) > s.max_side_len:
            img, ratio_h, ratio_w = _resize_to_32(img, s.max_side_len / max(raw_h, raw_w))
        if min(img.shape[:2]) < s.min_side_len:
            img, ratio_h, ratio_w = _resize_to_32(img, s.min_side_len / min(img.shape[:2]))
        h, w = img.shape[:2]
        pad_top = 0
        if h <= s.min_height or w / h > s.width_height_ratio:  # very flat: pad so the detector sees a usable shape
            pad_top = int(abs(max(int(w / s.width_height_ratio), s.min_height) * 2 - h) / 2)
            img = cv2.copyMakeBorder(img, pad_top, pad_top, 0, 0, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        h, w = img.shape[:2]
        if s.limit_type == "max":
            ratio = s.limit_side_len / max(h, w) if max(h, w) > s.limit_side_len else 1.0
        else:
            ratio = s.limit_side_len / min(h, w) if min(h, w) < s.limit_side_len else 1.0
        ratio = min(ratio, s.max_input_side / max(h, w))
        return _resize_to_32(img, ratio)[0], (w, h), (ratio_w, ratio_h), pad_top

    def __call__(self, bgr: np.ndarray, settings: DetectorSettings | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(quads [N, 4, 2] float32 in photo pixels, scores [N]) for a BGR uint8 photo."""
        s = settings or self.settings
        raw_h, raw_w = bgr.shape[:2]
        scaled, (w, h), (ratio_w, ratio_h), pad_top = self.scaled(bgr, s)
        prob = self.probability_map(scaled)
        quads, scores = self._boxes(prob, w, h, s)
        kept, kept_scores = [], []
        for quad, score in zip(quads, scores):
            quad = _clockwise(quad)
            quad[:, 0] = np.clip(quad[:, 0], 0, w - 1).astype(int)
            quad[:, 1] = np.clip(quad[:, 1], 0, h - 1).astype(int)
            if int(np.linalg.norm(quad[0] - quad[1])) <= 3 or int(np.linalg.norm(quad[0] - quad[3])) <= 3:
                continue
            kept.append(quad)
            kept_scores.append(score)
        order = _reading_order(kept)
        if not order:
            return np.zeros((0, 4, 2), np.float32), np.zeros(0, np.float32)
        out = np.array([kept[i] for i in order], dtype=np.float32)
        out[:, :, 1] -= pad_top
        out[:, :, 0] *= ratio_w
        out[:, :, 1] *= ratio_h
        out[..., 0] = out[..., 0].clip(0, raw_w)
        out[..., 1] = out[..., 1].clip(0, raw_h)
        return out, np.array([kept_scores[i] for i in order], dtype=np.float32)

    @staticmethod
    def _boxes(prob: np.ndarray, dest_w: int, dest_h: int, s: DetectorSettings):
        import cv2

        height, width = prob.shape
        mask = cv2.dilate((prob > s.thresh).astype(np.uint8), np.ones((2, 2), np.uint8))
        contours, _ = cv2.findContours(mask * 255, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        quads, scores = [], []
        for contour in contours[: s.max_candidates]:
            quad, short_side = _min_area_quad(contour)
            if short_side < 3:
                continue
            score = _box_score(prob, quad.reshape(-1, 2))
            if score < s.box_thresh:
                continue
            quad, short_side = _min_area_quad(_unclip(quad, s.unclip_ratio))
            if short_side < 5:
                continue
            quad[:, 0] = np.clip(np.round(quad[:, 0] / width * dest_w), 0, dest_w)
            quad[:, 1] = np.clip(np.round(quad[:, 1] / height * dest_h), 0, dest_h)
            quads.append(quad.astype(np.int32).astype(np.float32))
            scores.append(score)
        return quads, scores


def load_db_detector(path, settings: DetectorSettings = DetectorSettings()) -> DBDetector:
    return DBDetector(path, settings)
