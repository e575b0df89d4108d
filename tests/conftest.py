"""Tests run offline: nothing may depend on a download from the hub."""

import os
import shutil
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


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
