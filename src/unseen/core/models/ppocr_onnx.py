"""A PaddleOCR CTC text recognizer (PP-OCRv6 small; any PP-OCR ``rec`` graph) run through onnxruntime.

The weights ship in ``rapidocr==3.10.0`` as an ONNX graph whose metadata key ``character`` lists its characters
(18,708 for PP-OCRv6 small, 50 languages). Input ``[N, 3, 48, W]`` BGR in [-1, 1] (RapidOCR's preprocessing,
``ppocr.to_array``); output ``[N, W/8, C]`` softmax probabilities over blank, the characters and a space
(PaddleOCR's decoder prepends the blank and appends the space). onnxruntime *is* the reference here: nothing
trains this recognizer, so no PyTorch port is needed (PP-OCRv4's port stays for the experimental E2STR-lite).
"""

from __future__ import annotations

import numpy as np

from unseen.core.errors import AssetMissingError


def onnx_session(path, threads: int | None = None):
    """An onnxruntime CPU session (``threads``: intra-op threads, default torch's), or a one-line error."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise AssetMissingError("the PP-OCR models need onnxruntime: pip install onnxruntime") from None
    if threads is None:
        import torch

        threads = torch.get_num_threads()
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # a missing, truncated or foreign file
        raise AssetMissingError(f"{path}: not a readable ONNX model ({str(err).splitlines()[0][:120]})") from None


class OnnxCTCRecognizer:
    """``probabilities(batch)`` -> [N, T, C] CTC probabilities; ``characters[c]`` names class c ("" = blank at 0,
    " " last)."""

    def __init__(self, path, threads: int | None = None):
        self.path = path
        self.session = onnx_session(path, threads)
        metadata = self.session.get_modelmeta().custom_metadata_map
        if "character" not in metadata:
            raise AssetMissingError(f"{path}: no 'character' list in the model metadata; not a PP-OCR recognizer")
        self.characters = ["", *metadata["character"].split("\n"), " "]
        self.input_name = self.session.get_inputs()[0].name

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: batch})[0]


def load_ppocr_onnx_rec(path) -> OnnxCTCRecognizer:
    return OnnxCTCRecognizer(path)
