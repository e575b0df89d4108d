"""End to end on ICDAR 2015 (Task 4.4): whole photos in, words and boxes out, beside RapidOCR as shipped.

    python bench/scenetext/e2e.py tune   # settings chosen on photos 1-100 -> docs/results/scenetext_e2e_tuning.json
    python bench/scenetext/e2e.py run    # 500 photos, reported as 101-500 and 1-500 -> docs/results/scenetext_e2e.*

Every setting (word box reach and height, the confidence a word needs, each vocabulary's delta and drop rule) is
chosen on photos 1-100 and never on the others' ground truth. ``run`` reads every photo once with our reader and
once with RapidOCR 1.4.4 (det + direction classifier + rec, onnxruntime, its defaults, then with its word-box
option), alternating photo by photo so both see the same machine; it times both at 2 threads, then adapts our
raw readings without a vocabulary and with the generic, weak and strong vocabularies, and streams photos 251-500
through an evolving pool after photos 1-250 evolved it, against the same photos streamed cold.
Detections and line readings are cached per photo under runs/e2e-cache (the timing run never reads the cache).
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "docs" / "results"
CACHE = ROOT / "runs" / "e2e-cache"
TUNE = range(0, 100)  # photos 1-100 (0-based positions)
VOCABULARIES = ["none", "generic", "weak", "strong"]


def reader_and_photos(limit=None):
    from unseen.scenetext.icdar import load_ic15_e2e
    from unseen.scenetext.photos import PhotoReader

    return PhotoReader.load(), load_ic15_e2e(limit=limit)


def cached_raw(reader, photo):
    path = CACHE / f"{photo.name}.pt"
    if path.exists():
        return torch.load(path, weights_only=False)
    raw = reader.detect_and_read(photo.image_path)
    CACHE.mkdir(parents=True, exist_ok=True)
    torch.save(raw, path)
    return raw


def lexicons(kind, photos):
    from unseen.scenetext.icdar import load_vocabulary

    return load_vocabulary(kind, [p.name for p in photos])


def score(reader, raws, photos, **adapt):
    from unseen.scenetext.icdar import evaluate_e2e

    readings = reader.adapt(raws, **adapt)
    return evaluate_e2e([r.words for r in readings], [p.words for p in photos])


def tune(args):
    """Stage "read": the confidence a word needs, then the word box geometry; stage "vocabulary": each vocabulary's
    gate at the chosen read settings. Both on photos 1-100; results accumulate in the tuning JSON."""
    from unseen.scenetext.adapt import VocabularySettings
    from unseen.scenetext.photos import ReadSettings
    from unseen.scenetext.words import SplitSettings

    reader, photos = reader_and_photos(limit=100)
    photos = [photos[i] for i in TUNE]
    raws = [cached_raw(reader, p) for p in photos]
    path = RESULTS / "scenetext_e2e_tuning.json"
    out = json.loads(path.read_text()) if path.exists() else {"photos": "1-100"}
    if args.stage in ("read", "all"):
        grid = []

        def trial(min_conf, lead, trail, height, gap, space_prob):
            split = SplitSettings(lead, trail, height, gap, space_prob)
            reader.settings = ReadSettings(min_confidence=min_conf, split=split)
            result = score(reader, raws, photos)
            grid.append({**asdict(split), "gap": None if gap == float("inf") else gap,
                         "min_confidence": min_conf, "f": result.f,
                         "precision": result.precision, "recall": result.recall})
            print(grid[-1], flush=True)
            return result.f

        # coordinate-wise: where lines are cut, the confidence a word needs, then the word box geometry
        gaps, space_probs = [2.0, 2.5, 3.0, float("inf")], [0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 1.01]
        gap, space_prob = max(itertools.product(gaps, space_probs),
                              key=lambda g: trial(0.8, 0.6, 0.6, 0.8, *g))
        min_conf = max([0.5, 0.6, 0.7, 0.8, 0.9], key=lambda c: trial(c, 0.6, 0.6, 0.8, gap, space_prob))
        for lead, trail, height in itertools.product([0.4, 0.6, 0.8, 1.0], [0.4, 0.6, 0.8, 1.0], [0.7, 0.8, 0.9]):
            trial(min_conf, lead, trail, height, gap, space_prob)
        best = max(grid, key=lambda g: g["f"])
        out["read"] = {"grid": grid, "chosen": best}
    best = out["read"]["chosen"]
    reader.settings = chosen_settings(best)
    if args.stage in ("vocabulary", "all"):
        out["vocabularies"] = {}
        for kind in VOCABULARIES[1:]:
            lex, memo, rows = lexicons(kind, photos), {}, []
            for tau, delta, (restrict, drop) in itertools.product(
                    [0.7, 0.9, 1.01], [-6.0, -3.0, 0.0], [(False, 0.0), (True, -10.0), (True, -5.0)]):
                vocab = VocabularySettings(tau, delta, restrict, drop)
                result = score(reader, raws, photos, lexicon=lex, vocabulary=vocab, memo=memo)
                rows.append({**asdict(vocab), "f": result.f, "precision": result.precision, "recall": result.recall})
                print(kind, rows[-1], flush=True)
            # a vocabulary is used only where it beat reading without one on photos 1-100
            top = max(rows, key=lambda r: r["f"])
            out["vocabularies"][kind] = {"grid": rows, "chosen": top, "used": top["f"] > best["f"]}
    out["machine"] = machine()
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({k: v["chosen"] for k, v in out.get("vocabularies", {}).items()} | {"read": best}, indent=1))


def run(args):
    """All 500 photos: our reader and RapidOCR alternating photo by photo (timed, no cache), the vocabularies,
    the evolving pool in stream order; reported on photos 101-500 (never used to choose a setting) and 1-500."""
    from unseen.scenetext import rapidocr
    from unseen.scenetext.adapt import VocabularySettings
    from unseen.scenetext.icdar import evaluate_e2e

    tuning = json.loads((RESULTS / "scenetext_e2e_tuning.json").read_text())
    reader, photos = reader_and_photos(limit=args.limit)
    reader.settings = chosen_settings(tuning["read"]["chosen"])
    engine = rapidocr.load_rapidocr()

    def report_progress(count, seconds):
        if count % 50 == 0:
            print(f"{count} photos: ours {seconds['ours']:.0f} s, RapidOCR {seconds['rapidocr']:.0f} s", flush=True)

    raws, lines, words, seconds = rapidocr.read_beside(reader, engine, [p.image_path for p in photos],
                                                       report_progress)
    started = time.perf_counter()
    reader.adapt(raws)  # the batch lexicon over all photos read: part of reading them
    seconds["ours"] += time.perf_counter() - started
    parts = {"101-500": slice(100, None), "1-500": slice(None)}
    rows = []

    def report(name, readings_by_part, vocabulary="none"):
        for part, cut in parts.items():
            result = evaluate_e2e(readings_by_part[part], [p.words for p in photos[cut]])
            rows.append({"reader": name, "vocabulary": vocabulary, "photos": part, **result.as_dict()})
            rows[-1].pop("per_photo", None)
            print(rows[-1], flush=True)

    report("RapidOCR 1.4.4 as shipped (lines)", {k: lines[c] for k, c in parts.items()})
    report("RapidOCR 1.4.4, word-box option", {k: words[c] for k, c in parts.items()})
    for kind in VOCABULARIES:
        chosen = tuning["vocabularies"].get(kind) if kind != "none" else None
        use = chosen is not None and chosen["used"]
        fields = ("tau", "delta", "restrict", "drop_below")
        settings = VocabularySettings(**{k: chosen["chosen"][k] for k in fields}) if use else None
        by_part = {}
        for part, cut in parts.items():
            lex = lexicons(kind, photos[cut]) if use else None
            by_part[part] = [r.words for r in reader.adapt(raws[cut], lexicon=lex, vocabulary=settings)]
        report("unseen: PP-OCRv4 + words + batch lexicon" + ("" if kind == "none" or use else " (vocabulary unused)"),
               by_part, kind)
        if kind == "none":
            report("unseen without the batch lexicon",
                   {k: [r.words for r in reader.adapt(raws[c], batch_lexicon=False)] for k, c in parts.items()})
    # stream order: each photo read alone as it arrives; evolved = the pool grown on photos 1-250 and growing on
    stream = stream_experiment(reader, raws, photos)
    out = {"command": "python bench/scenetext/e2e.py run", "machine": machine(),
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "settings": tuning["read"]["chosen"], "photos": len(photos),
           "seconds": seconds, "photos_per_second": {k: len(photos) / v for k, v in seconds.items()},
           "rows": rows, "stream": stream}
    (RESULTS / "scenetext_e2e.json").write_text(json.dumps(out, indent=1) + "\n")
    (RESULTS / "scenetext_e2e.md").write_text(markdown(out))
    print(markdown(out))


def stream_experiment(reader, raws, photos, self_labelled_as="batch"):
    """Photos of the second half read one at a time, cold (no pool) and evolved (the pool the first half grew,
    growing on), with F at every 50 photos."""
    import shutil
    import tempfile

    from unseen.scenetext.evolve import evolve_pool
    from unseen.scenetext.icdar import evaluate_e2e
    from unseen.scenetext.pool import Pool

    half = len(photos) // 2
    folder = Path(tempfile.mkdtemp(prefix="evolve-"))
    try:
        pool = Pool.new(reader.encoder, root=folder)
        for raw in raws[:half]:  # the first half evolves the pool, each read alone with what the pool holds so far
            evolve_pool(pool, reader.adapt([raw], pool=pool, self_labelled_as=self_labelled_as), reader.encoder)
        after_first_half = len(pool)
        cold, warm, checkpoints = [], [], []
        for k, raw in enumerate(raws[half:], start=half):
            cold += reader.adapt([raw])
            reading = reader.adapt([raw], pool=pool, self_labelled_as=self_labelled_as)
            warm += reading
            evolve_pool(pool, reading, reader.encoder)
            if (k + 1 - half) % 50 == 0 or k + 1 == len(raws):
                truth = [p.words for p in photos[half : k + 1]]
                checkpoints.append({"through_photo": k + 1,
                                    "cold_f": evaluate_e2e([r.words for r in cold], truth).f,
                                    "evolved_f": evaluate_e2e([r.words for r in warm], truth).f})
                print(checkpoints[-1], flush=True)
        truth = [p.words for p in photos[half:]]
        return {"self_labelled_as": self_labelled_as, "pool_after_first_half": after_first_half,
                "pool_at_end": len(pool),
                "cold": evaluate_e2e([r.words for r in cold], truth).as_dict() | {"per_photo": None},
                "evolved": evaluate_e2e([r.words for r in warm], truth).as_dict() | {"per_photo": None},
                "checkpoints": checkpoints}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def stream(args):
    """How a pool's self-labelled words are used, chosen on photos 1-100 (1-50 evolve, 51-100 measured; ties keep
    "batch"), then photos 251-500 streamed after 1-250 evolved the pool; updates scenetext_e2e.{json,md}."""
    tuning_path, run_path = RESULTS / "scenetext_e2e_tuning.json", RESULTS / "scenetext_e2e.json"
    tuning, out = json.loads(tuning_path.read_text()), json.loads(run_path.read_text())
    reader, photos = reader_and_photos()
    reader.settings = chosen_settings(tuning["read"]["chosen"])
    raws = [cached_raw(reader, p) for p in photos]
    trials = {how: stream_experiment(reader, raws[:100], photos[:100], how) for how in ("batch", "vocabulary")}
    gains = {how: t["evolved"]["f"] - t["cold"]["f"] for how, t in trials.items()}
    chosen = max(gains, key=lambda how: (gains[how], how == "batch"))
    tuning["self_labelled_as"] = {"photos": "1-100 (1-50 evolve the pool, 51-100 measured)", "gain_f": gains,
                                  "chosen": chosen}
    tuning_path.write_text(json.dumps(tuning, indent=1) + "\n")
    out["stream"] = stream_experiment(reader, raws, photos, chosen)
    run_path.write_text(json.dumps(out, indent=1) + "\n")
    (RESULTS / "scenetext_e2e.md").write_text(markdown(out))
    print(gains, chosen, out["stream"]["cold"]["f"], out["stream"]["evolved"]["f"])


def markdown(out: dict) -> str:
    lines = ["# ICDAR 2015 end to end (Task 4.4): whole photos in, words and boxes out", "",
             f"Command: `{out['command']}`; machine: {out['machine']}; {out['date']}. Every setting was chosen "
             "on photos 1-100 (`python bench/scenetext/e2e.py tune`, scenetext_e2e_tuning.json); photos 101-500 "
             "never informed one.",
             "", "| reader | vocabulary | photos | P | R | F |", "|---|---|---|---|---|---|"]
    for row in out["rows"]:
        lines.append(f"| {row['reader']} | {row['vocabulary']} | {row['photos']} | {row['precision']:.1f} | "
                     f"{row['recall']:.1f} | {row['f']:.1f} |")
    s, speed = out["stream"], out["photos_per_second"]
    lines += ["", f"Speed, {out['photos']} photos, both at 2 threads, alternating photo by photo: ours "
              f"{speed['ours']:.2f} photos/s, RapidOCR as shipped {speed['rapidocr']:.2f} photos/s "
              f"({speed['ours'] / speed['rapidocr']:.2f}x).", "",
              "## Evolving pool, stream order", "",
              f"Photos 251-500 read one at a time. Cold: no pool. Evolved: the pool that photos 1-250 grew "
              f"({s['pool_after_first_half']} self-labelled words), growing on ({s['pool_at_end']} at the end); "
              f"its words used as {s.get('self_labelled_as', 'batch')} words (`python bench/scenetext/e2e.py stream`"
              f" chooses how on photos 1-100).", "",
              "| through photo | cold F | evolved F |", "|---|---|---|"]
    lines += [f"| {c['through_photo']} | {c['cold_f']:.1f} | {c['evolved_f']:.1f} |" for c in s["checkpoints"]]
    return "\n".join(lines) + "\n"


def chosen_settings(row: dict):
    from unseen.scenetext.photos import ReadSettings
    from unseen.scenetext.words import SplitSettings

    split = SplitSettings(**{k: row[k] for k in ("lead", "trail", "height", "space_prob")},
                          gap=float("inf") if row["gap"] is None else row["gap"])  # JSON has no infinity: null
    return ReadSettings(min_confidence=row["min_confidence"], split=split)


def machine() -> str:
    threads = torch.get_num_threads()
    return f"{platform.node() or 'vm'} {platform.machine()}, {threads} threads, torch {torch.__version__}"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["tune", "run", "stream"])
    parser.add_argument("--limit", type=int, default=None, help="run: first N photos only (a smoke test)")
    parser.add_argument("--stage", choices=["read", "vocabulary", "all"], default="all", help="tune: which settings")
    args = parser.parse_args()
    torch.set_num_threads(2)
    {"tune": tune, "run": run, "stream": stream}[args.command](args)
    sys.exit(0)
