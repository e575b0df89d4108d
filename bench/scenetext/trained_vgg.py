"""The whole CRNN trained in stage 2 (VGG too): does context pay once the convolutional encoder adapts?

trained_encoder.py trains the CRNN's BiLSTMs over cached VGG columns: plain reading gains, context
still costs. This script goes one step further, the furthest a CPU can: it caches the
preprocessed word images themselves (64 px high, uint8) and continues stage 2 from the shipped
decoder with every CRNN weight trainable (VGG convolutions, BiLSTMs, CTC layer; the VGG's
BatchNorm statistics stay frozen, as batches of mixed widths are small). Same losses as
trained_encoder.py. IC15-2077 is then read with no context, with the benchmark's 100-crop pools
(seeds 0..2, n = 2) and with every other IC15-train crop as the pool.

    OMP_NUM_THREADS=2 python bench/scenetext/trained_vgg.py    # 2 cores: store 5 min, train 21 min (~8 s a step), eval 6 min
"""

from __future__ import annotations

import copy
import shutil
import statistics
import time
from collections import defaultdict
from pathlib import Path

import torch
import torch.nn as nn
from PIL import Image
from trained_encoder import ColumnEncoder, SequenceHead, accuracy, arguments, big_pool, train_or_load, write_report
from trained_encoder import loss_fn as head_loss

import unseen.scenetext.train as training
from unseen.core.data import load_dataset
from unseen.core.training import seed_everything
from unseen.scenetext.data import pack
from unseen.scenetext.encoder import HEIGHT, FrozenEncoder, canonical_width
from unseen.scenetext.evaluate import BENCHMARKS, benchmark_pool, cached_visuals, load_records
from unseen.scenetext.recognizer import Recognizer
from unseen.scenetext.store import FeatureStore


def gray(image: Image.Image) -> torch.Tensor:
    """The encoder's preprocessing, kept as uint8 [1, 64, W] (to_tensor's normalization comes later)."""
    w = canonical_width(image)
    return torch.frombuffer(bytearray(image.convert("L").resize((w, HEIGHT), Image.BICUBIC).tobytes()),
                            dtype=torch.uint8).view(1, HEIGHT, w).clone()


def build_image_store(work: Path, synthetic_groups: int) -> tuple[FeatureStore, list[torch.Tensor]]:
    """The feature store of trained_encoder.py, plus the preprocessed image of every sample in store order."""
    images_path, store_dir = work / "images.pt", work / "store"
    if images_path.exists():
        return FeatureStore(store_dir), torch.load(images_path)
    shutil.rmtree(store_dir, ignore_errors=True)  # a store without its images (killed build) starts over
    images, original = [], training._append

    def capture(store, encoder, samples, groups):  # the builder's own filter, then keep what it appends
        images.extend(gray(s.image) for s in samples if training._usable(s.text) and s.image.width >= 4)
        original(store, encoder, samples, groups)

    training._append = capture
    try:
        store = training.build_store(store_dir, None, synthetic_groups=synthetic_groups, encoder=ColumnEncoder())
    finally:
        training._append = original
    assert len(images) == len(store), (len(images), len(store))
    torch.save(images, images_path)
    return store, images


class ImageSequences(training.ContextSequences):
    def __init__(self, store, images, **kwargs):
        super().__init__(store, **kwargs)
        self.images = images

    def __getitem__(self, i):
        return [(self.images[j], self.store.text(j)) for j in self.spec(i)]


def collate(sequences):
    # the packed layout only needs each image's token count (T = W / 4 - 1); the tokens come from the model
    batch = pack([[(torch.zeros(image.shape[-1] // 4 - 1, 1), text) for image, text in seq] for seq in sequences])
    batch["images"] = [image for seq in sequences for image, _ in seq]
    batch["texts"] = [text for seq in sequences for _, text in seq]
    return batch


class WholeCRNN(nn.Module):
    def __init__(self, crnn, decoder):
        super().__init__()
        self.vgg = copy.deepcopy(crnn.FeatureExtraction)
        self.head, self.decoder = SequenceHead(crnn), decoder

    def train(self, mode: bool = True):
        super().train(mode)
        for module in self.vgg.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eval()
        return self

    def columns(self, images: list[torch.Tensor]) -> list[torch.Tensor]:
        by_width, out = defaultdict(list), [None] * len(images)
        for i, image in enumerate(images):
            by_width[image.shape[-1]].append(i)
        for indices in by_width.values():
            x = (torch.stack([images[i] for i in indices]).float() / 255 - 0.5) / 0.5
            f = self.vgg(x).mean(dim=2).transpose(1, 2)
            for j, i in enumerate(indices):
                out[i] = f[j]
        return out

    def as_encoder(self, base: FrozenEncoder) -> FrozenEncoder:
        crnn = copy.deepcopy(base.crnn)
        crnn.FeatureExtraction, crnn.SequenceModeling, crnn.Prediction = (copy.deepcopy(self.vgg), copy.deepcopy(self.head.layers),
                                                                         copy.deepcopy(self.head.prediction))
        return FrozenEncoder(crnn)


def loss_fn(model: WholeCRNN, batch):
    return head_loss(model, dict(batch, columns=model.columns(batch["images"])))


def main():
    args = arguments(__doc__, work="runs/str/trained-vgg", steps=160, report="docs/results/scenetext_trained_vgg.json")
    started = time.time()
    store, images = build_image_store(args.work, args.synthetic_groups)
    if args.phase == "store":
        return
    shipped = Recognizer.load()
    seed_everything(0)
    model = WholeCRNN(shipped.encoder.crnn, copy.deepcopy(shipped.model))
    for p in [*model.vgg.parameters(), *model.head.parameters()]:  # the CRNN's copy comes frozen
        p.requires_grad_(True)
    # step 0 must be the shipped recognizer: the untrained model reproduces the CRNN's CTC probabilities
    with torch.no_grad():
        tokens = model.eval().head.apply(model.columns(images[:32]))
    drift = max((t[:, 256:].exp() - store.visual(i).float()[:, 256:].exp()).abs().max().item() for i, t in enumerate(tokens))
    assert drift < 0.02, f"the untrained model does not reproduce the CRNN (max probability difference {drift})"  # store: float16
    run = args.work / "stage2-crnn"
    train_or_load(model, ImageSequences(store, images, seed=0), collate, loss_fn, run, args, store,
                  trainable="VGG + BiLSTMs + CTC layer + decoder", save_every=50)
    if args.phase == "train":
        return
    model.eval()
    encoder = model.as_encoder(shipped.encoder)
    trained = Recognizer(model.decoder, encoder, {})

    records = load_records(*BENCHMARKS["IC15-2077"][:2], None)
    texts = [r["text"] for r in records]
    visuals = cached_visuals(encoder, [r["image"] for r in records], args.work / "IC15-2077.safetensors")
    train_split = load_dataset("ic15", "train")
    row = {"no context": accuracy(trained, visuals, texts)}
    print(row, flush=True)
    values = [accuracy(trained, visuals, texts, n=2,
                       pool=benchmark_pool(encoder, train_split, seed, 100, args.work / f"pool-ic15-100-seed{seed}.safetensors"))
              for seed in range(args.seeds)]
    row["ICL n=2"], row["ICL n=2 (per pool seed)"] = round(statistics.mean(values), 2), values
    print(row, flush=True)
    pool = big_pool(encoder, train_split, args.work / "ic15-train-shuffled.safetensors")
    row[f"ICL n=2, pool = all {len(pool)} other IC15-train crops"] = accuracy(trained, visuals, texts, pool=pool, n=2)
    write_report(args, store, run, started, **{"IC15-2077, whole CRNN trained in stage 2": row})


if __name__ == "__main__":
    main()
