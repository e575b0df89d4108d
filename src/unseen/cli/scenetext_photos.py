"""`unseen str read` on photos and `unseen str eval-e2e`: progress, tables that fit a terminal, JSON, drawings."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from unseen.cli.common import console, table


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=console.stderr, transient=True)


def _box(quad) -> str:
    xs, ys = quad[:, 0], quad[:, 1]
    return f"{xs.min():.0f},{ys.min():.0f} {xs.max() - xs.min():.0f}x{ys.max() - ys.min():.0f}"


EXIT_SKIPPED = 3  # `unseen str read`: some images could not be read and were skipped (0: all read)


def _one_line(err) -> str:
    return str(err).splitlines()[0][:160] if str(err) else type(err).__name__


def unreadable(path: Path, small_side: int = 0) -> str | None:
    """Why an image cannot be read (one line), or None. Reads the header only, and decodes images shorter than
    ``small_side`` on their short side (cheap: a truncated small image would otherwise fail while ``--as auto``
    looks for words in it)."""
    from PIL import Image

    try:
        if path.stat().st_size == 0:
            return "empty file (0 bytes)"
        with Image.open(path) as image:
            if min(image.size) == 0:
                return "image has zero size"
            if min(image.size) < small_side:
                image.load()
    except FileNotFoundError:
        return "not found"
    except IsADirectoryError:
        return "a folder, not an image"
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        message = _one_line(err).replace(f" '{path}'", "")
        return f"cannot decode image ({message[:120]})"
    return None


def warn_skipped(path, reason: str) -> None:
    console.stderr.print(f"[yellow]warning:[/] skipped {path}: {reason}", highlight=False, soft_wrap=True)


def summarize(read: int, skipped: list) -> None:
    """The end of a run: how many images were read and which were skipped, and why (on stderr)."""
    if not skipped:
        console.stderr.print(f"read {read} image(s)", highlight=False)
        return
    console.stderr.print(f"read {read} image(s); skipped {len(skipped)} (exit status {EXIT_SKIPPED}):",
                         highlight=False)
    for path, reason in skipped:
        console.stderr.print(f"  {path}: {reason}", highlight=False, soft_wrap=True)


def _is_binary(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            head = handle.read(1 << 16)
    except OSError:
        return False  # not readable: the word list reader says so in its own words
    return b"\0" in head


def load_word_lists(lexicon: Path, names: list[str]):
    """``--lexicon``: a word list or a folder of per-photo lists, or a one-line DataError for one that is binary,
    empty, or (a folder) holds no list for any of the photos."""
    from unseen.core.errors import DataError
    from unseen.scenetext.lexicon import Lexicon, load_lexicons, photo_key

    files = sorted(lexicon.glob("*.txt")) if lexicon.is_dir() else [lexicon] if lexicon.is_file() else []
    for file in files:
        if _is_binary(file):
            raise DataError(f"{file}: not a word list (binary data); give a UTF-8 text file with one word per line")
    vocab = load_lexicons(lexicon)
    for file, words in ([(lexicon, vocab)] if isinstance(vocab, Lexicon) else
                        [(f, vocab[photo_key(f.name)]) for f in files]):
        if len(words) == 0:
            raise DataError(f"{file}: the word list has no words (empty, or only blank lines and # comments)")
    if isinstance(vocab, dict) and names and not any(photo_key(name) in vocab for name in names):
        raise DataError(f"{lexicon}: none of its {len(vocab)} word lists is named after a photo read (photo NAME.jpg "
                        "takes voc_NAME.txt or NAME.txt)")
    return vocab


def check_output_folder(option: str, path: Path | None, *, pool: bool = False) -> None:
    """--draw, --evolve, --cache: a folder (made if missing), never a file; --evolve: a pool, or a new or empty
    folder (not a folder of other things that a pool would be written into)."""
    from unseen.core.errors import DataError

    if path is None:
        return
    if path.exists() and not path.is_dir():
        raise DataError(f"{option} {path}: a file, not a folder")
    if pool and path.is_dir() and not (path / "pool.json").exists() and any(path.iterdir()):
        raise DataError(f"{option} {path}: not a pool (no pool.json) and not empty; give a pool, or a new or "
                        "empty folder to make one in")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"{option} {path}: cannot make the folder ({err.strerror or err})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise DataError(f"{option} {path}: the folder is not writable")


def _draw_names(readings) -> list[str]:
    """PNG names for --draw: NAME.png, NAME-2.png for a second photo of the same name from another folder."""
    seen: dict[str, int] = {}
    names = []
    for reading in readings:
        stem = Path(reading.path).stem
        seen[stem] = seen.get(stem, 0) + 1
        names.append(f"{stem}.png" if seen[stem] == 1 else f"{stem}-{seen[stem]}.png")
    return names


def read_photos(paths, *, as_json, draw, lexicon, pool_dir, evolve, explain, batch_lexicon,
                lexicon_mode="auto", cache_dir=None, strict=False, vocab=None, keep=(None, None)) -> tuple[list, list]:
    """Read photos as a collection (unseen.scenetext.collection): a photo that cannot be decoded is named in a
    warning and skipped (``strict``: the run stops on it). ``keep``: (min_confidence, min_length), None for the
    tuned default. Returns (readings, [(path, reason)] skipped)."""
    from dataclasses import replace

    from unseen.scenetext.adapt import DOMAIN_LIST, GENERAL_LIST
    from unseen.scenetext.collection import Skipped, default_cache_dir, read_collection
    from unseen.scenetext.evolve import evolve_pool
    from unseen.scenetext.photos import PhotoReader, ReadSettings
    from unseen.scenetext.photos import draw as draw_photo
    from unseen.scenetext.pool import Pool

    if vocab is None and lexicon:
        vocab = load_word_lists(lexicon, [Path(p).name for p in paths])
    pool = Pool.load(pool_dir) if pool_dir else None
    cache_dir = cache_dir or default_cache_dir()
    check_output_folder("--cache", cache_dir)
    settings = ReadSettings()
    if keep[0] is not None:
        settings = replace(settings, min_confidence=keep[0])
    if keep[1] is not None:
        settings = replace(settings, min_length=keep[1])
    with console.stderr.status("loading PP-OCRv6 (detector and recognizer)..."):
        reader = PhotoReader.load(settings)
    if pool is not None:
        pool.check_encoder(reader.encoder.fingerprint)  # an E2STR-lite pool would silently add nothing
    growing = None
    if evolve:
        growing = Pool.load(evolve) if (evolve / "pool.json").exists() else Pool.new(reader.encoder, root=evolve)
        growing.check_encoder(reader.encoder.fingerprint)
        if pool is None:
            pool = growing
    modes = {"auto": None, "restrict": DOMAIN_LIST, "correct": GENERAL_LIST}
    readings, skipped, stats = [], [], {}
    with _progress() as progress:
        task = progress.add_task("reading photos", total=len(paths))

        def advance(raw):
            if isinstance(raw, Skipped):
                warn_skipped(raw.path, raw.error)
            progress.advance(task)

        for result in read_collection(reader, list(paths), cache_dir, strict=strict, progress=advance, stats=stats,
                                      lexicon=vocab, vocabulary=modes[lexicon_mode], pool=pool,
                                      batch_lexicon=batch_lexicon):
            if isinstance(result, Skipped):
                skipped.append((result.path, result.error))
            else:
                readings.append(result)
            if as_json:
                console.print(json.dumps(result.as_dict(), ensure_ascii=False), highlight=False, soft_wrap=True)
    if stats.get("cached"):
        console.stderr.print(f"{stats['cached']} photo(s) from the cache ({cache_dir}), {stats['read']} read now",
                             highlight=False)
    if growing is not None:
        added = evolve_pool(growing, readings, reader.encoder)
        growing.save(evolve)
        console.stderr.print(f"pool {evolve}: {added} sure reading(s) added as self-labelled, now {len(growing)}")
    if draw:
        for reading, name in zip(readings, _draw_names(readings)):
            draw_photo(reading, Path(draw) / name)
        console.stderr.print(f"drawn: {len(readings)} PNG file(s) in {draw}")
    if as_json:
        return readings, skipped
    columns = ["photo", "word", "conf.", "box x,y wxh"] + (["greedy", "from"] if explain else [])
    rows = []
    for reading in readings:
        for word in reading.words:
            rows.append([Path(reading.path).name, word.text, round(word.confidence, 3), _box(word.quad)]
                        + ([word.greedy, word.source] if explain else []))
        if not reading.words:
            rows.append([Path(reading.path).name, "(no text found)", "", ""] + (["", ""] if explain else []))
    total = sum(len(r.words) for r in readings)
    console.print(table(f"{total} words in {len(readings)} photo(s)", columns, rows))
    return readings, skipped


def evaluate_photos(dataset, vocabulary, limit, baselines, out, batch_lexicon, data_dir) -> dict:
    from unseen.core.errors import UnseenError
    from unseen.scenetext import rapidocr
    from unseen.scenetext.icdar import evaluate_e2e, load_ic15_e2e, load_vocabulary
    from unseen.scenetext.photos import PhotoReader

    if dataset != "ic15_e2e":
        raise UnseenError(f"--dataset {dataset!r}: only ic15_e2e (ICDAR 2015 end to end) is known")
    if vocabulary not in ("none", "generic", "weak", "strong"):
        raise UnseenError(f"--vocabulary {vocabulary!r}: use none, generic, weak or strong")
    known = {"rapidocr": "3.10", "rapidocr-1.4.4": "1.4.4"}  # RapidOCR as `pip install rapidocr` gives, and history
    for name in baselines:
        if name not in known:
            raise UnseenError(f"--baseline {name!r}: unknown; known: {', '.join(known)}")
    photos = load_ic15_e2e(data_dir, limit=limit)
    lexicon = load_vocabulary(vocabulary, [p.name for p in photos], data_dir)
    with console.stderr.status("loading PP-OCRv6 (detector and recognizer)..."):
        reader = PhotoReader.load()
    engines = {name: rapidocr.load_rapidocr(known[name]) for name in dict.fromkeys(baselines)}
    with _progress() as progress:
        task = progress.add_task("reading photos", total=len(photos))
        raws, spotted, words, seconds = rapidocr.read_beside(reader, engines, [p.image_path for p in photos],
                                                             lambda *_: progress.advance(task))
    started = time.perf_counter()
    readings = reader.adapt(raws, lexicon=lexicon, batch_lexicon=batch_lexicon)
    seconds["ours"] += time.perf_counter() - started
    truth = [p.words for p in photos]
    results = {f"unseen (PP-OCRv6 + words + {'batch lexicon' if batch_lexicon else 'no batch lexicon'})":
               (evaluate_e2e([r.words for r in readings], truth), seconds["ours"])}
    for name in engines:
        results[f"RapidOCR {known[name]} as shipped"] = (evaluate_e2e(spotted[name], truth), seconds[name])
        results[f"RapidOCR {known[name]}, word-box option"] = (evaluate_e2e(words[name], truth),
                                                               seconds[f"{name} words"])
    rows = [[name, f"{r.precision:.1f}", f"{r.recall:.1f}", f"{r.f:.1f}", f"{len(photos) / s:.2f}" if s else "-"]
            for name, (r, s) in results.items()]
    console.print(table(f"ICDAR 2015 end to end, {len(photos)} photos, vocabulary {vocabulary}",
                        ["reader", "P", "R", "F", "photos/s"], rows))
    payload = {"dataset": dataset, "vocabulary": vocabulary, "photos": len(photos),
               "results": {name: {**r.as_dict(), "seconds": s} for name, (r, s) in results.items()},
               "readings": [r.as_dict() for r in readings]}
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(payload, indent=1) + "\n")
    return payload
