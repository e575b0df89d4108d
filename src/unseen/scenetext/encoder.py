"""The frozen visual encoders: EasyOCR's English CRNN (VGG + 2 BiLSTM, E2STR-lite's shipped weights),
and PP-OCRv4's recognizer (``PPOCREncoder`` below, selectable with ``load_encoder``).

With the CRNN, an image becomes T visual tokens of 353 numbers: the 256 BiLSTM features of each
column position and the CRNN's own CTC log-probabilities over its 97 classes there. The encoder is
never trained here, so the recognizer's checkpoint holds only what we train (the decoder), and
the features of a context pool or a training set are computed once and cached.

Images are resized to height 64 and a width rounded to a multiple of 16 (64..1024), so an
image's tokens do not depend on what else is in its batch (the BiLSTMs read the whole row,
padding included, so batches only group images of one width).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from unseen.core.ctc import best_path
from unseen.core.errors import DataError
from unseen.core.models.ppocr import READ_BATCH_SIZE
from unseen.scenetext.charset import CHARSET

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


def ctc_score(log_probs: torch.Tensor, ids: list[int]) -> float:
    """log p_CTC(ids | image) over all alignments; [T, C] log-probabilities, blank = 0."""
    if not ids:
        return float(log_probs[:, 0].float().sum())
    target = torch.tensor([ids])
    loss = F.ctc_loss(log_probs.float()[:, None, :], target, torch.tensor([log_probs.shape[0]]),
                      torch.tensor([len(ids)]),
                      blank=0, reduction="sum", zero_infinity=False)
    return -float(loss)


def greedy_columns(ids: list[int], characters) -> tuple[str, list[tuple[int, int]]]:
    """Best-path CTC (classes without a character, "", emit nothing); returns the text and, per emitted
    character, its first and last time step."""
    emitted = [e for e in best_path(ids) if characters[e.index]]
    return "".join(characters[e.index] for e in emitted), [(e.first, e.last) for e in emitted]


class FrozenEncoder:
    d_features = 256
    d_visual = D_VISUAL
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
        return FrozenEncoder.ctc_char_columns(tokens)[0]

    @staticmethod
    def ctc_char_columns(tokens: torch.Tensor) -> tuple[str, list[tuple[int, int]]]:
        """The greedy CTC reading and, per emitted character, its first and last time step."""
        from unseen.core.models.crnn import CRNN_CHARSET

        return greedy_columns(tokens[:, 256:].argmax(-1).tolist(), ["", *CRNN_CHARSET])

    @staticmethod
    def ctc_log_likelihood(tokens: torch.Tensor, text: str) -> float:
        """log p_CTC(text | image) from the CRNN log-probabilities inside the visual tokens; -inf
        when the CRNN cannot write the text (a character outside its set, or too long for the image)."""
        from unseen.core.models.crnn import CRNN_CHARSET

        if any(c not in CRNN_CHARSET for c in text):
            return float("-inf")
        return ctc_score(tokens[:, 256:], [CRNN_CHARSET.index(c) + 1 for c in text])

    @staticmethod
    def char_boxes(image: Image.Image, spans: list[tuple[int, int]]):
        """Approximate character boxes from CTC spans (for Split-and-Transform of real crops)."""
        from unseen.scenetext.e2str.splits import boxes_from_ctc

        return boxes_from_ctc(image, spans, canonical_width(image))


class PPOCREncoder:
    """PP-OCRv4's recognizer (our port) as a frozen encoder: T = W/8 tokens of 217 numbers, the
    120 neck features followed by the CTC head's log-probabilities of the blank, of the
    recognizer's 95 printable ASCII characters (CHARSET order) and of "any other character"
    (log-sum-exp of the other 6,528 classes, so greedy decoding still sees a Chinese character win).

    Same interface as ``FrozenEncoder``; its fingerprint starts with "ppocr-v4-", so pools and
    checkpoints made with either encoder are told apart. Images are read as RapidOCR feeds them
    (height 48, padded to at least 320; crops of one padded width are batched). The lexicon gate
    reads the full 6,625 log-probabilities with ``ctc_log_probs``."""

    d_features = 120
    d_visual = 120 + 1 + 95 + 1
    pool_width = d_visual  # whole tokens: an E2STR decoder trained on them reads a pool's as context
    # compact CTC columns: blank, the CHARSET characters, any other character (emits nothing here)
    compact_characters = ["", *CHARSET, ""]

    def __init__(self, loaded=None, backend: str = "torch"):
        """backend: where ``ctc_log_probs`` runs the network. "torch" is our port; "onnxruntime" runs the
        graph the port was read from (same log-probabilities to ~1e-3, same readings), which keeps its speed
        on a busy 2-core machine where PyTorch's threads wait on each other (bench/scenetext/e2e.py)."""
        from unseen.core.assets import load_asset
        from unseen.core.models.ppocr import HEIGHT, MIN_WIDTH

        if backend not in ("torch", "onnxruntime"):
            raise ValueError(f"backend {backend!r}: torch or onnxruntime")
        self.backend, self._session = backend, None
        self.model, self.characters = loaded or load_asset("ppocr-v4-rec")
        for p in self.model.parameters():
            p.requires_grad_(False)
        index = {c: i for i, c in enumerate(self.characters) if i > 0}
        # a CHARSET character PP-OCRv4 lacks gets no class: its column stays at log 0 = -inf
        self._ascii = [index.get(c) for c in CHARSET]
        present = [i for i in self._ascii if i is not None]
        other = torch.ones(len(self.characters), dtype=torch.bool)
        other[[0, *present]] = False
        self._other = other
        digest = hashlib.sha256(f"ppocr-h{HEIGHT}-w{MIN_WIDTH}-cv2linear-bgr-ascii97-v2".encode())
        for name, tensor in sorted(self.model.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().float().numpy().tobytes()[:4096])
        self.fingerprint = "ppocr-v4-" + digest.hexdigest()[:16]

    def _batches(self, images: list[Image.Image], batch_size: int):
        """(indices, [B, 3, 48, W] input) for crops of one padded width (same_width_batches)."""
        from unseen.core.models.ppocr import same_width_batches, to_array, to_tensor

        for chunk in same_width_batches(images, batch_size):
            if self.backend == "onnxruntime":
                yield chunk, np.stack([to_array(images[i]) for i in chunk])
            else:
                yield chunk, torch.stack([to_tensor(images[i]) for i in chunk])

    @torch.no_grad()
    def encode(self, images: list[Image.Image], batch_size: int = READ_BATCH_SIZE) -> list[torch.Tensor]:
        out: list = [None] * len(images)
        for chunk, x in self._batches(images, batch_size):
            tokens = self.tokens(x)
            for j, i in enumerate(chunk):
                out[i] = tokens[j].clone()
        return out

    @torch.no_grad()
    def ctc_log_probs(self, images: list[Image.Image], batch_size: int = READ_BATCH_SIZE):
        """(index, [T, 6625] CTC log-probabilities) per crop, a batch at a time: a benchmark set's
        full log-probabilities would not fit in memory."""
        for chunk, x in self._batches(images, batch_size):
            if self.backend == "onnxruntime":  # the graph ends with the softmax
                session = self._onnx_session()
                probs = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x})[0])
                log_probs = probs.clamp_min(1e-30).log()
            else:
                log_probs = F.log_softmax(self.model(x), dim=-1)
            for j, i in enumerate(chunk):
                yield i, log_probs[j]

    def _onnx_session(self):
        if self._session is None:
            import onnxruntime as ort

            from unseen.core.assets import asset_file

            options = ort.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads = torch.get_num_threads(), 1
            options.log_severity_level = 3
            self._session = ort.InferenceSession(str(asset_file("ppocr-v4-rec")), options,
                                                 providers=["CPUExecutionProvider"])
        return self._session

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        return self.compact(self.model.features(x))

    def compact(self, features: torch.Tensor) -> torch.Tensor:
        """[..., 120] neck features -> [..., 217] tokens (the features, then the compact CTC columns)."""
        full = F.log_softmax(self.model.head(features), dim=-1)
        missing = torch.full_like(full[..., :1], -1e4)  # log 0, finite in float16
        ascii_columns = [full[..., i : i + 1] if i is not None else missing for i in self._ascii]
        other = full[..., self._other].logsumexp(-1, keepdim=True)
        return torch.cat([features, full[..., :1], *ascii_columns, other], dim=-1)

    def pooled(self, tokens: torch.Tensor) -> torch.Tensor:
        return F.normalize(tokens[:, : self.d_features].mean(0), dim=0)

    def ctc_reading(self, tokens: torch.Tensor) -> str:
        return self.ctc_char_columns(tokens)[0]

    def ctc_char_columns(self, tokens: torch.Tensor) -> tuple[str, list[tuple[int, int]]]:
        return greedy_columns(tokens[:, self.d_features :].argmax(-1).tolist(), self.compact_characters)

    def ctc_log_likelihood(self, tokens: torch.Tensor, text: str) -> float:
        if any(c not in CHARSET for c in text):
            return float("-inf")
        return ctc_score(tokens[:, self.d_features :], [CHARSET.index(c) + 1 for c in text])

    @staticmethod
    def char_boxes(image: Image.Image, spans: list[tuple[int, int]]):
        """Character boxes from CTC spans: a column covers 8 px of the 48-high resized crop and a
        PP-OCRv4 spike sits near its character's middle, so a box starts a column before it."""
        from unseen.core.models.ppocr import crop_width
        from unseen.scenetext.e2str.splits import boxes_from_ctc

        return boxes_from_ctc(image, spans, crop_width(image), step=8, lead=1.0)


def _onnx_encoder(name: str = "ppocr-v6-rec"):
    from unseen.scenetext.onnx_encoder import OnnxCTCEncoder

    return OnnxCTCEncoder(name)


# the encoders a recognizer or a pool can be built on, by asset name: PP-OCRv6 (the default reader), PP-OCRv4 (our
# port, history and the experimental E2STR-lite's encoder) and EasyOCR's CRNN (CRNN-era E2STR-lite)
ENCODERS = {"ppocr-v6-rec": _onnx_encoder, "easyocr-english-g2": FrozenEncoder, "ppocr-v4-rec": PPOCREncoder}
DEFAULT_ENCODER = "ppocr-v6-rec"
# pools of these keep words only: the lexicon gate reads labels, never features
WORDS_ONLY = ("ppocr-v6-", "ppocr-v4-")


def encoder_name(fingerprint: str) -> str:
    """The asset name of the encoder a pool's or checkpoint's fingerprint names."""
    for name in ("ppocr-v6-rec", "ppocr-v4-rec"):
        if fingerprint.startswith(name[:9]):
            return name
    return "easyocr-english-g2"


def keeps_features(fingerprint: str) -> bool:
    """Whether a pool built with this encoder stores visual tokens (only E2STR-lite's encoders)."""
    return not fingerprint.startswith(WORDS_ONLY)


def load_encoder(name: str = DEFAULT_ENCODER):
    from unseen.core.errors import UnseenError

    if name not in ENCODERS:
        raise UnseenError(f"unknown scene-text encoder {name!r}; known: {', '.join(ENCODERS)}")
    return ENCODERS[name]()


def pooled_key(fingerprint: str, tokens: torch.Tensor) -> torch.Tensor:
    """The retrieval key of cached tokens, for the encoder a pool's or store's fingerprint names."""
    width = ENCODERS[encoder_name(fingerprint)].d_features
    return F.normalize(tokens[:, :width].mean(0), dim=0)
