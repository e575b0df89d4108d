"""Readers for the on-disk layouts `unseen` understands.

Every reader returns a ``RecordSet``: a sequence of dicts with Hugging Face field
names. Text records are parsed eagerly (they are small); images are decoded on
access so that a 4,000-image domain costs nothing until it is read. Every failure
is a ``DataError`` naming the file, and the line or field where there is one.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from unseen.core.errors import DataError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


class RecordSet(Sequence):
    """A read-only list of records; ``getter(i)`` builds record ``i`` on demand."""

    def __init__(self, length: int, getter: Callable[[int], dict], *, name: str = "", features: dict | None = None):
        self._length = length
        self._getter = getter
        self.name = name
        # what the loader knows about the fields, e.g. {"label": ["dog", "cat"]}
        self.features = features or {}

    @classmethod
    def from_list(cls, records: list[dict], **kwargs) -> "RecordSet":
        return cls(len(records), records.__getitem__, **kwargs)

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._length))]
        if index < 0:
            index += self._length
        if not 0 <= index < self._length:
            raise IndexError(index)
        return self._getter(index)

    def __repr__(self) -> str:
        return f"RecordSet({self.name!r}, {self._length} records)"


def open_image(source: str | Path | bytes, *, mode: str = "RGB", where: str | None = None) -> Image.Image:
    """Decode an image fully (so truncation shows here, not later) or raise a DataError."""
    where = where or str(source)
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
            image.load()
            if image.width == 0 or image.height == 0:
                raise DataError(f"{where}: image has zero size")
            return image.convert(mode)
    except FileNotFoundError:
        raise DataError(f"{where}: image file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{where}: cannot decode image ({err})") from None


def read_jsonl(path: Path, required: Sequence[str] = ()) -> list[dict]:
    """Parse a JSON Lines file; blank lines are skipped, anything else malformed is an error."""
    records = []
    try:
        handle = path.open(encoding="utf-8")
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror or err})") from None
    with handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}:{line_number}: malformed JSON ({err.msg} at column {err.colno})") from None
            if not isinstance(record, dict):
                raise DataError(f"{path}:{line_number}: expected a JSON object, got {type(record).__name__}")
            missing = [field for field in required if field not in record]
            if missing:
                raise DataError(f"{path}:{line_number}: record lacks field {missing[0]!r}")
            records.append(record)
    return records


def read_imagefolder(root: Path, class_names: Sequence[str] | None = None) -> RecordSet:
    """``root/<class>/<image>`` as records {"image", "label", "path"}, classes in sorted order
    unless ``class_names`` fixes the order (then every folder must be one of them)."""
    if not root.is_dir():
        raise DataError(f"{root}: not a directory")
    folders = sorted(p.name for p in root.iterdir() if p.is_dir())
    if class_names is None:
        class_names = folders
    unknown = sorted(set(folders) - set(class_names))
    if unknown:
        raise DataError(f"{root}: folder {unknown[0]!r} is not one of the class names {list(class_names)}")
    items = []
    for label, name in enumerate(class_names):
        folder = root / name
        if folder.is_dir():
            items += [(p, label) for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    if not items:
        raise DataError(f"{root}: no images found")

    def get(i: int) -> dict:
        path, label = items[i]
        return {"image": open_image(path), "label": label, "path": str(path)}

    return RecordSet(len(items), get, name=str(root), features={"label": list(class_names)})


def read_labels_tsv(labels_file: Path) -> RecordSet:
    """A word-crop folder: ``labels.tsv`` lines ``images/<file>\\t<label>`` relative to its folder.

    Labels are kept verbatim (they may contain quotes and spaces), so no CSV reader.
    Records are {"image" (RGB), "text", "path"}.
    """
    try:
        lines = labels_file.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise DataError(f"{labels_file}: cannot read ({err.strerror or err})") from None
    items = []
    for line_number, line in enumerate(lines, start=1):
        if not line:
            continue
        parts = line.split("\t", 1)
        if len(parts) != 2:
            raise DataError(f"{labels_file}:{line_number}: expected '<image path>\\t<label>'")
        items.append((labels_file.parent / parts[0], parts[1], line_number))

    def get(i: int) -> dict:
        path, text, line_number = items[i]
        image = open_image(path, where=f"{path} (from {labels_file.name}:{line_number})")
        return {"image": image, "text": text, "path": str(path)}

    return RecordSet(len(items), get, name=str(labels_file))


def read_lmdb(root: Path) -> RecordSet:
    """A scene-text LMDB in the parseq/deep-text-recognition layout: ``num-samples``,
    ``image-%09d`` and ``label-%09d`` keys, indices starting at 1."""
    import lmdb

    if not (root / "data.mdb").exists():
        raise DataError(f"{root}: no data.mdb, not an LMDB folder")
    env = lmdb.open(str(root), readonly=True, lock=False, readahead=False, meminit=False)
    with env.begin() as txn:
        count = txn.get(b"num-samples")
    if count is None:
        raise DataError(f"{root}: LMDB has no 'num-samples' key")
    try:
        length = int(count)
    except ValueError:
        raise DataError(f"{root}: LMDB 'num-samples' is not an integer ({count!r})") from None

    def get(i: int) -> dict:
        key = f"{i + 1:09d}"
        with env.begin() as txn:
            image_bytes, label = txn.get(f"image-{key}".encode()), txn.get(f"label-{key}".encode())
        if image_bytes is None or label is None:
            raise DataError(f"{root}: LMDB lacks image-{key} or label-{key}")
        image = open_image(image_bytes, where=f"{root}: image-{key}")
        return {"image": image, "text": label.decode("utf-8"), "path": f"{root}#image-{key}"}

    return RecordSet(length, get, name=str(root))


def write_lmdb(records: Sequence[dict], root: Path) -> None:
    """Write {"image": PIL or path, "text"} records as a parseq-layout LMDB (PNG-encoded)."""
    import lmdb

    root.mkdir(parents=True, exist_ok=True)
    env = lmdb.open(str(root), map_size=1 << 32)
    with env.begin(write=True) as txn:
        for i, record in enumerate(records, start=1):
            image = record["image"]
            if isinstance(image, (str, Path)):
                image = open_image(image)
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            txn.put(f"image-{i:09d}".encode(), buffer.getvalue())
            txn.put(f"label-{i:09d}".encode(), record["text"].encode("utf-8"))
        txn.put(b"num-samples", str(len(records)).encode())
    env.close()


def read_npz_images(path: Path, x_key: str, y_key: str, class_names: Sequence[str]) -> RecordSet:
    """uint8 image arrays [N, H, W] with integer labels, as grayscale PIL records."""
    try:
        with np.load(path) as arrays:
            images, labels = arrays[x_key], arrays[y_key]
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: cannot read npz ({err})") from None
    except KeyError as err:
        raise DataError(f"{path}: npz lacks array {err}") from None
    if len(images) != len(labels):
        raise DataError(f"{path}: {x_key} has {len(images)} rows but {y_key} has {len(labels)}")
    bad = np.flatnonzero((labels < 0) | (labels >= len(class_names)))
    if bad.size:
        raise DataError(f"{path}: {y_key}[{bad[0]}] = {labels[bad[0]]} is outside 0..{len(class_names) - 1}")

    def get(i: int) -> dict:
        return {"image": Image.fromarray(images[i], mode="L"), "label": int(labels[i])}

    return RecordSet(len(images), get, name=str(path), features={"label": list(class_names)})
