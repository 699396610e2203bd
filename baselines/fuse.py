"""FUSE: fast fusion by a closed-form Sylvester solution (Wei, Dobigeon, Tourneret, IEEE TIP 24(11), 2015).

Model (X = HrHSI as L × n, images as rows): Y_H = X·A_s + N_H (A_s the PSF blur + decimation),
Y_M = R·X + N_M. The HrHSI lives in an affine PCA subspace X = m + E·U (E: L × k, orthonormal,
k = nb_sub ≤ 15) and U has a Gaussian prior N(Ū, Σ) per pixel, Ū = the interpolated LrHSI in the
subspace, Σ its sample covariance (the reference's Gaussian prior, N_AO = 1). The MAP estimate solves

    U·G + M·U = C,   G = A_sᵀA_s (spatial),  M = τ (RE)ᵀ(RE) + λ Σ⁻¹ (k × k),

derived here from the normal equations (τ = σ_H²/σ_M², λ = σ_H²·prior_weight). With M = QΓQᵀ and
U = Q·V each row decouples: v_i (G + γ_i) = (Qᵀ C)_i. Under circular boundaries G is block-diagonal in
the Fourier domain: every LR frequency couples the s² HR frequencies that alias onto it through the
rank-one matrix (1/d)·h̄hᵀ (h the PSF transfer function at those frequencies, d = s²), so the
Sherman–Morrison formula gives each v_i exactly with FFTs (Wei et al.'s Theorem/Lemma 1 in other words).

Departures from the reference (``FUSE_wrapper.m``/``BayesianFusion.m``): the transfer function is built
from the benchmark's PSF and block-centred geometry (LR pixel (i, j) centred on HR block
[is, (i+1)s) × [js, (j+1)s)), so the reference's even-ratio trick (averaging runs at sampling phases
r/2 and r/2+1) is not needed; the HSI part of the right-hand side is solved as A_sᵀ(A_sA_sᵀ + γ)⁻¹w,
which avoids the cancellation of the textbook (1/γ)[c − …] form in float32; noise variances are
estimated (band-regression residual for the HSI, Haar-MAD for the MSI) and floored at ``snr_max_db``.
"""
from __future__ import annotations

import numpy as np

from ..degrade.geometry import as_psf, psf_geometry
from ..degrade.spatial import check_scale, upsample
from ..methods.base import Context, InputError, Method
from ..methods.registry import register
from ..xp import array_namespace, asarray_like, to_numpy

__all__ = ["FUSE", "fuse_sylvester", "psf_transfer", "fft_blur_decimate", "pca_subspace"]


def _complex_dtype(xp, real_dtype):
    return xp.complex64 if real_dtype == xp.float32 else xp.complex128


def psf_transfer(psf, scale: int, shape: tuple[int, int]) -> np.ndarray:
    """HR transfer function ĥ (H, W) (NumPy complex128) of the circular blur that, followed by sampling at
    HR pixels (i·s, j·s), equals ``blur_decimate(x, psf, scale, boundary="circular")``.

    ``blur_decimate`` computes LR[i, j] = Σ_uv k[u, v]·x[i·s + o_r + u, j·s + o_c + v] with
    o = (s − k_size)/2; that is z = h ⊛ x (circular convolution) sampled at (i·s, j·s), with
    h[−(o_r + u), −(o_c + v)] = k[u, v] (indices mod H, W).
    """
    rows, cols = shape
    check_scale(rows, cols, scale)
    k = as_psf(psf)
    geo = psf_geometry(k.shape, scale)
    off_r, off_c = geo.offset_r, geo.offset_c
    h = np.zeros((rows, cols))
    u = (-(off_r + np.arange(k.shape[0]))) % rows
    v = (-(off_c + np.arange(k.shape[1]))) % cols
    np.add.at(h, (u[:, None], v[None, :]), k)
    return np.fft.fft2(h)


def _split(xp, a, scale: int):
    """(..., H, W) → (..., s, H/s, s, W/s): HR frequency index k = a·(H/s) + k' (k' the LR frequency)."""
    *lead, rows, cols = a.shape
    return xp.reshape(a, tuple(lead) + (scale, rows // scale, scale, cols // scale))


def fft_blur_decimate(x, hhat, scale: int):
    """Blur + decimate through the Fourier domain: LR̂(k') = (1/s²) Σ_aliases ĥ·x̂. Equals
    ``blur_decimate(x, psf, scale, "circular")`` when ``hhat = psf_transfer(psf, scale, x.shape[-2:])``."""
    xp = array_namespace(x)
    h = asarray_like(hhat, x, dtype=_complex_dtype(xp, x.dtype))
    xf = _split(xp, xp.fft.fftn(x, axes=(-2, -1)) * h, scale)
    lr = xp.sum(xf, axis=(-4, -2)) / (scale * scale)
    return xp.real(xp.fft.ifftn(lr, axes=(-2, -1)))


def pca_subspace(lr, nb_sub: int, rel_tol: float = 1e-9):
    """Affine PCA subspace of the LrHSI: (mean (L,), basis E (L × k) float64, eigenvalues (k,)).

    Components whose variance is below ``rel_tol`` × the largest are dropped (rank-deficient data gets a
    smaller subspace instead of a singular prior covariance); at least one component is kept.
    """
    xp = array_namespace(lr)
    L = lr.shape[0]
    y = xp.astype(xp.reshape(lr, (L, -1)), xp.float64)
    n = y.shape[1]
    mean = xp.mean(y, axis=1)
    yc = y - mean[:, None]
    cov = xp.matmul(yc, xp.matrix_transpose(yc)) / n
    evals, evecs = xp.linalg.eigh(cov)
    order = xp.flip(xp.argsort(evals))
    evals = xp.take(evals, order)
    evecs = xp.take(evecs, order, axis=1)
    top = float(evals[0])
    keep = int(np.sum(to_numpy(evals) > rel_tol * max(top, 1e-300)))
    k = max(1, min(nb_sub, L, keep))
    return mean, evecs[:, :k], evals[:k]


def _band_regression_noise(xp, y):
    """Mean noise variance of a (L, n) cube by multiple regression of each band on the others (the
    HySime idea): RSS_b = 1/[G⁻¹]_bb for the centred Gram matrix G (ridge-stabilised)."""
    L, n = y.shape
    if L < 3:
        return 0.0
    y = xp.astype(y, xp.float64)
    yc = y - xp.mean(y, axis=1, keepdims=True)
    g = xp.matmul(yc, xp.matrix_transpose(yc))
    ridge = 1e-10 * float(xp.linalg.trace(g)) / L + 1e-300
    ginv = xp.linalg.inv(g + ridge * xp.eye(L, dtype=g.dtype, device=getattr(g, "device", None)))
    d = xp.linalg.diagonal(ginv)
    return float(xp.mean(1.0 / d)) / n


def _haar_mad_noise(xp, y):
    """Mean noise variance of (l, H, W) images from the median absolute finest diagonal Haar detail
    (Donoho's MAD estimator; the HH coefficient of white noise has the noise's variance).

    In ``xp`` throughout (device arrays stay on the device): the array API has no median, so it is
    taken from a sort, the mean of the two middle values as :func:`numpy.median` (torch's own
    median returns the lower one)."""
    rows, cols = (y.shape[-2] // 2) * 2, (y.shape[-1] // 2) * 2
    y = y[..., :rows, :cols]
    hh = (y[..., 0::2, 0::2] - y[..., 0::2, 1::2] - y[..., 1::2, 0::2] + y[..., 1::2, 1::2]) / 2
    a = xp.sort(xp.abs(xp.astype(xp.reshape(hh, (y.shape[0], -1)), xp.float64)), axis=1)
    n = int(a.shape[1])
    med = (a[:, (n - 1) // 2] + a[:, n // 2]) / 2
    return float(xp.mean((med / 0.6745) ** 2))


def _sym_inv(xp, a, floor_rel: float = 1e-12):
    """Inverse of a symmetric PSD matrix through its eigendecomposition, eigenvalues floored."""
    w, v = xp.linalg.eigh(a)
    w = xp.clip(w, floor_rel * float(xp.max(w)) + 1e-300, None)
    return xp.matmul(v / w[None, :], xp.matrix_transpose(v))


def fuse_sylvester(lr, msi, srf, psf, scale: int, *, nb_sub: int = 15, prior_weight: float = 1.0,
                   snr_max_db: float = 50.0, noise_hs: float | None = None, noise_ms: float | None = None,
                   boundary: str = "symmetric"):
    """FUSE with a Gaussian prior: fuse (L, h, w) LrHSI and (l, H, W) HrMSI given the (l, L) SRF and
    the PSF; returns ((L, H, W) HrHSI in the input's namespace and dtype, info dict).

    ``noise_hs``/``noise_ms``: noise variances (None = estimate); ``snr_max_db`` floors them at
    mean(Y²)·10^(−snr/10) so that noiseless data stays well posed. ``boundary`` only affects the
    interpolated prior mean (the solver itself is circular by construction).
    """
    xp = array_namespace(lr, msi)
    L, h, w = lr.shape
    l, H, W = msi.shape
    s = scale
    dt = lr.dtype
    R = asarray_like(np.asarray(to_numpy(srf), dtype=np.float64), lr, dtype=xp.float64)
    if tuple(R.shape) != (l, L):
        raise InputError(f"FUSE: SRF shape {tuple(R.shape)} does not match ({l}, {L})")

    # --- subspace and prior -------------------------------------------------------------------
    mean, E, evals = pca_subspace(lr, nb_sub)  # float64
    k = E.shape[1]
    y_lr = xp.astype(xp.reshape(lr, (L, h * w)), xp.float64)
    y_ms = xp.astype(xp.reshape(msi, (l, H * W)), xp.float64)
    up_img = upsample(lr, s, "cubic", boundary)
    up = xp.astype(xp.reshape(up_img, (L, H * W)), xp.float64)
    Et = xp.matrix_transpose(E)
    u_bar = xp.matmul(Et, up - mean[:, None])  # (k, n)
    ub_c = u_bar - xp.mean(u_bar, axis=1, keepdims=True)
    sigma = xp.matmul(ub_c, xp.matrix_transpose(ub_c)) / (H * W)
    if float(evals[0]) <= 1e-14 * float(xp.mean(y_lr * y_lr)) or float(xp.linalg.trace(sigma)) <= 0:
        # Documented fallback: a spatially constant LrHSI spans no subspace to carry the MSI's detail
        # (and its prior covariance is zero), so the interpolated LrHSI is returned.
        return up_img, {"nb_sub": 0, "fallback": "LrHSI has no spatial variation: interpolated LrHSI returned"}
    sigma_inv = _sym_inv(xp, sigma, 1e-10)

    # --- noise variances (scalars) ---------------------------------------------------------------
    floor_h = float(xp.mean(y_lr * y_lr)) * 10 ** (-snr_max_db / 10)
    floor_m = float(xp.mean(y_ms * y_ms)) * 10 ** (-snr_max_db / 10)
    s2h = noise_hs if noise_hs is not None else _band_regression_noise(xp, y_lr)
    s2m = noise_ms if noise_ms is not None else _haar_mad_noise(xp, msi)
    s2h, s2m = max(s2h, floor_h, 1e-30), max(s2m, floor_m, 1e-30)
    tau = s2h / s2m
    lam = s2h * prior_weight

    # --- Sylvester system U G + M U = C, decoupled by M = Q Γ Qᵀ --------------------------------
    RE = xp.matmul(R, E)  # (l, k)
    Mmat = tau * xp.matmul(xp.matrix_transpose(RE), RE) + lam * sigma_inv
    Mmat = (Mmat + xp.matrix_transpose(Mmat)) / 2
    gam, Q = xp.linalg.eigh(Mmat)
    if not bool(xp.all(gam > 0)):
        raise InputError("FUSE: the prior precision is not positive definite (degenerate interpolated HSI)")
    Qt = xp.matrix_transpose(Q)
    ms_c = y_ms - xp.matmul(R, mean)[:, None]
    z = xp.matmul(Qt, tau * xp.matmul(xp.matrix_transpose(RE), ms_c) + lam * xp.matmul(sigma_inv, u_bar))
    wlr = xp.matmul(xp.matmul(Qt, Et), y_lr - mean[:, None])  # (k, h·w): HSI data in the Q basis

    cdt = _complex_dtype(xp, dt)
    hh = _split(xp, asarray_like(psf_transfer(psf, s, (H, W)), lr, dtype=cdt), s)  # (s, h, s, w)
    hconj = xp.conj(hh)
    P = xp.sum(xp.real(hh * hconj), axis=(0, 2), keepdims=True) / (s * s)  # (1, h, 1, w) real
    g5 = xp.reshape(xp.astype(gam, dt), (k, 1, 1, 1, 1))
    denom = g5 + P[None]  # (k, 1, h, 1, w)
    wf = xp.fft.fftn(xp.reshape(xp.astype(wlr, dt), (k, h, w)), axes=(-2, -1))
    zf = _split(xp, xp.fft.fftn(xp.reshape(xp.astype(z, dt), (k, H, W)), axes=(-2, -1)), s)
    wf = xp.reshape(wf, (k, 1, h, 1, w))
    # (G + γ)⁻¹(A_sᵀ w + z) = A_sᵀ(A_sA_sᵀ + γ)⁻¹ w + (1/γ)[z − h̄ ((1/d) Σ h z)/(γ + P)]
    alias = xp.sum(hh[None] * zf, axis=(1, 3), keepdims=True) / (s * s)
    vf = hconj[None] * (wf / denom) + (zf - hconj[None] * (alias / denom)) / g5
    v = xp.real(xp.fft.ifftn(xp.reshape(vf, (k, H, W)), axes=(-2, -1)))  # (k, H, W) in dt
    EQ = xp.astype(xp.matmul(E, Q), dt)
    out = xp.matmul(EQ, xp.reshape(v, (k, H * W))) + xp.astype(mean, dt)[:, None]
    info = {"nb_sub": k, "noise_hs": s2h, "noise_ms": s2m, "gamma_range": (float(xp.min(gam)), float(xp.max(gam)))}
    return xp.reshape(out, (L, H, W)), info


@register
class FUSE(Method):
    """Closed-form Bayesian fusion with a Gaussian prior in a PCA subspace; needs the PSF and the SRF."""

    name = "fuse"
    family = "classical"
    needs = ("psf", "srf")
    paper = ("Wei, Dobigeon, Tourneret, 'Fast fusion of multi-band images based on solving a Sylvester "
             "equation', IEEE TIP 24(11), 2015")
    summary = "Gaussian-prior MAP fusion in a PCA subspace, solved exactly in the Fourier domain (Sylvester)"
    presets = {"default": {"nb_sub": 15, "prior_weight": 1.0, "snr_max_db": 50.0, "noise_hs": None, "noise_ms": None}}

    def fuse(self, lr, msi, ctx: Context):
        p = self.params
        if p["nb_sub"] < 1:
            raise InputError("FUSE: nb_sub must be >= 1")
        return fuse_sylvester(lr, msi, ctx.srf, ctx.psf, ctx.scale, nb_sub=int(p["nb_sub"]),
                              prior_weight=float(p["prior_weight"]), snr_max_db=float(p["snr_max_db"]),
                              noise_hs=p["noise_hs"], noise_ms=p["noise_ms"], boundary=ctx.boundary)
