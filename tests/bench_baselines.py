"""Timing of every classical method on a 512×512×31 synthetic scene at s = 8 (pytest-benchmark).

Not collected by the default test run (file name); clear pyproject's ``--benchmark-skip``:
    OMP_NUM_THREADS=1 python -m pytest tests/bench_baselines.py -o addopts="" --benchmark-columns=min,mean,rounds
Each result records the machine load and the PSNR reached, so timings are read in context.
"""
import os

import pytest

from hsibench.data import synthetic_scene
from hsibench.degrade import Degradation
from hsibench.methods import Context, create_method, list_methods
from hsibench.metrics import psnr

SLOW = {"cnmf", "hysure", "cstf"}


@pytest.fixture(scope="module")
def case():
    scene = synthetic_scene(512, 31, endmembers=6, seed=0)
    obs = Degradation(8, "gauss_sigma0.5", "landsat8_bgr").apply(scene.cube, scene.wavelengths)
    return scene, obs


@pytest.mark.parametrize("name", ["upsample"] + list_methods("classical"))
def test_classical_method_time(benchmark, case, name):
    scene, obs = case
    method = create_method(name)
    ctx = Context.from_truth(scale=8, mode="oracle", psf=obs.psf, srf=obs.srf)
    rounds = 1 if name in SLOW else 3
    result = benchmark.pedantic(method, args=(obs.lr, obs.msi, ctx), rounds=rounds, iterations=1)
    benchmark.extra_info.update(
        psnr=round(float(psnr(scene.cube, result.hr)), 2),
        loadavg_1min=os.getloadavg()[0],
        threads=os.environ.get("OMP_NUM_THREADS", "default"),
    )
