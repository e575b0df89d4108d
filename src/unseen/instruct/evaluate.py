"""Zero- and few-shot evaluation over templates, as FLAN reports it.

Classification templates are scored by rank classification of the answer options
(summed log-likelihood and length-normalized, both reported; optionally
content-free calibrated, Zhao et al. 2021). Generative templates (translation,
struct-to-text, turned-around) are decoded greedily and scored with BLEU
(sacrebleu) or exact match. Each task reports per-template scores and their mean,
standard deviation and maximum over templates.
"""

from __future__ import annotations

import math
import random
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from unseen.core.errors import UnseenError
from unseen.core.metrics import balanced_accuracy, classification_report
from unseen.core.scoring import score_options
from unseen.instruct.lm import PROMPT_SUFFIX
from unseen.instruct.mixture import FEWSHOT_SEPARATOR
from unseen.instruct.templates import Template, load_records, load_templates, render


@dataclass
class EvalConfig:
    tasks: list[str] = field(default_factory=lambda: ["rte"])
    templates: str | list[str] = "all"  # "all", or template ids
    limit: int | dict[str, int] | None = None  # first N examples of each task's eval split (or per task)
    shots: int = 0  # exemplars from the train split, rendered with the same template
    calibrate: bool = False  # content-free calibration of classification scores
    generate: bool = False  # also decode classification templates freely (exact match, option rate)
    include_turned_around: bool = False
    batch_size: int = 8
    max_new_tokens: int = 48
    seed: int = 0


def _content_free(record: dict) -> dict:
    """The record with every text replaced by "N/A" (Zhao et al. 2021's content-free input)."""
    def blank(value):
        if isinstance(value, str):
            return "N/A"
        if isinstance(value, list):
            return [blank(v) for v in value]
        if isinstance(value, dict):
            return {k: blank(v) for k, v in value.items()}
        return value
    return {key: blank(value) for key, value in record.items()}


def _exemplars(task, template: Template, shots: int, seed: int, data_dir) -> str:
    if shots == 0:
        return ""
    if "train" not in task.splits:
        raise UnseenError(f"{task.source}: --shots needs a train split, and {task.dataset!r} has none")
    records = load_records(task, "train", data_dir)
    rng = random.Random(seed)
    texts = []
    for index in rng.sample(range(len(records)), min(len(records), 20 * shots)):
        rendered = render(template, records[index])
        if rendered is not None:
            texts.append(f"{rendered.input}\n{rendered.target}")
        if len(texts) == shots:
            break
    return FEWSHOT_SEPARATOR.join(texts) + FEWSHOT_SEPARATOR


def _argmax(values):
    return max(range(len(values)), key=values.__getitem__)


def _classify(model, tokenizer, template, examples, prefix, config, progress) -> dict:
    prompts = [prefix + ex.input + PROMPT_SUFFIX for ex, _ in examples]
    options = [ex.answer_choices for ex, _ in examples]
    labels = [ex.target_index for ex, _ in examples]
    scores = score_options(model, tokenizer, prompts, options, batch_size=config.batch_size, progress=progress)
    predictions = [_argmax(s.loglik) for s in scores]
    result = classification_report(predictions, labels, len(options[0]))
    result["accuracy_norm"] = sum(_argmax(s.normalized) == y for s, y in zip(scores, labels)) / len(labels)
    fixed_choices = all(o == options[0] for o in options)
    if config.calibrate and fixed_choices:
        content_free = render(template, _content_free(examples[0][1]))
        reference = score_options(model, tokenizer, [prefix + content_free.input + PROMPT_SUFFIX], [options[0]])[0].loglik
        log_norm = math.log(sum(math.exp(v - max(reference)) for v in reference)) + max(reference)
        prior = [v - log_norm for v in reference]
        calibrated = [_argmax([a - b for a, b in zip(s.loglik, prior)]) for s in scores]
        result["accuracy_calibrated"] = sum(p == y for p, y in zip(calibrated, labels)) / len(labels)
        result["balanced_accuracy_calibrated"] = balanced_accuracy(calibrated, labels)
    return result


@torch.inference_mode()
def _generate(model, tokenizer, prompts: list[str], config: EvalConfig) -> list[str]:
    outputs = []
    encoder_decoder = bool(getattr(model.config, "is_encoder_decoder", False))
    previous_side = tokenizer.padding_side
    tokenizer.padding_side = "right" if encoder_decoder else "left"
    try:
        for start in range(0, len(prompts), config.batch_size):
            batch = tokenizer(prompts[start : start + config.batch_size], return_tensors="pt", padding=True)
            batch = {k: v.to(next(model.parameters()).device) for k, v in batch.items()}
            generated = model.generate(**batch, max_new_tokens=config.max_new_tokens, do_sample=False,
                                       pad_token_id=tokenizer.pad_token_id)
            if not encoder_decoder:
                generated = generated[:, batch["input_ids"].shape[1] :]
            for sequence in generated:
                text = tokenizer.decode(sequence, skip_special_tokens=True)
                outputs.append(text.strip().split("\n")[0].strip())
    finally:
        tokenizer.padding_side = previous_side
    return outputs


def _generative(model, tokenizer, template, examples, prefix, config) -> dict:
    import sacrebleu

    prompts = [prefix + ex.input + PROMPT_SUFFIX for ex, _ in examples]
    hypotheses = _generate(model, tokenizer, prompts, config)
    references = [ex.references or [ex.target] for ex, _ in examples]
    result = {"n": len(examples)}
    exact = [h.strip().lower() in {r.strip().lower() for r in refs} for h, refs in zip(hypotheses, references)]
    result["exact_match"] = sum(exact) / len(exact)
    if template.metric == "bleu":
        width = max(len(refs) for refs in references)
        # sacrebleu wants equally many reference streams; repeating a reference changes nothing
        streams = [[refs[min(k, len(refs) - 1)] for refs in references] for k in range(width)]
        result["bleu"] = sacrebleu.corpus_bleu(hypotheses, streams).score
    if examples and examples[0][0].answer_choices:
        result["option_rate"] = sum(h in ex.answer_choices for h, (ex, _) in zip(hypotheses, examples)) / len(examples)
    result["samples"] = [{"output": h, "target": ex.target} for h, (ex, _) in list(zip(hypotheses, examples))[:3]]
    return result


def _summary(per_template: dict[str, dict], metric: str) -> dict:
    values = [result[metric] for result in per_template.values() if metric in result]
    if not values:
        return {}
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "max": max(values),
        "templates": len(values),
    }


def evaluate(model, tokenizer, config: EvalConfig, *, data_dir=None, progress: bool = True, tasks=None) -> dict:
    """Evaluate ``model`` on every template of every task; returns an lm-eval-like results dict."""
    tasks = tasks or load_templates()
    results, per_template_all, timing = {}, {}, {}
    for name in config.tasks:
        if name not in tasks:
            raise UnseenError(f"no templates for task {name!r}; tasks: {', '.join(sorted(tasks))}")
        task = tasks[name]
        records = load_records(task, "eval", data_dir)
        limit = config.limit.get(name) if isinstance(config.limit, dict) else config.limit
        records = records[:limit] if limit else records[:]
        chosen = [t for t in task.templates if config.templates == "all" or t.id in config.templates]
        if not config.include_turned_around:
            chosen = [t for t in chosen if not t.turned_around]
        if not chosen:
            raise UnseenError(f"{task.source}: no template matches --templates {config.templates}")
        started = time.perf_counter()
        per_template = {}
        for template in chosen:
            examples = [(ex, r) for r in records if (ex := render(template, r)) is not None]
            if not examples:
                continue
            prefix = _exemplars(task, template, config.shots, config.seed, data_dir)
            if template.classification:
                result = _classify(model, tokenizer, template, examples, prefix, config, progress)
                if config.generate:
                    generated = _generative(model, tokenizer, template, examples, prefix, config)
                    result.update({"exact_match": generated["exact_match"], "option_rate": generated["option_rate"]})
            else:
                result = _generative(model, tokenizer, template, examples, prefix, config)
            per_template[template.id] = result
        timing[name] = time.perf_counter() - started
        metrics = ["accuracy", "accuracy_norm", "balanced_accuracy", "accuracy_calibrated",
                   "balanced_accuracy_calibrated", "exact_match", "option_rate", "bleu"]
        results[name] = {metric: summary for metric in metrics if (summary := _summary(per_template, metric))}
        constants = [r["constant_baseline"] for r in per_template.values() if "constant_baseline" in r]
        if constants:
            results[name]["constant_baseline"] = max(constants)
        results[name]["n"] = max(r["n"] for r in per_template.values()) if per_template else 0
        per_template_all[name] = per_template
    return {"config": asdict(config), "results": results, "templates": per_template_all, "seconds": timing}


def markdown_table(results: dict, label: str = "") -> str:
    """One row per task: mean ± std (max) over templates of each metric."""
    rows = ["| model | task | n | templates | accuracy | accuracy (norm.) | balanced acc. | calibrated bal. acc. | always-same baseline | BLEU |",
            "|---|---|---|---|---|---|---|---|---|---|"]

    def cell(summary: dict, scale: float = 100.0) -> str:
        if not summary:
            return "–"
        return f"{summary['mean'] * scale:.1f} ± {summary['std'] * scale:.1f} ({summary['max'] * scale:.1f})"

    for task, metrics in results["results"].items():
        templates = max((m.get("templates", 0) for m in metrics.values() if isinstance(m, dict)), default=0)
        constant = f"{metrics['constant_baseline'] * 100:.1f}" if "constant_baseline" in metrics else "–"
        rows.append(
            f"| {label} | {task} | {metrics['n']} | {templates} | {cell(metrics.get('accuracy', {}))} | "
            f"{cell(metrics.get('accuracy_norm', {}))} | {cell(metrics.get('balanced_accuracy', {}))} | "
            f"{cell(metrics.get('balanced_accuracy_calibrated', {}))} | {constant} | {cell(metrics.get('bleu', {}), 1.0)} |"
        )
    return "\n".join(rows) + "\n"


def write_results(results: dict, out: Path, label: str = "") -> None:
    import json

    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(f".{out.name}.tmp")
    temporary.write_text(json.dumps(results, indent=2) + "\n")
    temporary.replace(out)
    out.with_suffix(".md").write_text(markdown_table(results, label))
