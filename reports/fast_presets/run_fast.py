"""Run a net's ``fast`` preset end to end on the nets benchmark case (``hsibench.bench.nets_case``:
synthetic 80×80×156, s = 4, srf_support mode) in a fresh 1-thread subprocess, as ``python -m
hsibench.bench --nets`` does, and report total wall/CPU time (pre-training and stage 1 included) and
PSNR of the net and of ``upsample`` against the truth.

Usage: python reports/fast_presets/run_fast.py NET [KEY=VALUE ...] [--timeout S] [--mode MODE]
(KEY=VALUE: parameter overrides on top of ``fast``, for trying budgets before changing the preset).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

WORKER = r"""
import json, sys, time, tempfile
cfg = json.loads(sys.argv[1])
import numpy as np
import torch
torch.set_num_threads(1)
import hsibench.nets
from hsibench.methods import Context, create_method
from hsibench.metrics import compute_metrics
d = np.load(cfg["case"])
s = int(d["scale"])
ctx = Context.from_truth(scale=s, mode=cfg["mode"], psf=d["psf"], srf=d["srf"], coverage=d["srf"] > 0,
                         iterations=None, seed=0)
up = create_method("upsample").fuse(d["lr"], d["msi"], ctx)
up = up[0] if isinstance(up, tuple) else up
m = create_method(cfg["net"], "fast", **cfg["params"])
w0, c0 = time.perf_counter(), time.process_time()
out = m.fuse(d["lr"], d["msi"], ctx)
wall, cpu = time.perf_counter() - w0, time.process_time() - c0
hr, info = out if isinstance(out, tuple) else (out, {})
gt = d["truth"].astype(np.float64)
p_net = compute_metrics(gt, np.clip(np.asarray(hr, np.float64), 0, 1), scale=s).scalars["psnr"]
p_up = compute_metrics(gt, np.clip(np.asarray(up, np.float64), 0, 1), scale=s).scalars["psnr"]
keep = {k: v for k, v in info.items() if isinstance(v, (int, float, str, bool)) and ("iter" in k or "step" in k or "stop" in k or "seconds" in k or "pretrain_cached" in k)}
print(json.dumps({"net": cfg["net"], "mode": cfg["mode"], "params": cfg["params"], "wall": wall, "cpu": cpu, "psnr_net": float(p_net),
                  "psnr_upsample": float(p_up), "threads": torch.get_num_threads(), "info": keep}))
"""


def main(argv: list[str]) -> int:
    timeout = 300
    if "--timeout" in argv:
        i = argv.index("--timeout")
        timeout = int(argv[i + 1])
        argv = argv[:i] + argv[i + 2:]
    mode = "srf_support"
    if "--mode" in argv:  # UAL needs the SRF: run it with --mode oracle
        i = argv.index("--mode")
        mode = argv[i + 1]
        argv = argv[:i] + argv[i + 2:]
    net, params = argv[0], {}
    for kv in argv[1:]:
        k, v = kv.split("=", 1)
        params[k] = json.loads(v)
    from hsibench.bench import nets_case

    with tempfile.TemporaryDirectory(prefix="hsibench-fast-") as tmp:
        case = Path(tmp) / "case.npz"
        nets_case(case)
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
                   NUMBA_NUM_THREADS="1", HSIBENCH_CACHE=str(Path(tmp) / "cache"))  # UAL: a cache miss
        load = os.getloadavg()
        try:
            out = subprocess.run([sys.executable, "-c", WORKER, json.dumps(dict(net=net, params=params, case=str(case), mode=mode))],
                                 capture_output=True, text=True, env=env, cwd=tmp, timeout=timeout)
        except subprocess.TimeoutExpired:
            print(json.dumps({"net": net, "params": params, "timeout": timeout, "load": load}))
            return 1
        if out.returncode != 0:
            print(out.stderr[-3000:], file=sys.stderr)
            return 1
        r = json.loads(out.stdout.strip().splitlines()[-1])
        r["load_before"], r["load_after"] = load[0], os.getloadavg()[0]
        print(json.dumps(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
