"""Study files (TOML or YAML): scenes × degradation grid × seeds × methods × knowledge modes -> jobs.

A study file looks like::

    name = "demo"
    scenes = ["synthetic:64x31:0", "data/balloons_ms.mat"]
    seeds = [0]
    metrics = { preset = "hsibench", crop = 0 }

    [grid]                      # every key may be a scalar or a list (Cartesian product)
    scale = [4, 8]
    kernel = ["gauss_fwhm", "box"]
    sensor = "landsat8_bgr"
    snr = ["inf", [30, 40]]     # paired axis: [hs, ms] dB; or separate snr_hs / snr_ms axes

    [[methods]]
    name = "gsa"
    modes = ["blind"]
    [[methods]]
    name = "cnmf"
    preset = "default"
    modes = ["oracle", "blind"]
    params = { }

``design`` says how the grid axes combine: ``"factorial"`` (the default, every combination) or
``"one_at_a_time"``, which needs a ``[base]`` table giving the base value of every axis with several
values (a single-valued axis is its own base): the
jobs are then the base case plus, for each axis, each of its other values with every other axis at
its base value (duplicates removed, the base case once)::

    design = "one_at_a_time"
    [base]
    scale = 4
    kernel = "gauss_fwhm"
    snr = "inf"
"""
from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..degrade.degradation import Degradation
from ..methods.base import KNOWLEDGE_MODES

__all__ = ["StudyError", "MethodSpec", "Study", "Job", "load_study", "study_from_dict"]

GRID_KEYS = ("scale", "kernel", "sensor", "snr", "snr_hs", "snr_ms", "boundary", "noise_per_band", "misregistration",
             "srf_sampling")
DESIGNS = ("factorial", "one_at_a_time")


class StudyError(ValueError):
    """A malformed study file: unknown keys, empty axes, unknown modes."""


@dataclass(frozen=True)
class MethodSpec:
    name: str
    preset: str = "default"
    modes: tuple[str, ...] = ("oracle",)
    params: dict = field(default_factory=dict)
    label: str | None = None

    def display(self) -> str:
        if self.label:
            return self.label
        return self.name if self.preset == "default" else f"{self.name}[{self.preset}]"


@dataclass(frozen=True)
class Job:
    """One unit of work: a scene under one degradation and seed, fused by one method in one mode."""

    study: str
    scene: str
    scene_options: dict
    degradation: Degradation
    seed: int
    method: MethodSpec
    mode: str
    metrics_preset: str = "hsibench"
    crop: int = 0
    device: str = "cpu"
    iterations: int | None = None
    save_output: bool = False

    def config(self) -> dict[str, Any]:
        """The full configuration of the job (what the id hashes and every result row carries)."""
        return {
            "scene": self.scene,
            "scene_options": dict(self.scene_options),
            "degradation": self.degradation.to_dict(),
            "seed": self.seed,
            "method": self.method.name,
            "preset": self.method.preset,
            "params": dict(self.method.params),
            "label": self.method.display(),
            "mode": self.mode,
            "metrics_preset": self.metrics_preset,
            "crop": self.crop,
            "iterations": self.iterations,
        }

    @property
    def job_id(self) -> str:
        blob = json.dumps(self.config(), sort_keys=True, default=str)
        return hashlib.sha1(blob.encode()).hexdigest()[:16]

    @property
    def case_key(self) -> tuple:
        """Jobs sharing a case see identical inputs (scene, degradation, seed)."""
        return (self.scene, json.dumps(self.scene_options, sort_keys=True), self.degradation.label(), self.seed)


@dataclass
class Study:
    name: str
    scenes: list[str]
    scene_options: dict
    degradations: list[Degradation]
    seeds: list[int]
    methods: list[MethodSpec]
    metrics_preset: str = "hsibench"
    crop: int = 0
    device: str = "cpu"
    iterations: int | None = None
    save_outputs: str = "first"  # "first" case per scene, "all" or "none"
    source: dict = field(default_factory=dict)

    def jobs(self) -> list[Job]:
        """Expand the grid in a stable order (scene, degradation, seed, method, mode)."""
        out = []
        first_case: dict[str, bool] = {}
        for scene, deg, seed in itertools.product(self.scenes, self.degradations, self.seeds):
            save = self.save_outputs == "all" or (self.save_outputs == "first" and scene not in first_case)
            first_case[scene] = True
            for spec in self.methods:
                for mode in spec.modes:
                    out.append(
                        Job(self.name, scene, self.scene_options, deg, seed, spec, mode, self.metrics_preset,
                            self.crop, self.device, self.iterations, save)
                    )
        return out


def _as_list(v) -> list:
    return list(v) if isinstance(v, (list, tuple)) else [v]


def _axis(key: str, v) -> list:
    """Grid values as a list; a single (rows, cols) misregistration pair is one value, not two."""
    if key == "misregistration" and isinstance(v, (list, tuple)) and v and not isinstance(v[0], (list, tuple)):
        return [tuple(v)]
    return _as_list(v)


def _method_spec(m) -> MethodSpec:
    if isinstance(m, str):
        return MethodSpec(m, modes=("oracle",))
    if not isinstance(m, dict) or "name" not in m:
        raise StudyError(f"a method entry needs a name: {m!r}")
    unknown = set(m) - {"name", "preset", "modes", "mode", "params", "label"}
    if unknown:
        raise StudyError(f"unknown keys in method {m['name']!r}: {sorted(unknown)}")
    modes = tuple(_as_list(m.get("modes", m.get("mode", "oracle"))))
    bad = [x for x in modes if x not in KNOWLEDGE_MODES]
    if bad:
        raise StudyError(f"unknown knowledge modes {bad} for {m['name']!r}; use {KNOWLEDGE_MODES}")
    return MethodSpec(m["name"], m.get("preset", "default"), modes, dict(m.get("params", {})), m.get("label"))


def _design_points(axes: dict[str, list], design: str, base) -> list[dict]:
    """The grid points of a design: every combination (factorial) or the base case and one axis
    varied at a time (one_at_a_time; ``base`` maps every axis to its base value), in a stable order
    without duplicates."""
    if design not in DESIGNS:
        raise StudyError(f"design must be one of {DESIGNS}, got {design!r}")
    if design == "factorial":
        if base is not None:
            raise StudyError("a [base] table only goes with design = \"one_at_a_time\"")
        return [dict(zip(axes.keys(), combo)) for combo in itertools.product(*axes.values())]
    if not isinstance(base, dict):
        raise StudyError("design = \"one_at_a_time\" needs a [base] table with the base value of every grid axis")
    extra = set(base) - set(axes)
    if extra:
        raise StudyError(f"[base] names axes that are not in the grid: {sorted(extra)}")
    missing = [k for k in axes if k not in base and len(axes[k]) > 1]
    if missing:
        raise StudyError(f"[base] lacks the base value of the grid axes {missing}")
    norm = lambda k, v: tuple(v) if isinstance(v, list) else v  # noqa: E731  (TOML pairs are lists)
    base = {k: base.get(k, axes[k][0]) for k in axes}  # a single-valued axis is its own base
    base_point = {k: _axis(k, base[k])[0] if k == "misregistration" else base[k] for k in axes}
    for k, v in base_point.items():
        if norm(k, v) not in [norm(k, x) for x in axes[k]]:
            raise StudyError(f"the base value {v!r} of axis {k!r} is not one of its grid values {axes[k]}")
    points, seen = [dict(base_point)], {json.dumps(base_point, sort_keys=True, default=str)}
    for k, values in axes.items():
        for v in values:
            p = dict(base_point, **{k: v})
            key = json.dumps(p, sort_keys=True, default=str)
            if key not in seen:
                seen.add(key)
                points.append(p)
    return points


def study_from_dict(d: dict, name: str | None = None) -> Study:
    """Validate a parsed study mapping and expand its degradation grid."""
    known = {"name", "scenes", "scene_options", "seeds", "grid", "methods", "metrics", "device", "iterations", "save_outputs",
             "design", "base"}
    unknown = set(d) - known
    if unknown:
        raise StudyError(f"unknown top-level keys in study: {sorted(unknown)}; known: {sorted(known)}")
    scenes = [str(s) for s in _as_list(d.get("scenes", ["synthetic"]))]
    grid = dict(d.get("grid", {}))
    bad = set(grid) - set(GRID_KEYS)
    if bad:
        raise StudyError(f"unknown grid axes {sorted(bad)}; known: {GRID_KEYS}")
    if "scale" not in grid:
        raise StudyError("the grid needs at least one scale factor")
    axes = {k: _axis(k, v) for k, v in grid.items()}
    for k, v in axes.items():
        if not v:
            raise StudyError(f"grid axis {k!r} is empty")
    if "snr" in axes and ({"snr_hs", "snr_ms"} & set(axes)):
        raise StudyError("give either the paired 'snr' axis or 'snr_hs'/'snr_ms', not both")
    degradations = []
    for params in _design_points(axes, d.get("design", "factorial"), d.get("base")):
        if "snr" in params:  # one value for both images, or an [hs, ms] pair
            snr = params.pop("snr")
            params["snr_hs"], params["snr_ms"] = tuple(snr) if isinstance(snr, (list, tuple)) else (snr, snr)
        try:
            deg = Degradation(**params)
        except (TypeError, ValueError) as exc:
            raise StudyError(f"bad degradation {params}: {exc}") from exc
        if deg not in degradations:  # one_at_a_time may reach a case twice (e.g. 'snr' vs 'snr_hs')
            degradations.append(deg)
    methods = [_method_spec(m) for m in _as_list(d.get("methods", []))]
    if not methods:
        raise StudyError("the study names no methods")
    metrics = dict(d.get("metrics", {}))
    save = d.get("save_outputs", "first")
    if save not in ("first", "all", "none"):
        raise StudyError("save_outputs must be 'first', 'all' or 'none'")
    return Study(
        name=str(d.get("name", name or "study")),
        scenes=scenes,
        scene_options=dict(d.get("scene_options", {})),
        degradations=degradations,
        seeds=[int(s) for s in _as_list(d.get("seeds", [0]))],
        methods=methods,
        metrics_preset=str(metrics.get("preset", "hsibench")),
        crop=int(metrics.get("crop", 0)),
        device=str(d.get("device", "cpu")),
        iterations=d.get("iterations"),
        save_outputs=save,
        source=d,
    )


def load_study(path: str | Path) -> Study:
    """Read a study from a .toml, .yaml/.yml or .json file."""
    path = Path(path)
    if not path.is_file():
        raise StudyError(f"study file not found: {path}")
    text = path.read_text()
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                import tomli as tomllib
            d = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            import yaml

            d = yaml.safe_load(text)
        elif suffix == ".json":
            d = json.loads(text)
        else:
            raise StudyError(f"unknown study format {suffix!r}: use .toml, .yaml or .json")
    except StudyError:
        raise
    except Exception as exc:  # parser errors of three libraries
        raise StudyError(f"cannot parse {path}: {exc}") from exc
    if not isinstance(d, dict):
        raise StudyError(f"{path}: a study is a mapping at top level")
    return study_from_dict(d, name=path.stem)
