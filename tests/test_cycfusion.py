"""CycFusion on a small synthetic low-rank scene (64×64×31, s = 4): architecture, quality, degradation
learning, determinism, modes, guards."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import hsibench.nets.cycfusion  # noqa: F401  (registers "cycfusion")
from hsibench.degrade.degradation import Degradation
from hsibench.methods import Context, MethodError, NotApplicable, create_method, get_method, run_method
from hsibench.nets.cycfusion import CycFusionModel
from hsibench.nets.layers import PSFLayer, SRFLayer, relative_error

from _netcase import ctx_for, make_scene, psnr

torch.set_num_threads(1)

# The small preset's widths with a short budget keep the file well under a minute on one thread.
TEST_PARAMS = dict(early_stop=False)
TEST_ITERS = 200
MARGIN_DB = 4.0  # measured +8.1 dB over upsample at 200 iterations (blind, seed 0, 1 thread; seeds 1, 2: +7.9, +7.5)


@pytest.fixture(scope="module")
def scene():
    return make_scene()


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Re-pin after the scene is built: numba's OpenMP layer (used by the degradation) sets the OpenMP
    thread count that torch shares back to numba's own (all cores)."""
    torch.set_num_threads(1)


def test_registered_with_presets_and_modes():
    cls = get_method("cycfusion")
    assert cls.family == "deep"
    assert set(cls.modes) == {"oracle", "srf_support", "blind", "estimated"}
    assert {"default", "fast", "small", "paper"} <= set(cls.presets)
    paper = create_method("cycfusion", "paper").params
    assert paper["stage1_iterations"] == 10000 and paper["stage1_lr"] == 1e-3
    assert paper["iterations"] == 30000 and paper["warmup"] == 10000 and paper["schedule"] == "cosine"
    assert paper["lr"] == 1e-3 and paper["optimizer"] == "adam" and paper["min_lr_factor"] == 0
    assert tuple(paper["spatial_widths"]) == (32, 64, 128, 128, 128) and paper["refine_width"] == 128
    assert tuple(paper["spectral_widths"]) == (32, 64, 128, 128, 128)
    assert (paper["lambda_mm"], paper["lambda_cyc"], paper["lambda_ide"]) == (1, 1, 1)
    assert paper["degradation_param"] == "softmax" and paper["degradation_init"] == "kaiming"
    assert paper["finetune_degradation"] is True and paper["early_stop"] is False
    assert create_method("cycfusion", "small").params["early_stop"] is True
    fast = create_method("cycfusion", "fast").params
    # ten-fold compression keeping the one-cycle shape (1/3 warm-up), nothing else
    assert (fast["stage1_iterations"], fast["iterations"], fast["warmup"]) == (1000, 660, 220)
    assert (fast["lr"], fast["stage1_lr"], fast["lr_mult"]) == (paper["lr"], paper["stage1_lr"], paper["lr_mult"])
    assert tuple(fast["spatial_widths"]) == tuple(paper["spatial_widths"])


@pytest.mark.parametrize("L,l,size_m", [(31, 3, 0.47), (128, 4, 0.52), (103, 4, 0.51)])
def test_table_ii_widths_give_table_v_sizes(L, l, size_m):
    """At s = 32 the Table II widths give the paper's Table V model sizes (CAVE, Chikusei, Pavia)."""
    m = CycFusionModel(L, l, 32, PSFLayer(32, param="softmax"), SRFLayer(L, l, param="softmax"))
    assert len(m.g_y.blocks) == 5
    assert round(sum(p.numel() for p in m.parameters()) / 1e6, 2) == size_m


@pytest.mark.parametrize("s", [2, 4, 8])
def test_spatial_branch_reaches_any_power_of_two(s):
    m = CycFusionModel(5, 2, s, PSFLayer(s, param="softmax"), SRFLayer(5, 2, param="softmax"), (4, 4, 4), 4, (4,))
    assert len(m.g_y.blocks) == int(np.log2(s))
    with torch.no_grad():
        x = m(torch.rand(1, 5, 3, 2), torch.rand(1, 2, 3 * s, 2 * s))
    assert x.shape == (1, 5, 3 * s, 2 * s) and float(x.min()) > 0 and float(x.max()) < 1


def test_blind_beats_upsample_and_learns_psf_srf(scene):
    X, wl, obs = scene
    ctx = ctx_for(obs, wl, "blind", TEST_ITERS)
    up = run_method(create_method("upsample"), obs.lr, obs.msi, ctx).hr
    res = run_method(create_method("cycfusion", "small", **TEST_PARAMS), obs.lr, obs.msi, ctx)
    assert res.hr.dtype == np.float32 and res.hr.shape == X.shape
    gain = psnr(X, res.hr) - psnr(X, up)
    assert gain > MARGIN_DB, f"CycFusion only {gain:.2f} dB over upsample"
    info = res.info
    assert relative_error(info["learned_psf"], obs.psf) < 0.5 * relative_error(info["initial_psf"], obs.psf)
    assert relative_error(info["learned_srf"], obs.srf) < relative_error(info["initial_srf"], obs.srf)
    assert abs(info["learned_psf"].sum() - 1) < 1e-5 and info["learned_psf"].min() >= 0
    np.testing.assert_allclose(info["learned_srf"].sum(1), 1, atol=1e-5)
    assert info["knowledge"]["psf_init"] == "Kaiming-normal logits"
    # Pre-training (eq. 18) ran and fitted the LrMSI consistency.
    assert info["stage1_iterations"] > 0 and info["stage1_stopped"] == "budget"
    pre = info["stage1_loss_curve"]["lrmsi"]
    assert pre[-1] < 0.5 * pre[0]
    # Training: eq. 12/14/15 terms, a one-cycle lr (warm-up to the peak, then annealed).
    curve = info["loss_curve"]
    assert info["iterations"] == TEST_ITERS and info["stopped"] == "budget"
    assert {"total", "mm", "cyc", "ide", "lr"} <= set(curve)
    assert curve["total"][-1] < 0.5 * curve["total"][0]
    lr = np.asarray(curve["lr"])
    peak = int(np.argmax(lr))
    assert 0 < peak < len(lr) - 1 and lr[0] < 0.1 * lr[peak] and lr[-1] < 0.1 * lr[peak]


def test_srf_support_respects_coverage(scene):
    X, wl, obs = scene
    res = run_method(create_method("cycfusion", "small", **TEST_PARAMS), obs.lr, obs.msi,
                     ctx_for(obs, wl, "srf_support", 10))
    assert np.all(res.info["initial_srf"][~obs.coverage] == 0)
    assert np.all(res.info["learned_srf"][~obs.coverage] == 0)
    np.testing.assert_allclose(res.info["learned_srf"].sum(1), 1, atol=1e-5)
    assert res.info["knowledge"]["srf_coverage"] == "given"


def test_same_seed_same_output(scene):
    X, wl, obs = scene
    m = create_method("cycfusion", "small", **TEST_PARAMS)
    a = run_method(m, obs.lr, obs.msi, ctx_for(obs, wl, "blind", 10, seed=3)).hr
    b = run_method(m, obs.lr, obs.msi, ctx_for(obs, wl, "blind", 10, seed=3)).hr
    c = run_method(m, obs.lr, obs.msi, ctx_for(obs, wl, "blind", 10, seed=4)).hr
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_oracle_freezes_truth_and_estimated_starts_from_estimate(scene):
    X, wl, obs = scene
    m = create_method("cycfusion", "small", **TEST_PARAMS)
    info = run_method(m, obs.lr, obs.msi, ctx_for(obs, wl, "oracle", 10)).info
    assert info["stage1_iterations"] == 0  # CycFusion-noblind: no pre-training
    np.testing.assert_allclose(info["learned_psf"], obs.psf, atol=1e-6)
    np.testing.assert_allclose(info["learned_srf"], obs.srf, atol=1e-6)
    guess_psf = np.full((4, 4), 1 / 16)
    guess_srf = obs.srf * 0.5 + 0.5 * obs.coverage / obs.coverage.sum(1, keepdims=True)
    ctx = Context(scale=4, mode="estimated", psf=guess_psf, srf=guess_srf, coverage=obs.coverage, iterations=10)
    info = run_method(m, obs.lr, obs.msi, ctx).info
    np.testing.assert_allclose(info["initial_psf"], guess_psf, atol=1e-7)
    np.testing.assert_allclose(info["initial_srf"], guess_srf, atol=1e-6)
    # the estimate replaces the pre-training; the joint training fine-tunes it
    assert info["knowledge"]["psf_init"] == "estimate" and info["stage1_iterations"] == 0
    assert "pretrained_psf" not in info
    assert not np.allclose(info["learned_psf"], guess_psf, atol=1e-5)


def test_nan_guard(scene):
    X, wl, obs = scene
    lr = obs.lr.copy()
    lr[0, 0, 0] = np.nan  # bypasses run_method's input check on purpose
    m = create_method("cycfusion", "small", **TEST_PARAMS)
    with pytest.raises(MethodError, match="non-finite loss at iteration 0"):
        m.fuse(lr, obs.msi, ctx_for(obs, wl, "blind", 10))


def test_non_power_of_two_scale_is_rejected(scene):
    X, wl, obs = scene
    obs6 = Degradation(6, "gauss_sigma0.5", "landsat8_bgr").apply(X[:, :48, :48], wl)
    ctx = Context.from_truth(scale=6, mode="blind", iterations=5)
    with pytest.raises(NotApplicable, match="power of two"):
        run_method(create_method("cycfusion", "small"), obs6.lr, obs6.msi, ctx)


@pytest.mark.slow
def test_small_preset_beats_upsample(scene):
    """The full ``small`` preset (its own budget, plateau stop on) on the synthetic scene."""
    X, wl, obs = scene
    ctx = ctx_for(obs, wl, "blind", None)
    up = run_method(create_method("upsample"), obs.lr, obs.msi, ctx).hr
    res = run_method(create_method("cycfusion", "small"), obs.lr, obs.msi, ctx)
    assert psnr(X, res.hr) - psnr(X, up) > 2 * MARGIN_DB
