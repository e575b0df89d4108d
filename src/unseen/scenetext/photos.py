"""Reading whole photos: detect text lines, read each once with PP-OCRv6, cut the lines into words, adapt.

    from unseen.scenetext import PhotoReader
    reader = PhotoReader.load()
    for photo in reader.read(["street.jpg", "shop.jpg"]):          # read together: one batch lexicon
        for word in photo.words:
            print(word.text, word.confidence, word.quad.tolist())

Adaptation needs no label and no training (each step is gated so that it only replaces unsure readings):
- the batch lexicon: words read surely anywhere in the photos read together are offered to unsure words
  (batch_lexicon.py, its setting chosen on IC15 train crops);
- a vocabulary (``lexicon=``, a word list or a folder of per-photo lists): unsure words are decoded against it
  with lexicon-constrained CTC (lexicon.py) and, with ``restrict``, words it cannot explain are dropped;
- a pool: its labelled words through its lexicon gate (lexicon_gate.py), and its self-labelled words (added by
  ``evolve``, the E2STR paper's "ego-evolving") as batch-lexicon words from earlier photos.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from unseen.core.errors import DataError
from unseen.scenetext.reading import PhotoReading, RawPhoto, ReadSettings, Word
from unseen.scenetext.words import split_line, warp_line, word_quad

__all__ = ["PhotoReader", "PhotoReading", "RawPhoto", "ReadSettings", "Word", "as_json", "draw", "load_photo"]

MAX_PHOTO_SIDE = 4096  # larger photos are shrunk on load: the detector reads at most 2000 px anyway
RAW_FORMAT = "raw-v3"  # what detect_and_read returns; bump when it changes
DETECTORS = ("ppocr-v6-det", "ppocr-v6-det-int8")  # the PP-OCRv6 detector as shipped, and its int8 copy


def load_photo(path) -> tuple[np.ndarray, float, tuple[int, int]]:
    """(BGR uint8 array, scale from photo pixels to the array's, the photo's (width, height)): EXIF-rotated, shrunk
    to MAX_PHOTO_SIDE (a big JPEG is decoded at a fraction of its size, so it never fills memory)."""
    import cv2
    from PIL import Image, ImageOps, UnidentifiedImageError

    where = str(path)
    try:
        with Image.open(path) as image:
            full = image.size
            image.draft("RGB", (MAX_PHOTO_SIDE, MAX_PHOTO_SIDE))
            drafted = image.size
            ImageOps.exif_transpose(image, in_place=True)  # in place: an upright photo is not copied
            turned = image.size != drafted  # by its EXIF orientation
            if image.mode != "RGB":
                image = image.convert("RGB")
            if max(image.size) > MAX_PHOTO_SIDE:
                ratio = MAX_PHOTO_SIDE / max(image.size)
                image = image.resize((max(1, round(image.width * ratio)), max(1, round(image.height * ratio))))
            rgb = np.asarray(image)  # inside the block: closing the file frees its pixels
    except FileNotFoundError:
        raise DataError(f"{where}: photo not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(f"{where}: cannot decode image ({str(err).splitlines()[0][:120]})") from None
    if turned:
        full = full[::-1]
    if min(full) == 0:
        raise DataError(f"{where}: image has zero size")
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), rgb.shape[1] / full[0], full


class PhotoReader:
    """PP-OCRv6 small detector + recognizer (onnxruntime) + the word splitter + label-free adaptation."""

    def __init__(self, detector, encoder, settings: ReadSettings = ReadSettings()):
        self.detector, self.encoder, self.settings = detector, encoder, settings

    @property
    def fingerprint(self) -> str:
        """Names everything that changes ``detect_and_read``'s output: detector weights and settings, recognizer
        weights, preprocessing and kept columns, and this format (a cache of raw readings is keyed by it)."""
        import hashlib

        backend = getattr(self.encoder, "backend", "onnxruntime")  # PP-OCRv4 also runs on our port
        text = f"{RAW_FORMAT}|{self.detector.fingerprint}|{self.encoder.fingerprint}|{backend}"
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    @classmethod
    def load(cls, settings: ReadSettings = ReadSettings(), base: str = "ppocr-v6", detector: str | None = None
             ) -> PhotoReader:
        """``base``: ppocr-v6 (PP-OCRv6 small detector and recognizer, the default) or ppocr-v4 (history).
        ``detector``: a detector asset for ppocr-v6, ``ppocr-v6-det`` (float, as shipped) or
        ``ppocr-v6-det-int8`` (made on first use); default: the one tuned.json names, with its detector settings
        (both chosen on photos 1-100)."""
        from unseen.core.assets import load_asset
        from unseen.core.errors import UnseenError
        from unseen.scenetext.encoder import PPOCREncoder
        from unseen.scenetext.onnx_encoder import OnnxCTCEncoder
        from unseen.scenetext.tuned import tuned

        if base == "ppocr-v6":
            detector = detector or tuned().get("detector", "ppocr-v6-det")
            if detector not in DETECTORS:
                raise UnseenError(f"unknown detector {detector!r}; known: {', '.join(DETECTORS)}")
            found = load_asset(detector)
            # RapidOCR 3.10's detector settings, but where tuned.json changes one (chosen on photos 1-100)
            found.settings = found.settings.with_(**tuned().get("detector_settings", {}))
            return cls(found, OnnxCTCEncoder("ppocr-v6-rec"), settings)
        if base == "ppocr-v4":
            return cls(load_asset("ppocr-v4-det"), PPOCREncoder(backend="onnxruntime"), settings)
        raise UnseenError(f"unknown reader base {base!r}; known: ppocr-v6, ppocr-v4")

    # reading -----------------------------------------------------------------------------------
    def detect_and_read(self, path) -> RawPhoto:
        """Detection and one recognizer pass per line: all that adaptation and word boxes are computed from."""
        bgr, scale, (width, height) = load_photo(path)
        quads, _ = self.detector(bgr)
        return RawPhoto(str(path), width, height, scale, self.read_lines(bgr, quads))

    def read_lines(self, bgr: np.ndarray, quads) -> list[tuple]:
        """Each line cut out and read once: (LineCrop without pixels, resized width, [T, K] log-probabilities)."""
        from unseen.core.models.ppocr import crop_width

        lines = [warp_line(bgr, quad) for quad in quads]
        # a vertical line runs top to bottom or bottom to top: turned a quarter, one way is upright and the other
        # upside down, so both are read and the one whose best path is likelier is kept (RapidOCR runs a direction
        # classifier on every line for this)
        vertical = [i for i, line in enumerate(lines) if line.rotated]
        candidates = lines + [lines[i].turned_half_round() for i in vertical]
        read: list = [None] * len(candidates)
        for i, log_probs in self.encoder.ctc_log_probs([line.image for line in candidates]):
            resized = crop_width(candidates[i].image)
            # the columns that see the crop; the line's pixels are not kept
            read[i] = (candidates[i].without_pixels(), resized, log_probs[: -(-resized // 8)].clone())
        for k, i in enumerate(vertical):
            other = read[len(lines) + k]
            if other[2].max(-1).values.sum() > read[i][2].max(-1).values.sum():
                read[i] = other
        return read[: len(lines)]

    def holds_several_words(self, path) -> bool:
        """Whether the detector and the word cuts find more than one word in the image: how ``--as auto`` tells a
        small photo or banner ("OPEN 24 HOURS", 795 x 129) from a word crop, which holds one."""
        return len(self.words(self.detect_and_read(path))) > 1

    def words(self, raw: RawPhoto) -> list[tuple]:
        """The photo's words as (WordSpan, quad in photo pixels, [T, C] log-probability slice)."""
        out = []
        for line, resized, log_probs in raw.lines:
            for span in split_line(log_probs, self.encoder.characters, self.settings.split):
                quad = word_quad(line, span, resized, self.settings.split) / raw.scale
                out.append((span, quad, log_probs[span.columns[0] : span.columns[1]]))
        return out

    def sure_words(self, raw: RawPhoto, batch_lexicon=True) -> list[str]:
        """The photo's words that join the batch lexicon (read surely): the batch lexicon of a collection is the
        union of its photos' (unseen.scenetext.collection.collection_lexicon)."""
        from unseen.scenetext.adapt import sure_words

        return sure_words(self.words(raw), self.encoder.characters, batch_lexicon)

    def adapt(self, raws: list[RawPhoto], *, lexicon=None, vocabulary=None, pool=None,
              batch_lexicon=True, memo=None, batch_words=(), **options) -> list[PhotoReading]:
        """The photos' words, adapted together. ``batch_words``: the sure words of the rest of their collection
        (collection_lexicon), so that photos adapted a few at a time read as if adapted all at once."""
        from unseen.scenetext.adapt import adapt_words

        readings = [PhotoReading(raw.path, raw.width, raw.height) for raw in raws]
        adapt_words(readings, [self.words(raw) for raw in raws], self.encoder.characters, lexicon=lexicon,
                    pool=pool, batch_lexicon=batch_lexicon, settings=self.settings, memo=memo,
                    vocabulary=vocabulary, batch_words=batch_words, **options)
        return readings

    def read(self, photos, *, lexicon=None, vocabulary=None, pool=None, batch_lexicon=True,
             progress=None) -> list[PhotoReading]:
        """Read photos (paths) together: detection and reading per photo, then adaptation over all of them.
        ``vocabulary``: VocabularySettings for ``lexicon`` (default: adapt.settings_for it); ``progress``: a
        callable advanced once per photo."""
        raws = []
        for path in photos:
            raws.append(self.detect_and_read(path))
            if progress:
                progress()
        return self.adapt(raws, lexicon=lexicon, vocabulary=vocabulary, pool=pool, batch_lexicon=batch_lexicon)


def draw(photo: PhotoReading, out_path: Path) -> Path:
    """The photo with each word's box and text drawn on it, as PNG."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.open(photo.path).convert("RGB")
    canvas = ImageDraw.Draw(image)
    size = max(12, image.height // 45)
    try:
        font = ImageFont.truetype("DejaVuSans.ttf", size=size)
    except OSError:
        font = ImageFont.load_default(size=size)
    for word in photo.words:
        points = [tuple(map(float, p)) for p in word.quad]
        canvas.polygon(points, outline=(0, 255, 0) if word.source == "read" else (255, 160, 0), width=2)
        x, y = min(p[0] for p in points), min(p[1] for p in points)
        left, top, right, bottom = canvas.textbbox((x, y - size - 2), word.text, font=font)
        canvas.rectangle((left - 1, top - 1, right + 1, bottom + 1), fill=(0, 0, 0))
        canvas.text((x, y - size - 2), word.text, fill=(255, 255, 255), font=font)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    image.save(out_path)
    return out_path


def as_json(readings: list[PhotoReading]) -> list[dict]:
    return [r.as_dict() for r in readings]


