"""Load each asset and ask it for one real output, so "installed" means "works"."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont

from unseen.core.assets import asset_names, asset_spec, asset_version, load_asset, mean_pooled
from unseen.core.errors import UnseenError

# one solved example first, so that a base (not instruction-tuned) model answers too
FACT_PROMPT = "The capital of Italy is Rome. The capital of France is"


@dataclass
class AssetCheck:
    name: str
    ok: bool
    version: str
    load_seconds: float
    output: str


def render_word(word: str, height: int = 64) -> Image.Image:
    """Black text on white, for checking a recognizer without any data files."""
    try:
        font = ImageFont.truetype("DejaVuSans.ttf", size=int(height * 0.7))
    except OSError:
        font = ImageFont.load_default(size=int(height * 0.7))
    left, top, right, bottom = font.getbbox(word)
    image = Image.new("L", (right - left + height // 2, height), 255)
    ImageDraw.Draw(image).text((height // 4 - left, (height - (bottom - top)) // 2 - top), word, fill=0, font=font)
    return image.convert("RGB")


@torch.inference_mode()
def _probe(name: str, loaded) -> str:
    kind = asset_spec(name)["kind"]
    if kind == "causal_lm":
        model, tokenizer = loaded
        inputs = tokenizer(FACT_PROMPT, return_tensors="pt")
        output = model.generate(**inputs, max_new_tokens=6, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        completion = tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        return f"{FACT_PROMPT!r} -> {completion.strip()!r}"
    if kind == "sentence_encoder":
        model, tokenizer = loaded
        sentences = ["A dog runs across the park.", "A puppy is running on the grass.",
                     "Stock markets fell sharply today."]
        batch = tokenizer(sentences, padding=True, return_tensors="pt")
        embeddings = mean_pooled(model(**batch).last_hidden_state, batch["attention_mask"])
        similar, unrelated = (embeddings[0] @ embeddings[1]).item(), (embeddings[0] @ embeddings[2]).item()
        return f"cos(dog, puppy) = {similar:.2f} > cos(dog, stocks) = {unrelated:.2f}"
    from unseen.core import models

    if kind == "crnn":
        word = "unseen"
        logits = loaded(models.preprocess_crnn([render_word(word)]))
        text, confidence = models.ctc_greedy_decode(logits)[0]
        return f"rendered {word!r} read as {text!r} (confidence {confidence:.2f})"
    if kind == "ppocr_rec":
        from unseen.core.models.ppocr import ctc_greedy, to_tensor

        model, characters = loaded
        word = "unseen"
        text, confidence = ctc_greedy(model(to_tensor(render_word(word))[None]), characters)[0]
        return f"rendered {word!r} read as {text.strip()!r} (confidence {confidence:.2f})"
    if kind == "ppocr_rec_onnx":
        from unseen.core.ctc import greedy_decode
        from unseen.core.models.ppocr import to_array

        word = "unseen"
        probs = torch.from_numpy(loaded.probabilities(to_array(render_word(word))[None]))
        text, confidence = greedy_decode(probs.clamp_min(1e-30).log(), loaded.characters)[0]
        return f"rendered {word!r} read as {text.strip()!r} (confidence {confidence:.2f})"
    if kind in ("ppocr_det", "ppocr_det_int8"):
        import numpy as np

        page = Image.new("RGB", (640, 360), "white")
        page.paste(render_word("unseen", height=48), (200, 150))
        quads, _ = loaded(np.asarray(page)[:, :, ::-1].copy())
        found = [f"({q[:, 0].min():.0f},{q[:, 1].min():.0f})-({q[:, 0].max():.0f},{q[:, 1].max():.0f})" for q in quads]
        return f"a word rendered at (200,150) on a blank page: {len(quads)} box(es) {', '.join(found)}"
    if kind == "efficientnet_lite0":
        photos = _sample_photos()
        if not photos:
            return "loaded (no PACS photos found to classify)"
        names = models.imagenet_class_names()
        batch = models.preprocess_efficientnet([Image.open(path).convert("RGB") for path in photos])
        top1 = [names[i] for i in loaded(batch).argmax(-1).tolist()]
        elephants = sum(any(word in name for word in ("elephant", "tusker")) for name in top1)
        common = max(set(top1), key=top1.count)
        return (f"PACS photo/elephant: an elephant class is top-1 for {elephants}/{len(top1)} photos "
                f"(most often {common!r})")
    return "loaded"


def _sample_photos(count: int = 8) -> list[Path]:
    from unseen.core.data import resolve_data_dir

    try:
        root = resolve_data_dir()
    except UnseenError:
        return []
    if root is None:
        return []
    return sorted((root / "images" / "pacs" / "photo" / "elephant").glob("*.jpg"))[:count]


def check_asset(name: str) -> AssetCheck:
    started = time.perf_counter()
    try:
        loaded = load_asset(name)
    except UnseenError as err:
        return AssetCheck(name, False, asset_version(name), time.perf_counter() - started, str(err))
    load_seconds = time.perf_counter() - started
    return AssetCheck(name, True, asset_version(name), load_seconds, _probe(name, loaded))


def check_assets(names=None) -> list[AssetCheck]:
    return [check_asset(name) for name in (names or asset_names())]
