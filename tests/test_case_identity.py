"""Every grid axis is part of a case's identity: labels, case keys, saved case arrays, panels and report tables."""
import itertools

import numpy as np
import pytest

from hsibench.degrade.degradation import Degradation, simulate
from hsibench.report import load_results, overview_table, summary_tables
from hsibench.report.plots import visual_panels
from hsibench.study import ResultStore, run_study, study_from_dict
from hsibench.study.runner import case_id, load_case

GRID = {"scale": 2, "kernel": "gauss_fwhm_wide", "sensor": "landsat8_bgr", "snr": 30, "boundary": ["symmetric", "circular"],
        "noise_per_band": [False, True], "misregistration": [[0, 0], [0.5, 0]]}


def test_label_names_every_field_and_keeps_the_common_label():
    base = Degradation(4, "box", snr_ms=30)
    assert base.label() == "x4|box|landsat8_bgr|hsinf|ms30"
    variants = [base, Degradation(4, "box", snr_ms=30, boundary="circular"),
                Degradation(4, "box", snr_ms=30, noise_per_band=True),
                Degradation(4, "box", snr_ms=30, misregistration=(0.5, 0)),
                Degradation(4, "box", snr_ms=30, misregistration=(0, 0.5))]
    assert len({d.label() for d in variants}) == len(variants)
    assert variants[3].label().endswith("|misregistration=0.5,0")


def test_boundary_variants_share_the_noise_realisation():
    rng = np.random.default_rng(0)
    cube = rng.random((8, 16, 16)).astype(np.float32)
    wl = np.linspace(400, 700, 8)
    a = Degradation(2, "gauss_fwhm_wide", snr_hs=30, snr_ms=30)  # 4x4 taps: reaches past the border
    b = Degradation(2, "gauss_fwhm_wide", snr_hs=30, snr_ms=30, boundary="circular")
    clean = lambda d: simulate(cube, wl, Degradation(d.scale, d.kernel, boundary=d.boundary), key="k")  # noqa: E731
    na, nb = simulate(cube, wl, a, key="k"), simulate(cube, wl, b, key="k")
    assert not np.allclose(na.lr, nb.lr)  # the boundary changes the image ...
    # ... not the noise draw: the same standard normal field, scaled to each image's power (SNR in dB)
    za, zb = (na.lr - clean(a).lr).ravel(), (nb.lr - clean(b).lr).ravel()
    assert np.corrcoef(za, zb)[0, 1] > 0.9999
    np.testing.assert_allclose(na.msi - clean(a).msi, nb.msi - clean(b).msi, atol=1e-6)  # the HrMSI does not change


def test_grid_over_each_axis_keeps_cases_panels_and_tables_apart(tmp_path):
    st = study_from_dict({"name": "ident", "scenes": ["synthetic:32x31:0"], "grid": GRID, "save_outputs": "all",
                          "methods": [{"name": "upsample", "modes": ["blind"]}, {"name": "gsa", "modes": ["blind"]}]})
    jobs = st.jobs()
    assert len(st.degradations) == 8 and len(jobs) == 16
    assert len({j.degradation.label() for j in jobs}) == 8
    assert len({j.case_key for j in jobs}) == 8 and len({case_id(j) for j in jobs}) == 8
    run_study(st, tmp_path, progress=False)
    store = ResultStore(tmp_path)
    rows = list(store.rows())
    assert all(r["status"] == "ok" for r in rows) and len({r["case_id"] for r in rows}) == 8
    # the saved inputs of each case are that case's own degradation
    for job in jobs[::2]:
        saved = store.load_arrays(f"case_{case_id(job)}")
        _, obs = load_case(job)
        np.testing.assert_allclose(saved["lr"], obs.lr, atol=2e-3, rtol=2e-3)
        np.testing.assert_allclose(saved["msi"], obs.msi, atol=2e-3, rtol=2e-3)
    saved = {case_id(j): store.load_arrays(f"case_{case_id(j)}") for j in jobs}
    for (i, a), (k, b) in itertools.combinations(saved.items(), 2):  # any two cases differ in an input
        assert not (np.array_equal(a["lr"], b["lr"]) and np.array_equal(a["msi"], b["msi"])), (i, k)

    df = load_results(store.root)
    for axis in ("boundary", "noise_per_band", "misregistration"):
        assert df[axis].nunique() == 2
    tables = summary_tables(df, n_resamples=99)
    assert len(tables) == 8
    assert {(k["boundary"], k["noise_per_band"], k["misregistration"]) for k, _ in tables} == {
        (b, n, m) for b in ("symmetric", "circular") for n in (False, True) for m in ("0,0", "0.5,0")}
    assert all((t["n"] == 1).all() for _, t in tables)
    ov = overview_table(df, n_resamples=99).set_index("method")
    assert ov.loc["upsample", "cases"] == 8 and ov["PSNR wins"].sum() == 8
    panels = visual_panels(store, df, tmp_path / "plots")
    assert len(panels) == 8


def test_rows_without_the_new_fields_read_as_the_defaults():
    row = {"job_id": "a", "status": "ok", "label": "gsa", "mode": "blind", "scene": "s", "seed": 0, "scale": 2,
           "kernel": "box", "sensor": "landsat8_bgr", "snr_hs": "inf", "snr_ms": 30.0, "metrics": {"psnr": 30.0}}
    df = load_results([row])
    r = df.iloc[0]
    assert (r["boundary"], r["noise_per_band"], r["misregistration"]) == ("symmetric", False, "0,0")
    assert np.isinf(r["snr_hs"])
    with pytest.raises(ValueError, match="boundary"):
        Degradation(2, boundary="mirror")
