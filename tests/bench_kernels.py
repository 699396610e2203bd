"""pytest-benchmark timings of the fused kernels on a 512×512×31 float32 cube.

Not collected by the default test run (file name), and pyproject's ``--benchmark-skip`` would skip
it anyway (``--benchmark-enable`` does not undo that), so clear addopts:
    NUMBA_NUM_THREADS=2 OMP_NUM_THREADS=2 python -m pytest tests/bench_kernels.py -o addopts="" \\
        --benchmark-columns=min,mean,rounds --benchmark-group-by=group
The full comparison (both cube sizes, ratios against the targets, reports/benchmarks.md) is
``python -m hsibench.bench``. Each result records the machine load: the machines are shared.
"""
import os

import numpy as np
import pytest

from hsibench.degrade.psf import make_psf

SHAPE = (31, 512, 512)


@pytest.fixture(scope="module")
def cubes():
    rng = np.random.default_rng(0)
    gt = rng.random(SHAPE, dtype=np.float32)
    est = gt + np.float32(0.05) * (rng.random(SHAPE, dtype=np.float32) - np.float32(0.5))
    return gt, est


def _info(benchmark, **extra):
    import numba

    benchmark.extra_info.update(loadavg_1min=os.getloadavg()[0], numba_threads=numba.get_num_threads(), **extra)


@pytest.mark.parametrize("wide", [False, True], ids=["k=s", "k=2s"])
@pytest.mark.parametrize("s", [4, 8, 16])
def test_psf_fused(benchmark, cubes, s, wide):
    from hsibench.kernels import blur_decimate

    benchmark.group = f"psf s={s} {'k=2s' if wide else 'k=s'}"
    k = make_psf("gauss_fwhm_wide" if wide else "gauss_fwhm", s)
    x = cubes[0]
    blur_decimate(x, k, s)  # compile outside the timing
    benchmark(blur_decimate, x, k, s)
    _info(benchmark)


@pytest.mark.parametrize("wide", [False, True], ids=["k=s", "k=2s"])
@pytest.mark.parametrize("s", [4, 8, 16])
def test_psf_adjoint_fused(benchmark, cubes, s, wide):
    from hsibench.kernels import blur_decimate, blur_decimate_adjoint

    benchmark.group = f"psf s={s} {'k=2s' if wide else 'k=s'}"
    k = make_psf("gauss_fwhm_wide" if wide else "gauss_fwhm", s)
    y = blur_decimate(cubes[0], k, s)
    blur_decimate_adjoint(y, k, s, SHAPE[1:])
    benchmark(blur_decimate_adjoint, y, k, s, SHAPE[1:])
    _info(benchmark)


@pytest.mark.parametrize("wide", [False, True], ids=["k=s", "k=2s"])
@pytest.mark.parametrize("s", [4, 8, 16])
def test_psf_torch_conv2d(benchmark, cubes, s, wide):
    torch = pytest.importorskip("torch")
    import numba

    torch.set_num_threads(numba.get_num_threads())
    benchmark.group = f"psf s={s} {'k=2s' if wide else 'k=s'}"
    k = make_psf("gauss_fwhm_wide" if wide else "gauss_fwhm", s).astype(np.float32)
    B, kh = SHAPE[0], k.shape[0]
    x = torch.from_numpy(cubes[0])[None]
    w = torch.from_numpy(np.ascontiguousarray(np.broadcast_to(k, (B, 1, kh, kh))))
    with torch.no_grad():
        benchmark(torch.nn.functional.conv2d, x, w, stride=s, padding=(kh - s) // 2, groups=B)
    _info(benchmark)


def test_probe_one_read(benchmark, cubes):
    from hsibench.bench import _probe_kernel

    benchmark.group = "probe"
    probe = _probe_kernel()
    flat = cubes[0].reshape(-1, SHAPE[2])
    probe(flat)
    benchmark(probe, flat)
    _info(benchmark, bytes=cubes[0].nbytes)


def test_scalar_metrics_fused(benchmark, cubes):
    from hsibench.kernels import scalar_metrics

    benchmark.group = "metrics"
    scalar_metrics(*cubes, 4)
    benchmark(scalar_metrics, *cubes, 4)
    _info(benchmark)


def test_windowed_metrics_fused(benchmark, cubes):
    from hsibench.kernels import windowed_metrics

    benchmark.group = "metrics"
    windowed_metrics(*cubes)
    benchmark.pedantic(windowed_metrics, args=cubes, rounds=3, iterations=1)
    _info(benchmark)


def test_skimage_ssim_band_loop(benchmark, cubes):
    from skimage.metrics import structural_similarity

    benchmark.group = "metrics"
    gt, est = cubes

    def loop():
        for b in range(SHAPE[0]):
            structural_similarity(gt[b], est[b], gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0)

    benchmark.pedantic(loop, rounds=1, iterations=1)
    _info(benchmark)
