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
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..degrade.degradation import Degradation
from ..methods.base import KNOWLEDGE_MODES, check_device

__all__ = ["StudyError", "MethodSpec", "Study", "Job", "load_study", "study_from_dict"]

GRID_KEYS = ("scale", "kernel", "sensor", "snr", "snr_hs", "snr_ms", "boundary", "noise_per_band", "misregistration",
             "srf_sampling")
DESIGNS = ("factorial", "one_at_a_time")


class StudyError(ValueError):
    """A malformed study file: unknown keys, empty axes, unknown modes, wrong value types, unknown
    methods/presets/parameters/sensors/kernels/metric presets, missing scenes."""


#: Keywords a study's ``scene_options`` may pass to :func:`hsibench.data.load_scene`.
SCENE_OPTIONS = ("name", "key", "layout", "wavelengths", "normalize", "drop_constant", "dataset", "sensor",
                 "sort_bands", "endmembers", "wavelength_range", "crop")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _where(path: str, v) -> str:
    return f"{path} = {json.dumps(v, default=str)}"


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


def _method_spec(m, i: int) -> MethodSpec:
    if isinstance(m, str):
        m = {"name": m}
    if not isinstance(m, dict) or "name" not in m:
        raise StudyError(f"methods[{i}] needs a name: {m!r}")
    if not isinstance(m["name"], str):
        raise StudyError(f"methods[{i}].name must be a string, got {m['name']!r}")
    unknown = set(m) - {"name", "preset", "modes", "mode", "params", "label"}
    if unknown:
        raise StudyError(f"unknown keys in method {m['name']!r}: {sorted(unknown)}")
    if "mode" in m and "modes" in m:
        raise StudyError(f"method {m['name']!r}: give 'modes' or 'mode', not both")
    modes = tuple(_as_list(m.get("modes", m.get("mode", "oracle"))))
    if not modes:
        raise StudyError(f"method {m['name']!r}: 'modes' is empty")
    bad = [x for x in modes if not isinstance(x, str) or x not in KNOWLEDGE_MODES]
    if bad:
        raise StudyError(f"unknown knowledge modes {bad} for {m['name']!r}; use {KNOWLEDGE_MODES}")
    if len(set(modes)) != len(modes):
        raise StudyError(f"method {m['name']!r}: repeated modes {list(modes)}")
    preset = m.get("preset", "default")
    if not isinstance(preset, str):
        raise StudyError(f"method {m['name']!r}: preset must be a string, got {preset!r}")
    params = m.get("params", {})
    if not isinstance(params, dict):
        raise StudyError(f"method {m['name']!r}: params must be a mapping, got {params!r}")
    label = m.get("label")
    if label is not None and not isinstance(label, str):
        raise StudyError(f"method {m['name']!r}: label must be a string, got {label!r}")
    # Instantiate-check against the registry (name, preset, parameter names and types); runs nothing.
    from ..methods.registry import get_method

    try:
        get_method(m["name"])(preset=preset, **params)
    except (ValueError, TypeError) as exc:
        raise StudyError(f"methods[{i}]: {exc}") from None
    return MethodSpec(m["name"], preset, modes, dict(params), label)


def _check_scene(scene, i: int, options: dict) -> str:
    if not isinstance(scene, str) or not scene.strip():
        raise StudyError(f"scenes[{i}] must be a non-empty string, got {scene!r}")
    if scene.strip().startswith("pair:"):  # a real pair (no ground truth): known name and protocol
        from ..data.pairs import PAIRS, parse_pair_source

        if options.get("crop") is not None:
            raise StudyError(f"scenes[{i}]: {scene!r} is a real pair, which scene_options.crop does not crop; "
                             "drop the option or the pair")

        try:
            pair_name, _ = parse_pair_source(scene.strip())
        except ValueError as exc:
            raise StudyError(f"scenes[{i}]: {exc}") from None
        if pair_name not in PAIRS:
            raise StudyError(f"scenes[{i}]: unknown real pair {pair_name!r}; known: {sorted(PAIRS)}")
        return scene
    from ..data.loaders import resolve_crop
    from ..data.scene import DataError

    try:  # one crop: the "[r0:r1,c0:c1]" suffix or scene_options.crop (it is checked against the scene when loaded)
        base, _, _ = resolve_crop(scene, options.get("crop"))
    except DataError as exc:
        raise StudyError(f"scenes[{i}]: {exc}") from None
    if base.strip().lower().startswith("synthetic"):
        from ..data.synthetic import check_synthetic_params, parse_synthetic_source

        try:
            params = parse_synthetic_source(base)
            e = options.get("endmembers", 5)
            check_synthetic_params(params.get("size", 128), params.get("bands", 31), e, params.get("seed", 0))
        except ValueError as exc:
            raise StudyError(f"scenes[{i}]: {exc}") from None
        return scene
    from ..paths import resolve_data_path

    try:
        path = resolve_data_path(base)
    except FileNotFoundError as exc:
        raise StudyError(f"scenes[{i}]: {exc}") from None
    if not path.exists():
        raise StudyError(f"scenes[{i}]: {scene!r}: no such file or folder")
    return scene


def _check_seeds(v) -> list[int]:
    seeds = _as_list(v)
    if not seeds:
        raise StudyError("seeds is empty")
    bad = [x for x in seeds if not _is_int(x) or x < 0]
    if bad:
        raise StudyError(f"seeds must be non-negative integers, got {bad}")
    if len(set(seeds)) != len(seeds):
        raise StudyError(f"seeds repeat: {seeds}")
    return seeds


def _snr_value(v, where: str):
    if v is None or (isinstance(v, str) and v.strip().lower() in ("inf", "none", "off", "clean")):
        return v
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return v
    raise StudyError(f"{where}: an SNR is a number of dB or 'inf', got {v!r}")


def _check_axis_value(key: str, v, where: str):
    """Type of one grid value (ranges are checked when the Degradation is built)."""
    if key == "scale" and not _is_int(v):
        raise StudyError(f"{where}: scale must be an integer, got {v!r}")
    if key in ("kernel", "sensor", "boundary") and not isinstance(v, str):
        raise StudyError(f"{where}: {key} must be a string, got {v!r}")
    if key == "noise_per_band" and not isinstance(v, bool):
        raise StudyError(f"{where}: noise_per_band must be true or false, got {v!r}")
    if key in ("snr_hs", "snr_ms"):
        _snr_value(v, where)
    if key == "snr":
        if isinstance(v, (list, tuple)):
            if len(v) != 2:
                raise StudyError(f"{where}: a paired snr is [hs, ms] (2 values), got {list(v)!r}")
            for x in v:
                _snr_value(x, where)
        else:
            _snr_value(v, where)
    if key == "misregistration":
        if not (isinstance(v, (list, tuple)) and len(v) == 2
                and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)):
            raise StudyError(f"{where}: misregistration is a [rows, cols] pair of numbers, got {v!r}")


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
    """Validate a parsed study mapping and expand its degradation grid.

    Everything is checked here, before any job runs: keys, value types (never coerced: ``2.5`` is
    not a scale, ``true`` not a scale, ``0.7`` not a seed), every degradation (kernels, sensors,
    SNRs), method names / presets / parameters against the registry, metric preset and crop,
    device name, iterations, and that every scene exists (synthetic sources within the generator's
    limits).

    Parameters
    ----------
    d : dict
        The parsed study (TOML/YAML/JSON).
    name : str, optional
        Study name if ``d`` has none (a file's stem).

    Returns
    -------
    Study

    Raises
    ------
    StudyError
        One line naming the key and value at fault.

    Example
    -------
    >>> st = study_from_dict({"scenes": ["synthetic:32x31:0"], "grid": {"scale": 2},
    ...                       "methods": [{"name": "gsa", "modes": ["blind"]}]})
    >>> len(st.jobs())
    1
    """
    if not isinstance(d, dict):
        raise StudyError(f"a study is a mapping at top level, got {type(d).__name__}")
    known = {"name", "scenes", "scene_options", "seeds", "grid", "methods", "metrics", "device", "iterations", "save_outputs",
             "design", "base"}
    unknown = set(d) - known
    if unknown:
        raise StudyError(f"unknown top-level keys in study: {sorted(unknown)}; known: {sorted(known)}")
    study_name = d.get("name", name or "study")
    if not isinstance(study_name, str) or not _SAFE_NAME.match(study_name) or ".." in study_name:
        raise StudyError(f"study name {study_name!r} must be letters, digits, '.', '_' or '-' (no '/', no '..'): "
                         "it names the results folder")
    scene_options = d.get("scene_options", {})
    if not isinstance(scene_options, dict):
        raise StudyError(f"scene_options must be a mapping, got {scene_options!r}")
    bad = set(scene_options) - set(SCENE_OPTIONS)
    if bad:
        raise StudyError(f"unknown scene_options {sorted(bad)}; known: {list(SCENE_OPTIONS)}")
    if scene_options.get("crop") is not None:
        from ..data.loaders import check_crop
        from ..data.scene import DataError

        try:
            check_crop(scene_options["crop"])
        except DataError as exc:
            raise StudyError(f"scene_options.{exc}") from None
    scenes_raw = _as_list(d.get("scenes", ["synthetic"]))
    if not scenes_raw:
        raise StudyError("scenes is empty")
    scenes = [_check_scene(s, i, scene_options) for i, s in enumerate(scenes_raw)]
    grid = d.get("grid", {})
    if not isinstance(grid, dict):
        raise StudyError(f"grid must be a mapping of axes, got {grid!r}")
    grid = dict(grid)
    bad = set(grid) - set(GRID_KEYS)
    if bad:
        raise StudyError(f"unknown grid axes {sorted(bad)}; known: {GRID_KEYS}")
    if "scale" not in grid:
        raise StudyError("the grid needs at least one scale factor")
    axes = {k: _axis(k, v) for k, v in grid.items()}
    for k, v in axes.items():
        if not v:
            raise StudyError(f"grid axis {k!r} is empty")
        for j, x in enumerate(v):
            _check_axis_value(k, x, f"grid.{k}[{j}] = {json.dumps(x, default=str)}")
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
    methods_raw = d.get("methods", [])
    if isinstance(methods_raw, dict):
        raise StudyError("methods is a list of tables ([[methods]] in TOML), got a single mapping")
    methods = [_method_spec(m, i) for i, m in enumerate(_as_list(methods_raw))]
    if not methods:
        raise StudyError("the study names no methods")
    metrics = d.get("metrics", {})
    if not isinstance(metrics, dict):
        raise StudyError(f"metrics must be a mapping such as {{ preset = \"hsibench\", crop = 0 }}, got {metrics!r}")
    bad = set(metrics) - {"preset", "crop"}
    if bad:
        raise StudyError(f"unknown metrics keys {sorted(bad)}; known: ['crop', 'preset']")
    metrics_preset = metrics.get("preset", "hsibench")
    from ..metrics import PRESETS

    if not isinstance(metrics_preset, str) or metrics_preset not in PRESETS:
        raise StudyError(f"unknown metric preset {metrics_preset!r}; known: {sorted(PRESETS)}")
    crop = metrics.get("crop", 0)
    if not _is_int(crop) or crop < 0:
        raise StudyError(f"metrics.crop must be a non-negative integer, got {crop!r}")
    device = d.get("device", "cpu")
    try:
        device = check_device(device, require_available=False)
    except ValueError as exc:
        raise StudyError(str(exc)) from None
    iterations = d.get("iterations")
    if iterations is not None and (not _is_int(iterations) or iterations < 1):
        raise StudyError(f"iterations must be a positive integer, got {iterations!r}")
    save = d.get("save_outputs", "first")
    if save not in ("first", "all", "none"):
        raise StudyError("save_outputs must be 'first', 'all' or 'none'")
    return Study(
        name=study_name,
        scenes=scenes,
        scene_options=dict(scene_options),
        degradations=degradations,
        seeds=_check_seeds(d.get("seeds", [0])),
        methods=methods,
        metrics_preset=metrics_preset,
        crop=crop,
        device=device,
        iterations=iterations,
        save_outputs=save,
        source=d,
    )


def load_study(path: str | Path) -> Study:
    """Read a study from a .toml, .yaml/.yml or .json file."""
    path = Path(path)
    if not path.is_file():
        raise StudyError(f"study file not found: {path}")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise StudyError(f"cannot read {path}: {exc}") from None
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
