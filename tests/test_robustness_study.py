"""The committed flagship study file reports/studies/robustness.toml: it loads, validates and expands
to the one-factor-at-a-time design its header describes (needs the real-data folder)."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from hsibench.methods.registry import get_method, list_methods
from hsibench.study import load_study

STUDY = Path(__file__).resolve().parents[1] / "reports" / "studies" / "robustness.toml"
BASE = (8, "gauss_fwhm", None)  # scale, kernel, SNR (None: no noise)
SCALES = (4, 8, 16)
KERNELS = ("gauss_fwhm", "gauss_sigma0.5", "box", "aniso_gauss(3.4,1.2,30)", "motion(8,30)")
SNRS = (None, 40.0, 30.0, 20.0)


@pytest.fixture(scope="module")
def study(shared_data):
    if not (shared_data / "cave").is_dir() or not (shared_data / "jasper_ridge").is_dir() \
            or not (shared_data / "pavia_centre").is_dir():
        pytest.skip("CAVE, Pavia Centre or Jasper Ridge missing from the data folder")
    return load_study(STUDY)


def test_robustness_study_is_one_factor_at_a_time_around_the_base_case(study):
    points = {(d.scale, d.kernel, d.snr_hs) for d in study.degradations}
    assert all(d.snr_hs == d.snr_ms and d.sensor == "landsat8_bgr" for d in study.degradations)
    # built by hand: the base case, then each axis's other values with the other two axes at base
    expected = {BASE}
    expected |= {(s, BASE[1], BASE[2]) for s in SCALES}
    expected |= {(BASE[0], k, BASE[2]) for k in KERNELS}
    expected |= {(BASE[0], BASE[1], n) for n in SNRS}
    assert points == expected and len(study.degradations) == 1 + 2 + 4 + 3
    assert (study.degradations[0].scale, study.degradations[0].kernel, study.degradations[0].snr_hs) == BASE
    for p in points:  # every case differs from the base in at most one axis
        assert sum(a != b for a, b in zip(p, BASE)) <= 1


def test_robustness_study_runs_every_method_oracle_and_blind_with_the_nets_small(study):
    names = [m.name for m in study.methods]
    assert sorted(names) == sorted(list_methods()) and len(names) == len(set(names)) == 12
    for m in study.methods:
        assert m.modes == ("oracle", "blind")
        assert m.params == {}
        assert m.preset == ("small" if get_method(m.name).family == "deep" else "default")
    assert study.seeds == [0, 1, 2] or tuple(study.seeds) == (0, 1, 2)
    assert len(study.scenes) == 3 and study.scenes[0].startswith("data:cave/balloons_ms.mat")


def test_robustness_study_job_count_matches_its_header(study):
    jobs = study.jobs()
    header = STUDY.read_text().splitlines()
    # scenes x degradations x seeds x methods x modes
    assert len(jobs) == 3 * 10 * 3 * 12 * 2 == 2160
    assert any("2160 jobs" in line for line in header if line.startswith("#"))
    per_method = Counter(j.method.name for j in jobs)
    assert set(per_method.values()) == {3 * 10 * 3 * 2}
    assert len({j.job_id for j in jobs}) == len(jobs)


def test_reproduction_check_file_is_the_flagships_base_case_on_one_scene(study):
    """reports/robustness/check_base.toml (the reproduction check in PLAN.md) must expand to jobs of
    the flagship itself: the same ids, so its rows can be compared with the committed ones."""
    check = load_study(STUDY.parents[1] / "robustness" / "check_base.toml")
    flagship = {j.job_id: j for j in study.jobs()}
    jobs = check.jobs()
    assert len(jobs) == 12 * 2 and all(j.job_id in flagship for j in jobs)
    assert {(d.scale, d.kernel, d.snr_hs) for d in check.degradations} == {BASE}
