"""Training samples: synthetic word groups and real crops, each expanded by Split-and-Transform.

A *group* is a list of related samples ``Sample(image, text, kind)``:
- synthetic: one random style (font, colours, background, distortions) and two different words
  drawn in it, one split of each (a character span cut between the renderer's boxes) and one
  transformed copy (colour jitter + rotation) of the first word;
- real (e.g. IIIT5K train): the crop, two transformed copies and, where the CRNN's CTC
  alignment agrees with the label, one or two splits.
Stage 1 reads every sample on its own; stage 2 interleaves samples of a group (and a few from
other groups) into one sequence.
"""

from __future__ import annotations

import json
import random
import re
import string
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from unseen.scenetext.charset import in_charset
from unseen.scenetext.e2str.render import WordRenderer
from unseen.scenetext.e2str.splits import crop_span, random_span, transform

MAX_LABEL = 24
PUNCT = ".,:;!?'\"()-&/#%$+*@"


@dataclass
class Sample:
    image: Image.Image
    text: str
    kind: str  # "word", "split", "transform"


def build_lexicon(data_dir: Path, max_words: int = 40000) -> list[str]:
    """Frequent words of the local English text datasets (no scene-text labels: no test leakage)."""
    sources = [("sst2", "train", "sentence"), ("mr", "train", "text"), ("ag_news", "test", "text"),
               ("snli", "validation", "premise"), ("subj", "train", "text"), ("mpqa", "train", "text")]
    counts: Counter = Counter()
    for name, split, field in sources:
        path = data_dir / "nlp" / name / f"{split}.jsonl"
        if not path.exists():
            continue
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                text = json.loads(line).get(field, "")
                counts.update(w.lower() for w in re.findall(r"[A-Za-z]{2,14}", text))
    return [w for w, _ in counts.most_common(max_words)]


def random_label(rng: random.Random, lexicon: list[str]) -> str:
    """A scene-text-like label: words in varied case, numbers, codes, punctuation, random strings."""
    r = rng.random()
    word = rng.choice(lexicon) if lexicon else "".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9)))
    if r < 0.5:
        case = rng.random()
        text = word if case < 0.35 else word.title() if case < 0.6 else word.upper()
    elif r < 0.62:
        digits = "".join(rng.choices(string.digits, k=rng.randint(1, 8)))
        fmt = rng.random()
        if fmt < 0.6:
            text = digits
        elif fmt < 0.7:
            text = f"${digits[:3]}.{rng.randint(0, 99):02d}"
        elif fmt < 0.8:
            text = f"{digits[:2]}%"
        elif fmt < 0.9:
            text = f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}"
        else:
            text = f"{digits[:3]}-{''.join(rng.choices(string.digits, k=4))}"
    elif r < 0.72:
        pool = string.ascii_uppercase + string.digits if rng.random() < 0.7 else string.ascii_lowercase + string.digits
        text = "".join(rng.choices(pool, k=rng.randint(2, 8)))
    elif r < 0.82:
        base = word.upper() if rng.random() < 0.4 else word
        kind = rng.random()
        if kind < 0.4:
            text = base + rng.choice(PUNCT)
        elif kind < 0.6:
            text = rng.choice("(\"'#@") + base
        elif kind < 0.8:
            text = base + rng.choice(["'s", "-", "n't", "."]) + (rng.choice(lexicon) if kind > 0.7 and lexicon else "")
        else:
            other = rng.choice(lexicon) if lexicon else "and"
            text = base + rng.choice(["-", "&", "/", " "]) + (other.upper() if base.isupper() else other)
    else:
        text = "".join(rng.choices(string.ascii_letters + string.digits + PUNCT, k=rng.randint(1, 10)))
    text = text.strip()[:MAX_LABEL]
    return text if in_charset(text) else "text"


def synthetic_group(renderer: WordRenderer, rng: random.Random, lexicon: list[str]) -> list[Sample]:
    style = renderer.random_style(rng)
    first, second = random_label(rng, lexicon), random_label(rng, lexicon)
    r1, r2 = renderer.render(first, rng, style), renderer.render(second, rng, style)
    group = [Sample(r1.image, first, "word"), Sample(r2.image, second, "word")]
    for rendered in (r1, r2):
        if len(rendered.text.strip()) >= 2:
            i, j = random_span(len(rendered.text), rng)
            piece = rendered.text[i:j]
            if piece.strip() == piece and piece:
                group.append(Sample(crop_span(rendered.image, rendered.boxes, i, j, rng), piece, "split"))
    group.append(Sample(transform(r1.image, rng), first, "transform"))
    return group


def real_group(image: Image.Image, text: str, rng: random.Random, boxes=None) -> list[Sample]:
    """A real crop, two transformed copies and (with character boxes) up to two splits."""
    group = [Sample(image, text, "word"), Sample(transform(image, rng), text, "transform"),
             Sample(transform(image, rng), text, "transform")]
    if boxes is not None and len(text) >= 2 and len(boxes) == len(text):
        for _ in range(2 if len(text) >= 4 else 1):
            i, j = random_span(len(text), rng)
            group.append(Sample(crop_span(image, boxes, i, j, rng), text[i:j], "split"))
    return group
