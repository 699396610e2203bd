"""One serialisable description of a degradation and its application to a ground-truth cube."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
from scipy import ndimage

from .noise import add_noise, seeded_rng
from .psf import PSFError, check_psf_spec, check_scale_factor, make_psf
from .spatial import BOUNDARIES, blur_decimate, check_scale
from .srf import SRF_SAMPLINGS, SRFError, band_coverage, fine_grid_msi, sensor_curves, srf_matrix

__all__ = ["Degradation", "DegradationError", "Observation", "add_observation_noise", "simulate", "SNR_RANGE_DB", "MAX_MISREGISTRATION"]

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

    A frozen, serialisable description (``to_dict``/``from_dict``; ``label()`` names it in tables).
    The definitions are in ``docs/conventions.md`` §2-§6.

    Parameters
    ----------
    scale : int
        Scale factor s (a positive integer).
    kernel : str
        PSF preset spec: ``gauss_fwhm``, ``gauss_sigma0.5``, ``box``, ``motion(7,30)``, ... (see
        ``hsibench list psfs``).
    sensor : str
        Sensor name (``hsibench list sensors``), a ``gauss:C1,C2,..:FWHM`` spec or a CSV path.
    snr_hs, snr_ms : float or None
        SNR of the LrHSI and of the HrMSI in dB; ``None``, ``inf`` or ``"inf"`` for no noise.
    boundary : {"symmetric", "circular"}
        Boundary rule of the spatial operator.
    noise_per_band : bool
        Apply the SNR to each band instead of the whole image.
    misregistration : (float, float)
        Shift of the HrMSI in HR pixels (rows, cols), sub-pixel by cubic spline.
    srf_sampling : {"hs_bands", "fine"}
        How the HrMSI is synthesised: ``"hs_bands"`` applies the SRF matrix sampled at the HS band
        centres (the estimator's linear model is then exact); ``"fine"`` interpolates the cube
        spectrally (PCHIP) onto a grid of ``hsibench.degrade.srf.FINE_STEP_NM`` nm and integrates the
        sensor's full response on it, so the true SRF is not exactly a matrix on the HS bands (see
        :func:`hsibench.degrade.srf.fine_grid_msi`).

    Raises
    ------
    ValueError
        A non-positive scale, an unknown boundary, a bad misregistration.
    PSFError
        An unknown or malformed PSF preset (checked at construction).

    Examples
    --------
    >>> d = Degradation(scale=4, kernel="gauss_fwhm", sensor="landsat8_bgr", snr_hs=35)
    >>> d.label()
    'x4|gauss_fwhm|landsat8_bgr|hs35|msinf'
    >>> d.psf().shape
    (4, 4)
    >>> Degradation.from_dict(d.to_dict()) == d
    True
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
        # Every parameter is checked here, when the degradation is built, never when it is applied:
        # values are not coerced (2.5 is not a scale, True is not a scale, "1" is not a bool).
        try:
            object.__setattr__(self, "scale", check_scale_factor(self.scale))
            check_psf_spec(self.kernel, self.scale)
        except PSFError as exc:
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
        if not isinstance(self.srf_sampling, str) or self.srf_sampling not in SRF_SAMPLINGS:
            raise DegradationError(f"srf_sampling must be one of {SRF_SAMPLINGS}, got {self.srf_sampling!r}")

    def psf(self) -> np.ndarray:
        return make_psf(self.kernel, self.scale)

    def srf(self, wavelengths) -> np.ndarray:
        """The SRF matrix of ``sensor`` sampled at the HS band centres (for ``srf_sampling = "fine"``
        the HrMSI is not a matrix product; :func:`simulate` then reports the best matrix fit instead)."""
        if wavelengths is None:
            raise DegradationError("the scene has no wavelengths: an SRF cannot be built from a sensor curve "
                                   "(give them, e.g. 'simulate --wavelengths 400:700')")
        return srf_matrix(self.sensor, wavelengths)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["misregistration"] = list(self.misregistration)
        if d["srf_sampling"] == "hs_bands":  # the default stays out, so earlier job ids do not change
            del d["srf_sampling"]
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

    def _noise_label(self) -> str:
        """The first five fields, the key of the noise streams: degradations that differ only in the
        boundary or the misregistration draw the same noise (common random numbers)."""
        snr = lambda v: "inf" if v is None else f"{v:g}"  # noqa: E731
        out = f"x{self.scale}|{self.kernel}|{self.sensor}|hs{snr(self.snr_hs)}|ms{snr(self.snr_ms)}"
        return out

    def label(self) -> str:
        """A short identity string naming every field: two degradations share a label only if equal.

        Fields at their default value after the SNRs are left out, so common degradations keep a
        short label; any other value is appended as ``|name=value``.

        Returns
        -------
        str
            E.g. ``x4|gauss_fwhm|landsat8_bgr|hsinf|ms30`` or ``x4|box|landsat8_bgr|hsinf|msinf|boundary=circular``.

        Example
        -------
        >>> Degradation(4, "box", snr_ms=30, misregistration=(0.5, 0)).label()
        'x4|box|landsat8_bgr|hsinf|ms30|misregistration=0.5,0'
        """
        out = self._noise_label()
        for f in fields(self):
            if f.name in ("scale", "kernel", "sensor", "snr_hs", "snr_ms"):
                continue
            v = getattr(self, f.name)
            if v == f.default:
                continue
            if isinstance(v, (tuple, list)):
                v = ",".join(f"{x:g}" if isinstance(x, float) else str(x) for x in v)
            elif isinstance(v, float):
                v = f"{v:g}"
            out += f"|{f.name}={v}"
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

    The noise streams depend only on (key, degradation, seed), so every method and every run sees
    the same inputs (``docs/conventions.md`` §6).
    With ``deg.srf_sampling == "fine"`` the HrMSI is R_fine(X) (:func:`~hsibench.degrade.srf.fine_grid_msi`,
    not a matrix product) and the SRF the observation reports (what oracle mode is given and what
    SRF errors are scored against) is the best matrix approximation of it on this scene.

    Parameters
    ----------
    cube : array (L, H, W)
        Ground truth, a NumPy array (the simulation runs on the host and returns NumPy arrays; move
        the observation to a device afterwards); converted to float32.
    wavelengths : array (L,)
        HS band centres in nm (needed for the SRF).
    deg : Degradation
        What to apply.
    seed : int
        Noise seed.
    key : str
        Scene key mixed into the noise seed (the study uses the scene source).

    Returns
    -------
    Observation
        ``lr`` (L, H/s, W/s) and ``msi`` (l, H, W) float32, the true ``psf`` and ``srf`` (float64),
        ``scale``, the ``degradation`` and the band ``coverage`` (l, L).

    Raises
    ------
    ValueError
        A cube that is not 3-D or holds NaN/Inf, a scale that does not divide it, no wavelengths.
    SRFError
        An MS band that overlaps no HS band.

    Examples
    --------
    >>> import numpy as np
    >>> cube = np.random.default_rng(0).random((31, 32, 32))
    >>> obs = simulate(cube, np.linspace(400, 700, 31), Degradation(4, "box", "rgb_gauss"))
    >>> obs.lr.shape, obs.msi.shape, obs.srf.shape
    ((31, 8, 8), (3, 32, 32), (3, 31))
    >>> bool(np.allclose(obs.lr, cube.reshape(31, 8, 4, 8, 4).mean(axis=(2, 4)), atol=1e-6))
    True
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
    if deg.srf_sampling == "fine":
        msi, srf = fine_grid_msi(cube, wavelengths, deg.sensor)
        msi = msi.astype(np.float32)
    else:
        msi = np.tensordot(srf.astype(np.float32), cube, axes=(1, 0))
    if any(deg.misregistration):
        msi = ndimage.shift(msi, (0.0, *deg.misregistration), order=3, mode="mirror")
    lr, msi = add_observation_noise(lr, msi, deg, seed=seed, key=key)
    return Observation(
        lr=lr,
        msi=msi,
        psf=psf,
        srf=srf,
        scale=deg.scale,
        degradation=deg,
    )


def add_observation_noise(lr, msi, deg: Degradation, seed: int = 0, key: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Add ``deg``'s noise to an (LrHSI, HrMSI) pair from the seeded noise streams of (key, degradation, seed).

    The one place the noise of an observation is drawn: :func:`simulate` and the real-pair cases
    (:func:`hsibench.data.pairs.pair_case`) both call it, so the same key, degradation and seed give
    the same standard normal draws. The streams are keyed by the scale, kernel, sensor and the two
    SNRs only: degradations that differ only in the boundary, misregistration, SRF sampling or
    per-band noise draw the same field (common random numbers), scaled to each image's power.

    Parameters
    ----------
    lr : array (L, h, w)
        Noiseless LrHSI; converted to float32.
    msi : array (l, H, W)
        Noiseless HrMSI; converted to float32.
    deg : Degradation
        ``snr_hs`` / ``snr_ms`` (None: no noise on that image) and ``noise_per_band`` set the noise.
    seed : int
        Noise seed.
    key : str
        Scene key mixed into the noise seed.

    Returns
    -------
    (ndarray, ndarray)
        The noisy ``lr`` and ``msi``, C-contiguous float32 (an image without noise is returned unchanged
        apart from that conversion).

    Raises
    ------
    ValueError
        A NaN SNR (through :func:`~hsibench.degrade.noise.add_noise`).

    Example
    -------
    >>> import numpy as np
    >>> lr, msi = np.ones((4, 2, 2)), np.ones((3, 4, 4))
    >>> a = add_observation_noise(lr, msi, Degradation(2, "box", snr_hs=30), seed=1, key="k")
    >>> b = add_observation_noise(lr, msi, Degradation(2, "box", snr_hs=30), seed=1, key="k")
    >>> bool(np.array_equal(a[0], b[0])), bool(np.array_equal(a[1], msi))  # seeded; no MS noise
    (True, True)
    """
    label = deg._noise_label()
    lr = add_noise(np.asarray(lr, np.float32), deg.snr_hs, seeded_rng("hs", key, label, seed), deg.noise_per_band)
    msi = add_noise(np.asarray(msi, np.float32), deg.snr_ms, seeded_rng("ms", key, label, seed), deg.noise_per_band)
    return np.ascontiguousarray(lr, dtype=np.float32), np.ascontiguousarray(msi, dtype=np.float32)
