"""The scene-text step of `unseen quickstart`: two IC15 photos read end to end, then IC15 crops read by PP-OCRv6
without and with a small pool.

    from unseen.scenetext.quickstart import run, run_photos
    photos = run_photos(console, data_dir, out_dir)   # words and boxes; drawn PNGs in out_dir
    summary = run(console, data_dir)                  # well under a minute on one thread

PP-OCRv6 small (the default reader's recognizer, asset ``ppocr-v6-rec``) reads the first 200 IC15 *test*
crops with greedy CTC. Then a pool of 100 labelled IC15 *train* crops (the benchmark's pool,
seed 0) is used through the lexicon gate (lexicon_gate.py): its setting is chosen on the pool
alone (leave-one-out), and a pool label replaces a reading only where PP-OCRv6 is unsure of it.
Then the batch lexicon (batch_lexicon.py): words read surely in some of the 200 crops are offered
to the unsure ones, no label read. The table lists every crop the pool or the batch fixed or broke
(other changes are only counted).
"""

from __future__ import annotations

import time

PHOTOS = ("img_2", "img_5")  # two ICDAR 2015 end-to-end test photos with signs at several sizes
POOL_SIZE = 100
QUERIES = 200
ENCODER = "ppocr-v6-rec"  # the default reader's (encoder.DEFAULT_ENCODER)


def run_photos(console, data_dir=None, out_dir=None, photos=PHOTOS) -> dict:
    """Read whole photos (detector, recognizer, words, batch lexicon), print their words, draw them into out_dir."""
    from pathlib import Path

    from unseen.core.tables import table as result_table
    from unseen.scenetext.icdar import load_ic15_e2e
    from unseen.scenetext.photos import PhotoReader, draw

    started = time.perf_counter()
    chosen = [p for p in load_ic15_e2e(data_dir) if p.name in photos]
    readings = PhotoReader.load().read([p.image_path for p in chosen])
    rows, drawn = [], []
    for reading in readings:
        rows.append([Path(reading.path).name, " ".join(w.text for w in reading.words) or "(none)"])
        if out_dir is not None:
            drawn.append(str(draw(reading, Path(out_dir) / f"{reading.name}.png")))
    console.print(result_table("Words read in whole ICDAR 2015 photos (PP-OCRv6 detector + recognizer, cut into words)",
                               ["photo", "words read"], rows))
    if drawn:
        console.print(f"drawn with their boxes: {', '.join(drawn)}", soft_wrap=True)
    return {"photos": [r.as_dict() for r in readings], "drawn": drawn, "seconds": time.perf_counter() - started}


def run(console, data_dir=None, *, pool_size: int = POOL_SIZE, queries: int = QUERIES) -> dict:
    from unseen.core.data import load_dataset
    from unseen.core.tables import table as result_table
    from unseen.scenetext.batch_lexicon import DEFAULT_BATCH_LEXICON, read_batch
    from unseen.scenetext.encoder import load_encoder
    from unseen.scenetext.evaluate import benchmark_pool_records, load_records
    from unseen.scenetext.lexicon_gate import LexiconGate
    from unseen.scenetext.metrics import correct, report

    started = time.perf_counter()
    encoder = load_encoder(ENCODER)
    # the train split undecoded: only the drawn crops are decoded
    chosen = benchmark_pool_records(load_dataset("ic15", "train", data_dir=data_dir), seed=0, size=pool_size)
    gate = LexiconGate.fit(encoder, [r["image"] for r in chosen], [r["text"] for r in chosen])
    test = load_records("ic15", "test", data_dir, limit=queries)
    readings = read_batch(encoder, [r["image"] for r in test], gate, DEFAULT_BATCH_LEXICON)
    targets = [r["text"] for r in test]
    setting = gate.setting
    rows = []
    fixed = broken = 0
    changes = []
    for record, r in zip(test, readings):
        if not (r.from_pool or r.from_batch):
            continue
        source = "pool" if r.from_pool else "batch"
        ok_before, ok_after = correct(r.greedy, record["text"]), correct(r.text, record["text"])
        verdict = "fixed" if ok_after and not ok_before else "broken" if ok_before and not ok_after else "changed"
        fixed += verdict == "fixed"
        broken += verdict == "broken"
        name = record["path"].rsplit("/", 1)[-1]
        if verdict != "changed":  # readings that stay wrong either way are counted, not listed
            rows.append([name, record["text"], r.greedy, r.text, source, verdict, f"{r.least_sure:.2f}"])
        changes.append({"image": name, "label": record["text"], "no_context": r.greedy, "adapted": r.text,
                        "from": source, "verdict": verdict})
    console.print(result_table(f"IC15 test crops that a {len(chosen)}-crop IC15 pool or the batch lexicon fixed or "
                               f"broke (PP-OCRv6, {setting.describe()})",
                               ["image", "label", "no context", "adapted", "from", "", "least sure"], rows))
    before = report([r.greedy for r in readings], targets)["36"]
    after = report([r.text for r in readings], targets)["36"]
    summary = {
        "encoder": ENCODER, "pool_size": len(chosen), "queries": len(test),
        "n": "gate",  # E2STR-lite put n pool samples before each query; the gate scores every pool label
        "gate": gate.as_dict(),
        "accuracy_no_context": before["accuracy"], "accuracy_with_pool": after["accuracy"],
        "from_pool": sum(r.from_pool for r in readings), "from_batch": sum(r.from_batch for r in readings),
        "fixed": fixed, "broken": broken, "changes": changes, "seconds": time.perf_counter() - started,
    }
    console.print(f"word accuracy (36-char) on these {len(test)} crops: {100 * before['accuracy']:.1f}% "
                  f"without context, {100 * after['accuracy']:.1f}% with the pool and the batch lexicon; "
                  f"{fixed} fixed, {broken} broken, {len(changes) - fixed - broken} changed but wrong either way "
                  f"({summary['seconds']:.0f} s)")
    return summary
