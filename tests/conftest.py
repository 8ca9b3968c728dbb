"""Shared test fixtures: offscreen Qt, paths to bundled and optional shared data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

TESTS = Path(__file__).resolve().parent
DATA = TESTS / "data"
ROOT = TESTS.parent
SHARED_DATASETS = ROOT.parent / "shared" / "datasets"


@pytest.fixture
def data_dir() -> Path:
    """Folder of the small captures committed with the tests."""
    return DATA


@pytest.fixture
def shared_datasets() -> Path:
    """The development corpus beside the checkout; the test is skipped, with the reason
    printed by ``pytest -ra``, on machines that do not have it."""
    if not (SHARED_DATASETS / "labels.csv").exists():
        pytest.skip(f"optional corpus not present at {SHARED_DATASETS}")
    return SHARED_DATASETS


@pytest.fixture(scope="session")
def tiny_eset_data():
    """The small synthetic ESeT training corpus (``test_model_eset_support``)."""
    from tests.test_model_eset_support import tiny_training

    return tiny_training()


@pytest.fixture(scope="session")
def tiny_eset(tiny_eset_data):
    """A tiny ESeT trained once on ``tiny_eset_data`` for the whole run; tests reset it."""
    from tests.test_model_eset_support import tiny_trained

    return tiny_trained(tiny_eset_data)


@pytest.fixture(autouse=True)
def _unfreeze_garbage_collector():
    """The desktop app exempts its long-lived objects from the cyclic collector
    (``jixiaoan.ui.heap``); each test starts and ends with nothing exempt."""
    import gc

    gc.unfreeze()
    yield
    gc.unfreeze()
