"""Does stage 2 with the same word in other looks teach the decoder to copy a pool label?

Split-and-Transform contexts hold the query's own image, cut or recoloured, so the decoder
learns to copy when the context *looks* like the query. A pool helps with a word only when
another crop of it, in another look, is enough. On IC15 with every train crop as the pool,
the true word is among the top-2 retrieved labels for 17 % of the test crops, and ICL reads
74 % of those right against 72 % without context (bench/scenetext/domain_ceiling.py); adding
the words read wrong to the pool leaves the error on other images of them unchanged
(docs/results/scenetext.md, section 3).

This experiment renders a word-group store in which one word is drawn in several independent
random styles, and continues stage 2 from the shipped weights with a share of sequences made
of those renders (the last one the query, the others its context) beside the usual
Split-and-Transform sequences and queries after their nearest other-group samples (so copying
stays conditional on the label fitting the image). Then it reads IC15-2077 without context,
with the benchmark's pool (seed 0), with every other IC15-train crop as the pool, and runs the
hard-case protocol, for the shipped and the continued model.

    OMP_NUM_THREADS=1 python bench/scenetext/restyled_context.py       # ~40 min on one thread
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch

from unseen.core.data import load_dataset, resolve_data_dir
from unseen.core.training import TrainConfig, seed_everything, train
from unseen.scenetext.corpus import build_lexicon, random_label
from unseen.scenetext.data import pack
from unseen.scenetext.encoder import FrozenEncoder
from unseen.scenetext.evaluate import BENCHMARKS, benchmark_pool, cached_visuals, hard_case_split, load_records, shuffled_split
from unseen.scenetext.metrics import correct
from unseen.scenetext.pool import Pool
from unseen.scenetext.recognizer import Recognizer, default_weights, load_model_file, save_model_file
from unseen.scenetext.render import WordRenderer, find_fonts
from unseen.scenetext.store import FeatureStore
from unseen.scenetext.train import ContextSequences, loss_fn


def build_restyled_store(root: Path, encoder: FrozenEncoder, groups: int, looks: int, seed: int = 0) -> FeatureStore:
    """``groups`` labels, each rendered in ``looks`` independent random styles (resumable)."""
    store = FeatureStore.create(root, encoder.fingerprint, restyled_groups=groups, looks=looks, seed=seed)
    base = resolve_data_dir(None)
    lexicon = build_lexicon(base)
    renderer = WordRenderer(find_fonts(), sorted((base / "images" / "pacs" / "photo").rglob("*.jpg")))
    for start in range(store.next_group(), groups, 64):
        samples, owners = [], []
        for g in range(start, min(start + 64, groups)):
            rng = random.Random(seed * 1_000_003 + g)
            text = random_label(rng, lexicon)
            for _ in range(looks):
                samples.append(renderer.render(text, rng, renderer.random_style(rng)).image)
                owners.append((g, text))
        store.append(encoder.encode(samples), [t for _, t in owners], [g for g, _ in owners], ["restyle"] * len(owners))
        print(f"restyled store: {min(start + 64, groups)}/{groups} groups", flush=True)
    return store


class MixedSequences(torch.utils.data.Dataset):
    """With probability ``p_restyled`` a restyled word (context renders, then the query render,
    plus 0-1 unrelated samples first), otherwise the main store's stage-2 sequence."""

    def __init__(self, main: ContextSequences, restyled: FeatureStore, p_restyled: float, seed: int = 0):
        self.main, self.restyled, self.p_restyled, self.seed = main, restyled, p_restyled, seed
        self.group_ids = sorted(restyled.groups)

    def __len__(self):
        return len(self.main)

    def __getitem__(self, i):
        rng = random.Random(self.seed * 104_729 + i)
        if rng.random() >= self.p_restyled:
            return self.main[i]
        members = list(self.restyled.groups[rng.choice(self.group_ids)])
        rng.shuffle(members)
        chosen = members[: rng.randint(2, min(4, len(members)))]
        sequence = [(self.restyled.visual(j), self.restyled.text(j)) for j in chosen]
        if rng.random() < 0.5:  # an unrelated sample up front, as retrieval also returns
            j = rng.randrange(len(self.main.store))
            sequence.insert(0, (self.main.store.visual(j), self.main.store.text(j)))
        return sequence


def pct(hits: int, total: int) -> float:
    return round(100 * hits / max(total, 1), 2)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, default=Path("runs/str/store"))
    parser.add_argument("--restyled-store", type=Path, default=Path("runs/str/store-restyled"))
    parser.add_argument("--groups", type=int, default=1200)
    parser.add_argument("--looks", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("runs/str/stage2-restyled"))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--p-restyled", type=float, default=0.35)
    parser.add_argument("--p-neighbours", type=float, default=0.3, help="share of the main store's sequences")
    parser.add_argument("--cache", type=Path, default=Path("runs/str/bench"))
    parser.add_argument("--report", type=Path, default=Path("docs/results/scenetext_restyled_context.json"))
    parser.add_argument("--limit", type=int, help="first N IC15 test images (a smoke run)")
    args = parser.parse_args()
    started = time.time()
    shipped = Recognizer.load()
    if not (args.out / "recognizer.safetensors").exists():
        restyled = build_restyled_store(args.restyled_store, shipped.encoder, args.groups, args.looks)
        main_store = FeatureStore(args.store)
        seed_everything(0)
        model, _ = load_model_file(default_weights())
        model.train()
        dataset = MixedSequences(ContextSequences(main_store, seed=0, p_neighbours=args.p_neighbours), restyled, args.p_restyled)
        config = TrainConfig(out_dir=str(args.out), steps=args.steps, batch_size=32, lr=args.lr, weight_decay=0.01,
                             warmup_steps=min(200, args.steps // 10), schedule="cosine", seed=0, save_every=100, log_every=10,
                             extra={"stage": 2, "init": str(default_weights()),
                                    "restyled": {k: str(v) for k, v in vars(args).items()}})
        train(model, loss_fn, dataset, config, collate=pack, resume=(args.out / "checkpoints").exists(),
              assets=["easyocr-english-g2"], progress_label="stage 2, restyled")
        save_model_file(model, args.out / "recognizer.safetensors", encoder=main_store.meta["encoder"], stage=2)
    tuned = Recognizer.load(args.out / "recognizer.safetensors", shipped.encoder)

    dataset, split, subset = BENCHMARKS["IC15-2077"]
    records = load_records(dataset, split, None, filter=subset)
    visuals = cached_visuals(shipped.encoder, [r["image"] for r in records], args.cache / "IC15-2077.safetensors")
    targets = [r["text"] for r in records]
    visuals, targets = visuals[: args.limit], targets[: args.limit]
    train_split = load_dataset("ic15", "train")
    pool100 = benchmark_pool(shipped.encoder, train_split, 0, 100, args.cache / "pool-ic15-100-seed0.safetensors")
    # domain_ceiling.py's split: the first 500 shuffled crops are its validation, the rest the big pool
    shuffled, every = shuffled_split(shipped.encoder, train_split, 0, args.cache / "ic15-train-shuffled.safetensors")
    big_pool = Pool(shipped.encoder.fingerprint).extended([r["text"] for r in shuffled[500:]], every[500:],
                                                         [r["path"] for r in shuffled[500:]])
    retrieved, _ = big_pool.retrieve(torch.stack([FrozenEncoder.pooled(v.float()) for v in visuals]), 2)
    in_top2 = [k for k, (row, t) in enumerate(zip(retrieved, targets)) if any(correct(big_pool.texts[j], t) for j in row.tolist())]

    # hard cases as in run.py section 3, with the corrections chosen once (the shipped model's errors)
    shipped_ctx = [r.text for r in shipped.read_visuals(visuals, pool=pool100, n=2)]
    corrections, held_out = hard_case_split(shipped_ctx, targets)
    corrected = pool100.extended([targets[k] for k in corrections], [visuals[k] for k in corrections], ["ic15 test"] * len(corrections))

    results = {"config": {k: str(v) for k, v in vars(args).items()}, "in_top2_of_big_pool": len(in_top2),
               "hard_cases": {"corrections": len(corrections), "held_out_images": len(held_out)}, "IC15-2077": {}}
    for name, rec in (("shipped stage 2", shipped), (f"+ {args.steps} steps with restyled words", tuned)):
        plain = [r.text for r in rec.read_visuals(visuals)]
        ctx100 = shipped_ctx if rec is shipped else [r.text for r in rec.read_visuals(visuals, pool=pool100, n=2)]
        big = [r.text for r in rec.read_visuals(visuals, pool=big_pool, n=2)]
        after = [r.text for r in rec.read_visuals(visuals, pool=corrected, n=2)]
        row = {"no context": pct(sum(map(correct, plain, targets)), len(targets)),
               "ICL n=2, pool of 100 (seed 0)": pct(sum(map(correct, ctx100, targets)), len(targets)),
               f"ICL n=2, pool of all {len(big_pool)} other train crops": pct(sum(map(correct, big, targets)), len(targets)),
               "where the true word is in that pool's top 2: no context": pct(sum(correct(plain[k], targets[k]) for k in in_top2), len(in_top2)),
               "where the true word is in that pool's top 2: ICL n=2": pct(sum(correct(big[k], targets[k]) for k in in_top2), len(in_top2)),
               "hard cases, error on other images of corrected words: pool of 100, n=2":
                   pct(sum(not correct(ctx100[k], targets[k]) for k in held_out), len(held_out)),
               "hard cases, error on other images of corrected words: pool + corrections, n=2":
                   pct(sum(not correct(after[k], targets[k]) for k in held_out), len(held_out))}
        results["IC15-2077"][name] = row
        print(name, json.dumps(row, indent=1), flush=True)
    results["seconds"] = round(time.time() - started)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
