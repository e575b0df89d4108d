"""Training: cache the frozen encoder's tokens once, then stage 1 and stage 2 on the cache.

    store = build_store("runs/str/store", data_dir, synthetic_groups=6000)   # ~25 min on 2 cores
    train_stage(1, store, "runs/str/stage1", steps=4000)                      # plain recognition
    train_stage(2, store, "runs/str/stage2", init="runs/str/stage1", steps=3000)  # context training

Stage 1: one image per sequence, cross-entropy on its characters, every cached sample.
Stage 2 (Split-and-Transform): a sequence is 2..5 samples of one group (the word, its splits,
its transformed copies, another word of the same style) plus 0..2 unrelated samples, shuffled;
loss on every text token. A quarter of the sequences stay single images.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch
from rich.progress import Progress

from unseen.core.training import TrainConfig, seed_everything, train
from unseen.scenetext.charset import in_charset
from unseen.scenetext.e2str.corpus import MAX_LABEL, build_lexicon, real_group, synthetic_group
from unseen.scenetext.e2str.data import model_inputs, pack
from unseen.scenetext.e2str.model import E2STR, E2STRConfig, segment_loss
from unseen.scenetext.e2str.render import WordRenderer, find_fonts
from unseen.scenetext.e2str.store import FeatureStore
from unseen.scenetext.encoder import FrozenEncoder, encoder_name, pooled_key


def _usable(text: str) -> bool:
    return in_charset(text) and len(text) <= MAX_LABEL


def build_store(out: Path, data_dir: Path | None, *, synthetic_groups: int = 6000,
                real: list[tuple[str, str]] = (("iiit5k", "train"),), seed: int = 0,
                encoder: FrozenEncoder | None = None, fonts=None, lexicon=None, chunk: int = 64) -> FeatureStore:
    """Render synthetic groups and expand real crops, encode everything, append to a FeatureStore.

    Deterministic per group (group g uses Random(seed, g)), so a killed build continues where
    it stopped. IC15 stays out: it is the cross-domain target.
    """
    from unseen.core.data import load_dataset, resolve_data_dir

    encoder = encoder or FrozenEncoder()
    store = FeatureStore.create(out, encoder.fingerprint, encoder.d_visual, synthetic_groups=synthetic_groups,
                                real=[list(r) for r in real], seed=seed)
    base = resolve_data_dir(data_dir)
    done = store.next_group()
    if done < synthetic_groups:
        if lexicon is None:
            lexicon = build_lexicon(base) if base is not None else []
        backgrounds = sorted((base / "images" / "pacs" / "photo").rglob("*.jpg")) if base is not None else []
        renderer = WordRenderer(fonts if fonts is not None else find_fonts(), backgrounds)
    with Progress() as progress:
        task = progress.add_task("rendering + encoding synthetic groups", total=synthetic_groups,
                                 completed=min(done, synthetic_groups))
        for start in range(done, synthetic_groups, chunk):
            samples, groups = [], []
            for g in range(start, min(start + chunk, synthetic_groups)):
                rng = random.Random(seed * 1_000_003 + g)
                for sample in synthetic_group(renderer, rng, lexicon):
                    samples.append(sample)
                    groups.append(g)
            _append(store, encoder, samples, groups)
            progress.update(task, completed=min(start + chunk, synthetic_groups))
        for name, split in real:
            records = load_dataset(name, split, data_dir=data_dir)
            offset = synthetic_groups + 1_000_000 * (1 + list(real).index((name, split)))
            first = max(0, store.next_group() - offset)
            task = progress.add_task(f"{name}/{split}: split + transform", total=len(records), completed=first)
            for start in range(first, len(records), chunk):
                rows = [records[i] for i in range(start, min(start + chunk, len(records)))]
                rows = [(start + k, r) for k, r in enumerate(rows) if _usable(r["text"])]
                originals = encoder.encode([r["image"] for _, r in rows])
                samples, groups = [], []
                for (i, record), tokens in zip(rows, originals):
                    reading, spans = encoder.ctc_char_columns(tokens)
                    boxes = None
                    if reading == record["text"]:  # the CTC alignment is trustworthy: use it to split
                        boxes = encoder.char_boxes(record["image"], spans)
                    rng = random.Random(seed * 1_000_003 + offset + i)
                    for sample in real_group(record["image"], record["text"], rng, boxes):
                        samples.append(sample)
                        groups.append(offset + i)
                _append(store, encoder, samples, groups)
                progress.update(task, completed=start + chunk)
    return store


def _append(store: FeatureStore, encoder: FrozenEncoder, samples, groups) -> None:
    keep = [k for k, s in enumerate(samples) if _usable(s.text) and s.image.width >= 4]
    visuals = encoder.encode([samples[k].image for k in keep])
    store.append(visuals, [samples[k].text for k in keep], [groups[k] for k in keep], [samples[k].kind for k in keep])


class SingleImages(torch.utils.data.Dataset):
    """Stage 1: every cached sample as a one-segment sequence."""

    def __init__(self, store: FeatureStore):
        self.store = store

    def __len__(self):
        return len(self.store)

    def __getitem__(self, i):
        return [(self.store.visual(i), self.store.text(i))]


class ContextSequences(torch.utils.data.Dataset):
    """Stage 2: sequence i is a pure function of (seed, i)."""

    def __init__(self, store: FeatureStore, size: int = 200_000, seed: int = 0, p_single: float = 0.25,
                 max_segments: int = 6, p_neighbours: float = 0.0):
        self.store, self.size, self.seed = store, size, seed
        self.p_single, self.max_segments = p_single, max_segments
        self.group_ids = sorted(g for g, members in store.groups.items() if len(members) >= 2)
        # a fraction of sequences shaped like inference: a query after its nearest samples of
        # *other* groups (similar-looking, different words), so context is not always copyable
        self.p_neighbours = p_neighbours
        self.neighbours = nearest_in_other_groups(store, max_segments - 1) if p_neighbours > 0 else None

    def __len__(self):
        return self.size

    def spec(self, i: int) -> list[int]:
        rng = random.Random(self.seed * 7_919 + i)
        if self.neighbours is not None and rng.random() < self.p_neighbours:
            query = rng.randrange(len(self.store))
            context = self.neighbours[query][: rng.randint(1, self.max_segments - 1)]
            return [*reversed(context), query]  # most similar nearest the query, as at inference
        members = list(self.store.groups[rng.choice(self.group_ids)])
        if rng.random() < self.p_single:
            return [rng.choice(members)]
        rng.shuffle(members)
        chosen = members[: rng.randint(2, min(len(members), self.max_segments - 1))]
        for _ in range(rng.choice([0, 0, 1, 1, 2])):
            if len(chosen) < self.max_segments:
                chosen.append(rng.choice(self.store.groups[rng.choice(self.group_ids)]))
        rng.shuffle(chosen)
        return chosen

    def __getitem__(self, i):
        return [(self.store.visual(j), self.store.text(j)) for j in self.spec(i)]


@torch.no_grad()
def nearest_in_other_groups(store: FeatureStore, k: int, chunk: int = 4096) -> list[list[int]]:
    """For every sample, the k most similar samples (retrieval keys, cosine) outside its own group."""
    keys = torch.stack([pooled_key(store.meta["encoder"], store.visual(i).float()) for i in range(len(store))])
    groups = torch.tensor([item["group"] for item in store.items])
    nearest = []
    for start in range(0, len(keys), chunk):
        sims = keys[start : start + chunk] @ keys.T
        sims[groups[start : start + chunk, None] == groups[None, :]] = float("-inf")
        nearest += sims.topk(min(k, len(keys) - 1), dim=1).indices.tolist()
    return nearest


def loss_fn(model, batch):
    logits = model(*model_inputs(batch))
    loss = segment_loss(logits, batch["targets"])
    mask = batch["targets"] != 0
    char_acc = ((logits.argmax(-1) == batch["targets"]) & mask).sum() / mask.sum().clamp(min=1)
    return loss, {"char_acc": char_acc.item()}


def train_stage(stage: int, store: FeatureStore | Path, out: Path, *, init: Path | None = None, steps: int = 4000,
                batch_size: int = 64, lr: float = 5e-4, seed: int = 0, config: E2STRConfig | None = None,
                resume: bool = False, save_every: int = 500, p_neighbours: float = 0.0):
    """Train stage 1 or 2 on a feature store; writes a run folder with model.safetensors and recognizer.safetensors."""
    from unseen.scenetext.e2str.recognizer import load_model_file, save_model_file

    store = store if isinstance(store, FeatureStore) else FeatureStore(Path(store))
    seed_everything(seed)
    if init is not None:
        model, meta = load_model_file(_weights_in(init))
        if meta.get("encoder") != store.meta["encoder"]:  # e.g. the CRNN-era decoder as a start for PP-OCRv4 tokens
            model = _rebased(model, store.d)
        model.train()
    else:
        model = E2STR(config or E2STRConfig(d_visual=store.d))
    dataset = SingleImages(store) if stage == 1 else ContextSequences(store, seed=seed, p_neighbours=p_neighbours)
    cfg = TrainConfig(out_dir=str(out), steps=steps, batch_size=batch_size, lr=lr, weight_decay=0.01,
                      warmup_steps=min(200, steps // 10), schedule="cosine", seed=seed, save_every=save_every,
                      log_every=10, extra={"stage": stage, "store": str(store.root),
                                           "init": str(init) if init else None, "p_neighbours": p_neighbours,
                                           "model": model.cfg.to_dict()})
    result = train(model, loss_fn, dataset, cfg, collate=pack, resume=resume,
                   assets=[encoder_name(store.meta["encoder"])], progress_label=f"stage {stage}")
    save_model_file(model, Path(out) / "recognizer.safetensors", encoder=store.meta["encoder"], stage=stage)
    return result


def _rebased(model: E2STR, d_visual: int) -> E2STR:
    """The decoder of a model trained on another encoder's tokens, with a fresh visual input
    layer for tokens of width ``d_visual``: the character decoder and its attention carry over."""
    fresh = E2STR(E2STRConfig(**{**model.cfg.to_dict(), "d_visual": d_visual}))
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("vis_in.")}
    fresh.load_state_dict(state, strict=False)
    return fresh


def _weights_in(path: Path) -> Path:
    path = Path(path)
    return path / "recognizer.safetensors" if path.is_dir() else path


def finetune(model: E2STR, visuals: list[torch.Tensor], texts: list[str], *, steps: int = 200, lr: float = 1e-4,
             batch_size: int = 16, seed: int = 0, every: int = 0, on_checkpoint=None) -> E2STR:
    """Plain fine-tuning on labelled samples (the baseline that ICL is compared with).

    With ``every`` > 0, ``on_checkpoint(step, model)`` is called every that many steps (model in
    eval mode; training resumes after it), e.g. to choose the step count on a validation split."""
    seed_everything(seed)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    rng = random.Random(seed)
    for step in range(steps):
        idx = [rng.randrange(len(texts)) for _ in range(min(batch_size, len(texts)))]
        batch = pack([[(visuals[i], texts[i])] for i in idx])
        loss, _ = loss_fn(model, batch)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        if every and on_checkpoint is not None and (step + 1) % every == 0:
            on_checkpoint(step + 1, model.eval())
            model.train()
    return model.eval()
