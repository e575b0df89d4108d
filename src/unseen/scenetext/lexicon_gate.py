"""A context pool that only helps: its labels as a lexicon, used only where the recognizer is unsure.

The recognizer (the default reader's PP-OCRv6, ``OnnxCTCEncoder``; or PP-OCRv4, our port ``PPOCREncoder``)
reads a crop with greedy CTC, giving a reading g. Every
label c of the pool is scored by its CTC log-likelihood log p(c | image), summed over all
alignments (PyTorch's ctc_loss). The best label c* replaces g only where both hold:

    least_sure(g) < tau                      g is unsure: its least sure character is below tau
    log p(c* | x) > log p(g | x) + delta     c* explains the image better (delta < 0: a lexicon bonus)

(tau, delta) are chosen without any evaluated label, on the pool itself: each pool crop is read
with the *other* labels as candidates (leave-one-out), and the setting with the largest net gain
(readings fixed minus readings broken) wins; or, where the user has more labelled crops of the
domain (``pool build --gate-on N``), on N crops that are not in the pool, every pool label a
candidate. Ties go to the most conservative setting, so when the selection shows no gain the gate
stays off (tau = 0: nothing is replaced) and reading is plain greedy CTC. What it measured: docs/scenetext.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from unseen.core.ctc import best_path
from unseen.core.errors import UnseenError
from unseen.scenetext.metrics import correct

# The settings tried. tau 0.0 never replaces (the gate is off); 1.01 replaces wherever c* scores
# better. delta < 0 gives pool labels a bonus, as a lexicon prior does.
TAUS = [0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 1.01]
DELTAS = [-8.0, -6.0, -4.0, -3.0, -2.0, -1.0, 0.0, 0.5, 1.0, 2.0, 4.0]


@dataclass(frozen=True)
class GateSetting:
    tau: float
    delta: float
    fixed: int = 0  # on the crops it was chosen on
    broken: int = 0
    chosen_by: str = ""

    @property
    def off(self) -> bool:
        return self.tau <= 0.0

    def describe(self) -> str:
        where = f" ({self.chosen_by}: {self.fixed} fixed, {self.broken} broken)" if self.chosen_by else ""
        return ("gate off, plain reading" if self.off else f"gate tau={self.tau}, delta={self.delta}") + where


GATE_OFF = GateSetting(0.0, 0.0)


@dataclass
class ScoredCrop:
    """One crop as the gate sees it: greedy reading, how sure it is and its log-likelihood, and the
    log-likelihood of every (encodable) candidate label."""

    greedy: str
    least_sure: float  # smallest per-character probability on the greedy path (0 for an empty reading)
    greedy_ll: float
    label_ll: dict[str, float]
    mean: float = 0.0  # mean per-character probability on the greedy path: a reading's confidence (RapidOCR's score)


@dataclass
class GatedReading:
    text: str
    greedy: str
    least_sure: float  # the greedy reading's least sure character, what the gates compare with tau
    from_pool: bool  # the greedy reading was replaced by a pool label
    from_batch: bool = False  # ... or by a word read surely elsewhere in the batch (batch_lexicon.py)
    mean: float = 0.0  # the greedy reading's mean character probability (its confidence), where the reader sets it


def score_log_probs(log_probs: torch.Tensor, characters: list[str], labels: list[str], *,
                    unsure_below: float = float("inf")) -> ScoredCrop:
    """[T, C] CTC log-probabilities of one crop (blank at 0) -> its ScoredCrop over ``labels``.
    Labels are scored only when the greedy reading's least sure character is below ``unsure_below``: a
    gate with tau never replaces a surer reading, so its label scores would go unused."""
    index = {c: i for i, c in enumerate(characters) if i > 0}
    best, ids = log_probs.max(-1)
    emitted = best_path(ids.tolist(), best.exp().tolist())
    chars, path_probs = [characters[e.index] for e in emitted], [e.prob for e in emitted]
    greedy, least_sure = "".join(chars), min(path_probs, default=0.0)
    mean = sum(path_probs) / len(path_probs) if path_probs else 0.0
    if least_sure >= unsure_below:
        labels = []
    # labels the model cannot spell (or empty ones) cannot be scored and never win
    options = [greedy] + [label for label in dict.fromkeys(labels)
                          if label and label != greedy and all(ch in index for ch in label)]
    targets = [torch.tensor([index[c] for c in option], dtype=torch.long) for option in options]
    steps = log_probs.shape[0]
    nll = F.ctc_loss(log_probs[:, None].expand(steps, len(options), -1), torch.cat(targets),
                     torch.full((len(options),), steps, dtype=torch.long), torch.tensor([len(t) for t in targets]),
                     blank=0, reduction="none", zero_infinity=False)
    scores = (-nll).tolist()
    return ScoredCrop(greedy, least_sure, scores[0], dict(zip(options[1:], scores[1:])), mean)


def score_images(encoder, images, labels: list[str], *, unsure_below: float = float("inf")) -> list[ScoredCrop]:
    """Read ``images`` with a CTC recognizer (PP-OCRv6 or v4) and score every label against each (only where the
    reading is unsure, see score_log_probs)."""
    if not hasattr(encoder, "ctc_log_probs"):
        raise UnseenError("the lexicon gate needs a CTC recognizer: use --encoder ppocr-v6-rec (the default) "
                          "or ppocr-v4-rec")
    rows: list = [None] * len(images)
    for i, log_probs in encoder.ctc_log_probs(images):
        rows[i] = score_log_probs(log_probs, encoder.characters, labels, unsure_below=unsure_below)
    return rows


def gated_text(crop: ScoredCrop, candidates: set[str], setting: GateSetting) -> str:
    if crop.least_sure >= setting.tau:
        return crop.greedy
    scored = [(ll, label) for label, ll in crop.label_ll.items() if label in candidates]
    if not scored:
        return crop.greedy
    ll, label = max(scored)
    return label if ll > crop.greedy_ll + setting.delta else crop.greedy


def fixed_and_broken(crops, candidate_sets, targets, setting: GateSetting) -> tuple[int, int]:
    fixed = broken = 0
    for crop, candidates, target in zip(crops, candidate_sets, targets):
        before, after = correct(crop.greedy, target), correct(gated_text(crop, candidates, setting), target)
        fixed += after and not before
        broken += before and not after
    return fixed, broken


def choose_setting(crops, targets, candidate_sets, chosen_by: str) -> tuple[GateSetting, list[dict]]:
    """The (tau, delta) with the largest net gain on these labelled crops, and the whole grid."""
    grid = []
    for tau in TAUS:
        for delta in DELTAS:
            fixed, broken = fixed_and_broken(crops, candidate_sets, targets, GateSetting(tau, delta))
            grid.append({"tau": tau, "delta": delta, "fixed": fixed, "broken": broken})
    # ties: fewer changes, then the lower tau and the larger delta (more conservative); a grid
    # with no net gain therefore picks tau 0, the gate off
    best = max(grid, key=lambda g: (g["fixed"] - g["broken"], -(g["fixed"] + g["broken"]), -g["tau"], g["delta"]))
    return GateSetting(best["tau"], best["delta"], best["fixed"], best["broken"], chosen_by), grid


def leave_one_out_setting(pool_crops: list[ScoredCrop], labels: list[str]) -> tuple[GateSetting, list[dict]]:
    """Choose the gate on the pool alone: crop i is read with every other crop's label as candidates
    (a word the pool holds twice stays a candidate, as it would for a new crop of it)."""
    candidate_sets = [set(labels[:i] + labels[i + 1 :]) for i in range(len(labels))]
    return choose_setting(pool_crops, labels, candidate_sets, "leave-one-out on the pool")


def held_out_setting(crops: list[ScoredCrop], targets: list[str], labels: list[str]) -> tuple[GateSetting, list[dict]]:
    """Choose the gate on labelled crops of the domain that are not in the pool, every pool label a candidate
    (a larger and fairer sample than leave-one-out, where a 100-crop pool rarely holds a word twice)."""
    return choose_setting(crops, targets, [set(labels)] * len(crops), f"{len(crops)} other labelled crops")


class LexiconGate:
    """Pool labels + the gate setting chosen for them; ``read`` applies them to new crops."""

    def __init__(self, labels: list[str], setting: GateSetting = GATE_OFF):
        if not labels:
            raise UnseenError("the context pool is empty; add samples with `unseen str pool add`")
        self.labels, self.setting = list(labels), setting

    @classmethod
    def fit(cls, encoder, images, labels: list[str], held_out: tuple[list, list[str]] | None = None) -> LexiconGate:
        """Choose the setting by leave-one-out on the pool's own crops, or on ``held_out`` (images, labels) of
        the domain that are not in the pool."""
        if not labels:
            raise UnseenError("the context pool is empty; add samples with `unseen str pool add`")
        if held_out:
            held_images, targets = held_out
            setting, _ = held_out_setting(score_images(encoder, held_images, labels), targets, labels)
        else:
            setting, _ = leave_one_out_setting(score_images(encoder, images, labels), labels)
        return cls(labels, setting)

    @classmethod
    def from_pool(cls, pool) -> LexiconGate:
        if len(pool) == 0:
            raise UnseenError(f"{pool.root or 'the pool'}: the context pool is empty; "
                              "add samples with `unseen str pool add`")
        if not pool.gate:
            raise UnseenError(f"{pool.root or 'the pool'}: the pool has no gate setting; rebuild it with "
                              "`unseen str pool build` (PP-OCRv6 is its default)")
        return cls([pool.texts[i] for i in pool.labelled], GateSetting(**pool.gate))

    def as_dict(self) -> dict:
        return asdict(self.setting)

    def read(self, encoder, images) -> list[GatedReading]:
        candidates = set(self.labels)
        # only unsure readings can change, so only they are scored (the gate off scores none)
        crops = score_images(encoder, images, self.labels, unsure_below=self.setting.tau)
        out = []
        for crop in crops:
            text = gated_text(crop, candidates, self.setting)
            out.append(GatedReading(text, crop.greedy, crop.least_sure, text != crop.greedy, mean=crop.mean))
        return out


def read_plain(encoder, images) -> list[GatedReading]:
    """The recognizer's greedy CTC reading with no pool."""
    return [GatedReading(c.greedy, c.greedy, c.least_sure, False, mean=c.mean)
            for c in score_images(encoder, images, [])]


def refit_pool_gate(pool, encoder) -> GateSetting:
    """Choose the gate for a saved pool's current labels (on its gate crops when it keeps some, else by
    leave-one-out on its own crops, re-read from its folder) and record it in the pool; the caller saves it."""
    from unseen.core.data import open_image

    pool.check_encoder(encoder.fingerprint)
    if pool.root is None:
        raise UnseenError("the pool has no folder to read its images from; build it with `unseen str pool build`")

    def opened(names):
        return [open_image(pool.root / name, where=str(pool.root / name)) for name in names]

    labelled = pool.labelled
    texts = [pool.texts[i] for i in labelled]
    if pool.gate_crops:  # the pool's own crops are not read then
        gate = LexiconGate.fit(encoder, [], texts,
                               (opened(c["file"] for c in pool.gate_crops), [c["text"] for c in pool.gate_crops]))
    else:
        gate = LexiconGate.fit(encoder, opened(pool.files[i] for i in labelled), texts)
    pool.gate = gate.as_dict()
    return gate.setting
