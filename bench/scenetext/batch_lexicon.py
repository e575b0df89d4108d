"""The batch lexicon (src/unseen/scenetext/batch_lexicon.py): its setting chosen on IC15 train, then
measured on every benchmark set beside the default recognizer's greedy reading and the pool's lexicon gate.

    OMP_NUM_THREADS=1 .venv/bin/python bench/scenetext/batch_lexicon.py    # the default reader, PP-OCRv6
    .venv/bin/python bench/scenetext/batch_lexicon.py --encoder ppocr-v4-rec --no-write   # history: PP-OCRv4

1. Selection, on IC15's *train* split only: the 4,468 train crops are read as one batch; for every
   min_confidence, min_length, tau <= min_confidence and delta, the net gain (readings fixed minus broken,
   train labels) is counted; the best wins, the most conservative on ties. "Off" (tau 0: nothing is
   replaced) is in the grid and wins every tie at zero, so where no setting gains on train the batch
   lexicon is switched off rather than shipped to hurt. The choice is WRITTEN into the library's
   settings (src/unseen/scenetext/tuned.json, section "batch_lexicon", through unseen.scenetext.tuned.write):
   the reader a user gets is the one measured here (--no-write: only report).
2. Evaluation with that setting, no evaluated label used before scoring: IIIT5K-3000, IC13-857,
   IC13-1015, IC15-2077, IC15-1922. Rows: greedy reading; the batch lexicon with the whole set as
   one batch; in random batches of 200; the pool's gate (100-crop pools, seeds 0-2, chosen by
   leave-one-out as `unseen str pool build` does); pool and batch lexicon together.
Writes docs/results/scenetext_batch_lexicon.{md,json} (the PP-OCRv4 run: --stem to keep it elsewhere).
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
    BatchLexicon,
    apply,
    best_word,
    lexicon_of,
    read_crops,
    spelling_columns,
)
from unseen.scenetext.encoder import DEFAULT_ENCODER, load_encoder
from unseen.scenetext.evaluate import benchmark_pool_records, load_records
from unseen.scenetext.lexicon_gate import DELTAS, TAUS, GateSetting, LexiconGate
from unseen.scenetext.metrics import correct

REPO = Path(__file__).resolve().parents[2]
MIN_CONFIDENCES = [0.8, 0.9, 0.95, 0.99]
MIN_LENGTHS = [1, 2, 3]  # the shortest reading that joins the lexicon
# name -> (dataset, split, alphanumeric labels only, where its pools come from)
SETS = {"IIIT5K-3000": ("iiit5k", "test", False, "iiit5k"), "IC13-857": ("ic13", "test_857", False, "iiit5k"),
        "IC13-1015": ("ic13", "test_1015", False, "iiit5k"), "IC15-2077": ("ic15", "test", False, "ic15"),
        "IC15-1922": ("ic15", "test", True, "ic15")}


def choose(encoder, records) -> tuple[BatchLexicon, list[dict]]:
    """The setting with the largest net gain on these labelled crops read as one batch."""
    crops = read_crops(encoder, [r["image"] for r in records], keep_below=max(MIN_CONFIDENCES))
    targets = [r["text"] for r in records]
    _, characters = spelling_columns(encoder.characters)
    # the batch lexicon off (tau 0 replaces nothing): with the most conservative key it wins every tie at zero
    grid = [{"min_confidence": max(MIN_CONFIDENCES), "min_length": max(MIN_LENGTHS), "tau": 0.0, "delta": 0.0,
             "fixed": 0, "broken": 0}]
    for min_confidence in MIN_CONFIDENCES:
        for min_length in MIN_LENGTHS:
            words = lexicon_of(crops, min_confidence, min_length)
            # each unsure crop's best batch word does not depend on (tau, delta): score it once
            best = [best_word(c.spelling_log_probs, characters, [w for w in words if w != c.scored.greedy])
                    if c.spelling_log_probs is not None and c.scored.least_sure < min_confidence else None
                    for c in crops]
            for tau in [t for t in TAUS if 0 < t <= min_confidence]:
                for delta in DELTAS:
                    fixed = broken = 0
                    for crop, found, target in zip(crops, best, targets):
                        if found and crop.scored.least_sure < tau and found[0] > crop.scored.greedy_ll + delta:
                            before, after = correct(crop.scored.greedy, target), correct(found[1], target)
                            fixed += after and not before
                            broken += before and not after
                    grid.append({"min_confidence": min_confidence, "min_length": min_length, "tau": tau,
                                 "delta": delta, "fixed": fixed, "broken": broken})
    top = max(grid, key=lambda g: (g["fixed"] - g["broken"], -(g["fixed"] + g["broken"]), g["min_confidence"],
                                   g["min_length"], -g["tau"], g["delta"]))
    setting = GateSetting(top["tau"], top["delta"], top["fixed"], top["broken"], "IC15 train")
    return BatchLexicon(top["min_confidence"], setting, top["min_length"]), grid


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
    parser.add_argument("--encoder", default=DEFAULT_ENCODER, help="the recognizer (default: the default reader's)")
    parser.add_argument("--no-write", action="store_true", help="report the choice; do not write it into tuned.json")
    parser.add_argument("--stem", default="scenetext_batch_lexicon", help="result file names in --out")
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    encoder = load_encoder(args.encoder)

    train = {name: load_records(name, "train", args.data_dir) for name in ("ic15", "iiit5k")}
    chosen, grid = choose(encoder, train["ic15"])
    print("chosen on IC15 train:", chosen.describe(), f"{chosen.setting.fixed} fixed, {chosen.setting.broken} broken",
          flush=True)
    if args.encoder != DEFAULT_ENCODER and not args.no_write:
        raise SystemExit(f"--encoder {args.encoder} is not the default reader's: pass --no-write")
    if not args.no_write:
        from unseen.scenetext import tuned

        tuned.tuned.cache_clear()  # merge into the file as it is now (another tuning may have written it meanwhile)
        where = tuned.write({"batch_lexicon": {"min_confidence": chosen.min_confidence, "tau": chosen.setting.tau,
                                               "delta": chosen.setting.delta, "min_length": chosen.min_length}})
        print(f"wrote the choice into {where}", flush=True)
    shipped = chosen  # the setting every row below reads with

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
    payload = {"encoder": args.encoder, "fingerprint": encoder.fingerprint,
               "chosen": {"min_confidence": chosen.min_confidence, "min_length": chosen.min_length,
                          **chosen.setting.__dict__}, "grid": grid,
               "written_to_tuned_json": not args.no_write, "batch": args.batch, "results": results,
               "machine": machine}
    (out / f"{args.stem}.json").write_text(json.dumps(payload, indent=1) + "\n")
    (out / f"{args.stem}.md").write_text(markdown(payload))


def spread(values) -> str:
    return f"{statistics.mean(values):.2f} ({min(values):.2f}-{max(values):.2f})"


NAMES = {"ppocr-v6-rec": "PP-OCRv6", "ppocr-v4-rec": "PP-OCRv4"}


def markdown(payload: dict) -> str:
    c, b = payload["chosen"], payload["batch"]
    name = NAMES.get(payload.get("encoder", "ppocr-v4-rec"), payload.get("encoder"))
    off = c["tau"] <= 0
    command = "OMP_NUM_THREADS=1 .venv/bin/python bench/scenetext/batch_lexicon.py" + (
        "" if payload.get("written_to_tuned_json", True) else f" --encoder {payload['encoder']} --no-write")
    lines = [f"# Scene text: the batch lexicon on {name}",
             "",
             f"Regenerated by `{command}` (seed 0 for the batches, pool seeds",
             f"0-2, one thread; {payload['machine']['processor']}, torch {payload['machine']['torch']}, commit",
             f"{payload['machine']['commit'][:10]}, "
             f"{payload['machine']['started']} – {payload['machine']['finished']}).",
             "36-character word accuracy, %.",
             ""]
    if off:
        lines += ["Chosen on IC15 *train* (4,468 crops read as one batch, train labels): **off**. No setting of the",
                  "grid fixed more train readings than it broke, so the batch lexicon is switched off (tau 0);",
                  "the rows below read with that choice and equal greedy reading."]
    else:
        lines += ["Chosen on IC15 *train* (4,468 crops read as one batch, train labels): "
                  f"readings sure to {c['min_confidence']}",
                  f"(every character) of {c.get('min_length', 1)} or more characters join the lexicon; "
                  f"a crop whose least sure character is below tau {c['tau']} "
                  f"takes a batch word scoring above its reading {c['delta']:+}",
                  f"(log-likelihood): {c['fixed']} fixed, {c['broken']} broken there. "
                  "No evaluated label is read before scoring."]
    if payload.get("written_to_tuned_json", True):
        lines += ["The choice was written into `src/unseen/scenetext/tuned.json` (section `batch_lexicon`), "
                  "the default reader's setting."]
    grid = payload["grid"]
    top = sorted(grid, key=lambda g: g["fixed"] - g["broken"], reverse=True)[:5]
    lines += ["", "Best net gains of the grid on IC15 train (min_confidence, min_length, tau, delta: fixed / broken): "
              + "; ".join(f"{g['min_confidence']}, {g.get('min_length', 1)}, {g['tau']}, {g['delta']:+}: "
                          f"{g['fixed']} / {g['broken']}"
                          for g in top) + f" ({len(grid)} settings).",
              "",
              f"| set | n | {name} greedy | batch lexicon, whole set | fixed / broken | batches of {b} "
              "| pool gate, 3 pools | pool + batch lexicon, 3 pools |",
              "|---|---|---|---|---|---|---|---|"]
    for set_name, r in payload["results"].items():
        wc = r["batch_whole_counts"]
        lines.append(f"| {set_name} | {r['n']} | {r['greedy']:.2f} | **{r['batch_whole']:.2f}** | "
                     f"{wc['fixed']} / {wc['broken']} | "
                     f"{r[f'batch_{b}']:.2f} | {spread([p['pool'] for p in r['pools']])} | "
                     f"{spread([p['pool_and_batch'] for p in r['pools']])} |")
    lines += ["", "Pools: 100 crops of IC15 train (IC15 sets) or IIIT5K train (IIIT5K, IC13), gates chosen by",
              "leave-one-out on each pool; mean (min-max) over the 3 pools."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
