"""Hand-written ports of small pre-trained vision models that ship inside PyPI packages."""

from unseen.core.models.crnn import (
    CRNN,
    CRNN_CHARSET,
    ctc_greedy_decode,
    load_easyocr_crnn,
    preprocess_crnn,
)
from unseen.core.models.efficientnet_lite import (
    EfficientNetLite0,
    imagenet_class_names,
    load_efficientnet_lite0,
    preprocess_efficientnet,
)
from unseen.core.models.ppocr import PPOCRv4Rec, load_ppocr_v4_rec
from unseen.core.models.ppocr_det import DBDetector, DetectorSettings, load_db_detector
from unseen.core.models.ppocr_int8 import load_int8_db_detector
from unseen.core.models.ppocr_onnx import OnnxCTCRecognizer, load_ppocr_onnx_rec

__all__ = [
    "CRNN",
    "CRNN_CHARSET",
    "ctc_greedy_decode",
    "load_easyocr_crnn",
    "preprocess_crnn",
    "EfficientNetLite0",
    "imagenet_class_names",
    "load_efficientnet_lite0",
    "preprocess_efficientnet",
    "PPOCRv4Rec",
    "load_ppocr_v4_rec",
    "DetectorSettings",
    "DBDetector",
    "load_db_detector",
    "load_int8_db_detector",
    "OnnxCTCRecognizer",
    "load_ppocr_onnx_rec",
]
