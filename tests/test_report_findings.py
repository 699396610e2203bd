"""The report's "What it shows" sentences on constructed results tables with known answers (SciPy's
bootstrap as the reference for the intervals), and the section in a report written from a store."""
import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from hsibench.report import make_report
from hsibench.report.findings import findings, findings_section
from hsibench.report.stats import rank_flips
from hsibench.study.store import ResultStore

SNRS = (20.0, 25.0, 30.0, 35.0)
SCENES = ("a", "b", "c")


def table(values: dict, snrs=SNRS, scenes=SCENES, modes=("blind",), family=None, runtime=None, twin_snr=False):
    """Results rows: ``values[label](mode, scene_index, snr) -> psnr`` on modes × scenes × SNRs (seed 0, ×4, box).

    ``runtime[label](scene_index)`` gives the wall time (none: no ``runtime_s`` column); ``twin_snr``
    varies the HrMSI SNR with the LrHSI SNR (else it stays at 40 dB)."""
    rows = []
    for label, f in values.items():
        for mode, (i, scene), snr in itertools.product(modes, enumerate(scenes), snrs):
            row = {"status": "ok", "label": label, "mode": mode, "family": (family or {}).get(label, "classical"),
                   "scene": scene, "seed": 0, "scale": 4, "kernel": "box", "snr_hs": snr,
                   "snr_ms": snr if twin_snr else 40.0, "psnr": f(mode, i, snr)}
            if runtime is not None:
                row["runtime_s"] = runtime[label](i)
            rows.append(row)
    return pd.DataFrame(rows)


def bca(x) -> tuple[float, float]:
    """SciPy's BCa 95 % interval of the mean with the report's seed and resamples."""
    ci = stats.bootstrap((np.asarray(x, float),), np.mean, n_resamples=9999, method="BCa",
                         rng=np.random.default_rng(0)).confidence_interval
    return ci.low, ci.high


def lines_with(lines, text):
    return [s for s in lines if text in s]


def test_a_two_db_lead_on_every_case_is_real():
    df = table({"a": lambda m, i, s: 32.0 + i + s / 8, "b": lambda m, i, s: 30.0 + i + s / 8})
    out = findings(df)
    first = out[0]
    a = df.loc[df["label"] == "a", "psnr"]
    lo, hi = bca(a)
    assert first.startswith(f"`blind`: **a** has the best mean PSNR, {a.mean():.2f} dB [{lo:.2f}, {hi:.2f}] over 12 cases")
    assert "a leads b by 2.00 dB [2.00, 2.00] on the 12 cases both ran; a better on 12 of 12." in first


def test_a_small_lead_whose_ci_spans_zero_is_a_tie():
    d = np.array([0.5, -0.25, 1.125, -0.875, -0.375, 0.125, 0.75, -1.5, -0.0625, 0.625, 0.1875, 0.5])  # exact in binary
    assert d.mean() > 0
    df = table({"a": lambda m, i, s: 30.0 + i,
                "b": lambda m, i, s: 30.0 + i + d[i * 4 + SNRS.index(s)]})
    first = findings(df)[0]
    lo, hi = bca(d)  # b − a, b being the better mean
    assert lo < 0 < hi
    assert "**b** has the best mean PSNR" in first
    assert (f"b and a are indistinguishable: +{d.mean():.2f} dB [{lo:.2f}, {hi:.2f}] (CI spans 0) on the 12 cases "
            f"both ran; b better on {int((d > 0).sum())} of 12.") in first


def test_the_best_per_snr_level_and_the_region_where_the_winner_changes():
    # fuse: 30 + i everywhere; hysure: 1 dB better at SNR ≤ 25 dB, 1.5 dB worse above -> fuse best overall
    df = table({"fuse": lambda m, i, s: 30.0 + i, "hysure": lambda m, i, s: (31.0 if s <= 25 else 28.5) + i})
    out = findings(df)
    assert "**fuse** has the best mean PSNR" in out[0]
    axis = lines_with(out, "by LrHSI SNR")
    assert axis == ["`blind`, by LrHSI SNR, best per level: 20 dB–25 dB: hysure; 30 dB–35 dB: fuse; at LrHSI SNR ≤ 25 dB, "
                    "hysure leads fuse by 1.00 dB [1.00, 1.00] on the 6 cases both ran; hysure better on 6 of 6."]
    # the same region as the report's rank flips
    assert rank_flips(df)["statement"].tolist() == ["hysure beats fuse at LrHSI SNR ≤ 25 dB"]


def test_a_crossing_in_the_middle_and_axes_varied_together_are_reported_once():
    # hysure wins only at 30 dB: a region of one level; both SNRs move together -> one sentence
    df = table({"fuse": lambda m, i, s: 30.0 + i, "hysure": lambda m, i, s: (30.5 if s == 30 else 29.0) + i},
               twin_snr=True)
    out = findings(df)
    axis = lines_with(out, "`, by ")
    assert len(axis) == 2 and axis[1] == "`blind`, by scene: fuse is best at every level (a, b, c)."
    assert axis[0].startswith("`blind`, by LrHSI SNR (varied with HrMSI SNR), best per level: 20 dB–25 dB: fuse; "
                              "30 dB: hysure; 35 dB: fuse; at LrHSI SNR = 30 dB, hysure leads fuse by 0.50 dB")


def test_a_single_degradation_gives_no_axis_sentence_and_a_constant_winner_says_so():
    one = table({"a": lambda m, i, s: 31.0 + i, "b": lambda m, i, s: 30.0 + i}, snrs=(30.0,), scenes=("x",))
    assert not lines_with(findings(one), "`, by ")
    grid = table({"a": lambda m, i, s: 31.0 + i, "b": lambda m, i, s: 30.0 + i})
    assert lines_with(findings(grid), "`, by ") == ["`blind`, by LrHSI SNR: a is best at every level (20 dB, 25 dB, 30 dB, 35 dB).",
                                                  "`blind`, by scene: a is best at every level (a, b, c)."]


def test_the_best_method_per_scene_and_its_paired_lead_there():
    # fuse best overall (+1 dB on scenes a and b); hysure better by 0.5 dB on every case of scene c
    df = table({"fuse": lambda m, i, s: 30.0 + s / 10, "hysure": lambda m, i, s: 30.0 + s / 10 + (0.5 if i == 2 else -1.0)})
    out = findings(df)
    assert "**fuse** has the best mean PSNR" in out[0]
    assert lines_with(out, "by scene") == ["`blind`, by scene, best per level: a, b: fuse; c: hysure; at scene = c, hysure "
                                           "leads fuse by 0.50 dB [0.50, 0.50] on the 4 cases both ran; hysure better on 4 of 4."]
    # the table's own column when the report's display name is there
    named = df.assign(scene_name=df["scene"].map({"a": "cave", "b": "pavia", "c": "jasper"}))
    assert lines_with(findings(named), "by scene")[0].startswith("`blind`, by scene, best per level: cave: fuse; jasper: hysure; pavia: fuse;")


def test_deep_against_classical_per_mode():
    fam = {"fuse": "classical", "gsa": "classical", "net": "deep", "net2": "deep", "upsample": "floor"}
    base = {"fuse": 33.0, "gsa": 31.0, "net": 31.5, "net2": 30.0, "upsample": 40.0}  # the floor is no classical method
    df = table({k: (lambda m, i, s, k=k, v=v: v + i + (2.0 if m == "oracle" and k == "net" else 0.0)) for k, v in base.items()},
               modes=("oracle", "blind"), family=fam)
    out = lines_with(findings(df), "best deep method")
    assert out == [
        "`oracle`: best deep method net against best classical method fuse: +0.50 dB [0.50, 0.50] on the 12 cases both "
        "ran (deep − classical): deep is better.",
        "`blind`: best deep method net against best classical method fuse: -1.50 dB [-1.50, -1.50] on the 12 cases both "
        "ran (deep − classical): classical is better."]
    classical_only = df[df["family"] != "deep"]
    assert not lines_with(findings(classical_only), "deep")


def test_the_fastest_method_within_the_tolerance_of_the_best():
    base = {"best": 35.0, "close": 34.25, "closer": 34.5, "far": 20.0}
    secs = {"best": [100.0, 120.0, 80.0], "close": [2.0, 1.0, 50.0], "closer": [10.0, 12.0, 11.0], "far": [0.01] * 3}
    df = table({k: (lambda m, i, s, v=v: v + i) for k, v in base.items()},
               runtime={k: (lambda i, v=v: v[i]) for k, v in secs.items()})
    cost = lines_with(findings(df), "fastest")
    # medians: close 2 s (the 50 s outlier does not count), best 100 s; far is fast but 15 dB off
    assert cost == ["`blind`: **close** is the fastest method within 1 dB of the best mean: close − best (-0.75 dB "
                    "[-0.75, -0.75] on the 12 cases both ran), a median 2 s per job against 100 s (50× faster)."]
    strict = lines_with(findings(df, tolerance=0.5), "fastest")
    assert strict[0].startswith("`blind`: **closer** is the fastest method within 0.5 dB")
    alone = lines_with(findings(df, tolerance=0.1), "comes within")
    assert alone == ["`blind`: no other method comes within 0.1 dB of best's mean; best takes a median 100 s per job."]
    assert not lines_with(findings(df.drop(columns="runtime_s")), "median")


def test_knowledge_loss_needs_two_modes_and_leaves_the_floor_out():
    loss = {"a": 3.0, "b": 0.5, "upsample": 0.0}
    fam = {"upsample": "floor"}
    df = table({k: (lambda m, i, s, v=v: 30.0 + i - (v if m == "blind" else 0.0)) for k, v in loss.items()},
               modes=("oracle", "blind"), family=fam)
    out = lines_with(findings(df), "against `oracle`")
    assert out == ["`blind` against `oracle` (same method, same cases): a loses the most, -3.00 dB [-3.00, -3.00] over "
                   "12 cases; b the least, -0.50 dB [-0.50, -0.50] over 12 cases."]
    assert not lines_with(findings(df[df["mode"] == "blind"]), "oracle")
    assert not lines_with(findings(df[df["mode"] == "oracle"]), "against `oracle`")


def test_lower_is_better_metric_and_failed_rows():
    df = table({"a": lambda m, i, s: 2.0 + i, "b": lambda m, i, s: 3.0 + i}).rename(columns={"psnr": "sam"})
    failed = pd.DataFrame([{"status": "failed", "label": "c", "mode": "blind", "scene": "a", "seed": 0, "scale": 4,
                            "kernel": "box", "snr_hs": 20.0, "snr_ms": 40.0, "sam": math.nan}])
    out = findings(pd.concat([df, failed], ignore_index=True), "sam")
    assert out[0].startswith("`blind`: **a** has the best mean SAM")
    assert "a leads b by 1.00° [1.00, 1.00] on the 12 cases both ran; a better on 12 of 12." in out[0]
    assert not lines_with(out, "fastest") and not lines_with(out, " c ")  # no tolerance for SAM; c never finished


def test_bad_input_is_a_clear_error():
    df = table({"a": lambda m, i, s: 30.0})
    with pytest.raises(ValueError, match="no 'ssim' column"):
        findings(df, "ssim")
    with pytest.raises(ValueError, match="tolerance"):
        findings(df, tolerance=-1.0)
    assert findings(df.assign(status="failed")) == [] and findings_section(df.assign(status="failed")) == []
    assert findings(df)[0].endswith("over 12 cases; it is the only method of this mode.")


def test_make_report_writes_the_section_after_the_overview(tmp_path: Path):
    store = ResultStore(tmp_path / "res").init()
    for (label, fam, base, rt), scene, snr, seed in itertools.product(
            (("fuse", "classical", 35.0, 4.0), ("gsa", "classical", 33.0, 0.5), ("upsample", "floor", 25.0, 0.01)),
            ("a", "b"), (20.0, 30.0), (0, 1)):
        deg = {"scale": 4, "kernel": "box", "sensor": "landsat8_bgr", "snr_hs": snr, "snr_ms": snr}
        store.write({"job_id": f"{label}-{scene}-{snr:g}-{seed}", "study": "toy", "scene": scene, "seed": seed,
                     "method": label, "label": label, "mode": "blind", "family": fam, "status": "ok", "runtime_s": rt,
                     **deg, "config": {"degradation": deg}, "metrics": {"psnr": base + seed + snr / 10, "sam": 3.0}})
    md = make_report(tmp_path / "res", tmp_path / "rep")
    text = md.read_text()
    start = text.index("## What it shows")
    assert text.index("## Overview") < start < text.index("## Is A better than B?")
    section = text[start:text.index("\n## ", start + 1)]
    lo, hi = bca([35.0 + seed + snr / 10 for _, snr, seed in itertools.product("ab", (20.0, 30.0), (0, 1))])
    assert (f"- `blind`: **fuse** has the best mean PSNR, 38.00 dB [{lo:.2f}, {hi:.2f}] over 8 cases; fuse leads gsa by "
            "2.00 dB [2.00, 2.00] on the 8 cases both ran; fuse better on 8 of 8.") in section
    assert "- `blind`: no other method comes within 1 dB of fuse's mean; fuse takes a median 4 s per job." in section
    page = (tmp_path / "rep" / "report.html").read_text()
    assert "<h2>What it shows</h2>" in page and "<b>fuse</b> has the best mean PSNR" in page


def test_a_single_case_per_level_has_no_interval_and_names_the_better_method():
    df = table({"fuse": lambda m, i, s: 30.0, "hysure": lambda m, i, s: 31.0 if s <= 25 else 28.5}, scenes=("a",))
    axis = lines_with(findings(df), "`, by ")
    assert axis == ["`blind`, by LrHSI SNR, best per level: 20 dB–25 dB: hysure; 30 dB–35 dB: fuse; at LrHSI SNR ≤ 25 dB, "
                    "hysure leads fuse by 1.00 dB [1.00, 1.00] on the 2 cases both ran; hysure better on 2 of 2."]
    one = findings(table({"a": lambda m, i, s: 30.25, "b": lambda m, i, s: 30.0}, snrs=(30.0,), scenes=("x",)))
    assert one == ["`blind`: **a** has the best mean PSNR, 30.25 dB over 1 case; a leads b by 0.25 dB on their single "
                   "common case (no interval)."]


def test_a_loss_that_rounds_to_zero_is_printed_without_a_sign():
    df = table({"a": lambda m, i, s: 30.0 + i - (2.0 if m == "blind" else 0.0),
                "b": lambda m, i, s: 30.0 + i - (1e-9 if m == "blind" else 0.0)}, modes=("oracle", "blind"))
    out = lines_with(findings(df), "against `oracle`")
    assert out[0].endswith("; b the least, 0.00 dB [0.00, 0.00] over 12 cases.")


def test_a_mode_with_one_method_gets_no_axis_or_cost_sentence():
    df = table({"a": lambda m, i, s: 30.0 + i - (2.0 if m == "blind" else 0.0), "b": lambda m, i, s: 20.0 + i},
               modes=("oracle", "blind"), runtime={"a": lambda i: 1.0, "b": lambda i: 0.5})
    df = df[(df["mode"] == "blind") | (df["label"] == "a")]
    out = findings(df)
    oracle = lines_with(out, "`oracle`")
    lo, hi = bca(df.loc[df["mode"] == "oracle", "psnr"])
    assert oracle == [f"`oracle`: **a** has the best mean PSNR, 31.00 dB [{lo:.2f}, {hi:.2f}] over 12 cases; it is the only "
                      "method of this mode.",
                      "`blind` against `oracle` (same method, same cases): a loses -2.00 dB [-2.00, -2.00] over 12 cases."]
    assert lines_with(out, "`blind`, by LrHSI SNR: a is best at every level")
    assert lines_with(out, "`blind`: no other method comes within 1 dB of a's mean")
