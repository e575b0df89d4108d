"""Race our greedy generation against lm-evaluation-harness's `generate_until` on the same prompts.

Needs lm-eval (installs nothing itself):  pip install -e '.[bench]'   (pins lm-eval==0.4.13)

    python bench/instruct/generation_vs_lmeval.py   # writes docs/results/instruct_generation_vs_lmeval.{json,md}
    python bench/instruct/generation_vs_lmeval.py --limit 8 --rounds 1 --out /tmp/probe.json   # a short probe

One process, each framework's model loaded once (loading timed apart): ours through
`unseen.instruct.train.load_model`, lm-eval's `hf` model (`HFLM`) on the same converted folder,
both fp32 on the CPU with the same torch threads and batch size. The prompts are the ones
`unseen instruct eval --generate` decodes (a template's input + PROMPT_SUFFIX), and lm-eval gets
the very same strings as `generate_until` requests, `until=["\\n"]`, greedy: its own sorting,
batching, left padding, stop criteria and post-processing run. The bench checks both tokenize
every prompt alike.

Two caps: the one our evaluation applies (each prompt's longest option in tokens plus
`EvalConfig.answer_slack`; ours is per prompt, so lm-eval gets the largest of them, which can
only favour lm-eval's batch at its ends) and lm-eval's default of 256 new tokens for both.
Runs are interleaved (per round and cap: ours, then lm-eval) after one untimed batch each.
Answers are the first line of each output, stripped; the bench counts identical ones and the
exact match of each against the gold option (parsed as `generation_speed.py` does).
Timings mean something only on a quiet machine.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch
from generation_speed import exact_match
from speed_vs_lmeval import machine, write_report

from unseen.core.assets import resolve_model_dir
from unseen.instruct import load_records, load_templates, render
from unseen.instruct.evaluate import EvalConfig
from unseen.instruct.generation import answer_token_cap, greedy_generate
from unseen.instruct.lm import PROMPT_SUFFIX
from unseen.instruct.train import load_model

LMEVAL_DEFAULT_CAP = 256  # HFLM's max_gen_toks when a task sets none


def first_line(text: str) -> str:
    return text.strip().split("\n")[0].strip()


def load_lmeval(model_dir: str, batch_size: int):
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=model_dir, dtype="float32", batch_size=batch_size, device="cpu")


def lmeval_generate(lm, prompts: list[str], cap: int) -> list[str]:
    from lm_eval.api.instance import Instance

    kwargs = {"until": ["\n"], "max_gen_toks": cap, "do_sample": False}
    requests = [Instance(request_type="generate_until", doc={}, arguments=(p, dict(kwargs)), idx=0,
                         metadata=("generation_race", i, 1)) for i, p in enumerate(prompts)]
    return lm.generate_until(requests, disable_tqdm=True)


def timed(fn, *args):
    started = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - started, out


def markdown(report: dict) -> str:
    r = report
    lines = [f"# Generation speed: unseen vs lm-evaluation-harness {r['lm_eval_version']} `generate_until`", "",
             f"Command: `{r['command']}`  ",
             f"{r['date']}; {r['model']} on {r['task']} (`{r['template']}`), {r['n']} validation prompts, batch "
             f"{r['batch_size']}, {r['threads']} torch threads, {r['rounds']} interleaved rounds per cap; "
             f"machine: {json.dumps(r['machine'])}", "", *([r["note"], ""] if r["note"] else []),
             f"Model loading (not timed below): ours {r['load_s']['unseen']:.1f} s, lm-eval "
             f"{r['load_s']['lm-eval']:.1f} s.", "",
             "| cap (new tokens) | unseen prompts/s | lm-eval prompts/s | speed-up | same first line | "
             "exact match unseen | exact match lm-eval | seconds per run (unseen; lm-eval) |",
             "|---|---|---|---|---|---|---|---|"]
    for c in r["caps"]:
        lines.append(f"| {c['label']} | {c['unseen']['prompts_per_s']:.2f} | {c['lm-eval']['prompts_per_s']:.2f} | "
                     f"**{c['speedup']:.2f}x** | {c['same_first_line']}/{r['n']} | "
                     f"{c['unseen']['exact_match']:.1%} | {c['lm-eval']['exact_match']:.1%} | "
                     f"{', '.join(f'{s:.1f}' for s in c['unseen']['seconds'])}; "
                     f"{', '.join(f'{s:.1f}' for s in c['lm-eval']['seconds'])} |")
    d = r["defaults"]
    lines += ["", f"Each as shipped (ours at its own caps, lm-eval at its default {LMEVAL_DEFAULT_CAP}): "
              f"{d['unseen_prompts_per_s']:.2f} vs {d['lmeval_prompts_per_s']:.2f} prompts/s, "
              f"**{d['speedup']:.2f}x**.", "",
              "prompts/s is the mean over rounds of prompts / seconds inside the call (`greedy_generate`, "
              "`HFLM.generate_until`, tokenizing and decoding included). Ours caps each prompt at its longest "
              "option's token length plus the slack (the largest of these caps is lm-eval's cap in the first row); "
              "both stop a row at the first newline (ours after some text, lm-eval's `until` at any newline) or "
              "EOS. Same first line: the first line of each output, stripped, identical."]
    if any(c["disagreements"] for c in r["caps"]):
        lines += ["", "Disagreements (prompt index: unseen | lm-eval):", ""]
        for c in r["caps"]:
            lines += [f"- cap {c['label']}, #{i}: `{a}` | `{b}`" for i, a, b in c["disagreements"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="gemma3-270m")
    parser.add_argument("--task", default="ecqa")
    parser.add_argument("--template", default="ecqa_plain", help="a direct-answer template")
    parser.add_argument("--limit", type=int, default=96, help="first N validation records")
    parser.add_argument("--batch-size", type=int, default=8, help="for both")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2, help="timed runs of each framework at each cap")
    parser.add_argument("--out", type=Path, default=Path("docs/results/instruct_generation_vs_lmeval.json"))
    parser.add_argument("--note", default="", help="a line for the report, e.g. whether the machine was quiet")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    began = time.perf_counter()

    load_ours, (model, tokenizer) = timed(load_model, args.model)
    load_lm, lm = timed(load_lmeval, resolve_model_dir(args.model), args.batch_size)
    task = load_templates()[args.task]
    template = task.template(args.template)
    if template.chain_of_thought:
        sys.exit(f"{args.template} is a chain-of-thought template; race a direct-answer one")
    records = load_records(task, "eval")[: args.limit]
    examples = [ex for r in records if (ex := render(template, r)) is not None]
    prompts = [ex.input + PROMPT_SUFFIX for ex in examples]
    for p in prompts:  # like for like: both frameworks must feed the model the same tokens
        if lm.tok_encode(p) != tokenizer(p)["input_ids"]:
            sys.exit(f"lm-eval tokenizes a prompt differently from ours; the race would not be fair: {p!r}")
    our_caps = [answer_token_cap(tokenizer, ex.answer_choices, EvalConfig().answer_slack) for ex in examples]
    settings = [  # (label, our caps, lm-eval's cap)
        (f"ours (max {max(our_caps)}); lm-eval {max(our_caps)}", our_caps, max(our_caps)),
        (f"{LMEVAL_DEFAULT_CAP} (lm-eval's default), both", LMEVAL_DEFAULT_CAP, LMEVAL_DEFAULT_CAP),
    ]
    ours = lambda caps: greedy_generate(model, tokenizer, prompts, caps, batch_size=args.batch_size)  # noqa: E731
    theirs = lambda cap: lmeval_generate(lm, prompts, cap)  # noqa: E731

    # one untimed batch each: first-call costs (allocator, lazy initialisation) stay out of the race
    greedy_generate(model, tokenizer, prompts[: args.batch_size], our_caps[: args.batch_size],
                    batch_size=args.batch_size)
    lmeval_generate(lm, prompts[: args.batch_size], max(our_caps))
    seconds = {(k, who): [] for k in range(len(settings)) for who in ("unseen", "lm-eval")}
    outputs = {}
    for round_ in range(args.rounds):
        for k, (label, caps, cap) in enumerate(settings):
            for who, run, arg in (("unseen", ours, caps), ("lm-eval", theirs, cap)):
                took, texts = timed(run, arg)
                answers = [first_line(t) for t in texts]
                if outputs.setdefault((k, who), answers) != answers:
                    print(f"warning: {who} at cap {label}: round {round_} answered differently", flush=True)
                seconds[(k, who)].append(took)
                print(f"round {round_ + 1} cap {label}: {who} {took:.1f} s ({len(prompts) / took:.2f} prompts/s)",
                      flush=True)

    import lm_eval

    rows = []
    for k, (label, caps, cap) in enumerate(settings):
        row = {"label": label, "lmeval_cap": cap,
               "unseen_caps": caps if isinstance(caps, int) else {"min": min(caps), "max": max(caps)}}
        for who in ("unseen", "lm-eval"):
            runs = seconds[(k, who)]
            row[who] = {"seconds": [round(s, 2) for s in runs],
                        "prompts_per_s": round(statistics.fmean(len(prompts) / s for s in runs), 3),
                        "exact_match": exact_match(outputs[(k, who)], examples)}
        row["speedup"] = round(row["unseen"]["prompts_per_s"] / row["lm-eval"]["prompts_per_s"], 3)
        pairs = list(zip(outputs[(k, "unseen")], outputs[(k, "lm-eval")]))
        row["same_first_line"] = sum(a == b for a, b in pairs)
        row["disagreements"] = [(i, a, b) for i, (a, b) in enumerate(pairs) if a != b]
        row["samples"] = pairs[:3]
        rows.append(row)
    ours_default, lmeval_default = rows[0]["unseen"]["prompts_per_s"], rows[1]["lm-eval"]["prompts_per_s"]
    report = {
        "command": shlex.join(["python", *sys.argv]), "date": datetime.datetime.now().isoformat(timespec="minutes"),
        "model": args.model, "model_dir": resolve_model_dir(args.model), "task": args.task,
        "template": args.template, "n": len(prompts), "batch_size": args.batch_size, "threads": args.threads,
        "rounds": args.rounds, "lm_eval_version": lm_eval.__version__, "machine": machine(), "note": args.note,
        "load_s": {"unseen": round(load_ours, 1), "lm-eval": round(load_lm, 1)},
        "caps": rows,
        "defaults": {"unseen_prompts_per_s": ours_default, "lmeval_prompts_per_s": lmeval_default,
                     "speedup": round(ours_default / lmeval_default, 3)},
        "wall_s": round(time.perf_counter() - began, 1),
    }
    write_report(args.out, report, markdown)


if __name__ == "__main__":
    main()
