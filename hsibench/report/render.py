"""Assemble the Markdown + HTML report of a results store (tables, robustness plots, visual panels)."""
from __future__ import annotations

import html
import math
from pathlib import Path

from ..study.store import ResultStore
from .plots import robustness_plots, visual_panels
from .tables import failure_table, load_results, markdown_table, overview_table, summary_tables, training_table

__all__ = ["make_report"]


def _snr(v) -> str:
    return "∞" if v is None or (isinstance(v, float) and math.isinf(v)) else f"{v:g}"


def _heading(key: dict) -> str:
    return (f"×{key['scale']}, kernel `{key['kernel']}`, sensor `{key['sensor']}`, SNR LrHSI {_snr(key['snr_hs'])} dB / "
            f"HrMSI {_snr(key['snr_ms'])} dB, knowledge `{key['mode']}`")


def make_report(results: str | Path, out_dir: str | Path | None = None, title: str | None = None) -> Path:
    """Write report.md, report.html, results.csv and PNG plots/panels; return the Markdown path."""
    store = ResultStore(results)
    if not store.jobs_dir.is_dir():
        raise FileNotFoundError(f"no results store at {results} (expected a jobs/ folder)")
    store.check()  # a damaged job or arrays file fails here, before anything is written
    out = Path(out_dir) if out_dir else store.root / "report"
    rows = list(store.rows())
    out.mkdir(parents=True, exist_ok=True)
    df = load_results(rows)
    if df.empty:
        raise ValueError(f"the results store {results} holds no finished job")
    df.drop(columns=[c for c in ("case_id",) if c in df and df[c].isna().all()]).to_csv(out / "results.csv", index=False)
    plots = robustness_plots(df, out / "plots")
    panels = visual_panels(store, df, out / "plots")
    first_ok = next((r for r in rows if r.get("status") == "ok"), rows[0])
    title = title or f"hsibench report: {first_ok.get('study', 'study')}"
    counts = df["status"].value_counts().to_dict()

    md = [f"# {title}", ""]
    md.append(f"{len(df)} jobs: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) +
              f". Scenes: {', '.join(sorted(df['scene_name'].astype(str).unique()))}. Seeds: {sorted(df['seed'].unique().tolist())}.")
    v = first_ok.get("versions", {})
    md.append("")
    md.append("Versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if k not in ("platform", "conventions")) +
              f"; conventions {first_ok.get('conventions_version')}; metric preset `{first_ok.get('metric_preset', 'n/a')}`.")
    md += ["", "## Overview (all cases, per knowledge mode)", "",
           "Wins and ranks are counted per case (scene × degradation × seed) by PSNR; gain is PSNR minus `upsample` on the same case.", ""]
    ov = overview_table(df)
    md.append(markdown_table(ov))
    md += ["", "## Results per degradation", "", "Mean ± std over scenes and seeds (n = jobs). Families: floor, classical, deep.", ""]
    for key, table in summary_tables(df):
        md += [f"### {_heading(key)}", "", markdown_table(table), ""]
    if plots:
        md += ["## Robustness plots", ""]
        md += [f"![{p.stem}](plots/{p.name})" for p in plots]
        md.append("")
    if panels:
        md += ["## Visual panels", "", "False colour from three bands; bottom row: mean absolute error over bands (common scale).", ""]
        md += [f"![{p.stem}](plots/{p.name})" for p in panels]
        md.append("")
    train = training_table(rows)
    if not train.empty:
        md += ["## Training budgets (iterative nets)", "", _TRAIN_NOTE, "", markdown_table(train), ""]
    fails = failure_table(df)
    md += ["## Failures and non-applicable jobs", "", markdown_table(fails), ""]
    defs = first_ok.get("metric_definitions") or {}
    if defs:
        md += ["## Metric definitions", ""] + [f"- **{k}**: {d}" for k, d in defs.items()] + [""]
    text = "\n".join(md)
    (out / "report.md").write_text(text)
    (out / "report.html").write_text(_html(title, df, ov, fails, plots, panels, defs, md[2], train))
    return out / "report.md"


_TRAIN_NOTE = ("Seconds per iteration are measured in each job (mean over the iterations it ran, on the job's "
               "threads); the projection multiplies them by the preset's full budget (stage 1 + stage 2 for "
               "two-stage nets), as if every iteration were run and no plateau stop fired.")


def _html(title, df, ov, fails, plots, panels, defs, intro, train=None) -> str:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;max-width:1200px;margin:auto}table{border-collapse:collapse;font-size:12px}"
             "td,th{border:1px solid #ccc;padding:2px 6px}th{background:#eee}img{max-width:100%}</style></head><body>",
             f"<h1>{html.escape(title)}</h1><p>{html.escape(intro)}</p>", "<h2>Overview</h2>", ov.to_html(index=False, border=0),
             "<h2>Results per degradation</h2>"]
    for key, table in summary_tables(df):
        parts += [f"<h3>{html.escape(_heading(key))}</h3>", table.to_html(index=False, border=0)]
    if plots:
        parts.append("<h2>Robustness plots</h2>" + "".join(f"<img src='plots/{p.name}' alt='{p.stem}'>" for p in plots))
    if panels:
        parts.append("<h2>Visual panels</h2>" + "".join(f"<img src='plots/{p.name}' alt='{p.stem}'>" for p in panels))
    if train is not None and not train.empty:
        parts += ["<h2>Training budgets (iterative nets)</h2>", f"<p>{html.escape(_TRAIN_NOTE)}</p>",
                  train.to_html(index=False, border=0)]
    parts += ["<h2>Failures and non-applicable jobs</h2>", fails.to_html(index=False, border=0) if not fails.empty else "<p>none</p>"]
    if defs:
        parts.append("<h2>Metric definitions</h2><ul>" + "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(str(d))}</li>" for k, d in defs.items()) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)
