"""Race our rank scorer against EleutherAI lm-evaluation-harness on the same model, task and template.

Needs lm-eval (installs nothing itself):  pip install -e '.[bench]'   (pins lm-eval==0.4.13)

    python bench/instruct/speed_vs_lmeval.py           # full run: writes docs/results/instruct_speed.{json,md}
    python bench/instruct/speed_vs_lmeval.py --limit 60 --threads 1 --out /tmp/speed.json   # a short probe
    python bench/instruct/speed_vs_lmeval.py --shots 2 --out docs/results/instruct_speed_2shot.json

Per model, in one process and back to back: lm-eval (`hf` model, the local converted folder,
a local task YAML with super_glue's template and our validation records), then our
`score_options` in fp32 (exact) and with `quantize_for_cpu` (int8). Model loading is timed
apart; examples/s counts scoring only (for lm-eval: `simple_evaluate` on a loaded model).
Timings mean something only on a quiet machine.

With `--shots K` both scorers read K-shot prompts: the first K train records as exemplars
for every example (lm-eval's `first_n` sampler, its format: exemplar + " " + answer, "\n\n"
between), checked to be the very strings lm-eval scored. Ours then runs the exemplars once
per call (shared-prefix cache); a third row runs every prompt whole, to show what that buys.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path

import torch

from unseen.core.assets import resolve_model_dir
from unseen.core.data import load_dataset
from unseen.core.scoring import quantize_for_cpu, score_options

# lm-eval's super_glue templates (lm_eval/tasks/super_glue/{rte,cb}/default.yaml); labels index the choices
TASKS = {
    "rte": ("{premise}\nQuestion: {hypothesis} True or False?\nAnswer:", ["True", "False"]),
    "cb": ("{premise}\nQuestion: {hypothesis}. True, False, or Neither?\nAnswer:", ["True", "False", "Neither"]),
}
DEFAULT_RUNS = ["smollm2-135m-instruct:rte", "gemma3-270m:rte,cb"]


def write_task(folder: Path, name: str, records: list[dict], exemplars: list[dict]) -> str:
    """A local lm-eval task: our records as JSONL, the template in lm-eval's Jinja syntax."""
    template, choices = TASKS[name]
    files = {}
    for split, rows in (("validation", records), ("train", exemplars)):
        if rows:
            files[split] = str(folder / f"{name}-{split}.jsonl")
            Path(files[split]).write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = f"speed_{name}"
    jinja = template.replace("{", "{{").replace("}", "}}")
    config = {"task": task, "dataset_path": "json", "dataset_kwargs": {"data_files": files},
              "output_type": "multiple_choice", "validation_split": "validation", "doc_to_text": jinja,
              "doc_to_target": "label", "doc_to_choice": choices, "metric_list": [{"metric": "acc"}]}
    if exemplars:
        config |= {"fewshot_split": "train", "num_fewshot": len(exemplars), "fewshot_config": {"sampler": "first_n"}}
    (folder / f"{task}.yaml").write_text(json.dumps(config, indent=1))  # JSON is valid YAML
    return task


def run_lmeval(model_dir: str, records: dict[str, list[dict]], exemplars: dict[str, list[dict]],
               batch_size: int) -> dict:
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    started = time.perf_counter()
    lm = HFLM(pretrained=model_dir, dtype="float32", batch_size=batch_size, device="cpu")
    load = time.perf_counter() - started
    inner, scoring = lm.loglikelihood, [0.0]

    def timed_loglikelihood(*args, **kwargs):  # the harness's own scoring time, without task set-up
        begun = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            scoring[0] += time.perf_counter() - begun

    lm.loglikelihood = timed_loglikelihood
    with tempfile.TemporaryDirectory() as folder:
        names = {write_task(Path(folder), name, recs, exemplars[name]): name for name, recs in records.items()}
        shots = len(next(iter(exemplars.values())))
        started = time.perf_counter()
        out = lm_eval.simple_evaluate(model=lm, tasks=list(names), task_manager=TaskManager(include_path=folder),
                                      num_fewshot=shots or None, log_samples=True, bootstrap_iters=0)
        harness = time.perf_counter() - started
    predictions = {
        names[task]: [max(range(len(s["filtered_resps"])), key=lambda k: s["filtered_resps"][k][0])
                      for s in sorted(samples, key=lambda s: s["doc_id"])]
        for task, samples in out["samples"].items()
    }
    contexts = {names[task]: [s["arguments"][0][0] for s in sorted(samples, key=lambda s: s["doc_id"])]
                for task, samples in out["samples"].items()}
    return {"load_s": load, "seconds": scoring[0], "harness_s": harness, "predictions": predictions,
            "contexts": contexts, "version": lm_eval.__version__}


def task_prompts(name: str, recs: list[dict], exemplars: list[dict] = ()) -> list[str]:
    template, choices = TASKS[name]
    prefix = "".join(f"{template.format(**e)} {choices[e['label']]}\n\n" for e in exemplars)
    return [prefix + template.format(**r) for r in recs]


def run_ours(model, tokenizer, records: dict[str, list[dict]], exemplars: dict[str, list[dict]], batch_size: int,
             share_prefix: bool = True) -> dict:
    started = time.perf_counter()
    predictions = {}
    for name, recs in records.items():
        choices = TASKS[name][1]
        prompts = task_prompts(name, recs, exemplars[name])
        scores = score_options(model, tokenizer, prompts, [[" " + c for c in choices]] * len(recs),
                               batch_size=batch_size, share_prefix=share_prefix)
        predictions[name] = [max(range(len(s.loglik)), key=s.loglik.__getitem__) for s in scores]
    return {"seconds": time.perf_counter() - started, "predictions": predictions}


def compute_budget(model, tokenizer, records: dict[str, list[dict]]) -> dict:
    """FLOPs each scorer must spend on these examples, counted from the model's shapes.

    Every prompt token goes through every body weight (2 FLOPs per weight) plus causal
    attention; the output layer (vocabulary x hidden) runs at every position in lm-eval
    and only at the last prompt position in ours (all options here are one token).
    """
    config = model.config
    head = model.get_output_embeddings().weight
    seen, total = set(), 0
    for parameter in model.parameters():  # tied embeddings count once
        if parameter.data_ptr() not in seen:
            seen.add(parameter.data_ptr())
            total += parameter.numel()
    body = total - model.get_input_embeddings().weight.numel()  # the input embedding is a lookup
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    lengths = [len(tokenizer(prompt)["input_ids"])
               for name, recs in records.items() for prompt in task_prompts(name, recs)]
    attention = sum(2 * config.num_hidden_layers * heads * head_dim * t * t for t in lengths)  # QK^T and AV, causal
    body_flops = sum(2 * body * t for t in lengths) + attention
    head_row = 2 * head.shape[0] * head.shape[1]
    return {"tokens": sum(lengths), "body_params": body, "head_params": head.numel(),
            "ours_flops": body_flops + head_row * len(lengths), "lmeval_flops": body_flops + head_row * sum(lengths)}


def matmul_peak(model, repeats: int = 5) -> float:
    """fp32 GFLOP/s of one body-shaped matrix product (1024 tokens x hidden x MLP width): the machine's ceiling."""
    d = model.config.hidden_size
    width = getattr(model.config, "intermediate_size", 4 * d)
    a, b = torch.randn(1024, d), torch.randn(d, width)
    torch.mm(a, b)
    best = min(timeit.repeat(lambda: torch.mm(a, b), number=1, repeat=repeats))
    return 2 * 1024 * d * width / best / 1e9


def summarize(run: dict, records: dict[str, list[dict]], reference: dict | None) -> dict:
    n = sum(len(r) for r in records.values())
    row = {"seconds": round(run["seconds"], 2), "examples_per_s": round(n / run["seconds"], 2)}
    for key in ("load_s", "harness_s"):
        if key in run:
            row[key] = round(run[key], 1)
    for name, recs in records.items():
        predicted = run["predictions"][name]
        row[f"{name}_accuracy"] = round(100 * sum(p == r["label"] for p, r in zip(predicted, recs)) / len(recs), 2)
        if reference is not None:  # how many predictions match lm-eval's, example by example
            same = sum(a == b for a, b in zip(predicted, reference[name]))
            row[f"{name}_agreement"] = round(100 * same / len(recs), 2)
    return row


def write_report(out: Path, report: dict, markdown) -> None:
    """``out`` (JSON) and its Markdown twin, which is also printed."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))


def machine() -> dict:
    cpu = platform.processor()
    if Path("/proc/cpuinfo").exists():
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), cpu)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    status = ["git", "status", "--porcelain", "--untracked-files=no"]
    dirty = bool(subprocess.run(status, capture_output=True, text=True).stdout)
    return {"cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "quantized_engine": torch.backends.quantized.engine,
            "python": platform.python_version(), "git_commit": commit + ("-dirty" if dirty else "")}


def markdown(report: dict) -> str:
    shots = report["runs"][0].get("shots", 0) if report["runs"] else 0
    lines = ["# Rank scoring speed: unseen vs lm-evaluation-harness" + (f", {shots}-shot prompts" if shots else ""), "",
             f"Command: `{report['command']}`  ",
             f"Seed {report['seed']}; machine: {json.dumps(report['machine'])}", "",
             "| model | tasks | n | scorer | scoring s | examples/s | speed-up vs lm-eval | accuracy | agreement with "
             "lm-eval |", "|---|---|---|---|---|---|---|---|---|"]
    for run in report["runs"]:
        base = run["scorers"]["lm-eval"]["examples_per_s"]
        for scorer, row in run["scorers"].items():
            accuracy = ", ".join(f"{t} {row[f'{t}_accuracy']:.1f}" for t in run["tasks"])
            agreement = ", ".join(f"{t} {row[f'{t}_agreement']:.1f}" for t in run["tasks"]
                                  if f"{t}_agreement" in row) or "–"
            lines.append(f"| {run['model']} | {','.join(run['tasks'])} | {run['n']} | {scorer} | {row['seconds']:.1f} "
                         f"| {row['examples_per_s']:.2f} | {row['examples_per_s'] / base:.2f}x | {accuracy} | "
                         f"{agreement} |")
    lines += ["", "Scoring time excludes model loading and, for lm-eval, task set-up: it is the time inside "
              "`HFLM.loglikelihood` (`harness_s` in the JSON is the whole `simple_evaluate`); ours is `score_options` "
              "(tokenizing included). Accuracy is the argmax of the summed log-likelihood (lm-eval's `acc`); "
              "agreement is the share of examples where a scorer picks the same option as lm-eval."]
    if not any(run.get("compute") for run in report["runs"]):
        return "\n".join(lines) + "\n"
    lines += ["", "## Where the time goes", "",
              "FLOPs counted from the model's shapes (`compute_budget`): every prompt token through every body weight, "
              "causal attention, and the output layer at every position (lm-eval) or at the last one (ours). The "
              "matrix-product rate is one body-shaped fp32 `torch.mm` (1024 tokens) in the same process: no exact fp32 "
              "scorer runs faster than the minimal FLOPs at that rate, which bounds its speed-up over lm-eval.", "",
              "| model | tokens | body params | output-layer params | GFLOP lm-eval | GFLOP ours | lm-eval GFLOP/s | "
              "ours GFLOP/s | matmul GFLOP/s | ceiling of an exact fp32 scorer |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for run in report["runs"]:
        c = run.get("compute")
        if c:
            lines.append(f"| {run['model']} | {c['tokens']} | {c['body_params'] / 1e6:.0f}M | "
                         f"{c['head_params'] / 1e6:.0f}M | {c['lmeval_flops'] / 1e9:.0f} | {c['ours_flops'] / 1e9:.0f} "
                         f"| {run['scorers']['lm-eval']['gflops_per_s']:.0f} | "
                         f"{run['scorers']['unseen fp32']['gflops_per_s']:.0f} | {c['matmul_gflops_per_s']:.0f} | "
                         f"{c['exact_fp32_ceiling_speedup']:.2f}x |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", nargs="+", default=DEFAULT_RUNS, help="MODEL:TASK[,TASK] (tasks: rte, cb)")
    parser.add_argument("--limit", type=int, help="first N validation examples of each task (probes)")
    parser.add_argument("--batch-size", type=int, default=8, help="for both scorers (lm-eval's --batch_size)")
    parser.add_argument("--threads", type=int, help="torch threads for everything (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shots", type=int, default=0, help="K-shot prompts (the first K train records as exemplars)")
    parser.add_argument("--out", type=Path, default=Path("docs/results/instruct_speed.json"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    report = {"command": " ".join(["python", *sys.argv]), "seed": args.seed, "machine": machine(), "runs": []}
    for spec in args.runs:
        name, tasks = spec.split(":")
        tasks = tasks.split(",")
        records = {t: load_dataset(t, "validation")[: args.limit] for t in tasks}
        exemplars = {t: load_dataset(t, "train")[: args.shots] if args.shots else [] for t in tasks}
        model_dir = resolve_model_dir(name)  # converts the GGUF on first use, outside the timings
        lmeval = run_lmeval(model_dir, records, exemplars, args.batch_size)
        for t in tasks:  # the race is only fair if both score the very same strings
            if lmeval["contexts"][t] != task_prompts(t, records[t], exemplars[t]):
                sys.exit(f"{t}: our prompts differ from the contexts lm-eval scored; "
                         "the race would not be like for like")
        started = time.perf_counter()
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        load = time.perf_counter() - started
        fp32 = run_ours(model, tokenizer, records, exemplars, args.batch_size) | {"load_s": load}
        scorers = {"lm-eval": summarize(lmeval, records, None),
                   "unseen fp32": summarize(fp32, records, lmeval["predictions"])}
        if args.shots:  # the same scorer without the shared-prefix cache: what running the exemplars once buys
            whole = run_ours(model, tokenizer, records, exemplars, args.batch_size, share_prefix=False)
            scorers["unseen fp32, whole prompts"] = summarize(whole, records, lmeval["predictions"])
        else:
            started = time.perf_counter()
            quantized = quantize_for_cpu(copy.deepcopy(model))
            load = time.perf_counter() - started
            int8 = run_ours(quantized, tokenizer, records, exemplars, args.batch_size) | {"load_s": load}
            scorers["unseen int8"] = summarize(int8, records, lmeval["predictions"])
            for t in tasks:
                same = sum(a == b for a, b in zip(int8["predictions"][t], fp32["predictions"][t]))
                scorers["unseen int8"][f"{t}_agreement_with_fp32"] = round(100 * same / len(records[t]), 2)
        run = {"model": name, "model_dir": model_dir, "tasks": tasks, "n": sum(map(len, records.values())),
               "shots": args.shots, "lm_eval_version": lmeval["version"], "scorers": scorers}
        report["runs"].append(run)
        if args.shots:  # the FLOP count below assumes every prompt runs whole; with shared exemplars it does not
            print(json.dumps(run, indent=1), flush=True)
            del model
            continue
        budget = compute_budget(model, tokenizer, records) | {"matmul_gflops_per_s": round(matmul_peak(model), 1)}
        for scorer, flops in (("lm-eval", budget["lmeval_flops"]), ("unseen fp32", budget["ours_flops"])):
            scorers[scorer]["gflops_per_s"] = round(flops / scorers[scorer]["seconds"] / 1e9, 1)
        # no exact fp32 scorer can beat the minimal FLOPs at the machine's matrix-product rate
        budget["exact_fp32_ceiling_speedup"] = round(
            scorers["lm-eval"]["seconds"] / (budget["ours_flops"] / 1e9 / budget["matmul_gflops_per_s"]), 2)
        run["compute"] = budget
        print(json.dumps(run, indent=1), flush=True)
        del model, quantized
    write_report(args.out, report, markdown)


if __name__ == "__main__":
    main()
