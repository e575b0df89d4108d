#!/usr/bin/env python
"""Mutation check: inject known bugs one at a time and check that the tests meant to catch each one fail.

    .venv/bin/python scripts/mutation_check.py            # every mutation (about a minute on 2 cores)
    .venv/bin/python scripts/mutation_check.py a c        # only these

Each mutation replaces an exact piece of source text in a temporary copy of src/ and tests/ (the working tree is
never touched, so an interrupted run leaves nothing behind) and runs only the test files named for it, importing
the copy's package. First the same files run on the unmutated copy and must pass; then every mutation must make
pytest fail (exit status 1). Prints a table mutation -> caught or not, and exits non-zero when one is not caught,
when the unmutated tests fail, or when a mutation's text is no longer in its file (the code changed: update the
mutation here, with the test that catches it).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 300  # one pytest run


@dataclass(frozen=True)
class Mutation:
    key: str
    name: str
    file: str  # relative to the repository root
    old: str  # must occur exactly once in the file
    new: str
    tests: tuple[str, ...]  # test files (or node ids) that must fail


MUTATIONS = [
    Mutation("a", "unpaired resampling (tuned side drawn on its own)", "src/unseen/instruct/paired.py",
             '"tuned_draws": np.mean([_metric(metric, run[k], rows) for run in after for k in names], axis=0),',
             '"tuned_draws": np.mean([_metric(metric, run[k], rng.integers(0, n, size=rows.shape)) '
             "for run in after for k in names], axis=0),",
             ("tests/test_instruct_paired.py",)),
    Mutation("b1", "IoU matching off by one (>= 0.5)", "src/unseen/scenetext/icdar.py",
             "_iou(gt_polygon, det_polygon) > IOU_CONSTRAINT:",
             "_iou(gt_polygon, det_polygon) >= IOU_CONSTRAINT:",
             ("tests/test_scenetext_icdar.py",)),
    Mutation("b2", "IoU threshold 0.4 instead of 0.5", "src/unseen/scenetext/icdar.py",
             "IOU_CONSTRAINT = 0.5", "IOU_CONSTRAINT = 0.4",
             ("tests/test_scenetext_icdar.py",)),
    Mutation("c", "don't-care regions not honoured", "src/unseen/scenetext/icdar.py",
             "dont_care_polygons = [polygon for polygon, is_care in zip(gt_polygons, care) if not is_care]",
             "dont_care_polygons = []",
             ("tests/test_scenetext_icdar.py",)),
    Mutation("d1", "batch lexicon off by default (Recognizer.read)", "src/unseen/scenetext/reader.py",
             "def read(self, images, pool=None, batch_lexicon: bool = True)",
             "def read(self, images, pool=None, batch_lexicon: bool = False)",
             ("tests/test_scenetext_batch_lexicon.py",)),
    Mutation("d2", "batch lexicon off by default (DEFAULT_BATCH_LEXICON)", "src/unseen/scenetext/batch_lexicon.py",
             "DEFAULT_BATCH_LEXICON = BatchLexicon()", "DEFAULT_BATCH_LEXICON = None",
             ("tests/test_scenetext_batch_lexicon.py",)),
    # ---- (e) a cache that ignores the model: a second reader must never get the first one's raw readings
    Mutation("e", "raw-reading cache keyed by the photo only (not the reader)", "src/unseen/scenetext/raw_cache.py",
             'f"{self.reader.fingerprint}|{file_digest(path)}"', 'f"{file_digest(path)}"',
             ("tests/test_scenetext_v6.py::test_raw_cache_is_keyed_by_reader_and_photo_content",)),
]


def fail(message: str) -> None:
    print(f"mutation check: {message}", file=sys.stderr)
    sys.exit(1)


def data_dir() -> str:
    """The data directory as `unseen` resolves it here; the copy is elsewhere, so the tests get it by $UNSEEN_DATA."""
    if os.environ.get("UNSEEN_DATA"):
        return os.environ["UNSEEN_DATA"]
    sys.path.insert(0, str(REPO / "src"))
    from unseen.core.data import resolve_data_dir

    found = resolve_data_dir()
    if found is None:
        fail("no data directory (set $UNSEEN_DATA): the tests the mutations need read it")
    return str(found)


def run_pytest(copy: Path, env: dict, tests: tuple[str, ...]) -> tuple[int, list[str], str]:
    """(exit status, failed test names, output tail) of pytest on ``tests`` in the copy."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests]
    try:
        done = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return -1, [], f"timed out after {TIMEOUT_S} s"
    output = done.stdout + done.stderr
    failed = re.findall(r"^(?:FAILED|ERROR) \S+::(\S+)", output, flags=re.M)
    return done.returncode, failed, "\n".join(output.strip().splitlines()[-15:])


def main(selected: list[str]) -> int:
    mutations = [m for m in MUTATIONS if not selected or m.key in selected]
    unknown = set(selected) - {m.key for m in MUTATIONS}
    if unknown:
        fail(f"unknown mutation {', '.join(sorted(unknown))}; known: {', '.join(m.key for m in MUTATIONS)}")
    for m in mutations:  # every text checked before anything runs
        path = REPO / m.file
        count = path.read_text(encoding="utf-8").count(m.old) if path.is_file() else 0
        if count != 1:
            where = "not found in" if count == 0 else f"found {count} times in"
            fail(f"mutation ({m.key}) {m.name}: its text is {where} {m.file} (the code changed: update "
                 f"scripts/mutation_check.py)")
    started = time.monotonic()
    env = dict(os.environ, UNSEEN_DATA=data_dir(), UNSEEN_REQUIRE_DATA="1", PYTHONDONTWRITEBYTECODE="1")
    with tempfile.TemporaryDirectory(prefix="unseen-mutation-") as tmp:
        copy = Path(tmp)
        ignore = shutil.ignore_patterns("__pycache__", ".pytest_cache", "*.pyc")
        for folder in ("src", "tests"):
            shutil.copytree(REPO / folder, copy / folder, ignore=ignore)
        shutil.copy2(REPO / "pyproject.toml", copy / "pyproject.toml")  # pytest's settings and rootdir
        env["PYTHONPATH"] = os.pathsep.join([str(copy / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])
        where = subprocess.run([sys.executable, "-c", "import unseen; print(unseen.__file__)"], cwd=copy, env=env,
                               capture_output=True, text=True).stdout.strip()
        if not where.startswith(str(copy)):
            fail(f"the tests would import unseen from {where or '(nowhere)'}, not from the copy {copy}")

        files = tuple(dict.fromkeys(t for m in mutations for t in m.tests))
        status, failed, tail = run_pytest(copy, env, files)
        if status != 0:
            print(tail, file=sys.stderr)
            fail(f"the tests fail without any mutation (exit {status}; {', '.join(failed) or 'see above'}): "
                 "no mutation can be judged")

        rows = []
        for m in mutations:
            path = copy / m.file
            original = path.read_text(encoding="utf-8")
            path.write_text(original.replace(m.old, m.new), encoding="utf-8")
            try:
                status, failed, tail = run_pytest(copy, env, m.tests)
            finally:
                path.write_text(original, encoding="utf-8")
            caught = status == 1 and bool(failed)
            verdict = "caught" if caught else "NOT CAUGHT" if status == 0 else f"ERROR (exit {status})"
            rows.append((f"({m.key}) {m.name}", verdict, ", ".join(failed) if caught else tail.splitlines()[-1:]))
            if not caught:
                print(f"({m.key}) {m.name}: {verdict}\n{tail}", file=sys.stderr)

    width = max(len(r[0]) for r in rows)
    print(f"{'mutation':<{width}}  {'result':<10}  failing tests")
    for name, verdict, by in rows:
        print(f"{name:<{width}}  {verdict:<10}  {by if isinstance(by, str) else ' '.join(by)}")
    missed = [name for name, verdict, _ in rows if verdict != "caught"]
    print(f"{len(rows) - len(missed)} of {len(rows)} mutations caught in {time.monotonic() - started:.0f} s")
    if missed:
        print(f"mutation check: not caught: {'; '.join(missed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
