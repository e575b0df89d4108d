"""A folder of cached visual tokens: what the frozen encoder made of many labelled images.

    tokens.bin   float16 [sum of T_i, d], appended chunk by chunk (read back as a memmap)
    index.jsonl  one line per sample: {"offset", "length", "text", "group", "kind"}
    meta.json    {"encoder": fingerprint, "d": the token width (353 CRNN, 217 PP-OCRv4), ...}

Training reads it; a half-written store (killed build) is continued by ``append``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from unseen.core.errors import UnseenError
from unseen.scenetext.encoder import D_VISUAL


class FeatureStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.meta = json.loads((self.root / "meta.json").read_text())
        self.d = int(self.meta.get("d", D_VISUAL))
        lines = (self.root / "index.jsonl").read_text().splitlines()
        self.items = [json.loads(line) for line in lines if line]
        self._tokens = None
        self.groups: dict[int, list[int]] = {}
        for i, item in enumerate(self.items):
            self.groups.setdefault(item["group"], []).append(i)

    @property
    def tokens(self) -> np.memmap:
        if self._tokens is None:
            self._tokens = np.memmap(self.root / "tokens.bin", dtype=np.float16, mode="r").reshape(-1, self.d)
        return self._tokens

    def __len__(self) -> int:
        return len(self.items)

    def visual(self, i: int) -> torch.Tensor:
        item = self.items[i]
        return torch.from_numpy(np.array(self.tokens[item["offset"] : item["offset"] + item["length"]]))

    def text(self, i: int) -> str:
        return self.items[i]["text"]

    @staticmethod
    def create(root: Path, encoder_fingerprint: str, d: int = D_VISUAL, **info) -> "FeatureStore":
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        meta_path = root / "meta.json"
        if meta_path.exists():
            meta = json.loads(meta_path.read_text())
            if meta["encoder"] != encoder_fingerprint:
                raise UnseenError(f"{root}: feature store was made with encoder {meta['encoder']}, "
                                  f"not {encoder_fingerprint}")
            for key, value in info.items():
                if json.loads(json.dumps(value)) != meta.get(key):
                    raise UnseenError(f"{root}/meta.json: field {key!r} is {meta.get(key)!r} "
                                      f"but this build asks for {value!r}; use another --store")
        else:
            meta_path.write_text(json.dumps({"encoder": encoder_fingerprint, "d": d, **info}, indent=2) + "\n")
            (root / "index.jsonl").write_text("")
            (root / "tokens.bin").write_bytes(b"")
        return FeatureStore(root)

    def append(self, visuals: list[torch.Tensor], texts: list[str], groups: list[int], kinds: list[str]) -> None:
        """Append samples; tokens first, then the index lines, so a crash never indexes missing tokens."""
        offset = (self.root / "tokens.bin").stat().st_size // (2 * self.d)
        lines = []
        with (self.root / "tokens.bin").open("ab") as handle:
            for visual, text, group, kind in zip(visuals, texts, groups, kinds):
                handle.write(visual.to(torch.float16).numpy().tobytes())
                lines.append(json.dumps({"offset": offset, "length": visual.shape[0], "text": text, "group": group,
                                         "kind": kind}))
                offset += visual.shape[0]
        with (self.root / "index.jsonl").open("a") as handle:
            handle.write("".join(line + "\n" for line in lines))
        for line in lines:
            item = json.loads(line)
            self.groups.setdefault(item["group"], []).append(len(self.items))
            self.items.append(item)
        self._tokens = None

    def next_group(self) -> int:
        return max(self.groups, default=-1) + 1
