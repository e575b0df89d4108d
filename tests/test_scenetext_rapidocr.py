"""RapidOCR 3.10.0 (``pip install rapidocr``), the photo baseline: our PP-OCRv6 detector and recognizer give its
boxes and texts on real ICDAR 2015 photos, its word boxes as read_words returns them, and the one-line error when
it is not installed.

RapidOCR 3.10 keeps a call's options (use_cls, use_rec, text_score, return_word_box) for later calls, so each engine
here serves one purpose and every call states its steps."""

import importlib.util
import sys

import numpy as np
import pytest
from conftest import missing_module

from unseen.core.errors import AssetMissingError

PHOTOS = (2, 5, 7)  # 9, 5 and 6 lines; img_1 has none (RapidOCR and ours agree)


def _photo(data_dir, n):
    return data_dir / "str" / "ic15_e2e" / "test" / "images" / f"img_{n}.jpg"


def _needs_rapidocr():
    for module in ("rapidocr", "onnxruntime", "cv2"):
        if importlib.util.find_spec(module) is None:
            missing_module(module, "pip install rapidocr==3.10.0 onnxruntime")


@pytest.fixture(scope="module")
def engine():
    """RapidOCR 3.10 with its defaults, but one crop per recognizer batch: it pads a batch to its widest crop,
    while our OnnxCTCEncoder reads each crop at its own width."""
    _needs_rapidocr()
    from rapidocr import RapidOCR

    return RapidOCR(params={"Global.log_level": "warning", "Rec.rec_batch_num": 1})


@pytest.mark.slow
def test_detector_gives_rapidocr_310_boxes_on_real_photos(data_dir, engine):
    import cv2

    from unseen.core.assets import load_asset

    detector = load_asset("ppocr-v6-det")
    for n in PHOTOS:
        path = _photo(data_dir, n)
        ours, _ = detector(cv2.imread(str(path)))
        theirs = engine(str(path), use_det=True, use_cls=False, use_rec=False).boxes
        assert ours.shape == theirs.shape and len(ours) >= 5, n
        np.testing.assert_array_equal(ours, theirs, err_msg=f"img_{n}")


@pytest.mark.slow
def test_recognizer_reads_every_line_as_rapidocr_310(data_dir, engine):
    """Greedy CTC over OnnxCTCEncoder.full_probs of our line crops = RapidOCR's texts, box by box (no direction
    classifier; text_score 0 keeps every line: RapidOCR drops only the lines read as empty)."""
    import cv2

    from unseen.core.assets import load_asset
    from unseen.scenetext.onnx_encoder import OnnxCTCEncoder
    from unseen.scenetext.words import warp_line

    detector, encoder = load_asset("ppocr-v6-det"), OnnxCTCEncoder("ppocr-v6-rec")
    characters = encoder.recognizer.characters
    for n in PHOTOS:
        path = _photo(data_dir, n)
        bgr = cv2.imread(str(path))
        quads, _ = detector(bgr)
        read = {}
        for i, probs in encoder.full_probs([warp_line(bgr, q).image for q in quads]):
            ids = probs.argmax(-1)
            emitted = (ids != 0) & np.r_[True, ids[1:] != ids[:-1]]  # RapidOCR's CTCLabelDecode
            read[i] = ("".join(characters[c] for c in ids[emitted]), probs.max(-1)[emitted].mean())
        kept = [i for i in range(len(quads)) if read[i][0].strip()]
        theirs = engine(str(path), use_det=True, use_cls=False, use_rec=True, return_word_box=False, text_score=0.0)
        np.testing.assert_array_equal(theirs.boxes, quads[kept], err_msg=f"img_{n}")
        assert list(theirs.txts) == [read[i][0] for i in kept], n
        np.testing.assert_allclose(theirs.scores, [read[i][1] for i in kept], atol=1e-4)


@pytest.mark.slow
def test_read_words_gives_a_box_per_word_inside_its_line(data_dir):
    _needs_rapidocr()
    import cv2

    from unseen.scenetext.rapidocr import load_rapidocr, read_lines, read_words

    shipped = load_rapidocr()  # the defaults a user gets, direction classifier on
    path = _photo(data_dir, 2)
    lines, words = read_lines(shipped, path), read_words(shipped, path)
    # By eye img_2 shows 14 words: 20029 / 97 154 197 / 198 727 on the bus-stop sign, "Free yourself from",
    # JOINT, PAIN, JOINT-RX, TOP BRAND on the poster. RapidOCR 3.10 gives 13 word boxes (154197 as one word,
    # TOF for TOP).
    assert len(words) >= 12
    assert {"Free", "yourself", "from", "JOINT", "PAIN", "20029"} <= {w.text for w in words}
    remaining = list(words)
    for line in lines:
        spelled = ""
        while spelled != line.text.replace(" ", ""):  # the line's words, in order
            assert remaining, f"no words left for {line.text!r}"
            word = remaining.pop(0)
            assert word.text and " " not in word.text
            spelled += word.text
            assert line.text.replace(" ", "").startswith(spelled), (line.text, word.text)
            # inside the line box, up to RapidOCR's integer rounding of word corners (up to 1.1 px here)
            inside = [cv2.pointPolygonTest(line.quad.reshape(-1, 1, 2), (float(x), float(y)), True)
                      for x, y in word.quad]
            assert min(inside) >= -2, (line.text, word.text, word.quad.tolist(), line.quad.tolist())
    assert remaining == []


def test_missing_rapidocr_is_one_line_naming_the_install_command(monkeypatch):
    from unseen.scenetext.rapidocr import load_rapidocr

    monkeypatch.setitem(sys.modules, "rapidocr", None)  # `import rapidocr` now raises ImportError
    with pytest.raises(AssetMissingError) as err:
        load_rapidocr()
    message = str(err.value)
    assert "\n" not in message and "pip install rapidocr==3.10.0" in message
    assert all(dep in message for dep in ("omegaconf", "colorlog", "six", "shapely", "pyclipper", "opencv"))
    monkeypatch.setitem(sys.modules, "rapidocr_onnxruntime", None)
    with pytest.raises(AssetMissingError, match=r"^[^\n]*pip install --no-deps rapidocr-onnxruntime==1\.4\.4"):
        load_rapidocr("1.4.4")
