"""Whole photos: words cut from a rendered line, the evolving pool, the CLI, and
bad inputs (not an image, 1 x 1, a 20,000-pixel panorama, no text, a vocabulary that is not UTF-8)."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont
from typer.testing import CliRunner

from unseen.core.errors import DataError

pytestmark = pytest.mark.slow

FONT = "DejaVuSans-Bold.ttf"


@pytest.fixture(scope="module")
def reader():
    from unseen.scenetext.photos import PhotoReader

    return PhotoReader.load()


def render_photo(words: list[str], size=(1100, 300), at=(60, 110), font_size=32):
    """White page, one line of black words set with the font's own spaces (so the detector sees one line);
    returns the image and each word's box (x0, y0, x1, y1)."""
    try:
        font = ImageFont.truetype(FONT, size=font_size)
    except OSError:
        font = ImageFont.load_default(size=font_size)
    image = Image.new("RGB", size, "white")
    canvas = ImageDraw.Draw(image)
    canvas.text(at, " ".join(words), fill="black", font=font)
    boxes, prefix = [], ""
    for word in words:
        start = canvas.textlength(prefix, font=font)
        left, top, right, bottom = canvas.textbbox((at[0] + start, at[1]), word, font=font)
        boxes.append((left, top, right, bottom))
        prefix += word + " "
    return image, boxes


def box_iou(quad, box) -> float:
    x0, y0, x1, y1 = quad[:, 0].min(), quad[:, 1].min(), quad[:, 0].max(), quad[:, 1].max()
    inter = max(0, min(x1, box[2]) - max(x0, box[0])) * max(0, min(y1, box[3]) - max(y0, box[1]))
    union = (x1 - x0) * (y1 - y0) + (box[2] - box[0]) * (box[3] - box[1]) - inter
    return inter / union


def test_a_rendered_line_is_cut_into_its_words(reader, tmp_path):
    words = ["HELLO", "unseen", "WORLD", "2026"]
    image, boxes = render_photo(words)
    image.save(tmp_path / "line.png")
    assert len(reader.detector(np.asarray(image)[:, :, ::-1].copy())[0]) == 1  # the detector sees one line
    [photo] = reader.read([tmp_path / "line.png"])
    assert [w.text for w in photo.words] == words
    for word, box in zip(photo.words, boxes):
        assert box_iou(word.quad, box) > 0.5, (word.text, word.quad.tolist(), box)


def test_bad_and_odd_inputs(reader, tmp_path):
    (tmp_path / "notes.jpg").write_text("not an image")
    with pytest.raises(DataError, match="notes.jpg: cannot decode image"):
        reader.read([tmp_path / "notes.jpg"])
    Image.new("RGB", (1, 1), "white").save(tmp_path / "dot.png")
    Image.new("RGB", (640, 480), (90, 140, 90)).save(tmp_path / "lawn.png")
    [dot, lawn] = reader.read([tmp_path / "dot.png", tmp_path / "lawn.png"])
    assert dot.words == [] and lawn.words == []
    # a 20,000-pixel panorama: shrunk under the cap on load, read without blowing up, boxes in its own pixels
    page, _ = render_photo(["PANORAMA"], size=(2000, 200), at=(900, 60), font_size=60)
    panorama = Image.new("RGB", (20000, 2000), "white")
    panorama.paste(page.resize((20000, 2000)), (0, 0))
    panorama.save(tmp_path / "wide.jpg", quality=80)
    [wide] = reader.read([tmp_path / "wide.jpg"])
    assert (wide.width, wide.height) == (20000, 2000)
    assert [w.text for w in wide.words] == ["PANORAMA"]
    assert 8000 < wide.words[0].quad[:, 0].mean() < 12000


def test_a_vertical_line_is_read_either_way_round_and_cut_into_its_words_in_place(reader, tmp_path):
    """Signs reading top to bottom (turned 90 degrees clockwise) and bottom to top (counter-clockwise): each read
    the right way up, each word boxed where it is, not the whole line's box for every word."""
    words = ["HELLO", "unseen", "WORLD"]
    image, boxes = render_photo(words, size=(700, 140), at=(40, 50))
    width, height = image.size
    turns = {"down": (Image.Transpose.ROTATE_270, lambda x0, y0, x1, y1: (height - y1, x0, height - y0, x1)),
             "up": (Image.Transpose.ROTATE_90, lambda x0, y0, x1, y1: (y0, width - x1, y1, width - x0))}
    for name, (turn, where) in turns.items():
        image.transpose(turn).save(tmp_path / f"{name}.png")
        [photo] = reader.read([tmp_path / f"{name}.png"])
        assert [w.text for w in photo.words] == words, name
        for word, box in zip(photo.words, boxes):
            assert box_iou(word.quad, where(*box)) > 0.5, (name, word.text, word.quad.tolist(), where(*box))


def test_photos_load_upright_in_bgr_whatever_their_mode_or_exif_turn(tmp_path):
    from unseen.scenetext.photos import load_photo

    page, _ = render_photo(["TURNED"], size=(400, 120), at=(20, 40))
    page.paste((255, 0, 0), (0, 0, 10, 10))  # a red corner: BGR order and where "up" is
    page.save(tmp_path / "upright.png")
    bgr, scale, size = load_photo(tmp_path / "upright.png")
    assert bgr.shape == (120, 400, 3) and scale == 1.0 and size == (400, 120)
    assert bgr[5, 5].tolist() == [0, 0, 255]
    # a phone's portrait photo: pixels stored turned, EXIF orientation 6 says "turn me back"
    exif = Image.Exif()
    exif[0x0112] = 6
    page.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "phone.png", exif=exif)
    turned, _, turned_size = load_photo(tmp_path / "phone.png")
    assert turned_size == (400, 120) and np.array_equal(turned, bgr)
    page.convert("L").save(tmp_path / "grey.png")
    page.convert("RGBA").save(tmp_path / "clear.png")
    for name in ("grey.png", "clear.png"):
        loaded, _, _ = load_photo(tmp_path / name)
        assert loaded.shape == (120, 400, 3) and loaded.dtype == np.uint8


def test_evolving_pool_keeps_sure_words_marked_and_removable(reader, tmp_path):
    from unseen.cli import app
    from unseen.scenetext.pool import Pool

    render_photo(["MARINA", "BAY", "SANDS"])[0].save(tmp_path / "a.png")
    runner = CliRunner()
    result = runner.invoke(app, ["str", "read", str(tmp_path / "a.png"), "--evolve", str(tmp_path / "pool"),
                                 "--json", "--draw", str(tmp_path / "drawn")])
    assert result.exit_code == 0, result.output
    reading = json.loads(result.stdout.strip().splitlines()[-1])
    assert [w["text"] for w in reading["words"]] == ["MARINA", "BAY", "SANDS"]
    assert len(reading["words"][0]["quad"]) == 4 and (tmp_path / "drawn" / "a.png").exists()
    pool = Pool.load(tmp_path / "pool")
    assert sorted(pool.texts) == ["BAY", "MARINA", "SANDS"] and all(pool.self_labelled)
    assert all((tmp_path / "pool" / f).exists() for f in pool.files)
    listed = runner.invoke(app, ["str", "pool", "ls", str(tmp_path / "pool")], env={"COLUMNS": "80"})
    shown = " ".join(listed.stdout.split())
    assert listed.exit_code == 0 and "3 self-labelled" in shown and shown.count("self") >= 4
    removed = runner.invoke(app, ["str", "pool", "rm", str(tmp_path / "pool"), "--self-labelled"])
    assert removed.exit_code == 0 and len(Pool.load(tmp_path / "pool")) == 0


def unsure_kallang(characters):
    """CTC log-probabilities of a word the recognizer reads "KALIANG" while unsure of its I (0.55 against L 0.45):
    the plain reader fails on it by construction, whatever the model."""
    import torch

    index = {c: i for i, c in enumerate(characters)}
    spikes = [{"K": 1.0}, {"A": 1.0}, {"L": 1.0}, {"I": 0.55, "L": 0.45}, {"A": 1.0}, {"N": 1.0}, {"G": 1.0}]
    columns = []
    for spike in spikes:
        for probs in (spike, {"": 1.0}):  # the character's column, then a blank's
            column = torch.full((len(characters),), 1e-6)
            for ch, p in probs.items():
                column[index[ch] if ch else 0] = p
            columns.append(column / column.sum())
    return torch.stack(columns).log()


def test_self_labelled_words_help_a_later_photo(reader, tmp_path):
    """A word read surely in one photo is offered, from the pool, to an unsure reading of it in a later one."""
    from unseen.scenetext.adapt import SELF_LABELLED_AS
    from unseen.scenetext.evolve import evolve_pool
    from unseen.scenetext.pool import Pool
    from unseen.scenetext.reading import RawPhoto
    from unseen.scenetext.words import LineCrop

    render_photo(["KALLANG"])[0].save(tmp_path / "clear.png")
    pool = Pool.new(reader.encoder, root=tmp_path / "pool")
    assert evolve_pool(pool, reader.read([tmp_path / "clear.png"]), reader.encoder) == 1
    assert pool.texts == ["KALLANG"] and pool.self_labelled == [True]
    log_probs = unsure_kallang(reader.encoder.characters)
    quad = np.array([[0, 0], [140, 0], [140, 20], [0, 20]], dtype=np.float32)
    line = LineCrop(None, quad, np.eye(3), False, (140, 20))
    later = RawPhoto(str(tmp_path / "later.png"), 200, 50, 1.0, [(line, 8 * len(log_probs), log_probs)])
    [cold] = reader.adapt([later])
    [warm] = reader.adapt([later], pool=pool)
    assert [w.text for w in cold.words] == ["KALIANG"]
    # the pool's self-labelled words come in as tuned.json says: a vocabulary (e2e.py tune --stage vocabulary)
    assert [w.text for w in warm.words] == ["KALLANG"] and warm.words[0].source == SELF_LABELLED_AS
    [as_batch] = reader.adapt([later], pool=pool, self_labelled_as="batch")
    assert [w.text for w in as_batch.words] == ["KALLANG"] and as_batch.words[0].source == "batch"


def test_cli_vocabulary_that_is_not_utf8_is_one_line_naming_file_and_line(tmp_path):
    from unseen.cli import app

    render_photo(["EXIT"])[0].save(tmp_path / "p.png")
    (tmp_path / "voc.txt").write_bytes(b"EXIT\nCAF\xe9\n")
    result = CliRunner().invoke(app, ["str", "read", str(tmp_path / "p.png"), "--lexicon", str(tmp_path / "voc.txt")])
    assert result.exit_code != 0
    assert isinstance(result.exception, DataError)
    assert "voc.txt" in str(result.exception) and "line 2" in str(result.exception)


def test_quickstart_photo_step_prints_words_and_draws_them(data_dir, tmp_path):
    from rich.console import Console

    from unseen.scenetext.quickstart import run_photos

    console = Console(record=True, width=80)
    summary = run_photos(console, data_dir, tmp_path)
    text = " ".join(console.export_text().split())
    assert [p["path"].rsplit("/", 1)[-1] for p in summary["photos"]] == ["img_2.jpg", "img_5.jpg"]
    assert all(p["words"] for p in summary["photos"]) and "…" not in console.export_text()
    assert summary["photos"][0]["words"][0]["text"] in text
    assert [Path(d).name for d in summary["drawn"]] == ["img_2.png", "img_5.png"]
    assert all(Path(d).exists() for d in summary["drawn"])


def test_auto_reads_a_small_banner_as_a_photo_and_a_word_crop_as_a_crop(tmp_path):
    """--as auto asks the detector: a 795 x 129 banner holding three words is a photo (three words with boxes), a
    small crop of one word stays a word crop."""
    from unseen.cli import app

    banner, _ = render_photo(["OPEN", "24", "HOURS"], size=(795, 129), at=(40, 40), font_size=40)
    banner.save(tmp_path / "banner.png")
    word, _ = render_photo(["EXIT"], size=(140, 60), at=(20, 10), font_size=32)
    word.save(tmp_path / "word.png")
    result = CliRunner().invoke(app, ["str", "read", str(tmp_path / "banner.png"), str(tmp_path / "word.png"),
                                      "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    photo = next(r for r in rows if r.get("path", "").endswith("banner.png"))
    assert [w["text"] for w in photo["words"]] == ["OPEN", "24", "HOURS"]
    crop = next(r for r in rows if r.get("image", "").endswith("word.png"))
    assert crop["text"] == "EXIT"
