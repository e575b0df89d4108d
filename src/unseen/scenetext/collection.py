"""Reading a whole photo collection: three steps, each one a function, so that a run survives bad files and
interruptions, holds one photo's pixels at a time, and can run the same steps on a cluster.

1. ``read_raw``: per photo, detection and one recognizer pass per line (a RawPhoto: geometry and CTC
   log-probabilities, no pixels), cached on disk by photo content and reader fingerprint (raw_cache.py). A photo
   that cannot be decoded is a ``Skipped`` entry, not an error (``strict=True``: it raises).
2. ``collection_lexicon``: over the collection, the batch lexicon, the union of each photo's sure words
   (``PhotoReader.sure_words``): a small sorted list of strings.
3. ``decode``: per photo, its words cut and adapted again with the collection's words: the same words as
   ``PhotoReader.read`` on all photos at once (tests/test_scenetext_collection.py).

A run killed at any point and run again reads only the photos whose RawPhoto is not yet cached, and writes the
same output byte for byte: steps 2 and 3 are deterministic functions of the cached RawPhotos.

    reader = PhotoReader.load()
    raws = list(read_raw(reader, paths, cache_dir))                 # step 1, per photo
    words = collection_lexicon(reader, raws)                         # step 2, over the collection
    for reading in decode(reader, raws, words, lexicon=...):         # step 3, per photo
        print(reading.as_dict())

``read_collection`` chains them without keeping any RawPhoto in memory (each is read back from the cache for step
3): memory stays flat in the number of photos, beyond their words.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from unseen.core.errors import DataError
from unseen.scenetext.raw_cache import RawCache
from unseen.scenetext.reading import PhotoReading, RawPhoto

__all__ = ["DecodeBatches", "ReadRawBatches", "Skipped", "collection_lexicon", "decode", "default_cache_dir",
           "read_collection", "read_on_ray", "read_raw"]


@dataclass
class Skipped:
    """A photo that could not be read: its path and why (one line)."""

    path: str
    error: str

    def as_dict(self) -> dict:
        return {"path": self.path, "error": self.error}


def default_cache_dir() -> Path:
    """Where RawPhotos are cached unless told otherwise: $UNSEEN_CACHE/raw (default ~/.cache/unseen/raw)."""
    return Path(os.environ.get("UNSEEN_CACHE", Path.home() / ".cache" / "unseen")).expanduser() / "raw"


def _skipped(path, err: DataError) -> Skipped:
    """The reason without the path (the entry names it): "empty file (0 bytes)", "cannot decode image (...)"."""
    if os.path.getsize(path) == 0:
        return Skipped(str(path), "empty file (0 bytes)")
    reason = str(err).splitlines()[0].removeprefix(f"{path}: ").replace(f" '{path}'", "")
    return Skipped(str(path), reason)


def read_raw(reader, paths: Iterable, cache_dir=None, *, strict: bool = False,
             progress: Callable[[RawPhoto | Skipped], None] | None = None,
             stats: dict | None = None) -> Iterator[RawPhoto | Skipped]:
    """Step 1, per photo: its RawPhoto (from ``cache_dir`` where cached, else detected, read and cached), or a
    Skipped entry for a photo that cannot be decoded (``strict``: raise its DataError instead). One per path, in
    order, as they are read. ``stats``: a dict that gets ``cached`` and ``read`` counts."""
    cache = RawCache(cache_dir, reader) if cache_dir is not None else None
    for path in paths:
        try:
            raw = cache.read(path) if cache is not None else reader.detect_and_read(path)
        except DataError as err:
            if strict:
                raise
            raw = _skipped(path, err)
        except FileNotFoundError:
            if strict:
                raise DataError(f"{path}: photo not found") from None
            raw = Skipped(str(path), "photo not found")
        if stats is not None and cache is not None:
            stats.update(cached=cache.hits, read=cache.misses)
        if progress:
            progress(raw)
        yield raw


def collection_lexicon(reader, raws: Iterable[RawPhoto | Skipped | list[str]], batch_lexicon=True) -> list[str]:
    """Step 2, over the collection: the batch lexicon, the sorted union of each photo's sure words. ``raws`` may
    also hold each photo's sure words already taken (``reader.sure_words(raw)``), as a cluster's map step gives."""
    words: set[str] = set()
    for raw in raws:
        if isinstance(raw, RawPhoto):
            words.update(reader.sure_words(raw, batch_lexicon))
        elif isinstance(raw, (list, tuple, set)):
            words.update(raw)
    return sorted(words)


def decode(reader, raws: Iterable[RawPhoto | Skipped], words: Iterable[str], *, lexicon=None, vocabulary=None,
           pool=None, batch_lexicon=True) -> Iterator[PhotoReading | Skipped]:
    """Step 3, per photo: its words cut and adapted, with ``words`` (collection_lexicon) as its batch lexicon.
    Skipped entries pass through. Same words as ``reader.adapt`` on all the photos at once."""
    words = list(words)
    for raw in raws:
        if isinstance(raw, Skipped):
            yield raw
            continue
        yield reader.adapt([raw], lexicon=lexicon, vocabulary=vocabulary, pool=pool, batch_lexicon=batch_lexicon,
                           batch_words=words)[0]


def read_collection(reader, paths: list, cache_dir, *, strict: bool = False, progress=None, stats=None,
                    lexicon=None, vocabulary=None, pool=None, batch_lexicon=True) -> Iterator[PhotoReading | Skipped]:
    """The three steps on ``paths``, in order, holding no RawPhoto beyond its step: step 1 keeps each photo's
    sure words only, step 3 reads each RawPhoto back from ``cache_dir``. Yields a PhotoReading or a Skipped entry
    per path, in order, once every photo has been read (the batch lexicon needs them all)."""
    if cache_dir is None:
        raise ValueError("read_collection needs a cache folder (decode on RawPhotos kept in memory instead)")
    sure: list = []
    outcome: list = []  # per path: the Skipped entry, or None
    for raw in read_raw(reader, paths, cache_dir, strict=strict, progress=progress, stats=stats):
        if isinstance(raw, Skipped):
            outcome.append(raw)
        else:
            outcome.append(None)
            sure.append(reader.sure_words(raw, batch_lexicon))
    words = collection_lexicon(reader, sure)
    cache = RawCache(cache_dir, reader)

    def again():
        for path, skipped in zip(paths, outcome):
            if skipped is not None:
                yield skipped
                continue
            try:
                yield cache.read(path)
            except (DataError, FileNotFoundError) as err:  # changed or removed since step 1
                if strict:
                    raise
                yield Skipped(str(path), str(err).removeprefix(f"{path}: ") or "photo not found")

    yield from decode(reader, again(), words, lexicon=lexicon, vocabulary=vocabulary, pool=pool,
                      batch_lexicon=batch_lexicon)


# the same three steps on a Ray cluster (pip install 'unseen[ray]'; never needed otherwise) --------------------


class ReadRawBatches:
    """Ray Data step 1, one per worker (the reader loads once): path -> pickled RawPhoto and its sure words."""

    def __init__(self, cache_dir=None, batch_lexicon=True):
        from unseen.scenetext.photos import PhotoReader

        self.reader, self.cache_dir, self.batch_lexicon = PhotoReader.load(), cache_dir, batch_lexicon

    def __call__(self, batch: dict) -> dict:
        import pickle

        out: dict = {"index": [], "path": [], "raw": [], "sure": [], "error": []}
        for index, raw in zip(batch["index"], read_raw(self.reader, [str(p) for p in batch["path"]], self.cache_dir)):
            skipped = isinstance(raw, Skipped)
            out["index"].append(int(index))
            out["path"].append(raw.path)
            out["raw"].append(b"" if skipped else pickle.dumps(raw))
            out["sure"].append("" if skipped else "\n".join(self.reader.sure_words(raw, self.batch_lexicon)))
            out["error"].append(raw.error if skipped else "")
        return out


class DecodeBatches:
    """Ray Data step 3, one per worker: pickled RawPhoto + the collection's words -> the photo's JSON line."""

    def __init__(self, words, lexicon=None, lexicon_mode="auto", batch_lexicon=True):
        from unseen.scenetext.photos import PhotoReader

        self.reader, self.words, self.batch_lexicon = PhotoReader.load(), list(words), batch_lexicon
        self.lexicon, self.vocabulary = None, None
        if lexicon is not None:
            from unseen.scenetext.adapt import DOMAIN_LIST, GENERAL_LIST
            from unseen.scenetext.lexicon import load_lexicons

            self.lexicon = load_lexicons(lexicon)
            self.vocabulary = {"auto": None, "restrict": DOMAIN_LIST, "correct": GENERAL_LIST}[lexicon_mode]

    def __call__(self, batch: dict) -> dict:
        import json
        import pickle

        raws = [pickle.loads(raw) if not error else Skipped(str(path), str(error))
                for path, raw, error in zip(batch["path"], batch["raw"], batch["error"])]
        lines = [json.dumps(r.as_dict(), ensure_ascii=False)
                 for r in decode(self.reader, raws, self.words, lexicon=self.lexicon, vocabulary=self.vocabulary,
                                 batch_lexicon=self.batch_lexicon)]
        return {"index": [int(i) for i in batch["index"]], "json": lines}


def read_on_ray(paths: list, *, cache_dir=None, lexicon=None, lexicon_mode: str = "auto", batch_lexicon=True,
                workers: int = 2, batch_size: int = 4) -> list[str]:
    """The three steps as a Ray Data pipeline on the cluster ``ray.init()`` joined (or a local one): step 1
    ``map_batches`` (a pool of ``workers`` readers), step 2 an aggregate (the distinct sure words), step 3
    ``map_batches``. Returns each photo's JSON line in the order of ``paths``: what ``unseen str read --json``
    prints. ``cache_dir`` must be a folder every worker sees (or None: no cache)."""
    try:
        import ray
    except ImportError:
        from unseen.core.errors import UnseenError

        raise UnseenError("Ray is not installed: pip install 'unseen[ray]'") from None
    import ray.data

    if not ray.is_initialized():
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, logging_level="warning")
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    pool = ray.data.ActorPoolStrategy(size=workers)
    items = [{"index": i, "path": str(p)} for i, p in enumerate(paths)]
    raws = ray.data.from_items(items, override_num_blocks=max(1, min(len(items), workers * 4))).map_batches(
        ReadRawBatches, fn_constructor_kwargs={"cache_dir": cache_dir, "batch_lexicon": batch_lexicon},
        batch_size=batch_size, compute=pool, num_cpus=1).materialize()           # step 1, per photo
    words = sorted(raws.flat_map(lambda row: [{"word": w} for w in row["sure"].split("\n") if w])
                   .unique("word")) if raws.count() else []                             # step 2, over all
    lines = raws.map_batches(DecodeBatches, fn_constructor_kwargs={"words": words, "lexicon": lexicon,
                                                             "lexicon_mode": lexicon_mode,
                                                             "batch_lexicon": batch_lexicon},
                             batch_size=batch_size, compute=pool, num_cpus=1)   # step 3, per photo
    ordered = sorted(lines.iter_rows(), key=lambda row: row["index"])
    return [row["json"] for row in ordered]
