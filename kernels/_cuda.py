"""numba-cuda kernels (imported only when a device array arrives, or by the simulator tests).

Inputs are CuPy arrays, CUDA torch tensors (zero-copy through ``__cuda_array_interface__``) or
Numba device arrays (also the simulator's). Work runs on the caller's current stream (CuPy /
torch) and device; results of the PSF operator come back as the caller's array type, metric
results as small host arrays.

Kernels (the same definitions as the CPU ones, parallelised for a GPU):

- ``_forward``: one thread per LR pixel (1-D grid, consecutive threads on consecutive columns),
  direct sum over the kernel taps with the boundary index maps (every input element is read by
  ≈ (k/s)² neighbouring threads, so the taps hit L1/L2).
- ``_adjoint``: one thread per HR pixel, gathering over the transpose (fold) maps of both axes.
- ``_band_stats``: a block owns a run of pixels and walks the bands, each thread keeping its
  pixels' spectral accumulators in registers; per band a shared-memory reduction and one atomic
  per block and statistic. Each input element is read once.
- ``_windowed``: one thread per pixel for SSIM (11×11 Gaussian) and UIQI (8×8 window), block
  reduction, one atomic per block and band.

What is verified: correctness, against the NumPy references under the numba-cuda simulator
(``tests/test_kernels_cudasim.py``). What is not: speed on a device (``hsibench.bench`` times the
CPU kernels only); the launch shapes are the simple, coalesced ones, not tuned.
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda

from ._metrics_cpu import GMAX, NSTAT

TPB = 128  # threads per block for the 1-D kernels
PPT = 4  # pixels per thread in _band_stats
BX, BY = 32, 4  # 2-D blocks


# ----------------------------------------------------------------------------- array plumbing
class _Native:
    """The caller's device array, reshaped to 3-D, contiguous, in the compute dtype, with a Numba
    view, the stream to launch on and the device to launch on."""

    def __init__(self, a, shape3, dtype):
        mod = type(a).__module__ or ""
        self.flavour = "torch" if mod.startswith("torch") else "cupy" if mod.startswith("cupy") else "numba"
        if self.flavour == "torch":
            import torch

            tdt = torch.float32 if dtype == np.float32 else torch.float64
            a = a.detach().reshape(shape3).to(tdt).contiguous()
            self.device = a.device.index or 0
            with cuda.gpus[self.device]:
                self.stream = cuda.external_stream(torch.cuda.current_stream(a.device).cuda_stream)
                self.view = cuda.as_cuda_array(a)
        elif self.flavour == "cupy":
            import cupy

            with a.device:
                a = cupy.ascontiguousarray(a.reshape(shape3), dtype=dtype)
                handle = cupy.cuda.get_current_stream().ptr
            self.device = a.device.id
            with cuda.gpus[self.device]:
                self.stream = cuda.external_stream(handle)
                self.view = cuda.as_cuda_array(a)
        else:
            a = as_numba(a)
            if tuple(a.shape) != tuple(shape3):
                a = a.reshape(shape3)
            if np.dtype(a.dtype) != dtype:  # cast on the device (a mixed float32/float64 pair)
                cast = cuda.device_array(a.shape, dtype=dtype)
                if a.size:
                    _cast3[_launch_1d(a.size)](a, cast)
                a = cast
            self.device = None
            self.stream = 0
            self.view = a
        self.native = a

    def empty(self, shape, dtype):
        """A new device array of the caller's flavour and its Numba view."""
        if self.flavour == "torch":
            import torch

            tdt = torch.float32 if dtype == np.float32 else torch.float64
            t = torch.empty(shape, dtype=tdt, device=self.native.device)
            return t, cuda.as_cuda_array(t)
        if self.flavour == "cupy":
            import cupy

            with self.native.device:
                c = cupy.empty(shape, dtype=dtype)
            return c, cuda.as_cuda_array(c)
        d = cuda.device_array(shape, dtype=dtype)
        return d, d

    def context(self):
        return cuda.gpus[self.device] if self.device is not None else _nullcontext()


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _dtype_of(a) -> np.dtype:
    mod = type(a).__module__ or ""
    if mod.startswith("torch"):
        import torch

        dt = {torch.float32: np.float32, torch.float64: np.float64}.get(a.dtype, np.float64)
        return np.dtype(dt)
    dt = np.dtype(a.dtype)
    return dt if dt == np.float32 else np.dtype(np.float64)


def as_numba(a):
    """A Numba device-array view of a device array (zero-copy).

    Numba device arrays pass through; CuPy, torch and other ``__cuda_array_interface__``
    exporters go through ``numba.cuda.as_cuda_array``. The CUDA simulator has no
    ``as_cuda_array``; its "device" memory is host memory, so there the interface's pointer is
    wrapped as a simulator device array (still no copy).
    """
    if getattr(a, "__cuda_ndarray__", False):
        return a
    if hasattr(cuda, "as_cuda_array"):
        return cuda.as_cuda_array(a)
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

    cai = a.__cuda_array_interface__

    class _HostInterface:
        __array_interface__ = {
            "shape": tuple(cai["shape"]),
            "typestr": cai["typestr"],
            "data": tuple(cai["data"]),
            "strides": cai.get("strides"),
            "version": 3,
        }

    return FakeCUDAArray(np.asarray(_HostInterface()))


def to_host(a) -> np.ndarray:
    """Host NumPy copy of any device array (error paths and metrics without a device kernel)."""
    mod = type(a).__module__ or ""
    if mod.startswith("torch"):
        return a.detach().cpu().numpy()
    if hasattr(a, "get"):
        return a.get()
    return as_numba(a).copy_to_host()


@cuda.jit(cache=True)
def _cast3(src, dst):
    """dst[...] = src[...] in dst's dtype (both 3-D, any strides); one thread per element."""
    i = cuda.grid(1)
    B, H, W = dst.shape
    if i < B * H * W:
        t = i // W
        c = i - t * W
        b = t // H
        r = t - b * H
        dst[b, r, c] = src[b, r, c]


def _dev(arr, stream):
    return cuda.to_device(np.ascontiguousarray(arr), stream=stream)


# --------------------------------------------------------------------------------- PSF kernels
@cuda.jit(cache=True)
def _forward(x, k, s, ridx, cidx, st_r, st_c, out):
    B, h, w = out.shape
    g = cuda.grid(1)  # 1-D grid: consecutive threads take consecutive columns (coalesced)
    if g >= B * h * w:
        return
    t = g // w
    j = g - t * w
    b = t // h
    i = t - b * h
    kh, kw = k.shape
    acc = k[0, 0] - k[0, 0]  # zero in the compute dtype
    r0 = i * s + st_r
    c0 = j * s + st_c
    for u in range(kh):
        r = ridx[r0 + u]
        for v in range(kw):
            kv = k[u, v]
            if kv != 0:
                acc += kv * x[b, r, cidx[c0 + v]]
    out[b, i, j] = acc


@cuda.jit(cache=True)
def _adjoint(y, k, s, rptr, rpos, cptr, cpos, st_r, st_c, out):
    B, H, W = out.shape
    gi = cuda.grid(1)
    if gi >= B * H * W:
        return
    t = gi // W
    c = gi - t * W
    b = t // H
    m = t - b * H
    h, w = y.shape[1], y.shape[2]
    kh, kw = k.shape
    acc = k[0, 0] - k[0, 0]
    for f in range(rptr[m], rptr[m + 1]):
        dr = rpos[f] - st_r
        ilo = max(0, -((kh - 1 - dr) // s))
        ihi = min(h - 1, dr // s)
        for g in range(cptr[c], cptr[c + 1]):
            dc = cpos[g] - st_c
            jlo = max(0, -((kw - 1 - dc) // s))
            jhi = min(w - 1, dc // s)
            for i in range(ilo, ihi + 1):
                u = dr - i * s
                for j in range(jlo, jhi + 1):
                    kv = k[u, dc - j * s]
                    if kv != 0:
                        acc += kv * y[b, i, j]
    out[b, m, c] = acc


def _launch_1d(n):
    return max(1, math.ceil(n / TPB)), TPB


def _wrap_out(native_out, lead, tail):
    return native_out.reshape(tuple(lead) + tuple(tail))


def blur_decimate(x, plan):
    H, W, s = plan.rows, plan.cols, plan.scale
    lead = tuple(x.shape)[:-2]
    B = int(np.prod(lead)) if lead else 1
    dt = _dtype_of(x)
    nx = _Native(x, (B, H, W), dt)
    with nx.context():
        out_native, out = nx.empty((B, H // s, W // s), dt)
        if B and out.size:
            st = nx.stream
            k = _dev(plan.k.astype(dt), st)
            grid, block = _launch_1d(B * (H // s) * (W // s))
            _forward[grid, block, st](
                nx.view, k, s, _dev(plan.r.idx, st), _dev(plan.c.idx, st), plan.r.start, plan.c.start, out
            )
    return _wrap_out(out_native, lead, (H // s, W // s))


def blur_decimate_adjoint(y, plan):
    H, W, s = plan.rows, plan.cols, plan.scale
    lead = tuple(y.shape)[:-2]
    B = int(np.prod(lead)) if lead else 1
    dt = _dtype_of(y)
    ny = _Native(y, (B, H // s, W // s), dt)
    with ny.context():
        out_native, out = ny.empty((B, H, W), dt)
        if B and out.size:
            st = ny.stream
            k = _dev(plan.k.astype(dt), st)
            grid, block = _launch_1d(B * H * W)
            _adjoint[grid, block, st](
                ny.view,
                k,
                s,
                _dev(plan.r.fold_ptr, st),
                _dev(plan.r.fold_pos, st),
                _dev(plan.c.fold_ptr, st),
                _dev(plan.c.fold_pos, st),
                plan.r.start,
                plan.c.start,
                out,
            )
    return _wrap_out(out_native, lead, (H, W))


# ----------------------------------------------------------------------------- metric kernels
@cuda.jit(cache=True)
def _first_values(g, e, kg, ke):
    b = cuda.grid(1)
    if b < g.shape[0]:
        kg[b] = g[b, 0, 0]
        ke[b] = e[b, 0, 0]


@cuda.jit(cache=True)
def _band_stats(g, e, kg, ke, policy, stats, sam):
    """Block = TPB·PPT consecutive pixels (flattened rows × cols), all bands."""
    B, H, W = g.shape
    npix = H * W
    tid = cuda.threadIdx.x
    base = cuda.blockIdx.x * (TPB * PPT)
    red = cuda.shared.array(shape=(NSTAT, TPB), dtype=np.float64)
    dot = cuda.local.array(PPT, np.float64)
    gg = cuda.local.array(PPT, np.float64)
    ee = cuda.local.array(PPT, np.float64)
    gs = cuda.local.array(PPT, np.float64)
    for q in range(PPT):
        dot[q] = 0.0
        gg[q] = 0.0
        ee[q] = 0.0
        gs[q] = 0.0
    for b in range(B):
        sse = 0.0
        sae = 0.0
        sg = 0.0
        se = 0.0
        sgg = 0.0
        see = 0.0
        sge = 0.0
        mx = -math.inf
        for q in range(PPT):
            p = base + q * TPB + tid
            if p < npix:
                r = p // W
                c = p - r * W
                gv = np.float64(g[b, r, c])
                ev = np.float64(e[b, r, c])
                d = gv - ev
                sse += d * d
                sae += abs(d)
                gc = gv - kg[b]
                ec = ev - ke[b]
                sg += gc
                se += ec
                sgg += gc * gc
                see += ec * ec
                sge += gc * ec
                mx = max(mx, gv)
                dot[q] += gv * ev
                gg[q] += gv * gv
                ee[q] += ev * ev
                gs[q] += gv
        red[0, tid] = sse
        red[1, tid] = sae
        red[2, tid] = sg
        red[3, tid] = se
        red[4, tid] = sgg
        red[5, tid] = see
        red[6, tid] = sge
        red[GMAX, tid] = mx
        cuda.syncthreads()
        half = TPB // 2
        while half > 0:
            if tid < half:
                for m in range(7):
                    red[m, tid] += red[m, tid + half]
                red[GMAX, tid] = max(red[GMAX, tid], red[GMAX, tid + half])
            cuda.syncthreads()
            half //= 2
        if tid == 0:
            for m in range(7):
                cuda.atomic.add(stats, (b, m), red[m, 0])
            cuda.atomic.max(stats, (b, GMAX), red[GMAX, 0])
        cuda.syncthreads()
    a_sum = 0.0
    a_n = 0.0
    for q in range(PPT):
        p = base + q * TPB + tid
        if p >= npix:
            continue
        nx = gg[q]
        ny = ee[q]
        cs = 2.0
        if nx == 0.0:
            if policy == 1:
                a_sum += 90.0
                a_n += 1.0
        elif ny == 0.0:
            if policy == 3:
                cs = (1e-4 * gs[q]) / (math.sqrt(nx) * math.sqrt(B * 1e-8))
            elif policy != 2:
                a_sum += 90.0
                a_n += 1.0
        else:
            den = math.sqrt(nx * ny)  # as the CPU kernel: identical spectra give exactly 0°
            cs = 1.0 if dot[q] == den else dot[q] / den
        if cs < 1.5:
            cs = min(1.0, max(-1.0, cs))
            a_sum += math.acos(cs) * (180.0 / math.pi)
            a_n += 1.0
    red[0, tid] = a_sum
    red[1, tid] = a_n
    cuda.syncthreads()
    half = TPB // 2
    while half > 0:
        if tid < half:
            red[0, tid] += red[0, tid + half]
            red[1, tid] += red[1, tid + half]
        cuda.syncthreads()
        half //= 2
    if tid == 0:
        cuda.atomic.add(sam, 0, red[0, 0])
        cuda.atomic.add(sam, 1, red[1, 0])


def band_stats(gt, est, policy):
    """(B, 9) un-shifted statistics (see ``metrics._unshift``) and the (2,) SAM totals, on the host."""
    B, H, W = (int(n) for n in gt.shape)
    dt = np.dtype(np.float32) if (_dtype_of(gt) == np.float32 and _dtype_of(est) == np.float32) else np.dtype(np.float64)
    ng = _Native(gt, (B, H, W), dt)
    ne = _Native(est, (B, H, W), dt)
    with ng.context():
        st = ng.stream
        init = np.zeros((B, NSTAT))
        init[:, GMAX] = -np.inf
        stats = cuda.to_device(init, stream=st)
        sam = cuda.to_device(np.zeros(2), stream=st)
        kg = cuda.device_array(B, dtype=np.float64, stream=st)
        ke = cuda.device_array(B, dtype=np.float64, stream=st)
        _first_values[math.ceil(B / TPB), TPB, st](ng.view, ne.view, kg, ke)
        nblk = math.ceil(H * W / (TPB * PPT))
        _band_stats[nblk, TPB, st](ng.view, ne.view, kg, ke, policy, stats, sam)
        raw = stats.copy_to_host(stream=st)
        sam_h = sam.copy_to_host(stream=st)
        kg_h = kg.copy_to_host(stream=st)
        ke_h = ke.copy_to_host(stream=st)
        if hasattr(st, "synchronize"):
            st.synchronize()
    from .metrics import _unshift

    return _unshift(raw, kg_h, ke_h, H * W), sam_h


@cuda.jit(cache=True)
def _band_means(g, e, out):
    """out[b, 0/1] += Σ over row r of g/e; grid (rows, bands)."""
    r, b = cuda.grid(2)
    B, H, W = g.shape
    if r >= H or b >= B:
        return
    sg = 0.0
    se = 0.0
    for c in range(W):
        sg += g[b, r, c]
        se += e[b, r, c]
    cuda.atomic.add(out, (b, 0), sg / (H * W))
    cuda.atomic.add(out, (b, 1), se / (H * W))


@cuda.jit(cache=True)
def _windowed(g, e, gw, c1, c2, uw, mu, out):
    """Thread (c, r, b): SSIM map value at (r, c) if inside the crop, UIQI of the window with
    top-left (r, c) if fully inside; block sums -> out[b, 0:3] (ssim, uiqi, finiteness check)."""
    c, r = cuda.grid(2)
    b = cuda.blockIdx.z
    B, H, W = g.shape
    tid = cuda.threadIdx.y * BX + cuda.threadIdx.x
    red = cuda.shared.array(shape=(3, BX * BY), dtype=np.float64)
    s_val = 0.0
    q_val = 0.0
    chk = 0.0
    if r < H and c < W:
        chk = np.float64(g[b, r, c]) + np.float64(e[b, r, c])
        kg = gw.shape[0]
        rad = kg // 2
        if rad <= r < H - rad and rad <= c < W - rad:
            ux = 0.0
            uy = 0.0
            uxx = 0.0
            uyy = 0.0
            uxy = 0.0
            for a in range(kg):
                rr = r - rad + a
                for bb in range(kg):
                    wgt = gw[a] * gw[bb]
                    gv = np.float64(g[b, rr, c - rad + bb])
                    ev = np.float64(e[b, rr, c - rad + bb])
                    ux += wgt * gv
                    uy += wgt * ev
                    uxx += wgt * gv * gv
                    uyy += wgt * ev * ev
                    uxy += wgt * gv * ev
            vx = uxx - ux * ux
            vy = uyy - uy * uy
            vxy = uxy - ux * uy
            s_val = ((2.0 * ux * uy + c1) * (2.0 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
        if r <= H - uw and c <= W - uw:
            mg = mu[b, 0]
            me = mu[b, 1]
            sx = 0.0
            sy = 0.0
            sxx = 0.0
            syy = 0.0
            sxy = 0.0
            g0 = g[b, r, c]
            e0 = e[b, r, c]
            flat_g = True
            flat_e = True
            for a in range(uw):
                for bb in range(uw):
                    graw = g[b, r + a, c + bb]
                    eraw = e[b, r + a, c + bb]
                    if graw != g0:
                        flat_g = False
                    if eraw != e0:
                        flat_e = False
                    gv = np.float64(graw) - mg
                    ev = np.float64(eraw) - me
                    sx += gv
                    sy += ev
                    sxx += gv * gv
                    syy += ev * ev
                    sxy += gv * ev
            if flat_g and flat_e:
                q_val = 1.0 if g0 == e0 else 0.0
            else:
                n_inv = 1.0 / (uw * uw)
                am = sx * n_inv
                bm = sy * n_inv
                mx = am + mg
                my = bm + me
                vx = max(sxx * n_inv - am * am, 0.0)
                vy = max(syy * n_inv - bm * bm, 0.0)
                vxy = sxy * n_inv - am * bm
                if flat_g:
                    vx = 0.0
                    vxy = 0.0
                if flat_e:
                    vy = 0.0
                    vxy = 0.0
                den = (vx + vy) * (mx * mx + my * my)
                if den > 0.0:
                    q_val = 4.0 * vxy * mx * my / den
    red[0, tid] = s_val
    red[1, tid] = q_val
    red[2, tid] = chk
    cuda.syncthreads()
    half = (BX * BY) // 2
    while half > 0:
        if tid < half:
            red[0, tid] += red[0, tid + half]
            red[1, tid] += red[1, tid + half]
            red[2, tid] += red[2, tid + half]
        cuda.syncthreads()
        half //= 2
    if tid == 0:
        cuda.atomic.add(out, (b, 0), red[0, 0])
        cuda.atomic.add(out, (b, 1), red[1, 0])
        cuda.atomic.add(out, (b, 2), red[2, 0])


def windowed(gt, est, gw, c1, c2, uw):
    """Per-band SSIM and UIQI means (host arrays) and whether both inputs are finite."""
    B, H, W = (int(n) for n in gt.shape)
    dt = np.dtype(np.float32) if (_dtype_of(gt) == np.float32 and _dtype_of(est) == np.float32) else np.dtype(np.float64)
    ng = _Native(gt, (B, H, W), dt)
    ne = _Native(est, (B, H, W), dt)
    with ng.context():
        st = ng.stream
        mu = cuda.to_device(np.zeros((B, 2)), stream=st)
        _band_means[(math.ceil(H / BX), math.ceil(B / BY)), (BX, BY), st](ng.view, ne.view, mu)
        out = cuda.to_device(np.zeros((B, 3)), stream=st)
        grid = (math.ceil(W / BX), math.ceil(H / BY), B)
        _windowed[grid, (BX, BY), st](ng.view, ne.view, _dev(gw, st), c1, c2, uw, mu, out)
        res = out.copy_to_host(stream=st)
        if hasattr(st, "synchronize"):
            st.synchronize()
    rad = gw.shape[0] // 2
    ssim_b = res[:, 0] / ((H - 2 * rad) * (W - 2 * rad))
    uiqi_b = res[:, 1] / ((H - uw + 1) * (W - uw + 1))
    return ssim_b, uiqi_b, bool(np.all(np.isfinite(res[:, 2])))
