"""Run a study: expand jobs, skip finished ones, execute, and write each result row at once."""
from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import os
import platform
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import CONVENTIONS_VERSION, __version__
from ..degrade.degradation import Observation, simulate
from ..methods.base import Context, NotApplicable
from ..methods.registry import get_method
from .config import Job, Study
from .executors import WorkerLost, make_executor
from .store import ResultStore

__all__ = ["run_study", "execute_job", "RunSummary", "versions", "case_id", "load_case"]


@functools.lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    """Versions of everything that can change a number."""
    out = {"hsibench": __version__, "conventions": CONVENTIONS_VERSION, "python": platform.python_version(),
           "platform": platform.platform(), "cpu_count": str(os.cpu_count())}
    for mod in ("numpy", "scipy", "torch", "numba", "skimage"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # pragma: no cover - optional/unavailable
            out[mod] = "n/a"
    return out


class _PeakRSS:
    """Sample this process's resident memory every 20 ms; ``peak_mb`` is the largest value seen."""

    def __init__(self):
        self.peak_mb = 0.0
        self._stop = threading.Event()

    @staticmethod
    def _rss_mb() -> float:
        try:
            with open("/proc/self/statm") as fh:
                return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
        except (OSError, ValueError):  # not Linux
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def _loop(self):
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, self._rss_mb())
            self._stop.wait(0.02)

    def __enter__(self):
        self.peak_mb = self._rss_mb()
        self._t = threading.Thread(target=self._loop, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak_mb = max(self.peak_mb, self._rss_mb())


def case_id(job: Job) -> str:
    return hashlib.sha1(repr(job.case_key).encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=4)
def _scene(source: str, options_key: tuple):
    from ..data import load_scene

    return load_scene(source, **dict(options_key))


@functools.lru_cache(maxsize=4)
def _case(source: str, options_key: tuple, deg_json: str, seed: int):
    import json

    from ..degrade.degradation import Degradation

    deg = Degradation.from_dict(json.loads(deg_json))
    if source.startswith("pair:"):  # a real pair: no ground truth, PSF and SRF unknown
        from ..data.pairs import pair_case

        return pair_case(source, deg, seed=seed)
    scene = _scene(source, options_key).crop_to_multiple(deg.scale)
    obs = simulate(scene.cube, scene.wavelengths, deg, seed=seed, key=scene.name)
    return scene, obs


def load_case(job: Job):
    """The (scene cropped to the scale, observation) pair of a job; cached per process."""
    import json

    return _case(job.scene, tuple(sorted(job.scene_options.items())), json.dumps(job.degradation.to_dict(), sort_keys=True), job.seed)


def _row_base(job: Job) -> dict[str, Any]:
    d = job.degradation
    return {
        "job_id": job.job_id,
        "study": job.study,
        "config": job.config(),
        "scene": job.scene,
        "scale": d.scale,
        "kernel": d.kernel,
        "sensor": d.sensor,
        "snr_hs": float("inf") if d.snr_hs is None else d.snr_hs,
        "snr_ms": float("inf") if d.snr_ms is None else d.snr_ms,
        "seed": job.seed,
        "method": job.method.name,
        "label": job.method.display(),
        "preset": job.method.preset,
        "mode": job.mode,
        "versions": versions(),
        "conventions_version": CONVENTIONS_VERSION,
        "started_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _kernel_error(est, true) -> float:
    """Relative Frobenius error of a kernel estimate, both centred on a common support."""
    est, true = np.asarray(est, dtype=np.float64), np.asarray(true, dtype=np.float64)
    size = (max(est.shape[0], true.shape[0]), max(est.shape[1], true.shape[1]))

    def pad(k):
        out = np.zeros(size)
        r, c = (size[0] - k.shape[0]) // 2, (size[1] - k.shape[1]) // 2
        out[r : r + k.shape[0], c : c + k.shape[1]] = k
        return out

    return float(np.linalg.norm(pad(est) - pad(true)) / np.linalg.norm(true))


#: What a result row keeps of a method's info (a ``stage1_`` prefix marks a net's first stage):
#: the training trace and timing, so a short run can project a full budget's wall time.
_KEPT_INFO = ("loss_curve", "iterations", "stopped", "srf_source", "notes", "train_seconds", "seconds_per_iteration")


def _degradation_errors(info: dict, obs: Observation) -> dict[str, float]:
    """Relative errors of the PSF/SRF a method ended with (``psf_error``/``srf_error``: the learned
    one where it learned, else the estimator's) and, when both exist, of the estimator's start
    (``estimator_psf_error``/``estimator_srf_error``)."""
    out = {}
    for kind, truth in (("psf", obs.psf), ("srf", obs.srf)):
        if truth is None:  # a real pair: nothing to score against
            continue
        for key in (f"estimated_{kind}", f"learned_{kind}"):  # learned last: it is what was used
            est = info.get(key)
            if est is None:
                continue
            est = np.asarray(est)
            if kind == "srf" and est.shape != truth.shape:
                continue
            err = _kernel_error(est, truth) if kind == "psf" else float(np.linalg.norm(est - truth) / np.linalg.norm(truth))
            if f"{kind}_error" in out:
                out[f"estimator_{kind}_error"] = out[f"{kind}_error"]
            out[f"{kind}_error"] = err
            out[f"{kind}_source"] = key.split("_")[0]
    return out


def execute_job(job: Job, store_root: str | Path) -> dict[str, Any]:
    """Run one job and write its row to the store; never raises for a method failure."""
    from ..metrics import compute_metrics

    store = ResultStore(store_root)
    row = _row_base(job)
    t0 = time.perf_counter()
    try:
        cls = get_method(job.method.name)
        row["family"] = cls.family
        row["paper"] = cls.paper
        scene, obs = load_case(job)
        row["scene_name"] = scene.name
        row["scene_meta"] = scene.to_dict_meta()
        if job.mode not in cls.modes:
            raise NotApplicable(f"{cls.name} does not support mode {job.mode!r}")
        if obs.psf is None and job.mode in ("oracle", "srf_support"):
            raise NotApplicable(f"a real pair has no known PSF/SRF: mode {job.mode!r} does not apply (use blind or estimated)")
        method = cls(preset=job.method.preset, **job.method.params)
        row["method_config"] = method.config()
        ctx = Context.from_truth(
            scale=obs.scale, mode=job.mode, psf=obs.psf, srf=obs.srf, coverage=obs.coverage,
            wavelengths=scene.wavelengths, boundary=job.degradation.boundary, device=job.device, seed=job.seed,
            iterations=job.iterations,
        )
        import torch

        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        with _PeakRSS() as mem:
            result = method(obs.lr, obs.msi, ctx)
        from ..xp import to_numpy

        hr = np.asarray(to_numpy(result.hr), dtype=np.float32)
        if getattr(scene, "protocol", None) == "full_resolution":  # no reference: Dλ, Ds, QNR
            from ..data.pairs import noref_report

            report = noref_report(hr, obs)
        else:
            report = compute_metrics(scene.cube, hr, scale=obs.scale, preset=job.metrics_preset, crop=job.crop)
        row.update(
            status="ok",
            error=None,
            metrics=report.scalars,
            per_band={k: np.asarray(v).tolist() for k, v in report.per_band.items()},
            metric_preset=report.preset,
            metric_definitions=report.definitions,
            runtime_s=result.runtime_s,
            peak_rss_mb=round(mem.peak_mb, 1),
            peak_gpu_mb=round(torch.cuda.max_memory_allocated() / 2**20, 1) if torch.cuda.is_available() else None,
            knowledge_source=result.info.get("knowledge_source", {}),
            info={k: v for k, v in result.info.items() if k.removeprefix("stage1_") in _KEPT_INFO},
            **_degradation_errors(result.info, obs),
        )
        if job.save_output and getattr(scene, "protocol", None) != "full_resolution":  # no reference to show
            cid = case_id(job)
            if store.load_arrays(f"case_{cid}") is None:
                store.save_arrays(f"case_{cid}", gt=scene.cube, lr=obs.lr, msi=obs.msi)
            store.save_arrays(f"out_{job.job_id}", hr=hr)
            row["case_id"] = cid
    except NotApplicable as exc:
        row.update(status="not_applicable", error={"type": "NotApplicable", "message": str(exc)})
    except Exception as exc:  # a failing method becomes a failure row; the study goes on
        row.update(
            status="failed",
            error={"type": type(exc).__name__, "message": str(exc), "traceback": traceback.format_exc(limit=8)[-4000:]},
        )
    row["total_s"] = time.perf_counter() - t0
    row["finished_at"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    store.write(row)
    return {k: row.get(k) for k in ("job_id", "status", "label", "mode", "runtime_s")} | {
        "psnr": (row.get("metrics") or {}).get("psnr"),
        "error": (row.get("error") or {}).get("message"),
    }


def _run_one(args):
    job, root = args
    return execute_job(job, root)


@dataclass
class RunSummary:
    total: int
    skipped: int
    ok: int = 0
    failed: int = 0
    not_applicable: int = 0
    lost: int = 0
    wall_s: float = 0.0
    failures: list[str] = field(default_factory=list)


def run_study(study: Study, out_dir: str | Path, workers: int = 1, threads: int | None = None,
              retry_failed: bool = False, progress: bool = True) -> RunSummary:
    """Execute every unfinished job of ``study`` into the store at ``out_dir``."""
    store = ResultStore(out_dir).init(study.source)
    jobs = list({j.job_id: j for j in study.jobs()}.values())
    done = store.finished_ids()
    if retry_failed:
        done -= {r["job_id"] for r in store.rows() if r.get("status") == "failed"}
    todo = [j for j in jobs if j.job_id not in done]
    summary = RunSummary(total=len(jobs), skipped=len(jobs) - len(todo))
    t0 = time.perf_counter()
    executor = make_executor(workers, threads)
    from tqdm.auto import tqdm

    bar = tqdm(total=len(todo), desc=study.name, unit="job", disable=not progress or not todo, file=sys.stderr,
               dynamic_ncols=True, mininterval=0.5)
    try:
        for (job, _), res in executor.run(_run_one, [(j, str(store.root)) for j in todo]):
            if isinstance(res, WorkerLost):
                summary.lost += 1
                summary.failures.append(f"{job.method.display()} [{job.mode}] {job.degradation.label()}: {res}")
            elif isinstance(res, Exception):
                summary.failed += 1
                summary.failures.append(f"{job.method.display()} [{job.mode}]: {type(res).__name__}: {res}")
            else:
                status = res["status"]
                setattr(summary, status, getattr(summary, status) + 1)
                if status == "failed":
                    summary.failures.append(f"{res['label']} [{res['mode']}] {job.degradation.label()}: {res['error']}")
                bar.set_postfix_str(f"{res['label']} {status}", refresh=False)
            bar.update(1)
    finally:
        bar.close()
    summary.wall_s = time.perf_counter() - t0
    return summary
