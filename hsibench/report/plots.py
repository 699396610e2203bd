"""Robustness plots (each metric against scale, SNR and kernel) and visual panels, as PNG."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..study.store import ResultStore
from .tables import HIGHER_IS_BETTER, _method_order

__all__ = ["robustness_plots", "visual_panels", "false_colour"]

AXES = {"scale": "scale factor s", "snr_hs": "LrHSI SNR (dB)", "snr_ms": "HrMSI SNR (dB)", "kernel": "PSF kernel", "sensor": "MS sensor"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def robustness_plots(df: pd.DataFrame, out_dir: Path, metrics=("psnr", "sam", "ergas", "ssim")) -> list[Path]:
    """One figure per (metric, axis with ≥ 2 values): mean over the other axes, a line per method and mode."""
    plt = _plt()
    ok = df[df["status"] == "ok"]
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for axis, axis_label in AXES.items():
        if axis not in ok or ok[axis].nunique() < 2:
            continue
        if axis == "snr_ms" and _paired(ok, "snr_hs", "snr_ms"):
            continue  # the paired SNR axis is already plotted against the LrHSI SNR
        sub, at_base = _along(ok, axis)
        values = sorted(sub[axis].unique(), key=lambda v: (isinstance(v, str), v))
        if len(values) < 2:
            continue
        positions = {v: i for i, v in enumerate(values)}
        for metric in metrics:
            if metric not in sub:
                continue
            fig, ax = plt.subplots(figsize=(6.4, 4.0))
            for label in _method_order(sub):
                for mode, g in sub[sub["label"] == label].groupby("mode"):
                    stats = g.groupby(axis)[metric].agg(["mean", "std"]).reindex(values)
                    x = [positions[v] for v in stats.index]
                    ax.errorbar(x, stats["mean"], yerr=stats["std"].fillna(0), marker="o", capsize=3,
                                label=f"{label} ({mode})", linestyle="--" if g["family"].iloc[0] == "deep" else "-")
            ax.set_xticks(range(len(values)))
            ax.set_xticklabels(["∞" if isinstance(v, float) and np.isinf(v) else f"{v:g}" if isinstance(v, (int, float)) else str(v)
                                for v in values], rotation=20 if axis == "kernel" else 0)
            ax.set_xlabel(axis_label)
            arrow = "↑" if HIGHER_IS_BETTER.get(metric, True) else "↓"
            ax.set_ylabel(f"{metric.upper()} {arrow}")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, ncol=2)
            ax.set_title(f"{metric.upper()} vs {axis_label} (" + ("other axes at their base value; mean ± std over scenes"
                         if at_base else "mean ± std over the other axes") + ")", fontsize=9)
            fig.tight_layout()
            path = out_dir / f"{metric}_vs_{axis}.png"
            fig.savefig(path, dpi=110)
            plt.close(fig)
            paths.append(path)
    return paths


_CASE_AXES = ("scale", "kernel", "sensor", "snr_hs", "snr_ms", "variant")


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
        r0 = g.iloc[0]
        snr = lambda v: "∞" if np.isinf(v) else f"{v:g}"  # noqa: E731
        fig.suptitle(f"{r0['scene_name']}: ×{r0['scale']}, {r0['kernel']}, {r0['sensor']}, SNR hs {snr(r0['snr_hs'])} / ms {snr(r0['snr_ms'])} dB, seed {r0['seed']}", fontsize=9)
        fig.tight_layout()
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"panel_{cid}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths
