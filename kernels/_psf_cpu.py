"""Numba CPU kernels for the block-centred strided PSF correlation and its adjoint.

Layout: ``x`` is a C-contiguous (B, H, W) float32/float64 cube, the output (B, H/s, W/s). The work
is split over (band, output row): each task takes a run of consecutive output rows (serial
``@njit`` tasks run in parallel by ``_par.par_for``, see there). Each output row is built from
the kh HR rows under it, so every HR row is read from memory once for k = s (twice for k = 2s,
the second time from cache) and all inner loops run over contiguous memory. Accumulation is in
the input's dtype (float32 sums of at most k terms per stage: ~1e-7 relative).

The kernel is given as a sum of separable terms k = Σ_r col_r ⊗ row_r (the caller picks either
the SVD factors, rank 1 for Gaussian/box presets, or the "direct" split col = identity,
row = k for high-rank shapes). Per term: a vertical pass (contiguous, vectorised) into a row
buffer padded by the boundary rule, then the horizontal strided taps.

The horizontal taps are the hard part to vectorise: ``out[j] = Σ_v row[v]·t[j·s + v]`` has a
stride s between outputs. Each task exists for S = s in SPECIALISED (a literal in the task, so a
compile-time constant after inlining) and for S = 1: for S > 1 the taps are split in blocks of S
(the row is zero-padded to a multiple of S) and the block loop is fully unrolled, which LLVM
turns into interleaved vector loads (5-10x faster than the generic loop for s = 4). S = 1 is the
generic runtime-stride path. One compilation per (dtype, S), a few seconds each, so only the
scales the benchmarks and studies use most are specialised.

The adjoint is the exact transpose, computed by gathering per HR row: the LR rows that reach HR
row m through the kernel rows and the boundary fold are combined first (a short vertical pass on
LR rows), then scattered through the horizontal taps into a padded row, which is folded back.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from ._par import par_for, rows_per_task
from ._plan import vertical_taps

# No nnan/ninf: NaN and Inf must propagate like in the reference. Reassociation lets LLVM
# vectorise the short tap reductions.
_FM = {"reassoc", "contract", "nsz", "arcp"}

#: Scale factors with a specialised (unrolled) horizontal pass; others use the generic loop.
SPECIALISED = (4, 8, 16)


def specialisation(scale: int) -> int:
    """S for a scale factor (see the module docstring)."""
    return scale if scale in SPECIALISED else 1


@njit(cache=True, error_model="numpy")
def _fill_margins(tmp, pad, W, cidx):
    """tmp[pad:pad+W] holds a row; copy the boundary-mapped values into both margins."""
    for q in range(pad):
        tmp[q] = tmp[pad + cidx[q]]
        tmp[pad + W + q] = tmp[pad + cidx[pad + W + q]]


@njit(cache=True, fastmath=_FM, error_model="numpy", inline="always")
def _hcorr(t, rw, S, s, w, orow):
    """orow[j] += Σ_v rw[v]·t[j·s + v] for j < w (S: see the module docstring)."""
    if S == 1:
        kw = rw.shape[0]
        for j in range(w):
            seg = t[j * s : j * s + kw]
            acc = rw[0] * seg[0]
            for v in range(1, kw):
                acc += rw[v] * seg[v]
            orow[j] += acc
    else:
        for q in range(rw.shape[0] // S):
            tq = t[q * S :]
            cq = rw[q * S : (q + 1) * S]
            for j in range(w):
                acc = cq[0] * tq[S * j]
                for phi in range(1, S):
                    acc += cq[phi] * tq[S * j + phi]
                orow[j] += acc


@njit(cache=True, fastmath=_FM, error_model="numpy", inline="always")
def _hscatter(t, rw, S, s, w, yc):
    """t[j·s + v] += rw[v]·yc[j] for j < w (transpose of _hcorr)."""
    if S == 1 or S > 8:  # for S > 8 a block is a full vector: the contiguous v loop is best
        kw = rw.shape[0]
        for j in range(w):
            yj = yc[j]
            seg = t[j * s : j * s + kw]
            for v in range(kw):
                seg[v] += rw[v] * yj
    else:
        for q in range(rw.shape[0] // S):
            tq = t[q * S :]
            cq = rw[q * S : (q + 1) * S]
            for j in range(w):
                yj = yc[j]
                for phi in range(S):
                    tq[S * j + phi] += cq[phi] * yj


@njit(cache=True, fastmath=_FM, error_model="numpy", inline="always")
def _forward_rows(t, args, S):
    """Output rows [t·per, (t + 1)·per) of :func:`forward`, row id = b·h + i."""
    x, tap_u, tap_w, tap_n, row, s, ridx, cidx, st_r, st_c, pad_c, per, out = args
    B, H, W = x.shape
    h = H // s
    w = W // s
    R = tap_n.shape[0]
    kwp = row.shape[1]
    Wp = W + 2 * pad_c
    Wt = max(Wp, (w - 1) * s + st_c + kwp)
    tmp = np.empty(Wt, dtype=x.dtype)  # one row buffer per task
    for q in range(Wp, Wt):
        tmp[q] = 0
    tv = tmp[pad_c : pad_c + W]
    th = tmp[st_c:]
    for rid in range(t * per, min(B * h, (t + 1) * per)):
        b = rid // h
        i = rid - b * h
        orow = out[b, i]
        for j in range(w):
            orow[j] = 0
        r0 = i * s + st_r
        for rr in range(R):
            n = tap_n[rr]
            if n == 0:
                continue
            _vertical(x[b], ridx, r0, tap_u[rr], tap_w[rr], n, tv)
            _fill_margins(tmp, pad_c, W, cidx)
            _hcorr(th, row[rr], S, s, w, orow)


@njit(cache=True, fastmath=_FM, error_model="numpy", inline="always")
def _vertical(xb, ridx, r0, tu, tw, n, tv):
    """tv = Σ_k tw[k]·xb[ridx[r0 + tu[k]]] over the n non-zero taps, four rows per sweep (the
    accumulator row is read and written once per four taps)."""
    W = tv.shape[0]
    k = 0
    while k < n:
        if n - k >= 4:
            x0 = xb[ridx[r0 + tu[k]]]
            x1 = xb[ridx[r0 + tu[k + 1]]]
            x2 = xb[ridx[r0 + tu[k + 2]]]
            x3 = xb[ridx[r0 + tu[k + 3]]]
            w0 = tw[k]
            w1 = tw[k + 1]
            w2 = tw[k + 2]
            w3 = tw[k + 3]
            if k == 0:
                for c in range(W):
                    tv[c] = w0 * x0[c] + w1 * x1[c] + w2 * x2[c] + w3 * x3[c]
            else:
                for c in range(W):
                    tv[c] += w0 * x0[c] + w1 * x1[c] + w2 * x2[c] + w3 * x3[c]
            k += 4
        else:
            xr = xb[ridx[r0 + tu[k]]]
            w0 = tw[k]
            if k == 0:
                for c in range(W):
                    tv[c] = w0 * xr[c]
            else:
                for c in range(W):
                    tv[c] += w0 * xr[c]
            k += 1


# One task per specialisation: S is a literal here, so after inlining the tap blocks unroll.
@njit(cache=True, fastmath=_FM, error_model="numpy")
def _forward_1(t, args):
    _forward_rows(t, args, 1)


@njit(cache=True, fastmath=_FM, error_model="numpy")
def _forward_4(t, args):
    _forward_rows(t, args, 4)


@njit(cache=True, fastmath=_FM, error_model="numpy")
def _forward_8(t, args):
    _forward_rows(t, args, 8)


@njit(cache=True, fastmath=_FM, error_model="numpy")
def _forward_16(t, args):
    _forward_rows(t, args, 16)


_FORWARD = {1: _forward_1, 4: _forward_4, 8: _forward_8, 16: _forward_16}


def forward(x, col, row, S, s, ridx, cidx, st_r, st_c, pad_c, out, taps=None):
    """out[b, i, j] = Σ_r Σ_u Σ_v col[r,u]·row[r,v]·x[b, ridx[i·s+st_r+u], cidx[j·s+st_c+v]].

    ``row`` may be zero-padded on the right (to a multiple of S); ``ridx``/``cidx`` map padded
    positions to image indices; ``pad_c`` is the column padding of ``cidx``; ``taps`` is
    :func:`vertical_taps` of ``col`` (computed if not given). Parallel over (band, output row).
    """
    tap_u, tap_w, tap_n = vertical_taps(col) if taps is None else taps
    nrows = x.shape[0] * (x.shape[1] // s)
    per = rows_per_task(nrows)
    par_for(_FORWARD[S], -(-nrows // per), (x, tap_u, tap_w, tap_n, row, s, ridx, cidx, st_r, st_c, pad_c, per, out))


@njit(cache=True, error_model="numpy")
def _lr_range(p, st_r, kh, s, h):
    """LR rows i whose kernel rows reach padded row p: u = p − st_r − i·s in [0, kh)."""
    d = p - st_r
    lo = -((kh - 1 - d) // s)  # ceil((d − kh + 1) / s)
    hi = d // s
    if lo < 0:
        lo = 0
    if hi > h - 1:
        hi = h - 1
    return lo, hi


@njit(cache=True, fastmath=_FM, error_model="numpy", inline="always")
def _adjoint_rows(t, args, S):
    """HR rows [t·per, (t + 1)·per) of :func:`adjoint`, row id = b·H + m."""
    y, col, row, s, H, W, fptr, fpos, cidx, st_r, st_c, pad_c, per, out = args
    B, h, w = y.shape
    Wt = max(W + 2 * pad_c, (w - 1) * s + st_c + row.shape[1])
    tq = np.empty(Wt, dtype=y.dtype)  # buffers per task
    yc = np.empty(w, dtype=y.dtype)
    for rid in range(t * per, min(B * H, (t + 1) * per)):
        b = rid // H
        m = rid - b * H
        for q in range(Wt):
            tq[q] = 0
        _adjoint_row(b, m, y, col, row, S, s, H, W, fptr, fpos, cidx, st_r, st_c, pad_c, tq, yc, out)


@njit(cache=True, fastmath=_FM, error_model="numpy", inline="always")
def _adjoint_row(b, m, y, col, row, S, s, H, W, fptr, fpos, cidx, st_r, st_c, pad_c, tq, yc, out):
    B, h, w = y.shape
    R, kh = col.shape
    th = tq[st_c:]
    for rr in range(R):
        cr = col[rr]
        n_terms = 0
        for f in range(fptr[m], fptr[m + 1]):
            p = fpos[f]
            lo, hi = _lr_range(p, st_r, kh, s, h)
            for i in range(lo, hi + 1):
                a = cr[p - st_r - i * s]
                if a == 0:
                    continue
                yi = y[b, i]
                if n_terms == 0:
                    for j in range(w):
                        yc[j] = a * yi[j]
                else:
                    for j in range(w):
                        yc[j] += a * yi[j]
                n_terms += 1
        if n_terms:
            _hscatter(th, row[rr], S, s, w, yc)
    orow = out[b, m]
    tv = tq[pad_c : pad_c + W]
    for c in range(W):
        orow[c] = tv[c]
    for q in range(pad_c):
        orow[cidx[q]] += tq[q]
        orow[cidx[pad_c + W + q]] += tq[pad_c + W + q]


@njit(cache=True, fastmath=_FM, error_model="numpy")
def _adjoint_1(t, args):
    _adjoint_rows(t, args, 1)


@njit(cache=True, fastmath=_FM, error_model="numpy")
def _adjoint_4(t, args):
    _adjoint_rows(t, args, 4)


@njit(cache=True, fastmath=_FM, error_model="numpy")
def _adjoint_8(t, args):
    _adjoint_rows(t, args, 8)


@njit(cache=True, fastmath=_FM, error_model="numpy")
def _adjoint_16(t, args):
    _adjoint_rows(t, args, 16)


_ADJOINT = {1: _adjoint_1, 4: _adjoint_4, 8: _adjoint_8, 16: _adjoint_16}


def adjoint(y, col, row, S, s, H, W, fptr, fpos, cidx, st_r, st_c, pad_c, out):
    """Exact transpose of :func:`forward` (same arguments; ``fptr``/``fpos``: CSR of the padded
    rows that read each image row). Parallel over (band, HR row)."""
    nrows = y.shape[0] * H
    per = rows_per_task(nrows)
    par_for(_ADJOINT[S], -(-nrows // per), (y, col, row, s, H, W, fptr, fpos, cidx, st_r, st_c, pad_c, per, out))
