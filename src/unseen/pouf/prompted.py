"""What a prompted model is to POUF: the interface both language-model kinds implement (lm.py:
causal LMs, masked_lm.py: masked LMs), and reading verbalizer words as answer-slot token ids.

A prompted LM classifies by reading its answer slot: the class prototypes are the output-embedding
rows of the verbalizer tokens, and ``feature @ prototypes.T`` are the LM's own verbalizer scores.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from unseen.core.errors import UnseenError

MODES = ("prompt", "ln", "lora", "full")


def first_token_ids(tokenizer, verbalizers: Sequence[Sequence[Sequence[str]]], *, strip: bool = False):
    """For each template, for each class, the first token of each verbalizer word.

    A word that is several tokens is read at its first token (the answer slot predicts
    one token); two classes whose words start with the same token cannot be told
    apart, which is an error naming the words.
    """
    all_ids = []
    for t, classes in enumerate(verbalizers):
        ids, owner = [], {}
        for k, words in enumerate(classes):
            class_ids = []
            for word in words:
                tokens = tokenizer(word.strip() if strip else word, add_special_tokens=False)["input_ids"]
                if not tokens:
                    raise UnseenError(f"prompt {t + 1}: verbalizer word {word!r} encodes to no tokens")
                first = tokens[0]
                if first in owner and owner[first][0] != k:
                    other = owner[first][1]
                    raise UnseenError(
                        f"prompt {t + 1}: verbalizer words {other!r} and {word!r} start with the same token "
                        f"{tokenizer.decode([first])!r}; the answer slot reads one token, so choose words whose first "
                        "tokens differ"
                    )
                owner[first] = (k, word)
                class_ids.append(first)
            ids.append(class_ids)
        all_ids.append(ids)
    return all_ids


class PromptedLM(nn.Module):
    """What POUF needs from a prompted model; the image-text models implement the same."""

    kind = "lm"
    num_views: int

    def prepare(self, prompts: list[str], view: int, *, progress=None) -> list:
        """Per-example items for ``collate`` (cached frozen computation where possible)."""
        raise NotImplementedError

    def collate(self, items: list, view: int) -> dict:
        raise NotImplementedError

    def forward(self, batch: dict) -> torch.Tensor:
        """Batch -> target features [B, D]."""
        raise NotImplementedError

    # both LM kinds read their answer slot at the output layer: ``self.lm`` and, per view and
    # class, the verbalizer token ids ``self.verbalizer_ids[view][class]``

    def prototypes(self, view: int) -> torch.Tensor:
        """The output-embedding rows of each class's verbalizer tokens (averaged over its words)."""
        weight = self.lm.get_output_embeddings().weight
        return torch.stack([weight[ids].mean(0) for ids in self.verbalizer_ids[view]])

    def class_logits(self, features: torch.Tensor, view: int) -> torch.Tensor:
        """The LM's own verbalizer scores, plus the output bias where the head has one (masked LMs)."""
        logits = features @ self.prototypes(view).T
        bias = getattr(self.lm.get_output_embeddings(), "bias", None)
        if bias is not None:
            logits = logits + torch.stack([bias[ids].mean() for ids in self.verbalizer_ids[view]])
        return logits
