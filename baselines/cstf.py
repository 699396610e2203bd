"""CSTF: coupled sparse tensor factorisation (Li, Dian, Fang, Kang, Benediktsson, IEEE TIP 27(8), 2018).

The HrHSI X (bands × rows × cols) is a Tucker tensor X = C ×_b S ×_r D_r ×_c D_c with a sparse core C,
spectral dictionary S (L × n_s) and spatial dictionaries D_r (H × n_r), D_c (W × n_c). With a separable
spatial degradation Y_H = X ×_r P_r ×_c P_c and Y_M = X ×_b R, CSTF minimises

    ½‖Y_H − C ×_b S ×_r P_rD_r ×_c P_cD_c‖² + ½‖Y_M − C ×_b RS ×_r D_r ×_c D_c‖² + λ‖C‖₁

by alternating exact least-squares updates of D_r, D_c, S (each with a proximal term μ‖D − D_prev‖²)
and an ADMM update of the core (penalty ρ = μ). Every quadratic sub-problem has the form
L·X·G₁ + X·G₂ = B, which is solved exactly by two small eigendecompositions (the paper uses
conjugate gradients); the core's quadratic step is diagonal in the basis that jointly diagonalises
the three mode Gram pairs.

Departures from the paper / reference code (documented choices):
* spatial dictionaries are initialised from truncated SVDs of the HrMSI mode unfoldings (orthonormal,
  not K-SVD); spectral atoms start as VCA endmembers of the LrHSI (``spectral_init="vca"``, default)
  or its leading singular vectors (``"svd"``);
  after each spatial update the dictionary is re-orthonormalised by QR and the factor moved into the
  core, which keeps X unchanged and the core's ADMM step exactly solvable;
* the core is initialised from the interpolated LrHSI, which sets the components no observation sees;
* the spatial degradation must be separable: a non-separable PSF is replaced by its best rank-one
  (SVD) approximation k ≈ k_r k_cᵀ, whose relative Frobenius error is returned in the info
  (``psf_separable_error``); the 1-D operators P_r, P_c are read off the benchmark's forward model
  ``blur_decimate`` (block-centred, same boundary), so no geometry is re-implemented.
"""
from __future__ import annotations

import numpy as np

from ..degrade.spatial import blur_decimate, upsample
from ..methods.base import Context, InputError, Method
from ..methods.registry import register
from ..xp import array_namespace, asarray_like, to_numpy

__all__ = ["CSTF", "cstf_fuse", "separable_psf", "separable_operators"]


# ------------------------------------------------------------------------------------ degradation

def separable_psf(psf) -> tuple[np.ndarray, np.ndarray, float]:
    """Best rank-one factorisation psf ≈ outer(k_r, k_c) (SVD), each factor non-negative with sum 1.

    Returns (k_r, k_c, relative Frobenius error of the approximation).
    """
    k = np.asarray(to_numpy(psf), dtype=np.float64)
    if k.ndim != 2:
        raise InputError(f"CSTF: PSF must be 2-D, got shape {k.shape}")
    u, sv, vt = np.linalg.svd(k)
    kr, kc = u[:, 0] * np.sqrt(sv[0]), vt[0] * np.sqrt(sv[0])
    if kr.sum() < 0:
        kr, kc = -kr, -kc
    kr, kc = np.clip(kr, 0, None), np.clip(kc, 0, None)
    if kr.sum() <= 0 or kc.sum() <= 0:
        raise InputError("CSTF: the PSF has no usable separable (rank-one) approximation")
    approx = np.outer(kr, kc)
    err = float(np.linalg.norm(k - approx * (k.sum() / approx.sum())) / max(np.linalg.norm(k), 1e-300))
    return kr / kr.sum(), kc / kc.sum(), err


def separable_operators(psf, scale: int, shape: tuple[int, int], boundary: str = "symmetric"):
    """1-D matrices (P_r (h × H), P_c (w × W), error) with blur_decimate(X, k_r k_cᵀ) = P_r X P_cᵀ.

    Each operator is read off ``blur_decimate`` itself: image i of a stack is one at row i and constant
    along the other axis, whose factor (summing to 1) then drops out.
    """
    kr, kc, err = separable_psf(psf)
    rows, cols = shape
    k = np.outer(kr, kc)

    def one_axis(n: int, along_rows: bool) -> np.ndarray:
        other = k.shape[1] if along_rows else k.shape[0]
        m = scale * max(1, -(-max(other, scale) // scale))  # a multiple of s holding the other axis' padding
        if along_rows:
            e = np.zeros((n, n, m))
            e[np.arange(n), np.arange(n), :] = 1.0
            return blur_decimate(e, k, scale, boundary)[:, :, 0].T  # (n/s, n)
        e = np.zeros((n, m, n))
        e[np.arange(n), :, np.arange(n)] = 1.0
        return blur_decimate(e, k, scale, boundary)[:, 0, :].T

    return one_axis(rows, True), one_axis(cols, False), err


# ------------------------------------------------------------------------------------ tensor helpers

def _mode(xp, t, m, axis: int):
    """Mode product t ×_axis m for a 3-way tensor t and a matrix m (new × old)."""
    if axis == 0:
        d0, d1, d2 = t.shape
        return xp.reshape(xp.matmul(m, xp.reshape(t, (d0, d1 * d2))), (m.shape[0], d1, d2))
    if axis == 1:
        return xp.matmul(m, t)
    return xp.matmul(t, xp.matrix_transpose(m))


def _ttm(xp, t, m0=None, m1=None, m2=None):
    """t ×_0 m0 ×_1 m1 ×_2 m2 (a None factor is skipped)."""
    for axis, m in enumerate((m0, m1, m2)):
        if m is not None:
            t = _mode(xp, t, m, axis)
    return t


def _contract(xp, a, b, axis: int):
    """Σ over the two axes other than ``axis`` of a ⊗ b: (a.shape[axis] × b.shape[axis])."""
    other = tuple(i for i in range(3) if i != axis)
    return xp.tensordot(a, b, axes=(other, other))


def _eye(xp, n, like):
    return xp.eye(n, dtype=like.dtype, device=getattr(like, "device", None))


def _joint_basis(xp, g1, g2):
    """T, θ with Tᵀ g2 T = I and Tᵀ g1 T = diag(θ) (g1 symmetric PSD, g2 symmetric PD)."""
    w2, v2 = xp.linalg.eigh((g2 + xp.matrix_transpose(g2)) / 2)
    floor = 1e-12 * float(xp.max(w2)) + 1e-300
    w2 = xp.clip(w2, floor, None)
    isq = v2 / xp.sqrt(w2)[None, :]  # g2^{-1/2} up to rotation: isqᵀ g2 isq = I
    m = xp.matmul(xp.matmul(xp.matrix_transpose(isq), g1), isq)
    th, v = xp.linalg.eigh((m + xp.matrix_transpose(m)) / 2)
    return xp.matmul(isq, v), xp.clip(th, 0.0, None)


def _solve_lxg(xp, lop_eig, g1, g2, rhs):
    """X with L·X·g1 + X·g2 = rhs, L = E diag(λ) Eᵀ (given as (λ, E)), g1 PSD, g2 PD."""
    lam, E = lop_eig
    T, th = _joint_basis(xp, g1, g2)
    z = xp.matmul(xp.matmul(xp.matrix_transpose(E), rhs), T)
    z = z / (lam[:, None] * th[None, :] + 1.0)
    return xp.matmul(xp.matmul(E, z), xp.matrix_transpose(T))


def _sym_eig(xp, a):
    w, v = xp.linalg.eigh((a + xp.matrix_transpose(a)) / 2)
    return xp.clip(w, 0.0, None), v


def _soft(xp, x, t):
    return xp.sign(x) * xp.clip(xp.abs(x) - t, 0.0, None)


def _qr_pos(xp, d):
    """Thin QR with a non-negative diagonal in R (unique; keeps the sign convention stable)."""
    q, r = xp.linalg.qr(d)
    sgn = xp.where(xp.linalg.diagonal(r) < 0, -1.0, 1.0)
    return q * sgn[None, :], r * sgn[:, None]


# ------------------------------------------------------------------------------------ the algorithm

def _top_left_singular(xp, a, k):
    """k leading left singular vectors of a (m × n) through the eigenvectors of a aᵀ."""
    w, v = xp.linalg.eigh(xp.matmul(a, xp.matrix_transpose(a)))
    order = xp.flip(xp.argsort(w))
    return xp.take(v, order[:k], axis=1)


def cstf_fuse(lr, msi, srf, psf, scale: int, *, spatial_atoms: float | None = None, n_spec: int = 15, lam: float = 1e-5,
              mu: float = 1e-2, outer_iters: int = 15, admm_iters: int = 10, spectral_init: str = "vca",
              boundary: str = "symmetric", seed: int = 0):
    """CSTF fusion of (L, h, w) LrHSI and (l, H, W) HrMSI given the (l, L) SRF and the PSF; returns
    ((L, H, W) HrHSI in the input's namespace and dtype, info dict). Computations run in float64.

    ``spatial_atoms``: atoms of D_r, D_c as a fraction of H, W (≤ 1) or a count (> 1); None: min(n,
    max(128, n/2)) for an n-pixel side (full size on small images, half on large ones); ``n_spec``: atoms
    of S (capped at the LrHSI's numerical rank); ``lam``: ℓ1 weight; ``mu``: proximal weight and ADMM
    penalty; ``outer_iters``/``admm_iters``: alternating sweeps / ADMM steps per core update.
    """
    xp = array_namespace(lr, msi)
    L, h, w = lr.shape
    l, H, W = msi.shape
    dt = lr.dtype
    f64 = xp.float64
    yh = xp.astype(lr, f64)
    ym = xp.astype(msi, f64)
    R = asarray_like(np.asarray(to_numpy(srf), dtype=np.float64), yh)
    if tuple(R.shape) != (l, L):
        raise InputError(f"CSTF: SRF shape {tuple(R.shape)} does not match ({l}, {L})")
    if spatial_atoms is not None and spatial_atoms <= 0:
        raise InputError(f"CSTF: spatial_atoms must be positive, got {spatial_atoms}")

    def atoms(n: int) -> int:
        if spatial_atoms is None:
            return min(n, max(128, -(-n // 2)))
        return max(1, min(n, int(round(spatial_atoms * n)) if spatial_atoms <= 1 else int(spatial_atoms)))

    n_r, n_c = atoms(H), atoms(W)
    # More spectral atoms than the LrHSI's numerical rank would leave S rank-deficient (and VCA would pick
    # duplicates): n_s is capped at that rank (documented fallback for rank-deficient data).
    # singular values on the inputs' device; only the L of them come to the host
    sv = np.asarray(to_numpy(xp.linalg.svdvals(xp.astype(xp.reshape(yh, (L, h * w)), xp.float64))), dtype=np.float64)
    rank = int(np.sum(sv > 1e-6 * max(sv[0], 1e-300)))
    n_s = int(min(n_spec, L, max(rank, 1)))
    if min(n_r, n_c, n_s) < 1:
        raise InputError("CSTF: dictionary sizes must be >= 1")

    pr_np, pc_np, sep_err = separable_operators(psf, scale, (H, W), boundary)
    Pr, Pc = asarray_like(pr_np, yh), asarray_like(pc_np, yh)
    prtpr = _sym_eig(xp, xp.matmul(xp.matrix_transpose(Pr), Pr))
    pctpc = _sym_eig(xp, xp.matmul(xp.matrix_transpose(Pc), Pc))
    rtr = _sym_eig(xp, xp.matmul(xp.matrix_transpose(R), R))

    # Dictionaries: spatial from the HrMSI unfoldings, spectral from the LrHSI.
    Dr = _top_left_singular(xp, xp.reshape(xp.permute_dims(ym, (1, 0, 2)), (H, l * W)), n_r)
    Dc = _top_left_singular(xp, xp.reshape(xp.permute_dims(ym, (2, 0, 1)), (W, l * H)), n_c)
    if spectral_init == "svd":
        S = _top_left_singular(xp, xp.reshape(yh, (L, h * w)), n_s)
    elif spectral_init == "vca":
        from ._common import vca

        S = xp.astype(vca(xp.reshape(yh, (L, h * w)), n_s, seed), f64)
    else:
        raise InputError(f"CSTF: spectral_init must be 'svd' or 'vca', got {spectral_init!r}")

    # Core from the interpolated LrHSI (least-squares coefficients in the three dictionaries).
    up = upsample(yh, scale, "cubic", boundary)
    sts = xp.matmul(xp.matrix_transpose(S), S)
    T = xp.matrix_transpose
    ridge = 1e-10 * float(xp.linalg.trace(sts)) / n_s
    s_pinv = xp.linalg.solve(sts + ridge * _eye(xp, n_s, sts), T(S))
    C = _ttm(xp, up, s_pinv, T(Dr), T(Dc))

    def core_update(C, S, Dr, Dc):
        """ADMM on ½‖·‖² + ½‖·‖² + λ‖C‖₁ (penalty ρ = μ), warm-started at C; Dr, Dc orthonormal."""
        Ar, Ac, Sm = xp.matmul(Pr, Dr), xp.matmul(Pc, Dc), xp.matmul(R, S)
        b = _ttm(xp, yh, T(S), T(Ar), T(Ac)) + _ttm(xp, ym, T(Sm), T(Dr), T(Dc))
        lr_, er = _sym_eig(xp, xp.matmul(T(Ar), Ar))
        lc_, ec = _sym_eig(xp, xp.matmul(T(Ac), Ac))
        g2 = xp.matmul(T(Sm), Sm) + mu * _eye(xp, n_s, Sm)
        t3, th = _joint_basis(xp, xp.matmul(T(S), S), g2)
        # In the basis t3 ⊗ er ⊗ ec the operator K + ρI is diagonal: θ ⊗ λ_r ⊗ λ_c + 1.
        diag = th[:, None, None] * lr_[None, :, None] * lc_[None, None, :] + 1.0

        def solve(rhs):  # (K + ρ I)⁻¹ rhs with K the data Gram operator
            return _ttm(xp, _ttm(xp, rhs, T(t3), T(er), T(ec)) / diag, t3, er, ec)

        Z, U = C, xp.zeros_like(C)
        for _ in range(max(1, admm_iters)):
            C = solve(b + mu * (Z - U))
            Z = _soft(xp, C + U, lam / mu)
            U = U + C - Z
        return Z if lam > 0 else C

    C = core_update(C, S, Dr, Dc)
    for _ in range(outer_iters):
        # D_r: P_rᵀP_r D_r (AAᵀ) + D_r (BBᵀ + μI) = P_rᵀ Y_H(r) Aᵀ + Y_M(r) Bᵀ + μ D_r
        th_ = _ttm(xp, C, S, None, xp.matmul(Pc, Dc))  # (L, n_r, w)
        tm_ = _ttm(xp, C, xp.matmul(R, S), None, Dc)  # (l, n_r, W)
        rhs = xp.matmul(T(Pr), _contract(xp, yh, th_, 1)) + _contract(xp, ym, tm_, 1) + mu * Dr
        Dr = _solve_lxg(xp, prtpr, _contract(xp, th_, th_, 1), _contract(xp, tm_, tm_, 1) + mu * _eye(xp, n_r, Dr), rhs)
        Dr, rr = _qr_pos(xp, Dr)
        C = _mode(xp, C, rr, 1)
        # D_c, symmetrically.
        th_ = _ttm(xp, C, S, xp.matmul(Pr, Dr))  # (L, h, n_c)
        tm_ = _ttm(xp, C, xp.matmul(R, S), Dr)  # (l, H, n_c)
        rhs = xp.matmul(T(Pc), _contract(xp, yh, th_, 2)) + _contract(xp, ym, tm_, 2) + mu * Dc
        Dc = _solve_lxg(xp, pctpc, _contract(xp, th_, th_, 2), _contract(xp, tm_, tm_, 2) + mu * _eye(xp, n_c, Dc), rhs)
        Dc, rc = _qr_pos(xp, Dc)
        C = _mode(xp, C, rc, 2)
        # S: RᵀR S (BBᵀ) + S (AAᵀ + μI) = Y_H(b) Aᵀ + Rᵀ Y_M(b) Bᵀ + μ S
        th_ = _ttm(xp, C, None, xp.matmul(Pr, Dr), xp.matmul(Pc, Dc))  # (n_s, h, w)
        tm_ = _ttm(xp, C, None, Dr, Dc)  # (n_s, H, W)
        rhs = _contract(xp, yh, th_, 0) + xp.matmul(T(R), _contract(xp, ym, tm_, 0)) + mu * S
        S = _solve_lxg(xp, rtr, _contract(xp, tm_, tm_, 0), _contract(xp, th_, th_, 0) + mu * _eye(xp, n_s, S), rhs)
        C = core_update(C, S, Dr, Dc)

    out = _ttm(xp, C, S, Dr, Dc)
    info = {"psf_separable_error": sep_err, "core_shape": (n_s, n_r, n_c),
            "core_density": float(xp.mean(xp.astype(C != 0, f64)))}
    return xp.astype(out, dt), info


@register
class CSTF(Method):
    """Coupled sparse Tucker factorisation; needs the PSF (made separable) and the SRF."""

    name = "cstf"
    family = "classical"
    needs = ("psf", "srf")
    paper = ("Li, Dian, Fang, Kang, Benediktsson, 'Fusing hyperspectral and multispectral images via coupled "
             "sparse tensor factorization', IEEE TIP 27(8), 2018")
    summary = "Tucker model: MSI spatial and HSI spectral dictionaries, sparse core, alternating updates"
    # default: tuned on CAVE balloons ×8 (μ = 1e-3 → 46.1 dB, 1e-2 → 47.3 dB; 128-atom spatial
    # dictionaries match 256-atom ones there at a fraction of the cost, full size is kept on small
    # images). paper: the demo's values (Pavia 256², W = H = 240 atoms, S = 9, μ = 1e-3).
    presets = {
        "default": {"spatial_atoms": None, "n_spec": 15, "lam": 1e-5, "mu": 1e-2, "outer_iters": 15,
                    "admm_iters": 10, "spectral_init": "vca"},
        "paper": {"spatial_atoms": 240 / 256, "n_spec": 9, "mu": 1e-3},
    }

    def fuse(self, lr, msi, ctx: Context):
        p = self.params
        outer = ctx.iterations if ctx.iterations is not None else p["outer_iters"]
        return cstf_fuse(lr, msi, ctx.srf, ctx.psf, ctx.scale, spatial_atoms=p["spatial_atoms"],
                         n_spec=int(p["n_spec"]), lam=float(p["lam"]), mu=float(p["mu"]), outer_iters=int(outer),
                         admm_iters=int(p["admm_iters"]), spectral_init=p["spectral_init"], boundary=ctx.boundary,
                         seed=ctx.seed)
