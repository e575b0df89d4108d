"""The frozen visual encoders: EasyOCR's English CRNN (VGG + 2 BiLSTM, the shipped recognizer's),
and PP-OCRv4's recognizer (``PPOCREncoder`` below, selectable with ``load_encoder``).

An image becomes T visual tokens of 353 numbers: the 256 BiLSTM features of each column
position and the CRNN's own CTC log-probabilities over its 97 classes there. The encoder is
never trained here, so the recognizer's checkpoint holds only what we train (the decoder), and
the features of a context pool or a training set are computed once and cached.

Images are resized to height 64 and a width rounded to a multiple of 16 (64..1024), so an
image's tokens do not depend on what else is in its batch (the BiLSTMs read the whole row,
padding included, so batches only group images of one width).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict

import torch
import torch.nn.functional as F
from PIL import Image

from unseen.core.errors import DataError

HEIGHT = 64
WIDTH_STEP = 16
MAX_WIDTH = 1024
D_VISUAL = 256 + 97
PREPROCESS_VERSION = "h64-w16-bicubic-gray-v1"


def load_crnn():
    from unseen.core.assets import asset_file
    from unseen.core.models.crnn import load_easyocr_crnn

    return load_easyocr_crnn(asset_file("easyocr-english-g2"))


def canonical_width(image: Image.Image) -> int:
    if image.width == 0 or image.height == 0:
        raise DataError(f"{getattr(image, 'filename', '') or 'image'}: image has zero size")
    w = round(HEIGHT * image.width / image.height / WIDTH_STEP) * WIDTH_STEP
    return int(min(max(w, HEIGHT), MAX_WIDTH))


def to_tensor(image: Image.Image, width: int) -> torch.Tensor:
    im = image.convert("L").resize((width, HEIGHT), Image.BICUBIC)
    x = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8).view(1, HEIGHT, width)
    return (x.float() / 255 - 0.5) / 0.5


class FrozenEncoder:
    pool_width = D_VISUAL  # a pool keeps whole tokens: the E2STR decoder reads them as context
    def __init__(self, crnn=None):
        self.crnn = (crnn or load_crnn()).eval()
        for p in self.crnn.parameters():
            p.requires_grad_(False)
        digest = hashlib.sha256(PREPROCESS_VERSION.encode())
        for name, tensor in sorted(self.crnn.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().float().numpy().tobytes()[:4096])
        # names the encoder + preprocessing; a pool or a checkpoint made with another differs
        self.fingerprint = "crnn-" + digest.hexdigest()[:16]

    @torch.no_grad()
    def encode(self, images: list[Image.Image], batch_size: int = 64) -> list[torch.Tensor]:
        """PIL images -> one [T_i, 353] float tensor each (T_i = width_i / 4 - 1)."""
        by_width = defaultdict(list)
        for i, image in enumerate(images):
            by_width[canonical_width(image)].append(i)
        out: list = [None] * len(images)
        for width, indices in by_width.items():
            step = max(1, batch_size * 256 // width)
            for start in range(0, len(indices), step):
                chunk = indices[start : start + step]
                tokens = self.tokens(torch.stack([to_tensor(images[i], width) for i in chunk]))
                for j, i in enumerate(chunk):
                    out[i] = tokens[j].clone()
        return out

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 1, 64, W] normalized images of one width -> [B, T, 353] visual tokens."""
        feats = self.crnn.features(x)
        return torch.cat([feats, F.log_softmax(self.crnn.Prediction(feats), dim=-1)], dim=-1)

    @staticmethod
    def pooled(tokens: torch.Tensor) -> torch.Tensor:
        """The retrieval key of an image: its BiLSTM features, mean over positions, unit length."""
        return F.normalize(tokens[:, :256].mean(0), dim=0)

    @staticmethod
    def ctc_reading(tokens: torch.Tensor) -> str:
        """What the CRNN alone reads (greedy CTC) from the tokens' log-probabilities."""
        from unseen.core.models.crnn import CRNN_CHARSET

        ids = tokens[:, 256:].argmax(-1).tolist()
        chars, prev = [], 0
        for i in ids:
            if i != 0 and i != prev:
                chars.append(CRNN_CHARSET[i - 1])
            prev = i
        return "".join(chars)

    @staticmethod
    def ctc_char_columns(tokens: torch.Tensor) -> tuple[str, list[tuple[int, int]]]:
        """The greedy CTC reading and, per emitted character, its first and last time step."""
        from unseen.core.models.crnn import CRNN_CHARSET

        ids = tokens[:, 256:].argmax(-1).tolist()
        chars, spans, prev = [], [], 0
        for t, i in enumerate(ids):
            if i != 0 and i != prev:
                chars.append(CRNN_CHARSET[i - 1])
                spans.append([t, t])
            elif i != 0 and i == prev:
                spans[-1][1] = t
            prev = i
        return "".join(chars), [tuple(s) for s in spans]


class PPOCREncoder:
    """PP-OCRv4's recognizer (our port) as a frozen encoder: T = W/8 tokens of 120 neck features
    followed by the CTC head's log-probabilities over its 6,625 classes (blank first, space last).

    Same interface as ``FrozenEncoder``; its fingerprint starts with "ppocr-v4-", so pools and
    checkpoints made with either encoder are told apart. Images are read as RapidOCR feeds them
    (height 48, padded to at least 320; crops of one padded width are batched)."""

    d_features = 120
    # a pool keeps only the 120 features (its retrieval keys); with the 6,625 log-probabilities a
    # 100-crop pool would take about 50 MB, and the lexicon gate re-reads the pool's images anyway
    pool_width = d_features

    def __init__(self, loaded=None):
        from unseen.core.assets import load_asset
        from unseen.core.models.ppocr import HEIGHT, MIN_WIDTH

        self.model, self.characters = loaded or load_asset("ppocr-v4-rec")
        for p in self.model.parameters():
            p.requires_grad_(False)
        digest = hashlib.sha256(f"ppocr-h{HEIGHT}-w{MIN_WIDTH}-cv2linear-bgr-v1".encode())
        for name, tensor in sorted(self.model.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().float().numpy().tobytes()[:4096])
        self.fingerprint = "ppocr-v4-" + digest.hexdigest()[:16]

    def _batches(self, images: list[Image.Image], batch_size: int):
        """(indices, [B, 3, 48, W] input) for crops of one padded width: each crop's input is
        exactly what it would be on its own."""
        from unseen.core.models.ppocr import padded_width, to_tensor

        by_width = defaultdict(list)
        for i, image in enumerate(images):
            by_width[padded_width(image)].append(i)
        for indices in by_width.values():
            for start in range(0, len(indices), batch_size):
                chunk = indices[start : start + batch_size]
                yield chunk, torch.stack([to_tensor(images[i]) for i in chunk])

    @torch.no_grad()
    def encode(self, images: list[Image.Image], batch_size: int = 32) -> list[torch.Tensor]:
        out: list = [None] * len(images)
        for chunk, x in self._batches(images, batch_size):
            tokens = self.tokens(x)
            for j, i in enumerate(chunk):
                out[i] = tokens[j].clone()
        return out

    @torch.no_grad()
    def ctc_log_probs(self, images: list[Image.Image], batch_size: int = 32):
        """(index, [T, 6625] CTC log-probabilities) per crop, a batch at a time: a benchmark set's
        full tokens would not fit in memory (6,745 numbers per column)."""
        for chunk, x in self._batches(images, batch_size):
            log_probs = F.log_softmax(self.model(x), dim=-1)
            for j, i in enumerate(chunk):
                yield i, log_probs[j]

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        features = self.model.features(x)
        return torch.cat([features, F.log_softmax(self.model.head(features), dim=-1)], dim=-1)

    def pooled(self, tokens: torch.Tensor) -> torch.Tensor:
        return F.normalize(tokens[:, : self.d_features].mean(0), dim=0)

    def ctc_reading(self, tokens: torch.Tensor) -> str:
        return self.ctc_char_columns(tokens)[0]

    def ctc_char_columns(self, tokens: torch.Tensor) -> tuple[str, list[tuple[int, int]]]:
        ids = tokens[:, self.d_features :].argmax(-1).tolist()
        chars, spans, prev = [], [], 0
        for t, i in enumerate(ids):
            if i != 0 and i != prev:
                chars.append(self.characters[i])
                spans.append([t, t])
            elif i != 0 and i == prev:
                spans[-1][1] = t
            prev = i
        return "".join(chars), [tuple(s) for s in spans]


# the encoders a recognizer or a pool can be built on, by asset name
ENCODERS = {"easyocr-english-g2": FrozenEncoder, "ppocr-v4-rec": PPOCREncoder}


def encoder_name(fingerprint: str) -> str:
    """The asset name of the encoder a pool's or checkpoint's fingerprint names."""
    return "ppocr-v4-rec" if fingerprint.startswith("ppocr-v4-") else "easyocr-english-g2"


def load_encoder(name: str = "easyocr-english-g2"):
    from unseen.core.errors import UnseenError

    if name not in ENCODERS:
        raise UnseenError(f"unknown scene-text encoder {name!r}; known: {', '.join(ENCODERS)}")
    return ENCODERS[name]()


def pooled_key(fingerprint: str, tokens: torch.Tensor) -> torch.Tensor:
    """The retrieval key of cached tokens, for the encoder a pool's fingerprint names."""
    width = PPOCREncoder.d_features if fingerprint.startswith("ppocr-v4-") else 256
    return F.normalize(tokens[:, :width].mean(0), dim=0)
