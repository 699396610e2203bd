"""Report: tables (mean ± std, grouping), overview ranks, plots and panels from a results store."""
import numpy as np
import pytest

from hsibench.report import load_results, make_report, overview_table, summary_tables
from hsibench.study import run_study, study_from_dict


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    out = tmp_path_factory.mktemp("res")
    st = study_from_dict({
        "name": "rep", "scenes": ["synthetic:32x31:0", "synthetic:32x31:1"], "seeds": [0, 1],
        "grid": {"scale": [2, 4], "kernel": ["box", "gauss_fwhm"], "sensor": "landsat8_bgr"},
        "methods": [{"name": "upsample", "modes": ["blind"]}, {"name": "gsa", "modes": ["blind"]}],
    })
    run_study(st, out, progress=False)
    return out


def test_tables_aggregate_over_scenes_and_seeds(store):
    df = load_results(store)
    assert len(df) == 2 * 2 * 4 * 2
    tables = summary_tables(df)
    assert len(tables) == 4  # one per degradation (and mode)
    key, t = tables[0]
    assert list(t["method"]) == ["upsample", "gsa"]  # floor first, then classical
    assert (t["n"] == 4).all()
    g = df[(df["scale"] == key["scale"]) & (df["kernel"] == key["kernel"]) & (df["label"] == "gsa")]["psnr"]
    assert t.loc[t["method"] == "gsa", "psnr"].iloc[0] == f"{g.mean():.2f} ± {g.std(ddof=1):.2f}"


def test_overview_counts_wins_and_gains(store):
    df = load_results(store)
    ov = overview_table(df).set_index("method")
    assert ov.loc["gsa", "PSNR wins"] + ov.loc["upsample", "PSNR wins"] == 16
    assert ov.loc["upsample", "gain over upsample (dB)"] == 0
    up = df[df["label"] == "upsample"].set_index(["scene_name", "seed", "scale", "kernel"])["psnr"]
    gs = df[df["label"] == "gsa"].set_index(["scene_name", "seed", "scale", "kernel"])["psnr"]
    assert ov.loc["gsa", "gain over upsample (dB)"] == pytest.approx(round((gs - up).mean(), 2))


def test_make_report_writes_markdown_html_plots_and_panels(store, tmp_path):
    md = make_report(store, tmp_path)
    text = md.read_text()
    assert "## Overview" in text and "## Results per degradation" in text and "## Metric definitions" in text
    assert (tmp_path / "report.html").read_text().startswith("<!doctype html>")
    pngs = {p.name for p in (tmp_path / "plots").glob("*.png")}
    assert {"psnr_vs_scale.png", "psnr_vs_kernel.png", "sam_vs_scale.png"} <= pngs
    assert any(n.startswith("panel_") for n in pngs)
    for name in pngs:
        assert f"plots/{name}" in text
    csv = (tmp_path / "results.csv").read_text().splitlines()
    assert len(csv) == 1 + 32


def test_report_on_missing_store_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        make_report(tmp_path / "nothing")


def test_training_table_projects_the_preset_budget():
    from hsibench.methods import create_method
    from hsibench.report.tables import training_table

    rows = [
        {"status": "ok", "method": "eu2adl", "label": "eu2adl[paper]", "preset": "paper", "mode": "blind", "scale": 8,
         "runtime_s": 30.0, "config": {"params": {}},
         "info": {"iterations": 6, "seconds_per_iteration": 2.0, "stage1_iterations": 2,
                  "stage1_seconds_per_iteration": 0.01, "stopped": "budget"}},
        {"status": "ok", "method": "gsa", "label": "gsa", "mode": "blind", "scale": 8, "info": {}},
        {"status": "failed", "method": "hyconet", "label": "hyconet", "info": {"seconds_per_iteration": 1.0}},
    ]
    table = training_table(rows)
    assert len(table) == 1
    p = create_method("eu2adl", "paper").params
    want = (2.0 * p["iterations"] + 0.01 * p["stage1_iterations"]) / 3600
    assert table.loc[0, "projected full budget (h)"] == pytest.approx(want, abs=0.005)
    assert table.loc[0, "iterations run"] == 8
    assert training_table(rows[1:]).empty
