"""Floating-point work of one training iteration of a net's preset on the nets benchmark case, and
the single-thread rates this CPU reaches on the operations that dominate it.

Usage: OMP_NUM_THREADS=1 python reports/fast_presets/flops.py [NET] [PRESET]   (default: eu2adl paper)

Counts the forward and backward FLOPs of the last training stage's iteration 3 with
``torch.utils.flop_counter.FlopCounterMode`` (per ATen op), then times a 3×3 convolution of the
net's largest layer shape (oneDNN) and a 2048² SGEMM at one thread, and prints the lower bound on
seconds per iteration if every FLOP ran at the convolution's rate.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import hsibench.nets  # noqa: F401  (registers the nets)
from hsibench.bench import nets_case
from hsibench.methods import Context, create_method


def rate(fn, flops: float, reps: int = 5) -> float:
    for _ in range(2):
        fn()
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    return flops * reps / (time.perf_counter() - t) / 1e9


def main(net: str = "eu2adl", preset: str = "paper") -> None:
    torch.set_num_threads(1)
    mod = sys.modules[f"hsibench.nets.{net}"]
    orig = mod.train
    counts: list[tuple[str, float, dict]] = []

    def wrapped(objective, groups, cfg, **kw):
        def obj(it):
            if it == 3:
                with FlopCounterMode(display=False) as fc:
                    sum(objective(it).values()).backward()
                ops = {str(k): float(v) for k, v in fc.get_flop_counts().get("Global", {}).items()}
                counts.append((kw.get("desc", "train"), float(fc.get_total_flops()), ops))
                for g in groups.values():
                    for p in g:
                        p.grad = None
            return objective(it)
        return orig(obj, groups, cfg, **kw)

    mod.train = wrapped
    with tempfile.TemporaryDirectory() as tmp:
        nets_case(Path(tmp) / "case.npz")
        d = np.load(Path(tmp) / "case.npz")
    ctx = Context.from_truth(scale=int(d["scale"]), mode="srf_support", psf=d["psf"], srf=d["srf"],
                             coverage=d["srf"] > 0, iterations=10, seed=0)
    create_method(net, preset).fuse(d["lr"], d["msi"], ctx)
    desc, total, ops = counts[-1]
    x, w = torch.randn(1, 160, 80, 80), torch.randn(160, 160, 3, 3)
    conv = rate(lambda: F.conv2d(x, w, padding=1), 2 * 160 * 160 * 9 * 80 * 80)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    gemm = rate(lambda: a @ b, 2 * 2048 ** 3)
    print(json.dumps({"net": net, "preset": preset, "stage": desc, "gflop_per_iteration": total / 1e9,
                      "share_by_op": {k: round(v / total, 4) for k, v in ops.items()},
                      "conv3x3_160ch_gflops": conv, "sgemm_2048_gflops": gemm,
                      "floor_s_per_iteration_at_conv_rate": total / 1e9 / conv}))


if __name__ == "__main__":
    main(*sys.argv[1:3])
