"""Study files, job expansion, the results store, executors, failure rows and resume after a kill."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from hsibench.methods import Method
from hsibench.study import ResultStore, StudyError, load_study, run_study, study_from_dict
from hsibench.study.store import jsonable


class _Failing(Method):
    """Raises inside fuse: must become a failure row, not stop the study."""

    name = "_test_failing"
    family = "classical"
    modes = ("oracle", "blind")

    def fuse(self, lr, msi, ctx):
        raise RuntimeError("boom")


def small_study(**over):
    d = {
        "name": "t",
        "scenes": ["synthetic:32x31:0"],
        "grid": {"scale": [2, 4], "kernel": "box", "sensor": "landsat8_bgr", "snr": ["inf", [30, 35]]},
        "methods": [{"name": "upsample", "modes": ["blind"]}, {"name": "gsa", "modes": ["blind", "oracle"]}],
    }
    d.update(over)
    return study_from_dict(d)


def test_grid_expansion_and_stable_ids():
    st = small_study()
    jobs = st.jobs()
    assert len(st.degradations) == 4 and len(jobs) == 4 * 3
    assert len({j.job_id for j in jobs}) == len(jobs)
    assert [j.job_id for j in small_study().jobs()] == [j.job_id for j in jobs]
    noisy = [d for d in st.degradations if d.snr_hs is not None]
    assert {(d.snr_hs, d.snr_ms) for d in noisy} == {(30.0, 35.0)}


@pytest.mark.parametrize("bad,match", [
    ({"grid": {"kernel": "box"}}, "scale"),
    ({"grid": {"scale": 2, "blur": 1}}, "unknown grid axes"),
    ({"methods": []}, "no methods"),
    ({"methods": [{"name": "gsa", "modes": ["psychic"]}]}, "knowledge modes"),
    ({"grid": {"scale": 2, "kernel": "nope"}}, "bad degradation"),
    ({"colour": 1}, "unknown top-level"),
])
def test_bad_study_files_raise(bad, match):
    with pytest.raises(StudyError, match=match):
        small_study(**bad)


def test_load_toml_yaml_json(tmp_path):
    toml = tmp_path / "s.toml"
    toml.write_text('scenes=["synthetic:32x31:0"]\n[grid]\nscale=[2]\n[[methods]]\nname="gsa"\nmodes=["blind"]\n')
    yml = tmp_path / "s.yaml"
    yml.write_text("scenes: ['synthetic:32x31:0']\ngrid: {scale: [2]}\nmethods: [{name: gsa, modes: [blind]}]\n")
    js = tmp_path / "s.json"
    js.write_text(json.dumps({"scenes": ["synthetic:32x31:0"], "grid": {"scale": [2]}, "methods": [{"name": "gsa", "modes": ["blind"]}]}))
    ids = [[j.job_id for j in load_study(p).jobs()] for p in (toml, yml, js)]
    assert ids[0] == ids[1] == ids[2]
    with pytest.raises(StudyError, match="cannot parse"):
        (tmp_path / "b.toml").write_text("scenes = [")
        load_study(tmp_path / "b.toml")


def test_run_writes_rows_skips_finished_and_records_failures(tmp_path, registered_method):
    registered_method(_Failing)
    st = small_study(methods=[{"name": "upsample", "modes": ["blind"]}, {"name": "_test_failing", "modes": ["blind"]},
                              {"name": "upsample", "preset": "default", "modes": ["oracle", "estimated"], "label": "up2"}])
    s1 = run_study(st, tmp_path, progress=False)
    assert s1.total == 4 * 4 and s1.ok == 8 + 4 and s1.failed == 4 and s1.skipped == 0
    rows = list(ResultStore(tmp_path).rows())
    assert len(rows) == s1.total
    fail = [r for r in rows if r["status"] == "failed"]
    assert all(r["error"]["message"] == "boom" and "RuntimeError" in r["error"]["type"] for r in fail)
    ok = [r for r in rows if r["status"] == "ok"]
    r = ok[0]
    assert set(r["metrics"]) >= {"rmse", "psnr", "sam", "ergas", "ssim", "uiqi", "cc", "dd"}
    assert len(r["per_band"]["psnr"]) == 31 and r["versions"]["numpy"] == np.__version__
    assert r["config"]["degradation"]["kernel"] == "box" and r["conventions_version"]
    assert r["metric_definitions"]["psnr"] and r["runtime_s"] >= 0 and r["peak_rss_mb"] > 0
    s2 = run_study(st, tmp_path, progress=False)
    assert s2.skipped == s1.total and s2.ok == 0
    s3 = run_study(st, tmp_path, retry_failed=True, progress=False)
    assert s3.failed == 4 and s3.skipped == s1.total - 4


def test_same_seed_same_numbers(tmp_path):
    st = small_study(methods=[{"name": "gsa", "modes": ["blind"]}])
    run_study(st, tmp_path / "a", progress=False)
    run_study(st, tmp_path / "b", progress=False)
    a = {r["job_id"]: r["metrics"] for r in ResultStore(tmp_path / "a").rows()}
    b = {r["job_id"]: r["metrics"] for r in ResultStore(tmp_path / "b").rows()}
    assert a == b


def test_not_applicable_is_recorded_not_failed(tmp_path, registered_method):
    registered_method(_Failing)
    st = small_study(methods=[{"name": "_test_failing", "modes": ["srf_support"]}], grid={"scale": [2]})
    s = run_study(st, tmp_path, progress=False)
    assert s.not_applicable == 1 and s.failed == 0


def test_process_pool_gives_same_rows_as_serial(tmp_path):
    st = small_study(methods=[{"name": "gsa", "modes": ["blind"]}], grid={"scale": [2, 4], "kernel": "box", "sensor": "landsat8_bgr"})
    run_study(st, tmp_path / "serial", progress=False)
    s = run_study(st, tmp_path / "pool", workers=2, threads=1, progress=False)
    assert s.ok == 2
    a = {r["job_id"]: r["metrics"]["psnr"] for r in ResultStore(tmp_path / "serial").rows()}
    b = {r["job_id"]: r["metrics"]["psnr"] for r in ResultStore(tmp_path / "pool").rows()}
    assert a == b


def test_oversubscription_is_refused():
    from hsibench.study import make_executor

    with pytest.raises(ValueError, match="exceeds"):
        make_executor(workers=os.cpu_count() or 1, threads=2)


def test_store_json_roundtrip_of_non_finite(tmp_path):
    store = ResultStore(tmp_path).init()
    store.write({"job_id": "x", "metrics": {"psnr": float("inf")}, "v": np.float32(1.5), "a": np.arange(3)})
    (row,) = store.rows()
    assert row["metrics"]["psnr"] == float("inf") and row["v"] == 1.5 and row["a"] == [0, 1, 2]
    assert jsonable({"n": float("nan")}) == {"n": "nan"}
    assert not list(tmp_path.glob("jobs/.tmp-*"))


def test_killed_run_resumes_with_every_job_exactly_once(tmp_path):
    """SIGKILL a study half-way, re-run it: every job ends up present exactly once, none lost or doubled."""
    study = tmp_path / "kill.toml"
    study.write_text(
        'name = "kill"\nscenes = ["synthetic:48x31:0", "synthetic:48x31:1"]\nseeds = [0, 1]\n'
        '[grid]\nscale = [2, 4, 8]\nkernel = ["box", "gauss_fwhm"]\nsensor = "landsat8_bgr"\n'
        '[[methods]]\nname = "gsa"\nmodes = ["blind", "oracle"]\n'
    )
    out = tmp_path / "res"
    cmd = [sys.executable, "-m", "hsibench", "run", str(study), "--out", str(out), "--quiet"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    jobs_dir = out / "jobs"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(jobs_dir.glob("*.json"))) < 5:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = len(list(jobs_dir.glob("*.json")))
    total = len(load_study(study).jobs())
    assert 5 <= partial < total, "the kill must land half-way"
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"{partial} already done" in done.stdout
    ids = [r["job_id"] for r in ResultStore(out).rows()]
    assert len(ids) == total == len(set(ids))
    assert {j.job_id for j in load_study(study).jobs()} == set(ids)
    assert not list(jobs_dir.glob(".tmp-*"))


def test_degradation_errors_score_what_the_method_ended_with():
    from types import SimpleNamespace

    from hsibench.study.runner import _degradation_errors

    psf = np.full((4, 4), 1 / 16)
    srf = np.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5]])
    obs = SimpleNamespace(psf=psf, srf=srf)
    start = {"estimated_psf": psf * 1.1, "estimated_srf": srf}
    both = _degradation_errors({**start, "learned_psf": psf * 1.5, "learned_srf": srf * 2}, obs)
    assert both["psf_error"] == pytest.approx(0.5) and both["psf_source"] == "learned"
    assert both["estimator_psf_error"] == pytest.approx(0.1)
    assert both["srf_error"] == pytest.approx(1.0) and both["estimator_srf_error"] == 0.0
    only = _degradation_errors(start, obs)
    assert only["psf_error"] == pytest.approx(0.1) and only["psf_source"] == "estimated"
    assert "estimator_psf_error" not in only
