"""GSA: Gram-Schmidt adaptive component substitution (Aiazzi et al., TGRS 2007), band-grouped as in
Yokoya's HSI-MSI fusion review (GRSM 2017): each HS band is sharpened with the MS band it correlates
best with at low resolution.

Array-API generic (NumPy, CuPy, torch). Needs neither PSF nor SRF: the MS image is brought to the HS
grid with an ``imresize``-style antialiasing kernel, as the reference does.
"""
from __future__ import annotations

from ..degrade.psf import resize_psf
from ..degrade.spatial import blur_decimate, upsample
from ..methods.base import Context, InputError, Method
from ..methods.registry import register
from ..xp import array_namespace

__all__ = ["GSA", "gsa_fuse"]


def _centre(xp, a):
    """Subtract each band's mean; return (centred, means) for a (k, n) matrix."""
    m = xp.mean(a, axis=1, keepdims=True)
    return a - m, m


def _gsa_group(xp, lr_g, up_g, pan, pan_lr):
    """GSA of k HS bands with one MS band as PAN. Shapes: lr_g (k, n_lr), up_g (k, n), pan (n,), pan_lr (n_lr,)."""
    k = lr_g.shape[0]
    lr0, _ = _centre(xp, lr_g)
    up0, _ = _centre(xp, up_g)
    pan0 = pan - xp.mean(pan)
    pan_lr0 = pan_lr - xp.mean(pan_lr)
    ones = xp.ones((1, lr0.shape[1]), dtype=lr0.dtype, device=getattr(lr0, "device", None))
    # The least-squares fit runs in float64: the normal equations square the condition number.
    A = xp.astype(xp.concat([lr0, ones], axis=0), xp.float64)  # (k+1, n_lr)
    gram = xp.matmul(A, xp.matrix_transpose(A))
    rhs = xp.matmul(A, xp.astype(pan_lr0, xp.float64)[:, None])
    ridge = 1e-12 * (xp.linalg.trace(gram) / (k + 1))  # keeps rank-deficient groups solvable
    eye = xp.eye(k + 1, dtype=gram.dtype, device=getattr(gram, "device", None))
    alpha = xp.astype(xp.linalg.solve(gram + ridge * eye, rhs)[:, 0], up0.dtype)
    intensity = xp.matmul(alpha[None, :k], up0)[0] + alpha[k]
    i0 = intensity - xp.mean(intensity)
    var = xp.mean(i0 * i0)
    if float(var) <= 0:
        raise InputError("GSA: the synthetic intensity is constant (all-zero or constant HS bands in a group)")
    gains = xp.mean(up0 * i0[None, :], axis=1) / var  # cov(I0, HS_k) / var(I0)
    return up_g + gains[:, None] * (pan0 - i0)[None, :]


def gsa_fuse(lr, msi, scale: int, boundary: str = "symmetric"):
    """Fuse (L, h, w) LrHSI with (l, H, W) HrMSI by band-grouped GSA; returns (L, H, W)."""
    xp = array_namespace(lr, msi)
    L, h, w = lr.shape
    l, H, W = msi.shape
    msi_lr = blur_decimate(msi, resize_psf(scale, "linear"), scale, boundary)
    up = upsample(lr, scale, "cubic", boundary)
    lr_f = xp.reshape(lr, (L, h * w))
    up_f = xp.reshape(up, (L, H * W))
    msi_f = xp.reshape(msi, (l, H * W))
    mlr_f = xp.reshape(msi_lr, (l, h * w))
    # Pearson correlation of every HS band with every LR MS band -> best MS band per HS band.
    a, _ = _centre(xp, lr_f)
    b, _ = _centre(xp, mlr_f)
    na = xp.sqrt(xp.sum(a * a, axis=1, keepdims=True))
    nb = xp.sqrt(xp.sum(b * b, axis=1, keepdims=True))
    corr = xp.matmul(a / xp.where(na > 0, na, 1), xp.matrix_transpose(b / xp.where(nb > 0, nb, 1)))
    choice = xp.argmax(corr, axis=1)
    pan_lr_all = blur_decimate(msi, resize_psf(scale, "cubic"), scale, boundary)
    plr_f = xp.reshape(pan_lr_all, (l, h * w))
    out = xp.zeros((L, H * W), dtype=up.dtype, device=getattr(up, "device", None))
    for g in range(l):
        idx = xp.nonzero(choice == g)[0]
        if idx.shape[0] == 0:
            continue
        fused = _gsa_group(xp, xp.take(lr_f, idx, axis=0), xp.take(up_f, idx, axis=0), msi_f[g], plr_f[g])
        out[idx, :] = fused
    return xp.reshape(out, (L, H, W))


@register
class GSA(Method):
    """Band-grouped Gram-Schmidt adaptive substitution; no PSF/SRF needed, so every mode applies."""

    name = "gsa"
    family = "classical"
    paper = "Aiazzi, Baronti, Selva, IEEE TGRS 45(10), 2007; grouping as in Yokoya et al., IEEE GRSM 2017"
    summary = "component substitution: per HS band, inject the best-correlated MS band's detail"
    presets = {"default": {}}

    def fuse(self, lr, msi, ctx: Context):
        return gsa_fuse(lr, msi, ctx.scale, ctx.boundary)
