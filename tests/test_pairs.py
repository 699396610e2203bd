"""Real pairs without ground truth: the loader, the Wald and full-resolution protocols, study rows."""
import numpy as np
import pytest

from hsibench.data import DataError
from hsibench.data.pairs import load_pair, pair_case, parse_pair_source
from hsibench.degrade import Degradation, blur_decimate, make_psf
from hsibench.study import ResultStore, run_study, study_from_dict


def test_parse_pair_source():
    assert parse_pair_source("pair:paris_hs_ms:wald") == ("paris_hs_ms", "wald")
    assert parse_pair_source("pair:/x/y.mat:full_resolution") == ("/x/y.mat", "full_resolution")
    for bad, match in (("pair:paris_hs_ms", "protocol"), ("pair:paris_hs_ms:pansharp", "unknown protocol"),
                       ("paris", "not a pair")):
        with pytest.raises(DataError, match=match):
            parse_pair_source(bad)


@pytest.fixture
def npz_pair(tmp_path):
    """A pair file with a known truth: HS = A(X) at ratio 2, MS = R X, in MATLAB (rows, cols, bands) layout."""
    from hsibench.data import synthetic_scene
    from hsibench.degrade import srf_matrix

    sc = synthetic_scene(16, 31, seed=0)
    hs = blur_decimate(sc.cube, make_psf("gauss_fwhm", 2).astype(np.float32), 2)
    ms = np.tensordot(srf_matrix("landsat8_bgr", sc.wavelengths), sc.cube, axes=(1, 0))
    path = tmp_path / "pair.npz"
    np.savez(path, HS=np.moveaxis(hs, 0, -1) * 2.0, MS=np.moveaxis(ms, 0, -1) * 2.0)
    return path, sc


def test_load_pair_from_a_file_keeps_the_radiometric_relation(npz_pair):
    path, sc = npz_pair
    pair = load_pair(str(path), hs_key="HS", ms_key="MS")
    assert pair.ratio == 2 and pair.hs.cube.shape == (31, 8, 8) and pair.ms.shape == (3, 16, 16)
    assert pair.hs.cube.max() == pytest.approx(1.0)
    peak = pair.provenance["divided_by_hs_max"]
    np.testing.assert_allclose(pair.ms * peak, np.load(path)["MS"].transpose(2, 0, 1), rtol=1e-6)
    with pytest.raises(DataError, match="hs_key and ms_key"):
        load_pair(str(path))
    with pytest.raises(DataError, match="ratio"):
        load_pair(str(path), hs_key="HS", ms_key="MS", ratio=3)


def test_paris_pairs_load(shared_data):
    hm = load_pair("paris_hs_ms")
    assert hm.ratio == 1 and hm.hs.cube.shape == (128, 72, 72) and hm.ms.shape == (9, 72, 72)
    hp = load_pair("paris_hs_pan")
    assert hp.ratio == 3 and hp.hs.cube.shape == (128, 72, 58) and hp.ms.shape == (1, 216, 174)
    assert hp.hs.wavelengths is not None and 400 < hp.hs.wavelengths.min() < hp.hs.wavelengths.max() < 2400


def test_wald_and_full_resolution_cases(shared_data):
    deg = Degradation(scale=3)
    ref, obs = pair_case("pair:paris_hs_pan:wald", deg)
    assert ref.cube.shape == (128, 72, 57) and obs.lr.shape == (128, 24, 19) and obs.msi.shape == (1, 72, 57)
    k = make_psf("gauss_fwhm", 3).astype(np.float32)
    np.testing.assert_allclose(obs.lr, blur_decimate(ref.cube, k, 3), rtol=1e-6)
    pan = load_pair("paris_hs_pan").ms[:, :216, :171]
    np.testing.assert_allclose(obs.msi, blur_decimate(pan, k, 3), rtol=1e-6)
    assert obs.psf is None and obs.srf is None and ref.protocol == "wald"
    # HySure's demo protocol on the one-grid pair: the real MS image untouched
    ref, obs = pair_case("pair:paris_hs_ms:wald", deg)
    np.testing.assert_array_equal(obs.msi, load_pair("paris_hs_ms").ms)
    ref, obs = pair_case("pair:paris_hs_pan:full_resolution", deg)
    assert ref.protocol == "full_resolution" and obs.lr.shape == (128, 72, 58) and obs.msi.shape == (1, 216, 174)
    with pytest.raises(DataError, match="own ratio 3"):
        pair_case("pair:paris_hs_pan:full_resolution", Degradation(scale=2))
    with pytest.raises(DataError, match="mismatch"):
        pair_case("pair:paris_hs_pan:wald", Degradation(scale=3, misregistration=(0.5, 0)))


def test_a_study_gives_rows_for_both_protocols(shared_data, tmp_path):
    st = study_from_dict({
        "name": "paris_smoke", "scenes": ["pair:paris_hs_ms:wald", "pair:paris_hs_pan:full_resolution"],
        "grid": {"scale": 3}, "methods": [{"name": "gsa", "modes": ["blind", "oracle"]}],
    })
    summary = run_study(st, tmp_path / "res", progress=False)
    assert (summary.ok, summary.not_applicable, summary.failed) == (2, 2, 0)
    rows = {(r["scene"], r["mode"]): r for r in ResultStore(tmp_path / "res").rows()}
    wald = rows[("pair:paris_hs_ms:wald", "blind")]
    assert wald["metrics"]["psnr"] > 20 and "qnr" not in wald["metrics"]
    full = rows[("pair:paris_hs_pan:full_resolution", "blind")]
    m = full["metrics"]
    assert set(m) == {"d_lambda", "d_s", "qnr"} and 0 < m["qnr"] <= 1
    assert m["qnr"] == pytest.approx((1 - m["d_lambda"]) * (1 - m["d_s"]))
    assert full["metric_preset"] == "noref" and "psf_error" not in full
    assert rows[("pair:paris_hs_pan:full_resolution", "oracle")]["status"] == "not_applicable"


def test_pair_cases_and_simulation_draw_the_same_noise(npz_pair, monkeypatch):
    """One noise step: a pair case and a simulated case with the same key, degradation and seed draw the
    same standard normal field (each scaled to its own image's power)."""
    from hsibench.data import pairs
    from hsibench.degrade import add_observation_noise, noise_sigma, simulate

    path, sc = npz_pair
    real_load = pairs.load_pair
    monkeypatch.setattr(pairs, "load_pair", lambda name: real_load(str(path), hs_key="HS", ms_key="MS"))
    noisy, clean = Degradation(scale=2, snr_hs=30, snr_ms=25), Degradation(scale=2)
    ref, obs = pair_case("pair:mine:wald", noisy, seed=3)
    _, obs0 = pair_case("pair:mine:wald", clean, seed=3)
    key = ref.name
    cube = sc.cube[:, ::2, ::2]  # same LR/MS shapes as the pair: (31, 4, 4) and (3, 8, 8)
    sim, sim0 = simulate(cube, sc.wavelengths, noisy, seed=3, key=key), simulate(cube, sc.wavelengths, clean, seed=3, key=key)
    assert obs.lr.shape == sim.lr.shape and obs.msi.shape == sim.msi.shape
    # both paths are the public noise step applied to their noiseless images, bit for bit
    for o, o0 in ((obs, obs0), (sim, sim0)):
        lr, msi = add_observation_noise(o0.lr, o0.msi, noisy, seed=3, key=key)
        np.testing.assert_array_equal(o.lr, lr)
        np.testing.assert_array_equal(o.msi, msi)

    def field(a, a0, snr):
        return (a.astype(np.float64) - a0) / noise_sigma(a0, snr)

    for img, snr in (("lr", 30), ("msi", 25)):
        z_pair = field(getattr(obs, img), getattr(obs0, img), snr)
        z_sim = field(getattr(sim, img), getattr(sim0, img), snr)
        assert 0.5 < z_pair.std() < 1.5  # a unit normal field, not zero
        np.testing.assert_allclose(z_pair, z_sim, atol=1e-4)
    # another seed draws another field
    _, other = pair_case("pair:mine:wald", noisy, seed=4)
    assert np.corrcoef(field(other.lr, obs0.lr, 30).ravel(), field(obs.lr, obs0.lr, 30).ravel())[0, 1] < 0.5
