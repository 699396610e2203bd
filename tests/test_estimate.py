"""The degradation estimator (baselines/estimate.py): recovery of the PSF and SRF, noise behaviour,
output contract, registration with the method interface, degenerate inputs, genericity."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from hsibench.baselines.estimate import default_psf_size, estimate_degradation, psf_error, srf_error
from hsibench.degrade.degradation import Degradation
from hsibench.degrade.psf import make_psf
from hsibench.degrade.spatial import blur_decimate
from hsibench.methods import Context, InputError, get_estimator
from hsibench.methods.registry import create_method
from _tolerance import roundoff_atol

SENSOR = "rgb_gauss"


def rich_scene(size=64, bands=31, p=40, seed=1, smooth=2.0):
    """Noiseless full-rank cube: 40 rough positive spectra, smooth abundances summing to one.

    (A scene of fewer endmembers than bands leaves the SRF undetermined outside the data's span.)
    """
    rng = np.random.default_rng(seed)
    wl = np.linspace(400, 700, bands)
    E = ndimage.gaussian_filter1d(0.2 + rng.random((bands, p)), 1.0, axis=0)
    f = ndimage.gaussian_filter(rng.standard_normal((p, size, size)), (0, smooth, smooth), mode="wrap")
    A = np.exp(3.0 * f / f.std())
    A /= A.sum(0, keepdims=True)
    X = np.tensordot(E, A, axes=(1, 0))
    return (X / X.max()).astype(np.float32), wl


@pytest.fixture(scope="module")
def scene():
    return rich_scene()


@pytest.mark.parametrize("kernel", ["gauss_fwhm", "gauss_fwhm_wide", "gauss_sigma0.5", "box"])
def test_noiseless_recovery(scene, kernel):
    """Noiseless, s = 4: measured PSF error ≤ 3e-4 and SRF error ≤ 3e-3 (relative Frobenius)."""
    X, wl = scene
    obs = Degradation(4, kernel, SENSOR).apply(X, wl)
    psf, srf = estimate_degradation(obs.lr, obs.msi, 4)
    assert psf_error(psf, obs.psf) < 0.01
    assert srf_error(srf, obs.srf) < 0.01
    # the estimate is in the simulator's geometry: feeding it back reproduces the LrHSI
    lr_back = blur_decimate(X.astype(np.float64), psf, 4)
    assert np.linalg.norm(lr_back - obs.lr) / np.linalg.norm(obs.lr) < 1e-3


def test_error_grows_with_noise(scene):
    """Measured (PSF / SRF error): ∞ 0.000/0.001, 40 dB 0.13/0.04, 30 dB 0.31/0.14, 20 dB 0.69/0.45."""
    X, wl = scene
    errs = []
    for snr in (None, 40, 30, 20):
        obs = Degradation(4, "gauss_fwhm", SENSOR, snr, snr).apply(X, wl, seed=0)
        psf, srf = estimate_degradation(obs.lr, obs.msi, 4)
        errs.append((psf_error(psf, obs.psf), srf_error(srf, obs.srf)))
    e = np.array(errs)
    assert np.all(np.diff(e[:, 0]) > 0) and np.all(np.diff(e[:, 1]) > 0)
    assert e[1, 0] < 0.25 and e[1, 1] < 0.1  # 40 dB
    assert np.all(e < 1.0)


def test_output_contract_and_coverage(scene):
    X, wl = scene
    obs = Degradation(3, "gauss_fwhm_wide", SENSOR, 35, 35).apply(X[:, :63, :63], wl, seed=1)
    psf, srf = estimate_degradation(obs.lr, obs.msi, 3, band_coverage=obs.coverage)
    assert psf.shape == (default_psf_size(3, obs.lr.shape[1:], 3),) * 2 and psf.shape[0] % 2 == 1
    assert np.all(psf >= 0) and abs(psf.sum() - 1) < 1e-12
    assert srf.shape == obs.srf.shape and np.all(srf >= 0)
    np.testing.assert_allclose(srf.sum(1), 1.0, atol=1e-12)
    assert np.all(srf[~obs.coverage] == 0)
    with pytest.raises(InputError, match="parity"):
        estimate_degradation(obs.lr, obs.msi, 3, psf_size=4)


def test_error_metrics():
    k = make_psf("gauss_fwhm", 4)
    assert psf_error(k, k) == 0.0
    big = np.zeros((8, 8))
    big[2:6, 2:6] = k
    assert psf_error(big, k) == pytest.approx(0.0, abs=1e-15)  # padded centred
    assert psf_error(np.full((4, 4), 1 / 16), k) == pytest.approx(np.linalg.norm(1 / 16 - k) / np.linalg.norm(k))
    with pytest.raises(ValueError, match="parity"):
        psf_error(np.ones((3, 3)) / 9, k)
    r = np.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5]])
    assert srf_error(r, r) == 0.0
    assert srf_error(2 * r, r) == pytest.approx(1.0)


def test_registered_for_every_method(scene):
    X, wl = scene
    assert get_estimator() is estimate_degradation
    obs = Degradation(4, "gauss_fwhm", SENSOR).apply(X, wl)
    res = create_method("cnmf", inner_iter=5)(obs.lr, obs.msi, Context(scale=4, mode="estimated"))
    assert res.info["knowledge_source"] == {"psf": "estimated", "srf": "estimated"}
    assert res.info["srf_source"] == "estimated" and res.info["psf_source"] == "estimated"
    assert psf_error(res.info["estimated_psf"], obs.psf) < 0.01


def test_degenerate_inputs_give_documented_fallbacks(scene):
    X, wl = scene
    obs = Degradation(4, "gauss_fwhm", SENSOR).apply(X, wl)
    lr, msi = obs.lr.copy(), obs.msi.copy()
    lr[3] = 0.0  # an all-zero HS band
    msi[1] = 0.0  # an all-zero MS band: its SRF row falls back to uniform over its coverage
    psf, srf = estimate_degradation(lr, msi, 4)
    assert np.all(np.isfinite(psf)) and np.all(np.isfinite(srf))
    np.testing.assert_allclose(srf[1], 1 / 31)
    assert abs(psf.sum() - 1) < 1e-12 and np.all(psf >= 0)
    # constant images (rank-deficient everything)
    psf, srf = estimate_degradation(np.ones((31, 8, 8), np.float32), np.ones((3, 32, 32), np.float32), 4)
    assert np.all(np.isfinite(psf)) and np.all(np.isfinite(srf)) and abs(psf.sum() - 1) < 1e-12


def test_torch_matches_numpy(scene):
    torch = pytest.importorskip("torch")
    X, wl = scene
    obs = Degradation(4, "gauss_fwhm", SENSOR, 35, 35).apply(X, wl, seed=2)
    # Compared in float64 with tolerances from the problem's measured roundoff response (see
    # tests/_tolerance.py), not a float32 tolerance tuned on one CPU.
    lr, msi = obs.lr.astype(np.float64), obs.msi.astype(np.float64)
    a = estimate_degradation(lr, msi, 4)
    tols = roundoff_atol(lambda x, y: estimate_degradation(x, y, 4), lr, msi)
    assert max(tols) < 1e-6, f"roundoff response {tols}: the comparison would be vacuous"
    b = estimate_degradation(torch.from_numpy(lr), torch.from_numpy(msi), 4)
    np.testing.assert_allclose(np.asarray(b[0]), a[0], rtol=0, atol=tols[0])
    np.testing.assert_allclose(np.asarray(b[1]), a[1], rtol=0, atol=tols[1])
