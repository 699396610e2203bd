"""Test helpers for study runs in subprocesses and on clusters: a sleeping test-only method in a
plugin module (importable by spawned workers through PYTHONPATH / sys.path), a driver script, a study."""
from __future__ import annotations

import os
import time
from pathlib import Path

PLUGIN = '''"""Test-only method: leaves a marker file per start, sleeps, waits for a gate file if it has one
(so a test decides when a run may finish), then upsamples."""
import os
import time

from hsibench.degrade.spatial import upsample
from hsibench.methods import Method, register


@register
class Sleepy(Method):
    name = "_test_sleepy"
    family = "floor"
    modes = ("blind",)
    presets = {"default": {"sleep": 0.5, "marker": "", "gate": "", "tag": 0}}

    def fuse(self, lr, msi, ctx):
        if self.params["marker"]:
            os.makedirs(self.params["marker"], exist_ok=True)
            open(os.path.join(self.params["marker"], f"{os.getpid()}-{time.time_ns()}"), "w").close()
        time.sleep(self.params["sleep"])
        deadline = time.time() + 300
        while self.params["gate"] and not os.path.exists(self.params["gate"]):
            if time.time() > deadline:
                raise TimeoutError(f"gate {self.params['gate']} never opened")
            time.sleep(0.02)
        return upsample(lr, ctx.scale, kind="cubic", boundary=ctx.boundary)
'''

DRIVER = '''import sys

import hsibench_test_plugin  # noqa: F401 - registers the test method (also in spawned pool workers)
from hsibench.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
'''


def write_plugin(folder: Path) -> Path:
    """A module registering ``_test_sleepy`` and a driver running the CLI with it; returns the driver.

    The method lives only in the subprocesses that import it (the driver, and pool workers, which
    re-import the driver as their main module), so this test process's registry is untouched.
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hsibench_test_plugin.py").write_text(PLUGIN)
    driver = folder / "driver.py"
    driver.write_text(DRIVER)
    return driver


def sleepy_study(path: Path, n_scenes: int, sleep: float, marker: Path | None = None, seeds=(0,),
                 gate: Path | None = None) -> Path:
    scenes = ", ".join(f'"synthetic:16x8:{i}"' for i in range(n_scenes))
    path.write_text(
        f'name = "sleepy"\nscenes = [{scenes}]\nseeds = {list(seeds)}\nsave_outputs = "none"\n'
        '[grid]\nscale = 2\nkernel = "box"\nsensor = "landsat8_bgr"\n'
        f'[[methods]]\nname = "_test_sleepy"\nmodes = ["blind"]\nparams = {{ sleep = {sleep}, marker = "{marker or ""}", gate = "{gate or ""}" }}\n'
    )
    return path


def env_with_plugin(plugin_dir: Path) -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", NUMBA_NUM_THREADS="1",
                PYTHONPATH=os.pathsep.join([str(plugin_dir), os.environ.get("PYTHONPATH", "")]))


def wait_for(cond, timeout=180.0, what="condition"):
    deadline = time.time() + timeout
    while not cond():
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
