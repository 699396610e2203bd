"""Shared fixtures: the optional real-data folder and small deterministic cubes."""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def find_shared_data() -> Path | None:
    """Locate the real-data folder: $HSIBENCH_DATA, else ../shared/data beside the repo."""
    env = os.environ.get("HSIBENCH_DATA")
    for cand in ([Path(env)] if env else []) + [REPO_ROOT.parent / "shared" / "data"]:
        if cand.is_dir():
            return cand
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = find_shared_data()
    if path is None:
        pytest.skip("real data folder (../shared/data or $HSIBENCH_DATA) not present")
    return path


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Methods that cache artefacts (UAL's pre-training) write under a temporary folder, never
    into the user's ~/.cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("HSIBENCH_CACHE", str(tmp_path_factory.mktemp("hsibench-cache")))
    yield
    mp.undo()


@contextmanager
def registered_methods():
    """Register test-only :class:`~hsibench.methods.Method` classes inside a ``with`` block: yields a
    function to call with the class; every class registered through it is removed from the global
    registry when the block exits, also on an error (the body of the ``registered_method`` fixture)."""
    from hsibench.methods import register, unregister

    names = []

    def _register(cls):
        register(cls)
        names.append(cls.name)
        return cls

    try:
        yield _register
    finally:
        for name in names:
            unregister(name)


@pytest.fixture
def registered_method():
    """Register test-only :class:`~hsibench.methods.Method` classes for one test: call it with the
    class; every class registered this way is removed from the global registry after the test."""
    with registered_methods() as register:
        yield register


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


def pytest_collection_modifyitems(config, items):
    """Tests marked ``slow`` (real-data reproductions, full presets, extra kernel compilations)
    run only when the marker expression names them (``-m slow``, ``-m "slow or not slow"``)."""
    if "slow" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with -m slow")
    for item in items:
        if item.get_closest_marker("slow") is not None:
            item.add_marker(skip)
