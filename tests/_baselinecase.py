"""Helpers shared by the classical-baseline tests: small noiseless low-rank scenes, the observation of
a scene through the forward model, an independent PSNR, and a one-line method call."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from hsibench.degrade.psf import make_psf
from hsibench.degrade.spatial import blur_decimate
from hsibench.degrade.srf import srf_matrix
from hsibench.methods.base import Context
from hsibench.methods.registry import create_method


def lowrank_scene(size=64, bands=31, p=4, seed=0):
    """Noiseless cube of ``p`` smooth non-negative spectra mixed by sum-to-one abundances (smooth fields + discs)."""
    rng = np.random.default_rng(seed)
    wl = np.linspace(400, 700, bands)
    spectra = []
    for _ in range(p):
        c, w, a = rng.uniform(400, 700, 3), rng.uniform(30, 120, 3), rng.uniform(0.2, 1, 3)
        spectra.append(0.05 + (a[:, None] * np.exp(-0.5 * ((wl[None] - c[:, None]) / w[:, None]) ** 2)).sum(0))
    E = np.array(spectra).T
    f = ndimage.gaussian_filter(rng.standard_normal((p, size, size)), (0, 3, 3)) * 8
    yy, xx = np.mgrid[:size, :size]
    for i in range(p):
        cy, cx = rng.uniform(0, size, 2)
        f[i] += 3 * (((yy - cy) ** 2 + (xx - cx) ** 2) < rng.uniform(size / 10, size / 4) ** 2)
    a = np.exp(f - f.max(0))
    a /= a.sum(0)
    X = np.tensordot(E, a, axes=(1, 0))
    return (X / X.max()).astype(np.float32), wl


def smooth_mixture_scene(size=64, bands=31, p=4, seed=0, smooth=3.0):
    """Noiseless cube of p smooth positive spectra mixed by smooth (periodic) abundances that sum to one.

    Returns (X, wavelengths, endmembers E (bands × p), abundances A (p × size × size)).
    """
    rng = np.random.default_rng(seed)
    wl = np.linspace(400, 700, bands)
    E = np.full((bands, p), 0.05)
    for j in range(p):
        for _ in range(3):
            c, wdt = rng.uniform(380, 720), rng.uniform(30, 120)
            E[:, j] += rng.uniform(0.2, 1.0) * np.exp(-0.5 * ((wl - c) / wdt) ** 2)
    f = ndimage.gaussian_filter(rng.standard_normal((p, size, size)), (0, smooth, smooth), mode="wrap")
    A = np.exp(2.5 * f / f.std())
    A /= A.sum(0, keepdims=True)
    X = np.tensordot(E, A, axes=(1, 0))
    return (X / X.max()).astype(np.float32), wl, E, A


def observe(X, wl, s, kernel="gauss_fwhm", sensor="rgb_gauss", boundary="symmetric"):
    """Noiseless (LrHSI, HrMSI, PSF, SRF) of ``X`` through the forward model."""
    psf, srf = make_psf(kernel, s), srf_matrix(sensor, wl)
    lr = blur_decimate(X, psf.astype(X.dtype), s, boundary)
    msi = np.tensordot(srf.astype(X.dtype), X, axes=(1, 0))
    return lr, msi, psf, srf


def psnr(gt, est):
    """The conventions' PSNR written out independently of hsibench.metrics: mean over bands of
    10·log10(max(X_b)² / MSE_b)."""
    g = np.asarray(gt, np.float64).reshape(gt.shape[0], -1)
    e = np.asarray(est, np.float64).reshape(gt.shape[0], -1)
    return float(np.mean(10 * np.log10(g.max(1) ** 2 / ((g - e) ** 2).mean(1))))


def run(name, obs, mode="oracle", **params):
    """Run registered method ``name`` on an :class:`~hsibench.degrade.Observation` in ``mode``."""
    ctx = Context.from_truth(scale=obs.scale, mode=mode, psf=obs.psf, srf=obs.srf)
    return create_method(name, **params)(obs.lr, obs.msi, ctx)
