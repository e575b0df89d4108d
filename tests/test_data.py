import json
import os
import re
import subprocess

import pytest
from PIL import Image

from unseen.core.data import dataset_names, load_dataset, split_names, split_size, write_lmdb
from unseen.core.errors import DataError, UnseenError


def _readme_counts(data_dir):
    """Split sizes as the data README's tables state them."""
    text = (data_dir / "README.md").read_text()
    counts = {}
    for name, splits in re.findall(r"^\| (\w+) \| ((?:\w+ \(\d+\)(?:, )?)+) \|", text, flags=re.M):
        counts[name] = {split: int(n) for split, n in re.findall(r"(\w+) \((\d+)\)", splits)}
    for name, split, images in re.findall(r"^\| (ic13|ic15|iiit5k) \| (\w+) \| (\d+) \|", text, flags=re.M):
        counts.setdefault(name, {})[split] = int(images)
    pacs = re.findall(r"^\| (photo|cartoon|sketch) \|(?: \d+ \|){7} (\d+) \|", text, flags=re.M)
    counts["pacs"] = {domain: int(total) for domain, total in pacs}
    return counts


def test_every_dataset_loads_with_readme_split_sizes(data_dir):
    stated = _readme_counts(data_dir)
    assert len(stated) >= 25
    for name in dataset_names():
        sizes = {split: split_size(name, split) for split in split_names(name)}
        for split, count in stated.get(name, {}).items():
            assert sizes[split] == count, (name, split)
        for split in split_names(name):
            assert len(load_dataset(name, split)) == sizes[split]
    assert split_size("ic13", "test_857") == 857 and split_size("ic13", "test_1015") == 1015
    assert {split: split_size("usps", split) for split in ("train", "test")} == {"train": 7291, "test": 2007}
    assert split_size("mnist", "test") == 10000


def test_records_have_hugging_face_fields(data_dir):
    rte = load_dataset("rte", "validation")
    assert set(rte[0]) == {"premise", "hypothesis", "label", "idx"}
    assert rte.features["label"] == ["entailment", "not_entailment"]
    arc = load_dataset("arc_easy", "test")[0]
    assert arc["choices"]["label"][0] == "A" and arc["answerKey"] in arc["choices"]["label"]
    pacs = load_dataset("pacs", "photo")
    assert pacs.features["label"][2] == "giraffe"
    photo = pacs[0]
    assert photo["image"].size == (128, 128) and photo["label"] == 0
    word = load_dataset("ic13", "test_857")[0]
    assert word["text"] == "Tiredness" and word["image"].mode == "RGB"
    digit = load_dataset("usps", "test")[0]
    assert digit["image"].size == (16, 16) and 0 <= digit["label"] <= 9


def test_lmdb_roundtrip_in_parseq_layout(data_dir, tmp_path):
    crops = load_dataset("iiit5k", "test")[:5]
    write_lmdb(crops, tmp_path / "lmdb")
    reread = load_dataset(str(tmp_path / "lmdb"))
    assert [r["text"] for r in reread] == [r["text"] for r in crops]
    assert reread[0]["image"].size == crops[0]["image"].size


def test_local_paths_load_like_names(data_dir, tmp_path):
    records = load_dataset(str(data_dir / "nlp" / "rte" / "validation.jsonl"))
    assert len(records) == 277
    folder = load_dataset(str(data_dir / "str" / "ic15" / "test"))
    assert len(folder) == 2077
    images = load_dataset(str(data_dir / "images" / "pacs"), "cartoon")
    assert len(images) == 2344 and images.features["label"][0] == "dog"


def test_malformed_jsonl_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "fine", "label": 0}\n{"text": "broken", \n')
    with pytest.raises(DataError, match=r"bad\.jsonl:2: malformed JSON"):
        load_dataset(str(path))


def test_missing_field_names_file_line_and_field(tmp_path):
    (tmp_path / "nlp" / "rte").mkdir(parents=True)
    (tmp_path / "nlp" / "rte" / "validation.jsonl").write_text(
        json.dumps({"premise": "a", "hypothesis": "b", "label": 0}) + "\n" + json.dumps({"premise": "a",
                                                                                         "label": 1}) + "\n"
    )
    with pytest.raises(DataError, match=r"validation\.jsonl:2: record lacks field 'hypothesis'"):
        load_dataset("rte", "validation", data_dir=tmp_path)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_corrupt_image_names_the_file(tmp_path, damage):
    folder = tmp_path / "crops"
    (folder / "images").mkdir(parents=True)
    good = folder / "images" / "good.png"
    Image.new("RGB", (40, 20), "white").save(good)
    bad = folder / "images" / "bad.png"
    data = good.read_bytes()
    bad.write_bytes({"garbage": b"not an image", "truncated": data[: len(data) // 2], "empty": b""}[damage])
    (folder / "labels.tsv").write_text("images/good.png\tgood\nimages/bad.png\tbad\n")
    records = load_dataset(str(folder))
    assert records[0]["text"] == "good"
    with pytest.raises(DataError, match=r"bad\.png \(from labels\.tsv:2\): cannot decode image"):
        records[1]


def test_unknown_names_and_unreadable_directory(tmp_path, data_dir):
    with pytest.raises(UnseenError, match="unknown dataset 'nope'"):
        load_dataset("nope", "train")
    with pytest.raises(DataError, match="data directory does not exist"):
        load_dataset("rte", "validation", data_dir=tmp_path / "missing")
    with pytest.raises(DataError, match="has no split 'test'"):
        load_dataset("rte", "test", data_dir=data_dir)


def test_label_out_of_range_in_npz(tmp_path):
    import numpy as np

    from unseen.core.data.readers import read_npz_images

    np.savez(tmp_path / "d.npz", x=np.zeros((3, 4, 4), np.uint8), y=np.array([0, 1, 12]))
    with pytest.raises(DataError, match=r"y\[2\] = 12 is outside 0\.\.9"):
        read_npz_images(tmp_path / "d.npz", "x", "y", [str(i) for i in range(10)])


def test_cli_errors_are_one_line(unseen_cli, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\n{oops}\n')
    for args in (["data", "show", "nope"], ["data", "show", str(bad)],
                 ["data", "list", "--data-dir", str(tmp_path / "x")], ["assets", "check", "no-such-asset"]):
        result = subprocess.run([unseen_cli, *args], capture_output=True, text=True)
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert result.stderr.startswith("error:")


def test_cli_show_prints_records(unseen_cli, data_dir):
    result = subprocess.run([unseen_cli, "data", "show", "cb", "--split", "validation", "-n", "2"], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    assert "56 records" in result.stdout and "premise" in result.stdout


def test_missing_data_says_what_where_and_how(tmp_path, monkeypatch):
    import unseen.core.data as data

    monkeypatch.delenv("UNSEEN_DATA", raising=False)
    monkeypatch.setattr(data, "default_data_dirs", lambda: [tmp_path / "shared" / "data"])
    with pytest.raises(DataError) as error:
        data.check_available(["rte", "ecqa", "not-a-registered-name"])
    message = str(error.value)
    assert "no local copy of rte, ecqa" in message and str(tmp_path / "shared" / "data") in message
    assert "ecqa is not on the hub" in message and "--data-dir or $UNSEEN_DATA" in message
    with pytest.raises(DataError, match="no local copy of ecqa"):
        load_dataset("ecqa", "validation")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=re.escape(f"looked in {tmp_path / 'empty' / 'nlp' / 'rte'}")):
        load_dataset("rte", "validation", data_dir=tmp_path / "empty")


def test_quickstart_without_its_data_fails_at_once(unseen_cli, tmp_path):
    """One line naming what is missing, where it looked and how to point at it, before any step starts (it used
    to load every model first, or ask the hub five times): nothing printed, no output folder made."""
    (tmp_path / "empty").mkdir()
    env = {k: v for k, v in os.environ.items() if k != "UNSEEN_DATA"}
    cases = [(["--data-dir", "/nonexistent"], env, "data directory does not exist: /nonexistent"),
             ([], env | {"UNSEEN_DATA": str(tmp_path / "empty")}, "no local copy of rte, ic15, pacs, sst2, ecqa")]
    for args, environment, what in cases:
        result = subprocess.run([unseen_cli, "quickstart", "--out", str(tmp_path / "out"), *args],
                                capture_output=True, text=True, env=environment)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and what in lines[0], result.stderr
        assert "--data-dir" in lines[0] and "$UNSEEN_DATA" in lines[0]
        assert result.stdout == ""  # no step began: no asset loaded, no model
        assert not (tmp_path / "out").exists()
