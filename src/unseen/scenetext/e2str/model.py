"""E2STR-lite: a small character decoder that reads [image_1, text_1, ..., image_q] -> text_q.

The visual tokens come from the frozen CRNN (encoder.py). The text stream holds one segment per
image, ``BOS c_1 .. c_n`` (the target adds EOS). Each block is Flamingo's recipe at small size:

    x = x + tanh(g_x) * CrossAttention(x -> the visual tokens of *this segment's* image only)
    x = x + CausalSelfAttention(x over the whole stream, earlier segments included)
    x = x + tanh(g_f) * MLP(x)

so a text token sees pixels only of the image just before it, and what earlier (context)
images showed reaches the query only through the decoder's self-attention over their text
tokens, whose hidden states carry what their own image looked like: E2STR's property.
Positions count within a segment, so a segment reads the same wherever it sits.

Inputs, per row b of a batch (see ``pack`` in data.py):
    tokens [B, L]      token ids (0 = padding)
    pos    [B, L]      position within the token's segment
    slot   [B, L]      which image of the row the token belongs to
    vis    [B, K, 353] the visual tokens of all the row's images, one after another
    vpos   [B, K]      position of each visual token within its image
    vslot  [B, K]      which image it belongs to (-1 = padding)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from unseen.scenetext.charset import BOS, EOS, PAD, VOCAB_SIZE
from unseen.scenetext.encoder import D_VISUAL


@dataclass
class E2STRConfig:
    d_visual: int = D_VISUAL
    d_model: int = 256
    n_layer: int = 4
    n_head: int = 8
    d_ff: int = 1024
    max_visual: int = 256  # visual tokens per image (1024 px / 4)
    max_segment: int = 40  # BOS + up to 38 characters + EOS
    vocab: int = VOCAB_SIZE
    dropout: float = 0.1

    def to_dict(self) -> dict:
        return asdict(self)


class Attention(nn.Module):
    def __init__(self, cfg: E2STRConfig):
        super().__init__()
        self.n_head, self.d = cfg.n_head, cfg.d_model
        self.q = nn.Linear(cfg.d_model, cfg.d_model)
        self.kv = nn.Linear(cfg.d_model, 2 * cfg.d_model)
        self.out = nn.Linear(cfg.d_model, cfg.d_model)
        self.dropout = cfg.dropout

    def heads(self, x):  # [B, N, D] -> [B, H, N, D/H]
        return x.view(x.shape[0], x.shape[1], self.n_head, -1).transpose(1, 2)

    def keys_values(self, source):
        k, v = self.kv(source).chunk(2, dim=-1)
        return self.heads(k), self.heads(v)

    def forward(self, x, kv, mask):
        """x [B, N, D] attends to kv = (k, v) [B, H, M, D/H] where mask [B, N, M] is True."""
        q = self.heads(self.q(x))
        y = F.scaled_dot_product_attention(q, kv[0], kv[1], attn_mask=mask[:, None],
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(x.shape[0], x.shape[1], self.d))


class Block(nn.Module):
    def __init__(self, cfg: E2STRConfig):
        super().__init__()
        self.ln_x, self.ln_s, self.ln_f = (nn.LayerNorm(cfg.d_model) for _ in range(3))
        self.xattn, self.attn = Attention(cfg), Attention(cfg)
        self.mlp = nn.Sequential(nn.Linear(cfg.d_model, cfg.d_ff), nn.GELU(), nn.Linear(cfg.d_ff, cfg.d_model))
        # Flamingo's tanh gates; trained from scratch here, so they start open rather than at 0
        self.gate_x = nn.Parameter(torch.tensor(1.0))
        self.gate_f = nn.Parameter(torch.tensor(1.0))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, vis_kv, xmask, past, smask):
        """past: (k, v) of earlier tokens or None; returns x and this layer's full (k, v)."""
        x = x + torch.tanh(self.gate_x) * self.drop(self.xattn(self.ln_x(x), vis_kv, xmask))
        h = self.ln_s(x)
        k, v = self.attn.keys_values(h)
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        x = x + self.drop(self.attn(h, (k, v), smask))
        x = x + torch.tanh(self.gate_f) * self.drop(self.mlp(self.ln_f(x)))
        return x, (k, v)


class E2STR(nn.Module):
    def __init__(self, cfg: E2STRConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or E2STRConfig()
        self.vis_in = nn.Sequential(nn.LayerNorm(cfg.d_visual), nn.Linear(cfg.d_visual, cfg.d_model))
        self.vis_pos = nn.Embedding(cfg.max_visual, cfg.d_model)
        self.vis_ln = nn.LayerNorm(cfg.d_model)
        self.tok = nn.Embedding(cfg.vocab, cfg.d_model)
        self.pos = nn.Embedding(cfg.max_segment, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab, bias=False)
        self.head.weight = self.tok.weight  # tied
        self.apply(self._init)

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)

    def visual(self, vis, vpos):
        """Visual tokens -> one (k, v) per layer for the cross-attention (cacheable)."""
        v = self.vis_ln(self.vis_in(vis) + self.vis_pos(vpos.clamp(0, self.cfg.max_visual - 1)))
        return [block.xattn.keys_values(v) for block in self.blocks]

    def embed(self, tokens, pos):
        return self.tok(tokens) + self.pos(pos.clamp(0, self.cfg.max_segment - 1))

    def forward(self, tokens, pos, slot, vis, vpos, vslot):
        """Teacher-forced logits [B, L, vocab] for the whole stream."""
        vis_kv = self.visual(vis, vpos)
        xmask = cross_mask(slot, vslot, tokens != PAD)
        valid = tokens != PAD
        L = tokens.shape[1]
        causal = torch.ones(L, L, dtype=torch.bool, device=tokens.device).tril()
        smask = causal[None] & valid[:, None, :] | torch.eye(L, dtype=torch.bool, device=tokens.device)[None]
        x = self.embed(tokens, pos)
        for block, kv in zip(self.blocks, vis_kv):
            x, _ = block(x, kv, xmask, None, smask)
        return self.head(self.ln(x))

    @torch.no_grad()
    def generate(self, tokens, pos, slot, vis, vpos, vslot, max_len: int = 32):
        """Greedy decoding of the last segment of each row.

        The prefix (context segments, then the query's BOS) must be left-padded so that every row
        ends with its query BOS. It runs once and its keys/values are kept (the context's decoder
        state); each new character then costs one step over a single token per row.
        Returns (texts as id lists, per-row mean log-probability of the emitted tokens).
        """
        B, L = tokens.shape
        vis_kv = self.visual(vis, vpos)
        valid = tokens != PAD
        causal = torch.ones(L, L, dtype=torch.bool, device=tokens.device).tril()
        smask = causal[None] & valid[:, None, :] | torch.eye(L, dtype=torch.bool, device=tokens.device)[None]
        x = self.embed(tokens, pos)
        xmask = cross_mask(slot, vslot, valid)
        past = []
        for block, kv in zip(self.blocks, vis_kv):
            x, layer_kv = block(x, kv, xmask, None, smask)
            past.append(layer_kv)
        logits = self.head(self.ln(x[:, -1:]))
        q_slot, q_pos = slot[:, -1:], pos[:, -1:]
        q_xmask = cross_mask(q_slot, vslot, torch.ones_like(q_slot, dtype=torch.bool))
        key_valid = valid
        out = torch.full((B, max_len), EOS, dtype=torch.long, device=tokens.device)
        logp_sum = torch.zeros(B, device=tokens.device)
        count = torch.zeros(B, device=tokens.device)
        done = torch.zeros(B, dtype=torch.bool, device=tokens.device)
        for step in range(max_len):
            logp = F.log_softmax(logits[:, -1].float(), dim=-1)
            logp[:, :BOS + 1] = -math.inf  # never PAD or BOS
            best, ids = logp.max(-1)
            if step == max_len - 1:
                ids = torch.full_like(ids, EOS)
            ids = torch.where(done, torch.full_like(ids, EOS), ids)
            logp_sum += torch.where(done, torch.zeros_like(best), best)
            count += (~done).float()
            out[:, step] = ids
            done |= ids == EOS
            if done.all():
                break
            q_pos = q_pos + 1
            x = self.embed(ids[:, None], q_pos)
            key_valid = torch.cat([key_valid, torch.ones(B, 1, dtype=torch.bool, device=tokens.device)], dim=1)
            smask = key_valid[:, None, :]
            new_past = []
            for block, kv, layer_past in zip(self.blocks, vis_kv, past):
                x, layer_kv = block(x, kv, q_xmask, layer_past, smask)
                new_past.append(layer_kv)
            past = new_past
            logits = self.head(self.ln(x))
        return out.tolist(), (logp_sum / count.clamp(min=1)).tolist()


def cross_mask(slot, vslot, valid):
    """[B, L, K]: token attends to the visual tokens of its own image. Padding tokens look at
    the row's first image, so that no row of the mask is empty."""
    slot = torch.where(valid, slot, vslot[:, :1].expand_as(slot))
    return slot[:, :, None] == vslot[:, None, :]


def segment_loss(logits, targets):
    """Mean cross-entropy over the non-padding target positions."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), ignore_index=PAD)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for n, p in model.named_parameters())
