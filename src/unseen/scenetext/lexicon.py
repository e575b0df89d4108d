"""Word lists (vocabularies) and lexicon-constrained CTC decoding for PP-OCRv4's readings.

A ``Lexicon`` holds up to ~100k words in a character trie. ``Lexicon.decode`` reads a crop's CTC
log-probabilities with a prefix beam search that only follows the trie, so every hypothesis is a
prefix of a word, and returns the words its beam finishes, ranked by their exact CTC log-likelihood
log p(word | image) (every alignment summed, as ``lexicon_gate.score_log_probs`` scores labels).

Case does not count: vocabularies are upper case and evaluation compares case-insensitively, while
the recognizer has a class for each case. Words are keyed by their upper-cased form and decoding
runs on *folded* log-probabilities, where a letter's upper and lower case columns are merged
(log-sum-exp: the probability of the letter in either case). ``Lexicon.fold`` is public so that a
caller can score its greedy reading in the same folded space before comparing it with a word.

Word lists: one word per line (UTF-8, an optional BOM), blank lines and ``#`` comments skipped.
``load_lexicons`` on a folder reads one list per photo, ICDAR's ``voc_img_12.txt`` (or
``img_12.txt``) for photo ``img_12``.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from unseen.core.errors import DataError


def read_word_list(path) -> list[str]:
    """The words of a word list, in file order: whitespace and a BOM stripped, blank lines and ``#`` comments
    skipped. Raises DataError naming the file (and the line, for text that is not UTF-8)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: word list not found") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read the word list ({err.strerror or err})") from None
    words = []
    for number, raw in enumerate(data.split(b"\n"), 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise DataError(f"{path}, line {number}: not UTF-8 text (byte 0x{raw[err.start]:02x} at position "
                            f"{err.start + 1}); save the file as UTF-8") from None
        line = line.replace("\ufeff", "").strip()
        if line and not line.startswith("#"):
            words.append(line)
    return words


def fold_char(c: str) -> str:
    """A character's case-free form: its upper case where that is one character ("ß" stays "ß")."""
    upper = c.upper()
    return upper if len(upper) == 1 else c


def fold_word(word: str) -> str:
    """The form a word is stored and matched by: "Hello" -> "HELLO"."""
    return "".join(map(fold_char, word))


@dataclass(frozen=True)
class _FoldPlan:
    """How one recognizer's columns fold: each folded column is the log-sum-exp of the columns whose characters
    fold alike (a letter's two cases), the blank's column stays first."""

    characters: list[str]  # of the folded columns, "" for the blank at 0
    index: dict[str, int]  # folded character -> folded column
    first: torch.Tensor  # [C'] the first recognizer column of each folded one
    merges: list[tuple[torch.Tensor, torch.Tensor]]  # (folded columns, recognizer columns) to add in, level by level


@functools.lru_cache(maxsize=8)
def _fold_plan(characters: tuple[str, ...]) -> _FoldPlan:
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(characters[1:], 1):  # column 0 is the blank, whatever its name
        groups.setdefault(fold_char(c), []).append(i)
    members = [[0], *groups.values()]
    merges = []
    for level in range(1, max(map(len, members))):  # usually 1: a lower case letter onto its upper case
        pairs = [(j, g[level]) for j, g in enumerate(members) if len(g) > level]
        merges.append((torch.tensor([j for j, _ in pairs]), torch.tensor([i for _, i in pairs])))
    folded = ["", *groups]
    return _FoldPlan(folded, {c: j for j, c in enumerate(folded) if j > 0},
                     torch.tensor([g[0] for g in members]), merges)


def _fold_columns(log_probs: torch.Tensor, plan: _FoldPlan) -> torch.Tensor:
    folded = log_probs[:, plan.first]  # a copy: the merges below leave log_probs alone
    for columns, extra in plan.merges:
        folded[:, columns] = torch.logaddexp(folded[:, columns], log_probs[:, extra])
    return folded


class Lexicon:
    """Words in a character trie over their folded (upper-cased) forms; the original spelling of the first word
    with each folded form is kept for output.

    The trie is stored as arrays in breadth-first order, so a node's children are consecutive:
    ``parent[n]`` and ``code[n]`` (code point of the character on the edge into n) for every node (the root
    is 0), children of n at ``child_start[n]:child_end[n]``, and ``word_of[n]`` the word a node ends (-1: none).
    """

    def __init__(self, words: Iterable[str], characters: Sequence[str] | None = None):
        """``characters``: the recognizer's classes, when known; words it cannot spell are dropped (``dropped``
        counts them). Without them every word is kept, and decoding simply never finishes such a word."""
        index = _fold_plan(tuple(characters)).index if characters is not None else None
        by_key: dict[str, str] = {}
        self._dropped = 0
        for word in words:
            key = fold_word(word)
            if not key or key in by_key:
                continue
            if index is not None and not all(c in index for c in key):
                self._dropped += 1
                continue
            by_key[key] = word
        self.keys = sorted(by_key)
        self.words = [by_key[k] for k in self.keys]
        self._alphabet = frozenset("".join(self.keys))
        self._build_trie()
        self._binding: tuple[_FoldPlan, np.ndarray] | None = None

    @classmethod
    def from_path(cls, path, characters: Sequence[str] | None = None) -> Lexicon:
        return cls(read_word_list(path), characters)

    @property
    def dropped(self) -> int:
        """How many words were left out because the recognizer (``characters`` at build) cannot spell them."""
        return self._dropped

    def __len__(self) -> int:
        return len(self.words)

    def cannot_spell(self, text: str) -> bool:
        """Whether ``text`` holds a character no word of the list has (a number, where the list holds only words of
        letters): the list then says nothing against it."""
        return any(c not in self._alphabet for c in fold_word(text))

    def __contains__(self, word: str) -> bool:
        key = fold_word(word)
        i = bisect.bisect_left(self.keys, key)
        return i < len(self.keys) and self.keys[i] == key

    def _build_trie(self) -> None:
        # Built from the sorted keys at once, depth by depth: key i starts a new node at depth d where it
        # reaches depth d and shares fewer than d characters with key i - 1 (their common prefix, lcp).
        # Numbering new nodes depth by depth, in key order, gives the breadth-first order.
        n = len(self.keys)
        width = max(map(len, self.keys), default=0)
        codes = np.array(self.keys, dtype=f"<U{max(width, 1)}").view(np.uint32).reshape(n, max(width, 1))
        lengths = np.fromiter(map(len, self.keys), dtype=np.int64, count=n)
        lcp = np.zeros(n, dtype=np.int64)
        if n > 1:  # sorted unique keys, zero-padded: a key differs from the one before somewhere
            lcp[1:] = (codes[1:] != codes[:-1]).argmax(axis=1)
        node_at = np.zeros((n, width + 1), dtype=np.int64)  # the node at depth d on key i's path; root 0
        parents, edge_codes, count = [np.array([-1])], [np.array([0], dtype=np.uint32)], 1
        for depth in range(1, width + 1):
            reaches = lengths >= depth
            new = reaches & (lcp < depth)
            node_at[:, depth] = np.where(reaches, count + np.cumsum(new) - 1, -1)
            parents.append(node_at[new, depth - 1])
            edge_codes.append(codes[new, depth - 1])
            count += int(new.sum())
        self.parent = np.concatenate(parents)  # non-decreasing: children are consecutive
        self.code = np.concatenate(edge_codes)
        self.word_of = np.full(count, -1, dtype=np.int64)
        self.word_of[node_at[np.arange(n), lengths]] = np.arange(n)
        nodes = np.arange(count)
        self.child_start = np.searchsorted(self.parent, nodes, side="left")
        self.child_end = np.searchsorted(self.parent, nodes, side="right")

    @staticmethod
    def fold(log_probs: torch.Tensor, characters: Sequence[str]) -> tuple[torch.Tensor, list[str]]:
        """[T, C] log-probabilities -> ([T, C'] with each letter's cases merged, the C' folded characters; the
        blank stays at 0). Score any reading you compare with ``decode``'s words on these columns: a word's
        folded score is at least its score in one case, so comparing it with an unfolded score favours words."""
        plan = _fold_plan(tuple(characters))
        return _fold_columns(log_probs, plan), plan.characters

    def _edge_columns(self, plan: _FoldPlan) -> np.ndarray:
        """The folded column of each node's edge character (-1: the root, or a character the recognizer lacks)."""
        if self._binding is None or self._binding[0] is not plan:
            unique, inverse = np.unique(self.code, return_inverse=True)
            columns = np.array([plan.index.get(chr(c), -1) for c in unique.tolist()], dtype=np.int64)
            edge = columns[inverse]
            edge[0] = -1
            self._binding = (plan, edge)
        return self._binding[1]

    def decode(self, log_probs: torch.Tensor, characters: Sequence[str], beam_width: int = 32,
               top_k: int = 1) -> list[tuple[str, float]]:
        """The ``top_k`` best words for a crop's [T, C] CTC log-probabilities (blank at 0) as (word, CTC
        log-likelihood on the folded columns, see ``fold``), best first. The beam keeps the ``beam_width`` most
        likely prefixes and the ``beam_width`` most likely whole words at each column; on 120 IC15 crops with
        the 87k-word generic vocabulary, width 32 found the word that scoring every word finds in 117 (16: 113).
        Empty when the lexicon is empty or the beam holds no whole word at the end (a crop shorter than
        every word)."""
        if log_probs.dim() != 2 or log_probs.shape[1] != len(characters):
            raise ValueError(f"log_probs {tuple(log_probs.shape)} do not match {len(characters)} characters")
        if not self.words or log_probs.shape[0] == 0:
            return []
        log_probs = log_probs.detach().cpu()
        plan = _fold_plan(tuple(characters))
        folded = _fold_columns(log_probs if log_probs.dtype == torch.float64 else log_probs.float(), plan)
        edge = self._edge_columns(plan)
        # float64 columns plus one of -inf, which edge column -1 (the root, a missing character) picks
        table = np.full((folded.shape[0], folded.shape[1] + 1), -np.inf)
        table[:, :-1] = folded.double().numpy()
        nodes, score = self._beam_search(table, edge, max(beam_width, 1))
        ends = (self.word_of[nodes] >= 0) & np.isfinite(score)
        # the beam's value is a lower bound (paths through pruned prefixes are lost): rescore exactly
        words = self.word_of[nodes[ends]].tolist()
        exact = ctc_scores(folded, [[plan.index[c] for c in self.keys[w]] for w in words])
        ranked = sorted(zip(exact, words), key=lambda s: -s[0])
        return [(self.words[w], s) for s, w in ranked[:top_k] if s > -np.inf]

    def _beam_search(self, table: np.ndarray, edge: np.ndarray, beam_width: int) -> tuple[np.ndarray, np.ndarray]:
        """CTC prefix beam search over the trie. A hypothesis is a node (the prefix spelled on the way to it)
        with the log-probabilities of its alignments so far ending in a blank (blank) or in its last character
        (other). Returns the final beam's nodes and their log-probabilities."""
        nodes = np.zeros(1, dtype=np.int64)
        blank, other = np.zeros(1), np.full(1, -np.inf)
        for row in table:
            total = np.logaddexp(blank, other)
            last = edge[nodes]
            # staying on the node: a blank, or its last character repeated (collapses onto it)
            stay_blank, stay_other = total + row[0], other + row[last]
            # extending to every child the trie allows, however unlikely its character: a node has few children,
            # and a letter the model missed or misread with near certainty can still be recovered (so no column
            # or character is pruned); the same character twice needs a blank between
            counts = self.child_end[nodes] - self.child_start[nodes]
            owner = np.repeat(np.arange(len(nodes)), counts)
            child = np.arange(counts.sum()) + np.repeat(self.child_start[nodes] - (np.cumsum(counts) - counts), counts)
            column = edge[child]
            extend = np.where(column == last[owner], blank[owner], total[owner]) + row[column]
            live = extend > -np.inf
            # a child may already be in the beam: sum both ways of reaching it
            all_nodes = np.concatenate([nodes, child[live]])
            nodes, where = np.unique(all_nodes, return_inverse=True)
            blank, other = np.full(len(nodes), -np.inf), np.full(len(nodes), -np.inf)
            np.logaddexp.at(blank, where[: len(stay_blank)], stay_blank)
            np.logaddexp.at(other, where, np.concatenate([stay_other, extend[live]]))
            if len(nodes) > beam_width:
                # the best hypotheses, and the best that are whole words: a crop the model reads as (nearly)
                # blank would otherwise end with a beam of prefixes and no word at all
                score = np.logaddexp(blank, other)
                ends = np.flatnonzero(self.word_of[nodes] >= 0)
                keep = np.union1d(_best(score, beam_width), ends[_best(score[ends], beam_width)])
                nodes, blank, other = nodes[keep], blank[keep], other[keep]
        return nodes, np.logaddexp(blank, other)


def _best(score: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores (all where there are no more), in no order."""
    return np.argpartition(-score, k - 1)[:k] if len(score) > k else np.arange(len(score))


def ctc_scores(log_probs: torch.Tensor, targets: list[list[int]]) -> list[float]:
    """Exact CTC log-likelihood of each target (column ids, blank 0) under [T, C] log-probabilities: only the
    blank's and the targets' own columns are read, so they are gathered first (cheap for a few words)."""
    if not targets:
        return []
    columns = sorted({c for t in targets for c in t})
    position = {c: i + 1 for i, c in enumerate(columns)}
    small = log_probs[:, [0, *columns]]
    steps = small.shape[0]
    nll = F.ctc_loss(small[:, None].expand(steps, len(targets), -1),
                     torch.tensor([position[c] for t in targets for c in t], dtype=torch.long),
                     torch.full((len(targets),), steps, dtype=torch.long), torch.tensor([len(t) for t in targets]),
                     blank=0, reduction="none", zero_infinity=False)
    return (-nll).tolist()


def photo_key(name: str) -> str:
    """The photo a name stands for: ``voc_img_12.txt``, ``img_12.txt`` and ``img_12.jpg`` are all ``img_12``."""
    return Path(name).stem.removeprefix("voc_")


def load_lexicons(path, characters: Sequence[str] | None = None) -> Lexicon | dict[str, Lexicon]:
    """A word list file -> its Lexicon (one vocabulary for every photo); a folder -> a Lexicon per ``*.txt``
    in it, keyed by photo (``photo_key``: an ICDAR per-photo ``voc_img_12.txt`` or ``img_12.txt`` is ``img_12``)."""
    path = Path(path)
    if not path.is_dir():
        return Lexicon.from_path(path, characters)
    files = sorted(path.glob("*.txt"))
    if not files:
        raise DataError(f"{path}: no *.txt word lists in the folder")
    lexicons: dict[str, Lexicon] = {}
    for file in files:
        key = photo_key(file.name)
        if key in lexicons:
            raise DataError(f"{file}: a second word list for photo {key}")
        lexicons[key] = Lexicon.from_path(file, characters)
    return lexicons


def lexicon_for(lexicons: Lexicon | dict[str, Lexicon] | None, photo_name: str) -> Lexicon | None:
    """The Lexicon for a photo (a file name or path such as ``img_12.jpg``): the one vocabulary, the photo's own
    from a folder, or None where the folder has none for it."""
    if lexicons is None or isinstance(lexicons, Lexicon):
        return lexicons
    return lexicons.get(photo_key(photo_name))
