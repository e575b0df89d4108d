"""Zero- and few-shot evaluation over templates, as FLAN reports it.

Classification templates are scored by rank classification of the answer options
(summed log-likelihood and length-normalized, both reported; optionally
content-free calibrated, Zhao et al. 2021). With ``generate``, they are also decoded
greedily and the answer read back as one of the options (``answers.parse_answer``):
exact match after normalization, the valid-option rate, and the balanced accuracy of
the generated answers (an invalid answer is wrong), beside the majority-class and
uniform-guessing baselines. Chain-of-thought templates are evaluated by generation
only: the answer is parsed from the text after the rationale. Generative templates
(translation, struct-to-text, turned-around) are decoded greedily and scored with
BLEU (sacrebleu) or exact match. Each task reports per-template scores and their
mean, standard deviation and maximum over templates.
"""

from __future__ import annotations

import math
import random
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from unseen.core.errors import UnseenError
from unseen.core.metrics import balanced_accuracy, classification_report, constant_answer_accuracy
from unseen.core.scoring import score_options
from unseen.instruct.answers import canonical_prediction, parse_answer
from unseen.instruct.generation import answer_token_cap, greedy_generate
from unseen.instruct.lm import PROMPT_SUFFIX
from unseen.instruct.mixture import FEWSHOT_SEPARATOR
from unseen.instruct.templates import Template, load_records, load_templates, render


@dataclass
class EvalConfig:
    tasks: list[str] = field(default_factory=lambda: ["rte"])
    templates: str | list[str] = "all"  # "all", or template ids
    # the first N chosen templates of each task (direct answers before chains of thought)
    max_templates: int | None = None
    limit: int | dict[str, int] | None = None  # first N examples of each task's eval split (or per task)
    # the split read: its role ("eval", "train") or a split name; a nested held-in proxy (issue 33) reads "train",
    # the one the held-out protocol never evaluates
    split: str = "eval"
    shots: int = 0  # exemplars from the train split, rendered with the same template
    calibrate: bool = False  # content-free calibration of classification scores
    generate: bool = False  # also decode classification templates, and run chain-of-thought ones
    # False (with generate): classification templates by generation only, as the quickstart runs them
    rank_scoring: bool = True
    include_turned_around: bool = False
    batch_size: int = 8
    max_new_tokens: int = 48  # generative templates (translation, struct-to-text, turned around)
    answer_slack: int = 4  # a direct answer may run this many tokens past its longest option
    cot_max_new_tokens: int = 128  # room for a rationale (FLAN v2's here: at most 118 Gemma tokens)
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
    # per example, for paired comparisons of two models on the same examples (bench/instruct/heldout_paired.py)
    result |= {"labels": labels, "rank_predictions": predictions}
    result["accuracy_norm"] = sum(_argmax(s.normalized) == y for s, y in zip(scores, labels)) / len(labels)
    fixed_choices = all(o == options[0] for o in options)
    if config.calibrate and fixed_choices:
        content_free = render(template, _content_free(examples[0][1]))
        reference = score_options(model, tokenizer, [prefix + content_free.input + PROMPT_SUFFIX],
                                  [options[0]])[0].loglik
        log_norm = math.log(sum(math.exp(v - max(reference)) for v in reference)) + max(reference)
        prior = [v - log_norm for v in reference]
        calibrated = [_argmax([a - b for a, b in zip(s.loglik, prior)]) for s in scores]
        result["accuracy_calibrated"] = sum(p == y for p, y in zip(calibrated, labels)) / len(labels)
        result["balanced_accuracy_calibrated"] = balanced_accuracy(calibrated, labels)
    return result


def _generate(model, tokenizer, prompts: list[str], caps: int | list[int], config: EvalConfig,
              progress: bool = False) -> list[str]:
    """Greedy answers, each its first line (decoding stops there)."""
    previous_side = tokenizer.padding_side
    tokenizer.padding_side = "right"  # only model.generate (encoder-decoder) pads through the tokenizer
    try:
        outputs = greedy_generate(model, tokenizer, prompts, caps, batch_size=config.batch_size, progress=progress)
    finally:
        tokenizer.padding_side = previous_side
    return [text.strip().split("\n")[0].strip() for text in outputs]


def _generated_answers(model, tokenizer, template, examples, prefix, config, progress=False) -> dict:
    """Greedy answers to a classification template read back as options: exact match after
    normalization, valid-option rate, balanced accuracy (invalid = wrong), and the baselines."""
    chain_of_thought = template.chain_of_thought
    prompts = [prefix + ex.input + PROMPT_SUFFIX for ex, _ in examples]
    extra = config.cot_max_new_tokens if chain_of_thought else 0
    caps = [answer_token_cap(tokenizer, ex.answer_choices, config.answer_slack) + extra for ex, _ in examples]
    outputs = _generate(model, tokenizer, prompts, caps, config, progress)
    parsed = [parse_answer(output, ex.answer_choices, chain_of_thought) for output, (ex, _) in zip(outputs, examples)]
    labels = [ex.target_index for ex, _ in examples]
    predictions = [canonical_prediction(p, y, ex.answer_choices) for p, y, (ex, _) in zip(parsed, labels, examples)]
    return {
        "n": len(examples),
        "kind": "chain_of_thought" if chain_of_thought else "classification",
        "exact_match": sum(p == y for p, y in zip(predictions, labels)) / len(labels),
        "option_rate": sum(p is not None for p in parsed) / len(parsed),
        "balanced_accuracy_generated": balanced_accuracy(predictions, labels),
        "constant_baseline": constant_answer_accuracy(labels),
        "uniform_baseline": statistics.fmean(1 / len(ex.answer_choices) for ex, _ in examples),
        "samples": [{"output": output, "target": ex.target} for output, (ex, _) in list(zip(outputs, examples))[:3]],
        "labels": labels, "generated_predictions": predictions,  # per example (None: not a valid option)
    }


def _generative(model, tokenizer, template, examples, prefix, config, progress=False) -> dict:
    import sacrebleu

    prompts = [prefix + ex.input + PROMPT_SUFFIX for ex, _ in examples]
    hypotheses = _generate(model, tokenizer, prompts, config.max_new_tokens, config, progress)
    references = [ex.references or [ex.target] for ex, _ in examples]
    result = {"n": len(examples), "kind": "generative"}
    exact = [h.strip().lower() in {r.strip().lower() for r in refs} for h, refs in zip(hypotheses, references)]
    result["exact_match"] = sum(exact) / len(exact)
    if template.metric == "bleu":
        width = max(len(refs) for refs in references)
        # sacrebleu wants equally many reference streams; repeating a reference changes nothing
        streams = [[refs[min(k, len(refs) - 1)] for refs in references] for k in range(width)]
        result["bleu"] = sacrebleu.corpus_bleu(hypotheses, streams).score
    result["samples"] = [{"output": h, "target": ex.target} for h, (ex, _) in list(zip(hypotheses, examples))[:3]]
    return result


def _summary(per_template: dict[str, dict], metric: str, kind: str | None = None) -> dict:
    values = [result[metric] for result in per_template.values()
              if metric in result and (kind is None or result.get("kind") == kind)]
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
        # a split other than the task's eval one (e.g. --split train) must not also give the exemplars
        if (config.shots and config.split != "eval"
                and task.splits.get(config.split, config.split) == task.splits.get("train")):
            raise UnseenError(f"{task.source}: --shots draws exemplars from the split being evaluated "
                              f"({task.splits['train']}); evaluate another split or use no shots")
        records = load_records(task, config.split, data_dir)
        limit = config.limit.get(name) if isinstance(config.limit, dict) else config.limit
        records = records[:limit] if limit else records[:]
        chosen = [t for t in task.templates if config.templates == "all" or t.id in config.templates]
        if not config.include_turned_around:
            chosen = [t for t in chosen if not t.turned_around]
        if not config.generate:  # a chain of thought has to be generated: rank scoring has nothing to rank
            skipped = [t.id for t in chosen if t.chain_of_thought]
            chosen = [t for t in chosen if not t.chain_of_thought]
            if skipped and not chosen:
                raise UnseenError(f"{task.source}: chain-of-thought templates ({', '.join(skipped)}) need --generate")
        if not chosen:
            raise UnseenError(f"{task.source}: no template matches --templates {config.templates}")
        if config.max_templates:
            chosen = sorted(chosen, key=lambda t: t.chain_of_thought)[:config.max_templates]  # stable: file order kept
        started = time.perf_counter()
        per_template = {}
        for template in chosen:
            examples = [(ex, r) for r in records if (ex := render(template, r)) is not None]
            if not examples:
                continue
            prefix = _exemplars(task, template, config.shots, config.seed, data_dir)
            if template.chain_of_thought:
                result = _generated_answers(model, tokenizer, template, examples, prefix, config, progress)
            elif template.classification:
                result = {"kind": "classification"}
                if config.rank_scoring or not config.generate:
                    result.update(_classify(model, tokenizer, template, examples, prefix, config, progress))
                if config.generate:
                    result.update(_generated_answers(model, tokenizer, template, examples, prefix, config, progress))
            else:
                result = _generative(model, tokenizer, template, examples, prefix, config, progress)
            per_template[template.id] = result
        timing[name] = time.perf_counter() - started
        results[name] = _task_summary(per_template)
        results[name]["n"] = max(r["n"] for r in per_template.values()) if per_template else 0
        per_template_all[name] = per_template
    return {"config": asdict(config), "results": results, "templates": per_template_all, "seconds": timing}


RANK_METRICS = ["accuracy", "accuracy_norm", "balanced_accuracy", "accuracy_calibrated", "balanced_accuracy_calibrated"]
GENERATION_METRICS = ["exact_match", "option_rate", "balanced_accuracy_generated"]


def _task_summary(per_template: dict[str, dict]) -> dict:
    """Rank-scoring metrics; generation metrics of direct answers under their own names and of
    chains of thought with a _cot suffix; BLEU and exact match of generative templates."""
    summary = {metric: value for metric in RANK_METRICS if (value := _summary(per_template, metric))}
    for kind, suffix in (("classification", ""), ("chain_of_thought", "_cot")):
        summary |= {metric + suffix: value for metric in GENERATION_METRICS
                    if (value := _summary(per_template, metric, kind))}
    summary |= {name: value for name, metric in (("bleu", "bleu"), ("exact_match_generative", "exact_match"))
                if (value := _summary(per_template, metric, "generative"))}
    for baseline in ("constant_baseline", "uniform_baseline"):  # majority class; uniform guessing over the options
        values = [r[baseline] for r in per_template.values() if baseline in r]
        if values:
            summary[baseline] = max(values)
    return summary


def markdown_table(results: dict, label: str = "") -> str:
    """One row per task: mean ± std (max) over templates of each metric."""
    rows = ["| model | task | n | templates | accuracy | accuracy (norm.) | balanced acc. | calibrated bal. acc. | "
            "always-same baseline | BLEU |", "|---|---|---|---|---|---|---|---|---|---|"]

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
            f"{cell(metrics.get('balanced_accuracy_calibrated', {}))} | {constant} | "
            f"{cell(metrics.get('bleu', {}), 1.0)} |"
        )
    generated = [(task, m) for task, m in results["results"].items() if "exact_match" in m or "exact_match_cot" in m]
    if generated:
        rows += ["", ("Greedy generation, the answer read back as an option (invalid = wrong); chain of thought (CoT): "
                      "the answer after the rationale."), "",
                 ("| model | task | direct templates | exact match | valid options | balanced acc. (generated) | "
                  "CoT templates | CoT exact match | CoT valid options | CoT balanced acc. | majority class | "
                  "uniform guess |"),
                 "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for task, m in generated:
            baselines = [f"{m[key] * 100:.1f}" if key in m else "–"
                         for key in ("constant_baseline", "uniform_baseline")]
            rows.append(
                f"| {label} | {task} | {m.get('exact_match', {}).get('templates', 0)} | "
                f"{cell(m.get('exact_match', {}))} | {cell(m.get('option_rate', {}))} | "
                f"{cell(m.get('balanced_accuracy_generated', {}))} | "
                f"{m.get('exact_match_cot', {}).get('templates', 0)} | {cell(m.get('exact_match_cot', {}))} | "
                f"{cell(m.get('option_rate_cot', {}))} | {cell(m.get('balanced_accuracy_generated_cot', {}))} | "
                f"{baselines[0]} | {baselines[1]} |"
            )
    return "\n".join(rows) + "\n"


def write_results(results: dict, out: Path, label: str = "") -> None:
    import json

    from unseen.core.io import atomic_write

    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, json.dumps(results, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown_table(results, label))
