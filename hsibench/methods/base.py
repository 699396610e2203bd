"""The method interface: what a fusion method receives (inputs + a knowledge-limited context) and returns.

A method is a class with a name, a family (``classical``/``deep``), the knowledge modes it supports,
its paper, named parameter presets, and a ``fuse(lr, msi, ctx)`` that returns the HrHSI. The
:func:`run_method` wrapper validates inputs and outputs, fills in PSF/SRF estimates where a mode
allows, and times the call, so every method is held to the same contract.
"""
from __future__ import annotations

import copy
import math
import numbers
import re
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..xp import array_namespace, to_numpy

__all__ = [
    "KNOWLEDGE_MODES",
    "Context",
    "FusionResult",
    "Method",
    "MethodError",
    "NotApplicable",
    "InputError",
    "validate_inputs",
    "run_method",
    "check_device",
]

KNOWLEDGE_MODES = ("oracle", "srf_support", "blind", "estimated")


class MethodError(RuntimeError):
    """A method failed (diverged, produced NaN, ...)."""


class NotApplicable(RuntimeError):
    """The method cannot run in the requested knowledge mode (recorded as 'not applicable', not a failure)."""


class InputError(ValueError):
    """Bad inputs: NaN/Inf, shape or band mismatch, a scale that does not divide the image."""


_DEVICE = re.compile(r"^cuda(?::(\d+))?$")


def check_device(name, require_available: bool = True) -> str:
    """Validate a device name: ``cpu``, ``auto``, ``cuda`` or ``cuda:N``; return it lower-cased.

    Parameters
    ----------
    name : str
        The device name.
    require_available : bool
        Also check that a CUDA device exists (torch is imported only for ``cuda`` names).

    Returns
    -------
    str

    Raises
    ------
    InputError
        For an unknown name, or a CUDA device that this machine does not have.

    Example
    -------
    >>> check_device("CPU")
    'cpu'
    """
    if not isinstance(name, str):
        raise InputError(f"device must be a string such as 'cpu' or 'cuda', got {name!r}")
    n = name.strip().lower()
    if n in ("cpu", "auto"):
        return n
    m = _DEVICE.match(n)
    if not m:
        raise InputError(f"unknown device {name!r}; use 'cpu', 'cuda', 'cuda:N' or 'auto'")
    if require_available:
        import torch

        if not torch.cuda.is_available():
            raise InputError(f"device {name!r} is not available: no CUDA GPU visible to torch {torch.__version__}; "
                             "use device 'cpu'")
        if m.group(1) is not None and int(m.group(1)) >= torch.cuda.device_count():
            raise InputError(f"device {name!r} is not available: {torch.cuda.device_count()} CUDA device(s)")
    return n


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


@dataclass
class Context:
    """What a method is allowed to know about the degradation, plus run settings.

    ``psf``/``srf`` are present only in ``oracle`` mode (or after estimation in ``estimated``
    mode, or when a method that needs them is handed the estimator's output); ``coverage`` is the
    (MS × HS) boolean band-coverage mask available in ``srf_support`` and ``oracle`` modes. Build it
    with :meth:`from_truth`, which keeps only what the mode allows (``docs/conventions.md`` §7).

    Parameters
    ----------
    scale : int
        Scale factor s.
    mode : {"oracle", "srf_support", "blind", "estimated"}
        Knowledge mode.
    psf, srf, coverage : array or None
        PSF (kh, kw), SRF (l, L), band coverage (l, L) bool.
    wavelengths : array or None
        HS band centres in nm (some methods use them).
    boundary : {"symmetric", "circular"}
        Boundary rule of the forward model.
    device : str
        ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (deep nets).
    seed : int
        Seed of the method's random choices.
    iterations : int or None
        Overrides an iterative method's budget.
    progress : bool
        Show a progress bar.
    knowledge_source : dict
        Where the PSF/SRF came from (``true``, ``given``, ``estimated``); filled in automatically.

    Raises
    ------
    InputError
        An unknown knowledge mode.

    Examples
    --------
    >>> import numpy as np
    >>> psf, srf = np.full((4, 4), 1 / 16), np.full((3, 31), 1 / 31)
    >>> ctx = Context.from_truth(scale=4, mode="srf_support", psf=psf, srf=srf)
    >>> ctx.psf is None, ctx.srf is None, ctx.coverage.shape
    (True, True, (3, 31))
    >>> Context.from_truth(scale=4, mode="oracle", psf=psf, srf=srf).knowledge_source
    {'psf': 'true', 'srf': 'true'}
    """

    scale: int
    mode: str = "oracle"
    psf: np.ndarray | None = None
    srf: np.ndarray | None = None
    coverage: np.ndarray | None = None
    wavelengths: np.ndarray | None = None
    boundary: str = "symmetric"
    device: str = "cpu"
    seed: int = 0
    iterations: int | None = None
    progress: bool = False
    knowledge_source: dict[str, str] = field(default_factory=dict)
    scene: str | None = None

    def __post_init__(self):
        if self.mode not in KNOWLEDGE_MODES:
            raise InputError(f"unknown knowledge mode {self.mode!r}; use one of {KNOWLEDGE_MODES}")
        if not _is_int(self.scale) or self.scale < 1:
            raise InputError(f"scale must be a positive integer, got {self.scale!r}")
        if self.iterations is not None and (not _is_int(self.iterations) or self.iterations < 1):
            raise InputError(f"iterations must be a positive integer (or None for the preset's), got {self.iterations!r}")
        if not _is_int(self.seed) or self.seed < 0:
            raise InputError(f"seed must be a non-negative integer, got {self.seed!r}")
        self.device = check_device(self.device)
        if self.psf is not None and not self.knowledge_source.get("psf"):
            self.knowledge_source["psf"] = "true" if self.mode == "oracle" else "given"
        if self.srf is not None and not self.knowledge_source.get("srf"):
            self.knowledge_source["srf"] = "true" if self.mode == "oracle" else "given"

    @classmethod
    def from_truth(cls, *, scale: int, mode: str, psf=None, srf=None, coverage=None, **kw) -> "Context":
        """Build a context from the true degradation, keeping only what ``mode`` allows."""
        if mode not in KNOWLEDGE_MODES:
            raise InputError(f"unknown knowledge mode {mode!r}; use one of {KNOWLEDGE_MODES}")
        if coverage is None and srf is not None:
            coverage = np.asarray(srf) > 0
        if mode == "oracle":
            return cls(scale=scale, mode=mode, psf=psf, srf=srf, coverage=coverage, **kw)
        if mode == "srf_support":
            return cls(scale=scale, mode=mode, coverage=coverage, **kw)
        return cls(scale=scale, mode=mode, **kw)

    def with_estimates(self, psf, srf, source: str) -> "Context":
        new = copy.copy(self)
        new.knowledge_source = dict(self.knowledge_source)
        if new.psf is None and psf is not None:
            new.psf = psf
            new.knowledge_source["psf"] = source
        if new.srf is None and srf is not None:
            new.srf = srf
            new.knowledge_source["srf"] = source
        return new


@dataclass
class FusionResult:
    """The HrHSI and what the method learned on the way (learned PSF/SRF, loss curve, iterations)."""

    hr: Any
    info: dict[str, Any] = field(default_factory=dict)
    runtime_s: float = 0.0


class Method:
    """Base class of every fusion method. Subclasses set the class attributes and implement ``fuse``."""

    name: ClassVar[str] = ""
    family: ClassVar[str] = ""  # "classical" | "deep" | "floor"
    modes: ClassVar[tuple[str, ...]] = KNOWLEDGE_MODES
    paper: ClassVar[str] = ""
    needs: ClassVar[tuple[str, ...]] = ()  # subset of ("psf", "srf") the algorithm cannot run without
    uses: ClassVar[tuple[str, ...]] = ()  # what it exploits when given (e.g. to initialise learned layers)
    presets: ClassVar[dict[str, dict[str, Any]]] = {"default": {}}
    summary: ClassVar[str] = ""
    #: Departures from the paper that hold for every preset.
    deviations: ClassVar[tuple[str, ...]] = ()
    #: Further departures of a named preset (e.g. ``{"small": (...), "fast": (...)}``).
    preset_deviations: ClassVar[dict[str, tuple[str, ...]]] = {}

    def __init__(self, preset: str = "default", **params):
        if preset not in self.presets:
            raise InputError(f"{self.name}: unknown preset {preset!r}; known: {', '.join(self.presets)}")
        defaults = dict(self.presets["default"])
        defaults.update(self.presets[preset])
        unknown = set(params) - set(defaults)
        if unknown:
            raise InputError(f"{self.name}: unknown parameters {sorted(unknown)}; known: {sorted(defaults)}")
        preset_values = dict(defaults)
        for k, v in params.items():
            self._check_param(k, v)
        defaults.update(params)
        self.preset = preset
        self.params = defaults
        self.overrides = {k: v for k, v in params.items() if _jsonable(v) != _jsonable(preset_values[k])}
        self._preset_values = preset_values

    @property
    def applied_deviations(self) -> list[str]:
        """Every departure from the paper that applies to this instance.

        Returns
        -------
        list of str
            The method-level :attr:`deviations`, then those of the chosen preset
            (:attr:`preset_deviations`), then one entry per parameter the caller overrode
            (``"parameter override: key=value (preset 'p': old)"``).

        Example
        -------
        >>> from hsibench.methods import create_method
        >>> create_method("upsample").applied_deviations
        []
        """
        out = list(self.deviations) + list(self.preset_deviations.get(self.preset, ()))
        overrides = getattr(self, "overrides", {})  # a subclass that skipped Method.__init__ has none
        for k in sorted(overrides):
            out.append(f"parameter override: {k}={_jsonable(overrides[k])!r} "
                       f"(preset {self.preset!r}: {_jsonable(self._preset_values[k])!r})")
        return out

    @property
    def label_tag(self) -> str | None:
        """A tag the result label carries besides the preset (e.g. where a learned prior came from);
        ``None`` for most methods."""
        return None

    @classmethod
    def _check_param(cls, key: str, value) -> None:
        """Refuse a parameter value whose type no preset uses for ``key`` (no silent coercion):
        a bool where a number is expected, a float where an integer is, text where a number is,
        a non-finite float. A parameter whose presets all leave it None accepts any value."""
        seen = {type(p[key]) for p in cls.presets.values() if key in p}
        if not seen or seen == {type(None)}:
            return
        kinds = {"bool" if t is bool else "int" if issubclass(t, numbers.Integral) else
                 "float" if issubclass(t, numbers.Real) else "none" if t is type(None) else
                 "seq" if issubclass(t, (list, tuple)) else t.__name__ for t in seen}
        if value is None:
            ok = "none" in kinds
        elif isinstance(value, (bool, np.bool_)):
            ok = "bool" in kinds
        elif _is_int(value):
            ok = bool({"int", "float"} & kinds)
        elif isinstance(value, numbers.Real):
            ok = "float" in kinds and math.isfinite(float(value))
        elif isinstance(value, (list, tuple)):
            ok = "seq" in kinds
        else:
            ok = type(value).__name__ in kinds
        if not ok:
            want = " or ".join(sorted({"none": "null", "seq": "a list", "int": "an integer", "float": "a finite number",
                                        "bool": "true/false", "str": "a string", "dict": "a mapping"}.get(k, k)
                                       for k in kinds))
            raise InputError(f"{cls.name}: parameter {key!r} takes {want}, got {value!r}")

    def fuse(self, lr, msi, ctx: Context):  # pragma: no cover - interface
        """Return the HrHSI (L, H, W), or ``(hr, info_dict)``."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        return {"method": self.name, "preset": self.preset, "params": _jsonable(self.params)}

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {
            "name": cls.name,
            "family": cls.family,
            "modes": list(cls.modes),
            "needs": list(cls.needs),
            "uses": list(cls.uses),
            "paper": cls.paper,
            "presets": list(cls.presets),
            "summary": cls.summary,
            "deviations": list(cls.deviations),
            "preset_deviations": {k: list(v) for k, v in cls.preset_deviations.items()},
        }

    def __call__(self, lr, msi, ctx: Context) -> FusionResult:
        return run_method(self, lr, msi, ctx)


def _jsonable(v):
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


_F32_MAX = float(np.finfo(np.float32).max)


def _dtype_kind(a) -> str:
    """'f' (real float), 'i' (integer), 'b' (bool), 'c' (complex) or 'o' (anything else)."""
    dt = str(a.dtype).rsplit(".", 1)[-1]
    if dt == "bool":
        return "b"
    if dt.startswith("complex"):
        return "c"
    if dt.startswith(("float", "bfloat")):
        return "f"
    if dt.startswith(("int", "uint")):
        return "i"
    return "o"


def _as_float(name: str, a):
    """Integer inputs become float32 (same namespace); complex, bool and object arrays are refused."""
    if not hasattr(a, "dtype") or not hasattr(a, "shape"):
        a = np.asarray(a)
    kind = _dtype_kind(a)
    if kind in ("b", "c", "o"):
        raise InputError(f"{name} must hold real numbers, got dtype {a.dtype}")
    if kind == "i" or str(a.dtype).endswith("float16"):
        xp = array_namespace(a)
        a = xp.astype(a, xp.float32)
    return a


def validate_inputs(lr, msi, ctx: Context) -> None:
    """Raise :class:`InputError` on a non-real dtype, NaN/Inf or values beyond the float32 range,
    wrong ndim, a scale that does not divide, band mismatches, a bad PSF or SRF."""
    for name, a in (("LrHSI", lr), ("HrMSI", msi)):
        if _dtype_kind(a) != "f":
            raise InputError(f"{name} must be a real float array, got dtype {a.dtype}")
        if a.ndim != 3:
            raise InputError(f"{name} must be (bands, rows, cols), got shape {tuple(a.shape)}")
        if min(a.shape) == 0:
            raise InputError(f"{name} is empty: shape {tuple(a.shape)}")
        xp = array_namespace(a)
        if not bool(xp.all(xp.isfinite(a))):
            raise InputError(f"{name} contains NaN or Inf")
        if float(xp.max(xp.abs(a))) > _F32_MAX:
            raise InputError(f"{name} has finite values beyond the float32 range (|x| > 3.4e38); rescale it")
    L, h, w = lr.shape
    l, H, W = msi.shape
    s = ctx.scale
    if int(s) != s or s < 1:
        raise InputError(f"scale must be a positive integer, got {s}")
    if H % s or W % s:
        raise InputError(f"scale factor {s} does not divide the HrMSI size {H}×{W}")
    if (H // s, W // s) != (h, w):
        raise InputError(f"LrHSI is {h}×{w} but HrMSI {H}×{W} at scale {s} implies {H // s}×{W // s}")
    if ctx.srf is not None:
        from ..degrade.srf import check_srf

        try:
            check_srf(to_numpy(ctx.srf), (l, L))
        except ValueError as exc:
            raise InputError(str(exc)) from None
    if ctx.coverage is not None:
        cov = np.asarray(to_numpy(ctx.coverage))
        if tuple(cov.shape) != (l, L):
            raise InputError(f"band coverage shape {tuple(cov.shape)} does not match ({l}, {L})")
        if cov.dtype != bool:
            raise InputError(f"band coverage must be a boolean mask, got dtype {cov.dtype}")
        if not cov.any(axis=1).all():
            raise InputError(f"band coverage row {int(np.flatnonzero(~cov.any(axis=1))[0])} covers no HS band")
    if ctx.psf is not None:
        from ..degrade.psf import check_psf

        try:
            check_psf(to_numpy(ctx.psf), s)
        except ValueError as exc:
            raise InputError(str(exc)) from exc
    for name, a in (("LrHSI", lr), ("HrMSI", msi)):
        if not bool(array_namespace(a).any(a != 0)):
            raise InputError(f"{name} is all zero")


def _resolve_knowledge(method: Method, lr, msi, ctx: Context) -> Context:
    if ctx.mode not in method.modes:
        raise NotApplicable(f"{method.name} does not support knowledge mode {ctx.mode!r} (supports {method.modes})")
    wanted = set(method.needs) | (set(method.uses) if ctx.mode == "estimated" else set())
    missing = [n for n in ("psf", "srf") if getattr(ctx, n) is None and n in wanted]
    if not missing:
        return ctx
    psf, srf = estimate_psf_srf(lr, msi, ctx)
    return ctx.with_estimates(psf, srf, "estimated")


def estimate_psf_srf(lr, msi, ctx: Context):
    """(psf, srf) from the registered degradation estimator, with the band coverage the knowledge
    mode allows (``srf_support`` and ``oracle`` pass ``ctx.coverage``, other modes none). The cubes go
    in their own namespace (device arrays stay on the device); the small estimates come back as
    NumPy arrays. Raises :class:`~hsibench.methods.registry.EstimatorMissing` if none is registered."""
    from .registry import get_estimator  # the registry, not an implementation, knows the estimator

    coverage = ctx.coverage if ctx.mode in ("srf_support", "oracle") else None
    return get_estimator()(lr, msi, ctx.scale, band_coverage=coverage)


def _normalise_knowledge(ctx: Context) -> tuple[Context, list[str]]:
    """A given PSF / SRF whose sum / row sums differ from 1 is normalised (a note says so)."""
    notes = []
    new = ctx
    if ctx.psf is not None:
        k = np.asarray(to_numpy(ctx.psf), dtype=np.float64)
        if abs(k.sum() - 1.0) > 1e-6:
            new = copy.copy(new)
            new.psf = k / k.sum()
            notes.append(f"the given PSF summed to {k.sum():.6g}: normalised to 1")
    if ctx.srf is not None:
        from ..degrade.srf import check_srf

        r, sums = check_srf(to_numpy(ctx.srf))
        if np.any(np.abs(sums - 1.0) > 1e-6):
            new = copy.copy(new)
            new.srf = r
            notes.append(f"the given SRF rows summed to {np.array2string(sums, precision=4)}: normalised to 1")
    return new, notes


def add_notes(info: dict, notes) -> None:
    """Append ``notes`` (lines of text) to ``info["notes"]`` in place, turning a single string there
    into a list first; nothing changes when ``notes`` is empty."""
    notes = list(notes)
    if notes:
        old = info.get("notes") or []
        info["notes"] = ([old] if isinstance(old, str) else list(old)) + notes


def run_method(method: Method, lr, msi, ctx: Context) -> FusionResult:
    """Validate, resolve knowledge, run ``method.fuse``, validate the output, and time it.

    Calling a method (``method(lr, msi, ctx)``) does the same. When the mode lacks a PSF/SRF the
    method ``needs`` (or, in ``estimated`` mode, one it ``uses``), the registered degradation
    estimator supplies it and ``info["knowledge_source"]`` says so. The estimator is handed ``lr``
    and ``msi`` as they are (no host copy: device arrays stay on the device); the estimated PSF/SRF
    are stored in ``info`` as NumPy arrays.

    Integer (or float16) inputs are converted to float32; complex, bool and object arrays are
    refused. A given PSF or SRF that does not sum to 1 (per row) is normalised, with a note in
    ``info["notes"]``.

    Parameters
    ----------
    method : Method
        An instance, e.g. from :func:`~hsibench.methods.create_method`.
    lr : array (L, h, w)
        The LrHSI (any array-API namespace the method supports).
    msi : array (l, H, W)
        The HrMSI, H = s·h, W = s·w.
    ctx : Context
        The knowledge and run settings.

    Returns
    -------
    FusionResult
        ``hr`` (L, H, W) in the inputs' namespace, ``info`` (knowledge sources, estimates, learned
        PSF/SRF, loss curves, ...) and ``runtime_s``.

    Raises
    ------
    InputError
        NaN/Inf, wrong shapes, a scale that does not divide, band mismatches, a bad PSF.
    NotApplicable
        The method does not support ``ctx.mode``.
    EstimatorMissing
        An estimate is needed but no degradation estimator is registered.
    MethodError
        The method failed, returned the wrong shape, or produced NaN/Inf.

    Examples
    --------
    >>> import numpy as np
    >>> from hsibench.methods import create_method
    >>> lr = np.ones((31, 4, 4), dtype=np.float32)
    >>> msi = np.ones((3, 16, 16), dtype=np.float32)
    >>> res = run_method(create_method("upsample"), lr, msi, Context(scale=4, mode="blind"))
    >>> res.hr.shape, bool(np.allclose(res.hr, 1.0))
    ((31, 16, 16), True)
    """
    lr, msi = _as_float("LrHSI", lr), _as_float("HrMSI", msi)
    validate_inputs(lr, msi, ctx)
    ctx, notes = _normalise_knowledge(ctx)
    t0 = time.perf_counter()
    ctx = _resolve_knowledge(method, lr, msi, ctx)
    out = method.fuse(lr, msi, ctx)
    hr, info = out if isinstance(out, tuple) else (out, {})
    runtime = time.perf_counter() - t0
    expected = (lr.shape[0], msi.shape[1], msi.shape[2])
    if tuple(hr.shape) != expected:
        raise MethodError(f"{method.name} returned shape {tuple(hr.shape)}, expected {expected}")
    if _dtype_kind(hr) != "f":
        raise MethodError(f"{method.name} returned dtype {hr.dtype}, expected a real float array")
    xp = array_namespace(hr)
    if not bool(xp.all(xp.isfinite(hr))):
        raise MethodError(f"{method.name} produced NaN or Inf")
    info = dict(info)
    add_notes(info, notes)
    info.setdefault("knowledge_source", dict(ctx.knowledge_source))
    if "estimated" in ctx.knowledge_source.values():
        info.setdefault("estimated_psf", to_numpy(ctx.psf) if ctx.psf is not None else None)
        info.setdefault("estimated_srf", to_numpy(ctx.srf) if ctx.srf is not None else None)
    return FusionResult(hr=hr, info=info, runtime_s=runtime)
