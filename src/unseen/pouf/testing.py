"""Tiny randomly initialised models and toy data for POUF's mechanics tests (no download).

A word-level tokenizer built in memory stands in for real tokenizers; the models are
a 2-layer Llama (causal LM), a 2-layer BERT (masked LM) and a small CLIP, saved as
ordinary Hugging Face folders so they load through the same code as real ones.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch

WORDS = ("good great fine nice bad awful poor dull movie film plot actors review sentiment is was the a it this very "
         "not really question answer yes no true false photo of dog cat car tree picture drawing sketch cartoon "
         "painting art an so and").split()
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def tiny_tokenizer(words=WORDS):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(SPECIALS + sorted(set(words)) + [".", ":", "?", "\n"])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    core.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]",
                                                        special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")


def tiny_causal_lm(folder: Path, *, layers: int = 3, seed: int = 0, words=WORDS) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    tokenizer = tiny_tokenizer(words)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         pad_token_id=0, bos_token_id=2, eos_token_id=3, tie_word_embeddings=True)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_masked_lm(folder: Path, *, seed: int = 0) -> Path:
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(seed)
    tokenizer = tiny_tokenizer()
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=128, pad_token_id=0)
    BertForMaskedLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_clip(folder: Path, *, seed: int = 0, image_size: int = 32, words=WORDS) -> Path:
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(seed)
    tokenizer = tiny_tokenizer(words)
    text = {"vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 4, "max_position_embeddings": 32, "eos_token_id": tokenizer.sep_token_id,
            "pad_token_id": 0, "bos_token_id": tokenizer.cls_token_id}
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
              "image_size": image_size, "patch_size": 8}
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def sentiment_jsonl(path: Path, n: int = 40, *, seed: int = 0) -> Path:
    rng = random.Random(seed)
    positive, negative = ["good", "great", "fine", "nice"], ["bad", "awful", "poor", "dull"]
    with path.open("w") as handle:
        for i in range(n):
            label = i % 2
            word = rng.choice(positive if label else negative)
            text = f"the {rng.choice(['movie', 'film', 'plot'])} was {'very ' if rng.random() < 0.5 else ''}{word}"
            handle.write(json.dumps({"text": text, "label": label}) + "\n")
    return path


SENTIMENT_PROMPTS = """\
dataset: {dataset}
label_field: label
classes: [negative, positive]
prompts:
  - {{template: "review: {{text}} \\nsentiment:", verbalizer: [" bad", " good"]}}
  - {{template: "{{text}} \\nit was", verbalizer: [" awful", " great"]}}
"""


def image_folder(root: Path, classes=("dog", "cat", "car"), per_class: int = 6, size: int = 40, seed: int = 0) -> Path:
    """Small coloured images whose dominant colour depends on the class."""
    from PIL import Image

    rng = random.Random(seed)
    for k, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            base = [40, 40, 40]
            base[k % 3] = 200
            pixels = bytes(max(0, min(255, c + rng.randint(-30, 30))) for _ in range(size * size) for c in base)
            Image.frombytes("RGB", (size, size), pixels).save(root / name / f"{i}.png")
    return root
