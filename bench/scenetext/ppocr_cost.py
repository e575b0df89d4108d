"""Cost of reading one word crop: PP-OCRv4 (onnxruntime, our port, our port + pool) and E2STR-lite.

    flock /tmp/unseen-heavy.lock .venv/bin/python bench/scenetext/ppocr_cost.py   # ~2 min, one thread

Run it on an otherwise idle machine. Timings are only comparable within one run: every reader
sees the same N IC15-2077 test crops (the first N), one crop per call, interleaved crop by crop
(crop 1 by every reader, then crop 2, ...), after a warm-up on the pool's crops, with torch and
onnxruntime at the same thread count (--threads). A time runs from the decoded PIL image to the
text: preprocessing, the network, decoding (and, with a pool, retrieval or label scoring).

    PP-OCRv4, onnxruntime       the wheel's ONNX graph, our preprocessing, greedy CTC
    PP-OCRv4, our port          what `unseen str read --encoder ppocr-v4-rec` runs (read_plain)
    ... + pool (lexicon gate)   `unseen str read --encoder ppocr-v4-rec --pool P`: LexiconGate.from_pool(P).read,
                                P built as `unseen str pool build` builds it (100 IC15-train crops, the
                                benchmark's pool seed 0, gate chosen on it by leave-one-out)
    E2STR-lite on the CRNN      `unseen str read --encoder easyocr-english-g2` (Recognizer.read), without and
                                with a pool of the same crops, n = 2
    E2STR-lite on PP-OCRv4      with --e2str-ppocr W: `unseen str read --weights W`, without and with a pool, n = 2

Pool size 10k: only the per-query part that grows with the pool is timed, on the first --n-scale
crops. For the lexicon gate that is scoring every pool label by its CTC log-likelihood
(lexicon_gate.score_log_probs: one batched ctc_loss over the labels, from the crop's cached
log-probabilities), which a read pays only for a crop whose reading is unsure (confidence below
the gate's tau); the table times it on every crop, the worst case; for E2STR-lite it is retrieval
(Pool.retrieve: cosine similarity to every key, top 2). Everything else in a read does not depend
on the pool's size. The 10k labels are the IC15 and IIIT5K train labels, topped up with synthetic
ones (corpus.random_label); the E2STR-lite keys are random (retrieval time does not depend on
their values).

Batch reading (`unseen str read` with several crops, the batch lexicon on by default): the N crops
read as one call, --batch-repeats times, alternating plain batched greedy, batch lexicon, and pool
gate + batch lexicon; per-word time = the call's time / N. The batch lexicon's own growing part,
scoring a crop against every batch word (batch_lexicon.best_word, ASCII columns), is timed at the
lexicon size this batch gave and at --scale-size words. The network alone (PPOCREncoder.ctc_log_probs)
is also timed on the N crops at several batch sizes, which sets READ_BATCH_SIZE.

Writes docs/results/scenetext_cost.json and .md (--out, --stem to write elsewhere).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from unseen.core.data import dataset_spec, load_dataset, resolve_data_dir
from unseen.core.models.ppocr import READ_BATCH_SIZE
from unseen.scenetext.batch_lexicon import (
    DEFAULT_BATCH_LEXICON,
    ascii_columns,
    best_word,
    lexicon_of,
    read_batch,
    read_crops,
)
from unseen.scenetext.charset import in_charset
from unseen.scenetext.e2str.corpus import random_label
from unseen.scenetext.encoder import load_encoder
from unseen.scenetext.evaluate import benchmark_pool_records, load_records
from unseen.scenetext.lexicon_gate import (
    LexiconGate,
    read_plain,
    refit_pool_gate,
    score_log_probs,
)
from unseen.scenetext.metrics import report
from unseen.scenetext.pool import Pool, PoolSample

REPO = Path(__file__).resolve().parents[2]


def onnxruntime_reader(threads: int, characters):
    import onnxruntime

    from unseen.core.assets import asset_file
    from unseen.core.models.ppocr import ctc_greedy, to_tensor

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    # idle onnxruntime threads otherwise spin after each run and slow the next reader down
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(str(asset_file("ppocr-v4-rec")), options, providers=["CPUExecutionProvider"])

    def read(image):
        probabilities = torch.from_numpy(session.run(None, {"x": to_tensor(image)[None].numpy()})[0])
        return ctc_greedy(probabilities.clamp_min(1e-30).log(), characters)[0][0]

    return read


def saved_pool(encoder, records, root: Path, gate: bool) -> Pool:
    """A pool as `unseen str pool build` makes it (gate chosen for PP-OCRv4 pools), loaded back from disk."""
    pool = Pool.new(encoder, root=root)
    pool.add([PoolSample(r["image"], r["text"], r["path"]) for r in records], encoder)
    if gate:
        refit_pool_gate(pool, encoder)
    pool.save()
    return Pool.load(root)


def train_labels(name: str, data_dir) -> list[str]:
    """A word-crop train split's labels, read from its labels.tsv without decoding the images."""
    spec = dataset_spec(name)
    lines = (resolve_data_dir(data_dir) / spec.path / spec["splits"]["train"]).read_text(encoding="utf-8").splitlines()
    return [line.split("\t", 1)[1] for line in lines if "\t" in line]


def labels_10k(data_dir, size: int) -> tuple[list[str], dict]:
    real = list(dict.fromkeys(t for name in ("ic15", "iiit5k") for t in train_labels(name, data_dir)
                              if t and in_charset(t)))
    labels, rng = real[:size], random.Random(0)
    while len(labels) < size:
        label = random_label(rng, [])
        if label not in labels:  # the gate drops duplicates, so a 10k pool needs 10k distinct labels
            labels.append(label)
    return labels, {"train_labels": min(len(real), size), "synthetic": size - min(len(real), size)}


def timed(fn, *args) -> tuple[object, float]:
    started = time.perf_counter()
    out = fn(*args)
    return out, 1000 * (time.perf_counter() - started)


def stats(ms: list[float]) -> dict:
    return {"median_ms": round(float(np.median(ms)), 2), "p90_ms": round(float(np.percentile(ms, 90)), 2),
            "mean_ms": round(float(np.mean(ms)), 2), "n": len(ms)}


def machine(threads: int) -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False).stdout.strip()

    import onnxruntime

    return {"cpu": cpu, "cores": os.cpu_count(), "cores_usable": len(os.sched_getaffinity(0)), "threads": threads,
            "torch": torch.__version__, "onnxruntime": onnxruntime.__version__, "python": platform.python_version(),
            "git_commit": git("rev-parse", "HEAD"),
            "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
            "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"), "load_average_at_start": os.getloadavg()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200, help="IC15-2077 test crops timed (the first N)")
    parser.add_argument("--threads", type=int, default=1, help="torch and onnxruntime threads")
    parser.add_argument("--warmup", type=int, default=10, help="pool crops read by every reader before timing")
    parser.add_argument("--n-scale", type=int, default=50, help="crops for the pool-size scaling timings")
    parser.add_argument("--scale-size", type=int, default=10_000, help="the large pool's size")
    parser.add_argument("--pool-seed", type=int, default=0)
    parser.add_argument("--batch-repeats", type=int, default=3, help="times each batch reader reads the N crops")
    parser.add_argument("--batch-sizes", default="1,4,8,16,32", help="network batch sizes timed on the N crops")
    parser.add_argument("--no-e2str", action="store_true", help="skip the E2STR-lite rows")
    parser.add_argument("--e2str-ppocr", default=None,
                        help="also time E2STR-lite trained on PP-OCRv4 tokens (its weights or run folder)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default=str(REPO / "docs" / "results"))
    parser.add_argument("--stem", default="scenetext_cost")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    python = os.path.relpath(sys.executable, REPO) if sys.executable.startswith(str(REPO)) else sys.executable
    info = {"command": " ".join([python, *sys.argv]), **machine(args.threads)}

    # --- readers and pools (untimed) ---
    encoder = load_encoder("ppocr-v4-rec")
    pool_records = benchmark_pool_records(load_dataset("ic15", "train", data_dir=args.data_dir), args.pool_seed)
    test = load_records("ic15", "test", args.data_dir, limit=args.n)
    images, targets = [r["image"] for r in test], [r["text"] for r in test]
    tmp = Path(tempfile.mkdtemp(prefix="unseen-cost-"))
    gate = LexiconGate.from_pool(saved_pool(encoder, pool_records, tmp / "ppocr", gate=True))
    readers = {"PP-OCRv4, onnxruntime (greedy CTC)": onnxruntime_reader(args.threads, encoder.characters),
               "PP-OCRv4, our port (greedy, no pool)": lambda im: read_plain(encoder, [im])[0].text,
               "PP-OCRv4, our port + 100-crop pool (lexicon gate)": lambda im: gate.read(encoder, [im])[0].text}
    if not args.no_e2str:
        from unseen.scenetext.e2str.recognizer import Recognizer

        recognizer = Recognizer.load()
        e2str_pool = saved_pool(recognizer.encoder, pool_records, tmp / "e2str", gate=False)
        readers["E2STR-lite on the EasyOCR CRNN, no pool"] = lambda im: recognizer.read([im], n=0)[0].text
        readers["E2STR-lite on the EasyOCR CRNN + 100-crop pool, n = 2"] = (
            lambda im: recognizer.read([im], pool=e2str_pool, n=2)[0].text)
    if args.e2str_ppocr:
        from unseen.scenetext.e2str.recognizer import Recognizer

        weights = Path(args.e2str_ppocr)
        on_ppocr = Recognizer.load(weights / "recognizer.safetensors" if weights.is_dir() else weights, encoder)
        ppocr_pool = saved_pool(encoder, pool_records, tmp / "e2str-ppocr", gate=False)
        readers["E2STR-lite on PP-OCRv4 tokens, no pool"] = lambda im: on_ppocr.read([im], n=0)[0].text
        readers["E2STR-lite on PP-OCRv4 tokens + 100-crop pool, n = 2"] = (
            lambda im: on_ppocr.read([im], pool=ppocr_pool, n=2)[0].text)

    # --- per word, interleaved crop by crop ---
    for record in pool_records[: args.warmup]:
        for read in readers.values():
            read(record["image"])
    times = {name: [] for name in readers}
    texts = {name: [] for name in readers}
    for image in images:
        for name, read in readers.items():
            text, ms = timed(read, image)
            texts[name].append(text)
            times[name].append(ms)
    rows = [{"reader": name, **stats(times[name]),
             "accuracy": round(100 * report(texts[name], targets)["36"]["accuracy"], 2)}
            for name in readers]
    ort, port = texts["PP-OCRv4, onnxruntime (greedy CTC)"], texts["PP-OCRv4, our port (greedy, no pool)"]
    print("\n".join(f"{r['reader']}: median {r['median_ms']} ms, p90 {r['p90_ms']} ms" for r in rows), flush=True)

    # --- the part that grows with the pool, at 100 and at --scale-size ---
    big_labels, big_sources = labels_10k(args.data_dir, args.scale_size)
    queries = images[: args.n_scale]
    log_probs = [lp for _, lp in sorted(encoder.ctc_log_probs(queries, batch_size=1), key=lambda pair: pair[0])]
    scaling = {}
    for size, labels in ((len(gate.labels), gate.labels), (len(big_labels), big_labels)):
        scaling[f"lexicon gate: CTC scoring of {size} pool labels"] = stats(
            [timed(score_log_probs, lp, encoder.characters, labels)[1] for lp in log_probs])
    if not args.no_e2str:
        keys = [recognizer.encoder.pooled(v) for v in recognizer.encode(queries)]
        big = Pool(e2str_pool.encoder, big_labels, visuals=list(torch.randn(len(big_labels), 1, 353).half()))
        for pool in (e2str_pool, big):
            pool.retrieve(keys[0][None], 2)  # computes and caches the pool's keys
            scaling[f"E2STR-lite: retrieval (cosine + top 2) in {len(pool)} keys"] = stats(
                [timed(pool.retrieve, key[None], 2)[1] for key in keys])
    print("\n".join(f"{name}: median {s['median_ms']} ms" for name, s in scaling.items()), flush=True)

    # --- a batch of N crops in one call (the batch lexicon) ---
    batch_readers = {"PP-OCRv4, our port, batched greedy (no lexicon)": lambda: read_plain(encoder, images),
                     "... + batch lexicon (default of `unseen str read`)": lambda: read_batch(encoder, images),
                     "... + 100-crop pool gate + batch lexicon": lambda: read_batch(encoder, images, gate)}
    network = {f"network only, batches of {size}":
               (lambda size=size: list(encoder.ctc_log_probs(images, batch_size=size)))
               for size in map(int, args.batch_sizes.split(","))}
    batch_times = {name: [] for name in [*batch_readers, *network]}
    for _ in range(args.batch_repeats):
        for name, read in network.items():
            batch_times[name].append(timed(read)[1] / len(images))
    network_rows = [{"reader": name, "median_ms": round(float(np.median(batch_times[name])), 2)} for name in network]
    batch_texts = {}
    for _ in range(args.batch_repeats):
        for name, read in batch_readers.items():
            readings, ms = timed(read)
            batch_times[name].append(ms / len(images))
            batch_texts[name] = [r.text for r in readings]
    batch_rows = [{"reader": name, "per_word_ms": [round(t, 2) for t in batch_times[name]],
                   "median_ms": round(float(np.median(batch_times[name])), 2),
                   "accuracy": round(100 * report(batch_texts[name], targets)["36"]["accuracy"], 2)}
                  for name in batch_readers]
    crops = read_crops(encoder, images, keep_below=DEFAULT_BATCH_LEXICON.setting.tau)
    words = lexicon_of(crops, DEFAULT_BATCH_LEXICON.min_confidence)
    unsure = [c.ascii_log_probs for c in crops if c.ascii_log_probs is not None][: args.n_scale]
    _, ascii_characters = ascii_columns(encoder.characters)
    for size, lexicon in ((len(words), words), (len(big_labels), big_labels)):
        scaling[f"batch lexicon: CTC scoring of {size} batch words (one unsure crop)"] = stats(
            [timed(best_word, lp, ascii_characters, lexicon)[1] for lp in unsure])
    print("\n".join(f"{r['reader']}: median {r['median_ms']} ms/word" for r in batch_rows), flush=True)

    # --- write ---
    info["load_average_at_end"] = os.getloadavg()
    result = {**info, "n": len(images), "warmup": args.warmup, "pool_seed": args.pool_seed,
              "gate": gate.as_dict(), "per_word": rows,
              "port_equals_onnxruntime": sum(a == b for a, b in zip(port, ort)),
              "batch": {"rows": batch_rows, "network": network_rows, "read_batch_size": READ_BATCH_SIZE,
                        "lexicon_words": len(words),
                        "unsure_crops": sum(c.ascii_log_probs is not None for c in crops),
                        "repeats": args.batch_repeats},
              "pool_size_scaling": {"queries": len(queries), "large_pool_labels": big_sources, "timings": scaling}}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.stem}.json").write_text(json.dumps(result, indent=1) + "\n")
    dirty = " (dirty)" if info["git_dirty"] else ""
    setup = (f"`{info['command']}` on {info['cpu']} ({info['cores']} cores, {info['cores_usable']} usable), "
             f"torch {info['torch']}, onnxruntime {info['onnxruntime']}, commit {info['git_commit'][:12]}{dirty}, "
             f"{info['date_utc']} UTC; load average {info['load_average_at_start'][0]:.2f} at start, "
             f"{info['load_average_at_end'][0]:.2f} at end.")
    big_pool = (f"The {len(big_labels)}-label pool: {big_sources['train_labels']} IC15/IIIT5K train labels and "
                f"{big_sources['synthetic']} synthetic ones (E2STR-lite keys random).")
    lines = [f"# Scene text: cost per word ({len(images)} IC15-2077 crops, {args.threads} thread(s))", "",
             f"Regenerated by `bench/scenetext/ppocr_cost.py`: {setup}", "",
             "Timings are only comparable within one run (same machine, same moment, same crops). Each crop is read",
             "on its own, every reader in turn, from the decoded image to the text. The pool is the benchmark's",
             f"100 IC15-train crops (seed {args.pool_seed}); its lexicon gate: {gate.setting.describe()}. The gate",
             "scores the pool's labels only for crops whose reading is unsure (only those can change).", "",
             "| reader | median ms/word | p90 ms/word | accuracy on these crops (%) |", "|---|---|---|---|"]
    lines += [f"| {r['reader']} | {r['median_ms']:.1f} | {r['p90_ms']:.1f} | {r['accuracy']:.2f} |" for r in rows]
    lines += ["", f"**A batch in one call.** The same {len(images)} crops read by one call (as `unseen str read` reads",
              f"several crops), {args.batch_repeats} times each, readers alternating; "
              f"per word = the call's time / {len(images)}.",
              f"The batch lexicon held {len(words)} words; "
              f"{result['batch']['unsure_crops']} crops were unsure enough to be scored.", "",
              "| batch reader | median ms/word | accuracy on these crops (%) |", "|---|---|---|"]
    lines += [f"| {r['reader']} | {r['median_ms']:.1f} | {r['accuracy']:.2f} |" for r in batch_rows]
    lines += ["", "The network alone on the same crops, by batch size "
              f"(READ_BATCH_SIZE = {READ_BATCH_SIZE} is what the readers use):", "",
              "| forward passes | median ms/word |", "|---|---|"]
    lines += [f"| {r['reader']} | {r['median_ms']:.1f} |" for r in network_rows]
    lines += ["", "Our port and onnxruntime read the same text on "
              f"{result['port_equals_onnxruntime']} of {len(images)} crops.",
              "", "**Pool size.** Only the per-query part that grows with the pool, "
              f"on the first {len(queries)} crops. {big_pool}",
              "", "| per-query step | median ms | p90 ms |", "|---|---|---|"]
    lines += [f"| {name} | {s['median_ms']:.2f} | {s['p90_ms']:.2f} |" for name, s in scaling.items()]
    (out / f"{args.stem}.md").write_text("\n".join(lines) + "\n")
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"wrote {out / args.stem}.json and .md")


if __name__ == "__main__":
    main()
