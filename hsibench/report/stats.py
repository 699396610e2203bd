"""Statistics of a results table: bootstrap confidence intervals, paired method comparisons, rank
stability across the degradation grid, ranking flips, the quality/runtime Pareto front, the gap
between knowledge modes and the degradation-estimation leaderboard.

Every function is pure: it takes the one-row-per-job DataFrame of
:func:`hsibench.report.tables.load_results` (columns ``label``, ``mode``, ``family``, ``status``,
``scene``, ``seed``, the degradation columns and the metric columns) and returns a new DataFrame.
A *case* is one scene × degradation × seed: the inputs every method sees. Paired statistics compare
two methods (or two modes) on the cases both ran, so the spread between scenes cancels out.

Bootstraps are seeded, so a report is reproducible bit for bit.
"""
from __future__ import annotations

import itertools
import math
import warnings
from typing import Iterable, NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

__all__ = [
    "DEGRADATION_FIELDS", "HIGHER_IS_BETTER", "CI", "bootstrap_mean_ci", "degradation_columns", "case_columns",
    "floor_gain", "method_means", "paired_comparison", "rank_stability", "rank_flips", "pareto_front",
    "knowledge_gap", "estimation_leaderboard", "describe_region", "format_snr", "SNR_AXES",
]

#: Degradation fields in display order (any further field found in the rows follows them).
DEGRADATION_FIELDS = ["scale", "kernel", "sensor", "snr_hs", "snr_ms", "boundary", "noise_per_band", "misregistration",
                      "srf_sampling"]
HIGHER_IS_BETTER = {"psnr": True, "sam": False, "ergas": False, "ssim": True, "uiqi": True, "cc": True, "rmse": False,
                    "dd": False, "runtime_s": False, "psf_error": False, "srf_error": False,
                    "qnr": True, "d_lambda": False, "d_s": False}  # the last three: no-reference (real pairs)
AXIS_NAMES = {"scale": "scale", "snr_hs": "LrHSI SNR", "snr_ms": "HrMSI SNR", "kernel": "kernel", "sensor": "sensor",
              "boundary": "boundary", "noise_per_band": "per-band noise", "misregistration": "misregistration",
              "srf_sampling": "SRF sampling", "scene_name": "scene"}
#: The degradation columns that hold an SNR in dB (no noise: inf; None or NaN in raw rows).
SNR_AXES = ("snr_hs", "snr_ms")
_UNITS = {"snr_hs": " dB", "snr_ms": " dB"}
#: Columns of a results table that are not part of a case's identity.
_NOT_DEGRADATION = {"mode"}


class CI(NamedTuple):
    """A mean with its bootstrap confidence interval (``low``/``high`` are NaN when n < 2)."""

    mean: float
    low: float
    high: float
    n: int
    note: str = ""


def bootstrap_mean_ci(values, *, confidence: float = 0.95, n_resamples: int = 9999, seed: int = 0,
                      method: str = "BCa") -> CI:
    """Mean of ``values`` with a seeded bootstrap confidence interval (``scipy.stats.bootstrap``).

    Parameters
    ----------
    values : array_like
        One value per case (NaNs are dropped). For a paired comparison, pass the per-case differences.
    confidence : float
        Confidence level of the interval, in (0, 1).
    n_resamples : int
        Bootstrap resamples.
    seed : int
        Seed of the resampling (the same seed gives the same interval).
    method : {"BCa", "percentile", "basic"}
        SciPy's interval method. BCa falls back to the percentile interval where its acceleration
        cannot be computed (e.g. n = 2).

    Returns
    -------
    CI
        ``(mean, low, high, n, note)``; with n = 1 the bounds are NaN and ``note`` says why; with
        identical values the interval collapses to ``[mean, mean]``.

    Raises
    ------
    ValueError
        If ``confidence`` is not in (0, 1) or ``n_resamples`` < 1.

    Example
    -------
    >>> bootstrap_mean_ci([1.0, 1.0, 1.0])
    CI(mean=1.0, low=1.0, high=1.0, n=3, note='')
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")
    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[~np.isnan(x)]
    n = len(x)
    if n == 0:
        return CI(math.nan, math.nan, math.nan, 0, "no data")
    mean = float(np.mean(x))
    if n == 1:
        return CI(mean, math.nan, math.nan, 1, "n=1: no CI")
    if not np.all(np.isfinite(x)):
        return CI(mean, math.nan, math.nan, n, "non-finite values: no CI")
    if np.all(x == x[0]):
        return CI(mean, mean, mean, n)
    for m in dict.fromkeys((method, "percentile")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # BCa's degenerate-data warning: handled by the fallback
            res = stats.bootstrap((x,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                                  method=m, vectorized=True, rng=np.random.default_rng(seed))
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if np.isfinite(low) and np.isfinite(high):
            return CI(mean, low, high, n)
    return CI(mean, math.nan, math.nan, n, "bootstrap failed")


def degradation_columns(df: pd.DataFrame) -> list[str]:
    """The degradation columns of a results table: the known fields present, then any extra ``deg_`` field."""
    cols = [c for c in DEGRADATION_FIELDS if c in df.columns]
    return cols + sorted(c for c in df.columns if c.startswith("deg_"))


def case_columns(df: pd.DataFrame) -> list[str]:
    """Columns that identify a case: scene (and its options), seed and every degradation column."""
    scene = [c for c in ("scene", "scene_options") if c in df.columns] or ["scene_name"]
    return scene + ["seed"] + degradation_columns(df)


def _ok(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    ok = df[df["status"] == "ok"] if "status" in df else df
    if metric not in ok:
        return ok.iloc[0:0]
    return ok[ok[metric].notna()]


def _sign(metric: str) -> float:
    return 1.0 if HIGHER_IS_BETTER.get(metric, True) else -1.0


def _per_case(df: pd.DataFrame, metric: str, cols: list[str]) -> pd.DataFrame:
    """Case × label table of ``metric`` (mean where a case repeats)."""
    return _wide(df, metric, cols, "label")


def _wide(df: pd.DataFrame, metric: str, index: list[str], column: str) -> pd.DataFrame:
    """Mean of ``metric`` per (index..., column), the column unstacked; only index keys that occur."""
    return df.groupby([*index, column], dropna=False, sort=True)[metric].mean().unstack(column)


def _floor_labels(df: pd.DataFrame) -> list[str]:
    if "family" not in df:
        return ["upsample"] if "upsample" in set(df["label"]) else []
    return sorted(df.loc[df["family"] == "floor", "label"].unique())


def floor_gain(df: pd.DataFrame, metric: str = "psnr", floor: str | None = None) -> pd.Series:
    """Per job: ``metric`` minus the floor method's on the same case, whatever the knowledge mode.

    A floor method needs no knowledge of the degradation, so its output is the same in every mode:
    a job run in a mode where the floor did not run is compared with the floor's run in another mode.

    Parameters
    ----------
    df : DataFrame
        Results table.
    metric : str
        Metric column.
    floor : str, optional
        Label of the floor method (default: ``upsample`` if present, else the first ``floor``-family label).

    Returns
    -------
    Series
        Indexed like ``df``; NaN where the job failed or the floor never ran on its case.

    Example
    -------
    >>> gains = floor_gain(df)  # doctest: +SKIP
    """
    out = pd.Series(np.nan, index=df.index, dtype=float)
    ok = _ok(df, metric)
    floors = _floor_labels(ok)
    if floor is None:
        floor = "upsample" if "upsample" in floors else (floors[0] if floors else None)
    if floor is None or ok.empty:
        return out
    cols = case_columns(ok)
    ref = ok[ok["label"] == floor].groupby(cols, dropna=False)[metric].mean()
    if ref.empty:
        return out
    keys = pd.MultiIndex.from_frame(ok[cols]) if len(cols) > 1 else pd.Index(ok[cols[0]])
    out.loc[ok.index] = ok[metric].to_numpy(dtype=float) - ref.reindex(keys).to_numpy(dtype=float)
    return out


def method_means(df: pd.DataFrame, metric: str = "psnr", by: Iterable[str] = ("mode",), *, seed: int = 0,
                 n_resamples: int = 9999) -> pd.DataFrame:
    """Mean of ``metric`` per method and group (default: knowledge mode) with a 95 % bootstrap CI over cases.

    Returns
    -------
    DataFrame
        Columns ``*by, label, n, mean, ci_low, ci_high, note``.

    Example
    -------
    >>> method_means(df, "psnr", by=["mode", "scale"])  # doctest: +SKIP
    """
    ok = _ok(df, metric)
    by = list(by)
    rows = []
    for key, g in ok.groupby(by + ["label"], dropna=False, sort=True):
        ci = bootstrap_mean_ci(g[metric], seed=seed, n_resamples=n_resamples)
        rows.append(dict(zip(by + ["label"], key)) | {"n": ci.n, "mean": ci.mean, "ci_low": ci.low, "ci_high": ci.high,
                                                         "note": ci.note})
    return pd.DataFrame(rows, columns=by + ["label", "n", "mean", "ci_low", "ci_high", "note"])


def _wilcoxon_p(d: np.ndarray, min_n: int) -> float:
    if len(d) < min_n:
        return math.nan
    if np.all(d == 0):
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(stats.wilcoxon(d).pvalue)


def paired_comparison(df: pd.DataFrame, metric: str = "psnr", *, reference: str | None = None, seed: int = 0,
                      tie_tol: float = 0.0, min_n_wilcoxon: int = 6, n_resamples: int = 9999) -> pd.DataFrame:
    """Each method against a reference method, per knowledge mode, on the cases both ran.

    The reference is the method with the best mean ``metric`` in the mode (or ``reference``).
    Differences are ``method − reference`` (so, for a lower-is-better metric, a negative mean is
    better); wins/ties/losses count cases where the method is better / within ``tie_tol`` / worse.

    Parameters
    ----------
    df : DataFrame
        Results table.
    metric : str
        Metric column; its direction comes from ``HIGHER_IS_BETTER``.
    reference : str, optional
        Label of the reference method (default: the best per mode).
    seed : int
        Bootstrap seed.
    tie_tol : float
        Absolute difference counted as a tie.
    min_n_wilcoxon : int
        Fewest paired cases for which a Wilcoxon signed-rank p-value is reported (NaN below).
    n_resamples : int
        Bootstrap resamples.

    Returns
    -------
    DataFrame
        Columns ``mode, label, reference, n, mean_diff, ci_low, ci_high, wins, ties, losses, wilcoxon_p, note``
        (the reference's own row is left out).

    Example
    -------
    >>> paired_comparison(df, "psnr")  # doctest: +SKIP
    """
    cols = ["mode", "label", "reference", "n", "mean_diff", "ci_low", "ci_high", "wins", "ties", "losses",
            "wilcoxon_p", "note"]
    ok = _ok(df, metric)
    sign = _sign(metric)
    cc = case_columns(ok)
    rows = []
    for mode, g in ok.groupby("mode", sort=True):
        table = _per_case(g, metric, cc)
        means = table.mean()
        ref = reference if reference is not None else (means.idxmax() if sign > 0 else means.idxmin())
        if ref not in table:
            continue
        for label in means.sort_values(ascending=sign < 0).index:
            if label == ref:
                continue
            pair = table[[label, ref]].dropna()
            d = (pair[label] - pair[ref]).to_numpy(dtype=float)
            ci = bootstrap_mean_ci(d, seed=seed, n_resamples=n_resamples)
            better = sign * d
            note = ci.note or (f"n<{min_n_wilcoxon}: no test" if 0 < len(d) < min_n_wilcoxon else "")
            rows.append({"mode": mode, "label": label, "reference": ref, "n": len(d), "mean_diff": ci.mean,
                         "ci_low": ci.low, "ci_high": ci.high, "wins": int(np.sum(better > tie_tol)),
                         "ties": int(np.sum(np.abs(d) <= tie_tol)), "losses": int(np.sum(better < -tie_tol)),
                         "wilcoxon_p": _wilcoxon_p(d, min_n_wilcoxon), "note": note})
    return pd.DataFrame(rows, columns=cols)


def _degradation_means(g: pd.DataFrame, metric: str, dcols: list[str]) -> pd.DataFrame:
    """Degradation × label table of the mean ``metric`` over scenes and seeds."""
    return _wide(g, metric, dcols, "label")


def rank_stability(df: pd.DataFrame, metric: str = "psnr") -> pd.DataFrame:
    """Kendall's τ between the method ranking at each degradation and the overall ranking, per mode.

    The ranking at a degradation orders methods by their mean ``metric`` over its scenes and seeds;
    the overall ranking by their mean over all cases. τ = 1: same order; −1: reversed.

    Returns
    -------
    DataFrame
        Columns ``mode``, the degradation columns, ``methods`` (how many ranked), ``tau``, ``best``.

    Example
    -------
    >>> rank_stability(df)["tau"].min()  # doctest: +SKIP
    """
    ok = _ok(df, metric)
    dcols = degradation_columns(ok)
    sign = _sign(metric)
    rows = []
    for mode, g in ok.groupby("mode", sort=True):
        overall = g.groupby("label")[metric].mean()
        if not dcols:
            continue
        table = _degradation_means(g, metric, dcols)
        for key, means in table.iterrows():
            means = means.dropna()
            key = key if isinstance(key, tuple) else (key,)
            tau = math.nan
            if len(means) >= 2:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # constant input: τ undefined -> NaN
                    tau = float(stats.kendalltau(means.to_numpy(), overall[means.index].to_numpy()).statistic)
            best = (means.idxmax() if sign > 0 else means.idxmin()) if len(means) else None
            rows.append({"mode": mode, **dict(zip(dcols, key)), "methods": len(means), "tau": tau, "best": best})
    return pd.DataFrame(rows, columns=["mode", *dcols, "methods", "tau", "best"])


def format_snr(v) -> str:
    """An SNR in dB as report text: ``"∞"`` for no noise, else the number in ``:g`` format.

    The one definition every report table, heading, panel title and plot tick uses.

    Parameters
    ----------
    v : float, int or None
        The SNR; None, NaN (how a table stores None) and inf all mean no noise.

    Returns
    -------
    str
        ``"∞"`` or e.g. ``"40"``, ``"27.5"`` (no unit).

    Raises
    ------
    TypeError
        ``v`` is not a number or None.

    Example
    -------
    >>> [format_snr(v) for v in (None, float("nan"), float("inf"), 40, 40.0, 27.5)]
    ['∞', '∞', '∞', '40', '40', '27.5']
    """
    if v is None or math.isnan(v) or math.isinf(v):
        return "∞"
    return f"{v:g}"


def _fmt_value(axis: str, v) -> str:
    if axis in SNR_AXES:
        return format_snr(v) + _UNITS.get(axis, "")
    if isinstance(v, (float, np.floating)):
        return f"{v:g}{_UNITS.get(axis, '')}"
    return f"{v}{_UNITS.get(axis, '')}"


def describe_region(subset: pd.DataFrame, universe: pd.DataFrame, axes: list[str], max_listed: int = 4) -> str:
    """Describe the rows of ``subset`` (degradations) within ``universe`` by one axis, if one suffices.

    Tries, for each axis that varies in ``universe``: "axis = v", "axis ≤ t" and "axis ≥ t" (numeric
    axes); returns the first exact description, else lists the degradations.

    Parameters
    ----------
    subset, universe : DataFrame
        Degradation rows (columns ``axes``); ``subset`` is a selection of ``universe``'s rows.
    axes : list of str
        Degradation columns.
    max_listed : int
        Most degradations listed when no single-axis description fits.

    Returns
    -------
    str

    Example
    -------
    >>> u = pd.DataFrame({"snr_hs": [20.0, 25.0, 30.0, 35.0]})
    >>> describe_region(u.iloc[:2], u, ["snr_hs"])
    'LrHSI SNR ≤ 25 dB'
    """
    if len(subset) == len(universe):
        return "every degradation"
    inside = universe.index.isin(subset.index)
    for axis in axes:
        vals = universe[axis]
        if vals.nunique(dropna=False) < 2:
            continue
        name = AXIS_NAMES.get(axis, axis)
        for v in vals.unique():
            if np.array_equal(inside, (vals == v).to_numpy()):
                return f"{name} = {_fmt_value(axis, v)}"
        if pd.api.types.is_numeric_dtype(vals) and not pd.api.types.is_bool_dtype(vals):
            for t in sorted(vals.unique()):
                if np.array_equal(inside, (vals <= t).to_numpy()):
                    return f"{name} ≤ {_fmt_value(axis, t)}"
                if np.array_equal(inside, (vals >= t).to_numpy()):
                    return f"{name} ≥ {_fmt_value(axis, t)}"
    varying = [a for a in axes if universe[a].nunique(dropna=False) > 1] or axes
    items = ["(" + ", ".join(f"{AXIS_NAMES.get(a, a)} {_fmt_value(a, r[a])}" for a in varying) + ")"
             for _, r in subset.iterrows()]
    more = f" and {len(items) - max_listed} more" if len(items) > max_listed else ""
    return "; ".join(items[:max_listed]) + more


def rank_flips(df: pd.DataFrame, metric: str = "psnr") -> pd.DataFrame:
    """Pairs of methods whose order at some degradations is the reverse of their overall order.

    For every pair (A, B) with A better than B over all the degradations both ran (mean of the
    per-degradation means), the degradations where B's mean is strictly better are collected and
    described (e.g. "LrHSI SNR ≤ 25 dB").

    Returns
    -------
    DataFrame
        Columns ``mode, winner, loser, flips, degradations, where, statement, margin`` (``winner`` is
        the better method overall; ``statement`` reads "loser beats winner at where"; ``margin``: the
        loser's largest lead over the winner among the flipped degradations, in the metric's units,
        always positive). Rows are sorted by ``margin``, largest flip first.

    Example
    -------
    >>> rank_flips(df)["statement"].tolist()  # doctest: +SKIP
    ['hysure beats fuse at LrHSI SNR ≤ 25 dB']
    """
    ok = _ok(df, metric)
    dcols = degradation_columns(ok)
    sign = _sign(metric)
    rows = []
    cols = ["mode", "winner", "loser", "flips", "degradations", "where", "statement", "margin"]
    if not dcols:
        return pd.DataFrame(rows, columns=cols)
    for mode, g in ok.groupby("mode", sort=True):
        table = _degradation_means(g, metric, dcols)
        order = (sign * table.mean()).sort_values(ascending=False).index
        for a, b in itertools.combinations(order, 2):
            pair = table[[a, b]].dropna()
            if len(pair) < 2:
                continue
            if sign * (pair[a].mean() - pair[b].mean()) < 0:
                a, b = b, a  # order on the common degradations
            flipped = sign * (pair[b] - pair[a]) > 0
            if not flipped.any():
                continue
            universe = pair.index.to_frame(index=False)
            where = describe_region(universe[flipped.to_numpy()], universe, dcols)
            lead = sign * (pair[b] - pair[a])
            rows.append({"mode": mode, "winner": a, "loser": b, "flips": int(flipped.sum()), "degradations": len(pair),
                         "where": where, "statement": f"{b} beats {a} at {where}", "margin": float(lead[flipped].max())})
    out = pd.DataFrame(rows, columns=cols)
    return out.sort_values("margin", ascending=False, kind="stable").reset_index(drop=True) if len(out) else out


def pareto_front(quality, cost, higher_is_better: bool = True) -> np.ndarray:
    """Mask of the points no other point dominates (better or equal quality at lower or equal cost, one strictly).

    Parameters
    ----------
    quality, cost : array_like
        One value per point (e.g. mean PSNR and mean wall time of each method).
    higher_is_better : bool
        Direction of ``quality``.

    Returns
    -------
    ndarray of bool

    Example
    -------
    >>> pareto_front([30, 32, 31], [1.0, 10.0, 20.0]).tolist()
    [True, True, False]
    """
    q = np.asarray(quality, dtype=float) * (1 if higher_is_better else -1)
    c = np.asarray(cost, dtype=float)
    if q.shape != c.shape:
        raise ValueError(f"quality and cost differ in shape: {q.shape} vs {c.shape}")
    keep = np.ones(len(q), dtype=bool)
    for i in range(len(q)):
        dominated = (q >= q[i]) & (c <= c[i]) & ((q > q[i]) | (c < c[i]))
        keep[i] = not dominated.any()
    return keep


def knowledge_gap(df: pd.DataFrame, metric: str = "psnr", reference_mode: str = "oracle", *, seed: int = 0,
                  n_resamples: int = 9999) -> pd.DataFrame:
    """Per method: each other mode minus ``reference_mode`` on the same cases (paired bootstrap CI).

    Returns
    -------
    DataFrame
        Columns ``label, mode, reference_mode, n, mean_diff, ci_low, ci_high, note``; methods that did
        not run in the reference mode are left out.

    Example
    -------
    >>> knowledge_gap(df, "psnr")  # doctest: +SKIP
    """
    ok = _ok(df, metric)
    cc = case_columns(ok)
    rows = []
    for label, g in ok.groupby("label", sort=True):
        table = _wide(g, metric, cc, "mode")
        if reference_mode not in table:
            continue
        for mode in table.columns:
            if mode == reference_mode:
                continue
            pair = table[[mode, reference_mode]].dropna()
            ci = bootstrap_mean_ci((pair[mode] - pair[reference_mode]).to_numpy(float), seed=seed,
                                   n_resamples=n_resamples)
            rows.append({"label": label, "mode": mode, "reference_mode": reference_mode, "n": ci.n, "mean_diff": ci.mean,
                         "ci_low": ci.low, "ci_high": ci.high, "note": ci.note})
    return pd.DataFrame(rows, columns=["label", "mode", "reference_mode", "n", "mean_diff", "ci_low", "ci_high", "note"])


def estimation_leaderboard(df: pd.DataFrame) -> pd.DataFrame:
    """Relative PSF/SRF errors of every method that learned or estimated them, per mode and degradation.

    Returns
    -------
    DataFrame
        Columns ``mode``, the degradation columns, ``label, n, psf_error, srf_error`` and, where
        recorded, ``estimator_psf_error, estimator_srf_error`` (means over scenes and seeds), sorted
        by degradation then PSF error.

    Example
    -------
    >>> estimation_leaderboard(df)  # doctest: +SKIP
    """
    err = [c for c in ("psf_error", "srf_error", "estimator_psf_error", "estimator_srf_error") if c in df]
    ok = df[df["status"] == "ok"] if "status" in df else df
    if not err:
        return pd.DataFrame()
    ok = ok[ok[err].notna().any(axis=1)]
    if ok.empty:
        return pd.DataFrame()
    dcols = degradation_columns(ok)
    keys = ["mode", *dcols, "label"]
    g = ok.groupby(keys, dropna=False, sort=True)
    out = g[err].mean()
    out.insert(0, "n", g.size())
    out = out.reset_index()
    sort = [*dcols, "mode"] + [c for c in ("psf_error", "srf_error") if c in out]
    return out.sort_values(sort, na_position="last").reset_index(drop=True)
