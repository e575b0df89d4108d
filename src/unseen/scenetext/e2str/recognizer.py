"""Reading word images, with or without a context pool.

    rec = Recognizer.load()                         # the shipped default (weights/e2str_lite.safetensors)
    rec.read([image])                               # no context (N = 0): the plain recognizer
    rec.read([image], pool=Pool.load("my_pool"), n=2)

For each query the top-n pool samples (cosine similarity of mean-pooled visual tokens) go
before it, the most similar nearest the query, and the decoder reads
[image_1, text_1, ..., image_n, text_n, image_q] -> text_q. The pool's visual tokens are
cached in the pool; the context's decoder state is computed once per query and reused at every
decoding step (model.generate).

Joint CTC/attention rescoring (Watanabe et al. 2017, "Hybrid CTC/attention"): an attention
decoder alone repeats or drops characters ("Ipswichich"), which the frozen encoder's own CTC
head (the CRNN's or PP-OCRv4's) rarely does. So the final reading is the best of a few
candidates (the decoder's greedy reading, the encoder's CTC reading and, with a pool, the labels
of the retrieved context) under
(1 - w) * log p_decoder(text | context, image) + w * log p_CTC(text | image), w = 0.3 as in that
paper (fixed, not tuned on any benchmark). ``ctc_weight=0`` gives the decoder alone.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file

from unseen.core.errors import UnseenError
from unseen.core.io import atomic_path
from unseen.scenetext.charset import CHARSET, PAD, decode, in_charset
from unseen.scenetext.e2str.data import model_inputs, pack
from unseen.scenetext.e2str.model import E2STR, E2STRConfig
from unseen.scenetext.encoder import FrozenEncoder, load_encoder

CTC_WEIGHT = 0.3

FORMAT = "unseen-e2str/1"
DEFAULT_WEIGHTS = "e2str_lite.safetensors"


def default_weights() -> Path:
    return Path(str(resources.files("unseen.scenetext.e2str").joinpath("weights", DEFAULT_WEIGHTS)))


def save_model_file(model: E2STR, path: Path, *, encoder: str, stage: int, half: bool = False, **info) -> Path:
    state = {name: p.detach().contiguous().cpu() for name, p in model.named_parameters()}
    if half:
        state = {name: t.to(torch.float16) for name, t in state.items()}
    meta = {"format": FORMAT, "config": json.dumps(model.cfg.to_dict()), "encoder": encoder, "stage": str(stage),
            "charset": CHARSET, **{k: str(v) for k, v in info.items()}}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        save_file(state, temporary, metadata=meta)
    return path


def load_model_file(path: Path) -> tuple[E2STR, dict]:
    path = Path(path)
    if not path.exists():
        raise UnseenError(f"{path}: recognizer weights not found")
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
            state = {name: handle.get_tensor(name).float() for name in handle.keys()}
    except Exception as err:  # safetensors raises its own types for a corrupt file
        raise UnseenError(f"{path}: cannot read recognizer weights ({err})") from None
    if meta.get("format") != FORMAT:
        raise UnseenError(f"{path}: not an unseen E2STR checkpoint (format {meta.get('format')!r})")
    if meta.get("charset") != CHARSET:
        raise UnseenError(f"{path}: checkpoint was trained with another character set")
    model = E2STR(E2STRConfig(**json.loads(meta["config"])))
    own = dict(model.named_parameters())
    missing = sorted(set(own) - set(state))
    if missing or set(state) - set(own):
        raise UnseenError(f"{path}: checkpoint does not fit the model "
                          f"(e.g. {(missing or sorted(set(state) - set(own)))[0]!r})")
    with torch.no_grad():
        for name, tensor in state.items():
            own[name].copy_(tensor)
    return model.eval(), meta


@dataclass
class Reading:
    text: str
    confidence: float
    context: list[tuple[int, str, float]] = field(default_factory=list)  # (pool index, label, similarity)


class Recognizer:
    def __init__(self, model: E2STR, encoder: FrozenEncoder, meta: dict | None = None):
        self.model = model.eval()
        self.encoder = encoder
        self.meta = meta or {}
        trained_with = self.meta.get("encoder")
        if trained_with and trained_with != encoder.fingerprint:
            raise UnseenError(f"recognizer was trained on encoder {trained_with}, "
                              f"but the installed one is {encoder.fingerprint}")

    @classmethod
    def load(cls, weights: Path | str | None = None, encoder: FrozenEncoder | None = None) -> "Recognizer":
        model, meta = load_model_file(Path(weights) if weights else default_weights())
        if encoder is None:  # the encoder the checkpoint was trained on
            encoder = load_encoder("ppocr-v4-rec" if meta.get("encoder", "").startswith("ppocr-v4-")
                                   else "easyocr-english-g2")
        return cls(model, encoder, meta)

    def encode(self, images) -> list[torch.Tensor]:
        return self.encoder.encode(list(images))

    def read(self, images, pool=None, n: int = 2, **kwargs) -> list[Reading]:
        return self.read_visuals(self.encode(images), pool=pool, n=n, **kwargs)

    @torch.no_grad()
    def read_visuals(self, visuals: list[torch.Tensor], pool=None, n: int = 2, *, context: str = "retrieved",
                     batch_size: int = 32, seed: int = 0, max_len: int = 32,
                     ctc_weight: float = CTC_WEIGHT) -> list[Reading]:
        """Read cached visual tokens. context: "retrieved" (top-n by similarity), "hybrid" (similarity
        plus how close each pool label is to the no-context reading; one extra decoding pass),
        "random" (n random pool samples, a control) or "none". ``ctc_weight`` > 0 rescores
        candidate readings jointly with the CRNN's CTC head (see the module docstring)."""
        use_pool = pool is not None and n > 0 and context != "none"
        picks: list[list[tuple[int, float]]] = [[] for _ in visuals]
        if use_pool:
            pool.check_encoder(self.encoder.fingerprint)
            if context == "retrieved":
                keys = torch.stack([self.encoder.pooled(v.float()) for v in visuals])
                idx, sims = pool.retrieve(keys, n)
                picks = [list(zip(i.tolist(), s.tolist())) for i, s in zip(idx, sims)]
            elif context == "hybrid":
                picks = self._hybrid_picks(visuals, pool, n, batch_size, max_len)
            elif context == "random":
                if len(pool) == 0:
                    pool.retrieve(torch.zeros(1, 256), n)  # raises the empty-pool error
                rng = random.Random(seed)
                keys = torch.stack([self.encoder.pooled(v.float()) for v in visuals])
                for q, key in enumerate(keys):
                    chosen = rng.sample(range(len(pool)), min(n, len(pool)))
                    picks[q] = [(j, float(key @ pool.keys[j])) for j in chosen]
            else:
                raise UnseenError(f"unknown context mode {context!r}; use retrieved, hybrid, random or none")
        results: list[Reading] = [None] * len(visuals)
        # sort by length so a batch pads little; outputs go back to input order
        order = sorted(range(len(visuals)), key=lambda q: visuals[q].shape[0])
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            sequences = []
            for q in chunk:
                ctx = sorted(picks[q], key=lambda p: p[1])  # least similar first, most similar nearest the query
                seq = [(pool.visuals[j].float(), pool.texts[j]) for j, _ in ctx]
                seq.append((visuals[q].float(), None))
                sequences.append(seq)
            ids, confidence = self.model.generate(*model_inputs(pack(sequences, left_pad=True)), max_len=max_len)
            texts = [decode(row) for row in ids]
            if ctc_weight > 0:
                texts = self._rescore(sequences, texts,
                                      [[pool.texts[j] for j, _ in picks[q]] if use_pool else [] for q in chunk],
                                      ctc_weight)
            for q, text, conf in zip(chunk, texts, confidence):
                context_info = [(j, pool.texts[j], s) for j, s in picks[q]] if use_pool else []
                results[q] = Reading(text, float(torch.tensor(conf).exp()), context_info)
        return results

    def _rescore(self, sequences, decoded: list[str], context_labels: list[list[str]], ctc_weight: float) -> list[str]:
        """For each query, the candidate with the best joint decoder + CTC log-likelihood."""
        candidates = []
        for seq, text, labels in zip(sequences, decoded, context_labels):
            options = [text, self.encoder.ctc_reading(seq[-1][0]).strip(), *labels]
            candidates.append(list(dict.fromkeys(c for c in options if c and in_charset(c))) or [text])
        flat = [(q, c) for q, options in enumerate(candidates) for c in options]
        if all(len(options) == 1 for options in candidates):
            return [options[0] for options in candidates]
        joint = self.joint_scores(sequences, flat, ctc_weight)
        best: dict[int, tuple[float, str]] = {}
        for (q, c), score in zip(flat, joint.tolist()):
            if q not in best or score > best[q][0]:
                best[q] = (score, c)
        return [best[q][1] for q in range(len(candidates))]

    @torch.no_grad()
    def joint_scores(self, sequences, pairs: list[tuple[int, str]], ctc_weight: float = CTC_WEIGHT) -> torch.Tensor:
        """(1 - w) log p_decoder(c | context, image) + w log p_CTC(c | image) for each (query, candidate c)
        pair; ``sequences[q]`` is query q's context segments followed by (its visual tokens, None)."""
        batch = pack([sequences[q][:-1] + [(sequences[q][-1][0], c)] for q, c in pairs])
        logp = F.log_softmax(self.model(*model_inputs(batch)).float(), dim=-1)
        targets = batch["targets"]
        # the candidate is the last segment of each row: its target positions are the last slot's
        last_slot = batch["slot"].masked_fill(targets == PAD, -1).amax(1, keepdim=True)
        in_query = (batch["slot"] == last_slot) & (targets != PAD)
        token_logp = logp.gather(-1, targets.clamp(min=0)[..., None])[..., 0]
        decoder_scores = (token_logp * in_query).sum(1)
        ctc_scores = torch.tensor([self.encoder.ctc_log_likelihood(sequences[q][-1][0], c) for q, c in pairs])
        return (1 - ctc_weight) * decoder_scores + ctc_weight * ctc_scores

    def _hybrid_picks(self, visuals, pool, n, batch_size, max_len, weight: float = 1.0):
        """Top-n by cosine similarity + weight * (1 - NED(no-context reading, pool label)), 36-char normalized."""
        from unseen.scenetext.metrics import normalize, one_minus_ned

        readings = self.read_visuals(visuals, batch_size=batch_size, max_len=max_len)
        keys = torch.stack([self.encoder.pooled(v.float()) for v in visuals])
        if len(pool) == 0:
            pool.retrieve(keys, n)  # raises the empty-pool error
        sims = keys @ pool.keys.T
        labels = [normalize(t) for t in pool.texts]
        picks = []
        for q, reading in enumerate(readings):
            text = normalize(reading.text)
            closeness = torch.tensor([one_minus_ned(text, label) for label in labels])
            top = (sims[q] + weight * closeness).topk(min(n, len(pool)))
            picks.append([(j, float(sims[q, j])) for j in top.indices.tolist()])
        return picks

