"""White Gaussian noise at a given SNR, seeded so every run and method sees the same noise."""
from __future__ import annotations

import hashlib
import math

import numpy as np

__all__ = ["add_noise", "noise_sigma", "seeded_rng", "measured_snr"]


def seeded_rng(*key) -> np.random.Generator:
    """A generator whose stream depends only on ``key`` (stable across runs, platforms and processes)."""
    digest = hashlib.sha256(repr(key).encode()).digest()
    return np.random.default_rng(np.frombuffer(digest[:16], dtype=np.uint32))


def noise_sigma(x: np.ndarray, snr_db: float, per_band: bool = False) -> np.ndarray | float:
    """σ such that 10·log10(Σx² / Σn²) = snr_db in expectation (per image, or per band on axis 0)."""
    x = np.asarray(x, dtype=np.float64)
    factor = 10.0 ** (snr_db / 10.0)
    if per_band:
        power = np.mean(x.reshape(x.shape[0], -1) ** 2, axis=1)
        return np.sqrt(power / factor)
    return math.sqrt(float(np.mean(x**2)) / factor)


def add_noise(x: np.ndarray, snr_db: float | None, rng: np.random.Generator, per_band: bool = False) -> np.ndarray:
    """x + n with n white Gaussian at ``snr_db`` (None or inf: no noise). Output keeps x's dtype."""
    if snr_db is None or math.isinf(snr_db):
        return x
    if not math.isfinite(snr_db):
        raise ValueError(f"SNR must be a number of dB or inf, got {snr_db}")
    sigma = noise_sigma(x, snr_db, per_band)
    n = rng.standard_normal(x.shape)
    if per_band:
        n *= np.asarray(sigma).reshape((-1,) + (1,) * (x.ndim - 1))
    else:
        n *= sigma
    return (x + n).astype(x.dtype, copy=False)


def measured_snr(clean: np.ndarray, noisy: np.ndarray) -> float:
    """10·log10(Σx² / Σ(noisy − x)²), the per-image SNR definition of the conventions."""
    clean = np.asarray(clean, dtype=np.float64)
    n = np.asarray(noisy, dtype=np.float64) - clean
    return 10.0 * math.log10(float(np.sum(clean**2)) / float(np.sum(n**2)))
