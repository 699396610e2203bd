"""No-reference quality at full resolution: spectral distortion Dλ, spatial distortion Ds and QNR.

Real fusion has no ground truth. The QNR protocol (Alparone, Aiazzi, Baronti, Garzelli, Nencini &
Selva, "Multispectral and panchromatic data fusion assessment without reference", Photogrammetric
Engineering & Remote Sensing 74(2):193-200, 2008) scores a fused image by how well it keeps the
inter-band relations of the images it was made from. Written for MS + PAN, it is used here with the
HS/MS adaptation below (every pair of HS bands for Dλ, every HS band against every MS band for Ds).

Definitions (F the fused HS image (L, H, W), Y_h the LR HS image (L, h, w), Y_m the HR MS image
(l, H, W), Ỹ_m the MS image brought to the LR grid, H = s·h, W = s·w):

* Q(a, b) is the universal image quality index of Wang & Bovik (IEEE SPL 9(3):81-84, 2002),
  Q = 4 σ_ab μ_a μ_b / ((σ_a² + σ_b²)(μ_a² + μ_b²)), computed on every ``block`` × ``block`` window
  fully inside the image (stride 1, as the reference ``qindex`` code and the pansharpening
  toolboxes) and averaged over windows; ``block=None`` takes the whole image as one window.
  Degenerate windows follow :func:`hsibench.metrics.uiqi`: both windows flat and equal -> 1,
  a zero denominator otherwise -> 0. The same ``block`` (in pixels) is used at both resolutions.
* Dλ = ( 1/(L(L−1)) Σ_{i≠r} |Q(F_i, F_r) − Q(Y_h,i, Y_h,r)|^p )^{1/p}, p = 1.
* Ds = ( 1/(L·l) Σ_i Σ_j |Q(F_i, Y_m,j) − Q(Y_h,i, Ỹ_m,j)|^q )^{1/q}, q = 1.
* QNR = (1 − Dλ)^α (1 − Ds)^β, α = β = 1. QNR is 1 at best, Dλ and Ds 0 at best.

Ỹ_m is the MS image low-pass filtered and decimated by s with the suite's forward operator
(:func:`hsibench.degrade.blur_decimate`) and a given kernel; by default the antialiasing kernel of a
bicubic 1/s resize (:func:`hsibench.degrade.psf.resize_psf`), the ``imresize`` of the reference
code. A fused image equal to the nearest-neighbour upsampling of Y_h has Dλ = 0 exactly with
``block=None`` (replicating pixels keeps every mean, variance and covariance).

The implementation is NumPy/SciPy: inputs from any namespace (torch tensors, CuPy arrays and other
device arrays) are copied to the host once per call, as float64.
"""
from __future__ import annotations

import numbers

import numpy as np
from scipy import ndimage

from .reference import MetricError

__all__ = ["q_pairs", "d_lambda", "d_s", "qnr", "noref_metrics", "NOREF_DEFINITIONS", "NOREF_NAMES"]

#: The scalars :func:`noref_metrics` returns.
NOREF_NAMES = ("d_lambda", "d_s", "qnr")

NOREF_DEFINITIONS = {
    "d_lambda": "spectral distortion (Alparone et al. 2008): mean over pairs of HS bands i≠r of |Q(F_i,F_r) − "
                "Q(LR_i,LR_r)|, Q = UIQI on block×block sliding windows; 0 best",
    "d_s": "spatial distortion (Alparone et al. 2008, HS/MS adaptation): mean over HS bands i and MS bands j of "
           "|Q(F_i,MS_j) − Q(LR_i,MS~_j)|, MS~ = MS blurred and decimated by s; 0 best",
    "qnr": "quality with no reference: (1 − Dλ)(1 − Ds) (α = β = 1); 1 best",
}


def _cube(x, what: str) -> np.ndarray:
    from ..xp import to_numpy

    a = np.asarray(to_numpy(x))  # a device array: one explicit copy to the host (NumPy below)
    if a.ndim != 3 or a.size == 0:
        raise MetricError(f"{what} must be a non-empty (bands, rows, cols) cube, got shape {a.shape}")
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)) or a.dtype == bool:
        raise MetricError(f"{what} must hold real numbers, got dtype {a.dtype}")
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise MetricError(f"{what} contains NaN or Inf")
    return a


def _windows(block, step, shape) -> "_Windows":
    rows, cols = shape[-2:]
    if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 1:
        raise MetricError(f"step must be a positive integer, got {step!r}")
    if block is None:
        return _Windows(shape, (rows, cols), 1)
    if isinstance(block, bool) or not isinstance(block, numbers.Integral) or block < 1:
        raise MetricError(f"block must be a positive integer or None, got {block!r}")
    if block > min(rows, cols):
        raise MetricError(f"Q blocks of {block}x{block} do not fit a {rows}x{cols} image; use a smaller block")
    return _Windows(shape, (int(block), int(block)), int(step))


class _Windows:
    """Window positions (every ``step`` pixels, windows fully inside) and the averaging matrices
    Cr (positions × rows), Cc (positions × cols), so that window means are Cr · x · Ccᵀ."""

    def __init__(self, shape, win: tuple[int, int], step: int):
        self.win, self.step = win, step
        (H, W), (wh, ww) = shape[-2:], win
        self.r = np.arange(0, H - wh + 1, step)
        self.c = np.arange(0, W - ww + 1, step)
        self.Cr = np.zeros((self.r.size, H))
        for k, r in enumerate(self.r):
            self.Cr[k, r : r + wh] = 1.0 / wh
        self.CcT = np.zeros((W, self.c.size))
        for k, c in enumerate(self.c):
            self.CcT[c : c + ww, k] = 1.0 / ww

    def mean(self, x: np.ndarray) -> np.ndarray:
        return np.matmul(np.matmul(self.Cr, x), self.CcT)


class _BandStats:
    """Per-band window statistics shared by every pair a band takes part in."""

    def __init__(self, x: np.ndarray, windows: _Windows):
        self.w = windows
        self.xc = x - x.mean(axis=(1, 2), keepdims=True)  # centring limits cancellation (as uiqi)
        self.mu = windows.mean(x)
        self.mc = windows.mean(self.xc)
        self.var = np.maximum(windows.mean(self.xc * self.xc) - self.mc**2, 0.0)
        # flat windows, tested exactly (max == min), and the window's value (its top-left element)
        self.flat = _valid_flat(x, windows.win)[:, windows.r][:, :, windows.c]
        self.var[self.flat] = 0.0
        self.corner = x[:, windows.r][:, :, windows.c]


def _valid_flat(x: np.ndarray, win: tuple[int, int]) -> np.ndarray:
    """True where the wh×ww window whose top-left pixel is (r, c) is constant (max == min exactly)."""
    wh, ww = win
    rows, cols = x.shape[1] - wh + 1, x.shape[2] - ww + 1
    # a centred running filter of size n puts the window starting at k on output k + n // 2
    hi = ndimage.maximum_filter1d(x, ww, axis=2)[:, :, ww // 2 : ww // 2 + cols]
    lo = ndimage.minimum_filter1d(x, ww, axis=2)[:, :, ww // 2 : ww // 2 + cols]
    hi = ndimage.maximum_filter1d(hi, wh, axis=1)[:, wh // 2 : wh // 2 + rows]
    lo = ndimage.minimum_filter1d(lo, wh, axis=1)[:, wh // 2 : wh // 2 + rows]
    return hi == lo


def _q_from_stats(a: _BandStats, ia, b: _BandStats, ib) -> np.ndarray:
    """Mean-over-windows Q of band pairs (a[ia[k]], b[ib[k]]) -> (n,)."""
    cov = a.w.mean(a.xc[ia] * b.xc[ib]) - a.mc[ia] * b.mc[ib]
    fa, fb = a.flat[ia], b.flat[ib]
    cov[fa | fb] = 0.0
    mx, my = a.mu[ia], b.mu[ib]
    num = 4.0 * cov * mx * my
    den = (a.var[ia] + b.var[ib]) * (mx**2 + my**2)
    q = np.zeros_like(den)
    ok = den > 0
    q[ok] = num[ok] / den[ok]
    same = fa & fb & (a.corner[ia] == b.corner[ib])
    q[same] = 1.0
    return q.mean(axis=(1, 2))


def q_pairs(a, b, *, block: int | None = 32, step: int = 1) -> np.ndarray:
    """Q (Wang & Bovik UIQI on windows) between band k of ``a`` and band k of ``b``, for every k.

    Parameters
    ----------
    a, b : array_like, shape (n, rows, cols)
        Two stacks of single-band images of the same shape.
    block : int or None
        Window side (windows fully inside the image); None: the whole image is one window.
    step : int
        Distance between window positions: 1 (default) slides the window pixel by pixel, as the
        reference ``qindex`` code; a larger step samples the same windows on a coarser lattice.

    Returns
    -------
    ndarray, shape (n,)
        Mean over windows of Q for each pair; equal to :func:`hsibench.metrics.uiqi` with
        ``per_band=True`` for square windows.

    Raises
    ------
    MetricError
        Shapes differ, NaN/Inf, or a block larger than the images.

    Example
    -------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).random((2, 8, 8))
    >>> q_pairs(x, x, block=4).round(12).tolist()
    [1.0, 1.0]
    """
    a, b = _cube(a, "a"), _cube(b, "b")
    if a.shape != b.shape:
        raise MetricError(f"Q pairs need equal shapes, got {a.shape} and {b.shape}")
    win = _windows(block, step, a.shape)
    sa, sb = _BandStats(a, win), _BandStats(b, win)
    idx = np.arange(a.shape[0])
    return _q_from_stats(sa, idx, sb, idx)


def _scale_of(hr_shape, lr_shape, what: str) -> int:
    H, W = hr_shape[-2:]
    h, w = lr_shape[-2:]
    if h == 0 or w == 0 or H % h or W % w or H // h != W // w:
        raise MetricError(f"{what}: {H}x{W} is not an integer multiple of {h}x{w} in both directions")
    return H // h


def _pairwise_band_q(x: np.ndarray, win) -> np.ndarray:
    """Q(x_i, x_r) for every i < r, in the order of ``np.triu_indices(L, 1)``."""
    st = _BandStats(x, win)
    out = []
    L = x.shape[0]
    for i in range(L - 1):
        rest = np.arange(i + 1, L)
        out.append(_q_from_stats(st, np.full(rest.size, i), st, rest))
    return np.concatenate(out) if out else np.zeros(0)


def d_lambda(fused, lr, *, block: int | None = 32, step: int = 1, p: float = 1.0) -> float:
    """Spectral distortion Dλ of a fused HS image against the LR HS image it was made from.

    Dλ = (1/(L(L−1)) Σ_{i≠r} |Q(F_i, F_r) − Q(Y_i, Y_r)|^p)^{1/p}; Q as :func:`q_pairs` (the same
    ``block`` at both resolutions). 0 is best.

    Parameters
    ----------
    fused : array_like, shape (L, H, W)
        Fused image.
    lr : array_like, shape (L, h, w)
        LR HS image, H = s·h, W = s·w.
    block : int or None
        Q window side (pixels at each resolution); None: whole image.
    step : int
        Distance between window positions (1: every position).
    p : float
        Exponent (1 in Alparone et al. 2008).

    Returns
    -------
    float

    Raises
    ------
    MetricError
        Band counts differ, sizes are not an integer multiple, fewer than 2 bands, bad block or p.

    Example
    -------
    >>> import numpy as np
    >>> lr = np.random.default_rng(0).random((3, 4, 4))
    >>> d_lambda(lr.repeat(2, 1).repeat(2, 2), lr, block=None) < 1e-12
    True
    """
    F, Y = _cube(fused, "fused"), _cube(lr, "lr")
    if F.shape[0] != Y.shape[0]:
        raise MetricError(f"fused has {F.shape[0]} bands, the LR HS image {Y.shape[0]}")
    if F.shape[0] < 2:
        raise MetricError("Dλ needs at least 2 bands")
    _scale_of(F.shape, Y.shape, "Dλ")
    if not p > 0:
        raise MetricError(f"p must be positive, got {p}")
    qf = _pairwise_band_q(F, _windows(block, step, F.shape))
    qy = _pairwise_band_q(Y, _windows(block, step, Y.shape))
    return float(np.mean(np.abs(qf - qy) ** p) ** (1.0 / p))


def _lowres_msi(msi: np.ndarray, scale: int, psf) -> np.ndarray:
    from ..degrade.psf import resize_psf
    from ..degrade.spatial import blur_decimate

    k = resize_psf(scale, "cubic") if psf is None else np.asarray(psf, dtype=np.float64)
    return blur_decimate(msi, k, scale)


def d_s(fused, lr, msi, *, msi_lr=None, psf=None, block: int | None = 32, step: int = 1, q: float = 1.0) -> float:
    """Spatial distortion Ds: how the fused bands relate to the MS bands, against the same at LR.

    Ds = (1/(L·l) Σ_i Σ_j |Q(F_i, M_j) − Q(Y_i, M̃_j)|^q)^{1/q}, with M̃ = ``msi_lr`` or else the MS image
    blurred and decimated by s (kernel ``psf``, default the bicubic-resize antialiasing kernel). 0 is best.

    Parameters
    ----------
    fused : array_like, shape (L, H, W)
    lr : array_like, shape (L, h, w)
    msi : array_like, shape (l, H, W)
    msi_lr : array_like, shape (l, h, w), optional
        The MS image at LR; computed from ``msi`` when omitted.
    psf : array_like, optional
        Kernel of that low-pass (size ≡ s mod 2).
    block : int or None
        Q window side; None: whole image.
    step : int
        Distance between window positions (1: every position).
    q : float
        Exponent (1 in Alparone et al. 2008).

    Returns
    -------
    float

    Raises
    ------
    MetricError
        Shape mismatches, bad block or q.

    Example
    -------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> ms = rng.random((2, 8, 8)); lr = rng.random((3, 4, 4))
    >>> 0.0 <= d_s(lr.repeat(2, 1).repeat(2, 2), lr, ms, block=None) <= 2.0
    True
    """
    F, Y, M = _cube(fused, "fused"), _cube(lr, "lr"), _cube(msi, "msi")
    if F.shape[0] != Y.shape[0]:
        raise MetricError(f"fused has {F.shape[0]} bands, the LR HS image {Y.shape[0]}")
    if M.shape[1:] != F.shape[1:]:
        raise MetricError(f"the MS image is {M.shape[1]}x{M.shape[2]}, the fused image {F.shape[1]}x{F.shape[2]}")
    s = _scale_of(F.shape, Y.shape, "Ds")
    Ml = _lowres_msi(M, s, psf) if msi_lr is None else _cube(msi_lr, "msi_lr")
    if Ml.shape != (M.shape[0], *Y.shape[1:]):
        raise MetricError(f"the LR MS image has shape {Ml.shape}, expected {(M.shape[0], *Y.shape[1:])}")
    if not q > 0:
        raise MetricError(f"q must be positive, got {q}")
    wh, wl = _windows(block, step, F.shape), _windows(block, step, Y.shape)
    sf, sm = _BandStats(F, wh), _BandStats(M, wh)
    sy, sml = _BandStats(Y, wl), _BandStats(Ml, wl)
    L, l = F.shape[0], M.shape[0]
    i = np.repeat(np.arange(L), l)
    j = np.tile(np.arange(l), L)
    diffs = []
    for chunk in np.array_split(np.arange(i.size), max(1, i.size // 64)):
        qh = _q_from_stats(sf, i[chunk], sm, j[chunk])
        ql = _q_from_stats(sy, i[chunk], sml, j[chunk])
        diffs.append(np.abs(qh - ql) ** q)
    return float(np.mean(np.concatenate(diffs)) ** (1.0 / q))


def qnr(d_lambda_value: float, d_s_value: float, alpha: float = 1.0, beta: float = 1.0) -> float:
    """QNR = (1 − Dλ)^α (1 − Ds)^β.

    Parameters
    ----------
    d_lambda_value, d_s_value : float
        The two distortions (each in [0, 2] in general, 0 best).
    alpha, beta : float
        Exponents (1 and 1 in Alparone et al. 2008).

    Returns
    -------
    float

    Raises
    ------
    MetricError
        A non-finite distortion or exponent.

    Example
    -------
    >>> round(qnr(0.1, 0.2), 12)
    0.72
    """
    vals = (d_lambda_value, d_s_value, alpha, beta)
    if not all(isinstance(v, numbers.Real) and np.isfinite(v) for v in vals):
        raise MetricError(f"QNR needs finite distortions and exponents, got {vals}")
    return float((1.0 - d_lambda_value) ** alpha * (1.0 - d_s_value) ** beta)


def noref_metrics(fused, lr, msi, *, msi_lr=None, psf=None, block: int | None = 32, step: int = 1) -> dict[str, float]:
    """Dλ, Ds and QNR (p = q = 1, α = β = 1) of one fused image: ``{"d_lambda", "d_s", "qnr"}``.

    Computed in NumPy: device arrays (a fused cube from a GPU run) are copied to the host once.

    Parameters
    ----------
    fused, lr, msi, msi_lr, psf, block, step
        As :func:`d_lambda` and :func:`d_s`.

    Returns
    -------
    dict of str to float

    Raises
    ------
    MetricError
        As :func:`d_lambda` and :func:`d_s`.

    Example
    -------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> lr, ms = rng.random((3, 4, 4)), rng.random((2, 8, 8))
    >>> sorted(noref_metrics(lr.repeat(2, 1).repeat(2, 2), lr, ms, block=None))
    ['d_lambda', 'd_s', 'qnr']
    """
    dl = d_lambda(fused, lr, block=block, step=step)
    ds = d_s(fused, lr, msi, msi_lr=msi_lr, psf=psf, block=block, step=step)
    return {"d_lambda": dl, "d_s": ds, "qnr": qnr(dl, ds)}
