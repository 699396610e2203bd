"""Where the optional real-data folder is: ``$HSIBENCH_DATA``, else ``../shared/data`` beside the
working directory or the repository. Nothing in the package needs it; tests and demos may."""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["data_dir", "resolve_data_path"]

DATA_PREFIX = "data:"


def data_dir() -> Path | None:
    env = os.environ.get("HSIBENCH_DATA")
    cands = [Path(env)] if env else []
    cands += [Path.cwd() / ".." / "shared" / "data", Path(__file__).resolve().parents[1].parent / "shared" / "data"]
    for c in cands:
        if c.is_dir():
            return c.resolve()
    return None


def resolve_data_path(source: str | Path) -> Path:
    """``data:cave/balloons_ms.mat`` -> a path inside the data folder; anything else unchanged."""
    s = str(source)
    if not s.startswith(DATA_PREFIX):
        return Path(s).expanduser()
    root = data_dir()
    if root is None:
        raise FileNotFoundError(f"{s}: no data folder (set $HSIBENCH_DATA or place it at ../shared/data)")
    return root / s[len(DATA_PREFIX):]
