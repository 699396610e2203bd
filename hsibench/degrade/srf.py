"""Spectral response functions: SRF matrices R (MS bands × HS bands) from sensor curves.

Each row of R is the MS band's relative response sampled (linear interpolation) at the HS band
centres, zero outside the curve, then normalised to sum 1. An MS band that overlaps no HS band is
an error. Satellite curves come from the ``pyrsr`` package; camera curves (e.g. the Nikon D700)
from a user CSV; synthetic Gaussian bands from centres and FWHMs.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..paths import data_dir
from .psf import fwhm_to_sigma

__all__ = [
    "SRFError",
    "SensorCurves",
    "SENSORS",
    "srf_matrix",
    "sensor_curves",
    "srf_from_curves",
    "gaussian_curves",
    "read_curves_csv",
    "band_coverage",
    "list_sensors",
    "srf_error",
    "SRF_SAMPLINGS",
    "FINE_STEP_NM",
    "fine_grid_msi",
    "check_srf",
    "MAX_MS_BANDS",
]

#: How the HrMSI is synthesised from the cube: the SRF matrix on the HS band centres, or the
#: sensor's response integrated on a fine wavelength grid (see :func:`fine_grid_msi`).
SRF_SAMPLINGS = ("hs_bands", "fine")
#: Step (nm) of the fine wavelength grid of ``srf_sampling = "fine"``.
FINE_STEP_NM = 1.0
#: Most bands a ``gauss:`` sensor spec may define.
MAX_MS_BANDS = 256
#: Centres of ``gauss:`` bands lie in (0, MAX_WAVELENGTH_NM] nm; FWHMs in (0, MAX_FWHM_NM] nm.
MAX_WAVELENGTH_NM = 100_000.0
MAX_FWHM_NM = 10_000.0


class SRFError(ValueError):
    """Unknown sensor, unreadable curve file, or an MS band that overlaps no HS band."""


@dataclass(frozen=True)
class SensorCurves:
    """Relative spectral responses of one sensor sampled on a wavelength grid (nm)."""

    name: str
    wavelengths: np.ndarray  # (n,) nm, increasing
    responses: np.ndarray  # (bands, n)
    band_names: tuple[str, ...]
    source: str


def srf_from_curves(curves: SensorCurves, hs_wavelengths: Sequence[float]) -> np.ndarray:
    """Sample each response at the HS band centres (linear, zero outside), rows normalised to sum 1."""
    try:
        wl = np.asarray(hs_wavelengths, dtype=np.float64)
    except (TypeError, ValueError):
        raise SRFError("HS wavelengths must be a non-empty 1-D vector of numbers (nm)") from None
    if wl.ndim != 1 or wl.size == 0:
        raise SRFError("HS wavelengths must be a non-empty 1-D vector (nm)")
    if not np.all(np.isfinite(wl)):
        raise SRFError("HS wavelengths contain NaN or Inf")
    if not (np.all(np.isfinite(curves.wavelengths)) and np.all(np.isfinite(curves.responses))):
        raise SRFError(f"sensor {curves.name}: response curves contain NaN or Inf")
    rows = []
    for name, resp in zip(curves.band_names, curves.responses):
        r = np.interp(wl, curves.wavelengths, np.clip(resp, 0, None), left=0.0, right=0.0)
        total = r.sum()
        if not (np.isfinite(total) and total > 0):
            raise SRFError(
                f"MS band {name!r} of {curves.name} ({_span(curves.wavelengths, resp)}) overlaps no HS band "
                f"({wl.min():.0f}-{wl.max():.0f} nm)"
            )
        rows.append(r / total)
    return np.stack(rows)


def _span(wl: np.ndarray, resp: np.ndarray) -> str:
    nz = wl[resp > 1e-3 * resp.max()] if resp.max() > 0 else wl
    return f"{nz.min():.0f}-{nz.max():.0f} nm"


def gaussian_curves(centres: Sequence[float], fwhm: Sequence[float] | float, name: str = "gaussian",
                    band_names: Sequence[str] | None = None, source: str = "synthetic Gaussian bands") -> SensorCurves:
    """Synthetic Gaussian bands with the given centres and FWHMs (nm)."""
    c = np.asarray(centres, dtype=np.float64)
    f = np.broadcast_to(np.asarray(fwhm, dtype=np.float64), c.shape)
    lo, hi = float((c - 3 * f).min()), float((c + 3 * f).max())
    wl = np.arange(np.floor(lo), np.ceil(hi) + 1.0, 1.0)
    sig = fwhm_to_sigma(f)
    resp = np.exp(-0.5 * ((wl[None, :] - c[:, None]) / sig[:, None]) ** 2)
    names = tuple(band_names) if band_names else tuple(f"{x:.0f}nm" for x in c)
    return SensorCurves(name, wl, resp, names, source)


def _edges_to_gauss(name: str, edges: dict[str, tuple[float, float]], source: str) -> SensorCurves:
    """Gaussian approximation of bands given by their published lower/upper edges (FWHM = width)."""
    centres = [(a + b) / 2 for a, b in edges.values()]
    widths = [b - a for a, b in edges.values()]
    return gaussian_curves(centres, widths, name, tuple(edges), source)


def read_curves_csv(path: str | Path, name: str | None = None) -> SensorCurves:
    """Read ``wavelength, band1, band2, ...`` rows (``#`` comments, optional header line; µm converted)."""
    path = Path(path)
    if not path.is_file():
        raise SRFError(f"SRF file not found: {path}")
    header: list[str] | None = None
    rows = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in re.split(r"[,;\t ]+", line) if p.strip()]
        try:
            rows.append([float(p) for p in parts])
        except ValueError:
            if rows or header is not None:
                raise SRFError(f"{path}: non-numeric row {line!r}") from None
            header = parts
    if not rows:
        raise SRFError(f"{path}: no numeric rows")
    if len({len(r) for r in rows}) != 1:
        raise SRFError(f"{path}: rows have different numbers of columns")
    a = np.asarray(rows, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] < 2:
        raise SRFError(f"{path}: expected columns 'wavelength, band1, ...'")
    if not np.all(np.isfinite(a)):
        raise SRFError(f"{path}: contains NaN or Inf")
    if a[:, 0].min() <= 0:
        raise SRFError(f"{path}: wavelengths must be positive")
    wl = a[:, 0] * (1000.0 if a[:, 0].max() < 30 else 1.0)
    order = np.argsort(wl)
    names = tuple(header[1 : a.shape[1]]) if header and len(header) >= a.shape[1] else tuple(
        f"band{i + 1}" for i in range(a.shape[1] - 1)
    )
    return SensorCurves(name or path.stem, wl[order], a[order, 1:].T.copy(), names, f"csv: {path}")


@lru_cache(maxsize=None)
def _pyrsr(satellite: str, sensor: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    import warnings

    from pyrsr import RelativeSpectralResponse

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rsr = RelativeSpectralResponse(satellite=satellite, sensor=sensor)
    return np.asarray(rsr.rsrs_wvl, dtype=np.float64), {k: np.asarray(v, dtype=np.float64) for k, v in rsr.rsrs.items()}


def _from_pyrsr(name: str, satellite: str, sensor: str, bands: Sequence[str], labels: Sequence[str]) -> Callable[[], SensorCurves]:
    def build() -> SensorCurves:
        wl, rsrs = _pyrsr(satellite, sensor)
        resp = np.stack([rsrs[b] for b in bands])
        return SensorCurves(name, wl, resp, tuple(labels), f"pyrsr {satellite}/{sensor} bands {','.join(bands)}")

    return build


def _nikon_d700() -> SensorCurves:
    """Measured Nikon D700 RGB sensitivities (Jiang et al. 2013), read from the user's data folder."""
    root = data_dir()
    path = root / "srf" / "nikon_d700" / "Nikon_D700.csv" if root else None
    if path is None or not path.is_file():
        raise SRFError(
            "the Nikon D700 response is not bundled (its licence is CC BY-NC-SA); point $HSIBENCH_DATA at a "
            "folder with srf/nikon_d700/Nikon_D700.csv, or pass the CSV path as the sensor"
        )
    c = read_curves_csv(path, "nikon_d700")
    return SensorCurves("nikon_d700", c.wavelengths, c.responses, ("R", "G", "B"), c.source)


_L8 = ("Landsat-8", "OLI_TIRS")
_S2A = ("Sentinel-2A", "MSI")

# name -> (description, builder)
SENSORS: dict[str, tuple[str, Callable[[], SensorCurves]]] = {
    "landsat8_bgr": ("Landsat-8 OLI blue, green, red (pyrsr)", _from_pyrsr("landsat8_bgr", *_L8, ["2", "3", "4"], ["B", "G", "R"])),
    "landsat8_bgrn": (
        "Landsat-8 OLI blue, green, red, NIR (pyrsr)",
        _from_pyrsr("landsat8_bgrn", *_L8, ["2", "3", "4", "5"], ["B", "G", "R", "NIR"]),
    ),
    "landsat8_blue-swir2": (
        "Landsat-8 OLI bands 2-7: blue ... SWIR2 (pyrsr)",
        _from_pyrsr("landsat8_blue-swir2", *_L8, ["2", "3", "4", "5", "6", "7"], ["B", "G", "R", "NIR", "SWIR1", "SWIR2"]),
    ),
    "landsat8_oli": (
        "Landsat-8 OLI bands 1-7 (pyrsr)",
        _from_pyrsr("landsat8_oli", *_L8, [str(i) for i in range(1, 8)], ["CA", "B", "G", "R", "NIR", "SWIR1", "SWIR2"]),
    ),
    "sentinel2a": (
        "Sentinel-2A MSI 10 m + 20 m bands B2-B8A, B11, B12 (pyrsr)",
        _from_pyrsr(
            "sentinel2a", *_S2A, ["2", "3", "4", "5", "6", "7", "8", "8A", "11", "12"],
            ["B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12"],
        ),
    ),
    "sentinel2a_all": (
        "Sentinel-2A MSI all 13 bands (pyrsr)",
        _from_pyrsr("sentinel2a_all", *_S2A, ["1", "2", "3", "4", "5", "6", "7", "8", "8A", "9", "10", "11", "12"],
                    ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12"]),
    ),
    "ikonos": (
        "IKONOS B, G, R, NIR: Gaussian approximation of the published band edges (approximate)",
        lambda: _edges_to_gauss(
            "ikonos", {"B": (445, 516), "G": (506, 595), "R": (632, 698), "NIR": (757, 853)},
            "approximate: Gaussian bands from published IKONOS band edges",
        ),
    ),
    "worldview2": (
        "WorldView-2 8 bands: Gaussian approximation of published centres/widths (approximate)",
        lambda: _edges_to_gauss(
            "worldview2",
            {"coastal": (400, 450), "blue": (450, 510), "green": (510, 580), "yellow": (585, 625),
             "red": (630, 690), "red_edge": (705, 745), "nir1": (770, 895), "nir2": (860, 1040)},
            "approximate: Gaussian bands from published WorldView-2 band edges",
        ),
    ),
    "rgb_gauss": (
        "synthetic RGB camera: Gaussian bands at 610/540/460 nm, FWHM 80 nm",
        lambda: gaussian_curves([610, 540, 460], 80, "rgb_gauss", ("R", "G", "B")),
    ),
    "nikon_d700": ("Nikon D700 measured RGB (CSV from the data folder; not bundled)", _nikon_d700),
}

def _gauss_spec(name: str) -> SensorCurves:
    """Parse ``gauss:c1,c2,...:fwhm[,...]`` with every number finite and in range."""
    parts = name.replace(" ", "").split(":")
    if len(parts) != 3:
        raise SRFError(f"{name!r}: a Gaussian sensor is 'gauss:C1,C2,...:FWHM' (nm)")
    try:
        centres = [float(v) for v in parts[1].split(",") if v]
        fwhm = [float(v) for v in parts[2].split(",") if v]
    except ValueError:
        raise SRFError(f"{name!r}: centres and FWHMs must be numbers (nm)") from None
    if not centres or not fwhm:
        raise SRFError(f"{name!r}: give at least one centre and one FWHM (nm)")
    if len(centres) > MAX_MS_BANDS:
        raise SRFError(f"{name!r}: {len(centres)} bands; a Gaussian sensor has at most {MAX_MS_BANDS}")
    if len(fwhm) not in (1, len(centres)):
        raise SRFError(f"{name!r}: give one FWHM or one per centre")
    if not all(math.isfinite(c) and 0 < c <= MAX_WAVELENGTH_NM for c in centres):
        raise SRFError(f"{name!r}: band centres must be finite and in (0, {MAX_WAVELENGTH_NM:g}] nm")
    if not all(math.isfinite(f) and 0 < f <= MAX_FWHM_NM for f in fwhm):
        raise SRFError(f"{name!r}: FWHMs must be finite and in (0, {MAX_FWHM_NM:g}] nm")
    return gaussian_curves(centres, fwhm if len(fwhm) > 1 else fwhm[0], name)


def sensor_curves(name: str | SensorCurves) -> SensorCurves:
    """Resolve a sensor: a registered name, ``gauss:c1,c2,...:fwhm[,...]``, or a CSV path."""
    if isinstance(name, SensorCurves):
        return name
    if not isinstance(name, str):
        raise SRFError(f"a sensor is a name, a 'gauss:...' spec or a CSV path, got {name!r}")
    if name in SENSORS:
        return SENSORS[name][1]()
    if name.replace(" ", "").lower().startswith("gauss:"):
        return _gauss_spec(name)
    if name.lower().endswith((".csv", ".txt")) or Path(name).is_file():
        return read_curves_csv(name)
    raise SRFError(f"unknown sensor {name!r}; known: {', '.join(SENSORS)}, 'gauss:C1,C2,...:FWHM' or a CSV path")


def srf_matrix(sensor: str | SensorCurves, hs_wavelengths: Sequence[float]) -> np.ndarray:
    """SRF matrix R (MS bands × HS bands) of ``sensor`` on the HS band centres, rows summing to 1."""
    return srf_from_curves(sensor_curves(sensor), hs_wavelengths)


def check_srf(srf, shape: tuple[int, int] | None = None, what: str = "SRF") -> tuple[np.ndarray, np.ndarray]:
    """Validate a user SRF (MS bands × HS bands) and return it with rows normalised to sum 1.

    Rows are normalised exactly as PSFs are (divided by their sum), so a response given in any
    units is accepted; the original row sums are returned so a caller can report the change.

    Parameters
    ----------
    srf : array_like
        (MS bands, HS bands) real, finite, non-negative, no all-zero row.
    shape : (int, int), optional
        The required shape.
    what : str
        Name used in error messages.

    Returns
    -------
    normalised : ndarray
        float64, rows summing to 1.
    sums : ndarray
        The row sums of the input.

    Raises
    ------
    SRFError
        For a non-real dtype, wrong shape, NaN/Inf, negative entries or an all-zero row.

    Example
    -------
    >>> r, sums = check_srf([[1.0, 1.0, 0.0], [0.0, 0.0, 2.0]])
    >>> r.tolist(), sums.tolist()
    ([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]], [2.0, 2.0])
    """
    a = np.asarray(srf)
    if a.dtype == bool or a.dtype.kind not in "iuf":
        raise SRFError(f"{what} must hold real numbers, got dtype {a.dtype}")
    a = a.astype(np.float64)
    if a.ndim != 2 or 0 in a.shape:
        raise SRFError(f"{what} must be a non-empty 2-D (MS bands, HS bands) matrix, got shape {a.shape}")
    if shape is not None and tuple(a.shape) != tuple(shape):
        raise SRFError(f"{what} shape {a.shape} does not match (MS bands, HS bands) = {tuple(shape)}")
    if not np.all(np.isfinite(a)):
        raise SRFError(f"{what} contains NaN or Inf")
    if np.any(a < 0):
        r, c = (int(i) for i in np.argwhere(a < 0)[0])
        raise SRFError(f"{what} has negative entries (first at MS band {r}, HS band {c}: {a[r, c]:g})")
    sums = a.sum(axis=1)
    if np.any(sums <= 0):
        raise SRFError(f"{what} row {int(np.flatnonzero(sums <= 0)[0])} is all zero (an MS band that sees no HS band)")
    return a / sums[:, None], sums


def band_coverage(srf: np.ndarray, threshold: float = 0.0) -> np.ndarray:
    """Boolean (MS × HS) mask of the HS bands each MS band covers (the `srf_support` knowledge)."""
    srf = np.asarray(srf)
    return srf > threshold * srf.max(axis=1, keepdims=True)


def list_sensors() -> dict[str, str]:
    return {k: v[0] for k, v in SENSORS.items()}


def srf_error(est, true) -> float:
    """Relative Frobenius error ‖est − true‖_F / ‖true‖_F of an SRF estimate (``docs/conventions.md`` §9).

    Parameters
    ----------
    est, true : array-like
        (MS bands × HS bands) matrices of the same shape (any array namespace).

    Returns
    -------
    float
        The relative error (0 for identical matrices).

    Raises
    ------
    SRFError
        If the shapes differ.

    Examples
    --------
    >>> r = np.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5]])
    >>> srf_error(r, r), srf_error(2 * r, r)
    (0.0, 1.0)
    """
    from ..xp import to_numpy

    a = np.asarray(to_numpy(est), dtype=np.float64)
    b = np.asarray(to_numpy(true), dtype=np.float64)
    if a.shape != b.shape:
        raise SRFError(f"SRF shapes differ: {a.shape} vs {b.shape}")
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def fine_grid_msi(cube: np.ndarray, hs_wavelengths: Sequence[float], sensor: str | SensorCurves,
                  step_nm: float = FINE_STEP_NM) -> tuple[np.ndarray, np.ndarray]:
    """HrMSI from the sensor's full-resolution response on a fine wavelength grid, and its best SRF matrix.

    The cube (L, H, W) is interpolated spectrally with the shape-preserving piecewise cubic (PCHIP,
    :class:`scipy.interpolate.PchipInterpolator`; it reproduces linear spectra exactly, never
    overshoots and is *not* linear in the band values) onto the grid λ_min, λ_min + step, ..., λ_max
    of the HS band centres; each MS band is the response-weighted mean over that grid,
    M_j = Σ_f w_j(λ_f) X(λ_f), w_j = r_j / Σ_f r_j, with r_j linearly interpolated from the sensor
    curve (zero outside it). Since PCHIP is non-linear, no (MS × HS) matrix reproduces M exactly.
    The matrix returned is the best non-negative matrix approximation on this cube: each row solves
    argmin_{r ≥ 0} ||rᵀ X − M_j||² + ε ||r − r_lin,j||² over the cube's pixels
    (scipy.optimize.nnls), where R_lin = w · (piecewise-linear interpolation) is the same integration
    applied to the linearly interpolated bands (exact when spectra are linear between band centres)
    and ε = 1e-8 · tr(X Xᵀ)/L only breaks the ties of low-rank scenes towards it.

    Parameters
    ----------
    cube : ndarray, shape (L, H, W)
        Ground-truth cube, band-sequential.
    hs_wavelengths : sequence of float, length L
        HS band centres (nm), strictly increasing.
    sensor : str or SensorCurves
        A sensor name, ``gauss:...`` spec or CSV path (as :func:`sensor_curves`).
    step_nm : float
        Step of the fine grid (nm), default :data:`FINE_STEP_NM`.

    Returns
    -------
    msi : ndarray, shape (l, H, W), float64
        The synthesised HrMSI (no noise, no shift).
    srf : ndarray, shape (l, L), float64
        The best non-negative matrix approximation described above.

    Raises
    ------
    SRFError
        Wavelengths not strictly increasing or not matching the cube, a non-positive step, or an MS band
        whose response is zero on the whole fine grid.

    Example
    -------
    >>> import numpy as np
    >>> wl = np.arange(400.0, 701.0, 10.0)
    >>> x = np.broadcast_to(wl[:, None, None] / 700.0, (31, 4, 4))
    >>> msi, R = fine_grid_msi(x, wl, "rgb_gauss")
    >>> msi.shape, R.shape
    ((3, 4, 4), (3, 31))
    """
    from scipy.interpolate import PchipInterpolator
    from scipy.optimize import nnls

    x = np.asarray(cube, dtype=np.float64)
    wl = np.asarray(hs_wavelengths, dtype=np.float64).ravel()
    if x.ndim != 3 or wl.size != x.shape[0]:
        raise SRFError(f"cube {x.shape} and {wl.size} wavelengths do not match")
    if wl.size < 2 or np.any(np.diff(wl) <= 0):
        raise SRFError("fine SRF sampling needs at least 2 strictly increasing HS wavelengths")
    if not step_nm > 0:
        raise SRFError(f"the fine grid step must be positive, got {step_nm}")
    curves = sensor_curves(sensor)
    fine = np.arange(wl[0], wl[-1] + 1e-9, step_nm)
    weights = []
    for name, resp in zip(curves.band_names, curves.responses):
        r = np.interp(fine, curves.wavelengths, np.clip(resp, 0, None), left=0.0, right=0.0)
        if r.sum() <= 0:
            raise SRFError(f"MS band {name!r} of {curves.name} ({_span(curves.wavelengths, resp)}) has no response "
                           f"on the HS range {wl[0]:.0f}-{wl[-1]:.0f} nm")
        weights.append(r / r.sum())
    W = np.stack(weights)  # (l, F)
    L, H, Wd = x.shape
    flat = x.reshape(L, -1)
    xf = PchipInterpolator(wl, flat, axis=0)(fine)  # (F, P)
    msi = (W @ xf).reshape(len(weights), H, Wd)
    r_lin = W @ np.stack([np.interp(fine, wl, e) for e in np.eye(L)], axis=1)  # (l, L)
    eps = 1e-8 * float(np.sum(flat * flat)) / L
    A = np.vstack([flat.T, math.sqrt(eps) * np.eye(L)])
    srf = np.stack([nnls(A, np.concatenate([m.ravel(), math.sqrt(eps) * r0]), maxiter=50 * L)[0]
                    for m, r0 in zip(msi, r_lin)])
    return msi, srf
