"""The detector's int8 copy: made on the user's machine from the shipped graph, cached, and finding the float
detector's lines."""

import numpy as np
import pytest

from unseen.core.errors import UnseenError


def test_calibration_scenes_are_the_same_on_every_call():
    from unseen.core.models.ppocr_int8 import calibration_scenes

    first, again = calibration_scenes(count=2), calibration_scenes(count=2)
    assert first[0].shape == (720, 1280, 3) and first[0].dtype == np.uint8
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[0], first[1])


@pytest.mark.slow
def test_int8_copy_is_made_once_then_read_from_the_cache(tmp_path, monkeypatch):
    from unseen.core.assets import asset_file
    from unseen.core.models import ppocr_int8

    source = asset_file("ppocr-v6-det")
    detector = ppocr_int8.load_int8_db_detector(source, tmp_path)
    made = ppocr_int8.int8_path(source, tmp_path)
    assert made.exists() and made.stat().st_size < source.stat().st_size / 2  # int8 weights, a quarter of float's
    assert [p.name for p in tmp_path.iterdir()] == [made.name]  # no half-written file left beside it

    def fail(*args, **kwargs):
        raise AssertionError("quantized again although the copy is cached")

    monkeypatch.setattr(ppocr_int8, "quantize_detector", fail)
    assert ppocr_int8.load_int8_db_detector(source, tmp_path).fingerprint == detector.fingerprint


@pytest.mark.slow
def test_int8_detector_finds_the_float_detectors_lines(data_dir):
    """On real photos nearly every line the shipped detector finds is found by the int8 copy at IoU > 0.7."""
    from unseen.core.assets import load_asset
    from unseen.scenetext.icdar import _iou, _polygon
    from unseen.scenetext.photos import load_photo

    float_detector, int8_detector = load_asset("ppocr-v6-det"), load_asset("ppocr-v6-det-int8")
    assert float_detector.fingerprint != int8_detector.fingerprint  # raw readings are cached apart
    found = total = 0
    for n in (2, 5, 11, 24, 37):
        bgr, _, _ = load_photo(data_dir / "str" / "ic15_e2e" / "test" / "images" / f"img_{n}.jpg")
        reference, quantized = float_detector(bgr)[0], int8_detector(bgr)[0]
        total += len(reference)
        found += sum(any(_iou(_polygon(a), _polygon(b)) > 0.7 for b in quantized) for a in reference)
    assert total >= 20 and found >= 0.9 * total


def test_unknown_detector_is_a_one_line_error():
    from unseen.scenetext.photos import PhotoReader

    with pytest.raises(UnseenError, match="unknown detector 'ppocr-v6-det-fp16'; known: ppocr-v6-det, "):
        PhotoReader.load(detector="ppocr-v6-det-fp16")
