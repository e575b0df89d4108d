"""How much can IC15 labels move a decoder that reads frozen CRNN features? A ceiling for ICL.

In-context reading conditions only the decoder: the visual tokens come from the frozen
EasyOCR CRNN whatever the context. So supervised fine-tuning of that decoder on *all* IC15
training crops (about 40 times the 100-crop pool) bounds what any decoder-side use of
IC15 labels can give. If even that stays under +3 points on IC15-2077, the ICL target
needs a visual side that adapts (E2STR trains its ViT), not a better decoder.

Rows: the shipped recognizer; its decoder fine-tuned on the 100-crop pool (seed 0) and on
every other IC15-train crop, the step count chosen on 500 held-out IC15-train crops; and
ICL (n = 2, no training) with every other IC15-train crop as the context pool.

    OMP_NUM_THREADS=1 python bench/scenetext/domain_ceiling.py      # ~25 min on one thread
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import time
from pathlib import Path

import torch

from unseen.core.data import load_dataset
from unseen.scenetext.evaluate import BENCHMARKS, benchmark_pool, cached_visuals, load_records, shuffled_split
from unseen.scenetext.metrics import report
from unseen.scenetext.pool import Pool
from unseen.scenetext.recognizer import Recognizer
from unseen.scenetext.train import finetune


def accuracy(recognizer, visuals, targets, **kwargs) -> float:
    readings = recognizer.read_visuals(visuals, **kwargs)
    return round(100 * report([r.text for r in readings], targets)["36"]["accuracy"], 2)


def tune_and_select(rec: Recognizer, train_visuals, train_texts, val_visuals, val_texts, args, label: str) -> dict:
    """Fine-tune the decoder, read the validation crops every ``args.every`` steps, keep the best."""
    curve, best = {}, {"accuracy": accuracy(rec, val_visuals, val_texts), "step": 0, "state": copy.deepcopy(rec.model.state_dict())}
    curve[0] = best["accuracy"]

    def checkpoint(step, model):
        value = accuracy(Recognizer(model, rec.encoder, rec.meta), val_visuals, val_texts)
        curve[step] = value
        print(f"{label}: step {step}, validation {value:.2f}", flush=True)
        if value > best["accuracy"]:
            best.update(accuracy=value, step=step, state=copy.deepcopy(model.state_dict()))

    model = copy.deepcopy(rec.model)
    finetune(model, [v.float() for v in train_visuals], train_texts, steps=args.steps, lr=args.lr,
             batch_size=args.batch_size, seed=0, every=args.every, on_checkpoint=checkpoint)
    model.load_state_dict(best["state"])
    return {"validation_curve": curve, "chosen_step": best["step"], "model": Recognizer(model.eval(), rec.encoder, rec.meta)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--validation", type=int, default=500, help="IC15-train crops held out to choose the step count")
    parser.add_argument("--cache", type=Path, default=Path("runs/str/bench"))
    parser.add_argument("--report", type=Path, default=Path("docs/results/scenetext_domain_ceiling.json"))
    args = parser.parse_args()
    started = time.time()
    rec = Recognizer.load()

    dataset, split, subset = BENCHMARKS["IC15-2077"]
    records = load_records(dataset, split, None, filter=subset)
    test_visuals = cached_visuals(rec.encoder, [r["image"] for r in records], args.cache / "IC15-2077.safetensors")
    test_texts = [r["text"] for r in records]

    train = load_dataset("ic15", "train")
    shuffled, train_visuals_all = shuffled_split(rec.encoder, train, 0, args.cache / "ic15-train-shuffled.safetensors")
    fit_visuals, fit_texts = train_visuals_all[args.validation :], [r["text"] for r in shuffled[args.validation :]]
    pool100 = benchmark_pool(rec.encoder, train, 0, 100, args.cache / "pool-ic15-100-seed0.safetensors")
    in_pool = set(pool100.sources)  # the 100-crop pool may overlap the validation crops: drop them there
    keep = [k for k in range(args.validation) if shuffled[k]["path"] not in in_pool]
    val_visuals, val_texts = [train_visuals_all[k] for k in keep], [shuffled[k]["text"] for k in keep]

    results = {"config": vars(args) | {"cache": str(args.cache), "report": str(args.report)},
               "machine": f"{platform.platform()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}",
               "sizes": {"IC15-2077": len(test_texts), "validation": len(val_texts), "fit": len(fit_texts), "pool": len(pool100)},
               "IC15-2077": {}}
    rows = results["IC15-2077"]
    rows["shipped, no context"] = accuracy(rec, test_visuals, test_texts)
    rows["shipped, ICL n=2, pool = the 100 crops (seed 0)"] = accuracy(rec, test_visuals, test_texts, pool=pool100, n=2)
    big_pool = Pool(rec.encoder.fingerprint).extended(fit_texts, fit_visuals, [r["path"] for r in shuffled[args.validation :]])
    rows[f"shipped, ICL n=2, pool = all {len(fit_texts)} fit crops"] = accuracy(rec, test_visuals, test_texts, pool=big_pool, n=2)
    print(rows, flush=True)

    for label, visuals, texts in (("100 pool crops", pool100.visuals, pool100.texts), (f"all {len(fit_texts)} fit crops", fit_visuals, fit_texts)):
        tuned = tune_and_select(rec, visuals, texts, val_visuals, val_texts, args, label)
        results[f"validation curve, decoder fine-tuned on {label}"] = tuned["validation_curve"]
        rows[f"decoder fine-tuned on {label} ({tuned['chosen_step']} steps, chosen on validation), no context"] = \
            accuracy(tuned["model"], test_visuals, test_texts)
        print(rows, flush=True)
    results["seconds"] = round(time.time() - started)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
