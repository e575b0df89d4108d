"""Options and the reader choice shared by the `unseen str` commands."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from unseen.cli.common import console

PPOCR = "ppocr-v4-rec"
WeightsOption = typer.Option(None, "--weights", help="Experimental: E2STR-lite weights, read with that in-context "
                             "decoder (and the encoder it was trained on) instead of PP-OCRv4's CTC.",
                             show_default=False)
EncoderOption = typer.Option(None, "--encoder", help="ppocr-v4-rec (the default reader), or easyocr-english-g2 for the "
                             "experimental CRNN-era E2STR-lite. With --pool and no --encoder: the pool's own encoder.",
                             show_default=False)
BatchLexiconOption = typer.Option(True, "--batch-lexicon/--no-batch-lexicon", help="Words read surely in some of "
                                  "the images read together are offered to the unsure ones (no labels needed).")


def reader_for(encoder_name: Optional[str], weights: Optional[Path], pool=None):
    """("gate", the PP-OCRv4 encoder) or ("e2str", an E2STR-lite Recognizer): --weights picks that decoder;
    else --encoder; else the pool's encoder; else PP-OCRv4, the strongest reader measured."""
    from unseen.core.errors import UnseenError
    from unseen.scenetext.encoder import ENCODERS, load_encoder
    from unseen.scenetext.encoder import encoder_name as name_of

    if weights is None:
        name = encoder_name or (name_of(pool.encoder) if pool is not None else PPOCR)
        if name not in ENCODERS:
            raise UnseenError(f"--encoder {name!r}: unknown; known: {', '.join(ENCODERS)}")
        if name == PPOCR:
            with console.stderr.status("loading PP-OCRv4..."):
                return "gate", load_encoder(PPOCR)
    from unseen.scenetext.e2str import Recognizer

    with console.stderr.status("loading the E2STR-lite recognizer (experimental)..."):
        return "e2str", Recognizer.load(weights)
