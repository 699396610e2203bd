"""One registry of fusion methods (timm/BasicSR style): register by class, look up by name."""
from __future__ import annotations

import importlib
from typing import Any

from .base import InputError, Method

__all__ = ["register", "get_method", "create_method", "list_methods", "method_table"]

_REGISTRY: dict[str, type[Method]] = {}
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


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in _PROVIDERS:
        importlib.import_module(mod)


def get_method(name: str) -> type[Method]:
    _load()
    if name not in _REGISTRY:
        raise InputError(f"unknown method {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def create_method(name: str, preset: str = "default", **params: Any) -> Method:
    return get_method(name)(preset=preset, **params)


def list_methods(family: str | None = None) -> list[str]:
    _load()
    return sorted(n for n, c in _REGISTRY.items() if family is None or c.family == family)


def method_table() -> list[dict[str, Any]]:
    _load()
    return [_REGISTRY[n].describe() for n in sorted(_REGISTRY)]
