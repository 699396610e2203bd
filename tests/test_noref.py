"""No-reference quality (Dλ, Ds, QNR) on known answers."""
import numpy as np
import pytest

from hsibench.metrics import MetricError, uiqi
from hsibench.metrics.noref import d_lambda, d_s, noref_metrics, q_pairs, qnr

Y1 = np.array([[1.0, 2.0], [3.0, 4.0]])


def nearest(x, s):
    return x.repeat(s, -2).repeat(s, -1)


def q_brute(a, b):
    """Wang–Bovik Q of two windows, straight from the formula (population moments)."""
    ma, mb = a.mean(), b.mean()
    va, vb = ((a - ma) ** 2).mean(), ((b - mb) ** 2).mean()
    cov = ((a - ma) * (b - mb)).mean()
    den = (va + vb) * (ma**2 + mb**2)
    if va == 0 and vb == 0:
        return 1.0 if np.all(a == b) else 0.0
    return 4 * cov * ma * mb / den if den > 0 else 0.0


def test_q_of_the_hand_computed_pair():
    # y2 = 2·y1: μ 2.5 / 5, σ² 1.25 / 5, σ12 2.5 -> Q = 4·2.5·2.5·5 / ((1.25 + 5)(6.25 + 25)) = 0.64
    q = q_pairs(Y1[None], 2 * Y1[None], block=None)
    assert q[0] == pytest.approx(0.64, abs=1e-12)


def test_q_pairs_matches_uiqi_and_a_brute_force_window_loop():
    rng = np.random.default_rng(0)
    a, b = rng.random((3, 12, 10)), rng.random((3, 12, 10))
    b[1] = 3 * a[1] + 0.2
    a[2, :6, :6] = 0.5
    b[2, :6, :6] = 0.5  # flat and equal windows -> 1
    np.testing.assert_allclose(q_pairs(a, b, block=4), uiqi(a, b, per_band=True, window=4), atol=1e-12)
    for step in (1, 3):
        want = [np.mean([q_brute(a[k, r:r + 4, c:c + 4], b[k, r:r + 4, c:c + 4])
                         for r in range(0, 9, step) for c in range(0, 7, step)]) for k in range(3)]
        np.testing.assert_allclose(q_pairs(a, b, block=4, step=step), want, atol=1e-12)


def test_d_lambda_is_zero_for_the_nearest_upsampled_lr():
    rng = np.random.default_rng(1)
    lr = rng.random((5, 6, 6))
    assert d_lambda(nearest(lr, 3), lr, block=None) == pytest.approx(0.0, abs=1e-12)
    # and an image that breaks the inter-band relations is penalised
    bad = nearest(lr, 3)
    bad[0] = rng.random(bad[0].shape)
    assert d_lambda(bad, lr, block=None) > 0.01


def test_hand_computed_d_lambda_d_s_and_qnr():
    lr = np.stack([Y1, 2 * Y1])
    fused = nearest(lr, 2)
    fused[1] = 5.0  # a flat band: Q(F1, F2) = 0 where Q(Y1, Y2) = 0.64
    assert d_lambda(fused, lr, block=None) == pytest.approx(0.64, abs=1e-12)
    msi = nearest(Y1, 2)[None]
    # Q(F1, M) = Q(Y1, M~) = 1; Q(F2, M) = 0 vs Q(Y2, M~) = 0.64 -> Ds = (0 + 0.64) / 2
    ds = d_s(fused, lr, msi, msi_lr=Y1[None], block=None)
    assert ds == pytest.approx(0.32, abs=1e-12)
    assert qnr(0.64, 0.32) == pytest.approx(0.36 * 0.68)
    m = noref_metrics(fused, lr, msi, msi_lr=Y1[None], block=None)
    assert m == pytest.approx({"d_lambda": 0.64, "d_s": 0.32, "qnr": 0.36 * 0.68})


def test_d_s_low_passes_the_msi_when_no_lr_version_is_given():
    rng = np.random.default_rng(2)
    lr = rng.random((3, 8, 8))
    msi = rng.random((2, 16, 16))
    from hsibench.degrade import blur_decimate
    from hsibench.degrade.psf import resize_psf

    want = d_s(nearest(lr, 2), lr, msi, msi_lr=blur_decimate(msi, resize_psf(2), 2), block=4)
    assert d_s(nearest(lr, 2), lr, msi, block=4) == pytest.approx(want, abs=1e-12)
    box = np.full((2, 2), 0.25)
    assert d_s(nearest(lr, 2), lr, msi, psf=box, block=4) == pytest.approx(
        d_s(nearest(lr, 2), lr, msi, msi_lr=blur_decimate(msi, box, 2), block=4), abs=1e-12)


@pytest.mark.parametrize("call,match", [
    (lambda lr: d_lambda(nearest(lr, 2)[:2], lr), "bands"),
    (lambda lr: d_lambda(nearest(lr, 2)[:, :15], lr, block=None), "integer multiple"),
    (lambda lr: d_lambda(nearest(lr, 2), lr, block=9), "do not fit"),
    (lambda lr: d_lambda(nearest(lr, 2), lr, block=4, step=0), "step"),
    (lambda lr: d_s(nearest(lr, 2), lr, np.ones((2, 8, 8))), "MS image"),
    (lambda lr: d_lambda(np.full((3, 16, 16), np.nan), lr), "NaN"),
    (lambda lr: qnr(float("nan"), 0.1), "finite"),
])
def test_noref_errors(call, match):
    lr = np.random.default_rng(3).random((3, 8, 8))
    with pytest.raises(MetricError, match=match):
        call(lr)


def test_hand_computed_case_from_torch_tensors():
    """Inputs from another namespace (torch, one tensor still attached to autograd, as a device
    array would be foreign to NumPy) are brought to the host explicitly: the same hand values."""
    torch = pytest.importorskip("torch")
    lr = np.stack([Y1, 2 * Y1])
    fused = nearest(lr, 2)
    fused[1] = 5.0
    msi = nearest(Y1, 2)[None]
    t_fused = torch.from_numpy(fused).requires_grad_(True)  # np.asarray alone refuses this one
    m = noref_metrics(t_fused, torch.from_numpy(lr), torch.from_numpy(msi), msi_lr=Y1[None], block=None)
    assert m == pytest.approx({"d_lambda": 0.64, "d_s": 0.32, "qnr": 0.36 * 0.68})
