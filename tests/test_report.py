"""Report: tables (mean with bootstrap CI, grouping), overview ranks and gains, statistics sections,
plots and panels from a results store, and the HTML as a headless browser renders it."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from hsibench.report import load_results, make_report, overview_table, summary_tables
from hsibench.report.stats import bootstrap_mean_ci
from hsibench.report.tables import format_ci
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
    for path in (out / "jobs").glob("*.json"):  # rows that record deviations from the papers (gsa only)
        row = json.loads(path.read_text())
        if row["method"] == "gsa":
            row["deviations"] = ["histogram matching skipped", "no pan sharpening weight"]
            path.write_text(json.dumps(row))
    return out


@pytest.fixture(scope="module")
def report(store, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    md = make_report(store, out)
    return md


def test_tables_aggregate_over_scenes_and_seeds(store):
    df = load_results(store)
    assert len(df) == 2 * 2 * 4 * 2
    tables = summary_tables(df)
    assert len(tables) == 4  # one per degradation (and mode)
    key, t = tables[0]
    assert list(t["method"]) == ["upsample", "gsa"]  # floor first, then classical
    assert (t["n"] == 4).all()
    g = df[(df["scale"] == key["scale"]) & (df["kernel"] == key["kernel"]) & (df["label"] == "gsa")]["psnr"]
    ci = bootstrap_mean_ci(g, seed=0)
    assert ci.low < g.mean() < ci.high
    assert t.loc[t["method"] == "gsa", "psnr"].iloc[0] == format_ci(g.mean(), ci.low, ci.high, 2)


def test_overview_counts_wins_and_gains(store):
    df = load_results(store)
    ov = overview_table(df).set_index("method")
    assert ov.loc["gsa", "PSNR wins"] + ov.loc["upsample", "PSNR wins"] == 16
    assert ov.loc["upsample", "gain over upsample (dB)"] == 0
    up = df[df["label"] == "upsample"].set_index(["scene_name", "seed", "scale", "kernel"])["psnr"]
    gs = df[df["label"] == "gsa"].set_index(["scene_name", "seed", "scale", "kernel"])["psnr"]
    assert ov.loc["gsa", "gain over upsample (dB)"] == pytest.approx(round((gs - up).mean(), 2))


def test_gain_over_the_floor_is_taken_on_the_same_case_in_any_mode(store):
    df = load_results(store)
    oracle = df[df["label"] == "gsa"].assign(mode="oracle", psnr=lambda d: d["psnr"] + 0.5)
    ov = overview_table(pd.concat([df, oracle], ignore_index=True)).set_index(["method", "mode"])
    blind = ov.loc[("gsa", "blind"), "gain over upsample (dB)"]
    assert ov.loc[("gsa", "oracle"), "gain over upsample (dB)"] == pytest.approx(blind + 0.5, abs=0.011)
    assert ov.loc[("gsa", "oracle"), "PSNR wins"] == 16  # alone in its mode


def test_make_report_writes_markdown_html_plots_and_panels(report):
    out = report.parent
    text = report.read_text()
    for section in ("## Overview", "## Is A better than B?", "## Rank stability", "## Quality against runtime",
                    "## Results per degradation", "## Robustness plots", "## Metric definitions"):
        assert section in text
    assert "gsa (blind): histogram matching skipped; no pan sharpening weight" in text
    assert text.count("Deviations:") == 4  # under each of the 4 per-degradation tables
    page = (out / "report.html").read_text()
    assert page.startswith("<!doctype html>") and "class=\"dataframe sortable\"" in page and "<script>" in page
    pngs = {p.name for p in (out / "plots").glob("*.png")}
    assert {"psnr_vs_scale.png", "psnr_vs_kernel.png", "sam_vs_scale.png", "pareto_psnr_runtime.png"} <= pngs
    assert any(n.startswith("panel_") for n in pngs)
    for name in pngs:
        assert f"plots/{name}" in text and f"plots/{name}" in page
    csv = (out / "results.csv").read_text().splitlines()
    assert len(csv) == 1 + 32


def test_report_reads_only_the_store_without_importing_methods(store):
    code = ("import sys; from hsibench.report.tables import load_results, training_table, summary_tables; "
            "from hsibench.study.store import ResultStore; rows = list(ResultStore(sys.argv[1]).rows()); "
            "summary_tables(load_results(rows), n_resamples=99); training_table(rows); "
            "bad = [m for m in sys.modules if m == 'torch' or m.startswith(('hsibench.nets', 'hsibench.baselines'))"
            " or (m.startswith('hsibench.methods.') and m not in ('hsibench.methods.base', 'hsibench.methods.registry'))]; "
            "print(bad); sys.exit(1 if bad else 0)")
    res = subprocess.run([sys.executable, "-c", code, str(store)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def _browser():
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _headless(browser, *args, timeout=120):
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--allow-file-access-from-files", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def test_html_report_renders_in_a_headless_browser(report, tmp_path):
    browser = _browser()
    if browser is None:
        pytest.skip("no chromium/chrome binary installed")
    page = report.parent / "report.html"
    text = page.read_text()
    # an inline script (run after the images load) writes every image's natural size into the DOM
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace("</body>", "<script>window.addEventListener('load', function(){"
                                              "var s = Array.prototype.map.call(document.images, function(i){"
                                              "return i.naturalWidth + 'x' + i.naturalHeight; }).join(' ');"
                                              "var p = document.createElement('pre'); p.id = 'sizes'; p.textContent = s;"
                                              "document.body.appendChild(p); });</script></body>"))
    (tmp_path / "plots").symlink_to(report.parent / "plots")
    dom = _headless(browser, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    sizes = dom.stdout.split("<pre id=\"sizes\">")[1].split("</pre>")[0].split()
    n_img = text.count("<img ")
    assert len(sizes) == n_img > 5
    assert all(int(w) > 0 and int(h) > 0 for w, h in (s.split("x") for s in sizes)), sizes
    assert dom.stdout.count("<table") == text.count("<table") > 5
    shot = tmp_path / "shot.png"
    res = _headless(browser, f"--screenshot={shot}", "--window-size=1300,2000", page.as_uri())
    assert res.returncode == 0 and shot.is_file()
    import matplotlib.image as mpimg

    img = mpimg.imread(shot)
    assert img.shape[0] == 2000 and img.shape[1] == 1300
    assert img[..., :3].std() > 0.05  # not blank


def test_table_sorts_on_header_click(report, tmp_path):
    browser = _browser()
    if browser is None:
        pytest.skip("no chromium/chrome binary installed")
    page = report.parent / "report.html"
    probe = tmp_path / "sort.html"
    probe.write_text(page.read_text().replace("</body>", "<script>var t = document.querySelector('table.sortable');"
                                              "var i = Array.prototype.findIndex.call(t.tHead.rows[0].cells, function(c){"
                                              "return c.textContent === 'PSNR'; }); t.tHead.rows[0].cells[i].click();"
                                              "var v = Array.prototype.map.call(t.tBodies[0].rows, function(r){"
                                              "return r.cells[i].textContent; }).join(' ');"
                                              "var p = document.createElement('pre'); p.id = 'sorted'; p.textContent = v;"
                                              "document.body.appendChild(p);</script></body>"))
    dom = _headless(browser, "--dump-dom", probe.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    values = [float(v) for v in dom.stdout.split("<pre id=\"sorted\">")[1].split("</pre>")[0].split()]
    assert len(values) == 2 and values == sorted(values)


def test_report_on_missing_store_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        make_report(tmp_path / "nothing")


def test_training_table_projects_the_preset_budget():
    from hsibench.methods import create_method
    from hsibench.report.tables import training_table

    rows = [
        {"status": "ok", "method": "eu2adl", "label": "eu2adl[paper]", "preset": "paper", "mode": "blind", "scale": 8,
         "runtime_s": 30.0, "config": {"params": {}},
         "method_config": {"method": "eu2adl", "preset": "paper", "params": dict(create_method("eu2adl", "paper").params)},
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


def test_method_styles_are_distinct_and_family_styled():
    from hsibench.report.plots import method_styles

    fams = ["floor"] + ["classical"] * 7 + ["deep"] * 5
    df = pd.DataFrame({"label": [f"m{i}" for i in range(13)], "family": fams, "psnr": np.arange(13.0)})
    st = method_styles(df)
    assert len(st) == 13
    assert len({(tuple(s["color"]), s["marker"]) for s in st.values()}) == 13
    assert len({tuple(s["color"]) for s in st.values()}) == 13  # tab20: no colour repeats up to 20 methods
    assert st["m0"]["linestyle"] == ":" and st["m1"]["linestyle"] == "-" and st["m12"]["linestyle"] == "--"


def test_a_partial_store_is_reported_as_partial(report, tmp_path):
    """The run records its planned job ids; a report built before every planned job has a row says so
    at the top, and a finished store's report does not."""
    assert "Partial results" not in report.read_text()
    st = study_from_dict({"name": "part", "scenes": ["synthetic:16x8:0"], "seeds": [0, 1, 2],
                          "grid": {"scale": 2}, "methods": [{"name": "upsample", "modes": ["blind"]}]})
    out = tmp_path / "res"
    run_study(st, out, progress=False)
    plan = json.loads((out / "plan.json").read_text())
    assert plan["total"] == 3 and sorted(plan["job_ids"]) == sorted(j.job_id for j in st.jobs())
    (out / "jobs" / f"{plan['job_ids'][0]}.json").unlink()
    part = make_report(out, tmp_path / "part").read_text()
    assert "**Partial results: 1 of the study's 3 planned jobs are not in the store yet**" in part
