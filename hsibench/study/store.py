"""The results store: one JSON file per finished job, written atomically, plus optional arrays.

Layout of a store folder::

    study.json            the study as given (for provenance)
    jobs/<job_id>.json    one result row per job (full config, metrics, runtime, versions, status)
    arrays/<job_id>.npz   saved output (and, per case, the ground truth and inputs) for visual panels

A job file appears only once its row is complete (write to a temporary file, then ``os.replace``),
so a killed run never leaves a half-written row and a re-run skips exactly the finished jobs.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

__all__ = ["ResultStore", "StoreError", "atomic_write_text", "jsonable"]


class StoreError(ValueError):
    """A results store with an unreadable or malformed file (named in the message)."""


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


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class ResultStore:
    """A folder of result rows keyed by job id."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.jobs_dir = self.root / "jobs"
        self.arrays_dir = self.root / "arrays"

    def init(self, study_source: dict | None = None) -> "ResultStore":
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        if study_source is not None:
            atomic_write_text(self.root / "study.json", json.dumps(jsonable(study_source), indent=2))
        return self

    def path(self, job_id: str) -> Path:
        return self.jobs_dir / f"{job_id}.json"

    def has(self, job_id: str) -> bool:
        return self.path(job_id).is_file()

    def finished_ids(self) -> set[str]:
        if not self.jobs_dir.is_dir():
            return set()
        return {p.stem for p in self.jobs_dir.glob("*.json")}

    def write(self, row: dict) -> Path:
        path = self.path(row["job_id"])
        atomic_write_text(path, json.dumps(jsonable(row), indent=1, sort_keys=True))
        return path

    def save_arrays(self, name: str, **arrays: np.ndarray) -> Path:
        """Save arrays (as float16 to keep stores small: panels only need display precision)."""
        self.arrays_dir.mkdir(parents=True, exist_ok=True)
        path = self.arrays_dir / f"{name}.npz"
        fd, tmp = tempfile.mkstemp(dir=self.arrays_dir, prefix=".tmp-", suffix=".npz")
        os.close(fd)
        np.savez_compressed(tmp, **{k: np.asarray(v, dtype=np.float16) for k, v in arrays.items()})
        os.replace(tmp, path)
        return path

    def load_arrays(self, name: str) -> dict[str, np.ndarray] | None:
        path = self.arrays_dir / f"{name}.npz"
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k].astype(np.float32) for k in z.files}
        except Exception as exc:  # noqa: BLE001 - zipfile/numpy raise many types for a damaged file
            raise StoreError(f"{path}: unreadable arrays file ({type(exc).__name__}: {exc})".splitlines()[0]) from None

    def _read_row(self, p: Path, finished: bool = False) -> dict:
        try:
            with open(p) as fh:
                row = json.load(fh)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise StoreError(f"{p}: unreadable job file ({type(exc).__name__}: {exc})".splitlines()[0]) from None
        if not isinstance(row, dict) or not isinstance(row.get("job_id"), str):
            raise StoreError(f"{p}: not a job row (a JSON object with a 'job_id')")
        if finished and not isinstance(row.get("status"), str):
            raise StoreError(f"{p}: not a finished job row (no 'status')")
        return _restore_floats(row)

    def rows(self) -> Iterator[dict]:
        for p in sorted(self.jobs_dir.glob("*.json")):
            yield self._read_row(p)

    def check(self) -> None:
        """Read every job row and test every arrays file (zip CRCs); raise :class:`StoreError` naming
        the first bad file. Lets a reader fail before it writes anything.

        Raises
        ------
        StoreError
            An unreadable or malformed job JSON or arrays file.

        Example
        -------
        >>> ResultStore("results/demo").check()  # doctest: +SKIP
        """
        import zipfile

        for p in sorted(self.jobs_dir.glob("*.json")):
            self._read_row(p, finished=True)
        for p in sorted(self.arrays_dir.glob("*.npz")) if self.arrays_dir.is_dir() else []:
            try:
                with zipfile.ZipFile(p) as zf:
                    bad = zf.testzip()
            except (OSError, zipfile.BadZipFile) as exc:
                raise StoreError(f"{p}: unreadable arrays file ({exc})") from None
            if bad is not None:
                raise StoreError(f"{p}: arrays file damaged (bad CRC in {bad})")

    def __len__(self) -> int:
        return len(self.finished_ids())
