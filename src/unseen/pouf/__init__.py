"""POUF (Tanwisuth et al., ICML 2023): adapt a zero-shot, prompt-based model with unlabeled target data.

    loss.py      the POUF objective (transport + mutual information)
    prompted.py  what a prompted LM is to POUF (the interface, verbalizer words as answer-slot tokens)
    lm.py        prompted causal LMs (answer-slot features, verbalizer prototypes, cached bottom layers);
                 masked_lm.py: the same read at a masked LM's <mask>
    dual.py      image-text models: one DualEncoder interface; dual_models.py: HF CLIP / open_clip adapters,
                 the offline ConSE, the string-keyed loader
    tasks.py     text tasks (prompts.yaml) and image tasks (folders, class-name files, image_templates.yaml)
    adapt.py     the adaptation run on the core training loop, label-free selection, collapse guard,
                 fallback to the zero-shot weights, the calibrated prompt ensemble
    agreement.py the gate before text adaptation: do the prompts agree beyond chance? (Fleiss' kappa)
    neighbours.py the opt-in check after text adaptation: do the answers follow MiniLM neighbourhoods?
    text.py      zero-shot / adapt / eval of a text task;  image.py: the same for an image task
    quickstart.py  the POUF step of `unseen quickstart`
"""

from unseen.pouf.adapt import AdaptConfig, Selection, adapt, predict_log_probs
from unseen.pouf.agreement import AgreementGate, measure_agreement
from unseen.pouf.image import ImageSetup
from unseen.pouf.image import evaluate_run as evaluate_image_run
from unseen.pouf.image import run_adapt as run_image_adapt
from unseen.pouf.image import zeroshot as image_zeroshot
from unseen.pouf.loss import PoufLoss, mutual_information_loss, pouf_loss, transport_loss
from unseen.pouf.tasks import load_image_task, load_text_task
from unseen.pouf.text import TextSetup
from unseen.pouf.text import evaluate_run as evaluate_text_run
from unseen.pouf.text import run_adapt as run_text_adapt
from unseen.pouf.text import zeroshot as text_zeroshot

__all__ = [
    "AdaptConfig",
    "AgreementGate",
    "ImageSetup",
    "PoufLoss",
    "Selection",
    "TextSetup",
    "adapt",
    "evaluate_image_run",
    "evaluate_text_run",
    "image_zeroshot",
    "load_image_task",
    "load_text_task",
    "measure_agreement",
    "mutual_information_loss",
    "pouf_loss",
    "predict_log_probs",
    "run_image_adapt",
    "run_text_adapt",
    "text_zeroshot",
    "transport_loss",
]
