"""Hand-computed metric cases shared by the CPU tests (``test_metrics.py``) and the CUDA-simulator
tests (``test_kernels_cudasim.py``), so both check the same inputs against the same numbers.

Only NumPy is imported here: the simulator subprocess imports this module before ``numba.cuda``.
"""
from __future__ import annotations

import math

import numpy as np

# ---------------------------------------------------------------------------- the hand cube
# 2 bands x 2 x 2 pixels. Errors X^ - X: band 0 = [+0.1, -0.1, 0, 0], band 1 = [0, 0, +0.2, 0].
X = np.array([[[0.2, 0.4], [0.6, 0.8]],
              [[0.1, 0.1], [0.3, 0.5]]])
XH = np.array([[[0.3, 0.3], [0.6, 0.8]],
               [[0.1, 0.1], [0.5, 0.5]]])
# MSE_0 = (0.01 + 0.01) / 4 = 0.005, MSE_1 = 0.04 / 4 = 0.01.
HAND_MSE = np.array([0.005, 0.01])
# sqrt((0.01 + 0.01 + 0.04) / 8) = sqrt(0.0075)
HAND_RMSE = math.sqrt(0.0075)
# band 0: max 0.8, 10 log10(0.64 / 0.005) = 10 log10(128); band 1: max 0.5, 10 log10(0.25/0.01)
HAND_PSNR = np.array([10 * math.log10(128.0), 10 * math.log10(25.0)])
# mu = [0.5, 0.25]: MSE/mu^2 = [0.005/0.25, 0.01/0.0625] = [0.02, 0.16]; mean 0.09, sqrt 0.3;
# ERGAS = (100/s) * 0.3: 15 at s = 2, 7.5 at s = 4.
HAND_ERGAS = {2: 15.0, 4: 7.5}
# Yokoya: mu from the estimate, [0.5, 0.3]: [0.02, 0.01/0.09]
HAND_ERGAS_MU_EST_S2 = 50 * math.sqrt((0.02 + 0.01 / 0.09) / 2)
# band 0: x-mean = [-.3,-.1,.1,.3], x^-mean = [-.2,-.2,.1,.3]: Sxy .18, Sxx .2, Syy .18 -> sqrt(.9)
# band 1: x-mean = [-.15,-.15,.05,.25], x^-mean = [-.2,-.2,.2,.2]: Sxy .12, Sxx .11, Syy .16
#         -> .12 / sqrt(.11 * .16) = .3 / sqrt(.11)
HAND_CC = np.array([math.sqrt(0.9), 0.3 / math.sqrt(0.11)])
# (0.1 + 0.1 + 0.2) / 8
HAND_DD = 0.05
# With 2 bands the angle is the difference of the polar angles atan2(band1, band0):
# p0 (.2,.1) vs (.3,.1): 26.565 - 18.435 = 8.130 deg; p1 (.4,.1) vs (.3,.1): 4.399 deg;
# p2 (.6,.3) vs (.6,.5): 13.241 deg; p3 identical: 0. Mean 6.692 deg.
HAND_SAM_ANGLES = np.array([[8.130102, 4.398705], [13.240520, 0.0]])  # to 1e-6


def polar_angle_difference(gt, est):
    """Per-pixel spectral angle of 2-band spectra as the difference of their polar angles (deg)."""
    polar = lambda c: np.degrees(np.arctan2(c[1], c[0]))  # noqa: E731
    return np.abs(polar(gt) - polar(est))


# ------------------------------------------------------------- cases for compute_metrics
# compute_metrics needs images of at least 11 x 11 (the SSIM window), so the hand cube is tiled
# 6 x 6 times: per-band MSE, peak and mean, the Pearson CC, the mean |error| and the mean
# spectral angle are all unchanged by tiling, so the numbers above are the expected scores.
def _hand_tiled():
    tile = (1, 6, 6)
    return np.tile(X, tile), np.tile(XH, tile)


# A one-band 12 x 12 image whose columns alternate 0.25 / 0.75: every 8 x 8 UIQI window holds
# four columns of each, so its mean is 0.5 and its variance 0.0625.
#  - est = x + 0.5: s_xy = s_x^2 = s_y^2, Q = 2 mx my / (mx^2 + my^2) = 2 * .5 * 1 / (.25 + 1) = 0.8;
#    error 0.5 everywhere: MSE 0.25, PSNR 10 log10(0.75^2 / 0.25), ERGAS (100/s) * 0.5 / 0.5.
#  - est = 2 x: correlation 1, contrast 2*s*2s/(s^2+4s^2) = 0.8, luminance 0.8: Q = 0.64;
#    error x: MSE (0.25^2 + 0.75^2) / 2 = 0.3125, mean |error| 0.5.
#  Both estimates are affine in x (CC 1) and a 1-band spectrum has no angle (SAM 0).
def _stripes():
    col = np.array([0.25, 0.75] * 6)
    return np.broadcast_to(col, (1, 12, 12)).copy()


def _zero_pixel():
    # one all-zero ground-truth spectrum out of 144, reproduced exactly: SAM leaves it out
    # (hsibench, count90) or counts it at 90 deg (eu2adl, all90): 90 / 144
    gt = np.concatenate([_stripes(), 1.0 - _stripes()])
    gt[:, 0, 0] = 0.0
    return gt, gt.copy()


def metric_cases():
    """The hand-computed ``compute_metrics`` cases.

    Returns
    -------
    dict
        name -> ``{"gt", "est", "scale", "preset", "scalars", "per_band"}``: float64 cubes, the
        call's options and the expected values (only the metrics computed by hand are listed).
    """
    g, e = _hand_tiled()
    x = _stripes()
    s = 4
    z, ze = _zero_pixel()
    return {
        "hand": dict(
            gt=g, est=e, scale=s, preset="hsibench",
            scalars={"rmse": HAND_RMSE, "psnr": float(HAND_PSNR.mean()), "ergas": HAND_ERGAS[s],
                     "cc": float(HAND_CC.mean()), "dd": HAND_DD,
                     "sam": float(polar_angle_difference(X, XH).mean())},
            per_band={"psnr": HAND_PSNR, "rmse": np.sqrt(HAND_MSE), "cc": HAND_CC},
        ),
        "stripes_plus_half": dict(
            gt=x, est=x + 0.5, scale=s, preset="hsibench",
            scalars={"uiqi": 0.8, "rmse": 0.5, "psnr": 10 * math.log10(0.5625 / 0.25),
                     "ergas": 100 / s, "cc": 1.0, "dd": 0.5, "sam": 0.0},
            per_band={"uiqi": [0.8], "rmse": [0.5], "cc": [1.0]},
        ),
        "stripes_double": dict(
            gt=x, est=2 * x, scale=s, preset="hsibench",
            scalars={"uiqi": 0.64, "rmse": math.sqrt(0.3125), "psnr": 10 * math.log10(0.5625 / 0.3125),
                     "ergas": 100 / s * math.sqrt(0.3125) / 0.5, "cc": 1.0, "dd": 0.5, "sam": 0.0},
            per_band={"uiqi": [0.64], "cc": [1.0]},
        ),
        "zero_pixel_hsibench": dict(
            gt=z, est=ze, scale=2, preset="hsibench",
            scalars={"sam": 0.0, "rmse": 0.0, "dd": 0.0, "ergas": 0.0, "psnr": math.inf, "cc": 1.0},
            per_band={},
        ),
        "zero_pixel_eu2adl": dict(
            gt=z, est=ze, scale=2, preset="eu2adl",
            scalars={"sam": 90.0 / 144, "rmse": 0.0, "psnr": math.inf},
            per_band={},
        ),
    }


def assert_known_scores(scalars, per_band, case, rel=1e-12, abs_=1e-12):
    """Assert that a report's ``scalars`` / ``per_band`` (dicts of floats / sequences) hold the
    case's hand-computed values within ``rel`` (and ``abs_`` near zero)."""
    import pytest

    for name, want in case["scalars"].items():
        got = scalars[name]
        if math.isinf(want):
            assert got == want, (name, got, want)
        else:
            assert got == pytest.approx(want, rel=rel, abs=abs_), (name, got, want)
    for name, want in case["per_band"].items():
        got = np.asarray(per_band[name], dtype=float)
        np.testing.assert_allclose(got, np.asarray(want, dtype=float), rtol=rel, atol=abs_, err_msg=name)
