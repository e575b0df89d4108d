"""Choosing a training recipe on held-in validation data only (issue 33).

A recipe (the objectives of ``keep.py``, LoRA rank, steps, the OPTIONS mix) is chosen for the FLAN protocol without
looking at any held-out cluster: every candidate is trained with one cluster held out and scored on the evaluation
splits of datasets it was trained on, where that split is not the one it trains on. ``search_data`` is everything
such a search reads; ``check_held_in`` refuses a held-out or leaking dataset before anything is loaded.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from unseen.core.errors import UnseenError
from unseen.instruct.keep import replay_texts
from unseen.instruct.mixture import MixtureConfig, build_mixture, mixture_datasets
from unseen.instruct.templates import heldout_datasets, load_records, load_templates


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
