"""The optimised forward passes of the nets against straightforward reference formulations.

The speed work computes 1×1 convolutions as matrix products (oneDNN for large float32 products),
folds CUCaNet's channel attention into the head weights, runs activations in place and tunes the
heap in the training loop. None of it may change the model: here every optimised piece is compared
with the plain PyTorch formulation (``F.conv2d``, ``torch.cat``, ``einsum``) on the same parameters,
outputs and gradients, in float64 to 1e-10 (the matrix-product path) and in float32 against a float64
reference to 1e-5 relative (the oneDNN path); and the parameters (state dict keys, shapes, initial
values for a seed) are those of the ``nn.Conv2d`` formulation.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from hsibench.nets.cucanet import CUCaNetModel
from hsibench.nets.engine import large_heap, seeded_run
from hsibench.nets.eu2adl import MSRB, SRB, EU2ADLModel
from hsibench.nets.hyconet import HyCoNetModel
from hsibench.nets.layers import (
    Conv1x1,
    EndmemberDecoder,
    PSFLayer,
    SRFLayer,
    conv1x1_stack,
    kl_sparsity,
    matmul_cols,
    pointwise,
)

torch.set_num_threads(1)
F64 = dict(rtol=1e-10, atol=1e-12)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


def _grads(fn, tensors, weight):
    """Value of ``fn()`` and the gradients of ⟨fn(), weight⟩ w.r.t. ``tensors``."""
    for t in tensors:
        t.grad = None
    y = fn()
    (y * weight.to(y.dtype)).sum().backward()
    return y.detach(), [t.grad.detach().clone() if t.grad is not None else None for t in tensors]


# ------------------------------------------------------------------------------ 1×1 products

@pytest.mark.parametrize("layout", ["nchw", "channels_last", "batch2"])
@pytest.mark.parametrize("shape", [(7, 5), (64, 48)])
def test_pointwise_matches_conv2d_float64(layout, shape):
    O, C = shape
    g = torch.Generator().manual_seed(1)
    B = 2 if layout == "batch2" else 1
    x = torch.randn(B, C, 9, 11, generator=g, dtype=torch.float64)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    w = torch.randn(O, C, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(O, generator=g, dtype=torch.float64, requires_grad=True)
    wt = torch.randn(B, O, 9, 11, generator=g, dtype=torch.float64)
    y, gr = _grads(lambda: F.leaky_relu(pointwise(x, w, b), 0.2, inplace=True), [x, w, b], wt)
    y_ref, gr_ref = _grads(lambda: F.leaky_relu(F.conv2d(x, w[:, :, None, None], b), 0.2), [x, w, b], wt)
    torch.testing.assert_close(y, y_ref, **F64)
    for a, r in zip(gr, gr_ref):
        torch.testing.assert_close(a, r, **F64)
    y0 = pointwise(x.detach(), w.detach())  # no bias
    torch.testing.assert_close(y0, F.conv2d(x.detach(), w.detach()[:, :, None, None]), **F64)


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("shape", [(96, 64), (4, 156), (156, 4)])
def test_pointwise_float32_onednn_path_matches_float64(layout, shape):
    """Large float32 products go through oneDNN (forward and both backward products)."""
    O, C = shape
    g = torch.Generator().manual_seed(2)
    x64 = torch.rand(1, C, 64, 64, generator=g, dtype=torch.float64)
    w64 = torch.randn(O, C, generator=g, dtype=torch.float64) / np.sqrt(C)
    b64 = torch.randn(O, generator=g, dtype=torch.float64)
    wt = torch.randn(1, O, 64, 64, generator=g, dtype=torch.float64)
    mf = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    x32 = x64.float().contiguous(memory_format=mf).requires_grad_()
    w32, b32 = w64.float().requires_grad_(), b64.float().requires_grad_()
    x64 = x64.contiguous(memory_format=mf).requires_grad_()
    w64.requires_grad_()
    b64.requires_grad_()
    # in-place LReLU on the output (as the nets do); the reference uses the float32 signs, since a
    # float64 pre-activation within rounding of 0 may have the other sign
    slope = torch.where(pointwise(x32, w32, b32).detach() > 0, 1.0, 0.2).double()
    y, gr = _grads(lambda: F.leaky_relu(pointwise(x32, w32, b32), 0.2, inplace=True), [x32, w32, b32], wt)
    y_ref, gr_ref = _grads(lambda: F.conv2d(x64, w64[:, :, None, None], b64) * slope, [x64, w64, b64], wt)
    assert y.is_contiguous(memory_format=mf)  # the layout is kept
    assert _rel(y, y_ref) < 1e-5
    for a, r in zip(gr, gr_ref):
        assert _rel(a, r) < 1e-5


@pytest.mark.parametrize("transposed", [False, True])
def test_matmul_cols_matches_mm(transposed):
    g = torch.Generator().manual_seed(3)
    a = torch.randn(80, 120, generator=g, dtype=torch.float64)
    b = torch.randn(120, 900, generator=g, dtype=torch.float64)
    bias = torch.randn(80, generator=g, dtype=torch.float64)
    bb = b.t().contiguous().t() if transposed else b
    ref = a @ b + bias[:, None]
    torch.testing.assert_close(matmul_cols(a, bb, bias), ref, **F64)  # float64: torch.mm
    got = matmul_cols(a.float(), bb.float(), bias.float())  # float32: oneDNN
    assert got.shape == (80, 900) and _rel(got, ref) < 1e-5


def test_conv1x1_is_conv2d_with_same_parameters_and_init():
    torch.manual_seed(5)
    ref = nn.Conv2d(6, 4, 1)
    torch.manual_seed(5)
    new = Conv1x1(6, 4)
    assert isinstance(new, nn.Conv2d)
    sd_ref, sd_new = ref.state_dict(), new.state_dict()
    assert list(sd_ref) == list(sd_new)
    for k in sd_ref:
        assert torch.equal(sd_ref[k], sd_new[k])
    x = torch.randn(1, 6, 5, 5)
    torch.testing.assert_close(new(x), ref(x), rtol=1e-6, atol=1e-6)
    # and the same random-number consumption: what comes next is the same
    torch.manual_seed(7)
    Conv1x1(6, 4)
    after_new = torch.rand(3)
    torch.manual_seed(7)
    nn.Conv2d(6, 4, 1)
    assert torch.equal(after_new, torch.rand(3))


def test_conv1x1_stack_matches_plain_conv_stack():
    torch.manual_seed(0)
    net = conv1x1_stack(5, (8, 16), 3).double()
    ref = nn.Sequential(nn.Conv2d(5, 8, 1), nn.LeakyReLU(0.2), nn.Conv2d(8, 16, 1), nn.LeakyReLU(0.2),
                        nn.Conv2d(16, 3, 1)).double()
    ref.load_state_dict(net.state_dict(), strict=True)  # same keys and shapes
    x = torch.randn(1, 5, 6, 6, dtype=torch.float64, requires_grad=True)
    wt = torch.randn(1, 3, 6, 6, dtype=torch.float64)
    y, gr = _grads(lambda: net(x), [x, *net.parameters()], wt)
    y_ref, gr_ref = _grads(lambda: ref(x), [x, *ref.parameters()], wt)
    torch.testing.assert_close(y, y_ref, **F64)
    for a, r in zip(gr, gr_ref):
        torch.testing.assert_close(a, r, **F64)


def test_decoder_and_srf_match_einsum():
    torch.manual_seed(0)
    dec = EndmemberDecoder(6, 9).double()
    srf = SRFLayer(9, 3).double()
    a = torch.rand(1, 6, 7, 7, dtype=torch.float64)
    torch.testing.assert_close(dec(a), torch.einsum("lk,bkhw->blhw", dec.weight, a).clamp(0, 1), **F64)
    x = torch.rand(2, 9, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(srf(x), torch.einsum("ml,blhw->bmhw", srf.matrix(), x), **F64)


@pytest.mark.parametrize("target", [1e-4, 0.01, 0.3])
def test_kl_sparsity_matches_the_paper_form(target):
    g = torch.Generator().manual_seed(4)
    a = torch.rand(1, 5, 6, 6, generator=g, dtype=torch.float64)
    a[0, 0, 0, :3] = torch.tensor([0.0, 1.0, 1e-9])  # clamped inside the logs
    a.requires_grad_()

    def paper(x):
        q = x.clamp(1e-6, 1 - 1e-6)
        return (target * torch.log(target / q) + (1 - target) * torch.log((1 - target) / (1 - q))).sum()

    v, (ga,) = _grads(lambda: kl_sparsity(a, target), [a], torch.tensor(1.0, dtype=torch.float64))
    v_ref, (ga_ref,) = _grads(lambda: paper(a), [a], torch.tensor(1.0, dtype=torch.float64))
    torch.testing.assert_close(v, v_ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(ga, ga_ref, **F64)


# ------------------------------------------------------------------------------ whole models

def _hyconet(seed=0):
    torch.manual_seed(seed)
    psf, srf = PSFLayer(4), SRFLayer(12, 3)
    return HyCoNetModel(12, 3, 5, (8, 16), psf, srf, abundance="clamp").double()


def _hyconet_reference(m, lr, msi):
    def enc(seq, x):
        convs = [l for l in seq if isinstance(l, nn.Conv2d)]
        for i, c in enumerate(convs):
            x = F.conv2d(x, c.weight, c.bias)
            if i < len(convs) - 1:
                x = F.leaky_relu(x, 0.2)
        return x.clamp(0, 1)

    def dec(a):
        return F.conv2d(a, m.decoder.weight[:, :, None, None]).clamp(0, 1)

    k = m.psf.psf()

    def psf(x):
        C = x.shape[1]
        return F.conv2d(x, k.expand(C, 1, 4, 4), stride=4, groups=C)

    def srf(x):
        return F.conv2d(x, m.srf.matrix()[:, :, None, None])

    ah_a, a = enc(m.hsi_encoder, lr), enc(m.msi_encoder, msi)
    x = dec(a)
    ah_b = psf(a)
    return {"ah_a": ah_a, "a": a, "ah_b": ah_b, "z_a": dec(ah_a), "z_b": dec(ah_b), "x": x,
            "y": srf(x).clamp(0, 1), "ylr_a": psf(msi), "ylr_b": srf(lr)}


def _compare_model(model, ref_fn, inputs, dtype_tol=F64):
    g = torch.Generator().manual_seed(11)
    out = model(*inputs)
    ref = ref_fn(model, *inputs)
    assert set(out) == set(ref)
    params = [p for p in model.parameters() if p.requires_grad]
    wts = {k: torch.randn(v.shape, generator=g, dtype=torch.float64) for k, v in ref.items()}

    def loss(o):
        return sum((o[k] * wts[k].to(o[k].dtype)).sum() for k in o)

    for p in params:
        p.grad = None
    loss(out).backward()
    got = [p.grad.clone() for p in params]
    for p in params:
        p.grad = None
    loss(ref).backward()
    want = [p.grad.clone() for p in params]
    for k in ref:
        torch.testing.assert_close(out[k], ref[k], **dtype_tol, msg=f"output {k}")
    for (name, _), a, r in zip([(n, p) for n, p in model.named_parameters() if p.requires_grad], got, want):
        torch.testing.assert_close(a, r, **dtype_tol, msg=f"gradient of {name}")


def test_hyconet_model_matches_reference():
    m = _hyconet()
    g = torch.Generator().manual_seed(0)
    lr = torch.rand(1, 12, 5, 5, generator=g, dtype=torch.float64)
    msi = torch.rand(1, 3, 20, 20, generator=g, dtype=torch.float64)
    _compare_model(m, _hyconet_reference, (lr, msi))


def _cucanet(attention=True, norm="softmax", seed=0):
    torch.manual_seed(seed)
    return CUCaNetModel(12, 3, (5, 5), 4, 6, (8, 16, 32), PSFLayer(4), SRFLayer(12, 3), attention=attention,
                        attention_norm=norm, abundance="clamp").double()


def _cucanet_reference(m, lr, msi):
    """The paper's formulation: concatenated [F ; F ⊙ δ(S)] and [G ; G ⊙ δ(o)], 1×1 conv heads."""
    f = lr
    for l in m.hsi_trunk:
        f = F.conv2d(f, l.weight, l.bias) if isinstance(l, nn.Conv2d) else F.leaky_relu(f, 0.2)
    g = msi
    for l in m.msi_trunk:
        g = F.conv2d(g, l.weight, l.bias, padding=l.padding) if isinstance(l, nn.Conv2d) else F.leaky_relu(g, 0.2)
    if m.attention:
        o = (m.spec_u * f).sum(dim=(-2, -1)) + m.spec_b
        d_o = torch.softmax(o, dim=1)
        s = F.conv2d(g, m.spat.weight, m.spat.bias, padding=1)
        d_s = torch.softmax(s.flatten(1), dim=1).view_as(s)
        if m.attention_norm == "mean1":
            d_o = d_o * d_o.shape[1]
            d_s = d_s * (s.shape[-2] * s.shape[-1])
        k = m.att_psf.psf()
        d_s_lr = F.conv2d(d_s, k[None, None], stride=4)
        f = torch.cat([f, f * d_s_lr], dim=1)
        g = torch.cat([g, g * d_o[:, :, None, None]], dim=1)
    s_lr = F.conv2d(f, m.hsi_head.weight, m.hsi_head.bias).clamp(0, 1)
    s_hr = F.conv2d(g, m.msi_head.weight, m.msi_head.bias).clamp(0, 1)

    def dec(d, a):
        return F.conv2d(a, d.weight[:, :, None, None]).clamp(0, 1)

    kp = m.psf.psf()

    def psf(x):
        C = x.shape[1]
        return F.conv2d(x, kp.expand(C, 1, 4, 4), stride=4, groups=C)

    def srf(x):
        return F.conv2d(x, m.srf.matrix()[:, :, None, None])

    z = dec(m.hsi_decoder, s_hr)
    return {"s_lr": s_lr, "s_hr": s_hr, "x_rec": dec(m.hsi_decoder, s_lr), "y_rec": dec(m.msi_decoder, s_hr),
            "z": z, "y_hat": srf(z).clamp(0, 1), "x_hat": psf(z), "u_psf": psf(msi), "u_srf": srf(lr)}


@pytest.mark.parametrize("attention,norm", [(True, "softmax"), (True, "mean1"), (False, "mean1")])
@pytest.mark.parametrize("batch", [1, 2])
def test_cucanet_model_matches_reference(attention, norm, batch):
    m = _cucanet(attention, norm)
    g = torch.Generator().manual_seed(1)
    lr = torch.rand(batch, 12, 5, 5, generator=g, dtype=torch.float64)
    msi = torch.rand(batch, 3, 20, 20, generator=g, dtype=torch.float64)
    _compare_model(m, _cucanet_reference, (lr, msi))


@pytest.mark.parametrize("k", [3, 5])
def test_cucanet_spatial_logits_match_conv(k):
    m = _cucanet()
    m.spat = nn.Conv2d(32, 1, k, padding=k // 2).double()
    g = torch.rand(2, 32, 9, 7, dtype=torch.float64, requires_grad=True)
    wt = torch.randn(2, 1, 9, 7, dtype=torch.float64)
    ps = [g, m.spat.weight, m.spat.bias]
    y, gr = _grads(lambda: m._spatial_logits(g), ps, wt)
    y_ref, gr_ref = _grads(lambda: m.spat(g), ps, wt)
    torch.testing.assert_close(y, y_ref, **F64)
    for a, r in zip(gr, gr_ref):
        torch.testing.assert_close(a, r, **F64)


def test_cucanet_float32_model_matches_float64_reference():
    """The float32 path (oneDNN for the large products) against the float64 reference."""
    m = _cucanet(True, "softmax")
    g = torch.Generator().manual_seed(1)
    lr = torch.rand(1, 12, 5, 5, generator=g, dtype=torch.float64)
    msi = torch.rand(1, 3, 20, 20, generator=g, dtype=torch.float64)
    ref = _cucanet_reference(m, lr, msi)
    out = m.float()(lr.float(), msi.float())
    for k in ref:
        assert _rel(out[k], ref[k]) < 1e-5, k


def _eu2adl(seed=0, channels_last=False):
    torch.manual_seed(seed)
    m = EU2ADLModel(12, 3, P=9, width=12, blocks=2, omega=0.3, mu=0.2).double()
    return m.to(memory_format=torch.channels_last) if channels_last else m


def _eu2adl_reference(m, lr, msi):
    def conv(c, x):
        return F.conv2d(x, c.weight, c.bias, padding=c.padding)

    def msrb(b, x):
        outs = [conv(br[2], F.relu(conv(br[0], x))) for br in b.branches]
        return F.relu(x + torch.cat(outs, dim=1))

    def srb(b, x):
        return F.relu(x + conv(b.body[2], F.relu(conv(b.body[0], x))))

    def stream(seq, x):
        for l in seq:
            x = conv(l, x) if isinstance(l, nn.Conv2d) else (msrb(l, x) if isinstance(l, MSRB) else srb(l, x))
        return x

    def psos(x):
        return conv(m.psos[2], F.relu(conv(m.psos[0], x)))

    z_sal, y_sal = stream(m.msi_stream, msi), stream(m.hsi_stream, lr)
    a = (m.omega * psos(z_sal) + m.mu * z_sal).clamp(0, 1)
    a_lr = (m.omega * psos(y_sal) + m.mu * y_sal).clamp(0, 1)

    def dec(d, x):
        return F.conv2d(x, d.weight[:, :, None, None]).clamp(0, 1)

    return {"a": a, "a_lr": a_lr, "z_rec": dec(m.msi_decoder, a), "y_rec": dec(m.hsi_decoder, a_lr),
            "x": dec(m.hsi_decoder, a)}


@pytest.mark.parametrize("channels_last", [False, True])
def test_eu2adl_model_matches_reference(channels_last):
    m = _eu2adl(channels_last=channels_last)
    g = torch.Generator().manual_seed(2)
    lr = torch.rand(1, 12, 5, 5, generator=g, dtype=torch.float64)
    msi = torch.rand(1, 3, 20, 20, generator=g, dtype=torch.float64)
    if channels_last:
        lr, msi = lr.contiguous(memory_format=torch.channels_last), msi.contiguous(memory_format=torch.channels_last)
    _compare_model(m, _eu2adl_reference, (lr, msi))


def test_state_dicts_match_the_conv2d_formulation():
    """Every optimised 1×1 layer is still an ``nn.Conv2d`` with a (O, C, 1, 1) weight and a bias."""
    for m in (_hyconet(), _cucanet(), _eu2adl()):
        for name, mod in m.named_modules():
            if isinstance(mod, Conv1x1):
                assert isinstance(mod, nn.Conv2d) and mod.weight.shape[-2:] == (1, 1), name
        sd = m.state_dict()
        assert all(isinstance(v, torch.Tensor) for v in sd.values())
    assert _hyconet().msi_encoder[0].weight.shape == (8, 3, 1, 1)
    assert _cucanet().msi_head.weight.shape == (6, 64, 1, 1)
    # same seed, same initial parameters as a model built again (the speed-ups consume no randomness)
    a, b = _cucanet(seed=3).state_dict(), _cucanet(seed=3).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------------------ engine

def test_seeded_run_restores_fill_uninitialized_memory():
    det = torch.utils.deterministic
    before = det.fill_uninitialized_memory
    with seeded_run(0):
        assert det.fill_uninitialized_memory is False
        assert torch.are_deterministic_algorithms_enabled()
    assert det.fill_uninitialized_memory == before


def test_large_heap_is_allocation_only():
    x = torch.randn(1000, 1000, generator=torch.Generator().manual_seed(0))
    want = (x @ x).sum()
    with large_heap() as changed:
        assert changed in (True, False)
        got = (x @ x).sum()
        big = [torch.empty(3_000_000) for _ in range(3)]  # 12 MB blocks: heap, not mmap
        del big
    assert torch.equal(got, want)


_HEAP_PROBE = r"""
import ctypes, json
from hsibench.nets.engine import large_heap

libc = ctypes.CDLL("libc.so.6")


class Mallinfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                                                 "uordblks", "fordblks", "keepcost")]


libc.mallinfo2.restype = Mallinfo2
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
MiB = 1 << 20


def released(k=6, size=16 * MiB):
    # MiB the heap hands back while k blocks are freed, last first: the free top grows 16 MiB a block
    # and is trimmed once it reaches the trim threshold (never with 1 GiB, once with 64 MiB)
    ptrs = (ctypes.c_void_p * k)()  # allocated up front: nothing else lands above the blocks
    for i in range(k):
        ptrs[i] = libc.malloc(size)
    before = libc.mallinfo2().arena
    for i in reversed(range(k)):
        libc.free(ptrs[i])
    return (before - libc.mallinfo2().arena) / MiB


def mmapped(size):
    n = libc.mallinfo2().hblks
    p = libc.malloc(size)
    out = libc.mallinfo2().hblks > n
    libc.free(p)
    return out


out = {}
with large_heap() as outer:
    with large_heap() as inner:
        out["flags"] = [outer, inner]
    out["inside_after_inner_exit"] = released()
out["mmapped_40"], out["mmapped_24"] = mmapped(40 * MiB), mmapped(24 * MiB)
out["after"] = released()
with large_heap():
    out["inside_again"] = released()
out["after_again"] = released()
print(json.dumps(out))
"""


def _has_mallinfo2() -> bool:
    import ctypes
    import platform

    try:
        return platform.libc_ver()[0] == "glibc" and hasattr(ctypes.CDLL("libc.so.6"), "mallinfo2")
    except OSError:
        return False


@pytest.mark.skipif(not _has_mallinfo2(), reason="needs glibc >= 2.33 (mallinfo2)")
def test_large_heap_is_reentrant_and_leaves_the_documented_state():
    """Observed through glibc's own counters in a fresh process: a nested context does not end the
    outer one's setting; after the last exit the mmap threshold is 32 MiB and the trim threshold
    64 MiB, as documented, whatever was entered before."""
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-c", _HEAP_PROBE], capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["flags"] == [True, True]
    assert out["inside_after_inner_exit"] == 0 and out["inside_again"] == 0  # 1 GiB trim threshold in force
    assert out["mmapped_40"] and not out["mmapped_24"]  # mmap threshold 32 MiB after the context
    for key in ("after", "after_again"):  # trim threshold 64 MiB: trimmed once, when the 4th block is freed
        assert 56 <= out[key] <= 72, out  # untouched glibc would trim at every free (96)


# ------------------------------------------------------------------------------ bench section

def test_bench_nets_case_and_report_section(tmp_path):
    """The nets benchmark case has the documented shape, and its report section replaces only itself."""
    from hsibench import bench

    bench.nets_case(tmp_path / "case.npz")
    d = np.load(tmp_path / "case.npz")
    assert d["lr"].shape == (156, 20, 20) and d["msi"].shape == (4, 80, 80) and int(d["scale"]) == 4
    np.testing.assert_allclose(d["srf"].sum(1), 1)
    np.testing.assert_allclose(d["lr"], d["lr"].astype(np.float64), rtol=0)
    X = d["truth"].astype(np.float64)  # the scene: the LrHSI is its 4×4 block means, the HrMSI its SRF image
    assert X.shape == (156, 80, 80) and X.max() == pytest.approx(1.0)
    np.testing.assert_allclose(d["lr"], X.reshape(156, 20, 4, 20, 4).mean((2, 4)), atol=1e-6)
    np.testing.assert_allclose(d["msi"], np.einsum("ml,lhw->mhw", d["srf"], X), atol=1e-6)
    doc = "# Title\n\nintro\n\n## Strided PSF\n\npsf table\n\n## Metrics\n\nmetrics table\n"
    sec1, sec2 = "## Nets\n\nfirst\n", "## Nets\n\nsecond\n"
    once = bench._splice_section(doc, "## Nets", sec1)
    assert once.startswith(doc.rstrip("\n")) and once.endswith(sec1)
    twice = bench._splice_section(once, "## Nets", sec2)
    assert twice == once.replace("first", "second")
    assert bench._section(twice, "## Nets") == sec2
    # a section in the middle is replaced in place, the following ones kept
    mid = bench._splice_section("## Nets\n\nold\n\n## Metrics\n\nm\n", "## Nets", sec1)
    assert mid == "## Nets\n\nfirst\n\n## Metrics\n\nm\n"
    # a rerun of the kernel benchmarks rewrites its own sections and keeps the others
    prev = "# B\n\n## Metrics\n\nold m\n\n## Nets\n\nnets\n\n## EU2ADL floor\n\nnotes\n"
    merged = bench._keep_sections(prev, "# B\n\n## Metrics\n\nnew m\n")
    assert "new m" in merged and "old m" not in merged
    assert bench._section(merged, "## Nets") == "## Nets\n\nnets\n"
    assert bench._section(merged, "## EU2ADL floor") == "## EU2ADL floor\n\nnotes\n"
    assert bench.NETS_NEEDED["cucanet"] == pytest.approx(2 * 0.419 / 0.518)


def test_bench_nets_case_tells_fusion_from_interpolation(tmp_path):
    """The nets case looks like a reflectance scene (dark and bright pixels, not a uniformly bright
    cube that saturates clamped decoders) and has detail below the LR pixel: bicubic up-sampling
    stays near 30 dB while a fusion method given the true operators (CNMF) gains at least 10 dB."""
    from hsibench import bench
    from hsibench.methods import Context, create_method
    from hsibench.metrics import compute_metrics

    bench.nets_case(tmp_path / "case.npz")
    d = np.load(tmp_path / "case.npz")
    X = d["truth"].astype(np.float64)
    assert 0.15 < X.mean() < 0.4 and np.percentile(X, 5) < 0.1
    ctx = Context.from_truth(scale=4, mode="oracle", psf=d["psf"], srf=d["srf"], seed=0)
    psnr = {}
    for name in ("upsample", "cnmf"):
        out = create_method(name).fuse(d["lr"], d["msi"], ctx)
        out = out[0] if isinstance(out, tuple) else out
        psnr[name] = compute_metrics(X, np.clip(np.asarray(out, np.float64), 0, 1), scale=4).scalars["psnr"]
    assert 27 < psnr["upsample"] < 33, psnr
    assert psnr["cnmf"] > psnr["upsample"] + 10, psnr
