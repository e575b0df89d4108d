"""E2STR-lite: in-context scene text recognition (Zhao et al., CVPR 2024) on a CPU.

A frozen EasyOCR CRNN encodes word images; a small character decoder with Flamingo-style
gated cross-attention reads ``[image_1, text_1, ..., image_n, text_n, image_query]`` and
writes the query's text. A context pool of a few labelled samples of a new domain adapts it
at inference, without training. With PP-OCRv4 as the reader instead, a pool's labels are used
through a lexicon gate (lexicon_gate.py). See docs/scenetext.md.

    from unseen.scenetext import Pool, Recognizer
    rec = Recognizer.load()
    rec.read([image], pool=Pool.load("ic15_pool"), n=2)[0].text
"""

from unseen.scenetext.metrics import report, score
from unseen.scenetext.pool import Pool, PoolSample
from unseen.scenetext.recognizer import Reading, Recognizer

__all__ = ["Pool", "PoolSample", "Reading", "Recognizer", "report", "score"]
