"""`hsibench demo`: what it runs (every classical method + deep nets, one axis at a time) and where it writes."""
from importlib import resources

import pytest

from hsibench.cli import main
from hsibench.methods import method_table
from hsibench.study import load_study, study_from_dict


def _demo_study():
    with resources.as_file(resources.files("hsibench.study.presets") / "demo.toml") as p:
        return load_study(p)


def test_demo_study_is_classical_vs_deep_one_axis_at_a_time():
    st = _demo_study()
    names = {m.name for m in st.methods}
    # (names starting with "_" are test doubles other test files register)
    classical = {m["name"] for m in method_table() if m["family"] in ("classical", "floor") and not m["name"].startswith("_")}
    assert classical <= names
    deep = [m for m in st.methods if m.name not in classical]
    assert len(deep) >= 2 and all(m.params.get("iterations") for m in deep)
    base = st.degradations[0]
    assert (base.scale, base.kernel, base.snr_hs) == (4, "gauss_fwhm", None)
    assert st.degradations.count(base) == 1
    varied = {"scale": {d.scale for d in st.degradations}, "kernel": {d.kernel for d in st.degradations},
              "snr": {d.snr_hs for d in st.degradations}}
    assert all(len(v) >= 2 for v in varied.values())
    for d in st.degradations:  # never two axes off base at once
        assert sum([d.scale != 4, d.kernel != "gauss_fwhm", d.snr_hs is not None]) <= 1
    assert all(m.modes == ("blind",) for m in st.methods)


@pytest.fixture
def tiny_demo(monkeypatch):
    """The demo verb on a one-job study (the real one takes minutes)."""
    import hsibench.study

    tiny = study_from_dict({"name": "demo", "scenes": ["synthetic:16x31:0"], "grid": {"scale": 4},
                            "methods": [{"name": "upsample", "modes": ["blind"]}]})
    monkeypatch.setattr(hsibench.study, "load_study", lambda p: tiny)
    return tiny


def test_demo_writes_a_fresh_folder_and_never_an_existing_report(tiny_demo, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "hsibench-demo").mkdir()
    (tmp_path / "hsibench-demo" / "keep.txt").write_text("mine")
    assert main(["demo", "--quiet", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "hsibench-demo-2" / "report" / "report.md").is_file()
    assert (tmp_path / "hsibench-demo-2" / "results").is_dir()
    assert "hsibench-demo-2" in out
    assert sorted(p.name for p in (tmp_path / "hsibench-demo").iterdir()) == ["keep.txt"]
    assert not (tmp_path / "reports").exists()
    # --report-dir and --out choose both places; no fresh folder then
    assert main(["demo", "--quiet", "--workers", "1", "--report-dir", "rep", "--out", "res"]) == 0
    assert (tmp_path / "rep" / "report.md").is_file() and (tmp_path / "res" / "jobs").is_dir()
    assert not (tmp_path / "hsibench-demo-3").exists()


@pytest.mark.slow
def test_full_demo_runs_end_to_end_with_one_ok_row_per_job(tmp_path, monkeypatch):
    import numpy as np
    import pandas as pd

    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--quiet", "--workers", "2"]) == 0
    report = tmp_path / "hsibench-demo" / "report"
    assert (report / "report.md").is_file()
    rows = pd.read_csv(report / "results.csv")
    st = _demo_study()
    assert len(rows) == len(list(st.jobs()))
    assert set(rows["status"]) == {"ok"}
    assert set(rows["method"]) == {m.name for m in st.methods}
    assert np.isfinite(rows["psnr"]).all()
