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
]
