"""Layers shared by the deep nets: learned PSF and SRF, the endmember decoder, encoders, losses.

Degradation layers
------------------
:class:`PSFLayer` is the spatial operator of ``hsibench.degrade.spatial`` as a learnable module: one
k×k kernel shared by all bands (a physical PSF), applied as a depthwise correlation with stride s.
For k = s (the default and the papers' choice) that is a valid, non-overlapping s×s block sum, done
as a reshape + einsum (exact, and much faster on the CPU than a strided conv). Other sizes
(k ≡ s mod 2) use the block-centred ``(k − s)/2`` padding of the conventions with the
``symmetric`` (half-sample) or ``circular`` boundary, so a frozen PSF layer reproduces
:func:`~hsibench.degrade.spatial.blur_decimate` exactly.

:class:`SRFLayer` is a 1×1 convolution (l × L matrix) whose rows are non-negative and sum to one,
optionally restricted to a band-coverage mask (zero outside it: the "spectral coverage" knowledge of
HyCoNet/CUCaNet).

Parameterisation (``param``):

* ``"clamp"`` (default): the raw weights are projected after every optimiser step (clamped at 0,
  masked, renormalised to sum 1; the HyCoNet/CUCaNet clipper plus a renormalisation, so the PSF
  stays a PSF), and the forward pass also uses ``relu(w)/sum(relu(w))`` so the
  constraints hold at every forward pass, including the first. Adam moves a tap by about ``lr`` per
  step, so a uniform s×s kernel can concentrate within a few hundred steps.
* ``"softmax"``: ``softmax(logits)`` (masked softmax for the SRF): the constraints hold by
  construction, but Adam moves logits by ~``lr`` per step, so peaked kernels need many more steps.
  A given initial kernel is mixed with 1e-3 of the uniform one before the log, so no tap starts at
  −∞.

Both layers start from a given estimate (``init``) or from the uniform PSF / uniform-over-coverage
rows, remember where they started (``initial_psf``/``initial_matrix``) and are frozen with
``learn=False`` (oracle mode). ``psf()``/``matrix()`` return the normalised PSF/SRF the forward
pass uses; the nets report them as ``info["learned_psf"]``/``info["learned_srf"]``.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..degrade.geometry import BOUNDARIES, boundary_index, psf_geometry
from ..degrade.psf import psf_error
from ..degrade.srf import srf_error
from ..methods.base import Context, InputError

__all__ = [
    "Conv1x1",
    "matmul_cols",
    "pointwise",
    "PSFLayer",
    "SRFLayer",
    "EndmemberDecoder",
    "conv1x1_stack",
    "kaiming_init",
    "abundance_activation",
    "l1_sum",
    "sum_to_one_l1",
    "kl_sparsity",
    "relative_error",
    "degradation_layers",
]

_MIX = 1e-3  # uniform mass mixed into a given kernel before taking logs (softmax parameterisation)


_ONEDNN_MIN_MACS = 1 << 21  # smaller products stay on torch.mm (oneDNN's call overhead dominates)
_ONEDNN_MIN_DIM = 16  # as do thin ones (a handful of bands or channels on one side)


def _use_onednn(a: torch.Tensor, b: torch.Tensor) -> bool:
    m, k, n = a.shape[0], a.shape[1], b.shape[1]
    return (a.device.type == "cpu" and a.dtype == torch.float32 and b.dtype == torch.float32
            and m * k * n >= _ONEDNN_MIN_MACS and min(m, k, n) >= _ONEDNN_MIN_DIM
            and torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled)


def matmul_cols(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``a @ b (+ bias[:, None])`` for an (m, k) ``a`` and a (k, n) ``b`` (no autograd of its own).

    Large float32 products on the CPU run as a oneDNN 1×1 convolution over the n columns (``b`` as a
    k-channel image of n pixels, ``a`` as the kernel), which on the CPU is about 1.5-2x faster than
    ``torch.mm`` single-threaded; ``b`` may be contiguous or a transposed contiguous matrix (read in
    place as a channels-last image). Anything else (float64, CUDA, small products) is ``torch.mm``
    / ``torch.addmm``. The result has the layout of ``b`` (row-major, or column-major if ``b`` was).

    Parameters
    ----------
    a : torch.Tensor
        (m, k).
    b : torch.Tensor
        (k, n).
    bias : torch.Tensor, optional
        (m,), added to every column.

    Returns
    -------
    torch.Tensor
        (m, n).

    Example
    -------
    >>> matmul_cols(torch.eye(2), torch.ones(2, 3)).sum().item()
    6.0
    """
    m, k = a.shape
    n = b.shape[1]
    if not _use_onednn(a, b):
        return torch.mm(a, b) if bias is None else torch.addmm(bias[:, None], a, b)
    if b.is_contiguous():
        x = b.view(1, k, 1, n)
    elif b.t().is_contiguous():  # column-major: a channels-last image, read in place
        x = b.as_strided((1, k, 1, n), (k * n, 1, k * n, k))
    else:
        x = b.contiguous().view(1, k, 1, n)
    out = torch.mkldnn_convolution(x, a.contiguous().view(m, k, 1, 1), bias, (0, 0), (1, 1), (1, 1), 1)
    return out[0, :, 0]


class _Pointwise(torch.autograd.Function):
    """y = w ⋆ x (+ b), a 1×1 convolution of one (1, C, H, W) image: the forward pass is oneDNN's
    1×1 convolution, the two backward products (w.T @ g and g @ x.T, as autograd's ``addmm``
    backward) are :func:`matmul_cols`."""

    @staticmethod
    def forward(ctx, x, w, b):
        ctx.save_for_backward(x, w)
        ctx.has_bias = b is not None
        O, C = w.shape
        return torch.mkldnn_convolution(x, w.contiguous().view(O, C, 1, 1), b, (0, 0), (1, 1), (1, 1), 1)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        (O, C), (H, W) = w.shape, x.shape[-2:]
        g2 = g.reshape(O, H * W)
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = matmul_cols(w.t(), g2).reshape(1, C, H, W)
        if ctx.needs_input_grad[1]:
            gw = matmul_cols(g2.contiguous(), x.reshape(C, H * W).t())
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = g2.sum(1)
        return gx, gw, gb


def pointwise(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """Per-pixel linear map over the channel axis: ``y[..., o, i, j] = Σ_c w[o, c] x[..., c, i, j] + b[o]``.

    Mathematically a 1×1 convolution (``F.conv2d(x, w[:, :, None, None], b)``), computed as matrix
    products over the pixels (:func:`matmul_cols`, forward and backward) for a single image in
    NCHW or channels-last layout (the output keeps the layout), a batched ``matmul`` otherwise. On
    the CPU with one thread PyTorch sends a 1×1 ``conv2d`` to its unfold fallback on MKL's GEMM,
    which is 1.5-2x slower than this.

    Parameters
    ----------
    x : torch.Tensor
        ``(..., C, H, W)`` input.
    weight : torch.Tensor
        ``(O, C)`` matrix (a 1×1 conv weight ``(O, C, 1, 1)`` is accepted too).
    bias : torch.Tensor, optional
        ``(O,)``.

    Returns
    -------
    torch.Tensor
        ``(..., O, H, W)``.

    Raises
    ------
    InputError
        If the channel counts of ``x`` and ``weight`` differ.

    Example
    -------
    >>> x, w = torch.ones(1, 3, 2, 2), torch.ones(4, 3)
    >>> pointwise(x, w).shape
    torch.Size([1, 4, 2, 2])
    """
    w = weight.reshape(weight.shape[0], weight.shape[1]) if weight.dim() == 4 else weight
    if x.dim() < 3 or x.shape[-3] != w.shape[1]:
        raise InputError(f"pointwise map expects (..., {w.shape[1]}, H, W) input, got {tuple(x.shape)}")
    C, H, W = x.shape[-3:]
    lead = x.shape[:-3]
    if x.dim() == 4 and x.shape[0] == 1 and (x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)):
        x2 = x.view(C, H * W)  # row-major (NCHW) or column-major (channels-last)
        if _use_onednn(w, x2):
            return _Pointwise.apply(x, w, bias)  # keeps the layout of x
        if not x.is_contiguous():  # channels-last: a linear map over the last axis keeps the layout
            return F.linear(x.permute(0, 2, 3, 1), w, bias).permute(0, 3, 1, 2)
        y = torch.mm(w, x2) if bias is None else torch.addmm(bias[:, None], w, x2)
        return y.view(1, w.shape[0], H, W)
    y = torch.matmul(w, x.reshape(*lead, C, H * W))
    if bias is not None:
        y = y + bias[:, None]
    return y.reshape(*lead, w.shape[0], H, W)


class Conv1x1(nn.Conv2d):
    """``nn.Conv2d(in_channels, out_channels, 1)`` computed by :func:`pointwise`.

    Same parameters, state dict, initialisation (and random-number consumption) as the plain
    ``nn.Conv2d``; only the forward pass differs (a matrix product instead of the convolution
    fallback), and it is mathematically identical.

    Parameters
    ----------
    in_channels, out_channels : int
        Channel counts.
    bias : bool
        Learn an additive bias (default ``True``).

    Example
    -------
    >>> conv = Conv1x1(3, 5)
    >>> conv(torch.ones(1, 3, 4, 4)).shape
    torch.Size([1, 5, 4, 4])
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True):
        super().__init__(in_channels, out_channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pointwise(x, self.weight, self.bias)


def _symmetric_index(n: int, pad: int, boundary: str) -> torch.Tensor:
    """Padded-axis index map of the forward model's boundary rule, as a torch index tensor."""
    if boundary not in BOUNDARIES:
        raise InputError(f"unknown boundary {boundary!r}; use 'symmetric' or 'circular'")
    return torch.as_tensor(boundary_index(np.arange(-pad, n + pad), n, boundary), dtype=torch.long)


class PSFLayer(nn.Module):
    """Learnable band-shared PSF + stride-s decimation (block-centred, ``docs/conventions.md`` §2).

    ``forward(x)``: ``(..., H, W)`` -> ``(..., H/s, W/s)``. ``size`` defaults to the size of ``init``
    or to s×s; a uniform 1/k² kernel is the default start.
    """

    def __init__(self, scale: int, size: int | tuple[int, int] | None = None, init=None, learn: bool = True,
                 param: str = "clamp", boundary: str = "symmetric"):
        super().__init__()
        self.scale = int(scale)
        if param not in ("clamp", "softmax"):
            raise InputError(f"PSF parameterisation must be 'clamp' or 'softmax', got {param!r}")
        if init is not None:
            k0 = np.asarray(init, dtype=np.float64)
            if k0.ndim != 2 or np.any(~np.isfinite(k0)) or np.any(k0 < 0) or k0.sum() <= 0:
                raise InputError("initial PSF must be a finite, non-negative 2-D array with a positive sum")
            if size is not None:
                sz = (size, size) if np.isscalar(size) else tuple(size)
                if tuple(k0.shape) != tuple(sz):
                    raise InputError(f"initial PSF has shape {k0.shape}, layer size is {sz}")
            k0 = k0 / k0.sum()
        else:
            sz = (self.scale, self.scale) if size is None else ((size, size) if np.isscalar(size) else tuple(size))
            k0 = np.full(sz, 1.0 / (sz[0] * sz[1]))
        kh, kw = k0.shape
        if (kh - self.scale) % 2 or (kw - self.scale) % 2:
            raise InputError(f"PSF size {k0.shape} has the wrong parity for scale {self.scale} (need k ≡ s mod 2)")
        if kh < self.scale or kw < self.scale:
            raise InputError(f"PSF size {k0.shape} is smaller than the scale {self.scale}")
        self.param = param
        self.boundary = boundary
        geo = psf_geometry(k0.shape, self.scale)
        self.pad = (geo.pad_r, geo.pad_c)
        if param == "clamp":
            w = k0
        else:
            w = np.log((1 - _MIX) * k0 + _MIX / k0.size)
        self.weight = nn.Parameter(torch.as_tensor(w, dtype=torch.float32), requires_grad=learn)
        self.register_buffer("initial", torch.as_tensor(k0, dtype=torch.float32))

    @property
    def learn(self) -> bool:
        return self.weight.requires_grad

    def psf(self) -> torch.Tensor:
        """The normalised PSF used by the forward pass (non-negative, sums to 1)."""
        if self.param == "softmax":
            return torch.softmax(self.weight.flatten(), 0).view_as(self.weight)
        w = F.relu(self.weight)
        return w / w.sum().clamp_min(1e-12)

    def initial_psf(self) -> np.ndarray:
        return self.initial.detach().cpu().double().numpy()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.apply_psf(x, self.psf())

    def apply_psf(self, x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Block-centred strided correlation of ``x`` with the PSF ``k`` (same geometry as this layer)."""
        s = self.scale
        lead, (H, W) = x.shape[:-2], x.shape[-2:]
        if H % s or W % s:
            raise InputError(f"scale {s} does not divide the image size {H}×{W}")
        h, w = H // s, W // s
        if self.pad == (0, 0):
            xb = x.reshape(-1, h, s, w, s)
            out = torch.einsum("nhuwv,uv->nhw", xb, k.to(x.dtype))
            return out.reshape(*lead, h, w)
        pr, pc = self.pad
        x2 = x.reshape(-1, 1, H, W)
        if pr:
            x2 = x2.index_select(2, _symmetric_index(H, pr, self.boundary).to(x.device))
        if pc:
            x2 = x2.index_select(3, _symmetric_index(W, pc, self.boundary).to(x.device))
        out = F.conv2d(x2, k.to(x.dtype)[None, None], stride=s)
        return out.reshape(*lead, h, w)

    @torch.no_grad()
    def project(self) -> None:
        """Clamp at 0 and renormalise to sum 1 (``clamp`` parameterisation; no-op for softmax/frozen)."""
        if self.param != "clamp" or not self.learn:
            return
        self.weight.clamp_(min=0)
        total = self.weight.sum()
        if float(total) <= 1e-12:  # every tap died: restart from the uniform kernel
            self.weight.fill_(1.0 / self.weight.numel())
        else:
            self.weight.div_(total)


class SRFLayer(nn.Module):
    """Learnable SRF: an (l × L) 1×1 convolution, rows non-negative, summing to 1, zero off coverage.

    ``forward(x)``: ``(..., L, H, W)`` -> ``(..., l, H, W)``. ``coverage`` is the (l × L) boolean
    band-coverage mask (``None`` = every HS band may contribute to every MS band).
    """

    def __init__(self, n_hs: int, n_ms: int, init=None, coverage=None, learn: bool = True, param: str = "clamp"):
        super().__init__()
        if param not in ("clamp", "softmax"):
            raise InputError(f"SRF parameterisation must be 'clamp' or 'softmax', got {param!r}")
        mask = np.ones((n_ms, n_hs), bool) if coverage is None else np.asarray(coverage, bool)
        if mask.shape != (n_ms, n_hs):
            raise InputError(f"band coverage has shape {mask.shape}, expected ({n_ms}, {n_hs})")
        if not mask.any(axis=1).all():
            raise InputError(f"MS band(s) {np.flatnonzero(~mask.any(axis=1)).tolist()} cover no HS band")
        uni = mask / mask.sum(axis=1, keepdims=True)
        if init is not None:
            r0 = np.asarray(init, dtype=np.float64)
            if r0.shape != (n_ms, n_hs) or np.any(~np.isfinite(r0)) or np.any(r0 < 0):
                raise InputError(f"initial SRF must be a finite non-negative ({n_ms}, {n_hs}) matrix")
            r0 = r0 * mask
            sums = r0.sum(axis=1, keepdims=True)
            r0 = np.where(sums > 0, r0 / np.where(sums > 0, sums, 1), uni)
        else:
            r0 = uni
        self.param = param
        if param == "clamp":
            w = r0
        else:
            w = np.log((1 - _MIX) * r0 + _MIX * uni + 1e-30)
        self.weight = nn.Parameter(torch.as_tensor(w, dtype=torch.float32), requires_grad=learn)
        self.register_buffer("mask", torch.as_tensor(mask))
        self.register_buffer("initial", torch.as_tensor(r0, dtype=torch.float32))

    @property
    def learn(self) -> bool:
        return self.weight.requires_grad

    def matrix(self) -> torch.Tensor:
        """The normalised SRF used by the forward pass: (l, L), rows sum to 1, zero off coverage."""
        if self.param == "softmax":
            return torch.softmax(self.weight.masked_fill(~self.mask, float("-inf")), dim=1)
        w = F.relu(self.weight) * self.mask
        return w / w.sum(dim=1, keepdim=True).clamp_min(1e-12)

    def initial_matrix(self) -> np.ndarray:
        return self.initial.detach().cpu().double().numpy()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pointwise(x, self.matrix().to(x.dtype))

    @torch.no_grad()
    def project(self) -> None:
        """Clamp at 0, zero off coverage, renormalise every row (``clamp`` parameterisation)."""
        if self.param != "clamp" or not self.learn:
            return
        self.weight.clamp_(min=0).mul_(self.mask)
        sums = self.weight.sum(dim=1, keepdim=True)
        dead = (sums <= 1e-12).squeeze(1)
        self.weight.div_(sums.clamp_min(1e-12))
        if bool(dead.any()):
            uni = self.mask.float() / self.mask.float().sum(dim=1, keepdim=True)
            self.weight[dead] = uni[dead]


class EndmemberDecoder(nn.Module):
    """Bias-free 1×1 conv K -> L whose weight matrix (L × K) holds the endmembers, kept in [0, 1]
    by :meth:`project` after every step (the papers' clipper); output clamped to [0, 1]."""

    def __init__(self, n_endmembers: int, n_bands: int, clamp_output: bool = True):
        super().__init__()
        w = torch.empty(n_bands, n_endmembers)
        nn.init.kaiming_normal_(w, a=0, mode="fan_in")  # std sqrt(2/K), as Conv2d K->L
        self.weight = nn.Parameter(w.clamp_(0, 1))  # clipped before the first pass
        self.clamp_output = clamp_output

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        y = pointwise(a, self.weight)
        return y.clamp(0, 1) if self.clamp_output else y

    @torch.no_grad()
    def project(self) -> None:
        self.weight.clamp_(0, 1)


def kaiming_init(module: nn.Module) -> nn.Module:
    """Kaiming-normal (fan_in, a = 0) weights and zero biases for every conv (the papers' init)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


def conv1x1_stack(in_ch: int, widths, out_ch: int | None = None, slope: float = 0.2) -> nn.Sequential:
    """Conv1×1(in→w1) → LReLU → … → Conv1×1(w_n→out) (no activation on the last conv if ``out_ch``).

    The 1×1 convs are :class:`Conv1x1` (a matrix product over pixels) and the activations work in
    place on the conv outputs (which no backward pass needs); state dict keys and initialisation
    are those of the ``nn.Conv2d``/``nn.LeakyReLU`` stack."""
    layers: list[nn.Module] = []
    c = in_ch
    for w in widths:
        layers += [Conv1x1(c, int(w)), nn.LeakyReLU(slope, inplace=True)]
        c = int(w)
    if out_ch is not None:
        layers.append(Conv1x1(c, out_ch))
    return kaiming_init(nn.Sequential(*layers))


def abundance_activation(x: torch.Tensor, kind: str) -> torch.Tensor:
    """``softmax`` over the endmember axis (dim −3) or ``clamp`` to [0, 1]."""
    if kind == "softmax":
        return torch.softmax(x, dim=-3)
    if kind == "clamp":
        return x.clamp(0, 1)
    raise InputError(f"abundance activation must be 'softmax' or 'clamp', got {kind!r}")


def l1_sum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Sum-reduced L1 (the papers' ``L1Loss(size_average=False)``: the λ's assume it)."""
    return (a - b).abs().sum()


def sum_to_one_l1(a: torch.Tensor) -> torch.Tensor:
    """‖1 − Σ_k a_k‖₁ over all pixels (abundances on dim −3)."""
    return (1.0 - a.sum(dim=-3)).abs().sum()


def kl_sparsity(a: torch.Tensor, target: float) -> torch.Tensor:
    """Element-wise Bernoulli KL(ρ ‖ â) summed over pixels and endmembers (paper form), with the
    abundances clamped to [1e-6, 1 − 1e-6] inside the logs (clamped layers produce exact zeros)."""
    r = float(target)
    q = a.clamp(1e-6, 1 - 1e-6)
    # ρ log(ρ/q) + (1−ρ) log((1−ρ)/(1−q)) = c − ρ log q − (1−ρ) log(1−q), c = ρ log ρ + (1−ρ) log(1−ρ):
    # the same function without the two element-wise divisions (and their backward)
    c = r * math.log(r) + (1 - r) * math.log1p(-r)
    return (c - r * torch.log(q) - (1 - r) * torch.log1p(-q)).sum()


def relative_error(est, truth) -> float:
    """‖est − truth‖_F / ‖truth‖_F of a learned PSF or SRF: :func:`hsibench.degrade.psf_error` for
    PSFs (different sizes compared centred), :func:`hsibench.degrade.srf_error` for equal shapes.
    Kept for backward compatibility; new code calls those two directly."""
    e, t = np.asarray(est), np.asarray(truth)
    return srf_error(e, t) if e.shape == t.shape else psf_error(e, t)


def degradation_layers(ctx: Context, n_hs: int, n_ms: int, *, psf_size: int | None = None,
                       psf_param: str = "clamp", srf_param: str = "clamp") -> tuple[PSFLayer, SRFLayer, dict[str, Any]]:
    """The learned PSF/SRF layers for a knowledge mode, and a note of what they started from.

    * ``oracle``: both frozen at ``ctx.psf``/``ctx.srf`` (the truth);
    * ``estimated``: both learned, starting from ``ctx.psf``/``ctx.srf`` (SRF masked by ``ctx.coverage``
      when given);
    * ``srf_support``: PSF learned from uniform 1/s²; SRF learned from uniform over ``ctx.coverage``;
    * ``blind``: as ``srf_support`` with full coverage (every HS band may feed every MS band).
    """
    s = int(ctx.scale)
    mode = ctx.mode
    note: dict[str, Any] = {"mode": mode}
    if mode == "oracle":
        if ctx.psf is None or ctx.srf is None:
            raise InputError("oracle mode needs the true PSF and SRF in the context")
        psf = PSFLayer(s, init=np.asarray(ctx.psf), learn=False, param=psf_param, boundary=ctx.boundary)
        srf = SRFLayer(n_hs, n_ms, init=np.asarray(ctx.srf), learn=False, param=srf_param)
        note.update(psf_init="true (frozen)", srf_init="true (frozen)")
        return psf, srf, note
    coverage = None
    if mode in ("srf_support", "estimated") and ctx.coverage is not None:
        coverage = np.asarray(ctx.coverage, bool)
        note["srf_coverage"] = "given"
    else:
        note["srf_coverage"] = "full" + (" (srf_support mode without a coverage mask)" if mode == "srf_support" else "")
    if mode == "estimated" and ctx.psf is not None:
        psf = PSFLayer(s, init=np.asarray(ctx.psf), param=psf_param, boundary=ctx.boundary)
        note["psf_init"] = "estimate"
    else:
        psf = PSFLayer(s, size=psf_size or s, param=psf_param, boundary=ctx.boundary)
        note["psf_init"] = "uniform"
    if mode == "estimated" and ctx.srf is not None:
        srf = SRFLayer(n_hs, n_ms, init=np.asarray(ctx.srf), coverage=coverage, param=srf_param)
        note["srf_init"] = "estimate"
    else:
        srf = SRFLayer(n_hs, n_ms, coverage=coverage, param=srf_param)
        note["srf_init"] = "uniform over coverage"
    return psf, srf, note
