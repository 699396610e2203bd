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
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import CONVENTIONS_VERSION, __version__
from ..degrade.degradation import Observation, simulate
from ..degrade.psf import psf_error
from ..degrade.srf import srf_error
from ..methods.base import Context, NotApplicable
from ..methods.registry import get_method
from .config import Job, Study
from .executors import WorkerLost, make_executor
from .store import ResultStore, code_id_of

__all__ = ["run_study", "execute_job", "compute_job", "RunSummary", "versions", "code_version", "case_id", "load_case",
           "job_resources"]


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


#: Source that only presents numbers (tables, plots, the command line) and so never makes a row stale.
_PRESENTATION = ("report", "cli.py", "bench.py", "__main__.py")


def _source_roots() -> list[tuple[str, Path]]:
    import importlib.util

    roots = []
    for name in ("hsibench", "hsibench.kernels", "hsibench.baselines"):
        spec = importlib.util.find_spec(name)
        for loc in (spec.submodule_search_locations or []) if spec else []:
            roots.append((name, Path(loc)))
    return roots


def _git_commit(folder: Path) -> str | None:
    """The commit of the checkout holding ``folder`` (``None`` outside a git checkout or without git)."""
    import subprocess

    if not any((p / ".git").exists() for p in (folder, *folder.parents)):
        return None
    try:
        out = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


@functools.lru_cache(maxsize=1)
def code_version() -> dict[str, Any]:
    """The version of the code that computes the numbers (computed once per process).

    Returns
    -------
    dict
        ``hsibench`` (package version), ``source_sha256`` (SHA-256 over the path and content of every
        installed ``.py`` file of hsibench, hsibench.kernels and hsibench.baselines, except the
        presentation-only report package and command line), ``git_commit`` (``None`` outside a git
        checkout) and ``code_id`` (``<version>+<first 12 hex of the source hash>``: what
        ``report`` compares and ``run --rerun-stale`` recomputes on).

    Example
    -------
    >>> cv = code_version()
    >>> cv["code_id"].startswith(cv["hsibench"] + "+")
    True
    """
    h = hashlib.sha256()
    roots = _source_roots()
    for name, root in roots:
        for f in sorted(root.rglob("*.py")):
            rel = f.relative_to(root)
            if "__pycache__" in rel.parts or (name == "hsibench" and rel.parts[0] in _PRESENTATION):
                continue
            h.update(f"{name}/{rel.as_posix()}\0".encode())
            h.update(f.read_bytes())
            h.update(b"\0")
    sha = h.hexdigest()
    return {"hsibench": __version__, "source_sha256": sha, "git_commit": _git_commit(roots[0][1]) if roots else None,
            "code_id": f"{__version__}+{sha[:12]}"}


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):  # not Linux: the lifetime high-water mark is the best there is
        import resource

        scale = 2**20 if sys.platform == "darwin" else 2**10
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def _reset_hwm() -> bool:
    """Reset the kernel's peak-RSS mark of this process to its current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _hwm_mb() -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return None


class _PeakMem:
    """Peak resident memory of this process during a block, and its growth over the block's start.

    On Linux the kernel's own high-water mark is reset at the start (``/proc/self/clear_refs``) and
    read at the end, so short spikes count; elsewhere RSS is sampled every 20 ms. ``growth_mb`` is
    the job's own peak (what it allocated on top of what the worker already held); ``peak_mb`` is
    the whole process's peak resident size. Jobs that share a process concurrently (a Dask worker
    with several threads) see each other's memory.
    """

    def __init__(self):
        self.start_mb = self.peak_mb = 0.0
        self._stop = threading.Event()
        self._hwm = False

    def _loop(self):
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, _rss_mb())
            self._stop.wait(0.02)

    def __enter__(self):
        self._hwm = _reset_hwm() and _hwm_mb() is not None
        self.start_mb = self.peak_mb = _rss_mb()
        self._t = threading.Thread(target=self._loop, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak_mb = max(self.peak_mb, _rss_mb(), (_hwm_mb() or 0.0) if self._hwm else 0.0)

    @property
    def growth_mb(self) -> float:
        return max(0.0, self.peak_mb - self.start_mb)


def case_id(job: Job) -> str:
    return hashlib.sha1(repr(job.case_key).encode()).hexdigest()[:16]


def _options_key(options: dict) -> tuple:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in options.items()))


@functools.lru_cache(maxsize=4)
def _scene(source: str, options_key: tuple):
    """Load a scene with the study's ``scene_options``; the option ``crop = N`` keeps the central N×N
    window (``crop = [r0, r1, c0, c1]`` an explicit one), as :func:`hsibench.data.load_scene` does."""
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

    return _case(job.scene, _options_key(job.scene_options), json.dumps(job.degradation.to_dict(), sort_keys=True), job.seed)


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
        "code_version": {k: v for k, v in code_version().items() if k != "code_id"},
        "code_id": code_version()["code_id"],
        "conventions_version": CONVENTIONS_VERSION,
        "started_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "worker": {"host": platform.node(), "pid": os.getpid()},
    }


#: What a result row keeps of a method's info (a ``stage1_`` prefix marks a net's first stage):
#: the training trace and timing, so a short run can project a full budget's wall time.
_KEPT_INFO = ("loss_curve", "iterations", "stopped", "srf_source", "notes", "train_seconds", "seconds_per_iteration",
              "prior", "knowledge")


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
            err = psf_error(est, truth) if kind == "psf" else srf_error(est, truth)
            if f"{kind}_error" in out:
                out[f"estimator_{kind}_error"] = out[f"{kind}_error"]
            out[f"{kind}_error"] = err
            out[f"{kind}_source"] = key.split("_")[0]
    return out


def compute_job(job: Job) -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]]]:
    """Run one job and return its result row and the arrays to save; never raises for a method failure.

    Nothing is written: the caller (the run's single writer) stores the row and arrays.

    Parameters
    ----------
    job : Job
        The job.

    Returns
    -------
    row : dict
        The complete result row (status ``ok``, ``failed`` or ``not_applicable``).
    arrays : dict
        ``{name: {array name: float16 array}}`` for :meth:`ResultStore.save_arrays` (empty unless the
        job saves its output).

    Example
    -------
    >>> from hsibench.study import study_from_dict
    >>> st = study_from_dict({"scenes": ["synthetic:16x8:0"], "grid": {"scale": 2}, "methods": ["upsample"]})
    >>> row, arrays = compute_job(st.jobs()[0])
    >>> row["status"], sorted(arrays)[0].startswith("case_")
    ('ok', True)
    """
    from ..metrics import compute_metrics

    arrays: dict[str, dict[str, np.ndarray]] = {}
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
        row["deviations"] = method.applied_deviations
        tag = method.label_tag
        if tag and not job.method.label:  # e.g. where a learned prior came from: ual[synthetic-prior]
            inner = tag if job.method.preset == "default" else f"{job.method.preset},{tag}"
            row["label"] = f"{job.method.name}[{inner}]"
        ctx = Context.from_truth(
            scale=obs.scale, mode=job.mode, psf=obs.psf, srf=obs.srf, coverage=obs.coverage,
            wavelengths=scene.wavelengths, boundary=job.degradation.boundary, device=job.device, seed=job.seed,
            iterations=job.iterations, scene=scene.name,
        )
        import torch

        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        with _PeakMem() as mem:
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
            peak_mem_mb=round(mem.growth_mb, 1),
            process_rss_mb=round(mem.peak_mb, 1),
            peak_gpu_mb=round(torch.cuda.max_memory_allocated() / 2**20, 1) if torch.cuda.is_available() else None,
            knowledge_source=result.info.get("knowledge_source", {}),
            deviations=list(result.info.get("deviations", row["deviations"])),
            info={k: v for k, v in result.info.items() if k.removeprefix("stage1_") in _KEPT_INFO},
            **_degradation_errors(result.info, obs),
        )
        if job.save_output and getattr(scene, "protocol", None) != "full_resolution":  # no reference to show
            cid = case_id(job)
            half = lambda a: np.asarray(a, dtype=np.float16)  # noqa: E731 - what the store keeps
            arrays[f"case_{cid}"] = {"gt": half(scene.cube), "lr": half(obs.lr), "msi": half(obs.msi)}
            arrays[f"out_{job.job_id}"] = {"hr": half(hr)}
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
    return row, arrays


def _short(row: dict) -> dict[str, Any]:
    return {k: row.get(k) for k in ("job_id", "status", "label", "mode", "runtime_s")} | {
        "psnr": (row.get("metrics") or {}).get("psnr"),
        "error": (row.get("error") or {}).get("message"),
    }


def _store_result(store: ResultStore, row: dict, arrays: dict[str, dict[str, np.ndarray]]) -> None:
    """Write a job's arrays, then its row (so a stored row never points at missing arrays)."""
    for name, arrs in arrays.items():
        if name.startswith("case_") and (store.arrays_dir / f"{name}.npz").is_file():
            continue  # the inputs of a case are the same for every job of the case
        store.save_arrays(name, **arrs)
    store.write(row)


def execute_job(job: Job, store_root: str | Path) -> dict[str, Any]:
    """Run one job and write its row (and saved arrays) to the store at ``store_root``.

    Parameters
    ----------
    job : Job
        The job.
    store_root : str or Path
        The results folder.

    Returns
    -------
    dict
        A short summary: ``job_id``, ``status``, ``label``, ``mode``, ``runtime_s``, ``psnr``, ``error``.

    Example
    -------
    >>> import tempfile
    >>> from hsibench.study import study_from_dict
    >>> st = study_from_dict({"scenes": ["synthetic:16x8:0"], "grid": {"scale": 2}, "methods": ["upsample"]})
    >>> execute_job(st.jobs()[0], ResultStore(tempfile.mkdtemp()).init().root)["status"]
    'ok'
    """
    row, arrays = compute_job(job)
    _store_result(ResultStore(store_root), row, arrays)
    return _short(row)


def job_resources(job: Job) -> dict[str, float]:
    """Abstract resources a job needs on a distributed worker: ``{"gpu": 1}`` for a CUDA device.

    A job may also carry its own ``resources`` mapping, which wins.

    Example
    -------
    >>> from hsibench.study import study_from_dict
    >>> job_resources(study_from_dict({"grid": {"scale": 2}, "methods": ["gsa"], "device": "cuda"}).jobs()[0])
    {'gpu': 1}
    """
    own = getattr(job, "resources", None)
    if own:
        return dict(own)
    return {"gpu": 1} if str(job.device).startswith("cuda") else {}


def _compute_one(job: Job):
    return compute_job(job)


@dataclass
class RunSummary:
    """What a run did: job counts by outcome, stale/corrupt rows found, wall time, failure lines."""

    total: int
    skipped: int
    ok: int = 0
    failed: int = 0
    not_applicable: int = 0
    lost: int = 0
    stale: int = 0
    corrupt: int = 0
    wall_s: float = 0.0
    failures: list[str] = field(default_factory=list)
    run_id: str = ""
    rerun_stale: bool = False


def run_study(study: Study, out_dir: str | Path, workers: int = 1, threads: int | None = None,
              retry_failed: bool = False, progress: bool = True, cluster: str | None = None,
              scheduler: str | None = None, rerun_stale: bool = False) -> RunSummary:
    """Execute every unfinished job of ``study`` into the store at ``out_dir``.

    This process is the store's single writer: it holds the folder's lock for the whole run and
    writes every row (atomically) as its job comes back from the executor, as
    ``<out_dir>/jobs/<job_id>.json`` (the row schema is in ``docs/studies.md``). Jobs that already
    have a row are skipped, so a killed run loses nothing that finished; a method that raises gives
    a ``failed`` row and the study goes on.

    Parameters
    ----------
    study : Study
        The study.
    out_dir : str or Path
        The results folder.
    workers, threads : int
        Local worker processes and threads per worker (workers × threads ≤ cores).
    retry_failed : bool
        Run the jobs whose stored row failed again.
    progress : bool
        Show a progress bar on stderr.
    cluster : str, optional
        ``"local:N"``: a Dask ``LocalCluster`` of N worker processes.
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:port``).
    rerun_stale : bool
        Recompute the stored rows computed by a different code version.

    Returns
    -------
    RunSummary
        Counts (``stale`` counts the stored rows of another code version that were kept, or
        recomputed with ``rerun_stale``).

    Raises
    ------
    StoreLocked
        If another run holds the folder.
    ValueError
        For oversubscribed threads or a bad cluster specification.
    ImportError
        For ``cluster``/``scheduler`` without dask.distributed (the message names the extra).

    Examples
    --------
    >>> import tempfile
    >>> from hsibench.study import study_from_dict
    >>> study = study_from_dict({"scenes": ["synthetic:32x8:0"], "grid": {"scale": [2, 4]},
    ...                          "methods": [{"name": "upsample", "modes": ["blind"]}]})
    >>> with tempfile.TemporaryDirectory() as out:
    ...     first = run_study(study, out, threads=1, progress=False)
    ...     again = run_study(study, out, threads=1, progress=False)
    >>> (first.total, first.ok), (again.skipped, again.ok)
    ((2, 2), (2, 0))
    """
    store = ResultStore(out_dir)
    executor = make_executor(workers, threads, cluster=cluster, scheduler=scheduler)
    with store.lock():
        store.init(study.source)
        store.clean_temporary()
        return _run_locked(study, store, executor, retry_failed, progress, rerun_stale)


def _run_locked(study, store, executor, retry_failed, progress, rerun_stale) -> RunSummary:
    jobs = list({j.job_id: j for j in study.jobs()}.values())
    store.write_plan(j.job_id for j in jobs)
    rows, corrupt = store.scan()
    current = code_version()["code_id"]
    stale = {i for i, r in rows.items() if code_id_of(r) != current}
    done = set(rows)
    if retry_failed:
        done -= {i for i, r in rows.items() if r.get("status") == "failed"}
    if rerun_stale:
        done -= stale
    todo = [j for j in jobs if j.job_id not in done]
    summary = RunSummary(total=len(jobs), skipped=len(jobs) - len(todo), corrupt=len(corrupt),
                         stale=len(stale & {j.job_id for j in jobs}), run_id=uuid.uuid4().hex[:12],
                         rerun_stale=rerun_stale)
    t0 = time.perf_counter()
    from tqdm.auto import tqdm

    bar = tqdm(total=len(todo), desc=study.name, unit="job", disable=not progress or not todo, file=sys.stderr,
               dynamic_ncols=True, mininterval=0.5)
    written: set[str] = set()
    try:
        for job, res in executor.run(_compute_one, todo, resources=job_resources):
            if isinstance(res, WorkerLost):
                summary.lost += 1
                summary.failures.append(f"{job.method.display()} [{job.mode}] {job.degradation.label()}: {res}")
            elif isinstance(res, BaseException):
                summary.failed += 1
                summary.failures.append(f"{job.method.display()} [{job.mode}]: {type(res).__name__}: {res}")
            elif job.job_id not in written:  # an executor that re-ran a job never makes a second row
                row, arrays = res
                row["run_id"] = summary.run_id
                _store_result(store, row, arrays)
                written.add(job.job_id)
                res = _short(row)
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
