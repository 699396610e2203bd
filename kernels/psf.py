"""Public strided PSF operator (blur + decimate) and its exact adjoint, dispatched on array type.

Same contract as ``hsibench.degrade.spatial.blur_decimate`` / ``blur_decimate_adjoint`` (the
reference these kernels are tested against): block-centred geometry, kernel used as given, any
kernel size with kh ≡ kw ≡ s (mod 2), ``symmetric`` (half-sample) or ``circular`` boundary,
batched over every leading index of ``(..., H, W)``.
"""
from __future__ import annotations

import functools

import numpy as np

from . import _arrays as A
from ._plan import AxisPlan, as_kernel, axis_plan, check_parity, check_scale, factorise, use_separable, vertical_taps

__all__ = ["blur_decimate", "blur_decimate_adjoint", "psf_plan"]

#: Mirrors ``_psf_cpu.SPECIALISED`` (kept here so that importing this module needs no Numba).
SPECIALISED_SCALES = (4, 8, 16)


@functools.lru_cache(maxsize=256)
def _axis(n: int, ksize: int, scale: int, boundary: str) -> AxisPlan:
    return axis_plan(n, ksize, scale, boundary)


@functools.lru_cache(maxsize=64)
def _factors(key: bytes, shape: tuple[int, int]):
    k = np.frombuffer(key, dtype=np.float64).reshape(shape)
    col, row = factorise(k)
    return col, row


class PsfPlan:
    """Everything the kernels need for one (image size, kernel, scale, boundary)."""

    def __init__(self, hr_shape, psf, scale, boundary="symmetric"):
        rows, cols = (int(n) for n in hr_shape)
        self.scale = s = check_scale(rows, cols, scale)
        self.k = k = as_kernel(psf)
        check_parity(k.shape, s)
        kh, kw = k.shape
        self.rows, self.cols = rows, cols
        self.r = _axis(rows, kh, s, boundary)
        self.c = _axis(cols, kw, s, boundary)
        self.boundary = boundary
        col, row = _factors(np.ascontiguousarray(k).tobytes(), k.shape)
        self.separable = use_separable(col.shape[0], kh, kw, s)
        if not self.separable:  # direct: one term per kernel row
            col, row = np.eye(kh), k
        self.S = S = s if s in SPECIALISED_SCALES else 1  # see _psf_cpu.specialisation
        if S > 1 and kw % S:  # zero-pad the taps to whole blocks of S
            row = np.concatenate([row, np.zeros((row.shape[0], S - kw % S))], axis=1)
        self.col, self.row = col, row
        self._cast: dict = {}

    def cast(self, dtype):
        """(col, row) kernel factors in the compute dtype, C-contiguous, cached per dtype."""
        dtype = np.dtype(dtype)
        if dtype not in self._cast:
            self._cast[dtype] = (
                np.ascontiguousarray(self.col, dtype=dtype),
                np.ascontiguousarray(self.row, dtype=dtype),
            )
        return self._cast[dtype]

    def taps(self, dtype):
        """The non-zero vertical taps (``_plan.vertical_taps``) in the compute dtype."""
        key = ("taps", np.dtype(dtype))
        if key not in self._cast:
            self._cast[key] = vertical_taps(self.cast(dtype)[0])
        return self._cast[key]


@functools.lru_cache(maxsize=64)
def _cached_plan(hr_shape, kbytes, kshape, scale, boundary) -> PsfPlan:
    k = np.frombuffer(kbytes, dtype=np.float64).reshape(kshape)
    return PsfPlan(hr_shape, k, scale, boundary)


def psf_plan(hr_shape, psf, scale, boundary="symmetric") -> PsfPlan:
    """The (cached) plan for an image size, kernel, scale and boundary: iterative methods apply
    the same operator many times, so the per-call set-up is a dictionary look-up."""
    k = as_kernel(psf)
    if isinstance(scale, bool) or int(scale) != scale:
        raise ValueError(f"scale factor must be a positive integer, got {scale}")
    return _cached_plan(tuple(int(n) for n in hr_shape), k.tobytes(), k.shape, int(scale), boundary)


def blur_decimate(x, psf, scale: int, boundary: str = "symmetric"):
    """LR = decimate_s(correlate(X, psf)), block-centred, for every leading index of ``x``.

    ``x``: (..., H, W), s | H and s | W; NumPy or CPU torch -> Numba CPU kernel, CuPy / CUDA torch ->
    numba-cuda kernel (zero-copy). Returns (..., H/s, W/s) of the same type; float32 stays float32,
    other real dtypes are computed and returned in float64.
    """
    kind = A.kind_of(x)
    H, W = (int(n) for n in tuple(x.shape)[-2:])
    plan = psf_plan((H, W), psf, scale, boundary)
    if kind == A.CUDA:
        return A.gpu().blur_decimate(x, plan)
    xn = A.to_host_numpy(x)
    out = _blur_decimate_cpu(xn, plan)
    return A.from_host_numpy(out, x)


def _blur_decimate_cpu(x: np.ndarray, plan: PsfPlan) -> np.ndarray:
    dt = A.work_dtype(x.dtype)
    lead = x.shape[:-2]
    H, W, s = plan.rows, plan.cols, plan.scale
    x3 = np.ascontiguousarray(x.reshape((-1, H, W)), dtype=dt)
    out = np.empty((x3.shape[0], H // s, W // s), dtype=dt)
    if x3.shape[0] and out.size:
        col, row = plan.cast(dt)
        r, c = plan.r, plan.c
        A.cpu("_psf_cpu").forward(
            x3, col, row, plan.S, s, r.idx, c.idx, r.start, c.start, c.pad, out, taps=plan.taps(dt)
        )
    return out.reshape(lead + (H // s, W // s))


def blur_decimate_adjoint(y, psf, scale: int, hr_shape, boundary: str = "symmetric"):
    """Exact transpose of :func:`blur_decimate`: <A x, y> = <x, Aᵀ y>. Same dispatch and dtypes."""
    kind = A.kind_of(y)
    rows, cols = (int(n) for n in hr_shape)
    plan = psf_plan((rows, cols), psf, scale, boundary)
    s = plan.scale
    if tuple(int(n) for n in tuple(y.shape)[-2:]) != (rows // s, cols // s):
        raise ValueError(f"LR shape {tuple(y.shape)[-2:]} does not match HR {(rows, cols)} at scale {s}")
    if kind == A.CUDA:
        return A.gpu().blur_decimate_adjoint(y, plan)
    yn = A.to_host_numpy(y)
    out = _adjoint_cpu(yn, plan)
    return A.from_host_numpy(out, y)


def _adjoint_cpu(y: np.ndarray, plan: PsfPlan) -> np.ndarray:
    dt = A.work_dtype(y.dtype)
    lead = y.shape[:-2]
    H, W, s = plan.rows, plan.cols, plan.scale
    y3 = np.ascontiguousarray(y.reshape((-1, H // s, W // s)), dtype=dt)
    out = np.empty((y3.shape[0], H, W), dtype=dt)
    if y3.shape[0] and out.size:
        col, row = plan.cast(dt)
        r, c = plan.r, plan.c
        A.cpu("_psf_cpu").adjoint(
            y3, col, row, plan.S, s, H, W, r.fold_ptr, r.fold_pos, c.idx, r.start, c.start, c.pad, out
        )
    return out.reshape(lead + (H, W))
