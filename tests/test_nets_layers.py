"""Learned degradation layers: constraints, geometry against the package operator, freezing, init."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hsibench.degrade.psf import make_psf
from hsibench.degrade.spatial import blur_decimate
from hsibench.methods import Context, InputError
from hsibench.nets.layers import (
    EndmemberDecoder,
    PSFLayer,
    SRFLayer,
    degradation_layers,
    kl_sparsity,
    relative_error,
    sum_to_one_l1,
)
from _tolerance import sum_bound

torch.set_num_threads(1)


@pytest.mark.parametrize("kernel,scale", [("gauss_sigma0.5", 4), ("gauss_fwhm", 3), ("gauss_fwhm_wide", 4), ("box", 2)])
@pytest.mark.parametrize("boundary", ["symmetric", "circular"])
def test_frozen_psf_matches_blur_decimate(rng, kernel, scale, boundary):
    k = make_psf(kernel, scale)
    x = rng.random((5, 8 * scale, 6 * scale)).astype(np.float32)
    layer = PSFLayer(scale, init=k, learn=False, boundary=boundary)
    got = layer(torch.as_tensor(x)).numpy()
    want = blur_decimate(x, k.astype(np.float32), scale, boundary)
    # Two float32 evaluations of a k.size-term sum with Σ|w x| ≤ 1 (x in [0, 1), k ≥ 0 summing to 1)
    # differ by ≤ k.size·eps32 (tests/_tolerance.py); x2 for the layer's own float32 taps.
    np.testing.assert_allclose(got, want, rtol=0, atol=2 * sum_bound(k.size, np.float32, 1.0))
    assert not layer.weight.requires_grad


@pytest.mark.parametrize("param", ["clamp", "softmax"])
def test_psf_constraints_hold_after_steps(param):
    torch.manual_seed(0)
    layer = PSFLayer(4, param=param)
    np.testing.assert_allclose(layer.psf().detach().numpy(), np.full((4, 4), 1 / 16), atol=1e-7)
    opt = torch.optim.SGD(layer.parameters(), lr=5.0)
    x = torch.rand(2, 3, 16, 16)
    for _ in range(5):
        loss = (layer(x) - torch.randn(2, 3, 4, 4)).pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        layer.project()
        k = layer.psf().detach()
        assert float(k.min()) >= 0
        assert abs(float(k.sum()) - 1) < 1e-5
    if param == "clamp":  # the raw weights themselves are back on the simplex
        w = layer.weight.detach()
        assert float(w.min()) >= 0 and abs(float(w.sum()) - 1) < 1e-5


def test_psf_dead_kernel_restarts_uniform():
    layer = PSFLayer(2)
    with torch.no_grad():
        layer.weight.fill_(-1.0)
    layer.project()
    np.testing.assert_allclose(layer.weight.detach().numpy(), np.full((2, 2), 0.25))


def test_psf_rejects_wrong_parity_and_bad_init():
    with pytest.raises(InputError):
        PSFLayer(4, size=3)
    with pytest.raises(InputError):
        PSFLayer(4, init=-np.ones((4, 4)))


@pytest.mark.parametrize("param", ["clamp", "softmax"])
def test_srf_rows_sum_to_one_and_respect_coverage(param):
    torch.manual_seed(0)
    cov = np.zeros((3, 10), bool)
    cov[0, :4], cov[1, 3:7], cov[2, 6:] = True, True, True
    layer = SRFLayer(10, 3, coverage=cov, param=param)
    r = layer.matrix().detach().numpy()
    np.testing.assert_allclose(r.sum(1), 1, atol=1e-6)
    assert np.all(r[~cov] == 0)
    np.testing.assert_allclose(r[0, :4], 0.25, atol=1e-6)
    opt = torch.optim.SGD(layer.parameters(), lr=3.0)
    x = torch.rand(1, 10, 5, 5)
    for _ in range(5):
        loss = (layer(x) - torch.rand(1, 3, 5, 5)).pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        layer.project()
        r = layer.matrix().detach().numpy()
        assert r.min() >= 0 and np.all(r[~cov] == 0)
        np.testing.assert_allclose(r.sum(1), 1, atol=1e-5)
    if param == "clamp":
        assert np.all(layer.weight.detach().numpy()[~cov] == 0)


def test_srf_init_from_estimate_is_masked_and_normalised(rng):
    srf = rng.random((3, 8))
    cov = np.ones((3, 8), bool)
    cov[0, 5:] = False
    layer = SRFLayer(8, 3, init=srf, coverage=cov, learn=False)
    want = srf * cov
    want /= want.sum(1, keepdims=True)
    np.testing.assert_allclose(layer.matrix().numpy(), want, rtol=1e-6)
    np.testing.assert_allclose(layer.initial_matrix(), want, rtol=1e-6)
    x = torch.rand(2, 8, 4, 4)
    np.testing.assert_allclose(layer(x).numpy(), np.einsum("ml,blhw->bmhw", want, x.numpy()), rtol=1e-5)
    assert not layer.weight.requires_grad


def test_srf_rejects_uncovered_band():
    cov = np.ones((2, 5), bool)
    cov[1] = False
    with pytest.raises(InputError):
        SRFLayer(5, 2, coverage=cov)


def test_endmember_decoder_clips_weights_and_output():
    torch.manual_seed(0)
    dec = EndmemberDecoder(6, 9)
    w = dec.weight.detach()
    assert float(w.min()) >= 0 and float(w.max()) <= 1
    with torch.no_grad():
        dec.weight.add_(3.0)
    dec.project()
    assert float(dec.weight.detach().max()) <= 1
    y = dec(torch.rand(1, 6, 4, 4) * 5).detach()
    assert float(y.max()) <= 1 and float(y.min()) >= 0


def test_losses():
    a = torch.full((1, 4, 3, 3), 0.25)
    assert float(sum_to_one_l1(a)) == pytest.approx(0.0, abs=1e-6)
    assert float(kl_sparsity(torch.full((1, 2, 1, 1), 0.01), 0.01)) == pytest.approx(0.0, abs=1e-6)
    assert float(kl_sparsity(torch.zeros(1, 2, 1, 1), 0.01)) > 0  # finite at exact zeros
    assert np.isfinite(float(kl_sparsity(torch.zeros(1, 2, 1, 1), 0.01)))


def test_relative_error_pads_kernels():
    k4 = make_psf("box", 4)
    k6 = np.zeros((6, 6))
    k6[1:5, 1:5] = k4
    assert relative_error(k4, k6) == pytest.approx(0.0)
    assert relative_error(k4 * 2, k4) == pytest.approx(1.0)


def test_degradation_layers_per_mode():
    psf = make_psf("gauss_sigma0.5", 4)
    srf = np.random.default_rng(0).random((3, 7))
    srf /= srf.sum(1, keepdims=True)
    cov = np.ones((3, 7), bool)
    cov[0, 4:] = False
    kw = dict(scale=4, psf=psf, srf=srf, coverage=cov)
    p, r, note = degradation_layers(Context.from_truth(mode="oracle", **kw), 7, 3)
    assert not p.learn and not r.learn
    np.testing.assert_allclose(p.psf().detach().numpy(), psf, atol=1e-7)
    np.testing.assert_allclose(r.matrix().detach().numpy(), srf, atol=1e-6)
    p, r, note = degradation_layers(Context.from_truth(mode="srf_support", **kw), 7, 3)
    assert p.learn and r.learn and note["srf_coverage"] == "given"
    assert np.all(r.matrix().detach().numpy()[~cov] == 0)
    np.testing.assert_allclose(p.psf().detach().numpy(), 1 / 16)
    p, r, note = degradation_layers(Context.from_truth(mode="blind", **kw), 7, 3)
    np.testing.assert_allclose(r.matrix().detach().numpy(), 1 / 7, atol=1e-7)
    ctx = Context(scale=4, mode="estimated", psf=make_psf("gauss_fwhm_wide", 4), srf=srf, coverage=cov)
    p, r, note = degradation_layers(ctx, 7, 3)
    assert p.learn and p.psf().shape == (8, 8) and note["psf_init"] == "estimate"
