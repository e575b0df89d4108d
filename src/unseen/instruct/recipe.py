"""Choosing a training recipe on held-in validation data only (issue 33).

A recipe (the objectives of ``keep.py``, LoRA rank, steps, the OPTIONS mix) is chosen for the FLAN protocol without
looking at any held-out cluster: every candidate is trained with one cluster held out and scored on the evaluation
splits of datasets it was trained on, where that split is not the one it trains on. ``search_data`` is everything
such a search reads; ``check_held_in`` refuses a held-out or leaking dataset before anything is loaded.

Held-in validation cannot show what tuning costs on clusters it never saw (on held-in sets rank scoring does not
fall). The nested proxy can: inside the same held-out setting, one more cluster is held out as well, and the model
is scored on it zero-shot, reading only its datasets' training splits, which the held-out protocol never evaluates
(``nested_proxy_tasks`` chooses them by a fixed rule, ``check_nested`` refuses anything else).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from unseen.core.errors import UnseenError
from unseen.instruct.keep import replay_texts
from unseen.instruct.mixture import MixtureConfig, build_mixture, mixture_datasets
from unseen.instruct.templates import heldout_datasets, load_clusters, load_records, load_templates


def check_held_in(heldout: list[str], eval_tasks: list[str], tasks: dict | None = None) -> list[str]:
    """``eval_tasks`` if each is trained on with ``heldout`` held out and evaluates on a split other than its
    training split; else an UnseenError naming the first that is not."""
    tasks = tasks or load_templates()
    removed = set(heldout_datasets(heldout, tasks))
    trained = set(mixture_datasets(MixtureConfig(heldout=list(heldout)), tasks))
    for name in eval_tasks:
        if name not in tasks:
            raise UnseenError(f"no templates for dataset {name!r}")
        if name in removed:
            raise UnseenError(f"{name} belongs to a held-out cluster ({', '.join(heldout)}): a recipe is chosen on "
                              "held-in data only")
        if name not in trained:
            raise UnseenError(f"{name} is not in the training mixture with {', '.join(heldout)} held out")
        splits = tasks[name].splits
        if splits.get("eval") == splits.get("train"):
            raise UnseenError(f"{name} trains and evaluates on the same split ({splits['train']}): not a validation "
                              "set for a held-in search")
    return list(eval_tasks)


def search_data(mixture: MixtureConfig, eval_tasks: list[str], *, replay_fraction: float = 0.0,
                data_dir: str | Path | None = None) -> dict:
    """Everything a recipe search reads: the training mixture, the replay texts, the held-in evaluation records
    (checked with ``check_held_in`` first). Training (``instruction_tune``) and evaluation (``evaluate``) read
    the same through the same functions."""
    tasks = load_templates()
    check_held_in(mixture.heldout, eval_tasks, tasks)
    return {
        "mixture": build_mixture(mixture, tasks=tasks, data_dir=data_dir),
        "replay": replay_texts(mixture, replay_fraction, tasks=tasks, data_dir=data_dir),
        "eval": {name: load_records(tasks[name], "eval", data_dir) for name in eval_tasks},
    }


def recipe_config(base, changes: dict):
    """``base`` (an InstructConfig) with ``changes``; keys under ``mixture.`` change its MixtureConfig."""
    mixture_changes = {k.split(".", 1)[1]: v for k, v in changes.items() if k.startswith("mixture.")}
    others = {k: v for k, v in changes.items() if not k.startswith("mixture.")}
    return dataclasses.replace(base, mixture=dataclasses.replace(base.mixture, **mixture_changes), **others)


def nested_proxy_tasks(outer: list[str], evaluated: dict[str, list[str]], tasks: dict | None = None) -> dict:
    """Inner cluster -> the dataset a nested proxy scores it on: for every cluster that is trained on with ``outer``
    held out, the first dataset clusters.yaml lists for it that the held-out protocol does not evaluate
    (``evaluated``: cluster -> its evaluated datasets); clusters without one are left out. Fixed before any run,
    so that the proxy's datasets are not picked by how recipes score on them."""
    tasks = tasks or load_templates()
    removed = set(heldout_datasets(outer, tasks))
    protocol = {name for names in evaluated.values() for name in names}
    chosen = {}
    for cluster in evaluated:
        members = [name for name in load_clusters(tasks).get(cluster, []) if name in tasks]
        if cluster in outer or set(members) & removed:
            continue
        spare = [name for name in members if name not in protocol and "train" in tasks[name].splits]
        if spare:
            chosen[cluster] = spare[0]
    return chosen


def check_nested(outer: list[str], inner: str, eval_tasks: list[str], tasks: dict | None = None) -> list[str]:
    """``eval_tasks`` if each belongs to the ``inner`` cluster only (so that holding ``outer`` and ``inner`` out
    removes it from training) and none to ``outer``; else an UnseenError. The proxy reads their train splits."""
    tasks = tasks or load_templates()
    outer_data = set(heldout_datasets(outer, tasks))
    inner_data = set(heldout_datasets([inner], tasks))
    for name in eval_tasks:
        if name in outer_data:
            raise UnseenError(f"{name} belongs to the held-out cluster(s) {', '.join(outer)}: never read")
        if name not in inner_data:
            raise UnseenError(f"{name} is not in cluster {inner}: it would be trained on, not held out")
        if "train" not in tasks[name].splits:
            raise UnseenError(f"{name} has no train split for the nested proxy to read")
    return list(eval_tasks)
