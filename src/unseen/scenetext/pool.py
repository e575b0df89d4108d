"""The context pool: labelled samples of one domain, with their visual tokens cached.

A pool is a folder a user keeps per domain:

    pool.json            format, encoder fingerprint, one entry per sample (file, text, source, and
                         "self_labelled": true for a reading the reader added itself, ``--evolve``),
                         and for PP-OCRv6 (or v4) pools the lexicon gate's setting (lexicon_gate.py) and
                         the labelled crops it was chosen on, if not on the pool itself (gate_crops)
    images/              a copy of every sample image
    gate/                the gate crops' images (pool build --gate-on N)
    features.safetensors E2STR-lite pools only (scenetext/e2str): tokens [sum T_i, d] fp16, lengths [n],
                         keys [n, 256] for retrieval by the cosine similarity of mean-pooled tokens

The default reader (PP-OCRv6) uses a pool's words, never its features, so its pools compute none. A pool
records which encoder it was built for; reading it with another is an error (rebuild the pool).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from unseen.core.data import open_image
from unseen.core.errors import DataError, UnseenError
from unseen.core.io import atomic_path, atomic_write
from unseen.scenetext.charset import check_label
from unseen.scenetext.encoder import FrozenEncoder, keeps_features, pooled_key

FORMAT = "unseen-str-pool/1"


@dataclass
class PoolSample:
    image: object  # PIL image, or a path to one
    text: str
    source: str  # where it came from, for --explain and ls
    where: str = ""  # file:line for error messages


def _decoded(sample: PoolSample):
    """The sample's image, opened from its path where it is not an image already."""
    if hasattr(sample.image, "size"):
        return sample.image
    return open_image(sample.image, where=sample.where or str(sample.image))


class Pool:
    def __init__(self, encoder: str, texts=(), sources=(), files=(), visuals=(), root: Path | None = None,
                 gate: dict | None = None, gate_crops: list[dict] | None = None, self_labelled=()):
        self.encoder = encoder
        self.gate = gate  # the lexicon gate's setting (PP-OCRv6/v4 pools)
        self.gate_crops = list(gate_crops or [])  # [{"file", "text"}]: other labelled crops the gate is chosen on
        self.texts, self.sources, self.files = list(texts), list(sources), list(files)
        self.self_labelled = list(self_labelled) or [False] * len(self.texts)
        self.visuals = list(visuals)
        self.root = Path(root) if root else None
        self._keys = None

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def keys(self) -> torch.Tensor:
        if self._keys is None or self._keys.shape[0] != len(self):
            self._keys = (torch.stack([pooled_key(self.encoder, v.float()) for v in self.visuals]) if self.visuals
                          else torch.zeros(0, 256))
        return self._keys

    # building ---------------------------------------------------------------------------------
    @classmethod
    def new(cls, encoder: FrozenEncoder, root: Path | None = None) -> "Pool":
        return cls(encoder.fingerprint, root=root)

    def extended(self, texts, visuals, sources) -> "Pool":
        """A new, unsaved pool: these samples plus already encoded ones (labels, visual tokens, sources)."""
        texts, sources = list(texts), list(sources)
        return Pool(self.encoder, self.texts + texts, self.sources + sources, self.files + [""] * len(texts),
                    self.visuals + [v.to(torch.float16) for v in visuals],
                    self_labelled=self.self_labelled + [False] * len(texts))

    @property
    def labelled(self) -> list[int]:
        """Indices of the samples a person labelled (the lexicon gate's words); the rest are self-labelled."""
        return [i for i, own in enumerate(self.self_labelled) if not own]

    @property
    def keeps_features(self) -> bool:
        return keeps_features(self.encoder)

    def add(self, samples: list[PoolSample], encoder, self_labelled: bool = False) -> int:
        """Check labels, decode images (and encode them, for an E2STR-lite pool), append; returns how many were
        added. ``self_labelled``: the reader's own sure readings (``--evolve``), not a person's labels."""
        self.check_encoder(encoder.fingerprint)
        images = []
        for sample in samples:
            check_label(sample.text, sample.where or sample.source, getattr(encoder, "spelling", None))
            image = _decoded(sample)
            if image.width == 0 or image.height == 0:
                raise DataError(f"{sample.where or sample.source}: image has zero size")
            images.append(image)
        visuals = encoder.encode(images) if images and self.keeps_features else [None] * len(images)
        for sample, image, visual in zip(samples, images, visuals):
            name = f"images/{len(self.texts):06d}.png"
            if self.root is not None:
                (self.root / "images").mkdir(parents=True, exist_ok=True)
                image.save(self.root / name)
            self.texts.append(sample.text)
            self.sources.append(sample.source)
            self.files.append(name)
            self.self_labelled.append(self_labelled)
            if visual is not None:
                self.visuals.append(visual[:, : encoder.pool_width].to(torch.float16))
        self._keys = None
        if not self_labelled:
            self.gate = None  # chosen for the old labels; the caller refits it (lexicon_gate)
        return len(samples)

    def remove(self, indices) -> int:
        """Drop samples by index; returns how many. Removing a person's label clears the gate (refit it);
        self-labelled samples never entered the gate's choice."""
        drop = {i for i in indices if 0 <= i < len(self)}
        if any(not self.self_labelled[i] for i in drop):
            self.gate = None
        keep = [i for i in range(len(self)) if i not in drop]
        for name in ("texts", "sources", "files", "self_labelled"):
            setattr(self, name, [getattr(self, name)[i] for i in keep])
        if self.visuals:
            self.visuals = [self.visuals[i] for i in keep]
        self._keys = None
        return len(drop)

    def keep_gate_crops(self, samples: list[PoolSample]) -> None:
        """Keep labelled crops that are not in the pool, for choosing the lexicon gate on (copied to gate/)."""
        if self.root is None:
            raise UnseenError("the pool has no folder to keep gate crops in; give it one first")
        (self.root / "gate").mkdir(parents=True, exist_ok=True)
        self.gate_crops = []
        for i, sample in enumerate(samples):
            name = f"gate/{i:06d}.png"
            _decoded(sample).save(self.root / name)
            self.gate_crops.append({"file": name, "text": sample.text, "source": sample.source})

    # persistence ------------------------------------------------------------------------------
    def save(self, root: Path | None = None) -> Path:
        root = Path(root or self.root)
        if root is None:
            raise UnseenError("the pool has no folder; pass one to save()")
        root.mkdir(parents=True, exist_ok=True)
        for folder in ("images", "gate"):  # the sample and gate-crop images go along when saved elsewhere
            if self.root is not None and self.root.resolve() != root.resolve() and (self.root / folder).is_dir():
                shutil.copytree(self.root / folder, root / folder, dirs_exist_ok=True)
        self.root = root
        if self.keeps_features:
            tensors = {
                "tokens": (torch.cat(self.visuals).to(torch.float16) if self.visuals
                           else torch.zeros(0, 353, dtype=torch.float16)),
                "lengths": torch.tensor([v.shape[0] for v in self.visuals], dtype=torch.int64),
                "keys": self.keys.contiguous(),
            }
            with atomic_path(root / "features.safetensors") as temporary:
                save_file(tensors, temporary)
        samples = [{"file": f, "text": t, "source": s, **({"self_labelled": True} if own else {})}
                   for f, t, s, own in zip(self.files, self.texts, self.sources, self.self_labelled)]
        meta = {"format": FORMAT, "encoder": self.encoder, "count": len(self),
                **({"gate": self.gate} if self.gate else {}),
                **({"gate_crops": self.gate_crops} if self.gate_crops else {}), "samples": samples}
        atomic_write(root / "pool.json", json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
        return root

    @classmethod
    def load(cls, root: Path) -> "Pool":
        root = Path(root)
        meta_path = root / "pool.json"
        if not meta_path.exists():
            raise DataError(f"{root}: not a context pool (no pool.json); make one with `unseen str pool build`")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise DataError(f"{meta_path}: malformed JSON ({err.msg})") from None
        if meta.get("format") != FORMAT:
            raise DataError(f"{meta_path}: field 'format' is {meta.get('format')!r}, expected {FORMAT!r}")
        samples = meta.get("samples", [])
        visuals = []
        if samples and keeps_features(str(meta.get("encoder", ""))):
            try:
                tensors = load_file(root / "features.safetensors")
            except (OSError, Exception) as err:  # safetensors raises its own error type
                raise DataError(f"{root / 'features.safetensors'}: cannot read ({err})") from None
            lengths = tensors["lengths"].tolist()
            if len(lengths) != len(samples):
                raise DataError(f"{root / 'features.safetensors'}: {len(lengths)} samples, "
                                f"pool.json lists {len(samples)}")
            visuals = list(torch.split(tensors["tokens"], lengths))
        return cls(meta["encoder"], [s["text"] for s in samples], [s["source"] for s in samples],
                   [s["file"] for s in samples], visuals, root=root, gate=meta.get("gate"),
                   gate_crops=meta.get("gate_crops"), self_labelled=[bool(s.get("self_labelled")) for s in samples])

    # use --------------------------------------------------------------------------------------
    def check_encoder(self, fingerprint: str) -> None:
        if self.encoder != fingerprint:
            where = self.root or "the pool"
            from unseen.scenetext.encoder import encoder_name

            built_with = encoder_name(self.encoder)
            hint = f"read it with --encoder {built_with}, or " if built_with != encoder_name(fingerprint) else ""
            raise UnseenError(f"{where}: pool was built with encoder {self.encoder}, this reader uses {fingerprint}; "
                              f"{hint}rebuild the pool with `unseen str pool build`")

    def retrieve(self, queries: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-n pool indices and cosine similarities for query keys [B, 256], best first."""
        if len(self) == 0:
            where = self.root or "the pool"
            raise UnseenError(f"{where}: the context pool is empty; add samples with `unseen str pool add`")
        sims = queries.float() @ self.keys.T
        top = sims.topk(min(n, len(self)), dim=1)
        return top.indices, top.values


def read_labels_file(labels: Path, images_dir: Path | None = None) -> list[PoolSample]:
    """``<image>\\t<label>`` lines; the image path is relative to ``images_dir`` or the labels file's folder."""
    try:
        lines = Path(labels).read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise DataError(f"{labels}: cannot read ({err.strerror or err})") from None
    samples = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parts = line.split("\t", 1)
        if len(parts) != 2:
            raise DataError(f"{labels}:{number}: expected '<image path>\\t<label>'")
        name, text = parts
        candidates = [Path(images_dir) / name] if images_dir else []
        candidates += [Path(labels).parent / name]
        if images_dir:
            candidates.append(Path(images_dir) / Path(name).name)
        path = next((c for c in candidates if c.exists()), candidates[0])
        samples.append(PoolSample(path, text, str(path), where=f"{labels}:{number}"))
    return samples
