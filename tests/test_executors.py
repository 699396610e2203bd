"""Local executors: thread pinning and the busy-machine note."""
from __future__ import annotations

import pytest


def test_busy_machine_is_noted_when_threads_would_oversubscribe(monkeypatch):
    """Two threads on a 2-core machine whose load average is already 2 slow torch down 10x or more:
    `make_executor` says so (one warning), and is quiet on an idle machine or with one thread."""
    import warnings

    from hsibench.study import executors as ex

    assert ex.busy_machine_note(1, 2, cores=2, load=2.1) is not None
    assert "--threads 1" in ex.busy_machine_note(1, 2, cores=2, load=2.1)
    assert "fewer --workers" in ex.busy_machine_note(2, 1, cores=2, load=1.9)
    assert ex.busy_machine_note(1, 1, cores=2, load=3.0) is None  # one thread cannot oversubscribe
    assert ex.busy_machine_note(1, 2, cores=2, load=0.4) is None  # an idle machine
    monkeypatch.setattr(ex.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(ex.os, "getloadavg", lambda: (2.5, 2.0, 1.0))
    with pytest.warns(ex.BusyMachineWarning, match="load average 2.5 on 2 cores"):
        ex.make_executor(1)  # default threads = 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ex.make_executor(1, threads=1)
    monkeypatch.setattr(ex.os, "getloadavg", lambda: (0.3, 0.3, 0.3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ex.make_executor(1)
