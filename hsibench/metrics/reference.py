"""NumPy reference implementation of the hsibench image-quality metrics.

These functions are the reference: every faster implementation (the fused Numba/CUDA kernels in
``hsibench.kernels``) is validated against them. They favour a literal reading of each formula over
speed, but they are vectorised (no Python loop over pixels) and always compute in float64.

Layout: cubes are ``(bands, rows, cols)``; ``gt`` is the ground truth X, ``est`` the estimate X̂.
The definitions are those of ``docs/conventions.md`` §8; the variants that the paper presets
need (sewar's UQI, scikit-image's default SSIM, UAL's SSIM, global PSNR, Q2n) live here too, and
``presets.py`` says which preset uses which.
"""
from __future__ import annotations

import functools
import math
import numbers

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import ndimage

__all__ = [
    "METRIC_NAMES",
    "SAM_ZERO_POLICIES",
    "MetricError",
    "validate_pair",
    "rmse",
    "psnr",
    "psnr_global",
    "sam",
    "sam_map",
    "ergas",
    "ssim",
    "ssim_uniform",
    "ssim_zero_padded",
    "uiqi",
    "uiqi_sewar",
    "cc",
    "dd",
    "q2n",
    "onion_product",
]

#: The scalar metrics every :class:`~hsibench.metrics.MetricReport` carries, in report order.
METRIC_NAMES = ("rmse", "psnr", "sam", "ergas", "ssim", "uiqi", "cc", "dd")

#: How :func:`sam` treats pixels where a spectrum has zero norm (the angle is undefined there).
SAM_ZERO_POLICIES = ("count90", "all90", "exclude", "cucanet")

# Gaussian SSIM window of Wang et al. 2004 as scikit-image builds it: sigma 1.5 truncated at 3.5
# sigma, i.e. radius int(3.5 * 1.5 + 0.5) = 5 and an 11 x 11 window.
_SSIM_SIGMA = 1.5
_SSIM_TRUNCATE = 3.5
_SSIM_RADIUS = int(_SSIM_TRUNCATE * _SSIM_SIGMA + 0.5)
_SSIM_K1 = 0.01
_SSIM_K2 = 0.03


class MetricError(ValueError):
    """Input a metric refuses: shape mismatch, NaN/Inf, a constant ground-truth band, a bad option."""


# --------------------------------------------------------------------------------------- checks
def validate_pair(gt, est) -> None:
    """Check that ``gt`` and ``est`` are finite real ``(bands, rows, cols)`` cubes of equal shape.

    Raises :class:`MetricError` naming the offending cube (and, for NaN/Inf, the first bad
    element's band, row and column).
    """
    arrays = {}
    for name, cube in (("gt", gt), ("est", est)):
        a = np.asarray(cube)
        if a.dtype == bool or not (
            np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)
        ):
            raise MetricError(f"{name} must hold real numbers, got dtype {a.dtype}")
        if a.ndim != 3:
            raise MetricError(f"{name} must be a (bands, rows, cols) cube, got shape {a.shape}")
        if a.size == 0:
            raise MetricError(f"{name} is empty (shape {a.shape})")
        arrays[name] = a
    if arrays["gt"].shape != arrays["est"].shape:
        raise MetricError(
            f"shape mismatch: gt {arrays['gt'].shape} vs est {arrays['est'].shape}"
        )
    for name, a in arrays.items():
        finite = np.isfinite(a)
        if not finite.all():
            b, r, c = (int(i) for i in np.argwhere(~finite)[0])
            n_nan = int(np.isnan(a).sum())
            n_inf = int(a.size - finite.sum()) - n_nan
            raise MetricError(
                f"{name} contains {n_nan} NaN and {n_inf} Inf values "
                f"(first at band {b}, row {r}, col {c})"
            )


def _pair(gt, est) -> tuple[np.ndarray, np.ndarray]:
    """Validate and return both cubes as float64 arrays."""
    validate_pair(gt, est)
    return np.asarray(gt, dtype=np.float64), np.asarray(est, dtype=np.float64)


def _check_gt_bands(gt: np.ndarray, metric: str) -> None:
    """Refuse constant ground-truth bands (PSNR, ERGAS and CC are undefined on them)."""
    flat = gt.reshape(gt.shape[0], -1)
    const = np.flatnonzero(flat.max(axis=1) == flat.min(axis=1))
    if const.size:
        b = int(const[0])
        more = f" (constant bands: {const.tolist()})" if const.size > 1 else ""
        raise MetricError(
            f"{metric} undefined: ground-truth band {b} is constant "
            f"(value {flat[b, 0]!r}){more}; drop constant bands before scoring"
        )


def _check_scale(scale) -> float:
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
        raise MetricError(f"scale must be a positive number, got {scale!r}")
    if not math.isfinite(scale) or scale <= 0:
        raise MetricError(f"scale must be a positive finite number, got {scale!r}")
    return float(scale)


def _check_positive(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise MetricError(f"{what} must be a positive number, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise MetricError(f"{what} must be a positive finite number, got {value!r}")
    return float(value)


def _check_window(window, shape, what: str) -> int:
    if isinstance(window, bool) or not isinstance(window, numbers.Integral) or window < 1:
        raise MetricError(f"{what} window must be a positive integer, got {window!r}")
    if min(shape[1:]) < window:
        raise MetricError(
            f"{what} needs images of at least {window}x{window} pixels, got {shape[1]}x{shape[2]}"
        )
    return int(window)


def _reduce(per_band: np.ndarray, per_band_flag: bool):
    return per_band if per_band_flag else float(np.mean(per_band))


# --------------------------------------------------------------------------- pointwise metrics
def _mse_per_band(gt: np.ndarray, est: np.ndarray) -> np.ndarray:
    return np.mean((gt - est) ** 2, axis=(1, 2))


def rmse(gt, est) -> float:
    """Root-mean-square error.

    Definition: sqrt(mean over all elements of (X − X̂)²). Units: those of the data (the [0, 1]
    scale in the suite). Reduction: one global mean over bands and pixels (not a mean of per-band
    RMSEs; the per-band vector is ``sqrt(MSE_b)``, see :func:`_mse_per_band`).
    """
    g, e = _pair(gt, est)
    return float(np.sqrt(np.mean((g - e) ** 2)))


def psnr(gt, est, *, per_band: bool = False):
    """Peak signal-to-noise ratio with a per-band peak.

    Definition: PSNR_b = 10·log10(max(X_b)² / MSE_b). Units: dB. Reduction: mean over bands
    (``per_band=True`` returns the float64 vector). A band reproduced exactly has PSNR_b = +inf and
    the mean is then +inf (never NaN). A constant ground-truth band, or one whose maximum is not
    positive, raises :class:`MetricError` naming the band.
    """
    g, e = _pair(gt, est)
    _check_gt_bands(g, "PSNR")
    peak = g.max(axis=(1, 2))
    bad = np.flatnonzero(peak <= 0)
    if bad.size:
        raise MetricError(
            f"PSNR is undefined: ground-truth band {int(bad[0])} has maximum {peak[bad[0]]!r} "
            f"(the peak must be positive)"
        )
    mse = _mse_per_band(g, e)
    with np.errstate(divide="ignore", over="ignore"):
        values = 10.0 * np.log10(peak**2 / mse)  # mse == 0 -> +inf
    return _reduce(values, per_band)


def psnr_global(gt, est, *, peak: float, eps: float = 0.0, per_band: bool = False):
    """PSNR with one fixed peak and one MSE over the whole cube (UAL's convention).

    Definition: 10·log10(peak² / (MSE + eps)), MSE over all bands and pixels. Units: dB.
    Reduction: global (``per_band=True`` gives 10·log10(peak² / (MSE_b + eps)) per band instead).
    """
    g, e = _pair(gt, est)
    peak = _check_positive(peak, "peak")
    mse = _mse_per_band(g, e) if per_band else np.mean((g - e) ** 2)
    with np.errstate(divide="ignore", over="ignore"):
        values = 10.0 * np.log10(peak**2 / (mse + eps))
    return values if per_band else float(values)


def dd(gt, est) -> float:
    """Degree of distortion (Yokoya et al. 2017).

    Definition: mean over all elements of |X − X̂|. Units: data units. Reduction: global mean.
    """
    g, e = _pair(gt, est)
    return float(np.mean(np.abs(g - e)))


def cc(gt, est, *, per_band: bool = False):
    """Cross-correlation: the Pearson correlation of each band pair.

    Definition: CC_b = Σ(X_b − mean X_b)(X̂_b − mean X̂_b) / sqrt(Σ(X_b − mean)² Σ(X̂_b − mean)²),
    clipped to [−1, 1]. Units: none. Reduction: mean over bands. A constant ground-truth band
    raises :class:`MetricError`; a constant *estimate* band (a dead output) gets CC_b = 0.
    """
    g, e = _pair(gt, est)
    _check_gt_bands(g, "CC")
    gc = g - g.mean(axis=(1, 2), keepdims=True)
    ec = e - e.mean(axis=(1, 2), keepdims=True)
    num = np.sum(gc * ec, axis=(1, 2))
    den = np.sqrt(np.sum(gc**2, axis=(1, 2)) * np.sum(ec**2, axis=(1, 2)))
    values = np.zeros_like(num)
    ok = den > 0
    values[ok] = np.clip(num[ok] / den[ok], -1.0, 1.0)
    return _reduce(values, per_band)


def ergas(gt, est, *, scale, mu_from: str = "gt") -> float:
    """ERGAS, the relative dimensionless global error in synthesis (Wald 2000).

    Definition: (100 / s) · sqrt(mean_b MSE_b / μ_b²), s the linear scale factor (HR/LR pixel-size
    ratio), μ_b the mean of band b of the ground truth (``mu_from="gt"``, the suite default) or of
    the estimate (``mu_from="estimate"``, Yokoya's toolbox). Units: none (a percentage-like number;
    lower is better, 0 is perfect). Reduction: root mean over bands. Constant ground-truth bands,
    or a ground-truth band with zero mean, raise :class:`MetricError`; an estimate band with zero
    mean under ``mu_from="estimate"`` gives +inf.
    """
    g, e = _pair(gt, est)
    s = _check_scale(scale)
    _check_gt_bands(g, "ERGAS")
    if mu_from == "gt":
        mu = g.mean(axis=(1, 2))
        zero = np.flatnonzero(mu == 0)
        if zero.size:
            raise MetricError(f"ERGAS is undefined: ground-truth band {int(zero[0])} has mean 0")
    elif mu_from == "estimate":
        mu = e.mean(axis=(1, 2))
    else:
        raise MetricError(f"mu_from must be 'gt' or 'estimate', got {mu_from!r}")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = _mse_per_band(g, e) / mu**2
    ratio = np.where(mu == 0, np.inf, ratio)
    return float(100.0 / s * np.sqrt(np.mean(ratio)))


# ----------------------------------------------------------------------------------------- SAM
def sam_map(gt, est, *, zero_policy: str = "count90") -> np.ndarray:
    """Per-pixel spectral angle in degrees, ``(rows, cols)``; NaN marks pixels left out of the mean.

    cos_p = ⟨x_p, x̂_p⟩ / (‖x_p‖ ‖x̂_p‖), angle_p = arccos(clip(cos_p, −1, 1)) in degrees. Pixels
    where a spectrum has zero norm follow ``zero_policy``:

    - ``"count90"`` (suite default): a zero ground-truth pixel is left out; a zero estimate at a
      non-zero ground-truth pixel counts 90°.
    - ``"all90"``: every pixel counts; any zero-norm spectrum counts 90° (EU2ADL's +1e-7 in the
      denominator, UAL's norms clamped at 1e-12: the numerator is 0, so the angle is 90°).
    - ``"exclude"``: pixels where either spectrum has zero norm are left out (Yokoya's toolbox).
    - ``"cucanet"``: a zero estimate spectrum is replaced by the flat spectrum 1e-4 (as CUCaNet's
      code adds 1e-4 in place) and zero ground-truth pixels are left out (CUCaNet yields NaN).
    """
    g, e = _pair(gt, est)
    if zero_policy not in SAM_ZERO_POLICIES:
        raise MetricError(f"zero_policy must be one of {SAM_ZERO_POLICIES}, got {zero_policy!r}")
    g_sq = np.sum(g**2, axis=0)  # squared norms
    e_sq = np.sum(e**2, axis=0)
    if zero_policy == "cucanet":
        e = np.where(e_sq == 0, e + 1e-4, e)
        e_sq = np.sum(e**2, axis=0)
    dot = np.sum(g * e, axis=0)
    # ‖x‖‖x̂‖ as sqrt(‖x‖²‖x̂‖²): one rounding, so identical spectra give cos == 1 exactly
    # (sqrt(fl(a²)) == a in IEEE arithmetic) instead of an arccos round-off of ~1e-6 degrees.
    denom = np.sqrt(g_sq * e_sq)
    cos = np.clip(dot / np.where(denom > 0, denom, 1.0), -1.0, 1.0)
    angle = np.degrees(np.arccos(cos))
    g_zero, e_zero = g_sq == 0, e_sq == 0
    if zero_policy == "count90":
        angle[e_zero] = 90.0
        angle[g_zero] = np.nan
    elif zero_policy == "all90":
        angle[g_zero | e_zero] = 90.0
    elif zero_policy == "exclude":
        angle[g_zero | e_zero] = np.nan
    else:  # cucanet: the estimate has no zero pixel any more
        angle[g_zero] = np.nan
    return angle


def sam(gt, est, *, zero_policy: str = "count90") -> float:
    """Spectral angle mapper.

    Definition: mean over the pixels kept by ``zero_policy`` (see :func:`sam_map`; default: pixels
    with ‖x_p‖ > 0, a zero estimate there counting 90°) of arccos(clip(⟨x_p, x̂_p⟩ / (‖x_p‖‖x̂_p‖),
    −1, 1)). Units: degrees. Reduction: mean over pixels. Raises :class:`MetricError` when no pixel
    is left (e.g. an all-zero ground truth).
    """
    angle = sam_map(gt, est, zero_policy=zero_policy)
    kept = angle[~np.isnan(angle)]
    if kept.size == 0:
        raise MetricError("SAM is undefined: no pixel has a non-zero spectrum to compare")
    return float(np.mean(kept))


# ---------------------------------------------------------------------------------------- SSIM
def _ssim_map(g, e, smooth, c1, c2, cov_norm=1.0) -> np.ndarray:
    """Wang et al. 2004 SSIM map from local (weighted) means given by ``smooth``."""
    ux, uy = smooth(g), smooth(e)
    uxx, uyy, uxy = smooth(g * g), smooth(e * e), smooth(g * e)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    with np.errstate(divide="ignore", invalid="ignore"):
        return ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))


def ssim(gt, est, *, per_band: bool = False, data_range: float = 1.0):
    """Structural similarity (Wang et al. 2004), the suite default.

    Definition: per band, the SSIM map with local statistics weighted by a Gaussian window
    (σ = 1.5, truncated at 3.5σ: 11×11), population (co)variances, C1 = (0.01·L)², C2 = (0.03·L)²,
    L = ``data_range``; reflect boundary, then the map is cropped by the window radius (5 pixels)
    before averaging, exactly as ``skimage.metrics.structural_similarity(x_b, y_b,
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=L)``.
    Units: none (1 is perfect). Reduction: mean over the cropped map, then mean over bands.
    Needs images of at least 11×11 pixels.
    """
    g, e = _pair(gt, est)
    _check_window(2 * _SSIM_RADIUS + 1, g.shape, "SSIM")
    L = _check_positive(data_range, "data_range")

    def smooth(a):
        return ndimage.gaussian_filter(
            a, sigma=_SSIM_SIGMA, truncate=_SSIM_TRUNCATE, mode="reflect", axes=(1, 2)
        )

    s_map = _ssim_map(g, e, smooth, (_SSIM_K1 * L) ** 2, (_SSIM_K2 * L) ** 2)
    r = _SSIM_RADIUS
    return _reduce(s_map[:, r:-r, r:-r].mean(axis=(1, 2)), per_band)


def ssim_uniform(
    gt,
    est,
    *,
    per_band: bool = False,
    win_size: int = 7,
    data_range: float | str = "estimate",
    sample_covariance: bool = True,
):
    """SSIM with a uniform window, as scikit-image's default call (CUCaNet/EU2ADL code).

    Definition: per band, the SSIM map with local statistics over a ``win_size``×``win_size`` box
    (reflect boundary), (co)variances scaled by N/(N−1) when ``sample_covariance`` (skimage's
    default), C1 = (0.01·L)², C2 = (0.03·L)²; the map is cropped by (win_size − 1)/2 before
    averaging. ``data_range="estimate"`` takes L_b = max(X̂_b) − min(X̂_b) per band, as the papers'
    code does (a constant estimate band then has L_b = 0 and the value is whatever the formula
    gives, as in the original). Equals ``structural_similarity(x_b, y_b, data_range=L_b)``.
    Units: none. Reduction: mean over the cropped map, then over bands.
    """
    g, e = _pair(gt, est)
    w = _check_window(win_size, g.shape, "SSIM")
    if w % 2 == 0:
        raise MetricError(f"SSIM win_size must be odd, got {w}")
    if isinstance(data_range, str):
        if data_range != "estimate":
            raise MetricError(f"data_range must be a number or 'estimate', got {data_range!r}")
        L = (e.max(axis=(1, 2)) - e.min(axis=(1, 2)))[:, None, None]
    else:
        L = _check_positive(data_range, "data_range")
    n = w * w
    cov_norm = n / (n - 1) if sample_covariance else 1.0

    def smooth(a):
        return ndimage.uniform_filter(a, size=w, mode="reflect", axes=(1, 2))

    s_map = _ssim_map(g, e, smooth, (_SSIM_K1 * L) ** 2, (_SSIM_K2 * L) ** 2, cov_norm)
    p = (w - 1) // 2
    return _reduce(s_map[:, p : s_map.shape[1] - p, p : s_map.shape[2] - p].mean(axis=(1, 2)),
                   per_band)


def ssim_zero_padded(gt, est, *, per_band: bool = False, data_range: float = 1.0):
    """SSIM as the common PyTorch ``ssim`` (pytorch-ssim style) that UAL's evaluation uses.

    Definition: Gaussian window 11×11, σ = 1.5, population (co)variances, C1 = (0.01·L)²,
    C2 = (0.03·L)² with L = ``data_range`` (UAL: 1, data on [0, 1]); the image is zero-padded by 5
    ("same" convolution) and the whole map is averaged, borders included. UAL's ``SSIM.py`` was not
    available; this is the standard implementation its call signature points to. Units: none.
    Reduction: mean over the map of each band, then over bands (= mean over the whole cube).
    """
    g, e = _pair(gt, est)
    L = _check_positive(data_range, "data_range")

    def smooth(a):
        return ndimage.gaussian_filter(
            a, sigma=_SSIM_SIGMA, truncate=_SSIM_TRUNCATE, mode="constant", cval=0.0, axes=(1, 2)
        )

    s_map = _ssim_map(g, e, smooth, (_SSIM_K1 * L) ** 2, (_SSIM_K2 * L) ** 2)
    return _reduce(s_map.mean(axis=(1, 2)), per_band)


# ---------------------------------------------------------------------------------------- UIQI
def _valid_window_mean(a: np.ndarray, w: int) -> np.ndarray:
    """Mean over every w×w window lying fully inside each band (stride 1): (B, R−w+1, C−w+1)."""
    a = sliding_window_view(a, w, axis=1).mean(axis=-1)
    return sliding_window_view(a, w, axis=2).mean(axis=-1)


def _valid_window_constant(a: np.ndarray, w: int) -> np.ndarray:
    """True for every fully-inside w×w window whose values are all equal (exact test)."""
    hi = ndimage.maximum_filter(a, size=w, mode="nearest", axes=(1, 2))
    lo = ndimage.minimum_filter(a, size=w, mode="nearest", axes=(1, 2))
    # scipy centres a size-w window at offsets -(w//2) .. (w-1)//2, so the window starting at
    # pixel i is the output at i + w//2; keep the outputs whose window lies fully inside.
    r0, rows, cols = w // 2, a.shape[1] - w + 1, a.shape[2] - w + 1
    return (hi == lo)[:, r0 : r0 + rows, r0 : r0 + cols]


def uiqi(gt, est, *, per_band: bool = False, window: int = 8):
    """Universal image quality index Q (Wang & Bovik 2002) on sliding windows.

    Definition: for each ``window``×``window`` window fully inside the band (stride 1),
    Q = 4 σ_xy μ_x μ_y / ((σ_x² + σ_y²)(μ_x² + μ_y²)) (the normalisation of the (co)variances
    cancels). Degenerate windows, where the denominator is 0: Q = 1 when both windows are
    constant with the same value, Q = 0 otherwise (a flat window against a different flat window,
    or zero means). Flatness is tested exactly (window max == min), so round-off in the variances
    cannot turn a flat window into noise. Units: none (1 is perfect, range [−1, 1]).
    Reduction: mean over windows, then mean over bands.
    """
    g, e = _pair(gt, est)
    w = _check_window(window, g.shape, "UIQI")
    mx, my = _valid_window_mean(g, w), _valid_window_mean(e, w)
    # (Co)variances are shift-invariant: centring each band first limits cancellation in
    # E[x²] − E[x]² without changing the result.
    gc = g - g.mean(axis=(1, 2), keepdims=True)
    ec = e - e.mean(axis=(1, 2), keepdims=True)
    mgc, mec = _valid_window_mean(gc, w), _valid_window_mean(ec, w)
    vx = np.maximum(_valid_window_mean(gc * gc, w) - mgc**2, 0.0)
    vy = np.maximum(_valid_window_mean(ec * ec, w) - mec**2, 0.0)
    vxy = _valid_window_mean(gc * ec, w) - mgc * mec
    flat_x, flat_y = _valid_window_constant(g, w), _valid_window_constant(e, w)
    vx[flat_x] = 0.0
    vy[flat_y] = 0.0
    vxy[flat_x | flat_y] = 0.0
    num = 4.0 * vxy * mx * my
    den = (vx + vy) * (mx**2 + my**2)
    q = np.zeros_like(den)
    ok = den > 0
    q[ok] = num[ok] / den[ok]
    # Both windows flat: equal values -> 1 (else 0). The window's value is its top-left element.
    rows, cols = q.shape[1:]
    same = flat_x & flat_y & (g[:, :rows, :cols] == e[:, :rows, :cols])
    q[same] = 1.0
    return _reduce(q.mean(axis=(1, 2)), per_band)


def uiqi_sewar(gt, est, *, per_band: bool = False, window: int = 8):
    """UQI as ``sewar.full_ref.uqi`` 0.4.10 computes it (CUCaNet/EU2ADL code), per band.

    sewar takes window *means* m from ``scipy.ndimage.uniform_filter`` (reflect boundary, size w)
    but plugs them into Wang–Bovik's *sum*-based formula with N = w²:
    Q = 4 (N·m_xy − m_x m_y) m_x m_y / ((N (m_xx + m_yy) − (m_x² + m_y²)) (m_x² + m_y²)),
    where m_xy, m_xx, m_yy are window means of xy, x², y². Where that denominator is 0:
    Q = 2 m_x m_y / (m_x² + m_y²) if only its first factor is 0, else 1. The map is then cropped by
    round(w/2) on every side and averaged. The mixing makes the index lean on the luminance term:
    values near 0.99 where Wang–Bovik gives ~0.9. Units: none. Reduction: mean over the cropped
    map, then over bands. (Reproduced from sewar's documented behaviour; sewar is MIT-licensed.)
    """
    g, e = _pair(gt, est)
    w = _check_window(window, g.shape, "UIQI")
    n = w * w

    def box(a):
        return ndimage.uniform_filter(a, size=w, mode="reflect", axes=(1, 2))

    mx, my = box(g), box(e)
    mxx, myy, mxy = box(g * g), box(e * e), box(g * e)
    prod = mx * my
    sq_sum = mx * mx + my * my
    num = 4.0 * (n * mxy - prod) * prod
    den1 = n * (mxx + myy) - sq_sum
    den = den1 * sq_sum
    q = np.ones_like(den)
    lum_only = (den1 == 0) & (sq_sum != 0)
    q[lum_only] = 2.0 * prod[lum_only] / sq_sum[lum_only]
    ok = den != 0
    q[ok] = num[ok] / den[ok]
    s = int(np.round(w / 2))
    return _reduce(q[:, s:-s, s:-s].mean(axis=(1, 2)), per_band)


# ----------------------------------------------------------------------------------------- Q2n
def _conj(x: np.ndarray) -> np.ndarray:
    """Hypercomplex conjugate: negate every component but the real one (axis 0)."""
    out = -x
    out[0] = x[0]
    return out


@functools.lru_cache(maxsize=None)
def _onion_table(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Multiplication table of the 2^k-on algebra used by Q2n: e_i · e_j = sign[i, j] e_{i XOR j}.

    The product is the Cayley–Dickson doubling used by Garzelli & Nencini's Q2n code: writing
    x = (a, b) and y = (c, d) with halves of 2^(k−1) components,
        x · y = (a c − d* b,  a* d* + c b*),    * = conjugate,
    and the ordinary product for n = 1. With basis elements this gives the recursion below
    (c(i) = +1 for i = 0, −1 otherwise, the sign the conjugate puts on e_i); the table is exact
    (entries ±1), so a product costs n² multiply-adds per pixel.
    """
    if n == 1:
        return np.ones((1, 1)), np.zeros((1, 1), dtype=np.intp)
    h = n // 2
    s_h, _ = _onion_table(h)
    c = np.where(np.arange(h) == 0, 1.0, -1.0)  # conjugate signs
    sign = np.empty((n, n))
    sign[:h, :h] = s_h  # (e_i, 0)(e_j, 0) = (e_i e_j, 0)
    sign[:h, h:] = c[:, None] * c[None, :] * s_h  # (e_i, 0)(0, e_j) = (0, e_i* e_j*)
    sign[h:, :h] = c[:, None] * s_h.T  # (0, e_i)(e_j, 0) = (0, e_j e_i*)
    sign[h:, h:] = -c[None, :] * s_h.T  # (0, e_i)(0, e_j) = (−e_j* e_i, 0)
    index = np.arange(n)[:, None] ^ np.arange(n)[None, :]
    return sign, index


def onion_product(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Product of hypercomplex numbers stored along axis 0 (2^k components; any trailing shape).

    (x·y)_k = Σ_i sign[i, i⊕k] x_i y_{i⊕k}, with the table of :func:`_onion_table`.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = x.shape[0]
    if n & (n - 1) or y.shape[0] != n:
        raise MetricError(f"hypercomplex numbers need 2^k components on axis 0, got {n}")
    sign, index = _onion_table(n)
    out = np.zeros(np.broadcast_shapes(x.shape, y.shape))
    for k in range(n):  # loop over the n components, not over pixels
        j = index[:, k]  # i XOR k
        out[k] = np.tensordot(sign[np.arange(n), j], x * y[j], axes=(0, 0))
    return out


def _onion_mean_product(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per block, the mean over pixels of x_p · y_p: x, y (n, K, P) -> (K, n).

    The product is bilinear, so the mean of products is the table contracted with the n×n
    cross-moment matrix M[i, j] = mean_p x_i y_j (a batched matrix product).
    """
    n, _, p = x.shape
    moments = np.matmul(x.transpose(1, 0, 2), y.transpose(1, 2, 0)) / p  # (K, n, n)
    sign, index = _onion_table(n)
    rows = np.arange(n)[None, :]  # i
    cols = index.T  # cols[k, i] = i XOR k
    return np.sum(sign[rows, cols][None] * moments[:, rows, cols], axis=-1)


def q2n(gt, est, *, block: int = 32, shift: int = 32) -> float:
    """Q2n, the hypercomplex extension of the Q index (Garzelli & Nencini 2009).

    Each pixel spectrum is a hypercomplex number with 2^k components (bands zero-padded to the
    next power of two). On every ``block``×``block`` block (step ``shift``; the image is first
    extended at the bottom/right by half-sample mirroring so that the blocks tile it):

    1. each band of both blocks is normalised with the ground-truth block's mean m and sample
       standard deviation t (t = 0 -> machine eps): z = (x − m)/t + 1; if m == 0 the estimate is
       only shifted, ẑ = x̂ − m + 1 (so zero-padded bands become the constant 1 in both);
    2. Q = |σ_{z ẑ*}| / (σ_z σ_ẑ) · 2 σ_z σ_ẑ / (σ_z² + σ_ẑ²) · 2 |z̄| |ẑ̄| / (|z̄|² + |ẑ̄|²)
         = 4 |σ_{z ẑ*}| |z̄| |ẑ̄| / ((σ_z² + σ_ẑ²)(|z̄|² + |ẑ̄|²)),
       with the hypercomplex covariance σ_{z ẑ*} = E[z ẑ*] − z̄ ẑ̄* (product of
       :func:`onion_product`), σ² = E|z|² − |z̄|², sample (N/(N−1)) moments; a block with
       σ_z² + σ_ẑ² = 0 scores 2|z̄||ẑ̄|/(|z̄|² + |ẑ̄|²).

    These steps follow the reference MATLAB implementation used by Yokoya's toolbox and the
    pansharpening toolboxes (q2n.m / onions_quality.m, written here from the formulas).
    Units: none (1 is perfect). Reduction: mean over blocks.
    """
    g, e = _pair(gt, est)
    for name, v in (("block", block), ("shift", shift)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 2:
            raise MetricError(f"Q2n {name} must be an integer >= 2, got {v!r}")
    bands, rows, cols = g.shape
    n_y, n_x = math.ceil(rows / shift), math.ceil(cols / shift)
    pad_y = max((n_y - 1) * shift + block - rows, 0)
    pad_x = max((n_x - 1) * shift + block - cols, 0)
    n = 1 << max(bands - 1, 0).bit_length()  # next power of two >= bands
    pad = ((0, n - bands), (0, pad_y), (0, pad_x))
    # Spatial half-sample mirroring; the extra bands are zeros (np.pad 'symmetric' would mirror
    # them too, so pad space first, then bands).
    g = np.pad(np.pad(g, ((0, 0),) + pad[1:], mode="symmetric"), (pad[0], (0, 0), (0, 0)))
    e = np.pad(np.pad(e, ((0, 0),) + pad[1:], mode="symmetric"), (pad[0], (0, 0), (0, 0)))

    def blocks(a):  # (n, R, C) -> (n, K, P): K blocks of P = block² pixels
        win = sliding_window_view(a, (block, block), axis=(1, 2))[:, ::shift, ::shift]
        return win.reshape(n, -1, block * block)

    x, y = blocks(g), blocks(e)
    p = x.shape[2]
    m = x.mean(axis=2, keepdims=True)
    t = x.std(axis=2, ddof=1, keepdims=True)
    t = np.where(t == 0, np.finfo(np.float64).eps, t)
    z = (x - m) / t + 1.0
    zh = np.where(m == 0, y - m + 1.0, (y - m) / t + 1.0)
    zh = _conj(zh)  # the estimate enters conjugated

    f = p / (p - 1)  # sample-moment factor
    m1, m2 = z.mean(axis=2), zh.mean(axis=2)  # (n, K)
    sq1, sq2 = np.sum(m1**2, axis=0), np.sum(m2**2, axis=0)  # |z̄|², |ẑ̄|²
    var_sum = f * (np.mean(np.sum(z**2, axis=0), axis=1) + np.mean(np.sum(zh**2, axis=0), axis=1)
                   - (sq1 + sq2))
    mean_bias = 2.0 * np.sqrt(sq1 * sq2) / (sq1 + sq2)
    cov = f * (_onion_mean_product(z, zh) - onion_product(m1, m2).T)  # (K, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.sqrt(np.sum(cov**2, axis=1)) * mean_bias * 2.0 / var_sum
    q = np.where(var_sum == 0, mean_bias, q)
    return float(np.mean(q))
