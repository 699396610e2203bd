"""Atomic file writes: a reader sees the old file or the complete new one, never a half-written one.

Every writer creates a temporary file in the destination's own folder (so the final rename never
crosses a file system), writes and ``fsync``\\ s it, then ``os.replace``\\ s it onto the destination,
which POSIX and Windows perform atomically. Temporary files are named ``.tmp-*``: readers skip
names that start with a dot (see :func:`is_temporary`), and a killed writer leaves at most such a
file behind, never a truncated destination.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

__all__ = ["TMP_PREFIX", "is_temporary", "atomic_path", "staged_folder", "write_bytes", "write_text", "write_json",
           "write_npy", "write_npz"]

#: Prefix of every temporary file the writers create.
TMP_PREFIX = ".tmp-"


def is_temporary(path: str | Path) -> bool:
    """True for a writer's temporary file (or any hidden file), which must never be read as a result.

    Parameters
    ----------
    path : str or Path
        A file name or path.

    Returns
    -------
    bool
        Whether the file's name starts with a dot.

    Example
    -------
    >>> is_temporary("jobs/.tmp-x1y2.json"), is_temporary("jobs/0123abcd.json")
    (True, False)
    """
    return Path(path).name.startswith(".")


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (best effort: not every platform can open a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | Path, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on a clean exit it replaces ``path`` atomically.

    For writers that insist on a file name (``np.savez``, ``Figure.savefig``). If the block raises,
    the temporary file is removed and ``path`` is left as it was.

    Parameters
    ----------
    path : str or Path
        The destination; its folder is created if missing.
    fsync : bool
        Flush the temporary file (and the folder after the rename) to disk.

    Returns
    -------
    contextmanager of Path
        The temporary path to write (it keeps the destination's suffix).

    Raises
    ------
    OSError
        If the folder cannot be created or the rename fails.

    Example
    -------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_path(d / "a.txt") as tmp:
    ...     _ = tmp.write_text("hello")
    >>> (d / "a.txt").read_text()
    'hello'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TMP_PREFIX, suffix=path.suffix)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if fsync:
        _fsync_dir(path.parent)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically.

    Parameters
    ----------
    path : str or Path
        Destination file.
    data : bytes
        The whole content.

    Returns
    -------
    Path
        The destination.

    Raises
    ------
    OSError
        If the folder cannot be created or written.

    Example
    -------
    >>> import tempfile, pathlib
    >>> p = write_bytes(pathlib.Path(tempfile.mkdtemp()) / "b.bin", b"\\x00\\x01")
    >>> p.read_bytes()
    b'\\x00\\x01'
    """
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically.

    Parameters
    ----------
    path : str or Path
        Destination file.
    text : str
        The whole content.
    encoding : str
        Text encoding.

    Returns
    -------
    Path
        The destination.

    Raises
    ------
    OSError
        If the folder cannot be created or written.

    Example
    -------
    >>> import tempfile, pathlib
    >>> write_text(pathlib.Path(tempfile.mkdtemp()) / "t.md", "# title").read_text()
    '# title'
    """
    return write_bytes(path, text.encode(encoding))


def write_json(path: str | Path, obj: Any, **dumps_kwargs: Any) -> Path:
    """Serialise ``obj`` with :func:`json.dumps` and write it atomically.

    The object is serialised before anything touches the disk, so an object that cannot be
    serialised leaves the destination untouched.

    Parameters
    ----------
    path : str or Path
        Destination file.
    obj : object
        A JSON-serialisable object.
    **dumps_kwargs
        Passed to :func:`json.dumps` (``indent``, ``sort_keys``, ...).

    Returns
    -------
    Path
        The destination.

    Raises
    ------
    TypeError
        If ``obj`` is not JSON-serialisable.

    Example
    -------
    >>> import tempfile, pathlib
    >>> write_json(pathlib.Path(tempfile.mkdtemp()) / "r.json", {"a": 1}).read_text()
    '{"a": 1}'
    """
    return write_text(path, json.dumps(obj, **dumps_kwargs))


def write_npy(path: str | Path, array: np.ndarray) -> Path:
    """Save one array in ``.npy`` format atomically (no pickled objects).

    Parameters
    ----------
    path : str or Path
        Destination file (conventionally ending in ``.npy``).
    array : array_like
        The array.

    Returns
    -------
    Path
        The destination.

    Raises
    ------
    ValueError
        If the array holds Python objects (they would need pickling).

    Example
    -------
    >>> import tempfile, pathlib
    >>> p = write_npy(pathlib.Path(tempfile.mkdtemp()) / "a.npy", np.arange(3))
    >>> np.load(p).tolist()
    [0, 1, 2]
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, np.asarray(array), allow_pickle=False)
    return Path(path)


def write_npz(path: str | Path, compressed: bool = True, **arrays: np.ndarray) -> Path:
    """Save named arrays in one ``.npz`` archive atomically.

    Parameters
    ----------
    path : str or Path
        Destination file (conventionally ending in ``.npz``).
    compressed : bool
        Use :func:`numpy.savez_compressed` (default) or :func:`numpy.savez`.
    **arrays
        The arrays, by name.

    Returns
    -------
    Path
        The destination.

    Raises
    ------
    ValueError
        If an array holds Python objects.

    Example
    -------
    >>> import tempfile, pathlib
    >>> p = write_npz(pathlib.Path(tempfile.mkdtemp()) / "a.npz", x=np.ones(2))
    >>> np.load(p)["x"].tolist()
    [1.0, 1.0]
    """
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    bad = [k for k, v in arrays.items() if v.dtype.hasobject]
    if bad:
        raise ValueError(f"arrays {bad} hold Python objects; only numeric arrays are saved")
    save = np.savez_compressed if compressed else np.savez
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        save(fh, **arrays)
    return Path(path)


@contextmanager
def staged_folder(dest: str | Path, last: tuple[str, ...] = ()) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``dest``; on a clean exit move its files into ``dest``.

    Each file is flushed to disk and moved with ``os.replace`` (atomic per file); files named in
    ``last`` move after all others, so their presence means the rest is in place. If the block
    raises, nothing reaches ``dest``. The temporary folder is always removed. Files of ``dest``
    that the block did not write are kept.

    Parameters
    ----------
    dest : str or Path
        The destination folder (created if missing).
    last : tuple of str
        File names to publish last (e.g. the index of a report).

    Returns
    -------
    contextmanager of Path
        The staging folder to write into (same relative layout as ``dest``).

    Raises
    ------
    OSError
        If the folders cannot be created or a rename fails.

    Example
    -------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()) / "report"
    >>> with staged_folder(d, last=("index.md",)) as tmp:
    ...     _ = (tmp / "index.md").write_text("# r")
    ...     (tmp / "plots").mkdir(); _ = (tmp / "plots" / "a.txt").write_text("a")
    >>> sorted(p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file())
    ['index.md', 'plots/a.txt']
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=TMP_PREFIX + dest.name + "-"))
    try:
        yield tmp
        files = sorted((p for p in tmp.rglob("*") if p.is_file()), key=lambda p: p.name in last)
        for f in files:
            with open(f, "rb+") as fh:
                os.fsync(fh.fileno())
            target = dest / f.relative_to(tmp)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(f, target)
        _fsync_dir(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
