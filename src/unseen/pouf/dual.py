"""Image-text (dual-encoder) models as POUF targets.

One interface, :class:`DualEncoder`: encode images, encode class prompts (also from
token embeddings, for learnable context), and the POUF protocol on top (prepare,
collate, forward, prototypes, class_logits). Adapters:

  HFCLIP      Hugging Face ``CLIPModel`` (any CLIP checkpoint folder or hub id)
  OpenCLIP    an ``open_clip`` model (imported only when used)
  ConSE       the offline stand-in built from the shipped assets (see :class:`ConSE`)

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

    def __init__(self, class_names: Sequence[str], templates: Sequence[str], *, mode: str = "prompt", num_views: int = 1,
                 scale: float = 100.0, context_template: str | None = None, lora_r: int = 8):
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
                    if isinstance(module, (nn.LayerNorm, nn.BatchNorm2d, nn.GroupNorm)) or "norm" in type(module).__name__.lower():
                        for parameter in module.parameters(recurse=False):
                            parameter.requires_grad_(True)
        elif self.mode == "lora":
            from peft import LoraConfig, inject_adapter_in_model

            config = LoraConfig(r=self.lora_r, lora_alpha=2 * self.lora_r, target_modules=self.lora_targets(), bias="none")
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
        found = next(((start, core) for start in range(len(ids0) - len(core) + 1) if ids0[start : start + len(core)] == core), None)
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
        per_template = [F.normalize(self.encode_texts([t.format(c) for c in self.class_names]), dim=-1) for t in templates]
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


# --- Hugging Face CLIPModel -------------------------------------------------------------


class HFCLIP(DualEncoder):
    def __init__(self, model, tokenizer, class_names, templates, *, image_size: int | None = None, **kwargs):
        super().__init__(class_names, templates, **kwargs)
        self.clip, self.tokenizer = model, tokenizer
        self.image_size = image_size or model.config.vision_config.image_size
        self.setup_mode()

    def image_tower(self):
        return nn.ModuleList([self.clip.vision_model, self.clip.visual_projection])

    def text_tower(self):
        return nn.ModuleList([self.clip.text_model, self.clip.text_projection])

    def lora_targets(self):
        return ["q_proj", "v_proj"]

    def preprocess(self, images):
        return resize_normalize(images, self.image_size, CLIP_MEAN, CLIP_STD)

    def encode_images(self, pixels):
        output = self.clip.get_image_features(pixel_values=pixels.to(self.clip.device))
        return output if torch.is_tensor(output) else output.pooler_output

    def tokenize(self, texts):
        tokens = self.tokenizer(list(texts), padding=True, return_tensors="pt")
        return {"input_ids": tokens["input_ids"], "attention_mask": tokens["attention_mask"]}

    def token_embeddings(self, input_ids):
        return self.clip.text_model.embeddings.token_embedding(input_ids.to(self.clip.device))

    def encode_text_embeddings(self, embeddings, tokens):
        from transformers.masking_utils import create_causal_mask

        text = self.clip.text_model
        mask = tokens["attention_mask"].to(embeddings.device)
        hidden = text.embeddings(inputs_embeds=embeddings)
        causal = create_causal_mask(config=text.config, inputs_embeds=hidden, attention_mask=mask, past_key_values=None)
        hidden = text.encoder(inputs_embeds=hidden, attention_mask=causal, is_causal=True).last_hidden_state
        hidden = text.final_layer_norm(hidden)
        eos = mask.sum(1) - 1  # the end token closes every prompt (padding follows it)
        return self.clip.text_projection(hidden[torch.arange(len(hidden), device=hidden.device), eos])


def load_hf_clip(name_or_path: str, class_names, templates, **kwargs) -> HFCLIP:
    from transformers import AutoTokenizer, CLIPModel

    try:
        model = CLIPModel.from_pretrained(name_or_path, dtype=torch.float32).eval()
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    except (OSError, ValueError) as err:
        raise UnseenError(f"{name_or_path}: cannot load a CLIP model ({str(err).splitlines()[0]})") from None
    scale = kwargs.pop("scale", None) or float(model.logit_scale.detach().exp())
    return HFCLIP(model, tokenizer, class_names, templates, scale=scale, **kwargs)


# --- open_clip ----------------------------------------------------------------------------


class OpenCLIP(DualEncoder):
    """An ``open_clip`` CLIP model (open_clip 2.2x/3.x layout: batch-first text transformer)."""

    def __init__(self, model, tokenizer, class_names, templates, *, image_size: int = 224, **kwargs):
        super().__init__(class_names, templates, **kwargs)
        self.clip, self.tokenizer, self.image_size = model, tokenizer, image_size
        self.setup_mode()

    def image_tower(self):
        return self.clip.visual

    def text_tower(self):
        parts = [self.clip.transformer, self.clip.token_embedding, self.clip.ln_final]
        return nn.ModuleList(parts)

    def lora_targets(self):
        return ["c_fc", "c_proj", "out_proj"]

    def preprocess(self, images):
        return resize_normalize(images, self.image_size, CLIP_MEAN, CLIP_STD)

    def encode_images(self, pixels):
        return self.clip.encode_image(pixels)

    def tokenize(self, texts):
        ids = self.tokenizer(list(texts))
        return {"input_ids": ids, "attention_mask": (ids != 0).long()}

    def token_embeddings(self, input_ids):
        return self.clip.token_embedding(input_ids)

    def plain_ids(self, text):
        ids = self.tokenizer([text])[0].tolist()
        end = ids.index(0) if 0 in ids else len(ids)
        return ids[1 : end - 1]  # drop start and end of text

    def encode_text_embeddings(self, embeddings, tokens):
        from open_clip.transformer import text_global_pool

        clip = self.clip
        x = embeddings + clip.positional_embedding.to(embeddings.dtype)
        x = clip.transformer(x, attn_mask=clip.attn_mask)
        x = clip.ln_final(x)
        x = text_global_pool(x, tokens["input_ids"], clip.text_pool_type, eos_token_id=getattr(clip, "text_eos_id", None))
        if clip.text_projection is not None:
            x = clip.text_projection(x) if isinstance(clip.text_projection, nn.Linear) else x @ clip.text_projection
        return x


def load_open_clip(name: str, class_names, templates, *, pretrained: str | None = None, **kwargs) -> OpenCLIP:
    try:
        import open_clip
    except Exception as err:  # noqa: BLE001 - torchvision mismatches raise all sorts of errors at import
        raise UnseenError(f"open_clip is not importable here ({type(err).__name__}: {err}); "
                          "pip install open_clip_torch with a matching torchvision, or use a Hugging Face CLIP folder") from None
    model = open_clip.create_model(name, pretrained=pretrained).eval()
    tokenizer = open_clip.get_tokenizer(name)
    size = model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    scale = kwargs.pop("scale", None) or float(model.logit_scale.detach().exp())
    return OpenCLIP(model, tokenizer, class_names, templates, image_size=int(size), scale=scale, **kwargs)


# --- ConSE: the offline stand-in ------------------------------------------------------------


class ConSE(DualEncoder):
    """A zero-shot image-text model from two shipped assets, after Norouzi et al. (2014).

    The image embedding is the probability-weighted mix of the text embeddings of the
    ImageNet classes the image classifier (EfficientNet-Lite0) finds most likely, with
    their probabilities renormalised over the ``top_k``; the class prompts go through
    the same sentence encoder (all-MiniLM-L6-v2, mean pooling), so both live in MiniLM's
    384-dimensional space. ``center`` subtracts the mean ImageNet class embedding (a
    constant of the model) from both sides. The defaults (top 20, no centring) are the
    best on PACS *photos* (72 %); cartoon and sketch were not looked at to choose them.
    """

    def __init__(self, image_net, text_encoder, tokenizer, imagenet_names, class_names, templates, *, top_k: int = 20,
                 center: bool = False, bank_template: str = "a photo of a {}.", **kwargs):
        super().__init__(class_names, templates, **kwargs)
        self.image_net, self.text_encoder, self.tokenizer, self.top_k = image_net, text_encoder, tokenizer, top_k
        self.centered = center
        with torch.no_grad():
            bank = F.normalize(self._encode_plain([bank_template.format(n) for n in imagenet_names]), dim=-1)
        self.register_buffer("bank", bank, persistent=False)  # [1000, 384], fixed
        self.register_buffer("center", bank.mean(0) if center else torch.zeros_like(bank[0]), persistent=False)
        self.setup_mode()

    def _encode_plain(self, texts, batch_size: int = 128):
        out = []
        for start in range(0, len(texts), batch_size):
            tokens = self.tokenize(texts[start : start + batch_size])
            out.append(self.encode_text_embeddings(self.token_embeddings(tokens["input_ids"]), tokens, center=False))
        return torch.cat(out)

    def image_tower(self):
        return self.image_net

    def text_tower(self):
        return self.text_encoder

    def lora_targets(self):
        return r".*(query|value|_project_conv)"

    def preprocess(self, images):
        from unseen.core.models import preprocess_efficientnet

        return preprocess_efficientnet(images)

    def encode_images(self, pixels):
        probabilities = self.image_net(pixels).softmax(-1)
        weights, indices = probabilities.topk(self.top_k, dim=-1)
        weights = weights / weights.sum(-1, keepdim=True)
        return (weights.unsqueeze(-1) * self.bank[indices]).sum(1) - self.center

    def tokenize(self, texts):
        tokens = self.tokenizer(list(texts), padding=True, return_tensors="pt")
        return {"input_ids": tokens["input_ids"], "attention_mask": tokens["attention_mask"]}

    def token_embeddings(self, input_ids):
        return self.text_encoder.embeddings.word_embeddings(input_ids)

    def encode_text_embeddings(self, embeddings, tokens, center: bool = True):
        mask = tokens["attention_mask"].to(embeddings.device)
        hidden = self.text_encoder(inputs_embeds=embeddings, attention_mask=mask).last_hidden_state
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = F.normalize((hidden * weights).sum(1) / weights.sum(1), dim=-1)
        return pooled - self.center if center else pooled


def load_conse(class_names, templates, *, top_k: int = 20, **kwargs) -> ConSE:
    from unseen.core.assets import load_asset, load_sentence_encoder
    from unseen.core.models import imagenet_class_names

    image_net = load_asset("efficientnet-lite0")
    text_encoder, tokenizer = load_sentence_encoder("minilm-l6-v2")
    return ConSE(image_net, text_encoder, tokenizer, imagenet_class_names(), class_names, templates, top_k=top_k, **kwargs)


OFFLINE_IMAGE_MODEL = "conse"


def load_dual_encoder(name: str, class_names, templates, **kwargs) -> DualEncoder:
    """``conse`` (offline default), ``open_clip:ARCH[:PRETRAINED]``, or a Hugging Face CLIP folder / hub id."""
    if name == OFFLINE_IMAGE_MODEL:
        kwargs["scale"] = kwargs.get("scale") or 100.0
        return load_conse(class_names, templates, **kwargs)
    if name.startswith("open_clip:"):
        _, arch, *rest = name.split(":")
        return load_open_clip(arch, class_names, templates, pretrained=rest[0] if rest else None, **kwargs)
    kwargs.pop("top_k", None)
    return load_hf_clip(name, class_names, templates, **kwargs)
