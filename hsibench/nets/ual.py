"""UAL: unsupervised adaptation learning (supervised pre-training on synthetic scenes + per-image adaptation).

Zhang, Nie, Wei, Zhang, Liao, Shao, "Unsupervised Adaptation Learning for Hyperspectral Imagery
Super-resolution", CVPR 2020. Re-implemented from the paper (no code copied); the departures are
listed below and in ``docs/methods.md``.

Model (paper §3), with X the HrMSI (b×H×W), Y the LrHSI (B×h×w), P the SRF (b×B, given):

* SR network 𝒢 = adaptation ∘ fusion. **Fusion module** (mutual-guiding): three branches on X, on
  Y↑ (Y upsampled to X's grid, the suite's block-centred bicubic) and on [X; Y↑]; each a mapping
  block (M × Conv3×3 + ReLU, ``width`` channels) and a mutual-guiding block F′ = F⊙A + B (eq. 6)
  with A = 𝒫_a([F; F_other1; F_other2]), B = 𝒫_b(…) (eq. 7, the branch's own feature first);
  concatenation → Conv3×3 → ReLU → Conv3×3 → Z̃. **Adaptation module** (self-guiding, residual,
  eq. 8-9): Ẑ = Z̃ + 𝒜(Z̃), 𝒜 = mapping block → F⊙𝒫_a(F) + 𝒫_b(F) → Conv3×3 to B bands.
* **Degeneration net** 𝓗: one kernel shared by all bands, stride s (eq. 5), as a
  :class:`~hsibench.nets.layers.PSFLayer`.
* **Pre-training** (eq. 3, ℓ1): the fusion module alone, supervised, on pairs (X = PZ,
  Y = blur_decimate(Z, k), Z) with random Gaussian PSFs k (size ∈ [5, 15] with the parity of s,
  σ ∈ [0.5, 2]: the paper's ranges), the given P and the same s, 90°
  rotations and flips, no noise; Adam lr 1e-4 × 0.7 every 10 epochs, 150 epochs, batch 6,
  128×128 patches.
* **Adaptation** (eq. 4, ℓ1 means with equal weights, as the code): ‖X − PẐ‖₁ + ‖Y − 𝓗(Ẑ)‖₁
  over the adaptation module and 𝓗, the fusion module frozen (so Z̃ is computed once); Adam, adaptation
  lr 9e-5 / weight decay 1e-3, degeneration lr 1e-4 / weight decay 1e-5, 1500 iterations, constant
  lr. P is never learned.

Choices and departures (also in ``UAL.deviations`` and the config):

* **Pre-training on synthetic scenes, not CAVE/Harvard/NTIRE.** Nothing may be downloaded or
  bundled, so the fusion module is trained on scenes of :func:`~hsibench.data.synthetic.synthetic_components`
  (earthlib library spectra, structured abundances) resampled to the target's wavelengths
  (``ctx.wavelengths``; 400-700 nm linear when absent), with seeds derived from ``pretrain_seed``
  through a tagged ``SeedSequence`` (32-bit values) and 6-12 endmembers, so they are independent of
  the image being fused (the suite's own synthetic scenes use small seeds and 5 endmembers). It runs
  inside the method on first use and is **cached on disk** (below). ``ctx.iterations`` changes only
  the adaptation budget; the pre-training is a fixed artefact of the preset. Result labels carry the
  prior's origin (``ual[synthetic-prior]``) and the info/row key ``prior`` describes it.
* **Real scenes the user holds** (``pretrain_data=<folder>``, e.g. a CAVE copy): the fusion module is
  pre-trained on every scene of that folder (read with :func:`~hsibench.data.load_scene`, divided by
  its maximum, interpolated to the target's band centres when they differ) **except the scene being
  fused**, left out by name (``ctx.scene``, which the study runner sets, against the loaded scene name
  and the file stem). Nothing is downloaded or bundled. The cache key holds the sha256 of every
  scene used (not the folder's path); the label becomes ``ual[<folder>-prior-<sha256[:8]>]`` and
  ``prior`` lists the folder, its sha256, the scenes used and the one left out. With
  ``pretrain_scenes``/``pretrain_scene_size``/``pretrain_endmembers`` then unused.
* **Inputs divided by the LrHSI maximum** (output multiplied back): the code divides every image by
  (max − min); the synthetic training scenes peak at 1.
* **Degeneration kernel = PSFLayer**: non-negative and summing to 1 (projected after every step),
  no bias, the suite's block-centred geometry with ``ctx.boundary`` padding; the code's is a free
  32×32 conv with bias and replicate padding. Start (``blind``/``srf_support``): a Gaussian of
  σ = ``psf_init_sigma`` (3, the code's nominal value, the same for every study) on ``psf_size``
  taps (32, parity adjusted to s); ``psf_init_sigma=None`` starts from the uniform kernel, the
  other nets' neutral start. Neither depends on the degradation under study, but σ = 3 happens to
  be close to the simulator's ``gauss_fwhm`` kernel at s = 8 (σ = 8/2.355 = 3.4): there the
  ``paper``/``fast`` presets start near the truth (``psf_init_sigma=None`` removes that).
* Per-group **weight decay** as Adam's L2 (gradient + wd·θ) through gradient hooks, since the engine
  has one ``weight_decay``; identical to two Adam groups with their own decay.
* 𝒫_a/𝒫_b: M convs with ReLU between them and none after the last (SFT style, the paper's [23]);
  separate weights per branch (``shared_guidance=True`` shares them).
  Fusion head Conv(3w→w) → ReLU → Conv(w→B). The adaptation module's output conv starts at
  zero, so Ẑ = Z̃ before adaptation (the paper gives no initialisation).
* ``fusion_residual=True`` (``small`` preset only) adds Y↑ to the fusion output and zero-initialises
  the last head conv, so a short pre-training starts from Z̃ = Y↑ and learns only the detail
  (pre-training ℓ1 after 150 steps on the test case: 0.013 vs 0.026 with a plain residual, 0.043
  without one).
* Presets. ``paper`` (= ``default``): everything above. ``fast``: the paper's networks, data and
  learning rates with the schedules compressed ten-fold (pre-training 1470 steps, lr × 0.7 every 98;
  adaptation 500 iterations, plateau stop on); nothing else changes (the pre-training still takes
  hours on a CPU, once per SRF and scale thanks to the cache; ``reports/net_budgets.md``). ``small`` (its own deviations, the former
  ``fast``: results labelled ``ual[fast]`` before the presets were split used it, with a Gaussian
  start of FWHM = s): width 16, M = 2 in both modules; pre-training 400 steps of batch 4, 64×64
  patches from 6 scenes of 128×128, Adam lr 1e-3 with a cosine decay; adaptation 600 iterations,
  adaptation-module lr 1e-3 (paper 9e-5: far too slow for 600 iterations), PSF lr 1e-4 (paper),
  s×s PSF started uniform.

Knowledge modes. UAL assumes P known and learns the PSF:

* ``oracle``: true P; 𝓗 frozen at the true PSF (the suite's oracle convention): only the adaptation
  module is learned.
* ``estimated``: P = the estimator's SRF (fixed); 𝓗 starts from the estimator's PSF and is learned.
* ``srf_support`` / ``blind``: ``needs = ("srf",)``, so the suite's estimator supplies P (from the
  band coverage in ``srf_support``, full coverage in ``blind``); 𝓗 starts from the preset's neutral
  kernel (above) and is learned — the estimator's PSF is not used (reported as such). Without a
  registered estimator these modes fail (``EstimatorMissing``). An estimated P differs per image, so each image gets its own
  pre-training there (the cache still serves repeated runs of the same case).

Pre-training cache: ``<cache>/ual/<sha256>.pt`` (+ ``.json`` metadata, sha256 of the weights file
checked on load), ``<cache>`` = ``cache_dir`` | ``$HSIBENCH_CACHE`` | ``$XDG_CACHE_HOME/hsibench``
| ``~/.cache/hsibench``. The key hashes everything that determines the weights: the architecture and
``pretrain_*`` parameters, band count, wavelengths, the SRF matrix (exact float64 bytes), scale,
boundary, device type, thread count, torch/NumPy/SciPy versions, the synthetic generator version, the
prior (synthetic, or the sha256 of every real scene used) and this module's ``PRETRAIN_VERSION``. Pre-training seeds its own RNGs from ``pretrain_seed`` and the
adaptation is re-seeded from ``ctx.seed`` afterwards, so a hit gives bit-identical output to a fresh
run. A file lock serialises concurrent workers on the same key. Info keys ``pretrain_cached``,
``pretrain_seconds`` (of the run that trained the weights), ``pretrain_cache_path``.

Measured seconds per iteration of the presets: ``reports/net_budgets.md``.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from ..atomic import atomic_path, write_text
from ..methods.base import Context, InputError
from ..methods.registry import register
from .engine import ENGINE_DEFAULTS, NetMethod, TrainConfig, train
from .layers import PSFLayer, kaiming_init

__all__ = ["UAL", "FusionModule", "AdaptationModule", "SyntheticPairs", "pretrain_key", "cache_root",
           "PRETRAIN_VERSION"]

PRETRAIN_VERSION = "1"
_SEED_TAG = 0x55414C  # "UAL": keeps pre-training seeds apart from any other seed stream


# ----------------------------------------------------------------------------- the network

def _conv(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=1)


def mapping_block(cin: int, width: int, blocks: int) -> nn.Sequential:
    """M stacked Conv3×3 + ReLU blocks (cin → width → … → width)."""
    layers: list[nn.Module] = []
    c = cin
    for _ in range(blocks):
        layers += [_conv(c, width), nn.ReLU()]
        c = width
    return nn.Sequential(*layers)


def guidance_block(cin: int, width: int, blocks: int) -> nn.Sequential:
    """𝒫_a / 𝒫_b: M convs, ReLU between them, linear output (SFT-style scale or shift map)."""
    layers: list[nn.Module] = []
    c = cin
    for i in range(blocks):
        layers.append(_conv(c, width))
        if i < blocks - 1:
            layers.append(nn.ReLU())
        c = width
    return nn.Sequential(*layers)


class FusionModule(nn.Module):
    """Three-branch mutual-guiding fusion: (HrMSI, upsampled LrHSI) → rough HrHSI Z̃."""

    def __init__(self, n_hs: int, n_ms: int, width: int = 64, blocks: int = 3, shared_guidance: bool = False,
                 residual: bool = False):
        super().__init__()
        self.maps = nn.ModuleList([mapping_block(n_ms, width, blocks), mapping_block(n_hs, width, blocks),
                                   mapping_block(n_ms + n_hs, width, blocks)])
        n_guides = 1 if shared_guidance else 3
        self.guide_a = nn.ModuleList(guidance_block(3 * width, width, blocks) for _ in range(n_guides))
        self.guide_b = nn.ModuleList(guidance_block(3 * width, width, blocks) for _ in range(n_guides))
        self.head = nn.Sequential(_conv(3 * width, width), nn.ReLU(), _conv(width, n_hs))
        self.residual = bool(residual)
        kaiming_init(self)
        if self.residual:  # start from Z̃ = Y↑: a short pre-training then only has to learn the detail
            nn.init.zeros_(self.head[-1].weight)
            nn.init.zeros_(self.head[-1].bias)

    def forward(self, msi: torch.Tensor, yup: torch.Tensor) -> torch.Tensor:
        f = [m(x) for m, x in zip(self.maps, (msi, yup, torch.cat([msi, yup], dim=1)))]
        out = []
        for i in range(3):
            cat = torch.cat([f[i]] + [f[j] for j in range(3) if j != i], dim=1)
            g = 0 if len(self.guide_a) == 1 else i
            out.append(f[i] * self.guide_a[g](cat) + self.guide_b[g](cat))
        z = self.head(torch.cat(out, dim=1))
        return z + yup if self.residual else z


class AdaptationModule(nn.Module):
    """Light self-guiding residual refiner: Ẑ = Z̃ + Conv(F⊙𝒫_a(F) + 𝒫_b(F)), F = mapping(Z̃)."""

    def __init__(self, n_hs: int, width: int = 64, blocks: int = 3):
        super().__init__()
        self.map = mapping_block(n_hs, width, blocks)
        self.guide_a = guidance_block(width, width, blocks)
        self.guide_b = guidance_block(width, width, blocks)
        self.out = _conv(width, n_hs)
        kaiming_init(self)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, zt: torch.Tensor) -> torch.Tensor:
        f = self.map(zt)
        return zt + self.out(f * self.guide_a(f) + self.guide_b(f))


# ----------------------------------------------------------------------------- synthetic training pairs

def _band_centres(wavelengths, n_hs: int) -> tuple[np.ndarray, str]:
    if wavelengths is not None:
        wl = np.asarray(wavelengths, dtype=np.float64).ravel()
        if wl.size == n_hs and np.all(np.isfinite(wl)) and wl.min() > 0:
            return wl, "ctx.wavelengths"
    return np.linspace(400.0, 700.0, n_hs), "400-700 nm linear (no wavelengths given)"


def _synthetic_cube(size: int, wl: np.ndarray, endmembers: int, seed: int) -> np.ndarray:
    """A synthetic scene (bands, size, size) at band centres ``wl``, peak 1."""
    from ..data.synthetic import synthetic_components

    lo, hi = float(wl.min()), float(wl.max())
    if hi <= lo:
        lo, hi = lo - 1.0, hi + 1.0
    comp = synthetic_components(size, len(wl), endmembers, seed, wavelength_range=(lo, hi))
    spectra = comp["spectra"]  # (bands, E) at linear centres over [lo, hi]
    lin = comp["wavelengths"]
    if not np.array_equal(lin, wl):
        spectra = np.stack([np.interp(wl, lin, spectra[:, e]) for e in range(spectra.shape[1])], axis=1)
    cube = np.einsum("be,ehw->bhw", spectra, comp["abundances"], optimize=False)
    return (cube / cube.max()).astype(np.float32)


class SyntheticPairs:
    """Training triples (X = PZ, Y↑, Z) from synthetic scenes (or the given ``cubes``: real scenes of a
    ``pretrain_data`` folder), random Gaussian PSFs, the given P and s.

    Patches are degraded on the CPU in torch with the suite's operator (a frozen
    :class:`~hsibench.nets.layers.PSFLayer` reproduces :func:`~hsibench.degrade.spatial.blur_decimate`;
    a kernel smaller than s is zero-padded to s×s, which is the same block-centred operator).
    """

    def __init__(self, srf: np.ndarray, scale: int, wavelengths: np.ndarray, *, scenes: int, scene_size: int,
                 patch: int, endmembers: tuple[int, int], blur_size: tuple[int, int],
                 blur_sigma: tuple[float, float], seed: int, boundary: str = "symmetric",
                 upsample_kind: str = "cubic", cubes: list[np.ndarray] | None = None):
        self.srf = torch.as_tensor(np.asarray(srf, dtype=np.float32))
        self.s = int(scale)
        self.patch = max(4 * self.s, self.s * math.ceil(int(patch) / self.s))
        size = max(int(scene_size), self.patch)
        self.boundary, self.kind = boundary, upsample_kind
        lo, hi = (int(v) for v in blur_size)
        self.sizes = [k for k in range(lo, hi + 1) if (k - self.s) % 2 == 0] or [lo + ((lo - self.s) % 2)]
        self.sigma = (float(blur_sigma[0]), float(blur_sigma[1]))
        self._ops = {k: PSFLayer(self.s, size=max(k, self.s), learn=False, boundary=boundary) for k in self.sizes}
        scene_ss, draw_ss = np.random.SeedSequence([int(seed), _SEED_TAG]).spawn(2)
        if cubes is not None:
            self.scene_seeds = []
            self.cubes = [torch.as_tensor(np.ascontiguousarray(c, dtype=np.float32)) for c in cubes]
            if not self.cubes:
                raise InputError("no training scenes")
            small = [tuple(c.shape[1:]) for c in self.cubes if min(c.shape[1:]) < self.patch]
            if small:
                raise InputError(f"training scene(s) of size {small} are smaller than the {self.patch}x{self.patch} "
                                 "patches (lower pretrain_patch)")
        else:
            seeds = scene_ss.generate_state(int(scenes))
            erng = np.random.default_rng(scene_ss.spawn(1)[0])
            e_lo, e_hi = (int(v) for v in endmembers)
            self.scene_seeds = [int(v) for v in seeds]
            self.cubes = [torch.as_tensor(_synthetic_cube(size, wavelengths, int(erng.integers(e_lo, e_hi + 1)), sd))
                          for sd in self.scene_seeds]
        self.rng = np.random.default_rng(draw_ss)

    def psf(self, size: int, sigma: float) -> torch.Tensor:
        """A point-sampled Gaussian, zero-padded to s×s when smaller than the scale."""
        from ..degrade.psf import gaussian_psf

        k = gaussian_psf(size, sigma)
        if size < self.s:
            m = (self.s - size) // 2
            k = np.pad(k, m)
        return torch.as_tensor(k, dtype=torch.float32)

    def sample(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One (msi, yup, z) triple of ``patch``×``patch`` float32 tensors."""
        from ..degrade.spatial import upsample

        r = self.rng
        cube = self.cubes[int(r.integers(len(self.cubes)))]
        p = self.patch
        i0 = int(r.integers(cube.shape[1] - p + 1))
        j0 = int(r.integers(cube.shape[2] - p + 1))
        z = torch.rot90(cube[:, i0:i0 + p, j0:j0 + p], int(r.integers(4)), dims=(1, 2))
        if r.integers(2):
            z = z.flip(2)
        z = z.contiguous()
        size = int(self.sizes[int(r.integers(len(self.sizes)))])
        y = self._ops[size].apply_psf(z, self.psf(size, float(r.uniform(*self.sigma))))
        yup = upsample(y, self.s, self.kind, self.boundary)
        x = torch.einsum("mb,bhw->mhw", self.srf, z)
        return x, yup, z

    def batch(self, n: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        trip = [self.sample() for _ in range(int(n))]
        return tuple(torch.stack([t[i] for t in trip]).to(device) for i in range(3))


# ----------------------------------------------------------------------------- the cache

_ARCH_KEYS = ("width", "blocks", "shared_guidance", "fusion_residual", "upsample", "channels_last")


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir`` | ``$HSIBENCH_CACHE`` | ``$XDG_CACHE_HOME/hsibench`` | ``~/.cache/hsibench``, plus ``/ual``."""
    if cache_dir:
        return Path(cache_dir).expanduser() / "ual"
    env = os.environ.get("HSIBENCH_CACHE")
    if env:
        return Path(env).expanduser() / "ual"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "hsibench" / "ual"


def pretrain_key(params: dict[str, Any], srf: np.ndarray, scale: int, wavelengths: np.ndarray, boundary: str,
                 device: torch.device | str, threads: int, prior: dict[str, Any] | None = None
                 ) -> tuple[str, dict[str, Any]]:
    """(hex digest, the dict it hashes) of everything that determines the pre-trained weights.

    ``prior`` identifies real training scenes (the sha256 of every scene used); ``None`` = the
    synthetic generator. The folder's path is not part of the key, its contents are."""
    import scipy

    from ..data.synthetic import GENERATOR_VERSION

    srf64 = np.ascontiguousarray(np.asarray(srf, dtype=np.float64))
    desc = {
        "pretrain_version": PRETRAIN_VERSION,
        "generator_version": GENERATOR_VERSION,
        "torch": torch.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
        "arch": {k: _plain(params[k]) for k in _ARCH_KEYS},
        "pretrain": {k: _plain(v) for k, v in sorted(params.items())
                     if k.startswith("pretrain_") and k != "pretrain_data"},
        "prior": {"source": "synthetic"} if prior is None else {"source": "folder", "scenes": prior},
        "adam": {"betas": _plain(params["betas"]), "eps": float(params["eps"])},
        "bands": int(srf64.shape[1]), "ms_bands": int(srf64.shape[0]),
        "srf_sha256": hashlib.sha256(srf64.tobytes()).hexdigest(),
        "wavelengths": [float(v) for v in np.asarray(wavelengths, dtype=np.float64)],
        "scale": int(scale), "boundary": str(boundary),
        "device": torch.device(device).type, "threads": int(threads),
    }
    blob = json.dumps(desc, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:32], desc


def _plain(v):
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


@contextlib.contextmanager
def _locked(path: Path):
    """Exclusive advisory lock on ``path`` (POSIX); a no-op where fcntl is missing."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        yield
        return
    with open(path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _load_cached(pt: Path, meta_path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    if not (pt.is_file() and meta_path.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("weights_sha256") != _sha256_file(pt):
            return None
        state = torch.load(pt, map_location="cpu", weights_only=True)
    except (OSError, ValueError, RuntimeError):
        return None
    return state, meta


# ----------------------------------------------------------------------------- a folder of real scenes

#: File types a ``pretrain_data`` folder entry may have (sub-folders are read as PNG-band folders).
SCENE_SUFFIXES = (".mat", ".npy", ".npz", ".tif", ".tiff", ".hdr")


def _folder_entries(folder) -> list[Path]:
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise InputError(f"pretrain_data {str(folder)!r} is not a folder")
    entries = sorted(q for q in root.iterdir() if not q.name.startswith(".")
                     and (q.is_dir() or q.suffix.lower() in SCENE_SUFFIXES))
    if not entries:
        raise InputError(f"pretrain_data folder {str(root)!r} holds no scene ({', '.join(SCENE_SUFFIXES)} "
                         "files or PNG-band sub-folders)")
    return entries


def _entry_sha256(entry: Path) -> str:
    """sha256 over the relative names and contents of every file of one scene entry (a sub-folder's
    files, or the file plus its same-stem companions such as an ENVI data file)."""
    if entry.is_dir():
        files = sorted(q for q in entry.rglob("*") if q.is_file())
        base = entry
    else:
        files = sorted(q for q in entry.parent.iterdir() if q.is_file() and q.stem == entry.stem)
        base = entry.parent
    h = hashlib.sha256()
    for q in files:
        h.update(str(q.relative_to(base)).encode())
        h.update(_sha256_file(q).encode())
    return h.hexdigest()


def folder_prior(folder) -> dict[str, Any]:
    """What identifies a ``pretrain_data`` folder: its path, name, per-scene sha256 and one sha256 over them.

    Parameters
    ----------
    folder : str or path-like
        A folder of scenes readable by :func:`hsibench.data.load_scene`.

    Returns
    -------
    dict
        ``folder``, ``name`` (the folder's base name), ``entries`` (file name -> sha256) and
        ``sha256`` (over the sorted entries).

    Raises
    ------
    InputError
        If ``folder`` is not a folder or holds no scene.

    Example
    -------
    >>> folder_prior("~/data/cave")["sha256"][:8]  # doctest: +SKIP
    '1a2b3c4d'
    """
    entries = _folder_entries(folder)
    hashes = {q.name: _entry_sha256(q) for q in entries}
    blob = json.dumps(sorted(hashes.items())).encode()
    root = Path(folder).expanduser().resolve()
    return {"folder": str(root), "name": root.name, "entries": hashes, "sha256": hashlib.sha256(blob).hexdigest()}


def _fit_bands(cube: np.ndarray, scene_wl, wl: np.ndarray, name: str) -> tuple[np.ndarray, bool]:
    """``cube`` on the target band centres ``wl``: as is when they match (or the scene has no
    wavelengths but the same band count), else linearly interpolated along the spectrum."""
    n = len(wl)
    if scene_wl is None:
        if cube.shape[0] != n:
            raise InputError(f"pretrain_data scene {name!r} has {cube.shape[0]} bands and no wavelengths; "
                             f"the image being fused has {n}")
        return cube, False
    swl = np.asarray(scene_wl, dtype=np.float64)
    if swl.size == n and np.max(np.abs(swl - wl)) <= 1.0:
        return cube, False
    step = float(np.median(np.diff(swl))) if swl.size > 1 else 1.0
    if wl.min() < swl.min() - step / 2 or wl.max() > swl.max() + step / 2:
        raise InputError(f"pretrain_data scene {name!r} covers {swl.min():.0f}-{swl.max():.0f} nm, the image "
                         f"being fused {wl.min():.0f}-{wl.max():.0f} nm")
    from scipy.interpolate import interp1d

    f = interp1d(swl, cube, axis=0, bounds_error=False, fill_value=(cube[0], cube[-1]), assume_sorted=False)
    return np.asarray(f(wl), dtype=np.float32), True


def load_folder_scenes(folder, wl: np.ndarray, exclude: str | None) -> tuple[list[np.ndarray], dict[str, Any]]:
    """The scenes of a ``pretrain_data`` folder on the band centres ``wl``, without the scene ``exclude``.

    Every entry is read with :func:`hsibench.data.load_scene` (divided by its global maximum, constant
    bands kept); an entry whose scene name or file stem equals ``exclude`` is left out, so the image
    being fused is never a training scene.

    Parameters
    ----------
    folder : str or path-like
        The folder.
    wl : ndarray
        Target band centres (nm).
    exclude : str or None
        Name of the scene under test (``Context.scene``).

    Returns
    -------
    (list of ndarray, dict)
        Float32 (bands, rows, cols) cubes, and ``used``/``excluded`` scene names, ``resampled`` (names
        interpolated to ``wl``) and the per-entry sha256 of the used scenes.

    Raises
    ------
    InputError
        No folder, no scene left after the exclusion, or a scene whose spectrum cannot be matched.

    Example
    -------
    >>> cubes, meta = load_folder_scenes("~/data/cave", np.arange(400, 701, 10.0), "cave_balloons")  # doctest: +SKIP
    """
    from ..data import load_scene

    from ..data.loaders import split_crop

    if exclude is not None:  # a crop of a scene ("name[r0:r1,c0:c1]") is still that scene
        exclude = split_crop(exclude)[0]
    cubes, used, excluded, resampled, hashes = [], [], [], [], {}
    for q in _folder_entries(folder):
        stem = q.name if q.is_dir() else q.stem
        if exclude is not None and stem == exclude:
            excluded.append(stem)
            continue
        try:
            sc = load_scene(q, drop_constant=False)
        except ValueError as exc:
            raise InputError(f"pretrain_data: cannot read {q.name}: {exc}") from exc
        if exclude is not None and sc.name == exclude:
            excluded.append(sc.name)
            continue
        cube, moved = _fit_bands(np.asarray(sc.cube, dtype=np.float32), sc.wavelengths, wl, sc.name)
        cubes.append(cube)
        used.append(sc.name)
        hashes[q.name] = _entry_sha256(q)
        if moved:
            resampled.append(sc.name)
    if not cubes:
        raise InputError(f"pretrain_data folder {str(folder)!r} holds no scene besides the one being fused ({exclude!r})")
    return cubes, {"used": used, "excluded": excluded, "resampled": resampled, "used_sha256": hashes}



# ----------------------------------------------------------------------------- the method

def _psf_size(scale: int, size) -> int:
    s = int(scale)
    k = s if size is None else max(int(size), s)
    return k + 1 if (k - s) % 2 else k


@register
class UAL(NetMethod):
    """UAL (Zhang et al., CVPR 2020): fusion module pre-trained on synthetic scenes, per-image adaptation."""

    name = "ual"
    paper = ("Zhang, Nie, Wei, Zhang, Liao, Shao, Unsupervised Adaptation Learning for Hyperspectral Imagery "
             "Super-resolution, CVPR 2020")
    summary = ("two-stage net: mutual-guiding fusion module pre-trained (supervised) on synthetic scenes with the "
               "given SRF, then per-image unsupervised adaptation + learned PSF; SRF fixed")
    modes = ("oracle", "srf_support", "blind", "estimated")
    needs = ("srf",)
    uses = ("psf", "srf")
    deviations = (
        "inputs divided by the LrHSI maximum (code: each image divided by max - min)",
        "degeneration kernel non-negative and summing to 1, no bias, block-centred symmetric padding "
        "(code: free 32x32 conv with bias, replicate padding)",
        "LrHSI upsampled with the suite's block-centred bicubic (paper: bicubic; code: bilinear)",
        "guidance blocks: M convs, linear last layer, separate weights per branch; "
        "fusion head conv-ReLU-conv; adaptation output conv zero-initialised",
        "per-group weight decay as gradient hooks (Adam L2), since the engine has one weight_decay",
        "oracle mode freezes the degeneration net at the true PSF; srf_support/blind take P from the suite's "
        "estimator (UAL assumes P known)",
    )
    preset_deviations = {
        "fast": (
            "schedules compressed ten-fold: pre-training 1470 steps (paper 14 700) with the lr x0.7 every 98 "
            "(paper 980); adaptation 500 iterations (paper 1500), plateau stop on",
        ),
        "small": (
            "narrow widths: 16 channels, M = 2 in both modules (paper 64, M = 3)",
            "short pre-training: 400 steps of batch 4, 64x64 patches from 6 scenes of 128x128, lr 1e-3 with a "
            "cosine decay (paper 14 700 steps of batch 6, 128x128 patches, 12 scenes, lr 1e-4 x0.7 every 980)",
            "fusion output residual on the upsampled LrHSI with a zero-initialised head",
            "adaptation 600 iterations (paper 1500), adaptation-module lr 1e-3 (paper 9e-5), PSF lr 1e-4 (paper)",
            "s x s degeneration kernel started uniform (paper: 32x32 Gaussian of sigma 3)",
        ),
    }
    presets = {
        "default": {
            **ENGINE_DEFAULTS,
            # architecture (paper: every conv 64 kernels of 3x3, M = 3)
            "width": 64,
            "blocks": 3,
            "adapt_width": 64,
            "adapt_blocks": 3,
            "shared_guidance": False,
            "fusion_residual": False,
            "upsample": "cubic",
            "channels_last": True,
            # degeneration net
            "psf_size": 32,
            "psf_init_sigma": 3.0,  # None: uniform start
            "psf_param": "clamp",
            # adaptation (eq. 4): lr 1e-4 for the PSF, x0.9 = 9e-5 for the adaptation module
            "iterations": 1500,
            "optimizer": "adam",
            "lr": 1e-4,
            "lr_mult": {"adaptation": 0.9},
            "schedule": "constant",
            "adapt_weight_decay": 1e-3,
            "psf_weight_decay": 1e-5,
            # pre-training (eq. 3): 150 epochs of 12 scenes x 49 patches / batch 6 = 98 steps
            "pretrain_steps": 14700,
            "pretrain_lr": 1e-4,
            "pretrain_schedule": "step",
            "pretrain_step_size": 980,
            "pretrain_step_gamma": 0.7,
            "pretrain_batch": 6,
            "pretrain_patch": 128,
            "pretrain_scenes": 12,
            "pretrain_scene_size": 512,
            "pretrain_endmembers": (6, 12),
            "pretrain_blur_size": (5, 15),
            "pretrain_blur_sigma": (0.5, 2.0),
            "pretrain_seed": 0,
            "pretrain_data": None,  # a folder of real scenes instead of the synthetic generator
            "cache": True,
            "cache_dir": None,
        },
        "paper": {},
        "fast": {
            "pretrain_steps": 1470,
            "pretrain_step_size": 98,
            "iterations": 500,
            "early_stop": True,
            "plateau_window": 100,
            "plateau_tol": 1e-3,
            "plateau_patience": 3,
        },
        "small": {
            "width": 16,
            "blocks": 2,
            "adapt_width": 16,
            "adapt_blocks": 2,
            "fusion_residual": True,
            "psf_size": None,
            "psf_init_sigma": None,
            "iterations": 600,
            "lr": 1e-3,
            "lr_mult": {"psf": 0.1},
            "pretrain_steps": 400,
            "pretrain_lr": 1e-3,
            "pretrain_schedule": "cosine",
            "pretrain_batch": 4,
            "pretrain_patch": 64,
            "pretrain_scenes": 6,
            "pretrain_scene_size": 128,
        },
    }

    # ------------------------------------------------------------------ pre-training

    def _fusion(self, n_hs: int, n_ms: int, device) -> FusionModule:
        p = self.params
        m = FusionModule(n_hs, n_ms, int(p["width"]), int(p["blocks"]), bool(p["shared_guidance"]),
                         bool(p["fusion_residual"])).to(device)
        return m.to(memory_format=torch.channels_last) if p["channels_last"] else m

    def _pretrain(self, srf: np.ndarray, wl: np.ndarray, ctx: Context, device,
                  cubes: list[np.ndarray] | None = None) -> tuple[dict, dict[str, Any]]:
        """Train the fusion module on pairs from synthetic scenes (or ``cubes``) (eq. 3); returns (state dict, info)."""
        p = self.params
        n_ms, n_hs = srf.shape
        torch.manual_seed(int(p["pretrain_seed"]))
        t0 = time.perf_counter()
        data = SyntheticPairs(srf, int(ctx.scale), wl, scenes=int(p["pretrain_scenes"]),
                              scene_size=int(p["pretrain_scene_size"]), patch=int(p["pretrain_patch"]),
                              endmembers=p["pretrain_endmembers"], blur_size=p["pretrain_blur_size"],
                              blur_sigma=p["pretrain_blur_sigma"], seed=int(p["pretrain_seed"]),
                              boundary=ctx.boundary, upsample_kind=p["upsample"], cubes=cubes)
        t_data = time.perf_counter() - t0
        net = self._fusion(n_hs, n_ms, device)
        cl = torch.channels_last if p["channels_last"] else torch.contiguous_format

        def objective(it):
            x, yup, z = (t.contiguous(memory_format=cl) for t in data.batch(int(p["pretrain_batch"]), device))
            return {"l1": (net(x, yup) - z).abs().mean()}

        cfg = TrainConfig(iterations=int(p["pretrain_steps"]), optimizer="adam", lr=float(p["pretrain_lr"]),
                          betas=p["betas"], eps=p["eps"], schedule=p["pretrain_schedule"],
                          step_size=int(p["pretrain_step_size"]), step_gamma=float(p["pretrain_step_gamma"]),
                          divergence_factor=p["divergence_factor"])
        res = train(objective, {"fusion": list(net.parameters())}, cfg, progress=ctx.progress,
                    desc=f"{self.name} pre-training ({'synthetic' if cubes is None else 'folder'})")
        state = {k: v.detach().to("cpu").clone() for k, v in net.state_dict().items()}
        info = {"pretrain_seconds": time.perf_counter() - t0, "pretrain_data_seconds": t_data,
                "pretrain_steps": res.iterations, "pretrain_final_loss": res.final_losses.get("l1"),
                "pretrain_loss_curve": {k: res.loss_curve[k] for k in ("iteration", "l1")},
                "pretrain_patch": data.patch, "pretrain_scene_seeds": data.scene_seeds}
        return state, info

    # ------------------------------------------------------------------ the prior's origin

    def _folder_prior(self) -> dict[str, Any] | None:
        if self.params["pretrain_data"] is None:
            return None
        if getattr(self, "_folder_prior_cache", None) is None:
            self._folder_prior_cache = folder_prior(self.params["pretrain_data"])
        return self._folder_prior_cache

    @property
    def label_tag(self) -> str:
        """``synthetic-prior``, or ``<folder name>-prior-<first 8 hex of the folder's sha256>``."""
        fp = self._folder_prior()
        return "synthetic-prior" if fp is None else f"{fp['name']}-prior-{fp['sha256'][:8]}"

    @property
    def applied_deviations(self) -> list[str]:
        fp = self._folder_prior()
        if fp is None:
            prior = ("fusion module pre-trained on synthetic earthlib scenes (no CAVE/Harvard/NTIRE training data "
                     "can be downloaded or bundled), cached on disk")
        else:
            prior = (f"fusion module pre-trained on the scenes of the user's folder {fp['name']!r} "
                     f"(sha256 {fp['sha256'][:12]}), the scene being fused excluded, cached on disk")
        return [prior] + super().applied_deviations

    def _pretrained_state(self, srf: np.ndarray, wl: np.ndarray, ctx: Context, device) -> tuple[dict, dict[str, Any]]:
        """The fusion module's weights: from the cache when the key matches, else pre-trained (and stored)."""
        p = self.params
        cubes, prior = None, {"source": "synthetic"}
        if p["pretrain_data"] is not None:
            fp = self._folder_prior()
            cubes, meta = load_folder_scenes(p["pretrain_data"], wl, ctx.scene)
            prior = {"source": "folder", "folder": fp["folder"], "folder_sha256": fp["sha256"],
                     "scenes": meta["used"], "excluded": meta["excluded"], "resampled": meta["resampled"]}
        key_prior = None if cubes is None else sorted(meta["used_sha256"].values())
        key, desc = pretrain_key(p, srf, ctx.scale, wl, ctx.boundary, device, torch.get_num_threads(), key_prior)
        if not p["cache"]:
            state, info = self._pretrain(srf, wl, ctx, device, cubes)
            return state, {**info, "pretrain_cached": False, "pretrain_cache_path": None, "pretrain_key": key,
                           "prior": prior}
        root = cache_root(p["cache_dir"])
        try:
            root.mkdir(parents=True, exist_ok=True)
            (root / f"{key}.lock").touch()
        except OSError as exc:  # an unwritable cache must not stop the method
            state, info = self._pretrain(srf, wl, ctx, device, cubes)
            return state, {**info, "pretrain_cached": False, "pretrain_cache_path": None, "pretrain_key": key,
                           "pretrain_cache_error": str(exc), "prior": prior}
        pt, meta_path = root / f"{key}.pt", root / f"{key}.json"
        with _locked(root / f"{key}.lock"):
            t0 = time.perf_counter()
            hit = _load_cached(pt, meta_path)
            if hit is not None:
                state, meta = hit
                info = {k: v for k, v in meta.items() if k.startswith("pretrain_")}
                info.update(pretrain_cached=True, pretrain_cache_path=str(pt), pretrain_key=key,
                            pretrain_load_seconds=time.perf_counter() - t0, prior=prior)
                return state, info
            state, info = self._pretrain(srf, wl, ctx, device, cubes)
            with atomic_path(pt) as tmp:
                torch.save(state, tmp)
            meta = {**info, "key": desc, "weights_sha256": _sha256_file(pt),
                    "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            write_text(meta_path, json.dumps(meta, indent=1))
        return state, {**info, "pretrain_cached": False, "pretrain_cache_path": str(pt), "pretrain_key": key,
                       "prior": prior}

    # ------------------------------------------------------------------ adaptation

    def _degeneration(self, ctx: Context, device) -> tuple[PSFLayer, dict[str, Any]]:
        from ..degrade.psf import gaussian_psf

        p = self.params
        s = int(ctx.scale)
        mode = ctx.mode
        if mode == "oracle":
            if ctx.psf is None:
                raise InputError("oracle mode needs the true PSF in the context")
            return PSFLayer(s, init=np.asarray(ctx.psf), learn=False, param=p["psf_param"],
                            boundary=ctx.boundary).to(device), {"psf_init": "true (frozen)"}
        if mode == "estimated" and ctx.psf is not None:
            return PSFLayer(s, init=np.asarray(ctx.psf), param=p["psf_param"],
                            boundary=ctx.boundary).to(device), {"psf_init": "estimate"}
        k = _psf_size(s, p["psf_size"])
        if p["psf_init_sigma"] is None:  # the nets' neutral start, independent of the study's kernel
            return (PSFLayer(s, size=k, param=p["psf_param"], boundary=ctx.boundary).to(device),
                    {"psf_init": f"uniform {k}x{k}"})
        sigma = float(p["psf_init_sigma"])
        return (PSFLayer(s, init=gaussian_psf(k, sigma), param=p["psf_param"], boundary=ctx.boundary).to(device),
                {"psf_init": f"gaussian {k}x{k}, sigma {sigma:.3g}"})

    def _run(self, lr, msi, ctx: Context, device):
        from ..degrade.spatial import upsample

        p = self.params
        n_hs, n_ms = lr.shape[1], msi.shape[1]
        if ctx.srf is None:
            raise InputError("UAL needs the SRF P (given, or from the suite's estimator)")
        srf = np.asarray(ctx.srf, dtype=np.float64)
        wl, wl_source = _band_centres(ctx.wavelengths, n_hs)

        state, pre_info = self._pretrained_state(srf, wl, ctx, device)
        fusion = self._fusion(n_hs, n_ms, device)
        fusion.load_state_dict(state)
        fusion.eval().requires_grad_(False)
        torch.manual_seed(int(ctx.seed))  # the adaptation starts alike on a cache hit and after a fresh pre-training

        c = float(lr.max())
        c = c if not (c <= 0) else 1.0  # NaN passes through, so the engine's NaN guard reports it
        lr_n, msi_n = lr / c, msi / c
        cl = torch.channels_last if p["channels_last"] else torch.contiguous_format
        s = int(ctx.scale)
        yup = upsample(lr_n[0], s, p["upsample"], ctx.boundary)[None]
        with torch.no_grad():
            zt = fusion(msi_n.contiguous(memory_format=cl), yup.contiguous(memory_format=cl))
        del fusion

        adapt = AdaptationModule(n_hs, int(p["adapt_width"]), int(p["adapt_blocks"])).to(device)
        if p["channels_last"]:
            adapt = adapt.to(memory_format=torch.channels_last)
        psf, psf_note = self._degeneration(ctx, device)
        for params, wd in ((adapt.parameters(), p["adapt_weight_decay"]), (psf.parameters(), p["psf_weight_decay"])):
            for q in params:
                if q.requires_grad and wd:
                    q.register_hook(lambda g, q=q, wd=float(wd): g + wd * q.detach())
        P = torch.as_tensor(srf, dtype=torch.float32, device=device)

        def objective(it):
            zhat = adapt(zt)
            return {"lrhsi": (psf(zhat) - lr_n).abs().mean(),
                    "hrmsi": (torch.einsum("mb,nbhw->nmhw", P, zhat) - msi_n).abs().mean()}

        res = train(objective, {"adaptation": list(adapt.parameters()), "psf": list(psf.parameters())},
                    self.train_config(ctx), project=psf.project, progress=ctx.progress,
                    desc=f"{self.name} adaptation")
        with torch.no_grad():
            hr = adapt(zt) * c

        note = {"mode": ctx.mode, "srf": "fixed (" + ctx.knowledge_source.get("srf", "given") + ")",
                "wavelengths": wl_source, **psf_note}
        info = res.info()
        info.update(pre_info)
        info.update(
            learned_psf=psf.psf().detach().cpu().double().numpy(),
            initial_psf=psf.initial_psf(),
            learned_srf=srf.copy(),
            initial_srf=srf.copy(),
            knowledge=note,
            data_scale=c,
            notes=[f"fusion module pre-trained on "
                   f"{'synthetic scenes' if pre_info['prior']['source'] == 'synthetic' else 'the scenes of ' + pre_info['prior']['folder']} "
                   f"({'cache hit' if pre_info['pretrain_cached'] else 'fresh'}, "
                   f"{pre_info['pretrain_seconds']:.1f} s when trained)"],
        )
        if ctx.mode in ("srf_support", "blind"):
            # The estimator's PSF was put in the context but UAL learns its own from a Gaussian start.
            ks = dict(ctx.knowledge_source)
            ks["psf"] = f"not used (learned from a {psf_note['psf_init']} start)"
            info.update(knowledge_source=ks, estimated_psf=None)
        return hr, info
