"""Word lists and lexicon-constrained CTC decoding, on small hand-made log-probabilities (no model needed);
the real ICDAR 2015 generic vocabulary where the shared data is present."""

import itertools
import math
import random
import string

import pytest
import torch
import torch.nn.functional as F

from unseen.core.errors import DataError
from unseen.scenetext.lexicon import Lexicon, ctc_scores, lexicon_for, load_lexicons, read_word_list

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# PaddleOCR's layout: blank first, space last; both cases, digits and one Chinese character
CHARACTERS = ["", *string.ascii_lowercase, *string.ascii_uppercase, *string.digits, "\u6c34", " "]


def spelled(text: str, characters=CHARACTERS, peak: float = 0.9) -> torch.Tensor:
    """Log-probabilities that spell ``text``: a column peaked on each character, a blank column after each;
    the rest of a column's mass spread evenly over the other classes."""
    rows = []
    for ch in text:
        for target in (characters.index(ch), 0):
            p = torch.full((len(characters),), (1 - peak) / (len(characters) - 1))
            p[target] = peak
            rows.append(p.log())
    return torch.stack(rows)


def exact_score(word: str, log_probs: torch.Tensor, characters=CHARACTERS) -> float:
    """log p(word) by ctc_loss on the folded columns, where the word's letters are upper case."""
    folded, folded_characters = Lexicon.fold(log_probs, characters)
    target = torch.tensor([[folded_characters.index(c) for c in word.upper()]])
    nll = F.ctc_loss(folded, target, torch.tensor([len(folded)]), torch.tensor([len(word)]), reduction="none")
    return -float(nll)


def test_decode_finds_the_spelled_word_among_distractors():
    lexicon = Lexicon(["CAT", "CAR", "CART", "DOG", "CATS", "SCAT", "ACT", "TAC"], CHARACTERS)
    (word, score), *_ = lexicon.decode(spelled("CART"), CHARACTERS, top_k=3)
    assert word == "CART"
    assert score == pytest.approx(exact_score("CART", spelled("CART")), abs=1e-4)


def test_decode_ignores_case_and_returns_the_words_own_spelling():
    lexicon = Lexicon(["HELLO", "HELP", "YELLOW", "Shell"], CHARACTERS)
    assert lexicon.decode(spelled("Hello"), CHARACTERS)[0][0] == "HELLO"
    assert lexicon.decode(spelled("SHELL"), CHARACTERS)[0][0] == "Shell"
    assert "hello" in lexicon and "hell" not in lexicon


def test_case_variants_are_one_word_the_first_spelling_kept():
    lexicon = Lexicon(["Hello", "HELLO", "hello", ""])
    assert lexicon.words == ["Hello"]


def every_reading(log_probs: torch.Tensor, characters, fold: bool) -> dict[str, float]:
    """The reference CTC, by brute force: every length-T path over the classes, its probability (the product of its
    columns), collapsed (repeats merged, then blanks removed) and summed by the text it spells. With ``fold`` each
    class stands for its upper-case letter *before* repeats merge, as on case-folded columns ("Aa" is one A)."""
    symbols = [c.upper() if fold else c for c in characters]  # "" (the blank) stays ""
    p = log_probs.double().exp()
    texts: dict[str, float] = {}
    for path in itertools.product(range(len(characters)), repeat=len(log_probs)):
        spelled = [symbols[c] for i, c in enumerate(path) if i == 0 or symbols[c] != symbols[path[i - 1]]]
        text = "".join(spelled)  # the blank spells nothing
        texts[text] = texts.get(text, 0.0) + float(torch.prod(p[torch.arange(len(path)), list(path)]))
    return texts


TINY = ["", "A", "B", "C"]  # blank + 3 letters: 4 ** 6 = 4,096 paths of 6 columns


def tiny_log_probs(seed: int, characters=TINY, steps: int = 6) -> torch.Tensor:
    return (torch.randn(steps, len(characters), generator=torch.Generator().manual_seed(seed),
                        dtype=torch.float64) * 2).log_softmax(-1)


@pytest.mark.parametrize("seed", range(3))
def test_ctc_scores_equal_the_sum_over_every_alignment(seed):
    log_probs = tiny_log_probs(seed)
    reference = every_reading(log_probs, TINY, fold=False)
    assert sum(reference.values()) == pytest.approx(1.0)
    targets = ["A", "AB", "AA", "ABA", "CAB", "AAA", "BAAB", "ABCABC", "CCC"]
    ids = [[TINY.index(c) for c in t] for t in targets]
    for target, score in zip(targets, ctc_scores(log_probs, ids)):
        assert score == pytest.approx(math.log(reference[target]), abs=1e-6), target
    # no path of 6 columns spells AAAA (A _ A _ A _ A takes 7) or 7 letters: log 0
    assert "AAAA" not in reference and ctc_scores(log_probs, [[1] * 4, [1, 2] * 3 + [1]]) == [float("-inf")] * 2


@pytest.mark.parametrize("seed", range(3))
def test_decode_scores_and_ranks_words_as_the_sum_over_every_alignment(seed):
    log_probs = tiny_log_probs(seed)
    reference = every_reading(log_probs, TINY, fold=False)
    words = ["A", "B", "AB", "BA", "AA", "ABC", "CAB", "ACCA", "BBB", "CBA", "ABCA"]
    lexicon = Lexicon(words, TINY)
    found = lexicon.decode(log_probs, TINY, beam_width=len(lexicon.parent), top_k=len(words))
    expected = sorted(words, key=lambda w: -reference[w])
    assert [w for w, _ in found] == expected
    for word, score in found:
        assert score == pytest.approx(math.log(reference[word]), abs=1e-6), word
    # the default beam finds the best word of this small trie too
    assert lexicon.decode(log_probs, TINY) == [(expected[0], pytest.approx(math.log(reference[expected[0]]), abs=1e-6))]


def test_decode_scores_a_word_over_both_cases_of_each_letter():
    """Upper and lower case columns fold into one letter before repeats merge: "Aa" reads as one A."""
    characters = ["", "A", "a", "B"]
    log_probs = tiny_log_probs(7, characters, steps=5)
    reference = every_reading(log_probs, characters, fold=True)
    lexicon = Lexicon(["A", "AB", "BA", "AA", "ABA"], characters)
    for word, score in lexicon.decode(log_probs, characters, beam_width=64, top_k=5):
        assert score == pytest.approx(math.log(reference[word]), abs=1e-6), word
    # without folding, "Aa" would be read as two letters: the reference is not the unfolded one
    unfolded = every_reading(log_probs, characters, fold=False)
    assert reference["A"] > unfolded["A"] + unfolded["a"]


def test_fold_merges_each_letters_two_cases():
    p = torch.full((len(CHARACTERS),), 0.1 / (len(CHARACTERS) - 3))
    p[0], p[CHARACTERS.index("a")], p[CHARACTERS.index("A")] = 0.3, 0.3, 0.3
    folded, folded_characters = Lexicon.fold(p.log()[None], CHARACTERS)
    assert folded_characters[0] == "" and "a" not in folded_characters and len(folded_characters) == 1 + 26 + 10 + 2
    assert folded[0, folded_characters.index("A")].exp() == pytest.approx(0.6)
    assert folded[0].exp().sum() == pytest.approx(1.0)


def test_a_word_absent_from_the_lexicon_yields_the_closest_word():
    lexicon = Lexicon(["HELLO", "WORLD", "HOUSE", "BELOW", "HELM"], CHARACTERS)
    assert lexicon.decode(spelled("HELLX"), CHARACTERS)[0][0] == "HELLO"


def test_repeated_letters_need_a_blank_between_them():
    lexicon = Lexicon(["BOOK", "BOK"], CHARACTERS)
    assert lexicon.decode(spelled("BOOK"), CHARACTERS)[0][0] == "BOOK"
    # one O held over two columns with no blank between: it collapses to a single O
    columns = spelled("BOK")
    merged = torch.cat([columns[:2], columns[2:3], columns[2:]])  # B _ O O _ K _
    assert [w for w, _ in lexicon.decode(merged, CHARACTERS, top_k=2)] == ["BOK", "BOOK"]


def brute_force(lexicon: Lexicon, log_probs: torch.Tensor) -> list[tuple[float, str]]:
    return sorted(((exact_score(w, log_probs), w) for w in lexicon.words), reverse=True)


@pytest.mark.parametrize("seed", range(5))
def test_decode_agrees_with_scoring_every_word(seed):
    rng = random.Random(seed)
    words = ["".join(rng.choice("ABCDEF") for _ in range(rng.randint(1, 6))) for _ in range(200)]
    lexicon = Lexicon(words, CHARACTERS)
    columns = [CHARACTERS.index(c) for c in "ABCDEFabcdef"]
    logits = torch.full((12, len(CHARACTERS)), -6.0)
    logits[:, [0, *columns]] = torch.randn(12, 13, generator=torch.Generator().manual_seed(seed)) * 3
    log_probs = logits.log_softmax(-1)
    best = brute_force(lexicon, log_probs)
    (word, score), = lexicon.decode(log_probs, CHARACTERS, beam_width=64)
    assert (word, score) == (best[0][1], pytest.approx(best[0][0], abs=1e-4))
    # a beam as wide as the trie prunes nothing: the whole ranking is exact
    everything = lexicon.decode(log_probs, CHARACTERS, beam_width=len(lexicon.parent), top_k=5)
    assert [w for w, _ in everything] == [w for _, w in best[:5]]


def test_robust_to_empty_lexicons_missing_characters_and_short_crops():
    assert Lexicon([]).decode(spelled("AB"), CHARACTERS) == []
    lexicon = Lexicon(["AB", "ABCDEF", "\u00c9T\u00c9", "\u6c34"], CHARACTERS)
    assert lexicon.dropped == 1 and len(lexicon) == 3  # no É in CHARACTERS
    assert lexicon.decode(spelled("AB"), CHARACTERS, top_k=5)[0][0] == "AB"
    assert all(w != "ABCDEF" for w, _ in lexicon.decode(spelled("AB")[:4], CHARACTERS, top_k=5))  # 4 columns < 6
    assert lexicon.decode(spelled("\u6c34"), CHARACTERS)[0][0] == "\u6c34"
    # without characters every word is kept, and one the recognizer cannot spell is never read
    assert Lexicon(["\u00c9T\u00c9"]).decode(spelled("ETE"), CHARACTERS) == []
    assert Lexicon(["A"]).decode(spelled("A")[:0], CHARACTERS) == []
    with pytest.raises(ValueError):
        Lexicon(["A"]).decode(spelled("A")[:, :5], CHARACTERS)


def test_read_word_list_strips_a_bom_comments_and_blank_lines(tmp_path):
    path = tmp_path / "voc.txt"
    path.write_bytes("\ufeffHELLO\r\n# a comment\r\n\r\n  WORLD  \r\nCAF\u00c9".encode())
    assert read_word_list(path) == ["HELLO", "WORLD", "CAF\u00c9"]


def test_read_word_list_names_the_file_and_line_of_bad_text(tmp_path):
    path = tmp_path / "voc.txt"
    path.write_bytes(b"HELLO\nWORLD\nAB\xffC\n")
    with pytest.raises(DataError) as err:
        read_word_list(path)
    message = str(err.value)
    assert f"{path}, line 3" in message and "0xff" in message and "\n" not in message
    with pytest.raises(DataError, match="missing.txt"):
        read_word_list(tmp_path / "missing.txt")


def test_load_lexicons_from_a_file_or_a_folder_per_photo(tmp_path):
    folder = tmp_path / "strong"
    folder.mkdir()
    (folder / "voc_img_1.txt").write_text("CAT\nDOG\n")
    (folder / "voc_img_2.txt").write_text("\ufeffHOUSE\n")
    lexicons = load_lexicons(folder)
    assert set(lexicons) == {"img_1", "img_2"}
    assert lexicon_for(lexicons, "img_2.jpg").words == ["HOUSE"]
    assert lexicon_for(lexicons, str(tmp_path / "img_1.jpg")).words == ["CAT", "DOG"]
    assert lexicon_for(lexicons, "img_3.jpg") is None
    single = load_lexicons(folder / "voc_img_1.txt")
    assert isinstance(single, Lexicon) and lexicon_for(single, "img_9.jpg") is single
    with pytest.raises(DataError, match="no \\*.txt"):
        load_lexicons(tmp_path)  # holds only the folder


@pytest.mark.needs_data("str/ic15_e2e/vocabularies/generic.txt")
def test_the_icdar15_generic_vocabulary_loads_and_decodes(data_dir):
    path = data_dir / "str" / "ic15_e2e" / "vocabularies" / "generic.txt"
    lexicon = Lexicon.from_path(path, CHARACTERS)
    assert len(lexicon) > 80_000 and lexicon.dropped == 0
    word, score = lexicon.decode(spelled("Hello"), CHARACTERS)[0]
    assert word == "HELLO" and score == pytest.approx(exact_score("HELLO", spelled("Hello")), abs=1e-4)
