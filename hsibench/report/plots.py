"""Robustness plots (each metric against scale, SNR and kernel) and visual panels, as PNG."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..study.store import ResultStore
from .stats import DEGRADATION_FIELDS, HIGHER_IS_BETTER, SNR_AXES, bootstrap_mean_ci, format_snr, pareto_front
from .tables import _method_order, degradation_extras

__all__ = ["robustness_plots", "pareto_plot", "visual_panels", "false_colour", "method_styles"]

AXES = {"scale": "scale factor s", "snr_hs": "LrHSI SNR (dB)", "snr_ms": "HrMSI SNR (dB)", "kernel": "PSF kernel",
        "sensor": "MS sensor", "boundary": "boundary", "noise_per_band": "per-band noise",
        "misregistration": "misregistration (rows, cols px)"}
FAMILY_LINESTYLE = {"floor": ":", "classical": "-", "deep": "--"}
_MARKERS = "osD^vP*X<>hp"
#: Resamples of the bootstrap behind the error bars (many points per figure: fewer than the tables).
_PLOT_RESAMPLES = 1999


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def method_styles(df: pd.DataFrame) -> dict[str, dict]:
    """One colour and marker per method label (stable across every plot of a report), a line style per family.

    Parameters
    ----------
    df : DataFrame
        Results table (``label``, ``family``, ``psnr``).

    Returns
    -------
    dict
        ``label -> {"color", "marker", "linestyle"}`` (matplotlib keyword arguments).

    Example
    -------
    >>> method_styles(df)["gsa"]["marker"]  # doctest: +SKIP
    """
    plt = _plt()
    labels = _method_order(df)
    cmap = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")
    fam = df.groupby("label")["family"].first()
    return {label: {"color": cmap(i % cmap.N), "marker": _MARKERS[i % len(_MARKERS)],
                    "linestyle": FAMILY_LINESTYLE.get(fam.get(label), "-.")} for i, label in enumerate(labels)}


def _tick(axis: str, v) -> str:
    if axis in SNR_AXES:
        return format_snr(v)
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    return f"{v:g}" if isinstance(v, (int, float, np.integer, np.floating)) else str(v)


def _mode_rows(ok: pd.DataFrame, mode: str) -> pd.DataFrame:
    """Rows of ``mode`` plus the floor methods' rows from another mode where the floor did not run in
    this one (a floor needs no knowledge, so its output is the same in every mode)."""
    sub = ok[ok["mode"] == mode]
    floor = ok[(ok["family"] == "floor") & ~ok["label"].isin(sub["label"])]
    if floor.empty:
        return sub
    first = floor.groupby("label")["mode"].transform("first")
    return pd.concat([sub, floor[floor["mode"] == first]])


def _legend(fig, styles: dict, labels: list[str]) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], **styles[m]) for m in labels]
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)


def axis_levels(values, order=None) -> list:
    """The levels of a degradation axis in plotting order: numbers ascending, then text in ``order``
    (e.g. the study file's list) and alphabetically for text ``order`` does not name.

    Example
    -------
    >>> axis_levels(["motion(8,30)", "box", "gauss_fwhm"], ["gauss_fwhm", "box", "motion(8,30)"])
    ['gauss_fwhm', 'box', 'motion(8,30)']
    >>> axis_levels([16, 4, 8])
    [4, 8, 16]
    """
    rank = {str(v): i for i, v in enumerate(order or [])}
    return sorted(values, key=lambda v: (isinstance(v, str), rank.get(str(v), len(rank)) if isinstance(v, str) else 0, v))


def robustness_plots(df: pd.DataFrame, out_dir: Path, metrics=("psnr", "sam", "ergas", "ssim"), seed: int = 0,
                     level_order: dict | None = None) -> list[Path]:
    """One figure per (metric, degradation axis with ≥ 2 values): a panel per knowledge mode, a line per
    method (mean over the other axes, scenes and seeds, with its 95 % bootstrap CI), legend outside.
    ``level_order`` (axis -> values, e.g. the study grid's kernel list) orders a text axis; numbers sort."""
    plt = _plt()
    ok = df[df["status"] == "ok"]
    out_dir.mkdir(parents=True, exist_ok=True)
    styles = method_styles(ok) if not ok.empty else {}
    modes = sorted(ok["mode"].unique()) if not ok.empty else []
    paths = []
    for axis, axis_label in AXES.items():
        if axis not in ok or ok[axis].nunique() < 2:
            continue
        if axis == "snr_ms" and _paired(ok, "snr_hs", "snr_ms"):
            continue  # the paired SNR axis is already plotted against the LrHSI SNR
        sub, at_base = _along(ok, axis)
        values = axis_levels(sub[axis].unique(), (level_order or {}).get(axis))
        if len(values) < 2:
            continue
        positions = {v: i for i, v in enumerate(values)}
        for metric in metrics:
            if metric not in sub:
                continue
            fig, axes = plt.subplots(1, len(modes), figsize=(1.0 + 3.6 * len(modes), 3.8), sharey=True, squeeze=False)
            used = []
            for ax, mode in zip(axes[0], modes):
                msub = _mode_rows(sub, mode)
                for label in _method_order(msub):
                    g = msub[msub["label"] == label]
                    pts = []
                    for v, gv in g.groupby(axis):
                        ci = bootstrap_mean_ci(gv[metric].astype(float), seed=seed, n_resamples=_PLOT_RESAMPLES)
                        pts.append((positions[v], ci.mean, ci.low, ci.high))
                    x, m, lo, hi = (np.array(c, dtype=float) for c in zip(*pts))
                    err = np.nan_to_num(np.stack([m - lo, hi - m]), nan=0.0)
                    ax.errorbar(x, m, yerr=err, capsize=2, markersize=5, linewidth=1.2, **styles[label])
                    used.append(label)
                ax.set_xticks(range(len(values)))
                ax.set_xticklabels([_tick(axis, v) for v in values], rotation=20 if axis in ("kernel", "sensor") else 0, fontsize=8)
                ax.set_xlabel(axis_label)
                ax.set_title(f"knowledge: {mode}", fontsize=9)
                ax.grid(alpha=0.3)
            arrow = "↑" if HIGHER_IS_BETTER.get(metric, True) else "↓"
            axes[0, 0].set_ylabel(f"{metric.upper()} {arrow}")
            over = "other axes at their base value; mean over scenes and seeds" if at_base else \
                "mean over the other axes, scenes and seeds"
            fig.suptitle(f"{metric.upper()} vs {axis_label}: {over} (95 % bootstrap CI)", fontsize=9)
            _legend(fig, styles, [m for m in styles if m in used])
            fig.tight_layout()
            path = out_dir / f"{metric}_vs_{axis}.png"
            fig.savefig(path, dpi=110, bbox_inches="tight")
            plt.close(fig)
            paths.append(path)
    return paths


def pareto_plot(df: pd.DataFrame, out_dir: Path, metric: str = "psnr", seed: int = 0) -> Path | None:
    """Quality against wall time (log axis), a panel per knowledge mode: each method's mean over all its
    cases (95 % bootstrap CI on the quality), the Pareto front (nothing both better and faster) joined."""
    plt = _plt()
    ok = df[(df["status"] == "ok") & df[metric].notna() & df["runtime_s"].notna()] if metric in df else df.iloc[0:0]
    if ok.empty:
        return None
    styles = method_styles(ok)
    modes = sorted(ok["mode"].unique())
    from matplotlib.ticker import LogLocator, NullFormatter

    fig, axes = plt.subplots(1, len(modes), figsize=(1.0 + 3.8 * len(modes), 3.8), sharex=True, sharey=True,
                             squeeze=False)
    higher = HIGHER_IS_BETTER.get(metric, True)
    times = ok.groupby(["mode", "label"])["runtime_s"].mean().clip(lower=1e-3)
    lo, hi = float(times.min()) / 2, float(times.max()) * 2
    if hi / lo < 100:  # at least two decades, so the axis carries decade labels
        mid = math.sqrt(lo * hi)
        lo, hi = mid / 10, mid * 10
    for ax, mode in zip(axes[0], modes):
        sub = _mode_rows(ok, mode)
        labels, q, t = [], [], []
        for label in _method_order(sub):
            g = sub[sub["label"] == label]
            ci = bootstrap_mean_ci(g[metric].astype(float), seed=seed, n_resamples=_PLOT_RESAMPLES)
            rt = max(float(g["runtime_s"].mean()), 1e-3)
            err = np.nan_to_num([[ci.mean - ci.low], [ci.high - ci.mean]], nan=0.0)
            ax.errorbar([rt], [ci.mean], yerr=err, capsize=2, markersize=7, **(styles[label] | {"linestyle": "none"}))
            labels.append(label), q.append(ci.mean), t.append(rt)
        front = pareto_front(q, t, higher_is_better=higher)
        order = np.argsort(np.asarray(t)[front])
        ax.plot(np.asarray(t)[front][order], np.asarray(q)[front][order], color="0.5", linewidth=1, zorder=0,
                label="Pareto front")
        ax.set_xscale("log")
        ax.set_xlim(lo, hi)
        ax.xaxis.set_major_locator(LogLocator(base=10))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("mean wall time per job (s, log)")
        ax.set_title(f"knowledge: {mode}", fontsize=9)
        ax.grid(alpha=0.3, which="major")
    axes[0, 0].set_ylabel(f"{metric.upper()} {'↑' if higher else '↓'}")
    fig.suptitle(f"{metric.upper()} against runtime (grey: Pareto front)", fontsize=9)
    _legend(fig, styles, list(styles))
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"pareto_{metric}_runtime.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


_CASE_AXES = tuple(DEGRADATION_FIELDS)


def _along(ok: pd.DataFrame, axis: str) -> tuple[pd.DataFrame, bool]:
    """The rows to plot against ``axis``: all of them for a full factorial grid; for any other design
    (e.g. one axis at a time) only the rows whose other axes sit at their base value, the value seen
    in the most distinct cases, so a curve never averages over changes of another axis."""
    axes = [a for a in _CASE_AXES if a in ok]
    cases = ok[axes].astype(str).drop_duplicates()
    if len(cases) == int(np.prod([cases[a].nunique() for a in axes])):
        return ok, False
    keep = np.ones(len(ok), dtype=bool)
    for other in axes:
        if other == axis or (axis == "snr_hs" and other == "snr_ms" and _paired(ok, "snr_hs", "snr_ms")):
            continue
        base = cases[other].value_counts().idxmax()
        keep &= (ok[other].astype(str) == base).to_numpy()
    return ok[keep], True


def _paired(df: pd.DataFrame, a: str, b: str) -> bool:
    """True when columns a and b determine each other (one paired axis, not two)."""
    return bool((df.groupby(a)[b].nunique() <= 1).all() and (df.groupby(b)[a].nunique() <= 1).all())


def false_colour(cube: np.ndarray, bands: tuple[int, int, int] | None = None, clip: float | None = None) -> np.ndarray:
    """(rows, cols, 3) image from three bands (default: at 80 %, 50 %, 15 % of the band range), clipped to the 99.5th percentile."""
    L = cube.shape[0]
    if bands is None:
        bands = (int(0.8 * (L - 1)), int(0.5 * (L - 1)), int(0.15 * (L - 1))) if L >= 3 else (0, 0, 0)
    img = np.stack([cube[b] for b in bands], axis=-1).astype(np.float32)
    top = clip if clip is not None else float(np.percentile(img, 99.5)) or 1.0
    return np.clip(img / top, 0, 1)


def degradation_text(r) -> str:
    """A one-line description of a row's degradation (fields at their default value after the SNRs left out)."""
    out = f"×{r['scale']}, {r['kernel']}, {r['sensor']}, SNR hs {format_snr(r['snr_hs'])} / ms {format_snr(r['snr_ms'])} dB"
    return ", ".join([out, *degradation_extras(r)])


def visual_panels(store: ResultStore, df: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Per saved case: ground truth, inputs, every method's output and its error map (mean |error| over bands)."""
    plt = _plt()
    ok = df[(df["status"] == "ok") & df["case_id"].notna()] if "case_id" in df else df.iloc[0:0]
    paths = []
    for cid, g in ok.groupby("case_id"):
        case = store.load_arrays(f"case_{cid}")
        if case is None:
            continue
        gt, lr, msi = case["gt"], case["lr"], case["msi"]
        top = float(np.percentile(false_colour(gt, clip=1.0), 99.5)) or 1.0
        outs = []
        for label in _method_order(g):
            for _, r in g[g["label"] == label].iterrows():
                arr = store.load_arrays(f"out_{r['job_id']}")
                if arr is not None:
                    outs.append((f"{label} ({r['mode']})\n{r.get('psnr', float('nan')):.2f} dB", arr["hr"]))
        ncol = 3 + len(outs)
        fig, axes = plt.subplots(2, ncol, figsize=(2.1 * ncol, 4.6), squeeze=False)
        s = gt.shape[1] // lr.shape[1]
        msi_img = false_colour(msi, (0, min(1, msi.shape[0] - 1), min(2, msi.shape[0] - 1))) if msi.shape[0] >= 3 else np.repeat(msi[0][..., None] / msi.max(), 3, -1)
        tiles = [("ground truth", false_colour(gt, clip=top)), (f"LrHSI (×{s}, nearest)", false_colour(np.kron(lr, np.ones((1, s, s))), clip=top)),
                 ("HrMSI", msi_img)] + [(t, false_colour(o, clip=top)) for t, o in outs]
        errs = [np.mean(np.abs(o - gt), axis=0) for _, o in outs]
        vmax = max([float(np.percentile(e, 99)) for e in errs] + [1e-6])
        for i, (title, img) in enumerate(tiles):
            axes[0, i].imshow(img)
            axes[0, i].set_title(title, fontsize=7)
        for i, e in enumerate(errs):
            im = axes[1, 3 + i].imshow(e, cmap="magma", vmin=0, vmax=vmax)
            axes[1, 3 + i].set_title("mean |error|", fontsize=7)
        for ax in axes.ravel():
            ax.set_xticks([])
            ax.set_yticks([])
        for i in range(3):
            axes[1, i].axis("off")
        if errs:
            fig.colorbar(im, ax=axes[1, 2], fraction=0.9, location="left", label="mean |error| (of [0,1] scale)")
        fig.suptitle(f"{g.iloc[0]['scene_name']}: {degradation_text(g.iloc[0])}, seed {g.iloc[0]['seed']}", fontsize=9)
        fig.tight_layout()
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"panel_{cid}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths
