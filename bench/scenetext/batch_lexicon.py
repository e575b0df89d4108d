"""The batch lexicon (src/unseen/scenetext/batch_lexicon.py): its setting chosen on IC15 train, then
measured on every benchmark set beside plain PP-OCRv4 and the pool's lexicon gate.

    .venv/bin/python bench/scenetext/batch_lexicon.py     # ~15 min, one thread

1. Selection, on IC15's *train* split only: the 4,468 train crops are read as one batch; for every
   min_confidence, tau <= min_confidence and delta, the net gain (readings fixed minus broken,
   train labels) is counted; the best wins, the most conservative on ties. The chosen setting must
   equal the library's DEFAULT_BATCH_LEXICON (the script says so and stops otherwise).
2. Evaluation with that setting, no evaluated label used before scoring: IIIT5K-3000, IC13-857,
   IC13-1015, IC15-2077, IC15-1922. Rows: PP-OCRv4 greedy; the batch lexicon with the whole set as
   one batch; in random batches of 200; the pool's gate (100-crop pools, seeds 0-2, chosen by
   leave-one-out as `unseen str pool build` does); pool and batch lexicon together.
Writes docs/results/scenetext_batch_lexicon.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import re
import statistics
import subprocess
import time
from pathlib import Path

import torch

from unseen.scenetext.batch_lexicon import (
    DEFAULT_BATCH_LEXICON,
    BatchLexicon,
    apply,
    ascii_columns,
    best_word,
    lexicon_of,
    read_crops,
)
from unseen.scenetext.encoder import PPOCREncoder
from unseen.scenetext.evaluate import benchmark_pool_records, load_records
from unseen.scenetext.lexicon_gate import DELTAS, TAUS, GateSetting, LexiconGate
from unseen.scenetext.metrics import correct

REPO = Path(__file__).resolve().parents[2]
MIN_CONFIDENCES = [0.8, 0.9, 0.95, 0.99]
# name -> (dataset, split, alphanumeric labels only, where its pools come from)
SETS = {"IIIT5K-3000": ("iiit5k", "test", False, "iiit5k"), "IC13-857": ("ic13", "test_857", False, "iiit5k"),
        "IC13-1015": ("ic13", "test_1015", False, "iiit5k"), "IC15-2077": ("ic15", "test", False, "ic15"),
        "IC15-1922": ("ic15", "test", True, "ic15")}


def choose(encoder, records) -> tuple[BatchLexicon, list[dict]]:
    """The setting with the largest net gain on these labelled crops read as one batch."""
    crops = read_crops(encoder, [r["image"] for r in records], keep_below=max(MIN_CONFIDENCES))
    targets = [r["text"] for r in records]
    _, characters = ascii_columns(encoder.characters)
    grid = []
    for min_confidence in MIN_CONFIDENCES:
        words = lexicon_of(crops, min_confidence)
        # each unsure crop's best batch word does not depend on (tau, delta): score it once
        best = [best_word(c.ascii_log_probs, characters, [w for w in words if w != c.scored.greedy])
                if c.ascii_log_probs is not None and c.scored.confidence < min_confidence else None for c in crops]
        for tau in [t for t in TAUS if 0 < t <= min_confidence]:
            for delta in DELTAS:
                fixed = broken = 0
                for crop, found, target in zip(crops, best, targets):
                    if found and crop.scored.confidence < tau and found[0] > crop.scored.greedy_ll + delta:
                        before, after = correct(crop.scored.greedy, target), correct(found[1], target)
                        fixed += after and not before
                        broken += before and not after
                grid.append({"min_confidence": min_confidence, "tau": tau, "delta": delta, "fixed": fixed,
                             "broken": broken})
    top = max(grid, key=lambda g: (g["fixed"] - g["broken"], -(g["fixed"] + g["broken"]), g["min_confidence"],
                                   -g["tau"], g["delta"]))
    setting = GateSetting(top["tau"], top["delta"], top["fixed"], top["broken"], "IC15 train")
    return BatchLexicon(top["min_confidence"], setting), grid


def accuracy(readings, targets) -> float:
    return round(100 * sum(correct(r.text, t) for r, t in zip(readings, targets)) / len(targets), 2)


def counts(readings, targets) -> dict:
    fixed = sum(correct(r.text, t) and not correct(r.greedy, t) for r, t in zip(readings, targets))
    broken = sum(correct(r.greedy, t) and not correct(r.text, t) for r, t in zip(readings, targets))
    return {"fixed": fixed, "broken": broken}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(REPO / "docs" / "results"))
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    encoder = PPOCREncoder()

    train = {name: load_records(name, "train", args.data_dir) for name in ("ic15", "iiit5k")}
    chosen, grid = choose(encoder, train["ic15"])
    print("chosen on IC15 train:", chosen.describe(), f"{chosen.setting.fixed} fixed, {chosen.setting.broken} broken",
          flush=True)
    shipped = DEFAULT_BATCH_LEXICON
    if ((chosen.min_confidence, chosen.setting.tau, chosen.setting.delta)
            != (shipped.min_confidence, shipped.setting.tau, shipped.setting.delta)):
        raise SystemExit(f"the selection chose {chosen.describe()}, the library ships {shipped.describe()}: "
                         "update DEFAULT_BATCH_LEXICON")

    pools = {}  # (pool source, seed) -> LexiconGate chosen by leave-one-out, as `unseen str pool build` does
    for source in ("ic15", "iiit5k"):
        for seed in range(args.seeds):
            chosen_records = benchmark_pool_records(train[source], seed)
            pools[source, seed] = LexiconGate.fit(encoder, [r["image"] for r in chosen_records],
                                                  [r["text"] for r in chosen_records])
    results = {}
    cache = {}
    for name, (dataset, split, alnum, source) in SETS.items():
        if (dataset, split) not in cache:
            records = load_records(dataset, split, args.data_dir)
            labels = sorted({label for (s, _), gate in pools.items() if s == source for label in gate.labels})
            # every pool's labels scored in one pass; each gate then picks among its own (as LexiconGate.read)
            cache[dataset, split] = records, read_crops(encoder, [r["image"] for r in records], labels, pool_tau=1.01,
                                                        keep_below=shipped.setting.tau)
        records, crops = cache[dataset, split]
        # the same filter as load_records
        keep = [i for i, r in enumerate(records) if not alnum or re.fullmatch(r"[A-Za-z0-9]+", r["text"])]
        crops, targets = [crops[i] for i in keep], [records[i]["text"] for i in keep]
        greedy = apply(crops, encoder.characters, None, None)
        whole = apply(crops, encoder.characters, None, shipped)
        order = random.Random(0).sample(range(len(crops)), len(crops))
        in_batches: list = [None] * len(crops)
        for start in range(0, len(order), args.batch):
            chunk = order[start : start + args.batch]
            for i, reading in zip(chunk, apply([crops[i] for i in chunk], encoder.characters, None, shipped)):
                in_batches[i] = reading
        row = {"n": len(targets), "greedy": accuracy(greedy, targets),
               "batch_whole": accuracy(whole, targets),
               "batch_whole_counts": counts(whole, targets),
               f"batch_{args.batch}": accuracy(in_batches, targets),
               f"batch_{args.batch}_counts": counts(in_batches, targets),
               "pools": []}
        for seed in range(args.seeds):
            gate = pools[source, seed]
            pool_only = apply(crops, encoder.characters, gate, None)
            both = apply(crops, encoder.characters, gate, shipped)
            row["pools"].append({"seed": seed, "gate": gate.as_dict(), "pool": accuracy(pool_only, targets),
                                 "pool_counts": counts(pool_only, targets), "pool_and_batch": accuracy(both, targets),
                                 "pool_and_batch_counts": counts(both, targets)})
        results[name] = row
        print(name, {k: v for k, v in row.items() if k != "pools"},
              [(p["pool"], p["pool_and_batch"]) for p in row["pools"]], flush=True)

    machine = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
               "torch": torch.__version__, "threads": 1, "started": started,
               "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
               "commit": subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                        cwd=REPO).stdout.strip()}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    payload = {"chosen": {"min_confidence": chosen.min_confidence, **chosen.setting.__dict__}, "grid": grid,
               "batch": args.batch, "results": results, "machine": machine}
    (out / "scenetext_batch_lexicon.json").write_text(json.dumps(payload, indent=1) + "\n")
    (out / "scenetext_batch_lexicon.md").write_text(markdown(payload))


def spread(values) -> str:
    return f"{statistics.mean(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def markdown(payload: dict) -> str:
    c, b = payload["chosen"], payload["batch"]
    lines = ["# Scene text: the batch lexicon on PP-OCRv4",
             "",
             "Regenerated by `.venv/bin/python bench/scenetext/batch_lexicon.py` (seed 0 for the batches, pool seeds",
             f"0-2, one thread; {payload['machine']['processor']}, torch {payload['machine']['torch']}, commit",
             f"{payload['machine']['commit'][:10]}, "
             f"{payload['machine']['started']} – {payload['machine']['finished']}).",
             "36-character word accuracy, %.",
             "",
             "Chosen on IC15 *train* (4,468 crops read as one batch, train labels): "
             f"readings sure to {c['min_confidence']}",
             f"join the lexicon; a crop below tau {c['tau']} takes a batch word scoring above its reading "
             f"{c['delta']:+}",
             f"(log-likelihood): {c['fixed']} fixed, {c['broken']} broken there. "
             "No evaluated label is read before scoring.",
             "",
             f"| set | n | PP-OCRv4 greedy | batch lexicon, whole set | fixed / broken | batches of {b} "
             "| pool gate, 3 pools | pool + batch lexicon, 3 pools |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in payload["results"].items():
        wc = r["batch_whole_counts"]
        lines.append(f"| {name} | {r['n']} | {r['greedy']:.2f} | **{r['batch_whole']:.2f}** | "
                     f"{wc['fixed']} / {wc['broken']} | "
                     f"{r[f'batch_{b}']:.2f} | {spread([p['pool'] for p in r['pools']])} | "
                     f"{spread([p['pool_and_batch'] for p in r['pools']])} |")
    lines += ["", "Pools: 100 crops of IC15 train (IC15 sets) or IIIT5K train (IIIT5K, IC13), gates chosen by",
              "leave-one-out on each pool; mean (min-max) over the 3 pools."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
