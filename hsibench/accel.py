"""Which implementation runs the hot paths: the fused kernels (:mod:`hsibench.kernels`) or the
array-API references they are tested against.

The public operators (``hsibench.degrade.spatial.blur_decimate`` and its adjoint,
``hsibench.metrics.compute_metrics``) call the fused kernels for NumPy float32/float64 arrays and
for CuPy / CUDA torch arrays that need no gradient; anything else (CPU torch, ``array_api_strict``,
tensors that require grad) takes the reference path, so the array-API genericity of the methods
is still exercised. ``HSIBENCH_KERNELS=0`` in the environment, or ``with use_kernels(False):``,
forces the references everywhere (for A/B checks and for debugging a kernel).
"""
from __future__ import annotations

import contextlib
import os

import numpy as np

__all__ = ["kernels_enabled", "use_kernels", "kernel_path"]

_OFF = ("0", "off", "false", "no")
_state = {"enabled": os.environ.get("HSIBENCH_KERNELS", "1").strip().lower() not in _OFF}


def kernels_enabled() -> bool:
    """True when the fused kernels may be used (the default)."""
    return _state["enabled"]


@contextlib.contextmanager
def use_kernels(enabled: bool):
    """Switch the fused kernels on or off inside a ``with`` block (restored on exit)."""
    previous = _state["enabled"]
    _state["enabled"] = bool(enabled)
    try:
        yield
    finally:
        _state["enabled"] = previous


def _is_cuda_array(a) -> bool:
    mod = type(a).__module__ or ""
    if mod.startswith("torch"):
        return a.device.type == "cuda" and not a.requires_grad
    return mod.startswith("cupy")


def kernel_path(*arrays) -> bool:
    """True when every array can go to a fused kernel: NumPy float32/float64 (CPU kernel) or,
    all of them, CuPy / gradient-free CUDA torch arrays of those dtypes (CUDA kernel)."""
    if not _state["enabled"] or not arrays:
        return False
    if all(isinstance(a, np.ndarray) for a in arrays):
        return all(a.dtype in (np.float32, np.float64) for a in arrays)
    if all(_is_cuda_array(a) for a in arrays):
        return all(str(a.dtype).rsplit(".", 1)[-1] in ("float32", "float64") for a in arrays)
    return False
