"""E2STR-lite benchmark: regenerates docs/results/scenetext.md and scenetext.json.

    flock /tmp/unseen-heavy.lock .venv/bin/python bench/scenetext/run.py            # ~15-25 min on 2 cores

1. Standard benchmarks: EasyOCR CRNN (as users run it) vs ours without and with a context pool.
2. Cross-domain ICL on IC15: pools of 100 IC15-train crops (3 seeds); N = 0/1/2/4, random
   context, the stage-1 model with context, and fine-tuning on the same 100 samples.
3. Hard-case correction: add words the model got wrong to the pool; error on other images of them.
4. Cost: latency per word (batch 1, one thread) with and without context; retrieval at 10k.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import statistics
import time
from pathlib import Path

import torch

from unseen.scenetext.e2str.recognizer import Recognizer
from unseen.scenetext.e2str.train import finetune
from unseen.scenetext.evaluate import (
    BENCHMARKS,
    benchmark_pool,
    cached_visuals,
    easyocr_baseline,
    hard_case_split,
    load_records,
)
from unseen.scenetext.metrics import correct, normalize, report
from unseen.scenetext.pool import Pool

REPO = Path(__file__).resolve().parents[2]


def pct(x: float) -> float:
    return round(100 * x, 2)


def run_set(recognizer, visuals, targets, **kwargs) -> tuple[dict, list[str]]:
    readings = recognizer.read_visuals(visuals, **kwargs)
    predictions = [r.text for r in readings]
    return report(predictions, targets), predictions


def summary_row(name, metrics):
    return {"model": name, "acc": pct(metrics["36"]["accuracy"]), "ned": pct(metrics["36"]["one_minus_ned"]),
            "acc_cased": pct(metrics["cased"]["accuracy"]), "acc_full": pct(metrics["full"]["accuracy"])}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=None, help="stage-2 recognizer (default: the shipped one)")
    parser.add_argument("--stage1", default="runs/str/stage1/recognizer.safetensors")
    parser.add_argument("--cache", default="runs/str/bench")
    parser.add_argument("--store", default="runs/str/store",
                        help="feature store whose samples make the 10k retrieval pool")
    parser.add_argument("--out", default=str(REPO / "docs" / "results"))
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--pool-size", type=int, default=100)
    parser.add_argument("--finetune-steps", type=int, default=150)
    parser.add_argument("--quick", action="store_true", help="first 300 images of each set, 1 seed (a smoke run)")
    parser.add_argument("--limit", type=int, default=None, help="first N images of each set (implies --quick)")
    parser.add_argument("--parts", default="1,2,3,4",
                        help="sections to run; the others are kept from the existing results JSON (3 needs 1)")
    args = parser.parse_args()
    cache = Path(args.cache)
    started = time.time()
    torch.manual_seed(0)
    rec = Recognizer.load(args.weights)
    rec1 = Recognizer.load(args.stage1, rec.encoder) if Path(args.stage1).exists() else None
    args.quick = args.quick or args.limit is not None
    limit = args.limit or (300 if args.quick else None)
    seeds = 1 if args.quick else args.seeds
    parts = {int(p) for p in args.parts.split(",")}
    if 3 in parts and 1 not in parts:
        parser.error("--parts: section 3 (hard cases) uses the readings of section 1")
    results: dict = {"config": vars(args), "torch_threads": torch.get_num_threads()}

    # ---- data and features -------------------------------------------------------------------
    sets = {}
    for name, (dataset, split, filt) in BENCHMARKS.items():
        records = load_records(dataset, split, args.data_dir, filter=filt, limit=limit)
        tag = f"{name}{f'-first{limit}' if limit else ''}"
        visuals = cached_visuals(rec.encoder, [r["image"] for r in records], cache / f"{tag}.safetensors")
        base_file = cache / f"{tag}.easyocr.json"
        if base_file.exists():
            base = json.loads(base_file.read_text())
        else:
            preds, seconds = easyocr_baseline([r["image"] for r in records], rec.encoder.crnn)
            base = {"predictions": preds, "seconds": seconds}
            base_file.write_text(json.dumps(base))
        sets[name] = {"records": records, "visuals": visuals, "targets": [r["text"] for r in records],
                      "easyocr": base["predictions"]}
        print(f"{name}: {len(records)} images", flush=True)
    # pools: 100 random crops (labels inside the charset) of a train split; only those are encoded
    domain_pool = {"IIIT5K-3000": "iiit5k", "IC13-857": "iiit5k", "IC13-1015": "iiit5k",
                   "IC15-1922": "ic15", "IC15-2077": "ic15"}
    pools = {}
    for dataset in ("iiit5k", "ic15"):
        from unseen.core.data import load_dataset

        train = load_dataset(dataset, "train", data_dir=args.data_dir)
        for s in range(seeds):
            pools[(dataset, s)] = benchmark_pool(rec.encoder, train, s, args.pool_size,
                                                 cache / f"pool-{dataset}-{args.pool_size}-seed{s}.safetensors")
    pool_size = args.pool_size

    # ---- 1. standard benchmarks ----------------------------------------------------------------
    table1 = []
    for name, data in sets.items() if 1 in parts else ():
        pool = pools[(domain_pool[name], 0)]
        base = report(data["easyocr"], data["targets"])
        plain, plain_pred = run_set(rec, data["visuals"], data["targets"])
        ctx, ctx_pred = run_set(rec, data["visuals"], data["targets"], pool=pool, n=2)
        data["ours_plain"], data["ours_ctx"] = plain_pred, ctx_pred
        table1.append({"set": name, "n": len(data["targets"]), "pool": f"{domain_pool[name]} train, {pool_size}",
                       "rows": [summary_row("EasyOCR CRNN (english_g2)", base),
                                summary_row("E2STR-lite, no context", plain),
                                summary_row("E2STR-lite, pool n=2", ctx)]})
        print(name, [(r["model"], r["acc"]) for r in table1[-1]["rows"]], flush=True)
    if 1 in parts:
        results["benchmarks"] = table1

    # ---- 2. cross-domain ICL on IC15 -----------------------------------------------------------
    variants = [("no context", rec, {}), ("ICL n=1", rec, {"n": 1}), ("ICL n=2", rec, {"n": 2}),
                ("ICL n=4", rec, {"n": 4}),
                ("random context n=2", rec, {"n": 2, "context": "random"}),
                ("hybrid retrieval (image + reading) n=2", rec, {"n": 2, "context": "hybrid"}),
                # ablation: the attention decoder alone, without the joint CTC rescoring
                ("decoder alone (no CTC rescoring), no context", rec, {"n": 0, "ctc_weight": 0.0}),
                ("decoder alone (no CTC rescoring), ICL n=2", rec, {"n": 2, "ctc_weight": 0.0})]
    if rec1 is not None:
        variants += [("stage-1 model, no context", rec1, {}), ("stage-1 model, ICL n=2", rec1, {"n": 2})]
    # IC15-1922 is the alphanumeric subset of IC15-2077: every variant reads the 2077 once and is
    # scored on both (the same predictions, so the two sets never disagree by accident)
    data = sets["IC15-2077"]
    subsets = {"IC15-2077": list(range(len(data["targets"]))),
               "IC15-1922": [i for i, t in enumerate(data["targets"]) if re.fullmatch(r"[A-Za-z0-9]+", t)]}
    assert limit or len(subsets["IC15-1922"]) == len(sets["IC15-1922"]["targets"])
    icl = {name: {} for name in subsets}

    def record(label, predictions_per_seed):
        for set_name, idx in subsets.items():
            ms = [report([p[i] for i in idx], [data["targets"][i] for i in idx])["36"] for p in predictions_per_seed]
            icl[set_name][label] = {"acc": [pct(m["accuracy"]) for m in ms],
                                    "ned": [pct(m["one_minus_ned"]) for m in ms]}

    for label, model, kw in variants if 2 in parts else ():
        runs = []
        for s in range(seeds if kw.get("n", 0) else 1):  # no pool: the same for every seed
            extra = dict(kw, pool=pools[("ic15", s)], seed=s) if kw.get("n", 0) else dict(kw)
            runs.append(run_set(model, data["visuals"], data["targets"], **extra)[1])
        record(label, runs)
        print(label, icl["IC15-2077"][label]["acc"], flush=True)
        if label == "no context":
            plain = runs[0]
    if 2 in parts:
        # what copying a context label could add at most (an oracle, not a method): the no-context
        # reading, replaced by the true word whenever it is among the labels of the retrieved context
        keys = torch.stack([rec.encoder.pooled(v.float()) for v in data["visuals"]])
        for n in (2, 4, pool_size):
            runs = []
            for s in range(seeds):
                pool = pools[("ic15", s)]
                top, _ = pool.retrieve(keys, n)
                labels = [{normalize(pool.texts[j]) for j in row.tolist()} for row in top]
                runs.append([t if normalize(t) in labels[i] else plain[i] for i, t in enumerate(data["targets"])])
            where = "anywhere in the pool" if n >= pool_size else f"among the top {n} retrieved"
            record(f"oracle ceiling of copying: no context, or the true word when it is {where}", runs)
    # fine-tuning the recognizer on the same 100 samples (one run per pool seed)
    tuned_plain, tuned_ctx = [], []
    for s in range(seeds if 2 in parts else 0):
        pool = pools[("ic15", s)]
        model = finetune(copy.deepcopy(rec.model), [v.float() for v in pool.visuals], pool.texts,
                         steps=args.finetune_steps, lr=1e-4, batch_size=16, seed=s)
        tuned = Recognizer(model, rec.encoder, rec.meta)
        tuned_plain.append(run_set(tuned, data["visuals"], data["targets"])[1])
        tuned_ctx.append(run_set(tuned, data["visuals"], data["targets"], pool=pool, n=2)[1])
    if 2 in parts:
        record(f"fine-tuned on the {pool_size} ({args.finetune_steps} steps), no context", tuned_plain)
        record("fine-tuned + ICL n=2", tuned_ctx)
        record("EasyOCR CRNN", [data["easyocr"]])
        print("fine-tuned",
              icl["IC15-2077"][f"fine-tuned on the {pool_size} ({args.finetune_steps} steps), no context"]["acc"],
              flush=True)
        results["icl_ic15"] = icl
        results["icl_seeds"] = seeds

    if 3 in parts:
        results["hard_cases"] = hard_cases(rec, sets["IC15-2077"], pools[("ic15", 0)], pool_size)
    if 4 in parts:
        results["cost"] = measure_cost(rec, sets["IC15-2077"], pools, args)
    results["seconds"] = round(time.time() - started)
    if parts != {1, 2, 3, 4}:  # keep the sections not run from the last full results
        previous = Path("runs/str/scenetext-quick.json") if args.quick else Path(args.out) / "scenetext.json"
        if previous.exists():
            old = json.loads(previous.read_text())
            results = {**old, **{k: v for k, v in results.items() if k not in ("config", "seconds", "torch_threads")},
                       "parts_rerun": {"parts": sorted(parts), "seeds": seeds, "config": results["config"],
                                       "seconds": results["seconds"]}}
    write(results, Path(args.out), quick=args.quick)


def hard_cases(rec, data: dict, pool0, pool_size: int) -> dict:
    """Section 3: add the words the model got wrong to the pool; error on other images of them."""
    corrections, held_out = hard_case_split(data["ours_ctx"], data["targets"])
    corrected_pool = pool0.extended([data["targets"][i] for i in corrections],
                                    [data["visuals"][i] for i in corrections],
                                    ["ic15 test"] * len(corrections))
    others = sorted(set(range(len(data["targets"]))) - set(held_out) - set(corrections))

    def error(predictions, idx):
        return pct(sum(not correct(predictions[i], data["targets"][i]) for i in idx) / max(len(idx), 1))

    after_all = [r.text for r in rec.read_visuals(data["visuals"], pool=corrected_pool, n=2)]
    # hybrid retrieval also looks for pool labels close to the query's own reading, so a corrected
    # word is found for other images of it even when they do not look alike
    before_hybrid = [r.text for r in rec.read_visuals(data["visuals"], pool=pool0, n=2, context="hybrid")]
    after_hybrid = [r.text for r in rec.read_visuals(data["visuals"], pool=corrected_pool, n=2, context="hybrid")]
    found = {
        "corrections_added": len(corrections), "held_out_images": len(held_out), "other_images": len(others),
        "held_out_error": {"EasyOCR CRNN": error(data["easyocr"], held_out),
                           "no context": error(data["ours_plain"], held_out),
                           f"pool ({pool_size}), n=2": error(data["ours_ctx"], held_out),
                           "pool + corrections, n=2": error(after_all, held_out),
                           f"pool ({pool_size}), hybrid n=2": error(before_hybrid, held_out),
                           "pool + corrections, hybrid n=2": error(after_hybrid, held_out)},
        "other_error": {"no context": error(data["ours_plain"], others),
                        f"pool ({pool_size}), n=2": error(data["ours_ctx"], others),
                        "pool + corrections, n=2": error(after_all, others),
                        f"pool ({pool_size}), hybrid n=2": error(before_hybrid, others),
                        "pool + corrections, hybrid n=2": error(after_hybrid, others)},
    }
    print("hard cases", found, flush=True)
    return found


def measure_cost(rec, data: dict, pools: dict, args) -> dict:
    """Section 4: latency per word (batch 1, one thread) with and without context; retrieval at 10k."""
    pool0 = pools[("ic15", 0)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    probe = data["records"][: 200 if not args.quick else min(50, len(data["records"]))]
    images = [r["image"] for r in probe]
    crnn = rec.encoder.crnn
    _, t_easy = easyocr_baseline(images[:20], crnn)  # warm-up
    _, t_easy = easyocr_baseline(images, crnn)

    def per_word(fn):
        fn(images[0])
        t0 = time.perf_counter()
        for image in images:
            fn(image)
        return 1000 * (time.perf_counter() - t0) / len(images)

    cost = {
        "EasyOCR CRNN (ms/word)": round(1000 * t_easy / len(images), 2),
        "ours, no context (ms/word)": round(per_word(lambda im: rec.read([im])), 2),
        "ours, ICL n=2 (ms/word)": round(per_word(lambda im: rec.read([im], pool=pool0, n=2)), 2),
        "ours, ICL n=4 (ms/word)": round(per_word(lambda im: rec.read([im], pool=pool0, n=4)), 2),
    }
    visuals = [rec.encode([im])[0] for im in images]
    t0 = time.perf_counter()
    for v in visuals:
        rec.read_visuals([v])
    cost["decoder only, no context (ms/word)"] = round(1000 * (time.perf_counter() - t0) / len(visuals), 2)
    t0 = time.perf_counter()
    for v in visuals:
        rec.read_visuals([v], pool=pool0, n=2)
    cost["decoder only, ICL n=2 (ms/word)"] = round(1000 * (time.perf_counter() - t0) / len(visuals), 2)
    cost["ICL n=2 / no context (end to end)"] = round(cost["ours, ICL n=2 (ms/word)"]
                                                      / cost["ours, no context (ms/word)"], 3)
    # retrieval at a 10k pool: cached training samples (feature store), or the pools repeated
    from unseen.scenetext.e2str.store import FeatureStore

    size = 10_000 if not args.quick else 1000
    store_dir = Path(args.store)
    if (store_dir / "index.jsonl").exists() and len(FeatureStore(store_dir)) >= size:
        store = FeatureStore(store_dir)
        big = Pool(rec.encoder.fingerprint, [store.text(i) for i in range(size)], ["" for _ in range(size)],
                   ["" for _ in range(size)], [store.visual(i) for i in range(size)])
    else:
        src = [(t, v) for p in pools.values() for t, v in zip(p.texts, p.visuals)]
        reps = [src[i % len(src)] for i in range(size)]
        big = Pool(rec.encoder.fingerprint, [t for t, _ in reps], ["" for _ in reps], ["" for _ in reps],
                   [v for _, v in reps])
    t0 = time.perf_counter()
    big.keys  # noqa: B018 - computed once per pool load
    cost[f"{size // 1000}k pool: key matrix build, once (ms)"] = round(1000 * (time.perf_counter() - t0), 1)
    query_keys = torch.stack([rec.encoder.pooled(v) for v in visuals])
    t0 = time.perf_counter()
    for k in query_keys:
        big.retrieve(k[None], 2)
    cost[f"{size // 1000}k pool: retrieval per query (ms)"] = round(1000 * (time.perf_counter() - t0)
                                                                    / len(query_keys), 3)
    cost[f"ours, ICL n=2 with the {size // 1000}k pool (ms/word)"] = round(
        per_word(lambda im: rec.read([im], pool=big, n=2)), 2)
    torch.set_num_threads(threads)
    print("cost", cost, flush=True)
    return cost


def _ms(values):
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def write(results: dict, out: Path, quick: bool = False):
    out.mkdir(parents=True, exist_ok=True)
    stem = "scenetext-quick" if quick else "scenetext"
    if quick:
        out = Path("runs/str")
    (out / f"{stem}.json").write_text(json.dumps(results, indent=1) + "\n")
    lines = ["# Scene text recognition: E2STR-lite results", "",
             f"Regenerated by `bench/scenetext/run.py` ({results['seconds']} s; "
             f"{'QUICK smoke run: 300 images per set' if quick else 'full sets'}). "
             "Word accuracy (%) and 1 - normalized edit distance (%) on the 36-character protocol "
             "(case-insensitive, alphanumeric); `cased` keeps case, `full` also punctuation.", "",
             f"Command: `python bench/scenetext/run.py --seeds {results['config']['seeds']} --finetune-steps "
             f"{results['config']['finetune_steps']}` (pool seeds 0..{results['config']['seeds'] - 1}); machine: "
             f"{os.cpu_count()} CPU cores, torch {torch.__version__}, {results['torch_threads']} thread(s).", ""]
    rerun = results.get("parts_rerun")
    if rerun:
        lines += [f"Rerun afterwards: section(s) {', '.join(map(str, rerun['parts']))}, with `--parts "
                  f"{','.join(map(str, rerun['parts']))} --seeds {rerun['seeds']}` ({rerun['seconds']} s); "
                  "the other sections are from the command above.", ""]
    lines += ["## 1. Standard benchmarks", "",
             "| set | n | model | acc | 1-NED | acc cased | acc full |", "|---|---|---|---|---|---|---|"]
    for block in results["benchmarks"]:
        for row in block["rows"]:
            lines.append(f"| {block['set']} | {block['n']} | {row['model']} | {row['acc']:.2f} | {row['ned']:.2f} | "
                         f"{row['acc_cased']:.2f} | {row['acc_full']:.2f} |")
    lines += ["", "Context pools: 100 random crops of IIIT5K train (for IIIT5K and IC13, which has no train split "
              "here) or of IC15 train (for IC15), seed 0.", "",
              "## 2. Cross-domain in-context learning on IC15", "",
              "Pools of 100 random IC15-train crops; mean ± sd over "
              f"{results.get('icl_seeds', results['config']['seeds'])} pool seeds (one value: one seed). "
              "The oracle rows are not methods: they bound what copying a context "
              "label could add to the no-context reading.", "",
              "| set | variant | acc | 1-NED |", "|---|---|---|---|"]
    for set_name, rows in results["icl_ic15"].items():
        for label, v in rows.items():
            lines.append(f"| {set_name} | {label} | {_ms(v['acc'])} | {_ms(v['ned'])} |")
    h = results["hard_cases"]
    lines += ["", "## 3. Hard-case correction (IC15-2077)", "",
              "For each word that occurs at least twice in IC15 test, the first image the model (pool n=2) reads "
              f"wrong is added to the pool with its label ({h['corrections_added']} images); the error rate is "
              f"measured on the other {h['held_out_images']} images of those words, "
              f"and on the {h['other_images']} remaining images.", "",
              "| images | " + " | ".join(h["held_out_error"]) + " |", "|---|" + "---|" * len(h["held_out_error"]),
              "| other images of the corrected words (error %) | "
              + " | ".join(f"{v:.2f}" for v in h["held_out_error"].values()) + " |",
              "", "| images | " + " | ".join(h["other_error"]) + " |", "|---|" + "---|" * len(h["other_error"]),
              "| all other images (error %) | " + " | ".join(f"{v:.2f}" for v in h["other_error"].values()) + " |",
              "", "## 4. Cost (one word at a time, one thread)", "", "| measure | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in results["cost"].items()]
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / stem}.md and .json")


if __name__ == "__main__":
    main()
