"""POUF benchmark: regenerates docs/results/pouf.md, pouf.png and the raw pouf-*.json.

    .venv/bin/python bench/pouf/bench.py text     # SmolLM2-135M on 9 text tasks, zero-shot vs POUF, 3 seeds
    .venv/bin/python bench/pouf/bench.py image    # ConSE on PACS cartoon/sketch (photo for reference)
    .venv/bin/python bench/pouf/bench.py speed    # one prompt-tuning step: cached features vs re-encoding
    .venv/bin/python bench/pouf/bench.py report   # the tables and the plot from the JSON files (report.py)

On 2 cores, text runs about twice as fast as two one-thread shards, merged afterwards:

    .venv/bin/python bench/pouf/bench.py text --fresh --tasks rte,ag_news,mpqa,trec --json runs/text-a.json &
    .venv/bin/python bench/pouf/bench.py text --fresh --tasks mrpc,subj,mr,sst2,cr --json runs/text-b.json
    .venv/bin/python bench/pouf/bench.py merge-text runs/text-a.json runs/text-b.json

Tasks beyond the nine (the neighbour check on tasks it was not developed on), one seed:

    .venv/bin/python bench/pouf/bench.py text --fresh --seeds 0 --tasks snli,boolq \
        --prompts bench/pouf/further_tasks.yaml --json docs/results/pouf-text-further.json

The same further tasks and two more (creak, strategyqa, prompts written before any run) on Gemma 3 270M:

    .venv/bin/python bench/pouf/bench.py text --fresh --model gemma3-270m --seeds 0 \
        --tasks snli,boolq,creak,strategyqa --prompts bench/pouf/further_tasks.yaml \
        --json docs/results/pouf-text-further-gemma3.json

`text` runs SmolLM2-135M-Instruct (docs/results/pouf-text.json, where the neighbour check, the
interpolation and the further tasks were measured); `unseen pouf`'s text default is now Gemma 3
270M. The same nine tasks on Gemma 3 270M (two shards, merged with `merge-text --into
docs/results/pouf-text-gemma3.json`):

    .venv/bin/python bench/pouf/bench.py text --fresh --model gemma3-270m --tasks sst2,cr,subj,rte,mpqa \
        --json runs/gemma-a.json &
    .venv/bin/python bench/pouf/bench.py text --fresh --model gemma3-270m --tasks mr,trec,ag_news,mrpc \
        --json runs/gemma-b.json

Which model is `unseen pouf`'s text default (rule written 2026-12-06 07:03 UTC, when seed 0 of sst2
and mr had finished on Gemma): the one whose POUF average over the nine tasks x 3 seeds is higher,
provided its calibrated zero-shot average is not lower either (a user also reads it unadapted).

(`--threads N` before the command sets torch's threads; default 1.)

Run the first three under `flock /tmp/unseen-heavy.lock` on a shared machine. Each
finished (task, seed) is stored at once in the JSON file, and a rerun skips it, so an
interrupted benchmark continues where it stopped (--fresh starts over). Run folders go
to runs/pouf-bench/ (not committed). Labels are read only by `evaluate_run`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

from protocol import (
    IMAGE,
    IMAGE_JSON,
    IMAGE_MODES,
    RUNS,
    SEEDS,
    SPEED_JSON,
    TEXT,
    TEXT_JSON,
    TEXT_TASKS,
    load_json,
    machine,
    store_json,
)


def _header(kind: str, protocol: dict) -> dict:
    return {"kind": kind, "command": " ".join([Path(sys.executable).name, *sys.argv]), "protocol": protocol,
            "seeds": SEEDS, "machine": machine(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}


# --- text ----------------------------------------------------------------------------------


def text_setup(model_name: str, task_name: str, prompts: str | None):
    """A text task under the benchmark's protocol (TEXT)."""
    from unseen.pouf.tasks import load_text_task
    from unseen.pouf.text import TextSetup

    return TextSetup(model_name, load_text_task(task_name, prompts), mode=TEXT["mode"], tune_layers=TEXT["tune_layers"],
                     unlabeled_limit=TEXT["unlabeled"], eval_limit=TEXT["eval"])


def run_text(args) -> None:
    from unseen.pouf.adapt import AdaptConfig
    from unseen.pouf.text import evaluate_run, run_adapt

    target = Path(args.json) if args.json else TEXT_JSON
    data = {} if args.fresh else load_json(target)
    if not data:
        data = _header("text", TEXT | {"model": args.model})
        data |= {"tasks": {}, "seeds": args.seeds, "prompts": args.prompts}
    # seed-major: every task's first seed lands before any second seed (a cut-short run still covers every task)
    for seed in args.seeds:
        for name in args.tasks:
            entry = data["tasks"].setdefault(name, {"seeds": {}})
            if str(seed) in entry["seeds"]:
                continue
            setup = text_setup(args.model, name, args.prompts)
            config = AdaptConfig(mode=TEXT["mode"], steps=TEXT["steps"], batch_size=TEXT["batch_size"], lr=TEXT["lr"],
                                 seed=seed, scale=10.0, lambda_mi=0.6, select_every=TEXT["select_every"],
                                 calibrate_mi=args.calibrate_mi)
            variant = ("-" + args.model if args.model != TEXT["model"] else "")
            variant += "-calibrated-mi" if args.calibrate_mi else ""
            out = RUNS / f"text{variant}" / name / f"seed{seed}"
            shutil.rmtree(out, ignore_errors=True)
            started = time.perf_counter()
            run_adapt(setup, config, out, neighbour_check=True)  # measured on every run; the report reads both
            adapt_seconds = time.perf_counter() - started
            results = evaluate_run(out)
            results["adapt_seconds"] = adapt_seconds
            entry["seeds"][str(seed)] = results
            data["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
            store_json(target, data)
            z, p = results["zeroshot"], results["pouf"]
            print(f"{name} seed {seed}: zero-shot single/raw/calibrated {z['single']['accuracy']:.3f}/"
                  f"{z['ensemble']['accuracy']:.3f}/{z['calibrated']['accuracy']:.3f} POUF "
                  f"{p['single']['accuracy']:.3f}/{p['ensemble']['accuracy']:.3f}/{p['calibrated']['accuracy']:.3f} "
                  f"(step {results['selected_step']}, {adapt_seconds:.0f} s)", flush=True)


def run_gate(args) -> None:
    """Text runs stored before the agreement gate existed (unseen.pouf.agreement): measure it on each
    task (it reads only the zero-shot answers on the unlabeled texts, so it does not depend on the
    seed) and record it in every run where it passes (such a run is what the gated code runs); a task
    it keeps at zero-shot is run again by `text` as the code runs now, its earlier runs kept under
    "seeds_before_gate" for the report's "without the gate" figures."""
    from unseen.pouf.adapt import predict_log_probs
    from unseen.pouf.agreement import measure_agreement
    from unseen.pouf.text import build_model, text_items

    target = Path(args.json) if args.json else TEXT_JSON
    data = load_json(target)
    model_name, rerun, seeds = data["protocol"]["model"], [], set()
    for name, entry in data["tasks"].items():
        if all(r.get("agreement_gate") for r in entry["seeds"].values()):
            continue
        setup = text_setup(model_name, name, data.get("prompts"))
        model = build_model(setup)
        gate = measure_agreement(predict_log_probs(model, text_items(model, setup, "unlabeled", None)))
        print(f"{name}: {gate.describe()} -> {'passes' if gate.passes else 'keeps zero-shot: rerun'}", flush=True)
        if gate.passes:
            for run in entry["seeds"].values():
                run["agreement_gate"] = gate.as_dict()
        else:
            rerun.append(name)
            seeds.update(int(seed) for seed in entry["seeds"])
            entry["seeds_before_gate"], entry["seeds"] = entry["seeds"], {}
        store_json(target, data)
    data["gate_command"] = " ".join([Path(sys.executable).name, *sys.argv])
    store_json(target, data)
    if rerun:
        run_text(argparse.Namespace(json=str(target), fresh=False, model=model_name, prompts=data.get("prompts"),
                                    tasks=rerun, seeds=sorted(seeds), calibrate_mi=False))


# --- images --------------------------------------------------------------------------------


def run_image(args) -> None:
    from unseen.pouf.adapt import AdaptConfig
    from unseen.pouf.image import ImageSetup, evaluate_run, run_adapt, zeroshot
    from unseen.pouf.tasks import load_image_task

    data = {} if args.fresh else load_json(IMAGE_JSON)
    if not data or _shared(data["protocol"]) != _shared(IMAGE):  # runs of another protocol are not comparable
        data = _header("image", IMAGE) | {"domains": {}}
    for mode, knobs in data["protocol"]["modes"].items():  # a mode whose knobs changed starts over
        if IMAGE["modes"].get(mode) != knobs:
            for entry in data["domains"].values():
                entry["runs"] = {k: r for k, r in entry["runs"].items() if not k.startswith(mode + "/")}
    data["protocol"] = IMAGE
    for domain in [IMAGE["reference"], *IMAGE["targets"]]:
        entry = data["domains"].setdefault(domain, {"runs": {}})
        task = load_image_task(f"pacs/{domain}")
        if "calibrated" not in entry.get("zeroshot", {}):  # zero-shot rows are cheap: recomputed when a readout is new
            setup = ImageSetup(task=task, model_name=IMAGE["model"], views=1, top_k=IMAGE["top_k"],
                               eval_limit=IMAGE["eval"])
            entry["zeroshot"] = {k: v for k, v in zeroshot(setup).items() if k != "seconds"}
            store_json(IMAGE_JSON, data)
            print(f"{domain}: zero-shot single {entry['zeroshot']['single']['accuracy']:.3f} "
                  f"ensemble {entry['zeroshot']['ensemble']['accuracy']:.3f} "
                  f"calibrated {entry['zeroshot']['calibrated']['accuracy']:.3f}", flush=True)
        if domain == IMAGE["reference"]:
            continue
        for mode in args.modes:
            knobs = IMAGE["modes"][mode]
            for seed in SEEDS:
                key = f"{mode}/{seed}"
                if key in entry["runs"]:
                    continue
                setup = ImageSetup(task=task, model_name=IMAGE["model"], mode=mode, views=knobs["views"],
                                   top_k=IMAGE["top_k"], templates="single", unlabeled_limit=knobs.get("unlabeled"),
                                   eval_limit=IMAGE["eval"])
                config = AdaptConfig(mode=mode, steps=knobs["steps"], batch_size=knobs["batch_size"], lr=knobs["lr"],
                                     seed=seed, scale=100.0, lambda_mi=0.3, mi_on_model_logits=False,
                                     select_every=knobs["select_every"])
                out = RUNS / "image" / domain / mode / f"seed{seed}"
                shutil.rmtree(out, ignore_errors=True)
                started = time.perf_counter()
                run_adapt(setup, config, out)
                adapt_seconds = time.perf_counter() - started
                results = evaluate_run(out)
                results["adapt_seconds"] = adapt_seconds
                entry["runs"][key] = results
                data["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
                store_json(IMAGE_JSON, data)
                print(f"{domain} {mode} seed {seed}: {results['pouf']['single']['accuracy']:.3f} "
                      f"(zero-shot {results['zeroshot']['single']['accuracy']:.3f}, step {results['selected_step']}, "
                      f"{adapt_seconds:.0f} s)", flush=True)


def _shared(protocol: dict) -> dict:
    """The protocol without its per-mode knobs: what every image run depends on."""
    return {k: v for k, v in protocol.items() if k != "modes"}


# --- speed ---------------------------------------------------------------------------------


def run_speed(args) -> None:
    """The same prompt-tuning step (forward, POUF loss, backward, AdamW) on 32 sketches:
    from cached image features, and re-encoding the images through the frozen EfficientNet."""
    import torch

    from unseen.core.data import load_dataset
    from unseen.pouf.adapt import AdaptConfig, batch_loss
    from unseen.pouf.dual import ImageRef
    from unseen.pouf.image import ImageSetup, build_model
    from unseen.pouf.tasks import load_image_task

    torch.manual_seed(0)
    task = load_image_task("pacs/sketch")
    model = build_model(ImageSetup(task=task, mode="prompt", top_k=IMAGE["top_k"]))
    records = load_dataset("pacs", "sketch")
    indices = torch.randperm(len(records), generator=torch.Generator().manual_seed(0))[: args.batch].tolist()
    refs = [ImageRef(records, i, 1) for i in indices]
    cached = model.collate(model.image_features(refs), 0)
    config = AdaptConfig(scale=100.0, lambda_mi=0.3, mi_on_model_logits=False)
    optimizer = torch.optim.AdamW([model.context], lr=1e-3)

    def step(batch):
        loss, _ = batch_loss(model, batch, config)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    def frozen_encode_step():
        with torch.no_grad():  # the image tower is frozen in prompt mode: no graph through it
            features = model.encode_images(model.preprocess([ref.load() for ref in refs]))
        step({"features": features, "view": 0})

    timings = {}
    for name, fn in (("cached features", lambda: step(cached)), ("re-encoding images", frozen_encode_step)):
        fn()  # warm-up
        samples = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - started)
        timings[name] = {"median_s": statistics.median(samples), "min_s": min(samples), "samples": samples}
        print(f"{name}: median {timings[name]['median_s'] * 1000:.1f} ms over {args.repeats} steps", flush=True)
    ratio = timings["re-encoding images"]["median_s"] / timings["cached features"]["median_s"]
    data = _header("speed", {"batch": args.batch, "repeats": args.repeats, "model": "conse", "mode": "prompt",
                             "views": "augmented view 1 of 32 PACS sketches"}) | {"timings": timings, "ratio": ratio}
    store_json(SPEED_JSON, data)
    print(f"re-encoding / cached: {ratio:.0f}x", flush=True)


# --- shards ----------------------------------------------------------------------------------


def merge_text(args) -> None:
    """Shards of `text --json` (e.g. two one-thread processes on two cores) into pouf-text.json."""
    shards = [load_json(Path(path)) for path in args.shards]
    tasks = {name: entry for shard in shards for name, entry in shard["tasks"].items()}
    command = " & ".join(shard["command"] for shard in shards) + "; " + " ".join([Path(sys.executable).name, *sys.argv])
    merged = shards[0] | {"command": command, "started": min(shard["started"] for shard in shards),
                          "finished": max(shard.get("finished", "") for shard in shards),
                          "tasks": {name: tasks[name] for name in TEXT_TASKS if name in tasks}}
    target = Path(args.into) if args.into else TEXT_JSON
    store_json(target, merged)
    print(f"merged {len(merged['tasks'])} tasks into {target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    text = sub.add_parser("text")
    text.add_argument("--tasks", default=",".join(TEXT_TASKS))
    text.add_argument("--fresh", action="store_true")
    text.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    text.add_argument("--prompts", default=None,
                      help="a prompts YAML for tasks beyond the built-in ones (bench/pouf/further_tasks.yaml)")
    text.add_argument("--json", default=None,
                      help="write to this file instead of docs/results/pouf-text.json (a shard; see merge-text)")
    text.add_argument("--model", default=TEXT["model"],
                      help="another causal LM (docs/results/pouf-text-gemma3.json: gemma3-270m)")
    text.add_argument("--calibrate-mi", action="store_true",
                      help="the MI term reads calibrated scores (AdaptConfig.calibrate_mi)")
    gate = sub.add_parser("gate", help="record the agreement gate in text runs stored before it; "
                                       "rerun the tasks it keeps at zero-shot")
    gate.add_argument("--json", default=None, help="instead of docs/results/pouf-text.json")
    merge = sub.add_parser("merge-text")
    merge.add_argument("shards", nargs="+")
    merge.add_argument("--into", default=None,
                       help="instead of docs/results/pouf-text.json (e.g. pouf-text-gemma3.json)")
    image = sub.add_parser("image")
    image.add_argument("--modes", default=",".join(IMAGE_MODES))
    image.add_argument("--fresh", action="store_true")
    speed = sub.add_parser("speed")
    speed.add_argument("--batch", type=int, default=32)
    speed.add_argument("--repeats", type=int, default=10)
    sub.add_parser("report")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 by default: on a shared 2-core machine one thread is several times "
                             "faster than two, whose barriers wait for descheduled threads)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if hasattr(args, "tasks"):
        args.tasks = args.tasks.split(",")
    if hasattr(args, "seeds"):
        args.seeds = [int(seed) for seed in args.seeds.split(",")]
    if hasattr(args, "modes"):
        args.modes = args.modes.split(",")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.command == "report":
        from report import report  # bench/pouf/report.py: the tables and the plot

        return report()
    commands = {"text": run_text, "gate": run_gate, "merge-text": merge_text, "image": run_image, "speed": run_speed}
    commands[args.command](args)


if __name__ == "__main__":
    main()
