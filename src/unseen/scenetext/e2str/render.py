"""Synthetic word images with per-character boxes.

    renderer = WordRenderer(find_fonts())
    sample = renderer.render("Hotel", random.Random(0))   # .image (PIL RGB), .text, .boxes

Each character is drawn at its advance position (kerning kept: x_i = font.getlength(text[:i])),
so its box is known; the geometric distortions (rotation, perspective) move the box corners
with the image, and ``boxes`` are the axis-aligned boxes of the moved corners. A ``Style`` fixes
font, colours, background and distortions so that several words can share one look (stage-2
context groups). Fonts come from Debian font packages (/usr/share/fonts) or any folder given;
matplotlib's DejaVu fonts are the fallback that is always installed.
"""

from __future__ import annotations

import io
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from unseen.core.errors import UnseenError

FONT_DIRS = [Path("/usr/share/fonts"), Path("/usr/local/share/fonts")]
# symbol, math and dingbat fonts draw no Latin letters
_SKIP = ("math", "cmex", "cmsy", "stixsiz", "stixnonuni", "symbol", "dingbat", "d050000l", "s050000l", "fontawesome")


def find_fonts(extra_dirs=()) -> list[Path]:
    """Latin text fonts (.ttf/.otf) under the system font folders, ``extra_dirs`` and matplotlib."""
    dirs = [Path(d) for d in extra_dirs] + FONT_DIRS
    try:
        import matplotlib

        dirs.append(Path(matplotlib.get_data_path()) / "fonts" / "ttf")
    except ImportError:
        pass
    found, names = [], set()
    for folder in dirs:
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() not in (".ttf", ".otf") or path.name in names:
                continue
            lower = path.name.lower()
            if (any(s in lower for s in _SKIP) or (lower.startswith("cm") and lower[2:3].isalpha())
                    or not _draws_latin(path)):
                continue
            names.add(path.name)
            found.append(path)
    return found


def _draws_latin(path: Path) -> bool:
    try:
        font = ImageFont.truetype(str(path), 32)
        masks = [bytes(font.getmask(c)) for c in "Aa0g"]
    except OSError:
        return False
    return all(m.count(0) < len(m) for m in masks) and len(set(masks)) == 4


@dataclass
class Rendered:
    image: Image.Image
    text: str
    boxes: list[tuple[float, float, float, float]]  # per character, (x0, y0, x1, y1) in image pixels


@dataclass
class Style:
    font: Path
    size: int
    spacing: float  # extra space between characters, in font sizes
    fg: tuple[int, int, int]
    bg: tuple[int, int, int]
    background: str  # "plain", "gradient", "noise" or "photo"
    outline: int  # stroke width (0 = none)
    outline_color: tuple[int, int, int]
    rotation: float  # degrees
    perspective: float  # corner jitter, fraction of the height
    blur: float = 0.0
    noise: float = 0.0
    jpeg: int = 0  # JPEG quality (0 = none)
    lowres: float = 1.0  # downscale factor before the final resize (< 1 = blurry, pixelated)
    seed: int = 0
    photo: object = field(default=None, repr=False)  # a PIL image to crop backgrounds from


def _colour(rng: random.Random) -> tuple[int, int, int]:
    """Scene colours: often near-white, near-black or grey, otherwise any hue."""
    kind = rng.random()
    if kind < 0.2:
        v = rng.randint(200, 255)
    elif kind < 0.4:
        v = rng.randint(0, 60)
    elif kind < 0.5:
        v = rng.randint(60, 200)
    else:
        return tuple(rng.randrange(256) for _ in range(3))
    return tuple(max(0, min(255, v + rng.randint(-12, 12))) for _ in range(3))


def _luminance(color) -> float:
    r, g, b = color
    return 0.299 * r + 0.587 * g + 0.114 * b


class WordRenderer:
    def __init__(self, fonts: list[Path] | None = None, backgrounds: list[Path] | None = None, height: int = 64):
        self.fonts = list(fonts) if fonts is not None else find_fonts()
        if not self.fonts:
            raise UnseenError("no usable fonts found: install Debian font packages (fonts-liberation, fonts-dejavu) "
                              "or pass a font folder")
        self.backgrounds = list(backgrounds or [])
        self.height = height
        self._font_cache: dict = {}
        self._photo_cache: dict = {}

    def _font(self, path: Path, size: int):
        key = (str(path), size)
        if key not in self._font_cache:
            if len(self._font_cache) > 512:
                self._font_cache.clear()
            self._font_cache[key] = ImageFont.truetype(str(path), size)
        return self._font_cache[key]

    def _photo(self, path: Path) -> Image.Image:
        if path not in self._photo_cache:
            if len(self._photo_cache) > 256:
                self._photo_cache.clear()
            with Image.open(path) as im:
                self._photo_cache[path] = im.convert("RGB")
        return self._photo_cache[path]

    def random_style(self, rng: random.Random) -> Style:
        bg = _colour(rng)
        for _ in range(20):  # a text colour with enough contrast
            fg = _colour(rng)
            if abs(_luminance(fg) - _luminance(bg)) > 70:
                break
        else:
            fg = (0, 0, 0) if _luminance(bg) > 127 else (255, 255, 255)
        kinds = ["plain", "gradient", "noise"] + (["photo", "photo"] if self.backgrounds else [])
        background = rng.choice(kinds)
        photo = None
        if background == "photo":
            photo = self._photo(rng.choice(self.backgrounds))
        outline = rng.choice([0] * 6 + [1, 2])
        return Style(
            font=rng.choice(self.fonts), size=rng.randint(28, 52), spacing=max(0.0, rng.gauss(0.02, 0.06)),
            fg=fg, bg=bg, background=background, outline=outline,
            outline_color=(tuple(255 - c for c in fg) if rng.random() < 0.5
                           else tuple(rng.randrange(256) for _ in range(3))),
            rotation=rng.gauss(0, 4) if rng.random() < 0.7 else rng.uniform(-15, 15),
            perspective=rng.uniform(0, 0.25) if rng.random() < 0.6 else 0.0,
            blur=rng.choice([0, 0, 0, 0.5, 1.0, 1.5]), noise=rng.choice([0, 0, 4, 8, 16]),
            jpeg=rng.choice([0, 0, 30, 60, 90]), lowres=rng.choice([1, 1, 1, 0.6, 0.4, 0.3]),
            seed=rng.randrange(1 << 30), photo=photo,
        )

    def render(self, text: str, rng: random.Random, style: Style | None = None) -> Rendered:
        style = style or self.random_style(rng)
        font = self._font(style.font, style.size)
        ascent, descent = font.getmetrics()
        pad = style.size // 2 + style.outline
        advances = [font.getlength(text[:i]) for i in range(len(text) + 1)]
        extra = style.spacing * style.size
        width = int(advances[-1] + extra * max(len(text) - 1, 0)) + 2 * pad
        height = ascent + descent + 2 * pad
        layer = Image.new("L", (width, height), 0)  # glyph bodies
        stroke = Image.new("L", (width, height), 0) if style.outline else None  # glyphs with their outline
        draw = ImageDraw.Draw(layer)
        boxes = []
        baseline = pad + ascent
        for i, char in enumerate(text):
            x = pad + advances[i] + extra * i
            draw.text((x, baseline), char, font=font, fill=255, anchor="ls")
            if stroke is not None:
                ImageDraw.Draw(stroke).text((x, baseline), char, font=font, fill=255, anchor="ls",
                                            stroke_width=style.outline)
            left, top, right, bottom = font.getbbox(char, anchor="ls", stroke_width=style.outline)
            if right <= left:  # a space: its advance is its box
                left, right, top, bottom = 0, font.getlength(char), -ascent // 2, 0
            boxes.append((x + left, baseline + top, x + right, baseline + bottom))
        image = self._compose(layer, stroke, style, rng)
        image, boxes = _distort(image, boxes, style, rng)
        return self._finish(image, text, boxes, style, rng)

    def _compose(self, layer: Image.Image, stroke, style: Style, rng: random.Random) -> Image.Image:
        w, h = layer.size
        if style.background == "photo" and style.photo is not None:
            photo = style.photo
            scale = max(w / photo.width, h / photo.height, 1.0) * rng.uniform(1.0, 2.0)
            photo = photo.resize((max(w, int(photo.width * scale)), max(h, int(photo.height * scale))))
            x, y = rng.randint(0, photo.width - w), rng.randint(0, photo.height - h)
            back = photo.crop((x, y, x + w, y + h))
            # keep the text readable: pull the photo towards the planned background colour
            back = Image.blend(back, Image.new("RGB", (w, h), style.bg), 0.5)
        elif style.background == "gradient":
            ramp = np.linspace(0, 1, w)[None, :, None]
            other = np.array([rng.randrange(256) for _ in range(3)])
            base = np.array(style.bg) * (1 - ramp * 0.6) + other * ramp * 0.6
            back = Image.fromarray(np.broadcast_to(base, (h, w, 3)).astype(np.uint8))
        elif style.background == "noise":
            arr = np.random.default_rng(style.seed).normal(0, 25, (h, w, 3)) + np.array(style.bg)
            back = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(2))
        else:
            back = Image.new("RGB", (w, h), style.bg)
        if stroke is not None:  # the outline colour under the glyph body
            back.paste(Image.new("RGB", (w, h), style.outline_color), mask=stroke)
        back.paste(Image.new("RGB", (w, h), style.fg), mask=layer)
        return back

    def _finish(self, image, text, boxes, style: Style, rng: random.Random) -> Rendered:
        # crop to the text with a small random margin
        x0 = min(b[0] for b in boxes)
        y0 = min(b[1] for b in boxes)
        x1 = max(b[2] for b in boxes)
        y1 = max(b[3] for b in boxes)
        m = (y1 - y0) * rng.uniform(0.02, 0.2)
        box = (max(0, int(x0 - m)), max(0, int(y0 - m)),
               min(image.width, int(x1 + m) + 1), min(image.height, int(y1 + m) + 1))
        image = image.crop(box)
        boxes = [(a - box[0], b - box[1], c - box[0], d - box[1]) for a, b, c, d in boxes]
        if style.blur:
            image = image.filter(ImageFilter.GaussianBlur(style.blur))
        crop_w, crop_h = image.size
        target_w = max(4, round(crop_w * self.height / crop_h))
        if style.lowres < 1:
            small = (max(4, int(target_w * style.lowres)), max(4, int(self.height * style.lowres)))
            image = image.resize(small, Image.BILINEAR)
        image = image.resize((target_w, self.height), Image.BICUBIC)
        sx, sy = target_w / crop_w, self.height / crop_h
        boxes = [(a * sx, b * sy, c * sx, d * sy) for a, b, c, d in boxes]
        if style.noise:
            arr = np.asarray(image, dtype=np.float32)
            arr = arr + np.random.default_rng(style.seed + 1).normal(0, style.noise, arr.shape)
            image = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
        if style.jpeg:
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=style.jpeg)
            image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
        return Rendered(image=image, text=text, boxes=boxes)


def _homography(src, dst) -> np.ndarray:
    """3x3 H with dst ~ H @ src for four point pairs."""
    rows = []
    for (x, y), (u, v) in zip(src, dst):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y, -u])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y, -v])
    _, _, vt = np.linalg.svd(np.array(rows, dtype=np.float64))
    return vt[-1].reshape(3, 3) / vt[-1, -1]


def _distort(image: Image.Image, boxes, style: Style, rng: random.Random):
    """Rotate and perspective-warp the image; move every box's corners with it."""
    w, h = image.size
    if not style.rotation and not style.perspective:
        return image, boxes
    src = [(0, 0), (w, 0), (w, h), (0, h)]
    j = style.perspective * h
    dst = [(x + rng.uniform(-j, j), y + rng.uniform(-j, j)) for x, y in src]
    angle = math.radians(style.rotation)
    cx, cy = w / 2, h / 2
    dst = [(cx + (x - cx) * math.cos(angle) - (y - cy) * math.sin(angle),
            cy + (x - cx) * math.sin(angle) + (y - cy) * math.cos(angle)) for x, y in dst]
    xs, ys = [p[0] for p in dst], [p[1] for p in dst]
    ox, oy = min(xs), min(ys)
    dst = [(x - ox, y - oy) for x, y in dst]
    out_w, out_h = int(math.ceil(max(xs) - ox)), int(math.ceil(max(ys) - oy))
    forward = _homography(src, dst)
    inverse = np.linalg.inv(forward)
    inverse /= inverse[2, 2]
    fill = image.resize((1, 1), Image.BOX).getpixel((0, 0))
    warped = image.transform((out_w, out_h), Image.PERSPECTIVE, tuple(inverse.flatten()[:8]), Image.BICUBIC,
                             fillcolor=fill)
    moved = []
    for x0, y0, x1, y1 in boxes:
        pts = np.array([[x0, y0, 1], [x1, y0, 1], [x1, y1, 1], [x0, y1, 1]], dtype=np.float64) @ forward.T
        pts = pts[:, :2] / pts[:, 2:]
        moved.append((pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()))
    return warped, moved
