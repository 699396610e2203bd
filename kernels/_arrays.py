"""Array-type dispatch: NumPy (and CPU torch) -> Numba CPU kernels; CuPy, CUDA torch tensors and
anything else exposing ``__cuda_array_interface__`` -> numba-cuda kernels, zero-copy.

Nothing here imports Numba or numba-cuda at module import time: the CPU kernels are imported on
first use, the CUDA kernels only when a device array arrives (so the CUDA simulator can still be
switched on by the caller before ``numba.cuda`` is first imported).
"""
from __future__ import annotations

import importlib

import numpy as np

NUMPY, TORCH_CPU, CUDA = "numpy", "torch-cpu", "cuda"


def kind_of(a) -> str:
    """'numpy' (NumPy or anything NumPy can read), 'torch-cpu', or 'cuda' (device memory)."""
    if isinstance(a, np.ndarray):
        return NUMPY
    mod = type(a).__module__ or ""
    if mod.startswith("torch"):
        return CUDA if a.device.type == "cuda" else TORCH_CPU
    if getattr(a, "__cuda_ndarray__", False) or hasattr(a, "__cuda_array_interface__"):
        return CUDA  # Numba device arrays (also the simulator's), CuPy, others
    return NUMPY


def same_kind(*arrays) -> str:
    kinds = {kind_of(a) for a in arrays}
    if len(kinds) > 1:
        raise TypeError(f"arrays live in different places ({sorted(kinds)}); pass them together on one device")
    return kinds.pop()


def to_host_numpy(a) -> np.ndarray:
    """NumPy view of a NumPy-like or CPU torch array (zero-copy where possible)."""
    if kind_of(a) == TORCH_CPU:
        return a.detach().numpy()
    return np.asarray(a)


def device_view(a):
    """A device array the CUDA kernels take as is: CuPy arrays, torch tensors and Numba device
    arrays pass through; a bare ``__cuda_array_interface__`` exporter becomes a zero-copy Numba
    view (so that it has a shape, a dtype and slicing)."""
    mod = type(a).__module__ or ""
    if mod.startswith(("torch", "cupy")) or getattr(a, "__cuda_ndarray__", False):
        return a
    return gpu().as_numba(a)


def device_to_host(a) -> np.ndarray:
    """Host copy of a device array (CuPy, CUDA torch, Numba device array or any
    ``__cuda_array_interface__`` exporter), for the few places that must leave the device."""
    return gpu().to_host(a)


def from_host_numpy(out: np.ndarray, like):
    """Wrap a NumPy result back into the caller's type (CPU torch -> torch, zero-copy)."""
    if kind_of(like) == TORCH_CPU:
        import torch

        return torch.from_numpy(out)
    return out


def work_dtype(dtype) -> np.dtype:
    """float32 stays float32; every other real dtype is computed in float64 (as NumPy promotes)."""
    dtype = np.dtype(dtype)
    if dtype == np.float32:
        return dtype
    if dtype.kind in "fiub":
        return np.dtype(np.float64)
    raise TypeError(f"unsupported dtype {dtype}: real input expected")


_modules: dict[str, object] = {}


def cpu(name: str):
    """The Numba CPU kernel module ``kernels.<name>`` (imported on first use)."""
    mod = _modules.get(name)
    if mod is None:
        mod = importlib.import_module(f"{__package__}.{name}")
        _modules[name] = mod
    return mod


def gpu():
    """The numba-cuda kernel module (imported on first use)."""
    return cpu("_cuda")
