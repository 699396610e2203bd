"""Synthetic scenes: real library spectra mixed by spatially structured abundance maps.

The embedded default scene of the suite, so that nothing has to be downloaded. Spectra come from the
bundled library of the MIT-licensed `earthlib` package (read as files: importing earthlib is not
needed). Abundances combine warped Voronoi cells (sharp edges), low-pass noise (smooth gradients),
fine noise (texture) and small discs (sub-pixel detail); they are non-negative and sum to one, so
the cube has spectral rank <= the number of endmembers.
"""
from __future__ import annotations

import csv
import functools
import importlib.util
import re
from pathlib import Path

import numpy as np

from .scene import DataError, Scene

GENERATOR_VERSION = "1"


# ------------------------------------------------------------------------------------ the library

def _earthlib_data_dir() -> Path:
    """Folder of earthlib's bundled data, located without importing earthlib (it pulls Earth Engine)."""
    spec = importlib.util.find_spec("earthlib")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("synthetic scenes need the 'earthlib' package (pip install earthlib): not installed")
    for loc in spec.submodule_search_locations:
        d = Path(loc) / "data"
        if (d / "spectra.sli").is_file() and (d / "spectra.sli.hdr").is_file() and (d / "spectra.csv").is_file():
            return d
    raise DataError("earthlib is installed but its data files spectra.sli/.hdr/.csv were not found")


def _parse_envi_header(text: str) -> dict[str, str]:
    """Minimal ENVI header parser: 'key = value' and 'key = { ... }' (multi-line) entries."""
    out: dict[str, str] = {}
    for m in re.finditer(r"^\s*([^=\n]+?)\s*=\s*(\{[^}]*\}|[^\n]*)", text, flags=re.M):
        out[m.group(1).strip().lower()] = m.group(2).strip()
    return out


def _braces(value: str) -> list[str]:
    return [v.strip() for v in value.strip().lstrip("{").rstrip("}").split(",") if v.strip()]


@functools.lru_cache(maxsize=1)
def earthlib_library() -> tuple[np.ndarray, np.ndarray, tuple[dict, ...], str]:
    """earthlib's full library: (wavelengths nm (n_wl,), spectra (n_spectra, n_wl), metadata rows, version)."""
    d = _earthlib_data_dir()
    hdr = _parse_envi_header((d / "spectra.sli.hdr").read_text())
    try:
        samples, lines = int(hdr["samples"]), int(hdr["lines"])
        dtype = {"4": "f4", "5": "f8"}[hdr["data type"]]
        order = "<" if hdr.get("byte order", "0") == "0" else ">"
        offset = int(hdr.get("header offset", "0"))
        wl = np.array([float(v) for v in _braces(hdr["wavelength"])], dtype=np.float64)
    except (KeyError, ValueError) as exc:
        raise DataError(f"earthlib spectra.sli.hdr is not a readable ENVI library header ({exc})") from exc
    units = hdr.get("wavelength units", "").lower()
    if units.startswith("micro") or units in ("um", "µm") or (not units and wl.max() < 30):
        wl = wl * 1000.0
    data = np.fromfile(d / "spectra.sli", dtype=order + dtype, offset=offset)
    if data.size != samples * lines or wl.size != samples:
        raise DataError(f"earthlib spectra.sli has {data.size} values, header says {lines}x{samples}")
    spectra = data.reshape(lines, samples).astype(np.float64)
    with open(d / "spectra.csv", newline="") as fh:
        meta = tuple(csv.DictReader(fh))
    if len(meta) != lines:
        raise DataError(f"earthlib spectra.csv has {len(meta)} rows for {lines} spectra")
    try:
        from importlib.metadata import version
        ver = version("earthlib")
    except Exception:  # noqa: BLE001 - version is informative only
        ver = "unknown"
    return wl, spectra, meta, ver


def _resample(lib_wl: np.ndarray, spectra: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Linear interpolation of library spectra (rows) at band centres (nm); edges held constant."""
    return np.stack([np.interp(centres, lib_wl, s) for s in spectra])


def _pick_spectra(rng: np.random.Generator, endmembers: int, centres: np.ndarray, n_candidates: int = 24):
    """Choose distinct, well-conditioned spectra, round-robin over the LEVEL_2 classes.

    For each slot a few random spectra of the slot's class (preferring unused LEVEL_3 sub-classes) are
    drawn, and the one that keeps the chosen set best conditioned (largest smallest singular value of
    the unit-norm spectra) is kept, so unmixing-style methods see identifiable endmembers.
    """
    lib_wl, spectra, meta, _ = earthlib_library()
    level2 = sorted({m["LEVEL_2"] for m in meta})
    groups: dict[str, dict[str, list[int]]] = {c: {} for c in level2}
    for i, m in enumerate(meta):
        groups[m["LEVEL_2"]].setdefault(m["LEVEL_3"], []).append(i)
    class_order = [level2[i] for i in rng.permutation(len(level2))]
    chosen: list[int] = []
    resampled: list[np.ndarray] = []
    used_sub: set[tuple[str, str]] = set()
    for k in range(endmembers):
        cls = class_order[k % len(class_order)]
        subs = sorted(groups[cls])
        fresh = [s for s in subs if (cls, s) not in used_sub] or subs
        best, valid = None, 0
        for _ in range(n_candidates * 20):
            sub = fresh[int(rng.integers(len(fresh)))]
            members = groups[cls][sub]
            idx = members[int(rng.integers(len(members)))]
            spec = _resample(lib_wl, spectra[idx:idx + 1], centres)[0]
            if idx in chosen or spec.max() < 0.02:
                continue
            mat = np.stack(resampled + [spec])
            mat = mat / np.linalg.norm(mat, axis=1, keepdims=True)
            sv = np.linalg.svd(mat, compute_uv=False)
            score = float(sv[min(len(mat), len(centres)) - 1])
            if best is None or score > best[0]:
                best = (score, idx, spec, sub)
            valid += 1
            if valid >= n_candidates:
                break
        if best is None:
            raise DataError(f"could not find {endmembers} usable library spectra over "
                            f"{centres.min():g}-{centres.max():g} nm")
        _, idx, spec, sub = best
        chosen.append(idx)
        resampled.append(spec)
        used_sub.add((cls, sub))
    return chosen, np.stack(resampled, axis=1)  # (bands, endmembers)


# ------------------------------------------------------------------------------- the abundances

def _filtered_noise(rng: np.random.Generator, shape: tuple[int, int, int], sigma: float) -> np.ndarray:
    """Gaussian noise low-pass filtered by a Gaussian of std ``sigma`` px (FFT), scaled to unit std."""
    n, rows, cols = shape
    noise = rng.standard_normal(shape)
    fy = np.fft.fftfreq(rows)[:, None]
    fx = np.fft.rfftfreq(cols)[None, :]
    transfer = np.exp(-2.0 * (np.pi * sigma) ** 2 * (fx ** 2 + fy ** 2))
    out = np.fft.irfft2(np.fft.rfft2(noise) * transfer, s=(rows, cols))
    out -= out.mean(axis=(1, 2), keepdims=True)
    std = out.std(axis=(1, 2), keepdims=True)
    return out / np.where(std > 0, std, 1.0)


def _abundances(rng: np.random.Generator, rows: int, cols: int, endmembers: int) -> np.ndarray:
    """(endmembers, rows, cols) maps, >= 0, summing to 1: sharp cells + smooth drift + texture + discs."""
    from scipy.spatial import cKDTree

    e = endmembers
    extent = max(rows, cols)
    # Warped Voronoi cells: piecewise-constant regions with sharp, slightly curved borders.
    n_cells = int(np.clip(round(np.sqrt(rows * cols) / 8.0), e, 64))
    sites = rng.uniform(0.0, 1.0, size=(n_cells, 2)) * [rows, cols]
    warp = _filtered_noise(rng, (2, rows, cols), sigma=extent / 12.0) * (extent / 40.0)
    rr, cc = np.meshgrid(np.arange(rows, dtype=np.float64), np.arange(cols, dtype=np.float64), indexing="ij")
    pts = np.stack([(rr + warp[0]).ravel(), (cc + warp[1]).ravel()], axis=1)
    label = cKDTree(sites).query(pts)[1].reshape(rows, cols)
    material = np.concatenate([rng.permutation(e), rng.integers(0, e, size=max(n_cells - e, 0))])[:n_cells]
    cell_logits = 4.0 * np.eye(e)[material] + rng.normal(0.0, 0.6, size=(n_cells, e))
    logits = np.moveaxis(cell_logits[label], -1, 0)
    # Smooth gradients and fine texture.
    logits += 1.5 * _filtered_noise(rng, (e, rows, cols), sigma=extent / 10.0)
    logits += 0.35 * _filtered_noise(rng, (e, rows, cols), sigma=0.8)
    # Small discs (1-3 px radius) of a pure material: detail near the scale of a few HR pixels.
    n_discs = int(round(rows * cols / 1500.0))
    if n_discs:
        centres = rng.uniform(0.0, 1.0, size=(n_discs, 2)) * [rows, cols]
        radii = rng.uniform(1.0, 3.0, size=n_discs)
        mats = rng.integers(0, e, size=n_discs)
        for (cy, cx), r, m in zip(centres, radii, mats):
            r0, r1 = max(int(cy - r), 0), min(int(cy + r) + 2, rows)
            c0, c1 = max(int(cx - r), 0), min(int(cx + r) + 2, cols)
            inside = (rr[r0:r1, c0:c1] - cy) ** 2 + (cc[r0:r1, c0:c1] - cx) ** 2 <= r * r
            logits[m, r0:r1, c0:c1][inside] += 8.0
    logits -= logits.max(axis=0, keepdims=True)
    a = np.exp(logits)
    a /= a.sum(axis=0, keepdims=True)
    return a


# ------------------------------------------------------------------------------- public entry

#: Limits of the generator (checked before anything is allocated): each side ≤ MAX_SIDE pixels,
#: ≤ MAX_BANDS bands, and ≤ MAX_VOXELS values in the cube (2**28: 1 GiB as float32).
MAX_SIDE = 8192
MAX_BANDS = 4096
MAX_VOXELS = 2**28


def _int_arg(what: str, v) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise DataError(f"synthetic scene {what} must be an integer, got {v!r}")
    return int(v)


def _check_size(size) -> tuple[int, int]:
    if np.isscalar(size):
        rows = cols = size
    else:
        try:
            rows, cols = tuple(size)
        except (TypeError, ValueError):
            raise DataError(f"synthetic scene size is an integer or a (rows, cols) pair, got {size!r}") from None
    rows, cols = _int_arg("size", rows), _int_arg("size", cols)
    if rows < 2 or cols < 2:
        raise DataError(f"synthetic scene size must be at least 2x2, got {rows}x{cols}")
    if rows > MAX_SIDE or cols > MAX_SIDE:
        raise DataError(f"synthetic scene size {rows}x{cols} exceeds the limit of {MAX_SIDE} pixels per side")
    return rows, cols


def check_synthetic_params(size=128, bands: int = 31, endmembers: int = 5, seed: int = 0) -> tuple[int, int, int, int, int]:
    """Validate the generator's arguments without generating anything.

    Parameters
    ----------
    size : int or (int, int)
        Side, or (rows, cols); each in [2, MAX_SIDE].
    bands, endmembers, seed : int
        ``1 ≤ bands ≤ MAX_BANDS``, ``1 ≤ endmembers ≤ 50``, ``seed ≥ 0``; at most MAX_VOXELS values.

    Returns
    -------
    (rows, cols, bands, endmembers, seed)

    Raises
    ------
    DataError
        Naming the argument and the limit.

    Example
    -------
    >>> check_synthetic_params(64, 31)
    (64, 64, 31, 5, 0)
    """
    rows, cols = _check_size(size)
    bands, endmembers, seed = _int_arg("bands", bands), _int_arg("endmembers", endmembers), _int_arg("seed", seed)
    if bands < 1:
        raise DataError(f"synthetic scene needs at least 1 band, got {bands}")
    if bands > MAX_BANDS:
        raise DataError(f"synthetic scene has {bands} bands; the limit is {MAX_BANDS}")
    if not 1 <= endmembers <= 50:
        raise DataError(f"synthetic scene endmembers must be in 1..50, got {endmembers}")
    if rows * cols * max(bands, endmembers) > MAX_VOXELS:
        raise DataError(f"synthetic scene {rows}x{cols}x{bands} has {rows * cols * max(bands, endmembers)} values "
                        f"(with {endmembers} endmembers); the limit is {MAX_VOXELS} (2**28)")
    if seed < 0:
        raise DataError(f"synthetic scene seed must be >= 0, got {seed}")
    return rows, cols, bands, endmembers, seed


def synthetic_components(size: int | tuple[int, int] = 128, bands: int = 31, endmembers: int = 5, seed: int = 0,
                         wavelength_range=(400.0, 700.0)) -> dict:
    """The parts of a synthetic scene: wavelengths, spectra (bands, E), abundances (E, rows, cols), picks."""
    rows, cols, bands, endmembers, seed = check_synthetic_params(size, bands, endmembers, seed)
    try:
        lo, hi = (float(v) for v in wavelength_range)
    except (TypeError, ValueError):
        raise DataError(f"wavelength_range must be (lo, hi) in nm, got {wavelength_range!r}") from None
    if not (np.isfinite(hi) and hi > lo > 0):
        raise DataError(f"wavelength_range must be (lo, hi) with 0 < lo < hi nm, got {wavelength_range}")
    centres = np.linspace(lo, hi, bands) if bands > 1 else np.array([(lo + hi) / 2.0])
    ss_lib, ss_space = np.random.SeedSequence(seed).spawn(2)
    picks, spectra = _pick_spectra(np.random.default_rng(ss_lib), endmembers, centres)
    abund = _abundances(np.random.default_rng(ss_space), rows, cols, endmembers)
    return {"wavelengths": centres.astype(np.float64), "spectra": spectra, "abundances": abund, "picks": picks,
            "rows": rows, "cols": cols}


def synthetic_scene(size: int | tuple[int, int] = 128, bands: int = 31, endmembers: int = 5, seed: int = 0,
                    wavelength_range=(400.0, 700.0), name: str | None = None) -> Scene:
    """A deterministic synthetic scene (same arguments -> byte-identical cube), normalised to [0, 1].

    Library spectra (``earthlib``) resampled to ``bands`` centres over ``wavelength_range``, mixed by
    structured abundance maps that sum to one.

    Parameters
    ----------
    size : int or (int, int)
        Rows (and columns) of the cube, at least 2.
    bands : int
        Number of HS bands (≥ 1), equally spaced centres over ``wavelength_range``.
    endmembers : int
        Number of library spectra mixed (1-50).
    seed : int
        Chooses which library spectra are mixed and how (the abundance maps).
    wavelength_range : (float, float)
        First and last band centre in nm.
    name : str or None
        Scene name; default ``synthetic_<rows>x<cols>x<bands>_e<endmembers>_s<seed>``.

    Returns
    -------
    Scene
        ``cube`` (bands, rows, cols) float32 with maximum 1, ``wavelengths`` in nm, ``provenance``
        (generator version, library, picks) and ``scaling`` (the reflectance peak divided out).

    Raises
    ------
    DataError
        A bad size, band or endmember count, or ``earthlib`` missing or unreadable.

    Examples
    --------
    >>> s = synthetic_scene(32, 8, endmembers=3, seed=1)
    >>> s.cube.shape, str(s.cube.dtype), float(s.cube.max())
    ((8, 32, 32), 'float32', 1.0)
    >>> bool((synthetic_scene(32, 8, endmembers=3, seed=1).cube == s.cube).all())
    True
    """
    comp = synthetic_components(size, bands, endmembers, seed, wavelength_range)
    spectra, abund = comp["spectra"], comp["abundances"]
    rows, cols, centres = comp["rows"], comp["cols"], comp["wavelengths"]
    # einsum without optimisation runs numpy's own loops (no BLAS): bitwise reproducible.
    cube = np.einsum("be,ehw->bhw", spectra, abund, optimize=False)
    peak = float(cube.max())
    lib_wl, _, meta, ver = earthlib_library()
    notes = []
    if centres.min() < lib_wl.min() or centres.max() > lib_wl.max():
        notes.append(f"outside library range {lib_wl.min():g}-{lib_wl.max():g} nm: edge values held")
    gaps = [(a, b) for a, b in zip(lib_wl[:-1], lib_wl[1:]) if b - a > 15.0]
    if any(((centres > a) & (centres < b)).any() for a, b in gaps):
        notes.append("some centres fall in library water-absorption gaps "
                     + ", ".join(f"{a:g}-{b:g}" for a, b in gaps) + " nm: linearly interpolated")
    lo, hi = float(centres.min()), float(centres.max())
    prov = {
        "source": "synthetic", "loader": "synthetic", "variable": None, "layout": [],
        "generator": {"version": GENERATOR_VERSION, "size": [rows, cols], "bands": len(centres),
                      "endmembers": spectra.shape[1], "seed": int(seed),
                      "wavelength_range": [float(v) for v in wavelength_range]},
        "spectra": [{"index": int(i), "name": meta[i]["NAME"], "level_2": meta[i]["LEVEL_2"],
                     "level_3": meta[i]["LEVEL_3"], "level_4": meta[i]["LEVEL_4"]} for i in comp["picks"]],
        "library": f"earthlib {ver} spectra.sli ({len(meta)} spectra), linear resampling",
        "library_notes": notes,
        "abundances": "warped Voronoi cells + low-pass noise + fine texture + small discs, softmax (sum to 1)",
        "wavelength_source": f"synthetic: linear {lo:g}-{hi:g} nm (exact by construction)",
        "dropped_bands": [], "crop": None, "normalized": True,
        "reflectance_peak": peak,
    }
    label = name or f"synthetic_{rows}x{cols}x{len(centres)}_e{spectra.shape[1]}_s{int(seed)}"
    return Scene(cube=(cube / peak).astype(np.float32), wavelengths=centres, name=label,
                 provenance=prov, scaling=peak)


_SYNTH_RE = re.compile(r"^synthetic(?::(\d+)(?:x(\d+))?(?:x(\d+))?(?::(\d+))?)?$", re.I)


def parse_synthetic_source(source: str) -> dict:
    """Parse 'synthetic', 'synthetic:<size>x<bands>[:seed]' or 'synthetic:<rows>x<cols>x<bands>[:seed]'."""
    m = _SYNTH_RE.match(source.strip())
    if not m:
        raise DataError(f"bad synthetic source '{source}': use 'synthetic', 'synthetic:64x31', "
                        "'synthetic:64x31:3' or 'synthetic:64x48x31:3'")
    a, b, c, seed = m.groups()
    out: dict = {}
    if a is not None:
        if c is not None:
            out["size"], out["bands"] = (int(a), int(b)), int(c)
        elif b is not None:
            out["size"], out["bands"] = int(a), int(b)
        else:
            out["size"] = int(a)
    if seed is not None:
        out["seed"] = int(seed)
    return out
