"""numba-cuda kernels under the Numba CUDA simulator, against the NumPy references.

The simulator must be switched on before ``numba.cuda`` is first imported, and the CPU tests in
the same pytest process import Numba normally, so the checks run in one subprocess with
``NUMBA_ENABLE_CUDASIM=1`` (small inputs: the simulator runs every CUDA thread in Python). Inputs
are Numba device arrays (``cuda.to_device``), which the public functions dispatch to the CUDA
kernels exactly like CuPy arrays or CUDA torch tensors; ``compute_metrics`` is also fed bare
``__cuda_array_interface__`` exporters (the protocol CuPy and CUDA torch tensors speak), with the
CUDA kernels and every device-to-host copy counted, and the hand-computed cases of
``_metric_cases`` (the ones ``test_metrics`` checks on the CPU) as Numba device arrays.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from _metric_cases import assert_known_scores, metric_cases

SCRIPT = textwrap.dedent(
    r"""
    import json, os
    assert os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
    import numpy as np
    from numba import cuda
    from hsibench.degrade import spatial as _spatial
    class spatial:  # the array-API reference (never the dispatching public function)
        blur_decimate = staticmethod(_spatial.blur_decimate_reference)
        blur_decimate_adjoint = staticmethod(_spatial.blur_decimate_adjoint_reference)
    from hsibench.degrade.psf import make_psf
    from hsibench.metrics import reference as R
    from hsibench.kernels import (MetricInputError, band_sums, blur_decimate, blur_decimate_adjoint,
                                  scalar_metrics, windowed_metrics)

    out = {"simulator": bool(cuda.simulator_is_initialized()) if hasattr(cuda, "simulator_is_initialized") else True}
    rng = np.random.default_rng(5)

    def rel(a, b):
        a = np.asarray(a, dtype=float); b = np.asarray(b, dtype=float)
        return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))

    # ---------------------------------------------------------------- PSF operator and adjoint
    cases = [("gauss_fwhm_wide", 2, "symmetric", np.float32), ("motion(3, 30)", 3, "circular", np.float64),
             ("disk(1.5)", 3, "symmetric", np.float32), ("box", 4, "circular", np.float64)]
    for spec, s, bd, dt in cases:
        k = make_psf(spec, s)
        x = rng.random((2, 4 * s, 3 * s)).astype(dt)
        ref = spatial.blur_decimate(x, k, s, bd)
        got = blur_decimate(cuda.to_device(x), k, s, bd)
        assert hasattr(got, "copy_to_host"), type(got)
        got = got.copy_to_host()
        y = rng.random(ref.shape).astype(dt)
        ref_t = spatial.blur_decimate_adjoint(y, k, s, x.shape[1:], bd)
        got_t = blur_decimate_adjoint(cuda.to_device(y), k, s, x.shape[1:], bd).copy_to_host()
        out[f"psf/{spec}/{s}/{bd}/{np.dtype(dt).name}"] = [rel(got, ref), rel(got_t, ref_t),
                                                          got.dtype == ref.dtype, list(got.shape) == list(ref.shape)]
    # leading dims and 2-D input
    k = make_psf("gauss_fwhm", 2)
    x4 = rng.random((2, 1, 4, 6)).astype(np.float32)
    got = blur_decimate(cuda.to_device(x4), k, 2).copy_to_host()
    out["psf/leading_dims"] = [rel(got, spatial.blur_decimate(x4, k, 2)), 0.0, True, list(got.shape) == [2, 1, 2, 3]]

    # ----------------------------------------------------------------------------- metrics
    def pair(shape, dt):
        g = rng.random(shape); e = np.clip(g + 0.05 * rng.standard_normal(shape), 0, None)
        return g.astype(dt), e.astype(dt)

    for dt in (np.float32, np.float64):
        g, e = pair((3, 14, 13), dt)
        g[:, :9, :9] = 0.4; e[:, :9, :9] = 0.4      # flat, equal windows
        g[1, 5:, 4:] = 0.7                           # flat in gt only
        g[:, 0, 12] = 0.0; e[:, 1, 12] = 0.0         # zero spectra
        m = scalar_metrics(cuda.to_device(g), cuda.to_device(e), 4)
        w = windowed_metrics(cuda.to_device(g), cuda.to_device(e))
        ref = {"rmse": R.rmse(g, e), "psnr": R.psnr(g, e), "sam": R.sam(g, e), "ergas": R.ergas(g, e, scale=4),
               "cc": R.cc(g, e), "dd": R.dd(g, e), "ssim": R.ssim(g, e), "uiqi": R.uiqi(g, e)}
        got = {**m, **w}
        out[f"metrics/{np.dtype(dt).name}"] = {name: [float(got[name]), float(v)] for name, v in ref.items()}
        out[f"metrics_per_band/{np.dtype(dt).name}"] = [
            rel(w["ssim_per_band"], R.ssim(g, e, per_band=True)),
            rel(w["uiqi_per_band"], R.uiqi(g, e, per_band=True)),
            rel(m["psnr_per_band"], R.psnr(g, e, per_band=True)),
            rel(m["cc_per_band"], R.cc(g, e, per_band=True)),
        ]
    g, e = pair((4, 5, 6), np.float64)
    g[:, 0, :2] = 0; e[:, 1, :3] = 0; e[:, 0, 0] = 0
    for pol in ("count90", "all90", "exclude", "cucanet"):
        s = band_sums(cuda.to_device(g), cuda.to_device(e), sam_zero_policy=pol)
        out[f"sam/{pol}"] = [s.sam_sum / s.sam_count, R.sam(g, e, zero_policy=pol)]
    bad = e.copy(); bad[2, 3, 4] = np.nan
    try:
        scalar_metrics(cuda.to_device(g), cuda.to_device(bad), 2)
        out["nan_error"] = "no error"
    except MetricInputError as exc:
        out["nan_error"] = str(exc)

    # ------------------------------------------- compute_metrics: device arrays stay on the device
    from hsibench.accel import cuda_kernel_path, is_cuda_array, kernel_path, use_kernels
    from hsibench.metrics import MetricError, compute_metrics
    import hsibench.kernels._arrays as KA
    import hsibench.kernels._cuda as KC

    class CAI:  # a bare __cuda_array_interface__ exporter, as CuPy arrays and CUDA torch tensors are
        def __init__(self, dev):
            self._dev = dev  # keeps the memory alive
        @property
        def __cuda_array_interface__(self):
            a = self._dev._ary  # the simulator's device memory is host memory
            ai = a.__array_interface__
            return {"shape": a.shape, "typestr": a.dtype.str, "data": ai["data"], "strides": ai["strides"],
                    "version": 3}

    calls = []
    for mod, name in ((KC, "band_stats"), (KC, "windowed"), (KA, "device_to_host")):
        fn = getattr(mod, name)
        setattr(mod, name, lambda *a, _fn=fn, _n=name, **k: (calls.append(_n), _fn(*a, **k))[1])

    def score(gt, est, **kw):
        del calls[:]
        try:
            rep = compute_metrics(gt, est, **{"scale": 4, **kw})
        except MetricError as exc:
            return {"error": str(exc), "calls": list(calls)}
        return {"scalars": rep.scalars, "per_band": {k: v.tolist() for k, v in rep.per_band.items()},
                "types": sorted({type(v).__name__ for v in rep.scalars.values()}) +
                         sorted({type(v).__name__ for v in rep.per_band.values()}),
                "calls": list(calls)}

    def host(g, e, **kw):
        with use_kernels(False):
            return score(g, e, **kw)

    g, e = pair((3, 14, 13), np.float32)
    g[:, :9, :9] = 0.4; e[:, :9, :9] = 0.4; e[:, 2, 5] = 0.0
    dg, de = cuda.to_device(g), cuda.to_device(e)
    out["dispatch"] = [is_cuda_array(dg), is_cuda_array(CAI(dg)), kernel_path(dg, de), cuda_kernel_path(CAI(dg), de),
                       cuda_kernel_path(cuda.to_device(g.astype(np.int32)), de), cuda_kernel_path(g, de)]
    out["cm/cai_crop"] = [score(CAI(dg), CAI(de), crop=1), host(g, e, crop=1)]
    e64 = e.astype(np.float64) + 1e-9  # a mixed float32/float64 pair: cast on the device
    out["cm/mixed"] = [score(dg, cuda.to_device(e64)), host(g, e64)]
    out["cm/eu2adl"] = [score(dg, de, preset="eu2adl"), host(g, e, preset="eu2adl")]
    gi = (g * 100).astype(np.int32); ei = (e * 100).astype(np.int32)  # no int kernel: the reference
    out["cm/int"] = [score(cuda.to_device(gi), cuda.to_device(ei)), host(gi, ei)]
    out["cm/exact"] = score(dg, cuda.to_device(g))
    bad = e.copy(); bad[1, 3, 4] = np.inf
    const = g.copy(); const[2] = 0.25
    out["cm/errors"] = [[score(dg, cuda.to_device(bad)), host(g, bad)],
                        [score(cuda.to_device(const), de), host(const, e)],
                        [score(dg, cuda.to_device(np.ascontiguousarray(e[:, :13]))), host(g, e[:, :13])]]

    # ------------------------------ compute_metrics: the hand-computed cases of test_metrics
    import sys
    sys.path.insert(0, os.environ["HSIBENCH_TESTS_DIR"])
    from _metric_cases import metric_cases
    for name, case in metric_cases().items():
        for dt in (np.float64, np.float32) if name in ("hand", "stripes_double") else (np.float64,):
            dgc, dec = (cuda.to_device(np.ascontiguousarray(case[k], dtype=dt)) for k in ("gt", "est"))
            out[f"known/{name}/{np.dtype(dt).name}"] = score(dgc, dec, preset=case["preset"], scale=case["scale"])
    print("RESULT" + json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def sim_results():
    pytest.importorskip("numba.cuda")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", NUMBA_NUM_THREADS=os.environ.get("NUMBA_NUM_THREADS", "1"),
               HSIBENCH_TESTS_DIR=os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600
    )
    if proc.returncode != 0:
        pytest.fail(f"simulator script failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")][-1]
    return json.loads(line[len("RESULT") :])


def test_psf_kernels(sim_results):
    checks = {k: v for k, v in sim_results.items() if k.startswith("psf/")}
    assert len(checks) == 5
    for name, (err_fwd, err_adj, same_dtype, same_shape) in checks.items():
        tol = 1e-5 if "float32" in name or "leading" in name else 1e-12
        assert err_fwd < tol and err_adj < tol, (name, err_fwd, err_adj)
        assert same_dtype and same_shape, name


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_metric_kernels(sim_results, dtype):
    for name, (got, ref) in sim_results[f"metrics/{dtype}"].items():
        atol = 1e-6 if name == "sam" else 0.0
        assert got == pytest.approx(ref, rel=1e-5 if dtype == "float32" else 1e-10, abs=atol), name
    assert max(sim_results[f"metrics_per_band/{dtype}"]) < 1e-8


def test_sam_policies(sim_results):
    for pol in ("count90", "all90", "exclude", "cucanet"):
        got, ref = sim_results[f"sam/{pol}"]
        assert got == pytest.approx(ref, rel=1e-10), pol


def test_compute_metrics_dispatch_predicates(sim_results):
    is_dev, is_cai, kp, ckp_cai, ckp_int, ckp_host = sim_results["dispatch"]
    assert is_dev and is_cai and kp and ckp_cai
    assert not ckp_int and not ckp_host  # int device arrays and a host/device mix: not the CUDA kernels


def _same_report(dev, ref, rtol):
    assert "error" not in dev, dev
    assert set(dev["scalars"]) == set(ref["scalars"])
    for name, value in ref["scalars"].items():
        assert dev["scalars"][name] == pytest.approx(value, rel=rtol, abs=1e-12), name
    for name, vec in ref["per_band"].items():
        assert dev["per_band"][name] == pytest.approx(vec, rel=rtol, abs=1e-12), name
    assert dev["types"] == ["float", "ndarray"]  # Python floats and host vectors, as on the CPU


@pytest.mark.parametrize("case", ["cm/cai_crop", "cm/mixed"])
def test_compute_metrics_on_device_never_copies_a_cube(sim_results, case):
    """The default preset on device arrays (bare __cuda_array_interface__ exporters, cropped, or a
    mixed float32/float64 pair) runs the two CUDA kernels and copies nothing to the host."""
    dev, ref = sim_results[case]
    _same_report(dev, ref, 1e-10)
    assert dev["calls"] == ["band_stats", "windowed"], dev["calls"]
    assert "device_to_host" not in ref["calls"] and "band_stats" not in ref["calls"]


def test_compute_metrics_paper_preset_on_device(sim_results):
    """eu2adl: the pointwise metrics and its SAM policy on the device, the uniform SSIM and
    sewar's UQI (no device kernel) from one host copy of each cube."""
    dev, ref = sim_results["cm/eu2adl"]
    _same_report(dev, ref, 1e-10)
    assert dev["calls"] == ["band_stats", "device_to_host", "device_to_host", "band_stats"], dev["calls"]


def test_compute_metrics_int_device_arrays_take_the_reference(sim_results):
    dev, ref = sim_results["cm/int"]
    _same_report(dev, ref, 1e-12)
    assert dev["calls"] == ["device_to_host", "device_to_host"], dev["calls"]


def test_compute_metrics_exact_on_device(sim_results):
    s = sim_results["cm/exact"]["scalars"]
    assert s["rmse"] == 0 and s["dd"] == 0 and s["ergas"] == 0 and s["psnr"] == float("inf")
    assert s["ssim"] == pytest.approx(1.0, abs=1e-12) and s["uiqi"] == pytest.approx(1.0, abs=1e-12)
    assert s["cc"] == pytest.approx(1.0, abs=1e-12) and s["sam"] == 0.0


def test_compute_metrics_errors_on_device_match_the_host(sim_results):
    for dev, ref in sim_results["cm/errors"]:
        assert "error" in ref and dev.get("error") == ref["error"], (dev, ref)
        assert "device_to_host" not in dev["calls"], dev["calls"]  # refused on the device


def test_nan_detected(sim_results):
    assert "est contains 1 NaN" in sim_results["nan_error"]


@pytest.mark.parametrize(
    "name,dtype",
    [(name, "float64") for name in sorted(metric_cases())] + [("hand", "float32"), ("stripes_double", "float32")],
)
def test_compute_metrics_known_answers_on_device(sim_results, name, dtype):
    """The hand-computed cases that test_metrics checks on the CPU, scored from Numba device
    arrays: the same expected values, and the default preset never copies a cube to the host."""
    case = metric_cases()[name]
    dev = sim_results[f"known/{name}/{dtype}"]
    assert "error" not in dev, dev
    rel = 1e-12 if dtype == "float64" else 1e-5
    assert_known_scores(dev["scalars"], dev["per_band"], case, rel=rel, abs_=1e-12 if dtype == "float64" else 1e-5)
    if case["preset"] == "hsibench":
        assert dev["calls"] == ["band_stats", "windowed"], dev["calls"]
    else:  # eu2adl: SAM's policy on the device, its uniform SSIM / sewar UQI from one host copy each
        assert dev["calls"] == ["band_stats", "device_to_host", "device_to_host", "band_stats"], dev["calls"]
