"""Instruction templates as data (FLAN, Wei et al. 2022), promptsource style.

Every dataset has one YAML file under ``templates/`` (schema in ``templates/README.md``):
about ten natural-language templates written in Jinja2, rendered against the dataset's
records. ``clusters.yaml`` groups datasets into FLAN's task clusters and holds the
held-out rule. A user adds a dataset by writing one more YAML file and passing its file
or folder to ``load_templates``.

    tasks = load_templates()
    example = render(tasks["rte"].templates[0], load_dataset("rte", "validation")[0])
    example.input, example.target, example.answer_choices, example.target_index
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Iterable, Mapping

import yaml
from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, UndefinedError, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import concat

from unseen.core.data import RecordSet, dataset_names, load_dataset
from unseen.core.errors import UnseenError

__all__ = [
    "METRICS",
    "RenderedExample",
    "TaskTemplates",
    "Template",
    "heldout_datasets",
    "load_clusters",
    "load_records",
    "load_templates",
    "render",
    "training_datasets",
]

METRICS = ("accuracy", "bleu", "exact_match")
TASK_KEYS = {"dataset", "cluster", "metric", "splits", "answer_choices", "filter", "references", "unused_fields",
             "templates"}
TEMPLATE_KEYS = {"id", "input", "target", "answer", "options", "turned_around", "filter", "answer_choices", "metric",
                 "references"}

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


@dataclass(frozen=True)
class Template:
    """One template, with the task-level defaults (choices, metric, filter) already applied."""

    id: str
    input: str
    target: str
    options: bool = False  # append the OPTIONS suffix listing the answer choices
    turned_around: bool = False  # inverts the task; generative
    filter: str | None = None  # Jinja expression; the template applies where it is true
    answer_choices: tuple[str, ...] | str | None = None  # a list, or a Jinja expression giving one
    metric: str = "accuracy"
    references: str | None = None  # Jinja expression giving all reference targets (BLEU)
    # chain of thought (FLAN v2): the target is a rationale ending with the answer, and this
    # Jinja text renders that answer (one of the choices); None: the target is the answer
    answer: str | None = None
    dataset: str = ""
    source: str = ""  # the YAML file, for error messages

    @property
    def classification(self) -> bool:
        return self.answer_choices is not None and not self.turned_around

    @property
    def chain_of_thought(self) -> bool:
        return self.answer is not None


@dataclass(frozen=True)
class TaskTemplates:
    """The contents of one YAML file: a dataset, its cluster, splits and templates."""

    dataset: str
    cluster: str
    metric: str
    splits: Mapping[str, str]  # role ("train", "eval") -> split name
    templates: tuple[Template, ...]
    source: str
    unused_fields: tuple[str, ...] = ()  # required fields that no template needs to use
    path: Path | None = None  # the YAML file (None for package files)

    def template(self, template_id: str) -> Template:
        for template in self.templates:
            if template.id == template_id:
                return template
        known = ", ".join(t.id for t in self.templates)
        raise UnseenError(f"{self.source}: no template {template_id!r}; templates: {known}")


@dataclass(frozen=True)
class RenderedExample:
    input: str
    target: str
    answer_choices: list[str] | None = None  # classification templates only
    target_index: int | None = None  # position of target in answer_choices
    references: list[str] = field(default_factory=list)  # every acceptable target (>= 1)
    answer: str | None = None  # classification: the right choice (the target, or the end of a chain of thought)


# ---------------------------------------------------------------- loading


def load_templates(*extra: str | Path) -> dict[str, TaskTemplates]:
    """Package templates plus ``extra`` YAML files or folders of them, by dataset name.
    A later file for the same dataset replaces an earlier one."""
    package = resources.files("unseen.instruct").joinpath("templates")
    entries = [(f"templates/{item.name}", item.read_text(encoding="utf-8"), None)
               for item in sorted(package.iterdir(), key=lambda item: item.name) if item.name.endswith(".yaml")]
    for location in map(Path, extra):
        if location.is_dir():
            files = sorted(location.glob("*.yaml"))
        elif location.is_file():
            files = [location]
        else:
            raise UnseenError(f"{location}: no such template file or folder")
        for path in files:
            try:
                entries.append((str(path), path.read_text(encoding="utf-8"), path))
            except (OSError, UnicodeDecodeError) as err:
                raise UnseenError(f"{path}: cannot read ({err})") from None
    tasks = {}
    for source, text, path in entries:
        task = _parse_task(source, text, path)
        tasks[task.dataset] = task
    return tasks


@cache  # tasks are immutable, so loading the same file twice can share them
def _parse_task(source: str, text: str, path: Path | None) -> TaskTemplates:
    try:
        data = yaml.load(text, Loader=_LOADER)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        raise UnseenError(f"{source}: malformed YAML ({where}{getattr(err, 'problem', None) or err})") from None
    if not isinstance(data, dict):
        raise UnseenError(f"{source}: expected a mapping with keys dataset, cluster, metric, splits, templates")
    _check_keys(data, TASK_KEYS, {"dataset", "cluster", "metric", "splits", "templates"}, source)
    metric = _check_metric(data["metric"], source)
    splits = data["splits"]
    if not isinstance(splits, dict) or not splits or not all(isinstance(v, str) for v in splits.values()):
        raise UnseenError(f"{source}: splits: expected a mapping like {{train: train, eval: validation}}")
    if not isinstance(data["templates"], list) or not data["templates"]:
        raise UnseenError(f"{source}: templates: expected a non-empty list")
    task_filter = data.get("filter")
    templates = []
    for number, raw in enumerate(data["templates"], start=1):
        where = f"{source}: template {raw.get('id', f'#{number}') if isinstance(raw, dict) else f'#{number}'}"
        if not isinstance(raw, dict):
            raise UnseenError(f"{where}: expected a mapping with keys id, input, target")
        _check_keys(raw, TEMPLATE_KEYS, {"id", "input", "target"}, where)
        for key in ("input", "target", "answer", "filter", "references"):
            if key in raw and not isinstance(raw[key], str):
                raise UnseenError(f"{where}: {key}: expected a string (a Jinja template), got "
                                  f"{type(raw[key]).__name__}")
        turned = bool(raw.get("turned_around", False))
        choices = _choices(raw.get("answer_choices", data.get("answer_choices")), where)
        filters = [f"({f})" for f in (task_filter, raw.get("filter")) if f is not None]
        template = Template(
            id=str(raw["id"]),
            input=raw["input"],
            target=raw["target"],
            options=bool(raw.get("options", False)),
            turned_around=turned,
            filter=" and ".join(filters) or None,
            answer_choices=choices,
            metric=_check_metric(raw.get("metric", "bleu" if turned else metric), where),
            references=raw.get("references", None if turned else data.get("references")),
            answer=raw.get("answer"),
            dataset=str(data["dataset"]),
            source=source,
        )
        if template.options and not template.classification:
            raise UnseenError(f"{where}: options: true needs answer_choices and a template that is not turned around")
        if template.answer is not None and not template.classification:
            raise UnseenError(f"{where}: answer: a chain-of-thought answer needs answer_choices and a template that is "
                              "not turned around")
        _compile_all(template, where)
        templates.append(template)
    unused = data.get("unused_fields") or []
    if not isinstance(unused, list):
        raise UnseenError(f"{source}: unused_fields: expected a list of field names")
    return TaskTemplates(str(data["dataset"]), str(data["cluster"]), metric, MappingProxyType(dict(splits)),
                         tuple(templates), source, tuple(map(str, unused)), path)


def _check_keys(data: dict, allowed: set, required: set, where: str) -> None:
    for key in data:
        if key not in allowed:
            raise UnseenError(f"{where}: unknown key {key!r}; keys: {', '.join(sorted(allowed))}")
    for key in sorted(required):
        if key not in data or data[key] is None:
            raise UnseenError(f"{where}: missing key {key!r}")


def _check_metric(metric, where: str) -> str:
    if metric not in METRICS:
        raise UnseenError(f"{where}: metric: {metric!r} is not one of {', '.join(METRICS)}")
    return metric


def _choices(value, where: str):
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(choice, (str, int, float)) for choice in value):
        if any(isinstance(choice, bool) for choice in value):  # YAML reads an unquoted yes/no as a boolean
            raise UnseenError(f'{where}: answer_choices: quote yes/no/true/false, e.g. ["yes", "no"]')
        return tuple(str(choice) for choice in value)
    raise UnseenError(f"{where}: answer_choices: expected a list of strings or a Jinja expression")


def _compile_all(template: Template, where: str) -> None:
    """Compile every Jinja field once at load time so that syntax errors show early."""
    for name, source, is_expression in _jinja_fields(template):
        try:
            _expression(source) if is_expression else _template(source)
        except TemplateSyntaxError as err:
            raise UnseenError(f"{where}: {name}: Jinja syntax error ({err.message}, line {err.lineno})") from None


def _jinja_fields(template: Template) -> list[tuple[str, str, bool]]:
    """(field name, Jinja source, is an expression) for each Jinja field of a template."""
    fields = [("input", template.input, False), ("target", template.target, False)]
    if template.answer is not None:
        fields.append(("answer", template.answer, False))
    for name in ("filter", "answer_choices", "references"):
        value = getattr(template, name)
        if isinstance(value, str):
            fields.append((name, value, True))
    return fields


@cache
def _template(source: str):
    return _ENV.from_string(source)


@cache
def _expression(source: str):
    return _ENV.compile_expression(source, undefined_to_none=False)


# ---------------------------------------------------------------- rendering


def render(template: Template, record: dict, options_suffix: bool = True) -> RenderedExample | None:
    """Render one record; None where the template's filter excludes it.

    Every failure is a one-line ``UnseenError`` naming the YAML file, template and field.
    """
    if template.filter is not None and not _evaluate(template, "filter", template.filter, record):
        return None
    choices = template.answer_choices
    if isinstance(choices, str):
        value = _evaluate(template, "answer_choices", choices, record)
        if not isinstance(value, (list, tuple)) or not value:
            raise _error(template, "answer_choices", f"expected a non-empty list, got {value!r}")
        choices = [str(choice) for choice in value]
    context = {**_ENV.globals, **record, "answer_choices": list(choices) if choices is not None else None}
    texts = [("input", template.input), ("target", template.target)]
    texts += [("answer", template.answer)] if template.answer else []
    for name, source in texts:
        for index_field in _subscript_fields(source) if choices is not None else ():
            value = context.get(index_field)
            if isinstance(value, int) and not 0 <= value < len(choices):
                raise _error(template, name,
                             f"{index_field} {value} is out of range of the {len(choices)} answer choices")
    text = _render_field(template, "input", template.input, context, choices)
    target = _render_field(template, "target", template.target, context, choices)
    references = [target]
    if template.references is not None:
        value = _evaluate(template, "references", template.references, context)
        if not isinstance(value, (list, tuple)) or not value:
            raise _error(template, "references", f"expected a non-empty list, got {value!r}")
        references = [str(reference) for reference in value]
    if not template.classification:
        return RenderedExample(text, target, references=references)
    if options_suffix and template.options:
        text += "\n\nOPTIONS:\n" + "\n".join(f"- {choice}" for choice in choices)
    answer = _render_field(template, "answer", template.answer, context, choices) if template.answer else target
    index = choices.index(answer) if answer in choices else None
    return RenderedExample(text, target, list(choices), index, references, answer)


def _render_field(template: Template, name: str, source: str, context: dict, choices=None) -> str:
    try:  # Template.render(context) but without copying the globals on every call: 2-3x faster
        compiled = _template(source)
        return concat(compiled.root_render_func(compiled.new_context(context, shared=True)))
    except UndefinedError as err:
        out_of_range = re.search(r"has no element (-?\d+)", str(err))
        if out_of_range and choices is not None:
            fields = _subscript_fields(source) or ["index"]
            message = f"{'/'.join(fields)} {out_of_range.group(1)} is out of range of the {len(choices)} answer choices"
            raise _error(template, name, message) from None
        raise _error(template, name, _explain(err)) from None
    except Exception as err:  # the sandbox, a bad method call, a type error in the template
        raise _error(template, name, f"{type(err).__name__}: {err}") from None


def _evaluate(template: Template, name: str, source: str, context: dict):
    try:
        value = _expression(source)(**context)
        if isinstance(value, Undefined):
            value._fail_with_undefined_error()
        return value
    except UndefinedError as err:
        raise _error(template, name, _explain(err)) from None
    except Exception as err:
        raise _error(template, name, f"{type(err).__name__}: {err}") from None


def _explain(err: UndefinedError) -> str:
    message = str(err)
    match = re.fullmatch(r"'(.+)' is undefined", message) or re.search(r"has no attribute '(.+)'", message)
    return f"unknown field {match.group(1)!r}" if match else message


@cache
def _subscript_fields(source: str) -> tuple[str, ...]:
    """Names used as ``answer_choices[<name>]`` in a template, e.g. ["label"]."""
    tree = _ENV.parse(source)
    return tuple(sorted({node.arg.name for node in tree.find_all(nodes.Getitem)
                   if isinstance(node.node, nodes.Name) and node.node.name == "answer_choices"
                   and isinstance(node.arg, nodes.Name)}))


def _error(template: Template, name: str, message: str) -> UnseenError:
    return UnseenError(f"{template.source}: template {template.id}: {name}: {message}")


# ---------------------------------------------------------------- data


def load_records(task: TaskTemplates, split: str = "eval", data_dir: str | Path | None = None) -> RecordSet:
    """The records of a split, by role ("train", "eval") or by split name; an empty split is an error."""
    name = task.splits.get(split, split)
    where = f"splits.{split}" if split in task.splits else "splits"
    dataset = task.dataset
    if dataset not in dataset_names() and task.path is not None and (task.path.parent / dataset).exists():
        dataset = str(task.path.parent / dataset)  # a user's data folder beside the YAML file
    try:
        records = load_dataset(dataset, name, data_dir=data_dir)
    except UnseenError as err:
        raise UnseenError(f"{task.source}: {where}: {err}") from None
    if len(records) == 0:
        raise UnseenError(f"{task.source}: {where}: split {name!r} of dataset {task.dataset!r} has no records "
                          f"({records.name})")
    return records


# ---------------------------------------------------------------- clusters


@cache
def _clusters_file() -> dict:
    return yaml.load(resources.files("unseen.instruct").joinpath("clusters.yaml").read_text(encoding="utf-8"),
                     Loader=_LOADER)


def load_clusters(tasks: dict[str, TaskTemplates] | None = None) -> dict[str, list[str]]:
    """Cluster name -> datasets: clusters.yaml plus each task's own ``cluster`` key."""
    clusters = {name: list(entry.get("datasets") or []) for name, entry in _clusters_file()["clusters"].items()}
    for task in (load_templates() if tasks is None else tasks).values():
        if task.cluster not in clusters:
            raise UnseenError(f"{task.source}: cluster: unknown cluster {task.cluster!r}; clusters.yaml has "
                              f"{', '.join(clusters)}")
        if task.dataset not in clusters[task.cluster]:
            clusters[task.cluster].append(task.dataset)
    return clusters


def heldout_datasets(clusters: str | Iterable[str], tasks: dict[str, TaskTemplates] | None = None) -> list[str]:
    """Datasets removed from instruction tuning when ``clusters`` are held out, including the
    clusters that clusters.yaml's ``heldout_also`` rule removes with them."""
    members = load_clusters(tasks)
    also = _clusters_file().get("heldout_also") or {}
    pending = [clusters] if isinstance(clusters, str) else list(clusters)
    removed: list[str] = []
    while pending:
        cluster = pending.pop()
        if cluster not in members:
            raise UnseenError(f"clusters.yaml: unknown cluster {cluster!r}; clusters: {', '.join(members)}")
        if cluster not in removed:
            removed.append(cluster)
            pending += also.get(cluster, [])
    return sorted({dataset for cluster in removed for dataset in members[cluster]})


def training_datasets(heldout: str | Iterable[str], tasks: dict[str, TaskTemplates] | None = None) -> list[str]:
    """Datasets to instruction-tune on when ``heldout`` clusters are evaluated."""
    members = load_clusters(tasks)
    excluded = set(heldout_datasets(heldout, tasks))
    return sorted({dataset for datasets in members.values() for dataset in datasets} - excluded)
