"""Shared helpers of the classical baselines: VCA endmember extraction, virtual dimensionality
(HFC), and small non-negative least-squares solvers.

VCA and VD are array-API generic (NumPy, CuPy, torch): the (L × N) data stay in their namespace and
only L × L or p × p matrices are factorised. The NNLS helpers work on small normal equations in
NumPy/SciPy (they are a few dozen to a thousand unknowns).
"""
from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
from scipy import linalg as sla
from scipy.optimize import nnls

from ..methods.base import InputError
from ..xp import array_namespace, asarray_like, to_numpy

__all__ = [
    "vca",
    "virtual_dimensionality",
    "nnls_gram",
    "difference_matrix",
    "eigh_desc",
    "as_float64",
]


def as_float64(x):
    """``x`` as float64 in its own namespace."""
    xp = array_namespace(x)
    return x if x.dtype == xp.float64 else xp.astype(x, xp.float64)


def eigh_desc(C):
    """Eigen-decomposition of a symmetric matrix, eigenvalues descending, eigenvector signs fixed.

    The sign of each eigenvector is chosen so that the sum of the cubes of its entries is positive,
    which makes the result identical across array libraries (LAPACK builds pick signs freely).
    """
    xp = array_namespace(C)
    w, V = xp.linalg.eigh(C)
    w = xp.flip(w, axis=0)
    V = xp.flip(V, axis=1)
    sgn = xp.sign(xp.sum(V * V * V, axis=0))
    sgn = xp.where(sgn == 0, xp.ones_like(sgn), sgn)
    return w, V * sgn[None, :]


def virtual_dimensionality(Y, alpha: float = 5e-2) -> int:
    """Virtual dimensionality by the Harsanyi-Farrand-Chang (HFC) test (Chang & Du, TGRS 2004).

    ``Y`` is (bands, pixels). Counts the eigenvalue pairs where the correlation-matrix eigenvalue
    exceeds the covariance-matrix eigenvalue by more than the Neyman-Pearson threshold at false-alarm
    probability ``alpha`` (variance of the difference ≈ 2(λ_R² + λ_K²)/N).
    """
    xp = array_namespace(Y)
    Y = as_float64(Y)
    L, N = Y.shape
    if N < 2:
        raise InputError("virtual dimensionality needs at least two pixels")
    Rm = xp.matmul(Y, xp.matrix_transpose(Y)) / N
    m = xp.mean(Y, axis=1)
    K = Rm - m[:, None] * m[None, :]
    eR = xp.flip(xp.linalg.eigvalsh(Rm), axis=0)
    eK = xp.flip(xp.linalg.eigvalsh(K), axis=0)
    sigma = xp.sqrt(2.0 * (eR * eR + eK * eK) / N)
    tau = NormalDist().inv_cdf(1.0 - alpha) * sigma
    return int(xp.sum(xp.astype((eR - eK) > tau, xp.int64)))


def vca(Y, p: int, seed: int = 0, *, snr: float | None = None, return_indices: bool = False):
    """Vertex component analysis (Nascimento & Bioucas-Dias, TGRS 2005): p endmembers of ``Y``.

    ``Y`` is (bands, pixels) in any array namespace; returns the (bands × p) endmember matrix in the
    same namespace (float64), and the selected pixel indices if ``return_indices``. The data are
    projected on a p-dimensional subspace (affine projection below the SNR threshold
    15 + 10·log10(p) dB, projective above), then p extreme pixels are found by successive projections
    on random directions orthogonal to the endmembers found so far. ``seed`` drives those directions
    (NumPy generator, so every namespace gets the same directions). ``snr`` (dB) overrides the SNR
    estimate that picks the projection (HySure calls VCA with SNR 0, i.e. the affine one). Endmembers are the projected
    (denoised) pixels, as in the paper, so they may hold tiny negative values.
    """
    xp = array_namespace(Y)
    if Y.ndim != 2:
        raise InputError(f"VCA expects a (bands, pixels) matrix, got shape {tuple(Y.shape)}")
    L, N = Y.shape
    p = int(p)
    if p < 1 or p > L:
        raise InputError(f"VCA: the number of endmembers must be in [1, bands={L}], got {p}")
    if p > N:
        raise InputError(f"VCA: {p} endmembers requested from only {N} pixels")
    Y = as_float64(Y)
    r_m = xp.mean(Y, axis=1, keepdims=True)
    Y0 = Y - r_m
    _, Ud = eigh_desc(xp.matmul(Y0, xp.matrix_transpose(Y0)) / N)
    Ud = Ud[:, :p]
    x_p = xp.matmul(xp.matrix_transpose(Ud), Y0)
    P_y = float(xp.sum(Y * Y)) / N
    P_x = float(xp.sum(x_p * x_p)) / N + float(xp.sum(r_m * r_m))
    num, den = P_x - p / L * P_y, P_y - P_x
    if snr is not None:
        snr = float(snr)
    elif den <= 1e-12 * max(P_y, 1e-300):
        snr = math.inf
    elif num <= 0:
        snr = -math.inf
    else:
        snr = 10.0 * math.log10(num / den)
    snr_th = 15.0 + 10.0 * math.log10(p)
    ones = xp.ones((1, N), dtype=Y.dtype, device=_device(Y))
    if snr < snr_th:
        d = p - 1
        Ud_ = Ud[:, :d]
        x = x_p[:d, :]
        Yp = xp.matmul(Ud_, x) + r_m
        c = float(xp.max(xp.sqrt(xp.sum(x * x, axis=0)))) if d > 0 else 1.0
        y = xp.concat([x, c * ones], axis=0)
    else:
        _, Ud = eigh_desc(xp.matmul(Y, xp.matrix_transpose(Y)) / N)
        Ud = Ud[:, :p]
        x_p = xp.matmul(xp.matrix_transpose(Ud), Y)
        Yp = xp.matmul(Ud, x_p)
        u = xp.mean(x_p, axis=1, keepdims=True)
        proj = xp.sum(x_p * u, axis=0, keepdims=True)
        tiny = 1e-12 * float(xp.max(xp.abs(proj))) if N else 1.0
        proj = xp.where(xp.abs(proj) > tiny, proj, tiny * xp.ones_like(proj))
        y = x_p / proj
    rng = np.random.default_rng(seed)
    A = np.zeros((p, p))
    A[p - 1, 0] = 1.0
    A = asarray_like(A, y)
    indices: list[int] = []
    for i in range(p):
        w = asarray_like(rng.standard_normal((p, 1)), y)
        f = w - xp.matmul(A, xp.matmul(xp.linalg.pinv(A), w))
        nf = float(xp.sqrt(xp.sum(f * f)))
        f = f / (nf if nf > 0 else 1.0)
        v = xp.matmul(xp.matrix_transpose(f), y)[0]
        idx = int(xp.argmax(xp.abs(v)))
        indices.append(idx)
        A[:, i] = y[:, idx]
    E = xp.take(Yp, asarray_like(np.asarray(indices), Yp, dtype=xp.int64), axis=1)
    return (E, indices) if return_indices else E


def nnls_gram(G, c, ridge: float = 1e-12) -> np.ndarray:
    """Solve min_x xᵀGx − 2cᵀx subject to x ≥ 0 (NNLS given its normal equations).

    ``G`` (n × n, symmetric positive semi-definite) and ``c`` (n,) may be any namespace; the result
    is a NumPy vector. A relative ridge keeps rank-deficient systems (all-zero bands, collinear
    columns) solvable; it is raised until the Cholesky factorisation succeeds.
    """
    G = np.asarray(to_numpy(G), dtype=np.float64)
    c = np.asarray(to_numpy(c), dtype=np.float64).reshape(-1)
    n = c.size
    if n == 0:
        return np.zeros(0)
    G = 0.5 * (G + G.T)
    scale = float(np.trace(G)) / n
    if not np.isfinite(scale) or scale <= 0:
        return np.zeros(n)
    lam = ridge
    for _ in range(12):
        try:
            U = sla.cholesky(G + lam * scale * np.eye(n), lower=False)
            break
        except np.linalg.LinAlgError:
            lam = max(lam * 100.0, 1e-14)
    else:  # pragma: no cover - G is PSD, a large enough ridge always works
        raise InputError("NNLS: the normal matrix could not be factorised")
    d = sla.solve_triangular(U, c, trans="T", lower=False)
    x, _ = nnls(U, d, maxiter=50 * n + 100)
    return x


def difference_matrix(n: int, breaks=None) -> np.ndarray:
    """First-difference operator ((n−1) × n); rows across a listed break (index i: between i and i+1)
    are zeroed, as HySure does across removed (non-contiguous) bands."""
    D = np.zeros((max(n - 1, 0), n))
    for i in range(n - 1):
        D[i, i], D[i, i + 1] = -1.0, 1.0
    if breaks is not None:
        for i in breaks:
            if 0 <= i < n - 1:
                D[i] = 0.0
    return D


def _device(a):
    try:
        return a.device
    except AttributeError:
        return None
