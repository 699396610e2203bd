"""Forward model: kernel presets, the block-centred operator and its exact adjoint, SRF, noise."""
import math

import numpy as np
import pytest
import torch
from scipy import ndimage, signal

from hsibench.degrade import (
    Degradation, PSFError, SRFError, add_noise, blur_decimate, blur_decimate_adjoint, interp_matrix,
    fwhm_to_sigma, make_psf, measured_snr, seeded_rng, simulate, srf_matrix, upsample,
)
from hsibench.degrade.srf import gaussian_curves, read_curves_csv, srf_from_curves

PRESETS = ["gauss_sigma0.5", "gauss_fwhm", "gauss_fwhm_wide", "box", "gauss(1.3)", "aniso_gauss(0.8,2,30)",
           "motion(5,30)", "disk(2.5)", "airy(1.2)"]


@pytest.mark.parametrize("spec", PRESETS)
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_kernels_are_normalised_with_scale_parity(spec, scale):
    k = make_psf(spec, scale)
    assert k.min() >= 0 and k.sum() == pytest.approx(1.0, abs=1e-12)
    assert all((n - scale) % 2 == 0 for n in k.shape)
    # centred: the first moment vanishes for the symmetric shapes
    if not spec.startswith(("motion", "aniso")):
        yy, xx = np.indices(k.shape) - (np.array(k.shape)[:, None, None] - 1) / 2
        assert abs((k * yy).sum()) < 1e-9 and abs((k * xx).sum()) < 1e-9


def test_gauss_sigma05_matches_fspecial_values():
    # MATLAB fspecial('gaussian', [4 4], 0.5): taps at ±0.5, ±1.5 -> exp(-0.5/0.25)... central 2x2 hold ~96.4 %
    k = make_psf("gauss_sigma0.5", 4)
    g = np.exp(-np.array([1.5, 0.5, 0.5, 1.5]) ** 2 / (2 * 0.25))
    np.testing.assert_allclose(k, np.outer(g, g) / np.outer(g, g).sum(), rtol=1e-12)
    assert k[1:3, 1:3].sum() == pytest.approx(0.964, abs=1e-3)


@pytest.mark.parametrize("preset,scale", [("gauss_fwhm", 6), ("gauss_fwhm", 5), ("gauss_fwhm_wide", 4), ("gauss_fwhm_wide", 3)])
def test_gauss_fwhm_has_half_maximum_at_half_width(preset, scale):
    """The sampled kernel is a Gaussian whose profile falls to exactly half its peak at d = s/2."""
    k = make_psf(preset, scale)
    assert k.shape == ((scale,) * 2 if preset == "gauss_fwhm" else (2 * scale - scale % 2,) * 2)
    d = np.arange(k.shape[0]) - (k.shape[0] - 1) / 2
    profile = k.sum(axis=0)  # marginal of a separable Gaussian: the same 1-D Gaussian, up to a constant
    # log profile = a − d²/(2σ²): fit a and 1/σ² from the taps, evaluate at the half width s/2
    (a, inv_var), *_ = np.linalg.lstsq(np.stack([np.ones_like(d), -d**2 / 2], 1), np.log(profile), rcond=None)
    assert math.exp(-inv_var * (scale / 2) ** 2 / 2) == pytest.approx(0.5, rel=1e-9)


def test_fwhm_to_sigma_is_the_half_maximum_width():
    for fwhm in (1.0, 4.0, 37.5):
        sigma = fwhm_to_sigma(fwhm)
        assert math.exp(-0.5 * (fwhm / 2 / sigma) ** 2) == pytest.approx(0.5, rel=1e-12)
    # the Gaussian SRF bands use the same conversion: half the peak response at centre ± FWHM/2
    c = gaussian_curves([550.0], 40.0)
    r = c.responses[0] / c.responses[0].max()
    assert np.interp([530.0, 570.0], c.wavelengths, r) == pytest.approx([0.5, 0.5], rel=1e-9)


def test_gauss_sigma_support_is_the_smallest_holding_995_permille():
    k = make_psf("gauss(2.0)", 4)
    n = k.shape[0]
    assert n % 2 == 0 and k.sum() == pytest.approx(1)
    g = np.exp(-0.5 * ((np.arange(60) - 29.5) / 2.0) ** 2)  # even grid, parity of s = 4
    mass = np.outer(g, g) / np.outer(g, g).sum()

    def crop(m):
        o = (60 - m) // 2
        return mass[o : o + m, o : o + m]

    assert crop(n).sum() >= 0.995 > crop(n - 2).sum()
    np.testing.assert_allclose(k, crop(n) / crop(n).sum(), rtol=1e-12)


@pytest.mark.parametrize("bad, message", [
    ("nope", "unknown PSF preset 'nope'"), ("gauss", r"PSF 'gauss' takes \(1,\) arguments, got 0"),
    ("gauss(a)", "PSF arguments must be numbers"), ("motion(1,2,3)", "PSF 'motion' takes"),
    ("gauss(1", "cannot parse PSF spec"), ("gauss(30)", "PSFs are limited to 257x257"),
])
def test_bad_psf_specs_raise(bad, message):
    with pytest.raises(PSFError, match=message):
        make_psf(bad, 4)


def test_old_kernel_names_are_aliases_of_the_psf_names():
    """The *kernel* spellings stay importable (scripts use them) and are the very same objects."""
    import hsibench.degrade as degrade
    from hsibench.degrade import psf

    pairs = {"KernelError": "PSFError", "KERNEL_PRESETS": "PSF_PRESETS", "MAX_KERNEL_SIZE": "MAX_PSF_SIZE",
             "make_kernel": "make_psf", "check_kernel": "check_psf", "check_kernel_spec": "check_psf_spec",
             "list_kernels": "list_psfs", "parse_kernel": "parse_psf", "gaussian_kernel": "gaussian_psf",
             "box_kernel": "box_psf", "resize_kernel": "resize_psf"}
    for old, new in pairs.items():
        for mod in (psf, degrade):
            assert getattr(mod, old) is getattr(mod, new) is getattr(psf, new), (mod.__name__, old)
            assert old in mod.__all__ and new in mod.__all__, (mod.__name__, old)
    with pytest.raises(degrade.KernelError, match="unknown PSF preset"):  # old handlers still catch
        degrade.make_kernel("nope", 4)


def test_wrong_parity_is_an_error():
    with pytest.raises(PSFError):
        blur_decimate(np.zeros((1, 8, 8)), np.ones((3, 3)) / 9, 4)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_k_equal_s_is_valid_strided_correlation(scale, rng):
    x = rng.random((3, 6 * scale, 5 * scale))
    k = rng.random((scale, scale))
    ref = np.stack([signal.correlate2d(b, k, mode="valid")[::scale, ::scale] for b in x])
    np.testing.assert_allclose(blur_decimate(x, k, scale), ref, rtol=1e-12)


@pytest.mark.parametrize("boundary,mode", [("symmetric", "reflect"), ("circular", "wrap")])
def test_overlapping_kernel_matches_scipy_correlate_then_decimate(boundary, mode, rng):
    s = 4
    x = rng.random((2, 24, 20))
    k = make_psf("gauss_fwhm_wide", s)  # 8x8: pad (8-4)/2 = 2 each side
    full = np.stack([ndimage.correlate(b, k, mode=mode, origin=(-1, -1)) for b in x])
    # scipy centres an even kernel at index k//2; origin -1 moves it to (k-1)/2 - 0.5: sample the block centres
    ref = full[:, 1::s, 1::s]
    np.testing.assert_allclose(blur_decimate(x, k, s, boundary), ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("spec", PRESETS)
@pytest.mark.parametrize("boundary", ["symmetric", "circular"])
@pytest.mark.parametrize("scale", [1, 2, 3, 4])
def test_adjoint_identity(spec, boundary, scale, rng):
    k = make_psf(spec, scale)
    H, W = scale * max(6, k.shape[0]), scale * (max(6, k.shape[1]) + 1)
    x = rng.standard_normal((2, H, W))
    y = rng.standard_normal((2, H // scale, W // scale))
    lhs = np.vdot(blur_decimate(x, k, scale, boundary), y)
    rhs = np.vdot(x, blur_decimate_adjoint(y, k, scale, (H, W), boundary))
    assert lhs == pytest.approx(rhs, rel=1e-10, abs=1e-10)


def test_operator_is_namespace_generic(rng):
    x = rng.random((3, 16, 16))
    k = make_psf("gauss_fwhm_wide", 4)
    y = blur_decimate(x, k, 4)
    yt = blur_decimate(torch.from_numpy(x), torch.from_numpy(k), 4)
    assert isinstance(yt, torch.Tensor)
    np.testing.assert_allclose(yt.numpy(), y, rtol=1e-12)
    at = blur_decimate_adjoint(torch.from_numpy(y), k, 4, (16, 16))
    np.testing.assert_allclose(at.numpy(), blur_decimate_adjoint(y, k, 4, (16, 16)), rtol=1e-12)
    np.testing.assert_allclose(upsample(torch.from_numpy(y), 4).numpy(), upsample(y, 4), rtol=1e-12)


def test_scale_must_divide_image():
    with pytest.raises(ValueError, match="does not divide"):
        blur_decimate(np.zeros((1, 10, 12)), np.ones((4, 4)) / 16, 4)


def test_upsample_alignment_and_exactness():
    # a linear ramp is reproduced exactly by block-centred linear and cubic interpolation (away from borders)
    s = 4
    hr_coord = np.arange(32, dtype=float)
    lr = ((np.arange(8) * s + (s - 1) / 2.0))[None, None, :].repeat(8, axis=1)  # LR pixel i at HR i*s+(s-1)/2
    for kind in ("linear", "cubic"):
        up = upsample(lr, s, kind)[0]
        np.testing.assert_allclose(up[:, 8:24], np.broadcast_to(hr_coord[8:24], (32, 16)), atol=1e-10)
    # constants stay constant, rows of U sum to one
    for kind in ("nearest", "linear", "cubic"):
        np.testing.assert_allclose(interp_matrix(7, 3, kind).sum(axis=1), 1.0, atol=1e-12)


def test_upsample_of_box_decimated_constant_blocks():
    # box-decimating then block-replicating returns block means: nearest interpolation inverts it on block-constant images
    rng = np.random.default_rng(1)
    blocks = rng.random((2, 5, 6))
    x = np.kron(blocks, np.ones((1, 4, 4)))
    np.testing.assert_allclose(blur_decimate(x, make_psf("box", 4), 4), blocks, rtol=1e-12)
    np.testing.assert_allclose(upsample(blocks, 4, "nearest"), x)


def test_srf_rows_sum_to_one_and_cover_bands():
    wl = np.arange(400, 701, 10.0)
    R = srf_matrix("landsat8_bgr", wl)
    assert R.shape == (3, 31)
    np.testing.assert_allclose(R.sum(axis=1), 1.0)
    assert (R >= 0).all()
    centroid = R @ wl
    assert 470 < centroid[0] < 495 and 550 < centroid[1] < 575 and 640 < centroid[2] < 665


def test_srf_linear_interpolation_by_hand():
    curves = gaussian_curves([500.0], 50.0)
    wl = np.array([450.0, 500.0, 550.0])
    R = srf_from_curves(curves, wl)
    g = np.exp(-0.5 * (np.array([-50.0, 0.0, 50.0]) / (50 / 2.35482)) ** 2)
    np.testing.assert_allclose(R[0], g / g.sum(), rtol=1e-3)


def test_srf_band_outside_range_is_an_error():
    with pytest.raises(SRFError, match="overlaps no HS band"):
        srf_matrix("landsat8_blue-swir2", np.arange(400, 701, 10.0))


def test_srf_csv_reader(tmp_path):
    p = tmp_path / "cam.csv"
    p.write_text("# comment\nwavelength,R,G,B\n400,0,0,1\n500,0,1,0.5\n600,1,0.2,0\n700,0.5,0,0\n")
    c = read_curves_csv(p)
    assert c.band_names == ("R", "G", "B") and c.responses.shape == (3, 4)
    R = srf_matrix(str(p), [400, 450, 500, 600])
    np.testing.assert_allclose(R[2], np.array([1, 0.75, 0.5, 0]) / 2.25)


def test_nikon_d700_from_shared_data(shared_data, monkeypatch):
    monkeypatch.setenv("HSIBENCH_DATA", str(shared_data))
    R = srf_matrix("nikon_d700", np.arange(400, 701, 10.0))
    assert R.shape == (3, 31)
    assert np.argmax(R[0]) > np.argmax(R[1]) > np.argmax(R[2])  # R peaks redder than G than B


def test_noise_hits_requested_snr_and_is_seeded():
    x = np.random.default_rng(0).random((4, 64, 64)).astype(np.float32)
    a = add_noise(x, 30.0, seeded_rng("k", 1))
    b = add_noise(x, 30.0, seeded_rng("k", 1))
    c = add_noise(x, 30.0, seeded_rng("k", 2))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert measured_snr(x, a) == pytest.approx(30.0, abs=0.1)
    assert add_noise(x, None, seeded_rng(0)) is x
    pb = add_noise(x, 20.0, seeded_rng(3), per_band=True)
    for b_ in range(4):
        assert measured_snr(x[b_], pb[b_]) == pytest.approx(20.0, abs=0.3)


def test_degradation_roundtrip_and_simulate():
    d = Degradation(4, "motion(5,30)", "landsat8_bgr", snr_hs="inf", snr_ms=35, misregistration=(0.5, 0))
    assert d.snr_hs is None and d.snr_ms == 35.0
    assert Degradation.from_dict(d.to_dict()) == d
    cube = np.random.default_rng(0).random((31, 32, 32)).astype(np.float32)
    wl = np.arange(400, 701, 10.0)
    obs = simulate(cube, wl, d, seed=1, key="x")
    assert obs.lr.shape == (31, 8, 8) and obs.msi.shape == (3, 32, 32) and obs.lr.dtype == np.float32
    again = simulate(cube, wl, d, seed=1, key="x")
    assert np.array_equal(obs.msi, again.msi)
    clean = simulate(cube, wl, Degradation(4, "box", "landsat8_bgr"))
    np.testing.assert_allclose(clean.msi, np.tensordot(clean.srf, cube, axes=1), rtol=1e-5)
    with pytest.raises(ValueError, match="unknown degradation fields"):
        Degradation.from_dict({"scale": 2, "blur": 1})
    with pytest.raises(ValueError, match="does not divide"):
        simulate(cube[:, :30, :30], wl, d)
    bad = cube.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        simulate(bad, wl, d)


def test_boundary_index_of_the_kernels_matches_the_forward_model():
    """hsibench.kernels keeps its own copy of the boundary map (it imports nothing of hsibench);
    both copies must give the same indices."""
    from hsibench.degrade.geometry import boundary_index
    from hsibench.kernels._plan import boundary_index as kernels_boundary_index

    for n in (1, 2, 5, 8):
        idx = np.arange(-3 * n - 2, 4 * n + 3)
        for boundary in ("symmetric", "circular"):
            np.testing.assert_array_equal(kernels_boundary_index(idx, n, boundary), boundary_index(idx, n, boundary))
    # and the symmetric map is the half-sample reflection, written out by hand for n = 3
    assert boundary_index(np.arange(-4, 7), 3, "symmetric").tolist() == [2, 2, 1, 0, 0, 1, 2, 2, 1, 0, 0]


def test_psf_module_does_not_import_the_operator():
    """No psf <-> spatial import cycle: the PSF generators and the geometry never import the operator."""
    import ast
    import importlib

    for mod in ("hsibench.degrade.psf", "hsibench.degrade.geometry"):
        tree = ast.parse(open(importlib.import_module(mod).__file__).read())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not {"spatial", "hsibench.degrade.spatial"} & {m or "" for m in imported}, mod


def test_psf_and_srf_errors(rng):
    from hsibench.degrade import psf_error, srf_error

    k = make_psf("gauss_fwhm", 4)
    assert psf_error(k, k) == 0.0
    big = np.zeros((8, 8))
    big[2:6, 2:6] = k
    assert psf_error(big, k) == 0.0 and psf_error(k, big) == 0.0  # centred zero-padding
    u = np.full((4, 4), 1 / 16)
    assert psf_error(u, k) == pytest.approx(np.linalg.norm(u - k) / np.linalg.norm(k), rel=1e-14)
    with pytest.raises(PSFError, match="parity"):
        psf_error(np.ones((3, 3)) / 9, k)
    r = rng.random((3, 10))
    assert srf_error(r, r) == 0.0 and srf_error(3 * r, r) == pytest.approx(2.0)
    with pytest.raises(SRFError, match="shapes differ"):
        srf_error(r[:, :9], r)
