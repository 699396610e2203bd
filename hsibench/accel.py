"""Which implementation runs the hot paths: the fused kernels (:mod:`hsibench.kernels`) or the
array-API references they are tested against.

The public operators (``hsibench.degrade.spatial.blur_decimate`` and its adjoint,
``hsibench.metrics.compute_metrics``) call the fused kernels for NumPy float32/float64 arrays
(Numba CPU kernels) and for device arrays of those dtypes (numba-cuda kernels, on the device,
zero-copy): CuPy arrays, CUDA torch tensors that need no gradient, Numba device arrays and any
other object exposing ``__cuda_array_interface__``. Anything else (CPU torch, ``array_api_strict``,
tensors that require grad) takes the reference path, so the array-API genericity of the methods
is still exercised. ``HSIBENCH_KERNELS=0`` in the environment, or ``with use_kernels(False):``,
forces the references everywhere (for A/B checks and for debugging a kernel).
"""
from __future__ import annotations

import contextlib
import os

import numpy as np

__all__ = ["kernels_enabled", "use_kernels", "kernel_path", "cuda_kernel_path", "is_cuda_array"]

_OFF = ("0", "off", "false", "no")
_state = {"enabled": os.environ.get("HSIBENCH_KERNELS", "1").strip().lower() not in _OFF}
_FLOATS = ("float32", "float64")


def kernels_enabled() -> bool:
    """True when the fused kernels may be used (the default).

    Returns
    -------
    bool
        False after ``HSIBENCH_KERNELS=0`` or inside ``with use_kernels(False):``.

    Example
    -------
    >>> from hsibench.accel import kernels_enabled
    >>> isinstance(kernels_enabled(), bool)
    True
    """
    return _state["enabled"]


@contextlib.contextmanager
def use_kernels(enabled: bool):
    """Switch the fused kernels on or off inside a ``with`` block (restored on exit).

    Parameters
    ----------
    enabled : bool
        False forces the array-API references.

    Example
    -------
    >>> from hsibench.accel import use_kernels, kernels_enabled
    >>> with use_kernels(False):
    ...     kernels_enabled()
    False
    """
    previous = _state["enabled"]
    _state["enabled"] = bool(enabled)
    try:
        yield
    finally:
        _state["enabled"] = previous


def is_cuda_array(a) -> bool:
    """True for an array in CUDA device memory that the CUDA kernels can read without a copy.

    CuPy arrays, CUDA torch tensors that do not require grad, Numba device arrays (also the CUDA
    simulator's) and any other object exposing ``__cuda_array_interface__``. Nothing is imported.

    Parameters
    ----------
    a : object
        Any array.

    Returns
    -------
    bool

    Example
    -------
    >>> import numpy as np
    >>> from hsibench.accel import is_cuda_array
    >>> is_cuda_array(np.zeros(3))
    False
    """
    if isinstance(a, np.ndarray):
        return False
    mod = type(a).__module__ or ""
    if mod.startswith("torch"):
        return a.device.type == "cuda" and not a.requires_grad
    if mod.startswith("cupy"):
        return True
    return bool(getattr(a, "__cuda_ndarray__", False)) or hasattr(a, "__cuda_array_interface__")


def _cuda_dtype(a) -> str:
    dt = getattr(a, "dtype", None)
    if dt is None:  # a bare __cuda_array_interface__ exporter
        dt = np.dtype(a.__cuda_array_interface__["typestr"])
    return str(dt).rsplit(".", 1)[-1]  # torch.float32 -> float32


def cuda_kernel_path(*arrays) -> bool:
    """True when every array is a float32/float64 device array (see :func:`is_cuda_array`) and
    the kernels are enabled: the work then runs in the numba-cuda kernels, on the device.

    Parameters
    ----------
    *arrays : array-like
        The operands.

    Returns
    -------
    bool

    Example
    -------
    >>> import numpy as np
    >>> from hsibench.accel import cuda_kernel_path
    >>> cuda_kernel_path(np.zeros((1, 2, 2)))
    False
    """
    if not _state["enabled"] or not arrays or not all(is_cuda_array(a) for a in arrays):
        return False
    return all(_cuda_dtype(a) in _FLOATS for a in arrays)


def kernel_path(*arrays) -> bool:
    """True when every array can go to a fused kernel: NumPy float32/float64 (CPU kernel) or,
    all of them, float32/float64 device arrays (CUDA kernel, see :func:`cuda_kernel_path`).

    Parameters
    ----------
    *arrays : array-like
        The operands.

    Returns
    -------
    bool

    Example
    -------
    >>> import numpy as np
    >>> from hsibench.accel import kernel_path
    >>> kernel_path(np.zeros((1, 2, 2), np.float32)), kernel_path(np.zeros(3, np.int32))
    (True, False)
    """
    if not _state["enabled"] or not arrays:
        return False
    if all(isinstance(a, np.ndarray) for a in arrays):
        return all(a.dtype in (np.float32, np.float64) for a in arrays)
    return cuda_kernel_path(*arrays)
