"""One registry of fusion methods (timm/BasicSR style): register by class, look up by name; and the
slot of the degradation estimator, which an implementation fills with :func:`register_estimator`."""
from __future__ import annotations

import importlib
from typing import Any, Callable

from .base import InputError, Method

__all__ = ["register", "get_method", "create_method", "list_methods", "method_table", "register_estimator",
           "get_estimator", "EstimatorMissing"]

_REGISTRY: dict[str, type[Method]] = {}
_ESTIMATOR: dict[str, Callable] = {}
# Modules whose import registers methods; imported lazily so `import hsibench` stays cheap.
_PROVIDERS = ("hsibench.methods.upsample", "hsibench.baselines", "hsibench.nets")
_loaded = False


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: add a fully implemented method to the registry."""
    if not cls.name or cls.family not in ("classical", "deep", "floor"):
        raise TypeError(f"{cls.__name__} must set name and family ('classical', 'deep' or 'floor')")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"method name {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def unregister(name: str) -> None:
    """Remove a method from the registry (tests register throw-away methods and remove them again)."""
    _REGISTRY.pop(name, None)


class EstimatorMissing(RuntimeError):
    """A method needs the degradation estimator but none is registered (an installation error)."""


def register_estimator(fn: Callable) -> Callable:
    """Register the degradation estimator ``fn(lr, msi, scale, band_coverage=None) -> (psf, srf)``.

    ``hsibench.baselines`` registers :func:`hsibench.baselines.estimate_degradation` on import; a
    later registration replaces the earlier one. Returns ``fn`` (usable as a decorator). ``fn``
    receives ``lr`` and ``msi`` in the caller's array namespace, with no host copy (device arrays
    stay on the device), so it must accept any namespace the methods run on; it returns small
    arrays that :func:`hsibench.xp.to_numpy` converts (NumPy arrays are best).
    """
    _ESTIMATOR["default"] = fn
    return fn


def get_estimator() -> Callable:
    """The registered degradation estimator (importing the method providers first).

    Raises :class:`EstimatorMissing` if no provider registered one: a method that needs a PSF/SRF in
    a mode without them must not silently become "not applicable".
    """
    if "default" not in _ESTIMATOR:
        _load()
    try:
        return _ESTIMATOR["default"]
    except KeyError:
        raise EstimatorMissing(
            "no degradation estimator is registered (hsibench.baselines registers one on import)"
        ) from None


def _load() -> None:
    global _loaded
    if _loaded:
        return
    for mod in _PROVIDERS:
        importlib.import_module(mod)
    _loaded = True


def get_method(name: str) -> type[Method]:
    _load()
    if name not in _REGISTRY:
        raise InputError(f"unknown method {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def create_method(name: str, preset: str = "default", **params: Any) -> Method:
    """An instance of the registered method ``name`` with a preset and parameter overrides.

    Parameters
    ----------
    name : str
        A registered method (``hsibench list methods``).
    preset : str
        One of the method's ``presets`` (``default``; ``paper``/``fast`` for the deep nets, ...).
    **params
        Overrides of the preset's parameters.

    Returns
    -------
    Method
        Call it as ``method(lr, msi, ctx)`` (see :func:`~hsibench.methods.run_method`).

    Raises
    ------
    InputError
        An unknown method, preset or parameter.

    Examples
    --------
    >>> m = create_method("cnmf", "reference", inner_iter=50)
    >>> m.name, m.preset, m.params["inner_iter"], m.params["coupling_psf"]
    ('cnmf', 'reference', 50, 'gauss')
    """
    return get_method(name)(preset=preset, **params)


def list_methods(family: str | None = None) -> list[str]:
    _load()
    return sorted(n for n, c in _REGISTRY.items() if family is None or c.family == family)


def method_table() -> list[dict[str, Any]]:
    _load()
    return [_REGISTRY[n].describe() for n in sorted(_REGISTRY)]
