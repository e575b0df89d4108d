"""Does stage-2 context training with retrieved neighbours make context help on IC15?

At inference the context is the query's most similar pool samples: similar-looking, usually
other words. Stage 2 trains mostly on sequences whose context is the same word (splits and
transformed copies), which teaches copying; on IC15 context then costs 0.8 points. This
experiment continues stage 2 from the shipped weights with half of the sequences shaped like
inference (a query after its nearest samples of other groups in the feature store), then reads
IC15-2077 without context and with n = 2 from the benchmark's three 100-crop pools.

    python bench/scenetext/neighbour_context.py --steps 300      # ~15 min training on 2 cores
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from unseen.core.data import load_dataset
from unseen.scenetext.evaluate import BENCHMARKS, benchmark_pool, cached_visuals, load_records
from unseen.scenetext.metrics import report
from unseen.scenetext.recognizer import Recognizer, default_weights
from unseen.scenetext.train import train_stage


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", default="runs/str/store")
    parser.add_argument("--out", type=Path, default=Path("runs/str/stage2-neighbours"))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--p-neighbours", type=float, default=0.5)
    parser.add_argument("--seeds", type=int, default=3, help="pool seeds")
    parser.add_argument("--cache", type=Path, default=Path("runs/str/bench"))
    parser.add_argument("--report", type=Path, default=Path("docs/results/scenetext_neighbour_context.json"))
    args = parser.parse_args()
    started = time.time()
    if not (args.out / "recognizer.safetensors").exists():
        train_stage(2, Path(args.store), args.out, init=default_weights(), steps=args.steps, batch_size=32, lr=args.lr,
                    p_neighbours=args.p_neighbours, resume=(args.out / "checkpoints").exists())
    shipped = Recognizer.load()
    tuned = Recognizer.load(args.out / "recognizer.safetensors", shipped.encoder)
    dataset, split, subset = BENCHMARKS["IC15-2077"]
    records = load_records(dataset, split, None, filter=subset)
    visuals = cached_visuals(shipped.encoder, [r["image"] for r in records], args.cache / "IC15-2077.safetensors")
    targets = [r["text"] for r in records]
    train = load_dataset("ic15", "train")
    pools = [benchmark_pool(shipped.encoder, train, seed, 100, args.cache / f"pool-ic15-100-seed{seed}.safetensors")
             for seed in range(args.seeds)]  # bench/scenetext/run.py's pools

    def accuracy(recognizer, **kwargs) -> float:
        readings = recognizer.read_visuals(visuals, **kwargs)
        return round(100 * report([r.text for r in readings], targets)["36"]["accuracy"], 2)

    results = {"config": {k: str(v) for k, v in vars(args).items()}, "IC15-2077": {}}
    for name, recognizer in (("shipped stage 2", shipped), (f"+ {args.steps} steps with neighbour context", tuned)):
        with_context = [accuracy(recognizer, pool=pool, n=2) for pool in pools]
        results["IC15-2077"][name] = {"no context": accuracy(recognizer), "ICL n=2 per pool seed": with_context,
                                      "ICL n=2 mean": round(statistics.fmean(with_context), 2)}
        print(name, results["IC15-2077"][name], flush=True)
    results["seconds"] = round(time.time() - started)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
