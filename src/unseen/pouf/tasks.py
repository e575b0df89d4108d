"""Target tasks: text tasks (prompts + verbalizers, ``prompts.yaml``) and image tasks
(an image folder + class names + templates, ``image_templates.yaml``).

The unlabeled target data is read without its label field; labels are read only by
:func:`eval_labels` for the final evaluation.
"""

from __future__ import annotations

import re
import string
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import torch
import yaml

from unseen.core.data import load_dataset
from unseen.core.errors import DataError, UnseenError

BUILTIN = "prompts.yaml"
IMAGE_TEMPLATES = "image_templates.yaml"
# the partition of a split shared by unlabeled data and evaluation, and the order in
# which --limit takes records, do not depend on the training seed: every seed sees the same data
DATA_SEED = 1234


@dataclass
class TextPrompt:
    template: str
    verbalizer: list[list[str]]  # per class, one or more words

    def fields(self) -> list[str]:
        return [name for _, name, _, _ in string.Formatter().parse(self.template) if name and name != "mask"]

    def render(self, record: dict, *, where: str, mask: str | None = None) -> str:
        missing = [name for name in self.fields() if name not in record]
        if missing:
            raise DataError(f"{where}: template field {missing[0]!r} is not in the record (fields: "
                            f"{', '.join(record)})")
        values = {name: str(record[name]) for name in self.fields()}
        template = self.template
        if mask is None:  # causal LM: the answer slot ends the prompt
            template = template.split("{mask}")[0]
        elif "{mask}" not in template:
            template = template + " {mask}"
        return template.format(mask=mask or "", **values)


@dataclass
class TextTask:
    name: str
    dataset: str
    unlabeled: str | None
    eval: str | None
    label_field: str
    classes: list[str]
    prompts: list[TextPrompt]
    holdout: float | None = None
    source: str = BUILTIN

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TextTask":
        data = dict(data)
        data["prompts"] = [TextPrompt(p["template"], [list(w) for w in p["verbalizer"]]) for p in data["prompts"]]
        return cls(**data)


@dataclass
class ImageTask:
    name: str
    root: str  # an ImageFolder (class folders) or "<dataset>/<split>" of a registered image dataset
    classes: list[str]  # folder names, in label order
    prompt_names: list[str]  # what the class prompts say ("sci_tech" -> "science and technology")
    templates: list[str] = field(default_factory=lambda: ["a photo of a {}."])

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ImageTask":
        return cls(**data)


def _read_yaml(path: Path | None, text: str | None = None, where: str = "") -> object:
    try:
        return yaml.safe_load(text if text is not None else path.read_text(encoding="utf-8"))
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror or err})") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise DataError(f"{where or path}{line}: malformed YAML ({getattr(err, 'problem', None) or err})") from None


def builtin_text_tasks() -> dict[str, dict]:
    text = resources.files("unseen.pouf").joinpath(BUILTIN).read_text(encoding="utf-8")
    return _read_yaml(None, text, where=f"unseen/pouf/{BUILTIN}")


def _words(value, where: str) -> list[list[str]]:
    if not isinstance(value, list) or not value:
        raise DataError(f"{where}: verbalizer must be a list with one word (or a list of words) per class")
    words = []
    for item in value:
        group = [item] if isinstance(item, str) else item
        if not isinstance(group, list) or not group or not all(isinstance(w, str) and w.strip() for w in group):
            raise DataError(f"{where}: verbalizer entry {item!r} is not a word or a list of words")
        words.append(group)
    return words


def _parse_text_task(name: str, spec: object, source: str) -> TextTask:
    where = f"{source}: task {name!r}"
    if not isinstance(spec, dict):
        raise DataError(f"{where}: expected a mapping with dataset, classes, prompts, ...")
    for key in ("dataset", "classes", "prompts"):
        if key not in spec:
            raise DataError(f"{where}: missing field {key!r}")
    classes = spec["classes"]
    if not isinstance(classes, list) or len(classes) < 2:
        raise DataError(f"{where}: 'classes' must list at least two class names")
    prompts = []
    if not isinstance(spec["prompts"], list) or not spec["prompts"]:
        raise DataError(f"{where}: 'prompts' must be a non-empty list of {{template, verbalizer}}")
    for index, prompt in enumerate(spec["prompts"]):
        here = f"{where}, prompt {index + 1}"
        if not isinstance(prompt, dict) or "template" not in prompt or "verbalizer" not in prompt:
            raise DataError(f"{here}: needs 'template' and 'verbalizer'")
        words = _words(prompt["verbalizer"], here)
        if len(words) != len(classes):
            raise DataError(f"{here}: verbalizer has {len(words)} entries but there are {len(classes)} classes")
        try:
            list(string.Formatter().parse(prompt["template"]))
        except ValueError as err:
            raise DataError(f"{here}: bad template ({err}); write a literal brace as {{{{ or }}}}") from None
        prompts.append(TextPrompt(prompt["template"], words))
    holdout = spec.get("holdout")
    if holdout is not None and not 0 < float(holdout) < 1:
        raise DataError(f"{where}: holdout must be a fraction between 0 and 1")
    return TextTask(
        name=name,
        dataset=str(spec["dataset"]),
        unlabeled=spec.get("unlabeled"),
        eval=spec.get("eval"),
        label_field=spec.get("label_field", "label"),
        classes=[str(c) for c in classes],
        prompts=prompts,
        holdout=float(holdout) if holdout is not None else None,
        source=source,
    )


def load_text_task(task: str, prompts_file: str | Path | None = None) -> TextTask:
    """A text task by built-in name, or from a prompts YAML (one task, or a mapping of tasks).

    ``task`` may also be a ``.jsonl`` file: the YAML then describes it (its ``dataset``
    defaults to that file, used as unlabeled data and, held out, for evaluation).
    """
    if prompts_file is None:
        tasks = builtin_text_tasks()
        if task not in tasks:
            hint = " (a .jsonl file needs --prompts FILE.yaml)" if task.endswith(".jsonl") else ""
            raise UnseenError(f"unknown text task {task!r}{hint}; built-in: {', '.join(tasks)}")
        return _parse_text_task(task, tasks[task], f"unseen/pouf/{BUILTIN}")
    path = Path(prompts_file)
    data = _read_yaml(path)
    if isinstance(data, dict) and "prompts" in data:  # a single task
        spec = dict(data)
        name = Path(task).stem if task.endswith(".jsonl") else task
    elif isinstance(data, dict) and task in data:
        spec, name = dict(data[task]), task
    elif isinstance(data, dict) and len(data) == 1:
        name, spec = next(iter(data.items()))
        spec = dict(spec) if isinstance(spec, dict) else spec
    else:
        raise DataError(f"{path}: no task {task!r} (tasks: {', '.join(data) if isinstance(data, dict) else 'none'})")
    if task.endswith(".jsonl") and isinstance(spec, dict):
        spec.setdefault("dataset", task)
        if "unlabeled" not in spec and "eval" not in spec:
            spec.setdefault("holdout", 0.5)
    return _parse_text_task(name, spec, str(path))


# --- reading records -----------------------------------------------------------------


def _load(dataset: str, split: str | None, data_dir):
    if split and split.endswith(".jsonl"):
        return load_dataset(split, data_dir=data_dir)
    if dataset.endswith(".jsonl"):
        return load_dataset(dataset, data_dir=data_dir)
    return load_dataset(dataset, split, data_dir=data_dir)


def _partition(n: int, holdout: float) -> tuple[list[int], list[int]]:
    order = torch.randperm(n, generator=torch.Generator().manual_seed(DATA_SEED)).tolist()
    cut = int(round(n * holdout))
    return order[cut:], order[:cut]  # (unlabeled, eval)


def _subsample(indices: list[int], limit: int | None, salt: int) -> list[int]:
    if limit is None or limit >= len(indices):
        return indices
    order = torch.randperm(len(indices), generator=torch.Generator().manual_seed(DATA_SEED + salt)).tolist()
    return sorted(indices[i] for i in order[:limit])


def _role_records(task: TextTask, role: str, limit: int | None, data_dir):
    split = task.unlabeled if role == "unlabeled" else task.eval
    records = _load(task.dataset, split, data_dir)
    indices = list(range(len(records)))
    source = lambda s: s if s and s.endswith(".jsonl") else (task.dataset, s)  # noqa: E731
    same_split = source(task.unlabeled) == source(task.eval)
    if task.holdout is not None and same_split:
        unlabeled, held = _partition(len(records), task.holdout)
        indices = unlabeled if role == "unlabeled" else held
    elif same_split and role == "eval":
        raise DataError(f"{task.source}: task {task.name!r} uses split {split!r} both as unlabeled data and for "
                        "evaluation; set 'holdout' (e.g. 0.5) to keep them apart")
    indices = _subsample(indices, limit, salt=0 if role == "unlabeled" else 1)
    return records, indices


def prompt_texts(task: TextTask, prompt: TextPrompt, role: str, *, limit=None, data_dir=None,
                 mask: str | None = None) -> list[str]:
    """The records of ``role`` ("unlabeled": the target data for adaptation; "eval") rendered with
    ``prompt``, always without their label field."""
    records, indices = _role_records(task, role, limit, data_dir)
    if not indices:
        what = "unlabeled target set" if role == "unlabeled" else "evaluation set"
        raise DataError(f"{records.name or task.dataset}: the {what} is empty")
    out = []
    for i in indices:
        record = {k: v for k, v in records[i].items() if k != task.label_field}
        out.append(prompt.render(record, where=f"{records.name or task.dataset} record {i}", mask=mask))
    return out


def unlabeled_texts(task: TextTask, prompt: TextPrompt, *, limit=None, data_dir=None,
                    mask: str | None = None) -> list[str]:
    """The target prompts for adaptation: records rendered without their label field."""
    return prompt_texts(task, prompt, "unlabeled", limit=limit, data_dir=data_dir, mask=mask)


def unlabeled_inputs(task: TextTask, *, limit=None, data_dir=None) -> list[str]:
    """The unlabeled target inputs themselves, without a template: the fields the first prompt reads,
    joined (what a sentence encoder sees in the neighbour check), in unlabeled_texts' order."""
    records, indices = _role_records(task, "unlabeled", limit, data_dir)
    fields = task.prompts[0].fields()
    return [" ".join(str(records[i][name]) for name in fields if name in records[i]) for i in indices]


def eval_texts(task: TextTask, prompt: TextPrompt, *, limit=None, data_dir=None, mask: str | None = None) -> list[str]:
    """The evaluation prompts: records rendered without their label field (labels: `eval_labels`)."""
    return prompt_texts(task, prompt, "eval", limit=limit, data_dir=data_dir, mask=mask)


def eval_labels(task: TextTask, *, limit=None, data_dir=None) -> list[int]:
    """Labels of the evaluation records: read only by the final evaluation."""
    records, indices = _role_records(task, "eval", limit, data_dir)
    labels = []
    for i in indices:
        record = records[i]
        if task.label_field not in record:
            raise DataError(f"{records.name or task.dataset} record {i}: no label field {task.label_field!r} to "
                            "evaluate")
        label = record[task.label_field]
        if isinstance(label, str):
            if label not in task.classes:
                raise DataError(f"{records.name} record {i}: label {label!r} is not one of {task.classes}")
            label = task.classes.index(label)
        if not isinstance(label, int) or not 0 <= label < len(task.classes):
            raise DataError(f"{records.name or task.dataset} record {i}: label {label!r} is not a class index "
                            f"0..{len(task.classes) - 1}")
        labels.append(label)
    return labels


# --- image tasks -----------------------------------------------------------------------


def image_templates(name: str = "ensemble") -> list[str]:
    text = resources.files("unseen.pouf").joinpath(IMAGE_TEMPLATES).read_text(encoding="utf-8")
    sets = _read_yaml(None, text, where=f"unseen/pouf/{IMAGE_TEMPLATES}")
    if name not in sets:
        raise UnseenError(f"unknown template set {name!r}; known: {', '.join(sets)}")
    return list(sets[name])


def read_class_names(path: str | Path) -> tuple[list[str], list[str]]:
    """A class-name file: one class per line, ``folder`` or ``folder: what the prompt says``."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror or err})") from None
    folders, names = [], []
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        folder, _, name = line.partition(":")
        folder, name = folder.strip(), (name.strip() or folder.strip().replace("_", " "))
        if folder in folders:
            raise DataError(f"{path}:{number}: class {folder!r} is listed twice")
        folders.append(folder)
        names.append(name)
    if len(folders) < 2:
        raise DataError(f"{path}: needs at least two class names, one per line")
    return folders, names


def load_image_task(target: str, classes_file: str | Path | None = None, *, templates: str = "ensemble",
                    data_dir=None) -> ImageTask:
    """``target``: an ImageFolder path, or ``dataset/split`` (e.g. ``pacs/sketch``)."""
    path = Path(target).expanduser()
    if path.is_dir():
        folders = sorted(p.name for p in path.iterdir() if p.is_dir())
        if not folders:
            raise DataError(f"{path}: no class folders (expected {path}/<class>/<image>)")
        if classes_file is None:
            classes, names = folders, [f.replace("_", " ") for f in folders]
        else:
            classes, names = read_class_names(classes_file)
            unknown = [c for c in classes if c not in folders]
            if unknown:
                raise DataError(f"{classes_file}: class {unknown[0]!r} has no folder in {path} (folders: "
                                f"{', '.join(folders)})")
            extra = [f for f in folders if f not in classes]
            if extra:
                raise DataError(f"{path}: folder {extra[0]!r} is not in {classes_file} (classes: {', '.join(classes)})")
        root = str(path)
    else:
        dataset, _, split = target.partition("/")
        try:
            records = load_dataset(dataset, split or None, data_dir=data_dir)
        except UnseenError as err:
            raise UnseenError(f"{target}: not an image folder, and not a dataset/split ({err})") from None
        classes = list(records.features.get("label") or [])
        if not classes:
            raise DataError(f"{target}: the dataset has no class names; pass an image folder and --classes")
        names = [c.replace("_", " ") for c in classes]
        if classes_file is not None:
            listed, listed_names = read_class_names(classes_file)
            if sorted(listed) != sorted(classes):
                missing = sorted(set(listed) ^ set(classes))[0]
                raise DataError(f"{classes_file}: class {missing!r} does not match the classes of {target} "
                                f"({', '.join(classes)})")
            names = [listed_names[listed.index(c)] for c in classes]
        root = target
    return ImageTask(name=re.sub(r"[^A-Za-z0-9_.-]+", "-", target.strip("/")), root=root, classes=classes,
                     prompt_names=names, templates=image_templates(templates))


def image_records(task: ImageTask, *, data_dir=None):
    """The images of an image task (records with "image", "label", "path")."""
    path = Path(task.root)
    if path.is_dir():
        records = load_dataset(str(path), data_dir=data_dir)
        found = list(records.features.get("label") or [])
        if found != task.classes:
            # the folder reader orders classes alphabetically; re-map to the task's order
            mapping = {i: task.classes.index(name) for i, name in enumerate(found)}
            return _Relabeled(records, mapping)
        return records
    dataset, _, split = task.root.partition("/")
    return load_dataset(dataset, split or None, data_dir=data_dir)


class _Relabeled:
    def __init__(self, records, mapping):
        self.records, self.mapping = records, mapping
        self.name = records.name

    def __len__(self):
        return len(self.records)

    def __getitem__(self, i):
        record = dict(self.records[i])
        record["label"] = self.mapping[record["label"]]
        return record
