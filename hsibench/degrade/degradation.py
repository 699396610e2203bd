"""One serialisable description of a degradation and its application to a ground-truth cube."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
from scipy import ndimage

from .noise import add_noise, seeded_rng
from .psf import KernelError, check_kernel_spec, check_scale_factor, make_kernel
from .spatial import BOUNDARIES, blur_decimate, check_scale
from .srf import SRFError, band_coverage, sensor_curves, srf_matrix

__all__ = ["Degradation", "DegradationError", "Observation", "simulate", "SNR_RANGE_DB", "MAX_MISREGISTRATION"]

#: SNRs (dB) a degradation accepts; ``None``/``"inf"`` means no noise.
SNR_RANGE_DB = (-50.0, 200.0)
#: Largest misregistration, in HR pixels, on either axis (it must also stay below the image size).
MAX_MISREGISTRATION = 1024.0


class DegradationError(ValueError):
    """A degradation parameter of the wrong type, non-finite, or out of range."""


def _is_real(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _snr(v, what: str) -> float | None:
    if v is None:
        return None
    if isinstance(v, str):
        if v.strip().lower() in ("inf", "+inf", "none", "off", "clean", ""):
            return None
        try:
            v = float(v)
        except ValueError:
            raise DegradationError(f"{what} must be a number of dB or 'inf', got {v!r}") from None
    if not _is_real(v):
        raise DegradationError(f"{what} must be a number of dB or 'inf', got {v!r} ({type(v).__name__})")
    v = float(v)
    if v == math.inf:
        return None
    lo, hi = SNR_RANGE_DB
    if not (math.isfinite(v) and lo <= v <= hi):
        raise DegradationError(f"{what} must be 'inf' or a finite number of dB in [{lo:g}, {hi:g}], got {v:g}")
    return v


def _misregistration(v) -> tuple[float, float]:
    if isinstance(v, (str, bytes)) or not hasattr(v, "__len__") or len(v) != 2 or not all(_is_real(x) for x in v):
        raise DegradationError(f"misregistration is a (rows, cols) pair of numbers in HR pixels, got {v!r}")
    out = tuple(float(x) for x in v)
    if not all(math.isfinite(x) and abs(x) <= MAX_MISREGISTRATION for x in out):
        raise DegradationError(f"misregistration must be finite and at most {MAX_MISREGISTRATION:g} HR pixels "
                               f"per axis, got {v!r}")
    return out


@dataclass(frozen=True)
class Degradation:
    """PSF blur + strided decimation for the LrHSI, SRF for the HrMSI, noise on both.

    ``kernel`` is a preset spec (``gauss_fwhm``, ``motion(7,30)``, ...), ``sensor`` a sensor name,
    ``gauss:...`` spec or CSV path. SNRs are in dB, ``None`` meaning no noise. ``misregistration``
    shifts the HrMSI by (rows, cols) HR pixels (sub-pixel, cubic spline).
    """

    scale: int
    kernel: str = "gauss_fwhm"
    sensor: str = "landsat8_bgr"
    snr_hs: float | None = None
    snr_ms: float | None = None
    boundary: str = "symmetric"
    noise_per_band: bool = False
    misregistration: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self):
        # Every parameter is checked here, when the degradation is built, never when it is applied:
        # values are not coerced (2.5 is not a scale, True is not a scale, "1" is not a bool).
        try:
            object.__setattr__(self, "scale", check_scale_factor(self.scale))
            check_kernel_spec(self.kernel, self.scale)
        except KernelError as exc:
            raise DegradationError(str(exc)) from None
        object.__setattr__(self, "snr_hs", _snr(self.snr_hs, "snr_hs"))
        object.__setattr__(self, "snr_ms", _snr(self.snr_ms, "snr_ms"))
        object.__setattr__(self, "misregistration", _misregistration(self.misregistration))
        if not isinstance(self.boundary, str) or self.boundary not in BOUNDARIES:
            raise DegradationError(f"boundary must be one of {BOUNDARIES}, got {self.boundary!r}")
        if not isinstance(self.noise_per_band, (bool, np.bool_)):
            raise DegradationError(f"noise_per_band must be true or false, got {self.noise_per_band!r}")
        object.__setattr__(self, "noise_per_band", bool(self.noise_per_band))
        if not isinstance(self.sensor, str):
            raise DegradationError(f"sensor must be a name, a 'gauss:...' spec or a CSV path, got {self.sensor!r}")
        try:
            sensor_curves(self.sensor)  # unknown names, bad gauss: specs, unreadable CSVs fail here
        except SRFError as exc:
            raise DegradationError(str(exc)) from None

    def psf(self) -> np.ndarray:
        return make_kernel(self.kernel, self.scale)

    def srf(self, wavelengths) -> np.ndarray:
        if wavelengths is None:
            raise DegradationError("the scene has no wavelengths: an SRF cannot be built from a sensor curve "
                                   "(give them, e.g. 'simulate --wavelengths 400:700')")
        return srf_matrix(self.sensor, wavelengths)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["misregistration"] = list(self.misregistration)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Degradation":
        if not isinstance(d, dict):
            raise DegradationError(f"a degradation is a mapping of its fields, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise DegradationError(f"unknown degradation fields: {sorted(unknown)}")
        return cls(**d)

    def label(self) -> str:
        snr = lambda v: "inf" if v is None else f"{v:g}"  # noqa: E731
        return f"x{self.scale}|{self.kernel}|{self.sensor}|hs{snr(self.snr_hs)}|ms{snr(self.snr_ms)}"

    def apply(self, cube: np.ndarray, wavelengths, seed: int = 0, key: str = "") -> "Observation":
        return simulate(cube, wavelengths, self, seed=seed, key=key)


@dataclass
class Observation:
    """The pair a fusion method sees, plus the truth of the degradation (for oracle mode and scoring)."""

    lr: np.ndarray  # (L, h, w) float32
    msi: np.ndarray  # (l, H, W) float32
    psf: np.ndarray  # (kh, kw) float64, sums to 1
    srf: np.ndarray  # (l, L) float64, rows sum to 1
    scale: int
    degradation: Degradation
    coverage: np.ndarray = field(default=None)  # (l, L) bool

    def __post_init__(self):
        if self.coverage is None:
            self.coverage = band_coverage(self.srf)


def simulate(cube: np.ndarray, wavelengths, deg: Degradation, seed: int = 0, key: str = "") -> Observation:
    """Degrade a ground-truth cube (L, H, W): LrHSI = A(X) + n_h, HrMSI = shift(R X) + n_m.

    The noise streams depend only on (key, degradation, seed), so every method sees the same inputs.
    """
    cube = np.asarray(cube)
    if cube.dtype == bool or cube.dtype.kind not in "iuf":
        raise DegradationError(f"cube must hold real numbers, got dtype {cube.dtype}")
    if cube.dtype.kind == "f" and cube.size and np.all(np.isfinite(cube)) and np.abs(cube).max() > np.finfo(np.float32).max:
        raise DegradationError("cube has finite values beyond the float32 range (|x| > 3.4e38)")
    cube = cube.astype(np.float32, copy=False)
    if cube.ndim != 3 or 0 in cube.shape:
        raise ValueError(f"cube must be (bands, rows, cols), got shape {cube.shape}")
    if not np.all(np.isfinite(cube)):
        raise ValueError("cube contains NaN or Inf")
    check_scale(cube.shape[1], cube.shape[2], deg.scale)
    rows, cols = cube.shape[1:]
    dr, dc = deg.misregistration
    if abs(dr) >= rows or abs(dc) >= cols:
        raise DegradationError(f"misregistration ({dr:g}, {dc:g}) HR pixels is not smaller than the image ({rows}x{cols})")
    psf = deg.psf()
    if psf.shape[0] > 2 * rows + deg.scale or psf.shape[1] > 2 * cols + deg.scale:
        raise DegradationError(f"the {psf.shape[0]}x{psf.shape[1]} PSF of {deg.kernel!r} is larger than twice the "
                               f"{rows}x{cols} image")
    srf = deg.srf(wavelengths)
    lr = blur_decimate(cube, psf.astype(np.float32), deg.scale, deg.boundary)
    msi = np.tensordot(srf.astype(np.float32), cube, axes=(1, 0))
    if any(deg.misregistration):
        msi = ndimage.shift(msi, (0.0, *deg.misregistration), order=3, mode="mirror")
    lr = add_noise(lr, deg.snr_hs, seeded_rng("hs", key, deg.label(), seed), deg.noise_per_band)
    msi = add_noise(msi, deg.snr_ms, seeded_rng("ms", key, deg.label(), seed), deg.noise_per_band)
    return Observation(
        lr=np.ascontiguousarray(lr, dtype=np.float32),
        msi=np.ascontiguousarray(msi, dtype=np.float32),
        psf=psf,
        srf=srf,
        scale=deg.scale,
        degradation=deg,
    )
