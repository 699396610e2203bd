"""Real LrHSI/HrMSI pairs from two instruments, where no ground truth exists, and their two protocols.

A real pair is an HS image and an MS (or PAN) image of the same scene from two sensors; the SRF
between them and the HS sensor's PSF are real and unknown, so only the ``blind`` and ``estimated``
knowledge modes apply. Two protocols turn a pair into a case:

* ``wald`` (reduced resolution, Wald's protocol): the MS image is brought to the HS grid by the
  pair's own ratio r (blur + decimate with the degradation's kernel at scale r; nothing when r = 1),
  the HS image is degraded by the degradation's scale s the same way, the two are fused at ratio s,
  and the result is scored against the real HS image with the usual reference metrics. With r = s
  this is Wald's protocol proper; with r = 1 (an HS/MS pair already on one grid, as the Paris
  Hyperion/ALI pair) it is the HySure demo protocol: the real MS image, the HS image degraded by s.
* ``full_resolution``: the real images are fused at their own ratio (the degradation's scale must
  equal r) and scored without reference by Dλ, Ds and QNR (:mod:`hsibench.metrics.noref`).

In a study a pair is a scene ``pair:<name>:<protocol>``, e.g. ``pair:paris_hs_pan:full_resolution``;
``<name>`` is a registered pair (:data:`PAIRS`) or a ``.mat``/``.npz`` path holding both images.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..paths import resolve_data_path
from .scene import DataError, Scene

__all__ = ["PAIRS", "PROTOCOLS", "RealPair", "PairScene", "load_pair", "parse_pair_source", "pair_case",
           "NOREF_BLOCK", "NOREF_STEP"]

PROTOCOLS = ("wald", "full_resolution")
#: Q window of the full-resolution scores (pixels, at both resolutions; smaller images use their
#: smaller side) and the distance between window positions (a lattice of the sliding windows that
#: keeps 128-band images tractable).
NOREF_BLOCK = 32
NOREF_STEP = 4

_ALI_MS = ("B1p", "B1", "B2", "B3", "B4", "B4p", "B5p", "B5", "B7")

#: name -> (file under the data folder, HS key, MS key, pair ratio, MS band names, description)
PAIRS: dict[str, tuple[str, str, str, int, tuple[str, ...], str]] = {
    "paris_hs_ms": ("data:paris_eo1_hyperion_ali/paris_data_hs_ms.mat", "HSim", "MSim", 1, _ALI_MS,
                    "Paris, EO-1 Hyperion (128 bands) + ALI multispectral (9 bands, order as stored, presumably "
                    "B1p..B7), both 30 m on one grid"),
    "paris_hs_pan": ("data:paris_eo1_hyperion_ali/paris_data_hs_pan.mat", "HSim", "PCim", 3, ("pan",),
                     "Paris, EO-1 Hyperion (128 bands, 30 m) + ALI panchromatic (10 m), ratio 3"),
}


@dataclass
class RealPair:
    """An HS image (a :class:`Scene`, LR grid) and an MS image of the same area (``ratio`` × finer)."""

    name: str
    hs: Scene
    ms: np.ndarray  # (l, H, W) float32, on the same scale as hs (both divided by the HS maximum)
    ratio: int
    ms_bands: tuple[str, ...]
    provenance: dict = field(default_factory=dict)


class PairScene(Scene):
    """The reference side of a pair case: the real HS image, and the protocol that made the case."""

    protocol: str = "wald"
    pair: str = ""


def parse_pair_source(source: str) -> tuple[str, str]:
    """``"pair:<name>:<protocol>"`` -> (name, protocol).

    Parameters
    ----------
    source : str
        The scene spec.

    Returns
    -------
    (str, str)

    Raises
    ------
    DataError
        Not a pair spec, or an unknown protocol.

    Example
    -------
    >>> parse_pair_source("pair:paris_hs_pan:wald")
    ('paris_hs_pan', 'wald')
    """
    if not source.startswith("pair:"):
        raise DataError(f"not a pair scene: {source!r} (use 'pair:<name>:<protocol>')")
    name, sep, protocol = source[len("pair:"):].rpartition(":")
    if not sep or not name:
        raise DataError(f"{source!r}: give the protocol, 'pair:<name>:{'|'.join(PROTOCOLS)}'")
    if protocol not in PROTOCOLS:
        raise DataError(f"{source!r}: unknown protocol {protocol!r}; use one of {PROTOCOLS}")
    return name, protocol


def load_pair(name: str, *, hs_key: str | None = None, ms_key: str | None = None, ratio: int | None = None) -> RealPair:
    """Load a real HS/MS pair: a registered name (:data:`PAIRS`) or a .mat/.npz file with both images.

    Both images are (rows, cols[, bands]) in the file (MATLAB layout) and come back band-first; both
    are divided by the HS image's maximum, so their radiometric relation is kept. HS wavelengths
    come from the dataset catalog (Hyperion band numbers in the Paris files).

    Parameters
    ----------
    name : str
        ``paris_hs_ms``, ``paris_hs_pan`` or a file path (then give ``hs_key``, ``ms_key``).
    hs_key, ms_key : str, optional
        Variable names in the file (registered pairs know theirs).
    ratio : int, optional
        MS/HS resolution ratio; read from the shapes when omitted.

    Returns
    -------
    RealPair

    Raises
    ------
    DataError
        Missing file or variable, non-finite values, or MS/HS sizes that are not an integer ratio.

    Example
    -------
    >>> pair = load_pair("paris_hs_pan")  # doctest: +SKIP
    >>> pair.hs.shape, pair.ms.shape, pair.ratio  # doctest: +SKIP
    ((128, 72, 58), (1, 216, 174), 3)
    """
    from .loaders import load_scene

    desc = ""
    bands: tuple[str, ...] | None = None
    if name in PAIRS:
        path, hk, mk, r0, bands, desc = PAIRS[name]
        hs_key, ms_key, ratio = hs_key or hk, ms_key or mk, ratio or r0
    else:
        path = name
        if hs_key is None or ms_key is None:
            raise DataError(f"{name!r}: not a registered pair ({', '.join(PAIRS)}); for a file give hs_key and ms_key")
    p = resolve_data_path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such file (the real pair {name!r} needs the data folder, see $HSIBENCH_DATA)")
    hs = load_scene(path, key=hs_key, layout="HWC", normalize=False, drop_constant=False)
    ms = _read_array(p, ms_key)
    if ms.ndim == 2:
        ms = ms[..., None]
    if ms.ndim != 3:
        raise DataError(f"{p.name}: '{ms_key}' must be (rows, cols[, bands]), got shape {ms.shape}")
    ms = np.moveaxis(ms, -1, 0).astype(np.float64)
    if not np.all(np.isfinite(ms)):
        raise DataError(f"{p.name}: '{ms_key}' contains NaN or Inf")
    (H, W), (h, w) = ms.shape[1:], hs.cube.shape[1:]
    if H % h or W % w or H // h != W // w:
        raise DataError(f"{p.name}: MS {H}x{W} is not an integer multiple of HS {h}x{w}")
    if ratio is not None and H // h != ratio:
        raise DataError(f"{p.name}: MS/HS ratio is {H // h}, expected {ratio}")
    peak = float(hs.cube.max())
    if not peak > 0:
        raise DataError(f"{p.name}: the HS image is all zero")
    hs_n = Scene((hs.cube.astype(np.float64) / peak).astype(np.float32), hs.wavelengths, name,
                 {**hs.provenance, "normalized": True, "divided_by": peak}, peak)
    prov = {"source": str(p.resolve()), "hs_key": hs_key, "ms_key": ms_key, "divided_by_hs_max": peak,
            "description": desc}
    return RealPair(name, hs_n, (ms / peak).astype(np.float32), H // h,
                    bands or tuple(f"band{i + 1}" for i in range(ms.shape[0])), prov)


def _read_array(path: Path, key: str) -> np.ndarray:
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            if key not in z.files:
                raise DataError(f"{path.name}: no array {key!r} (has {z.files})")
            return np.asarray(z[key])
    from scipy import io

    try:
        d = io.loadmat(path, variable_names=[key])
    except NotImplementedError:  # v7.3
        import h5py

        with h5py.File(path, "r") as f:
            if key not in f:
                raise DataError(f"{path.name}: no variable {key!r}") from None
            return np.asarray(f[key][()]).T  # h5py reverses MATLAB's axes
    if key not in d:
        raise DataError(f"{path.name}: no variable {key!r}")
    return np.asarray(d[key])


def _pair_scene(cube: np.ndarray, pair: RealPair, protocol: str, extra: dict) -> PairScene:
    sc = PairScene(cube, pair.hs.wavelengths, f"{pair.name}:{protocol}",
                   {**pair.hs.provenance, "pair": pair.provenance, "protocol": protocol, **extra}, pair.hs.scaling)
    sc.protocol, sc.pair = protocol, pair.name
    return sc


def pair_case(source: str, deg, seed: int = 0):
    """The (reference scene, observation) of a pair scene ``pair:<name>:<protocol>`` under ``deg``.

    ``deg.kernel`` is the low-pass of every degradation the protocol applies; ``deg.scale`` the fusion
    ratio (``full_resolution``: must equal the pair's ratio); ``deg.snr_hs``/``snr_ms`` add noise as
    in simulation (default none: real images carry their own); ``deg.sensor`` is not used (the MS
    image is real). The observation's ``psf``/``srf`` are None: they are unknown.

    Parameters
    ----------
    source : str
        ``pair:<name>:<protocol>``.
    deg : hsibench.degrade.Degradation
        Scale, kernel and noise as above.
    seed : int
        Noise seed.

    Returns
    -------
    (PairScene, Observation)
        For ``wald`` the scene's cube is the real HS image (the reference); for ``full_resolution``
        it is the LR HS image again (there is no reference) and ``scene.protocol`` says so.

    Raises
    ------
    DataError
        A bad spec, a scale that does not fit the protocol, or a degradation option that has no
        meaning on real images (misregistration, fine SRF sampling).

    Example
    -------
    >>> from hsibench.degrade import Degradation
    >>> scene, obs = pair_case("pair:paris_hs_pan:wald", Degradation(scale=3))  # doctest: +SKIP
    >>> obs.lr.shape, obs.msi.shape, scene.cube.shape  # doctest: +SKIP
    ((128, 24, 19), (1, 72, 57), (128, 72, 57))
    """
    from ..degrade.degradation import Observation, add_observation_noise
    from ..degrade.psf import make_psf
    from ..degrade.spatial import blur_decimate

    name, protocol = parse_pair_source(source)
    if any(deg.misregistration) or getattr(deg, "srf_sampling", "hs_bands") != "hs_bands":
        raise DataError(f"{source}: misregistration and srf_sampling simulate a mismatch; a real pair has its own")
    pair = load_pair(name)
    s, r = int(deg.scale), pair.ratio
    hs = pair.hs.cube
    if protocol == "full_resolution":
        if s != r:
            raise DataError(f"{source}: the full-resolution protocol fuses at the pair's own ratio {r}, not {s}")
        lr, msi, ref = hs, pair.ms, hs
        extra = {"reference": None}
    else:
        h, w = hs.shape[1:]
        h, w = h - h % s, w - w % s
        if h == 0 or w == 0:
            raise DataError(f"{source}: scale {s} is larger than the HS image {hs.shape[1]}x{hs.shape[2]}")
        ref = hs[:, :h, :w]
        ms = pair.ms[:, : h * r, : w * r]
        msi = blur_decimate(ms, make_psf(deg.kernel, r).astype(np.float32), r, deg.boundary) if r > 1 else ms
        lr = blur_decimate(ref, make_psf(deg.kernel, s).astype(np.float32), s, deg.boundary)
        extra = {"reference": "the real HS image", "crop": {"rows": [0, h], "cols": [0, w]}}
    key = f"{pair.name}:{protocol}"
    lr, msi = add_observation_noise(lr, msi, deg, seed=seed, key=key)
    scene = _pair_scene(ref, pair, protocol, extra)
    obs = Observation(lr=lr, msi=msi, psf=None, srf=None, scale=s, degradation=deg)
    return scene, obs


def noref_report(hr: np.ndarray, obs):
    """Dλ, Ds and QNR of a full-resolution fusion as a :class:`hsibench.metrics.MetricReport`.

    Q windows of :data:`NOREF_BLOCK` pixels (or the LR image's smaller side if less) every
    :data:`NOREF_STEP` pixels; the MS image at LR is the MS blurred and decimated with the
    degradation's kernel.

    Parameters
    ----------
    hr : ndarray (L, H, W)
        The fused image.
    obs : Observation
        The pair's observation (LR HS, MS, scale).

    Returns
    -------
    MetricReport
        ``scalars`` = ``d_lambda``, ``d_s``, ``qnr``; preset ``noref``.

    Raises
    ------
    MetricError
        As :func:`hsibench.metrics.noref.noref_metrics`.

    Example
    -------
    >>> rep = noref_report(fused, obs)  # doctest: +SKIP
    """
    from ..degrade.psf import make_psf
    from ..metrics.noref import NOREF_DEFINITIONS, noref_metrics
    from ..metrics.presets import MetricReport

    block = min(NOREF_BLOCK, *obs.lr.shape[1:])
    psf = make_psf(obs.degradation.kernel, obs.scale)
    scalars = noref_metrics(hr, obs.lr, obs.msi, psf=psf, block=block, step=NOREF_STEP)
    defs = dict(NOREF_DEFINITIONS)
    defs["settings"] = (f"Q windows {block}x{block} every {NOREF_STEP} px at both resolutions; MS at LR = MS blurred "
                        f"with {obs.degradation.kernel} and decimated by {obs.scale}; p = q = 1, alpha = beta = 1")
    return MetricReport(scalars=scalars, per_band={}, preset="noref", definitions=defs,
                        settings={"block": block, "step": NOREF_STEP, "scale": obs.scale})
