"""Options and the reader choice shared by the `unseen str` commands."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from unseen.cli.common import console

PPOCR = "ppocr-v6-rec"  # the default crop reader's recognizer (encoder.DEFAULT_ENCODER)
# the CTC recognizers the default reader can read crops with (pool gate + batch lexicon); display names
CTC_READERS = {"ppocr-v6-rec": "PP-OCRv6", "ppocr-v4-rec": "PP-OCRv4"}
WeightsOption = typer.Option(None, "--weights", help="Experimental: E2STR-lite weights, read with that in-context "
                             "decoder (and the encoder it was trained on) instead of PP-OCRv6's CTC.",
                             show_default=False)
EncoderOption = typer.Option(None, "--encoder", help="ppocr-v6-rec (the default reader), ppocr-v4-rec (the reader "
                             "before it, PP-OCRv4), or easyocr-english-g2 for the experimental CRNN-era E2STR-lite. "
                             "With --pool and no --encoder: the pool's own encoder.",
                             show_default=False)
BatchLexiconOption = typer.Option(True, "--batch-lexicon/--no-batch-lexicon", help="Words read surely in some of "
                                  "the images read together are offered to the unsure ones (no labels needed).")


def reader_for(encoder_name: Optional[str], weights: Optional[Path], pool=None):
    """("gate", a CTC recognizer: PP-OCRv6 or PP-OCRv4) or ("e2str", an E2STR-lite Recognizer): --weights picks that
    decoder; else --encoder; else the pool's encoder; else PP-OCRv6, the strongest reader measured."""
    from unseen.core.errors import UnseenError
    from unseen.scenetext.encoder import ENCODERS, load_encoder
    from unseen.scenetext.encoder import encoder_name as name_of

    if weights is None:
        name = encoder_name or (name_of(pool.encoder) if pool is not None else PPOCR)
        if name not in ENCODERS:
            raise UnseenError(f"--encoder {name!r}: unknown; known: {', '.join(ENCODERS)}")
        if name in CTC_READERS:
            with console.stderr.status(f"loading {CTC_READERS[name]}..."):
                return "gate", load_encoder(name)
    from unseen.scenetext.e2str import Recognizer

    with console.stderr.status("loading the E2STR-lite recognizer (experimental)..."):
        return "e2str", Recognizer.load(weights)


def reader_name(encoder) -> str:
    """PP-OCRv6 or PP-OCRv4: the display name of a CTC recognizer, from its fingerprint."""
    from unseen.scenetext.encoder import encoder_name

    return CTC_READERS.get(encoder_name(encoder.fingerprint), "PP-OCR")
