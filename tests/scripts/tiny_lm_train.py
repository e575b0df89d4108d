"""Train a tiny random Llama on SST-2 sentences (bytes as tokens) through the core loop.

Used by the tests as a subprocess: under plain python, under `accelerate launch`,
and killed with SIGKILL then resumed.
"""

import argparse

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from unseen.core.data import load_dataset
from unseen.core.training import TrainConfig, apply_lora, seed_everything, train

SEQUENCE_LENGTH = 32


def encode(text: str) -> torch.Tensor:
    ids = list(text.encode("utf-8")[:SEQUENCE_LENGTH])
    ids += [0] * (SEQUENCE_LENGTH - len(ids))
    return torch.tensor(ids)


def loss_fn(model, batch):
    output = model(input_ids=batch, labels=batch.masked_fill(batch == 0, -100))
    return output.loss


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--grad-accum", type=int, default=1)
    parser.add_argument("--save-every", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lora", action="store_true")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--dropout", type=float, default=0.1)
    args = parser.parse_args()

    seed_everything(args.seed)
    config = LlamaConfig(
        vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, attention_dropout=args.dropout, pad_token_id=0,
    )
    model = LlamaForCausalLM(config)
    if args.lora:
        model = apply_lora(model, r=4, alpha=8, dropout=0.1)
    sentences = [encode(record["sentence"]) for record in load_dataset("sst2", "train")[:512]]
    train(
        model, loss_fn, sentences,
        TrainConfig(out_dir=args.out, steps=args.steps, batch_size=args.batch_size, grad_accum=args.grad_accum,
                    lr=3e-3, save_every=args.save_every, seed=args.seed, schedule="cosine", warmup_steps=2),
        resume=args.resume, data=[("sst2", "train")],
    )


if __name__ == "__main__":
    main()
