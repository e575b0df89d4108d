"""The scene-text step of `unseen quickstart`: IC15 crops read by PP-OCRv4 without and with a small pool.

    from unseen.scenetext.quickstart import run
    summary = run(console, data_dir)   # well under a minute on one thread

PP-OCRv4 (our port of the recognizer, asset ``ppocr-v4-rec``) reads the first 200 IC15 *test*
crops with greedy CTC. Then a pool of 100 labelled IC15 *train* crops (the benchmark's pool,
seed 0) is used through the lexicon gate (lexicon_gate.py): its setting is chosen on the pool
alone (leave-one-out), and a pool label replaces a reading only where PP-OCRv4 is unsure of it.
Then the batch lexicon (batch_lexicon.py): words read surely in some of the 200 crops are offered
to the unsure ones, no label read. The table lists every crop the pool or the batch fixed or broke
(other changes are only counted).
"""

from __future__ import annotations

import time

POOL_SIZE = 100
QUERIES = 200
ENCODER = "ppocr-v4-rec"


def run(console, data_dir=None, *, pool_size: int = POOL_SIZE, queries: int = QUERIES) -> dict:
    from rich.table import Table

    from unseen.core.data import load_dataset
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
    table = Table(title=f"IC15 test crops that a {len(chosen)}-crop IC15 pool or the batch lexicon fixed or broke "
                        f"(PP-OCRv4, {setting.describe()})", title_justify="left")
    for column in ("image", "label", "no context", "adapted", "from", "", "least sure character"):
        table.add_column(column)
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
            table.add_row(name, record["text"], r.greedy, r.text, source, verdict, f"{r.confidence:.2f}")
        changes.append({"image": name, "label": record["text"], "no_context": r.greedy, "adapted": r.text,
                        "from": source, "verdict": verdict})
    console.print(table)
    before, after = report([r.greedy for r in readings], targets)["36"], report([r.text for r in readings], targets)["36"]
    summary = {
        "encoder": ENCODER, "pool_size": len(chosen), "queries": len(test),
        "n": "gate",  # E2STR-lite put n pool samples before each query; the gate scores every pool label
        "gate": gate.as_dict(),
        "accuracy_no_context": before["accuracy"], "accuracy_with_pool": after["accuracy"],
        "from_pool": sum(r.from_pool for r in readings), "from_batch": sum(r.from_batch for r in readings),
        "fixed": fixed, "broken": broken, "changes": changes, "seconds": time.perf_counter() - started,
    }
    console.print(f"word accuracy (36-char) on these {len(test)} crops: {100 * before['accuracy']:.1f}% without context, "
                  f"{100 * after['accuracy']:.1f}% with the pool and the batch lexicon; {fixed} fixed, {broken} broken, "
                  f"{len(changes) - fixed - broken} changed but wrong either way "
                  f"({summary['seconds']:.0f} s)")
    return summary
