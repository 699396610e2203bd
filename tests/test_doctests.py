"""The Examples sections of the public API's docstrings run as doctests (part of the default run)."""
from __future__ import annotations

import doctest
import importlib
import os

import pytest

#: Modules whose docstring examples are part of the documented API.
MODULES = [
    "hsibench.degrade.geometry",
    "hsibench.degrade.psf",
    "hsibench.degrade.srf",
    "hsibench.degrade.spatial",
    "hsibench.degrade.degradation",
    "hsibench.metrics.presets",
    "hsibench.methods.base",
    "hsibench.methods.registry",
    "hsibench.data.loaders",
    "hsibench.data.synthetic",
    "hsibench.study.runner",
    "hsibench.report.render",
    "hsibench.report.findings",
    "hsibench.report.plots",
    "hsibench.report.stats",
    "hsibench.report.tables",
    "hsibench.study.executors",
]


@pytest.fixture
def _keep_thread_settings():
    """run_study pins this process's threads (environment, torch, Numba); put them back afterwards."""
    import numba
    import torch

    env = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                          "NUMBA_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")}
    torch_threads, numba_threads = torch.get_num_threads(), numba.get_num_threads()
    yield
    for k, v in env.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    torch.set_num_threads(torch_threads)
    numba.set_num_threads(numba_threads)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, _keep_thread_settings):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"


def test_every_listed_api_function_has_an_example():
    from hsibench.data import load_scene, synthetic_scene
    from hsibench.degrade import Degradation, blur_decimate, blur_decimate_adjoint, simulate
    from hsibench.methods import Context, create_method, run_method
    from hsibench.metrics import compute_metrics
    from hsibench.report import make_report
    from hsibench.study import run_study

    for obj in (compute_metrics, blur_decimate, blur_decimate_adjoint, Degradation, simulate, Context, create_method,
                run_method, load_scene, synthetic_scene, run_study, make_report):
        doc = obj.__doc__ or ""
        for section in ("Parameters", "Returns" if not isinstance(obj, type) else "Examples", "Raises", "Examples"):
            assert f"{section}\n" in doc, f"{obj.__qualname__} lacks a {section} section"
        assert obj.__module__ in MODULES, obj.__module__
