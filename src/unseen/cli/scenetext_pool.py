"""`unseen str pool`: context pools, the labelled (or self-labelled) words of one domain."""

from __future__ import annotations

import random
from pathlib import Path
from typing import List, Optional

import typer

from unseen.cli.common import DataDirOption, console, table
from unseen.cli.scenetext_options import EncoderOption, WeightsOption, reader_for

pool_app = typer.Typer(help="Context pools: labelled words of a domain that the reader uses as its vocabulary.",
                       no_args_is_help=True)


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
        samples = [PoolSample(r["image"], r["text"], r.get("path", source), where=r.get("path", source))
                   for r in records]
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
    images: Optional[Path] = typer.Option(None, "--images",
                                          help="Folder the labels file's image paths are relative to."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="'<image>\\t<label>' lines."),
    source: Optional[str] = typer.Option(None, "--from",
                                         help="A dataset name (ic15) or path (labels.tsv folder, LMDB)."),
    split: Optional[str] = typer.Option(None, "--split", help="Split of --from."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Keep a random sample of this many."),
    seed: int = typer.Option(0, "--seed", help="Seed of the --limit sample."),
    gate_on: int = typer.Option(0, "--gate-on", help="With PP-OCRv6 (or v4) and --limit: choose the lexicon gate "
                                "on this many other labelled samples of the source (kept in the pool's gate/ folder) "
                                "instead of leave-one-out on the pool."),
    weights: Optional[Path] = WeightsOption,
    encoder_name: Optional[str] = EncoderOption,
    data_dir: Optional[str] = DataDirOption,
):
    """Make a context pool from labelled word images.

    With PP-OCRv6 (the default) or PP-OCRv4, the lexicon gate's setting is chosen on the pool itself (leave-one-out),
    or with --gate-on N on N labelled samples of the source that are not in the pool (measured better
    on IC15: docs/scenetext.md).

    Example: unseen str pool build --from ic15 --split train --limit 100 --out pools/ic15 [--gate-on 500]
    """
    from unseen.core.errors import UnseenError
    from unseen.scenetext.pool import Pool

    if (out / "pool.json").exists():
        raise UnseenError(f"{out}: a pool already exists here; use `unseen str pool add` or another --out")
    kind, reader = reader_for(encoder_name, weights)
    if gate_on and kind != "gate":
        raise UnseenError("--gate-on chooses the lexicon gate, which reads with PP-OCRv6 or PP-OCRv4 "
                          "(--encoder ppocr-v6-rec or ppocr-v4-rec): drop --weights")
    samples, rest = _samples(images, labels, source, split, limit, seed, data_dir)
    # a dataset's labels are not the user's to fix: skip what the reader cannot write, and say so
    encoder = reader if kind == "gate" else reader.encoder
    if source is not None:
        skipped = [sample.text for sample in samples if not writable(sample.text, encoder)]
        samples = [sample for sample in samples if writable(sample.text, encoder)]
        if skipped:
            console.stderr.print(f"skipped {len(skipped)} sample(s) of {source} whose label has characters the "
                                 f"recognizer cannot write: {', '.join(map(repr, skipped[:5]))}")
    gate_crops = []
    if gate_on:
        others = [sample for sample in rest if writable(sample.text, encoder)]
        if not others:
            raise UnseenError("--gate-on: no labelled samples left outside the pool; "
                              "lower --limit or give more samples")
        gate_crops = random.Random(seed + 1).sample(others, min(gate_on, len(others)))
    pool = Pool.new(encoder, root=out)
    with console.stderr.status(f"encoding {len(samples)} samples..."):
        pool.add(samples, encoder)
    if gate_crops:
        pool.keep_gate_crops(gate_crops)
    _refit_gate(pool, encoder)
    pool.save(out)
    console.print(f"pool {out}: {len(pool)} samples", soft_wrap=True)


def writable(text: str, encoder) -> bool:
    """Whether the encoder can write the label: PP-OCRv6 its ``spelling`` (Latin script, accents included), the others
    the 95 printable ASCII characters."""
    from unseen.scenetext.charset import in_charset

    spelling = getattr(encoder, "spelling", None)
    if spelling is None:
        return in_charset(text)
    return bool(text.strip()) and all(c in spelling for c in text)


def _refit_gate(pool, encoder) -> None:
    """PP-OCRv6 and PP-OCRv4 pools: choose the lexicon gate for the pool's labels now, and say what was chosen."""
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
    images: Optional[Path] = typer.Option(None, "--images",
                                          help="Folder the labels file's image paths are relative to."),
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
    # the pool says which encoder built it; PP-OCRv6 (and v4) pools get their gate chosen again
    kind, reader = reader_for(None, weights, pool)
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
    rows = [[i, pool.texts[i], "self" if pool.self_labelled[i] else "person", pool.files[i], pool.sources[i]]
            for i in shown]
    gate = ""
    if pool.gate:
        from unseen.scenetext.lexicon_gate import GateSetting

        gate = f"; lexicon {GateSetting(**pool.gate).describe()}"
    own = sum(pool.self_labelled)
    console.print(table(f"{pool_dir}: {len(pool)} samples ({own} self-labelled), encoder {pool.encoder}{gate}",
                        ["#", "label", "by", "file", "source"], rows))


@pool_app.command("rm")
def pool_rm(pool_dir: Path = typer.Argument(..., help="The pool folder."),
            indices: Optional[List[int]] = typer.Argument(None, help="Sample numbers to remove (as `pool ls` shows)."),
            self_labelled: bool = typer.Option(False, "--self-labelled", help="Remove every self-labelled sample "
                                               "(the words `unseen str read --evolve` added)."),
            weights: Optional[Path] = WeightsOption):
    """Remove samples from a pool: by number, or all the reader's own (self-labelled) readings.

    Example: unseen str pool rm pools/mall --self-labelled
    """
    from unseen.core.errors import UnseenError
    from unseen.scenetext.pool import Pool

    pool = Pool.load(pool_dir)
    chosen = set(indices or [])
    bad = sorted(i for i in chosen if not 0 <= i < len(pool))
    if bad:
        raise UnseenError(f"{pool_dir}: no sample #{bad[0]} (the pool has {len(pool)}: 0..{len(pool) - 1})")
    if self_labelled:
        chosen |= {i for i, own in enumerate(pool.self_labelled) if own}
    if not chosen:
        raise UnseenError("name the samples to remove (numbers from `unseen str pool ls`) or pass --self-labelled")
    refit = any(not pool.self_labelled[i] for i in chosen)
    removed = pool.remove(chosen)
    if refit and pool.labelled:
        kind, reader = reader_for(None, weights, pool)
        _refit_gate(pool, reader if kind == "gate" else reader.encoder)
    pool.save(pool_dir)
    console.print(f"pool {pool_dir}: removed {removed}, now {len(pool)} samples", soft_wrap=True)
