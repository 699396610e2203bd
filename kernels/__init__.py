"""Fused kernels for the hot paths of hsibench, dispatched on array type.

- :func:`blur_decimate` / :func:`blur_decimate_adjoint`: the block-centred strided PSF correlation
  (blur + decimate in one pass) and its exact transpose, batched over bands.
- :func:`band_sums` / :func:`scalar_metrics`: one pass over both cubes for MSE/PSNR/RMSE/ERGAS/CC/DD
  and the per-pixel spectral angle (SAM).
- :func:`windowed_metrics`: SSIM (11×11 Gaussian, σ = 1.5) and UIQI (8×8) per band in one pass with
  separable filters.

NumPy (and CPU torch) inputs run Numba CPU kernels (``parallel=True``; threads follow
``NUMBA_NUM_THREADS`` / ``numba.set_num_threads``); CuPy arrays, CUDA torch tensors and other
``__cuda_array_interface__`` objects run numba-cuda kernels zero-copy. The NumPy references in
``hsibench.degrade.spatial`` and ``hsibench.metrics.reference`` define the results; this package
imports nothing from hsibench, and imports Numba only on first use.
"""
from __future__ import annotations

from ._plan import BOUNDARIES, KernelShapeError, PSFShapeError
from .metrics import BandSums, MetricInputError, band_sums, metrics_from_sums, scalar_metrics, windowed_metrics
from .psf import blur_decimate, blur_decimate_adjoint, psf_plan

__all__ = [
    "BOUNDARIES",
    "PSFShapeError",
    "KernelShapeError",
    "blur_decimate",
    "blur_decimate_adjoint",
    "psf_plan",
    "BandSums",
    "MetricInputError",
    "metrics_from_sums",
    "band_sums",
    "scalar_metrics",
    "windowed_metrics",
]
