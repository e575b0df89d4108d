"""End to end on ICDAR 2015 (Task 4.4): whole photos in, words and boxes out, beside RapidOCR as users install it.

    python bench/scenetext/e2e.py tune    # photos 1-100 -> src/unseen/scenetext/tuned.json (the reader's defaults)
                                          #   and its record, docs/results/scenetext_e2e_tuning.json
    python bench/scenetext/e2e.py run     # 500 photos, reported as 101-500 and 1-500 -> docs/results/scenetext_e2e.*
    python bench/scenetext/e2e_speed.py   # speed and memory, on a quiet machine -> docs/results/scenetext_e2e_speed.*

Every setting (the confidence a word needs, where lines are cut, word box reach and height, how each kind of word
list is trusted, how an evolving pool's words are used) is chosen on photos 1-100 and never on the others' ground
truth; ``tune`` writes the choice into the library's tuned.json, so the reader reported here is the reader users get
(``run`` reads with the library's defaults). Raw readings are cached by photo content and reader fingerprint
(unseen.scenetext.raw_cache); RapidOCR's outputs by photo content and RapidOCR version, under runs/.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
from e2e_report import machine, markdown, snapped, where_words_are_lost

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "docs" / "results"
RAW_CACHE = ROOT / "runs" / "raw-cache"
BASELINE_CACHE = ROOT / "runs" / "e2e-baselines"
TUNE = slice(0, 100)  # photos 1-100
VOCABULARIES = ["none", "generic", "weak", "strong"]
ENGINES = {"3.10": "RapidOCR 3.10.0", "1.4.4": "RapidOCR 1.4.4 (history)"}  # run --history adds 1.4.4


def reader_and_photos(limit=None):
    from unseen.scenetext.icdar import load_ic15_e2e
    from unseen.scenetext.photos import PhotoReader

    return PhotoReader.load(), load_ic15_e2e(limit=limit)


def raw_readings(reader, photos, label="reading"):
    from unseen.scenetext.raw_cache import RawCache

    cache, raws = RawCache(RAW_CACHE, reader), []
    for count, photo in enumerate(photos, 1):
        raws.append(cache.read(photo.image_path))
        if count % 50 == 0:
            print(f"{label}: {count}/{len(photos)} photos", flush=True)
    return raws


def baseline_readings(version, photos):
    """RapidOCR's lines and word boxes per photo (cached by photo content and version)."""
    import numpy as np

    from unseen.core.io import file_digest
    from unseen.scenetext import rapidocr

    engine, lines, words = None, [], []
    for count, photo in enumerate(photos, 1):
        path = BASELINE_CACHE / version / f"{file_digest(photo.image_path)[:32]}.json"
        if not path.exists():
            engine = engine or rapidocr.load_rapidocr(version)
            spotted = {"lines": rapidocr.read_lines(engine, photo.image_path),
                       "words": rapidocr.read_words(engine, photo.image_path)}
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({k: [{"quad": w.quad.tolist(), "text": w.text, "confidence": w.confidence}
                                            for w in v] for k, v in spotted.items()}))
        data = json.loads(path.read_text())
        lines.append([rapidocr.SpottedWord(np.array(w["quad"], np.float32), w["text"], w["confidence"])
                      for w in data["lines"]])
        words.append([rapidocr.SpottedWord(np.array(w["quad"], np.float32), w["text"], w["confidence"])
                      for w in data["words"]])
        if count % 100 == 0:
            print(f"RapidOCR {version}: {count}/{len(photos)} photos", flush=True)
    return lines, words


def lexicons(kind, photos):
    from unseen.scenetext.icdar import load_vocabulary

    return load_vocabulary(kind, [p.name for p in photos])


def score(reader, raws, photos, **adapt):
    from unseen.scenetext.icdar import evaluate_e2e

    return evaluate_e2e([r.words for r in reader.adapt(raws, **adapt)], [p.words for p in photos])


# what may be trimmed off a word's ends: ASCII punctuation but the characters words are made of (#, $, %, &, @)
TRIM_PUNCTUATION = "!\"'()*+,-./:;<=>?[\\]^_`{|}~"


def score_with(reader, raws, photos, settings, **adapt):
    reader.settings = settings
    return score(reader, raws, photos, **adapt)


def tune(args):
    """In this order: stage "detector": the detector as shipped or its int8 copy; stage "detect": its thresholds,
    unclip ratio and scale (RapidOCR's kept unless a change raises F) and a second pass at a larger scale (reported);
    stage "read": where lines are cut, the confidence a word needs, the word box geometry; stage "trim": what is
    taken off a word's ends; stage "vocabulary": how a domain list (strong and weak lists, chosen together) and a
    general dictionary (generic) are trusted. All on photos 1-100."""
    from unseen.scenetext import tuned
    from unseen.scenetext.adapt import VocabularySettings
    from unseen.scenetext.photos import ReadSettings
    from unseen.scenetext.words import SplitSettings

    record_path = RESULTS / "scenetext_e2e_tuning.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    if args.stage in ("detector", "all"):
        record["detector"] = choose_detector()
    if args.stage in ("detect", "all"):
        reader, photos = reader_and_photos(limit=100)
        photos = photos[TUNE]
        record["detect"] = detection_passes(reader, photos, raw_readings(reader, photos))
        tuned.write({"detector_settings": record["detect"]["written"]})
    reader, photos = reader_and_photos(limit=100)  # with the detector and its settings chosen
    photos = photos[TUNE]
    raws = raw_readings(reader, photos)
    record.update({"photos": "1-100", "base": "ppocr-v6", "reader": reader.fingerprint})
    if args.stage in ("read", "all"):
        grid = []

        def trial(min_conf, lead, trail, height, gap, space_prob):
            split = SplitSettings(lead, trail, height, gap, space_prob)
            reader.settings = ReadSettings(min_confidence=min_conf, split=split)
            result = score(reader, raws, photos)
            grid.append({**asdict(split), "gap": None if gap == float("inf") else gap, "min_confidence": min_conf,
                         "f": result.f, "precision": result.precision, "recall": result.recall})
            print(grid[-1], flush=True)
            return result.f

        # coordinate-wise: where lines are cut, the confidence a word needs, then the word box geometry
        gaps, space_probs = [2.0, 2.5, 3.0, float("inf")], [0.01, 0.02, 0.05, 0.1, 0.2, 1.01]
        gap, space_prob = max(itertools.product(gaps, space_probs), key=lambda g: trial(0.8, 0.6, 0.6, 0.8, *g))
        min_conf = max([0.5, 0.6, 0.7, 0.8, 0.9], key=lambda c: trial(c, 0.6, 0.6, 0.8, gap, space_prob))
        for lead, trail, height in itertools.product([0.4, 0.6, 0.8, 1.0], [0.4, 0.6, 0.8, 1.0], [0.7, 0.8, 0.9]):
            trial(min_conf, lead, trail, height, gap, space_prob)
        best = max(grid, key=lambda g: g["f"])
        record["read"] = {"grid": grid, "chosen": best}
        tuned.write({"base": "ppocr-v6",
                     "read": {**tuned.tuned()["read"], "min_confidence": best["min_confidence"]},
                     "split": {k: best[k] for k in ("lead", "trail", "height", "gap", "space_prob")}})
        reader.settings = ReadSettings(min_confidence=best["min_confidence"], split=SplitSettings(
            best["lead"], best["trail"], best["height"], float("inf") if best["gap"] is None else best["gap"],
            best["space_prob"]))
    if args.stage in ("trim", "all"):
        from dataclasses import replace

        from unseen.scenetext.onnx_encoder import OTHER

        trims = {"": "none", TRIM_PUNCTUATION + OTHER: "punctuation and other scripts' characters"}
        rows = []
        for trim, what in trims.items():
            result = score_with(reader, raws, photos, replace(reader.settings, trim=trim))
            rows.append({"trim": trim, "what": what, "f": result.f, "precision": result.precision,
                         "recall": result.recall})
        best = max(rows, key=lambda r: (r["f"], r["trim"] == ""))  # a tie keeps words as read
        record["trim"] = {"rows": rows, "chosen": best["trim"]}
        tuned.write({"read": {**tuned.tuned()["read"], "trim": best["trim"]}})
        reader.settings = replace(reader.settings, trim=best["trim"])
        print(rows, flush=True)
    if args.stage in ("vocabulary", "all"):
        plain = score(reader, raws, photos).f
        grids = {}
        for kind in VOCABULARIES[1:]:
            lex, memo, rows = lexicons(kind, photos), {}, []
            for tau, delta, (restrict, drop, beyond) in itertools.product(
                    [0.7, 0.9, 1.01], [-6.0, -3.0, 0.0],
                    [(False, -10.0, False), (True, -10.0, False), (True, -5.0, False), (True, -10.0, True),
                     (True, -5.0, True)]):
                vocab = VocabularySettings(tau, delta, restrict, drop, beyond)
                result = score(reader, raws, photos, lexicon=lex, vocabulary=vocab, memo=memo)
                rows.append({**asdict(vocab), "f": result.f, "precision": result.precision, "recall": result.recall})
                print(kind, rows[-1], flush=True)
            grids[kind] = rows
        fields = ("tau", "delta", "restrict", "drop_below", "keep_beyond_list")

        def key(row):
            return tuple(row[k] for k in fields)

        # a domain list: the setting best on the strong and weak lists together
        by_setting = {key(r): r["f"] for r in grids["strong"]}
        domain = max(grids["weak"], key=lambda r: r["f"] + by_setting[key(r)])
        general = max(grids["generic"], key=lambda r: r["f"])
        # a general dictionary that does not beat reading without it is used as if absent: tau 0 changes nothing
        general_used = general["f"] > plain
        general_setting = {k: general[k] for k in fields} if general_used else {
            "tau": 0.0, "delta": 0.0, "restrict": False, "drop_below": -10.0, "keep_beyond_list": False}
        record["vocabularies"] = {"plain_f": plain, "grids": grids, "domain_list": domain,
                                  "general_list": general, "general_list_used": general_used}
        tuned.write({"vocabulary": {"domain_list": {k: domain[k] for k in fields},
                                    "general_list": general_setting,
                                    "general_list_words": tuned.tuned()["vocabulary"]["general_list_words"]}})
    record["machine"] = machine()
    record_path.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(tuned.tuned(), indent=1))


def choose_detector() -> dict:
    """The detector as shipped (float) or its int8 copy (its network takes about a quarter less time): the int8
    copy becomes the default only if F on photos 1-100 is no lower with it, without a list and with the strong lists
    (the rule fixed before it was run); the reader's other settings as they stand. Writes tuned.json's "detector"."""
    from unseen.core.models.ppocr_det import DBDetector
    from unseen.scenetext import tuned
    from unseen.scenetext.adapt import DOMAIN_LIST
    from unseen.scenetext.icdar import load_ic15_e2e
    from unseen.scenetext.photos import DETECTORS, PhotoReader, load_photo

    photos, rows = load_ic15_e2e(limit=100)[TUNE], {}
    strong = lexicons("strong", photos)
    for name in DETECTORS:
        reader = PhotoReader.load(detector=name)
        raws = raw_readings(reader, photos, f"reading with {name}")
        plain, listed = score(reader, raws, photos), score(reader, raws, photos, lexicon=strong, vocabulary=DOMAIN_LIST)
        started = time.perf_counter()  # the network alone, per photo: a quiet machine's figure only if it was quiet
        for photo in photos[:20]:
            reader.detector.probability_map(DBDetector.scaled(load_photo(photo.image_path)[0],
                                                              reader.detector.settings)[0])
        rows[name] = {"f": plain.f, "precision": plain.precision, "recall": plain.recall, "f_strong": listed.f,
                      "network_seconds_per_photo": (time.perf_counter() - started) / 20}
        print(name, rows[name], flush=True)
    shipped, int8 = rows["ppocr-v6-det"], rows["ppocr-v6-det-int8"]
    chosen = "ppocr-v6-det-int8" if int8["f"] >= shipped["f"] and int8["f_strong"] >= shipped["f_strong"] \
        else "ppocr-v6-det"
    tuned.write({"detector": chosen})
    return {"rows": rows, "chosen": chosen,
            "rule": "int8 if F without a list and with the strong lists are both no lower than the float detector's"}


def detection_passes(reader, photos, raws) -> dict:
    """Finding more words, each variant scored by F (without a list and with the strong lists), detection
    precision/recall and detection seconds: the detector's box and probability thresholds, unclip ratio and scale,
    and a second pass with the short side at 1152 px (small text), its boxes
    added where they overlap no first-pass box by half of the smaller one's area. RapidOCR 3.10's settings are kept
    unless a one-pass variant raises F on photos 1-100; then its changes are written to tuned.json's
    "detector_settings" (a second pass is reported only: it would be a new step, not a setting)."""
    from unseen.core.models.ppocr_det import DetectorSettings
    from unseen.scenetext.adapt import DOMAIN_LIST
    from unseen.scenetext.icdar import _polygon, evaluate_e2e
    from unseen.scenetext.photos import load_photo
    from unseen.scenetext.reading import RawPhoto

    truth, base = [p.words for p in photos], DetectorSettings()  # RapidOCR 3.10's
    strong = lexicons("strong", photos)
    # one setting changed at a time from RapidOCR's (box 0.3-0.45 but 0.4, the probability threshold and the
    # larger single-pass scales added 2026-12-07, fifth session)
    changes = {"RapidOCR 3.10 defaults (short side 736, thresh 0.3, box_thresh 0.5, unclip 1.6)": {},
               **{f"box_thresh {b}": {"box_thresh": b} for b in (0.45, 0.4, 0.35, 0.3)},
               **{f"thresh {t}": {"thresh": t} for t in (0.25, 0.2)},
               "unclip 2.0": {"unclip_ratio": 2.0},
               **{f"short side {side}": {"limit_side_len": side} for side in (832, 960)}}
    variants = {name: [base.with_(**change)] for name, change in changes.items()}
    variants["+ second pass at 1152"] = [base, base.with_(limit_side_len=1152)]
    found = {name: [] for name in variants}
    seconds = dict.fromkeys(variants, 0.0)
    read_with = reader.detector.settings  # what ``raws`` were read with: reused where a variant is the same
    for count, photo in enumerate(photos, 1):
        bgr, scale, (width, height) = load_photo(photo.image_path)
        for name, passes in variants.items():
            started, quads = time.perf_counter(), []
            for settings in passes:
                more, _ = reader.detector(bgr, settings)
                polygons = [_polygon(q) for q in quads]
                quads += [q for q in more if all(
                    p.intersection(_polygon(q)).area < 0.5 * min(p.area, _polygon(q).area) for p in polygons)]
            seconds[name] += time.perf_counter() - started
            lines = raws[count - 1].lines if len(passes) == 1 and settings == read_with else reader.read_lines(
                bgr, quads)
            found[name].append(RawPhoto(str(photo.image_path), width, height, scale, lines))
        if count % 25 == 0:
            print(f"detection variants: {count}/{len(photos)} photos", flush=True)
    rows = []
    for name, candidate in found.items():
        words = [r.words for r in reader.adapt(candidate)]
        e2e, det = evaluate_e2e(words, truth), evaluate_e2e(words, truth, detection_only=True)
        listed = evaluate_e2e([r.words for r in reader.adapt(candidate, lexicon=strong, vocabulary=DOMAIN_LIST)],
                              truth)
        rows.append({"detector": name, "f": e2e.f, "precision": e2e.precision, "recall": e2e.recall,
                     "f_strong": listed.f, "detection_precision": det.precision, "detection_recall": det.recall,
                     "detection_seconds": seconds[name]})
        print(rows[-1], flush=True)
    best = max(rows, key=lambda r: r["f"])
    one_pass = max((r for r in rows if r["detector"] in changes), key=lambda r: r["f"])
    return {"rows": rows, "best_on_photos_1_100": best["detector"], "written": changes[one_pass["detector"]]}


def run(args):
    """All photos read with the library's defaults (tuned.json) beside RapidOCR 3.10.0 and 1.4.4; reported on photos
    101-500 (never used to choose a setting) and 1-500; the evolving pool in stream order."""
    from dataclasses import replace

    from unseen.scenetext.adapt import DOMAIN_LIST, GENERAL_LIST
    from unseen.scenetext.icdar import evaluate_e2e
    from unseen.scenetext.photos import PhotoReader
    from unseen.scenetext.tuned import tuned

    reader, photos = reader_and_photos(limit=args.limit)
    raws = raw_readings(reader, photos)
    engines = {v: name for v, name in ENGINES.items() if v == "3.10" or args.history}
    baselines = {version: baseline_readings(version, photos) for version in engines}
    parts = {"101-500": slice(100, None), "1-500": slice(None)}
    rows = []

    def report(name, by_photo, vocabulary="none", detection=False):
        for part, cut in parts.items():
            truth = [p.words for p in photos[cut]]
            result = evaluate_e2e(by_photo[cut], truth)
            row = {"reader": name, "vocabulary": vocabulary, "photos": part, **result.as_dict()}
            if detection:
                found = evaluate_e2e(by_photo[cut], truth, detection_only=True)
                row |= {"detection_precision": found.precision, "detection_recall": found.recall}
            row.pop("per_photo", None)
            rows.append(row)
            print(row, flush=True)

    for version, name in engines.items():
        lines, words = baselines[version]
        report(f"{name} as shipped (lines)", lines)
        report(f"{name}, word-box option", words, detection=True)
    report("unseen, no adaptation", [r.words for r in reader.adapt(raws, batch_lexicon=False)], detection=True)
    # what detection and word cuts find, before words read unsurely are dropped: the detection figure proper
    unfiltered = PhotoReader(reader.detector, reader.encoder, replace(reader.settings, min_confidence=0.0))
    all_words = [r.words for r in unfiltered.adapt(raws)]
    report("unseen word boxes before the confidence filter", all_words, detection=True)
    kept_words = [r.words for r in reader.adapt(raws)]
    report("unseen (default: batch lexicon)", kept_words, detection=True)
    seen_memo: dict = {}  # 1-500 overlaps the other two: the detector runs once per photo
    lost = {part: where_words_are_lost(raws[cut], kept_words[cut], all_words[cut], photos[cut], reader.detector,
                                       seen_memo=seen_memo)
            for part, cut in {"1-100": TUNE, **parts}.items()}
    # ICDAR 2015's ground truth marks every word under 3 characters don't care, so a short output can only cost
    # precision there; the reader keeps them by default ("24" in "OPEN 24 HOURS"), --min-length 3 drops them
    icdar = PhotoReader(reader.detector, reader.encoder, replace(reader.settings, min_length=3))
    report("unseen, --min-length 3", [r.words for r in icdar.adapt(raws)], detection=True)
    report(f"{ENGINES['3.10']}, word-box option, words under 3 characters dropped",
           [[w for w in found if len(w.text.strip()) >= 3] for found in baselines["3.10"][1]], detection=True)
    lists = {kind: lexicons(kind, photos) for kind in VOCABULARIES[1:]}  # read once: each is used twice or more
    report("unseen, --min-length 3", [r.words for r in icdar.adapt(raws, lexicon=lists["strong"])], "strong")
    for kind in VOCABULARIES[1:]:
        lex = lists[kind]
        setting = GENERAL_LIST if kind == "generic" else DOMAIN_LIST
        report("unseen (default)", [r.words for r in reader.adapt(raws, lexicon=lex, vocabulary=setting)], kind)
        if kind != "generic":  # the strongest list baseline: RapidOCR's word boxes snapped to the nearest list word
            report(f"{ENGINES['3.10']} word boxes snapped to the list", snapped(baselines["3.10"][1], lex, photos),
                   kind)
    out = {"command": "python bench/scenetext/e2e.py run", "machine": machine(),
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "reader": reader.fingerprint,
           "settings": tuned(), "photos": len(photos), "rows": rows,
           "lost_words": lost, "stream": stream_experiment(reader, raws, photos, tuned()["self_labelled_as"])}
    speed_path = RESULTS / "scenetext_e2e_speed.json"
    out["speed"] = json.loads(speed_path.read_text()) if speed_path.exists() else None
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
    "batch"); written into tuned.json and the tuning record."""
    from unseen.scenetext import tuned

    reader, photos = reader_and_photos(limit=100)
    raws = raw_readings(reader, photos)
    trials = {how: stream_experiment(reader, raws, photos, how) for how in ("batch", "vocabulary")}
    gains = {how: t["evolved"]["f"] - t["cold"]["f"] for how, t in trials.items()}
    chosen = max(gains, key=lambda how: (gains[how], how == "batch"))
    record_path = RESULTS / "scenetext_e2e_tuning.json"
    record = json.loads(record_path.read_text())
    record["self_labelled_as"] = {"photos": "1-100 (1-50 evolve the pool, 51-100 measured)", "gain_f": gains,
                                  "chosen": chosen}
    record_path.write_text(json.dumps(record, indent=1) + "\n")
    tuned.write({"self_labelled_as": chosen})
    print(gains, chosen)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["tune", "run", "stream"])
    parser.add_argument("--limit", type=int, default=None, help="run: first N photos only (a smoke test)")
    parser.add_argument("--stage", choices=["detector", "read", "trim", "vocabulary", "detect", "all"], default="all",
                        help="tune: which settings")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--history", action="store_true", help="run: RapidOCR 1.4.4 (PP-OCRv4) beside as well")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    {"tune": tune, "run": run, "stream": stream}[args.command](args)
    sys.exit(0)
