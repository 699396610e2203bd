"""Atomic writes: a reader sees the old file or the whole new one, also when the writer is SIGKILLed."""
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from hsibench import atomic


def test_roundtrips_and_no_temporary_left(tmp_path):
    atomic.write_text(tmp_path / "a" / "t.txt", "héllo")
    assert (tmp_path / "a" / "t.txt").read_text(encoding="utf-8") == "héllo"
    atomic.write_json(tmp_path / "r.json", {"x": [1, 2]}, sort_keys=True)
    assert json.loads((tmp_path / "r.json").read_text()) == {"x": [1, 2]}
    atomic.write_npy(tmp_path / "a.npy", np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.arange(6.0).reshape(2, 3))
    atomic.write_npz(tmp_path / "z.npz", x=np.ones(3, np.float16), y=np.zeros((2, 2)))
    with np.load(tmp_path / "z.npz") as z:
        assert z["x"].dtype == np.float16 and z["y"].shape == (2, 2)
    assert not [p for p in tmp_path.rglob("*") if atomic.is_temporary(p)]


def test_a_failed_write_leaves_the_old_file(tmp_path):
    p = tmp_path / "r.json"
    atomic.write_json(p, {"v": 1})
    with pytest.raises(TypeError):
        atomic.write_json(p, {"v": object()})
    with pytest.raises(ValueError, match="Python objects"):
        atomic.write_npz(tmp_path / "o.npz", a=np.array([{}, 1], dtype=object))
    with pytest.raises(RuntimeError), atomic.atomic_path(p) as tmp:
        tmp.write_text('{"v": 2')
        raise RuntimeError("crash mid-write")
    assert json.loads(p.read_text()) == {"v": 1}
    assert sorted(x.name for x in tmp_path.iterdir()) == ["r.json"]


def test_staged_folder_publishes_all_or_nothing(tmp_path):
    dest = tmp_path / "rep"
    with atomic.staged_folder(dest, last=("index.md",)) as tmp:
        (tmp / "index.md").write_text("v1")
        (tmp / "plots").mkdir()
        (tmp / "plots" / "a.png").write_bytes(b"1")
    with pytest.raises(RuntimeError), atomic.staged_folder(dest) as tmp:
        (tmp / "index.md").write_text("v2")
        raise RuntimeError("plotting failed")
    assert (dest / "index.md").read_text() == "v1" and (dest / "plots" / "a.png").read_bytes() == b"1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]


WRITER = """
import sys
from hsibench.atomic import write_bytes
path, n = sys.argv[1], int(sys.argv[2])
i = 0
while True:
    i = i % 255 + 1
    write_bytes(path, bytes([i]) * n)
    print(i, flush=True)
"""


def test_sigkilled_writer_never_leaves_a_torn_file(tmp_path):
    """A process rewriting a 4 MiB file in a loop is SIGKILLed: the file is always one whole version."""
    path, n = tmp_path / "blob.bin", 4 * 2**20
    path.write_bytes(bytes([0]) * n)
    for delay in (0.3, 0.7):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(n)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline()  # at least one rewrite finished
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        data = path.read_bytes()
        assert len(data) == n and data.count(data[:1]) == n and data[0] != 0
    leftovers = [p for p in tmp_path.iterdir() if p != path]
    assert all(atomic.is_temporary(p) for p in leftovers)  # at most the killed writer's temporary file
