"""Array-namespace helpers: one code path for NumPy, CuPy and torch (array-API style, cuCIM-like)."""
from __future__ import annotations

from typing import Any

import numpy as np
from array_api_compat import array_namespace, is_cupy_array, is_numpy_array, is_torch_array

__all__ = ["array_namespace", "to_numpy", "asarray_like", "is_numpy_array", "device_of", "is_gpu_array"]


def to_numpy(x: Any) -> np.ndarray:
    """Return a NumPy copy/view of an array from any supported namespace (CuPy, torch, NumPy)."""
    if is_numpy_array(x):
        return x
    if is_cupy_array(x):
        return x.get()
    if is_torch_array(x):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def asarray_like(a: Any, like: Any, dtype=None):
    """Convert ``a`` to the namespace, device and (by default) dtype of ``like``."""
    xp = array_namespace(like)
    if dtype is None:
        dtype = like.dtype
    if is_torch_array(like):
        import torch

        if not isinstance(a, torch.Tensor):
            a = torch.as_tensor(np.asarray(a))
        return a.to(device=like.device, dtype=dtype)
    if is_cupy_array(like):
        return xp.asarray(a, dtype=dtype)
    return np.asarray(to_numpy(a), dtype=dtype)


def device_of(x: Any) -> str:
    """'cpu' or 'cuda' for the array's device."""
    if is_cupy_array(x):
        return "cuda"
    if is_torch_array(x):
        return x.device.type
    return "cpu"


def is_gpu_array(x: Any) -> bool:
    return device_of(x) == "cuda"
