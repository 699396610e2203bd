"""Assemble the Markdown + HTML report of a results store: overview, paired comparisons, rank
stability, knowledge-mode gaps, degradation-estimation leaderboard, quality/runtime front, tables
per degradation, robustness plots and visual panels. The report reads only the results store."""
from __future__ import annotations

import html
import math
import re
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import staged_folder
from ..study.store import ResultStore, StoreWarning, code_id_of
from .findings import findings_section
from .plots import pareto_plot, robustness_plots, visual_panels
from .stats import (
    degradation_columns, estimation_leaderboard, format_snr, knowledge_gap, paired_comparison, rank_flips, rank_stability,
)
from .tables import (
    degradation_extras, deviation_notes, failure_table, load_results, markdown_table, mode_gap_table, overview_table, scene_table,
    summary_tables, training_table,
)

__all__ = ["make_report"]

#: Seed of every bootstrap in a report (the same store gives the same report).
REPORT_SEED = 0

_CI_NOTE = ("Brackets are 95 % bootstrap confidence intervals of the mean (BCa, 9999 resamples of the cases, seed "
            f"{REPORT_SEED}); a case is one scene × degradation × seed; with a single case there is no interval.")
_TRAIN_NOTE = ("Seconds per iteration are measured in each job (mean over the iterations it ran, on the job's "
               "threads); the projection multiplies them by the preset's full budget (stage 1 + stage 2 for "
               "two-stage nets), as if every iteration were run and no plateau stop fired.")


#: Rank flips listed in the report (the rest go to ``rank_flips.csv``).
MAX_FLIPS_LISTED = 12


def _heading(key: dict) -> str:
    out = (f"×{key['scale']}, kernel `{key['kernel']}`, sensor `{key['sensor']}`, SNR LrHSI {format_snr(key['snr_hs'])} dB / "
           f"HrMSI {format_snr(key['snr_ms'])} dB")
    return ", ".join([out, *degradation_extras(key, code=True)]) + f", knowledge `{key['mode']}`"


def _num(v, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.{digits}f}"


def _p(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.2g}" if v >= 0.001 else "< 0.001"


def _verdict(r, better_word: str = "better") -> str:
    lo, hi = r["ci_low"], r["ci_high"]
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "no interval (n < 2)"
    if hi < 0:
        return f"{r['reference']} {better_word}"
    if lo > 0:
        return f"{r['label']} {better_word}"
    return "not distinguishable (CI spans 0)"


def _comparison_table(t: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "method": t["label"], "against": t["reference"], "cases": t["n"],
        "mean ΔPSNR (dB)": t["mean_diff"].map(_num),
        "95% CI": [f"[{_num(a)}, {_num(b)}]" if np.isfinite(a) and np.isfinite(b) else "–"
                   for a, b in zip(t["ci_low"], t["ci_high"])],
        "wins / ties / losses": [f"{w} / {ti} / {lo}" for w, ti, lo in zip(t["wins"], t["ties"], t["losses"])],
        "Wilcoxon p": t["wilcoxon_p"].map(_p),
        "verdict": [_verdict(r) for _, r in t.iterrows()],
    })


def _stability_table(stab: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    """One row per degradation, τ and the best method per mode side by side."""
    wide = stab.assign(tau=stab["tau"].map(_num)).pivot(index=cols, columns="mode", values=["tau", "best"])
    wide.columns = [f"{'τ' if k == 'tau' else 'best'} ({mode})" for k, mode in wide.columns]
    order = [c for mode in sorted(stab["mode"].unique()) for c in (f"τ ({mode})", f"best ({mode})")]
    return wide[order].reset_index().fillna("–")


def _varying(df: pd.DataFrame) -> list[str]:
    return [c for c in degradation_columns(df) if df[c].nunique(dropna=False) > 1]


def _grid_order(store: ResultStore) -> dict:
    """The text axes of the study grid in the order the study file lists them (kernels, sensors), for
    the plots' x axes; empty when the store has no readable study file."""
    grid = (store.study() or {}).get("grid")
    if not isinstance(grid, dict):
        return {}
    return {k: [str(v) for v in vals] for k, vals in grid.items() if isinstance(vals, list) and k in ("kernel", "sensor")}


def _missing_planned(df: pd.DataFrame, store: ResultStore) -> tuple[int, int] | None:
    """(jobs of the latest run's plan without a row, planned jobs), or None when every planned job
    has a row or the store records no plan."""
    plan = store.plan()
    if not plan:
        return None
    have = set(df["job_id"].astype(str)) if "job_id" in df else set()
    missing = sum(1 for i in plan if i not in have)
    return (missing, len(plan)) if missing else None


def _sections(df: pd.DataFrame, rows: list[dict], store: ResultStore, out: Path, title: str) -> list[tuple]:
    """The report as blocks: ("h", level, text), ("p", text), ("table", DataFrame), ("list", items), ("img", path)."""
    ok = df[df["status"] == "ok"]
    first_ok = next((r for r in rows if r.get("status") == "ok"), rows[0])
    counts = df["status"].value_counts().to_dict()
    b: list[tuple] = [("h", 1, title)]
    b.append(("p", f"{len(df)} jobs: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) +
              f". Scenes: {', '.join(sorted(str(x) for x in df['scene_name'].dropna().unique()))}. Seeds: {sorted(df['seed'].unique().tolist())}."))
    missing = _missing_planned(df, store)
    if missing:
        b.append(("p", f"**Partial results: {missing[0]} of the study's {missing[1]} planned jobs are not in the store "
                       "yet** (its run has not finished); every number below covers only the jobs that are."))
    v = first_ok.get("versions", {})
    b.append(("p", "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if k not in ("platform", "conventions")) +
              f"; conventions {first_ok.get('conventions_version')}; metric preset `{first_ok.get('metric_preset', 'n/a')}`."))
    b.append(("p", _CI_NOTE))

    b += [("h", 2, "Overview (all cases, per knowledge mode)"),
          ("p", "Wins and ranks are counted per case by PSNR among the methods of a mode; the gain is PSNR minus "
                "the floor method on the same case (the floor needs no knowledge of the degradation, so its output "
                "is the same in every mode and its run in any mode is used)."),
          ("table", overview_table(df, seed=REPORT_SEED))]
    notes = deviation_notes(ok)
    if notes:
        b += [("p", "Deviations recorded by the jobs:"), ("list", notes)]
    b += findings_section(df, "psnr", seed=REPORT_SEED)
    per_scene = scene_table(df)
    if not per_scene.empty:
        b += [("h", 2, "Per scene"),
              ("p", "Mean over each scene's cases: PSNR (dB) where the scene has a reference, QNR where it has none "
                    "(a real pair at full resolution)."),
              ("table", per_scene)]
    gap_cases = mode_gap_table(df)
    if not gap_cases.empty:
        b += [("h", 2, "Knowledge modes side by side, per case (PSNR, dB)"),
              ("p", "Per method and degradation case, mean PSNR over scenes and seeds in each knowledge mode, and each "
                    "mode's gap to oracle (what not knowing the PSF/SRF costs)."),
              ("table", gap_cases)]

    if not ok.empty and "psnr" in ok:
        comp = paired_comparison(df, "psnr", seed=REPORT_SEED)
        if not comp.empty:
            b += [("h", 2, "Is A better than B? (paired, against the best method of each mode)"),
                  ("p", "ΔPSNR = method − best method of the mode, on the cases both ran. Wins: cases where the method "
                        "is better. The Wilcoxon signed-rank p-value is given from 6 paired cases on. A gap is real "
                        "when its confidence interval excludes 0.")]
            for mode, t in comp.groupby("mode", sort=True):
                b += [("h", 3, f"knowledge `{mode}`"), ("table", _comparison_table(t))]

        if _varying(ok):
            stab = rank_stability(df, "psnr")
            flips = rank_flips(df, "psnr")
            cols = _varying(ok)
            b += [("h", 2, "Rank stability across the degradation grid"),
                  ("p", "Kendall's τ between the PSNR ranking of the methods at each degradation (mean over scenes and "
                        "seeds) and their overall ranking (mean over all cases): 1 = same order, −1 = reversed."),
                  ("table", _stability_table(stab, cols))]
            if flips.empty:
                b.append(("p", "No ranking flips: every pair of methods keeps its overall order at every degradation."))
            else:
                shown = flips.head(MAX_FLIPS_LISTED)
                b += [("p", "Where rankings flip (mean PSNR over scenes and seeds), largest flip first (\"by up to\": "
                            "the loser's largest lead at one degradation of the region):"),
                      ("list", [f"`{r['mode']}`: {r['statement']}, by up to {r['margin']:.2f} dB "
                                f"({r['flips']} of {r['degradations']} degradations)"
                                for _, r in shown.iterrows()])]
                if len(flips) > len(shown):
                    flips.to_csv(out / "rank_flips.csv", index=False)
                    b.append(("p", f"{len(flips) - len(shown)} smaller flips (by up to "
                                   f"{flips['margin'].iloc[len(shown)]:.2f} dB) are listed in `rank_flips.csv`."))

        gap = knowledge_gap(df, "psnr", "oracle", seed=REPORT_SEED)
        if not gap.empty:
            b += [("h", 2, "What knowing the degradation is worth (oracle vs other modes)"),
                  ("p", "ΔPSNR = mode − oracle for the same method on the same cases (negative: the method loses that "
                        "much without the true PSF/SRF)."),
                  ("table", pd.DataFrame({
                      "method": gap["label"], "mode": gap["mode"], "cases": gap["n"],
                      "mean ΔPSNR vs oracle (dB)": gap["mean_diff"].map(_num),
                      "95% CI": [f"[{_num(a)}, {_num(c)}]" if np.isfinite(a) and np.isfinite(c) else "–"
                                 for a, c in zip(gap["ci_low"], gap["ci_high"])]}))]

    lead = estimation_leaderboard(df)
    if not lead.empty:
        cols = [c for c in ("mode", *_varying(ok), "label", "n", "psf_error", "srf_error", "estimator_psf_error",
                            "estimator_srf_error") if c in lead]
        shown = lead[cols].copy()
        for c in ("psf_error", "srf_error", "estimator_psf_error", "estimator_srf_error"):
            if c in shown:
                shown[c] = shown[c].map(lambda x: _num(x, 3))
        b += [("h", 2, "Degradation estimation (PSF and SRF relative error)"),
              ("p", "Relative Frobenius error ‖estimate − truth‖ / ‖truth‖ of the PSF and SRF each method ended with "
                    "(learned where it learns them, else the estimator's), mean over scenes and seeds; "
                    "`estimator_*`: the estimator's start where a method refined it."),
              ("table", shown.rename(columns={"label": "method"}))]

    pareto = pareto_plot(df, out / "plots", seed=REPORT_SEED)
    if pareto is not None:
        b += [("h", 2, "Quality against runtime"),
              ("p", "Mean PSNR over each method's cases (95 % CI) against its mean wall time per job; the grey line "
                    "joins the methods nothing else beats on both (the floor is drawn in every mode)."),
              ("img", pareto)]

    b += [("h", 2, "Results per degradation"),
          ("p", "Mean [95 % CI] over scenes and seeds (n = cases). Families: floor, classical, deep.")]
    for key, table in summary_tables(df, seed=REPORT_SEED):
        b += [("h", 3, _heading(key)), ("table", table)]
        sel = ok
        for k, val in key.items():
            sel = sel[sel[k] == val] if not (isinstance(val, float) and math.isnan(val)) else sel[sel[k].isna()]
        notes = deviation_notes(sel)
        if notes:
            b += [("p", "Deviations:"), ("list", notes)]

    plots = robustness_plots(df, out / "plots", seed=REPORT_SEED, level_order=_grid_order(store))
    if plots:
        b += [("h", 2, "Robustness plots"),
              ("p", "One panel per knowledge mode; a colour and marker per method (the same in every plot), a line "
                    "style per family (dotted: floor, solid: classical, dashed: deep); error bars: 95 % CI. The floor needs no "
                    "knowledge, so it is drawn in every panel from whichever mode it ran in.")]
        b += [("img", p) for p in plots]
    panels = visual_panels(store, df, out / "plots")
    if panels:
        b += [("h", 2, "Visual panels"),
              ("p", "False colour from three bands; bottom row: mean absolute error over bands (common scale).")]
        b += [("img", p) for p in panels]
    train = training_table(rows)
    if not train.empty:
        b += [("h", 2, "Training budgets (iterative nets)"), ("p", _TRAIN_NOTE), ("table", train)]
    fails = failure_table(df)
    b += [("h", 2, "Failures and non-applicable jobs"), ("table", fails)]
    defs = first_ok.get("metric_definitions") or {}
    if defs:
        b += [("h", 2, "Metric definitions"), ("list", [f"**{k}**: {d}" for k, d in defs.items()])]
    return b


def make_report(results: str | Path, out_dir: str | Path | None = None, title: str | None = None) -> Path:
    """Write report.md, report.html, results.csv and PNG plots/panels of a results store.

    Everything is built in a temporary folder beside the destination and moved in file by file
    with ``os.replace`` (report.md last), so a failed report leaves the destination as it was.
    Corrupt job files are named in a warning and skipped; rows computed by different code
    versions are flagged (a warning and a note in the report).

    Parameters
    ----------
    results : path
        A results store folder (with ``jobs/``).
    out_dir : path, optional
        Report folder (default ``<results>/report``).
    title : str, optional
        Report title (default from the study name).

    Returns
    -------
    Path
        The Markdown report.

    Raises
    ------
    FileNotFoundError
        ``results`` is not a results store.
    ValueError
        The store holds no finished job.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from hsibench.study import run_study, study_from_dict
    >>> study = study_from_dict({"scenes": ["synthetic:32x8:0"], "grid": {"scale": [2]},
    ...                          "methods": [{"name": "upsample", "modes": ["blind"]}],
    ...                          "save_outputs": "none"})
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = run_study(study, Path(tmp) / "res", threads=1, progress=False)
    ...     md = make_report(Path(tmp) / "res", Path(tmp) / "rep")
    ...     names = sorted(p.name for p in md.parent.iterdir() if p.is_file())
    >>> names
    ['report.html', 'report.md', 'results.csv']
    """
    store = ResultStore(results)
    if not store.jobs_dir.is_dir():
        raise FileNotFoundError(f"no results store at {results} (expected a jobs/ folder)")
    out = Path(out_dir) if out_dir else store.root / "report"
    with staged_folder(out, last=("report.md",)) as tmp:
        _write_report(store, results, tmp, title)
    return out / "report.md"


def _mixed_versions(rows: list[dict], results) -> str | None:
    ids = Counter(code_id_of(r) for r in rows)
    if len(ids) <= 1:
        return None
    parts = ", ".join(f"{n} rows from {cid}" for cid, n in ids.most_common())
    note = (f"the results mix {len(ids)} code versions ({parts}); numbers from different versions may not be "
            "comparable: `hsibench run STUDY --out RESULTS --rerun-stale` recomputes the rows of older versions")
    warnings.warn(f"{results}: {note}", StoreWarning, stacklevel=3)
    return note


def _write_report(store: ResultStore, results, out: Path, title: str | None) -> None:
    rows = list(store.rows())
    out.mkdir(parents=True, exist_ok=True)
    df = load_results(rows)
    if df.empty:
        raise ValueError(f"the results store {results} holds no finished job")
    csv = df.drop(columns=[c for c in ("case_id",) if c in df and df[c].isna().all()])
    csv.to_csv(out / "results.csv", index=False)
    first_ok = next((r for r in rows if r.get("status") == "ok"), rows[0])
    title = title or f"hsibench report: {first_ok.get('study', 'study')}"
    blocks = _sections(df, rows, store, out, title)
    mixed = _mixed_versions(rows, results)
    if mixed:
        blocks.insert(2, ("p", f"**Mixed code versions**: {mixed}."))
    (out / "report.md").write_text(_markdown(blocks, out))
    (out / "report.html").write_text(_html(blocks, out, title))


def _markdown(blocks: list[tuple], out: Path) -> str:
    md = []
    for b in blocks:
        if b[0] == "h":
            md += ["#" * b[1] + " " + b[2], ""]
        elif b[0] == "p":
            md += [b[1], ""]
        elif b[0] == "table":
            md += [markdown_table(b[1]), ""]
        elif b[0] == "list":
            md += [f"- {x}" for x in b[1]] + [""]
        elif b[0] == "img":
            md += [f"![{b[1].stem}]({b[1].relative_to(out).as_posix()})", ""]
    return "\n".join(md)


_CSS = ("body{font-family:sans-serif;max-width:1300px;margin:auto;padding:0 1em}"
        "table{border-collapse:collapse;font-size:12px;margin:0.5em 0}td,th{border:1px solid #ccc;padding:2px 6px}"
        "td{white-space:nowrap}th{background:#eee}table.sortable th{cursor:pointer}table.sortable th:hover{background:#ddd}"
        "img{max-width:100%;display:block;margin:0.5em 0}code{background:#f4f4f4}")
#: Click a header to sort its table (numbers numerically, the rest as text); click again to reverse.
_SORT_JS = """
document.querySelectorAll('table.sortable').forEach(function(t){
  t.querySelectorAll('thead th').forEach(function(th, i){
    th.title = 'click to sort';
    th.addEventListener('click', function(){
      var body = t.tBodies[0], rows = Array.prototype.slice.call(body.rows), asc = th.dataset.asc !== '1';
      th.dataset.asc = asc ? '1' : '0';
      var key = function(r){ var s = r.cells[i].textContent.trim(), n = parseFloat(s); return isNaN(n) ? s : n; };
      rows.sort(function(a, b){
        var x = key(a), y = key(b), c;
        if (typeof x === typeof y) { c = x < y ? -1 : (x > y ? 1 : 0); } else { c = typeof x === 'number' ? -1 : 1; }
        return asc ? c : -c;
      });
      rows.forEach(function(r){ body.appendChild(r); });
    });
  });
});
"""


def _inline(text: str) -> str:
    s = html.escape(text)
    s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", s)


def _html(blocks: list[tuple], out: Path, title: str) -> str:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{_CSS}</style></head><body>"]
    for b in blocks:
        if b[0] == "h":
            parts.append(f"<h{b[1]}>{_inline(b[2])}</h{b[1]}>")
        elif b[0] == "p":
            parts.append(f"<p>{_inline(b[1])}</p>")
        elif b[0] == "table":
            parts.append(b[1].to_html(index=False, border=0, classes="sortable") if not b[1].empty else "<p>none</p>")
        elif b[0] == "list":
            parts.append("<ul>" + "".join(f"<li>{_inline(x)}</li>" for x in b[1]) + "</ul>")
        elif b[0] == "img":
            rel = b[1].relative_to(out).as_posix()
            parts.append(f"<img src='{html.escape(rel)}' alt='{html.escape(b[1].stem)}'>")
    parts.append(f"<script>{_SORT_JS}</script></body></html>")
    return "\n".join(parts)
