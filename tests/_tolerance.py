"""Tolerances for comparing two implementations, derived from the computation, not from one CPU.

Two backends (NumPy and torch, a fused kernel and its reference) evaluate the same formula with
different summation orders, FMA use and SIMD widths, so they differ by roundoff. How much roundoff
shows in the output depends on the problem:

* a sum of ``n`` terms ``Σ w_i x_i`` computed in any order satisfies
  ``|fl(s) − s| ≤ γ_n Σ|w_i x_i|`` with ``γ_n ≈ n·u`` and ``u = eps/2`` (Higham, *Accuracy and
  Stability of Numerical Algorithms*, §3.1), so two implementations differ by at most
  ``n·eps·Σ|w_i x_i|`` on any machine: :func:`sum_bound`;
* iterative solvers and regressions on rank-deficient data amplify roundoff by a condition number
  that has no useful closed-form bound; there the comparison runs in float64 and the tolerance is
  the problem's own measured response to a few-ulp perturbation of its inputs: :func:`roundoff_atol`.
"""
from __future__ import annotations

import numpy as np


def sum_bound(n_terms: int, dtype, magnitude: float) -> float:
    """Worst-case difference of two evaluations of an ``n_terms`` sum whose ``Σ|w_i x_i|`` is at
    most ``magnitude``, in ``dtype`` arithmetic: ``n·eps·magnitude`` (both errors ≤ n·u·magnitude)."""
    return float(n_terms * np.finfo(dtype).eps * magnitude)


def _as_tuple(out):
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def roundoff_atol(fn, *arrays, trials: int = 2, ulps: float = 4.0, factor: float = 4.0, seed: int = 0) -> list[float]:
    """Per-output absolute tolerances for comparing float64 implementations of ``fn(*arrays)``.

    Runs ``fn`` on the float64 inputs and on ``trials`` copies perturbed by independent relative
    noise of ``ulps`` float64 ulps; the tolerance of each output is ``factor`` times the largest change
    seen, with a floor of ``64·eps·max|out|``. Backends that differ only by float64 roundoff stay
    within it on any CPU; a wrong formula moves the output by orders of magnitude more.
    """
    rng = np.random.default_rng(seed)
    eps = np.finfo(np.float64).eps
    ref = [np.asarray(o, dtype=np.float64) for o in _as_tuple(fn(*arrays))]
    worst = [0.0] * len(ref)
    for _ in range(trials):
        pert = [a * (1 + ulps * eps * rng.standard_normal(a.shape)) for a in arrays]
        for i, o in enumerate(_as_tuple(fn(*pert))):
            worst[i] = max(worst[i], float(np.abs(np.asarray(o, dtype=np.float64) - ref[i]).max()))
    return [factor * max(w, 64 * eps * float(np.abs(r).max())) for w, r in zip(worst, ref)]


def assert_torch_matches_numpy(method, lr, msi, ctx) -> None:
    """``method`` on float64 torch CPU tensors gives a float64 tensor equal to its NumPy output within
    the problem's own roundoff response (:func:`roundoff_atol`), which must be small enough for the
    comparison to mean something."""
    import torch

    lr, msi = np.asarray(lr, dtype=np.float64), np.asarray(msi, dtype=np.float64)
    ref = method(lr, msi, ctx).hr
    (tol,) = roundoff_atol(lambda x, y: method(x, y, ctx).hr, lr, msi)
    assert tol < 1e-6, f"roundoff response {tol:.3g}: the comparison would be vacuous"
    out = method(torch.as_tensor(lr), torch.as_tensor(msi), ctx).hr
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64
    np.testing.assert_allclose(out.numpy(), ref, rtol=0, atol=tol)
