"""The one training engine of the deep methods: per-image optimisation of a loss dictionary.

Every network in :mod:`hsibench.nets` hands the engine (1) named parameter groups, (2) a closure
that runs one forward pass and returns a dict of *weighted* loss terms, and (3) an optional
projection called after each optimiser step (the clippers: endmembers to [0, 1], PSF/SRF back onto
the simplex). The engine owns everything else, so all nets behave the same way:

* **optimiser** from the config (``adam``, ``adamw``, ``sgd``, ``rmsprop``), base ``lr``, per-group
  learning-rate multipliers (``lr_mult={"psf": 0.2, ...}``), ``betas``, ``eps``, ``weight_decay``;
* **schedule** ``lambda`` (constant until ``decay_start`` then linear to 0 at the last iteration:
  the ``LambdaLR`` policy of the CUCaNet/HyCoNet/EU2ADL code), ``cosine`` (optional linear warm-up,
  floor ``min_lr_factor``), ``step`` (× ``step_gamma`` every ``step_size`` iterations) or ``constant``;
  ``decay_start`` is a fraction of the budget when < 1 and an iteration index otherwise, so a
  shortened budget (``ctx.iterations``) keeps the paper's shape;
* an **iteration budget** (``ctx.iterations`` overrides the preset's);
* **early stop on a plateau**: every ``plateau_window`` iterations the mean total loss of the window
  is compared with the best earlier window mean; if the relative improvement stays below
  ``plateau_tol`` for ``plateau_patience`` windows in a row the run stops (``stopped="plateau"``).
  Off in the ``paper`` presets (the papers run a fixed budget);
* a **NaN/divergence guard**: a non-finite loss term, a non-finite parameter after a step, or a
  total loss above ``divergence_factor`` × the first one raises
  :class:`~hsibench.methods.MethodError` naming the iteration and the offending terms;
* a **tqdm progress bar** when ``ctx.progress``;
* **seeded determinism on the CPU** (:func:`seeded_run`): ``torch.manual_seed`` + NumPy + Python
  seeds, ``torch.use_deterministic_algorithms(True, warn_only=True)`` (without its NaN-filling of
  new tensors, a debugging aid that costs a memory pass per allocation), cuDNN deterministic, and the
  intra-op thread count pinned for the whole run to the caller's ``torch.get_num_threads()`` (never
  raised: more threads than free cores slows a run down many times, see ``reports/net_budgets.md``). Runs are bitwise
  reproducible for a fixed seed *and* thread count; a different thread count changes the reduction
  order and so the trajectory;
* **device selection** (:func:`resolve_device`): ``cpu``, ``cuda``/``cuda:N`` (a clear
  :class:`MethodError` if CUDA is not available), ``auto``;
* **loss curves**: every term, the total and the learning rate, sampled every ``log_every``
  iterations (default: about 500 points per run), returned as plain lists;
* **heap tuning on glibc** (:func:`large_heap`): during the loop, freed tensors of up to 32 MiB go
  back to the heap instead of being unmapped, so every iteration reuses memory instead of faulting
  in (and zeroing) fresh pages for each activation and gradient; thousands of page faults per
  iteration otherwise cost 10-15 % of a CPU iteration. Allocation only: the arithmetic is unchanged.
  glibc cannot be fully restored afterwards; :func:`large_heap` says what stays changed.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import math
import platform
import random
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import torch

from ..methods.base import Context, Method, MethodError, add_notes
from ..xp import to_numpy

__all__ = [
    "NetMethod",
    "TrainConfig",
    "TrainResult",
    "OPTIMIZERS",
    "SCHEDULES",
    "ENGINE_DEFAULTS",
    "train",
    "large_heap",
    "lr_factor",
    "make_optimizer",
    "resolve_device",
    "seeded_run",
    "to_tensor",
]

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULES = ("lambda", "cosine", "step", "constant")

#: Engine keys every net's ``default`` preset carries (the nets add their own architecture keys).
ENGINE_DEFAULTS: dict[str, Any] = {
    "iterations": 1000,
    "optimizer": "adam",
    "lr": 1e-3,
    "lr_mult": {},
    "betas": (0.9, 0.999),
    "eps": 1e-8,
    "weight_decay": 0.0,
    "momentum": 0.9,
    "schedule": "lambda",
    "decay_start": 0.0,
    "warmup": 0,
    "min_lr_factor": 0.0,
    "step_size": 1000,
    "step_gamma": 0.5,
    "early_stop": False,
    "plateau_window": 200,
    "plateau_tol": 1e-3,
    "plateau_patience": 2,
    "min_iterations": 0,
    "divergence_factor": 1e6,
    "grad_clip": None,
    "log_every": None,
}


@dataclass
class TrainConfig:
    """Optimiser, schedule, budget, early stop and guards of one training run (see module doc)."""

    iterations: int = 1000
    optimizer: str = "adam"
    lr: float = 1e-3
    lr_mult: dict[str, float] = field(default_factory=dict)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    momentum: float = 0.9
    schedule: str = "lambda"
    decay_start: float = 0.0
    warmup: int = 0
    min_lr_factor: float = 0.0
    step_size: int = 1000
    step_gamma: float = 0.5
    early_stop: bool = False
    plateau_window: int = 200
    plateau_tol: float = 1e-3
    plateau_patience: int = 2
    min_iterations: int = 0
    divergence_factor: float | None = 1e6
    grad_clip: float | None = None
    log_every: int | None = None

    def __post_init__(self):
        self.iterations = int(self.iterations)
        if self.iterations < 1:
            raise MethodError(f"iteration budget must be >= 1, got {self.iterations}")
        if self.optimizer not in OPTIMIZERS:
            raise MethodError(f"unknown optimizer {self.optimizer!r}; use one of {OPTIMIZERS}")
        if self.schedule not in SCHEDULES:
            raise MethodError(f"unknown lr schedule {self.schedule!r}; use one of {SCHEDULES}")
        if not self.lr > 0:
            raise MethodError(f"learning rate must be positive, got {self.lr}")
        self.betas = tuple(float(b) for b in self.betas)
        self.lr_mult = dict(self.lr_mult or {})

    @classmethod
    def from_params(cls, params: Mapping[str, Any], iterations: int | None = None, prefix: str = "") -> "TrainConfig":
        """Build from a method's flat parameter dict. ``prefix`` selects e.g. ``stage1_`` keys first
        (``stage1_lr`` overrides ``lr``); ``iterations`` (``ctx.iterations``) overrides the budget."""
        kw = {}
        for f in fields(cls):
            if prefix and prefix + f.name in params:
                kw[f.name] = params[prefix + f.name]
            elif f.name in params:
                kw[f.name] = params[f.name]
        if iterations is not None:
            kw["iterations"] = int(iterations)
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d


@dataclass
class TrainResult:
    """What one run of :func:`train` did."""

    iterations: int
    stopped: str  # "budget" | "plateau"
    loss_curve: dict[str, list[float]]
    final_losses: dict[str, float]
    seconds: float
    seconds_per_iteration: float
    threads: int
    device: str

    def info(self, prefix: str = "") -> dict[str, Any]:
        return {
            f"{prefix}iterations": self.iterations,
            f"{prefix}stopped": self.stopped,
            f"{prefix}loss_curve": self.loss_curve,
            f"{prefix}final_losses": self.final_losses,
            f"{prefix}train_seconds": self.seconds,
            f"{prefix}seconds_per_iteration": self.seconds_per_iteration,
        }


# --------------------------------------------------------------------------- device, seeds, threads

def resolve_device(name: str | torch.device | None) -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto`` -> a torch device; CUDA must really be there."""
    if name is None:
        name = "cpu"
    if isinstance(name, torch.device):
        name = str(name)
    name = str(name).lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise MethodError(
                f"device {name!r} requested but CUDA is not available to torch {torch.__version__} "
                "(CPU-only build or no GPU): run with device='cpu'"
            )
        dev = torch.device(name)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise MethodError(f"device {name!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
        return dev
    raise MethodError(f"unknown device {name!r}; use 'cpu', 'cuda', 'cuda:N' or 'auto'")


def _get_fill_uninitialized() -> bool | None:
    det = getattr(torch.utils, "deterministic", None)
    return getattr(det, "fill_uninitialized_memory", None)


def _set_fill_uninitialized(value: bool | None) -> None:
    det = getattr(torch.utils, "deterministic", None)
    if value is not None and det is not None and hasattr(det, "fill_uninitialized_memory"):
        det.fill_uninitialized_memory = value


@contextlib.contextmanager
def seeded_run(seed: int, device: torch.device | str = "cpu", threads: int | None = None):
    """Seed torch/NumPy/Python, switch on deterministic algorithms and pin the intra-op threads.

    ``threads`` defaults to the caller's ``torch.get_num_threads()``; a larger request is capped at
    it (the engine never raises the thread count). Global torch settings are restored on exit.
    Yields the thread count used.
    """
    prev_threads = torch.get_num_threads()
    n = prev_threads if threads is None else max(1, min(int(threads), prev_threads))
    prev_det = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    prev_cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    prev_fill = _get_fill_uninitialized()
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        torch.set_num_threads(n)
        torch.manual_seed(int(seed))
        np.random.seed(int(seed) % (2**32))
        random.seed(int(seed))
        if torch.device(device).type == "cuda":
            torch.cuda.manual_seed_all(int(seed))
        torch.use_deterministic_algorithms(True, warn_only=True)
        # Deterministic mode also fills every new uninitialised tensor with NaN (a debugging aid,
        # one memory pass per allocation: ~5000 fills per CUCaNet iteration); every kernel here
        # writes its whole output, so the fill changes nothing but the time.
        _set_fill_uninitialized(False)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        yield n
    finally:
        torch.set_num_threads(prev_threads)
        torch.use_deterministic_algorithms(prev_det, warn_only=prev_warn)
        _set_fill_uninitialized(prev_fill)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = prev_cudnn
        random.setstate(py_state)
        np.random.set_state(np_state)


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (glibc malloc.h)
#: glibc's largest mmap threshold (also the ceiling of its dynamic rule on 64-bit): 32 MiB.
_HEAP_MMAP_THRESHOLD = 32 << 20
#: The trim threshold inside :func:`large_heap` (1 GiB) and after it (2x the mmap threshold).
_HEAP_TRIM_INSIDE, _HEAP_TRIM_AFTER = 1 << 30, 2 * _HEAP_MMAP_THRESHOLD
_LIBC: Any = False  # not looked up yet
_HEAP_LOCK = threading.Lock()
_HEAP_DEPTH = 0  # large_heap contexts open in this process (any thread)


def _glibc():
    global _LIBC
    if _LIBC is False:
        _LIBC = None
        try:
            if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
                lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                if hasattr(lib, "mallopt") and hasattr(lib, "malloc_trim"):
                    _LIBC = lib
        except (OSError, ValueError):  # pragma: no cover - exotic platforms
            _LIBC = None
    return _LIBC


@contextlib.contextmanager
def large_heap():
    """Keep freed memory of up to 32 MiB per block on the heap for the duration (glibc only).

    By default glibc serves big blocks (the activations and gradients of a net on a full image) by
    ``mmap`` and unmaps them on ``free``, so every training iteration faults in and zeroes fresh
    pages for each of them. Inside this context the mmap threshold is 32 MiB (glibc's maximum) and
    the heap is not trimmed below 1 GiB, so the blocks are reused. Elsewhere (macOS, Windows, musl)
    a no-op.

    The context is re-entrant and thread-safe: nested or concurrent contexts share one setting,
    made by the first to enter and ended by the last to leave.

    **What stays changed afterwards.** glibc cannot be put back as it was: ``mallopt`` has no
    getter, and setting either threshold switches glibc's dynamic threshold adjustment off for the
    rest of the process (nothing turns it back on). When the last context exits, the trim
    threshold is set to 64 MiB and ``malloc_trim(0)`` returns the free heap to the system; the
    mmap threshold stays at 32 MiB. These are the values glibc's own dynamic rule reaches once the
    process has freed a 32 MiB block (a matter of course for a net on a full image; the rule sets
    the trim threshold to twice the mmap threshold). What differs from an untouched process is
    that blocks between 128 KiB and 32 MiB come from the heap from then on even if no such block
    was freed before, the at most 64 MiB of free memory at the top of the heap is kept, and the
    thresholds no longer follow the program. Applying the context again gives the same state.

    Yields
    ------
    bool
        Whether the heap settings are in force (False where the C library is not glibc).

    Example
    -------
    >>> with large_heap():
    ...     pass
    """
    global _HEAP_DEPTH
    lib = _glibc()
    if lib is None:
        yield False
        return
    with _HEAP_LOCK:
        if _HEAP_DEPTH == 0:
            lib.mallopt(_M_MMAP_THRESHOLD, _HEAP_MMAP_THRESHOLD)
            lib.mallopt(_M_TRIM_THRESHOLD, _HEAP_TRIM_INSIDE)
        _HEAP_DEPTH += 1
    try:
        yield True
    finally:
        with _HEAP_LOCK:
            _HEAP_DEPTH -= 1
            if _HEAP_DEPTH == 0:
                lib.mallopt(_M_TRIM_THRESHOLD, _HEAP_TRIM_AFTER)
                lib.malloc_trim(0)


#: DLPack device types torch imports directly: CPU, CUDA, CUDA managed memory, ROCm.
_DLPACK_CPU, _DLPACK_CUDA, _DLPACK_ROCM, _DLPACK_CUDA_MANAGED = 1, 2, 10, 13


def _dlpack_importable(a) -> bool:
    """True when ``a`` (not a NumPy array or torch tensor) exports DLPack from a device torch can
    import without a host round trip: the CPU, or a CUDA/ROCm device when torch has CUDA."""
    if isinstance(a, (np.ndarray, torch.Tensor)) or not hasattr(a, "__dlpack__"):
        return False
    get = getattr(a, "__dlpack_device__", None)
    if get is None:
        return False
    try:
        kind = int(get()[0])
    except (TypeError, ValueError, IndexError):
        return False
    if kind == _DLPACK_CPU:
        return True
    return kind in (_DLPACK_CUDA, _DLPACK_ROCM, _DLPACK_CUDA_MANAGED) and torch.cuda.is_available()


def to_tensor(a, device: torch.device, dtype=torch.float32) -> torch.Tensor:
    """NumPy / torch / CuPy (any DLPack exporter) array -> a float tensor on ``device``.

    Always a new tensor: the input is never modified. A torch tensor is detached and converted
    where it is. A NumPy array is copied as float32 and moved to ``device`` (then cast to ``dtype``).
    Any other array that exports DLPack from
    the CPU or a CUDA device (CuPy, JAX, ...) is imported with :func:`torch.from_dlpack`, zero-copy,
    and converted to a float32 copy on its own device (the NumPy path's values), then moved to
    ``device`` and cast to ``dtype`` (so a CuPy array goes straight to a CUDA tensor, never through
    the host). Anything else goes through
    :func:`hsibench.xp.to_numpy` (one host copy).

    Parameters
    ----------
    a : array
        The input array.
    device : torch.device
        Where the tensor goes.
    dtype : torch.dtype
        Its floating dtype (float32 by default).

    Returns
    -------
    torch.Tensor
        A tensor with its own memory on ``device``.

    Example
    -------
    >>> import numpy as np, torch
    >>> to_tensor(np.arange(3.0), torch.device("cpu"))
    tensor([0., 1., 2.])
    """
    if isinstance(a, torch.Tensor):
        return a.detach().to(device=device, dtype=dtype).clone()
    if _dlpack_importable(a):
        t = torch.from_dlpack(a)  # shares the exporter's memory, on its device
        t = t.to(dtype=torch.float32, copy=True)  # a copy on that device (as the NumPy path rounds)
        return t.to(device=device, dtype=dtype)
    return torch.as_tensor(np.array(to_numpy(a), dtype=np.float32, copy=True), dtype=dtype, device=device)


# --------------------------------------------------------------------------- optimiser and schedule

def lr_factor(cfg: TrainConfig, it: int) -> float:
    """Learning-rate multiplier at iteration ``it`` (0-based) of a ``cfg.iterations`` budget."""
    T = cfg.iterations
    if cfg.schedule == "constant":
        f = 1.0
    elif cfg.schedule == "lambda":
        t0 = cfg.decay_start * T if cfg.decay_start < 1 else cfg.decay_start
        t0 = min(float(t0), float(T))
        # Linear from 1 (at t0) towards 0 at T: the last step keeps a small positive lr, as LambdaLR.
        f = 1.0 if it < t0 else max(0.0, 1.0 - (it - t0 + 1) / (T - t0 + 1))
    elif cfg.schedule == "cosine":
        if it < cfg.warmup:
            return (it + 1) / cfg.warmup
        span = max(1, T - cfg.warmup)
        f = 0.5 * (1.0 + math.cos(math.pi * min(1.0, (it - cfg.warmup) / span)))
    elif cfg.schedule == "step":
        f = cfg.step_gamma ** (it // max(1, cfg.step_size))
    else:  # pragma: no cover - validated in TrainConfig
        raise MethodError(f"unknown schedule {cfg.schedule!r}")
    if cfg.schedule != "lambda" and cfg.warmup and it < cfg.warmup:
        f *= (it + 1) / cfg.warmup
    return cfg.min_lr_factor + (1.0 - cfg.min_lr_factor) * f


def make_optimizer(groups: Mapping[str, Iterable[torch.nn.Parameter]], cfg: TrainConfig) -> torch.optim.Optimizer:
    """One optimiser over named parameter groups; group ``g`` gets ``lr * cfg.lr_mult.get(g, 1)``.

    Frozen parameters (``requires_grad=False``) and empty groups are left out; an ``lr_mult`` key that
    names no group is an error (a typo would silently change the paper's settings).
    """
    unknown = set(cfg.lr_mult) - set(groups)
    if unknown:
        raise MethodError(f"lr_mult names unknown parameter groups {sorted(unknown)}; groups: {sorted(groups)}")
    pg = []
    for name, params in groups.items():
        ps = [p for p in params if p.requires_grad]
        if ps:
            mult = float(cfg.lr_mult.get(name, 1.0))
            pg.append({"params": ps, "lr": cfg.lr * mult, "name": name, "base_lr": cfg.lr * mult})
    if not pg:
        raise MethodError("nothing to optimise: every parameter is frozen")
    if cfg.optimizer == "adam":
        return torch.optim.Adam(pg, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(pg, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(pg, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.RMSprop(pg, lr=cfg.lr, eps=cfg.eps, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


# --------------------------------------------------------------------------- the loop

def _auto_log_every(T: int) -> int:
    return max(1, T // 500)


def _nonfinite_terms(terms: Mapping[str, torch.Tensor]) -> list[str]:
    return [k for k, v in terms.items() if not bool(torch.isfinite(v.detach()).all())]


def train(
    objective: Callable[[int], Mapping[str, torch.Tensor]],
    groups: Mapping[str, Iterable[torch.nn.Parameter]],
    cfg: TrainConfig,
    *,
    project: Callable[[], None] | None = None,
    progress: bool = False,
    desc: str = "train",
) -> TrainResult:
    """Minimise ``sum(objective(it).values())`` over ``groups`` for ``cfg.iterations`` steps.

    ``objective(it)`` returns the weighted loss terms (scalar tensors) of one forward pass;
    ``project()`` runs under ``no_grad`` after every step (constraints). Raises
    :class:`MethodError` on a non-finite loss/parameter or a divergence (see module doc).
    """
    groups = {k: list(v) for k, v in groups.items()}
    opt = make_optimizer(groups, cfg)
    params = [p for g in opt.param_groups for p in g["params"]]
    log_every = cfg.log_every or _auto_log_every(cfg.iterations)
    curve: dict[str, list[float]] = {"iteration": [], "total": [], "lr": []}
    window: list[float] = []
    best_window = math.inf
    flat_windows = 0
    first_total = None
    stopped = "budget"
    it = -1
    last: dict[str, float] = {}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.iterations, desc=desc, leave=False, dynamic_ncols=True)
    t0 = time.perf_counter()
    heap = contextlib.ExitStack()
    try:
        heap.enter_context(large_heap())
        for it in range(cfg.iterations):
            f = lr_factor(cfg, it)
            for g in opt.param_groups:
                g["lr"] = g["base_lr"] * f
            opt.zero_grad(set_to_none=True)
            terms = objective(it)
            bad = _nonfinite_terms(terms)
            if bad:
                raise MethodError(
                    f"{desc}: non-finite loss at iteration {it} in term(s) {', '.join(bad)} "
                    f"(lr factor {f:.3g}); the run diverged"
                )
            total = sum(terms.values())
            tval = float(total.detach())
            if first_total is None:
                first_total = max(abs(tval), 1e-12)
            elif cfg.divergence_factor and tval > cfg.divergence_factor * first_total:
                raise MethodError(
                    f"{desc}: loss diverged at iteration {it}: total {tval:.4g} > "
                    f"{cfg.divergence_factor:g} x initial {first_total:.4g} "
                    f"(terms: {', '.join(f'{k}={float(v):.3g}' for k, v in terms.items())})"
                )
            total.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            if project is not None:
                with torch.no_grad():
                    project()
            if it % log_every == 0 or it == cfg.iterations - 1:
                badp = [i for i, p in enumerate(params) if not bool(torch.isfinite(p.detach()).all())]
                if badp:
                    raise MethodError(f"{desc}: non-finite parameters after the step of iteration {it}; the run diverged")
                curve["iteration"].append(it)
                curve["total"].append(tval)
                curve["lr"].append(cfg.lr * f)
                for k, v in terms.items():
                    curve.setdefault(k, []).append(float(v.detach()))
            last = {"total": tval, **{k: float(v.detach()) for k, v in terms.items()}}
            if bar is not None:
                bar.update(1)
                if it % 20 == 0:
                    bar.set_postfix(loss=f"{tval:.4g}", refresh=False)
            if cfg.early_stop:
                window.append(tval)
                if len(window) == cfg.plateau_window:
                    m = sum(window) / len(window)
                    window.clear()
                    if best_window < math.inf and (best_window - m) < cfg.plateau_tol * abs(best_window):
                        flat_windows += 1
                    else:
                        flat_windows = 0
                    best_window = min(best_window, m)
                    if flat_windows >= cfg.plateau_patience and it + 1 >= cfg.min_iterations:
                        stopped = "plateau"
                        break
    finally:
        heap.close()
        if bar is not None:
            bar.close()
    n_done = it + 1
    if curve["iteration"] and curve["iteration"][-1] != it and n_done > 0:
        curve["iteration"].append(it)
        curve["total"].append(last["total"])
        curve["lr"].append(cfg.lr * lr_factor(cfg, it))
        for k in last:
            if k != "total":
                curve.setdefault(k, []).append(last[k])
    for p in params:
        if not bool(torch.isfinite(p.detach()).all()):
            raise MethodError(f"{desc}: non-finite parameters at the end of the run (iteration {it})")
    secs = time.perf_counter() - t0
    dev = params[0].device.type if params else "cpu"
    return TrainResult(
        iterations=n_done,
        stopped=stopped,
        loss_curve=curve,
        final_losses=last,
        seconds=secs,
        seconds_per_iteration=secs / max(1, n_done),
        threads=torch.get_num_threads(),
        device=dev,
    )


# --------------------------------------------------------------------------- glue for the nets


def saturation_note(out: np.ndarray, lr) -> str | None:
    """A note when whole bands of a net's output sit at the clamp value 1 and the LrHSI's do not.

    Decoders clamped to [0, 1] (HyCoNet, CUCaNet, EU2ADL) pass no gradient where their output is
    clamped: a decoder that starts above 1 on a bright scene never recovers, and the affected bands
    stay at 1 (see ``docs/methods.md``). A band counts when more than half of its output pixels are at
    1.0 while at most half of its LrHSI pixels are, so scattered bright pixels (real highlights)
    are not flagged. ``lr`` may be in any namespace; a device array is copied to the host (once per
    fit, after training).
    """
    out = np.asarray(out)
    lr = np.asarray(to_numpy(lr))
    bands = out.shape[0]
    at_one = (out >= 1.0).reshape(bands, -1).mean(1)
    ref = (lr >= 1.0).reshape(lr.shape[0], -1).mean(1) if lr.shape[0] == bands else np.zeros(bands)
    stuck = int(np.count_nonzero((at_one > 0.5) & (ref <= 0.5)))
    if stuck == 0:
        return None
    return (f"{stuck} of {bands} output bands sit at the clamp value 1 on more than half their pixels (their LrHSI "
            f"bands do not): the decoder saturated and passes no gradient there, typically on a uniformly bright scene")


def flat_output_note(out: np.ndarray, lr) -> str | None:
    """A note when most bands of a net's output are (nearly) spatially constant while the LrHSI's are not.

    Clamped abundance heads whose inputs leave [0, 1] everywhere output the same abundances at every
    pixel and pass no gradient: the fused image is then one spectrum repeated (measured: CUCaNet
    ``fast`` on the Paris Hyperion + ALI-pan pair: all 128 bands in ``blind`` mode, 105 of 128 with
    less than 1 % of their LrHSI band's spatial spread in ``estimated`` mode). A band counts as flat
    when its spatial standard deviation is below 1 % of its LrHSI band's (a high-resolution band
    should vary at least as much as its low-resolution version). ``lr`` may be in any namespace; a
    device array is copied to the host (once per fit, after training).
    """
    out = np.asarray(out, np.float64)
    lr = np.asarray(to_numpy(lr), np.float64)
    bands = out.shape[0]
    sd = out.reshape(bands, -1).std(1)
    if lr.shape[0] == bands:
        lr_sd = lr.reshape(bands, -1).std(1)
        flat = (sd < 0.01 * lr_sd) & (lr_sd > 0)
    else:
        flat = sd < 1e-6 * max(float(np.abs(out).max()), 1e-30)
    n = int(np.count_nonzero(flat))
    if n <= bands // 2:
        return None
    return (f"{n} of {bands} output bands are nearly constant in space (under 1 % of their LrHSI band's spread): "
            f"the abundance heads are stuck at their clamp and pass no gradient, so the output is about one spectrum repeated")


class NetMethod(Method):
    """Base class of the deep nets: tensors, device, seeding and the common ``info`` keys.

    Subclasses implement ``_run(lr, msi, ctx, device) -> (hr_tensor (1, L, H, W), info)`` where
    ``lr``/``msi`` are ``(1, bands, rows, cols)`` float32 tensors on ``device``; this wrapper adds
    ``threads``, ``device``, ``seed``, ``preset`` and ``deviations`` (:attr:`applied_deviations`, plus
    a budget override by ``ctx.iterations``) to the info dict and returns a NumPy float32 (L, H, W) cube.
    The inputs reach ``device`` through :func:`to_tensor` (device arrays that export DLPack without a
    host round trip); the output cube is copied to the host once, after training.
    """

    family = "deep"
    uses = ("psf", "srf")  # in `estimated` mode the learned layers start from the estimator's output

    def fuse(self, lr, msi, ctx: Context):
        device = resolve_device(ctx.device)
        with seeded_run(ctx.seed, device) as threads:
            y = to_tensor(lr, device)[None]
            z = to_tensor(msi, device)[None]
            hr, info = self._run(y, z, ctx, device)
            out = hr.detach()[0].to("cpu", torch.float32).numpy().copy()
        if not np.all(np.isfinite(out)):
            raise MethodError(f"{self.name}: the output contains NaN or Inf")
        devs = self.applied_deviations
        if ctx.iterations is not None and int(ctx.iterations) != int(self.params["iterations"]):
            devs.append(f"budget override: {int(ctx.iterations)} iterations (preset {self.preset!r}: "
                        f"{int(self.params['iterations'])}), schedule scaled to it")
        info.update(threads=threads, device=str(device), seed=int(ctx.seed), preset=self.preset, deviations=devs)
        lr_host = to_numpy(lr)  # one host copy of a device LrHSI for both output checks
        add_notes(info, [n for n in (saturation_note(out, lr_host), flat_output_note(out, lr_host)) if n])
        return out, info

    def _run(self, lr: torch.Tensor, msi: torch.Tensor, ctx: Context, device: torch.device):  # pragma: no cover
        raise NotImplementedError

    def train_config(self, ctx: Context, prefix: str = "", iterations: int | None = None) -> TrainConfig:
        it = ctx.iterations if iterations is None else iterations
        return TrainConfig.from_params(self.params, it, prefix=prefix)
