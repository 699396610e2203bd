"""UAL on the small synthetic case (64×64×31, s = 4): quality, degeneration learning, the pre-training
cache, determinism, modes, guards."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import hsibench.methods.registry as method_registry
import hsibench.nets.ual  # noqa: F401  (registers "ual"; the lead wires it into hsibench.nets)
from hsibench.degrade.degradation import Degradation
from hsibench.methods import Context, InputError, MethodError, NotApplicable, create_method, get_method, run_method
from hsibench.nets.layers import relative_error

from _netcase import ctx_for, make_scene, psnr, toy_scene

torch.set_num_threads(1)

# A short synthetic pre-training and adaptation keep the quality test to ~25 s on one thread; the PSF
# learns at 3e-4 (small preset: 1e-4) so that it moves far enough within the short budget.
TEST_PARAMS = dict(pretrain_steps=150, pretrain_scenes=4, pretrain_scene_size=64, pretrain_patch=32,
                   lr_mult={"psf": 0.3})
TEST_ITERS = 400
MARGIN_DB = 1.0  # measured +2.42 dB over upsample (uniform start: PSF error 0.855 -> 0.238; blind, seed 0, 1 thread)
# A minimal net for the cache, seed and mode tests (pre-training in well under a second).
TINY = dict(width=4, blocks=1, adapt_width=4, adapt_blocks=1, pretrain_steps=3, pretrain_scenes=1,
            pretrain_scene_size=32, pretrain_patch=16, pretrain_batch=1)


@pytest.fixture(scope="module")
def scene():
    return make_scene()


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    """Every test gets its own empty pre-training cache; nothing is written to the user's home."""
    monkeypatch.setenv("HSIBENCH_CACHE", str(tmp_path))
    return tmp_path / "ual"


def test_registered_with_presets_and_modes():
    cls = get_method("ual")
    assert cls.family == "deep"
    assert set(cls.modes) == {"oracle", "srf_support", "blind", "estimated"}
    assert cls.needs == ("srf",)
    assert {"default", "fast", "small", "paper"} <= set(cls.presets)
    paper = create_method("ual", "paper").params
    assert (paper["width"], paper["blocks"], paper["adapt_width"], paper["adapt_blocks"]) == (64, 3, 64, 3)
    assert paper["iterations"] == 1500 and paper["schedule"] == "constant" and paper["early_stop"] is False
    assert paper["lr"] == 1e-4 and paper["lr"] * paper["lr_mult"]["adaptation"] == pytest.approx(9e-5)
    assert (paper["adapt_weight_decay"], paper["psf_weight_decay"]) == (1e-3, 1e-5)
    assert paper["psf_size"] == 32 and paper["psf_init_sigma"] == 3.0
    assert paper["pretrain_lr"] == 1e-4 and paper["pretrain_schedule"] == "step"
    assert (paper["pretrain_step_gamma"], paper["pretrain_batch"], paper["pretrain_patch"]) == (0.7, 6, 128)
    # 150 epochs of 98 steps (12 scenes x 49 patches / batch 6), lr x 0.7 every 10 epochs
    assert paper["pretrain_steps"] == 150 * 98 and paper["pretrain_step_size"] == 10 * 98
    assert paper["pretrain_blur_size"] == (5, 15) and paper["pretrain_blur_sigma"] == (0.5, 2.0)
    assert create_method("ual", "small").params["pretrain_steps"] < paper["pretrain_steps"]
    fast = create_method("ual", "fast").params
    # ten-fold compression of the pre-training schedule: as many lr decays over the run
    assert fast["pretrain_steps"] * 10 == paper["pretrain_steps"]
    assert fast["pretrain_step_size"] * 10 == paper["pretrain_step_size"]
    assert (fast["width"], fast["blocks"], fast["pretrain_lr"], fast["lr_mult"]) == \
        (paper["width"], paper["blocks"], paper["pretrain_lr"], paper["lr_mult"])


def test_blind_beats_upsample_and_learns_psf(scene, cache_dir):
    X, wl, obs = scene
    ctx = ctx_for(obs, wl, "blind", TEST_ITERS)
    up = run_method(create_method("upsample"), obs.lr, obs.msi, ctx).hr
    res = run_method(create_method("ual", "small", **TEST_PARAMS), obs.lr, obs.msi, ctx)
    assert res.hr.dtype == np.float32 and res.hr.shape == X.shape
    gain = psnr(X, res.hr) - psnr(X, up)
    assert gain > MARGIN_DB, f"UAL only {gain:.2f} dB over upsample"
    info = res.info
    assert relative_error(info["learned_psf"], obs.psf) < 0.5 * relative_error(info["initial_psf"], obs.psf)
    assert abs(info["learned_psf"].sum() - 1) < 1e-5 and info["learned_psf"].min() >= 0
    # P is the estimator's (blind mode) and stays fixed; the estimator's PSF is not used
    np.testing.assert_array_equal(info["learned_srf"], info["initial_srf"])
    assert info["knowledge_source"]["srf"] == "estimated" and info["estimated_psf"] is None
    assert info["knowledge"]["psf_init"] == "uniform 4x4"  # neutral start, not the study's kernel
    np.testing.assert_allclose(info["initial_psf"], 1 / 16)
    assert info["pretrain_cached"] is False and info["pretrain_steps"] == TEST_PARAMS["pretrain_steps"]
    assert info["pretrain_loss_curve"]["l1"][-1] < info["pretrain_loss_curve"]["l1"][0]
    assert len(list(cache_dir.glob("*.pt"))) == 1
    curve = info["loss_curve"]
    assert info["iterations"] == TEST_ITERS and {"total", "lrhsi", "hrmsi", "lr"} <= set(curve)
    assert curve["total"][-1] < 0.5 * curve["total"][0]


def test_pretraining_cache_hits_and_misses(scene, cache_dir):
    X, wl, obs = scene
    m = create_method("ual", "small", **TINY)
    ctx = ctx_for(obs, wl, "oracle", 5)
    a = run_method(m, obs.lr, obs.msi, ctx)
    assert a.info["pretrain_cached"] is False and len(list(cache_dir.glob("*.pt"))) == 1
    b = run_method(m, obs.lr, obs.msi, ctx)
    assert b.info["pretrain_cached"] is True and b.info["pretrain_key"] == a.info["pretrain_key"]
    assert b.info["pretrain_seconds"] == a.info["pretrain_seconds"]  # the time of the run that trained it
    np.testing.assert_array_equal(a.hr, b.hr)
    # a fresh pre-training (cache off) gives the very weights that were cached
    fresh = run_method(create_method("ual", "small", cache=False, **TINY), obs.lr, obs.msi, ctx)
    assert fresh.info["pretrain_cache_path"] is None
    np.testing.assert_array_equal(fresh.hr, a.hr)
    # the pre-training does not depend on the image being fused: another scene hits the same entry
    X2, _ = toy_scene(seed=7)
    obs2 = Degradation(4, "gauss_sigma0.5", "landsat8_bgr").apply(X2, wl)
    c = run_method(m, obs2.lr, obs2.msi, ctx_for(obs2, wl, "oracle", 5))
    assert c.info["pretrain_cached"] is True and c.info["pretrain_key"] == a.info["pretrain_key"]
    # a different SRF misses
    srf2 = np.roll(obs.srf, 1, axis=1)
    ctx2 = Context(scale=4, mode="oracle", psf=obs.psf, srf=srf2, wavelengths=wl, iterations=5)
    d = run_method(m, obs.lr, obs.msi, ctx2)
    assert d.info["pretrain_cached"] is False and d.info["pretrain_key"] != a.info["pretrain_key"]
    # a different scale misses
    obs8 = Degradation(8, "gauss_sigma0.5", "landsat8_bgr").apply(X, wl)
    ctx8 = Context.from_truth(scale=8, mode="oracle", psf=obs8.psf, srf=obs8.srf, wavelengths=wl, iterations=5)
    e = run_method(m, obs8.lr, obs8.msi, ctx8)
    assert e.info["pretrain_cached"] is False
    assert len({a.info["pretrain_key"], d.info["pretrain_key"], e.info["pretrain_key"]}) == 3
    assert len(list(cache_dir.glob("*.pt"))) == 3 and len(list(cache_dir.glob("*.json"))) == 3
    # a corrupted weights file is not trusted: it is trained again
    pt = cache_dir / f"{a.info['pretrain_key']}.pt"
    pt.write_bytes(pt.read_bytes()[:-8] + b"\0" * 8)
    f = run_method(m, obs.lr, obs.msi, ctx)
    assert f.info["pretrain_cached"] is False
    np.testing.assert_array_equal(f.hr, a.hr)


def test_same_seed_same_output(scene):
    X, wl, obs = scene
    m = create_method("ual", "small", **TINY)

    def ctx(seed):  # estimated mode with P and a PSF start given: the PSF is learned, no estimator call
        return Context(scale=4, mode="estimated", psf=np.full((4, 4), 1 / 16), srf=obs.srf, wavelengths=wl,
                       iterations=10, seed=seed)

    a = run_method(m, obs.lr, obs.msi, ctx(3))
    b = run_method(m, obs.lr, obs.msi, ctx(3))
    c = run_method(m, obs.lr, obs.msi, ctx(4))
    np.testing.assert_array_equal(a.hr, b.hr)
    np.testing.assert_array_equal(a.info["learned_psf"], b.info["learned_psf"])
    assert not np.array_equal(a.hr, c.hr)
    assert c.info["pretrain_cached"] is True  # ctx.seed seeds the adaptation, not the pre-training
    d = run_method(create_method("ual", "small", pretrain_seed=1, **TINY), obs.lr, obs.msi, ctx(3))
    assert d.info["pretrain_cached"] is False and d.info["pretrain_scene_seeds"] != a.info["pretrain_scene_seeds"]


def test_oracle_freezes_true_psf_and_estimated_starts_from_estimate(scene):
    X, wl, obs = scene
    m = create_method("ual", "small", **TINY)
    info = run_method(m, obs.lr, obs.msi, ctx_for(obs, wl, "oracle", 5)).info
    np.testing.assert_allclose(info["learned_psf"], obs.psf, atol=1e-6)
    np.testing.assert_array_equal(info["learned_srf"], obs.srf)
    assert info["knowledge"]["psf_init"] == "true (frozen)"
    guess_psf = np.full((4, 4), 1 / 16)
    ctx = Context(scale=4, mode="estimated", psf=guess_psf, srf=obs.srf, wavelengths=wl, iterations=5)
    info = run_method(m, obs.lr, obs.msi, ctx).info
    np.testing.assert_allclose(info["initial_psf"], guess_psf, atol=1e-7)
    assert not np.allclose(info["learned_psf"], guess_psf)
    assert info["knowledge"]["psf_init"] == "estimate"
    np.testing.assert_array_equal(info["learned_srf"], obs.srf)


def test_modes_without_an_srf_fail_loudly_when_no_estimator(scene, monkeypatch):
    """UAL needs P: with no estimator registered, srf_support and blind are an error, not a silent
    "not applicable"."""
    X, wl, obs = scene
    m = create_method("ual", "small", **TINY)  # loads the providers first
    monkeypatch.setattr(method_registry, "_ESTIMATOR", {})
    for mode in ("srf_support", "blind"):
        with pytest.raises(method_registry.EstimatorMissing, match="no degradation estimator"):
            run_method(m, obs.lr, obs.msi, ctx_for(obs, wl, mode, 5))
    # with P in the context (oracle) it still runs
    assert run_method(m, obs.lr, obs.msi, ctx_for(obs, wl, "oracle", 2)).hr.shape == X.shape


def test_nan_guard(scene):
    X, wl, obs = scene
    lr = obs.lr.copy()
    lr[0, 0, 0] = np.nan  # bypasses run_method's input check on purpose
    m = create_method("ual", "small", **TINY)
    with pytest.raises(MethodError, match="non-finite loss at iteration 0"):
        m.fuse(lr, obs.msi, ctx_for(obs, wl, "oracle", 10))


def _scene_folder(root, names_seeds, size=32):
    root.mkdir()
    for name, seed in names_seeds:
        X, _ = toy_scene(size, 31, seed=seed)
        np.save(root / f"{name}.npy", X * 0.8)  # load_scene divides by the maximum again
    return root


def test_pretraining_on_a_folder_of_scenes_excludes_the_scene_under_test(scene, tmp_path, cache_dir):
    X, wl, obs = scene
    folder = _scene_folder(tmp_path / "myscenes", [("alpha", 11), ("beta", 12), ("toyscene", 13)])
    m = create_method("ual", "small", pretrain_data=str(folder), **TINY)
    assert m.label_tag.startswith("myscenes-prior-") and len(m.label_tag) == len("myscenes-prior-") + 8
    assert m.applied_deviations[0].startswith("fusion module pre-trained on the scenes of the user's folder 'myscenes'")
    assert create_method("ual", "small", **TINY).label_tag == "synthetic-prior"

    def ctx(name):
        return Context(scale=4, mode="oracle", psf=obs.psf, srf=obs.srf, wavelengths=wl, iterations=3, scene=name)

    a = run_method(m, obs.lr, obs.msi, ctx("toyscene"))
    prior = a.info["prior"]
    assert prior["source"] == "folder" and prior["folder"] == str(folder.resolve())
    assert prior["scenes"] == ["alpha", "beta"] and prior["excluded"] == ["toyscene"] and prior["resampled"] == []
    assert prior["folder_sha256"].startswith(m.label_tag.rsplit("-", 1)[1])
    assert a.info["pretrain_scene_seeds"] == [] and "the scenes of" in a.info["notes"][0]
    # another scene under test trains on a different set: another cache entry; the same one hits
    b = run_method(m, obs.lr, obs.msi, ctx("alpha"))
    assert b.info["prior"]["scenes"] == ["beta", "toyscene"] and b.info["pretrain_key"] != a.info["pretrain_key"]
    c = run_method(m, obs.lr, obs.msi, ctx("toyscene"))
    assert c.info["pretrain_cached"] is True and c.info["pretrain_key"] == a.info["pretrain_key"]
    np.testing.assert_array_equal(c.hr, a.hr)
    # the synthetic prior is a different model
    syn = run_method(create_method("ual", "small", **TINY), obs.lr, obs.msi, ctx("toyscene"))
    assert syn.info["prior"] == {"source": "synthetic"} and syn.info["pretrain_key"] != a.info["pretrain_key"]
    assert not np.array_equal(syn.hr, a.hr)
    # the key and the tag follow the folder's contents, not its path
    np.save(folder / "beta.npy", toy_scene(32, 31, seed=99)[0])
    m2 = create_method("ual", "small", pretrain_data=str(folder), **TINY)
    assert m2.label_tag != m.label_tag
    assert run_method(m2, obs.lr, obs.msi, ctx("toyscene")).info["pretrain_key"] != a.info["pretrain_key"]


def test_folder_prior_guards(scene, tmp_path):
    X, wl, obs = scene
    ctx = Context(scale=4, mode="oracle", psf=obs.psf, srf=obs.srf, wavelengths=wl, iterations=2, scene="only")
    with pytest.raises(InputError, match="not a folder"):
        create_method("ual", "small", pretrain_data=str(tmp_path / "missing"), **TINY).label_tag
    only = _scene_folder(tmp_path / "one", [("only", 1)])
    with pytest.raises(InputError, match="no scene besides the one being fused"):
        run_method(create_method("ual", "small", pretrain_data=str(only), **TINY), obs.lr, obs.msi, ctx)
    cropped = Context(scale=4, mode="oracle", psf=obs.psf, srf=obs.srf, wavelengths=wl, iterations=2,
                      scene="only[0:16,0:16]")  # a crop of a scene is still that scene
    with pytest.raises(InputError, match="no scene besides the one being fused"):
        run_method(create_method("ual", "small", pretrain_data=str(only), **TINY), obs.lr, obs.msi, cropped)
    tiny = _scene_folder(tmp_path / "tiny", [("a", 1)], size=32)
    with pytest.raises(InputError, match="smaller than the 48x48 patches"):
        run_method(create_method("ual", "small", pretrain_data=str(tiny), **{**TINY, "pretrain_patch": 48}),
                   obs.lr, obs.msi, ctx)
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    np.save(wrong / "a.npy", np.random.default_rng(0).random((20, 32, 32)).astype(np.float32))
    with pytest.raises(InputError, match="20 bands and no wavelengths"):
        run_method(create_method("ual", "small", pretrain_data=str(wrong), **TINY), obs.lr, obs.msi, ctx)


def test_folder_scenes_are_interpolated_to_the_target_bands():
    from hsibench.nets.ual import _fit_bands

    rng = np.random.default_rng(0)
    swl = np.linspace(400, 700, 61)
    cube = rng.random((61, 5, 4)).astype(np.float32)
    wl = np.linspace(400, 700, 31)
    out, moved = _fit_bands(cube, swl, wl, "x")
    assert moved and out.shape == (31, 5, 4)
    ref = np.apply_along_axis(lambda v: np.interp(wl, swl, v), 0, cube)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    same, moved = _fit_bands(cube[::2], swl[::2], wl, "x")
    assert not moved and same is not None and np.array_equal(same, cube[::2])
    with pytest.raises(InputError, match="covers 400-700 nm"):
        _fit_bands(cube, swl, np.linspace(400, 1000, 31), "x")


def test_study_rows_carry_the_prior(tmp_path, cache_dir):
    from hsibench.study import ResultStore, run_study, study_from_dict

    folder = _scene_folder(tmp_path / "held", [("s1", 21), ("s2", 22)])
    methods = [{"name": "ual", "preset": "small", "modes": ["oracle"], "params": TINY},
               {"name": "ual", "modes": ["oracle"], "params": {**TINY, "pretrain_data": str(folder)}}]
    st = study_from_dict({"name": "ualprior", "scenes": ["synthetic:32x31:0"], "iterations": 2, "save_outputs": "none",
                          "grid": {"scale": 4, "kernel": "gauss_sigma0.5", "sensor": "landsat8_bgr"},
                          "methods": methods})
    s = run_study(st, tmp_path / "r", progress=False)
    assert s.ok == 2, s.failures
    rows = sorted(ResultStore(tmp_path / "r").rows(), key=lambda r: r["label"])
    tag = create_method("ual", pretrain_data=str(folder)).label_tag
    assert [r["label"] for r in rows] == [f"ual[{tag}]", "ual[small,synthetic-prior]"]
    assert rows[0]["info"]["prior"]["scenes"] == ["s1", "s2"] and rows[1]["info"]["prior"] == {"source": "synthetic"}
    assert rows[0]["deviations"][0].startswith("fusion module pre-trained on the scenes of the user's folder 'held'")


@pytest.mark.slow
def test_small_preset_beats_upsample(scene):
    """The full ``small`` preset (its own pre-training and adaptation budgets) on the synthetic scene.
    Measured +3.75 dB over upsample (the fusion module alone: -4.6 dB), 142 s on one thread."""
    X, wl, obs = scene
    ctx = ctx_for(obs, wl, "blind", None)
    up = run_method(create_method("upsample"), obs.lr, obs.msi, ctx).hr
    res = run_method(create_method("ual", "small"), obs.lr, obs.msi, ctx)
    assert psnr(X, res.hr) - psnr(X, up) > 2 * MARGIN_DB
