"""`unseen str read` on photos and `unseen str eval-e2e`: progress, tables that fit a terminal, JSON, drawings."""

from __future__ import annotations

import json
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


def read_photos(paths, *, as_json, draw, lexicon, pool_dir, evolve, explain, batch_lexicon,
                lexicon_mode="auto") -> list:
    from unseen.scenetext.adapt import DOMAIN_LIST, GENERAL_LIST
    from unseen.scenetext.evolve import evolve_pool
    from unseen.scenetext.lexicon import load_lexicons
    from unseen.scenetext.photos import PhotoReader
    from unseen.scenetext.photos import draw as draw_photo
    from unseen.scenetext.pool import Pool

    vocab = load_lexicons(lexicon) if lexicon else None
    pool = Pool.load(pool_dir) if pool_dir else None
    with console.stderr.status("loading PP-OCRv6 (detector and recognizer)..."):
        reader = PhotoReader.load()
    if pool is not None:
        pool.check_encoder(reader.encoder.fingerprint)  # an E2STR-lite pool would silently add nothing
    growing = None
    if evolve:
        growing = Pool.load(evolve) if (evolve / "pool.json").exists() else Pool.new(reader.encoder, root=evolve)
        growing.check_encoder(reader.encoder.fingerprint)
        if pool is None:
            pool = growing
    with _progress() as progress:
        task = progress.add_task("reading photos", total=len(paths))
        modes = {"auto": None, "restrict": DOMAIN_LIST, "correct": GENERAL_LIST}
        readings = reader.read(paths, lexicon=vocab, vocabulary=modes[lexicon_mode], pool=pool,
                               batch_lexicon=batch_lexicon, progress=lambda: progress.advance(task))
    if growing is not None:
        added = evolve_pool(growing, readings, reader.encoder)
        growing.save(evolve)
        console.stderr.print(f"pool {evolve}: {added} sure reading(s) added as self-labelled, now {len(growing)}")
    if draw:
        for reading in readings:
            draw_photo(reading, Path(draw) / f"{Path(reading.path).stem}.png")
        console.stderr.print(f"drawn: {len(readings)} PNG file(s) in {draw}")
    if as_json:
        for reading in readings:
            console.print(json.dumps(reading.as_dict(), ensure_ascii=False), highlight=False, soft_wrap=True)
        return readings
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
    return readings


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
