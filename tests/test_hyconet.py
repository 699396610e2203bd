"""HyCoNet on a small synthetic low-rank scene (64×64×31, s = 4): quality, degradation learning,
determinism, modes, guards."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hsibench.methods import Context, MethodError, create_method, get_method, run_method
from hsibench.nets.layers import relative_error

from hsibench.degrade.degradation import Degradation

from _netcase import ctx_for, make_scene, psnr, toy_scene

torch.set_num_threads(1)

# Small widths and a short budget keep the test well under a minute on one thread.
TEST_PARAMS = dict(widths=(16, 32, 64), endmembers=20, early_stop=False)
TEST_ITERS = 400
MARGIN_DB = 3.0  # measured +7.8 dB over upsample at 400 iterations (blind, seed 0, 1 thread)


@pytest.fixture(scope="module")
def scene():
    return make_scene()


def test_registered_with_presets_and_modes():
    cls = get_method("hyconet")
    assert cls.family == "deep"
    assert set(cls.modes) == {"oracle", "srf_support", "blind", "estimated"}
    assert {"default", "fast", "small", "paper"} <= set(cls.presets)
    paper = create_method("hyconet", "paper").params
    assert paper["iterations"] == 10000 and paper["endmembers"] == 100 and paper["lr"] == 5e-3
    assert (paper["alpha"], paper["beta"], paper["gamma"], paper["mu"], paper["nu"]) == (10, 10, 100, 1e-3, 1e-3)
    assert paper["early_stop"] is False
    fast = create_method("hyconet", "fast").params
    assert fast["early_stop"] is True and fast["iterations"] < paper["iterations"]
    assert {k: v for k, v in fast.items() if k not in ("iterations", "early_stop") and not k.startswith("plateau_")} == \
        {k: v for k, v in paper.items() if k not in ("iterations", "early_stop") and not k.startswith("plateau_")}
    small = create_method("hyconet", "small")
    assert small.params["early_stop"] is True and small.params["endmembers"] < paper["endmembers"]
    assert any("p = 30" in d for d in small.applied_deviations)


def test_blind_beats_upsample_and_learns_psf_srf(scene):
    X, wl, obs = scene
    ctx = ctx_for(obs, wl, "blind", TEST_ITERS)
    up = run_method(create_method("upsample"), obs.lr, obs.msi, ctx).hr
    res = run_method(create_method("hyconet", "small", **TEST_PARAMS), obs.lr, obs.msi, ctx)
    assert res.hr.dtype == np.float32 and res.hr.shape == X.shape
    gain = psnr(X, res.hr) - psnr(X, up)
    assert gain > MARGIN_DB, f"HyCoNet only {gain:.2f} dB over upsample"
    info = res.info
    assert relative_error(info["learned_psf"], obs.psf) < 0.5 * relative_error(info["initial_psf"], obs.psf)
    assert relative_error(info["learned_srf"], obs.srf) < relative_error(info["initial_srf"], obs.srf)
    assert abs(info["learned_psf"].sum() - 1) < 1e-5 and info["learned_psf"].min() >= 0
    np.testing.assert_allclose(info["learned_srf"].sum(1), 1, atol=1e-5)
    curve = info["loss_curve"]
    assert info["iterations"] == TEST_ITERS and info["stopped"] == "budget"
    assert {"total", "lrhsi", "psf_branch", "hrmsi", "lrmsi", "sum2one", "sparse", "lr"} <= set(curve)
    assert curve["total"][-1] < curve["total"][0]


def test_srf_support_respects_coverage(scene):
    X, wl, obs = scene
    res = run_method(create_method("hyconet", "small", **TEST_PARAMS), obs.lr, obs.msi, ctx_for(obs, wl, "srf_support", 20))
    assert np.all(res.info["learned_srf"][~obs.coverage] == 0)
    assert res.info["knowledge"]["srf_coverage"] == "given"


def test_same_seed_same_output(scene):
    X, wl, obs = scene
    m = create_method("hyconet", "small", **TEST_PARAMS)
    a = run_method(m, obs.lr, obs.msi, ctx_for(obs, wl, "blind", 25, seed=3)).hr
    b = run_method(m, obs.lr, obs.msi, ctx_for(obs, wl, "blind", 25, seed=3)).hr
    c = run_method(m, obs.lr, obs.msi, ctx_for(obs, wl, "blind", 25, seed=4)).hr
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_oracle_freezes_truth_and_estimated_starts_from_estimate(scene):
    X, wl, obs = scene
    m = create_method("hyconet", "small", **TEST_PARAMS)
    info = run_method(m, obs.lr, obs.msi, ctx_for(obs, wl, "oracle", 15)).info
    np.testing.assert_allclose(info["learned_psf"], obs.psf, atol=1e-6)
    np.testing.assert_allclose(info["learned_srf"], obs.srf, atol=1e-6)
    guess_psf = np.full((4, 4), 1 / 16)
    guess_srf = obs.srf * 0.5 + 0.5 * obs.coverage / obs.coverage.sum(1, keepdims=True)
    ctx = Context(scale=4, mode="estimated", psf=guess_psf, srf=guess_srf, coverage=obs.coverage, iterations=15)
    info = run_method(m, obs.lr, obs.msi, ctx).info
    np.testing.assert_allclose(info["initial_psf"], guess_psf, atol=1e-7)
    np.testing.assert_allclose(info["initial_srf"], guess_srf, atol=1e-6)
    assert info["knowledge"]["psf_init"] == "estimate"


def test_nan_guard(scene):
    X, wl, obs = scene
    lr = obs.lr.copy()
    lr[0, 0, 0] = np.nan  # bypasses run_method's input check on purpose
    m = create_method("hyconet", "small", **TEST_PARAMS)
    with pytest.raises(MethodError, match="non-finite loss at iteration 0"):
        m.fuse(lr, obs.msi, ctx_for(obs, wl, "blind", 10))


@pytest.mark.slow
def test_small_preset_beats_upsample(scene):
    """The full ``small`` preset (its own budget, plateau stop on) on the synthetic scene."""
    X, wl, obs = scene
    ctx = ctx_for(obs, wl, "blind", None)
    up = run_method(create_method("upsample"), obs.lr, obs.msi, ctx).hr
    res = run_method(create_method("hyconet", "small"), obs.lr, obs.msi, ctx)
    assert psnr(X, res.hr) - psnr(X, up) > 2 * MARGIN_DB


def test_saturated_decoder_is_noted_not_silent():
    """On a uniformly bright cube (every value in [0.3, 1]) the paper-width HyCoNet's clamped decoder
    starts above 1 (Kaiming init, 100 endmembers) and gets no gradient there: the row must say so,
    while a normal-brightness cube (same scene × 0.3) trains without the note."""
    from hsibench.nets.engine import saturation_note

    assert saturation_note(np.ones((2, 4, 4), np.float32), np.zeros((2, 2, 2))).startswith("2 of 2 output bands")
    assert saturation_note(np.ones((2, 4, 4), np.float32), np.ones((2, 2, 2))) is None  # the input is saturated too
    assert saturation_note(np.full((2, 4, 4), 0.5, np.float32), np.zeros((2, 2, 2))) is None
    spots = np.full((2, 4, 4), 0.5, np.float32)
    spots[:, :1, :1] = 1.0  # scattered highlights (1 of 16 pixels per band) are not a saturated decoder
    assert saturation_note(spots, np.zeros((2, 2, 2))) is None
    from hsibench.nets.engine import flat_output_note

    rng = np.random.default_rng(0)
    textured = rng.random((3, 2, 2))
    one_spectrum = np.broadcast_to(np.array([0.2, 0.3, 0.4])[:, None, None], (3, 4, 4))
    assert flat_output_note(one_spectrum, textured).startswith("3 of 3 output bands are nearly constant")
    assert flat_output_note(one_spectrum + 1e-4 * rng.random((3, 4, 4)), textured) is not None  # 1e-4 of texture: still flat
    assert flat_output_note(one_spectrum, np.ones((3, 2, 2))) is None  # a flat input may give a flat output
    assert flat_output_note(rng.random((3, 4, 4)), textured) is None
    X, wl = toy_scene(size=32, bands=24)
    for gain, noted in ((None, True), (0.3, False)):
        cube = (0.3 + 0.7 * X if gain is None else gain * X).astype(np.float32)
        obs = Degradation(4, "gauss_sigma0.5", "landsat8_bgr").apply(cube, np.linspace(400, 700, 24))
        torch.set_num_threads(1)
        _, info = create_method("hyconet", "fast").fuse(obs.lr, obs.msi, ctx_for(obs, wl, "oracle", 30))
        notes = [n for n in (info.get("notes") or []) if "clamp value 1" in n]
        assert bool(notes) is noted, (gain, info.get("notes"))
