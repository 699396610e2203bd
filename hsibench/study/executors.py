"""Executors behind one interface: run a function over jobs and yield results as they finish.

``SerialExecutor`` runs in-process; ``ProcessExecutor`` runs a local process pool whose workers are
pinned to ``threads`` threads each (torch, BLAS/OpenMP, Numba), so workers × threads never exceeds
the cores: oversubscribed torch runs slow down tenfold or more on small machines. A distributed
executor only needs the same ``run`` method.
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator, Protocol

__all__ = ["Executor", "SerialExecutor", "ProcessExecutor", "make_executor", "pin_threads", "WorkerLost"]

_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


class WorkerLost(RuntimeError):
    """A worker process died (killed, out of memory); its job is left unfinished for the next run."""


class Executor(Protocol):
    workers: int
    threads: int

    def run(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
        """Yield ``(item, result_or_exception)`` pairs in completion order."""


def pin_threads(threads: int) -> None:
    """Limit this process's compute libraries to ``threads`` threads."""
    for var in _THREAD_ENV:
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

    def run(self, fn, items):
        pin_threads(self.threads)
        for item in items:
            try:
                yield item, fn(item)
            except Exception as exc:  # the job function records its own failures; this is a last resort
                yield item, exc


class ProcessExecutor:
    """A local pool of ``workers`` spawned processes with ``threads`` threads each."""

    def __init__(self, workers: int, threads: int | None = None):
        cores = os.cpu_count() or 1
        self.workers = max(1, workers)
        self.threads = threads or max(1, cores // self.workers)

    def run(self, fn, items):
        items = list(items)
        ctx = mp.get_context("spawn")
        with _thread_env(self.threads), cf.ProcessPoolExecutor(
            self.workers, mp_context=ctx, initializer=pin_threads, initargs=(self.threads,)
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


def make_executor(workers: int = 1, threads: int | None = None) -> Executor:
    """Serial for one worker, a pinned process pool otherwise."""
    cores = os.cpu_count() or 1
    if threads is not None and workers * threads > cores:
        raise ValueError(f"{workers} workers × {threads} threads exceeds the {cores} cores of this machine")
    return SerialExecutor(threads) if workers <= 1 else ProcessExecutor(workers, threads)
