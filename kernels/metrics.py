"""Public fused metric kernels, dispatched on array type.

Definitions are those of docs/conventions.md §8 and ``hsibench.metrics.reference`` (the reference the
tests compare against):

- :func:`band_sums`: one pass over both cubes -> per-band sums and the SAM total.
- :func:`scalar_metrics`: RMSE, PSNR, SAM, ERGAS, CC, DD (+ per-band vectors) from those sums.
- :func:`windowed_metrics`: SSIM (11×11 Gaussian σ = 1.5, population covariance, map cropped by
  5 px, as scikit-image) and UIQI (Wang–Bovik on 8×8 windows fully inside, stride 1) per band.

Cubes are (bands, rows, cols). NumPy/CPU torch -> Numba CPU kernels; CuPy/CUDA torch -> numba-cuda.
Results are host NumPy/float values (they are small). Errors are :class:`MetricInputError`
(a ``ValueError``) with the reference's wording for shape mismatch, NaN/Inf and degenerate bands.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from . import _arrays as A
from ._plan import check_same_shape

__all__ = [
    "MetricInputError",
    "BandSums",
    "band_sums",
    "scalar_metrics",
    "windowed_metrics",
    "ssim_weights",
    "SAM_ZERO_POLICIES",
]

SAM_ZERO_POLICIES = ("count90", "all90", "exclude", "cucanet")
_SSIM_SIGMA, _SSIM_TRUNCATE = 1.5, 3.5
_K1, _K2 = 0.01, 0.03
_UIQI_WINDOW = 8
_SUM_TASKS = 64  # pixel runs of the one-pass sums (CPU)
_TILE_ROWS = 64  # row tile of the windowed kernel (CPU)


class MetricInputError(ValueError):
    """Inputs a metric refuses: shape mismatch, NaN/Inf, a constant ground-truth band, ..."""


class BandSums(NamedTuple):
    """Per-band sums from one pass over (gt, est); vectors are float64 of length B."""

    n_pixels: int  #: rows × cols
    sse: np.ndarray  #: Σ (x − x̂)²
    sae: np.ndarray  #: Σ |x − x̂|
    mean_gt: np.ndarray
    mean_est: np.ndarray
    sxx: np.ndarray  #: Σ (x − mean x)²
    syy: np.ndarray  #: Σ (x̂ − mean x̂)²
    sxy: np.ndarray  #: Σ (x − mean x)(x̂ − mean x̂)
    max_gt: np.ndarray
    constant_gt: np.ndarray  #: bool: the ground-truth band holds a single value
    sam_sum: float  #: Σ over counted pixels of each pixel's spectral angle in degrees
    sam_count: int  #: pixels counted by the SAM zero-norm policy


def ssim_weights(sigma: float = _SSIM_SIGMA, truncate: float = _SSIM_TRUNCATE) -> np.ndarray:
    """1-D Gaussian weights exactly as scipy.ndimage.gaussian_filter builds them (radius
    int(truncate·σ + 0.5), normalised to sum 1)."""
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    phi = np.exp(-0.5 / (sigma * sigma) * x * x)
    return phi / phi.sum()


def _prepare_pair(gt, est) -> tuple[np.ndarray, np.ndarray]:
    g, e = A.to_host_numpy(gt), A.to_host_numpy(est)
    check_same_shape(g, e)
    for name, a in (("gt", g), ("est", e)):
        if a.dtype == bool or a.dtype.kind not in "fiu":
            raise MetricInputError(f"{name} must hold real numbers, got dtype {a.dtype}")
    dt = np.float32 if (g.dtype == np.float32 and e.dtype == np.float32) else np.float64
    return np.ascontiguousarray(g, dtype=dt), np.ascontiguousarray(e, dtype=dt)


def _device_views(gt, est):
    """Bare ``__cuda_array_interface__`` exporters -> Numba views (zero-copy); others unchanged."""
    if A.kind_of(gt) == A.CUDA and A.kind_of(est) == A.CUDA:
        return A.device_view(gt), A.device_view(est)
    return gt, est


def _shape_error(gt, est):
    try:
        return check_same_shape(gt, est)
    except ValueError as exc:
        raise MetricInputError(str(exc)) from None


def _raise_nonfinite(gt, est) -> None:
    """Name the first cube with NaN/Inf and its first bad element (error path only)."""
    for name, cube in (("gt", gt), ("est", est)):
        a = np.asarray(cube if A.kind_of(cube) != A.CUDA else A.gpu().to_host(cube))
        if a.dtype.kind == "f":
            finite = np.isfinite(a)
            if not finite.all():
                b, r, c = (int(i) for i in np.argwhere(~finite)[0])
                n_nan = int(np.isnan(a).sum())
                n_inf = int(a.size - finite.sum()) - n_nan
                raise MetricInputError(
                    f"{name} contains {n_nan} NaN and {n_inf} Inf values (first at band {b}, row {r}, col {c})"
                )


# ------------------------------------------------------------------------------- band sums
def band_sums(gt, est, *, sam_zero_policy: str = "count90") -> BandSums:
    """Per-band sums and the SAM total from one read of both cubes.

    Raises :class:`MetricInputError` on a shape mismatch or NaN/Inf in either cube.
    """
    if sam_zero_policy not in SAM_ZERO_POLICIES:
        raise MetricInputError(f"zero_policy must be one of {SAM_ZERO_POLICIES}, got {sam_zero_policy!r}")
    policy = SAM_ZERO_POLICIES.index(sam_zero_policy)
    gt, est = _device_views(gt, est)
    B, H, W = _shape_error(gt, est)
    if A.same_kind(gt, est) == A.CUDA:
        stats, sam = A.gpu().band_stats(gt, est, policy)
    else:
        g, e = _prepare_pair(gt, est)
        stats, sam = _cpu_sums(g, e, policy)
    if not (np.all(np.isfinite(stats[:, :7])) and np.isfinite(sam[0])):
        _raise_nonfinite(gt, est)
    return _as_band_sums(stats, sam, H * W)


# Pixels per block of the one-pass sums: long runs per band for the prefetchers (blocks of
# 8192-65536 pixels beat 2048; figures in reports/benchmarks.md).
_SUM_BLOCK = 8192


def _cpu_sums(g: np.ndarray, e: np.ndarray, policy: int) -> tuple[np.ndarray, np.ndarray]:
    """(B, 9) un-shifted statistics and the (2,) SAM totals from the Numba CPU kernel."""
    B, H, W = g.shape
    K = A.cpu("_metrics_cpu")
    # a fixed task count (not one per thread): the float64 partial sums then add up in the
    # same order on any thread count, so a result row does not depend on the pinning
    ntask = max(1, min(math.ceil(H * W / _SUM_BLOCK), _SUM_TASKS))
    raw = np.zeros((ntask, B, K.NSTAT))  # the CPU kernel leaves column GMAX unwritten
    bdt = K.bits_dtype(g.dtype)
    maxbits = np.empty((ntask, B), dtype=bdt)
    minbits = np.empty((ntask, B), dtype=bdt)
    sam = np.empty((ntask, 2))
    shift_g = g[:, 0, 0].astype(np.float64)
    shift_e = e[:, 0, 0].astype(np.float64)
    K.band_stats(g, e, shift_g, shift_e, _SUM_BLOCK, policy, raw, maxbits, minbits, sam)
    stats = raw.sum(axis=0)
    stats[:, K.GMAX] = K.decode_max(maxbits.max(axis=0), minbits.min(axis=0), g.dtype)
    stats = _unshift(stats, shift_g.astype(np.float64), shift_e.astype(np.float64), H * W)
    return stats, sam.sum(axis=0)


def _unshift(st: np.ndarray, kg: np.ndarray, ke: np.ndarray, n: int) -> np.ndarray:
    """Sums about kg/ke -> columns: sse, sae, mean_g, mean_e, sxx, syy, sxy, max_g, constant_g.

    A band is constant iff every value equals its shift (the band's first value), i.e. iff the
    shifted sum of squares is exactly 0.
    """
    out = np.empty((st.shape[0], 9))
    out[:, :2] = st[:, :2]
    sg, se = st[:, 2], st[:, 3]
    out[:, 2] = kg + sg / n
    out[:, 3] = ke + se / n
    out[:, 4] = np.maximum(st[:, 4] - sg * sg / n, 0.0)
    out[:, 5] = np.maximum(st[:, 5] - se * se / n, 0.0)
    out[:, 6] = st[:, 6] - sg * se / n
    out[:, 7] = st[:, 7]
    out[:, 8] = st[:, 4] == 0.0
    return out


def _as_band_sums(st: np.ndarray, sam: np.ndarray, n: int) -> BandSums:
    return BandSums(
        n_pixels=int(n),
        sse=st[:, 0].copy(),
        sae=st[:, 1].copy(),
        mean_gt=st[:, 2].copy(),
        mean_est=st[:, 3].copy(),
        sxx=st[:, 4].copy(),
        syy=st[:, 5].copy(),
        sxy=st[:, 6].copy(),
        max_gt=st[:, 7].copy(),
        constant_gt=st[:, 8].astype(bool),
        sam_sum=float(sam[0]),
        sam_count=int(round(sam[1])),
    )


def _check_gt_bands(s: BandSums, metric: str) -> None:
    const = np.flatnonzero(s.constant_gt)
    if const.size:
        b = int(const[0])
        more = f" (constant bands: {const.tolist()})" if const.size > 1 else ""
        raise MetricInputError(
            f"{metric} is undefined: ground-truth band {b} is constant "
            f"(value {s.max_gt[b]!r}){more}; drop constant bands before scoring"
        )


def metrics_from_sums(s: BandSums, scale) -> dict:
    """RMSE, PSNR, SAM, ERGAS, CC, DD and the per-band vectors from :class:`BandSums`."""
    if isinstance(scale, bool) or not isinstance(scale, (int, float, np.integer, np.floating)):
        raise MetricInputError(f"scale must be a positive number, got {scale!r}")
    if not math.isfinite(scale) or scale <= 0:
        raise MetricInputError(f"scale must be a positive finite number, got {scale!r}")
    _check_gt_bands(s, "PSNR")
    n = s.n_pixels
    B = s.sse.shape[0]
    mse = s.sse / n
    peak = s.max_gt
    bad = np.flatnonzero(peak <= 0)
    if bad.size:
        raise MetricInputError(
            f"PSNR is undefined: ground-truth band {int(bad[0])} has maximum {peak[bad[0]]!r} "
            f"(the peak must be positive)"
        )
    with np.errstate(divide="ignore", over="ignore"):
        psnr_b = 10.0 * np.log10(peak**2 / mse)
    mu = s.mean_gt
    zero = np.flatnonzero(mu == 0)
    if zero.size:
        raise MetricInputError(f"ERGAS is undefined: ground-truth band {int(zero[0])} has mean 0")
    den = np.sqrt(s.sxx * s.syy)
    cc_b = np.zeros(B)
    ok = den > 0
    cc_b[ok] = np.clip(s.sxy[ok] / den[ok], -1.0, 1.0)
    if s.sam_count == 0:
        raise MetricInputError("SAM is undefined: no pixel has a non-zero spectrum to compare")
    return {
        "rmse": float(np.sqrt(s.sse.sum() / (n * B))),
        "psnr": float(np.mean(psnr_b)),
        "sam": s.sam_sum / s.sam_count,
        "ergas": float(100.0 / float(scale) * np.sqrt(np.mean(mse / mu**2))),
        "cc": float(np.mean(cc_b)),
        "dd": float(s.sae.sum() / (n * B)),
        "psnr_per_band": psnr_b,
        "rmse_per_band": np.sqrt(mse),
        "cc_per_band": cc_b,
        "mse_per_band": mse,
    }


def scalar_metrics(gt, est, scale, *, sam_zero_policy: str = "count90") -> dict:
    """RMSE, PSNR, SAM, ERGAS, CC, DD (docs/conventions.md §8) from one read of both cubes.

    Returns floats for the scalars and float64 vectors ``psnr_per_band``, ``rmse_per_band``,
    ``cc_per_band``, ``mse_per_band``. Raises :class:`MetricInputError` like the reference:
    shape mismatch, NaN/Inf, a constant ground-truth band (PSNR/CC/ERGAS undefined), a band with
    non-positive peak or zero mean, no pixel for SAM.
    """
    return metrics_from_sums(band_sums(gt, est, sam_zero_policy=sam_zero_policy), scale)


# -------------------------------------------------------------------------- windowed metrics
def windowed_metrics(gt, est, *, data_range: float = 1.0) -> dict:
    """SSIM and UIQI per band in one fused pass (see module docstring).

    Returns ``{"ssim": mean, "uiqi": mean, "ssim_per_band": (B,), "uiqi_per_band": (B,)}``.
    The windows are the pinned ones (SSIM 11×11 Gaussian σ = 1.5, UIQI 8×8); ``data_range`` sets
    SSIM's C1 = (0.01·L)², C2 = (0.03·L)². Needs images of at least 11×11 pixels.
    """
    gt, est = _device_views(gt, est)
    B, H, W = _shape_error(gt, est)
    if isinstance(data_range, bool) or not np.isfinite(data_range) or data_range <= 0:
        raise MetricInputError(f"data_range must be a positive finite number, got {data_range!r}")
    uw = _UIQI_WINDOW
    gw = ssim_weights()
    if min(H, W) < gw.shape[0]:
        raise MetricInputError(f"SSIM needs images of at least {gw.shape[0]}x{gw.shape[0]} pixels, got {H}x{W}")
    c1 = (_K1 * float(data_range)) ** 2
    c2 = (_K2 * float(data_range)) ** 2
    if A.same_kind(gt, est) == A.CUDA:
        ssim_b, uiqi_b, finite = A.gpu().windowed(gt, est, gw, c1, c2, uw)
    else:
        g, e = _prepare_pair(gt, est)
        K = A.cpu("_metrics_cpu")
        # UIQI centres each band on (about) its mean: a mean of every step-th row is enough
        step = max(1, H // 16)
        mu_g = g[:, ::step].mean(axis=(1, 2), dtype=np.float64)
        mu_e = e[:, ::step].mean(axis=(1, 2), dtype=np.float64)
        tile = _TILE_ROWS  # fixed, like ntask above: the same sums on any thread count
        ntile = math.ceil(H / tile)
        ssim_s = np.empty((B, ntile))
        uiqi_s = np.empty((B, ntile))
        check = np.empty((B, ntile))
        A.cpu("_windowed_cpu").windowed_11_8(g, e, gw, c1, c2, mu_g, mu_e, tile, ssim_s, uiqi_s, check)
        rad = gw.shape[0] // 2
        ssim_b = ssim_s.sum(axis=1) / ((H - 2 * rad) * (W - 2 * rad))
        uiqi_b = uiqi_s.sum(axis=1) / ((H - uw + 1) * (W - uw + 1))
        finite = bool(np.all(np.isfinite(check)))
    if not finite:
        _raise_nonfinite(gt, est)
    return {
        "ssim": float(np.mean(ssim_b)),
        "uiqi": float(np.mean(uiqi_b)),
        "ssim_per_band": ssim_b,
        "uiqi_per_band": uiqi_b,
    }
