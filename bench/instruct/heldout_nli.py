"""FLAN effect on held-out NLI: base vs instruction-tuned, zero-shot over templates.

Instruction-tunes each model on the mixture with NLI (and paraphrase) held out, then
evaluates RTE, CB and a fixed SNLI subset (the first N test pairs) with every
classification template, rank scoring (+ content-free calibration). Writes the
FLAN-style table and bar plot to docs/results/. Pieces already under --out are reused.

    python bench/instruct/heldout_nli.py                      # the full protocol (hours on 2 cores)
    python bench/instruct/heldout_nli.py --quick              # the reduced run documented in docs/results

Ablations (FLAN section 4): `--raw-inputs` trains on the records' fields without any
instruction ("no template"); `--train-datasets sst2,boolq,...` restricts the mixture
(number of training clusters). Give each its own --out; --base-from DIR reuses the base
model's evaluation from an earlier run with the same evaluation settings. `--shots K`
evaluates K-shot instead of zero-shot (FLAN section 4.4); a tuned model already under
--out/nli/<model>/seed<N>/model is evaluated as it is, not trained again.
"""

import argparse
import platform
import shutil
import sys
import time
from pathlib import Path

import torch

from unseen.instruct.evaluate import EvalConfig
from unseen.instruct.heldout import HeldoutConfig, run_heldout
from unseen.instruct.mixture import MixtureConfig
from unseen.instruct.train import InstructConfig

QUICK_TEMPLATES = [
    "rte_given_passage", "rte_premise_hypothesis", "rte_also_true", "rte_passage_claim",
    "cb_given_paragraph", "cb_premise_hypothesis", "cb_decide", "cb_conclusion",
    "snli_premise_hypothesis", "snli_if_then", "snli_given_that", "snli_two_sentences",
]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="gemma3-270m,smollm2-135m-instruct")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--cap", type=int, default=1000)
    parser.add_argument("--snli-limit", type=int, default=1000)
    parser.add_argument("--templates", default="all", help="all, quick (4 per task, the --quick set) or template ids")
    parser.add_argument("--shots", type=int, default=0,
                        help="evaluate K-shot: K exemplars from each task's train split, rendered with the same "
                             "template")
    parser.add_argument("--fewshot-fraction", type=float, default=0.2)
    parser.add_argument("--full", action="store_true", help="full fine-tuning instead of LoRA (a GPU run)")
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--batch-size", type=int, default=8, help="packed rows per step")
    parser.add_argument("--max-length", type=int, default=256, help="tokens per packed row")
    parser.add_argument("--save-every", type=int, default=50, help="checkpoint interval (full checkpoints are large)")
    parser.add_argument("--eval-batch-size", type=int, default=8)
    parser.add_argument("--quick", action="store_true",
                        help="gemma3-270m, 1 seed, 150 steps, 4 templates per task, SNLI 200")
    parser.add_argument("--raw-inputs", action="store_true", help="ablation: no template, 'field: value' lines")
    parser.add_argument("--train-datasets", help="ablation: train on these datasets only (comma-separated)")
    parser.add_argument("--base-from", type=Path, help="reuse base.json from this earlier --out (same evaluation)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench/instruct_heldout"))
    parser.add_argument("--docs", type=Path, default=Path("docs/results/instruct_heldout.md"))
    args = parser.parse_args()
    if args.quick:
        args.models, args.seeds, args.steps, args.snli_limit = "gemma3-270m", "0", 150, 200
        args.templates = "quick"
    if args.templates == "quick":
        args.templates = ",".join(QUICK_TEMPLATES)
    templates = "all" if args.templates == "all" else args.templates.split(",")
    train_datasets = args.train_datasets.split(",") if args.train_datasets else None
    config = HeldoutConfig(
        models=args.models.split(","), clusters=["nli"], seeds=[int(s) for s in args.seeds.split(",")],
        tasks={"nli": ["rte", "cb", "snli"]},
        train=InstructConfig(steps=args.steps, lora=not args.full, batch_size=args.batch_size, lr=args.lr,
                             max_length=args.max_length, save_every=args.save_every,
                             mixture=MixtureConfig(cap=args.cap, fewshot_fraction=args.fewshot_fraction,
                                                   raw_inputs=args.raw_inputs, datasets=train_datasets)),
        eval=EvalConfig(templates=templates, limit={"snli": args.snli_limit}, calibrate=True,
                        batch_size=args.eval_batch_size, shots=args.shots),
    )
    if args.base_from:
        for model in config.models:
            source = args.base_from / "nli" / Path(model).name / "base.json"
            target = args.out / "nli" / Path(model).name / "base.json"
            if source.exists() and not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)
    started = time.time()
    run_heldout(config, args.out)
    minutes = (time.time() - started) / 60
    args.docs.parent.mkdir(parents=True, exist_ok=True)
    machine = (f"GPU {torch.cuda.get_device_name()} (bf16 training, fp32 scoring)" if torch.cuda.is_available()
               else f"CPU, {torch.get_num_threads()} torch threads")
    plot = args.docs.with_suffix(".png")
    shutil.copyfile(args.out / "heldout.png", plot)
    table = (args.out / "summary.md").read_text()
    evaluation = (f"{args.shots}-shot: the same {args.shots} train-split exemplars per template, in its format"
                  if args.shots else "zero-shot")
    args.docs.write_text(
        "# FLAN on held-out NLI\n\n"
        f"Generated by `python {' '.join(sys.argv)}` (this invocation: {minutes:.0f} min; evaluations and "
        f"training runs already under {args.out} were reused, not redone) on "
        f"{platform.platform()}, {machine}, torch {torch.__version__}.\n\n"
        f"Models {config.models}; training seeds {config.seeds}; {config.train.steps} steps of "
        + (f"LoRA (r={config.train.lora_r})" if config.train.lora else "full fine-tuning") + ", "
        f"batch {config.train.batch_size} packed rows of {config.train.max_length} tokens, lr {config.train.lr}; "
        f"mixture: every cluster except NLI and paraphrase, at most {config.train.mixture.cap} examples per dataset, "
        f"{config.train.mixture.fewshot_fraction:.0%} few-shot"
        + (", ablation: raw inputs (no template)" if args.raw_inputs else "")
        + (f", ablation: trained on {args.train_datasets} only" if args.train_datasets else "")
        + f". Evaluation ({evaluation}): "
        "RTE validation (277), CB validation (56), "
        f"SNLI test (first {args.snli_limit}); templates: {args.templates}; rank scoring by summed log-likelihood. "
        "Balanced accuracy is the mean recall over classes (a constant answer scores 1/classes); "
        "'always-same' is the best constant answer's plain accuracy.\n\n"
        + table + f"\n![base vs tuned]({plot.name})\n"
    )
    print(table)


if __name__ == "__main__":
    main()
