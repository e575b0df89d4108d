"""Does a visual side that stage 2 trains make in-context reading pay off on IC15?

The shipped recognizer reads frozen CRNN tokens (VGG, then 2 BiLSTMs): context can only
condition its decoder, and over frozen tokens the decoder's whole IC15 headroom is +3.7 points
(domain_ceiling.py). E2STR trains its encoder in both stages. The part of the CRNN a CPU can
train over cached inputs is its sequence half: this script caches the frozen VGG columns
instead of the BiLSTM outputs, and continues stage 2 from the shipped decoder with the two
BiLSTMs and the CTC layer trainable (initialized from EasyOCR's, so step 0 reads as the shipped
recognizer; checked before training). A CTC loss on every segment keeps the CTC head usable for
the joint rescoring; retrieval keys come from the trained BiLSTMs. IC15-2077 is then read with
no context, with the benchmark's 100-crop pools (seeds 0..2; n = 1, 2, 4, and random context)
and with every other IC15-train crop as the pool, by the shipped model and the trained one.

    OMP_NUM_THREADS=2 python bench/scenetext/trained_encoder.py   # 2 cores: store 6 min, train 25 min, eval ~25 min

Phases resume: the VGG-column store and the training run are kept under --work.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pack_sequence, pad_packed_sequence

from unseen.core.data import load_dataset
from unseen.core.models.crnn import CRNN_CHARSET
from unseen.core.training import TrainConfig, seed_everything, train
from unseen.core.training.checkpoint import load_trainable_state
from unseen.scenetext.data import model_inputs, pack
from unseen.scenetext.evaluate import BENCHMARKS, benchmark_pool, cached_visuals, load_records, shuffled_split
from unseen.scenetext.encoder import FrozenEncoder
from unseen.scenetext.metrics import report
from unseen.scenetext.model import segment_loss
from unseen.scenetext.pool import Pool
from unseen.scenetext.recognizer import Recognizer
from unseen.scenetext.train import ContextSequences, build_store


class ColumnEncoder(FrozenEncoder):
    """Tokens = the frozen VGG's 256 column features + the frozen CRNN's CTC log-probabilities.

    Same [T, 353] layout as FrozenEncoder, so the store builder (which splits real crops at the
    CTC alignment) works unchanged; the BiLSTM half is left to ``SequenceHead``."""

    def __init__(self):
        super().__init__()
        self.fingerprint = "vggcols-" + self.fingerprint.removeprefix("crnn-")

    def tokens(self, x):
        f = self.crnn.FeatureExtraction(x).mean(dim=2).transpose(1, 2)
        logp = F.log_softmax(self.crnn.Prediction(self.crnn.SequenceModeling(f)), dim=-1)
        return torch.cat([f, logp], dim=-1)


class SequenceHead(nn.Module):
    """The CRNN's BiLSTMs and CTC layer, trainable: VGG columns -> [T, 353] tokens, one image at a time
    (packed sequences, so no image sees another's padding)."""

    def __init__(self, crnn):
        super().__init__()
        self.layers = copy.deepcopy(crnn.SequenceModeling)
        self.prediction = copy.deepcopy(crnn.Prediction)

    def forward(self, columns: list[torch.Tensor]) -> list[torch.Tensor]:
        lengths = torch.tensor([c.shape[0] for c in columns])
        x = pack_sequence([c.float() for c in columns], enforce_sorted=False)
        for layer in self.layers:
            h, _ = pad_packed_sequence(layer.rnn(x)[0], batch_first=True)
            h = layer.linear(h)
            x = pack_padded_sequence(h, lengths, batch_first=True, enforce_sorted=False)
        feats = torch.cat([torch.cat([h[i, :n], F.log_softmax(self.prediction(h[i, :n]), -1)], -1)
                           for i, n in enumerate(lengths.tolist())])
        return list(torch.split(feats, lengths.tolist()))

    @torch.no_grad()
    def apply(self, columns: list[torch.Tensor], chunk: int = 256) -> list[torch.Tensor]:
        self.eval()
        return [t for s in range(0, len(columns), chunk) for t in self(columns[s : s + chunk])]


class HeadAndDecoder(nn.Module):
    def __init__(self, head: SequenceHead, decoder):
        super().__init__()
        self.head, self.decoder = head, decoder


def collate(sequences):
    batch = pack(sequences)
    batch["columns"] = [visual[:, :256] for seq in sequences for visual, _ in seq]
    batch["texts"] = [text for seq in sequences for _, text in seq]
    return batch


def loss_fn(model: HeadAndDecoder, batch, ctc_weight: float = 0.3):
    tokens = model.head(batch["columns"])
    # the packed batch's visual rows, rebuilt from the head's tokens (segments sit left-aligned per row)
    rows, k = [], 0
    for b in range(batch["vis"].shape[0]):
        n_seg = int(batch["vslot"][b].max()) + 1
        row = torch.cat(tokens[k : k + n_seg])
        rows.append(F.pad(row, (0, 0, 0, batch["vis"].shape[1] - row.shape[0])))
        k += n_seg
    batch = dict(batch, vis=torch.stack(rows))
    logits = model.decoder(*model_inputs(batch))
    loss = segment_loss(logits, batch["targets"])
    targets = [torch.tensor([CRNN_CHARSET.index(c) + 1 for c in text]) for text in batch["texts"]]
    log_probs = nn.utils.rnn.pad_sequence([t[:, 256:] for t in tokens])  # [T, N, 97]
    ctc = F.ctc_loss(log_probs, torch.cat(targets), torch.tensor([t.shape[0] for t in tokens]),
                     torch.tensor([len(t) for t in targets]), blank=0, zero_infinity=True)
    mask = batch["targets"] != 0
    char_acc = ((logits.argmax(-1) == batch["targets"]) & mask).sum() / mask.sum().clamp(min=1)
    return loss + ctc_weight * ctc, {"ctc": ctc.item(), "char_acc": char_acc.item()}


def training_summary(run: Path) -> dict:
    """Steps, wall time and losses of the training run, from its metrics.jsonl."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line]
    return {"steps": rows[-1]["step"], "seconds": round(rows[-1]["elapsed_s"]),
            "first logged": {k: round(v, 4) for k, v in rows[0].items() if k in ("step", "loss", "ctc", "char_acc")},
            "last logged": {k: round(v, 4) for k, v in rows[-1].items() if k in ("step", "loss", "ctc", "char_acc")}}


def accuracy(rec, visuals, texts, **kwargs) -> float:
    return round(100 * report([r.text for r in rec.read_visuals(visuals, **kwargs)], texts)["36"]["accuracy"], 2)


def arguments(doc: str, *, work: str, steps: int, report: str) -> argparse.Namespace:
    """The command line both trained-encoder probes share."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path(work))
    parser.add_argument("--synthetic-groups", type=int, default=1500)
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seeds", type=int, default=3, help="pool seeds")
    parser.add_argument("--phase", choices=["store", "train", "all"], default="all")
    parser.add_argument("--report", type=Path, default=Path(report))
    return parser.parse_args()


def train_or_load(model, dataset, collate, loss, run: Path, args, store, *, trainable: str, save_every: int) -> None:
    """Stage 2 from the shipped decoder (resumes a killed run); a finished run is loaded instead."""
    if (run / "model.safetensors").exists():
        from safetensors import safe_open

        with safe_open(str(run / "model.safetensors"), framework="pt") as handle:  # every parameter trained here
            missing = {name for name, _ in model.named_parameters()} - set(handle.keys())
        if missing:
            raise SystemExit(f"{run}/model.safetensors lacks {sorted(missing)[0]!r}; delete the run to retrain")
        load_trainable_state(model, run / "model.safetensors")
        return
    cfg = TrainConfig(out_dir=str(run), steps=args.steps, batch_size=args.batch_size, lr=args.lr, weight_decay=0.01,
                      warmup_steps=args.steps // 10, schedule="cosine", seed=0, save_every=save_every, log_every=10,
                      extra={"stage": 2, "store": str(store.root), "trainable": trainable})
    train(model, loss, dataset, cfg, collate=collate, resume=(run / "metrics.jsonl").exists(), assets=["easyocr-english-g2"],
          progress_label=f"stage 2, trainable: {trainable}")


VALIDATION = 500  # the IC15-train crops domain_ceiling.py holds out; every other one is in the big pool


def big_pool(encoder, train_split, cache: Path, tokens=None) -> Pool:
    """Every IC15-train crop but domain_ceiling.py's validation ones as the pool (about 40x the 100-crop
    pool); ``tokens`` maps the encoder's cached visuals to the recognizer's (a trained head)."""
    shuffled, visuals = shuffled_split(encoder, train_split, 0, cache)
    visuals = tokens(visuals) if tokens is not None else visuals
    rest = shuffled[VALIDATION:]
    return Pool(encoder.fingerprint).extended([r["text"] for r in rest], visuals[VALIDATION:], [r["path"] for r in rest])


def write_report(args, store, run: Path, started: float, **rows) -> None:
    results = {"config": {k: str(v) for k, v in vars(args).items()},
               "machine": f"{platform.platform()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}",
               "store_samples": len(store), "training": training_summary(run), **rows, "seconds": round(time.time() - started)}
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


def main():
    args = arguments(__doc__, work="runs/str/trained-encoder", steps=400, report="docs/results/scenetext_trained_encoder.json")
    started = time.time()
    encoder = ColumnEncoder()
    store = build_store(args.work / "store", None, synthetic_groups=args.synthetic_groups, encoder=encoder)
    if args.phase == "store":
        return
    shipped = Recognizer.load()
    seed_everything(0)
    model = HeadAndDecoder(SequenceHead(encoder.crnn), copy.deepcopy(shipped.model).train())
    for p in model.head.parameters():  # the CRNN's copy comes frozen
        p.requires_grad_(True)
    # step 0 must be the shipped recognizer: the untrained head reproduces the CRNN's CTC probabilities
    sample = [store.visual(i).float() for i in range(64)]
    drift = max((t[:, 256:].exp() - v[:, 256:].exp()).abs().max().item()
                for t, v in zip(model.head.apply([v[:, :256] for v in sample]), sample))
    assert drift < 0.02, f"the untrained head does not reproduce the CRNN (max probability difference {drift})"  # store: float16
    model.head.train()
    run = args.work / "stage2-head"
    train_or_load(model, ContextSequences(store, seed=0), collate, loss_fn, run, args, store,
                  trainable="BiLSTMs + CTC layer + decoder", save_every=100)
    if args.phase == "train":
        return
    model.eval()
    trained = Recognizer(model.decoder, encoder, {})

    dataset, split, subset = BENCHMARKS["IC15-2077"]
    records = load_records(dataset, split, None, filter=subset)
    texts = [r["text"] for r in records]
    cache = Path("runs/str/bench")
    shipped_visuals = cached_visuals(shipped.encoder, [r["image"] for r in records], cache / "IC15-2077.safetensors")
    columns = cached_visuals(encoder, [r["image"] for r in records], args.work / "IC15-2077-columns.safetensors")
    trained_visuals = model.head.apply([c[:, :256] for c in columns])
    train_split = load_dataset("ic15", "train")
    def pools(seed):
        if seed not in pool_cache:
            shipped_pool = benchmark_pool(shipped.encoder, train_split, seed, 100, cache / f"pool-ic15-100-seed{seed}.safetensors")
            cols = benchmark_pool(encoder, train_split, seed, 100, args.work / f"pool-columns-seed{seed}.safetensors")
            trained_pool = Pool(encoder.fingerprint).extended(cols.texts, model.head.apply([v.float()[:, :256] for v in cols.visuals]),
                                                              cols.sources)
            pool_cache[seed] = {"shipped": shipped_pool, "trained": trained_pool}
        return pool_cache[seed]

    pool_cache: dict[int, dict] = {}
    variants = {"shipped": (shipped, shipped_visuals, [(2, "retrieved")]),
                "trained": (trained, trained_visuals, [(1, "retrieved"), (2, "retrieved"), (4, "retrieved"), (2, "random")])}
    rows: dict[str, dict] = {}
    for label, (rec, visuals, settings) in variants.items():
        row = {"no context": accuracy(rec, visuals, texts)}
        for n, context in settings:
            values = [accuracy(rec, visuals, texts, pool=pools(seed)[label], n=n, context=context) for seed in range(args.seeds)]
            name = f"ICL n={n}" if context == "retrieved" else f"{context} context n={n}"
            row[name] = round(statistics.mean(values), 2)
            row[name + " (per pool seed)"] = values
            print(label, name, values, flush=True)
        head = (lambda visuals: model.head.apply([v.float()[:, :256] for v in visuals])) if rec is trained else None
        pool = big_pool(rec.encoder, train_split, (cache / "ic15-train-shuffled.safetensors") if rec is shipped
                        else args.work / "ic15-train-shuffled-columns.safetensors", head)
        row[f"ICL n=2, pool = all {len(pool)} other IC15-train crops"] = accuracy(rec, visuals, texts, pool=pool, n=2)
        rows[label] = row
        print(label, row, flush=True)
    write_report(args, store, run, started, **{"IC15-2077": rows})

if __name__ == "__main__":
    main()
