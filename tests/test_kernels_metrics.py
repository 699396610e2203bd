"""Fused metric kernels (hsibench.kernels) against the NumPy reference hsibench.metrics.reference."""
from __future__ import annotations

import numpy as np
import pytest

from hsibench.kernels import MetricInputError, band_sums, scalar_metrics, windowed_metrics
from hsibench.metrics import reference as R

# Kernels and reference both accumulate in float64 whatever the input dtype (float32 inputs are
# exact in float64), so one tolerance serves both: sums of n ≤ 3600 pixels (2x12x300 bands) give
# ≤ n·eps64 ≈ 8e-13 relative, amplified by at most ~300 by the one-pass variances' cancellation
# (mean²/variance ≤ 0.25/1e-3 for these data) -> 2.4e-10; x4 margin. A float32 accumulation
# (~n·eps32 ≈ 4e-4) would fail it, on any CPU.
RTOL = {np.float32: 1e-9, np.float64: 1e-9}
SCALAR = ("rmse", "psnr", "sam", "ergas", "cc", "dd")


def _reference(gt, est, scale):
    return {
        "rmse": R.rmse(gt, est),
        "psnr": R.psnr(gt, est),
        "sam": R.sam(gt, est),
        "ergas": R.ergas(gt, est, scale=scale),
        "cc": R.cc(gt, est),
        "dd": R.dd(gt, est),
        "ssim": R.ssim(gt, est),
        "uiqi": R.uiqi(gt, est),
        "psnr_per_band": R.psnr(gt, est, per_band=True),
        "cc_per_band": R.cc(gt, est, per_band=True),
        "ssim_per_band": R.ssim(gt, est, per_band=True),
        "uiqi_per_band": R.uiqi(gt, est, per_band=True),
    }


def _compare(gt, est, scale, rtol):
    got = {**scalar_metrics(gt, est, scale), **windowed_metrics(gt, est)}
    ref = _reference(gt, est, scale)
    for name, value in ref.items():
        # arccos is ill-conditioned at cos = ±1: spectra parallel to round-off have angles of
        # ~sqrt(eps) rad (1e-6°) in any implementation, hence an absolute floor for SAM
        atol = 1e-6 if name == "sam" else 0.0
        np.testing.assert_allclose(got[name], value, rtol=rtol, atol=atol, err_msg=name)
    np.testing.assert_allclose(
        got["rmse_per_band"], np.sqrt(np.mean((gt.astype(float) - est) ** 2, axis=(1, 2))), rtol=rtol
    )


def _pair(rng, shape, dtype, noise=0.05):
    gt = rng.random(shape)
    est = np.clip(gt + noise * rng.standard_normal(shape), 0, None)
    return gt.astype(dtype), est.astype(dtype)


@pytest.fixture(scope="module")
def rng_mod():
    return np.random.default_rng(77)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_random_odd_sizes(rng_mod, dtype):
    for shape in ((5, 23, 31), (3, 40, 17), (1, 11, 11), (2, 12, 300)):
        gt, est = _pair(rng_mod, shape, dtype)
        _compare(gt, est, 4, RTOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_degenerate_windows_and_pixels(rng_mod, dtype):
    """Flat windows (equal, different, one-sided), zero spectra on either side, a constant
    estimate band (CC_b = 0), values above 1 and a negative estimate."""
    gt, est = _pair(rng_mod, (4, 30, 27), dtype)
    gt[:, 2:14, 3:15] = 0.25
    est[:, 2:14, 3:15] = 0.25  # flat and equal: UIQI 1 there
    gt[1, 16:, :9] = 0.7  # flat in gt only
    est[2, 18:28, 12:22] = 0.4  # flat in est only
    gt[3, 20:29, 16:25] = 0.3
    est[3, 20:29, 16:25] = 0.6  # both flat, different values: UIQI 0
    gt[:, 0, 0] = 0.0  # zero ground-truth spectrum: left out of SAM
    est[:, 0, 5] = 0.0  # zero estimate spectrum: 90 degrees
    est[2] = 0.5  # constant estimate band: CC_2 = 0
    gt[0, 5, 5] = 1.7
    est[1, 7, 7] = -0.2
    _compare(gt, est, 3, RTOL[dtype])


@pytest.mark.parametrize("policy", ["count90", "all90", "exclude", "cucanet"])
def test_sam_zero_policies(rng_mod, policy):
    gt, est = _pair(rng_mod, (6, 9, 13), np.float64)
    gt[:, 0, :3] = 0.0
    est[:, 1, :4] = 0.0
    est[:, 0, 0] = 0.0  # both zero
    got = band_sums(gt, est, sam_zero_policy=policy)
    assert got.sam_sum / got.sam_count == pytest.approx(R.sam(gt, est, zero_policy=policy), rel=1e-12)
    assert scalar_metrics(gt, est, 2, sam_zero_policy=policy)["sam"] == pytest.approx(
        R.sam(gt, est, zero_policy=policy), rel=1e-12
    )


def test_band_sums_fields(rng_mod):
    gt, est = _pair(rng_mod, (3, 10, 12), np.float32)
    gt[2] = 0.5
    s = band_sums(gt, est)
    g, e = gt.astype(float), est.astype(float)
    gc = g - g.mean(axis=(1, 2), keepdims=True)
    ec = e - e.mean(axis=(1, 2), keepdims=True)
    assert s.n_pixels == 120
    np.testing.assert_allclose(s.sse, ((g - e) ** 2).sum(axis=(1, 2)), rtol=1e-12)
    np.testing.assert_allclose(s.sae, np.abs(g - e).sum(axis=(1, 2)), rtol=1e-12)
    np.testing.assert_allclose(s.mean_gt, g.mean(axis=(1, 2)), rtol=1e-12)
    np.testing.assert_allclose(s.mean_est, e.mean(axis=(1, 2)), rtol=1e-12)
    np.testing.assert_allclose(s.sxx, (gc**2).sum(axis=(1, 2)), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(s.syy, (ec**2).sum(axis=(1, 2)), rtol=1e-9)
    np.testing.assert_allclose(s.sxy, (gc * ec).sum(axis=(1, 2)), rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(s.max_gt, g.max(axis=(1, 2)))
    np.testing.assert_array_equal(s.constant_gt, [False, False, True])
    # negative maxima (bit-pattern max decoding, all-negative bands reduced again): an
    # all-negative band, a mixed-sign band and a band of -0.0
    neg = -rng_mod.random((3, 5, 6)).astype(np.float32)
    neg[1, 2, 2] = 0.3
    neg[2] = -0.0
    got = band_sums(neg, neg + 1).max_gt
    np.testing.assert_array_equal(got, neg.max(axis=(1, 2)))
    assert np.signbit(got[2])
    # both cubes are shifted by the ground truth's first values and the cross moment follows
    # from the squared error: an estimate far from that shift keeps its moments
    far = (0.5 * gt + 30.0).astype(np.float32)
    s2 = band_sums(gt, far)
    ef = far.astype(float)
    ecf = ef - ef.mean(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(s2.syy, (ecf**2).sum(axis=(1, 2)), rtol=1e-9)
    np.testing.assert_allclose(s2.sxy, (gc * ecf).sum(axis=(1, 2)), rtol=1e-9, atol=1e-12)


def test_exact_reconstruction():
    gt = np.random.default_rng(1).random((3, 16, 16)).astype(np.float32)
    m = scalar_metrics(gt, gt.copy(), 4)
    assert m["psnr"] == np.inf and np.all(np.isinf(m["psnr_per_band"]))
    assert m["rmse"] == 0 and m["ergas"] == 0 and m["dd"] == 0
    assert m["cc"] == pytest.approx(1.0) and m["sam"] == pytest.approx(0.0, abs=1e-5)
    w = windowed_metrics(gt, gt.copy())
    assert w["ssim"] == pytest.approx(1.0) and w["uiqi"] == pytest.approx(1.0)


def test_errors(rng_mod):
    gt, est = _pair(rng_mod, (3, 12, 12), np.float32)
    with pytest.raises(MetricInputError, match="shape mismatch"):
        scalar_metrics(gt, est[:, :11], 2)
    with pytest.raises(MetricInputError, match="shape mismatch"):
        windowed_metrics(gt, est[:, :11])
    bad = est.copy()
    bad[1, 4, 5] = np.nan
    with pytest.raises(MetricInputError, match=r"est contains 1 NaN and 0 Inf values \(first at band 1, row 4, col 5\)"):
        scalar_metrics(gt, bad, 2)
    with pytest.raises(MetricInputError, match="est contains 1 NaN"):
        windowed_metrics(gt, bad)
    bad = gt.copy()
    bad[2, 11, 0] = -np.inf
    with pytest.raises(MetricInputError, match="gt contains 0 NaN and 1 Inf"):
        windowed_metrics(bad, est)
    const = gt.copy()
    const[1] = 0.3
    with pytest.raises(MetricInputError, match="ground-truth band 1 is constant"):
        scalar_metrics(const, est, 2)
    with pytest.raises(MetricInputError, match="at least 11x11"):
        windowed_metrics(gt[:, :10], est[:, :10])
    with pytest.raises(MetricInputError, match="scale"):
        scalar_metrics(gt, est, 0)
    with pytest.raises(MetricInputError, match="zero_policy"):
        band_sums(gt, est, sam_zero_policy="nope")
    assert issubclass(MetricInputError, ValueError)


def test_data_range(rng_mod):
    """data_range feeds SSIM's C1/C2 (UIQI has no constants)."""
    gt, est = _pair(rng_mod, (2, 20, 19), np.float64)
    w = windowed_metrics(gt, est, data_range=2.0)
    assert w["ssim"] == pytest.approx(R.ssim(gt, est, data_range=2.0), rel=1e-10)
    assert w["uiqi"] == pytest.approx(R.uiqi(gt, est), rel=1e-10)


def test_torch_cpu_inputs(rng_mod):
    torch = pytest.importorskip("torch")
    gt, est = _pair(rng_mod, (2, 14, 13), np.float32)
    m = scalar_metrics(torch.from_numpy(gt), torch.from_numpy(est), 2)
    assert m["psnr"] == pytest.approx(R.psnr(gt, est), rel=1e-6)
    w = windowed_metrics(torch.from_numpy(gt), torch.from_numpy(est))
    assert w["ssim"] == pytest.approx(R.ssim(gt, est), rel=1e-6)


def test_acos_accuracy():
    from hsibench.kernels._metrics_cpu import acos_deg

    x = np.concatenate([np.linspace(-1, 1, 20001), 1 - np.logspace(-16, 0, 200), -1 + np.logspace(-16, 0, 200)])
    got = np.array([acos_deg(v) for v in x])
    ref = np.degrees(np.arccos(x))
    np.testing.assert_allclose(got, ref, rtol=2e-15, atol=1e-13)
    assert acos_deg(1.5) == 0.0 and acos_deg(-1.5) == 180.0


@pytest.mark.parametrize("gen", ["_gen_windowed", "_gen_sums"])
def test_generated_kernel_is_current(gen):
    import importlib

    mod = importlib.import_module(f"hsibench.kernels.{gen}")
    assert mod.TARGET.read_text() == mod.source(), (
        f"kernels/{mod.TARGET.name} is stale: run python -m hsibench.kernels.{gen}"
    )


def test_real_cube(shared_data):
    """Paris Hyperion (128 bands, 72×72) as ground truth; the estimate is a blurred, noisy copy."""
    from scipy.io import loadmat
    from scipy.ndimage import uniform_filter

    cube = loadmat(shared_data / "paris_eo1_hyperion_ali" / "paris_data_hs_ms.mat")["HSim"]
    gt = np.ascontiguousarray(np.transpose(cube, (2, 0, 1)) / cube.max(), dtype=np.float32)
    rng = np.random.default_rng(3)
    est = uniform_filter(gt, size=(1, 3, 3)) + 0.01 * rng.standard_normal(gt.shape).astype(np.float32)
    _compare(gt, est.astype(np.float32), 3, RTOL[np.float32])
