"""What a results table shows, in words: which method to pick when, read from the report's statistics.

Every sentence is built from :mod:`hsibench.report.stats` (bootstrap means, paired comparisons,
regions of the degradation grid, the knowledge gap) on the one-row-per-job table of
:func:`hsibench.report.tables.load_results`; a sentence whose data is missing (one knowledge mode,
no runtime, no deep method, a single degradation) is left out.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .stats import (
    AXIS_NAMES, HIGHER_IS_BETTER, _fmt_value, degradation_columns, describe_region, knowledge_gap, method_means,
    paired_comparison,
)
from .tables import _DIGITS, format_ci, ordered_modes

__all__ = ["findings", "findings_section", "DEFAULT_TOLERANCE"]

#: Units of a metric in sentences (PSNR in dB, SAM in degrees; the others are unitless).
_UNITS = {"psnr": " dB", "sam": "°"}
#: How far below the best mean a method may be and still count as "as good" for the cost sentence.
DEFAULT_TOLERANCE = {"psnr": 1.0}
_TITLE = "What it shows"


def _unit(metric: str) -> str:
    return _UNITS.get(metric, "")


def _digits(metric: str) -> int:
    return _DIGITS.get(metric, 3)


def _value(v: float, metric: str) -> str:
    return f"{v:.{_digits(metric)}f}{_unit(metric)}"


def _ci_text(mean: float, low: float, high: float, metric: str, signed: bool = False) -> str:
    """``format_ci`` with the metric's unit after the mean (``+2.00 dB [1.50, 2.50]``)."""
    digits = _digits(metric)
    mean, low, high = (0.0 if np.isfinite(v) and round(v, digits) == 0 else v for v in (mean, low, high))  # no "-0.00"
    head, sep, tail = format_ci(mean, low, high, digits).partition(" [")
    if signed and np.isfinite(mean) and mean > 0:
        head = "+" + head
    return f"{head}{_unit(metric)}{sep}{tail}"


def _cases(n) -> str:
    return "1 case" if int(n) == 1 else f"{int(n)} cases"


def _both(n) -> str:
    return "on the one case both ran" if int(n) == 1 else f"on the {int(n)} cases both ran"


def _seconds(v: float) -> str:
    return f"{v:.0f} s" if v >= 100 else f"{v:.3g} s"


def _advantage(row: pd.Series, sign: float) -> tuple[float, float, float]:
    """A ``paired_comparison`` row (label − reference) turned into the reference's advantage
    (positive: the reference is better), with its CI."""
    lo, hi = sign * -row["ci_high"], sign * -row["ci_low"]
    return sign * -row["mean_diff"], min(lo, hi), max(lo, hi)


def _is_real(low: float, high: float) -> bool | None:
    """True: the CI excludes 0; False: it spans 0; None: no interval."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return None
    return low > 0 or high < 0


def _pair(df: pd.DataFrame, metric: str, label: str, reference: str, seed: int, n_resamples: int) -> pd.Series | None:
    """``paired_comparison`` of ``label`` against ``reference`` on ``df`` (one mode), or None without common cases."""
    sub = df[df["label"].isin([label, reference])]
    comp = paired_comparison(sub, metric, reference=reference, seed=seed, n_resamples=n_resamples)
    comp = comp[comp["label"] == label]
    if comp.empty or comp.iloc[0]["n"] == 0:
        return None
    return comp.iloc[0]


def _compare(best: str, other: str, row: pd.Series | None, metric: str, sign: float) -> str:
    """'best leads other by X [lo, hi] on the n cases both ran (...)' or 'best and other are indistinguishable: ...'."""
    if row is None:
        return f"{best} and {other} ran on no common case"
    adv, lo, hi = _advantage(row, sign)
    n = int(row["n"])
    real = _is_real(lo, hi)
    if real is None:
        first, second = (best, other) if adv >= 0 else (other, best)
        return f"{first} leads {second} by {_value(abs(adv), metric)} on their single common case (no interval)"
    if real and adv < 0:  # the other is the better one on these cases
        best, other, adv, lo, hi = other, best, -adv, -hi, -lo
        better = int(row["wins"])
    else:
        better = int(row["losses"])  # cases where the reference is better
    detail = f"{_both(n)}; {best} better on {better} of {n}"
    if real:
        return f"{best} leads {other} by {_ci_text(adv, lo, hi, metric)} {detail}"
    return f"{best} and {other} are indistinguishable: {_ci_text(adv, lo, hi, metric, signed=True)} (CI spans 0) {detail}"


def _ranked(ok: pd.DataFrame, metric: str, sign: float, seed: int, n_resamples: int) -> pd.DataFrame:
    """``method_means`` of one mode, best first."""
    means = method_means(ok, metric, by=("mode",), seed=seed, n_resamples=n_resamples)
    return means.assign(_key=sign * means["mean"]).sort_values(["_key", "label"], ascending=[False, True])


def _best_sentences(ok, metric, sign, seed, n_resamples, name) -> tuple[list[str], dict[str, str]]:
    out, best = [], {}
    for mode in ordered_modes(ok["mode"]):
        g = ok[ok["mode"] == mode]
        ranked = _ranked(g, metric, sign, seed, n_resamples)
        top = ranked.iloc[0]
        best[mode] = top["label"]
        head = (f"`{mode}`: **{top['label']}** has the best mean {name}, "
                f"{_ci_text(top['mean'], top['ci_low'], top['ci_high'], metric)} over {_cases(top['n'])}")
        if len(ranked) < 2:
            out.append(f"{head}; it is the only method of this mode.")
            continue
        runner = ranked.iloc[1]["label"]
        row = _pair(g, metric, runner, top["label"], seed, n_resamples)
        out.append(f"{head}; {_compare(top['label'], runner, row, metric, sign)}.")
    return out, best


def _family_sentences(ok, metric, sign, seed, n_resamples) -> list[str]:
    if "family" not in ok:
        return []
    out = []
    for mode in ordered_modes(ok["mode"]):
        g = ok[ok["mode"] == mode]
        deep, classical = g[g["family"] == "deep"], g[g["family"] == "classical"]
        if deep.empty or classical.empty:
            continue
        d = _ranked(deep, metric, sign, seed, n_resamples).iloc[0]
        c = _ranked(classical, metric, sign, seed, n_resamples).iloc[0]
        row = _pair(g, metric, d["label"], c["label"], seed, n_resamples)
        lead = f"`{mode}`: best deep method {d['label']} against best classical method {c['label']}"
        if row is None:
            out.append(f"{lead}: no case in common.")
            continue
        diff = _ci_text(row["mean_diff"], row["ci_low"], row["ci_high"], metric, signed=True)
        adv = sign * row["mean_diff"]  # positive: deep is better
        real = _is_real(row["ci_low"], row["ci_high"])
        verdict = ("no interval (a single common case)" if real is None else
                   ("deep is better" if adv > 0 else "classical is better") if real else "indistinguishable (CI spans 0)")
        out.append(f"{lead}: {diff} {_both(row['n'])} (deep − classical): {verdict}.")
    return out


def _same_axis(g: pd.DataFrame, a: str, b: str) -> bool:
    """Whether axes ``a`` and ``b`` determine each other in ``g`` (e.g. both SNRs varied together)."""
    pairs = g[[a, b]].astype(str).drop_duplicates()
    return not pairs[a].duplicated().any() and not pairs[b].duplicated().any()


def _runs(winners: pd.Series) -> list[tuple[list, str]]:
    """Consecutive levels with the same winner: ``[(levels, winner), ...]``."""
    out: list[tuple[list, str]] = []
    for level, w in winners.items():
        if out and out[-1][1] == w:
            out[-1][0].append(level)
        else:
            out.append(([level], w))
    return out


def _levels(axis: str, values: list) -> str:
    if len(values) == 1:
        return _fmt_value(axis, values[0])
    sep = "–" if all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in values) else ", "
    return _fmt_value(axis, values[0]) + sep + _fmt_value(axis, values[-1]) if sep == "–" else \
        sep.join(_fmt_value(axis, v) for v in values)


def _axis_sentences(ok, metric, sign, best, seed, n_resamples) -> list[str]:
    axes = [c for c in degradation_columns(ok) if ok[c].nunique(dropna=False) > 1]
    scene = next((c for c in ("scene_name", "scene") if c in ok), None)
    if scene is not None and ok[scene].nunique() > 1:
        axes.append(scene)  # which method to pick for which kind of scene
    out = []
    for mode in ordered_modes(ok["mode"]):
        g = ok[ok["mode"] == mode]
        if g["label"].nunique() < 2:
            continue
        overall = best[mode]
        done: list[str] = []
        for axis in axes:
            if g[axis].nunique(dropna=False) < 2 or any(_same_axis(g, axis, a) for a in done):
                continue
            twins = [a for a in axes if a != axis and a not in done and _same_axis(g, axis, a)]
            done += [axis, *twins]
            means = g.groupby([axis, "label"], sort=True, dropna=False)[metric].mean().unstack("label")
            winners = (sign * means).idxmax(axis=1)
            levels = pd.DataFrame({axis: winners.index.to_list()})
            name = AXIS_NAMES.get(axis, axis) + "".join(f" (varied with {AXIS_NAMES.get(a, a)})" for a in twins)
            if winners.nunique() == 1:
                listed = ", ".join(_fmt_value(axis, v) for v in levels[axis])
                out.append(f"`{mode}`, by {name}: {winners.iloc[0]} is best at every level ({listed}).")
                continue
            per_level = "; ".join(f"{_levels(axis, vs)}: {w}" for vs, w in _runs(winners))
            parts = []
            for w in dict.fromkeys(winners):
                if w == overall:
                    continue
                where = describe_region(levels[(winners == w).to_numpy()], levels, [axis])
                at = g[g[axis].isin(winners.index[(winners == w).to_numpy()])]
                row = _pair(at, metric, w, overall, seed, n_resamples)
                if row is None:
                    parts.append(f"at {where}, {w} is best where {overall} did not run")
                else:
                    parts.append(f"at {where}, {_compare(overall, w, row, metric, sign)}")
            text = f"`{mode}`, by {name}, best per level: {per_level}"
            out.append(text + (f"; {'; '.join(parts)}." if parts else "."))
    return out


def _cost_sentences(ok, metric, sign, tolerance, seed, n_resamples) -> list[str]:
    if tolerance is None or "runtime_s" not in ok:
        return []
    out = []
    for mode in ordered_modes(ok["mode"]):
        g = ok[(ok["mode"] == mode) & ok["runtime_s"].notna()]
        if g["label"].nunique() < 2:
            continue
        ranked = _ranked(g, metric, sign, seed, n_resamples).set_index("label")
        top = ranked.index[0]
        close = ranked.index[sign * (ranked["mean"] - ranked.loc[top, "mean"]) >= -tolerance]
        median = g.groupby("label")["runtime_s"].median()
        fast = median[close].sort_values(kind="stable").index[0]
        tol = f"{tolerance:g}{_unit(metric)}"
        if fast == top:
            if len(close) == 1:
                out.append(f"`{mode}`: no other method comes within {tol} of {top}'s mean; {top} takes a median "
                           f"{_seconds(median[top])} per job.")
            else:
                out.append(f"`{mode}`: {top} is also the fastest of the {len(close)} methods within {tol} of the best "
                           f"mean (a median {_seconds(median[top])} per job).")
            continue
        row = _pair(g, metric, fast, top, seed, n_resamples)
        gap = "" if row is None else (f" ({_ci_text(row['mean_diff'], row['ci_low'], row['ci_high'], metric, signed=True)}"
                                      f" {_both(row['n'])})")
        ratio = median[top] / median[fast] if median[fast] > 0 else math.inf
        speed = f" ({ratio:.3g}× faster)" if np.isfinite(ratio) else ""
        out.append(f"`{mode}`: **{fast}** is the fastest method within {tol} of the best mean: {fast} − {top}{gap}, "
                   f"a median {_seconds(median[fast])} per job against {_seconds(median[top])}{speed}.")
    return out


def _knowledge_sentences(ok, metric, sign, seed, n_resamples) -> list[str]:
    gap = knowledge_gap(ok, metric, "oracle", seed=seed, n_resamples=n_resamples)
    if gap.empty:
        return []
    if "family" in ok:
        floors = set(ok.loc[ok["family"] == "floor", "label"])
        gap = gap[~gap["label"].isin(floors)]  # the floor needs no knowledge: its gap says nothing
    gap = gap[gap["n"] > 0]
    out = []
    for mode in [m for m in ordered_modes(ok["mode"]) if m in set(gap["mode"])]:
        t = gap[gap["mode"] == mode].assign(_key=lambda d: sign * d["mean_diff"]).sort_values(["_key", "label"])
        worst, least = t.iloc[0], t.iloc[-1]

        def item(r):
            ci = _ci_text(r["mean_diff"], r["ci_low"], r["ci_high"], metric, signed=True)
            real = _is_real(r["ci_low"], r["ci_high"])
            note = ", CI spans 0" if real is False else (", no interval" if real is None else "")
            return f"{ci} over {_cases(r['n'])}{note}"

        head = f"`{mode}` against `oracle` (same method, same cases)"
        if worst["_key"] >= 0:
            out.append(f"{head}: no method loses {metric.upper()} without the true degradation; the smallest change "
                       f"is {worst['label']}'s, {item(worst)}.")
            continue
        text = f"{head}: {worst['label']} loses {'the most, ' if len(t) > 1 else ''}{item(worst)}"
        if len(t) > 1:
            text += f"; {least['label']} {'the least' if least['_key'] < 0 else 'does not lose'}, {item(least)}"
        out.append(text + ".")
    return out


def findings(df: pd.DataFrame, metric: str = "psnr", *, tolerance: float | None = None, seed: int = 0,
             n_resamples: int = 9999) -> list[str]:
    """Sentences that say which method to pick when, read from a results table's statistics.

    In this order, each where the data allows it:

    1. per knowledge mode, the method with the best mean ``metric`` (95 % bootstrap CI) and whether its
       lead over the runner-up is real (paired CI on the cases both ran excludes 0) or a tie;
    2. per mode with both families, the best deep method minus the best classical one (paired CI);
    3. per mode and varying degradation axis, the best method at each level (mean over the other
       axes, scenes and seeds) and, where another method than the mode's best wins, the region of the
       axis where it does (``describe_region``) with the paired difference there; the same per scene
       (``scene_name``, else ``scene``) when there are several;
    4. per mode, the fastest method (median ``runtime_s`` per job) whose mean is within ``tolerance``
       of the best mean, against the best's median wall time;
    5. per mode other than ``oracle``, the methods that lose most and least against their own
       ``oracle`` runs (``knowledge_gap``; the floor method is left out: it needs no knowledge).

    Parameters
    ----------
    df : DataFrame
        Results table of :func:`hsibench.report.tables.load_results` (columns ``label``, ``mode``,
        ``status``, ``scene``, ``seed``, the degradation columns, ``metric``; ``family`` and
        ``runtime_s`` where present). Rows that did not finish, or lack the metric, are ignored.
    metric : str
        Metric column; its direction comes from ``stats.HIGHER_IS_BETTER``.
    tolerance : float, optional
        How far (in the metric's unit) below the best mean counts as close enough for the cost
        sentence (default: ``DEFAULT_TOLERANCE``, 1 dB for PSNR; no cost sentence for a metric
        without a default).
    seed, n_resamples : int
        Bootstrap seed and resamples.

    Returns
    -------
    list of str
        Markdown sentences, one per finding (empty when no row finished with the metric).

    Raises
    ------
    ValueError
        ``df`` lacks ``metric``, ``label`` or ``mode``, or ``tolerance`` is negative.

    Example
    -------
    >>> rows = [{"status": "ok", "label": m, "mode": "blind", "family": "classical", "scene": "s",
    ...          "seed": k, "scale": 4, "psnr": 30.0 + k + d, "runtime_s": t}
    ...         for m, d, t in (("fuse", 2.0, 10.0), ("cnmf", 1.5, 1.0), ("gsa", 0.0, 0.1)) for k in range(4)]
    >>> for line in findings(pd.DataFrame(rows)):
    ...     print(line)
    `blind`: **fuse** has the best mean PSNR, 33.50 dB [32.50, 34.50] over 4 cases; fuse leads cnmf by
    0.50 dB [0.50, 0.50] on the 4 cases both ran; fuse better on 4 of 4.
    `blind`: **cnmf** is the fastest method within 1 dB of the best mean: cnmf − fuse (-0.50 dB
    [-0.50, -0.50] on the 4 cases both ran), a median 1 s per job against 10 s (10× faster).
    """
    missing = [c for c in (metric, "label", "mode") if c not in df]
    if missing:
        raise ValueError(f"the results table has no {', '.join(map(repr, missing))} column")
    if tolerance is None:
        tolerance = DEFAULT_TOLERANCE.get(metric)
    elif not tolerance >= 0:
        raise ValueError(f"tolerance must be non-negative, got {tolerance}")
    ok = df[df["status"] == "ok"] if "status" in df else df
    ok = ok[ok[metric].notna()]
    if ok.empty:
        return []
    sign = 1.0 if HIGHER_IS_BETTER.get(metric, True) else -1.0
    name = metric.upper()
    out, best = _best_sentences(ok, metric, sign, seed, n_resamples, name)
    out += _family_sentences(ok, metric, sign, seed, n_resamples)
    out += _axis_sentences(ok, metric, sign, best, seed, n_resamples)
    out += _cost_sentences(ok, metric, sign, tolerance, seed, n_resamples)
    out += _knowledge_sentences(ok, metric, sign, seed, n_resamples)
    return out


def findings_section(df: pd.DataFrame, metric: str = "psnr", *, seed: int = 0, n_resamples: int = 9999) -> list[tuple]:
    """The report's "What it shows" section as report blocks (heading, note, list); empty without findings.

    Parameters
    ----------
    df : DataFrame
        Results table of :func:`hsibench.report.tables.load_results`.
    metric : str
        Metric the sentences are about; no section when the table has no such column.
    seed, n_resamples : int
        Bootstrap seed and resamples.

    Returns
    -------
    list of tuple
        ``[("h", 2, title), ("p", note), ("list", sentences)]``, or ``[]``.

    Example
    -------
    >>> findings_section(pd.DataFrame({"label": ["a"], "mode": ["blind"], "status": ["failed"], "psnr": [None]}))
    []
    """
    if metric not in df or "label" not in df or "mode" not in df:
        return []
    items = findings(df, metric, seed=seed, n_resamples=n_resamples)
    if not items:
        return []
    tol = DEFAULT_TOLERANCE.get(metric)
    note = (f"Read from the statistics below ({metric.upper()}; brackets: 95 % bootstrap CIs over cases). A lead is "
            "real when the paired CI of the difference on the cases both methods ran excludes 0; per-level winners "
            "are means over the other degradation axes, scenes and seeds (per scene: over the degradations and seeds)")
    if tol is not None:
        note += (f"; the cost line takes the fastest method (median wall time per job) within {tol:g}{_unit(metric)} "
                 "of the best mean")
    note += "."
    return [("h", 2, _TITLE), ("p", note), ("list", items)]
