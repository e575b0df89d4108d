"""Reading a whole photo collection (issue 34): bad files are skipped and listed, bad arguments are one line, a
killed run resumes to the same output, the three steps give PhotoReader.read's words, and on Ray too."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from unseen.core.errors import DataError, UnseenError

# img_65 reads "from" as "ftrom", and the batch lexicon corrects it with img_2's sure "from" (with the int8
# detector and box threshold 0.4, img_91's DINNG, which img_78's DINING corrected before, is no longer read)
GOOD = ["img_2.jpg", "img_65.jpg"]
CLI = [sys.executable, "-c", "from unseen.cli import main; main()", "str", "read"]


@pytest.fixture
def ic15(data_path):
    """ICDAR 2015 test photos by name (skipped, or failed under UNSEEN_REQUIRE_DATA=1, where the data is missing)."""
    return lambda *names: [data_path(f"str/ic15_e2e/test/images/{name}") for name in names]


def folder_of(tmp_path: Path, ic15, names, bad: bool = True) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for path in ic15(*names):
        shutil.copy(path, folder / path.name)
    if bad:
        (folder / "cut.jpg").write_bytes(ic15("img_34.jpg")[0].read_bytes()[:20000])  # truncated JPEG
        (folder / "empty.jpg").write_bytes(b"")
        (folder / "notes.png").write_text("not an image\n")
    return folder


def run_cli(*args, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    return subprocess.run([*CLI, *map(str, args), "--cache", str(cache)], capture_output=True, text=True, env=env,
                          timeout=600)


# bad arguments: one line each, before any model loads ---------------------------------------------------------


@pytest.fixture
def photo(tmp_path) -> Path:
    Image.new("RGB", (320, 200), "white").save(tmp_path / "p.png")
    return tmp_path / "p.png"


def invoke(*args):
    from unseen.cli import app

    return CliRunner().invoke(app, ["str", "read", *map(str, args)])


def one_line_error(result, *words) -> str:
    assert result.exit_code != 0 and isinstance(result.exception, UnseenError), result.output
    message = str(result.exception)
    assert "\n" not in message and all(w in message for w in words), message
    return message


def test_an_empty_word_list_is_an_error_not_silently_no_words(photo, tmp_path):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "comments.txt").write_text("# nothing but a comment\n\n")
    one_line_error(invoke(photo, "--lexicon", tmp_path / "empty.txt"), "empty.txt", "no words")
    one_line_error(invoke(photo, "--lexicon", tmp_path / "comments.txt"), "comments.txt", "no words")
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "voc_p.txt").write_text("")
    one_line_error(invoke(photo, "--lexicon", tmp_path / "lists"), "voc_p.txt", "no words")


def test_a_binary_word_list_is_one_line(photo, tmp_path):
    (tmp_path / "words.txt").write_bytes(photo.read_bytes())  # a PNG named .txt
    one_line_error(invoke(photo, "--lexicon", tmp_path / "words.txt"), "words.txt", "binary")
    (tmp_path / "zeros.txt").write_bytes(b"\0" * 100)  # valid UTF-8, still not text
    one_line_error(invoke(photo, "--lexicon", tmp_path / "zeros.txt"), "zeros.txt", "binary")


def test_folders_given_as_files_and_other_bad_arguments_are_one_line(photo, tmp_path):
    (tmp_path / "a_file").write_text("x")
    for option in ("--draw", "--evolve", "--cache"):
        one_line_error(invoke(photo, option, tmp_path / "a_file"), option, "a file, not a folder")
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "x.txt").write_text("x")  # --evolve into a folder of other things
    one_line_error(invoke(photo, "--evolve", tmp_path / "stuff"), "not a pool")
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "voc_other.txt").write_text("EXIT\n")  # per-photo lists, none for this photo
    one_line_error(invoke(photo, "--lexicon", tmp_path / "lists"), "none of its 1 word lists")
    one_line_error(invoke(photo, "--lexicon-mode", "restrict"), "--lexicon")
    one_line_error(invoke(photo, "--min-confidence", "1.5"), "--min-confidence", "between 0 and 1")
    one_line_error(invoke(photo, "--min-length", "-1"), "--min-length")


def test_strict_stops_at_an_image_that_cannot_be_opened(photo, tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    result = invoke(photo, tmp_path / "empty.jpg", "--strict")
    assert isinstance(result.exception, DataError) and "empty.jpg" in str(result.exception)


def test_a_file_named_twice_is_read_once(photo, tmp_path):
    from unseen.cli.scenetext import _expand

    assert _expand([tmp_path, photo]) == [photo]


# reading: bad files skipped and listed, exit status 3 -----------------------------------------------------------


@pytest.mark.slow
def test_bad_files_are_skipped_listed_and_set_the_exit_status(tmp_path, ic15):
    folder = folder_of(tmp_path, ic15, GOOD)
    done = run_cli(folder, "--json", cache=tmp_path / "cache")
    assert done.returncode == 3, done.stderr
    entries = {Path(e["path"]).name: e for e in map(json.loads, done.stdout.splitlines())}
    assert sorted(entries) == ["cut.jpg", "empty.jpg", "img_2.jpg", "img_65.jpg", "notes.png"]
    for name in GOOD:  # every good photo read, with words
        assert "error" not in entries[name] and len(entries[name]["words"]) >= 3
    assert any(w["text"] == "from" and w["source"] == "batch" for w in entries["img_65.jpg"]["words"])
    assert entries["empty.jpg"]["error"] == "empty file (0 bytes)"
    assert "truncated" in entries["cut.jpg"]["error"] and "cannot decode" in entries["notes.png"]["error"]
    lines = done.stderr.splitlines()
    for name in ("cut.jpg", "empty.jpg", "notes.png"):  # one warning line each, and the summary lists it
        assert sum(line.startswith("warning: skipped") and name in line for line in lines) == 1
    assert "read 2 image(s); skipped 3 (exit status 3):" in done.stderr
    assert sum(line.startswith("  ") and "cut.jpg" in line for line in lines) == 1
    # all good: 0; --strict: the first bad photo stops the run with one line and status 2
    for bad in ("cut.jpg", "empty.jpg", "notes.png"):
        (folder / bad).rename(tmp_path / bad)
    assert run_cli(folder, "--json", cache=tmp_path / "cache").returncode == 0
    shutil.move(tmp_path / "cut.jpg", folder / "cut.jpg")
    strict = run_cli(folder, "--strict", cache=tmp_path / "cache")
    assert strict.returncode == 2 and "cut.jpg" in strict.stderr and "truncated" in strict.stderr
    assert len([line for line in strict.stderr.splitlines() if line.startswith("error:")]) == 1


def test_min_confidence_and_min_length_keep_the_words_the_defaults_drop(tmp_path, ic15):
    folder = folder_of(tmp_path, ic15, GOOD, bad=False)
    default = run_cli(folder, "--json", cache=tmp_path / "cache")
    everything = run_cli(folder, "--json", "--min-confidence", "0", "--min-length", "1", cache=tmp_path / "cache")
    assert default.returncode == everything.returncode == 0, default.stderr + everything.stderr

    def words(done):
        return [w for entry in map(json.loads, done.stdout.splitlines()) for w in entry["words"]]

    from unseen.scenetext.photos import ReadSettings

    tuned = ReadSettings()
    kept, shipped = words(everything), words(default)
    assert {w["text"] for w in shipped} <= {w["text"] for w in kept} and len(kept) > len(shipped)
    assert all(len(w["text"]) >= tuned.min_length and w["confidence"] >= tuned.min_confidence for w in shipped)
    assert any(len(w["text"]) < tuned.min_length or w["confidence"] < tuned.min_confidence for w in kept)


# resumable: killed between photos, rerun reads what is missing, same bytes --------------------------------------


@pytest.mark.slow
def test_a_killed_run_resumes_to_byte_identical_output(tmp_path, ic15):
    folder = folder_of(tmp_path, ic15, ["img_34.jpg", "img_48.jpg", *GOOD], bad=False)
    whole = run_cli(folder, "--json", cache=tmp_path / "cache-whole")
    assert whole.returncode == 0, whole.stderr
    cache = tmp_path / "cache"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    killed = subprocess.Popen([*CLI, str(folder), "--json", "--cache", str(cache)], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 300
    while len(list(cache.glob("*/*.pt"))) < 2 and time.monotonic() < deadline and killed.poll() is None:
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)  # between photos: two cached, the rest not yet
    assert killed.wait() == -signal.SIGKILL
    assert killed.stdout.read() == b""  # nothing printed before every photo was read
    done = len(list(cache.glob("*/*.pt")))
    assert 2 <= done < 4 and not list(cache.glob("*/.*.tmp"))  # atomic writes: no partial entry left
    resumed = run_cli(folder, "--json", cache=cache)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{done} photo(s) from the cache" in resumed.stderr and f"{4 - done} read now" in resumed.stderr
    assert resumed.stdout == whole.stdout  # byte for byte
    again = run_cli(folder, "--json", cache=cache)  # all cached: nothing read, same bytes
    assert "4 photo(s) from the cache" in again.stderr and again.stdout == whole.stdout


# the three steps = PhotoReader.read -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reader():
    from unseen.scenetext.photos import PhotoReader

    return PhotoReader.load()


@pytest.mark.slow
def test_three_steps_give_the_words_of_reading_all_at_once(reader, tmp_path, ic15):
    from unseen.scenetext.collection import Skipped, collection_lexicon, decode, read_raw

    paths = [*ic15(*GOOD), tmp_path / "empty.jpg"]
    paths[-1].write_bytes(b"")
    raws = list(read_raw(reader, paths, tmp_path / "cache"))
    assert isinstance(raws[-1], Skipped) and raws[-1].error == "empty file (0 bytes)"
    words = collection_lexicon(reader, raws)
    assert "from" in words and words == sorted(words)
    stepped = [r.as_dict() for r in decode(reader, raws, words)]
    at_once = [r.as_dict() for r in reader.read(paths[:-1])]
    assert stepped[:-1] == at_once and stepped[-1] == {"path": str(paths[-1]), "error": "empty file (0 bytes)"}
    # photo by photo without the collection's words, img_65 keeps ftrom: the words matter
    alone = reader.adapt([raws[1]])[0]
    assert "ftrom" in [w.text for w in alone.words] and "from" in [w["text"] for w in stepped[1]["words"]]
    with pytest.raises(DataError, match="empty.jpg"):
        list(read_raw(reader, paths, None, strict=True))


@pytest.mark.slow
def test_ray_pipeline_reads_the_same_words_as_the_cli(tmp_path, ic15):
    try:
        import ray  # noqa: F401
    except ImportError:
        pytest.skip("ray is not installed (optional: pip install 'unseen[ray]')")
    from unseen.scenetext.collection import read_on_ray

    folder = folder_of(tmp_path, ic15, GOOD)
    cli = run_cli(folder, "--json", cache=tmp_path / "cache")
    paths = sorted(p for p in folder.iterdir())
    try:
        lines = read_on_ray(paths, cache_dir=None, workers=2)  # step 1 read again by the workers
    finally:
        ray.shutdown()
    assert [json.loads(line) for line in lines] == [json.loads(line) for line in cli.stdout.splitlines()]
