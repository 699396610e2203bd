"""Read hyperspectral cubes from MATLAB (v5 / v7.3), CAVE PNG folders, ENVI, TIFF and NumPy files.

Every loader returns the cube as (bands, rows, cols) and records in the provenance how the file's
layout was converted and where the wavelengths came from (file, or a labelled sensor model).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..paths import resolve_data_path
from . import catalog
from .scene import DataError, Scene
from .synthetic import parse_synthetic_source, synthetic_scene

MAT_EXT = {".mat"}
NPY_EXT = {".npy"}
NPZ_EXT = {".npz"}
TIFF_EXT = {".tif", ".tiff"}
ENVI_DATA_EXT = {".img", ".dat", ".raw", ".bsq", ".bil", ".bip", ".hsi", ".envi"}
SUPPORTED = ".mat (v5, v7.3), .npy, .npz, .tif/.tiff, ENVI (.hdr + data), a folder of CAVE *_ms_NN.png, 'synthetic[:...]'"

_NUMERIC_MAT_CLASSES = {"double", "single", "int8", "uint8", "int16", "uint16", "int32", "uint32",
                        "int64", "uint64", "logical"}
_AUX_VARS = ["nRow", "nCol", "nBand", "maxValue"] + list(catalog.INDEX_VARS) + catalog.WAVELENGTH_VARS
_CROP_SUFFIX = re.compile(r"^(.*)\[\s*(\d+)\s*:\s*(\d+)\s*,\s*(\d+)\s*:\s*(\d+)\s*\]\s*$")


def split_crop(source: str) -> tuple[str, tuple[int, int, int, int] | None]:
    """Split a ``"<source>[r0:r1,c0:c1]"`` scene spec into the source and its crop window.

    Parameters
    ----------
    source : str
        A scene spec, with or without a crop suffix.

    Returns
    -------
    (str, tuple of int or None)
        The spec without the suffix, and ``(r0, r1, c0, c1)`` (None without a suffix).

    Example
    -------
    >>> split_crop("data:cave/balloons_ms.mat[64:112,0:48]")
    ('data:cave/balloons_ms.mat', (64, 112, 0, 48))
    >>> split_crop("synthetic:32x8")
    ('synthetic:32x8', None)
    """
    window = _CROP_SUFFIX.match(source)
    if not window:
        return source, None
    return window.group(1), tuple(int(v) for v in window.group(2, 3, 4, 5))


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def check_crop(crop) -> int | tuple[int, int, int, int]:
    """Validate a crop: ``N`` (the central N×N window) or ``[r0, r1, c0, c1]`` (rows r0…r1−1, columns c0…c1−1).

    Whether the window fits a scene is checked when it is applied (:func:`crop_scene`).

    Parameters
    ----------
    crop : int or sequence of 4 int
        A positive size, or the window with ``0 <= r0 < r1`` and ``0 <= c0 < c1``. Booleans and
        floats are refused, not coerced.

    Returns
    -------
    int or (int, int, int, int)
        The crop as plain Python ints.

    Raises
    ------
    DataError
        Anything else.

    Example
    -------
    >>> check_crop(64), check_crop([4, 20, 0, 16])
    (64, (4, 20, 0, 16))
    """
    if _is_int(crop):
        if crop < 1:
            raise DataError(f"crop {crop} must be a positive number of pixels (the central N×N window)")
        return int(crop)
    if isinstance(crop, (list, tuple)) and len(crop) == 4 and all(_is_int(v) for v in crop):
        r0, r1, c0, c1 = (int(v) for v in crop)
        if not (0 <= r0 < r1 and 0 <= c0 < c1):
            raise DataError(f"crop [{r0}:{r1},{c0}:{c1}] is empty: need 0 <= r0 < r1 and 0 <= c0 < c1")
        return r0, r1, c0, c1
    raise DataError(f"crop must be N (the central N×N window) or [r0, r1, c0, c1] of integers, got {crop!r}")


def resolve_crop(source, crop=None) -> tuple:
    """The one crop of a scene: its ``[r0:r1,c0:c1]`` suffix or a ``crop`` argument, never both.

    Parameters
    ----------
    source : str or Path
        A scene spec, with or without a crop suffix.
    crop : int, sequence of 4 int or None
        A crop given apart from the source string (the ``crop`` keyword of :func:`load_scene`, a study's
        ``scene_options.crop``), see :func:`check_crop`.

    Returns
    -------
    (str or Path, int or tuple or None, bool)
        The spec without its suffix, the validated crop (None: no crop) and whether it came from
        the suffix.

    Raises
    ------
    DataError
        A bad crop, or a suffix and a ``crop`` argument together (the two would compose in different
        coordinates: the argument's window is relative to the suffix's).

    Example
    -------
    >>> resolve_crop("synthetic:32x8[0:16,4:20]")
    ('synthetic:32x8', (0, 16, 4, 20), True)
    >>> resolve_crop("synthetic:32x8", 16)
    ('synthetic:32x8', 16, False)
    """
    base, window = split_crop(source) if isinstance(source, str) else (source, None)
    if window is not None:
        if crop is not None:
            raise DataError(f"{source!r} has a crop suffix and a crop option ({crop!r}) as well; give one crop")
        return base, check_crop(window), True
    return base, (None if crop is None else check_crop(crop)), False


def crop_scene(scene: Scene, crop) -> Scene:
    """Apply a crop (see :func:`check_crop`) to a scene, refusing a window past its border.

    The one place a scene is cropped by a scene spec's suffix or a crop option; the crop is
    recorded in the provenance in source-pixel coordinates (:meth:`Scene.crop`). The name is kept.

    Parameters
    ----------
    scene : Scene
        The loaded scene.
    crop : int or sequence of 4 int
        ``N`` (the central N×N window, rounded towards the top-left) or ``[r0, r1, c0, c1]``.

    Returns
    -------
    Scene

    Raises
    ------
    DataError
        A bad crop, or one that does not fit the scene.

    Example
    -------
    >>> scene = load_scene("synthetic:32x8:1")
    >>> crop_scene(scene, 16).provenance["crop"], crop_scene(scene, [0, 8, 4, 20]).cube.shape
    ({'rows': [8, 24], 'cols': [8, 24]}, (8, 8, 16))
    """
    crop = check_crop(crop)
    if isinstance(crop, int):
        if crop > min(scene.rows, scene.cols):
            raise DataError(f"crop {crop} does not fit the {scene.rows}x{scene.cols} scene {scene.name!r}")
        r0, c0 = (scene.rows - crop) // 2, (scene.cols - crop) // 2
        r1, c1 = r0 + crop, c0 + crop
    else:
        r0, r1, c0, c1 = crop
        if r1 > scene.rows or c1 > scene.cols:
            raise DataError(f"crop [{r0}:{r1},{c0}:{c1}] does not fit the {scene.rows}x{scene.cols} scene {scene.name!r}")
    return scene.crop(slice(r0, r1), slice(c0, c1))
_LAYOUTS = {"chw": "CHW", "hwc": "HWC", "hcw": "HCW", "zhu": "zhu", "auto": None}


class _Raw:
    """What a format reader found: the array, the variable name, auxiliary variables, provenance."""

    def __init__(self, array: np.ndarray, loader: str, variable: str | None = None,
                 aux: dict | None = None, prov: dict | None = None, file_wavelengths=None,
                 wl_units: str | None = None, default_layout: str = "CHW"):
        self.array = array
        self.loader = loader
        self.variable = variable
        self.aux = aux or {}
        self.prov = prov or {}
        self.file_wavelengths = file_wavelengths
        self.wl_units = wl_units
        self.default_layout = default_layout


# ------------------------------------------------------------------------------------ helpers

def _fmt_shape(shape) -> str:
    return "x".join(str(int(n)) for n in shape)


def _norm_layout(layout: str | None) -> str | None:
    if layout is None:
        return None
    key = str(layout).strip().lower().replace("-", "").replace("_", "")
    key = {"zhupixelpercolumn": "zhu", "bsq": "chw"}.get(key, key)
    if key not in _LAYOUTS:
        raise DataError(f"unknown layout '{layout}': use one of CHW, HWC, HCW, zhu, auto")
    return _LAYOUTS[key]


def _to_chw(arr: np.ndarray, layout: str | None, default: str, hint_bands: int | None,
            known: str | None) -> tuple[np.ndarray, str]:
    """Move the band axis first; return the array and a description of the decision."""
    shape = arr.shape
    if layout is not None:
        chosen, why = layout, "layout= argument"
    elif hint_bands is not None and sum(n == hint_bands for n in shape) == 1:
        chosen = {0: "CHW", 1: "HCW", 2: "HWC"}[shape.index(hint_bands)]
        why = f"auto: the axis of length {hint_bands} matches the file's band/wavelength vector"
    elif known is not None:
        chosen, why = known, "known layout of this dataset"
    elif shape[0] != shape[2]:
        # Only CHW or HWC are guessed; the band axis is the smaller of the first and last axes.
        chosen = "CHW" if shape[0] < shape[2] else "HWC"
        why = "auto: band axis = the smaller of the first and last axes"
    else:
        chosen, why = default, f"auto: first and last axes equal, format default {default}"
    if chosen == "CHW":
        return arr, f"CHW (kept; {why})"
    if chosen == "HWC":
        return np.transpose(arr, (2, 0, 1)), f"HWC->CHW ({why})"
    if chosen == "HCW":
        return np.transpose(arr, (1, 0, 2)), f"HCW->CHW ({why})"
    raise DataError(f"layout '{chosen}' does not apply to a 3-D array of shape {_fmt_shape(shape)}")


def _wl_to_nm(values, units: str | None) -> tuple[np.ndarray, str]:
    wl = np.asarray(values, dtype=np.float64).ravel()
    u = (units or "").strip().lower()
    if u.startswith("micro") or u in ("um", "µm", "micron", "microns"):
        return wl * 1000.0, "file (µm -> nm)"
    if u.startswith("nano") or u == "nm":
        return wl, "file"
    if u.startswith("milli") or u == "mm":
        return wl * 1e6, "file (mm -> nm)"
    if wl.size and np.nanmax(wl) < 30.0:
        return wl * 1000.0, "file (units unknown, values < 30: taken as µm -> nm)"
    return wl, "file"


def _scalar(v) -> float | None:
    if v is None:
        return None
    try:
        a = np.asarray(v, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        return None
    return float(a[0]) if a.size == 1 else None


# -------------------------------------------------------------------------------- MATLAB files

def _mat_choose_key(variables: dict[str, tuple[tuple, bool]], key: str | None, path: Path) -> str:
    """Pick the cube variable: ``key``, else a known key, else the largest 3-D numeric array."""
    listing = ", ".join(f"{k} ({_fmt_shape(s)})" for k, (s, _) in variables.items()) or "none"
    if key is not None:
        if key not in variables:
            raise DataError(f"{path.name}: no variable '{key}'; available: {listing}")
        return key
    zhu = "nRow" in variables and "nCol" in variables
    for k in catalog.KNOWN_KEYS:
        if k in variables and variables[k][1]:
            shape = variables[k][0]
            if len(shape) == 3 or (len(shape) == 2 and zhu):
                return k
    three_d = [(int(np.prod(s)), k) for k, (s, num) in variables.items() if num and len(s) == 3]
    if three_d:
        return max(three_d)[1]
    if zhu:
        two_d = [(int(np.prod(s)), k) for k, (s, num) in variables.items() if num and len(s) == 2]
        if two_d:
            return max(two_d)[1]
    raise DataError(f"{path.name}: no 3-D numeric array (or Zhu Y with nRow/nCol) found; variables: {listing}")


def _read_mat_v5(path: Path, key: str | None) -> _Raw:
    import scipy.io as sio

    try:
        info = sio.whosmat(str(path))
    except Exception as exc:  # noqa: BLE001 - scipy raises many types for corrupt files
        raise DataError(f"{path.name}: not a readable MATLAB file ({type(exc).__name__}: {exc})") from exc
    variables = {name: (tuple(shape), cls in _NUMERIC_MAT_CLASSES) for name, shape, cls in info}
    k = _mat_choose_key(variables, key, path)
    wanted = [k] + [a for a in _AUX_VARS if a in variables and a != k]
    try:
        m = sio.loadmat(str(path), variable_names=wanted, squeeze_me=False)
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"{path.name}: failed to read variable '{k}' ({type(exc).__name__}: {exc})") from exc
    arr = np.asarray(m[k])
    aux = {a: m[a] for a in wanted[1:] if a in m}
    return _Raw(arr, "mat-v5", k, aux, {"other_variables": sorted(v for v in variables if v != k)},
                default_layout="HWC")


def _read_mat_v73(path: Path, key: str | None) -> _Raw:
    import h5py

    try:
        fh = h5py.File(str(path), "r")
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"{path.name}: not a readable MATLAB v7.3/HDF5 file ({exc})") from exc
    with fh:
        variables = {}
        for name, obj in fh.items():
            if not isinstance(obj, h5py.Dataset) or name.startswith("#"):
                continue
            cls = obj.attrs.get("MATLAB_class", b"")
            cls = cls.decode() if isinstance(cls, bytes) else str(cls)
            numeric = obj.dtype.kind in "biuf" and cls not in ("char", "cell", "struct")
            variables[name] = (tuple(reversed(obj.shape)), numeric)  # MATLAB's own shape
        k = _mat_choose_key(variables, key, path)
        arr = np.asarray(fh[k][()]).T  # h5py returns MATLAB arrays with reversed axes
        aux = {a: np.asarray(fh[a][()]).T for a in _AUX_VARS if a in variables and a != k and variables[a][1]}
    return _Raw(arr, "mat-v7.3", k, aux, {"other_variables": sorted(v for v in variables if v != k),
                                          "h5_shape": list(reversed(arr.shape))},
                default_layout="HWC")


def _read_mat(path: Path, key: str | None) -> _Raw:
    import h5py

    raw = _read_mat_v73(path, key) if h5py.is_hdf5(str(path)) else _read_mat_v5(path, key)
    if raw.loader == "mat-v7.3":
        raw.prov["layout_steps"] = ["h5 reversed axes"]
    return raw


# ---------------------------------------------------------------------------- other formats

def _read_npy(path: Path, key: str | None) -> _Raw:
    try:
        arr = np.load(str(path), allow_pickle=False)
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"{path.name}: not a readable .npy file ({exc})") from exc
    return _Raw(np.asarray(arr), "npy", None)


def _read_npz(path: Path, key: str | None) -> _Raw:
    try:
        z = np.load(str(path), allow_pickle=False)
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"{path.name}: not a readable .npz file ({exc})") from exc
    with z:
        keys = list(z.files)
        listing = ", ".join(f"{k} ({_fmt_shape(z[k].shape)})" for k in keys) or "none"
        if key is not None:
            if key not in keys:
                raise DataError(f"{path.name}: no array '{key}'; available: {listing}")
            k = key
        elif "cube" in keys:
            k = "cube"
        else:
            three_d = [k for k in keys if z[k].ndim == 3]
            if len(three_d) != 1:
                raise DataError(f"{path.name}: no 'cube' array and {len(three_d)} 3-D arrays; pass key=; "
                                f"available: {listing}")
            k = three_d[0]
        arr = np.asarray(z[k])
        wl = np.asarray(z["wavelengths"]) if "wavelengths" in keys else None
        units = str(z["wavelength_units"]) if "wavelength_units" in keys else None
    return _Raw(arr, "npz", k, prov={"other_variables": sorted(x for x in keys if x != k)},
                file_wavelengths=wl, wl_units=units)


def _read_tiff(path: Path, key: str | None) -> _Raw:
    import tifffile

    try:
        with tifffile.TiffFile(str(path)) as tf:
            arr = tf.asarray()
            meta = tf.shaped_metadata[0] if tf.shaped_metadata else {}
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"{path.name}: not a readable TIFF file ({exc})") from exc
    arr = np.asarray(arr)
    prov = {}
    if arr.ndim > 3 and sum(n > 1 for n in arr.shape) <= 3:
        prov["squeezed_from"] = list(arr.shape)
        arr = arr.reshape([n for n in arr.shape if n > 1])
    wl = meta.get("wavelengths") if isinstance(meta, dict) else None
    units = meta.get("wavelength_units") if isinstance(meta, dict) else None
    return _Raw(arr, "tiff", None, prov=prov, file_wavelengths=wl, wl_units=units)


def _envi_pair(path: Path) -> tuple[Path, Path | None]:
    """(header, data file or None to let spectral find it) for an ENVI header or data path."""
    if path.suffix.lower() == ".hdr":
        return path, None
    for hdr in (Path(str(path) + ".hdr"), path.with_suffix(".hdr")):
        if hdr.is_file():
            return hdr, path
    raise DataError(f"{path.name}: no ENVI header ({path.name}.hdr or {path.stem}.hdr) next to it")


def _read_envi(path: Path, key: str | None) -> _Raw:
    import spectral.io.envi as envi

    hdr, data = _envi_pair(path)
    try:
        img = envi.open(str(hdr), None if data is None else str(data))
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"{hdr.name}: not a readable ENVI image ({type(exc).__name__}: {exc})") from exc
    if not hasattr(img, "load"):
        raise DataError(f"{hdr.name}: is an ENVI spectral library, not an image")
    arr = np.asarray(img.load())  # (rows, cols, bands) whatever the interleave
    md = {k.lower(): v for k, v in img.metadata.items()}
    prov = {"interleave": md.get("interleave"), "header": str(hdr.resolve())}
    if "bbl" in md:
        prov["bad_band_list"] = [int(float(v)) for v in md["bbl"]]
    if "data ignore value" in md:
        prov["data_ignore_value"] = md["data ignore value"]
    wl = md.get("wavelength")
    raw = _Raw(arr, "envi", None, prov=prov, file_wavelengths=None if wl is None else [float(v) for v in wl],
               wl_units=md.get("wavelength units"), default_layout="HWC")
    raw.prov["layout_forced"] = "HWC"  # spectral always returns (rows, cols, bands)
    return raw


_PNG_BAND = re.compile(r"_(\d+)\.png$", re.I)


def _read_png_folder(path: Path, key: str | None) -> _Raw:
    """A CAVE-style folder of single-band PNGs named *_NN.png (searched up to two levels down)."""
    files = [p for p in path.iterdir() if p.is_file() and _PNG_BAND.search(p.name)]
    if not files:
        subdirs = [d for d in sorted(path.iterdir()) if d.is_dir()]
        for d in subdirs:
            files = [p for p in d.iterdir() if p.is_file() and _PNG_BAND.search(p.name)]
            if files:
                break
    if not files:
        raise DataError(f"{path.name}: folder holds no band images named *_NN.png (CAVE layout)")
    files.sort(key=lambda p: int(_PNG_BAND.search(p.name).group(1)))
    numbers = [int(_PNG_BAND.search(p.name).group(1)) for p in files]
    if len(set(numbers)) != len(numbers):
        raise DataError(f"{path.name}: duplicate band numbers among the PNG files")
    import skimage.io

    planes, notes = [], []
    for p in files:
        try:
            im = np.asarray(skimage.io.imread(str(p)))
        except Exception as exc:  # noqa: BLE001
            raise DataError(f"{p.name}: unreadable PNG ({exc})") from exc
        if im.ndim == 3:
            notes.append(f"{p.name}: {im.shape[2]} channels, channel 0 used")
            im = im[..., 0]
        if im.ndim != 2:
            raise DataError(f"{p.name}: expected a single-band image, got shape {_fmt_shape(im.shape)}")
        planes.append(im)
    shapes = {pl.shape for pl in planes}
    if len(shapes) != 1:
        raise DataError(f"{path.name}: band images differ in size: {sorted(shapes)}")
    dtypes = sorted({str(pl.dtype) for pl in planes})
    arr = np.stack(planes, axis=0)
    prov = {"files": [p.name for p in files], "png_band_numbers": numbers, "png_dtypes": dtypes,
            "folder": str(files[0].parent.resolve())}
    if notes:
        prov["png_notes"] = notes
    prov["layout_forced"] = "CHW"
    return _Raw(arr, "cave-png", None, prov=prov)


# ------------------------------------------------------------------------------- the pipeline

def _zhu_to_chw(raw: _Raw, path: Path) -> tuple[np.ndarray, list[str]]:
    arr = raw.array
    n_row, n_col = _scalar(raw.aux.get("nRow")), _scalar(raw.aux.get("nCol"))
    if n_row is None or n_col is None:
        raise DataError(f"{path.name}: Zhu layout needs scalar nRow and nCol variables")
    n_row, n_col = int(n_row), int(n_col)
    steps = []
    npix = n_row * n_col
    if arr.ndim != 2:
        raise DataError(f"{path.name}: Zhu layout needs a 2-D (bands, pixels) matrix, got {_fmt_shape(arr.shape)}")
    if arr.shape[1] != npix and arr.shape[0] == npix:
        arr = arr.T
        steps.append("zhu matrix stored (pixels, bands): transposed")
    if arr.shape[1] != npix:
        raise DataError(f"{path.name}: Zhu matrix {_fmt_shape(arr.shape)} does not hold nRow*nCol={npix} pixels")
    cube = arr.T.reshape(n_row, n_col, arr.shape[0], order="F").transpose(2, 0, 1)
    steps.append("zhu pixel-per-column: Y.T.reshape(nRow, nCol, nBand, order='F') -> CHW")
    return cube, steps


_WL_RANGE = re.compile(r"^\s*([-+0-9.eE]+)\s*:\s*([-+0-9.eE]+)\s*$")


def _wavelength_range(spec: str, bands: int) -> np.ndarray | None:
    """``"START:STOP"`` (nm) -> ``bands`` evenly spaced centres; None if ``spec`` is not of that form."""
    m = _WL_RANGE.match(spec)
    if not m:
        return None
    try:
        lo, hi = float(m.group(1)), float(m.group(2))
    except ValueError:
        raise DataError(f"wavelength range {spec!r}: START and STOP must be numbers (nm)") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and 0 < lo < hi):
        raise DataError(f"wavelength range {spec!r}: needs 0 < START < STOP (nm)")
    return np.linspace(lo, hi, bands) if bands > 1 else np.array([(lo + hi) / 2.0])


def _check_user_wavelengths(wl, bands: int, where: str) -> np.ndarray:
    try:
        wl = np.asarray(wl, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise DataError(f"{where}: wavelengths must be numbers (nm)") from None
    if wl.size != bands:
        raise DataError(f"{where}: {wl.size} wavelengths given for {bands} bands")
    if not (np.all(np.isfinite(wl)) and np.all(wl > 0)):
        raise DataError(f"{where}: wavelengths must be finite and positive (nm)")
    return wl


def _band_numbers(raw: _Raw, bands: int) -> tuple[str, np.ndarray] | None:
    for name in catalog.INDEX_VARS:
        if name in raw.aux:
            v = np.asarray(raw.aux[name]).ravel()
            if v.size == bands and np.issubdtype(v.dtype, np.number) and np.all(v == np.round(v)) and v.min() >= 1:
                return name, v.astype(np.int64)
    return None


def _resolve_wavelengths(raw: _Raw, path: Path, bands: int, entry: dict | None, user_wl,
                         dataset: str | None, sensor: str | None, prov: dict):
    """Wavelengths in nm and their source: argument > file > band numbers + sensor > catalog model."""
    numbers = _band_numbers(raw, bands)
    if numbers is not None:
        prov["band_numbers_1based"] = {"variable": numbers[0], "values": numbers[1].tolist()}
    if user_wl is not None:
        if isinstance(user_wl, str) and _wavelength_range(user_wl, bands) is not None:
            return _wavelength_range(user_wl, bands), f"user (evenly spaced {user_wl} nm)"
        if isinstance(user_wl, str):
            got = catalog.dataset_wavelengths(user_wl, bands)
            if got is None:
                raise DataError(f"dataset '{user_wl}' has no wavelength model for {bands} bands")
            return got[0], f"{got[1]} (requested)"
        return _check_user_wavelengths(user_wl, bands, path.name), "user (wavelengths= argument)"
    if raw.file_wavelengths is not None:
        wl, src = _wl_to_nm(raw.file_wavelengths, raw.wl_units)
        if wl.size == bands:
            return wl, src
        if numbers is not None and wl.size >= numbers[1].max():
            return wl[numbers[1] - 1], src + f", indexed by {numbers[0]}"
        prov["wavelength_note"] = f"file wavelength vector has {wl.size} values for {bands} bands: ignored"
    for name in catalog.WAVELENGTH_VARS:
        if name in raw.aux:
            wl, src = _wl_to_nm(raw.aux[name], None)
            if wl.size == bands:
                return wl, f"{src} (variable {name})"
            if numbers is not None and wl.size >= numbers[1].max():
                return wl[numbers[1] - 1], f"{src} (variable {name}, indexed by {numbers[0]})"
    if numbers is not None:
        sens = sensor
        n_band = _scalar(raw.aux.get("nBand"))
        if sens is None and n_band is not None:
            sens = catalog.ZHU_SENSORS.get(int(n_band))
        if sens is None:
            sens = catalog.INDEX_VARS.get(numbers[0])
        if sens is None and entry is not None:
            models = [m for m in entry["models"].values() if m[0] == "sensor"]
            sens = models[0][1] if models else None
        if sens is not None:
            try:
                return catalog.sensor_wavelengths(sens, numbers[1])
            except ValueError as exc:
                prov["wavelength_note"] = str(exc)
    if sensor is not None and catalog.SENSORS[sensor]["n"] == bands:
        return catalog.sensor_wavelengths(sensor)
    use = catalog.get_dataset(dataset) if dataset else entry
    if use is not None:
        got = catalog.dataset_wavelengths(use["name"], bands)
        if got is not None:
            return got
    return None, "unknown"


_READERS = [
    (MAT_EXT, _read_mat), (NPY_EXT, _read_npy), (NPZ_EXT, _read_npz), (TIFF_EXT, _read_tiff),
    ({".hdr"} | ENVI_DATA_EXT, _read_envi),
]


def _reader_for(path: Path):
    if path.is_dir():
        return _read_png_folder
    suf = path.suffix.lower()
    for exts, fn in _READERS:
        if suf in exts:
            return fn
    if suf == "" and (Path(str(path) + ".hdr").is_file()):
        return _read_envi
    raise DataError(f"{path.name}: unsupported file type '{suf or '(none)'}'; supported: {SUPPORTED}")


def load_scene(source: str | Path, *, name: str | None = None, key: str | None = None, layout: str | None = None,
               wavelengths=None, normalize: bool = True, drop_constant: bool = True, crop=None, **kw) -> Scene:
    """Load a scene from a file/folder of any supported format, or build a synthetic one.

    Formats: MATLAB v5/v7.3 ``.mat``, CAVE PNG folders, ENVI, TIFF, ``.npy``/``.npz``; the layout
    is converted to (bands, rows, cols) and every step is recorded in ``provenance``
    (``docs/conventions.md`` §1).
    A suffix ``[r0:r1,c0:c1]`` on any source crops the loaded scene (after normalisation by the whole
    scene's maximum, so a crop keeps the file's scale; recorded in the provenance and the name), e.g.
    ``"data:cave/balloons_ms.mat[64:112,64:112]"``. The ``crop`` keyword crops the same way without
    changing the name; a source with a suffix and a ``crop`` together is refused.

    Parameters
    ----------
    source : str or Path
        A file or folder; ``data:<path>`` inside the data folder (``$HSIBENCH_DATA``, else
        ``../shared/data``); or ``synthetic`` / ``synthetic:<size>x<bands>[:seed]``, which calls
        :func:`~hsibench.data.synthetic_scene` (extra keywords such as ``endmembers`` or
        ``wavelength_range`` go there).
    name : str or None
        Scene name (default: from the file).
    key : str or None
        The variable to read from a multi-variable file.
    layout : {"CHW", "HWC", "HCW", "zhu"} or None
        Overrides the layout guess.
    wavelengths : array, str or None
        Band centres in nm, or a catalog dataset name whose wavelengths to use.
    normalize : bool
        Divide by the global maximum (the factor is kept as ``Scene.scaling``).
    drop_constant : bool
        Drop constant bands (the metrics refuse them), recorded in the provenance.
    crop : int, sequence of 4 int or None
        ``N`` keeps the central N×N window, ``[r0, r1, c0, c1]`` rows r0…r1−1 and columns c0…c1−1
        (:func:`crop_scene`); the name is kept.
    **kw
        ``dataset=`` / ``sensor=`` name a catalog entry or sensor model; ``sort_bands=True``
        reorders bands by wavelength.

    Returns
    -------
    Scene
        ``cube`` (bands, rows, cols) float32, ``wavelengths``, ``name``, ``provenance``, ``scaling``.

    Raises
    ------
    DataError
        A missing or unreadable file, an unknown variable, layout, dataset or sensor, a bad
        synthetic spec, non-numeric data, wavelengths that do not match the bands, or a bad crop
        (one that does not fit, or a suffix and ``crop`` together).

    Examples
    --------
    >>> scene = load_scene("synthetic:32x8:1")
    >>> scene.cube.shape, float(scene.cube.max()), scene.wavelengths[[0, -1]].tolist()
    ((8, 32, 32), 1.0, [400.0, 700.0])
    """
    base, window, suffix = resolve_crop(source, crop)
    if window is not None:  # a spatial crop of the loaded (and normalised) scene
        scene = load_scene(base, name=name, key=key, layout=layout, wavelengths=wavelengths,
                           normalize=normalize, drop_constant=drop_constant, **kw)
        out = crop_scene(scene, window)
        if suffix:  # "<source>[r0:r1,c0:c1]": the window is part of the scene's name
            r0, r1, c0, c1 = window
            out.name = f"{scene.name}[{r0}:{r1},{c0}:{c1}]"
        return out
    dataset = kw.pop("dataset", None)
    sensor = kw.pop("sensor", None)
    sort_bands = bool(kw.pop("sort_bands", False))
    if isinstance(source, str) and source.strip().lower().startswith("synthetic"):
        params = parse_synthetic_source(source)
        params.update(kw)
        try:
            scene = synthetic_scene(name=name, **params)
        except TypeError as exc:
            raise DataError(f"synthetic source: {exc}") from exc
        if wavelengths is not None:
            rng_wl = _wavelength_range(wavelengths, scene.bands) if isinstance(wavelengths, str) else None
            wl = rng_wl if rng_wl is not None else _check_user_wavelengths(wavelengths, scene.bands, "synthetic scene")
            scene = Scene(scene.cube, wl, scene.name, {**scene.provenance, "wavelength_source": "user"},
                          scene.scaling)
        if not normalize:  # back to reflectance units
            scene = Scene(scene.cube * np.float32(scene.scaling), scene.wavelengths, scene.name,
                          {**scene.provenance, "normalized": False}, 1.0)
        return _finish(scene, normalize, drop_constant, sort_bands)
    if kw:
        raise DataError(f"load_scene: unexpected keyword(s) {', '.join(sorted(kw))}")
    if sensor is not None and sensor not in catalog.SENSORS:
        raise DataError(f"unknown sensor '{sensor}'; known: {', '.join(catalog.SENSORS)}")
    if dataset is not None:
        try:
            catalog.get_dataset(dataset)
        except KeyError as exc:
            raise DataError(str(exc.args[0])) from exc
    path = resolve_data_path(source)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    reader = _reader_for(path)
    lay = _norm_layout(layout)
    raw = reader(path, key)
    arr = raw.array
    file_shape, file_dtype = list(arr.shape), str(arr.dtype)
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise DataError(f"{path.name}: variable '{raw.variable}' is not real numeric (dtype {arr.dtype})")
    if arr.size == 0:
        raise DataError(f"{path.name}: the array is empty (shape {_fmt_shape(arr.shape)})")
    steps = list(raw.prov.pop("layout_steps", []))
    zhu = lay == "zhu" or (lay is None and arr.ndim == 2 and "nRow" in raw.aux and "nCol" in raw.aux)
    if zhu:
        cube, more = _zhu_to_chw(raw, path)
        steps += more
    else:
        if arr.ndim != 3:
            what = f"'{raw.variable}' " if raw.variable else ""
            raise DataError(f"{path.name}: array {what}is {arr.ndim}-D ({_fmt_shape(arr.shape)}); "
                            "a cube must be 3-D (or Zhu Y with nRow/nCol)")
        forced = raw.prov.pop("layout_forced", None)
        hint = None
        nums = [np.asarray(raw.aux[n]).size for n in catalog.INDEX_VARS if n in raw.aux]
        if raw.file_wavelengths is not None:
            nums.append(np.asarray(raw.file_wavelengths).size)
        nums += [np.asarray(raw.aux[n]).size for n in catalog.WAVELENGTH_VARS if n in raw.aux]
        if nums:
            hint = nums[0]
        known = None
        if lay is None and raw.loader.startswith("mat"):
            # guess the dataset under each candidate band axis; trust the catalog layout if one fits
            for cand, lab in ((arr.shape[2], "HWC"), (arr.shape[0], "CHW")):
                if catalog.match_dataset(path, raw.variable, cand) is not None:
                    known = lab
                    break
        if forced is not None and lay is None:
            cube = arr if forced == "CHW" else _to_chw(arr, forced, forced, None, None)[0]
            step = f"{forced}->CHW (the reader returns {forced})" if forced != "CHW" else \
                "CHW (band planes stacked by the reader)"
        else:
            cube, step = _to_chw(arr, lay, raw.default_layout, hint, known)
        steps.append(step)
    if cube.dtype.kind == "f" and not np.isfinite(cube).all():
        n_bad = int((~np.isfinite(cube)).sum())
        what = f"'{raw.variable}' " if raw.variable else ""
        raise DataError(f"{path.name}: array {what}contains {n_bad} NaN/Inf values")
    if not normalize and cube.dtype.kind == "f" and float(np.abs(cube).max()) > float(np.finfo(np.float32).max):
        raise DataError(f"{path.name}: finite values beyond the float32 range (max |x| = {float(np.abs(cube).max()):.3g}); "
                        "load it normalised or rescale it")
    bands = cube.shape[0]
    entry = catalog.get_dataset(dataset) if dataset else catalog.match_dataset(path, raw.variable, bands)
    if entry is None and raw.loader == "cave-png" and bands == 31:
        entry = catalog.get_dataset("cave")  # any 31-PNG CAVE-style folder is 400:10:700 nm
    prov = {"source": str(path.resolve()), "loader": raw.loader, "variable": raw.variable,
            "file_shape": file_shape, "file_dtype": file_dtype, "layout": steps,
            "dataset": None if entry is None else entry["name"]}
    prov.update(raw.prov)
    wl, wl_src = _resolve_wavelengths(raw, path, bands, entry, wavelengths, dataset, sensor, prov)
    prov["wavelength_source"] = wl_src
    if wl is not None and np.any(np.diff(wl) <= 0):
        prov["wavelengths_monotonic"] = False
        prov["wavelength_order_breaks"] = [int(i) for i in np.flatnonzero(np.diff(wl) <= 0)]
    mv = _scalar(raw.aux.get("maxValue"))
    if mv is not None:
        prov["file_maxValue"] = mv
    prov.update({"dropped_bands": [], "crop": None})
    label = name or (catalog.scene_label(entry, path) if entry is not None else
                     (path.name if path.is_dir() else path.stem))
    scaling = 1.0
    if normalize:
        # Divide in float64 by the exact file maximum, so `scaling` is the file's own value.
        peak = float(np.max(cube))
        if not peak > 0.0:
            raise DataError(f"{path.name}: cannot normalise, global maximum is {peak} (all-zero cube?)")
        cube = np.asarray(cube, dtype=np.float64) / peak
        scaling = peak
        prov["normalized"] = True
        if (cube < 0).any():
            prov["negative_values"] = int((cube < 0).sum())
        prov["operations"] = [{"op": "normalize", "divided_by": peak}]
    scene = Scene(cube=cube, wavelengths=wl, name=label, provenance=prov, scaling=scaling)
    return _finish(scene, normalize, drop_constant, sort_bands)


def _finish(scene: Scene, normalize: bool, drop_constant: bool, sort_bands: bool) -> Scene:
    """Drop constant bands, optionally sort by wavelength, and (re)normalise if the max is not 1."""
    if drop_constant:
        scene = scene.drop_constant_bands()
    if sort_bands and scene.wavelengths is not None:
        order = np.argsort(scene.wavelengths, kind="stable")
        if np.any(order != np.arange(scene.bands)):
            scene = scene.select_bands(order)
            scene.provenance["operations"][-1]["op"] = "sort_bands_by_wavelength"
            scene.provenance["wavelengths_monotonic"] = True
            scene.provenance.pop("wavelength_order_breaks", None)
    if normalize and float(scene.cube.max()) != 1.0:
        scene = scene.normalized()
    return scene
