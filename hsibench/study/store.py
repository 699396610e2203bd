"""The results store: one JSON file per finished job, written atomically, plus optional arrays.

Layout of a store folder::

    study.json            the study as given (for provenance)
    plan.json             the job ids the latest run set out to finish (so a report can tell a
                          partial store from a finished one)
    jobs/<job_id>.json    one result row per job (full config, metrics, runtime, versions, status)
    arrays/<job_id>.npz   saved output (and, per case, the ground truth and inputs) for visual panels

A job file appears only once its row is complete (:mod:`hsibench.atomic`: a temporary ``.tmp-*``
file in the same folder, ``fsync``, then ``os.replace``), so a killed run never leaves a half-written
row and a re-run skips exactly the finished jobs. Readers never read the writer's temporary files; a
job file that does not parse or lacks the required fields is named in a :class:`StoreWarning` and
treated as not done (the next run recomputes it). One run writes to a store at a time: ``lock()``
holds an exclusive ``flock`` on ``.lock`` in the folder, released by the kernel if the run dies.
"""
from __future__ import annotations

import json
import math
import os
import socket
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .. import atomic

__all__ = ["ResultStore", "StoreLocked", "StoreWarning", "STATUSES", "code_id_of", "jsonable",
           "row_problem"]

#: The statuses a finished job row can have.
STATUSES = ("ok", "failed", "not_applicable")


class StoreWarning(UserWarning):
    """A job file in a results store is unreadable or incomplete; it is skipped and recomputed."""


class StoreLocked(RuntimeError):
    """Another run holds the results folder's lock."""


def jsonable(v: Any) -> Any:
    """Convert NumPy scalars/arrays and non-finite floats to JSON-safe values (inf -> "inf")."""
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return jsonable(v.tolist())
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return v


def _restore_floats(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _restore_floats(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_restore_floats(x) for x in v]
    if v in ("inf", "-inf", "nan"):
        return float(v)
    return v


def row_problem(row: Any, job_id: str | None = None) -> str | None:
    """Why a parsed job file is not a finished row (``None`` when it is one).

    Parameters
    ----------
    row : object
        The parsed JSON content of a job file.
    job_id : str, optional
        The id the file name promises.

    Returns
    -------
    str or None
        A short reason, or ``None`` for a complete row.

    Example
    -------
    >>> row_problem({"job_id": "a", "status": "ok", "metrics": {"psnr": 30.0}}, "a") is None
    True
    >>> row_problem([1, 2])
    'not a JSON object (a list)'
    """
    if not isinstance(row, dict):
        return f"not a JSON object (a {type(row).__name__})"
    if not isinstance(row.get("job_id"), str):
        return "no job_id"
    if job_id is not None and row["job_id"] != job_id:
        return f"job_id {row['job_id']!r} does not match the file name"
    if row.get("status") not in STATUSES:
        return f"status {row.get('status')!r} is not one of {STATUSES}"
    if row["status"] == "ok" and not isinstance(row.get("metrics"), dict):
        return "an ok row without metrics"
    return None


def code_id_of(row: dict) -> str:
    """The code version a row was computed with (``"unknown"`` for rows that predate recording it)."""
    return str(row.get("code_id") or "unknown")


class ResultStore:
    """A folder of result rows keyed by job id.

    Parameters
    ----------
    root : str or Path
        The results folder (created by :meth:`init`).

    Example
    -------
    >>> import tempfile
    >>> store = ResultStore(tempfile.mkdtemp()).init()
    >>> _ = store.write({"job_id": "j1", "status": "failed", "error": {"message": "boom"}})
    >>> store.finished_ids()
    {'j1'}
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.jobs_dir = self.root / "jobs"
        self.arrays_dir = self.root / "arrays"

    def init(self, study_source: dict | None = None) -> "ResultStore":
        """Create the folders and record the study (for provenance); return the store."""
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        if study_source is not None:
            atomic.write_json(self.root / "study.json", jsonable(study_source), indent=2)
        return self

    def write_plan(self, job_ids) -> Path:
        """Record the job ids the current run of the study set out to finish (``plan.json``)."""
        ids = list(dict.fromkeys(str(i) for i in job_ids))
        return atomic.write_json(self.root / "plan.json", {"total": len(ids), "job_ids": ids})

    def _read_meta(self, name: str) -> dict | None:
        """A JSON object file of the store's root (``study.json``, ``plan.json``), or None when it is
        missing, unreadable or not an object."""
        try:
            d = json.loads((self.root / name).read_text())
        except (OSError, ValueError):
            return None
        return d if isinstance(d, dict) else None

    def study(self) -> dict | None:
        """The study as recorded by :meth:`init` (``study.json``), or None when there is none readable."""
        return self._read_meta("study.json")

    def plan(self) -> list[str] | None:
        """The planned job ids of the latest run, or None when the store has no readable plan
        (written by an older version, or not by :func:`~hsibench.study.run_study`)."""
        ids = (self._read_meta("plan.json") or {}).get("job_ids")
        return [str(i) for i in ids] if isinstance(ids, list) else None

    @contextmanager
    def lock(self) -> Iterator["ResultStore"]:
        """Hold the store's single-writer lock for the duration of the block.

        The lock is an exclusive ``flock`` on ``ROOT/.lock``; the kernel releases it when the holder
        exits or is killed, so a crashed run never leaves the folder locked.

        Raises
        ------
        StoreLocked
            If another process holds the lock (the message names it).
        """
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no advisory lock, one writer by convention
            yield self
            return
        fh = open(self.root / ".lock", "a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise StoreLocked(f"results folder {self.root} is in use by another hsibench run ({holder}); "
                              "wait for it to finish or choose another --out") from None
        try:
            fh.seek(0)
            fh.truncate()
            fh.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
            fh.flush()
            yield self
        finally:
            fh.truncate(0)
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            fh.close()

    def clean_temporary(self) -> int:
        """Remove writers' temporary files left by a killed run; call only while holding :meth:`lock`."""
        n = 0
        for folder in (self.jobs_dir, self.arrays_dir):
            for p in folder.glob(atomic.TMP_PREFIX + "*") if folder.is_dir() else ():
                p.unlink(missing_ok=True)
                n += 1
        return n

    def path(self, job_id: str) -> Path:
        return self.jobs_dir / f"{job_id}.json"

    def _files(self) -> list[Path]:
        if not self.jobs_dir.is_dir():
            return []
        return sorted(p for p in self.jobs_dir.glob("*.json") if not atomic.is_temporary(p))

    def read(self, job_id: str) -> dict | None:
        """The finished row of ``job_id``, or ``None`` when it is missing or corrupt (warned)."""
        return self._read(self.path(job_id))

    def _read(self, path: Path, warn: bool = True) -> dict | None:
        try:
            with open(path) as fh:
                row = json.load(fh)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            problem = f"does not parse ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        else:
            problem = row_problem(row, path.stem)
            if problem is None:
                return _restore_floats(row)
        if warn:
            warnings.warn(f"ignoring corrupt job file {path} ({problem}); it counts as not done", StoreWarning,
                          stacklevel=3)
        return None

    def has(self, job_id: str) -> bool:
        """Whether a complete row of ``job_id`` is stored."""
        return self._read(self.path(job_id), warn=False) is not None

    def scan(self) -> tuple[dict[str, dict], list[Path]]:
        """Every finished row by job id, and the corrupt job files (each named in a warning)."""
        rows, corrupt = {}, []
        for p in self._files():
            row = self._read(p)
            if row is None:
                corrupt.append(p)
            else:
                rows[row["job_id"]] = row
        return rows, corrupt

    def finished_ids(self) -> set[str]:
        """Ids of the jobs whose row is complete (corrupt files are warned about and left out)."""
        return set(self.scan()[0])

    def write(self, row: dict) -> Path:
        """Write a finished row atomically (it is checked first: a bad row raises, nothing is written)."""
        row = jsonable(row)
        problem = row_problem(row)
        if problem is not None:
            raise ValueError(f"refusing to store an incomplete row: {problem}")
        return atomic.write_json(self.path(row["job_id"]), row, indent=1, sort_keys=True)

    def save_arrays(self, name: str, **arrays: np.ndarray) -> Path:
        """Save arrays (as float16 to keep stores small: panels only need display precision)."""
        return atomic.write_npz(self.arrays_dir / f"{name}.npz",
                                **{k: np.asarray(v, dtype=np.float16) for k, v in arrays.items()})

    def load_arrays(self, name: str) -> dict[str, np.ndarray] | None:
        path = self.arrays_dir / f"{name}.npz"
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k].astype(np.float32) for k in z.files}
        except (OSError, ValueError) as exc:  # a damaged archive: warn, panels skip it
            warnings.warn(f"ignoring unreadable array file {path} ({type(exc).__name__})", StoreWarning, stacklevel=2)
            return None

    def rows(self) -> Iterator[dict]:
        """The finished rows in file-name order; corrupt files are named in a warning and skipped."""
        for p in self._files():
            row = self._read(p)
            if row is not None:
                yield row

    def __len__(self) -> int:
        return len(self.finished_ids())
