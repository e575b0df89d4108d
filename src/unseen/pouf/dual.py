"""Image-text (dual-encoder) models as POUF targets.

One interface, :class:`DualEncoder`: encode images, encode class prompts (also from
token embeddings, for learnable context), and the POUF protocol on top (prepare,
collate, forward, prototypes, class_logits). The adapters (Hugging Face CLIP, open_clip,
the offline ConSE) and the string-keyed loader are in dual_models.py.

Modes: prompt (CoOp-style learnable context vectors in place of the template's words
before the class name, both encoders frozen, image features cached over augmented
views), ln (the norm layers' affine weights of both towers), lora (peft on the
attention/projection layers), full (both towers). Batch-norm statistics stay frozen.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torch import nn

from unseen.core.errors import UnseenError

MODES = ("prompt", "ln", "lora", "full")
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def augment(image: Image.Image, seed: int, *, scale=(0.5, 1.0)) -> Image.Image:
    """A random resized crop and horizontal flip, fixed by ``seed`` (the same view every epoch)."""
    rng = random.Random(seed)
    width, height = image.size
    area = width * height * rng.uniform(*scale)
    ratio = rng.uniform(3 / 4, 4 / 3)
    w = int(round(min(width, (area * ratio) ** 0.5)))
    h = int(round(min(height, (area / ratio) ** 0.5)))
    left, top = rng.randint(0, width - w), rng.randint(0, height - h)
    image = image.crop((left, top, left + w, top + h))
    return ImageOps.mirror(image) if rng.random() < 0.5 else image


def resize_normalize(images: Sequence[Image.Image], size: int, mean, std) -> torch.Tensor:
    mean_t, std_t = torch.tensor(mean).view(3, 1, 1), torch.tensor(std).view(3, 1, 1)
    out = []
    for image in images:
        image = image.convert("RGB").resize((size, size), Image.BICUBIC)
        x = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).view(size, size, 3)
        out.append((x.permute(2, 0, 1).float() / 255 - mean_t) / std_t)
    return torch.stack(out)


class ImageRef:
    """An image of a record set under one view (0 = as is, v > 0 = augmentation v)."""

    __slots__ = ("records", "index", "view")

    def __init__(self, records, index: int, view: int):
        self.records, self.index, self.view = records, index, view

    def load(self) -> Image.Image:
        image = self.records[self.index]["image"]
        return image if self.view == 0 else augment(image, seed=self.index * 1009 + self.view)


class DualEncoder(nn.Module):
    kind = "image_text"

    def __init__(self, class_names: Sequence[str], templates: Sequence[str], *, mode: str = "prompt",
                 num_views: int = 1, scale: float = 100.0, context_template: str | None = None, lora_r: int = 8):
        super().__init__()
        if mode not in MODES:
            raise UnseenError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        if len(class_names) < 2:
            raise UnseenError("an image task needs at least two classes")
        self.class_names, self.templates = list(class_names), list(templates)
        self.mode, self.num_views, self.num_classes, self.scale = mode, num_views, len(class_names), scale
        self.context_template = context_template or self.templates[0]
        self.lora_r = lora_r
        self._fixed_prototypes: torch.Tensor | None = None

    # -- what each adapter provides -------------------------------------------------------

    def image_tower(self) -> nn.Module:
        raise NotImplementedError

    def text_tower(self) -> nn.Module:
        raise NotImplementedError

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        raise NotImplementedError

    def tokenize(self, texts: Sequence[str]) -> dict:
        """{"input_ids": [N, T], "attention_mask": [N, T]}"""
        raise NotImplementedError

    def token_embeddings(self, input_ids: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def plain_ids(self, text: str) -> list[int]:
        """Token ids of ``text`` without special tokens."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode_text_embeddings(self, embeddings: torch.Tensor, tokens: dict) -> torch.Tensor:
        raise NotImplementedError

    def lora_targets(self) -> list[str] | str:
        raise NotImplementedError

    # -- shared machinery -----------------------------------------------------------------

    def setup_mode(self) -> None:
        """Call at the end of an adapter's __init__, once its towers exist."""
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        towers = [self.image_tower(), self.text_tower()]
        if self.mode == "prompt":
            self._init_context()
        elif self.mode == "full":
            for tower in towers:
                for parameter in tower.parameters():
                    parameter.requires_grad_(True)
        elif self.mode == "ln":
            for tower in towers:
                for module in tower.modules():
                    norm_layer = isinstance(module, (nn.LayerNorm, nn.BatchNorm2d, nn.GroupNorm))
                    if norm_layer or "norm" in type(module).__name__.lower():
                        for parameter in module.parameters(recurse=False):
                            parameter.requires_grad_(True)
        elif self.mode == "lora":
            from peft import LoraConfig, inject_adapter_in_model

            config = LoraConfig(r=self.lora_r, lora_alpha=2 * self.lora_r, target_modules=self.lora_targets(),
                                bias="none")
            for tower in towers:
                inject_adapter_in_model(config, tower)
            for name, parameter in self.named_parameters():
                parameter.requires_grad_("lora_" in name)

    def train(self, mode: bool = True):
        """Batch-norm statistics stay frozen (small target batches would wreck them) and dropout
        stays off, so that a step sees the same encoders as zero-shot inference and selection."""
        super().train(mode)
        for child in self.children():  # gradients flow in eval mode; only BN updates and dropout are off
            child.eval()
        return self

    def _init_context(self) -> None:
        template = self.context_template
        if not template.count("{}") == 1:
            raise UnseenError(f"context template {template!r} must contain one '{{}}' for the class name")
        prefix = template.split("{}")[0].strip()
        if not prefix:
            raise UnseenError(f"context template {template!r} has no words before the class name to learn")
        prompts = [template.format(name) for name in self.class_names]
        tokens = self.tokenize(prompts)
        core = self.plain_ids(prefix)
        ids0 = tokens["input_ids"][0].tolist()
        found = next(((start, core) for start in range(len(ids0) - len(core) + 1)
                      if ids0[start : start + len(core)] == core), None)
        if not core or found is None:
            raise UnseenError(f"cannot locate the words {prefix!r} at the start of the tokenized prompts")
        offset, core = found
        for row in tokens["input_ids"].tolist():
            if row[offset : offset + len(core)] != core:
                raise UnseenError(f"the prompts do not all start with {prefix!r} once tokenized")
        with torch.no_grad():
            init = self.token_embeddings(torch.tensor([core]))[0].clone()
        self.context = nn.Parameter(init)  # [n_ctx, d], initialised at the template's own words (CoOp)
        self._context_slice = (offset, offset + len(core))
        self._context_tokens = tokens

    def _text_parameters_train(self) -> bool:
        return self.mode != "prompt" and any(p.requires_grad for p in self.text_tower().parameters())

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        tokens = self.tokenize(texts)
        return self.encode_text_embeddings(self.token_embeddings(tokens["input_ids"]), tokens)

    def class_embeddings(self, templates: Sequence[str]) -> torch.Tensor:
        """CLIP's template ensembling: normalise each template's class embedding, average, renormalise."""
        per_template = [F.normalize(self.encode_texts([t.format(c) for c in self.class_names]), dim=-1)
                        for t in templates]
        return F.normalize(torch.stack(per_template).mean(0), dim=-1)

    def prototypes(self, view: int = 0) -> torch.Tensor:
        if self.mode == "prompt":
            tokens = self._context_tokens
            embeddings = self.token_embeddings(tokens["input_ids"])
            start, end = self._context_slice
            embeddings = torch.cat([embeddings[:, :start], self.context.unsqueeze(0).expand(len(embeddings), -1, -1),
                                    embeddings[:, end:]], dim=1)
            return self.encode_text_embeddings(embeddings, tokens)
        if self._text_parameters_train() and torch.is_grad_enabled():
            return self.class_embeddings(self.templates)
        if self._fixed_prototypes is None or self._text_parameters_train():
            with torch.no_grad():
                self._fixed_prototypes = self.class_embeddings(self.templates)
        return self._fixed_prototypes

    def set_templates(self, templates: Sequence[str]) -> None:
        self.templates = list(templates)
        self._fixed_prototypes = None

    def class_logits(self, features: torch.Tensor, view: int = 0) -> torch.Tensor:
        return self.scale * F.normalize(features, dim=-1) @ F.normalize(self.prototypes(view), dim=-1).T

    # -- the POUF protocol ----------------------------------------------------------------

    @property
    def caches_features(self) -> bool:
        return self.mode == "prompt"  # the image tower is frozen: encode each view once

    @torch.inference_mode()
    def image_features(self, refs: Sequence[ImageRef], *, batch_size: int = 64, progress=None) -> list[torch.Tensor]:
        out = []
        for start in range(0, len(refs), batch_size):
            chunk = refs[start : start + batch_size]
            pixels = self.preprocess([ref.load() for ref in chunk])
            out.extend(self.encode_images(pixels).float().cpu())
            if progress is not None:
                progress(len(chunk))
        return out

    def prepare(self, refs: Sequence[ImageRef], view: int, *, progress=None) -> list:
        return self.image_features(refs, progress=progress) if self.caches_features else list(refs)

    def collate(self, items: list, view) -> dict:
        if isinstance(items[0], ImageRef):
            return {"pixels": self.preprocess([ref.load() for ref in items]), "view": view}
        return {"features": torch.stack(items), "view": view}

    def forward(self, batch: dict) -> torch.Tensor:
        if "features" in batch:
            return batch["features"]
        return self.encode_images(batch["pixels"])
