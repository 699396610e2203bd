"""The block-centred geometry of the forward model, as a small public API.

LR pixel (i, j) is centred on HR block [i·s, (i+1)·s) × [j·s, (j+1)·s); a kh×kw PSF (kh ≡ kw ≡ s
mod 2) has its first tap at HR offset (s − kh)/2 from the block's first row and is applied with
(kh − s)/2 pixels of padding per side; out-of-range pixels are mapped back by half-sample
reflection (``symmetric``) or wrap-around (``circular``). See ``docs/conventions.md`` §2-§4.

The spatial operator (:mod:`hsibench.degrade.spatial`), the PSF generators, the learned PSF layer of
the nets and the methods that build the operator in another form (FFT transfer functions, separable
matrices) all take the geometry from here. It depends on NumPy and :mod:`hsibench.xp` only.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["BOUNDARIES", "PSFError", "PSFGeometry", "as_psf", "boundary_index", "keys_cubic", "psf_geometry"]

BOUNDARIES = ("symmetric", "circular")


class PSFError(ValueError):
    """Bad PSF specification, or a PSF that breaks the conventions (shape, parity, sign, sum, NaN)."""


class PSFGeometry(NamedTuple):
    """Padding per side and the padded coordinate of the first tap of LR pixel 0, per axis.

    ``start_r - pad_r`` (``offset_r``) is the first tap's HR row offset from the block's first row,
    (s − kh)/2; likewise for columns.
    """

    pad_r: int
    pad_c: int
    start_r: int
    start_c: int

    @property
    def offset_r(self) -> int:
        return self.start_r - self.pad_r

    @property
    def offset_c(self) -> int:
        return self.start_c - self.pad_c


def psf_geometry(kshape: tuple[int, int], scale: int) -> PSFGeometry:
    """Where a ``kshape`` PSF sits in the block-centred geometry at scale ``scale``.

    Parameters
    ----------
    kshape : (int, int)
        PSF size (kh, kw).
    scale : int
        Scale factor s.

    Returns
    -------
    PSFGeometry
        ``(pad_r, pad_c, start_r, start_c)``: padding per side, and the padded coordinate of the
        first tap of LR pixel 0.

    Raises
    ------
    PSFError
        If kh or kw does not have the parity of s.

    Examples
    --------
    >>> psf_geometry((8, 8), 4)
    PSFGeometry(pad_r=2, pad_c=2, start_r=0, start_c=0)
    >>> psf_geometry((3, 3), 5).offset_r
    1
    """
    kh, kw = (int(n) for n in kshape)
    if (kh - scale) % 2 or (kw - scale) % 2:
        raise PSFError(f"PSF size {tuple(kshape)} has the wrong parity for scale {scale}")
    off_r, off_c = (scale - kh) // 2, (scale - kw) // 2  # first tap offset in HR coordinates
    pad_r, pad_c = max(0, -off_r), max(0, -off_c)
    return PSFGeometry(pad_r, pad_c, pad_r + off_r, pad_c + off_c)


def boundary_index(idx: np.ndarray, n: int, boundary: str) -> np.ndarray:
    """Map out-of-range indices into [0, n) by half-sample reflection or wrap-around.

    Parameters
    ----------
    idx : array of int
        Indices, possibly outside [0, n).
    n : int
        Length of the axis.
    boundary : {"symmetric", "circular"}
        Half-sample reflection (… x1 x0 | x0 x1 … x(n−1) | x(n−1) x(n−2) …) or wrap-around.

    Returns
    -------
    ndarray of int
        Indices in [0, n), same shape as ``idx``.

    Raises
    ------
    ValueError
        For an unknown boundary.

    Examples
    --------
    >>> boundary_index(np.arange(-2, 6), 4, "symmetric").tolist()
    [1, 0, 0, 1, 2, 3, 3, 2]
    >>> boundary_index(np.arange(-2, 6), 4, "circular").tolist()
    [2, 3, 0, 1, 2, 3, 0, 1]
    """
    idx = np.asarray(idx)
    if boundary == "symmetric":
        m = np.mod(idx, 2 * n)
        return np.where(m < n, m, 2 * n - 1 - m)
    if boundary == "circular":
        return np.mod(idx, n)
    raise ValueError(f"unknown boundary {boundary!r}; use one of {BOUNDARIES}")


def as_psf(psf) -> np.ndarray:
    """A PSF as a float64 NumPy array, checked to be 2-D and finite, used as given (no normalisation).

    The operator stays linear in the kernel, so learned or resize kernels may be signed; use
    :func:`hsibench.degrade.psf.check_psf` for a physical PSF (non-negative, sum 1, parity).

    Parameters
    ----------
    psf : array-like
        A 2-D kernel of any array namespace (NumPy, CuPy, torch).

    Returns
    -------
    ndarray
        float64 copy (or view) of the kernel.

    Raises
    ------
    PSFError
        If the kernel is not 2-D or holds NaN/Inf.

    Examples
    --------
    >>> as_psf([[0.25, 0.25], [0.25, 0.25]]).dtype
    dtype('float64')
    """
    from ..xp import to_numpy

    k = np.asarray(to_numpy(psf), dtype=np.float64)
    if k.ndim != 2:
        raise PSFError(f"PSF must be 2-D, got shape {k.shape}")
    if not np.all(np.isfinite(k)):
        raise PSFError("PSF contains NaN or Inf")
    return k


def keys_cubic(t: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys cubic convolution kernel (a = −0.5, as MATLAB ``imresize`` bicubic).

    Examples
    --------
    >>> keys_cubic(np.array([0.0, 1.0, 0.5])).tolist()
    [1.0, 0.0, 0.5625]
    """
    t = np.abs(t)
    out = np.where(t <= 1, (a + 2) * t**3 - (a + 3) * t**2 + 1, 0.0)
    return np.where((t > 1) & (t < 2), a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a, out)
