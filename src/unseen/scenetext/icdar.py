"""ICDAR 2015 Challenge 4 ("Incidental Scene Text"), Task 4.4 End to End: the data and the official protocol.

The Robust Reading Competition scores Task 4.4 with its ``script.py`` and ``rrc_evaluation_funcs.py``
(the copy read for this module: MhLiao/MaskTextSpotterV3, ``evaluation/icdar2015/e2e/script.py``, run with
its ``default_evaluation_params``). Per photo, that script:

1. reads the ground truth: one word per line, ``x1,y1,...,x4,y4,transcription`` (everything after the 8th
   comma is the transcription; a BOM is dropped; a transcription wrapped in double quotes is unquoted);
   ``###`` marks a don't-care word;
2. drops every detection lying more than half (intersection / detection area > 0.5) inside one
   don't-care word: such a detection is neither a hit nor a false positive;
3. pairs words and detections one-to-one, greedily: ground-truth words in file order, each takes the
   first unused, not-dropped detection (in submission order) with IoU > 0.5. The pair is used up even
   when its text is wrong, so a second detection of the same word is a false positive;
4. calls a pair correct when the two texts agree after upper-casing, where the ground truth (not the
   detection) may lose one special character ``!?.:,*"()·[]/'`` at its start, its end, or both;
5. sums over photos: precision = correct / care detections, recall = correct / care words, F = their
   harmonic mean (0 when undefined).

Word spotting (``WORD_SPOTTING``, not Task 4.4) adds a rule: a care word becomes don't care unless, after
dropping a final 's, end hyphens and special characters, it is one piece of >= 3 Latin/Greek letters or
hyphens; the stripped form is then compared exactly (case-insensitive). ``evaluate_e2e(word_spotting=True)``
applies it; by default (end to end) short words, digits and symbols are all care words.

Our version does all of the above with shapely polygons. It differs only where the script never looks:
float coordinates are rounded to whole pixels (the submission format takes integers; the script casts
to int), a self-intersecting quad is repaired with ``make_valid`` instead of failing, submissions are not
checked for clockwise order, and confidences / AP are not computed (``CONFIDENCES`` is off by default).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from unseen.core.errors import DataError, UnseenError

DATASET_PATH = "str/ic15_e2e"
VOCABULARIES = ("none", "generic", "weak", "strong")
DONT_CARE = "###"
IOU_CONSTRAINT = 0.5
AREA_PRECISION_CONSTRAINT = 0.5
MIN_LENGTH_CARE_WORD = 3  # word spotting only
SPECIAL_CHARACTERS = "!?.:,*\"()·[]/'"

_GT_LINE = re.compile(r"\s*" + r"\s*,\s*".join([r"(-?\d+)"] * 8) + r"\s*,(.*)")
_QUOTED = re.compile(r'\s*"(.*)"\s*')
# Letters the word-spotting dictionary admits: Latin, Latin-1/Extended-A/B, IPA-ish, Greek, and '-'.
_SPOTTING_RANGES = (("a", "z"), ("A", "Z"), ("\u00c0", "\u01bf"), ("\u01c4", "\u027f"), ("\u0386", "\u03ff"))
_SPOTTING_EXCLUDED = "×÷·"  # inside those ranges, but not letters


@dataclass(eq=False)
class GroundTruthWord:
    quad: np.ndarray  # [4, 2] float, clockwise corners in pixels
    text: str
    dont_care: bool


@dataclass(eq=False)
class Detection:
    quad: np.ndarray  # [4, 2]; any [N, 2] polygon works
    text: str
    confidence: float = 1.0


class DetectionLike(Protocol):
    quad: np.ndarray
    text: str


@dataclass(eq=False)
class E2EPhoto:
    name: str  # "img_1"
    image_path: Path
    words: list[GroundTruthWord]


@dataclass
class PhotoCounts:
    matched: int
    care_detections: int
    care_ground_truth: int


@dataclass
class E2EResult:
    precision: float  # percent, 0-100
    recall: float
    f: float
    matched: int
    care_detections: int
    care_ground_truth: int
    per_photo: list[PhotoCounts] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def read_ground_truth(path: str | Path) -> list[GroundTruthWord]:
    """One ``gt_img_N.txt`` file, read as the RRC script reads it."""
    path = Path(path)
    try:
        content = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 ({error.reason} at byte {error.start})") from None
    words = []
    for number, line in enumerate(content.split("\n"), start=1):
        line = line.replace("\r", "")
        if not line:
            continue
        match = _GT_LINE.fullmatch(line)
        if match is None:
            raise DataError(f"{path}:{number}: expected x1,y1,x2,y2,x3,y3,x4,y4,transcription, got {line[:60]!r}")
        text = match.group(9)
        quoted = _QUOTED.fullmatch(text)
        if quoted:  # the script's escape convention for quoted transcriptions
            text = quoted.group(1).replace("\\\\", "\\").replace('\\"', '"')
        quad = np.array([float(v) for v in match.groups()[:8]]).reshape(4, 2)
        words.append(GroundTruthWord(quad=quad, text=text, dont_care=text == DONT_CARE))
    return words


def dataset_root(data_dir: str | Path | None = None) -> Path:
    from unseen.core.data import resolve_data_dir

    base = resolve_data_dir(data_dir)
    root = None if base is None else base / DATASET_PATH
    if root is None or not (root / "test" / "gt").is_dir():
        where = f"{root}/test/gt" if root else f"<data dir>/{DATASET_PATH} (no data directory found)"
        raise DataError(f"ICDAR 2015 end-to-end data not found at {where}; pass --data-dir or set $UNSEEN_DATA")
    return root


def load_ic15_e2e(data_dir: str | Path | None = None, limit: int | None = None) -> list[E2EPhoto]:
    """The 500 test photos with their ground truth, img_1, img_2, ... (numeric order)."""
    root = dataset_root(data_dir)
    numbered = []
    for gt_path in (root / "test" / "gt").glob("gt_img_*.txt"):
        match = re.fullmatch(r"gt_img_(\d+)\.txt", gt_path.name)
        if match:
            numbered.append((int(match.group(1)), gt_path))
    numbered.sort()
    photos = []
    for number, gt_path in numbered[:limit]:
        image_path = root / "test" / "images" / f"img_{number}.jpg"
        if not image_path.is_file():
            raise DataError(f"{image_path}: image missing for ground truth {gt_path.name}")
        photos.append(E2EPhoto(name=f"img_{number}", image_path=image_path, words=read_ground_truth(gt_path)))
    return photos


def vocabulary_path(kind: str, photo_name: str | None = None, data_dir: str | Path | None = None) -> Path | None:
    """File of the official vocabulary ``kind`` (None for "none"); "strong" is per photo ("img_7")."""
    if kind not in VOCABULARIES:
        raise UnseenError(f"unknown vocabulary {kind!r}; known: {', '.join(VOCABULARIES)}")
    if kind == "none":
        return None
    folder = dataset_root(data_dir) / "vocabularies"
    if kind == "strong":
        if not photo_name:
            raise UnseenError("the strong vocabulary is per photo: pass the photo name (e.g. 'img_7')")
        path = folder / "strong" / f"voc_{photo_name}.txt"
    else:
        path = folder / f"{kind}.txt"
    if not path.is_file():
        raise DataError(f"{path}: vocabulary file missing")
    return path


def read_vocabulary(path: str | Path) -> list[str]:
    """Words of a vocabulary file (lexicon.read_word_list: BOM and CR/LF tolerated, blank lines skipped)."""
    from unseen.scenetext.lexicon import read_word_list

    return read_word_list(path)


def load_vocabulary(kind: str, photo_names: list[str], data_dir: str | Path | None = None):
    """The official vocabulary as the reader takes it: None ("none"), one Lexicon for every photo (generic, weak),
    or {photo name: Lexicon} (strong)."""
    from unseen.scenetext.lexicon import Lexicon

    if kind == "strong":
        return {name: Lexicon.from_path(vocabulary_path(kind, name, data_dir)) for name in photo_names}
    path = vocabulary_path(kind, None, data_dir)
    return Lexicon.from_path(path) if path else None


def transcriptions_match(ground_truth: str, detected: str) -> bool:
    """End-to-end rule: equal ignoring case, the ground truth may shed one special character per end."""
    truth, detected = ground_truth.upper(), detected.upper()
    if truth == detected:
        return True
    if not truth:
        return False
    head, tail = truth[0] in SPECIAL_CHARACTERS, truth[-1] in SPECIAL_CHARACTERS
    stripped = (head and truth[1:] == detected) or (tail and truth[:-1] == detected)
    return stripped or (head and tail and truth[1:-1] == detected)


def spotting_form(text: str) -> str:
    """The word-spotting ground truth: final 's, end hyphens and special characters removed."""
    if text[-2:] in ("'s", "'S"):
        text = text[:-2]
    text = text.strip("-")
    for character in "'!?.:,*\"()·[]/":
        text = text.replace(character, " ")
    return text.strip()


def counts_for_spotting(text: str) -> bool:
    """Word spotting keeps a word only when its stripped form is one word of >= 3 letters (or '-')."""
    form = spotting_form(text)
    if " " in form or len(form) < MIN_LENGTH_CARE_WORD:
        return False
    return all(
        char not in _SPOTTING_EXCLUDED and (char == "-" or any(lo <= char <= hi for lo, hi in _SPOTTING_RANGES))
        for char in form
    )


def evaluate_e2e(
    predictions: Sequence[Sequence[DetectionLike]],
    ground_truth: Sequence[Sequence[GroundTruthWord]],
    *,
    word_spotting: bool = False,
    detection_only: bool = False,
) -> E2EResult:
    """Score detections (anything with ``.quad`` and ``.text``) against each photo's ground truth.
    ``detection_only``: a box matching a word counts whatever its text (detection precision and recall)."""
    if len(predictions) != len(ground_truth):
        raise ValueError(f"{len(predictions)} photos of predictions for {len(ground_truth)} photos of ground truth")
    per_photo = [_score_photo(list(d), list(g), word_spotting, detection_only)
                 for d, g in zip(predictions, ground_truth)]
    matched = sum(c.matched for c in per_photo)
    care_detections = sum(c.care_detections for c in per_photo)
    care_ground_truth = sum(c.care_ground_truth for c in per_photo)
    precision = matched / care_detections if care_detections else 0.0
    recall = matched / care_ground_truth if care_ground_truth else 0.0
    f = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return E2EResult(
        precision=100 * precision,
        recall=100 * recall,
        f=100 * f,
        matched=matched,
        care_detections=care_detections,
        care_ground_truth=care_ground_truth,
        per_photo=per_photo,
    )


def _score_photo(detections: list, words: list[GroundTruthWord], word_spotting: bool,
                 detection_only: bool = False) -> PhotoCounts:
    truths, care = [], []
    for word in words:
        text, is_care = word.text, not word.dont_care
        if word_spotting and is_care:
            is_care = counts_for_spotting(text)
            text = spotting_form(text) if is_care else text
        truths.append(text)
        care.append(is_care)
    gt_polygons = [_polygon(word.quad) for word in words]
    det_polygons = [_polygon(detection.quad) for detection in detections]
    dont_care_polygons = [polygon for polygon, is_care in zip(gt_polygons, care) if not is_care]
    # A detection mostly inside a don't-care region is taken out of the game entirely.
    ignored = [
        any(_inside_fraction(det, region) > AREA_PRECISION_CONSTRAINT for region in dont_care_polygons)
        for det in det_polygons
    ]

    taken = list(ignored)
    matched = 0
    for gt_index, gt_polygon in enumerate(gt_polygons):
        if not care[gt_index]:
            continue
        for det_index, det_polygon in enumerate(det_polygons):
            if not taken[det_index] and _iou(gt_polygon, det_polygon) > IOU_CONSTRAINT:
                taken[det_index] = True  # the pair is used up whether or not the text is right
                text = str(detections[det_index].text)
                if detection_only:
                    matched += 1
                elif word_spotting:
                    matched += truths[gt_index].upper() == text.upper()
                else:
                    matched += transcriptions_match(truths[gt_index], text)
                break
    return PhotoCounts(matched=matched, care_detections=len(detections) - sum(ignored), care_ground_truth=sum(care))


def _polygon(quad):
    from shapely.geometry import Polygon
    from shapely.validation import make_valid

    # Whole pixels, as the submission format (integers) and the script's int() casts imply.
    polygon = Polygon(np.rint(np.asarray(quad, dtype=float).reshape(-1, 2)))
    return polygon if polygon.is_valid else make_valid(polygon)


def _iou(a, b) -> float:
    if not a.intersects(b):
        return 0.0
    overlap = a.intersection(b).area
    union = a.area + b.area - overlap
    return overlap / union if union > 0 else 0.0


def _inside_fraction(detection, region) -> float:
    """Share of the detection's area that lies inside the region."""
    if detection.area == 0 or not detection.intersects(region):
        return 0.0
    return detection.intersection(region).area / detection.area
