"""The public operator and compute_metrics run the fused kernels on NumPy and the references
elsewhere, with the same numbers and the same errors either way."""
from __future__ import annotations

import math

import numpy as np
import pytest

from hsibench.accel import kernel_path, kernels_enabled, use_kernels
from hsibench.degrade import spatial
from hsibench.degrade.psf import PSFError, make_psf
from hsibench.metrics import MetricError, compute_metrics
from _tolerance import sum_bound


def _calls(monkeypatch):
    """Count the calls that reach the fused kernels."""
    import hsibench.kernels as K

    seen = []
    for name in ("blur_decimate", "blur_decimate_adjoint", "band_sums", "scalar_metrics", "windowed_metrics"):
        fn = getattr(K, name)
        monkeypatch.setattr(K, name, lambda *a, _fn=fn, _n=name, **k: (seen.append(_n), _fn(*a, **k))[1])
    return seen


def test_kernel_path_rules():
    torch = pytest.importorskip("torch")
    a32, a64 = np.zeros((2, 4, 4), np.float32), np.zeros((2, 4, 4))
    assert kernel_path(a32) and kernel_path(a64, a32)
    assert not kernel_path(np.zeros((2, 4, 4), np.int32))
    assert not kernel_path(torch.zeros(2, 4, 4))  # CPU torch: the array-API reference
    assert not kernel_path(a64, torch.zeros(2, 4, 4))
    with use_kernels(False):
        assert not kernels_enabled() and not kernel_path(a64)
    assert kernels_enabled()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("boundary", ["symmetric", "circular"])
@pytest.mark.parametrize("kind,scale", [("gauss_fwhm", 4), ("gauss_sigma0.5", 8), ("gauss_fwhm_wide", 4)])
def test_operator_uses_kernels_and_matches_reference(monkeypatch, dtype, boundary, kind, scale):
    rng = np.random.default_rng(1)
    x = rng.random((3, 4 * scale, 2 * scale)).astype(dtype)
    y = rng.random((3, 4, 2)).astype(dtype)
    k = make_psf(kind, scale)
    seen = _calls(monkeypatch)
    fwd = spatial.blur_decimate(x, k, scale, boundary)
    adj = spatial.blur_decimate_adjoint(y, k, scale, x.shape[-2:], boundary)
    assert seen == ["blur_decimate", "blur_decimate_adjoint"]
    assert fwd.dtype == dtype and adj.dtype == dtype
    # Worst-case roundoff of two summation orders (tests/_tolerance.py): data in [0, 1), kernel ≥ 0
    # summing to 1. Forward: k.size terms, Σ|w x| ≤ 1. Adjoint: an HR pixel gets ≤ ⌈kh/s⌉·⌈kw/s⌉ taps
    # (their sum ≤ 1) per copy, and boundary folding stacks up to 4 copies: ≤ 4·⌈kh/s⌉·⌈kw/s⌉ terms, Σ ≤ 4.
    taps = math.ceil(k.shape[0] / scale) * math.ceil(k.shape[1] / scale)
    tol_fwd = sum_bound(k.size, dtype, 1.0)
    tol_adj = sum_bound(4 * taps, dtype, 4.0)
    np.testing.assert_allclose(fwd, spatial.blur_decimate_reference(x, k, scale, boundary), rtol=0, atol=tol_fwd)
    np.testing.assert_allclose(
        adj, spatial.blur_decimate_adjoint_reference(y, k, scale, x.shape[-2:], boundary), rtol=0, atol=tol_adj
    )
    with use_kernels(False):
        spatial.blur_decimate(x, k, scale, boundary)
    assert len(seen) == 2  # switched off: the reference ran


@pytest.mark.parametrize("use", [True, False])
def test_operator_errors_are_the_same_on_both_paths(use):
    x = np.zeros((1, 8, 8))
    with use_kernels(use):
        with pytest.raises(ValueError, match="does not divide"):
            spatial.blur_decimate(np.zeros((1, 10, 12)), np.ones((4, 4)) / 16, 4)
        with pytest.raises(PSFError, match="parity"):
            spatial.blur_decimate(x, np.ones((3, 3)) / 9, 4)
        with pytest.raises(PSFError, match="NaN"):
            spatial.blur_decimate(x, np.full((4, 4), np.nan), 4)
        with pytest.raises(ValueError, match="unknown boundary"):
            spatial.blur_decimate(x, np.ones((4, 4)) / 16, 4, "zero")
        with pytest.raises(ValueError, match="exceeds the image size"):
            spatial.blur_decimate(np.zeros((1, 4, 4)), np.ones((14, 14)), 4)
        with pytest.raises(ValueError, match="does not match"):
            spatial.blur_decimate_adjoint(np.zeros((1, 3, 2)), np.ones((4, 4)) / 16, 4, (8, 8))


def test_torch_cpu_takes_the_reference_and_agrees():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x = rng.random((2, 16, 16))
    k = make_psf("gauss_fwhm", 4)
    xt = torch.from_numpy(x).requires_grad_(True)
    out = spatial.blur_decimate(xt, k, 4)
    out.sum().backward()  # the reference path keeps autograd
    np.testing.assert_allclose(out.detach().numpy(), spatial.blur_decimate(x, k, 4), rtol=1e-12)
    np.testing.assert_allclose(xt.grad.numpy(), spatial.blur_decimate_adjoint(np.ones((2, 4, 4)), k, 4, (16, 16)),
                               rtol=1e-12)


def _pair(rng, shape=(6, 24, 20)):
    gt = rng.random(shape) + 0.1
    est = np.clip(gt + 0.05 * rng.standard_normal(shape), 0, None)
    est[:, 0, 0] = 0.0  # a zero estimate spectrum (SAM counts it 90 degrees)
    return gt, est


def test_compute_metrics_uses_kernels_and_matches_reference(monkeypatch):
    gt, est = _pair(np.random.default_rng(3))
    seen = _calls(monkeypatch)
    fused = compute_metrics(gt, est, scale=4, crop=1)
    assert seen == ["band_sums", "windowed_metrics"]
    with use_kernels(False):
        ref = compute_metrics(gt, est, scale=4, crop=1)
    assert len(seen) == 2
    for name, value in ref.scalars.items():
        assert fused.scalars[name] == pytest.approx(value, rel=1e-10, abs=1e-12), name
    for name, vec in ref.per_band.items():
        np.testing.assert_allclose(fused.per_band[name], vec, rtol=1e-10, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("preset", ["cucanet", "eu2adl", "ual", "yokoya"])
def test_paper_presets_agree_on_both_paths(preset):
    gt, est = _pair(np.random.default_rng(4))
    fused = compute_metrics(gt, est, scale=4, preset=preset)
    with use_kernels(False):
        ref = compute_metrics(gt, est, scale=4, preset=preset)
    for name, value in ref.scalars.items():
        assert fused.scalars[name] == pytest.approx(value, rel=1e-10, abs=1e-12), name


@pytest.mark.parametrize("use", [True, False])
def test_metric_errors_are_metric_errors_on_both_paths(use):
    gt = np.random.default_rng(5).random((3, 16, 16))
    with use_kernels(use):
        with pytest.raises(MetricError, match="maximum"):
            compute_metrics(gt - 2.0, gt, scale=2)  # a non-positive peak
        with pytest.raises(MetricError, match="at least 11x11|11x11"):
            compute_metrics(gt[:, :8, :8], gt[:, :8, :8], scale=2)
        with pytest.raises(MetricError, match="NaN"):
            compute_metrics(gt, np.where(gt > 0.5, np.nan, gt), scale=2)


_THREADS_SCRIPT = """
import json, sys
import numba
import numpy as np
from hsibench.degrade import blur_decimate, blur_decimate_adjoint, make_psf
from hsibench.metrics import compute_metrics

rng = np.random.default_rng(6)
gt = rng.random((31, 144, 120)).astype(np.float32)  # several 8192-pixel runs
est = np.clip(gt + 0.05 * rng.standard_normal(gt.shape), 0, None).astype(np.float32)
k = make_psf("gauss_fwhm_wide", 8)
out = {}
for n in (1, 2):
    numba.set_num_threads(n)
    assert numba.get_num_threads() == n
    m = compute_metrics(gt, est, scale=8)
    lr = blur_decimate(gt, k, 8)
    back = blur_decimate_adjoint(lr, k, 8, gt.shape[1:])
    out[n] = {"scalars": m.scalars, "per_band": {key: v.tolist() for key, v in m.per_band.items()},
              "lr": lr.tobytes().hex(), "back": back.tobytes().hex()}
print(json.dumps({"same": out[1] == out[2], "scalars": out[1]["scalars"]}))
"""


def test_kernels_do_not_depend_on_the_thread_count():
    """The fused operator, its adjoint and the metrics give bit-identical results with 1 and 2 Numba
    threads (run in a fresh process started with NUMBA_NUM_THREADS=2, so both counts are real)."""
    import json
    import os
    import subprocess
    import sys

    pytest.importorskip("numba")
    env = dict(os.environ, NUMBA_NUM_THREADS="2", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", _THREADS_SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["same"], "results differ between 1 and 2 threads"
    assert 0 < res["scalars"]["rmse"] < 0.1
