"""`unseen str train`: the experimental E2STR-lite decoder (unseen.scenetext.e2str); on GPUs through accelerate."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from unseen.cli.common import DataDirOption, console

app = typer.Typer()


@app.command("train")
def train(
    stage: int = typer.Option(..., "--stage", min=1, max=2,
                              help="1: plain recognition; 2: context training (Split-and-Transform)."),
    out: Path = typer.Option(..., "--out", help="Run folder."),
    store: Path = typer.Option(Path("runs/str/store"), "--store",
                               help="Feature store (built first if missing or incomplete)."),
    synthetic_groups: int = typer.Option(2000, "--synthetic-groups",
                                         help="Synthetic word groups rendered into the store."),
    real: List[str] = typer.Option(["iiit5k:train"], "--real",
                                   help="Real labelled crops: NAME:SPLIT or a labels.tsv folder / LMDB path."),
    init: Optional[Path] = typer.Option(None, "--init",
                                        help="Start from this run folder or weights (stage 2: the stage-1 run)."),
    steps: int = typer.Option(4000, "--steps"),
    batch_size: int = typer.Option(64, "--batch-size"),
    lr: float = typer.Option(5e-4, "--lr"),
    seed: int = typer.Option(0, "--seed"),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from its last checkpoint."),
    export: Optional[Path] = typer.Option(None, "--export",
                                          help="Also write fp16 weights here (how the shipped default is made)."),
    threads: Optional[int] = typer.Option(None, "--threads",
                                          help="Torch CPU threads (1 is fastest on a busy 2-core machine)."),
    encoder_name: str = typer.Option("ppocr-v4-rec", "--encoder",
                                     help="The frozen encoder whose tokens the decoder reads: ppocr-v4-rec or "
                                     "easyocr-english-g2 (a store holds one encoder's tokens)."),
    data_dir: Optional[str] = DataDirOption,
):
    """Experimental: train E2STR-lite, the in-context decoder, on cached encoder features (stage 1, then stage 2).

    The default reader (PP-OCRv4 with its lexicons) needs no training; at CPU scale E2STR-lite reads below it
    (docs/scenetext.md). On GPUs: accelerate launch -m unseen.cli.scenetext_train --stage 1 --out runs/e2str/s1

    Example: unseen str train --stage 2 --init runs/str/stage1 --out runs/str/stage2 --steps 3000
    --init may name a model trained on another encoder: its decoder is kept, its visual input layer starts fresh.
    """
    from unseen.core.errors import UnseenError
    from unseen.scenetext.e2str.recognizer import load_model_file, save_model_file
    from unseen.scenetext.e2str.train import build_store, train_stage
    from unseen.scenetext.encoder import load_encoder

    if stage == 2 and init is None:
        raise UnseenError("stage 2 starts from a stage-1 model: pass --init RUN_OR_WEIGHTS")
    if any(r.split(":")[0].lower() == "ic15" for r in real):
        console.stderr.print("warning: IC15 is the cross-domain target of the benchmark; "
                             "training on it voids that comparison")
    sources = [tuple(r.split(":", 1)) if ":" in r and not Path(r).exists() else (r, None) for r in real]
    feature_store = build_store(store, data_dir, synthetic_groups=synthetic_groups, real=sources, seed=seed,
                                encoder=load_encoder(encoder_name))
    if threads:  # after the store: the CRNN's convolutions do use two threads well
        import torch

        torch.set_num_threads(threads)
    result = train_stage(stage, feature_store, out, init=init, steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                         resume=resume)
    console.print(f"stage {stage}: {result.steps} steps, final loss {result.final_loss:.4f}; "
                  f"weights {out}/recognizer.safetensors")
    if export:
        model, meta = load_model_file(out / "recognizer.safetensors")
        save_model_file(model, export, encoder=meta["encoder"], stage=stage, half=True)
        console.print(f"exported fp16 weights to {export}")


if __name__ == "__main__":  # accelerate launch -m unseen.cli.scenetext_train ...
    typer.run(train)
