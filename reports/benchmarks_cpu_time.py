"""CPU time of the fused scalar metrics on a 512×512×31 float32 pair against NumPy summing both cubes,
at one thread (best of 25 calls): the figures of the "Scalar metrics" section of reports/benchmarks.md.

Usage: OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python reports/benchmarks_cpu_time.py
"""
import time, numpy as np
from hsibench.kernels import scalar_metrics
rng = np.random.default_rng(0)
B, H, W = 31, 512, 512
gt = rng.random((B, H, W), dtype=np.float32); est = np.clip(gt + 0.01 * rng.standard_normal(gt.shape, dtype=np.float32), 0, 1)
scalar_metrics(gt, est, 4)
def best(f, n):
    ts = []
    for _ in range(n):
        t = time.process_time(); f(); ts.append(time.process_time() - t)
    return min(ts)
ts = best(lambda: scalar_metrics(gt, est, 4), 25)
tr = best(lambda: (gt.sum(dtype=np.float32), est.sum(dtype=np.float32)), 25)
print(f"scalar {ts*1e3:.2f} ms CPU; numpy float32 sum of both cubes {tr*1e3:.2f} ms")
