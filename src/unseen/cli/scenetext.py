"""`unseen str`: scene text recognition that adapts to a domain from a labelled pool (unseen.scenetext).

Reads with PP-OCRv4 and the lexicon gate by default; E2STR-lite (--encoder easyocr-english-g2 or --weights).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import List, Optional

import typer

from unseen.cli.common import DataDirOption, console, table

app = typer.Typer(help="Scene text recognition that adapts to a domain from a few labelled samples (E2STR).",
                  no_args_is_help=True)
pool_app = typer.Typer(help="Context pools: the labelled samples a recognizer reads beside each query.", no_args_is_help=True)
app.add_typer(pool_app, name="pool")

WeightsOption = typer.Option(None, "--weights", help="E2STR-lite recognizer weights: read with that decoder (and the "
                             "encoder it was trained on) instead of PP-OCRv4's own CTC.", show_default=False)


EncoderOption = typer.Option(None, "--encoder", help="ppocr-v4-rec (the default): PP-OCRv4 (our port), a pool's labels "
                             "used through the lexicon gate; easyocr-english-g2: the CRNN-era E2STR-lite recognizer. "
                             "With --pool and no --encoder: the pool's own encoder.", show_default=False)
PPOCR = "ppocr-v4-rec"
BatchLexiconOption = typer.Option(True, "--batch-lexicon/--no-batch-lexicon", help="PP-OCRv4: words read surely in "
                                  "some of the given images are offered to the unsure ones (no labels; helps when the "
                                  "images share words, as crops of one domain do).")


def _reader(encoder_name: Optional[str], weights: Optional[Path], pool=None):
    """("gate", the PP-OCRv4 encoder) or ("e2str", a Recognizer): --weights picks that E2STR-lite
    decoder; else --encoder; else the pool's encoder; else PP-OCRv4, the strongest reader measured."""
    from unseen.core.errors import UnseenError
    from unseen.scenetext.encoder import ENCODERS, encoder_name as name_of, load_encoder

    if weights is None:
        name = encoder_name or (name_of(pool.encoder) if pool is not None else PPOCR)
        if name not in ENCODERS:
            raise UnseenError(f"--encoder {name!r}: unknown; known: {', '.join(ENCODERS)}")
        if name == PPOCR:
            with console.stderr.status("loading PP-OCRv4..."):
                return "gate", load_encoder(PPOCR)
    from unseen.scenetext.recognizer import Recognizer

    with console.stderr.status("loading the recognizer..."):
        return "e2str", Recognizer.load(weights)


def _samples(images: Optional[Path], labels: Optional[Path], source: Optional[str], split: Optional[str],
             limit: Optional[int], seed: int, data_dir: Optional[str]) -> tuple[list, list]:
    """The labelled samples given, as (a random --limit of them, the others)."""
    from unseen.core.errors import UnseenError
    from unseen.scenetext.evaluate import load_records
    from unseen.scenetext.pool import PoolSample, read_labels_file

    if labels is not None:
        samples = read_labels_file(labels, images)
    elif source is not None:
        records = load_records(source, split, data_dir)
        samples = [PoolSample(r["image"], r["text"], r.get("path", source), where=r.get("path", source)) for r in records]
    elif images is not None:
        raise UnseenError("--images needs --labels (a file of '<image>\\t<label>' lines)")
    else:
        raise UnseenError("give the samples: --images DIR --labels labels.tsv, or --from DATASET_OR_PATH [--split S]")
    if limit is None or limit >= len(samples):
        return samples, []
    drawn = random.Random(seed).sample(samples, limit)
    kept = {id(sample) for sample in drawn}
    return drawn, [sample for sample in samples if id(sample) not in kept]


@pool_app.command("build")
def pool_build(
    out: Path = typer.Option(..., "--out", help="Folder of the new pool."),
    images: Optional[Path] = typer.Option(None, "--images", help="Folder the labels file's image paths are relative to."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="'<image>\\t<label>' lines."),
    source: Optional[str] = typer.Option(None, "--from", help="A dataset name (ic15) or path (labels.tsv folder, LMDB)."),
    split: Optional[str] = typer.Option(None, "--split", help="Split of --from."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Keep a random sample of this many."),
    seed: int = typer.Option(0, "--seed", help="Seed of the --limit sample."),
    gate_on: int = typer.Option(0, "--gate-on", help="With PP-OCRv4 and --limit: choose the lexicon gate "
                                "on this many other labelled samples of the source (kept in the pool's gate/ folder) "
                                "instead of leave-one-out on the pool."),
    weights: Optional[Path] = WeightsOption,
    encoder_name: Optional[str] = EncoderOption,
    data_dir: Optional[str] = DataDirOption,
):
    """Make a context pool from labelled word images (their visual features are cached in it).

    With PP-OCRv4 (the default), the lexicon gate's setting is chosen on the pool itself (leave-one-out),
    or with --gate-on N on N labelled samples of the source that are not in the pool (measured better
    on IC15: docs/scenetext.md).

    Example: unseen str pool build --from ic15 --split train --limit 100 --out pools/ic15 [--gate-on 500]
    """
    from unseen.core.errors import UnseenError
    from unseen.scenetext.charset import in_charset
    from unseen.scenetext.pool import Pool

    if (out / "pool.json").exists():
        raise UnseenError(f"{out}: a pool already exists here; use `unseen str pool add` or another --out")
    kind, reader = _reader(encoder_name, weights)
    if gate_on and kind != "gate":
        raise UnseenError("--gate-on chooses the lexicon gate, which reads with PP-OCRv4: drop --weights and --encoder")
    samples, rest = _samples(images, labels, source, split, limit, seed, data_dir)
    if source is not None:  # a dataset's labels are not the user's to fix: skip what the reader cannot write, and say so
        skipped = [sample.text for sample in samples if not in_charset(sample.text)]
        samples = [sample for sample in samples if in_charset(sample.text)]
        if skipped:
            console.stderr.print(f"skipped {len(skipped)} sample(s) of {source} whose label has characters outside the "
                                 f"recognizer's 95 printable ASCII characters: {', '.join(map(repr, skipped[:5]))}")
    gate_crops = []
    if gate_on:
        others = [sample for sample in rest if in_charset(sample.text)]
        if not others:
            raise UnseenError("--gate-on: no labelled samples left outside the pool; lower --limit or give more samples")
        gate_crops = random.Random(seed + 1).sample(others, min(gate_on, len(others)))
    encoder = reader if kind == "gate" else reader.encoder
    pool = Pool.new(encoder, root=out)
    with console.stderr.status(f"encoding {len(samples)} samples..."):
        pool.add(samples, encoder)
    if gate_crops:
        pool.keep_gate_crops(gate_crops)
    _refit_gate(pool, encoder)
    pool.save(out)
    console.print(f"pool {out}: {len(pool)} samples", soft_wrap=True)


def _refit_gate(pool, encoder) -> None:
    """PP-OCRv4 pools: choose the lexicon gate for the pool's labels now, and say what was chosen."""
    from unseen.scenetext.lexicon_gate import refit_pool_gate

    if hasattr(encoder, "ctc_log_probs") and len(pool):  # an empty pool is refused when it is read
        on = f"{len(pool.gate_crops)} other labelled crops" if pool.gate_crops else "the pool (leave-one-out)"
        with console.stderr.status(f"choosing the lexicon gate on {on}..."):
            setting = refit_pool_gate(pool, encoder)
        console.print(f"lexicon gate: {setting.describe()}", soft_wrap=True)


@pool_app.command("add")
def pool_add(
    pool_dir: Path = typer.Argument(..., help="The pool folder."),
    image: Optional[Path] = typer.Option(None, "--image", help="One image to add (with --text)."),
    text: Optional[str] = typer.Option(None, "--text", help="Its label."),
    images: Optional[Path] = typer.Option(None, "--images", help="Folder the labels file's image paths are relative to."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="'<image>\\t<label>' lines."),
    source: Optional[str] = typer.Option(None, "--from", help="A dataset name or path."),
    split: Optional[str] = typer.Option(None, "--split", help="Split of --from."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Keep a random sample of this many."),
    seed: int = typer.Option(0, "--seed"),
    weights: Optional[Path] = WeightsOption,
    data_dir: Optional[str] = DataDirOption,
):
    """Add labelled samples to a pool, e.g. a word the recognizer got wrong, with its right label.

    Example: unseen str pool add pools/ic15 --image crop.png --text EXIT
    """
    from unseen.core.errors import UnseenError
    from unseen.scenetext.pool import Pool, PoolSample

    pool = Pool.load(pool_dir)
    if image is not None:
        if text is None:
            raise UnseenError("--image needs --text (its label)")
        samples = [PoolSample(image, text, str(image), where=str(image))]
    else:
        samples, _ = _samples(images, labels, source, split, limit, seed, data_dir)
    # the pool says which encoder built it; PP-OCRv4 pools get their gate chosen again
    kind, reader = _reader(None, weights, pool)
    encoder = reader if kind == "gate" else reader.encoder
    added = pool.add(samples, encoder)
    _refit_gate(pool, encoder)
    pool.save(pool_dir)
    console.print(f"pool {pool_dir}: added {added}, now {len(pool)} samples", soft_wrap=True)


@pool_app.command("ls")
def pool_ls(pool_dir: Path = typer.Argument(..., help="The pool folder."),
            limit: int = typer.Option(20, "--limit", help="Rows to show (0 = all).")):
    """List a pool's samples.

    Example: unseen str pool ls pools/ic15 --limit 5
    """
    from unseen.scenetext.pool import Pool

    pool = Pool.load(pool_dir)
    shown = range(len(pool)) if limit == 0 else range(min(limit, len(pool)))
    rows = [[i, pool.texts[i], pool.files[i], pool.sources[i]] for i in shown]
    gate = ""
    if pool.gate:
        from unseen.scenetext.lexicon_gate import GateSetting

        gate = f"; lexicon {GateSetting(**pool.gate).describe()}"
    console.print(table(f"{pool_dir}: {len(pool)} samples, encoder {pool.encoder}{gate}", ["#", "label", "file", "source"], rows))


@app.command("read")
def read(
    images: List[Path] = typer.Argument(..., help="Word images (crops)."),
    pool_dir: Optional[Path] = typer.Option(None, "--pool", help="A context pool of the images' domain."),
    n: int = typer.Option(2, "--n", help="Pool samples put before each query (0 = no context)."),
    explain: bool = typer.Option(False, "--explain", help="Show which pool samples were used and their similarity."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per image instead of a table."),
    weights: Optional[Path] = WeightsOption,
    encoder_name: Optional[str] = EncoderOption,
    batch_lexicon: bool = BatchLexiconOption,
):
    """Read the text of word images, with the context of a pool when given.

    Example: unseen str read crop1.png crop2.png --pool pools/ic15 --explain
    """
    from unseen.core.data import open_image
    from unseen.scenetext.pool import Pool

    pictures = [open_image(path) for path in images]
    pool = Pool.load(pool_dir) if pool_dir else None
    kind, reader = _reader(encoder_name, weights, pool)
    if kind == "gate":
        _read_with_gate(images, pictures, pool, reader, explain, as_json, batch_lexicon)
        return
    recognizer = reader
    readings = recognizer.read(pictures, pool=pool, n=n if pool is not None else 0)
    if as_json:
        for path, r in zip(images, readings):
            console.print(json.dumps({"image": str(path), "text": r.text, "confidence": round(r.confidence, 4),
                                      "context": [{"pool_index": j, "label": t, "similarity": round(s, 4)} for j, t, s in r.context]}),
                          highlight=False, soft_wrap=True)
        return
    columns = ["image", "text", "confidence"] + (["context (label: similarity)"] if explain else [])
    rows = []
    for path, r in zip(images, readings):
        row = [str(path), r.text, round(r.confidence, 3)]
        if explain:
            row.append(", ".join(f"#{j} {t!r}: {s:.3f}" for j, t, s in r.context) or "none")
        rows.append(row)
    console.print(table("Readings" + (f" (pool {pool_dir}, n={n})" if pool is not None else ""), columns, rows))


def _gated_readings(pictures, pool, encoder, batch_lexicon: bool):
    """PP-OCRv4's readings, through the pool's lexicon gate when there is a pool, then the batch
    lexicon when on; and the gate."""
    from unseen.scenetext.batch_lexicon import DEFAULT_BATCH_LEXICON, read_batch
    from unseen.scenetext.lexicon_gate import LexiconGate

    gate = None
    if pool is not None:
        pool.check_encoder(encoder.fingerprint)
        gate = LexiconGate.from_pool(pool)
    return read_batch(encoder, pictures, gate, DEFAULT_BATCH_LEXICON if batch_lexicon else None), gate


def _source(reading) -> str:
    return "pool" if reading.from_pool else "batch" if reading.from_batch else ""


def _read_with_gate(paths, pictures, pool, encoder, explain: bool, as_json: bool, batch_lexicon: bool) -> None:
    readings, gate = _gated_readings(pictures, pool, encoder, batch_lexicon)
    if as_json:
        for path, r in zip(paths, readings):
            console.print(json.dumps({"image": str(path), "text": r.text, "confidence": round(r.confidence, 4),
                                      "greedy": r.greedy, "from_pool": r.from_pool, "from_batch": r.from_batch}), highlight=False, soft_wrap=True)
        return
    columns = ["image", "text", "confidence"] + (["greedy reading", "from"] if explain else [])
    rows = []
    for path, r in zip(paths, readings):
        rows.append([str(path), r.text, round(r.confidence, 3)] + ([r.greedy, _source(r)] if explain else []))
    title = "Readings (PP-OCRv4" + (f", pool with {gate.setting.describe()}" if gate else "") + \
        (", batch lexicon" if batch_lexicon else "") + ")"
    console.print(table(title, columns, rows))


@app.command("eval")
def evaluate(
    dataset: str = typer.Option(..., "--dataset", help="A dataset name (iiit5k, ic13, ic15) or a labels.tsv folder / LMDB path."),
    split: Optional[str] = typer.Option(None, "--split", help="Split (test, test_857, ...)."),
    pool_dir: Optional[Path] = typer.Option(None, "--pool", help="A context pool."),
    n: int = typer.Option(2, "--n", help="Pool samples per query (with --pool)."),
    context: str = typer.Option("retrieved", "--context", help="retrieved (top-n by similarity) or random (a control)."),
    alnum: bool = typer.Option(False, "--alnum", help="Only words whose label is alphanumeric (IC15-1922)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="First N records only."),
    baselines: Optional[List[str]] = typer.Option(None, "--baseline", help="Also read the same records with a baseline: "
                                                  "easyocr (the EasyOCR CRNN) or ppocr (PP-OCRv4's own greedy CTC); repeatable."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write predictions and metrics as JSON here."),
    weights: Optional[Path] = WeightsOption,
    encoder_name: Optional[str] = EncoderOption,
    batch_lexicon: bool = BatchLexiconOption,
    data_dir: Optional[str] = DataDirOption,
):
    """Word accuracy and 1-NED (36-char, cased, full protocols) on a benchmark split.

    Example: unseen str eval --dataset ic15 --split test --pool pools/ic15 --n 2 --baseline ppocr --baseline easyocr
    """
    from unseen.core.errors import UnseenError
    from unseen.scenetext.evaluate import BASELINES, evaluate as run_eval, load_records
    from unseen.scenetext.metrics import report
    from unseen.scenetext.pool import Pool

    for name in baselines or []:
        if name not in BASELINES:
            raise UnseenError(f"--baseline {name!r}: unknown; known: {', '.join(BASELINES)}")
    records = load_records(dataset, split, data_dir, filter="alnum" if alnum else None, limit=limit)
    if not records:
        from unseen.core.errors import DataError

        raise DataError(f"{dataset}{'/' + split if split else ''}: no records to evaluate")
    pool = Pool.load(pool_dir) if pool_dir else None
    images, targets = [r["image"] for r in records], [r["text"] for r in records]
    kind, reader = _reader(encoder_name, weights, pool)
    if kind == "gate":  # --n and --context belong to E2STR-lite's retrieval; the gate has neither
        with console.stderr.status(f"reading {len(images)} images with PP-OCRv4..."):
            readings, gate = _gated_readings(images, pool, reader, batch_lexicon)
        predictions = [r.text for r in readings]
        result = {"encoder": PPOCR, "gate": gate.as_dict() if gate else None, "batch_lexicon": batch_lexicon,
                  "metrics": report(predictions, targets), "predictions": predictions,
                  "from_pool": sum(r.from_pool for r in readings), "from_batch": sum(r.from_batch for r in readings)}
        name = "PP-OCRv4" + (f" + pool ({gate.setting.describe().split(' (')[0]})" if gate else "") + \
            (" + batch lexicon" if batch_lexicon else "") + ("" if gate or batch_lexicon else " (no context)")
    else:
        recognizer = reader
        with console.stderr.status(f"encoding {len(images)} images..."):
            visuals = recognizer.encode(images)
        with console.stderr.status("reading..."):
            result = run_eval(recognizer, visuals, targets, pool=pool, n=n if pool is not None else 0, context=context)
        name = "E2STR-lite" + (f" + pool (n={n}, {context})" if pool is not None else " (no context)")
    rows = [[name, len(records)] + _cells(result["metrics"])]
    payload = {"dataset": dataset, "split": split, "n": len(records), "ours": result}
    for name in dict.fromkeys(baselines or []):
        title, read_with = BASELINES[name]
        with console.stderr.status(f"{title} baseline..."):
            predictions, _ = read_with(images)
        base = report(predictions, targets)
        rows.append([title, len(records)] + _cells(base))
        payload[name] = {"metrics": base, "predictions": predictions}
    console.print(table(f"{dataset}{'/' + split if split else ''}", ["model", "n", "acc 36", "1-NED 36", "acc cased", "acc full"], rows))
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(payload, indent=1) + "\n")


def _cells(metrics: dict) -> list:
    return [round(100 * metrics["36"]["accuracy"], 2), round(100 * metrics["36"]["one_minus_ned"], 2),
            round(100 * metrics["cased"]["accuracy"], 2), round(100 * metrics["full"]["accuracy"], 2)]


@app.command("train")
def train(
    stage: int = typer.Option(..., "--stage", min=1, max=2, help="1: plain recognition; 2: context training (Split-and-Transform)."),
    out: Path = typer.Option(..., "--out", help="Run folder."),
    store: Path = typer.Option(Path("runs/str/store"), "--store", help="Feature store (built first if missing or incomplete)."),
    synthetic_groups: int = typer.Option(2000, "--synthetic-groups", help="Synthetic word groups rendered into the store."),
    real: List[str] = typer.Option(["iiit5k:train"], "--real", help="Real labelled crops: NAME:SPLIT or a labels.tsv folder / LMDB path."),
    init: Optional[Path] = typer.Option(None, "--init", help="Start from this run folder or weights (stage 2: the stage-1 run)."),
    steps: int = typer.Option(4000, "--steps"),
    batch_size: int = typer.Option(64, "--batch-size"),
    lr: float = typer.Option(5e-4, "--lr"),
    seed: int = typer.Option(0, "--seed"),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from its last checkpoint."),
    export: Optional[Path] = typer.Option(None, "--export", help="Also write fp16 weights here (how the shipped default is made)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Torch CPU threads (1 is fastest on a busy 2-core machine)."),
    encoder_name: str = typer.Option("easyocr-english-g2", "--encoder", help="The frozen encoder whose tokens the decoder reads: "
                                     "easyocr-english-g2 or ppocr-v4-rec (a store holds one encoder's tokens)."),
    data_dir: Optional[str] = DataDirOption,
):
    """Train the recognizer on cached encoder features (stage 1, then stage 2 from it).

    Example: unseen str train --stage 2 --init runs/str/stage1 --out runs/str/stage2 --steps 3000
    --init may name a model trained on another encoder: its decoder is kept, its visual input layer starts fresh.
    """
    from unseen.core.errors import UnseenError
    from unseen.scenetext.encoder import load_encoder
    from unseen.scenetext.recognizer import load_model_file, save_model_file
    from unseen.scenetext.train import build_store, train_stage

    if stage == 2 and init is None:
        raise UnseenError("stage 2 starts from a stage-1 model: pass --init RUN_OR_WEIGHTS")
    if any(r.split(":")[0].lower() == "ic15" for r in real):
        console.stderr.print("warning: IC15 is the cross-domain target of the benchmark; training on it voids that comparison")
    sources = [tuple(r.split(":", 1)) if ":" in r and not Path(r).exists() else (r, None) for r in real]
    feature_store = build_store(store, data_dir, synthetic_groups=synthetic_groups, real=sources, seed=seed,
                                encoder=load_encoder(encoder_name))
    if threads:  # after the store: the CRNN's convolutions do use two threads well
        import torch

        torch.set_num_threads(threads)
    result = train_stage(stage, feature_store, out, init=init, steps=steps, batch_size=batch_size, lr=lr, seed=seed, resume=resume)
    console.print(f"stage {stage}: {result.steps} steps, final loss {result.final_loss:.4f}; weights {out}/recognizer.safetensors")
    if export:
        model, meta = load_model_file(out / "recognizer.safetensors")
        save_model_file(model, export, encoder=meta["encoder"], stage=stage, half=True)
        console.print(f"exported fp16 weights to {export}")


if __name__ == "__main__":  # `python -m unseen.cli.scenetext ...` works before `unseen str` is registered
    app()
