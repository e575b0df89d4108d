"""Datasets by name, by local path, or from the Hugging Face hub.

``load_dataset("rte", "validation")`` reads the shared data directory when it has
the dataset (see ``datasets.yaml``), and otherwise the same name from the hub
through ``datasets`` when the hub is reachable. A path (a ``.jsonl`` file, a
word-crop folder with ``labels.tsv``, an LMDB, an ImageFolder) loads the same way.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import cache
from importlib import resources
from pathlib import Path

import yaml

from unseen.core.data.readers import (
    RecordSet,
    open_image,
    read_imagefolder,
    read_jsonl,
    read_labels_tsv,
    read_lmdb,
    read_npz_images,
    write_lmdb,
)
from unseen.core.errors import DataError, UnseenError

__all__ = [
    "RecordSet",
    "DatasetSpec",
    "POINT_AT_DATA",
    "check_available",
    "dataset_names",
    "dataset_spec",
    "fingerprint",
    "load_dataset",
    "open_image",
    "resolve_data_dir",
    "split_names",
    "split_size",
    "write_lmdb",
]


class DatasetSpec(dict):
    """One entry of datasets.yaml (a dict with attribute access for the common keys)."""

    name = property(lambda self: self["name"])
    kind = property(lambda self: self["kind"])
    path = property(lambda self: self["path"])


@cache
def _registry() -> dict[str, DatasetSpec]:
    text = resources.files("unseen.core.data").joinpath("datasets.yaml").read_text(encoding="utf-8")
    return {name: DatasetSpec(spec, name=name) for name, spec in yaml.safe_load(text).items()}


def dataset_names() -> list[str]:
    return list(_registry())


def dataset_spec(name: str) -> DatasetSpec:
    try:
        return _registry()[name]
    except KeyError:
        raise UnseenError(f"unknown dataset {name!r}; known: {', '.join(_registry())}") from None


# how a user points at the data, in every message about missing data
POINT_AT_DATA = "point --data-dir or $UNSEEN_DATA at the data directory (the folder holding nlp/, images/ and str/)"


def default_data_dirs() -> list[Path]:
    """Where the data directory is looked for without --data-dir or $UNSEEN_DATA: ../shared/data
    from the working directory, then beside this checkout."""
    checkout = Path(__file__).resolve().parents[4]  # <checkout>/src/unseen/core/data/__init__.py
    checkout_sibling = checkout.parent / "shared" / "data"
    return list(dict.fromkeys([Path.cwd().parent / "shared" / "data", checkout_sibling]))


def resolve_data_dir(data_dir: str | Path | None = None) -> Path | None:
    """--data-dir, else $UNSEEN_DATA, else ../shared/data (from the working directory or
    from this checkout) when it exists; None means "no local data, use the hub".

    A directory given explicitly (argument or $UNSEEN_DATA) must exist: a typo fails at once."""
    explicit = data_dir or os.environ.get("UNSEEN_DATA")
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_dir():
            raise DataError(f"data directory does not exist: {path} (from --data-dir or $UNSEEN_DATA); {POINT_AT_DATA}")
        if not os.access(path, os.R_OK | os.X_OK):
            raise DataError(f"data directory is not readable: {path} (from --data-dir or $UNSEEN_DATA)")
        return path
    for candidate in default_data_dirs():
        if candidate.is_dir():
            return candidate
    return None


def _where_looked(specs: list[DatasetSpec], data_dir) -> str:
    base = resolve_data_dir(data_dir)
    if base is not None:
        return f"looked in {base / specs[0].path}" if len(specs) == 1 else f"looked under {base}"
    return f"no data directory (no --data-dir, no $UNSEEN_DATA, none at {' or '.join(map(str, default_data_dirs()))})"


def check_available(names, data_dir: str | Path | None = None) -> None:
    """Fail at once, before any slow step, when a registered dataset has neither a local copy nor a
    reachable hub copy: one DataError naming every such dataset, where it looked and how to point
    at the data. Names that are not registered (paths, hub ids) are left to `load_dataset`."""
    registry = _registry()
    missing = [registry[name] for name in dict.fromkeys(names) if name in registry
               and _local_root(registry[name], data_dir) is None]
    if not missing:
        return
    offline = [spec for spec in missing if "hub" not in spec]
    if len(offline) < len(missing) and not hub_reachable():
        offline = missing
    if offline:
        not_on_hub = [spec.name for spec in offline if "hub" not in spec]
        verb = "is" if len(not_on_hub) == 1 else "are"
        reasons = [f"{', '.join(not_on_hub)} {verb} not on the hub"] if not_on_hub else []
        if len(not_on_hub) < len(offline):
            reasons.append("the Hugging Face hub is off (HF_HUB_OFFLINE=1)" if _hub_offline()
                           else "the Hugging Face hub is not reachable")
        listed = ", ".join(spec.name for spec in offline)
        raise DataError(f"no local copy of {listed} ({_where_looked(offline, data_dir)}); {' and '.join(reasons)}; "
                        f"{POINT_AT_DATA}")


def split_names(name: str, data_dir: str | Path | None = None) -> list[str]:
    spec = dataset_spec(name)
    if spec.kind == "jsonl":
        root = _local_root(spec, data_dir)
        if root is None:
            return []
        return sorted(p.stem for p in root.glob("*.jsonl"))
    splits = spec["splits"]
    return list(splits)


def split_size(name: str, split: str, data_dir: str | Path | None = None) -> int:
    """Number of records, counted without decoding anything."""
    spec = dataset_spec(name)
    if spec.kind == "jsonl":
        path = _split_file(spec, split, data_dir)
        with path.open(encoding="utf-8") as handle:
            return sum(1 for line in handle if line.strip())
    return len(load_dataset(name, split, data_dir=data_dir))


def load_dataset(name_or_path: str, split: str | None = None, *, data_dir: str | Path | None = None) -> RecordSet:
    """Records of one split, by registered name, local path, or (online) hub id."""
    if name_or_path not in _registry():
        path = Path(name_or_path).expanduser()
        if path.exists():
            return _load_path(path, split)
        if "/" in name_or_path and hub_reachable():
            return _load_hub({"path": name_or_path}, split or "train", name_or_path)
        if "/" in name_or_path and not _hub_offline():
            raise DataError(f"{name_or_path}: no such file or folder, and the Hugging Face hub is not reachable "
                            "to load it as a hub id")
        dataset_spec(name_or_path)  # raises the "unknown dataset" error
    spec = dataset_spec(name_or_path)
    root = _local_root(spec, data_dir)
    if root is None:
        if "hub" not in spec or not hub_reachable():
            check_available([spec.name], data_dir)  # raises: says where it looked and how to point at the data
        return _load_hub(spec["hub"], split or "train", spec.name)
    kind = spec.kind
    if kind == "jsonl":
        path = _split_file(spec, split, data_dir)
        records = read_jsonl(path, spec.get("fields", ()))
        return RecordSet.from_list(records, name=f"{spec.name}/{split}", features=_text_features(root))
    split = _check_split(spec, split)
    if kind == "imagefolder":
        return read_imagefolder(root / split, spec.get("class_names"))
    if kind == "wordcrops":
        return read_labels_tsv(root / spec["splits"][split])
    if kind == "npz":
        entry = spec["splits"][split]
        return read_npz_images(root / entry["file"], entry["x"], entry["y"], spec["class_names"])
    raise UnseenError(f"datasets.yaml: dataset {spec.name!r} has unknown kind {kind!r}")


def fingerprint(name: str, split: str, data_dir: str | Path | None = None) -> str:
    """A short content hash of a split's files, for run manifests."""
    spec = dataset_spec(name)
    root = _local_root(spec, data_dir)
    if root is None:
        return "hub"
    if spec.kind == "jsonl":
        files = [_split_file(spec, split, data_dir)]
    elif spec.kind == "wordcrops":
        files = [root / spec["splits"][split]]
    elif spec.kind == "npz":
        files = [root / spec["splits"][split]["file"]]
    else:  # image folders: hash the sorted file list and sizes, not every pixel
        listing = sorted(f"{p.relative_to(root)}:{p.stat().st_size}" for p in (root / split).rglob("*") if p.is_file())
        return hashlib.sha256("\n".join(listing).encode()).hexdigest()[:16]
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false", "False")


@cache
def _hub_answers() -> bool:
    import socket
    from urllib.parse import urlsplit

    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True  # the way out goes through a proxy: let the hub client try
    endpoint = urlsplit(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        with socket.create_connection((endpoint.hostname, endpoint.port or 443), timeout=3):
            return True
    except OSError:
        return False


def hub_reachable() -> bool:
    """Whether the Hugging Face hub can be asked at all: not switched off (HF_HUB_OFFLINE) and its
    host answers within 3 s. Checked once per process, so that a machine without network fails
    at once instead of through the hub client's retries (about 25 s)."""
    return not _hub_offline() and _hub_answers()


def _local_root(spec: DatasetSpec, data_dir) -> Path | None:
    base = resolve_data_dir(data_dir)
    if base is None:
        return None
    root = base / spec.path
    return root if root.exists() else None


def _check_split(spec: DatasetSpec, split: str | None) -> str:
    splits = list(spec["splits"])
    if split is None and len(splits) == 1:
        return splits[0]
    if split not in splits:
        raise DataError(f"dataset {spec.name!r} has no split {split!r}; splits: {', '.join(splits)}")
    return split


def _split_file(spec: DatasetSpec, split: str | None, data_dir) -> Path:
    root = _local_root(spec, data_dir)
    if root is None:
        raise DataError(f"dataset {spec.name!r}: no local copy ({_where_looked([spec], data_dir)}); {POINT_AT_DATA}")
    available = sorted(p.stem for p in root.glob("*.jsonl"))
    if split is None and len(available) == 1:
        split = available[0]
    if split not in available:
        raise DataError(f"dataset {spec.name!r} has no split {split!r}; splits: {', '.join(available)}")
    return root / f"{split}.jsonl"


def _text_features(root: Path) -> dict:
    meta = root / "meta.json"
    if not meta.exists():
        return {}
    try:
        info = json.loads(meta.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{meta}: malformed JSON ({err.msg})") from None
    label_names = info.get("label_names")
    return {info.get("label_field", "label"): label_names} if label_names else {}


def _load_path(path: Path, split: str | None) -> RecordSet:
    if path.is_file() and path.suffix == ".jsonl":
        return RecordSet.from_list(read_jsonl(path), name=str(path))
    if path.is_file() and path.name.endswith(".tsv"):
        return read_labels_tsv(path)
    if path.is_dir():
        if (path / "data.mdb").exists():
            return read_lmdb(path)
        if split and (path / f"{split}.jsonl").exists():
            return RecordSet.from_list(read_jsonl(path / f"{split}.jsonl"), name=f"{path}/{split}")
        if split and (path / split).is_dir():
            path = path / split
            if (path / "data.mdb").exists():
                return read_lmdb(path)
        if (path / "labels.tsv").exists():
            return read_labels_tsv(path / "labels.tsv")
        return read_imagefolder(path)
    raise DataError(f"{path}: not a .jsonl file, labels.tsv, LMDB or image folder")


def _load_hub(hub: dict, split: str, name: str) -> RecordSet:
    import datasets

    if _hub_offline():
        raise DataError(f"dataset {name!r}: no local copy and the hub is off (HF_HUB_OFFLINE=1); {POINT_AT_DATA}")
    try:
        table = datasets.load_dataset(hub["path"], hub.get("name"), split=split)
    except Exception as err:  # the hub raises many types; the user needs the one line
        raise DataError(f"dataset {name!r}: could not load {hub['path']} from the hub ({err})") from None
    features = {key: feature.names for key, feature in table.features.items() if hasattr(feature, "names")}
    return RecordSet(len(table), lambda i: dict(table[i]), name=f"{name}/{split}", features=features)
