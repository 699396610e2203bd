"""The training engine: schedules, optimiser groups, budget, plateau stop, guards, seeding, device."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hsibench.methods import MethodError
from hsibench.nets.engine import (
    ENGINE_DEFAULTS,
    TrainConfig,
    lr_factor,
    make_optimizer,
    resolve_device,
    seeded_run,
    train,
)

torch.set_num_threads(1)


def _quadratic(target=3.0, n=4):
    w = torch.nn.Parameter(torch.zeros(n))
    return w, (lambda it: {"fit": ((w - target) ** 2).sum()})


def test_lambda_schedule_is_constant_then_linear_to_zero():
    cfg = TrainConfig(iterations=100, schedule="lambda", decay_start=0.2)
    f = [lr_factor(cfg, i) for i in range(100)]
    assert f[:20] == [1.0] * 20
    assert all(a > b for a, b in zip(f[20:], f[21:]))
    assert 0 < f[-1] < 0.02
    # an absolute start (>= 1) is an iteration index
    cfg2 = TrainConfig(iterations=100, schedule="lambda", decay_start=50)
    assert lr_factor(cfg2, 49) == 1.0 and lr_factor(cfg2, 50) < 1.0


def test_cosine_and_step_schedules():
    cfg = TrainConfig(iterations=100, schedule="cosine", warmup=10)
    assert lr_factor(cfg, 0) == pytest.approx(0.1)
    assert lr_factor(cfg, 10) == pytest.approx(1.0)
    assert lr_factor(cfg, 99) < 0.01
    cfg = TrainConfig(iterations=100, schedule="step", step_size=30, step_gamma=0.1)
    assert lr_factor(cfg, 29) == 1.0 and lr_factor(cfg, 30) == pytest.approx(0.1) and lr_factor(cfg, 95) == pytest.approx(1e-3)
    assert lr_factor(TrainConfig(schedule="constant"), 500) == 1.0


def test_config_from_params_and_budget_override():
    params = dict(ENGINE_DEFAULTS, iterations=500, lr=2e-3, stage1_lr=1e-4, width=3)
    cfg = TrainConfig.from_params(params, iterations=7)
    assert cfg.iterations == 7 and cfg.lr == 2e-3
    assert TrainConfig.from_params(params, prefix="stage1_").lr == 1e-4
    with pytest.raises(MethodError):
        TrainConfig(optimizer="lbfgs")
    with pytest.raises(MethodError):
        TrainConfig(schedule="exp")


def test_per_group_lr_multipliers_and_frozen_groups():
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    frozen = torch.nn.Parameter(torch.zeros(2), requires_grad=False)
    opt = make_optimizer({"a": [a], "b": [b], "f": [frozen]}, TrainConfig(lr=1e-2, lr_mult={"b": 0.2}))
    lrs = {g["name"]: g["lr"] for g in opt.param_groups}
    assert lrs == {"a": 1e-2, "b": pytest.approx(2e-3)}
    with pytest.raises(MethodError, match="unknown parameter groups"):
        make_optimizer({"a": [a]}, TrainConfig(lr_mult={"typo": 0.5}))
    for name in ("adamw", "sgd", "rmsprop"):
        make_optimizer({"a": [a]}, TrainConfig(optimizer=name))


def test_train_converges_and_records_curves():
    w, obj = _quadratic()
    res = train(obj, {"w": [w]}, TrainConfig(iterations=300, lr=0.1, schedule="constant", log_every=10))
    assert res.iterations == 300 and res.stopped == "budget"
    assert torch.allclose(w.detach(), torch.full((4,), 3.0), atol=1e-2)
    c = res.loss_curve
    assert c["iteration"][0] == 0 and c["iteration"][-1] == 299
    assert len(c["iteration"]) == len(c["total"]) == len(c["fit"]) == len(c["lr"]) == 31
    assert c["total"][-1] < c["total"][0]
    assert res.final_losses["fit"] == pytest.approx(c["fit"][-1])


def test_projection_runs_after_every_step():
    w = torch.nn.Parameter(torch.zeros(3))
    calls = []

    def project():
        calls.append(1)
        w.clamp_(max=1.0)

    train(lambda it: {"fit": ((w - 5) ** 2).sum()}, {"w": [w]}, TrainConfig(iterations=50, lr=0.5), project=project)
    assert len(calls) == 50 and float(w.detach().max()) <= 1.0


def test_plateau_early_stop():
    w, obj = _quadratic()
    cfg = TrainConfig(iterations=5000, lr=0.1, schedule="constant", early_stop=True, plateau_window=20,
                      plateau_tol=1e-3, plateau_patience=2)
    res = train(obj, {"w": [w]}, cfg)
    assert res.stopped == "plateau" and res.iterations < 5000
    assert res.loss_curve["iteration"][-1] == res.iterations - 1
    # min_iterations holds the stop off
    w2, obj2 = _quadratic()
    cfg.min_iterations = 1000
    assert train(obj2, {"w": [w2]}, cfg).iterations >= 1000


def test_nan_guard_names_iteration_and_term():
    w = torch.nn.Parameter(torch.ones(2))

    def obj(it):
        bad = torch.tensor(float("nan")) if it == 7 else torch.tensor(0.0)
        return {"fit": (w ** 2).sum(), "trap": bad}

    with pytest.raises(MethodError, match=r"iteration 7.*trap"):
        train(obj, {"w": [w]}, TrainConfig(iterations=20, lr=1e-3))


def test_divergence_guard():
    w = torch.nn.Parameter(torch.ones(1))
    # gradient ascent in disguise: the loss grows without bound
    obj = lambda it: {"blowup": torch.exp(w.abs() * 5).sum()}  # noqa: E731
    with pytest.raises(MethodError, match="diverged|non-finite"):
        train(obj, {"w": [w]}, TrainConfig(iterations=2000, lr=10.0, optimizer="sgd", momentum=0.0,
                                            schedule="constant", divergence_factor=1e3))


def test_seeded_run_is_reproducible_and_restores_state():
    before = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled())
    outs = []
    for _ in range(2):
        with seeded_run(123) as n:
            assert n == torch.get_num_threads() == before[0]
            assert torch.are_deterministic_algorithms_enabled()
            outs.append((torch.randn(5), np.random.rand(3)))
    assert torch.equal(outs[0][0], outs[1][0]) and np.array_equal(outs[0][1], outs[1][1])
    assert (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()) == before
    with seeded_run(0, threads=10_000) as n:  # never raises the caller's thread count
        assert n == before[0]


def test_device_selection():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device(None).type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(MethodError, match="CUDA is not available"):
            resolve_device("cuda")
    with pytest.raises(MethodError):
        resolve_device("tpu")


def test_progress_bar_runs(capsys):
    w, obj = _quadratic()
    res = train(obj, {"w": [w]}, TrainConfig(iterations=30, lr=0.1), progress=True, desc="unit")
    assert res.iterations == 30 and math.isfinite(res.final_losses["total"])


@pytest.mark.parametrize("name", ["hyconet", "cucanet", "eu2adl", "ual", "cycfusion"])
def test_every_net_preset_builds_a_train_config(name):
    from hsibench.methods import create_method, get_method

    for preset in get_method(name).presets:
        m = create_method(name, preset)
        cfg = TrainConfig.from_params(m.params)
        assert cfg.iterations == m.params["iterations"] and cfg.lr == m.params["lr"]
        assert cfg.step_gamma == ENGINE_DEFAULTS["step_gamma"]  # no net key shadows an engine key


# --------------------------------------------------------------------------- input conversion
class _DLPackOnly:
    """Exports another array's DLPack capsule and nothing else (as CuPy/JAX arrays do, but here
    over host memory): neither a NumPy array nor a torch tensor."""

    def __init__(self, base, device=None):
        self._base, self._device = base, device

    def __dlpack__(self, *args, **kwargs):
        return self._base.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self._device if self._device is not None else self._base.__dlpack_device__()


def test_to_tensor_numpy_unchanged_and_a_copy():
    from hsibench.nets.engine import to_tensor

    a = np.random.default_rng(0).random((2, 3, 4))  # float64: rounded to float32 on the way
    t = to_tensor(a, torch.device("cpu"), dtype=torch.float64)
    assert t.dtype == torch.float64
    np.testing.assert_array_equal(t.numpy(), a.astype(np.float32).astype(np.float64))
    t[0, 0, 0] = -1.0
    assert a[0, 0, 0] != -1.0


@pytest.mark.parametrize("source", ["torch", "numpy", "array_api_strict"])
def test_to_tensor_imports_dlpack_without_the_host_path(source, monkeypatch):
    """A DLPack exporter goes through torch.from_dlpack (the engine's to_numpy is never called),
    with the NumPy path's values and memory of its own."""
    import hsibench.nets.engine
    from hsibench.nets.engine import to_tensor

    ref = np.random.default_rng(1).random((3, 5)) + 0.1
    if source == "torch":
        base = torch.from_numpy(ref.copy())
    elif source == "numpy":
        base = ref.copy()
    else:
        xps = pytest.importorskip("array_api_strict")
        base = xps.asarray(ref.copy())
    a = _DLPackOnly(base)
    monkeypatch.setattr(hsibench.nets.engine, "to_numpy", lambda x: pytest.fail("host path taken"))
    for dtype in (torch.float32, torch.float64):
        t = to_tensor(a, torch.device("cpu"), dtype=dtype)
        assert t.dtype == dtype
        np.testing.assert_array_equal(t.numpy(), ref.astype(np.float32).astype(t.numpy().dtype))
        t[0, 0] = -1.0
    assert float(np.asarray(torch.from_dlpack(base))[0, 0]) == ref[0, 0]  # the input is untouched


def test_to_tensor_dlpack_device_routing():
    """Which DLPack devices are imported directly: the CPU always, CUDA/ROCm only with a CUDA torch;
    NumPy arrays and torch tensors keep their own paths; a Metal or unreadable device does not."""
    from hsibench.nets.engine import _dlpack_importable

    base = torch.zeros(2, dtype=torch.float64)
    assert _dlpack_importable(_DLPackOnly(base))
    for kind in (2, 10, 13):  # CUDA, ROCm, CUDA managed
        assert _dlpack_importable(_DLPackOnly(base, (kind, 0))) == torch.cuda.is_available()
    assert not _dlpack_importable(_DLPackOnly(base, (8, 0)))  # Metal
    assert not _dlpack_importable(_DLPackOnly(base, ("cuda", 0)))  # not a (type, id) pair of ints
    assert not _dlpack_importable(np.zeros(2)) and not _dlpack_importable(base)
    assert not _dlpack_importable([1.0, 2.0])


def test_output_notes_take_the_lrhsi_from_any_namespace():
    """The saturation / flat-output notes read the LrHSI the method was given, which may be a torch
    tensor (here attached to autograd, which np.asarray refuses, as it refuses device arrays)."""
    from hsibench.nets.engine import flat_output_note, saturation_note

    dark = np.zeros((2, 2, 2))
    assert saturation_note(np.ones((2, 4, 4), np.float32), torch.zeros(2, 2, 2, requires_grad=True)) == \
        saturation_note(np.ones((2, 4, 4), np.float32), dark)
    assert saturation_note(np.ones((2, 4, 4), np.float32), torch.zeros(2, 2, 2)).startswith("2 of 2 output bands")
    textured = np.random.default_rng(0).random((3, 2, 2))
    one_spectrum = np.broadcast_to(np.array([0.2, 0.3, 0.4])[:, None, None], (3, 4, 4))
    note = flat_output_note(one_spectrum, torch.from_numpy(textured).requires_grad_(True))
    assert note is not None and note == flat_output_note(one_spectrum, textured)
    assert flat_output_note(one_spectrum, torch.ones(3, 2, 2)) is None  # a flat input may give a flat output
