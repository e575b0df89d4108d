"""`unseen str`: read scene text in photos or word crops, adapting to their domain without labels or training.

The reader is PaddleOCR's PP-OCRv6 small (detector + recognizer) with label-free adaptation (unseen.scenetext);
word crops can also be read with PP-OCRv4 (--encoder ppocr-v4-rec); the trained in-context decoder E2STR-lite is
experimental (--weights, `unseen str train`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from unseen.cli.common import DataDirOption, console, table
from unseen.cli.scenetext_options import (
    PPOCR,
    BatchLexiconOption,
    EncoderOption,
    WeightsOption,
    reader_for,
    reader_name,
)
from unseen.cli.scenetext_pool import pool_app
from unseen.cli.scenetext_train import train

app = typer.Typer(help="Read scene text in photos and word crops, adapting to their domain without labels or training.",
                  no_args_is_help=True)
app.add_typer(pool_app, name="pool")
app.command("train")(train)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
CROP_MAX_SHORT_SIDE = 160  # --as auto: larger images are photos; a smaller one is a photo if it holds several words


def _expand(paths: List[Path]) -> list[Path]:
    """Folders become the image files in them (sorted); a path that does not exist is an error here, not later; a
    file named twice (itself and through its folder) is read once."""
    from unseen.core.errors import DataError

    out, seen = [], set()
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        elif path.exists():
            found = [path]
        else:
            raise DataError(f"{path}: no such file or folder")
        for file in found:
            if file.resolve() not in seen:
                seen.add(file.resolve())
                out.append(file)
    return out


def _short_side(path: Path) -> int:
    from PIL import Image

    from unseen.core.errors import DataError

    try:
        with Image.open(path) as image:
            return min(image.size)
    except (OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{path}: cannot decode image ({str(err).splitlines()[0][:100]})") from None


def _photos_among(paths: list[Path], read_as: str) -> list[Path]:
    """--as photos: all; crops: none; auto: images of 160 px or more on their short side, and smaller ones in which
    the detector and word cuts find more than one word (a banner is a photo, a word crop holds one word)."""
    if read_as != "auto":
        return list(paths) if read_as == "photos" else []
    small = [p for p in paths if _short_side(p) < CROP_MAX_SHORT_SIDE]
    several = set()
    if small:
        from unseen.scenetext.photos import PhotoReader

        with console.stderr.status("looking for words in the small images..."):
            reader = PhotoReader.load()
            several = {p for p in small if reader.holds_several_words(p)}
    return [p for p in paths if p not in set(small) or p in several]


@app.command("read")
def read(
    images: List[Path] = typer.Argument(..., help="Photos or word crops, or folders of them."),
    read_as: str = typer.Option("auto", "--as", help="photos, crops, or auto: an image of 160 px or more on its "
                                "short side is a photo; a smaller one is a photo if the detector finds more than one "
                                "word in it, else a word crop."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per image (photos: words with boxes)."),
    draw: Optional[Path] = typer.Option(None, "--draw", help="Photos: write each with its words drawn, as PNG, here."),
    lexicon: Optional[Path] = typer.Option(None, "--lexicon", help="Photos: a word list (one per line), or a folder "
                                           "of per-photo lists (voc_NAME.txt or NAME.txt for photo NAME.jpg)."),
    lexicon_mode: str = typer.Option("auto", "--lexicon-mode", help="restrict: the list is the photos' whole "
                                     "vocabulary, words it cannot explain are dropped; correct: it only corrects "
                                     "unsure readings; auto: restrict for per-photo lists and lists of up to "
                                     "10,000 words, correct for larger ones."),
    pool_dir: Optional[Path] = typer.Option(None, "--pool", help="A pool of the domain: its words are used."),
    evolve: Optional[Path] = typer.Option(None, "--evolve", help="Photos: a pool (made if missing) that the reader's "
                                          "sure readings join as self-labelled words, for the photos read after."),
    explain: bool = typer.Option(False, "--explain", help="Show the recognizer's own reading and where each text came "
                                 "from."),
    weights: Optional[Path] = WeightsOption,
    encoder_name: Optional[str] = EncoderOption,
    batch_lexicon: bool = BatchLexiconOption,
    cache: Optional[Path] = typer.Option(None, "--cache", help="Photos: keep each photo's detection and reading here "
                                         "(by photo content and model), so that a rerun, or a run killed and run "
                                         "again, reads only the photos not yet read. Default: ~/.cache/unseen/raw "
                                         "($UNSEEN_CACHE/raw)."),
    strict: bool = typer.Option(False, "--strict", help="Stop at the first image that cannot be read (exit status 2) "
                                "instead of skipping it."),
    min_confidence: Optional[float] = typer.Option(None, "--min-confidence", help="Photos: drop words read less "
                                                   "surely (mean character probability) unless a word list vouches "
                                                   "for them. Default: tuned on ICDAR 2015 photos 1-100."),
    min_length: Optional[int] = typer.Option(None, "--min-length", help="Photos: drop words of fewer characters. "
                                             "Default 1: '24' and '$5' are words; 3 drops fragments of cut lines, "
                                             "as ICDAR 2015 submissions do."),
):
    """Read the text in photos (words with boxes) or in word crops, adapting to them as a set.

    Example: unseen str read shop1.jpg shop2.jpg --draw out/ --json

    Also: unseen str read photos/ --lexicon words.txt --evolve pools/mall ;
    unseen str read crop1.png crop2.png --pool pools/ic15 --explain

    An image that cannot be read (truncated, empty, not an image) is named in a warning and skipped.

    The run ends with a summary; --json writes {"path", "error"} for a skipped image; --strict stops at it.

    Exit status: 0 every image read; 3 some (or all) skipped; 2 a bad argument, or --strict on a bad image.
    """
    from unseen.cli.scenetext_photos import EXIT_SKIPPED, check_output_folder, load_word_lists, summarize, unreadable
    from unseen.cli.scenetext_photos import warn_skipped as warn
    from unseen.core.errors import DataError, UnseenError

    paths = _expand(images)
    if not paths:
        raise UnseenError("no images to read (folders are searched for " + ", ".join(sorted(IMAGE_SUFFIXES)) + ")")
    if read_as not in ("auto", "photos", "crops"):
        raise UnseenError(f"--as {read_as!r}: use photos, crops or auto")
    if lexicon_mode not in ("auto", "restrict", "correct"):
        raise UnseenError(f"--lexicon-mode {lexicon_mode!r}: use auto, restrict or correct")
    if lexicon_mode != "auto" and not lexicon:
        raise UnseenError(f"--lexicon-mode {lexicon_mode} says how to use a word list: give one with --lexicon")
    if min_confidence is not None and not 0 <= min_confidence <= 1:
        raise UnseenError(f"--min-confidence {min_confidence}: a probability between 0 and 1")
    if min_length is not None and min_length < 0:
        raise UnseenError(f"--min-length {min_length}: a number of characters, 0 or more")
    # arguments first, in one line each, before any model loads
    vocab = load_word_lists(lexicon, [p.name for p in paths]) if lexicon else None
    check_output_folder("--draw", draw)
    check_output_folder("--evolve", evolve, pool=True)
    check_output_folder("--cache", cache)
    # images that cannot be opened: skipped here (a photo that opens but cannot be decoded is skipped while read)
    bad = {}
    decode_below = {"auto": CROP_MAX_SHORT_SIDE, "crops": 1 << 30, "photos": 0}.get(read_as, 0)  # crops: all, small
    for path in paths:
        reason = unreadable(path, decode_below)
        if reason and strict:
            raise DataError(f"{path}: {reason}")
        if reason:
            bad[path] = reason
    good = [p for p in paths if p not in bad]
    photos = set(_photos_among(good, read_as))
    crops = [p for p in good if p not in photos]
    if crops and (lexicon or evolve or draw):
        raise UnseenError(f"{crops[0]}: read as a word crop; --lexicon, --evolve and --draw are for photos "
                          "(pass --as photos to read it as one)")
    if photos and (weights or (encoder_name and encoder_name != PPOCR)):
        raise UnseenError("photos are read with PP-OCRv6; --weights and --encoder apply to word crops only")
    skipped = []
    if read_as == "crops":
        for path, reason in bad.items():
            warn(path, reason)
            skipped.append((str(path), reason))
            if as_json:
                console.print(json.dumps({"image": str(path), "error": reason}), highlight=False, soft_wrap=True)
    else:  # read as photos: skipped in their place, with the photo reader's own reason
        photos |= set(bad)
    read = 0
    if photos:
        from unseen.cli.scenetext_photos import read_photos

        readings, missed = read_photos([p for p in paths if p in photos], as_json=as_json, draw=draw,
                                       lexicon=lexicon, pool_dir=pool_dir, evolve=evolve, explain=explain,
                                       batch_lexicon=batch_lexicon, lexicon_mode=lexicon_mode, cache_dir=cache,
                                       strict=strict, vocab=vocab, keep=(min_confidence, min_length))
        read, skipped = read + len(readings), skipped + missed
    if crops:
        _read_crops(crops, pool_dir, explain, as_json, weights, encoder_name, batch_lexicon)
        read += len(crops)
    if photos or skipped:
        summarize(read, skipped)
    if skipped:
        raise typer.Exit(EXIT_SKIPPED)


def _read_crops(paths, pool_dir, explain, as_json, weights, encoder_name, batch_lexicon) -> None:
    from unseen.core.data import open_image
    from unseen.scenetext.pool import Pool

    pictures = [open_image(path) for path in paths]
    pool = Pool.load(pool_dir) if pool_dir else None
    kind, reader = reader_for(encoder_name, weights, pool)
    if kind == "gate":
        from unseen.scenetext.reader import gated_readings

        readings, gate = gated_readings(reader, pictures, pool, batch_lexicon)
        if as_json:  # confidence: mean character probability (as for photos); least_sure: what the gates compare
            for path, r in zip(paths, readings):
                console.print(json.dumps({"image": str(path), "text": r.text, "confidence": round(r.mean, 4),
                                          "least_sure": round(r.least_sure, 4), "greedy": r.greedy,
                                          "from_pool": r.from_pool, "from_batch": r.from_batch},
                                         ensure_ascii=False), highlight=False, soft_wrap=True)
            return
        rows = [[str(p), r.text, round(r.mean, 3)]
                + ([round(r.least_sure, 3), r.greedy, "pool" if r.from_pool else "batch" if r.from_batch else ""]
                   if explain else [])
                for p, r in zip(paths, readings)]
        title = f"Readings ({reader_name(reader)}" + (f", pool with {gate.setting.describe()}" if gate else "") + \
            (", batch lexicon" if batch_lexicon else "") + ")"
        console.print(table(title, ["image", "text", "conf."] + (["least sure", "greedy", "from"] if explain else []),
                            rows))
        return
    # experimental E2STR-lite: two retrieved pool samples before each query
    readings = reader.read(pictures, pool=pool, n=2 if pool is not None else 0)
    if as_json:
        for path, r in zip(paths, readings):
            console.print(json.dumps({"image": str(path), "text": r.text, "confidence": round(r.confidence, 4),
                                      "context": [{"pool_index": j, "label": t, "similarity": round(s, 4)}
                                                  for j, t, s in r.context]}, ensure_ascii=False),
                          highlight=False, soft_wrap=True)
        return
    rows = [[str(p), r.text, round(r.confidence, 3)]
            + ([", ".join(f"#{j} {t!r}: {s:.3f}" for j, t, s in r.context) or "none"] if explain else [])
            for p, r in zip(paths, readings)]
    title = "Readings (E2STR-lite, experimental" + (f", pool {pool_dir}, n=2" if pool is not None else "") + ")"
    console.print(table(title, ["image", "text", "conf."] + (["context (label: similarity)"] if explain else []), rows))


@app.command("eval")
def evaluate(
    dataset: str = typer.Option(..., "--dataset",
                                help="A dataset name (iiit5k, ic13, ic15) or a labels.tsv folder / LMDB path."),
    split: Optional[str] = typer.Option(None, "--split", help="Split (test, test_857, ...)."),
    pool_dir: Optional[Path] = typer.Option(None, "--pool", help="A context pool."),
    alnum: bool = typer.Option(False, "--alnum", help="Only words whose label is alphanumeric (IC15-1922)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="First N records only."),
    baselines: Optional[List[str]] = typer.Option(None, "--baseline",
                                                  help="Also read the same records with a baseline: easyocr (the "
                                                  "EasyOCR CRNN) or ppocr (PP-OCRv4's own greedy CTC); repeatable."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write predictions and metrics as JSON here."),
    weights: Optional[Path] = WeightsOption,
    encoder_name: Optional[str] = EncoderOption,
    batch_lexicon: bool = BatchLexiconOption,
    data_dir: Optional[str] = DataDirOption,
):
    """Word accuracy and 1-NED (36-char, cased, full protocols) on word crops of a benchmark split.

    Example: unseen str eval --dataset ic15 --split test --pool pools/ic15 --baseline ppocr --baseline easyocr
    """
    from unseen.core.errors import UnseenError
    from unseen.scenetext.evaluate import BASELINES, load_records
    from unseen.scenetext.evaluate import evaluate as run_eval
    from unseen.scenetext.metrics import report
    from unseen.scenetext.pool import Pool

    for name in baselines or []:
        if name not in BASELINES:
            raise UnseenError(f"--baseline {name!r}: unknown; known: {', '.join(BASELINES)}")
    records = load_records(dataset, split, data_dir, filter="alnum" if alnum else None, limit=limit)
    if not records:
        from unseen.core.errors import DataError

        raise DataError(f"{dataset}{'/' + split if split else ''}: no records to evaluate")
    pool = Pool.load(pool_dir) if pool_dir else None
    images, targets = [r["image"] for r in records], [r["text"] for r in records]
    kind, reader = reader_for(encoder_name, weights, pool)
    if kind == "gate":
        from unseen.scenetext.encoder import encoder_name as name_of
        from unseen.scenetext.reader import gated_readings

        with console.stderr.status(f"reading {len(images)} images with {reader_name(reader)}..."):
            readings, gate = gated_readings(reader, images, pool, batch_lexicon)
        predictions = [r.text for r in readings]
        result = {"encoder": name_of(reader.fingerprint), "gate": gate.as_dict() if gate else None,
                  "batch_lexicon": batch_lexicon,
                  "metrics": report(predictions, targets), "predictions": predictions,
                  "from_pool": sum(r.from_pool for r in readings), "from_batch": sum(r.from_batch for r in readings)}
        name = reader_name(reader) + (f" + pool ({gate.setting.describe().split(' (')[0]})" if gate else "") + \
            (" + batch lexicon" if batch_lexicon else "") + ("" if gate or batch_lexicon else " (no context)")
    else:
        recognizer = reader
        with console.stderr.status(f"encoding {len(images)} images..."):
            visuals = recognizer.encode(images)
        with console.stderr.status("reading..."):
            result = run_eval(recognizer, visuals, targets, pool=pool, n=2 if pool is not None else 0)
        name = "E2STR-lite (experimental)" + (" + pool (n=2)" if pool is not None else " (no context)")
    rows = [[name, len(records)] + _cells(result["metrics"])]
    payload = {"dataset": dataset, "split": split, "n": len(records), "ours": result}
    for name in dict.fromkeys(baselines or []):
        title, read_with = BASELINES[name]
        with console.stderr.status(f"{title} baseline..."):
            predictions, _ = read_with(images)
        base = report(predictions, targets)
        rows.append([title, len(records)] + _cells(base))
        payload[name] = {"metrics": base, "predictions": predictions}
    console.print(table(f"{dataset}{'/' + split if split else ''}",
                        ["model", "n", "acc 36", "1-NED 36", "acc cased", "acc full"], rows))
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(payload, indent=1) + "\n")


def _cells(metrics: dict) -> list:
    return [round(100 * metrics["36"]["accuracy"], 2), round(100 * metrics["36"]["one_minus_ned"], 2),
            round(100 * metrics["cased"]["accuracy"], 2), round(100 * metrics["full"]["accuracy"], 2)]


@app.command("eval-e2e")
def eval_e2e(
    dataset: str = typer.Option("ic15_e2e", "--dataset", help="ic15_e2e: the 500 ICDAR 2015 end-to-end test photos."),
    vocabulary: str = typer.Option("none", "--vocabulary", help="none, generic (87k words), weak (1,071) or strong "
                                   "(100 per photo): the official lists."),
    limit: Optional[int] = typer.Option(None, "--limit", help="First N photos only."),
    baselines: Optional[List[str]] = typer.Option(None, "--baseline", help="rapidocr: RapidOCR 1.4.4 as shipped, "
                                                  "in the same run (and with its word-box option)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write metrics and every reading as JSON here."),
    batch_lexicon: bool = BatchLexiconOption,
    data_dir: Optional[str] = DataDirOption,
):
    """End-to-end precision, recall and F on ICDAR 2015 (Task 4.4 protocol), beside RapidOCR.

    Example: unseen str eval-e2e --vocabulary strong --limit 50 --baseline rapidocr
    """
    from unseen.cli.scenetext_photos import evaluate_photos

    evaluate_photos(dataset, vocabulary, limit, baselines or [], out, batch_lexicon, data_dir)


if __name__ == "__main__":  # `python -m unseen.cli.scenetext ...` works before `unseen str` is registered
    app()
