"""The one ``parallel=True`` loop of the CPU kernels: ``for t in prange(ntask): task(t, args)``.

Every CPU kernel is written as a serial ``@njit`` *task* ``task(t, args) -> None`` (one band row,
one block of pixels, one tile) and run by :func:`par_for`. The task is called through a
first-class function type (a function pointer), so the parallel gufunc stays tiny: when a large
kernel body sits directly inside ``prange`` (or is inlined into it), Numba's parfor passes and
LLVM process it twice, which more than doubled the compile time of the fused SSIM/UIQI kernel.
Both the tasks and the loops are cached on disk (``cache=True``), one loop per argument
signature, shared by all tasks of that signature. Threads follow ``NUMBA_NUM_THREADS`` /
``numba.set_num_threads`` like any parallel Numba function.

Dispatch cost matters for the small images of iterative methods: Numba types a tuple argument in
Python on every call (a sizeable fraction of a millisecond for ten arrays), so the compiled loop
is called through its signature's entry point, keyed by a cheap fingerprint of the arguments.
Figures: ``reports/benchmarks.md`` (section "Kernel design measurements").
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange, types, typeof


def _par_for(fn, ntask, args):
    for t in prange(ntask):
        fn(np.int64(t), args)


_loops: dict = {}


class _TaskPointer:
    """A compiled task as Numba's wrapper-address protocol sees it: unboxing a Dispatcher looks
    its overload up by signature (twice per call, a fraction of a millisecond); this hands the
    address over."""

    def __init__(self, task, sig):
        cres = task.get_compile_result(sig)
        self._addr = cres.library.get_pointer_to_function(cres.fndesc.llvm_cfunc_wrapper_name)
        self._task = task  # keeps the compiled code alive

    def __wrapper_address__(self):
        return self._addr


def _fingerprint(args: tuple) -> tuple:
    """What the Numba signature of ``args`` depends on (arrays: dtype, ndim, contiguity)."""
    out = []
    for a in args:
        if isinstance(a, np.ndarray):
            out.append((a.dtype.num, a.ndim, a.flags.c_contiguous, a.flags.writeable))
        else:
            out.append(type(a))
    return tuple(out)


def par_for(task, ntask: int, args: tuple) -> None:
    """Run ``task(t, args)`` for t in range(ntask) on Numba's thread pool."""
    key = (task, _fingerprint(args))
    entry = _loops.get(key)
    if entry is None:
        argty = typeof(args)
        task_sig = types.void(types.int64, argty)
        loop_sig = types.void(types.FunctionType(task_sig), types.int64, argty)
        loop = njit(loop_sig, parallel=True, cache=True)(_par_for)
        task.compile(task_sig)
        entry = (loop.overloads[loop_sig.args].entry_point, _TaskPointer(task, task_sig))
        _loops[key] = entry
    entry[0](entry[1], int(ntask), args)


def rows_per_task(nrows: int, tasks_per_thread: int = 16) -> int:
    """Rows per task: enough tasks to balance the threads (the machines are shared, so a few
    per thread), few enough that per-task buffers and scheduling are amortised."""
    import numba

    return max(1, -(-nrows // (tasks_per_thread * numba.get_num_threads())))
