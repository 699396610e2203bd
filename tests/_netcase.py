"""The small synthetic case shared by the deep-net tests (64×64×31 low-rank scene, s = 4)."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from hsibench.degrade.degradation import Degradation
from hsibench.methods import Context

from _baselinecase import psnr  # noqa: F401  (the one independent PSNR of the method tests, re-exported)


def toy_scene(size=64, bands=31, endmembers=12, seed=0):
    """Low-rank cube: smooth random spectra mixed by piecewise-smooth abundance maps (cells with sharp
    edges, smooth fields, small discs), so the HrMSI carries detail the LrHSI has lost."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, bands)
    E = np.zeros((bands, endmembers))
    for j in range(endmembers):
        for _ in range(4):
            c, w, a = rng.uniform(-0.2, 1.2), rng.uniform(0.03, 0.3), rng.uniform(0.2, 1.0)
            E[:, j] += a * np.exp(-0.5 * ((t - c) / w) ** 2)
        E[:, j] += rng.uniform(0.05, 0.2)
    yy, xx = np.mgrid[0:size, 0:size]
    pts = rng.uniform(0, size, (10, 2))
    lab = rng.integers(0, endmembers, 10)
    d = (yy[None] - pts[:, 0, None, None]) ** 2 + (xx[None] - pts[:, 1, None, None]) ** 2
    logits = 6.0 * (lab[np.argmin(d, 0)][None] == np.arange(endmembers)[:, None, None])
    logits = logits + np.stack([ndimage.gaussian_filter(rng.normal(size=(size, size)), 8) * 6 for _ in range(endmembers)])
    for _ in range(10):
        cy, cx, r = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(2, 5)
        logits[rng.integers(endmembers)] += 6.0 * (((yy - cy) ** 2 + (xx - cx) ** 2) < r * r)
    A = np.exp(logits - logits.max(0))
    A /= A.sum(0)
    X = np.einsum("bk,khw->bhw", E, A)
    return (X / X.max()).astype(np.float32), np.linspace(400, 700, bands)


def make_scene():
    """The nets' test case: the toy scene at s = 4, gauss_sigma0.5, Landsat-8 B/G/R (no noise)."""
    X, wl = toy_scene()
    obs = Degradation(4, "gauss_sigma0.5", "landsat8_bgr").apply(X, wl)
    import torch

    torch.set_num_threads(1)  # the Numba degradation above resets torch's OpenMP thread count
    return X, wl, obs


def ctx_for(obs, wl, mode, iterations, seed=0):
    return Context.from_truth(scale=4, mode=mode, psf=obs.psf, srf=obs.srf, coverage=obs.coverage,
                              wavelengths=wl, iterations=iterations, seed=seed)
