"""CUCaNet with a one-band HrMSI: one change at a time on the tests' synthetic scene.

The tests' 64×64×31 low-rank scene (``tests/_netcase.toy_scene``), s = 4, ``gauss_fwhm`` PSF, an HrMSI
of one or more Gaussian bands, CUCaNet ``fast`` in blind mode (or oracle) for a fixed number of
iterations at one thread; prints one JSON line: PSNR over the whole cube, 10·log10(1 / MSE) with the
output clipped to [0, 1] (the scene's maximum is 1; not the per-band-peak PSNR of the reports), and the
row's notes (flat or saturated output bands). The table in ``docs/methods.md`` (CUCaNet, "Stuck
abundance heads") and ``results.jsonl`` here come from these runs.

Usage (from the repository root)::

    python reports/cucanet_one_band/probe.py VARIANT [SENSOR] [ITERATIONS] [JSON_OVERRIDES]

VARIANT is a label, except ``oracle``, which runs in oracle mode; SENSOR a ``gauss:...`` spec
(default ``gauss:550:200``); JSON_OVERRIDES CUCaNet parameters, e.g.
``'{"lr_mult": {"msi_encoder": 0.05, "psf": 0.2, "attention": 0.2, "srf": 0.2}}'``.
"""
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

from _netcase import ctx_for, toy_scene  # noqa: E402

from hsibench.degrade.degradation import Degradation  # noqa: E402
from hsibench.methods import create_method  # noqa: E402


def main(argv):
    variant = argv[0]
    sensor = argv[1] if len(argv) > 1 else "gauss:550:200"
    iters = int(argv[2]) if len(argv) > 2 else 300
    over = json.loads(argv[3]) if len(argv) > 3 else {}
    torch.set_num_threads(1)
    X, wl = toy_scene()
    obs = Degradation(4, "gauss_fwhm", sensor).apply(X, wl)
    ctx = ctx_for(obs, wl, "oracle" if variant == "oracle" else "blind", iters)
    t = time.time()
    hr, info = create_method("cucanet", "fast", **over).fuse(obs.lr, obs.msi, ctx)
    print(json.dumps({"variant": variant, "sensor": sensor, "iterations": iters, "over": over,
                      "psnr": round(float(10 * np.log10(1.0 / np.mean((X - np.clip(hr, 0, 1)) ** 2))), 2), "wall_s": round(time.time() - t, 1),
                      "notes": [n[:80] for n in info.get("notes") or []]}))


if __name__ == "__main__":
    main(sys.argv[1:])
