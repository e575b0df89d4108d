"""Interleaved sequences -> padded tensors for the model (see model.py for the fields).

A sequence is a list of segments ``(visual_tokens [T, 353], text)``. For training every
segment has its text and the batch is right-padded; for reading, the last segment's text is
None (the query) and the batch is left-padded so that every row ends with the query's BOS.
"""

from __future__ import annotations

import torch

from unseen.scenetext.charset import BOS, PAD, encode


def _row(segments, query_last: bool):
    tokens, pos, slot, targets, vis, vpos, vslot = [], [], [], [], [], [], []
    for s, (visual, text) in enumerate(segments):
        if text is None:  # the query: its BOS only
            ids, tgt = [BOS], [PAD]
        else:
            full = encode(text)
            ids, tgt = full[:-1], full[1:]
        tokens += ids
        targets += tgt
        pos += range(len(ids))
        slot += [s] * len(ids)
        vis.append(visual)
        vpos += range(visual.shape[0])
        vslot += [s] * visual.shape[0]
    return tokens, pos, slot, targets, torch.cat(vis), vpos, vslot


def pack(sequences, *, left_pad: bool = False) -> dict:
    """A batch dict: tokens, pos, slot, targets [B, L]; vis [B, K, 353]; vpos, vslot [B, K]."""
    rows = [_row(seq, left_pad) for seq in sequences]
    B = len(rows)
    L = max(len(r[0]) for r in rows)
    K = max(r[4].shape[0] for r in rows)
    d = rows[0][4].shape[1]
    out = {
        "tokens": torch.full((B, L), PAD, dtype=torch.long),
        "pos": torch.zeros((B, L), dtype=torch.long),
        "slot": torch.zeros((B, L), dtype=torch.long),
        "targets": torch.full((B, L), PAD, dtype=torch.long),
        "vis": torch.zeros((B, K, d)),
        "vpos": torch.zeros((B, K), dtype=torch.long),
        "vslot": torch.full((B, K), -1, dtype=torch.long),
    }
    for b, (tokens, pos, slot, targets, vis, vpos, vslot) in enumerate(rows):
        n = len(tokens)
        cols = slice(L - n, L) if left_pad else slice(0, n)
        out["tokens"][b, cols] = torch.tensor(tokens)
        out["pos"][b, cols] = torch.tensor(pos)
        out["slot"][b, cols] = torch.tensor(slot)
        out["targets"][b, cols] = torch.tensor(targets)
        k = vis.shape[0]
        out["vis"][b, :k] = vis.float()
        out["vpos"][b, :k] = torch.tensor(vpos)
        out["vslot"][b, :k] = torch.tensor(vslot)
    return out


def model_inputs(batch: dict) -> tuple:
    return batch["tokens"], batch["pos"], batch["slot"], batch["vis"], batch["vpos"], batch["vslot"]
