"""EU2ADL on a small synthetic low-rank scene (64×64×31, s = 4): quality, degradation learning,
determinism, modes, guards."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hsibench.methods import Context, MethodError, create_method, get_method, run_method
from hsibench.nets.layers import relative_error

from _netcase import ctx_for, make_scene, psnr

torch.set_num_threads(1)

# Small widths and a short budget keep the test well under a minute on one thread.
TEST_PARAMS = dict(width=12, endmembers=20, early_stop=False)
TEST_ITERS = 500
MARGIN_DB = 2.0  # measured +4.8 dB over upsample at 500 iterations (+3.2 at 400; blind, seed 0, 1 thread)


@pytest.fixture(scope="module")
def scene():
    return make_scene()


def test_registered_with_presets_and_modes():
    cls = get_method("eu2adl")
    assert cls.family == "deep"
    assert set(cls.modes) == {"oracle", "srf_support", "blind", "estimated"}
    paper = create_method("eu2adl", "paper").params
    assert paper["iterations"] == 14000 and paper["decay_start"] == 0.5 and paper["endmembers"] == 160
    assert paper["stage1_iterations"] == 4000 and paper["stage1_lr"] == 1e-3 and paper["lr"] == 1e-3
    assert (paper["lambda_rec"], paper["lambda_deg"], paper["lambda_abund"], paper["lambda_asc"]) == (100, 10, 1, 0.01)
    assert (paper["omega"], paper["mu"], paper["blocks"], paper["width"]) == (5e-4, 5e-4, 3, 60)
    assert paper["perceptual"] is False and paper["early_stop"] is False
    # the paper's PSF branch: ReLU, no position bias (small: softplus + position bias)
    assert paper["psf_activation"] == "relu" and paper["psf_position_bias"] is False
    small = create_method("eu2adl", "small").params
    assert small["psf_activation"] == "softplus" and small["psf_position_bias"] is True
    assert any("VGG" in d for d in create_method("eu2adl", "paper").applied_deviations)


def test_blind_beats_upsample_and_learns_psf(scene):
    X, wl, obs = scene
    ctx = ctx_for(obs, wl, "blind", TEST_ITERS)
    up = run_method(create_method("upsample"), obs.lr, obs.msi, ctx).hr
    res = run_method(create_method("eu2adl", "small", **TEST_PARAMS), obs.lr, obs.msi, ctx)
    assert res.hr.dtype == np.float32 and res.hr.shape == X.shape
    gain = psnr(X, res.hr) - psnr(X, up)
    assert gain > MARGIN_DB, f"EU2ADL only {gain:.2f} dB over upsample"
    info = res.info
    assert relative_error(info["learned_psf"], obs.psf) < 0.5 * relative_error(info["initial_psf"], obs.psf)
    assert relative_error(info["learned_srf"], obs.srf) < relative_error(info["initial_srf"], obs.srf)
    assert info["stage1_iterations"] > 0 and "stage1_loss_curve" in info
    assert info["stage1_loss_curve"]["lrmsi"][-1] < info["stage1_loss_curve"]["lrmsi"][0]
    assert {"total", "rec", "deg", "abund", "asc"} <= set(info["loss_curve"])


def test_srf_support_masks_adl_srf(scene):
    X, wl, obs = scene
    info = run_method(create_method("eu2adl", "small", **TEST_PARAMS), obs.lr, obs.msi,
                      ctx_for(obs, wl, "srf_support", 10)).info
    assert np.all(info["learned_srf"][~obs.coverage] == 0)
    np.testing.assert_allclose(info["learned_srf"].sum(1), 1, atol=1e-5)


def test_same_seed_same_output(scene):
    X, wl, obs = scene
    m = create_method("eu2adl", "small", **TEST_PARAMS)
    a = run_method(m, obs.lr, obs.msi, ctx_for(obs, wl, "blind", 10, seed=3)).hr
    b = run_method(m, obs.lr, obs.msi, ctx_for(obs, wl, "blind", 10, seed=3)).hr
    np.testing.assert_array_equal(a, b)


def test_oracle_skips_stage1_and_estimated_starts_from_estimate(scene):
    X, wl, obs = scene
    m = create_method("eu2adl", "small", **TEST_PARAMS)
    info = run_method(m, obs.lr, obs.msi, ctx_for(obs, wl, "oracle", 5)).info
    assert info["stage1_iterations"] == 0
    np.testing.assert_allclose(info["learned_psf"], obs.psf, atol=1e-6)
    np.testing.assert_allclose(info["learned_srf"], obs.srf, atol=1e-6)
    guess_psf = np.full((4, 4), 1 / 16)
    guess_srf = obs.srf * 0.5 + 0.5 * obs.coverage / obs.coverage.sum(1, keepdims=True)
    ctx = Context(scale=4, mode="estimated", psf=guess_psf, srf=guess_srf, coverage=obs.coverage, iterations=5)
    info = run_method(m, obs.lr, obs.msi, ctx).info
    np.testing.assert_allclose(info["initial_psf"], guess_psf, atol=1e-4)
    np.testing.assert_allclose(info["initial_srf"], guess_srf, atol=2e-3)
    # the paper's ReLU branch starts from the estimate too (no softplus inverse)
    relu = create_method("eu2adl", "small", **TEST_PARAMS, psf_activation="relu")
    info = run_method(relu, obs.lr, obs.msi, ctx).info
    np.testing.assert_allclose(info["initial_psf"], guess_psf, atol=1e-4)


def test_psf_branch_guard_never_nan(scene):
    """The paper's ReLU PSF branch can die at init (all-zero kernel -> 0/0): the guard gives a uniform kernel."""
    from hsibench.nets.eu2adl import ADLNet

    X, wl, obs = scene
    lr, msi = torch.as_tensor(obs.lr)[None], torch.as_tensor(obs.msi)[None]
    for seed in range(10):
        torch.manual_seed(seed)
        net = ADLNet(31, 3, 4, position_bias=False, activation="relu" if seed % 2 else "softplus")
        with torch.no_grad():
            net.psf_b.fill_(-100.0)  # force every logit negative: a dead ReLU branch
        with torch.no_grad():
            k = net.psf_kernel(msi)
            assert torch.isfinite(k).all() and abs(float(k.sum()) - 1) < 1e-5
            assert torch.isfinite(net(lr, msi))


def test_perceptual_needs_weights_and_runs_with_random_ones(scene):
    X, wl, obs = scene
    m = create_method("eu2adl", "small", **TEST_PARAMS, perceptual=True)
    with pytest.raises(MethodError, match="VGG-16 weights"):
        m.fuse(obs.lr, obs.msi, ctx_for(obs, wl, "oracle", 2))
    m = create_method("eu2adl", "small", **TEST_PARAMS, perceptual=True, vgg_weights="random")
    res = run_method(m, obs.lr, obs.msi, ctx_for(obs, wl, "oracle", 2))
    assert res.info["perceptual"] is True and np.all(np.isfinite(res.hr))


def test_nan_guard(scene):
    X, wl, obs = scene
    lr = obs.lr.copy()
    lr[3, 2, 2] = np.nan
    with pytest.raises(MethodError, match="non-finite loss at iteration 0"):
        create_method("eu2adl", "small", **TEST_PARAMS).fuse(lr, obs.msi, ctx_for(obs, wl, "blind", 10))


@pytest.mark.slow
def test_small_preset_beats_upsample(scene):
    """The full ``small`` preset (its own budget, plateau stop on) on the synthetic scene."""
    X, wl, obs = scene
    ctx = ctx_for(obs, wl, "blind", None)
    up = run_method(create_method("upsample"), obs.lr, obs.msi, ctx).hr
    res = run_method(create_method("eu2adl", "small"), obs.lr, obs.msi, ctx)
    assert psnr(X, res.hr) - psnr(X, up) > 2 * MARGIN_DB
