"""PaddleOCR's PP-OCRv4 mobile text recognizer as a plain PyTorch module.

The weights ship in ``rapidocr-onnxruntime`` as an ONNX inference graph
(``ch_PP-OCRv4_rec_infer.onnx``, 6,623 Chinese and English characters). This port mirrors
that graph, which is the *exported* form of the model: every PP-LCNetV3 "rep" layer has
its training branches (several k x k convs, a 1 x 1 conv and an identity, each with
BatchNorm) already fused into one convolution with a bias, so we build the fused form
directly and fill it from the graph's ``Constant`` nodes.

    image [B, 3, 48, W] (BGR, (x/255 - 0.5) / 0.5)
    -> PP-LCNetV3 backbone (stride 16 in height, 4 in width) -> avg-pool 3 x 2 -> [B, 480, 1, W/8]
    -> SVTR neck (2 global-attention blocks over the W/8 columns, guided shortcut) -> [B, W/8, 120]
    -> CTC head: linear to 6,625 classes (blank, the characters, space)
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from unseen.core.errors import AssetMissingError, DataError

HEIGHT = 48
MIN_WIDTH = 320  # RapidOCR's rec_img_shape: narrower crops are padded to this width
# crops per forward pass when reading many: small batches stay in the CPU's cache, large ones fall out of it
# (measured for PP-OCRv4: 16.1 ms per word in batches of 4, 16.6 in 8, 26.7 in 32; docs/results/README.md, History)
READ_BATCH_SIZE = 8

# PP-LCNetV3 "rec" configuration at scale 0.95 (channels rounded to multiples of 16):
# (depthwise kernel, channels in, channels out, depthwise stride, squeeze-excite)
BLOCKS = [
    (3, 16, 32, 1, False),
    (3, 32, 64, 1, False), (3, 64, 64, 1, False),
    (3, 64, 128, (2, 1), False), (3, 128, 128, 1, False),
    (3, 128, 240, (1, 2), False), *[(5, 240, 240, 1, False)] * 4,
    (5, 240, 480, (2, 1), True), (5, 480, 480, 1, True), (5, 480, 480, (2, 1), False), (5, 480, 480, 1, False),
]


class Affine(nn.Module):
    """PP-LCNetV3's "learnable affine block": one scalar scale and one scalar bias."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return self.scale * x + self.bias


class RepConv(nn.Module):
    """A re-parameterized conv (branches fused into one, with bias), affine, hard-swish, affine."""

    def __init__(self, c_in, c_out, kernel, stride=1, groups=1):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, (kernel - 1) // 2, groups=groups)
        self.affine = Affine()
        self.act_affine = Affine()

    def forward(self, x):
        return self.act_affine(F.hardswish(self.affine(self.conv(x))))


class SqueezeExcite(nn.Module):
    def __init__(self, channels, reduction=4):
        super().__init__()
        self.reduce = nn.Conv2d(channels, channels // reduction, 1)
        self.expand = nn.Conv2d(channels // reduction, channels, 1)

    def forward(self, x):
        gate = self.expand(F.relu(self.reduce(x.mean((2, 3), keepdim=True))))
        return x * F.hardsigmoid(gate)


class LCNetBlock(nn.Module):
    """Depthwise k x k conv (carries the stride), optional squeeze-excite, pointwise 1 x 1 conv."""

    def __init__(self, kernel, c_in, c_out, stride, squeeze_excite):
        super().__init__()
        self.depthwise = RepConv(c_in, c_in, kernel, stride, groups=c_in)
        self.se = SqueezeExcite(c_in) if squeeze_excite else nn.Identity()
        self.pointwise = RepConv(c_in, c_out, 1)

    def forward(self, x):
        return self.pointwise(self.se(self.depthwise(x)))


class ConvBNSwish(nn.Sequential):
    def __init__(self, c_in, c_out, kernel=(1, 1)):
        super().__init__(nn.Conv2d(c_in, c_out, kernel, padding=(kernel[0] // 2, kernel[1] // 2), bias=False),
                         nn.BatchNorm2d(c_out), nn.SiLU())


class TransformerBlock(nn.Module):
    """Pre-norm global self-attention over the columns, then a swish MLP."""

    def __init__(self, dim=120, heads=8, mlp_ratio=2):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        self.fc1 = nn.Linear(dim, mlp_ratio * dim)
        self.fc2 = nn.Linear(mlp_ratio * dim, dim)

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d)
        x = x + self.proj(attended)
        return x + self.fc2(F.silu(self.fc1(self.norm2(x))))


class SVTRNeck(nn.Module):
    """Squeeze channels, mix the columns with 2 attention blocks, expand, and fuse with the input."""

    def __init__(self, c_in=480, dim=120, depth=2):
        super().__init__()
        self.reduce = ConvBNSwish(c_in, c_in // 8, (1, 3))
        self.to_dim = ConvBNSwish(c_in // 8, dim)
        self.blocks = nn.ModuleList(TransformerBlock(dim) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.expand = ConvBNSwish(dim, c_in)
        self.fuse = ConvBNSwish(2 * c_in, c_in // 8, (1, 3))  # "guide": the backbone features come back in
        self.out = ConvBNSwish(c_in // 8, dim)

    def forward(self, x):  # x: [B, C, 1, T]
        h = self.to_dim(self.reduce(x))
        b, c, height, width = h.shape
        tokens = h.flatten(2).transpose(1, 2)  # [B, H*W, C]
        for block in self.blocks:
            tokens = block(tokens)
        h = self.norm(tokens).view(b, height, width, c).permute(0, 3, 1, 2)
        h = self.fuse(torch.cat([x, self.expand(h)], dim=1))
        return self.out(h).squeeze(2).transpose(1, 2)  # [B, T, dim]


class PPOCRv4Rec(nn.Module):
    def __init__(self, n_classes=6625):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16))  # no activation
        self.blocks = nn.Sequential(*(LCNetBlock(*spec) for spec in BLOCKS))
        self.neck = SVTRNeck()
        self.head = nn.Linear(120, n_classes)

    def backbone(self, images):
        """[B, 3, 48, W] -> [B, 480, 1, W/8]: PP-LCNetV3's output, pooled, before the SVTR neck."""
        return F.avg_pool2d(self.blocks(self.stem(images)), (3, 2))  # blocks: [B, 480, 3, W/4]

    def features(self, images):
        """[B, 3, 48, W] -> [B, W/8, 120]: the column features the CTC head reads."""
        return self.neck(self.backbone(images))

    def forward(self, images):
        return self.head(self.features(images))  # logits; the ONNX graph ends with their softmax


# ---- weights from the ONNX graph ---------------------------------------------------------

def _graph_weights(graph) -> list[np.ndarray]:
    """The graph's learned tensors in execution order (which is our modules' registration order).

    Weights are the constant inputs of Conv, BatchNormalization and MatMul; the vectors added
    or multiplied elementwise (biases, LayerNorm gains); and the scalar pairs of the affine
    blocks, recognisable as a ``Mul`` with the constant *first* (the exporter's other scalar
    Muls and Adds, of hard-swish, swish or the attention scale, take it second).
    """
    from onnx import numpy_helper

    constants = {n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in graph.node if n.op_type == "Constant"}
    affine_outputs, weights = set(), []
    for node in graph.node:
        inputs = [constants.get(name) for name in node.input]
        if node.op_type in ("Conv", "BatchNormalization", "MatMul"):
            weights += [a for a in inputs if a is not None]
        elif node.op_type == "Mul" and inputs[0] is not None and inputs[0].size == 1:
            affine_outputs.add(node.output[0])
            weights.append(inputs[0])
        elif node.op_type == "Add" and node.input[0] in affine_outputs:
            weights.append(inputs[1])
        elif node.op_type in ("Mul", "Add") and inputs[1] is not None and inputs[1].size > 1:
            weights.append(inputs[1])
    return weights


def load_ppocr_v4_rec(path) -> tuple[PPOCRv4Rec, list[str]]:
    """(model in eval mode, characters by class index: "" for the CTC blank at 0, " " last)."""
    try:
        import onnx
    except ImportError:
        raise AssetMissingError("the PP-OCRv4 recognizer needs the onnx package: pip install onnx") from None
    try:
        proto = onnx.load(str(path))
    except FileNotFoundError:
        raise AssetMissingError(f"PP-OCRv4 weights not found: {path}") from None
    except Exception as err:  # a truncated or foreign file
        raise AssetMissingError(f"{path}: not a readable ONNX model ({str(err).splitlines()[0][:120]})") from None
    metadata = {p.key: p.value for p in proto.metadata_props}
    if "character" not in metadata:
        raise AssetMissingError(f"{path}: no 'character' list in the model metadata; not the PP-OCRv4 recognizer")
    characters = ["", *metadata["character"].split("\n"), " "]
    model = PPOCRv4Rec(n_classes=len(characters))
    weights = _graph_weights(proto.graph)
    targets = [t for name, t in model.state_dict().items() if not name.endswith("num_batches_tracked")]
    if len(weights) != len(targets):
        raise AssetMissingError(f"{path}: {len(weights)} weight tensors, the PP-OCRv4 port expects {len(targets)}")
    with torch.no_grad():
        for target, array in zip(targets, weights):
            tensor = torch.from_numpy(array.copy()).float()
            if tensor.dim() == 2:  # ONNX MatMul weights are [in, out]; nn.Linear stores [out, in]
                tensor = tensor.T
            if tensor.shape != target.shape:
                raise AssetMissingError(f"{path}: weight of shape {tuple(tensor.shape)} where the port expects "
                                        f"{tuple(target.shape)}")
            target.copy_(tensor)
    return model.eval(), characters


# ---- preprocessing and decoding, as RapidOCR does them ------------------------------------

def crop_width(image: Image.Image) -> int:
    """RapidOCR's resized width for a crop read on its own: ceil(48 w / h), or floor past 320."""
    if image.width == 0 or image.height == 0:
        raise DataError(f"{getattr(image, 'filename', '') or 'image'}: image has zero size")
    ratio = image.width / image.height
    return min(math.ceil(HEIGHT * ratio), int(HEIGHT * max(ratio, MIN_WIDTH / HEIGHT)))


def padded_width(image: Image.Image) -> int:
    return max(crop_width(image), MIN_WIDTH)


def same_width_batches(images: list[Image.Image], batch_size: int):
    """Indices of crops of one padded width, at most ``batch_size`` at a time: batched so, each crop's input is
    exactly what it would be on its own (RapidOCR pads a batch to its widest crop, which can change a reading)."""
    by_width: dict[int, list[int]] = {}
    for i, image in enumerate(images):
        by_width.setdefault(padded_width(image), []).append(i)
    for indices in by_width.values():
        for start in range(0, len(indices), batch_size):
            yield indices[start : start + batch_size]


def to_tensor(image: Image.Image, width: int | None = None) -> torch.Tensor:
    """One crop -> [3, 48, max(width, its resized width)] in [-1, 1], BGR, zero (mid-grey) padded on the right.

    The resize is OpenCV's INTER_LINEAR (half-pixel centres, no antialiasing, rounded to uint8),
    which RapidOCR uses; PIL's bilinear filter antialiases when shrinking and reads differently.
    """
    pixels = np.asarray(image.convert("RGB"))[:, :, ::-1].copy()  # BGR, as OpenCV loads it
    resized_w = crop_width(image)
    x = torch.from_numpy(pixels).permute(2, 0, 1)[None].float()
    x = F.interpolate(x, size=(HEIGHT, resized_w), mode="bilinear", align_corners=False).round().clamp(0, 255)[0]
    out = torch.zeros(3, HEIGHT, max(width or 0, resized_w, MIN_WIDTH))
    out[:, :, :resized_w] = (x / 255 - 0.5) / 0.5
    return out


def to_array(image: Image.Image, width: int | None = None) -> np.ndarray:
    """``to_tensor`` with OpenCV itself (RapidOCR's own resize) as float32 numpy: the onnxruntime path, where a
    torch op per crop costs more than the resize on a busy machine."""
    import cv2

    resized_w = crop_width(image)
    bgr = np.asarray(image.convert("RGB"))[:, :, ::-1]
    resized = cv2.resize(np.ascontiguousarray(bgr), (resized_w, HEIGHT)).astype(np.float32)
    out = np.zeros((3, HEIGHT, max(width or 0, resized_w, MIN_WIDTH)), dtype=np.float32)
    out[:, :, :resized_w] = ((resized / 255 - 0.5) / 0.5).transpose(2, 0, 1)
    return out


def ctc_greedy(logits: torch.Tensor, characters: list[str]) -> list[tuple[str, float]]:
    """Best path (unseen.core.ctc); confidence = mean max probability over the emitted characters (RapidOCR's
    score)."""
    from unseen.core.ctc import greedy_decode

    return greedy_decode(logits, characters)
