"""The scene-text step of `unseen quickstart`: IC15 crops read without and with a small pool.

    from unseen.scenetext.quickstart import run
    summary = run(console, data_dir)   # ~20 s on 2 cores

A pool of 50 labelled IC15 *train* crops is built (their visual features cached), then the
first 200 IC15 *test* crops are read with no context and with the 2 most similar pool samples
before each. The table lists every crop the pool fixed or broke (other changes are only counted).
"""

from __future__ import annotations

import random
import time

POOL_SIZE = 50
QUERIES = 200
N = 2


def run(console, data_dir=None, *, pool_size: int = POOL_SIZE, queries: int = QUERIES, n: int = N, weights=None) -> dict:
    from rich.table import Table

    from unseen.core.data import load_dataset
    from unseen.scenetext.evaluate import load_records
    from unseen.scenetext.metrics import correct, report
    from unseen.scenetext.pool import Pool, PoolSample
    from unseen.scenetext.recognizer import Recognizer

    started = time.perf_counter()
    recognizer = Recognizer.load(weights)
    train = load_dataset("ic15", "train", data_dir=data_dir)
    chosen = [train[i] for i in random.Random(0).sample(range(len(train)), pool_size)]
    pool = Pool.new(recognizer.encoder)
    pool.add([PoolSample(r["image"], r["text"], r["path"]) for r in chosen if _ascii(r["text"])], recognizer.encoder)
    test = load_records("ic15", "test", data_dir, limit=queries)
    visuals = recognizer.encode([r["image"] for r in test])
    plain = recognizer.read_visuals(visuals)
    with_pool = recognizer.read_visuals(visuals, pool=pool, n=n)
    targets = [r["text"] for r in test]
    table = Table(title=f"IC15 test crops that a {len(pool)}-sample IC15 pool (n={n}) fixed or broke", title_justify="left")
    for column in ("image", "label", "no context", "with pool", "", "context used"):
        table.add_column(column)
    fixed = broken = 0
    changes = []
    for record, a, b in zip(test, plain, with_pool):
        if a.text == b.text:
            continue
        ok_a, ok_b = correct(a.text, record["text"]), correct(b.text, record["text"])
        verdict = "fixed" if ok_b and not ok_a else "broken" if ok_a and not ok_b else "changed"
        fixed += verdict == "fixed"
        broken += verdict == "broken"
        name = record["path"].rsplit("/", 1)[-1]
        context = ", ".join(f"{t!r} {s:.2f}" for _, t, s in b.context)
        if verdict != "changed":  # readings that stay wrong either way are counted, not listed
            table.add_row(name, record["text"], a.text, b.text, verdict, context)
        changes.append({"image": name, "label": record["text"], "no_context": a.text, "with_pool": b.text, "verdict": verdict})
    console.print(table)
    before, after = report([r.text for r in plain], targets)["36"], report([r.text for r in with_pool], targets)["36"]
    summary = {
        "pool_size": len(pool), "queries": len(test), "n": n,
        "accuracy_no_context": before["accuracy"], "accuracy_with_pool": after["accuracy"],
        "fixed": fixed, "broken": broken, "changes": changes, "seconds": time.perf_counter() - started,
    }
    console.print(f"word accuracy (36-char) on these {len(test)} crops: {100 * before['accuracy']:.1f}% without context, "
                  f"{100 * after['accuracy']:.1f}% with the pool; {fixed} fixed, {broken} broken, "
                  f"{len(changes) - fixed - broken} changed but wrong either way "
                  f"({summary['seconds']:.0f} s)")
    return summary


def _ascii(text: str) -> bool:
    from unseen.scenetext.charset import in_charset

    return in_charset(text)
