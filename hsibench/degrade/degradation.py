"""One serialisable description of a degradation and its application to a ground-truth cube."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
from scipy import ndimage

from .noise import add_noise, seeded_rng
from .psf import make_kernel
from .spatial import BOUNDARIES, blur_decimate, check_scale
from .srf import SRF_SAMPLINGS, band_coverage, fine_grid_msi, srf_matrix

__all__ = ["Degradation", "Observation", "simulate"]


def _snr(v) -> float | None:
    if v is None:
        return None
    if isinstance(v, str):
        if v.lower() in ("inf", "none", "off", "clean", ""):
            return None
        v = float(v)
    v = float(v)
    return None if math.isinf(v) else v


@dataclass(frozen=True)
class Degradation:
    """PSF blur + strided decimation for the LrHSI, SRF for the HrMSI, noise on both.

    ``kernel`` is a preset spec (``gauss_fwhm``, ``motion(7,30)``, ...), ``sensor`` a sensor name,
    ``gauss:...`` spec or CSV path. SNRs are in dB, ``None`` meaning no noise. ``misregistration``
    shifts the HrMSI by (rows, cols) HR pixels (sub-pixel, cubic spline). ``srf_sampling`` says how
    the HrMSI is synthesised: ``"hs_bands"`` (the default) applies the SRF matrix sampled at the HS
    band centres, so the estimator's linear model is exact; ``"fine"`` interpolates the cube spectrally
    (shape-preserving cubic, PCHIP) onto a grid of ``hsibench.degrade.srf.FINE_STEP_NM`` nm and
    integrates the sensor's full-resolution response on it, so the true SRF is not exactly a matrix on
    the HS bands (see :func:`hsibench.degrade.srf.fine_grid_msi`).
    """

    scale: int
    kernel: str = "gauss_fwhm"
    sensor: str = "landsat8_bgr"
    snr_hs: float | None = None
    snr_ms: float | None = None
    boundary: str = "symmetric"
    noise_per_band: bool = False
    misregistration: tuple[float, float] = (0.0, 0.0)
    srf_sampling: str = "hs_bands"

    def __post_init__(self):
        object.__setattr__(self, "scale", int(self.scale))
        object.__setattr__(self, "snr_hs", _snr(self.snr_hs))
        object.__setattr__(self, "snr_ms", _snr(self.snr_ms))
        object.__setattr__(self, "misregistration", tuple(float(v) for v in self.misregistration))
        if self.scale < 1:
            raise ValueError(f"scale must be a positive integer, got {self.scale}")
        if self.boundary not in BOUNDARIES:
            raise ValueError(f"boundary must be one of {BOUNDARIES}, got {self.boundary!r}")
        if len(self.misregistration) != 2:
            raise ValueError("misregistration is (rows, cols) in HR pixels")
        make_kernel(self.kernel, self.scale)  # fail early on a bad preset
        if self.srf_sampling not in SRF_SAMPLINGS:
            raise ValueError(f"srf_sampling must be one of {SRF_SAMPLINGS}, got {self.srf_sampling!r}")

    def psf(self) -> np.ndarray:
        return make_kernel(self.kernel, self.scale)

    def srf(self, wavelengths) -> np.ndarray:
        """The SRF matrix of ``sensor`` sampled at the HS band centres (for ``srf_sampling = "fine"``
        the HrMSI is not a matrix product; :func:`simulate` then reports the best matrix fit instead)."""
        if wavelengths is None:
            raise ValueError("the scene has no wavelengths: an SRF cannot be built from a sensor curve")
        return srf_matrix(self.sensor, wavelengths)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["misregistration"] = list(self.misregistration)
        if d["srf_sampling"] == "hs_bands":  # the default stays out, so earlier job ids do not change
            del d["srf_sampling"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Degradation":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown degradation fields: {sorted(unknown)}")
        return cls(**d)

    def label(self) -> str:
        snr = lambda v: "inf" if v is None else f"{v:g}"  # noqa: E731
        out = f"x{self.scale}|{self.kernel}|{self.sensor}|hs{snr(self.snr_hs)}|ms{snr(self.snr_ms)}"
        if any(self.misregistration):  # else a shifted case would share the unshifted case's identity
            out += f"|shift({self.misregistration[0]:g},{self.misregistration[1]:g})"
        if self.srf_sampling != "hs_bands":
            out += f"|srf:{self.srf_sampling}"
        return out

    def apply(self, cube: np.ndarray, wavelengths, seed: int = 0, key: str = "") -> "Observation":
        return simulate(cube, wavelengths, self, seed=seed, key=key)


@dataclass
class Observation:
    """The pair a fusion method sees, plus the truth of the degradation (for oracle mode and scoring)."""

    lr: np.ndarray  # (L, h, w) float32
    msi: np.ndarray  # (l, H, W) float32
    psf: np.ndarray | None  # (kh, kw) float64, sums to 1; None for a real pair (unknown)
    srf: np.ndarray | None  # (l, L) float64, rows sum to 1; None for a real pair (unknown)
    scale: int
    degradation: Degradation
    coverage: np.ndarray = field(default=None)  # (l, L) bool

    def __post_init__(self):
        if self.coverage is None and self.srf is not None:  # a real pair has no known SRF (nor PSF)
            self.coverage = band_coverage(self.srf)


def simulate(cube: np.ndarray, wavelengths, deg: Degradation, seed: int = 0, key: str = "") -> Observation:
    """Degrade a ground-truth cube (L, H, W): LrHSI = A(X) + n_h, HrMSI = shift(R X) + n_m.

    The noise streams depend only on (key, degradation, seed), so every method sees the same inputs.
    With ``deg.srf_sampling == "fine"`` the HrMSI is R_fine(X) (:func:`~hsibench.degrade.srf.fine_grid_msi`,
    not a matrix product) and the SRF the observation reports (what oracle mode is given and what
    SRF errors are scored against) is the best matrix approximation of it on this scene.
    """
    cube = np.asarray(cube, dtype=np.float32)
    if cube.ndim != 3:
        raise ValueError(f"cube must be (bands, rows, cols), got shape {cube.shape}")
    if not np.all(np.isfinite(cube)):
        raise ValueError("cube contains NaN or Inf")
    check_scale(cube.shape[1], cube.shape[2], deg.scale)
    psf = deg.psf()
    srf = deg.srf(wavelengths)
    lr = blur_decimate(cube, psf.astype(np.float32), deg.scale, deg.boundary)
    if deg.srf_sampling == "fine":
        msi, srf = fine_grid_msi(cube, wavelengths, deg.sensor)
        msi = msi.astype(np.float32)
    else:
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
