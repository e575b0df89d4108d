"""A label-free "pool that only helps" probe on PP-OCRv4's CTC (no decoder, no training).

    flock /tmp/unseen-heavy.lock .venv/bin/python bench/scenetext/ppocr_pool_probe.py
    # ~25 min, one thread, 2 busy cores

For each crop, PP-OCRv4 (our port) gives its greedy reading g and its CTC log-probabilities.
Every label of the 100-crop context pool is a candidate c, scored by its CTC log-likelihood
log p(c | image) (all alignments, PyTorch's ctc_loss). The greedy reading is replaced by the best
candidate c* only where it is uncertain and c* explains the image better:

    confidence(g) < tau   and   log p(c* | x) > log p(g | x) + delta

(delta < 0 gives pool labels a bonus, as a lexicon prior does.)

confidence(g) is the smallest per-character probability of the greedy path (RapidOCR's score is
their mean). tau and delta are chosen on the pool itself, never on the evaluated labels: each
pool crop is read with the other 99 labels as candidates (leave-one-out), and the setting with
the largest net gain (fixed minus broken) is kept, the most conservative one on ties (so the
gate stays off unless the pool shows it pays). Pools: 100 IC15-train crops drawn as the
benchmark draws them (seeds 0, 1, 2); evaluated on IC15-2077 and its alphanumeric part IC15-1922.
Writes docs/results/scenetext_ppocr_pool_probe.json and .md. The gate itself is the library's
(src/unseen/scenetext/lexicon_gate.py); this script adds the second selection and the bounds.

    .venv/bin/python bench/scenetext/ppocr_pool_probe.py --seeds 1 --domains ic15 --out /tmp/probe --stem seed0
    # pool seed 0 alone, IC15 only (reproduces the seed-0 IC15 rows of the full run)
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import statistics
from pathlib import Path

import torch

from unseen.scenetext.charset import in_charset
from unseen.scenetext.encoder import PPOCREncoder
from unseen.scenetext.evaluate import benchmark_pool_records, load_records
from unseen.scenetext.lexicon_gate import (
    DELTAS,
    TAUS,
    GateSetting,
    choose_setting,
    fixed_and_broken,
    gated_text,
    leave_one_out_setting,
    score_images,
)
from unseen.scenetext.metrics import correct, normalize

REPO = Path(__file__).resolve().parents[2]


def as_row(setting: GateSetting) -> dict:
    return {"tau": setting.tau, "delta": setting.delta, "fixed": setting.fixed, "broken": setting.broken}


SELECTIONS = ["leave-one-out", "500 train crops"]

# domain -> (where its pools come from, the sets they are evaluated on), as bench/scenetext/run.py pairs them
DOMAINS = {"ic15": ("ic15", [("IC15-2077", "ic15", "test", None), ("IC15-1922", "ic15", "test", "alnum")]),
           "iiit5k": ("iiit5k", [("IIIT5K-3000", "iiit5k", "test", None), ("IC13-857", "ic13", "test_857", None),
                                 ("IC13-1015", "ic13", "test_1015", None)])}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(REPO / "docs" / "results"))
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--domains", default="ic15,iiit5k")
    parser.add_argument("--limit", type=int, default=None, help="first N test crops (a smoke run)")
    parser.add_argument("--stem", default=None, help="output file name (default scenetext_ppocr_pool_probe[_quick])")
    args = parser.parse_args()
    torch.set_num_threads(1)

    encoder = PPOCREncoder()
    results = []
    for domain in args.domains.split(","):
        pool_source, sets = DOMAINS[domain]
        train = load_records(pool_source, "train", args.data_dir)
        pools = [benchmark_pool_records(train, seed) for seed in range(args.seeds)]
        all_labels = [r["text"] for pool in pools for r in pool]
        # a second selection split: 500 train crops in none of the 3 benchmark pools (the issue allows the
        # target domain's train split); always 3, so that --seeds 1 reproduces seed 0 of the full run
        in_pools = {id(r) for seed in range(max(3, args.seeds)) for r in benchmark_pool_records(train, seed)}
        others = [r for r in train if id(r) not in in_pools and in_charset(r["text"])]
        held = random.Random(100).sample(others, min(500, len(others)))
        held_rows = score_images(encoder, [r["image"] for r in held], all_labels)
        gates = []
        for seed, pool in enumerate(pools):
            labels = [r["text"] for r in pool]
            pool_rows = score_images(encoder, [r["image"] for r in pool], labels)
            # what `unseen str pool build --encoder ppocr-v4-rec` chooses
            loo = leave_one_out_setting(pool_rows, labels)
            train_split = choose_setting(held_rows, [r["text"] for r in held], [set(labels)] * len(held),
                                         "500 train crops")
            gates.append((labels, {"leave-one-out": loo, "500 train crops": train_split}))
            print(domain, seed, loo[0], train_split[0], flush=True)
        for set_name, dataset, split, keep in sets:
            test = load_records(dataset, split, args.data_dir, filter=keep, limit=args.limit)
            targets = [r["text"] for r in test]
            rows = score_images(encoder, [r["image"] for r in test], all_labels)
            greedy = [row.greedy for row in rows]

            def accuracy(predictions):
                return round(100 * sum(map(correct, predictions, targets)) / max(len(targets), 1), 2)

            for (seed, (labels, selections)), selection in itertools.product(enumerate(gates), SELECTIONS):
                setting, grid = selections[selection]
                candidates = set(labels)
                with_pool = [gated_text(row, candidates, setting) for row in rows]
                fixed, broken = fixed_and_broken(rows, [candidates] * len(rows), targets, setting)
                # not results: every pool label allowed in without the uncertainty test; the best gate
                # chosen on the test labels themselves; the true word copied wherever it is in the pool
                bound = max((accuracy([gated_text(row, candidates, GateSetting(t, d)) for row in rows]), t, d)
                            for t in TAUS for d in DELTAS)
                in_pool = {normalize(t) for t in labels}
                results.append({"domain": domain, "seed": seed, "set": set_name, "n": len(targets),
                                "selection": selection, "gate": as_row(setting), "selection_grid": grid,
                                "greedy": accuracy(greedy), "with_pool": accuracy(with_pool),
                                "fixed": fixed, "broken": broken,
                                "always_replace": accuracy([gated_text(row, candidates, GateSetting(1.01, 0.0))
                                                            for row in rows]),
                                "best_gate_on_test_labels": {"accuracy": bound[0], "tau": bound[1], "delta": bound[2]},
                                "oracle_word_in_pool": accuracy([t if normalize(t) in in_pool else g
                                                                 for g, t in zip(greedy, targets)])})
                r = results[-1]
                print(set_name, seed, selection, r["greedy"], "->", r["with_pool"], f"+{fixed}/-{broken}", flush=True)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = args.stem or "scenetext_ppocr_pool_probe" + ("_quick" if args.limit else "")
    (out / f"{stem}.json").write_text(json.dumps({"limit": args.limit, "taus": TAUS, "deltas": DELTAS,
                                                  "results": results}, indent=1) + "\n")
    lines = ["# Scene text: a label-free pool gate on PP-OCRv4's CTC",
             "",
             "Regenerated by `bench/scenetext/ppocr_pool_probe.py` (see its docstring). Pools: 100 crops of IC15",
             "train (for IC15) or IIIT5K train (for IIIT5K and IC13), seeds 0-2. The gate (tau, delta) is chosen",
             "without the evaluated labels, either by leave-one-out on each pool or on 500 other crops of the",
             "pool's train split (net gain, most conservative on ties). 36-character word accuracy, %.",
             "",
             "The last three columns are bounds, not results: every pool label allowed in (no uncertainty",
             "test, delta 0), the best (tau, delta) chosen on the test labels themselves, and copying the",
             "true word wherever it is in the pool.",
             "",
             "| set | seed | gate chosen on | tau | delta | there: fixed / broken | greedy | with pool "
             "| fixed / broken | all labels, delta 0 | best gate on test labels | oracle (word in pool) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        g, b = r["gate"], r["best_gate_on_test_labels"]
        lines.append(f"| {r['set']} | {r['seed']} | {r['selection']} | {g['tau']} | {g['delta']} | "
                     f"{g['fixed']} / {g['broken']} | {r['greedy']:.2f} | "
                     f"**{r['with_pool']:.2f}** | {r['fixed']} / {r['broken']} | {r['always_replace']:.2f} | "
                     f"{b['accuracy']:.2f} (tau {b['tau']}, delta {b['delta']}) | {r['oracle_word_in_pool']:.2f} |")
    lines += ["", "| set | greedy | "
              + " | ".join(f"with pool, gate by {s}: mean of seeds (min, max)" for s in SELECTIONS) + " |",
              "|---|---|" + "---|" * len(SELECTIONS)]
    for set_name in dict.fromkeys(r["set"] for r in results):
        cells = []
        for selection in SELECTIONS:
            values = [r["with_pool"] for r in results if r["set"] == set_name and r["selection"] == selection]
            cells.append(f"{statistics.mean(values):.2f} ({min(values):.2f}, {max(values):.2f})")
        greedy = next(r["greedy"] for r in results if r["set"] == set_name)
        lines.append(f"| {set_name} | {greedy:.2f} | " + " | ".join(cells) + " |")
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
