"""The method interface: what a fusion method receives (inputs + a knowledge-limited context) and returns.

A method is a class with a name, a family (``classical``/``deep``), the knowledge modes it supports,
its paper, named parameter presets, and a ``fuse(lr, msi, ctx)`` that returns the HrHSI. The
:func:`run_method` wrapper validates inputs and outputs, fills in PSF/SRF estimates where a mode
allows, and times the call, so every method is held to the same contract.
"""
from __future__ import annotations

import copy
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
]

KNOWLEDGE_MODES = ("oracle", "srf_support", "blind", "estimated")


class MethodError(RuntimeError):
    """A method failed (diverged, produced NaN, ...)."""


class NotApplicable(RuntimeError):
    """The method cannot run in the requested knowledge mode (recorded as 'not applicable', not a failure)."""


class InputError(ValueError):
    """Bad inputs: NaN/Inf, shape or band mismatch, a scale that does not divide the image."""


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


def validate_inputs(lr, msi, ctx: Context) -> None:
    """Raise :class:`InputError` on NaN/Inf, wrong ndim, a scale that does not divide, band mismatches."""
    for name, a in (("LrHSI", lr), ("HrMSI", msi)):
        if a.ndim != 3:
            raise InputError(f"{name} must be (bands, rows, cols), got shape {tuple(a.shape)}")
        xp = array_namespace(a)
        if not bool(xp.all(xp.isfinite(a))):
            raise InputError(f"{name} contains NaN or Inf")
        if min(a.shape) == 0:
            raise InputError(f"{name} is empty: shape {tuple(a.shape)}")
    L, h, w = lr.shape
    l, H, W = msi.shape
    s = ctx.scale
    if int(s) != s or s < 1:
        raise InputError(f"scale must be a positive integer, got {s}")
    if H % s or W % s:
        raise InputError(f"scale factor {s} does not divide the HrMSI size {H}×{W}")
    if (H // s, W // s) != (h, w):
        raise InputError(f"LrHSI is {h}×{w} but HrMSI {H}×{W} at scale {s} implies {H // s}×{W // s}")
    if ctx.srf is not None and tuple(ctx.srf.shape) != (l, L):
        raise InputError(f"SRF shape {tuple(ctx.srf.shape)} does not match (MS bands, HS bands) = ({l}, {L})")
    if ctx.coverage is not None and tuple(ctx.coverage.shape) != (l, L):
        raise InputError(f"band coverage shape {tuple(ctx.coverage.shape)} does not match ({l}, {L})")
    if ctx.psf is not None:
        from ..degrade.psf import check_kernel

        try:
            check_kernel(to_numpy(ctx.psf), s)
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
    from .registry import get_estimator  # the registry, not an implementation, knows the estimator

    est = get_estimator()
    coverage = ctx.coverage if ctx.mode in ("srf_support", "oracle") else None
    psf, srf = est(to_numpy(lr), to_numpy(msi), ctx.scale, band_coverage=coverage)
    return ctx.with_estimates(psf, srf, "estimated")


def run_method(method: Method, lr, msi, ctx: Context) -> FusionResult:
    """Validate, resolve knowledge, run ``method.fuse``, validate the output, and time it.

    Calling a method (``method(lr, msi, ctx)``) does the same. When the mode lacks a PSF/SRF the
    method ``needs`` (or, in ``estimated`` mode, one it ``uses``), the registered degradation
    estimator supplies it and ``info["knowledge_source"]`` says so.

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
    validate_inputs(lr, msi, ctx)
    t0 = time.perf_counter()
    ctx = _resolve_knowledge(method, lr, msi, ctx)
    out = method.fuse(lr, msi, ctx)
    hr, info = out if isinstance(out, tuple) else (out, {})
    runtime = time.perf_counter() - t0
    expected = (lr.shape[0], msi.shape[1], msi.shape[2])
    if tuple(hr.shape) != expected:
        raise MethodError(f"{method.name} returned shape {tuple(hr.shape)}, expected {expected}")
    xp = array_namespace(hr)
    if not bool(xp.all(xp.isfinite(hr))):
        raise MethodError(f"{method.name} produced NaN or Inf")
    info = dict(info)
    info.setdefault("knowledge_source", dict(ctx.knowledge_source))
    if "estimated" in ctx.knowledge_source.values():
        info.setdefault("estimated_psf", to_numpy(ctx.psf) if ctx.psf is not None else None)
        info.setdefault("estimated_srf", to_numpy(ctx.srf) if ctx.srf is not None else None)
    return FusionResult(hr=hr, info=info, runtime_s=runtime)
