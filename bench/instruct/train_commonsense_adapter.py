"""Train the shipped LoRA adapter: Gemma 3 270M base, FLAN mixture with the commonsense cluster held out.

It runs `unseen instruct train --model gemma3-270m --heldout commonsense --lora` (the same
``instruction_tune`` the held-out protocol runs), then exports the adapter to
``src/unseen/instruct/weights/flan-commonsense-heldout/``: the LoRA tensors cast to fp16 (r=16 on
every linear layer of the body is 3.8M parameters, 15 MB in fp32, 7.6 MB in fp16; the issue's
limit is 10 MB), the peft ``adapter_config.json`` and a ``training.json`` with the measured
figures. The base model is never written (it comes from the gemma3-270m asset).

    OMP_NUM_THREADS=1 python bench/instruct/train_commonsense_adapter.py                  # 2 CPU cores shared: 1 thread
    OMP_NUM_THREADS=1 python bench/instruct/train_commonsense_adapter.py --export-only    # re-export a finished run

An interrupted run continues from its last checkpoint (every 25 steps).
"""

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file, save_file

from unseen.instruct.mixture import MixtureConfig
from unseen.instruct.train import InstructConfig, instruction_tune

WEIGHTS = Path(__file__).resolve().parents[2] / "src/unseen/instruct/weights/flan-commonsense-heldout"
MAX_BYTES = 10 * 1024 * 1024


def export(run_dir: Path, weights: Path, config: InstructConfig, threads: int, last_step: int | None = None) -> dict:
    """The adapter in fp16 plus its config; what was trained and how long it took."""
    model_dir = run_dir / "model"
    trained = load_file(model_dir / "adapter_model.safetensors")
    tensors = {name: tensor.to(torch.float16).contiguous() for name, tensor in trained.items()}
    weights.mkdir(parents=True, exist_ok=True)
    save_file(tensors, weights / "adapter_model.safetensors", metadata={"format": "pt", "dtype": "float16"})
    shutil.copy(model_dir / "adapter_config.json", weights / "adapter_config.json")
    size = (weights / "adapter_model.safetensors").stat().st_size
    if size > MAX_BYTES:
        raise SystemExit(f"adapter is {size} bytes, over the 10 MB limit: lower the rank or the targets")
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    metrics = [row for row in metrics if last_step is None or row["step"] <= last_step]
    run_info = yaml.safe_load((run_dir / "config.yaml").read_text())
    elapsed = metrics[-1]["elapsed_s"]
    info = {
        "base_model": config.model,
        "heldout_clusters": config.mixture.heldout,
        "instruct_config": {"steps": config.steps, "batch_size": config.batch_size, "max_length": config.max_length,
                            "lr": config.lr, "lora_r": config.lora_r, "lora_alpha": config.lora_alpha,
                            "cap_per_dataset": config.mixture.cap, "seed": config.seed},
        "mixture": {key: run_info.get("extra", {}).get(key) for key in
                    ("mixture_examples", "packed_rows", "examples_per_dataset", "trainable_parameters")},
        "parameters": sum(t.numel() for t in tensors.values()),
        "stored_dtype": "float16",
        "bytes": size,
        "first_loss": metrics[0]["loss"],
        "final_loss": metrics[-1]["loss"],
        "train_seconds": elapsed,  # since the last (re)start when a run was resumed
        "seconds_per_step": elapsed / max(1, metrics[-1]["step"] - metrics[0]["step"] + 1),
        "torch_threads": threads,
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores (shared), "
                   f"torch {torch.__version__}",
        "command": "OMP_NUM_THREADS=1 python bench/instruct/train_commonsense_adapter.py "
                   f"--steps {config.steps} --batch-size {config.batch_size} --max-length {config.max_length} "
                   f"--seed {config.seed}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    (weights / "training.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def adapter_from_checkpoint(checkpoint: Path, config: InstructConfig, run_dir: Path) -> None:
    """Write ``run_dir/model`` from a training checkpoint, for a run stopped before its last step
    (the deadline decides); the cosine schedule was then not finished, and training.json says so."""
    from unseen.core.training import apply_lora
    from unseen.core.training.checkpoint import load_trainable_state
    from unseen.instruct.train import _save_model, load_model

    model, tokenizer = load_model(config.model)
    model = apply_lora(model, r=config.lora_r, alpha=config.lora_alpha)
    load_trainable_state(model, checkpoint / "model.safetensors")
    _save_model(model, tokenizer, config, run_dir / "model")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=256, help="Tokens per packed row.")
    parser.add_argument("--cap", type=int, default=1000, help="Examples per training dataset at most.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--run-dir", type=Path, default=Path("runs/flan-commonsense-heldout"))
    parser.add_argument("--weights", type=Path, default=WEIGHTS)
    parser.add_argument("--export-only", action="store_true")
    parser.add_argument("--from-checkpoint", type=Path,
                        help="Export this checkpoint of --run-dir instead of the finished run.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    config = InstructConfig(model="gemma3-270m",
                            mixture=MixtureConfig(heldout=["commonsense"], cap=args.cap, seed=args.seed),
                            max_length=args.max_length, lora=True, steps=args.steps, batch_size=args.batch_size,
                            save_every=25, seed=args.seed)
    if not args.export_only:
        resume = (args.run_dir / "checkpoints").exists()
        result = instruction_tune(config, args.run_dir, resume=resume)
        print(f"trained {result.steps} steps, final loss {result.final_loss:.4f}")
    step = None
    if args.from_checkpoint:
        adapter_from_checkpoint(args.from_checkpoint, config, args.run_dir)
        step = json.loads((args.from_checkpoint / "state.json").read_text())["step"]
    info = export(args.run_dir, args.weights, config, args.threads, last_step=step)
    if args.from_checkpoint:
        info["stopped_at_step"] = step  # of the --steps the schedule was planned for
        info["command"] += f" (stopped at the step-{step} checkpoint, then --export-only --from-checkpoint)"
        (args.weights / "training.json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
