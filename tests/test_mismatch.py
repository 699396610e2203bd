"""Model mismatch: scale-relative wide/anisotropic PSFs, the fine-grid SRF sampling, one-at-a-time designs."""
import numpy as np
import pytest
from scipy import ndimage

from hsibench.degrade import Degradation, SRFError, make_psf, simulate, srf_matrix
from hsibench.degrade.psf import FWHM_TO_SIGMA
from hsibench.degrade.srf import fine_grid_msi, gaussian_curves
from hsibench.study import StudyError, study_from_dict

WL = np.arange(400.0, 701.0, 10.0)


# ------------------------------------------------------------------------------------------ PSFs
@pytest.mark.parametrize("spec", ["gauss_fwhm_x(2)", "aniso_fwhm_x(2,0.7,30)", "motion_x(3,20)", "airy_x(0.75)"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_scale_relative_kernels_are_wider_than_the_estimator_support(spec, scale):
    k = make_psf(spec, scale)
    assert k.min() >= 0 and k.sum() == pytest.approx(1.0, abs=1e-12)
    assert all((n - scale) % 2 == 0 for n in k.shape)
    assert max(k.shape) > 2 * scale  # the blind estimator fits at most a 2s × 2s kernel


def test_gauss_fwhm_x_has_the_stated_width():
    # the second moment of the (cropped, ≥ 99.5 % mass) kernel along one axis is σ² = (f·s·FWHM_TO_SIGMA)²
    s, f = 4, 2.0
    k = make_psf(f"gauss_fwhm_x({f})", s)
    yy = np.indices(k.shape)[0] - (k.shape[0] - 1) / 2
    sigma = f * s * FWHM_TO_SIGMA
    assert np.sqrt((k * yy**2).sum()) == pytest.approx(sigma, rel=0.03)


def test_aniso_fwhm_x_is_anisotropic_and_rotates():
    k0 = make_psf("aniso_fwhm_x(2,0.5,0)", 4)
    yy, xx = np.indices(k0.shape) - (np.array(k0.shape)[:, None, None] - 1) / 2
    vx, vy = (k0 * xx**2).sum(), (k0 * yy**2).sum()
    assert vx / vy == pytest.approx(16.0, rel=0.1)  # (2/0.5)² along x vs y
    k90 = make_psf("aniso_fwhm_x(2,0.5,90)", 4)
    np.testing.assert_allclose(k90, k0.T, atol=1e-12)


# -------------------------------------------------------------------------------- fine-grid SRF
def test_fine_sampling_agrees_with_the_matrix_for_spectra_linear_in_wavelength():
    rng = np.random.default_rng(0)
    a, b = rng.random((1, 6, 6)), rng.random((1, 6, 6))
    cube = a + b * (WL[:, None, None] - 400.0) / 300.0
    msi, R = fine_grid_msi(cube, WL, "landsat8_bgr")
    m0 = np.tensordot(srf_matrix("landsat8_bgr", WL), cube, axes=(1, 0))
    assert np.abs(msi - m0).max() / np.abs(m0).max() < 0.01
    # PCHIP is exact on linear spectra, so a narrow Gaussian band at a band centre gives the HS band itself
    centre = 550.0
    msi, _ = fine_grid_msi(cube, WL, gaussian_curves([centre], 0.5))
    np.testing.assert_allclose(msi[0], cube[WL == centre][0], rtol=1e-3)


def test_fine_sampling_differs_on_spectrally_sharp_cubes_and_is_not_a_matrix():
    rng = np.random.default_rng(1)
    cube = rng.random((31, 12, 12))  # spectrally rough: PCHIP's non-linearity matters
    msi, R = fine_grid_msi(cube, WL, "landsat8_bgr")
    m0 = np.tensordot(srf_matrix("landsat8_bgr", WL), cube, axes=(1, 0))
    assert np.linalg.norm(msi - m0) / np.linalg.norm(m0) > 0.01
    # the returned matrix is the best non-negative fit, which is still not exact
    fit = np.tensordot(R, cube, axes=(1, 0))
    resid = np.linalg.norm(fit - msi) / np.linalg.norm(msi)
    assert 1e-4 < resid < np.linalg.norm(m0 - msi) / np.linalg.norm(msi)
    assert R.min() >= 0 and R.shape == (3, 31)
    # it beats the band-sampled matrix and the linear-interpolation matrix on this scene
    for other in (srf_matrix("landsat8_bgr", WL),):
        assert resid < np.linalg.norm(np.tensordot(other, cube, axes=(1, 0)) - msi) / np.linalg.norm(msi)


def test_fine_sampling_errors():
    cube = np.ones((31, 4, 4))
    with pytest.raises(SRFError, match="do not match"):
        fine_grid_msi(cube, WL[:-1], "landsat8_bgr")
    with pytest.raises(SRFError, match="increasing"):
        fine_grid_msi(cube, WL[::-1], "landsat8_bgr")
    with pytest.raises(SRFError, match="no response"):
        fine_grid_msi(cube, WL, gaussian_curves([1500.0], 20.0))
    with pytest.raises(ValueError, match="srf_sampling"):
        Degradation(scale=2, srf_sampling="coarse")


def test_fine_sampling_is_part_of_the_case_identity_and_of_simulate():
    from hsibench.data import load_scene

    scene = load_scene("synthetic:16x31:0")
    d0, d1 = Degradation(scale=4), Degradation(scale=4, srf_sampling="fine")
    assert d0.label() != d1.label() and "srf_sampling=fine" in d1.label()
    assert "srf_sampling" not in d0.to_dict()  # the default keeps earlier job ids
    assert Degradation.from_dict(d1.to_dict()) == d1
    o0 = simulate(scene.cube, scene.wavelengths, d0)
    o1 = simulate(scene.cube, scene.wavelengths, d1)
    np.testing.assert_array_equal(o0.lr, o1.lr)
    ref, R = fine_grid_msi(scene.cube, scene.wavelengths, "landsat8_bgr")
    np.testing.assert_allclose(o1.msi, ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(o1.srf, R)
    assert not np.allclose(o0.msi, o1.msi, atol=1e-5)
    st = study_from_dict({"grid": {"scale": 4, "srf_sampling": ["hs_bands", "fine"]}, "methods": ["upsample"]})
    keys = {j.case_key for j in st.jobs()}
    assert len(keys) == 2


def test_misregistration_shifts_the_msi_by_a_sub_pixel_amount():
    from hsibench.data import load_scene

    scene = load_scene("synthetic:16x31:0")
    o0 = simulate(scene.cube, scene.wavelengths, Degradation(scale=2))
    o1 = simulate(scene.cube, scene.wavelengths, Degradation(scale=2, misregistration=(0.5, -0.25)))
    np.testing.assert_allclose(o1.msi, ndimage.shift(o0.msi, (0, 0.5, -0.25), order=3, mode="mirror"), atol=1e-6)


# ---------------------------------------------------------------------------- one-at-a-time design
def _oat(**over):
    d = {"grid": {"scale": [2, 4, 8], "kernel": ["gauss_fwhm", "box", "gauss_fwhm_x(2)"], "snr": ["inf", 30, 20]},
         "design": "one_at_a_time", "base": {"scale": 4, "kernel": "gauss_fwhm", "snr": "inf"},
         "methods": [{"name": "upsample", "modes": ["blind"]}, {"name": "gsa", "modes": ["blind", "oracle"]}]}
    d.update(over)
    return study_from_dict(d)


def test_one_at_a_time_has_the_base_case_once_plus_each_other_value():
    st = _oat()
    # 1 base + 2 other scales + 2 other kernels + 2 other SNRs
    assert len(st.degradations) == 7 and len(st.jobs()) == 7 * 3
    base = Degradation(scale=4, kernel="gauss_fwhm")
    assert st.degradations[0] == base and st.degradations.count(base) == 1
    assert sum(d.scale != 4 for d in st.degradations) == 2
    assert sum(d.kernel != "gauss_fwhm" for d in st.degradations) == 2
    assert {d.snr_hs for d in st.degradations} == {None, 30.0, 20.0}
    assert all(sum([d.scale != 4, d.kernel != "gauss_fwhm", d.snr_hs is not None]) <= 1 for d in st.degradations)
    # factorial stays the default
    fac = study_from_dict({k: v for k, v in {**_oat().source}.items() if k not in ("design", "base")})
    assert len(fac.degradations) == 27
    # an axis with one value adds nothing; a duplicated value is kept once
    st2 = _oat(grid={"scale": [4, 4, 2], "kernel": "gauss_fwhm", "snr": "inf"})
    assert len(st2.degradations) == 2
    # a single-valued axis needs no base value
    st3 = _oat(grid={"scale": [4, 2], "kernel": "box", "snr": "inf"}, base={"scale": 4})
    assert [d.scale for d in st3.degradations] == [4, 2] and st3.degradations[0].kernel == "box"


@pytest.mark.parametrize("over,match", [
    ({"base": None}, "needs a \\[base\\]"),
    ({"base": {"scale": 4}}, "lacks the base value"),
    ({"base": {"scale": 4, "kernel": "gauss_fwhm", "snr": "inf", "sensor": "x"}}, "not in the grid"),
    ({"base": {"scale": 3, "kernel": "gauss_fwhm", "snr": "inf"}}, "not one of its grid values"),
    ({"design": "latin"}, "design must be one of"),
])
def test_one_at_a_time_errors(over, match):
    d = {"grid": {"scale": [2, 4], "kernel": ["gauss_fwhm", "box"], "snr": "inf"}, "design": "one_at_a_time",
         "base": {"scale": 4, "kernel": "gauss_fwhm", "snr": "inf"}, "methods": ["upsample"]}
    d.update(over)
    if d.get("base") is None:
        d.pop("base")
    with pytest.raises(StudyError, match=match):
        study_from_dict(d)


def test_base_table_without_one_at_a_time_is_refused():
    with pytest.raises(StudyError, match="only goes with"):
        study_from_dict({"grid": {"scale": 2}, "base": {"scale": 2}, "methods": ["upsample"]})


# ------------------------------------------------------------------------- report: modes side by side
def _row(label, mode, psnr, **deg):
    d = {"scale": 4, "kernel": "gauss_fwhm", "sensor": "landsat8_bgr", "snr_hs": None, "snr_ms": None,
         "misregistration": [0.0, 0.0], **deg}
    return {"job_id": f"{label}{mode}{psnr}", "status": "ok", "scene": "s", "scene_name": "s", "seed": 0, "label": label,
            "method": label, "mode": mode, "family": "classical", "scale": 4, "kernel": d["kernel"],
            "sensor": d["sensor"], "snr_hs": float("inf"), "snr_ms": float("inf"), "metrics": {"psnr": psnr},
            "config": {"degradation": d}}


def test_mode_gap_table_puts_modes_side_by_side_and_keeps_variants_apart():
    from hsibench.report.tables import load_results, mode_gap_table, summary_tables

    rows = [_row("m", "oracle", 50.0), _row("m", "blind", 44.0), _row("m", "estimated", 49.0),
            _row("m", "oracle", 40.0, misregistration=[0.5, 0.5]), _row("m", "blind", 30.0, misregistration=[0.5, 0.5]),
            _row("m", "oracle", 48.0, srf_sampling="fine"), _row("m", "blind", 47.5, srf_sampling="fine")]
    df = load_results(rows)
    assert sorted(df["variant"].unique()) == ["", "shift(0.5,0.5)", "srf:fine"]
    gap = mode_gap_table(df).set_index("case")
    base = gap.loc["×4 gauss_fwhm landsat8_bgr SNR ∞/∞"]
    assert (base["oracle"], base["blind"], base["estimated"]) == (50.0, 44.0, 49.0)
    assert (base["blind − oracle"], base["estimated − oracle"]) == (-6.0, -1.0)
    assert gap.loc["×4 gauss_fwhm landsat8_bgr SNR ∞/∞ shift(0.5,0.5)", "blind − oracle"] == -10.0
    assert gap.loc["×4 gauss_fwhm landsat8_bgr SNR ∞/∞ srf:fine", "estimated"] == "–"
    # the per-degradation tables no longer merge the shifted / fine cases with the base case
    assert len(summary_tables(df)) == 3 + 2 + 2  # (case, mode) pairs
    assert mode_gap_table(df[df["mode"] == "blind"]).empty


def test_label_names_the_misregistration():
    assert Degradation(scale=2, misregistration=(0.5, -0.25)).label().endswith("|misregistration=0.5,-0.25")
    assert "shift" not in Degradation(scale=2).label()


def test_scene_table_uses_qnr_where_a_scene_has_no_reference():
    from hsibench.report.tables import load_results, scene_table

    a = _row("m", "blind", 30.0)
    b = _row("m", "blind", 32.0)
    b["scene_name"] = b["scene"] = "t"
    c = {**_row("m", "blind", 0.0), "scene_name": "pair:full", "scene": "pair:full", "metrics": {"qnr": 0.9, "d_lambda": 0.05}}
    c["job_id"] = "c"
    tab = scene_table(load_results([a, b, c])).set_index("method")
    assert tab.loc["m", "s (psnr)"] == 30.0 and tab.loc["m", "t (psnr)"] == 32.0 and tab.loc["m", "pair:full (qnr)"] == 0.9
    assert scene_table(load_results([a])).empty


def test_scene_crop_suffix():
    from hsibench.data import DataError, load_scene

    full = load_scene("synthetic:32x31:0")
    crop = load_scene("synthetic:32x31:0[4:20, 8:32]")
    np.testing.assert_array_equal(crop.cube, full.cube[:, 4:20, 8:32])
    assert crop.name.endswith("[4:20,8:32]") and crop.provenance["crop"] == {"rows": [4, 20], "cols": [8, 32]}
    with pytest.raises(DataError, match="does not fit"):
        load_scene("synthetic:32x31:0[0:40,0:8]")


def test_plots_of_a_one_at_a_time_design_hold_the_other_axes_at_base():
    from hsibench.report.plots import _along
    from hsibench.report.tables import load_results

    def r(scale, kernel, psnr):
        row = _row("m", "blind", psnr, kernel=kernel, scale=scale)
        row.update(scale=scale, kernel=kernel, job_id=f"{scale}{kernel}")
        return row

    oat = load_results([r(4, "a", 40.0), r(2, "a", 45.0), r(8, "a", 30.0), r(4, "b", 35.0)])
    sub, at_base = _along(oat, "scale")
    assert at_base and sorted(sub["scale"]) == [2, 4, 8] and set(sub["kernel"]) == {"a"}
    sub, _ = _along(oat, "kernel")
    assert sorted(sub["kernel"]) == ["a", "b"] and set(sub["scale"]) == {4}
    fac = load_results([r(4, "a", 1.0), r(2, "a", 2.0), r(4, "b", 3.0), r(2, "b", 4.0)])
    sub, at_base = _along(fac, "scale")
    assert not at_base and len(sub) == 4


def test_cli_simulate_with_fine_srf_sampling(tmp_path):
    from hsibench.cli import main

    assert main(["simulate", "synthetic:16x31:0", "--scale", "4", "--srf-sampling", "fine", "-o", str(tmp_path)]) == 0
    from hsibench.data import load_scene

    sc = load_scene("synthetic:16x31:0")
    msi, R = fine_grid_msi(sc.cube, sc.wavelengths, "landsat8_bgr")
    np.testing.assert_allclose(np.load(tmp_path / "msi.npy"), msi, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.load(tmp_path / "srf.npy"), R, rtol=1e-6)
