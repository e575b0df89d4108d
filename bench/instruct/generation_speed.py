"""Seconds per example of generation evaluation, before and after the early stop.

Before: ``model.generate(max_new_tokens=48)`` on left-padded batches, the first line kept
(what ``unseen instruct eval --generate`` ran until issue 14). After:
``unseen.instruct.generation.greedy_generate``: each row stops at the first newline after
text, at EOS, or near its longest option's token length, prompts run as the rank scorer
runs them, finished rows leave the batch. Both decode the same prompts greedily in one
process, so the answers should agree wherever the old first line fits the new cap; the
bench reports that agreement and the exact match of each. The chain-of-thought templates
run only the new way (48 tokens would cut most rationales short).

    python bench/instruct/generation_speed.py                       # gemma3-270m, ECQA, 48 examples
    python bench/instruct/generation_speed.py --limit 8 --out /tmp/probe.json

Timings mean something only on a quiet machine; the file records the thread count and host.
"""

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from unseen.instruct import load_records, load_templates, render
from unseen.instruct.answers import canonical_prediction, parse_answer
from unseen.instruct.evaluate import EvalConfig
from unseen.instruct.generation import answer_token_cap, greedy_generate
from unseen.instruct.lm import PROMPT_SUFFIX
from unseen.instruct.train import load_model

OLD_MAX_NEW_TOKENS = 48


def old_generate(model, tokenizer, prompts, batch_size):
    """The decoding evaluate.py ran before: every batch runs to 48 new tokens unless all rows emit EOS."""
    outputs, previous_side = [], tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        with torch.inference_mode():
            for start in range(0, len(prompts), batch_size):
                batch = tokenizer(prompts[start : start + batch_size], return_tensors="pt", padding=True)
                generated = model.generate(**batch, max_new_tokens=OLD_MAX_NEW_TOKENS, do_sample=False,
                                           pad_token_id=tokenizer.pad_token_id)
                new_tokens = generated[:, batch["input_ids"].shape[1] :]
                outputs += [tokenizer.decode(s, skip_special_tokens=True) for s in new_tokens]
    finally:
        tokenizer.padding_side = previous_side
    return [text.strip().split("\n")[0].strip() for text in outputs]


def new_generate(model, tokenizer, prompts, caps, batch_size):
    outputs = greedy_generate(model, tokenizer, prompts, caps, batch_size=batch_size)
    return [text.strip().split("\n")[0].strip() for text in outputs]


def exact_match(outputs, examples, chain_of_thought=False):
    right = [canonical_prediction(parse_answer(o, ex.answer_choices, chain_of_thought), ex.target_index,
                                  ex.answer_choices)
             == ex.target_index for o, ex in zip(outputs, examples)]
    return sum(right) / len(right)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="gemma3-270m")
    parser.add_argument("--task", default="ecqa")
    parser.add_argument("--templates", default="ecqa_plain,ecqa_question_answer")
    parser.add_argument("--cot-template", default="ecqa_cot_step_by_step", help="timed the new way only ('' to skip)")
    parser.add_argument("--limit", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("docs/results/instruct_generation_speed.json"))
    parser.add_argument("--note", default="", help="a line for the report, e.g. whether the machine was shared")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = EvalConfig()
    started = time.perf_counter()
    model, tokenizer = load_model(args.model)
    load_seconds = time.perf_counter() - started
    task = load_templates()[args.task]
    records = load_records(task, "eval")[: args.limit]
    rows = []
    for template_id in [t for t in args.templates.split(",") if t] + ([args.cot_template] if args.cot_template else []):
        template = task.template(template_id)
        examples = [ex for r in records if (ex := render(template, r)) is not None]
        prompts = [ex.input + PROMPT_SUFFIX for ex in examples]
        extra = config.cot_max_new_tokens if template.chain_of_thought else 0
        caps = [answer_token_cap(tokenizer, ex.answer_choices, config.answer_slack) + extra for ex in examples]
        row = {"template": template_id, "chain_of_thought": template.chain_of_thought, "n": len(examples),
               "max_cap": max(caps)}
        if not template.chain_of_thought:
            started = time.perf_counter()
            old = old_generate(model, tokenizer, prompts, args.batch_size)
            row["old_seconds_per_example"] = (time.perf_counter() - started) / len(examples)
            row["old_exact_match"] = exact_match(old, examples)
        started = time.perf_counter()
        new = new_generate(model, tokenizer, prompts, caps, args.batch_size)
        row["new_seconds_per_example"] = (time.perf_counter() - started) / len(examples)
        row["new_exact_match"] = exact_match(new, examples, template.chain_of_thought)
        if not template.chain_of_thought:
            row["same_answer"] = sum(a == b for a, b in zip(old, new)) / len(new)
            row["speedup"] = row["old_seconds_per_example"] / row["new_seconds_per_example"]
        row["samples"] = new[:3]
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "samples"}), flush=True)
    direct = [r for r in rows if not r["chain_of_thought"]]
    summary = {
        "old_seconds_per_example": statistics.fmean(r["old_seconds_per_example"] for r in direct),
        "new_seconds_per_example": statistics.fmean(r["new_seconds_per_example"] for r in direct),
    }
    summary["speedup"] = summary["old_seconds_per_example"] / summary["new_seconds_per_example"]
    result = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "model": args.model, "task": args.task, "limit": args.limit, "batch_size": args.batch_size,
        "threads": args.threads, "load_seconds": load_seconds, "machine": f"{platform.node()} {platform.processor()}",
        "torch": torch.__version__, "note": args.note, "summary": summary, "templates": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"# Generation evaluation speed: {args.model} on {args.task} ({args.limit} examples)", "",
             f"`{result['command']}` ({args.threads} thread(s), batch {args.batch_size}; {result['machine']})", "",
             *([args.note, ""] if args.note else []),
             "| template | n | cap (new tokens) | old s/example (48 tokens) | new s/example | speedup | same answer | "
             "exact match old | exact match new |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        old = lambda key, fmt: format(r[key], fmt) if key in r else "–"  # noqa: E731
        lines.append(f"| {r['template']} | {r['n']} | {r['max_cap']} | {old('old_seconds_per_example', '.3f')} | "
                     f"{r['new_seconds_per_example']:.3f} | {old('speedup', '.1f')} | {old('same_answer', '.0%')} | "
                     f"{old('old_exact_match', '.1%')} | {r['new_exact_match']:.1%} |")
    lines += ["", f"Direct templates, mean: {summary['old_seconds_per_example']:.3f} → "
              f"{summary['new_seconds_per_example']:.3f} s/example ({summary['speedup']:.1f}x)."]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
