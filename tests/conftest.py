"""Tests run offline: nothing may depend on a download from the hub.

Data: every test finds the data directory one way, through ``unseen.core.data.resolve_data_dir``
($UNSEEN_DATA, else ../shared/data from the working directory or beside the checkout):

    def test_x(data_dir): ...                      # the data directory (a Path)
    def test_y(data_path):                         # one file or folder inside it
        labels = data_path("str/iiit5k/test/labels.tsv")
    @pytest.mark.needs_data                        # the data directory, for a test that reads it by name
    @pytest.mark.needs_data("str/ic15_e2e")        # ... and these paths inside it

(``shared_data`` is the old name of ``data_dir``.) Where the data is missing such a test is
skipped, saying where it looked; with UNSEEN_REQUIRE_DATA=1 (set by .ci/run) it fails instead,
so that a run which skipped the data tests cannot pass. The same holds for a module or model asset that the
test install provides (``missing_module``); only optional extras (ray, open_clip) skip under CI.
"""

import os
import shutil
from pathlib import Path

import pytest

from unseen.core.data import POINT_AT_DATA, default_data_dirs, resolve_data_dir
from unseen.core.errors import DataError

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

REPO = Path(__file__).resolve().parents[1]
REQUIRE_DATA = "UNSEEN_REQUIRE_DATA"


def missing_data(what: str):
    """Skip the running test because data is missing, or fail it under UNSEEN_REQUIRE_DATA=1."""
    message = f"test data missing: {what}; {POINT_AT_DATA.replace('--data-dir or ', '')}"
    if os.environ.get(REQUIRE_DATA) == "1":
        pytest.fail(f"{message} ({REQUIRE_DATA}=1: a test that needs the data fails instead of skipping)",
                    pytrace=False)
    pytest.skip(message)


def missing_module(name: str, install: str):
    """Skip the running test because ``name`` (a module or asset the test install provides) is missing, or fail
    it under UNSEEN_REQUIRE_DATA=1: CI installs it, so its absence there is a broken setup, not a skip."""
    message = f"{name} is not installed ({install})"
    if os.environ.get(REQUIRE_DATA) == "1":
        pytest.fail(f"{message} ({REQUIRE_DATA}=1: the test install provides it)", pytrace=False)
    pytest.skip(message)


def _data_dir() -> Path:
    try:
        base = resolve_data_dir()
    except DataError:  # $UNSEEN_DATA names a folder that is not there (or cannot be read)
        base = None
    if base is None and os.environ.get("UNSEEN_DATA"):
        missing_data(f"$UNSEEN_DATA={os.environ['UNSEEN_DATA']} is not a readable directory")
    if base is None:
        missing_data("no data directory ($UNSEEN_DATA is not set; looked at "
                     f"{', '.join(map(str, default_data_dirs()))})")
    return base


def _data_path(relative: str) -> Path:
    path = _data_dir() / relative
    if not path.exists():
        missing_data(f"{path} does not exist")
    return path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The data directory, as `unseen` itself resolves it."""
    return _data_dir()


@pytest.fixture(scope="session")
def shared_data(data_dir) -> Path:
    """The data directory (the older name of `data_dir`)."""
    return data_dir


@pytest.fixture(scope="session")
def data_path():
    """``data_path("str/iiit5k/test")``: a path inside the data directory that must exist."""
    return _data_path


def pytest_configure(config):
    config.addinivalue_line("markers", "needs_data(*paths): reads the data directory (and these paths inside it)")


def pytest_sessionstart(session):
    """Under UNSEEN_REQUIRE_DATA=1 with no data directory at all: one clear message, not one per test."""
    if os.environ.get(REQUIRE_DATA) == "1":
        try:
            _data_dir()
        except pytest.fail.Exception as missing:
            pytest.exit(str(missing), returncode=1)


def pytest_runtest_setup(item):
    for marker in item.iter_markers("needs_data"):
        _data_dir()
        for relative in marker.args:
            _data_path(relative)


@pytest.fixture
def unseen_cli():
    """Path of the installed `unseen` command."""
    path = shutil.which("unseen", path=str(REPO / ".venv" / "bin")) or shutil.which("unseen")
    assert path, "the unseen command is not installed"
    return path


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors: one thread avoids waiting at OpenMP barriers on a busy 2-core machine (10x here).
    A module opts in with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
