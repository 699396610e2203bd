"""PSFs: named presets and shape generators (Gaussian, anisotropic, box, motion, disk, Airy).

Every PSF is a float64 2-D array, non-negative, summing to 1, whose size has the parity of the
scale factor s (``k ≡ s (mod 2)``) so that block-centred alignment needs no half-pixel shift
(``docs/conventions.md`` §2). The package says "PSF" for these blur kernels; "kernel" alone means a
compiled compute kernel of :mod:`hsibench.kernels`. The older ``*kernel*`` names (``make_kernel``,
``KERNEL_PRESETS``, ``KernelError``, ...) remain as aliases of the PSF names (end of this module).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import special

from .geometry import PSFError, keys_cubic

__all__ = [
    "PSFError",
    "PSF_PRESETS",
    "MAX_PSF_SIZE",
    "MAX_SCALE",
    "make_psf",
    "check_psf",
    "check_psf_spec",
    "check_scale_factor",
    "list_psfs",
    "parse_psf",
    "gaussian_psf",
    "box_psf",
    "resize_psf",
    "psf_error",
    "fwhm_to_sigma",
    "FWHM_TO_SIGMA",
    # older names, kept as aliases (see the end of the module)
    "KernelError",
    "KERNEL_PRESETS",
    "MAX_KERNEL_SIZE",
    "make_kernel",
    "check_kernel",
    "check_kernel_spec",
    "list_kernels",
    "parse_kernel",
    "gaussian_kernel",
    "box_kernel",
    "resize_kernel",
]

#: σ = FWHM · FWHM_TO_SIGMA for a Gaussian: 1 / (2·sqrt(2·ln 2)) = 1/2.35482.
FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))
MASS_FRACTION = 0.995

#: Largest scale factor a PSF (and a :class:`~hsibench.degrade.Degradation`) is built for.
MAX_SCALE = 128
#: Largest side, in HR pixels, of the grid a PSF preset is generated on (before the 99.5 %-mass
#: crop). It bounds σ ≤ 25 for ``gauss``/``aniso_gauss``, length ≤ 250 for ``motion``, radius ≤ 125
#: for ``disk`` and ≤ 15 for ``airy``; the check runs on the arguments, before any allocation.
MAX_PSF_SIZE = 257



def fwhm_to_sigma(fwhm):
    """Standard deviation of a Gaussian with full width at half maximum ``fwhm`` (same units).

    The one FWHM ↔ σ conversion of the package (PSF presets, Gaussian SRF bands, the nets' starts).

    Examples
    --------
    >>> round(fwhm_to_sigma(2.35482), 5)
    1.0
    """
    return fwhm * FWHM_TO_SIGMA


def check_psf(k: np.ndarray, scale: int) -> np.ndarray:
    """Validate a PSF for scale ``scale``: 2-D, finite, non-negative, parity ≡ s; return it normalised.

    Parameters
    ----------
    k : array-like
        The PSF taps (HR pixels).
    scale : int
        The scale factor s; every side of ``k`` must be ≡ s (mod 2).

    Returns
    -------
    numpy.ndarray
        ``k`` as float64, divided by its sum.

    Raises
    ------
    PSFError
        If ``k`` is not 2-D, holds NaN/Inf or negative taps, sums to zero, or has the wrong parity.

    Example
    -------
    >>> check_psf([[1.0, 1.0], [1.0, 1.0]], 2)
    array([[0.25, 0.25],
           [0.25, 0.25]])
    """
    k = np.asarray(k, dtype=np.float64)
    if k.ndim != 2:
        raise PSFError(f"PSF must be 2-D, got shape {k.shape}")
    if not np.all(np.isfinite(k)):
        raise PSFError("PSF contains NaN or Inf")
    if np.any(k < 0):
        raise PSFError("PSF has negative taps")
    total = k.sum()
    if total <= 0:
        raise PSFError("PSF sums to zero")
    for n in k.shape:
        if (n - scale) % 2:
            raise PSFError(
                f"PSF size {k.shape} has the wrong parity for scale {scale}: block-centred alignment "
                f"needs every side ≡ s (mod 2)"
            )
    return k / total


def _centred_grid(size: int) -> np.ndarray:
    return np.arange(size, dtype=np.float64) - (size - 1) / 2.0


def gaussian_psf(size: int | tuple[int, int], sigma: float | tuple[float, float], theta_deg: float = 0.0) -> np.ndarray:
    """Point-sampled Gaussian (MATLAB ``fspecial('gaussian')`` style), centred, sum 1.

    Parameters
    ----------
    size : int or (int, int)
        Side, or (rows, columns), in HR pixels.
    sigma : float or (float, float)
        Standard deviation in pixels, or (sigma_x, sigma_y) for an anisotropic PSF.
    theta_deg : float
        Counter-clockwise rotation of the (sigma_x, sigma_y) axes, in degrees.

    Returns
    -------
    numpy.ndarray
        The float64 PSF, summing to 1.

    Raises
    ------
    PSFError
        If a sigma is not positive.

    Example
    -------
    >>> k = gaussian_psf(3, 1.0)
    >>> k.shape, round(float(k.sum()), 12), bool(k[1, 1] == k.max())
    ((3, 3), 1.0, True)
    """
    kh, kw = (size, size) if np.isscalar(size) else size
    sx, sy = (sigma, sigma) if np.isscalar(sigma) else sigma
    if sx <= 0 or sy <= 0:
        raise PSFError(f"Gaussian sigma must be positive, got {sigma}")
    y, x = np.meshgrid(_centred_grid(kh), _centred_grid(kw), indexing="ij")
    t = math.radians(theta_deg)
    xr = x * math.cos(t) + y * math.sin(t)
    yr = -x * math.sin(t) + y * math.cos(t)
    k = np.exp(-0.5 * ((xr / sx) ** 2 + (yr / sy) ** 2))
    return k / k.sum()


def resize_psf(scale: int, kind: str = "cubic") -> np.ndarray:
    """Antialiasing PSF of a 1/s image resize (MATLAB ``imresize`` style), block-centred.

    Separable; taps at distance d (HR pixels) from the block centre weigh φ(d/s) with φ the Keys cubic
    (a = −0.5) or the triangle, so the support is 4s (cubic) or 2s (linear) with the parity of s.
    The cubic one has negative lobes (it is not a physical PSF; :func:`check_psf` would refuse it).

    Parameters
    ----------
    scale : int
        The scale factor s.
    kind : {"cubic", "linear"}
        The interpolation kernel φ.

    Returns
    -------
    numpy.ndarray
        The float64 taps, summing to 1.

    Example
    -------
    >>> resize_psf(2, "linear").shape, resize_psf(2, "cubic").shape
    ((4, 4), (8, 8))
    """
    half = {"cubic": 2 * scale, "linear": scale}[kind]
    d = _centred_grid(2 * half - (scale % 2))
    phi = keys_cubic(d / scale) if kind == "cubic" else np.clip(1 - np.abs(d / scale), 0, None)
    k = np.outer(phi, phi)
    return k / k.sum()


def box_psf(size: int) -> np.ndarray:
    """Uniform ``size``×``size`` average.

    Parameters
    ----------
    size : int
        Side in HR pixels.

    Returns
    -------
    numpy.ndarray
        The float64 PSF, every tap 1/size².

    Example
    -------
    >>> box_psf(2)
    array([[0.25, 0.25],
           [0.25, 0.25]])
    """
    return np.full((size, size), 1.0 / (size * size))


def _supersampled(func: Callable[[np.ndarray, np.ndarray], np.ndarray], size: int, factor: int = 9) -> np.ndarray:
    """Integrate ``func(y, x)`` over each pixel of a centred ``size``×``size`` grid by supersampling."""
    sub = (np.arange(factor) + 0.5) / factor - 0.5
    g = (_centred_grid(size)[:, None] + sub[None, :]).ravel()
    y, x = np.meshgrid(g, g, indexing="ij")
    v = func(y, x).reshape(size, factor, size, factor).mean(axis=(1, 3))
    return v


def _crop_to_mass(k: np.ndarray, scale: int, fraction: float = MASS_FRACTION) -> np.ndarray:
    """Smallest centred square crop with parity ≡ s holding ≥ ``fraction`` of the mass; renormalised."""
    n = k.shape[0]
    total = k.sum()
    start = scale % 2 if scale % 2 else 2
    for size in range(start, n + 1, 2):
        off = (n - size) // 2
        if k[off : off + size, off : off + size].sum() >= fraction * total:
            c = k[off : off + size, off : off + size]
            return c / c.sum()
    return k / total


def _support_grid(extent: float, scale: int) -> int:
    """A grid size of the right parity large enough to hold ``extent`` pixels of radius."""
    n = int(2 * math.ceil(extent) + 3)
    if (n - scale) % 2:
        n += 1
    return n


def _gauss_mass(sigma_x: float, sigma_y: float, theta: float, scale: int) -> np.ndarray:
    n = _support_grid(5 * max(sigma_x, sigma_y), scale)
    return _crop_to_mass(gaussian_psf(n, (sigma_x, sigma_y), theta), scale)


def _motion(length: float, angle_deg: float, scale: int) -> np.ndarray:
    if length <= 0:
        raise PSFError("motion length must be positive")
    n = _support_grid(length / 2 + 1, scale)
    t = math.radians(angle_deg)
    d = np.array([math.cos(t), -math.sin(t)])  # (x, y) direction; rows grow downwards
    # Rasterise a segment of the given length with a 1-pixel-wide triangle profile across it.
    def f(y, x):
        along = x * d[0] + y * d[1]
        across = -x * d[1] + y * d[0]
        inside = np.abs(along) <= length / 2
        return inside * np.clip(1.0 - np.abs(across), 0.0, None)

    return _crop_to_mass(_supersampled(f, n), scale)


def _disk(radius: float, scale: int) -> np.ndarray:
    if radius <= 0:
        raise PSFError("disk radius must be positive")
    n = _support_grid(radius + 1, scale)
    k = _supersampled(lambda y, x: (x * x + y * y <= radius * radius).astype(float), n)
    return _crop_to_mass(k, scale)


def _airy(radius: float, scale: int) -> np.ndarray:
    """Airy pattern whose first zero is at ``radius`` pixels."""
    if radius <= 0:
        raise PSFError("airy radius must be positive")
    first_zero = 3.831705970207512
    n = _support_grid(8 * radius, scale)

    def f(y, x):
        r = np.hypot(x, y) * first_zero / radius
        out = np.ones_like(r)
        nz = r > 1e-12
        out[nz] = (2 * special.j1(r[nz]) / r[nz]) ** 2
        return out

    return _crop_to_mass(_supersampled(f, n), scale)


def _positive(what: str, v: float) -> None:
    if not (math.isfinite(v) and v > 0):
        raise PSFError(f"{what} must be a positive finite number, got {v:g}")


def _finite(what: str, v: float) -> None:
    if not math.isfinite(v):
        raise PSFError(f"{what} must be a finite number, got {v:g}")


def _fits(spec: str, extent: float, scale: int, bound: str) -> None:
    """Refuse a PSF whose generation grid (:func:`_support_grid`) exceeds MAX_PSF_SIZE."""
    n = _support_grid(extent, scale)
    if n > MAX_PSF_SIZE:
        raise PSFError(f"{spec} needs a {n}x{n} support grid; PSFs are limited to "
                          f"{MAX_PSF_SIZE}x{MAX_PSF_SIZE} pixels ({bound})")


def _check_gauss(s: int, sig: float) -> None:
    _positive("gauss σ", sig)
    _fits(f"gauss({sig:g})", 5 * sig, s, "σ ≤ 25")


def _check_aniso(s: int, sx: float, sy: float, th: float = 0.0) -> None:
    _positive("aniso_gauss σx", sx)
    _positive("aniso_gauss σy", sy)
    _finite("aniso_gauss θ", th)
    _fits(f"aniso_gauss({sx:g}, {sy:g}, {th:g})", 5 * max(sx, sy), s, "σ ≤ 25")


def _check_motion(s: int, ln: float, ang: float = 0.0) -> None:
    _positive("motion length", ln)
    _finite("motion angle", ang)
    _fits(f"motion({ln:g}, {ang:g})", ln / 2 + 1, s, "length ≤ 250")


def _check_disk(s: int, r: float) -> None:
    _positive("disk radius", r)
    _fits(f"disk({r:g})", r + 1, s, "radius ≤ 125")


def _check_airy(s: int, r: float) -> None:
    _positive("airy radius", r)
    _fits(f"airy({r:g})", 8 * r, s, "radius ≤ 15")


def _check_gauss_x(s: int, f: float) -> None:
    _positive("gauss_fwhm_x factor", f)
    _fits(f"gauss_fwhm_x({f:g})", 5 * f * s * FWHM_TO_SIGMA, s, "f·s ≤ 58")


def _check_aniso_x(s: int, fx: float, fy: float, th: float = 0.0) -> None:
    _positive("aniso_fwhm_x fx", fx)
    _positive("aniso_fwhm_x fy", fy)
    _finite("aniso_fwhm_x θ", th)
    _fits(f"aniso_fwhm_x({fx:g}, {fy:g}, {th:g})", 5 * max(fx, fy) * s * FWHM_TO_SIGMA, s, "f·s ≤ 58")


def _check_motion_x(s: int, f: float, ang: float = 0.0) -> None:
    _positive("motion_x factor", f)
    _finite("motion_x angle", ang)
    _fits(f"motion_x({f:g}, {ang:g})", f * s / 2 + 1, s, "f·s ≤ 250")


def _check_airy_x(s: int, f: float) -> None:
    _positive("airy_x factor", f)
    _fits(f"airy_x({f:g})", 8 * f * s, s, "f·s ≤ 15")


@dataclass(frozen=True)
class _Preset:
    doc: str
    build: Callable[..., np.ndarray]
    nargs: tuple[int, ...] = (0,)
    #: ``check(scale, *args)`` raises :class:`PSFError` for arguments out of range (non-finite,
    #: non-positive, a support larger than MAX_PSF_SIZE) before anything is allocated.
    check: Callable[..., None] | None = None


PSF_PRESETS: dict[str, _Preset] = {
    "gauss_sigma0.5": _Preset("s×s Gaussian, σ = 0.5 (CUCaNet, HyCoNet)", lambda s: gaussian_psf(s, 0.5)),
    "gauss_fwhm": _Preset("s×s Gaussian, FWHM = s (EU2ADL code)", lambda s: gaussian_psf(s, fwhm_to_sigma(s))),
    "gauss_fwhm_wide": _Preset(
        "2s×2s Gaussian ((2s−1)² for odd s), FWHM = s (Yokoya toolbox, overlapping support)",
        lambda s: gaussian_psf(2 * s - (s % 2), fwhm_to_sigma(s)),
    ),
    "box": _Preset("s×s average (CycFusion)", lambda s: box_psf(s)),
    "gauss": _Preset("gauss(σ): isotropic Gaussian, support ≥ 99.5 % mass", lambda s, sig: _gauss_mass(sig, sig, 0.0, s), (1,),
                     _check_gauss),
    "aniso_gauss": _Preset(
        "aniso_gauss(σx, σy, θ°): rotated anisotropic Gaussian", lambda s, sx, sy, th=0.0: _gauss_mass(sx, sy, th, s), (2, 3),
        _check_aniso,
    ),
    "motion": _Preset("motion(length, angle°): linear motion blur", lambda s, ln, ang=0.0: _motion(ln, ang, s), (1, 2),
                      _check_motion),
    "disk": _Preset("disk(radius): uniform disk (defocus)", lambda s, r: _disk(r, s), (1,), _check_disk),
    "airy": _Preset("airy(radius): Airy pattern with first zero at radius px", lambda s, r: _airy(r, s), (1,), _check_airy),
    # Scale-relative shapes (sizes in units of s), so one spec means the same blur at every scale; their
    # support (≥ 99.5 % mass) is wider than the 2s × 2s kernel a blind estimator fits once f ≳ 1.
    "gauss_fwhm_x": _Preset(
        "gauss_fwhm_x(f): isotropic Gaussian, FWHM = f·s, support ≥ 99.5 % mass (f = 2: ~5s wide)",
        lambda s, f: _scaled_gauss(f, f, 0.0, s), (1,), _check_gauss_x,
    ),
    "aniso_fwhm_x": _Preset(
        "aniso_fwhm_x(fx, fy, θ°): rotated anisotropic Gaussian, FWHMs fx·s and fy·s, ≥ 99.5 % mass",
        lambda s, fx, fy, th=0.0: _scaled_gauss(fx, fy, th, s), (2, 3), _check_aniso_x,
    ),
    "motion_x": _Preset(
        "motion_x(f, angle°): linear motion blur of length f·s", lambda s, f, ang=0.0: _motion(f * s, ang, s), (1, 2),
        _check_motion_x,
    ),
    "airy_x": _Preset("airy_x(f): Airy pattern with first zero at f·s px", lambda s, f: _airy(f * s, s), (1,),
                      _check_airy_x),
}


def _scaled_gauss(fx: float, fy: float, theta: float, scale: int) -> np.ndarray:
    if fx <= 0 or fy <= 0:
        raise PSFError(f"FWHM factors must be positive, got {fx}, {fy}")
    return _gauss_mass(fx * scale * FWHM_TO_SIGMA, fy * scale * FWHM_TO_SIGMA, theta, scale)

_SPEC = re.compile(r"^\s*([a-z_][a-z0-9_.]*)\s*(?:\(([^)]*)\))?\s*$", re.IGNORECASE)


def parse_psf(spec: str) -> tuple[str, tuple[float, ...]]:
    """Split a PSF spec such as ``"motion(7, 30)"`` into ``("motion", (7.0, 30.0))``.

    Parameters
    ----------
    spec : str
        A preset name of :data:`PSF_PRESETS`, optionally with numeric arguments in parentheses.

    Returns
    -------
    (str, tuple of float)
        The preset name and its arguments.

    Raises
    ------
    PSFError
        For a spec that does not parse, an unknown preset, non-numeric or non-finite arguments, or the
        wrong number of arguments.

    Example
    -------
    >>> parse_psf("motion(7, 30)")
    ('motion', (7.0, 30.0))
    """
    m = _SPEC.match(spec or "")
    if not m:
        raise PSFError(f"cannot parse PSF spec {spec!r}")
    name, args = m.group(1), m.group(2)
    if name not in PSF_PRESETS:
        raise PSFError(f"unknown PSF preset {name!r}; known: {', '.join(PSF_PRESETS)}")
    values: tuple[float, ...] = ()
    if args is not None and args.strip():
        try:
            values = tuple(float(a) for a in args.split(","))
        except ValueError as exc:
            raise PSFError(f"PSF arguments must be numbers: {spec!r}") from exc
    if len(values) not in PSF_PRESETS[name].nargs:
        raise PSFError(f"PSF {name!r} takes {PSF_PRESETS[name].nargs} arguments, got {len(values)}")
    bad = [v for v in values if not math.isfinite(v)]
    if bad:
        raise PSFError(f"PSF arguments must be finite numbers: {spec!r}")
    return name, values


def check_scale_factor(scale) -> int:
    """``scale`` as an int if it is an integer in [1, MAX_SCALE] (not a bool, not a float); else raise.

    Raises
    ------
    PSFError
        For a bool, a non-integer, or a value outside [1, MAX_SCALE].
    """
    if isinstance(scale, (bool, np.bool_)) or not isinstance(scale, (int, np.integer)):
        raise PSFError(f"scale must be an integer, got {scale!r} ({type(scale).__name__})")
    if not 1 <= scale <= MAX_SCALE:
        raise PSFError(f"scale must be in 1..{MAX_SCALE}, got {scale}")
    return int(scale)


def check_psf_spec(spec: str, scale: int) -> None:
    """Validate a PSF spec for ``scale`` without building it: preset, argument count, finite
    arguments in range, support within MAX_PSF_SIZE.

    Parameters
    ----------
    spec : str
        A preset spec such as ``"gauss_fwhm"`` or ``"motion(7, 30)"``.
    scale : int
        The scale factor, in [1, MAX_SCALE].

    Raises
    ------
    PSFError
        Naming the preset, argument or limit at fault.

    Example
    -------
    >>> check_psf_spec("gauss(1.5)", 4)
    """
    scale = check_scale_factor(scale)
    if not isinstance(spec, str):
        raise PSFError(f"a PSF spec is a string such as 'gauss_fwhm' or 'motion(7, 30)', got {spec!r}")
    name, args = parse_psf(spec)
    preset = PSF_PRESETS[name]
    if preset.check is not None:
        preset.check(scale, *args)


def make_psf(spec: str | np.ndarray, scale: int) -> np.ndarray:
    """Build the PSF named by ``spec`` for scale ``scale`` (or validate an explicit array).

    Parameters
    ----------
    spec : str or array-like
        A preset spec (``"gauss_fwhm"``, ``"motion(7, 30)"``, see :func:`list_psfs`), or explicit taps
        checked by :func:`check_psf`.
    scale : int
        The scale factor, in [1, MAX_SCALE] (an integral float is accepted).

    Returns
    -------
    numpy.ndarray
        The float64 PSF: non-negative, summing to 1, every side ≡ s (mod 2).

    Raises
    ------
    PSFError
        For a bad scale, spec or array, or a PSF larger than MAX_PSF_SIZE.

    Example
    -------
    >>> make_psf("box", 4).shape
    (4, 4)
    """
    if isinstance(scale, float) and scale.is_integer():  # an exact float keeps working in the API
        scale = int(scale)
    scale = check_scale_factor(scale)
    if not isinstance(spec, str):
        return check_psf(spec, scale)
    check_psf_spec(spec, scale)
    name, args = parse_psf(spec)
    k = check_psf(PSF_PRESETS[name].build(scale, *args), scale)
    if max(k.shape) > MAX_PSF_SIZE:
        raise PSFError(f"PSF {spec!r} is {k.shape[0]}x{k.shape[1]}; PSFs are limited to "
                          f"{MAX_PSF_SIZE}x{MAX_PSF_SIZE} pixels")
    return k


def list_psfs() -> dict[str, str]:
    """The PSF presets: name -> one-line description (what ``hsibench list psfs`` prints).

    Returns
    -------
    dict of str to str
        In the order of :data:`PSF_PRESETS`.

    Example
    -------
    >>> list_psfs()["box"]
    's×s average (CycFusion)'
    """
    return {name: p.doc for name, p in PSF_PRESETS.items()}


def _pad_centre(k: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    out = np.zeros(shape)
    dr, dc = shape[0] - k.shape[0], shape[1] - k.shape[1]
    if dr % 2 or dc % 2:
        raise PSFError(f"PSFs of sizes {k.shape} and {shape} cannot be centred on each other (parity)")
    out[dr // 2 : dr // 2 + k.shape[0], dc // 2 : dc // 2 + k.shape[1]] = k
    return out


def psf_error(est, true) -> float:
    """Relative Frobenius error ‖est − true‖_F / ‖true‖_F of a PSF estimate.

    The one definition used by the study runner, the estimator and the nets' tests
    (``docs/conventions.md`` §9). PSFs of different sizes are compared on the larger support, the
    smaller one zero-padded and centred.

    Parameters
    ----------
    est, true : array-like
        2-D PSFs (any array namespace); their sizes must have the same parity per axis.

    Returns
    -------
    float
        The relative error (0 for identical PSFs).

    Raises
    ------
    PSFError
        If the PSFs are not 2-D or cannot be centred on each other (parity).

    Examples
    --------
    >>> k = gaussian_psf(4, 1.0)
    >>> psf_error(k, k)
    0.0
    >>> psf_error(2 * k, k)
    1.0
    """
    from ..xp import to_numpy

    a = np.asarray(to_numpy(est), dtype=np.float64)
    b = np.asarray(to_numpy(true), dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2:
        raise PSFError(f"PSFs must be 2-D, got shapes {a.shape} and {b.shape}")
    shape = (max(a.shape[0], b.shape[0]), max(a.shape[1], b.shape[1]))
    a, b = _pad_centre(a, shape), _pad_centre(b, shape)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


# Older names, kept for compatibility: scripts may import them (``hsibench.degrade`` re-exports both
# spellings). They are the same objects as the PSF names above.
KernelError = PSFError
KERNEL_PRESETS = PSF_PRESETS
MAX_KERNEL_SIZE = MAX_PSF_SIZE
make_kernel = make_psf
check_kernel = check_psf
check_kernel_spec = check_psf_spec
list_kernels = list_psfs
parse_kernel = parse_psf
gaussian_kernel = gaussian_psf
box_kernel = box_psf
resize_kernel = resize_psf
