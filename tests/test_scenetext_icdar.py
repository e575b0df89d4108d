"""The ICDAR 2015 Task 4.4 end-to-end protocol on hand-built photos, and one check on the real data."""

import json
from pathlib import Path

import numpy as np
import pytest

from unseen.core.errors import DataError, UnseenError
from unseen.scenetext.icdar import (
    Detection,
    GroundTruthWord,
    evaluate_e2e,
    load_ic15_e2e,
    read_ground_truth,
    read_vocabulary,
    transcriptions_match,
    vocabulary_path,
)


def box(x, y, w=100, h=30):
    """Clockwise quad (image coordinates: y down) of an axis-aligned box."""
    return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], dtype=float)


def word(text, x=0, y=0, w=100, h=30):
    return GroundTruthWord(quad=box(x, y, w, h), text=text, dont_care=text == "###")


def det(text, x=0, y=0, w=100, h=30):
    return Detection(quad=box(x, y, w, h), text=text)


def score(detections, words, **kwargs):
    return evaluate_e2e([detections], [words], **kwargs)


def test_exact_match_scores_100():
    result = score([det("HOTEL")], [word("HOTEL")])
    assert (result.precision, result.recall, result.f) == (100.0, 100.0, 100.0)
    assert (result.matched, result.care_detections, result.care_ground_truth) == (1, 1, 1)


def test_case_is_ignored():
    assert score([det("hotel")], [word("Hotel")]).matched == 1


def test_wrong_word_in_the_right_place_is_a_miss_and_a_false_positive():
    result = score([det("HOSTEL"), det("PARK", y=100)], [word("HOTEL"), word("PARK", y=100)])
    assert (result.matched, result.care_detections, result.care_ground_truth) == (1, 2, 2)
    assert result.precision == result.recall == result.f == 50.0


def test_iou_must_exceed_one_half():
    # Shifted by 40 of 100 px: IoU = 60 / 140 < 0.5, so no pair even though the text is right.
    assert score([det("HOTEL", x=40)], [word("HOTEL")]).matched == 0
    # Shifted by 20 px: IoU = 80 / 120 > 0.5.
    assert score([det("HOTEL", x=20)], [word("HOTEL")]).matched == 1


def test_detection_over_dont_care_region_is_ignored():
    words = [word("HOTEL"), word("###", y=100)]
    result = score([det("HOTEL"), det("blurry", y=100)], words)
    assert (result.matched, result.care_detections, result.care_ground_truth) == (1, 1, 1)
    assert result.precision == 100.0
    # Less than half of its area inside the don't-care region: an ordinary false positive.
    result = score([det("HOTEL"), det("blurry", x=60, y=100)], words)
    assert result.care_detections == 2


def test_duplicate_detection_counts_once():
    result = score([det("HOTEL"), det("HOTEL", x=5)], [word("HOTEL")])
    assert (result.matched, result.care_detections) == (1, 2)
    assert result.precision == 50.0 and result.recall == 100.0


def test_first_detection_in_order_takes_the_word_even_when_its_text_is_wrong():
    # The script pairs by geometry first; the better-read second detection finds no word left.
    result = score([det("HOTE"), det("HOTEL", x=5)], [word("HOTEL")])
    assert result.matched == 0


def test_special_characters_trimmed_from_ground_truth_ends_only():
    assert transcriptions_match("(HOTEL)", "hotel")
    assert transcriptions_match("HOTEL!", "HOTEL") and transcriptions_match("HOTEL!", "HOTEL!")
    assert transcriptions_match('"Hotel', "HOTEL")
    assert not transcriptions_match("HOTEL!!", "HOTEL")  # one character per end, no more
    assert not transcriptions_match("HOTEL", "HOTEL!")  # the detection is never trimmed
    assert not transcriptions_match("HO.TEL", "HOTEL")
    assert not transcriptions_match("-HOTEL", "HOTEL")  # '-' is not one of the special characters


def test_short_and_non_letter_words_count_end_to_end_but_not_in_word_spotting():
    words = [word("TO"), word("50%", y=100), word("HOTEL", y=200)]
    detections = [det("TO"), det("50%", y=100), det("HOTEL", y=200)]
    end_to_end = score(detections, words)
    assert (end_to_end.matched, end_to_end.care_ground_truth) == (3, 3)
    # Word spotting turns the 2-letter word and the one with digits into don't care (and so
    # drops their detections too); only HOTEL remains.
    spotting = score(detections, words, word_spotting=True)
    assert (spotting.matched, spotting.care_detections, spotting.care_ground_truth) == (1, 1, 1)


def test_word_spotting_drops_a_final_apostrophe_s():
    assert score([det("JOHN")], [word("John's")], word_spotting=True).matched == 1
    assert score([det("JOHN'S")], [word("John's")], word_spotting=True).matched == 0
    assert score([det("JOHN'S")], [word("John's")]).matched == 1  # end to end compares it whole


def test_counts_are_summed_over_photos():
    result = evaluate_e2e(
        [[det("A1B")], [det("XYZ"), det("QQQ", y=100)]],
        [[word("A1B")], [word("XYZ"), word("###", y=200)]],
    )
    assert (result.matched, result.care_detections, result.care_ground_truth) == (2, 3, 2)
    assert [c.matched for c in result.per_photo] == [1, 1]
    assert result.as_dict()["per_photo"][1] == {"matched": 1, "care_detections": 2, "care_ground_truth": 1}
    assert result.precision == pytest.approx(200 / 3)


def test_no_detections_and_no_ground_truth():
    assert score([], [word("HOTEL")]).f == 0.0
    assert score([], []).as_dict()["f"] == 0.0


def test_read_ground_truth_with_bom_and_commas(tmp_path):
    path = tmp_path / "gt_img_1.txt"
    path.write_bytes("\ufeff1,2,3,4,5,6,7,8,$100,000\r\n10,20,30,20,30,40,10,40,###\n\n5,5,9,5,9,9,5,9,B1,\n".encode())
    words = read_ground_truth(path)
    assert [w.text for w in words] == ["$100,000", "###", "B1,"]
    assert [w.dont_care for w in words] == [False, True, False]
    assert words[0].quad.shape == (4, 2) and words[0].quad[3].tolist() == [7.0, 8.0]


def test_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "gt_img_9.txt"
    path.write_text("1,2,3,4,5,6,7,8,OK\n1,2,3,4,five,6,7,8,BAD\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"gt_img_9\.txt:2: "):
        read_ground_truth(path)


def test_missing_data_dir_says_where_it_looked(tmp_path):
    with pytest.raises(DataError, match=r"ic15_e2e.*--data-dir.*UNSEEN_DATA"):
        load_ic15_e2e(tmp_path)


def test_unknown_vocabulary_kind():
    with pytest.raises(UnseenError, match="unknown vocabulary"):
        vocabulary_path("huge", "img_1")


@pytest.mark.needs_data("str/ic15_e2e")
def test_real_ground_truth_fed_back_scores_100(data_dir):
    photos = load_ic15_e2e(data_dir, limit=3)
    assert [p.name for p in photos] == ["img_1", "img_2", "img_3"]
    assert all(p.image_path.is_file() for p in photos)
    predictions = [[w for w in p.words if not w.dont_care] for p in photos]
    result = evaluate_e2e(predictions, [p.words for p in photos])
    assert result.care_ground_truth > 0
    assert (result.precision, result.recall, result.f) == (100.0, 100.0, 100.0)


@pytest.mark.needs_data("str/ic15_e2e")
def test_every_scored_word_has_at_least_three_characters(data_dir):
    """What docs/scenetext.md says of the ground truth (why ICDAR submissions drop short words: --min-length 3)."""
    scored = [w.text for p in load_ic15_e2e(data_dir) for w in p.words if not w.dont_care]
    assert len(scored) == 2077 and min(map(len, scored)) == 3


@pytest.mark.needs_data("str/ic15_e2e")
def test_real_vocabularies(data_dir):
    assert vocabulary_path("none", "img_1", data_dir) is None
    strong = read_vocabulary(vocabulary_path("strong", "img_1", data_dir))
    assert len(strong) == 100 and not strong[0].startswith("\ufeff")
    assert len(read_vocabulary(vocabulary_path("weak", data_dir=data_dir))) == 1071


FIXTURES = Path(__file__).parent / "fixtures" / "ic15_e2e"


@pytest.mark.needs_data("str/ic15_e2e")
def test_hand_made_detections_on_real_photos(data_dir):
    """Detections copied from the ground truth of three photos and changed by hand (a box shifted to IoU 0.20, 0.46,
    exactly 0.5 and 0.71, wrong texts, duplicates, detections on and half on ### regions, a 2-letter word); the
    expected counts are worked out in tests/fixtures/ic15_e2e/README.md and beside each detection."""
    fixtures = [json.loads(path.read_text()) for path in sorted(FIXTURES.glob("img_*.json"))]
    assert [f["photo"] for f in fixtures] == ["img_2", "img_3", "img_5"]
    photos = {p.name: p for p in load_ic15_e2e(data_dir, limit=5)}
    truth = [photos[f["photo"]].words for f in fixtures]
    detections = [[Detection(quad=np.array(d["quad"], dtype=float).reshape(4, 2), text=d["text"])
                   for d in f["detections"]] for f in fixtures]
    for mode, options in (("end_to_end", {}), ("word_spotting", {"word_spotting": True})):
        result = evaluate_e2e(detections, truth, **options)
        expected = [f["expected"][mode] for f in fixtures]
        assert [c.__dict__ for c in result.per_photo] == expected, mode
        total = {key: sum(e[key] for e in expected) for key in expected[0]}
        assert (result.matched, result.care_detections, result.care_ground_truth) == tuple(total.values()), mode
    end_to_end = evaluate_e2e(detections, truth)
    assert (end_to_end.matched, end_to_end.care_detections, end_to_end.care_ground_truth) == (7, 17, 18)
    assert end_to_end.precision == pytest.approx(100 * 7 / 17) and end_to_end.recall == pytest.approx(100 * 7 / 18)
    spotting = evaluate_e2e(detections, truth, word_spotting=True)
    assert (spotting.matched, spotting.care_detections, spotting.care_ground_truth) == (5, 15, 12)
