"""Known hyperspectral datasets: file names, MATLAB variable keys, layouts and band-centre models.

Band centres are generated in code from published sensor facts (never read from data files) and are
labelled approximate wherever they are a model rather than the sensor's calibration table.
"""
from __future__ import annotations

import fnmatch
from pathlib import Path

import numpy as np

# --------------------------------------------------------------------------- sensor band models


def _ranges(*spans: tuple[int, int]) -> list[int]:
    """Expand inclusive 1-based (start, stop) spans into a list of band numbers."""
    out: list[int] = []
    for a, b in spans:
        out.extend(range(a, b + 1))
    return out


def _complement(n: int, *removed: tuple[int, int]) -> list[int]:
    """1-based band numbers 1..n without the removed inclusive spans."""
    gone = set(_ranges(*removed))
    return [i for i in range(1, n + 1) if i not in gone]


def _linear(a: float, b: float, n: int) -> np.ndarray:
    return np.linspace(a, b, n, dtype=np.float64)


def _aviris224() -> np.ndarray:
    """AVIRIS 224 channels as four spectrometers (A 32, B/C/D 64 channels), each linear in channel.

    Start/step per spectrometer follow the AVIRIS design (~10 nm sampling, overlapping spectrometer
    edges); within about 1 nm of a typical 2000s-era calibration, but calibrations vary by year.
    """
    segs = [(369.7, 9.863, 32), (663.9, 9.602, 64), (1254.4, 9.956, 64), (1879.0, 9.976, 64)]
    return np.concatenate([start + step * np.arange(n) for start, step, n in segs]).astype(np.float64)


def _hyperion242() -> np.ndarray:
    """EO-1 Hyperion 242 channels: VNIR 1-70 and SWIR 71-242 as two linear ramps (nominal centres)."""
    i = np.arange(1, 243, dtype=np.float64)
    return np.where(i <= 70, 355.59 + 10.175 * (i - 1), 851.92 + 10.09 * (i - 71))


SENSORS: dict[str, dict] = {
    "aviris224": {"n": 224, "make": _aviris224,
                  "label": "approximate: AVIRIS 224-channel 4-spectrometer piecewise-linear model"},
    "aviris220_92av3c": {"n": 220, "make": lambda: _linear(400.0, 2500.0, 220),
                         "label": "approximate: linear 400-2500 nm over the 220 Indian Pines (92AV3C) channels"},
    "hydice210": {"n": 210, "make": lambda: _linear(400.0, 2500.0, 210),
                  "label": "approximate: HYDICE 210 bands linear 400-2500 nm"},
    "hyperion242": {"n": 242, "make": _hyperion242,
                    "label": "approximate: Hyperion nominal centres, VNIR 355.59+10.175(i-1), SWIR 851.92+10.09(i-71) nm"},
}


def sensor_wavelengths(sensor: str, band_numbers_1based=None) -> tuple[np.ndarray, str]:
    """Band centres (nm) of a known sensor, optionally indexed by 1-based band numbers."""
    spec = SENSORS[sensor]
    wl = spec["make"]()
    label = spec["label"]
    if band_numbers_1based is not None:
        idx = np.asarray(band_numbers_1based, dtype=np.int64).ravel()
        if idx.min() < 1 or idx.max() > spec["n"]:
            raise ValueError(f"band numbers {idx.min()}..{idx.max()} outside 1..{spec['n']} of {sensor}")
        wl = wl[idx - 1]
        label += ", indexed by 1-based band numbers"
    return wl, label


# ---------------------------------------------------------------------------- the dataset table

CAVE_SCENES = [
    "balloons", "beads", "cd", "chart_and_stuffed_toy", "clay", "cloth", "egyptian_statue", "face",
    "fake_and_real_beers", "fake_and_real_food", "fake_and_real_lemon_slices", "fake_and_real_lemons",
    "fake_and_real_peppers", "fake_and_real_strawberries", "fake_and_real_sushi",
    "fake_and_real_tomatoes", "feathers", "flowers", "glass_tiles", "hairs", "jelly_beans",
    "oil_painting", "paints", "photo_and_face", "pompoms", "real_and_fake_apples",
    "real_and_fake_peppers", "sponges", "stuffed_toys", "superballs", "thread_spools", "watercolors",
]

# A wavelength model per accepted band count:
#   ("linear", start_nm, stop_nm)            evenly spaced, approximate unless noted
#   ("step", start_nm, step_nm)              exact nominal grid (CAVE, Harvard)
#   ("sensor", sensor_name, kept_1based)     full-sensor model indexed by kept bands (None = all)
_DATASETS: list[dict] = [
    {"name": "cave", "title": "CAVE multispectral image database (Columbia)", "sensor": "tunable filter + CCD",
     "files": [f"{s}_ms.mat" for s in CAVE_SCENES] + [f"{s}_ms" for s in CAVE_SCENES],
     "keys": ["Omsi", "img", "msi"], "layout": "HWC (MATLAB); or a folder of 31 PNGs *_ms_01..31.png",
     "multi_scene": True, "models": {31: ("step", 400.0, 10.0)}},
    {"name": "harvard", "title": "Harvard real-world hyperspectral images (Chakrabarti & Zickler)",
     "sensor": "Nuance FX", "files": ["img[a-h][0-9]*.mat"],
     "keys": ["ref"], "layout": "HWC (MATLAB)", "multi_scene": True,
     "models": {31: ("step", 420.0, 10.0)}},
    {"name": "pavia_university", "title": "Pavia University (ROSIS)", "sensor": "ROSIS",
     "files": ["PaviaU.mat", "paviaU.mat"], "keys": ["paviaU"], "layout": "HWC (MATLAB)",
     "models": {103: ("linear", 430.0, 860.0)}},
    {"name": "pavia_centre", "title": "Pavia Centre (ROSIS)", "sensor": "ROSIS",
     "files": ["Pavia.mat", "pavia.mat"], "keys": ["pavia", "data"], "layout": "HWC (MATLAB; v7.3 crops: reversed axes)",
     "models": {102: ("linear", 430.0, 860.0)}},
    {"name": "indian_pines", "title": "Indian Pines (AVIRIS 92AV3C)", "sensor": "AVIRIS",
     "files": ["Indian_pines_corrected.mat", "Indian_pines.mat"],
     "keys": ["indian_pines_corrected", "indian_pines"], "layout": "HWC (MATLAB)",
     "models": {200: ("sensor", "aviris220_92av3c", _complement(220, (104, 108), (150, 163), (220, 220))),
                220: ("sensor", "aviris220_92av3c", None)}},
    {"name": "salinas", "title": "Salinas Valley (AVIRIS)", "sensor": "AVIRIS",
     "files": ["Salinas_corrected.mat", "Salinas.mat", "SalinasA_corrected.mat", "SalinasA.mat"],
     "keys": ["salinas_corrected", "salinas", "salinasA_corrected", "salinasA"], "layout": "HWC (MATLAB)",
     "models": {204: ("sensor", "aviris224", _complement(224, (108, 112), (154, 167), (224, 224))),
                224: ("sensor", "aviris224", None)}},
    {"name": "ksc", "title": "Kennedy Space Center (AVIRIS)", "sensor": "AVIRIS",
     "files": ["KSC.mat"], "keys": ["KSC"], "layout": "HWC (MATLAB)",
     "models": {176: ("linear", 400.0, 2500.0)},
     "notes": "removed-band list not published with the file: centres are a coarse linear model"},
    {"name": "botswana", "title": "Botswana, Okavango Delta (EO-1 Hyperion)", "sensor": "Hyperion",
     "files": ["Botswana.mat"], "keys": ["Botswana"], "layout": "HWC (MATLAB)",
     "models": {145: ("sensor", "hyperion242", _ranges((10, 55), (82, 97), (102, 119), (134, 164), (187, 220)))}},
    {"name": "chikusei", "title": "Chikusei (Headwall Hyperspec-VNIR-C)", "sensor": "Hyperspec-VNIR-C",
     "files": ["HyperspecVNIR_Chikusei_20140729.mat", "Chikusei.mat", "chikusei.mat"],
     "keys": ["chikusei"], "layout": "HWC (MATLAB v7.3: reversed axes)",
     "models": {128: ("linear", 363.0, 1018.0)}},
    {"name": "houston2013", "title": "Houston 2013 (ITRES CASI-1500, GRSS DFC)", "sensor": "CASI-1500",
     "files": ["Houston.mat", "houston.mat", "Houston13.mat", "2013_IEEE_GRSS_DF_Contest_CASI.mat"],
     "keys": ["Houston", "houston"], "layout": "HWC (MATLAB)", "models": {144: ("linear", 380.0, 1050.0)}},
    {"name": "houston2018", "title": "Houston 2018 (ITRES CASI-1500, GRSS DFC)", "sensor": "CASI-1500",
     "files": ["Houston18.mat", "houston2018.mat", "HoustonU.mat"], "keys": ["Houston", "houston"],
     "layout": "HWC (MATLAB)", "models": {48: ("linear", 380.0, 1050.0)}},
    {"name": "washington_dc", "title": "Washington DC Mall (HYDICE)", "sensor": "HYDICE",
     "files": ["dc.mat", "DC.mat", "dc.tif", "WashingtonDC.mat"], "keys": ["dc", "DC"],
     "layout": "HWC (MATLAB) / CHW (TIFF)", "models": {191: ("linear", 400.0, 2400.0)}},
    {"name": "jasper_ridge", "title": "Jasper Ridge (AVIRIS, Zhu's unmixing release)", "sensor": "AVIRIS",
     "files": ["jasperRidge2_R198.mat", "jasperRidge2_F224.mat", "jasperRidge2_F224_2.mat"],
     "keys": ["Y"], "layout": "zhu pixel-per-column: Y (bands, nRow*nCol), column-major",
     "models": {198: ("sensor", "aviris224", _complement(224, (1, 3), (108, 112), (154, 166), (220, 224))),
                224: ("sensor", "aviris224", None)}},
    {"name": "urban", "title": "Urban (HYDICE, Zhu's unmixing release)", "sensor": "HYDICE",
     "files": ["Urban_R162.mat", "Urban_F210.mat", "subimage_Urban_R162.mat", "Urban.mat"],
     "keys": ["im", "Y"], "layout": "zhu pixel-per-column (Y) or HWC (im, sub-image)",
     "models": {162: ("sensor", "hydice210", _complement(210, (1, 4), (76, 76), (87, 87), (101, 111),
                                                          (136, 153), (198, 210))),
                210: ("sensor", "hydice210", None)}},
    {"name": "samson", "title": "Samson (Zhu's unmixing release)", "sensor": "SAMSON",
     "files": ["samson_1.mat", "Samson.mat"], "keys": ["V", "Y"],
     "layout": "zhu pixel-per-column", "models": {156: ("linear", 401.0, 889.0)}},
    {"name": "cuprite", "title": "Cuprite (AVIRIS, Zhu's unmixing release)", "sensor": "AVIRIS",
     "files": ["CupriteS1_R188.mat", "CupriteS1_F224.mat", "Cuprite.mat"], "keys": ["Y"],
     "layout": "zhu pixel-per-column",
     "models": {188: ("sensor", "aviris224", _complement(224, (1, 2), (104, 113), (148, 167), (221, 224))),
                224: ("sensor", "aviris224", None)}},
    {"name": "paris", "title": "Paris (EO-1 Hyperion + ALI, HySure demo)", "sensor": "Hyperion",
     "files": ["paris_data_hs_ms.mat", "paris_data_hs_pan.mat"], "keys": ["HSim"], "layout": "HWC (MATLAB)",
     "models": {128: ("sensor", "hyperion242", _ranges((8, 56), (83, 96), (102, 118), (135, 162), (194, 196),
                                                       (202, 214), (216, 219)))}},
]

# Variable names tried in order when no key is given (first present wins).
KNOWN_KEYS: list[str] = [
    "paviaU", "pavia", "indian_pines_corrected", "indian_pines", "salinas_corrected", "salinas",
    "salinasA_corrected", "salinasA", "KSC", "Botswana", "chikusei", "Houston", "houston", "ref",
    "Omsi", "img", "msi", "im", "HSim", "dc", "DC", "data", "Y", "V", "hsi", "HSI", "cube", "X",
]
# Sensor of the full channel set in Zhu-format files, keyed by `nBand`.
ZHU_SENSORS = {224: "aviris224", 210: "hydice210"}
# Names of band-number vectors (1-based) and their full sensor when it is implied.
INDEX_VARS = {"SlectBands": None, "non_del_bands": "hyperion242", "selected_bands": None}
WAVELENGTH_VARS = ["wavelengths", "wavelength", "wavlen", "wl", "lambda", "wavelength_nm", "bands_nm"]


def get_dataset(name: str) -> dict:
    """The catalog entry for a dataset name."""
    for d in _DATASETS:
        if d["name"] == name:
            return d
    raise KeyError(f"unknown dataset '{name}'; known: {', '.join(d['name'] for d in _DATASETS)}")


def _model_wavelengths(entry: dict, bands: int) -> tuple[np.ndarray, str] | None:
    model = entry["models"].get(bands)
    if model is None:
        return None
    kind = model[0]
    if kind == "step":
        wl = model[1] + model[2] * np.arange(bands, dtype=np.float64)
        return wl, f"nominal: {model[1]:g}:{model[2]:g}:{wl[-1]:g} nm ({entry['name']})"
    if kind == "linear":
        return _linear(model[1], model[2], bands), (
            f"approximate: linear {model[1]:g}-{model[2]:g} nm over {bands} bands ({entry['name']})")
    wl, label = sensor_wavelengths(model[1], model[2])
    if model[2] is not None:
        label += f" (kept-band list of {entry['name']} {bands}-band release)"
    return wl, label


def dataset_wavelengths(name: str, bands: int) -> tuple[np.ndarray, str] | None:
    """Generated band centres (nm) and their label for a known dataset with ``bands`` bands, or None."""
    return _model_wavelengths(get_dataset(name), bands)


def _name_matches(filename: str, patterns: list[str]) -> bool:
    low = filename.lower()
    return any(fnmatch.fnmatchcase(low, p.lower()) for p in patterns)


def match_dataset(path: Path | None, key: str | None, bands: int) -> dict | None:
    """Guess the catalog entry of a file from its name, its variable key and its band count."""
    cands = []
    for d in _DATASETS:
        by_name = path is not None and _name_matches(path.name, d["files"])
        by_key = key is not None and key in d["keys"]
        fits = bands in d["models"]
        if by_name and fits:
            cands.append((0 if by_key else 1, d))
        elif by_key and fits:
            cands.append((2, d))
    if not cands:
        return None
    cands.sort(key=lambda t: t[0])
    return cands[0][1]


def scene_label(entry: dict, path: Path | None) -> str:
    """Default scene name: the dataset name, plus the scene for multi-scene datasets (CAVE, Harvard)."""
    if not entry.get("multi_scene") or path is None:
        return entry["name"]
    stem = path.name if path.is_dir() else path.stem
    stem = stem[:-3] if stem.lower().endswith("_ms") else stem
    return f"{entry['name']}_{stem}"


def list_datasets() -> list[dict]:
    """Known datasets (JSON-serialisable): name, expected files, keys, bands, wavelength range, layout."""
    out = []
    for d in _DATASETS:
        ranges, sources = {}, {}
        for b in d["models"]:
            wl, label = _model_wavelengths(d, b)
            ranges[str(b)] = [round(float(wl.min()), 2), round(float(wl.max()), 2)]
            sources[str(b)] = label
        out.append({
            "name": d["name"], "title": d["title"], "sensor": d["sensor"],
            "files": list(d["files"]), "keys": list(d["keys"]), "bands": sorted(d["models"]),
            "wavelength_range_nm": ranges, "wavelength_source": sources, "layout": d["layout"],
            "notes": d.get("notes", ""),
        })
    return out


def find_datasets(data_dir) -> dict[str, Path]:
    """Known datasets present under ``data_dir`` (searched recursively): name -> first matching path.

    Expected file names are tried in catalog order, so e.g. Paris prefers the HS+MS file.
    """
    root = Path(data_dir)
    if not root.is_dir():
        return {}
    paths = sorted(root.rglob("*"))
    found: dict[str, Path] = {}
    for d in _DATASETS:
        for pat in d["files"]:
            hits = [p for p in paths if fnmatch.fnmatchcase(p.name.lower(), pat.lower())
                    and (p.is_file() or (p.is_dir() and any(p.rglob("*.png"))))]
            if hits:
                found[d["name"]] = hits[0]
                break
    return found
