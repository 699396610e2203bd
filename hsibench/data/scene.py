"""The `Scene` container: a band-sequential cube with wavelengths, scaling and provenance.

Every operation returns a new Scene and appends what it did to ``provenance`` so that a result row
can say exactly which pixels and bands of which file were used.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class DataError(ValueError):
    """A data file or array cannot be used as a scene (one-line, user-facing message)."""


def _jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays inside provenance to plain Python types (JSON-serialisable)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


@dataclass(eq=False)
class Scene:
    """A hyperspectral cube (bands, rows, cols), float32, with wavelengths (nm) and provenance.

    ``scaling`` converts back to the file's units: original = cube * scaling.
    """

    cube: np.ndarray
    wavelengths: np.ndarray | None
    name: str
    provenance: dict = field(default_factory=dict)
    scaling: float = 1.0

    def __post_init__(self) -> None:
        cube = np.asarray(self.cube)
        if cube.ndim != 3:
            raise DataError(f"scene '{self.name}': cube must be 3-D (bands, rows, cols), got shape {cube.shape}")
        if not np.issubdtype(cube.dtype, np.number) or np.iscomplexobj(cube):
            raise DataError(f"scene '{self.name}': cube must be real numeric, got dtype {cube.dtype}")
        self.cube = np.ascontiguousarray(cube, dtype=np.float32)
        if self.wavelengths is not None:
            wl = np.asarray(self.wavelengths, dtype=np.float64).ravel()
            if wl.shape[0] != self.cube.shape[0]:
                raise DataError(
                    f"scene '{self.name}': {wl.shape[0]} wavelengths for {self.cube.shape[0]} bands"
                )
            self.wavelengths = wl
        self.scaling = float(self.scaling)
        self.provenance = _jsonable(dict(self.provenance))

    # ------------------------------------------------------------------ shape
    @property
    def bands(self) -> int:
        return int(self.cube.shape[0])

    @property
    def rows(self) -> int:
        return int(self.cube.shape[1])

    @property
    def cols(self) -> int:
        return int(self.cube.shape[2])

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.cube.shape)  # type: ignore[return-value]

    # ---------------------------------------------------------------- helpers
    def _derive(self, cube: np.ndarray, *, wavelengths="same", scaling: float | None = None,
                update: dict | None = None, op: Any = None) -> "Scene":
        prov = copy.deepcopy(self.provenance)
        if update:
            prov.update(update)
        if op is not None:
            prov.setdefault("operations", []).append(op)
        wl = self.wavelengths if isinstance(wavelengths, str) and wavelengths == "same" else wavelengths
        return Scene(cube=cube, wavelengths=None if wl is None else np.array(wl, dtype=np.float64),
                     name=self.name, provenance=prov,
                     scaling=self.scaling if scaling is None else scaling)

    def _source_band_index(self) -> list[int]:
        """0-based index of each current band in the cube as first loaded."""
        idx = self.provenance.get("band_index_in_source")
        return list(range(self.bands)) if idx is None else list(idx)

    # ------------------------------------------------------------ operations
    def normalized(self) -> "Scene":
        """Divide by the global maximum so the cube lies in [0, 1]; the factor goes into ``scaling``."""
        if not np.all(np.isfinite(self.cube)):
            raise DataError(f"scene '{self.name}': cube contains NaN or Inf")
        peak = float(self.cube.max())
        if peak <= 0.0:
            raise DataError(f"scene '{self.name}': cannot normalise, global maximum is {peak} (all-zero cube?)")
        if peak == 1.0:
            return self._derive(self.cube.copy(), update={"normalized": True})
        # x / peak in float64 maps the peak to exactly 1.0, then rounds to float32.
        cube = (self.cube.astype(np.float64) / peak).astype(np.float32)
        n_neg = int((cube < 0).sum())
        upd = {"normalized": True}
        if n_neg:
            upd["negative_values"] = n_neg
        return self._derive(cube, scaling=self.scaling * peak, update=upd,
                            op={"op": "normalize", "divided_by": peak})

    def crop(self, rows: slice, cols: slice) -> "Scene":
        """Spatial crop with ordinary slices (step 1); recorded in source-pixel coordinates."""
        r0, r1, rs = rows.indices(self.rows)
        c0, c1, cs = cols.indices(self.cols)
        if rs != 1 or cs != 1:
            raise DataError("crop: slices must have step 1")
        if r1 <= r0 or c1 <= c0:
            raise DataError(f"crop: empty crop rows {r0}:{r1}, cols {c0}:{c1} of a {self.rows}x{self.cols} image")
        base = self.provenance.get("crop") or {"rows": [0, self.rows], "cols": [0, self.cols]}
        br, bc = base["rows"][0], base["cols"][0]
        new = {"rows": [br + r0, br + r1], "cols": [bc + c0, bc + c1]}
        return self._derive(self.cube[:, r0:r1, c0:c1].copy(), update={"crop": new},
                            op={"op": "crop", "rows": [r0, r1], "cols": [c0, c1]})

    def crop_to_multiple(self, s: int) -> "Scene":
        """Crop rows and cols (top-left anchored) down to a multiple of the scale factor ``s``."""
        s = int(s)
        if s < 1:
            raise DataError(f"crop_to_multiple: scale factor must be >= 1, got {s}")
        if self.rows < s or self.cols < s:
            raise DataError(f"crop_to_multiple: image {self.rows}x{self.cols} is smaller than the scale factor {s}")
        out = self.crop(slice(0, self.rows - self.rows % s), slice(0, self.cols - self.cols % s))
        out.provenance["operations"][-1]["multiple_of"] = s
        return out

    def select_bands(self, idx) -> "Scene":
        """Keep the bands ``idx`` (0-based ints, a slice or a boolean mask) in the given order."""
        all_idx = np.arange(self.bands)
        sel = all_idx[idx] if isinstance(idx, slice) else np.asarray(idx)
        if sel.dtype == bool:
            if sel.shape != (self.bands,):
                raise DataError(f"select_bands: boolean mask of length {sel.shape} for {self.bands} bands")
            sel = all_idx[sel]
        sel = np.atleast_1d(sel).astype(np.int64)
        if sel.size == 0:
            raise DataError("select_bands: no band selected")
        if sel.min() < -self.bands or sel.max() >= self.bands:
            raise DataError(f"select_bands: index out of range for {self.bands} bands")
        sel = sel % self.bands
        src = np.asarray(self._source_band_index())[sel]
        wl = None if self.wavelengths is None else self.wavelengths[sel]
        return self._derive(self.cube[sel].copy(), wavelengths=wl,
                            update={"band_index_in_source": src.tolist()},
                            op={"op": "select_bands", "bands": sel.tolist()})

    def drop_constant_bands(self) -> "Scene":
        """Remove bands whose max equals their min (zeroed bad bands break PSNR/ERGAS/CC)."""
        flat = self.cube.reshape(self.bands, -1)
        const = np.flatnonzero(flat.max(axis=1) == flat.min(axis=1))
        if const.size == 0:
            out = self._derive(self.cube.copy())
            out.provenance.setdefault("dropped_bands", [])
            return out
        if const.size == self.bands:
            raise DataError(f"scene '{self.name}': every band is constant")
        keep = np.setdiff1d(np.arange(self.bands), const)
        src = np.asarray(self._source_band_index())
        dropped = sorted(set(self.provenance.get("dropped_bands", [])) | set(src[const].tolist()))
        out = self.select_bands(keep)
        out.provenance["operations"][-1] = {"op": "drop_constant_bands", "dropped": const.tolist()}
        out.provenance["dropped_bands"] = dropped
        return out

    def to_dict_meta(self) -> dict:
        """JSON-serialisable summary: name, shape, wavelength range, provenance, scaling."""
        wl = None
        if self.wavelengths is not None:
            wl = [float(self.wavelengths.min()), float(self.wavelengths.max())]
        return _jsonable({
            "name": self.name,
            "shape": list(self.shape),
            "bands": self.bands,
            "rows": self.rows,
            "cols": self.cols,
            "dtype": str(self.cube.dtype),
            "wavelength_range_nm": wl,
            "scaling": self.scaling,
            "provenance": self.provenance,
        })

    def __repr__(self) -> str:
        wl = "" if self.wavelengths is None else f", {self.wavelengths.min():.0f}-{self.wavelengths.max():.0f} nm"
        return f"Scene({self.name!r}, {self.bands}x{self.rows}x{self.cols}{wl}, scaling={self.scaling:g})"
