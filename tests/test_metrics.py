"""Tests of hsibench.metrics: hand-computed values, scikit-image/sewar agreement, presets, errors."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from skimage.metrics import structural_similarity

from _metric_cases import (
    HAND_CC,
    HAND_DD,
    HAND_ERGAS,
    HAND_ERGAS_MU_EST_S2,
    HAND_PSNR,
    HAND_RMSE,
    HAND_SAM_ANGLES,
    XH,
    X,
    assert_known_scores,
    metric_cases,
    polar_angle_difference,
)
from hsibench.metrics import (
    METRIC_NAMES,
    PRESETS,
    MetricError,
    cc,
    compute_metrics,
    dd,
    ergas,
    metric_definitions,
    onion_product,
    psnr,
    psnr_global,
    q2n,
    rmse,
    sam,
    sam_map,
    ssim,
    ssim_uniform,
    ssim_zero_padded,
    uiqi,
    uiqi_sewar,
    validate_pair,
)

# The hand cube X / XH and its hand-computed scores live in _metric_cases (shared with the
# CUDA-simulator tests, which score the same cases on device arrays).


def smooth_cube(bands=3, rows=24, cols=20, seed=0):
    """Deterministic structured cube in [0.05, 0.95]: gradients, an edge, a flat patch, texture."""
    i, j = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    out = []
    for b in range(bands):
        band = 0.5 + 0.3 * np.sin(0.3 * i + 0.2 * (b + 1) * j) + 0.1 * (j > cols // 2)
        band[: rows // 3, : cols // 3] = 0.3  # flat patch (0.3 is not exact in binary)
        out.append(band)
    cube = np.clip(np.stack(out), 0.05, 0.95)
    noise = np.random.default_rng(seed).normal(0.0, 0.03, cube.shape)
    return cube, np.clip(cube + noise, 0.0, 1.0)


def test_rmse_by_hand():
    assert rmse(X, XH) == pytest.approx(HAND_RMSE, rel=1e-12)


def test_psnr_by_hand():
    expected = HAND_PSNR
    np.testing.assert_allclose(psnr(X, XH, per_band=True), expected, rtol=1e-12)
    assert psnr(X, XH) == pytest.approx(expected.mean(), rel=1e-12)


def test_psnr_exact_band_gives_inf_never_nan():
    est = XH.copy()
    est[0] = X[0]  # band 0 reproduced exactly
    per_band = psnr(X, est, per_band=True)
    assert per_band[0] == math.inf and per_band[1] == pytest.approx(10 * math.log10(25.0))
    assert psnr(X, est) == math.inf
    assert psnr(X, X) == math.inf


def test_ergas_by_hand():
    assert ergas(X, XH, scale=2) == pytest.approx(HAND_ERGAS[2], rel=1e-12)
    assert ergas(X, XH, scale=4) == pytest.approx(HAND_ERGAS[4], rel=1e-12)  # 100/s: halves with s doubled
    assert ergas(X, XH, scale=2, mu_from="estimate") == pytest.approx(HAND_ERGAS_MU_EST_S2, rel=1e-12)


def test_cc_by_hand():
    expected = HAND_CC
    np.testing.assert_allclose(cc(X, XH, per_band=True), expected, rtol=1e-12)
    assert cc(X, XH) == pytest.approx(expected.mean(), rel=1e-12)


def test_cc_constant_estimate_band_is_zero():
    est = XH.copy()
    est[1] = 0.7
    assert cc(X, est, per_band=True)[1] == 0.0


def test_dd_by_hand():
    assert dd(X, XH) == pytest.approx(HAND_DD, rel=1e-12)


def test_sam_by_hand():
    angles = polar_angle_difference(X, XH)
    np.testing.assert_allclose(angles, HAND_SAM_ANGLES, atol=1e-6)
    assert sam(X, XH) == pytest.approx(angles.mean(), abs=1e-9)
    np.testing.assert_allclose(sam_map(X, XH), angles, atol=1e-9)


def test_sam_orthogonal_and_scaled_spectra():
    gt = np.zeros((3, 1, 2))
    gt[:, 0, 0] = [1.0, 0.0, 0.0]
    gt[:, 0, 1] = [0.0, 2.0, 1.0]
    est = np.zeros_like(gt)
    est[:, 0, 0] = [0.0, 0.5, 0.0]  # orthogonal to [1, 0, 0]
    est[:, 0, 1] = [0.0, -1.0, 2.0]  # <[0,2,1], [0,-1,2]> = 0
    assert sam(gt, est) == pytest.approx(90.0, abs=1e-12)
    rng = np.random.default_rng(3)
    g = rng.uniform(0.1, 1.0, (6, 5, 4))
    scaled = g * rng.uniform(0.2, 5.0, (1, 5, 4))  # one positive factor per pixel
    assert sam(g, scaled) == pytest.approx(0.0, abs=1e-5)
    assert sam(g, -g) == pytest.approx(180.0, abs=1e-5)


def test_sam_zero_policies():
    # 2 bands, 4 pixels: p0 matched, p1 zero GT / non-zero est, p2 GT (1,0) / zero est, p3 both 0
    gt = np.array([[[0.5, 0.0], [1.0, 0.0]], [[0.5, 0.0], [0.0, 0.0]]])
    est = np.array([[[0.5, 0.3], [0.0, 0.0]], [[0.5, 0.3], [0.0, 0.0]]])
    assert sam(gt, est) == pytest.approx((0 + 90) / 2)  # count90: p0, p2 (p2 at 90)
    assert sam(gt, est, zero_policy="all90") == pytest.approx((0 + 90 + 90 + 90) / 4)
    assert sam(gt, est, zero_policy="exclude") == pytest.approx(0.0)
    # cucanet: p2's zero estimate becomes the flat (1e-4, 1e-4): 45 deg from (1, 0)
    assert sam(gt, est, zero_policy="cucanet") == pytest.approx((0 + 45) / 2)
    with pytest.raises(MetricError, match="zero_policy"):
        sam(gt, est, zero_policy="nan")
    with pytest.raises(MetricError, match="no pixel"):
        sam(np.zeros((2, 2, 2)), est)


# ------------------------------------------------------------------------------------ SSIM
def _skimage_ssim(gt, est, **kw):
    return np.array([structural_similarity(g, e, **kw) for g, e in zip(gt, est)])


@pytest.mark.parametrize("kind", ["random", "structured", "float32"])
def test_ssim_matches_skimage(kind):
    if kind == "random":
        rng = np.random.default_rng(7)
        gt = rng.random((3, 20, 23))
        est = np.clip(gt + rng.normal(0, 0.1, gt.shape), 0, 1)
    else:
        gt, est = smooth_cube(4, 26, 31)
        if kind == "float32":
            gt, est = gt.astype(np.float32), est.astype(np.float32)
    ref = _skimage_ssim(gt.astype(np.float64), est.astype(np.float64), gaussian_weights=True,
                        sigma=1.5, use_sample_covariance=False, data_range=1)
    np.testing.assert_allclose(ssim(gt, est, per_band=True), ref, atol=1e-6)
    assert ssim(gt, est) == pytest.approx(ref.mean(), abs=1e-6)
    ref2 = _skimage_ssim(gt.astype(np.float64), est.astype(np.float64), gaussian_weights=True,
                         sigma=1.5, use_sample_covariance=False, data_range=2.0)
    assert ssim(gt, est, data_range=2.0) == pytest.approx(ref2.mean(), abs=1e-6)


def test_ssim_uniform_matches_skimage_default_with_estimate_range():
    gt, est = smooth_cube(3, 19, 22, seed=4)
    ref = np.array([structural_similarity(g, e, data_range=e.max() - e.min())
                    for g, e in zip(gt, est)])
    np.testing.assert_allclose(ssim_uniform(gt, est, per_band=True), ref, atol=1e-6)


def test_ssim_zero_padded_by_hand():
    # Identical images: every window gives ((2mu^2+C1)(2v+C2))/((2mu^2+C1)(2v+C2)) = 1, borders too.
    gt, _ = smooth_cube(2, 12, 12)
    assert ssim_zero_padded(gt, gt) == pytest.approx(1.0, abs=1e-12)
    # Constant images a, b: in the interior v = 0 and SSIM = (2ab + C1)/(a^2 + b^2 + C1); the
    # zero padding pulls the border means down, so the whole-map mean differs from that value
    # while skimage-style cropping (ssim) gives it exactly.
    a, b = np.full((1, 30, 30), 0.5), np.full((1, 30, 30), 0.7)
    interior = (2 * 0.5 * 0.7 + 1e-4) / (0.25 + 0.49 + 1e-4)
    assert ssim(a, b) == pytest.approx(interior, abs=1e-12)
    assert ssim_zero_padded(a, b) != pytest.approx(interior, abs=1e-6)


# ------------------------------------------------------------------------------------ UIQI
def _uiqi_naive(gt, est, w=8):
    """Window-by-window Wang-Bovik Q with the documented flat-window rule."""
    per_band = []
    for g, e in zip(gt, est):
        qs = []
        for i in range(g.shape[0] - w + 1):
            for j in range(g.shape[1] - w + 1):
                x, y = g[i:i + w, j:j + w], e[i:i + w, j:j + w]
                if np.ptp(x) == 0 and np.ptp(y) == 0:
                    qs.append(1.0 if x[0, 0] == y[0, 0] else 0.0)
                    continue
                mx, my = x.mean(), y.mean()
                vx = 0.0 if np.ptp(x) == 0 else x.var()
                vy = 0.0 if np.ptp(y) == 0 else y.var()
                cxy = np.mean((x - mx) * (y - my))
                den = (vx + vy) * (mx**2 + my**2)
                qs.append(4 * cxy * mx * my / den if den > 0 else 0.0)
        per_band.append(np.mean(qs))
    return np.array(per_band)


def test_uiqi_matches_window_by_window_reference():
    gt, est = smooth_cube(2, 14, 13, seed=5)
    est[1, 9:, 8:] = 0.3  # a flat estimate patch against textured and flat ground truth
    np.testing.assert_allclose(uiqi(gt, est, per_band=True), _uiqi_naive(gt, est), atol=1e-12)


def test_uiqi_by_hand_on_one_window():
    # An 8x8 image is one window. y = x + 0.5 with mean(x) = 0.5: s_xy = s_x^2 = s_y^2, so
    # Q = 2 mx my / (mx^2 + my^2) = 2 * 0.5 * 1 / (0.25 + 1) = 0.8.
    x = np.tile(np.array([0.25, 0.75]), 32).reshape(1, 8, 8)
    assert uiqi(x, x + 0.5) == pytest.approx(0.8, rel=1e-12)
    # y = 2x: correlation 1, contrast 2*s*2s/(s^2+4s^2) = 0.8, luminance 2*m*2m/(m^2+4m^2) = 0.8.
    assert uiqi(x, 2 * x) == pytest.approx(0.64, rel=1e-12)


def test_uiqi_flat_windows_rule():
    flat = np.full((1, 8, 8), 0.3)
    assert uiqi(flat, flat.copy()) == 1.0  # both flat and equal
    assert uiqi(flat, flat + 0.1) == 0.0  # both flat, different values
    textured = flat + np.linspace(0, 0.1, 64).reshape(1, 8, 8)
    assert uiqi(flat, textured) == 0.0  # one flat: no covariance


def test_uiqi_sewar_reproduces_sewar():
    # sewar 0.4.10: sewar.full_ref.uqi(g.transpose(1, 2, 0), e.transpose(1, 2, 0)) on this cube
    # returned 0.9980801444215199 (computed once with the real package; sewar is not a dependency).
    i, j = np.meshgrid(np.arange(16), np.arange(16), indexing="ij")
    g = np.stack([0.5 + 0.4 * np.sin(0.7 * i + 1.3 * j + b) for b in range(2)])
    e = np.stack([g[b] + 0.05 * np.cos(2.1 * i - 0.4 * j * (b + 1)) for b in range(2)])
    assert uiqi_sewar(g, e) == pytest.approx(0.9980801444215199, abs=1e-12)
    assert uiqi(g, e) < uiqi_sewar(g, e)  # Wang-Bovik is stricter
    # Constant images a = 0.5, b = 1: sewar's N-mixed formula gives 4 a^2 b^2 / (a^2 + b^2)^2
    # = 1 / 1.5625 = 0.64 (the luminance term squared); Wang-Bovik's flat rule gives 0.
    a, b = np.full((1, 12, 12), 0.5), np.full((1, 12, 12), 1.0)
    assert uiqi_sewar(a, b) == pytest.approx(0.64, rel=1e-12)
    assert uiqi(a, b) == 0.0


# ------------------------------------------------------------------------------------- Q2n
def _cd_product(x, y):
    """Recursive Cayley-Dickson product (a c - d* b, a* d* + c b*), components on axis 0."""
    n = x.shape[0]
    if n == 1:
        return x * y
    h = n // 2

    def conj(v):
        return np.concatenate([v[:1], -v[1:]])

    a, b, c, d = x[:h], x[h:], y[:h], y[h:]
    return np.concatenate([_cd_product(a, c) - _cd_product(conj(d), b),
                           _cd_product(conj(a), conj(d)) + _cd_product(c, conj(b))])


def _hamilton(p, q):
    w1, x1, y1, z1 = p
    w2, x2, y2, z2 = q
    return np.array([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                     w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2])


def test_onion_product_algebra():
    rng = np.random.default_rng(11)
    for n in (1, 2, 4, 8, 16):
        x, y = rng.normal(size=(n, 5)), rng.normal(size=(n, 5))
        np.testing.assert_allclose(onion_product(x, y), _cd_product(x, y), atol=1e-12)
        xc = np.concatenate([x[:1], -x[1:]])
        norm2 = np.zeros_like(x)
        norm2[0] = np.sum(x**2, axis=0)
        np.testing.assert_allclose(onion_product(x, xc), norm2, atol=1e-12)  # x x* = |x|^2
    x, y = rng.normal(size=(2, 5)), rng.normal(size=(2, 5))
    z = (x[0] + 1j * x[1]) * (y[0] + 1j * y[1])
    np.testing.assert_allclose(onion_product(x, y), [z.real, z.imag], atol=1e-12)
    # quaternions: Hamilton's product with the j-part conjugated (k component negated)
    x, y = rng.normal(size=(4, 5)), rng.normal(size=(4, 5))
    h = _hamilton(x, y)
    np.testing.assert_allclose(onion_product(x, y), h * np.array([1, 1, 1, -1])[:, None],
                               atol=1e-12)


def _normalised_block(gt, est):
    """Per-band normalisation by the GT block's mean and sample std (both cubes)."""
    m = gt.mean(axis=(1, 2), keepdims=True)
    t = gt.std(axis=(1, 2), ddof=1, keepdims=True)
    return (gt - m) / t + 1, (est - m) / t + 1


def _q_from_moments(cov_abs, var_z, var_zh, mean_z, mean_zh):
    return cov_abs * 2 / (var_z + var_zh) * 2 * mean_z * mean_zh / (mean_z**2 + mean_zh**2)


def test_q2n_two_bands_is_complex_q():
    gt, est = smooth_cube(2, 32, 32, seed=8)
    z, zh = _normalised_block(gt, est)
    zc, zhc = z[0] + 1j * z[1], zh[0] + 1j * zh[1]
    f = 1024 / 1023
    cov = f * (np.mean(zc * np.conj(zhc)) - zc.mean() * np.conj(zhc.mean()))
    var = lambda v: f * (np.mean(np.abs(v) ** 2) - abs(v.mean()) ** 2)  # noqa: E731
    expected = _q_from_moments(abs(cov), var(zc), var(zhc), abs(zc.mean()), abs(zhc.mean()))
    assert q2n(gt, est) == pytest.approx(expected, rel=1e-10)
    assert 0.5 < expected < 1.0


def test_q2n_four_bands_is_quaternion_q():
    gt, est = smooth_cube(4, 32, 32, seed=9)
    z, zh = _normalised_block(gt.reshape(4, 32, 32), est.reshape(4, 32, 32))
    z, zh = z.reshape(4, -1), zh.reshape(4, -1)
    zh_conj = zh * np.array([1, -1, -1, -1])[:, None]
    f = 1024 / 1023
    mz, mzh = z.mean(axis=1), zh.mean(axis=1)
    cov = f * (_hamilton(z, zh_conj).mean(axis=1) - _hamilton(mz, mzh * np.array([1, -1, -1, -1])))
    var = lambda v, m: f * (np.mean(np.sum(v**2, axis=0)) - np.sum(m**2))  # noqa: E731
    expected = _q_from_moments(np.linalg.norm(cov), var(z, mz), var(zh, mzh), np.linalg.norm(mz),
                               np.linalg.norm(mzh))
    assert q2n(gt, est) == pytest.approx(expected, rel=1e-10)


def test_q2n_blocks_padding_and_identity():
    gt, est = smooth_cube(3, 64, 32, seed=10)
    halves = [q2n(gt[:, :32], est[:, :32]), q2n(gt[:, 32:], est[:, 32:])]
    assert q2n(gt, est) == pytest.approx(np.mean(halves), rel=1e-12)  # mean over 32x32 blocks
    # 3 bands are zero-padded to 4: same as appending a zero band explicitly
    zero = np.zeros((1, 64, 32))
    assert q2n(gt, est) == pytest.approx(q2n(np.concatenate([gt, zero]),
                                             np.concatenate([est, zero])), rel=1e-12)
    # 40x37 is mirrored (half-sample) to 64x64 before blocking
    g, e = smooth_cube(3, 40, 37, seed=12)
    pad = ((0, 0), (0, 24), (0, 27))
    assert q2n(g, e) == pytest.approx(q2n(np.pad(g, pad, mode="symmetric"),
                                          np.pad(e, pad, mode="symmetric")), rel=1e-12)
    for bands in (1, 5):
        g, _ = smooth_cube(bands, 40, 37)
        assert q2n(g, g.copy()) == pytest.approx(1.0, abs=1e-9)
    # invariant to a common positive per-band gain (the block normalisation removes it)
    gain = np.array([2.0, 0.5, 3.0])[:, None, None]
    assert q2n(gt * gain, est * gain) == pytest.approx(q2n(gt, est), rel=1e-9)


# ---------------------------------------------------------------------------- compute_metrics
def test_perfect_scores_on_identical_inputs():
    gt, _ = smooth_cube(4, 16, 16)
    report = compute_metrics(gt, gt.copy(), scale=4)
    s = report.scalars
    assert tuple(s) == METRIC_NAMES
    assert s["psnr"] == math.inf and np.all(report.per_band["psnr"] == math.inf)
    assert s["sam"] == 0.0  # identical spectra give cos == 1 exactly
    assert s["ssim"] == pytest.approx(1.0, abs=1e-12)
    assert s["uiqi"] == 1.0
    assert s["cc"] == pytest.approx(1.0, abs=1e-12)
    assert s["ergas"] == s["rmse"] == s["dd"] == 0.0
    for name in ("psnr", "rmse", "cc", "ssim"):
        v = report.per_band[name]
        assert v.dtype == np.float64 and v.shape == (4,)
    for preset in PRESETS:
        r = compute_metrics(gt, gt.copy(), scale=4, preset=preset)
        assert not any(math.isnan(v) for v in r.scalars.values()), preset


def test_compute_metrics_matches_single_functions_and_crop():
    from hsibench.accel import use_kernels

    gt, est = smooth_cube(3, 30, 28, seed=2)
    with use_kernels(False):  # the reference path is the single functions, bit for bit
        r = compute_metrics(gt, est, scale=4)
    assert r.scalars["psnr"] == psnr(gt, est)
    assert r.scalars["ergas"] == ergas(gt, est, scale=4)
    assert r.scalars["ssim"] == ssim(gt, est)
    assert r.scalars["uiqi"] == uiqi(gt, est)
    fused = compute_metrics(gt, est, scale=4)  # the fused kernels: the same to round-off
    for name in ("psnr", "ergas", "ssim", "uiqi", "sam", "cc", "rmse", "dd"):
        assert fused.scalars[name] == pytest.approx(r.scalars[name], rel=1e-12), name
    assert r.preset == "hsibench" and set(r.definitions) == set(METRIC_NAMES)
    cropped = compute_metrics(gt, est, scale=4, crop=4)
    direct = compute_metrics(gt[:, 4:-4, 4:-4], est[:, 4:-4, 4:-4], scale=4)
    assert cropped.scalars == direct.scalars
    assert cropped.settings == {"scale": 4.0, "crop": 4, "data_range": 1.0}


@pytest.mark.parametrize("name", sorted(metric_cases()))
@pytest.mark.parametrize("kernels", [True, False])
def test_compute_metrics_known_answers(name, kernels):
    """The hand-computed cases of _metric_cases through compute_metrics on the fused kernels and
    on the references (test_kernels_cudasim runs the same cases on device arrays)."""
    from hsibench.accel import use_kernels

    case = metric_cases()[name]
    with use_kernels(kernels):
        r = compute_metrics(case["gt"], case["est"], scale=case["scale"], preset=case["preset"])
    assert_known_scores(r.scalars, r.per_band, case)


def test_to_dict_is_json_serialisable_with_inf():
    gt, est = smooth_cube(2, 16, 16)
    est[0] = gt[0]
    d = compute_metrics(gt, est, scale=2).to_dict()
    back = json.loads(json.dumps(d))
    assert back["per_band"]["psnr"][0] == math.inf and back["scalars"]["psnr"] == math.inf
    assert back["per_band"]["ssim"] == pytest.approx(list(compute_metrics(gt, est, scale=2).per_band["ssim"]))
    assert back["preset"] == "hsibench" and back["settings"] == {"scale": 2.0, "crop": 0, "data_range": 1.0}


# ------------------------------------------------------------------------------------ presets
def test_preset_definitions():
    for name in PRESETS:
        defs = metric_definitions(name)
        assert set(METRIC_NAMES) <= set(defs) and all(isinstance(v, str) for v in defs.values())
    assert "q2n" in metric_definitions("yokoya") and "q2n" not in metric_definitions("hsibench")
    with pytest.raises(MetricError, match="unknown metric preset"):
        metric_definitions("nope")


def test_preset_ual_rounding_by_hand():
    levels = np.arange(3 * 12 * 12).reshape(3, 12, 12) % 200 + 20  # integer 8-bit levels
    gt = levels / 255.0
    # +0.4 LSB rounds away: UAL's PSNR sees no error, 10 log10(255^2 / 1e-12) dB
    r = compute_metrics(gt, gt + 0.4 / 255, scale=4, preset="ual")
    assert r.scalars["psnr"] == pytest.approx(10 * math.log10(255**2 / 1e-12), rel=1e-12)
    assert r.scalars["rmse"] == pytest.approx(0.4, rel=1e-9)  # RMSE x255 on unrounded data
    # +0.6 LSB rounds up to +1 everywhere: MSE = 1, PSNR = 20 log10(255) = 48.13 dB
    est = gt + 0.6 / 255
    r = compute_metrics(gt, est, scale=4, preset="ual")
    assert r.scalars["psnr"] == pytest.approx(20 * math.log10(255), rel=1e-12)
    assert r.scalars["rmse"] == pytest.approx(0.6, rel=1e-9)
    np.testing.assert_allclose(r.per_band["psnr"], 20 * math.log10(255), rtol=1e-12)
    # the suite default instead uses the per-band peak and the exact error of 0.6/255
    peaks = gt.max(axis=(1, 2))
    assert compute_metrics(gt, est, scale=4).scalars["psnr"] == pytest.approx(
        np.mean(10 * np.log10(peaks**2 / (0.6 / 255) ** 2)), rel=1e-12)
    assert psnr_global(gt * 255, est * 255, peak=255) == pytest.approx(
        10 * math.log10(255**2 / 0.36), rel=1e-9)
    assert r.scalars["ssim"] == ssim_zero_padded(gt, est)


def test_presets_zero_pixel_policies_by_hand():
    gt, _ = smooth_cube(2, 12, 12)
    gt[:, 0, 0] = 0.0  # one all-zero ground-truth spectrum out of 144 pixels
    est = gt.copy()
    sams = {p: compute_metrics(gt, est, scale=2, preset=p).scalars["sam"] for p in PRESETS}
    assert sams["hsibench"] == pytest.approx(0.0, abs=1e-5)  # zero GT pixel left out
    assert sams["cucanet"] == pytest.approx(0.0, abs=1e-5)  # left out (NaN in the original)
    assert sams["yokoya"] == pytest.approx(0.0, abs=1e-5)  # left out
    assert sams["eu2adl"] == pytest.approx(90.0 / 144, abs=1e-5)  # counts 90 deg
    assert sams["ual"] == pytest.approx(90.0 / 144, abs=1e-5)  # counts 90 deg


def test_presets_cucanet_eu2adl_windows():
    gt, est = smooth_cube(3, 20, 18, seed=6)
    for preset in ("cucanet", "eu2adl"):
        r = compute_metrics(gt, est, scale=4, preset=preset)
        ref = [structural_similarity(g, e, data_range=e.max() - e.min()) for g, e in zip(gt, est)]
        assert r.scalars["ssim"] == pytest.approx(np.mean(ref), abs=1e-6)
        assert r.scalars["uiqi"] == uiqi_sewar(gt, est)
        assert r.scalars["ergas"] == ergas(gt, est, scale=4)  # the true s, not CUCaNet's r = 16
        assert r.scalars["psnr"] == psnr(gt, est)


def test_preset_yokoya():
    gt, est = smooth_cube(3, 34, 33, seed=7)
    est = est * 1.1
    r = compute_metrics(gt, est, scale=3, preset="yokoya")
    # ERGAS with mu from the estimate: est = 1.1 * (noisy gt), so its means are larger and
    # ERGAS is smaller than with the ground-truth means
    mse = np.mean((gt - est) ** 2, axis=(1, 2))
    by_hand = 100 / 3 * math.sqrt(np.mean(mse / est.mean(axis=(1, 2)) ** 2))
    assert r.scalars["ergas"] == pytest.approx(by_hand, rel=1e-12)
    assert r.scalars["ergas"] < compute_metrics(gt, est, scale=3).scalars["ergas"]
    assert r.scalars["q2n"] == q2n(gt, est) and 0 < r.scalars["q2n"] < 1
    assert tuple(r.scalars)[:8] == METRIC_NAMES


# ------------------------------------------------------------------------------------- errors
def test_input_errors():
    gt, est = smooth_cube(2, 12, 12)
    with pytest.raises(MetricError, match="shape mismatch"):
        validate_pair(gt, est[:, :-1])
    with pytest.raises(MetricError, match="bands, rows, cols"):
        rmse(gt[0], est[0])
    bad = est.copy()
    bad[1, 3, 4] = np.nan
    with pytest.raises(MetricError, match=r"est contains 1 NaN.*band 1, row 3, col 4"):
        compute_metrics(gt, bad, scale=2)
    bad[1, 3, 4] = np.inf
    with pytest.raises(MetricError, match="0 NaN and 1 Inf"):
        psnr(gt, bad)
    with pytest.raises(MetricError, match="gt contains"):
        sam(bad, gt)
    with pytest.raises(MetricError, match="real numbers"):
        rmse(gt.astype(complex), est)
    assert issubclass(MetricError, ValueError)


def test_constant_ground_truth_band_is_refused_by_name():
    gt, est = smooth_cube(3, 12, 12)
    gt[1] = 0.0  # a zeroed bad band
    for fn in (lambda: psnr(gt, est), lambda: ergas(gt, est, scale=2), lambda: cc(gt, est),
               lambda: compute_metrics(gt, est, scale=2)):
        with pytest.raises(MetricError, match="band 1 is constant"):
            fn()
    # metrics defined on flat bands still work on their own
    assert np.isfinite(ssim(gt, est)) and np.isfinite(uiqi(gt, est)) and np.isfinite(rmse(gt, est))


def test_option_errors():
    gt, est = smooth_cube(2, 12, 12)
    for scale in (0, -2, math.nan, math.inf, True, "4", None):
        with pytest.raises(MetricError, match="scale"):
            compute_metrics(gt, est, scale=scale)
    with pytest.raises(MetricError, match="unknown metric preset"):
        compute_metrics(gt, est, scale=2, preset="wald")
    for crop in (-1, 6, 1.5):
        with pytest.raises(MetricError, match="crop"):
            compute_metrics(gt, est, scale=2, crop=crop)
    with pytest.raises(MetricError, match="at least 11x11"):
        compute_metrics(gt, est, scale=2, crop=1)  # 10x10 left: too small for SSIM
    with pytest.raises(MetricError, match="data_range"):
        compute_metrics(gt, est, scale=2, data_range=0)
    with pytest.raises(MetricError, match="mu_from"):
        ergas(gt, est, scale=2, mu_from="mean")


# ---------------------------------------------------------------------------------- properties
_cubes = arrays(np.float64, (2, 11, 12), elements=st.floats(0.01, 1.0))


@settings(max_examples=25, deadline=None)
@given(_cubes, _cubes)
def test_symmetric_metrics(a, b):
    assert rmse(a, b) == pytest.approx(rmse(b, a), rel=1e-12)
    assert dd(a, b) == pytest.approx(dd(b, a), rel=1e-12)
    assert ssim(a, b) == pytest.approx(ssim(b, a), abs=1e-12)
    assert uiqi(a, b) == pytest.approx(uiqi(b, a), abs=1e-9)
    assert sam(a, b) == pytest.approx(sam(b, a), abs=1e-6)
    if np.ptp(a, axis=(1, 2)).min() > 0 and np.ptp(b, axis=(1, 2)).min() > 0:
        assert cc(a, b) == pytest.approx(cc(b, a), abs=1e-12)


@settings(max_examples=25, deadline=None)
@given(_cubes, _cubes, arrays(np.float64, (1, 11, 12), elements=st.floats(0.1, 10.0)),
       arrays(np.float64, (1, 11, 12), elements=st.floats(0.1, 10.0)))
def test_sam_is_invariant_to_per_pixel_scaling(a, b, ka, kb):
    assert sam(a * ka, b * kb) == pytest.approx(sam(a, b), abs=1e-5)
