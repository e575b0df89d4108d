"""The vocabulary's rule (unseen.scenetext.adapt.vocabulary_choice) on hand-made candidates.

A candidate is (best vocabulary word or None, its CTC log-likelihood, the reading's own), as
``vocabulary_candidate`` returns it; the rule answers (text, vouched for by the vocabulary) or None (dropped).
"""

from unseen.scenetext.adapt import (
    DOMAIN_LIST,
    GENERAL_LIST,
    GENERAL_LIST_WORDS,
    VocabularySettings,
    settings_for,
    vocabulary_choice,
)

SURE, UNSURE = 0.99, 0.4  # the reading's least sure character
CORRECT = VocabularySettings(tau=1.01, delta=-3.0, restrict=False)  # a general dictionary: corrects, never drops
RESTRICT = VocabularySettings(tau=1.01, delta=-6.0, restrict=True, drop_below=-5.0)  # a domain list


def test_a_reading_the_vocabulary_holds_is_kept_and_vouched_for():
    for settings in (CORRECT, RESTRICT, VocabularySettings(tau=0.1, delta=5.0, restrict=True, drop_below=0.0)):
        assert vocabulary_choice(("HOTEL", -2.0, -2.0), "Hotel", SURE, settings) == ("Hotel", True)  # its own case
        assert vocabulary_choice(("hotel", -2.0, -2.0), "HOTEL", UNSURE, settings) == ("HOTEL", True)


def test_correct_replaces_the_reading_only_where_the_word_explains_it_better_by_delta():
    # own -2, delta -3: a word scoring above -5 replaces the reading
    assert vocabulary_choice(("HOTEL", -4.0, -2.0), "HOTFL", UNSURE, CORRECT) == ("HOTEL", True)
    assert vocabulary_choice(("HOTEL", -1.0, -2.0), "HOTFL", UNSURE, CORRECT) == ("HOTEL", True)
    assert vocabulary_choice(("HOTEL", -5.0, -2.0), "HOTFL", UNSURE, CORRECT) == ("HOTFL", False)  # not above
    assert vocabulary_choice(("HOTEL", -6.0, -2.0), "HOTFL", UNSURE, CORRECT) == ("HOTFL", False)
    # a positive delta asks more of the word than the reading's own score
    strict = VocabularySettings(tau=1.01, delta=1.0)
    assert vocabulary_choice(("HOTEL", -1.5, -2.0), "HOTFL", UNSURE, strict) == ("HOTFL", False)
    assert vocabulary_choice(("HOTEL", -0.5, -2.0), "HOTFL", UNSURE, strict) == ("HOTEL", True)


def test_correct_never_drops_a_word():
    assert vocabulary_choice(("HOTEL", -90.0, -2.0), "XQZ", UNSURE, CORRECT) == ("XQZ", False)
    assert vocabulary_choice((None, float("-inf"), -2.0), "XQZ", UNSURE, CORRECT) == ("XQZ", False)


def test_restrict_replaces_the_reading_with_the_word():
    # own -2, delta -6: the word is taken above -8
    assert vocabulary_choice(("HOTEL", -7.0, -2.0), "H0TEL", UNSURE, RESTRICT) == ("HOTEL", True)
    assert vocabulary_choice(("HOTEL", -7.0, -2.0), "H0TEL", SURE, RESTRICT) == ("HOTEL", True)  # tau 1.01: any


def test_restrict_drops_a_word_the_vocabulary_cannot_explain_within_drop_below():
    # not replaced (-9 <= -2 - 6) and below own + drop_below (-9 < -7): dropped
    assert vocabulary_choice(("HOTEL", -9.0, -2.0), "PARK", UNSURE, RESTRICT) is None
    assert vocabulary_choice((None, float("-inf"), -2.0), "PARK", UNSURE, RESTRICT) is None  # no word at all
    # with a delta stricter than drop_below, a word between the two is neither replaced nor dropped
    keep_between = VocabularySettings(tau=1.01, delta=2.0, restrict=True, drop_below=-5.0)
    assert vocabulary_choice(("HOTEL", -3.0, -2.0), "PARK", UNSURE, keep_between) == ("PARK", False)
    assert vocabulary_choice(("HOTEL", -7.0, -2.0), "PARK", UNSURE, keep_between) == ("PARK", False)  # -7 = -2 - 5
    assert vocabulary_choice(("HOTEL", -7.5, -2.0), "PARK", UNSURE, keep_between) is None
    # the same candidates without restrict: kept
    assert vocabulary_choice(("HOTEL", -7.5, -2.0), "PARK", UNSURE, CORRECT) == ("PARK", False)


def test_tau_lets_only_unsure_readings_change():
    gated = VocabularySettings(tau=0.9, delta=-3.0)
    candidate = ("HOTEL", -1.0, -9.0)  # the word explains the crop far better than the reading
    assert vocabulary_choice(candidate, "HOTFL", 0.5, gated) == ("HOTEL", True)
    assert vocabulary_choice(candidate, "HOTFL", 0.89, gated) == ("HOTEL", True)
    assert vocabulary_choice(candidate, "HOTFL", 0.9, gated) == ("HOTFL", False)  # not below tau
    assert vocabulary_choice(candidate, "HOTFL", 0.95, gated) == ("HOTFL", False)
    # a reading the vocabulary holds is vouched for however sure it is
    assert vocabulary_choice(("HOTEL", -1.0, -1.0), "HOTEL", 0.95, gated) == ("HOTEL", True)


def test_shipped_settings_per_kind_of_list():
    assert DOMAIN_LIST.restrict and not GENERAL_LIST.restrict
    assert settings_for(["W"] * GENERAL_LIST_WORDS) is DOMAIN_LIST
    assert settings_for(["W"] * (GENERAL_LIST_WORDS + 1)) is GENERAL_LIST
    assert settings_for({"img_1": ["W"] * 100, "img_2": ["W"] * 3}) is DOMAIN_LIST  # per-photo lists
    # the domain list drops what it cannot explain and takes a word even somewhat worse than the reading
    assert vocabulary_choice(("HOTEL", -7.0, -2.0), "H0TEL", UNSURE, DOMAIN_LIST) == ("HOTEL", True)
    assert vocabulary_choice(("HOTEL", -30.0, -2.0), "PARK", UNSURE, DOMAIN_LIST) is None
    assert vocabulary_choice(("HOTEL", -30.0, -2.0), "PARK", UNSURE, GENERAL_LIST) == ("PARK", False)


def test_a_list_cannot_drop_a_reading_spelled_beyond_its_characters():
    from unseen.scenetext.lexicon import Lexicon

    letters_only = Lexicon(["HOTEL", "Park", "EXIT"])
    assert letters_only.cannot_spell("$20") and letters_only.cannot_spell("CW3")
    assert not letters_only.cannot_spell("park") and not letters_only.cannot_spell("TOPHEL")  # case folded
    keeping = VocabularySettings(tau=1.01, delta=-6.0, restrict=True, drop_below=-5.0, keep_beyond_list=True)
    far = ("HOTEL", -30.0, -2.0)  # the list explains the word far worse than the reading
    assert vocabulary_choice(far, "CW3", UNSURE, keeping, beyond_list=True) == ("CW3", False)
    assert vocabulary_choice(far, "CW3", UNSURE, RESTRICT, beyond_list=True) is None  # the rule off: dropped
    assert vocabulary_choice(far, "PARKS", UNSURE, keeping, beyond_list=False) is None  # spelled within: dropped
    # a reading it can still correct is corrected, whatever it holds
    assert vocabulary_choice(("HOTEL", -7.0, -2.0), "H0TEL", UNSURE, keeping, beyond_list=True) == ("HOTEL", True)
    # shipped: per-photo lists and short lists keep such readings (chosen on ICDAR 2015 photos 1-100)
    assert DOMAIN_LIST.keep_beyond_list
    assert vocabulary_choice(far, "$8,888", UNSURE, DOMAIN_LIST, beyond_list=True) == ("$8,888", False)
