"""Studies on dask.distributed: same rows as the process pool, a killed worker's job rerun (never lost,
never written twice), resource checks, and a one-line error naming the extra when Dask is missing."""
import importlib
import json
import logging
import os
import signal
import sys
import threading

import pytest

from hsibench.study import ResultStore, run_study, study_from_dict

from _studyplugin import sleepy_study, wait_for, write_plugin


def _study():
    return study_from_dict({
        "name": "dask", "scenes": ["synthetic:32x31:0"], "save_outputs": "first",
        "grid": {"scale": [2, 4], "kernel": "box", "sensor": "landsat8_bgr"},
        "methods": [{"name": "gsa", "modes": ["blind"]}],
    })


def test_local_cluster_gives_the_same_rows_as_the_process_pool(tmp_path):
    pytest.importorskip("distributed")
    st = _study()
    s_dask = run_study(st, tmp_path / "dask", cluster="local:2", threads=1, progress=False)
    s_pool = run_study(st, tmp_path / "pool", workers=2, threads=1, progress=False)
    assert s_dask.ok == s_pool.ok == 2 and s_dask.lost == 0
    a = {r["job_id"]: r for r in ResultStore(tmp_path / "dask").rows()}
    b = {r["job_id"]: r for r in ResultStore(tmp_path / "pool").rows()}
    assert set(a) == set(b) == {j.job_id for j in st.jobs()}
    for i in a:
        assert a[i]["metrics"] == b[i]["metrics"] and a[i]["per_band"] == b[i]["per_band"]
        assert a[i]["code_id"] == b[i]["code_id"] and a[i]["peak_mem_mb"] >= 0
    # the saved arrays travel back to the client, which writes them
    assert sorted(p.name for p in (tmp_path / "dask" / "arrays").iterdir()) == \
        sorted(p.name for p in (tmp_path / "pool" / "arrays").iterdir())


@pytest.mark.slow
def test_killed_worker_job_is_rerun_never_lost_or_written_twice(tmp_path, monkeypatch):
    """SIGKILL the worker process running a job: the scheduler reruns the job on a live worker; every
    job gets exactly one row, written once by the client."""
    distributed = pytest.importorskip("distributed")
    from hsibench.methods import unregister

    plugin = tmp_path / "plugin"
    write_plugin(plugin)
    monkeypatch.syspath_prepend(str(plugin))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(plugin), os.environ.get("PYTHONPATH", "")]))
    importlib.import_module("hsibench_test_plugin")  # the client knows the method too
    marker = tmp_path / "started"
    from hsibench.study import load_study

    study = load_study(sleepy_study(tmp_path / "s.toml", n_scenes=4, sleep=1.5, marker=marker))
    writes = []
    original = ResultStore.write
    monkeypatch.setattr(ResultStore, "write", lambda self, row: (writes.append(row["job_id"]), original(self, row))[1])
    killed = []

    def kill_first_worker_in_a_job():
        wait_for(lambda: marker.is_dir() and any(marker.iterdir()), what="a job to start")
        pid = int(sorted(marker.iterdir())[0].name.split("-")[0])
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    env = {v: "1" for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")}
    try:
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                      preload=["hsibench_test_plugin"], env=env, silence_logs=logging.CRITICAL) as cluster:
            killer = threading.Thread(target=kill_first_worker_in_a_job, daemon=True)
            killer.start()
            summary = run_study(study, tmp_path / "res", scheduler=cluster.scheduler_address, threads=1, progress=False)
            killer.join(timeout=60)
            with distributed.Client(cluster) as client:
                from hsibench.study.executors import DaskExecutor

                with pytest.raises(ValueError, match="no worker of the cluster offers it"):
                    DaskExecutor._check_resources(client, {"gpu": 1})
    finally:
        unregister("_test_sleepy")
        sys.modules.pop("hsibench_test_plugin", None)
    assert killed, "the kill must land during a job"
    ids = {j.job_id for j in study.jobs()}
    assert summary.ok == len(ids) == 4 and summary.lost == 0 and summary.failed == 0
    assert sorted(writes) == sorted(ids)  # one write per job: the rerun never doubles a row
    starts = list(marker.iterdir())
    assert len(starts) >= len(ids) + 1  # the killed job started twice
    assert sum(int(p.name.split("-")[0]) == killed[0] for p in starts) == 1  # nothing more ran on the dead worker
    rows = list(ResultStore(tmp_path / "res").rows())
    assert sorted(r["job_id"] for r in rows) == sorted(ids) and {r["status"] for r in rows} == {"ok"}


def test_cluster_without_distributed_names_the_extra(tmp_path, monkeypatch, capsys):
    from hsibench.cli import main

    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    study = tmp_path / "s.json"
    study.write_text(json.dumps({"scenes": ["synthetic:16x8:0"], "grid": {"scale": 2}, "methods": ["upsample"]}))
    assert main(["run", str(study), "--out", str(tmp_path / "res"), "--cluster", "local:2", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "hsibench[distributed]" in err
    assert not (tmp_path / "res").exists()


@pytest.mark.parametrize("argv,match", [
    (["--cluster", "local"], "local:N"),
    (["--cluster", "local:0"], "local:N"),
    (["--cluster", "local:2", "--scheduler", "tcp://127.0.0.1:1"], "not both"),
    (["--cluster", "local:2", "--workers", "2"], "--workers"),
    (["--cluster", f"local:{os.cpu_count()}", "--threads", "2"], "exceeds"),
])
def test_bad_cluster_options_exit_2(tmp_path, capsys, argv, match):
    pytest.importorskip("distributed")
    from hsibench.cli import main

    study = tmp_path / "s.json"
    study.write_text(json.dumps({"scenes": ["synthetic:16x8:0"], "grid": {"scale": 2}, "methods": ["upsample"]}))
    assert main(["run", str(study), "--out", str(tmp_path / "res"), "--quiet", *argv]) == 2
    assert match in capsys.readouterr().err


@pytest.mark.slow
def test_jobs_that_need_a_gpu_run_only_on_workers_that_offer_one(tmp_path):
    """Two worker processes, one offering ``gpu=1``: every job of a ``device = "cuda"`` study lands on
    that worker (the rows record the worker's pid), whatever the job's outcome on this machine."""
    distributed = pytest.importorskip("distributed")
    env = {v: "1" for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")}
    workers = {
        "gpu": {"cls": distributed.Nanny, "options": {"nthreads": 1, "resources": {"gpu": 1}, "env": env}},
        "cpu": {"cls": distributed.Nanny, "options": {"nthreads": 1, "env": env}},
    }
    scheduler = {"cls": distributed.Scheduler, "options": {"dashboard_address": None}}
    st = study_from_dict({"name": "gpu", "scenes": ["synthetic:16x8:0", "synthetic:16x8:1"], "device": "cuda",
                          "grid": {"scale": [2, 4]}, "methods": [{"name": "upsample", "modes": ["blind"]}]})
    with distributed.SpecCluster(workers=workers, scheduler=scheduler, silence_logs=logging.CRITICAL) as cluster, \
            distributed.Client(cluster) as client:
        client.wait_for_workers(2)
        pids = client.run(os.getpid)
        info = client.scheduler_info(n_workers=-1)["workers"]
        gpu_pid = next(pids[a] for a, w in info.items() if (w.get("resources") or {}).get("gpu"))
        summary = run_study(st, tmp_path / "res", scheduler=cluster.scheduler_address, threads=1, progress=False)
    rows = list(ResultStore(tmp_path / "res").rows())
    assert summary.lost == 0 and len(rows) == 4
    assert {r["worker"]["pid"] for r in rows} == {gpu_pid}
