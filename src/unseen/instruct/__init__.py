"""FLAN-style instruction tuning data: datasets rewritten as natural-language instructions.

Templates are data (``templates/<dataset>.yaml``, Jinja2), grouped in FLAN's task clusters
(``clusters.yaml``, with the held-out rule). See ``templates/README.md`` for the schema.
"""

from unseen.instruct.lint import Problem, lint
from unseen.instruct.templates import (
    METRICS,
    RenderedExample,
    TaskTemplates,
    Template,
    heldout_datasets,
    load_clusters,
    load_records,
    load_templates,
    render,
    training_datasets,
)

__all__ = [
    "METRICS",
    "Problem",
    "RenderedExample",
    "TaskTemplates",
    "Template",
    "heldout_datasets",
    "lint",
    "load_clusters",
    "load_records",
    "load_templates",
    "render",
    "training_datasets",
]
