"""Fused strided PSF operator (hsibench.kernels) against the NumPy reference in degrade.spatial.

Compilation budget: the CPU kernels compile once per (dtype, S) with S = s for s in {4, 8, 16}
and S = 1 (generic) otherwise. The default tests use s in {2, 3, 4} (S = 1 and 4), float32 and
float64: 8 task compilations, cached on disk afterwards. s = 8, 16 are in the slow tests
(``-m slow``).
"""
from __future__ import annotations

import numpy as np
import pytest

from hsibench.degrade import spatial as _spatial
from hsibench.degrade.psf import make_psf
from hsibench.kernels import KernelShapeError, PSFShapeError, blur_decimate, blur_decimate_adjoint, psf_plan
from _tolerance import sum_bound


class spatial:  # noqa: N801 -- the array-API reference (never the dispatching public function)
    blur_decimate = staticmethod(_spatial.blur_decimate_reference)
    blur_decimate_adjoint = staticmethod(_spatial.blur_decimate_adjoint_reference)

SPECS = [
    "gauss_sigma0.5",
    "gauss_fwhm",
    "gauss_fwhm_wide",
    "box",
    "gauss(1.3)",
    "aniso_gauss(0.8, 1.6, 30)",
    "motion(5, 20)",
    "disk(2.2)",
    "airy(1.1)",
]
def _close(got, ref, dtype, k, x, adjoint=False):
    """Within the worst-case roundoff of two evaluation orders (tests/_tolerance.py), element-wise.

    Each output is a sum of at most k.size products w·x (an HR pixel of the adjoint gets up to 4
    boundary-folded copies of its taps); the separable path sums rows then columns of a rank-1
    factorisation (kh + kw more roundings, plus the factorisation's own ~k.size·eps error). So both
    results lie within (2·k.size + kh + kw)·u·Σ|k|·max|x| (×4 for the adjoint) of the exact sum, and
    within twice that of each other, on any CPU and SIMD width.
    """
    assert got.dtype == ref.dtype
    assert got.shape == ref.shape
    k = np.asarray(k, dtype=np.float64)
    copies = 4 if adjoint else 1
    n = copies * (2 * k.size + sum(k.shape))
    magnitude = copies * float(np.abs(k).sum()) * float(np.abs(np.asarray(x, dtype=np.float64)).max())
    np.testing.assert_allclose(got, ref, rtol=0, atol=sum_bound(n, dtype, magnitude))


def _cube(rng, shape, dtype):
    return rng.random(shape).astype(dtype)


@pytest.fixture(scope="module")
def rng_mod():
    return np.random.default_rng(20240611)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("boundary", ["symmetric", "circular"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_every_preset_matches_reference(rng_mod, scale, boundary, dtype):
    """Every kernel preset, forward and adjoint, odd non-square image sizes."""
    h, w = 7, 5  # LR size: HR is (7s, 5s), never square, odd LR sizes
    x = _cube(rng_mod, (3, h * scale, w * scale), dtype)
    y = _cube(rng_mod, (3, h, w), dtype)
    for spec in SPECS:
        k = make_psf(spec, scale)
        if (max(k.shape) - scale) // 2 > min(h, w) * scale:  # padding larger than the image
            continue
        ref = spatial.blur_decimate(x, k, scale, boundary)
        _close(blur_decimate(x, k, scale, boundary), ref, dtype, k, x)
        ref_t = spatial.blur_decimate_adjoint(y, k, scale, (h * scale, w * scale), boundary)
        _close(blur_decimate_adjoint(y, k, scale, (h * scale, w * scale), boundary), ref_t, dtype, k, y, adjoint=True)


def test_both_code_paths_are_exercised():
    """Gaussian/box presets take the rank-1 separable path, rotated/round shapes the direct one."""
    assert psf_plan((16, 16), make_psf("gauss_fwhm_wide", 4), 4).separable
    assert psf_plan((16, 16), make_psf("box", 4), 4).separable
    assert psf_plan((24, 24), make_psf("aniso_gauss(0.8, 1.6)", 4), 4).separable  # axis-aligned
    assert not psf_plan((24, 24), make_psf("disk(2.2)", 4), 4).separable
    assert not psf_plan((24, 24), make_psf("aniso_gauss(0.8, 1.6, 30)", 4), 4).separable


@pytest.mark.parametrize("boundary", ["symmetric", "circular"])
def test_adjoint_identity(rng_mod, boundary):
    """<A x, y> = <x, Aᵀ y> to float64 round-off, for a signed (non-PSF) kernel too."""
    s = 3
    for k in (make_psf("gauss_fwhm_wide", s), rng_mod.standard_normal((7, 9))):
        x = rng_mod.standard_normal((2, 9 * s, 4 * s))
        y = rng_mod.standard_normal((2, 9, 4))
        lhs = np.vdot(blur_decimate(x, k, s, boundary), y)
        rhs = np.vdot(x, blur_decimate_adjoint(y, k, s, x.shape[-2:], boundary))
        assert lhs == pytest.approx(rhs, rel=1e-12)


def test_signed_kernel_and_data(rng_mod):
    """Linear in the kernel: signed kernels (learned PSFs) and signed data match the reference."""
    s = 4
    k = rng_mod.standard_normal((8, 6))
    x = rng_mod.standard_normal((2, 6 * s, 5 * s)).astype(np.float32)
    _close(blur_decimate(x, k, s), spatial.blur_decimate(x, k, s), np.float32, k, x)


def test_layouts_and_leading_dims(rng_mod):
    s = 2
    k = make_psf("gauss_fwhm_wide", s)
    x4 = rng_mod.random((2, 3, 10, 8))
    ref = spatial.blur_decimate(x4, k, s)
    _close(blur_decimate(x4, k, s), ref, np.float64, k, x4)
    _close(blur_decimate(x4[0, 1], k, s), ref[0, 1], np.float64, k, x4)  # 2-D input
    xt = np.ascontiguousarray(x4[0].transpose(0, 2, 1)).transpose(0, 2, 1)  # non-contiguous view
    assert not xt.flags.c_contiguous
    _close(blur_decimate(xt, k, s), ref[0], np.float64, k, xt)
    y = rng_mod.random((2, 3, 5, 4))
    _close(blur_decimate_adjoint(y, k, s, (10, 8)), spatial.blur_decimate_adjoint(y, k, s, (10, 8)), np.float64, k, y,
           adjoint=True)
    xi = (x4[0] * 1000).astype(np.int32)  # integers are computed in float64, like the reference
    _close(blur_decimate(xi, k, s), spatial.blur_decimate(xi, k, s), np.float64, k, xi)


def test_torch_cpu_tensor(rng_mod):
    torch = pytest.importorskip("torch")
    s = 2
    k = make_psf("box", s)
    x = rng_mod.random((2, 8, 6)).astype(np.float32)
    out = blur_decimate(torch.from_numpy(x), k, s)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    _close(out.numpy(), spatial.blur_decimate(x, k, s), np.float32, k, x)
    back = blur_decimate_adjoint(out, torch.from_numpy(k), s, (8, 6))
    assert isinstance(back, torch.Tensor)


def test_errors(rng_mod):
    x = rng_mod.random((1, 8, 8))
    with pytest.raises(PSFShapeError, match="parity"):
        blur_decimate(x, np.ones((3, 3)) / 9, 2)
    assert issubclass(PSFShapeError, ValueError) and KernelShapeError is PSFShapeError  # older name kept
    with pytest.raises(ValueError, match="does not divide"):
        blur_decimate(x, np.ones((3, 3)) / 9, 3)
    with pytest.raises(ValueError, match="exceeds the image size"):
        blur_decimate(x, np.ones((22, 22)), 2)
    with pytest.raises(ValueError, match="unknown boundary"):
        blur_decimate(x, np.ones((2, 2)) / 4, 2, "reflect")
    with pytest.raises(ValueError, match="does not match"):
        blur_decimate_adjoint(np.zeros((1, 3, 4)), np.ones((2, 2)) / 4, 2, (8, 8))
    with pytest.raises(PSFShapeError, match="NaN"):
        blur_decimate(x, np.full((2, 2), np.nan), 2)


def test_nan_propagates(rng_mod):
    x = rng_mod.random((1, 8, 8)).astype(np.float32)
    x[0, 3, 3] = np.nan
    out = blur_decimate(x, make_psf("gauss_fwhm", 2), 2)
    assert np.isnan(out[0, 1, 1]) and np.isfinite(out[0, 0, 0])


def test_real_cube(shared_data):
    """Paris Hyperion cube (128 bands, 72×72), float32, s = 4 and 3, symmetric and circular."""
    from scipy.io import loadmat

    cube = loadmat(shared_data / "paris_eo1_hyperion_ali" / "paris_data_hs_ms.mat")["HSim"]
    x = np.ascontiguousarray(np.transpose(cube, (2, 0, 1)), dtype=np.float32)
    for s, spec, boundary in ((4, "gauss_fwhm_wide", "symmetric"), (3, "gauss_fwhm", "circular")):
        k = make_psf(spec, s)
        lr = blur_decimate(x, k, s, boundary)
        _close(lr, spatial.blur_decimate(x, k, s, boundary), np.float32, k, x)
        _close(
            blur_decimate_adjoint(lr, k, s, x.shape[1:], boundary),
            spatial.blur_decimate_adjoint(lr, k, s, x.shape[1:], boundary),
            np.float32, k, lr, adjoint=True,
        )


@pytest.mark.slow
@pytest.mark.parametrize("scale", [8, 16])
def test_large_scales(scale):
    """The specialised s = 8 and 16 paths (extra compilations), k = s and 2s and a rotated kernel."""
    rng = np.random.default_rng(scale)
    x = rng.random((3, 5 * scale, 3 * scale), dtype=np.float32)
    y = rng.random((3, 5, 3), dtype=np.float32)
    for spec in ("gauss_fwhm", "gauss_fwhm_wide", "aniso_gauss(2, 4, 30)"):
        k = make_psf(spec, scale)
        for boundary in ("symmetric", "circular"):
            _close(blur_decimate(x, k, scale, boundary), spatial.blur_decimate(x, k, scale, boundary), np.float32, k, x)
            _close(
                blur_decimate_adjoint(y, k, scale, x.shape[1:], boundary),
                spatial.blur_decimate_adjoint(y, k, scale, x.shape[1:], boundary),
                np.float32, k, y, adjoint=True,
            )
