"""Evaluation on the standard benchmarks, and the EasyOCR CRNN baseline read the way users run it.

Benchmarks (name -> dataset, split, filter):
    IIIT5K-3000   iiit5k/test
    IC13-857      ic13/test_857   (alphanumeric labels of >= 3 characters, Wang et al. 2011)
    IC13-1015     ic13/test_1015  (alphanumeric labels)
    IC15-1922     ic15/test, alphanumeric labels only: the reproducible part of the "1811" rule (see docs)
    IC15-2077     ic15/test, every word
"""

from __future__ import annotations

import random
import re
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from unseen.core.models.ppocr import READ_BATCH_SIZE
from unseen.scenetext.charset import in_charset
from unseen.scenetext.metrics import correct, normalize, report

BENCHMARKS = {
    "IIIT5K-3000": ("iiit5k", "test", None),
    "IC13-857": ("ic13", "test_857", None),
    "IC13-1015": ("ic13", "test_1015", None),
    "IC15-1922": ("ic15", "test", "alnum"),
    "IC15-2077": ("ic15", "test", None),
}


def load_records(name_or_path: str, split: str | None, data_dir=None, *, filter: str | None = None,
                 limit: int | None = None) -> list[dict]:
    """Records (images decoded) of a dataset split or path, optionally alphanumeric labels only."""
    from unseen.core.data import load_dataset

    records = load_dataset(name_or_path, split, data_dir=data_dir)
    out = []
    for i in range(len(records)):
        record = records[i]
        if "text" not in record:
            from unseen.core.errors import DataError

            raise DataError(f"{name_or_path}: records have no 'text' field; not a word-crop dataset")
        if filter == "alnum" and not re.fullmatch(r"[A-Za-z0-9]+", record["text"]):
            continue
        out.append(record)
        if limit and len(out) >= limit:
            break
    return out


def cached_visuals(encoder, images, cache: Path | None = None) -> list[torch.Tensor]:
    """Encode images once; with ``cache``, keep the tokens in a safetensors file (keyed by encoder and count)."""
    stamp = torch.tensor([int(encoder.fingerprint[-8:], 16), len(images)], dtype=torch.int64)
    if cache is not None and cache.exists():
        tensors = load_file(cache)
        if torch.equal(tensors["stamp"], stamp):
            return list(torch.split(tensors["tokens"].float(), tensors["lengths"].tolist()))
    visuals = []
    for start in range(0, len(images), 256):
        visuals += encoder.encode(images[start : start + 256])
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        save_file({"tokens": torch.cat(visuals).to(torch.float16),
                   "lengths": torch.tensor([v.shape[0] for v in visuals]), "stamp": stamp}, cache)
    return visuals


def evaluate(recognizer, visuals, targets, pool=None, n: int = 0, context: str = "retrieved", seed: int = 0) -> dict:
    started = time.perf_counter()
    readings = recognizer.read_visuals(visuals, pool=pool, n=n, context=context, seed=seed)
    seconds = time.perf_counter() - started
    predictions = [r.text for r in readings]
    return {"metrics": report(predictions, targets), "predictions": predictions, "seconds": seconds}


def easyocr_baseline(images, crnn=None) -> tuple[list[str], float]:
    """The shipped EasyOCR CRNN as users run it: one crop at a time, greedy CTC."""
    from unseen.core.models.crnn import ctc_greedy_decode, preprocess_crnn
    from unseen.scenetext.encoder import load_crnn

    crnn = crnn or load_crnn()
    predictions = []
    started = time.perf_counter()
    with torch.no_grad():
        for image in images:
            predictions.append(ctc_greedy_decode(crnn(preprocess_crnn([image])))[0][0])
    return predictions, time.perf_counter() - started


def ppocr_baseline(images, loaded=None, batch_size: int = READ_BATCH_SIZE) -> tuple[list[str], float]:
    """PP-OCRv4's recognizer (our port) as RapidOCR runs it: each crop resized to height 48 and
    padded to at least 320 on its own, greedy CTC. Crops of the same padded width run together:
    their inputs are exactly what they would be one at a time."""
    from unseen.core.assets import load_asset
    from unseen.core.models.ppocr import ctc_greedy, padded_width, to_tensor

    model, characters = loaded or load_asset("ppocr-v4-rec")
    by_width: dict[int, list[int]] = {}
    for i, image in enumerate(images):
        by_width.setdefault(padded_width(image), []).append(i)
    predictions: list = [None] * len(images)
    started = time.perf_counter()
    with torch.no_grad():
        for indices in by_width.values():
            for start in range(0, len(indices), batch_size):
                chunk = indices[start : start + batch_size]
                readings = ctc_greedy(model(torch.stack([to_tensor(images[i]) for i in chunk])), characters)
                for i, (text, _) in zip(chunk, readings):
                    predictions[i] = text
    return predictions, time.perf_counter() - started


BASELINES = {"easyocr": ("EasyOCR CRNN (english_g2)", easyocr_baseline),
             "ppocr": ("PP-OCRv4 mobile, greedy CTC (our port)", ppocr_baseline)}


def benchmark_pool_records(train, seed: int, size: int = 100) -> list[dict]:
    """The crops of the benchmarks' pool for ``seed``: ``size`` random train records with labels inside the charset."""
    order = random.Random(seed).sample(range(len(train)), len(train))
    return [r for r in (train[i] for i in order[: 2 * size]) if in_charset(r["text"])][:size]


def benchmark_pool(encoder, train, seed: int, size: int = 100, cache: Path | None = None):
    """The benchmarks' context pool: ``size`` random crops of a train split (labels inside the
    charset), drawn with ``seed``; their visual tokens are cached at ``cache``."""
    from unseen.scenetext.pool import Pool

    chosen = benchmark_pool_records(train, seed, size)
    visuals = cached_visuals(encoder, [r["image"] for r in chosen], cache)
    return Pool(encoder.fingerprint).extended([r["text"] for r in chosen], visuals, [r["path"] for r in chosen])


def shuffled_split(encoder, records, seed: int = 0, cache: Path | None = None) -> tuple[list[dict], list[torch.Tensor]]:
    """The records whose labels are inside the charset, shuffled with ``seed``, and their visual tokens."""
    usable = [r for r in records if in_charset(r["text"])]
    shuffled = [usable[i] for i in random.Random(seed).sample(range(len(usable)), len(usable))]
    return shuffled, cached_visuals(encoder, [r["image"] for r in shuffled], cache)


def hard_case_split(predictions: list[str], targets: list[str]) -> tuple[list[int], list[int]]:
    """Hard-case correction: for every word with at least two images of which one is read wrong,
    the first wrong image (to add to the pool) and the word's other images (to measure on)."""
    by_word: dict[str, list[int]] = {}
    for i, target in enumerate(targets):
        if normalize(target) and in_charset(target):
            by_word.setdefault(normalize(target), []).append(i)
    corrections, held_out = [], []
    for members in by_word.values():
        wrong = [i for i in members if not correct(predictions[i], targets[i])]
        if len(members) >= 2 and wrong:
            corrections.append(wrong[0])
            held_out += [i for i in members if i != wrong[0]]
    return corrections, held_out
