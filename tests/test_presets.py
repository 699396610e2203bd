"""Presets say what they are: ``paper`` is the paper, ``fast`` only shortens the schedule, anything
else is a named preset with its own deviations; every result row carries the deviations that applied."""
from __future__ import annotations

import numpy as np
import pytest

from hsibench.methods import create_method, get_method, list_methods
from hsibench.study import ResultStore, run_study, study_from_dict

NETS = ["hyconet", "cucanet", "eu2adl", "ual", "cycfusion"]
#: What a schedule compression may touch: budgets, warm-up/step sizes, the plateau stop.
SCHEDULE_KEYS = {"iterations", "stage1_iterations", "pretrain_steps", "pretrain_step_size", "warmup",
                 "early_stop", "plateau_window", "plateau_tol", "plateau_patience", "min_iterations"}


def test_every_net_is_registered():
    assert set(NETS) <= set(list_methods("deep"))


@pytest.mark.parametrize("name", NETS)
def test_paper_is_default_and_fast_only_compresses_the_schedule(name):
    cls = get_method(name)
    paper = create_method(name, "paper").params
    assert cls.presets["paper"] == {} and create_method(name).params == paper  # unlabelled rows are the paper
    assert paper["early_stop"] is False
    fast = cls.presets["fast"]
    assert set(fast) <= SCHEDULE_KEYS, f"{name}[fast] changes {sorted(set(fast) - SCHEDULE_KEYS)}"
    assert fast["iterations"] < paper["iterations"] and fast["early_stop"] is True
    for k in ("stage1_iterations", "pretrain_steps"):
        if k in fast:
            assert fast[k] < paper[k]
    if "warmup" in fast:  # the warm-up keeps its share of the budget
        assert fast["warmup"] / fast["iterations"] == pytest.approx(paper["warmup"] / paper["iterations"])
    if "pretrain_step_size" in fast:  # as many lr steps over the shortened pre-training
        assert fast["pretrain_steps"] / fast["pretrain_step_size"] == pytest.approx(
            paper["pretrain_steps"] / paper["pretrain_step_size"])
    # lr values, multipliers and schedule kinds are untouched
    f = create_method(name, "fast").params
    for k in ("lr", "lr_mult", "schedule", "decay_start", "stage1_lr", "pretrain_lr"):
        if k in paper:
            assert f[k] == paper[k]


@pytest.mark.parametrize("name", NETS)
def test_small_is_a_separately_declared_preset(name):
    cls = get_method(name)
    small = cls.presets["small"]
    assert set(small) - SCHEDULE_KEYS, "small should be more than a schedule change"
    assert set(cls.preset_deviations) == {"fast", "small"}
    devs = create_method(name, "small").applied_deviations
    assert all(d in devs for d in cls.deviations) and all(d in devs for d in cls.preset_deviations["small"])
    assert not any(d in devs for d in cls.preset_deviations["fast"])
    paper = create_method(name, "paper").applied_deviations
    assert not any(d in paper for d in cls.preset_deviations["small"] + cls.preset_deviations["fast"])


def test_overrides_are_deviations():
    m = create_method("hyconet", "small", endmembers=12, early_stop=True)  # early_stop: same as the preset
    devs = m.applied_deviations
    assert devs[-1] == "parameter override: endmembers=12 (preset 'small': 30)"
    assert not any("early_stop" in d for d in devs)
    assert create_method("upsample").applied_deviations == []


def test_rows_carry_the_deviations_that_applied(tmp_path):
    st = study_from_dict({
        "name": "dev", "scenes": ["synthetic:32x31:0"], "seeds": [0], "iterations": 3, "save_outputs": "none",
        "scene_options": {"crop": 16},
        "grid": {"scale": 4, "kernel": "gauss_sigma0.5", "sensor": "landsat8_bgr"},
        "methods": [{"name": "upsample", "modes": ["oracle"]},
                    {"name": "hyconet", "preset": "small", "modes": ["oracle"], "params": {"endmembers": 5}}],
    })
    s = run_study(st, tmp_path / "r", progress=False)
    assert s.ok == 2, s.failures
    rows = {r["method"]: r for r in ResultStore(tmp_path / "r").rows()}
    assert rows["upsample"]["deviations"] == []
    d = rows["hyconet"]["deviations"]
    cls = get_method("hyconet")
    assert all(x in d for x in cls.deviations + cls.preset_deviations["small"])
    assert any(x.startswith("parameter override: endmembers=5") for x in d)
    assert any(x.startswith("budget override: 3 iterations") for x in d)
    assert rows["hyconet"]["info"]["knowledge"]["psf_init"] == "true (frozen)"  # what the PSF started from
    # the crop option kept the central 16x16 window
    assert rows["upsample"]["scene_meta"]["shape"][1:] == [16, 16]
