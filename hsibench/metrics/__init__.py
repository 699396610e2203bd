"""Image-quality metrics for HSI super-resolution: the NumPy reference and the named presets.

``compute_metrics(gt, est, scale=s)`` gives every metric of the suite default (one line per
metric: :func:`metric_definitions`); ``preset=`` selects a paper's own convention (see
:data:`PRESETS`). The single metric functions are the reference the fused kernels are checked
against. Dispatch: NumPy cubes run the fused CPU kernels, float32/float64 device arrays (CuPy,
CUDA torch, anything exposing ``__cuda_array_interface__``) are scored on the device by the
numba-cuda kernels, everything else by the references (see :mod:`hsibench.accel`).
"""
from .noref import NOREF_NAMES, d_lambda, d_s, noref_metrics, qnr
from .presets import PRESETS, MetricReport, Preset, compute_metrics, metric_definitions
from .reference import (
    METRIC_NAMES,
    SAM_ZERO_POLICIES,
    MetricError,
    cc,
    dd,
    ergas,
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

__all__ = [
    "METRIC_NAMES",
    "NOREF_NAMES",
    "PRESETS",
    "SAM_ZERO_POLICIES",
    "MetricError",
    "MetricReport",
    "Preset",
    "cc",
    "compute_metrics",
    "d_lambda",
    "d_s",
    "dd",
    "ergas",
    "metric_definitions",
    "noref_metrics",
    "onion_product",
    "psnr",
    "psnr_global",
    "q2n",
    "qnr",
    "rmse",
    "sam",
    "sam_map",
    "ssim",
    "ssim_uniform",
    "ssim_zero_padded",
    "uiqi",
    "uiqi_sewar",
    "validate_pair",
]
