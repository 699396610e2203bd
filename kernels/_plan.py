"""Pure-NumPy planning shared by the CPU and CUDA kernels: geometry, boundary index maps, the
transpose (folding) maps of the adjoint, and the low-rank factorisation of the PSF.

Geometry is the one of the suite's spatial operator (block-centred, ``docs/conventions.md`` §2): LR pixel
(i, j) is centred on HR block [i·s, (i+1)·s) × [j·s, (j+1)·s); a kh×kw kernel (kh ≡ kw ≡ s mod 2)
has its first tap at HR offset (s − kh)/2 from the block's first row, and taps that fall outside the
image are mapped back by half-sample reflection (``symmetric``) or wrap-around (``circular``).
Nothing here imports hsibench.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BOUNDARIES = ("symmetric", "circular")


class PSFShapeError(ValueError):
    """A PSF that breaks the conventions (not 2-D, not finite, wrong parity for the scale)."""


KernelShapeError = PSFShapeError  # older name: the error is about the PSF, not a compute kernel


def check_scale(rows: int, cols: int, scale) -> int:
    if isinstance(scale, bool) or int(scale) != scale or scale < 1:
        raise ValueError(f"scale factor must be a positive integer, got {scale}")
    scale = int(scale)
    if rows % scale or cols % scale:
        raise ValueError(f"scale factor {scale} does not divide the image size {rows}×{cols}")
    return scale


def boundary_index(idx: np.ndarray, n: int, boundary: str) -> np.ndarray:
    """Map out-of-range indices into [0, n) by half-sample reflection or wrap-around."""
    if boundary == "symmetric":
        m = np.mod(idx, 2 * n)
        return np.where(m < n, m, 2 * n - 1 - m)
    if boundary == "circular":
        return np.mod(idx, n)
    raise ValueError(f"unknown boundary {boundary!r}; use one of {BOUNDARIES}")


@dataclass(frozen=True)
class AxisPlan:
    """One axis of the strided correlation.

    ``idx[p]`` is the image index read at padded position p (p in [0, n + 2·pad)); ``start`` is the
    padded position of the first tap of output 0; output o, tap t reads padded position
    ``start + o·s + t``. ``fold_ptr``/``fold_pos`` is the transpose of ``idx`` as CSR: the padded
    positions that read image index m are ``fold_pos[fold_ptr[m]:fold_ptr[m + 1]]``.
    """

    n: int
    pad: int
    start: int
    idx: np.ndarray
    fold_ptr: np.ndarray
    fold_pos: np.ndarray


def axis_plan(n: int, ksize: int, scale: int, boundary: str) -> AxisPlan:
    off = (scale - ksize) // 2  # first tap's offset in HR coordinates (may be negative)
    pad = max(0, -off)
    if pad > n:
        raise ValueError(f"padding {pad} exceeds the image size {n}; PSF too large for this image")
    if boundary not in BOUNDARIES:
        raise ValueError(f"unknown boundary {boundary!r}; use one of {BOUNDARIES}")
    idx = boundary_index(np.arange(-pad, n + pad), n, boundary).astype(np.int64)
    order = np.argsort(idx, kind="stable")
    counts = np.bincount(idx, minlength=n)
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    return AxisPlan(n, pad, pad + off, idx, ptr, order.astype(np.int64))


def as_kernel(psf) -> np.ndarray:
    """The PSF as a float64 2-D NumPy array (used as given: no normalisation).

    A PSF given as a device array is copied to the host here, on purpose: it is a few hundred
    values, the plan (factorisation, index maps) is built on the host and cached, and the CUDA
    kernels get the plan's small arrays back on the device; the cube itself never leaves it.
    """
    if hasattr(psf, "__cuda_array_interface__") and not isinstance(psf, np.ndarray):
        psf = _device_to_host(psf)
    elif type(psf).__module__.startswith("torch"):
        psf = psf.detach().cpu().numpy()
    k = np.asarray(psf, dtype=np.float64)
    if k.ndim != 2:
        raise PSFShapeError(f"PSF must be 2-D, got shape {k.shape}")
    if not np.all(np.isfinite(k)):
        raise PSFShapeError("PSF contains NaN or Inf")
    return k


def _device_to_host(a):
    if hasattr(a, "get"):  # CuPy
        return a.get()
    if hasattr(a, "detach"):  # torch
        return a.detach().cpu().numpy()
    from numba import cuda

    return cuda.as_cuda_array(a).copy_to_host()


def check_parity(kshape: tuple[int, int], scale: int) -> None:
    kh, kw = kshape
    if (kh - scale) % 2 or (kw - scale) % 2:
        raise PSFShapeError(f"PSF size {kshape} has the wrong parity for scale {scale}")


# Keep singular values down to this fraction of the largest: the dropped part is below float64
# round-off of the direct sum, so the factorisation is exact for every practical purpose.
_RANK_RTOL = 1e-12


def factorise(k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Low-rank split k = Σ_r col[r] ⊗ row[r] (SVD, numerically exact rank).

    Returns ``(col, row)`` with shapes (R, kh) and (R, kw). Gaussian, box and axis-aligned
    anisotropic presets have R = 1; rotated or round shapes (disk, airy, motion) have more.
    """
    u, sv, vt = np.linalg.svd(k)
    if sv[0] == 0:
        return np.zeros((1, k.shape[0])), np.zeros((1, k.shape[1]))
    r = int(np.sum(sv > sv[0] * _RANK_RTOL))
    root = np.sqrt(sv[:r])
    col = (u[:, :r] * root).T.copy()
    row = (vt[:r] * root[:, None]).copy()
    # A rank-1 non-negative kernel: make both factors non-negative (SVD may flip both signs).
    if r == 1 and col.sum() < 0:
        col, row = -col, -row
    return col, row


def use_separable(rank: int, kh: int, kw: int, scale: int) -> bool:
    """Cost model (multiply-adds per output row, the vertical pass vectorises better): separable
    costs R·(kh·W + kw·W/s), direct kh·kw·W/s."""
    return rank * (kh + kw / scale) <= 1.5 * kh * kw / scale


def vertical_taps(col: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The non-zero vertical taps of each separable term: (tap_u, tap_w, tap_n), where
    tap_u[r, :tap_n[r]] are the kernel rows u with col[r, u] != 0 and tap_w their weights (zero
    taps are skipped, as the reference skips zero kernel taps)."""
    R, kh = col.shape
    tap_u = np.zeros((R, kh), dtype=np.int64)
    tap_w = np.zeros((R, kh), dtype=col.dtype)
    tap_n = np.zeros(R, dtype=np.int64)
    for r in range(R):
        nz = np.flatnonzero(col[r])
        tap_n[r] = nz.size
        tap_u[r, : nz.size] = nz
        tap_w[r, : nz.size] = col[r, nz]
    return tap_u, tap_w, tap_n


def check_same_shape(gt, est) -> tuple[int, int, int]:
    if tuple(gt.shape) != tuple(est.shape):
        raise ValueError(f"shape mismatch: gt {tuple(gt.shape)} vs est {tuple(est.shape)}")
    if len(gt.shape) != 3:
        raise ValueError(f"cubes must be (bands, rows, cols), got shape {tuple(gt.shape)}")
    if 0 in tuple(gt.shape):
        raise ValueError(f"empty cube (shape {tuple(gt.shape)})")
    return tuple(int(n) for n in gt.shape)
