"""Executors behind one interface: run a function over jobs and yield results as they finish.

``SerialExecutor`` runs in-process; ``ProcessExecutor`` runs a local process pool whose workers are
pinned to ``threads`` threads each (torch, BLAS/OpenMP, Numba), so workers × threads never exceeds
the cores: oversubscribed torch runs slow down tenfold or more on small machines. Pool workers die
with their parent (``PR_SET_PDEATHSIG`` on Linux, and a thread that watches the parent id), so a
killed run leaves no orphan computing. ``DaskExecutor`` runs the same function on a
``dask.distributed`` cluster (a ``LocalCluster`` of processes, or an existing scheduler), pinning
each job's threads per machine and placing jobs that declare resources (``gpu=1``) on workers that
offer them. Every executor only computes: the caller writes the results.
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import re
import signal
import sys
import threading
import warnings
from collections import Counter
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator, Protocol

__all__ = ["Executor", "SerialExecutor", "ProcessExecutor", "DaskExecutor", "make_executor", "pin_threads",
           "WorkerLost", "DISTRIBUTED_HINT"]

#: How to install the optional distributed executor.
DISTRIBUTED_HINT = "pip install 'hsibench[distributed]'"

_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


class WorkerLost(RuntimeError):
    """A worker process died (killed, out of memory); its job is left unfinished for the next run."""


class Executor(Protocol):
    workers: int
    threads: int

    def run(self, fn: Callable[[Any], Any], items: Iterable[Any],
            resources: Callable[[Any], dict] | None = None) -> Iterator[tuple[Any, Any]]:
        """Yield ``(item, result_or_exception)`` pairs in completion order.

        ``resources(item)`` names what a job needs on a worker (``{"gpu": 1}``); executors without
        resource scheduling ignore it.
        """


def pin_threads(threads: int) -> None:
    """Limit this process's compute libraries to ``threads`` threads.

    Parameters
    ----------
    threads : int
        Threads for torch, OpenMP/BLAS (environment, for libraries loaded later) and Numba (for the
        calling thread).

    Example
    -------
    >>> pin_threads(1)
    >>> import os; os.environ["OMP_NUM_THREADS"]
    '1'
    """
    for var in _THREAD_ENV:
        if var == "NUMBA_NUM_THREADS" and "numba" in sys.modules:
            continue  # read once at import: changing it afterwards makes Numba's next compilation raise
        os.environ[var] = str(threads)
    try:
        import torch

        torch.set_num_threads(threads)
        if torch.get_num_interop_threads() != 1:
            try:
                torch.set_num_interop_threads(1)
            except RuntimeError:  # already started parallel work
                pass
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    try:
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    except (ImportError, ValueError):  # pragma: no cover
        pass


@contextmanager
def _thread_env(threads: int):
    old = {v: os.environ.get(v) for v in _THREAD_ENV}
    for v in _THREAD_ENV:
        os.environ[v] = str(threads)
    try:
        yield
    finally:
        for v, val in old.items():
            if val is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = val


class SerialExecutor:
    """Run jobs one after another in this process."""

    def __init__(self, threads: int | None = None):
        self.workers = 1
        self.threads = threads or os.cpu_count() or 1

    def run(self, fn, items, resources=None):
        pin_threads(self.threads)
        for item in items:
            try:
                yield item, fn(item)
            except Exception as exc:  # the job function records its own failures; this is a last resort
                yield item, exc


def _watch_parent(parent_pid: int, interval: float = 0.5) -> None:
    """Exit this worker at once when its parent is gone (the parent may have been SIGKILLed)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG: the kernel kills us with the parent
        except (OSError, AttributeError):  # pragma: no cover - no prctl: the watcher thread still works
            pass
    if os.getppid() != parent_pid:  # the parent died before the death signal was armed
        os._exit(1)

    def loop():
        while True:
            threading.Event().wait(interval)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=loop, name="hsibench-parent-watch", daemon=True).start()


def _init_pool_worker(threads: int, parent_pid: int) -> None:
    _watch_parent(parent_pid)
    pin_threads(threads)


class ProcessExecutor:
    """A local pool of ``workers`` spawned processes with ``threads`` threads each; they die with this process."""

    def __init__(self, workers: int, threads: int | None = None):
        cores = os.cpu_count() or 1
        self.workers = max(1, workers)
        self.threads = threads or max(1, cores // self.workers)

    def run(self, fn, items, resources=None):
        items = list(items)
        ctx = mp.get_context("spawn")
        with _thread_env(self.threads), cf.ProcessPoolExecutor(
            self.workers, mp_context=ctx, initializer=_init_pool_worker, initargs=(self.threads, os.getpid())
        ) as pool:
            futures = {pool.submit(fn, item): item for item in items}
            for fut in cf.as_completed(futures):
                item = futures[fut]
                try:
                    yield item, fut.result()
                except cf.process.BrokenProcessPool as exc:
                    yield item, WorkerLost(f"worker process died: {exc}")
                except Exception as exc:
                    yield item, exc


def _import_distributed():
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(f"--cluster/--scheduler need dask.distributed, an optional extra: {DISTRIBUTED_HINT}") from exc
    return distributed


def _dask_task(fn, item, threads_for: dict[str, int], default_threads: int | None):
    """Run ``fn(item)`` on a Dask worker with its threads pinned to this machine's share of cores."""
    from distributed import get_worker

    worker = get_worker()
    threads = threads_for.get(worker.address) or default_threads
    if not threads:  # a worker that joined after the run started: its own share of this machine's cores
        threads = max(1, (os.cpu_count() or 1) // max(1, worker.state.nthreads))
    pin_threads(threads)
    return fn(item)


class DaskExecutor:
    """Run jobs on a ``dask.distributed`` cluster: ``"local:N"`` (a LocalCluster of N processes) or a scheduler.

    Parameters
    ----------
    cluster : str, optional
        ``"local:N"``: start a LocalCluster of N single-threaded worker processes (one job each at a
        time) for the duration of :meth:`run`.
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:port``); its workers must be able to import
        hsibench (and any module registering custom methods: ``dask worker --preload MODULE``).
    threads : int, optional
        Threads per job. Default: per machine, its cores divided by the worker threads it hosts, so
        workers × threads ≤ cores on every machine; an explicit value that oversubscribes a
        machine is refused.
    retries : int
        Dask retries of a job whose task raised (method failures are rows, not exceptions). A job
        whose worker died is rescheduled by the scheduler (``distributed.scheduler.allowed-failures``
        times) and otherwise reported as :class:`WorkerLost`, left for the next run.
    preload : sequence of str
        Modules a LocalCluster's workers import at start (custom methods).

    Raises
    ------
    ImportError
        If dask.distributed is not installed (the message names the extra).
    ValueError
        For a malformed ``cluster``, or both/neither of ``cluster`` and ``scheduler``.
    """

    def __init__(self, cluster: str | None = None, scheduler: str | None = None, threads: int | None = None,
                 retries: int = 1, preload: tuple[str, ...] = ()):
        if (cluster is None) == (scheduler is None):
            raise ValueError("give exactly one of cluster ('local:N') and scheduler ('tcp://host:port')")
        _import_distributed()
        self.scheduler = scheduler
        self.retries = retries
        self.preload = tuple(preload)
        cores = os.cpu_count() or 1
        if cluster is not None:
            m = re.fullmatch(r"local:(\d+)", cluster.strip())
            if not m or int(m.group(1)) < 1:
                raise ValueError(f"--cluster takes local:N with N >= 1 worker processes, got {cluster!r}")
            self.workers = int(m.group(1))
            if threads is not None and self.workers * threads > cores:
                raise ValueError(f"{self.workers} workers × {threads} threads exceeds the {cores} cores of this machine")
            self.threads = threads or max(1, cores // self.workers)
        else:
            self.workers = 0  # known once connected
            self.threads = threads

    @contextmanager
    def _client(self):
        from distributed import Client, LocalCluster

        if self.scheduler is not None:
            with Client(self.scheduler, timeout="30s") as client:
                yield client
            return
        import logging

        env = {v: str(self.threads) for v in _THREAD_ENV}
        with LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True, dashboard_address=None,
                          memory_limit=0, env=env, resources=self._local_resources(), preload=list(self.preload),
                          silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
            yield client

    def _local_resources(self) -> dict[str, float] | None:
        """Local workers offer the GPU when there is one (they share it when there are more workers than GPUs)."""
        try:
            import torch

            return {"gpu": 1} if torch.cuda.is_available() else None
        except ImportError:  # pragma: no cover
            return None

    def _threads(self, client) -> tuple[dict[str, int], int | None]:
        workers = client.scheduler_info(n_workers=-1)["workers"] if _takes_n_workers(client) else client.scheduler_info()["workers"]
        cores = client.run(os.cpu_count)
        per_host = Counter()
        for info in workers.values():
            per_host[info["host"]] += info["nthreads"]
        out = {}
        for addr, info in workers.items():
            share = max(1, (cores.get(addr) or 1) // per_host[info["host"]])
            if self.threads is not None and self.threads * per_host[info["host"]] > (cores.get(addr) or 1):
                raise ValueError(f"{self.threads} threads × {per_host[info['host']]} worker threads on {info['host']} "
                                 f"exceeds its {cores.get(addr)} cores")
            out[addr] = self.threads or share
        self.workers = len(workers)
        return out, self.threads or (min(out.values()) if out else None)

    @staticmethod
    def _check_resources(client, needed: dict[str, float]) -> None:
        workers = client.scheduler_info(n_workers=-1)["workers"] if _takes_n_workers(client) else client.scheduler_info()["workers"]
        for res, amount in needed.items():
            if not any((w.get("resources") or {}).get(res, 0) >= amount for w in workers.values()):
                raise ValueError(f"jobs need {res}={amount:g} but no worker of the cluster offers it "
                                 f"(start workers with: dask worker SCHEDULER --resources {res}={amount:g})")

    def run(self, fn, items, resources=None):
        items = list(items)
        if not items:
            return
        from distributed import as_completed
        from distributed.scheduler import KilledWorker

        with self._client() as client:
            client.wait_for_workers(1, timeout=120)
            threads_for, default = self._threads(client)
            checked: set[tuple] = set()
            futures = {}
            for item in items:
                res = dict(resources(item)) if resources else {}
                key = tuple(sorted(res.items()))
                if res and key not in checked:
                    self._check_resources(client, res)
                    checked.add(key)
                fut = client.submit(_dask_task, fn, item, threads_for, default, resources=res or None,
                                    retries=self.retries, pure=False)
                futures[fut] = item
            for fut in as_completed(list(futures)):
                item = futures.pop(fut)
                try:
                    yield item, fut.result()
                except KilledWorker as exc:
                    yield item, WorkerLost(f"worker died running this job too often: {exc}")
                except Exception as exc:
                    yield item, exc
                finally:
                    fut.release()


def _takes_n_workers(client) -> bool:
    import inspect

    return "n_workers" in inspect.signature(client.scheduler_info).parameters


def make_executor(workers: int = 1, threads: int | None = None, cluster: str | None = None,
                  scheduler: str | None = None) -> Executor:
    """The executor for a run: serial, a pinned local process pool, or a Dask cluster.

    Parameters
    ----------
    workers : int
        Local worker processes (1: run in this process).
    threads : int, optional
        Threads per worker (default: cores / workers).
    cluster : str, optional
        ``"local:N"``: a Dask LocalCluster of N worker processes.
    scheduler : str, optional
        Address of a running Dask scheduler.

    Returns
    -------
    Executor
        ``SerialExecutor``, ``ProcessExecutor`` or ``DaskExecutor``.

    Raises
    ------
    ValueError
        If workers × threads exceeds the cores, or local workers are combined with a cluster.
    ImportError
        If a cluster is asked for without dask.distributed installed (the message names the extra).

    Example
    -------
    >>> type(make_executor(1)).__name__
    'SerialExecutor'
    """
    cores = os.cpu_count() or 1
    if cluster is not None or scheduler is not None:
        if cluster is not None and scheduler is not None:
            raise ValueError("give --cluster or --scheduler, not both")
        if workers > 1:
            raise ValueError("--workers runs a local process pool; with --cluster/--scheduler the cluster's workers run the jobs")
        return DaskExecutor(cluster=cluster, scheduler=scheduler, threads=threads)
    if threads is not None and workers * threads > cores:
        raise ValueError(f"{workers} workers × {threads} threads exceeds the {cores} cores of this machine")
    ex = SerialExecutor(threads) if workers <= 1 else ProcessExecutor(workers, threads)
    note = busy_machine_note(ex.workers, ex.threads, cores)
    if note:
        warnings.warn(note, BusyMachineWarning, stacklevel=2)
    return ex


class BusyMachineWarning(UserWarning):
    """Other work already keeps this machine's cores busy: the chosen workers × threads oversubscribe it."""


def busy_machine_note(workers: int, threads: int, cores: int | None = None, load: float | None = None) -> str | None:
    """A one-line note when other work already saturates the cores and more than one thread is asked for.

    Parameters
    ----------
    workers, threads : int
        The local executor's workers and threads per worker.
    cores : int, optional
        Cores of the machine (default: ``os.cpu_count()``).
    load : float, optional
        Runnable processes already there (default: the 1-minute load average).

    Returns
    -------
    str or None
        The note, or None when the load average is below the core count (minus a quarter), a single
        thread is asked for, or the load is unknown.

    Example
    -------
    >>> busy_machine_note(1, 2, cores=2, load=2.0) is not None  # two busy cores, two more threads
    True
    >>> busy_machine_note(1, 1, cores=2, load=2.0) is None
    True
    """
    cores = cores or os.cpu_count() or 1
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (OSError, AttributeError):
            return None
    if load < cores - 0.25 or workers * threads <= 1:  # only a machine that is already saturated
        return None
    advice = ("consider --threads 1 (the nets' results depend on the thread count, so it is not changed for you)"
              if threads > 1 else "consider fewer --workers")
    return (f"the machine is busy (load average {load:.1f} on {cores} cores): {workers} worker(s) × {threads} thread(s) "
            f"may oversubscribe it, and oversubscribed torch runs slow down 10x or more; {advice}")
