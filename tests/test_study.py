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

from _studyplugin import env_with_plugin as _env, sleepy_study, wait_for as _wait_for, write_plugin


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
    assert r["metric_definitions"]["psnr"] and r["runtime_s"] >= 0 and r["process_rss_mb"] > 0 <= r["peak_mem_mb"] <= r["process_rss_mb"]
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
    store.write({"job_id": "x", "status": "ok", "metrics": {"psnr": float("inf")}, "v": np.float32(1.5), "a": np.arange(3)})
    (row,) = store.rows()
    assert row["metrics"]["psnr"] == float("inf") and row["v"] == 1.5 and row["a"] == [0, 1, 2]
    assert jsonable({"n": float("nan")}) == {"n": "nan"}
    assert not list(tmp_path.glob("jobs/.tmp-*"))


def _results(jobs_dir: Path) -> list[Path]:
    return [p for p in jobs_dir.glob("*.json") if not p.name.startswith(".")]


def _job_ids_with_plugin(plugin_dir, study) -> set[str]:
    """The study's job ids, computed in this process: loading validates the methods against the
    registry, so the plugin's test method is registered for the call and removed afterwards."""
    import importlib.util

    from hsibench.methods import unregister

    spec = importlib.util.spec_from_file_location("_hsibench_inproc_plugin", plugin_dir / "hsibench_test_plugin.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # registers _test_sleepy
    try:
        return {j.job_id for j in load_study(study).jobs()}
    finally:
        unregister("_test_sleepy")


def test_killed_run_resumes_with_every_job_exactly_once(tmp_path):
    """SIGKILL a study half-way, re-run it: every job ends up present exactly once, none lost or doubled.

    Each job sleeps 0.4 s, so once 3 of 10 rows exist the other 7 need at least 2.8 s more: the kill
    lands half-way however fast the machine is."""
    driver = write_plugin(tmp_path / "plugin")
    study = sleepy_study(tmp_path / "kill.toml", n_scenes=5, seeds=(0, 1), sleep=0.4)
    out = tmp_path / "res"
    cmd = [sys.executable, str(driver), "run", str(study), "--out", str(out), "--quiet"]
    env = _env(tmp_path / "plugin")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    jobs_dir = out / "jobs"
    _wait_for(lambda: len(_results(jobs_dir)) >= 3 or proc.poll() is not None, what="3 rows")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = len(_results(jobs_dir))
    expected = _job_ids_with_plugin(tmp_path / "plugin", study)
    total = len(expected)
    assert total == 10 and 3 <= partial < total, (partial, proc.stderr.read())
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"{partial} already done" in done.stdout
    ids = [r["job_id"] for r in ResultStore(out).rows()]
    assert len(ids) == total == len(set(ids))
    assert expected == set(ids)
    assert not list(jobs_dir.glob(".tmp-*"))


def test_second_run_on_the_same_folder_is_refused(tmp_path):
    driver = write_plugin(tmp_path / "plugin")
    # the first run's jobs wait for a gate file, so it holds the lock for as long as the second run
    # needs to start up (seconds: loading a study imports every method), however loaded the machine
    gate, marker = tmp_path / "gate", tmp_path / "started"
    study = sleepy_study(tmp_path / "s.toml", n_scenes=4, sleep=0.0, marker=marker, gate=gate)
    out = tmp_path / "res"
    cmd = [sys.executable, str(driver), "run", str(study), "--out", str(out), "--quiet"]
    env = _env(tmp_path / "plugin")
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: (marker.is_dir() and any(marker.iterdir())) or first.poll() is not None,
                  what="the first run's first job")
        assert first.poll() is None, "the first run must still be running"
        second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        assert "in use by another hsibench run" in second.stderr and len(second.stderr.strip().splitlines()) == 1
        assert f"pid {first.pid}" in second.stderr
        gate.touch()
        assert first.wait(timeout=300) == 0
    finally:
        gate.touch()
        if first.poll() is None:
            first.kill()
    rows = list(ResultStore(out).rows())
    assert len(rows) == 4 == len({r["job_id"] for r in rows}) and len({r["run_id"] for r in rows}) == 1
    # the lock died with its holder: a third run gets the folder and finds everything done
    third = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert third.returncode == 0 and "4 already done" in third.stdout


def _children(pid: int) -> list[int]:
    import psutil

    return [c.pid for c in psutil.Process(pid).children(recursive=True) if "spawn_main" in " ".join(c.cmdline())]


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_pool_workers_die_with_a_killed_parent(tmp_path):
    """kill -9 of the run alone: its pool workers exit within seconds and compute nothing more."""
    pytest.importorskip("psutil")
    driver = write_plugin(tmp_path / "plugin")
    marker = tmp_path / "started"
    study = sleepy_study(tmp_path / "s.toml", n_scenes=8, sleep=2.0, marker=marker)
    out = tmp_path / "res"
    cmd = [sys.executable, str(driver), "run", str(study), "--out", str(out), "--workers", "2", "--threads", "1", "--quiet"]
    proc = subprocess.Popen(cmd, env=_env(tmp_path / "plugin"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: marker.is_dir() and len(list(marker.iterdir())) >= 2 or proc.poll() is not None,
                  what="both workers in a job")
        workers = _children(proc.pid)
        assert len(workers) == 2, workers
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    _wait_for(lambda: not any(_alive(w) for w in workers), timeout=5.0, what="the orphaned workers to exit")
    rows, starts = len(_results(out / "jobs")), len(list(marker.iterdir()))
    time.sleep(2.5)  # longer than a job: a surviving worker would have finished one and started another
    assert len(_results(out / "jobs")) == rows and len(list(marker.iterdir())) == starts


def test_corrupt_job_files_are_warned_recomputed_and_skipped_by_report(tmp_path):
    from hsibench.report import make_report
    from hsibench.study import StoreWarning

    st = small_study(methods=[{"name": "upsample", "modes": ["blind", "oracle"]}], grid={"scale": [2, 4], "kernel": "box",
                                                                                          "sensor": "landsat8_bgr"})
    s1 = run_study(st, tmp_path, progress=False)
    assert s1.ok == 4
    store = ResultStore(tmp_path)
    ids = sorted(store.finished_ids())
    good = store.read(ids[0])
    truncated = store.path(ids[1]).read_text()[:50]
    store.path(ids[1]).write_text(truncated)
    store.path(ids[2]).write_text("[1, 2]")
    bad = dict(good, job_id=ids[3], status="done")  # unknown status: not a finished row
    store.path(ids[3]).write_text(json.dumps(bad))
    (store.jobs_dir / ".tmp-abc.json").write_text("{ half a row")  # a killed writer's temporary file
    with pytest.warns(StoreWarning) as rec:
        assert store.finished_ids() == {ids[0]}
    named = " ".join(str(w.message) for w in rec)
    assert all(str(store.path(i)) in named for i in ids[1:]) and ".tmp-abc" not in named
    with pytest.warns(StoreWarning, match="corrupt job file"):
        md = make_report(tmp_path, tmp_path / "report")
    assert "1 jobs: 1 ok" in md.read_text()
    with pytest.warns(StoreWarning):
        s2 = run_study(st, tmp_path, progress=False)
    assert s2.corrupt == 3 and s2.skipped == 1 and s2.ok == 3
    rows = list(ResultStore(tmp_path).rows())
    assert sorted(r["job_id"] for r in rows) == ids and not list(store.jobs_dir.glob(".tmp-*"))
    assert {r["job_id"]: r["metrics"]["psnr"] for r in rows}[ids[0]] == good["metrics"]["psnr"]


def test_a_failed_report_leaves_the_old_report_untouched(tmp_path, monkeypatch):
    import hsibench.report.render as render
    from hsibench.report import make_report

    run_study(small_study(methods=[{"name": "upsample", "modes": ["blind"]}], grid={"scale": [2]}), tmp_path, progress=False)
    md = make_report(tmp_path, tmp_path / "rep")
    before = {p: p.read_bytes() for p in (tmp_path / "rep").rglob("*") if p.is_file()}

    def broken(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(render, "failure_table", broken)  # fails after the tables and plots were written
    with pytest.raises(RuntimeError, match="disk full"):
        make_report(tmp_path, tmp_path / "rep")
    after = {p: p.read_bytes() for p in (tmp_path / "rep").rglob("*") if p.is_file()}
    assert after == before and md.is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_stale_rows_are_flagged_and_rerun_stale_recomputes_them(tmp_path, capsys):
    from hsibench.atomic import write_json
    from hsibench.cli import main
    from hsibench.report import make_report
    from hsibench.study import StoreWarning
    from hsibench.study.runner import code_version

    study = tmp_path / "s.json"
    study.write_text(json.dumps({"name": "stale", "scenes": ["synthetic:16x8:0"], "grid": {"scale": [2, 4]},
                                 "methods": [{"name": "upsample", "modes": ["blind"]}]}))
    out = tmp_path / "res"
    assert main(["run", str(study), "--out", str(out), "--quiet"]) == 0
    store = ResultStore(out)
    rows = {r["job_id"]: r for r in store.rows()}
    assert all(r["code_id"] == code_version()["code_id"] and r["code_version"]["source_sha256"] for r in rows.values())
    old_id = sorted(rows)[0]
    old = dict(rows[old_id], code_id="0.0.1+0123456789ab", metrics=dict(rows[old_id]["metrics"], psnr=1.0))
    write_json(store.path(old_id), old)
    with pytest.warns(StoreWarning, match="mix 2 code versions"):
        md = make_report(out, tmp_path / "rep")
    assert "Mixed code versions" in md.read_text() and "0.0.1+0123456789ab" in md.read_text()
    capsys.readouterr()
    assert main(["run", str(study), "--out", str(out), "--quiet"]) == 0
    assert "1 stored row(s) come from another code version" in capsys.readouterr().out
    assert store.read(old_id)["metrics"]["psnr"] == 1.0  # kept without --rerun-stale
    assert main(["run", str(study), "--out", str(out), "--quiet", "--rerun-stale"]) == 0
    assert "1 already done, 1 ok" in capsys.readouterr().out
    new = store.read(old_id)
    assert new["code_id"] == code_version()["code_id"] and new["metrics"]["psnr"] == rows[old_id]["metrics"]["psnr"]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", StoreWarning)
        assert "Mixed code versions" not in make_report(out, tmp_path / "rep").read_text()


def test_code_version_hashes_the_computing_source_only(tmp_path, monkeypatch):
    import hashlib

    from hsibench.study import runner

    pkg = tmp_path / "hsibench"
    (pkg / "report").mkdir(parents=True)
    (pkg / "metrics.py").write_text("X = 1\n")
    (pkg / "report" / "render.py").write_text("Y = 1\n")
    monkeypatch.setattr(runner, "_source_roots", lambda: [("hsibench", pkg)])
    monkeypatch.setattr(runner, "_git_commit", lambda folder: None)

    def version():
        runner.code_version.cache_clear()
        return runner.code_version()

    try:
        v1 = version()
        expected = hashlib.sha256(b"hsibench/metrics.py\0X = 1\n\0").hexdigest()
        assert v1["source_sha256"] == expected and v1["code_id"].endswith("+" + expected[:12])
        (pkg / "report" / "render.py").write_text("Y = 2\n")  # presentation only: same numbers
        assert version() == v1
        (pkg / "metrics.py").write_text("X = 2\n")
        assert version()["source_sha256"] != v1["source_sha256"]
    finally:
        runner.code_version.cache_clear()


def test_a_study_with_failing_jobs_exits_1_after_writing_rows_and_report(tmp_path, capsys, registered_method):
    from hsibench.cli import main

    registered_method(_Failing)

    study = tmp_path / "s.json"
    study.write_text(json.dumps({"name": "f", "scenes": ["synthetic:16x8:0"], "grid": {"scale": [2]},
                                 "methods": [{"name": "upsample", "modes": ["blind"]}, {"name": "_test_failing", "modes": ["blind"]}]}))
    out = tmp_path / "res"
    assert main(["run", str(study), "--out", str(out), "--report", str(tmp_path / "rep"), "--quiet"]) == 1
    cap = capsys.readouterr()
    assert "1 ok, 1 failed" in cap.out and "1 job(s) failed" in cap.err
    assert {r["status"] for r in ResultStore(out).rows()} == {"ok", "failed"}
    assert "boom" in (tmp_path / "rep" / "report.md").read_text()


def test_peak_memory_is_the_jobs_own_growth():
    """A block that holds 200 MB for a moment reports about 200 MB of growth, whatever the process held before."""
    from hsibench.study.runner import _PeakMem

    ballast = np.ones(50 * 2**20 // 8)  # already resident: must not count
    with _PeakMem() as mem:
        a = np.ones(200 * 2**20 // 8)
        del a
    assert 190 < mem.growth_mb < 260 and mem.peak_mb >= mem.start_mb + mem.growth_mb - 1
    assert mem.start_mb > ballast.nbytes / 2**20


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


def test_crop_suffix_and_crop_option_are_one_crop():
    """The ``[r0:r1,c0:c1]`` suffix and ``scene_options.crop`` cut the same pixels with the same provenance
    (only the suffix renames the scene); given together they are refused, not composed."""
    from hsibench.data import DataError, load_scene
    from hsibench.study.runner import _scene

    full = load_scene("synthetic:32x8:0")
    by_suffix = load_scene("synthetic:32x8:0[4:20,0:16]")
    by_option = _scene("synthetic:32x8:0", (("crop", (4, 20, 0, 16)),))
    np.testing.assert_array_equal(by_suffix.cube, full.cube[:, 4:20, 0:16])
    np.testing.assert_array_equal(by_option.cube, by_suffix.cube)
    assert by_option.provenance == by_suffix.provenance
    assert by_option.provenance["crop"] == {"rows": [4, 20], "cols": [0, 16]}
    assert (by_suffix.name, by_option.name) == (full.name + "[4:20,0:16]", full.name)
    central = _scene("synthetic:32x8:0", (("crop", 16),))  # N: the central N×N window
    np.testing.assert_array_equal(central.cube, load_scene("synthetic:32x8:0[8:24,8:24]").cube)
    with pytest.raises(DataError, match="give one crop"):
        load_scene("synthetic:32x8:0[4:20,0:16]", crop=8)
    base = {"name": "c", "grid": {"scale": 2}, "methods": [{"name": "upsample", "modes": ["blind"]}]}
    with pytest.raises(StudyError, match=r"scenes\[1\]: .*crop suffix.*give one crop"):
        study_from_dict({**base, "scenes": ["synthetic:32x8:0", "synthetic:32x8:0[0:16,0:16]"], "scene_options": {"crop": 8}})
    with pytest.raises(StudyError, match="real pair"):
        study_from_dict({**base, "scenes": ["pair:paris_hs_ms:wald"], "scene_options": {"crop": 8}})
    with pytest.raises(StudyError, match="scene_options.crop"):
        study_from_dict({**base, "scenes": ["synthetic:32x8:0"], "scene_options": {"crop": True}})  # not a 1×1 crop


def test_crop_option_outside_the_scene_is_refused():
    """``scene_options.crop = [r0, r1, c0, c1]`` must fit the scene, as the ``[r0:r1,c0:c1]`` suffix must
    (a window past the border is an error, not a silent clip)."""
    from hsibench.data.scene import DataError
    from hsibench.study.runner import _scene

    assert _scene("synthetic:32x8:0", (("crop", (4, 20, 0, 16)),)).cube.shape == (8, 16, 16)
    with pytest.raises(DataError, match="does not fit"):
        _scene("synthetic:32x8:0", (("crop", (0, 40, 0, 16)),))
