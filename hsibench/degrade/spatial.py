"""The spatial operator: block-centred strided PSF correlation (blur + decimate), its exact adjoint,
and block-centred interpolation back to the HR grid.

LR pixel (i, j) is centred on HR block [i·s, (i+1)·s) × [j·s, (j+1)·s); a k×k kernel (k ≡ s mod 2)
is applied with (k − s)/2 pixels of padding on each side. Boundaries: ``symmetric`` (half-sample
reflection, the default) or ``circular``. All functions take ``(..., rows, cols)`` arrays of any
array-API namespace (NumPy, CuPy, torch) and return the same namespace.

This module is the single definition of the operator: every method and the simulator call it.
``blur_decimate_reference`` / ``blur_decimate_adjoint_reference`` define it in array-API code;
the public ``blur_decimate`` / ``blur_decimate_adjoint`` validate the arguments and then run the
fused kernels of ``hsibench.kernels`` on NumPy float32/float64 and CUDA arrays (checked against the
references in the tests), and the references on anything else (see :mod:`hsibench.accel`).
"""
from __future__ import annotations

import numpy as np

from ..accel import kernel_path
from ..xp import array_namespace, asarray_like
from .geometry import BOUNDARIES, as_psf, boundary_index, keys_cubic, psf_geometry

__all__ = [
    "BOUNDARIES",
    "blur_decimate",
    "blur_decimate_adjoint",
    "blur_decimate_reference",
    "blur_decimate_adjoint_reference",
    "interp_matrix",
    "upsample",
    "check_scale",
]

def check_scale(rows: int, cols: int, scale: int) -> None:
    """Raise if ``scale`` does not divide the HR image size."""
    if scale < 1 or int(scale) != scale:
        raise ValueError(f"scale factor must be a positive integer, got {scale}")
    if rows % scale or cols % scale:
        raise ValueError(f"scale factor {scale} does not divide the image size {rows}×{cols}")


def _pad_index(n: int, pad: int, boundary: str) -> np.ndarray:
    if pad > n:
        raise ValueError(f"padding {pad} exceeds the image size {n}; PSF too large for this image")
    return boundary_index(np.arange(-pad, n + pad), n, boundary)


def _pad(x, pad_r: int, pad_c: int, boundary: str):
    xp = array_namespace(x)
    rows, cols = x.shape[-2], x.shape[-1]
    if pad_r:
        x = xp.take(x, asarray_like(_pad_index(rows, pad_r, boundary), x, dtype=xp.int64), axis=x.ndim - 2)
    if pad_c:
        x = xp.take(x, asarray_like(_pad_index(cols, pad_c, boundary), x, dtype=xp.int64), axis=x.ndim - 1)
    return x


def _check_operator(hr_shape, psf, scale: int, boundary: str) -> np.ndarray:
    """Validate an operator's arguments once, for both paths (same errors either way)."""
    rows, cols = (int(n) for n in hr_shape)
    check_scale(rows, cols, scale)
    if boundary not in BOUNDARIES:
        raise ValueError(f"unknown boundary {boundary!r}; use one of {BOUNDARIES}")
    k = as_psf(psf)
    pad_r, pad_c, _, _ = psf_geometry(k.shape, scale)
    for pad, n in ((pad_r, rows), (pad_c, cols)):
        if pad > n:
            raise ValueError(f"padding {pad} exceeds the image size {n}; PSF too large for this image")
    return k


def blur_decimate(x, psf, scale: int, boundary: str = "symmetric"):
    """LR = decimate_s(correlate(X, psf)), block-centred, for every leading index of ``x``.

    LR pixel (i, j) is the PSF-weighted sum centred on HR block [i·s, (i+1)·s) × [j·s, (j+1)·s)
    (``docs/conventions.md`` §2). The PSF is used as given (one from :func:`~hsibench.degrade.make_psf`
    already sums to 1). Runs the fused kernel where :func:`hsibench.accel.kernel_path` allows (NumPy
    float32/float64, CUDA arrays), else :func:`blur_decimate_reference`.

    Parameters
    ----------
    x : array (..., H, W)
        HR image(s) of any array-API namespace (NumPy, CuPy, torch), s | H and s | W.
    psf : array (kh, kw)
        The PSF, kh ≡ kw ≡ s (mod 2).
    scale : int
        Scale factor s.
    boundary : {"symmetric", "circular"}
        How pixels beyond the border are read (``docs/conventions.md`` §3).

    Returns
    -------
    array (..., H/s, W/s)
        In the namespace and dtype of ``x``.

    Raises
    ------
    PSFError
        A PSF that is not 2-D, not finite, or of the wrong parity.
    ValueError
        A scale that does not divide the image, an unknown boundary, a PSF wider than the image.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(16.0).reshape(1, 4, 4)
    >>> blur_decimate(x, np.full((2, 2), 0.25), 2)  # s×s box: block means
    array([[[ 2.5,  4.5],
            [10.5, 12.5]]])
    """
    k = _check_operator(x.shape[-2:], psf, scale, boundary)
    if kernel_path(x):
        from ..kernels import blur_decimate as fused

        return fused(x, k, int(scale), boundary)
    return blur_decimate_reference(x, k, scale, boundary)


def blur_decimate_reference(x, psf, scale: int, boundary: str = "symmetric"):
    """Array-API definition of :func:`blur_decimate`: one strided slice per non-zero kernel tap."""
    rows, cols = x.shape[-2], x.shape[-1]
    check_scale(rows, cols, scale)
    k = as_psf(psf)
    pad_r, pad_c, st_r, st_c = psf_geometry(k.shape, scale)
    xpad = _pad(x, pad_r, pad_c, boundary)
    h, w = rows // scale, cols // scale
    kh, kw = k.shape
    out = None
    for u in range(kh):
        r0 = st_r + u
        for v in range(kw):
            c0 = st_c + v
            if k[u, v] == 0:
                continue
            tap = float(k[u, v]) * xpad[..., r0 : r0 + scale * (h - 1) + 1 : scale, c0 : c0 + scale * (w - 1) + 1 : scale]
            out = tap if out is None else out + tap
    return out


def blur_decimate_adjoint(y, psf, scale: int, hr_shape: tuple[int, int], boundary: str = "symmetric"):
    """Exact transpose of :func:`blur_decimate`: <A x, y> = <x, Aᵀ y> for every x, y.

    Fused kernel where :func:`hsibench.accel.kernel_path` allows, else
    :func:`blur_decimate_adjoint_reference`.

    Parameters
    ----------
    y : array (..., H/s, W/s)
        LR image(s) of any array-API namespace.
    psf : array (kh, kw)
        The PSF of the forward operator, kh ≡ kw ≡ s (mod 2).
    scale : int
        Scale factor s.
    hr_shape : (int, int)
        (H, W) of the HR grid.
    boundary : {"symmetric", "circular"}
        The forward operator's boundary rule.

    Returns
    -------
    array (..., H, W)
        In the namespace and dtype of ``y``.

    Raises
    ------
    PSFError
        A PSF that is not 2-D, not finite, or of the wrong parity.
    ValueError
        ``y`` not of shape (H/s, W/s), a scale that does not divide ``hr_shape``, an unknown boundary.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x, y, k = rng.random((6, 6)), rng.random((3, 3)), np.full((4, 4), 1 / 16)
    >>> lhs = np.vdot(blur_decimate(x, k, 2), y)
    >>> rhs = np.vdot(x, blur_decimate_adjoint(y, k, 2, (6, 6)))
    >>> bool(np.isclose(lhs, rhs, rtol=1e-12))
    True
    """
    k = _check_operator(hr_shape, psf, scale, boundary)
    rows, cols = (int(n) for n in hr_shape)
    if tuple(y.shape[-2:]) != (rows // scale, cols // scale):
        raise ValueError(f"LR shape {tuple(y.shape[-2:])} does not match HR {tuple(hr_shape)} at scale {scale}")
    if kernel_path(y):
        from ..kernels import blur_decimate_adjoint as fused

        return fused(y, k, int(scale), (rows, cols), boundary)
    return blur_decimate_adjoint_reference(y, k, scale, (rows, cols), boundary)


def blur_decimate_adjoint_reference(y, psf, scale: int, hr_shape: tuple[int, int], boundary: str = "symmetric"):
    """Array-API definition of :func:`blur_decimate_adjoint`.

    Scatters each LR pixel back through the kernel taps onto the padded HR grid, then folds the
    padding back onto the image according to the boundary rule.
    """
    xp = array_namespace(y)
    rows, cols = hr_shape
    check_scale(rows, cols, scale)
    h, w = rows // scale, cols // scale
    if tuple(y.shape[-2:]) != (h, w):
        raise ValueError(f"LR shape {tuple(y.shape[-2:])} does not match HR {hr_shape} at scale {scale}")
    k = as_psf(psf)
    pad_r, pad_c, st_r, st_c = psf_geometry(k.shape, scale)
    lead = tuple(y.shape[:-2])
    z = xp.zeros(lead + (rows + 2 * pad_r, cols + 2 * pad_c), dtype=y.dtype, device=_device(y))
    kh, kw = k.shape
    for u in range(kh):
        r0 = st_r + u
        for v in range(kw):
            c0 = st_c + v
            if k[u, v] == 0:
                continue
            z[..., r0 : r0 + scale * (h - 1) + 1 : scale, c0 : c0 + scale * (w - 1) + 1 : scale] += float(k[u, v]) * y
    z = _fold(z, pad_r, rows, z.ndim - 2, boundary)
    return _fold(z, pad_c, cols, z.ndim - 1, boundary)


def _fold(z, pad: int, n: int, axis: int, boundary: str):
    """Transpose of padding along one axis: add the padded margins back onto the pixels they copied."""
    if pad == 0:
        return z
    xp = array_namespace(z)
    take = lambda a, b: z[(slice(None),) * axis + (slice(a, b),)]  # noqa: E731
    core = xp.asarray(take(pad, pad + n), copy=True)
    head, tail = take(0, pad), take(pad + n, pad + n + pad)
    sel = lambda a, b: (slice(None),) * axis + (slice(a, b),)  # noqa: E731
    if boundary == "symmetric":
        core[sel(0, pad)] += xp.flip(head, axis=axis)
        core[sel(n - pad, n)] += xp.flip(tail, axis=axis)
    elif boundary == "circular":
        core[sel(n - pad, n)] += head
        core[sel(0, pad)] += tail
    else:
        raise ValueError(f"unknown boundary {boundary!r}")
    return core


def _device(a):
    try:
        return a.device
    except AttributeError:
        return None


def interp_matrix(n_lr: int, scale: int, kind: str = "cubic", boundary: str = "symmetric") -> np.ndarray:
    """1-D interpolation matrix U (n_lr·s × n_lr) with block-centred alignment.

    HR coordinate y maps to LR coordinate (y − (s − 1)/2)/s, i.e. LR pixel i sits at HR coordinate
    i·s + (s − 1)/2. Out-of-range taps are reflected (half-sample) or wrapped like the forward operator.
    """
    if kind not in ("cubic", "linear", "nearest"):
        raise ValueError(f"unknown interpolation {kind!r}")
    n_hr = n_lr * scale
    pos = (np.arange(n_hr) - (scale - 1) / 2.0) / scale
    U = np.zeros((n_hr, n_lr))
    if kind == "nearest":
        U[np.arange(n_hr), np.arange(n_hr) // scale] = 1.0
        return U
    support = 2 if kind == "cubic" else 1
    base = np.floor(pos).astype(int)
    for off in range(-support + 1, support + 1):
        j = base + off
        d = pos - j
        wgt = keys_cubic(d) if kind == "cubic" else np.clip(1 - np.abs(d), 0, None)
        jj = boundary_index(j, n_lr, boundary)
        np.add.at(U, (np.arange(n_hr), jj), wgt)
    return U


def upsample(y, scale: int, kind: str = "cubic", boundary: str = "symmetric"):
    """Interpolate (..., h, w) to (..., h·s, w·s) with block-centred alignment (separable matrices)."""
    xp = array_namespace(y)
    h, w = y.shape[-2], y.shape[-1]
    ur = asarray_like(interp_matrix(h, scale, kind, boundary), y)
    uc = asarray_like(interp_matrix(w, scale, kind, boundary), y)
    return xp.matmul(xp.matmul(ur, y), xp.matrix_transpose(uc))

