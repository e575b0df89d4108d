"""Experimental: E2STR-lite, a small in-context decoder trained on a frozen encoder's tokens (Zhao et al., CVPR 2024).

A decoder with gated cross-attention reads ``[image_1, text_1, ..., image_n, text_n, image_query]`` and writes the
query's text; it is trained plainly (stage 1), then on Split-and-Transform sequences (stage 2). At CPU scale it
reads 2.4-3.2 points below PP-OCRv4 and context does not help it (docs/results/README.md, "History"), so the
default reader (PP-OCRv6) does not use it. Training scales with ``accelerate launch`` (the GPU path):

    accelerate launch -m unseen.cli.scenetext_train --stage 1 --encoder ppocr-v4-rec --out runs/e2str/stage1

    from unseen.scenetext.e2str import Recognizer
    Recognizer.load().read([image], pool=Pool.load("crnn_pool"), n=2)
"""

from unseen.scenetext.e2str.recognizer import Reading, Recognizer

__all__ = ["Reading", "Recognizer"]
