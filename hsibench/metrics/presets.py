"""Metric presets: the suite default and the papers' own conventions, each defined in one place.

A preset fixes every choice that changes a number (window, data range, peak, zero-pixel policy,
ERGAS mean, rounding). ``hsibench`` is the suite default of ``docs/conventions.md`` §8; the others
reproduce what the papers' released code computes, so that their
published numbers can be compared like with like. Every preset reports the same eight scalars
(:data:`~hsibench.metrics.reference.METRIC_NAMES`); a metric a paper does not report is computed
as in ``hsibench``, and ``yokoya`` adds ``q2n``.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

from ..accel import cuda_kernel_path, is_cuda_array, kernel_path
from ..xp import to_numpy
from .reference import (
    METRIC_NAMES,
    MetricError,
    _check_gt_bands,
    _check_scale,
    _mse_per_band,
    _pair,
    cc,
    dd,
    ergas,
    psnr,
    psnr_global,
    q2n,
    rmse,
    sam,
    ssim,
    ssim_uniform,
    ssim_zero_padded,
    uiqi,
    uiqi_sewar,
)

__all__ = ["MetricReport", "Preset", "PRESETS", "compute_metrics", "metric_definitions"]

Scalars = dict[str, float]
PerBand = dict[str, np.ndarray]


@dataclass(frozen=True)
class MetricReport:
    """The metrics of one estimate against its ground truth, with the definitions used.

    ``scalars`` holds the eight :data:`METRIC_NAMES` (plus ``q2n`` for ``yokoya``); ``per_band``
    holds float64 vectors of length ``bands`` for ``psnr``, ``rmse``, ``cc``, ``ssim`` and
    ``uiqi``; ``definitions`` has one line per scalar (definition, units, reduction) for the
    result row; ``settings`` records scale, crop and data_range.
    """

    scalars: dict[str, float]
    per_band: dict[str, np.ndarray]
    preset: str
    definitions: dict[str, str]
    settings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Plain-data form (per-band vectors as lists of floats).

        Non-finite values stay Python floats: a perfect band gives ``float('inf')`` PSNR, which
        ``json.dumps`` writes as ``Infinity`` (and ``json.loads`` reads back); pass
        ``allow_nan=False`` there only if strict JSON is needed and map them first.
        """
        return {
            "preset": self.preset,
            "scalars": {k: float(v) for k, v in self.scalars.items()},
            "per_band": {k: [float(x) for x in v] for k, v in self.per_band.items()},
            "definitions": dict(self.definitions),
            "settings": dict(self.settings),
        }


@dataclass(frozen=True)
class Preset:
    """A named metric convention: what it computes (``compute``) and how it says so."""

    name: str
    summary: str
    definitions: Mapping[str, str]
    compute: Callable[[np.ndarray, np.ndarray, float, float], tuple[Scalars, PerBand]]


# ------------------------------------------------------------------------ the suite default
_HSIBENCH_DEFINITIONS = {
    "rmse": "sqrt(mean over all elements of (X - X^)^2); data units ([0,1] scale); global",
    "psnr": "10 log10(max(X_b)^2 / MSE_b) per band; dB; mean over bands (+inf if a band is exact)",
    "sam": "arccos(clip(<x,x^>/(|x||x^|), -1, 1)) per pixel; degrees; mean over pixels with "
    "|x|>0, a zero estimate there counting 90 deg",
    "ergas": "(100/s) sqrt(mean_b MSE_b / mu_b^2), mu_b = mean of GT band b, s = true scale; "
    "unitless; root mean over bands",
    "ssim": "Wang 2004 SSIM, Gaussian 11x11 sigma 1.5, K1 0.01, K2 0.03, L = data_range, "
    "population cov, reflect border, map cropped by 5; unitless; mean over map, then bands "
    "(= skimage gaussian_weights=True, use_sample_covariance=False)",
    "uiqi": "Wang-Bovik Q = 4 s_xy mx my / ((s_x^2 + s_y^2)(mx^2 + my^2)) on 8x8 windows fully "
    "inside, stride 1 (flat windows: 1 if equal, else 0); unitless; mean over windows, then bands",
    "cc": "Pearson correlation of X_b and X^_b (0 if X^_b is constant); unitless; mean over bands",
    "dd": "mean over all elements of |X - X^|; data units; global",
}


def _compute_hsibench_pointwise(g, e, scale) -> tuple[Scalars, PerBand]:
    """The default metrics that need no window (shared with the paper presets): one fused pass
    (:func:`hsibench.kernels.scalar_metrics`, on the device for device arrays) where allowed,
    else the reference functions."""
    if kernel_path(g, e):
        from ..kernels import band_sums, metrics_from_sums

        sums = _fused(band_sums, g, e, sam_zero_policy="count90")
        if cuda_kernel_path(g, e):  # the host path refused constant bands before (same wording)
            _check_constant_sums(sums, "PSNR, ERGAS and CC")
        m = _fused(metrics_from_sums, sums, scale)
        per_band = {"psnr": m["psnr_per_band"], "rmse": m["rmse_per_band"], "cc": m["cc_per_band"]}
        return {k: m[k] for k in ("rmse", "psnr", "sam", "ergas", "cc", "dd")}, per_band
    per_band = {
        "psnr": psnr(g, e, per_band=True),
        "rmse": np.sqrt(_mse_per_band(g, e)),
        "cc": cc(g, e, per_band=True),
    }
    scalars = {
        "rmse": rmse(g, e),
        "psnr": float(np.mean(per_band["psnr"])),
        "sam": sam(g, e, zero_policy="count90"),
        "ergas": ergas(g, e, scale=scale, mu_from="gt"),
        "cc": float(np.mean(per_band["cc"])),
        "dd": dd(g, e),
    }
    return scalars, per_band


def _check_constant_sums(sums, metric: str) -> None:
    """:func:`~hsibench.metrics.reference._check_gt_bands` from the fused pass's sums (device path)."""
    const = np.flatnonzero(sums.constant_gt)
    if const.size:
        b = int(const[0])
        more = f" (constant bands: {const.tolist()})" if const.size > 1 else ""
        raise MetricError(
            f"{metric} undefined: ground-truth band {b} is constant "
            f"(value {np.float64(sums.max_gt[b])!r}){more}; drop constant bands before scoring"
        )


def _on_host(g, e) -> tuple[np.ndarray, np.ndarray]:
    """The pair as float64 NumPy arrays. Device arrays are copied to the host here, once per call
    of a preset, only for the paper variants that have no device kernel (uniform-window and
    zero-padded SSIM, sewar's UQI, Q2n, the rounded 8-bit PSNR, the SAM/ERGAS variants)."""
    if is_cuda_array(g) or is_cuda_array(e):
        return np.asarray(_to_host(g), dtype=np.float64), np.asarray(_to_host(e), dtype=np.float64)
    return g, e


def _to_host(a) -> np.ndarray:
    """NumPy view or copy of any array (device arrays: one device-to-host copy)."""
    if is_cuda_array(a):
        from ..kernels._arrays import device_to_host

        return device_to_host(a)
    return to_numpy(a)


def _fused(fn, *args, **kwargs):
    """Call a fused metric kernel, reporting its input errors as :class:`MetricError`."""
    from ..kernels import MetricInputError

    try:
        return fn(*args, **kwargs)
    except MetricInputError as exc:
        raise MetricError(str(exc)) from None


def _compute_hsibench(g, e, scale, data_range) -> tuple[Scalars, PerBand]:
    scalars, per_band = _compute_hsibench_pointwise(g, e, scale)
    if kernel_path(g, e):
        from ..kernels import windowed_metrics

        w = _fused(windowed_metrics, g, e, data_range=data_range)
        per_band["ssim"], per_band["uiqi"] = w["ssim_per_band"], w["uiqi_per_band"]
    else:
        per_band["ssim"] = ssim(g, e, per_band=True, data_range=data_range)
        per_band["uiqi"] = uiqi(g, e, per_band=True, window=8)
    scalars["ssim"] = float(np.mean(per_band["ssim"]))
    scalars["uiqi"] = float(np.mean(per_band["uiqi"]))
    return scalars, per_band


# ------------------------------------------------------------ CUCaNet / EU2ADL released code
_PAPER_SSIM = (
    "skimage structural_similarity defaults: uniform 7x7 window, sample cov (N/(N-1)), K1 0.01, "
    "K2 0.03, L_b = max(X^_b) - min(X^_b) from the estimate, map cropped by 3; unitless; "
    "mean over map, then bands"
)
_SEWAR_UQI = (
    "sewar 0.4.10 uqi: 8x8 box means (reflect) in the sum-based Wang-Bovik formula with N = 64, "
    "map cropped by 4; unitless; mean over map, then bands (~0.99 where Wang-Bovik gives ~0.9)"
)

_CUCANET_DEFINITIONS = {
    **_HSIBENCH_DEFINITIONS,
    "sam": "arccos(clip(cos, -1, 1)) per pixel; degrees; mean over all pixels; a zero estimate "
    "spectrum is replaced by the flat spectrum 1e-4 (CUCaNet code), zero GT pixels left out "
    "(NaN in the original)",
    "ergas": "(100/s) sqrt(mean_b MSE_b / mu_b^2), mu_b from GT, s = the true scale (the "
    "CUCaNet logger's hard-coded r = 16 is not reproduced); unitless; root mean over bands",
    "ssim": _PAPER_SSIM,
    "uiqi": _SEWAR_UQI,
}


def _compute_cucanet(g, e, scale, data_range) -> tuple[Scalars, PerBand]:
    scalars, per_band = _compute_hsibench_pointwise(g, e, scale)
    g, e = _on_host(g, e)
    per_band["ssim"] = ssim_uniform(g, e, per_band=True, win_size=7, data_range="estimate")
    per_band["uiqi"] = uiqi_sewar(g, e, per_band=True, window=8)
    scalars["sam"] = sam(g, e, zero_policy="cucanet")
    scalars["ssim"] = float(np.mean(per_band["ssim"]))
    scalars["uiqi"] = float(np.mean(per_band["uiqi"]))
    return scalars, per_band


_EU2ADL_DEFINITIONS = {
    **_CUCANET_DEFINITIONS,
    "sam": "arccos(clip(cos, -1, 1)) per pixel; degrees; mean over all pixels, a zero-norm "
    "spectrum on either side counting 90 deg (EU2ADL's +1e-7 denominator)",
    "ergas": "(100/s) sqrt(mean_b MSE_b / mu_b^2), mu_b from GT, s = the true scale; unitless; "
    "root mean over bands",
}


def _compute_eu2adl(g, e, scale, data_range) -> tuple[Scalars, PerBand]:
    scalars, per_band = _compute_cucanet(g, e, scale, data_range)
    if cuda_kernel_path(g, e):  # SAM's zero policies are in the device kernel too: no copy
        from ..kernels import band_sums

        sums = _fused(band_sums, g, e, sam_zero_policy="all90")
        if sums.sam_count == 0:
            raise MetricError("SAM is undefined: no pixel has a non-zero spectrum to compare")
        scalars["sam"] = sums.sam_sum / sums.sam_count
    else:
        scalars["sam"] = sam(g, e, zero_policy="all90")
    return scalars, per_band


# ------------------------------------------------------------------------- UAL released code
#: UAL adds this to the MSE before the log (PSNR_GPU), so a perfect estimate scores ~168.1 dB.
UAL_PSNR_EPS = 1e-12

_UAL_DEFINITIONS = {
    **_HSIBENCH_DEFINITIONS,
    "rmse": "255 * sqrt(mean over all elements of (X - X^)^2) on the unrounded data (UAL's "
    "RMSE_torch); 8-bit units; global",
    "psnr": "10 log10(255^2 / (MSE + 1e-12)), MSE over all bands of round(255 X) vs "
    "round(255 X^); dB; global (per_band: same per band)",
    "sam": "arccos(clip(cos, -1, 1)) per pixel; degrees; mean over all rows*cols pixels, a "
    "zero-norm spectrum counting 90 deg (norms clamped at 1e-12; NaN -> 0)",
    "ssim": "Gaussian 11x11 sigma 1.5, C1 = 0.01^2, C2 = 0.03^2 (data on [0,1], unrounded), "
    "population cov, zero padding 'same', no crop (pytorch-ssim style); unitless; mean over "
    "the whole cube",
}


def _compute_ual(g, e, scale, data_range) -> tuple[Scalars, PerBand]:
    # UAL's Result_Evaluate.py order matters: SSIM and RMSE see the [0,1] data; PSNR_GPU scales
    # by 255 in place and rounds a copy; SAM then sees the x255 (unrounded) data, and SAM is
    # scale-invariant, so it is computed on the [0,1] data here.
    scalars, per_band = _compute_hsibench_pointwise(g, e, scale)
    g, e = _on_host(g, e)
    g8, e8 = np.round(g * 255.0), np.round(e * 255.0)
    per_band["uiqi"] = uiqi(g, e, per_band=True, window=8)
    scalars["uiqi"] = float(np.mean(per_band["uiqi"]))
    per_band["psnr"] = psnr_global(g8, e8, peak=255.0, eps=UAL_PSNR_EPS, per_band=True)
    per_band["rmse"] = 255.0 * np.sqrt(_mse_per_band(g, e))
    per_band["ssim"] = ssim_zero_padded(g, e, per_band=True, data_range=1.0)
    scalars["psnr"] = psnr_global(g8, e8, peak=255.0, eps=UAL_PSNR_EPS)
    scalars["rmse"] = 255.0 * rmse(g, e)
    scalars["sam"] = sam(g, e, zero_policy="all90")
    scalars["ssim"] = float(np.mean(per_band["ssim"]))
    return scalars, per_band


# ---------------------------------------------------------------- Yokoya's toolbox (GRSM 2017)
_YOKOYA_DEFINITIONS = {
    **_HSIBENCH_DEFINITIONS,
    "sam": "arccos(clip(cos, -1, 1)) per pixel; degrees; mean over pixels where both spectra "
    "have non-zero norm",
    "ergas": "(100/s) sqrt(mean_b MSE_b / mu_b^2), mu_b = mean of the ESTIMATE band b "
    "(ERGAS(I_fused, I_ref)); unitless; root mean over bands",
    "q2n": "Garzelli-Nencini Q2n: hypercomplex Q on 32x32 blocks (shift 32), bands zero-padded "
    "to 2^k, per-block band normalisation by the GT block; unitless; mean over blocks",
}


def _compute_yokoya(g, e, scale, data_range) -> tuple[Scalars, PerBand]:
    scalars, per_band = _compute_hsibench(g, e, scale, data_range)
    g, e = _on_host(g, e)
    scalars["sam"] = sam(g, e, zero_policy="exclude")
    scalars["ergas"] = ergas(g, e, scale=scale, mu_from="estimate")
    scalars["q2n"] = q2n(g, e, block=32, shift=32)
    return scalars, per_band


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("hsibench", "suite default (docs/conventions.md §8)", _HSIBENCH_DEFINITIONS,
               _compute_hsibench),
        Preset("cucanet", "CUCaNet released code (utils/visualizer.py MetricsCal)",
               _CUCANET_DEFINITIONS, _compute_cucanet),
        Preset("eu2adl", "EU2ADL released code (model/evaluation.py)", _EU2ADL_DEFINITIONS,
               _compute_eu2adl),
        Preset("ual", "UAL released code (PY_Evalue/Result_Evaluate.py, function.py)",
               _UAL_DEFINITIONS, _compute_ual),
        Preset("yokoya", "Yokoya HSMSFusionToolbox QualityIndices.m", _YOKOYA_DEFINITIONS,
               _compute_yokoya),
    )
}


def _get_preset(preset: str) -> Preset:
    try:
        return PRESETS[preset]
    except (KeyError, TypeError):
        raise MetricError(f"unknown metric preset {preset!r}; known: {sorted(PRESETS)}") from None


def metric_definitions(preset: str = "hsibench") -> dict[str, str]:
    """One line per scalar metric of ``preset``: definition; units; reduction."""
    return dict(_get_preset(preset).definitions)


def _device_pair(gt, est):
    """The shape checks of :func:`~hsibench.metrics.reference.validate_pair` on device arrays
    (metadata only; the values are checked by the fused pass)."""
    from ..kernels._arrays import device_view

    g, e = device_view(gt), device_view(est)
    for name, a in (("gt", g), ("est", e)):
        shape = tuple(int(n) for n in a.shape)
        if len(shape) != 3:
            raise MetricError(f"{name} must be a (bands, rows, cols) cube, got shape {shape}")
        if 0 in shape:
            raise MetricError(f"{name} is empty (shape {shape})")
    if tuple(g.shape) != tuple(e.shape):
        raise MetricError(f"shape mismatch: gt {tuple(g.shape)} vs est {tuple(e.shape)}")
    return g, e


def compute_metrics(
    gt,
    est,
    *,
    scale,
    preset: str = "hsibench",
    crop: int = 0,
    data_range: float = 1.0,
) -> MetricReport:
    """All metrics of ``est`` against ``gt`` under one preset (``docs/conventions.md`` §8).

    Where it runs: NumPy arrays go through the fused CPU kernels (in float64). float32/float64
    device arrays (CuPy, CUDA torch tensors without grad, Numba device arrays, any
    ``__cuda_array_interface__`` exporter; see :func:`hsibench.accel.cuda_kernel_path`) are
    scored on the device by the numba-cuda kernels, zero-copy, and only the per-band results
    come back; the ``hsibench`` preset never copies a cube to the host. The paper presets'
    variants that have no device kernel (uniform-window and zero-padded SSIM, sewar's UQI, Q2n,
    UAL's 8-bit PSNR, the SAM/ERGAS variants) copy the pair to the host once. Any other array
    (CPU torch, other dtypes, or everything under ``use_kernels(False)``) is copied to a float64
    NumPy array and scored by the references. Results are Python floats and float64 NumPy
    vectors in every case.

    Parameters
    ----------
    gt, est : array (bands, rows, cols)
        Ground truth and estimate, on the [0, 1] scale of the conventions.
    scale : float
        The true spatial scale factor s (used by ERGAS).
    preset : str
        ``hsibench`` (default), ``cucanet``, ``eu2adl``, ``ual`` or ``yokoya`` (see :data:`PRESETS`).
    crop : int
        Pixels removed on every spatial border of both cubes first.
    data_range : float
        SSIM's L for the presets with a fixed range (``hsibench``, ``yokoya``).

    Returns
    -------
    MetricReport
        ``scalars`` (rmse, psnr, sam, ergas, ssim, uiqi, cc, dd; + q2n for ``yokoya``), ``per_band``
        vectors, the ``definitions`` (one line per metric) and the ``settings``.

    Raises
    ------
    MetricError
        A bad pair (shape, NaN/Inf, not 3-D), an unknown preset, a bad scale, crop or data_range,
        a constant ground-truth band (named), or images too small for the windows (SSIM needs 11×11).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> gt = rng.random((4, 16, 16))
    >>> est = gt + 0.01
    >>> m = compute_metrics(gt, est, scale=4)
    >>> round(m.scalars["rmse"], 6), round(m.scalars["dd"], 6)
    (0.01, 0.01)
    >>> compute_metrics(gt, gt, scale=4).scalars["psnr"]
    inf
    """
    p = _get_preset(preset)
    s = _check_scale(scale)
    if isinstance(data_range, bool) or not isinstance(data_range, numbers.Real) or not (
        math.isfinite(data_range) and data_range > 0
    ):
        raise MetricError(f"data_range must be a positive finite number, got {data_range!r}")
    on_device = cuda_kernel_path(gt, est)
    if on_device:  # stays on the device: NaN/Inf and constant bands are caught by the fused pass
        g, e = _device_pair(gt, est)
    else:
        g, e = _pair(_to_host(gt), _to_host(est))
    if isinstance(crop, bool) or not isinstance(crop, numbers.Integral) or crop < 0:
        raise MetricError(f"crop must be a non-negative integer, got {crop!r}")
    if 2 * crop >= min(g.shape[1:]):
        raise MetricError(f"crop={crop} leaves no pixel of a {g.shape[1]}x{g.shape[2]} image")
    if crop:
        g, e = g[:, crop:-crop, crop:-crop], e[:, crop:-crop, crop:-crop]
    if not on_device:
        _check_gt_bands(g, "PSNR, ERGAS and CC")
    scalars, per_band = p.compute(g, e, s, float(data_range))
    missing = set(METRIC_NAMES) - set(scalars)
    assert not missing, f"preset {p.name} lacks {missing}"
    return MetricReport(
        scalars={k: float(scalars[k]) for k in (*METRIC_NAMES, *sorted(set(scalars) - set(METRIC_NAMES)))},
        per_band={k: np.asarray(v, dtype=np.float64) for k, v in per_band.items()},
        preset=p.name,
        definitions=dict(p.definitions),
        settings={"scale": s, "crop": int(crop), "data_range": float(data_range)},
    )
