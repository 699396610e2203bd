"""Result tables from a results store: one row per job -> method × metric summaries."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from ..study.store import ResultStore
from .stats import (
    DEGRADATION_FIELDS, HIGHER_IS_BETTER, bootstrap_mean_ci, case_columns, degradation_columns, floor_gain, format_snr,
)

__all__ = ["load_results", "summary_tables", "overview_table", "failure_table", "training_table", "markdown_table",
           "deviation_notes", "degradation_extras", "format_ci", "mode_gap_table", "scene_table", "DEGRADATION_KEYS", "METRIC_ORDER",
           "HIGHER_IS_BETTER"]

#: Columns that split the per-degradation tables: every degradation field, then the knowledge mode.
DEGRADATION_KEYS = DEGRADATION_FIELDS + ["mode"]
METRIC_ORDER = ["psnr", "sam", "ergas", "ssim", "uiqi", "cc", "rmse", "dd", "qnr", "d_lambda", "d_s"]
FAMILY_ORDER = {"floor": 0, "classical": 1, "deep": 2}
#: Value of a degradation field in rows written before the field existed.
_FIELD_DEFAULTS = {"boundary": "symmetric", "noise_per_band": False, "misregistration": "0,0", "srf_sampling": "hs_bands"}


def _deg_value(key: str, v):
    if key in ("snr_hs", "snr_ms"):
        return float("inf") if v is None else float(v)
    if isinstance(v, (list, tuple)):
        return ",".join(f"{x:g}" if isinstance(x, (int, float)) else str(x) for x in v)
    if isinstance(v, dict):
        return json.dumps(v, sort_keys=True)
    return v


def degradation_extras(key, code: bool = False) -> list[str]:
    """Short phrases for the degradation fields of a row or table key that differ from their default
    (boundary, per-band noise, misregistration, SRF sampling, extra ``deg_*`` columns), in order;
    ``code=True`` sets the values in Markdown code spans. Every degradation title uses it, so two
    cases that differ only in one of these fields never share a title."""
    q = (lambda v: f"`{v}`") if code else str  # noqa: E731
    items = key.items() if hasattr(key, "items") else []
    out = []
    if key.get("boundary", "symmetric") != "symmetric":
        out.append(f"boundary {q(key['boundary'])}")
    if bool(key.get("noise_per_band", False)):
        out.append("per-band noise")
    if str(key.get("misregistration", "0,0")) != "0,0":
        out.append(f"misregistration ({key['misregistration']}) px")
    if key.get("srf_sampling", "hs_bands") not in ("hs_bands", None):
        out.append(f"SRF sampling {q(key['srf_sampling'])}")
    out += [f"{k[4:]} {q(v)}" for k, v in items if str(k).startswith("deg_")]
    return out


def _variant(deg: dict) -> str:
    """The degradation options beyond scale/kernel/sensor/SNR that make a case differ ('' if none)."""
    out = []
    shift = deg.get("misregistration") or (0.0, 0.0)
    if any(shift):
        out.append(f"shift({shift[0]:g},{shift[1]:g})")
    if deg.get("srf_sampling", "hs_bands") != "hs_bands":
        out.append(f"srf:{deg['srf_sampling']}")
    return " ".join(out)


#: Display order of the knowledge modes in reports (any other mode follows, sorted).
MODE_ORDER = ("oracle", "srf_support", "estimated", "blind")


def ordered_modes(modes) -> list[str]:
    """The distinct knowledge modes of ``modes`` in :data:`MODE_ORDER`, any others after them, sorted."""
    present = set(modes)
    return [m for m in MODE_ORDER if m in present] + sorted(m for m in present if m not in MODE_ORDER)


def load_results(source: str | Path | Iterable[dict]) -> pd.DataFrame:
    """Flatten result rows (a store folder or an iterable of rows) into a DataFrame, one row per job.

    Every field of the job's degradation becomes a column (a field unknown to this version as
    ``deg_<name>``), so jobs that differ in any degradation field never share a case.

    Parameters
    ----------
    source : path or iterable of dict
        A results store folder, or result rows.

    Returns
    -------
    DataFrame
        One row per job: identity, degradation columns, status, metrics, runtime, PSF/SRF errors,
        and ``deviations`` when the rows record them.

    Example
    -------
    >>> df = load_results("results/demo")  # doctest: +SKIP
    """
    rows = ResultStore(source).rows() if isinstance(source, (str, Path)) else source
    flat = []
    for r in rows:
        d = {k: r.get(k) for k in ("job_id", "study", "scene", "scale", "kernel", "sensor", "snr_hs", "snr_ms", "seed",
                                    "method", "label", "preset", "mode", "family", "status", "runtime_s", "peak_mem_mb", "code_id",
                                    "psf_error", "srf_error", "estimator_psf_error", "estimator_srf_error",
                                    "case_id")}
        config = r.get("config") or {}
        d["scene_options"] = json.dumps(config.get("scene_options") or {}, sort_keys=True)
        for k, v in (config.get("degradation") or {}).items():
            d[k if k in DEGRADATION_FIELDS else f"deg_{k}"] = _deg_value(k, v)
        d["scene_name"] = r.get("scene_name") or r.get("scene")
        d["variant"] = _variant(((r.get("config") or {}).get("degradation")) or {})
        d["error"] = (r.get("error") or {}).get("message")
        d["error_type"] = (r.get("error") or {}).get("type")
        deviations = r.get("deviations", (r.get("info") or {}).get("deviations"))
        if deviations is not None:
            d["deviations"] = deviations
        for k, v in (r.get("metrics") or {}).items():
            d[k] = v
        flat.append(d)
    df = pd.DataFrame(flat)
    if df.empty:
        return df
    df["family"] = df["family"].fillna("unknown")
    for k, v in _FIELD_DEFAULTS.items():
        df[k] = df[k].where(df[k].notna(), v) if k in df else v
    for k in ("snr_hs", "snr_ms"):
        df[k] = df[k].astype(float).fillna(float("inf"))
    df["noise_per_band"] = df["noise_per_band"].astype(bool)
    return df


def format_ci(mean: float, low: float, high: float, digits: int) -> str:
    """``mean [low, high]`` (just the mean where the interval is undefined)."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    if math.isinf(mean):
        return "inf"
    if not (np.isfinite(low) and np.isfinite(high)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


_DIGITS = {"psnr": 2, "sam": 2, "ergas": 3, "ssim": 4, "uiqi": 4, "cc": 4, "rmse": 4, "dd": 4, "runtime_s": 2,
           "qnr": 4, "d_lambda": 4, "d_s": 4}


def _method_order(df: pd.DataFrame) -> list[str]:
    fam = df.groupby("label")["family"].first().map(lambda f: FAMILY_ORDER.get(f, 3))
    psnr = df.groupby("label")["psnr"].mean() if "psnr" in df else pd.Series(0, index=fam.index)
    return sorted(fam.index, key=lambda m: (fam[m], -np.nan_to_num(psnr.get(m, np.nan), nan=-1e9, posinf=1e9)))


def summary_tables(df: pd.DataFrame, metrics: list[str] | None = None, *, seed: int = 0,
                   n_resamples: int = 9999) -> list[tuple[dict, pd.DataFrame]]:
    """For each degradation (every degradation field) and knowledge mode: method × metric, the mean
    over scenes and seeds with its 95 % bootstrap confidence interval (``mean [low, high]``).

    Parameters
    ----------
    df : DataFrame
        Results table of :func:`load_results`.
    metrics : list of str, optional
        Metric columns (default: those of ``METRIC_ORDER`` present).
    seed, n_resamples : int
        Bootstrap seed and resamples.

    Returns
    -------
    list of (dict, DataFrame)
        The degradation (and mode) of each table, and the table (``n`` = cases; n = 1: no interval).

    Example
    -------
    >>> for key, table in summary_tables(df): print(key["scale"], len(table))  # doctest: +SKIP
    """
    ok = df[df["status"] == "ok"]
    metrics = [m for m in (metrics or METRIC_ORDER) if m in ok.columns]
    keys = degradation_columns(ok) + ["mode"]
    out = []
    for key, group in ok.groupby(keys, sort=True, dropna=False):
        rows = []
        for label in _method_order(group):
            g = group[group["label"] == label]
            row = {"method": label, "family": g["family"].iloc[0], "n": len(g)}
            for m in metrics + ["runtime_s"]:
                ci = bootstrap_mean_ci(g[m].astype(float), seed=seed, n_resamples=n_resamples)
                row[m] = format_ci(ci.mean, ci.low, ci.high, _DIGITS.get(m, 3))
            rows.append(row)
        out.append((dict(zip(keys, key)), pd.DataFrame(rows)))
    return out


def _interval(ci, digits: int) -> str:
    if ci.n == 0:
        return "–"
    if not (np.isfinite(ci.low) and np.isfinite(ci.high)):
        return f"n={ci.n}: none" if ci.n < 2 else "none"
    return f"[{ci.low:.{digits}f}, {ci.high:.{digits}f}]"


def overview_table(df: pd.DataFrame, *, seed: int = 0, n_resamples: int = 9999) -> pd.DataFrame:
    """Per method and mode over all cases: mean PSNR (95 % CI), SAM, SSIM, gain over the floor on the
    same case (paired 95 % CI; the floor needs no knowledge, so its run in any mode counts), PSNR
    wins and mean PSNR rank among the methods of the mode, mean runtime.

    Parameters
    ----------
    df : DataFrame
        Results table of :func:`load_results`.
    seed, n_resamples : int
        Bootstrap seed and resamples.

    Returns
    -------
    DataFrame
        One row per (method, mode), sorted by mode then mean rank.

    Example
    -------
    >>> overview_table(df)[["method", "mode", "PSNR"]]  # doctest: +SKIP
    """
    ok = df[df["status"] == "ok"].copy()
    if ok.empty or "psnr" not in ok:
        return pd.DataFrame()
    cases = case_columns(ok) + ["mode"]
    ok["rank"] = ok.groupby(cases, dropna=False)["psnr"].rank(ascending=False, method="min")
    best = ok.groupby(cases, dropna=False)["psnr"].transform("max")
    ok["win"] = ok["psnr"] == best
    ok["gain"] = floor_gain(ok, "psnr")
    floors = sorted(ok.loc[ok["family"] == "floor", "label"].unique())
    floor = "upsample" if "upsample" in floors or not floors else floors[0]
    rows = []
    for (label, mode), g in ok.groupby(["label", "mode"]):
        psnr = bootstrap_mean_ci(g["psnr"], seed=seed, n_resamples=n_resamples)
        gain = bootstrap_mean_ci(g["gain"].astype(float), seed=seed, n_resamples=n_resamples)
        rows.append({
            "method": label, "mode": mode, "family": g["family"].iloc[0], "cases": len(g),
            "PSNR": round(psnr.mean, 2), "PSNR 95% CI": _interval(psnr, 2),
            "SAM": round(g["sam"].mean(), 2) if "sam" in g else None,
            "SSIM": round(g["ssim"].mean(), 4) if "ssim" in g else None,
            f"gain over {floor} (dB)": round(gain.mean, 2) if gain.n else None,
            "gain 95% CI": _interval(gain, 2),
            "PSNR wins": int(g["win"].sum()), "mean PSNR rank": round(g["rank"].mean(), 2),
            "runtime (s)": round(g["runtime_s"].mean(), 2),
        })
    return pd.DataFrame(rows).sort_values(["mode", "mean PSNR rank"]).reset_index(drop=True)


def training_table(rows: Iterable[dict]) -> pd.DataFrame:
    """Iterative nets: iterations run, measured seconds per iteration (per stage) and the wall
    time their preset's full budget would take at that rate (projected, one job's threads).

    The budget is read from each row (``method_config.params``: the preset with the study's
    overrides, as the job ran it), so the report needs only the results store.

    Parameters
    ----------
    rows : iterable of dict
        Result rows.

    Returns
    -------
    DataFrame
        One row per job of an iterative net (empty when there is none).

    Example
    -------
    >>> training_table(ResultStore("results/nets").rows())  # doctest: +SKIP
    """
    out = []
    for r in rows:
        info = r.get("info") or {}
        if r.get("status") != "ok" or not info.get("seconds_per_iteration"):
            continue
        params = (r.get("method_config") or {}).get("params") or {}
        budget, budget1 = params.get("iterations"), int(params.get("stage1_iterations") or 0)
        spi, spi1 = float(info["seconds_per_iteration"]), float(info.get("stage1_seconds_per_iteration") or 0.0)
        projected = spi * budget + spi1 * budget1 if budget else float("nan")
        out.append({
            "method": r.get("label") or r["method"], "preset": r.get("preset"), "mode": r.get("mode"),
            "scale": r.get("scale"),
            "iterations run": int(info.get("iterations", 0)) + int(info.get("stage1_iterations") or 0),
            "stopped": info.get("stopped"), "s/iteration": round(spi, 3),
            "stage-1 s/iteration": round(spi1, 4) if spi1 else "–",
            "preset budget": (f"{budget1} + {budget}" if budget1 else budget) if budget else "not recorded",
            "projected full budget (h)": round(projected / 3600, 2),
            "runtime (s)": round(float(r.get("runtime_s") or 0.0), 1),
        })
    if not out:
        return pd.DataFrame()
    return pd.DataFrame(out).sort_values(["method", "preset", "scale"]).reset_index(drop=True)


def _deviation_items(v) -> list[str]:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return []
    if isinstance(v, str):
        return [v] if v.strip() else []
    if isinstance(v, dict):
        return [f"{k}: {x}" for k, x in v.items()]
    if isinstance(v, (list, tuple)):
        return [x for item in v for x in _deviation_items(item)]
    return [str(v)]


def deviation_notes(df: pd.DataFrame) -> list[str]:
    """One line per method listing the recorded ``deviations`` of its rows, deduplicated; modes whose
    lists are identical share one line (``"hyconet[small] (blind, oracle): ..."``).

    Parameters
    ----------
    df : DataFrame
        Results table (or a slice of it, e.g. one degradation); without a ``deviations`` column
        the answer is empty.

    Returns
    -------
    list of str
        One line per method and group of modes with the same deviations, modes in the report's order.

    Example
    -------
    >>> rows = pd.DataFrame({"label": ["m", "m", "m"], "mode": ["oracle", "blind", "estimated"],
    ...                      "deviations": [["a", "b"], ["a", "b"], ["a"]]})
    >>> deviation_notes(rows)
    ['m (oracle, blind): a; b', 'm (estimated): a']
    """
    if "deviations" not in df:
        return []
    out = []
    for label, g in df.groupby("label", sort=True):
        by_items: dict[tuple, list[str]] = {}
        for mode in ordered_modes(g["mode"].unique()):
            rows = g[g["mode"] == mode]
            items = tuple(dict.fromkeys(x for v in rows["deviations"] for x in _deviation_items(v)))
            if items:
                by_items.setdefault(items, []).append(mode)
        out += [f"{label} ({', '.join(modes)}): " + "; ".join(items) for items, modes in by_items.items()]
    return out


def failure_table(df: pd.DataFrame) -> pd.DataFrame:
    """Failed and not-applicable jobs with their degradation and error."""
    bad = df[df["status"].isin(["failed", "not_applicable"])]
    cols = ["label", "mode", "status", "scene_name", *degradation_columns(df), "seed", "error_type", "error"]
    return bad[[c for c in cols if c in bad]].reset_index(drop=True)


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (no extra dependency)."""
    if df.empty:
        return "_(none)_"
    cols = list(df.columns)
    esc = lambda v: str(v).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(esc(c) for c in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(esc(r[c]) for c in cols) + " |")
    return "\n".join(lines)


def mode_gap_table(df: pd.DataFrame, metric: str = "psnr") -> pd.DataFrame:
    """Per method and degradation case, ``metric`` (mean over scenes and seeds) in each knowledge mode
    side by side, with each mode's gap to oracle; empty when fewer than two modes were run.

    Parameters
    ----------
    df : DataFrame
        From :func:`load_results`.
    metric : str
        The metric column (default PSNR).

    Returns
    -------
    DataFrame
        Columns: method, case, one column per mode, and ``<mode> − oracle`` for every other mode.

    Example
    -------
    >>> mode_gap_table(load_results("results/mismatch"))  # doctest: +SKIP
    """
    ok = df[df["status"] == "ok"] if "status" in df else df
    if ok.empty or metric not in ok or ok["mode"].nunique() < 2:
        return pd.DataFrame()
    order = ordered_modes(ok["mode"])
    case = ok.apply(lambda r: " ".join(x for x in (f"×{r['scale']}", str(r["kernel"]), str(r["sensor"]),
                                                       f"SNR {format_snr(r['snr_hs'])}/{format_snr(r['snr_ms'])}",
                                                       r.get("variant") or "") if x),
                    axis=1)
    ok = ok.assign(case=case)
    piv = ok.pivot_table(index=["label", "case"], columns="mode", values=metric, aggfunc="mean")
    piv = piv[[m for m in order if m in piv.columns]]
    digits = _DIGITS.get(metric, 3)
    rows = []
    for label in _method_order(ok):
        if label not in piv.index.get_level_values(0):
            continue
        for case_name, vals in piv.loc[label].iterrows():
            row = {"method": label, "case": case_name}
            for m in piv.columns:
                row[m] = "–" if pd.isna(vals[m]) else round(float(vals[m]), digits)
            if "oracle" in piv.columns:
                for m in piv.columns:
                    if m != "oracle":
                        gap = vals[m] - vals["oracle"]
                        row[f"{m} − oracle"] = "–" if pd.isna(gap) else round(float(gap), digits)
            rows.append(row)
    return pd.DataFrame(rows)


def scene_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per method and knowledge mode, each scene's headline score side by side (mean over its cases):
    PSNR where the scene has a reference, QNR where it has none (a real pair at full resolution).
    Empty when the results hold a single scene.

    Parameters
    ----------
    df : DataFrame
        From :func:`load_results`.

    Returns
    -------
    DataFrame
        Columns: method, mode, then ``<scene> (psnr)`` or ``<scene> (qnr)`` per scene.

    Example
    -------
    >>> scene_table(load_results("results/paris_real"))  # doctest: +SKIP
    """
    ok = df[df["status"] == "ok"] if "status" in df else df
    if ok.empty or ok["scene_name"].nunique() < 2:
        return pd.DataFrame()
    cols = {}
    for scene, g in ok.groupby("scene_name", sort=True):
        metric = "psnr" if "psnr" in g and g["psnr"].notna().any() else ("qnr" if "qnr" in g and g["qnr"].notna().any() else None)
        if metric is None:
            continue
        cols[f"{scene} ({metric})"] = g.groupby(["label", "mode"])[metric].mean().round(_DIGITS.get(metric, 3))
    if not cols:
        return pd.DataFrame()
    out = pd.DataFrame(cols)
    order = {lab: i for i, lab in enumerate(_method_order(ok))}
    out = out.reset_index().rename(columns={"label": "method"})
    out = out.sort_values(["mode", "method"], key=lambda c: c.map(order) if c.name == "method" else c)
    return out.fillna("–").reset_index(drop=True)
