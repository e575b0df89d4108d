"""Image-text models behind the :class:`~unseen.pouf.dual.DualEncoder` interface, and their loader.

  HFCLIP      Hugging Face ``CLIPModel`` (any CLIP checkpoint folder or hub id)
  OpenCLIP    an ``open_clip`` model (imported only when used)
  ConSE       the offline stand-in built from the shipped assets (see :class:`ConSE`)

``load_dual_encoder(name, ...)`` picks one by name: ``conse``, ``open_clip:ARCH[:PRETRAINED]``,
or a CLIP folder / hub id.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from unseen.core.assets import mean_pooled
from unseen.core.errors import UnseenError
from unseen.pouf.dual import CLIP_MEAN, CLIP_STD, DualEncoder, resize_normalize

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
        x = text_global_pool(x, tokens["input_ids"], clip.text_pool_type,
                             eos_token_id=getattr(clip, "text_eos_id", None))
        if clip.text_projection is not None:
            x = clip.text_projection(x) if isinstance(clip.text_projection, nn.Linear) else x @ clip.text_projection
        return x


def load_open_clip(name: str, class_names, templates, *, pretrained: str | None = None, **kwargs) -> OpenCLIP:
    try:
        import open_clip
    except Exception as err:  # noqa: BLE001 - torchvision mismatches raise all sorts of errors at import
        raise UnseenError(f"open_clip is not importable here ({type(err).__name__}: {err}); "
                          "pip install open_clip_torch with a matching torchvision, or use a Hugging Face CLIP "
                          "folder") from None
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
        pooled = mean_pooled(self.text_encoder(inputs_embeds=embeddings, attention_mask=mask).last_hidden_state, mask)
        return pooled - self.center if center else pooled


def load_conse(class_names, templates, *, top_k: int = 20, **kwargs) -> ConSE:
    from unseen.core.assets import load_asset, load_sentence_encoder
    from unseen.core.models import imagenet_class_names

    image_net = load_asset("efficientnet-lite0")
    text_encoder, tokenizer = load_sentence_encoder("minilm-l6-v2")
    return ConSE(image_net, text_encoder, tokenizer, imagenet_class_names(), class_names, templates, top_k=top_k,
                 **kwargs)


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
