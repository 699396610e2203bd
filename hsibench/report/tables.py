"""Result tables from a results store: one row per job -> method × metric summaries."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from ..study.store import ResultStore

__all__ = ["load_results", "mode_gap_table", "scene_table", "summary_tables", "overview_table", "failure_table", "training_table", "markdown_table",
           "DEGRADATION_KEYS",
           "METRIC_ORDER", "HIGHER_IS_BETTER"]

DEGRADATION_KEYS = ["scale", "kernel", "sensor", "snr_hs", "snr_ms", "variant", "mode"]
METRIC_ORDER = ["psnr", "sam", "ergas", "ssim", "uiqi", "cc", "rmse", "dd", "qnr", "d_lambda", "d_s"]
HIGHER_IS_BETTER = {"psnr": True, "sam": False, "ergas": False, "ssim": True, "uiqi": True, "cc": True, "rmse": False, "dd": False,
                    "qnr": True, "d_lambda": False, "d_s": False}  # the last three: no-reference (real pairs)
FAMILY_ORDER = {"floor": 0, "classical": 1, "deep": 2}


def _variant(deg: dict) -> str:
    """The degradation options beyond scale/kernel/sensor/SNR that make a case differ ('' if none)."""
    out = []
    shift = deg.get("misregistration") or (0.0, 0.0)
    if any(shift):
        out.append(f"shift({shift[0]:g},{shift[1]:g})")
    if deg.get("srf_sampling", "hs_bands") != "hs_bands":
        out.append(f"srf:{deg['srf_sampling']}")
    return " ".join(out)


def load_results(source: str | Path | Iterable[dict]) -> pd.DataFrame:
    """Flatten result rows (a store folder or an iterable of rows) into a DataFrame, one row per job."""
    rows = ResultStore(source).rows() if isinstance(source, (str, Path)) else source
    flat = []
    for r in rows:
        d = {k: r.get(k) for k in ("job_id", "study", "scene", "scale", "kernel", "sensor", "snr_hs", "snr_ms", "seed",
                                    "method", "label", "preset", "mode", "family", "status", "runtime_s", "peak_rss_mb",
                                    "psf_error", "srf_error", "estimator_psf_error", "estimator_srf_error",
                                    "case_id")}
        d["scene_name"] = r.get("scene_name") or r.get("scene")
        d["variant"] = _variant(((r.get("config") or {}).get("degradation")) or {})
        d["error"] = (r.get("error") or {}).get("message")
        d["error_type"] = (r.get("error") or {}).get("type")
        for k, v in (r.get("metrics") or {}).items():
            d[k] = v
        flat.append(d)
    df = pd.DataFrame(flat)
    if df.empty:
        return df
    df["family"] = df["family"].fillna("unknown")
    for k in ("snr_hs", "snr_ms"):
        df[k] = df[k].astype(float)
    return df


def _fmt(mean: float, std: float, n: int, digits: int) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    if math.isinf(mean):
        return "inf"
    return f"{mean:.{digits}f}" if n <= 1 or not np.isfinite(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


_DIGITS = {"psnr": 2, "sam": 2, "ergas": 3, "ssim": 4, "uiqi": 4, "cc": 4, "rmse": 4, "dd": 4, "runtime_s": 2,
           "qnr": 4, "d_lambda": 4, "d_s": 4}


def _method_order(df: pd.DataFrame) -> list[str]:
    fam = df.groupby("label")["family"].first().map(lambda f: FAMILY_ORDER.get(f, 3))
    psnr = df.groupby("label")["psnr"].mean() if "psnr" in df else pd.Series(0, index=fam.index)
    return sorted(fam.index, key=lambda m: (fam[m], -np.nan_to_num(psnr.get(m, np.nan), nan=-1e9, posinf=1e9)))


def summary_tables(df: pd.DataFrame, metrics: list[str] | None = None) -> list[tuple[dict, pd.DataFrame]]:
    """For each degradation (and knowledge mode): method × metric, mean ± std over scenes and seeds."""
    ok = df[df["status"] == "ok"]
    metrics = [m for m in (metrics or METRIC_ORDER) if m in ok.columns]
    out = []
    for key, group in ok.groupby(DEGRADATION_KEYS, sort=True, dropna=False):
        rows = []
        for label in _method_order(group):
            g = group[group["label"] == label]
            row = {"method": label, "family": g["family"].iloc[0], "n": len(g)}
            for m in metrics + ["runtime_s"]:
                vals = g[m].astype(float)
                row[m] = _fmt(vals.mean(), vals.std(ddof=1) if len(vals) > 1 else float("nan"), len(vals), _DIGITS.get(m, 3))
            rows.append(row)
        out.append((dict(zip(DEGRADATION_KEYS, key)), pd.DataFrame(rows)))
    return out


def overview_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per method and mode over all cases: mean PSNR/SAM, PSNR wins, mean PSNR rank, gain over the floor."""
    ok = df[df["status"] == "ok"].copy()
    if ok.empty or "psnr" not in ok:
        return pd.DataFrame()
    case_cols = ["scene_name", "seed"] + DEGRADATION_KEYS
    ok["rank"] = ok.groupby(case_cols, dropna=False)["psnr"].rank(ascending=False, method="min")
    best = ok.groupby(case_cols, dropna=False)["psnr"].transform("max")
    ok["win"] = ok["psnr"] == best
    floor = ok[ok["method"] == "upsample"].set_index(case_cols)["psnr"]
    ok["gain"] = ok.apply(lambda r: r["psnr"] - floor.get(tuple(r[c] for c in case_cols), np.nan), axis=1) if len(floor) else np.nan
    rows = []
    for (label, mode), g in ok.groupby(["label", "mode"]):
        gains = g["gain"].astype(float).dropna()
        rows.append({
            "method": label, "mode": mode, "family": g["family"].iloc[0], "cases": len(g),
            "PSNR": round(g["psnr"].mean(), 2), "SAM": round(g["sam"].mean(), 2) if "sam" in g else None,
            "SSIM": round(g["ssim"].mean(), 4) if "ssim" in g else None,
            "gain over upsample (dB)": round(float(gains.mean()), 2) if len(gains) else None,
            "PSNR wins": int(g["win"].sum()), "mean PSNR rank": round(g["rank"].mean(), 2),
            "runtime (s)": round(g["runtime_s"].mean(), 2),
        })
    return pd.DataFrame(rows).sort_values(["mode", "mean PSNR rank"]).reset_index(drop=True)


def _preset_budget(method: str, preset: str, params: dict) -> tuple[int | None, int]:
    """(stage-2 iterations, stage-1 iterations) of a net's preset, with the study's overrides."""
    from ..methods import create_method

    try:
        p = {**create_method(method, preset).params, **(params or {})}
    except Exception:  # an unregistered method: no budget to project
        return None, 0
    return p.get("iterations"), int(p.get("stage1_iterations") or 0)


def training_table(rows: Iterable[dict]) -> pd.DataFrame:
    """Iterative nets: iterations run, measured seconds per iteration (per stage) and the wall
    time their preset's full budget would take at that rate (projected, one job's threads)."""
    out = []
    for r in rows:
        info = r.get("info") or {}
        if r.get("status") != "ok" or not info.get("seconds_per_iteration"):
            continue
        params = (r.get("config") or {}).get("params") or {}
        budget, budget1 = _preset_budget(r["method"], r.get("preset") or "default", params)
        spi, spi1 = float(info["seconds_per_iteration"]), float(info.get("stage1_seconds_per_iteration") or 0.0)
        projected = spi * budget + spi1 * budget1 if budget else float("nan")
        out.append({
            "method": r.get("label") or r["method"], "preset": r.get("preset"), "mode": r.get("mode"),
            "scale": r.get("scale"),
            "iterations run": int(info.get("iterations", 0)) + int(info.get("stage1_iterations") or 0),
            "stopped": info.get("stopped"), "s/iteration": round(spi, 3),
            "stage-1 s/iteration": round(spi1, 4) if spi1 else "–",
            "preset budget": f"{budget1} + {budget}" if budget1 else budget,
            "projected full budget (h)": round(projected / 3600, 2),
            "runtime (s)": round(float(r.get("runtime_s") or 0.0), 1),
        })
    if not out:
        return pd.DataFrame()
    return pd.DataFrame(out).sort_values(["method", "preset", "scale"]).reset_index(drop=True)


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
    order = [m for m in ("oracle", "srf_support", "estimated", "blind") if m in set(ok["mode"])]
    snr = lambda v: "∞" if v is None or (isinstance(v, float) and (math.isnan(v) or math.isinf(v))) else f"{v:g}"  # noqa: E731
    case = ok.apply(lambda r: " ".join(x for x in (f"×{r['scale']}", str(r["kernel"]), str(r["sensor"]),
                                                       f"SNR {snr(r['snr_hs'])}/{snr(r['snr_ms'])}", r.get("variant") or "") if x),
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


def failure_table(df: pd.DataFrame) -> pd.DataFrame:
    bad = df[df["status"].isin(["failed", "not_applicable"])]
    cols = ["label", "mode", "status", "scene_name", "scale", "kernel", "snr_hs", "snr_ms", "seed", "error_type", "error"]
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
