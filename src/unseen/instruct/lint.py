"""Checks that every template renders sensibly on real data.

``lint(load_templates())`` returns a list of ``Problem``s (empty when all is well):
templates that fail to render on the first examples of any split, classification
targets that are not among the answer choices or whose index is out of range,
chain-of-thought targets whose answer the parser cannot read back, record
fields that no template uses, leftover braces such as FLAN's ``{hypothesis}n`` bug,
duplicate templates or ids, more than three turned-around templates per dataset.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from jinja2 import meta, nodes

from unseen.core.data import dataset_names, dataset_spec, split_names
from unseen.core.errors import UnseenError
from unseen.instruct.answers import canonical_prediction, parse_answer
from unseen.instruct.templates import (
    _ENV,
    TaskTemplates,
    Template,
    _clusters_file,
    _jinja_fields,
    _subscript_fields,
    load_records,
    render,
)

__all__ = ["MAX_TURNED_AROUND", "Problem", "lint"]

MAX_TURNED_AROUND = 3
# Jinja or str.format leftovers, and FLAN's "{hypothesis}n" (a "\n" missing its backslash)
STRAY = re.compile(r"\{\{|\}\}|\{%|%\}|\{\w+\}|\}n\b")


@dataclass(frozen=True)
class Problem:
    source: str  # the YAML file
    template: str | None  # template id, None for the whole file
    message: str

    def __str__(self) -> str:
        return f"{self.source}: " + (f"template {self.template}: " if self.template else "") + self.message


def lint(tasks: dict[str, TaskTemplates] | list[TaskTemplates], data_dir: str | Path | None = None,
         max_examples: int = 200) -> list[Problem]:
    """Every problem found in ``tasks``, checking the first ``max_examples`` records of every split."""
    tasks = list(tasks.values()) if isinstance(tasks, dict) else list(tasks)
    problems = _duplicate_ids(tasks)
    for task in tasks:
        problems += _static_problems(task)
        problems += _data_problems(task, data_dir, max_examples)
    return problems


def _duplicate_ids(tasks: list[TaskTemplates]) -> list[Problem]:
    counts = Counter(template.id for task in tasks for template in task.templates)
    seen, problems = set(), []
    for task in tasks:
        for template in task.templates:
            if counts[template.id] > 1 and template.id not in seen:
                seen.add(template.id)
                problems.append(Problem(task.source, template.id,
                                        f"duplicate template id ({counts[template.id]} templates use it)"))
    return problems


def _static_problems(task: TaskTemplates) -> list[Problem]:
    problems = []
    clusters = _clusters_file()["clusters"]
    listed = [name for name, entry in clusters.items() if task.dataset in (entry.get("datasets") or [])]
    if task.cluster not in clusters:
        problems.append(Problem(task.source, None,
                                f"cluster: unknown cluster {task.cluster!r}; clusters.yaml has {', '.join(clusters)}"))
    elif listed and task.cluster not in listed:
        problems.append(Problem(task.source, None,
                                f"cluster: {task.cluster!r}, but clusters.yaml lists {task.dataset!r} under "
                                f"{', '.join(listed)}"))
    turned = [template.id for template in task.templates if template.turned_around]
    if len(turned) > MAX_TURNED_AROUND:
        problems.append(Problem(task.source, None,
                                f"{len(turned)} turned-around templates (at most {MAX_TURNED_AROUND}): "
                                f"{', '.join(turned)}"))
    seen: dict[tuple[str, str], str] = {}
    for template in task.templates:
        key = (template.input, template.target)
        if key in seen:
            problems.append(Problem(task.source, template.id, f"same input and target as template {seen[key]}"))
        seen.setdefault(key, template.id)
        for name, source in (("input", template.input), ("target", template.target)):
            literal = "".join(node.data for node in _ENV.parse(source).find_all(nodes.TemplateData))
            if re.search(r"\}\}n\b", source):
                problems.append(Problem(task.source, template.id,
                                        f"{name}: 'n' right after '}}}}' (a '\\n' missing its backslash?)"))
            if literal.count("{") != literal.count("}"):
                problems.append(Problem(task.source, template.id, f"{name}: unbalanced braces in the template text"))
    if task.dataset in dataset_names():
        used = set().union(*(_fields_used(template) for template in task.templates))
        required = dataset_spec(task.dataset).get("fields", [])
        unused = [name for name in required if name not in used and name not in task.unused_fields]
        if unused:
            problems.append(Problem(task.source, None,
                                    f"record field(s) {', '.join(map(repr, unused))} used by no template "
                                    "(use them, or list them under unused_fields)"))
    return problems


def _fields_used(template: Template) -> set[str]:
    used = set()
    for _, source, is_expression in _jinja_fields(template):
        used |= meta.find_undeclared_variables(_ENV.parse("{{ %s }}" % source if is_expression else source))
    return used - {"answer_choices"}


def _data_problems(task: TaskTemplates, data_dir, max_examples: int) -> list[Problem]:
    problems = []
    registered = task.dataset in dataset_names()
    available = split_names(task.dataset, data_dir) if registered else []
    for role, split in task.splits.items():
        if registered and split not in available:
            problems.append(Problem(task.source, None,
                                    f"splits.{role}: dataset {task.dataset!r} has no split {split!r}; "
                                    f"splits: {', '.join(available) or 'none found'}"))
    checked_features = False
    for split in available or sorted(set(task.splits.values())):
        try:
            records = load_records(task, split, data_dir)
        except UnseenError as err:
            problems.append(Problem(task.source, None, str(err).removeprefix(f"{task.source}: ")))
            continue
        if not checked_features:
            problems += _feature_problems(task, records.features)
            checked_features = True
        sample = records[:max_examples]
        for template in task.templates:
            problem = _render_problem(template, sample, split, records)
            if problem:
                problems.append(Problem(task.source, template.id, problem))
    return problems


def _feature_problems(task: TaskTemplates, features: dict) -> list[Problem]:
    """A fixed answer_choices list must have one entry per class of the label it is indexed by."""
    problems = []
    for template in task.templates:
        if not isinstance(template.answer_choices, tuple):
            continue
        for name in _subscript_fields(template.target) + _subscript_fields(template.input):
            classes = features.get(name)
            if classes and len(classes) != len(template.answer_choices):
                problems.append(Problem(task.source, template.id,
                                        f"answer_choices has {len(template.answer_choices)} entries "
                                        f"but {name} has {len(classes)} classes ({', '.join(classes)})"))
    return problems


def _render_problem(template: Template, sample: list[dict], split: str, records) -> str | None:
    """The first problem of a template on a sample of one split, or None."""
    applied = 0
    for index, record in enumerate(sample):
        where = f"(split {split}, example {index})"
        try:
            example = render(template, record)
        except UnseenError as err:
            return f"{str(err).removeprefix(f'{template.source}: template {template.id}: ')} {where}"
        if example is None:
            continue
        applied += 1
        if template.classification and example.target_index is None:
            what = "answer" if template.chain_of_thought else "target"
            return f"{what} {example.answer!r} is not among the answer choices {example.answer_choices} {where}"
        parsed = parse_answer(example.target, example.answer_choices, True) if template.chain_of_thought else None
        if template.chain_of_thought and canonical_prediction(parsed, example.target_index,
                                                              example.answer_choices) != example.target_index:
            return f"the answer parser does not read {example.answer!r} back from the target {example.target!r} {where}"
        if not example.input.strip() or not example.target.strip():
            return f"{'input' if not example.input.strip() else 'target'} renders empty {where}"
        for name, text in (("input", example.input), ("target", example.target)):
            found = STRAY.findall(text)
            stray = [match for match in found if match not in "\n".join(_strings(record))] if found else []
            if stray:  # markers that the record's own text does not explain
                return f"{name}: stray {stray[0]!r} in the rendered text {where}"
    if sample and not applied and not any(_applies(template, record) for record in records[len(sample):]):
        return f"filter excludes every example of split {split}"
    return None


def _applies(template: Template, record: dict) -> bool:
    try:
        return render(template, record) is not None
    except UnseenError:  # it applies; render errors are reported from the sample
        return True


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [text for item in value for text in _strings(item)]
    return []
