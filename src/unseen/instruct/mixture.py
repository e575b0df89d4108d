"""The FLAN instruction-tuning mixture.

Examples-proportional mixing with a per-dataset cap (FLAN: 30k; smaller here), a
random template per example, and a share of few-shot examples whose exemplars
use the same template. Every cluster named in ``heldout`` (and whatever
clusters.yaml's ``heldout_also`` rule removes with it) stays out.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from rich.progress import track

from unseen.core.errors import UnseenError
from unseen.instruct.templates import TaskTemplates, load_records, load_templates, render, training_datasets

FEWSHOT_SEPARATOR = "\n\n"


@dataclass
class MixtureConfig:
    heldout: list[str] = field(default_factory=lambda: ["nli"])  # clusters evaluated zero-shot
    cap: int = 1000  # examples per dataset at most
    fewshot_fraction: float = 0.0  # share of examples given 1..max_shots exemplars first
    max_shots: int = 2
    datasets: list[str] | None = None  # restrict to these (ablation: number of clusters)
    raw_inputs: bool = False  # ablation "no template": fields as 'name: value' lines, the label word as target
    # FLAN 2022's mix: this share of the examples whose template lists OPTIONS is rendered without the list
    no_options_fraction: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class Example:
    input: str
    target: str
    dataset: str
    template_id: str


def _raw_render(task: TaskTemplates, record: dict):
    """The "no template" ablation: the record's fields without any instruction (a chain-of-thought
    set's rationale is left out: it gives the answer away)."""
    for template in task.templates:
        rendered = render(template, record)
        if rendered is not None and not template.turned_around:
            fields = [f"{key}: {value}" for key, value in record.items()
                      if key not in ("label", "idx", "answerKey", "rationale")]
            return "\n".join(fields), rendered.target
    return None


def _render_with_random_template(task: TaskTemplates, record: dict, rng: random.Random):
    for template in rng.sample(task.templates, len(task.templates)):
        rendered = render(template, record)
        if rendered is not None:  # a filter (turned-around NLI) may exclude this record
            return template, rendered
    return None, None


def mixture_datasets(config: MixtureConfig, tasks: dict | None = None) -> list[str]:
    """The datasets the mixture draws from: not held out (or the ablation's choice), with a train
    split (evaluation-only datasets, e.g. PIQA here, have none)."""
    tasks = tasks or load_templates()
    names = training_datasets(config.heldout, tasks)
    if config.datasets is not None:
        unknown = sorted(set(config.datasets) - set(names))
        if unknown:
            raise UnseenError(f"dataset {unknown[0]!r} is held out or has no templates; trainable: {', '.join(names)}")
        names = list(config.datasets)
    return [name for name in names if "train" in tasks[name].splits]


def build_mixture(config: MixtureConfig, *, tasks: dict | None = None,
                  data_dir: str | Path | None = None) -> list[Example]:
    tasks = tasks or load_templates()
    rng = random.Random(config.seed)
    mixture: list[Example] = []
    for name in track(mixture_datasets(config, tasks), description="building the mixture", transient=True):
        task = tasks[name]
        records = load_records(task, "train", data_dir)
        chosen = rng.sample(range(len(records)), min(config.cap, len(records)))
        for index in chosen:
            record = records[index]
            if config.raw_inputs:
                raw = _raw_render(task, record)
                if raw is not None:
                    mixture.append(Example(raw[0], raw[1], name, "raw"))
                continue
            template, rendered = _render_with_random_template(task, record, rng)
            if template is None:
                continue
            with_options = True
            if config.no_options_fraction and template.options and rng.random() < config.no_options_fraction:
                with_options = False
                rendered = render(template, record, options_suffix=False)
            text = rendered.input
            if config.fewshot_fraction and rng.random() < config.fewshot_fraction:
                shots, wanted = [], rng.randint(1, config.max_shots)
                for other in rng.sample(range(len(records)), min(len(records), 4 * config.max_shots)):
                    exemplar = (render(template, records[other], options_suffix=with_options)
                                if other != index else None)
                    if exemplar is not None:
                        shots.append(f"{exemplar.input}\n{exemplar.target}")
                    if len(shots) == wanted:
                        break
                text = FEWSHOT_SEPARATOR.join([*shots, text])
            mixture.append(Example(text, rendered.target, name, template.id))
    rng.shuffle(mixture)
    if not mixture:
        raise UnseenError(f"the mixture is empty: no training data outside the held-out clusters {config.heldout}")
    return mixture
