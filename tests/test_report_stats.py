"""Report statistics on constructed results tables with known answers (and SciPy as the reference)."""
import itertools
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from hsibench.report.stats import (
    bootstrap_mean_ci, describe_region, estimation_leaderboard, floor_gain, format_snr, knowledge_gap, method_means,
    paired_comparison, pareto_front, rank_flips, rank_stability,
)


def table(values: dict, snrs=(20.0, 25.0, 30.0, 35.0), scenes=("a", "b", "c"), mode="blind", family=None):
    """A results table: ``values[label](scene_index, snr) -> psnr`` on scenes × SNRs (seed 0, ×4, box)."""
    rows = []
    for label, f in values.items():
        for (i, scene), snr in itertools.product(enumerate(scenes), snrs):
            rows.append({"status": "ok", "label": label, "mode": mode, "family": (family or {}).get(label, "classical"),
                         "scene": scene, "seed": 0, "scale": 4, "kernel": "box", "snr_hs": snr, "snr_ms": snr,
                         "psnr": f(i, snr), "runtime_s": 1.0})
    return pd.DataFrame(rows)


def test_bootstrap_ci_collapses_on_constant_and_is_seeded():
    assert bootstrap_mean_ci([1.0] * 8) == (1.0, 1.0, 1.0, 8, "")
    rng = np.random.default_rng(3)
    x = rng.normal(2.0, 1.0, 40)
    a, b = bootstrap_mean_ci(x, seed=5), bootstrap_mean_ci(x, seed=5)
    assert a == b
    assert a.low < x.mean() < a.high
    ref = stats.bootstrap((x,), np.mean, n_resamples=9999, method="BCa", rng=np.random.default_rng(5))
    assert (a.low, a.high) == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high))
    # a 95 % CI of the mean of N(2, 1) with n = 40 is about ± 1.96 / sqrt(40)
    assert a.high - a.low == pytest.approx(2 * 1.96 / math.sqrt(40), rel=0.3)


def test_bootstrap_ci_n1_and_n2_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        one = bootstrap_mean_ci([3.0])
        two = bootstrap_mean_ci([1.0, 2.0])
    assert one.mean == 3.0 and math.isnan(one.low) and math.isnan(one.high) and "n=1" in one.note
    assert 1.0 <= two.low <= two.high <= 2.0
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_mean_ci([1.0, 2.0], confidence=95)


def test_paired_comparison_plus_one_db_everywhere():
    df = table({"best": lambda i, s: 30 + i + s / 10, "worse": lambda i, s: 29 + i + s / 10})
    t = paired_comparison(df)
    assert len(t) == 1
    r = t.iloc[0]
    assert (r["label"], r["reference"], r["n"]) == ("worse", "best", 12)
    assert r["mean_diff"] == pytest.approx(-1.0)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((-1.0, -1.0))
    assert (r["wins"], r["ties"], r["losses"]) == (0, 0, 12)
    assert r["wilcoxon_p"] == pytest.approx(stats.wilcoxon(np.full(12, -1.0)).pvalue)


def test_paired_comparison_wilcoxon_matches_scipy_and_needs_six_cases():
    d = np.array([0.5, -0.25, 1.125, 0.875, -0.375, 0.125, 0.75, 1.5, -0.0625, 0.625, 0.1875, 1.25])  # exact in binary
    df = table({"ref": lambda i, s: 30.0 + i, "other": lambda i, s: 30.0 + i + d[i * 4 + [20, 25, 30, 35].index(s)]})
    t = paired_comparison(df, reference="ref").set_index("label")
    assert t.loc["other", "wilcoxon_p"] == pytest.approx(stats.wilcoxon(d).pvalue)
    assert t.loc["other", "mean_diff"] == pytest.approx(d.mean())
    assert t.loc["other", "wins"] == int((d > 0).sum()) and t.loc["other", "losses"] == int((d < 0).sum())
    lo, hi = t.loc["other", ["ci_low", "ci_high"]]
    ref = stats.bootstrap((d,), np.mean, n_resamples=9999, method="BCa", rng=np.random.default_rng(0)).confidence_interval
    assert (lo, hi) == pytest.approx((ref.low, ref.high))
    small = paired_comparison(df[df["scene"] == "a"], reference="ref")  # 4 cases
    assert math.isnan(small.iloc[0]["wilcoxon_p"]) and "no test" in small.iloc[0]["note"]


def test_lower_is_better_metric_picks_the_smallest_as_reference():
    df = table({"a": lambda i, s: 3.0, "b": lambda i, s: 2.0}).rename(columns={"psnr": "sam"})
    t = paired_comparison(df, "sam")
    assert t.iloc[0]["reference"] == "b" and t.iloc[0]["wins"] == 0 and t.iloc[0]["losses"] == 12


def test_rank_stability_reversed_ranking_is_tau_minus_one():
    # A > B > C everywhere except at SNR 20 dB, where the order is reversed (and the overall stays A > B > C).
    def f(offset):
        return lambda i, s: (30 - offset if s == 20 else 40 + 5 * offset) + i
    df = table({"A": f(2), "B": f(1), "C": f(0)})  # A: 28 at 20 dB, 50 elsewhere
    r = rank_stability(df).set_index("snr_hs")
    assert r.loc[20.0, "tau"] == pytest.approx(-1.0)
    assert r.loc[25.0, "tau"] == pytest.approx(1.0)
    assert r.loc[20.0, "best"] == "C" and r.loc[30.0, "best"] == "A"
    assert (r["methods"] == 3).all()


def test_rank_flip_detected_at_low_snr():
    # "hysure" beats "fuse" exactly at SNR <= 25 dB; fuse is better overall.
    df = table({"fuse": lambda i, s: 30 + s / 5 + i, "hysure": lambda i, s: 35.2 + i})
    flips = rank_flips(df)
    assert len(flips) == 1
    r = flips.iloc[0]
    assert (r["winner"], r["loser"], r["flips"], r["degradations"]) == ("fuse", "hysure", 2, 4)
    assert r["statement"] == "hysure beats fuse at LrHSI SNR ≤ 25 dB"
    assert r["margin"] == pytest.approx(1.2)  # at 20 dB: 35.2 against 30 + 20/5
    # flips sorted largest first: C (35.3 at 20 dB, 35.2 elsewhere) beats A (best overall: 35.5)
    # by up to 1.3 dB at 20 dB; B (35.2) beats A by up to 1.2 dB at SNR ≤ 25 dB
    df3 = table({"A": lambda i, s: 30 + s / 5 + i, "B": lambda i, s: 35.2 + i,
                 "C": lambda i, s: 35.3 - (0.1 if s > 20 else -0.0) + i})
    f3 = rank_flips(df3)
    got = [(r["loser"], r["winner"], round(r["margin"], 6)) for _, r in f3.iterrows()]
    assert got[:2] == [("C", "A", 1.3), ("B", "A", 1.2)], got
    same = table({"fuse": lambda i, s: 40, "hysure": lambda i, s: 33})
    assert rank_flips(same).empty


def test_describe_region_falls_back_to_a_list():
    u = pd.DataFrame({"scale": [2, 2, 4, 4], "kernel": ["box", "g", "box", "g"]})
    assert describe_region(u.iloc[[0, 2]], u, ["scale", "kernel"]) == "kernel = box"
    assert describe_region(u.iloc[[2, 3]], u, ["scale", "kernel"]) == "scale = 4"
    assert describe_region(u.iloc[[0, 3]], u, ["scale", "kernel"]) == "(scale 2, kernel box); (scale 4, kernel g)"


def test_pareto_front():
    assert pareto_front([30, 32, 31, 32], [1.0, 10.0, 20.0, 5.0]).tolist() == [True, False, False, True]
    assert pareto_front([3.0, 2.0], [1.0, 1.0], higher_is_better=False).tolist() == [False, True]


def test_floor_gain_uses_the_floor_of_another_mode():
    a = table({"upsample": lambda i, s: 20.0 + i, "gsa": lambda i, s: 25.0 + i}, mode="srf_support",
              family={"upsample": "floor"})
    b = table({"net": lambda i, s: 27.5 + i}, mode="estimated")
    df = pd.concat([a, b], ignore_index=True)
    g = floor_gain(df)
    assert np.allclose(g[df["label"] == "net"], 7.5)
    assert np.allclose(g[df["label"] == "gsa"], 5.0)
    assert np.allclose(g[df["label"] == "upsample"], 0.0)


def test_knowledge_gap_is_paired_per_method():
    o = table({"m": lambda i, s: 30.0 + i + s}, mode="oracle")
    b = table({"m": lambda i, s: 28.0 + i + s}, mode="blind")
    gap = knowledge_gap(pd.concat([o, b], ignore_index=True))
    assert len(gap) == 1
    r = gap.iloc[0]
    assert (r["mode"], r["n"], r["mean_diff"], r["ci_low"], r["ci_high"]) == ("blind", 12, -2.0, -2.0, -2.0)


def test_method_means_ci_and_estimation_leaderboard():
    df = table({"m": lambda i, s: float(i)})
    mm = method_means(df, "psnr")
    assert mm.iloc[0]["n"] == 12 and mm.iloc[0]["mean"] == pytest.approx(1.0)
    assert mm.iloc[0]["ci_low"] < 1.0 < mm.iloc[0]["ci_high"]
    df["psf_error"] = np.where(df["snr_hs"] < 30, 0.2, 0.1)
    lb = estimation_leaderboard(df)
    assert len(lb) == 4 and (lb["n"] == 3).all()
    assert lb.set_index("snr_hs").loc[20.0, "psf_error"] == pytest.approx(0.2)
    assert estimation_leaderboard(df.drop(columns="psf_error")).empty


def test_one_snr_format_for_every_report_surface():
    """No noise is "∞" (None, NaN or inf), a number is ``:g``; headings, panel titles, ticks, mode-gap
    cases and region descriptions all write an SNR the same way."""
    from hsibench.report.plots import _tick, degradation_text
    from hsibench.report.render import _heading
    from hsibench.report.tables import mode_gap_table

    inf = math.inf
    values = (None, math.nan, inf, np.float64(inf), 40, 40.0, np.float32(27.5), 1e3)
    assert [format_snr(v) for v in values] == ["∞", "∞", "∞", "∞", "40", "40", "27.5", "1000"]
    with pytest.raises(TypeError):
        format_snr("40")
    key = {"scale": 4, "kernel": "box", "sensor": "rgb", "snr_hs": inf, "snr_ms": 27.5, "mode": "blind"}
    assert _heading(key) == "×4, kernel `box`, sensor `rgb`, SNR LrHSI ∞ dB / HrMSI 27.5 dB, knowledge `blind`"
    assert degradation_text(key) == "×4, box, rgb, SNR hs ∞ / ms 27.5 dB"
    assert [_tick("snr_ms", v) for v in (20.0, inf)] == ["20", "∞"]
    gap = mode_gap_table(pd.DataFrame([{**key, "status": "ok", "label": "m", "family": "classical", "mode": mode, "psnr": p}
                                       for mode, p in (("oracle", 30.0), ("blind", 28.0))]))
    assert list(gap["case"]) == ["×4 box rgb SNR ∞/27.5"]
    u = pd.DataFrame({"snr_hs": [20.0, 30.0, inf]})
    assert describe_region(u.iloc[2:], u, ["snr_hs"]) == "LrHSI SNR = ∞ dB"
