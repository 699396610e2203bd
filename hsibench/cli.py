"""``hsibench`` command line: list, simulate, fuse, metrics, run, report, demo.

Thin by design: it parses arguments and calls the package. Bad input (a bad argument, file, array
or study) ends with one line on stderr and exit code 2, and nothing written; warnings raised while
a command fails are dropped so they never precede that line (on success they are shown). Set
HSIBENCH_DEBUG=1 for the traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["main"]


class CLIError(ValueError):
    """A user-facing error."""


class UsageError(CLIError):
    """A command line argparse refuses (unknown flag, missing or malformed value)."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: the usage text is not printed; ``main`` reports the message."""

    def error(self, message):  # noqa: D102 - argparse hook
        verb = self.prog.split(" ", 1)[1] + ": " if " " in self.prog else ""
        raise UsageError(f"{verb}{message} (see '{self.prog} --help')")


_F32_MAX = float(np.finfo(np.float32).max)


def _np_load(p: Path, what: str):
    try:
        return np.load(p, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc):
            raise CLIError(f"{what}: {p} is not a readable NumPy file (pickled/object data or not .npy/.npz)") from None
        raise CLIError(f"{what}: {p} is not a readable NumPy file ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise CLIError(f"{what}: {p} is not a readable NumPy file ({type(exc).__name__})") from None


def _check_real(a: np.ndarray, what: str) -> np.ndarray:
    """Refuse non-real dtypes, NaN/Inf and finite values float32 cannot hold."""
    if a.dtype == bool or a.dtype.kind not in "iuf":
        raise CLIError(f"{what}: must hold real numbers, got dtype {a.dtype}")
    if a.size == 0:
        raise CLIError(f"{what}: is empty (shape {a.shape})")
    if a.dtype.kind == "f":
        finite = np.isfinite(a)
        if not finite.all():
            n_nan = int(np.isnan(a).sum())
            raise CLIError(f"{what}: contains {n_nan} NaN and {a.size - int(finite.sum()) - n_nan} Inf values")
        if float(np.abs(a).max()) > _F32_MAX:
            raise CLIError(f"{what}: has finite values beyond the float32 range (max |x| = {float(np.abs(a).max()):.3g} "
                           "> 3.4e38); rescale the data")
    return a


def _load_cube(path: str, what: str) -> np.ndarray:
    """A (bands, rows, cols) cube from .npy/.npz (key 'cube' or the only array) or any scene file."""
    p = Path(path)
    if not p.exists():
        raise CLIError(f"{what}: file not found: {path}")
    if p.is_dir() and p.suffix in (".npy", ".npz"):
        raise CLIError(f"{what}: {path} is a folder, not a NumPy file")
    if p.suffix == ".npy":
        a = _np_load(p, what)
    elif p.suffix == ".npz":
        z = _np_load(p, what)
        with z:
            key = "cube" if "cube" in z.files else (z.files[0] if len(z.files) == 1 else None)
            if key is None:
                raise CLIError(f"{what}: {path} holds {z.files}; expected a 'cube' array")
            try:
                a = z[key]
            except (ValueError, OSError, zipfile.BadZipFile) as exc:
                raise CLIError(f"{what}: array {key!r} of {path} is unreadable ({exc})") from None
    else:
        from .data import load_scene

        a = load_scene(p, normalize=False, drop_constant=False).cube
    a = np.asarray(a)
    if a.size == 0:
        raise CLIError(f"{what}: is empty (shape {a.shape})")
    if a.ndim != 3:
        raise CLIError(f"{what}: expected a (bands, rows, cols) cube, got shape {a.shape}")
    return _check_real(a, what).astype(np.float32, copy=False)


def _load_matrix(path: str | None, what: str) -> np.ndarray | None:
    if path is None:
        return None
    p = Path(path)
    if not p.is_file():
        raise CLIError(f"{what}: file not found: {path}")
    if p.suffix == ".npy":
        a = np.asarray(_np_load(p, what))
    else:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # an empty file warns before it is refused below
                a = np.loadtxt(p, delimiter=",", ndmin=2)
        except ValueError as exc:
            raise CLIError(f"{what}: {path} is not a CSV of numbers ({str(exc).splitlines()[0]})") from None
    if a.ndim != 2:
        raise CLIError(f"{what}: expected a 2-D array, got shape {a.shape}")
    return _check_real(a, what).astype(np.float64)


def _positive_int(v: str) -> int:
    try:
        n = int(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return n


def _nonneg_int(v: str) -> int:
    try:
        n = int(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {v!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {v}")
    return n


def _wavelengths_arg(v: str, bands_hint: int | None = None):
    """``START:STOP`` (nm, evenly spaced over the bands) or a file (.npy, or text/CSV of numbers)."""
    if ":" in v and not Path(v).exists():
        parts = v.split(":")
        try:
            lo, hi = (float(x) for x in parts)
        except ValueError:
            raise CLIError(f"--wavelengths: expected START:STOP in nm or a file, got {v!r}") from None
        if not (np.isfinite(lo) and np.isfinite(hi) and 0 < lo < hi):
            raise CLIError(f"--wavelengths: START:STOP must satisfy 0 < START < STOP (nm), got {v!r}")
        return f"{lo!r}:{hi!r}"
    p = Path(v)
    if not p.is_file():
        raise CLIError(f"--wavelengths: file not found: {v} (or give START:STOP in nm)")
    if p.suffix == ".npy":
        wl = np.asarray(_np_load(p, "--wavelengths"))
    else:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                wl = np.loadtxt(p, delimiter="," if p.suffix == ".csv" else None, ndmin=1)
        except ValueError as exc:
            raise CLIError(f"--wavelengths: {v} is not a list of numbers ({str(exc).splitlines()[0]})") from None
    wl = _check_real(np.asarray(wl), "--wavelengths").astype(np.float64).ravel()
    if np.any(wl <= 0):
        raise CLIError("--wavelengths: wavelengths must be positive (nm)")
    return wl


def _snr_arg(v: str) -> float | None:
    if v.lower() in ("inf", "none", "off"):
        return None
    try:
        return float(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"SNR must be a number of dB or 'inf', got {v!r}") from None


def _param_arg(v: str) -> tuple[str, object]:
    if "=" not in v:
        raise argparse.ArgumentTypeError(f"--param takes KEY=VALUE, got {v!r}")
    k, val = v.split("=", 1)
    try:
        return k, json.loads(val)
    except json.JSONDecodeError:
        return k, val


# --- verbs --------------------------------------------------------------------------------------

def cmd_list(args) -> int:
    what = args.what
    if what == "methods":
        from .methods import method_table

        for m in method_table():
            print(f"{m['name']:<14} {m['family']:<10} modes={','.join(m['modes']):<38} presets={','.join(m['presets'])}")
            print(f"{'':<14} {m['summary'] or m['paper']}")
    elif what in ("psfs", "kernels"):  # "kernels" is the older name of the PSF presets
        from .degrade import list_psfs

        for k, d in list_psfs().items():
            print(f"{k:<16} {d}")
    elif what == "sensors":
        from .degrade import list_sensors

        for k, d in list_sensors().items():
            print(f"{k:<22} {d}")
        print(f"{'gauss:C1,C2,..:FWHM':<22} synthetic Gaussian bands (nm); or a CSV path 'wavelength,band1,...'")
    elif what == "datasets":
        from .data import find_datasets, list_datasets

        found = find_datasets(args.data) if args.data else {}
        for d in list_datasets():
            name = d.get("name")
            ranges = "; ".join(f"{b} bands {lo:g}-{hi:g} nm" for b, (lo, hi) in (d.get("wavelength_range_nm") or {}).items())
            mark = f"\n{'':<18} found: {found[name]}" if name in found else ""
            print(f"{name:<18} {d.get('title', '')}; {ranges}; keys {','.join(d.get('keys') or [])}{mark}")
        print("synthetic          embedded generator: 'synthetic' or 'synthetic:<size>x<bands>[:seed]'")
    return 0


def _check_output(path: Path, folder: bool) -> None:
    """Fail before any work when the output cannot be written where asked."""
    if folder and path.exists() and not path.is_dir():
        raise CLIError(f"-o {path}: exists and is not a folder")
    if not folder and path.is_dir():
        raise CLIError(f"-o {path}: is a folder; give a .npy file name")
    parent = path if folder and path.exists() else path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise CLIError(f"-o {path}: {parent} is not a folder")


def cmd_simulate(args) -> int:
    from .data import load_scene
    from .degrade import Degradation

    out = Path(args.output)
    _check_output(out, folder=True)
    deg = Degradation(scale=args.scale, kernel=args.kernel, sensor=args.sensor, snr_hs=args.snr_hs, snr_ms=args.snr_ms,
                      boundary=args.boundary, srf_sampling=args.srf_sampling)
    wl = _wavelengths_arg(args.wavelengths) if args.wavelengths else None
    layout = args.layout
    if layout is None and not args.scene.strip().lower().startswith("synthetic") and Path(args.scene).suffix in (".npy", ".npz"):
        layout = "CHW"  # NumPy cubes are (bands, rows, cols), as every verb writes and reads them
    scene = load_scene(args.scene, wavelengths=wl, **({"layout": layout} if layout and layout != "auto" else {}))
    scene = scene.crop_to_multiple(args.scale)
    obs = deg.apply(scene.cube, scene.wavelengths, seed=args.seed, key=scene.name)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "gt.npy", scene.cube.astype(np.float32))
    np.save(out / "lr.npy", obs.lr)
    np.save(out / "msi.npy", obs.msi)
    np.save(out / "psf.npy", obs.psf.astype(np.float32))
    np.save(out / "srf.npy", obs.srf.astype(np.float32))
    meta = {"degradation": deg.to_dict(), "seed": args.seed, "scene": scene.to_dict_meta(),
            "layout": "cubes are (bands, rows, cols) float32", "wavelengths": None if scene.wavelengths is None else scene.wavelengths.tolist()}
    from .study.store import jsonable

    (out / "degradation.json").write_text(json.dumps(jsonable(meta), indent=2))
    print(f"wrote {out}/gt.npy {scene.cube.shape}, lr.npy {obs.lr.shape}, msi.npy {obs.msi.shape}, psf.npy {obs.psf.shape}, "
          f"srf.npy {obs.srf.shape}, degradation.json")
    return 0


def cmd_fuse(args) -> int:
    from .methods import Context, create_method
    from .methods.base import check_device

    out = Path(args.output)
    _check_output(out, folder=False)
    check_device(args.device)
    method = create_method(args.method, preset=args.preset, **dict(args.param or []))
    lr = _load_cube(args.lr, "--lr")
    msi = _load_cube(args.msi, "--msi")
    psf = _load_matrix(args.psf, "--psf")
    srf = _load_matrix(args.srf, "--srf")
    if psf is not None:
        from .degrade.psf import check_psf

        check_psf(psf, args.scale)  # 2-D, finite, non-negative, parity; normalised by the method wrapper
        if abs(psf.sum() - 1.0) > 1e-6:
            print(f"note: --psf sums to {psf.sum():.6g}; normalised to 1")
    if srf is not None:
        from .degrade.srf import check_srf

        srf_n, sums = check_srf(srf, (msi.shape[0], lr.shape[0]), "--srf")
        if np.any(np.abs(sums - 1.0) > 1e-6):
            print(f"note: --srf rows sum to {np.array2string(sums, precision=4)}; normalised to 1")
        srf = srf_n
    mode = args.mode or ("oracle" if psf is not None and srf is not None else "blind")
    if mode == "oracle" and (psf is None or srf is None):
        raise CLIError("mode 'oracle' needs both --psf and --srf")
    if mode in ("blind", "estimated") and (psf is not None or srf is not None):
        raise CLIError(f"mode {mode!r} must not be given the PSF/SRF; use --mode oracle")
    coverage = srf > 0 if srf is not None else None
    if mode == "srf_support" and coverage is None:
        raise CLIError("mode 'srf_support' needs --srf (only its support is used)")
    ctx = Context(scale=args.scale, mode=mode, psf=psf if mode == "oracle" else None, srf=srf if mode == "oracle" else None,
                  coverage=coverage if mode in ("oracle", "srf_support") else None, seed=args.seed, device=args.device,
                  iterations=args.iterations, progress=not args.quiet)
    t0 = time.perf_counter()
    result = method(lr, msi, ctx)
    from .xp import to_numpy

    hr = np.asarray(to_numpy(result.hr), dtype=np.float32)
    if out.suffix != ".npy":  # np.save would append it; say where the file really is
        out = out.with_name(out.name + ".npy")
    from .atomic import write_npy

    write_npy(out, hr)
    print(f"{args.method} ({mode}) -> {out} {hr.shape} in {time.perf_counter() - t0:.2f} s")
    return 0


def cmd_metrics(args) -> int:
    from .metrics import compute_metrics

    gt = _load_cube(args.gt, "GT")
    est = _load_cube(args.est, "EST")
    rep = compute_metrics(gt, est, scale=args.scale, preset=args.preset, crop=args.crop)
    if args.json:
        from .study.store import jsonable

        print(json.dumps(jsonable(rep.scalars)))
    else:
        for k, v in rep.scalars.items():
            print(f"{k:<6} {v:.6g}")
    return 0


def cmd_run(args) -> int:
    from .study import StoreLocked, load_study, run_study

    study = load_study(args.study)
    out = Path(args.out) if args.out else Path("results") / study.name
    try:
        summary = run_study(study, out, workers=args.workers, threads=args.threads, retry_failed=args.retry_failed,
                            progress=not args.quiet, cluster=args.cluster, scheduler=args.scheduler,
                            rerun_stale=args.rerun_stale)
    except (StoreLocked, ImportError) as exc:  # another run on --out; --cluster without the extra
        raise CLIError(str(exc)) from exc
    _print_summary(summary, out)
    if args.report:
        from .report import make_report

        print(f"report: {make_report(out, args.report)}")
    return _exit_code(summary)


def _exit_code(summary) -> int:
    """0: every job has a row; 1: some jobs failed (their rows and the report are written); 3: jobs lost."""
    if summary.lost:
        return 3
    return 1 if summary.failed else 0


def _print_summary(summary, out) -> None:
    print(f"{summary.total} jobs: {summary.skipped} already done, {summary.ok} ok, {summary.failed} failed, "
          f"{summary.not_applicable} not applicable, {summary.lost} lost; {summary.wall_s:.1f} s -> {out}")
    if summary.corrupt:
        print(f"  {summary.corrupt} corrupt job file(s) ignored and recomputed")
    if summary.stale:
        print(f"  {summary.stale} stored row(s) come from another code version "
              f"({'recomputed' if summary.rerun_stale else 'kept; --rerun-stale recomputes them'})")
    for f in summary.failures[:20]:
        print(f"  failed: {f}")
    if summary.failed or summary.lost:
        print(f"hsibench: {summary.failed} job(s) failed, {summary.lost} lost", file=sys.stderr)


def cmd_report(args) -> int:
    from .report import make_report

    print(f"report: {make_report(args.results, args.output)}")
    return 0


def _fresh_dir(base: str) -> Path:
    """``base`` if it does not exist yet, else ``base-2``, ``base-3``, ... (never an existing folder)."""
    p = Path(base)
    n = 2
    while p.exists():
        p = Path(f"{base}-{n}")
        n += 1
    return p


def cmd_demo(args) -> int:
    from importlib import resources

    from .report import make_report
    from .study import load_study, run_study

    with resources.as_file(resources.files("hsibench.study.presets") / "demo.toml") as p:
        study = load_study(p)
    if args.data:
        from .data import find_datasets

        found = find_datasets(args.data)
        if not found:
            print(f"no known scene under {args.data}; running on the synthetic scenes only")
        study.scenes += [str(p) for p in found.values()]
    # Never write into an existing report unless asked: by default a fresh ./hsibench-demo[-N] folder.
    fresh = None if (args.out and args.report_dir) else _fresh_dir("hsibench-demo")
    out = Path(args.out) if args.out else fresh / "results"
    report_dir = Path(args.report_dir) if args.report_dir else fresh / "report"
    n_jobs = len(study.jobs())
    print(f"hsibench demo: {n_jobs} jobs ({len(study.methods)} methods, {len(study.degradations)} degradations, one axis "
          f"at a time) -> results {out}, report {report_dir}")
    t0 = time.perf_counter()
    summary = run_study(study, out, workers=args.workers, threads=args.threads, progress=not args.quiet)
    _print_summary(summary, out)
    report = make_report(out, report_dir, title="hsibench demo: classical methods vs deep nets on a synthetic scene")
    print(f"report: {report} ({time.perf_counter() - t0:.1f} s in all)")
    return _exit_code(summary)


# --- parser -------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = _Parser(prog="hsibench", description="Benchmark suite for unsupervised hyperspectral super-resolution.")
    p.add_argument("--version", action="version", version=f"hsibench {__version__}")
    sub = p.add_subparsers(dest="verb", required=True)

    s = sub.add_parser("list", help="list methods, PSF presets (psfs, also 'kernels'), sensors or datasets")
    s.add_argument("what", nargs="?", default="methods", choices=["methods", "psfs", "kernels", "sensors", "datasets"])
    s.add_argument("--data", help="folder to search for known datasets")
    s.set_defaults(func=cmd_list)

    s = sub.add_parser("simulate", help="degrade a scene into LrHSI + HrMSI")
    s.add_argument("scene", help="a scene file any loader reads, or 'synthetic[:<size>x<bands>[:seed]]'")
    s.add_argument("--scale", type=_positive_int, required=True)
    s.add_argument("--kernel", default="gauss_fwhm", help="PSF preset (see 'hsibench list psfs')")
    s.add_argument("--sensor", default="landsat8_bgr")
    s.add_argument("--snr-hs", type=_snr_arg, default=None, help="LrHSI SNR in dB (default: no noise)")
    s.add_argument("--snr-ms", type=_snr_arg, default=None, help="HrMSI SNR in dB (default: no noise)")
    s.add_argument("--boundary", default="symmetric", choices=["symmetric", "circular"])
    s.add_argument("--srf-sampling", default="hs_bands", choices=["hs_bands", "fine"],
                   help="HrMSI from the SRF matrix on the HS bands (default) or the sensor response integrated on a "
                        "1 nm grid (srf.npy is then its best matrix approximation)")
    s.add_argument("--seed", type=_nonneg_int, default=0)
    s.add_argument("--wavelengths", metavar="FILE|START:STOP",
                   help="band centres (nm) for a scene file without them: a .npy/.txt/.csv list, or START:STOP "
                        "spread evenly over the bands (a .npz may also carry a 'wavelengths' array)")
    s.add_argument("--layout", choices=["CHW", "HWC", "HCW", "auto"],
                   help="axis order of the scene file (default: CHW for .npy/.npz, guessed for other formats)")
    s.add_argument("-o", "--output", required=True, help="output folder")
    s.set_defaults(func=cmd_simulate)

    s = sub.add_parser("fuse", help="run one method on an LrHSI/HrMSI pair")
    s.add_argument("--method", required=True)
    s.add_argument("--lr", required=True, help="LrHSI (bands, rows, cols) .npy")
    s.add_argument("--msi", required=True, help="HrMSI (bands, rows, cols) .npy")
    s.add_argument("--scale", type=_positive_int, required=True)
    s.add_argument("--mode", choices=["oracle", "srf_support", "blind", "estimated"])
    s.add_argument("--psf", help="PSF .npy (oracle mode)")
    s.add_argument("--srf", help="SRF .npy, MS bands x HS bands (oracle; its support in srf_support)")
    s.add_argument("--preset", default="default")
    s.add_argument("--param", type=_param_arg, action="append", help="method parameter KEY=VALUE (JSON value)")
    s.add_argument("--seed", type=_nonneg_int, default=0)
    s.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (CUDA must be present)")
    s.add_argument("--iterations", type=_positive_int, default=None)
    s.add_argument("--quiet", action="store_true")
    s.add_argument("-o", "--output", required=True)
    s.set_defaults(func=cmd_fuse)

    s = sub.add_parser("metrics", help="score an estimate against the ground truth")
    s.add_argument("gt")
    s.add_argument("est")
    s.add_argument("--scale", type=_positive_int, required=True)
    s.add_argument("--preset", default="hsibench")
    s.add_argument("--crop", type=_nonneg_int, default=0)
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=cmd_metrics)

    def runner_opts(s, workers=1):
        s.add_argument("--workers", type=_positive_int, default=workers, help=f"local worker processes (default {workers})")
        s.add_argument("--threads", type=_positive_int, default=None, help="threads per worker (default: cores / workers)")
        s.add_argument("--quiet", action="store_true", help="no progress bar")

    s = sub.add_parser("run", help="run a study file (TOML/YAML/JSON) into a results store")
    s.add_argument("study")
    s.add_argument("--out", help="results folder (default results/<study name>)")
    s.add_argument("--retry-failed", action="store_true", help="run failed jobs again")
    s.add_argument("--report", metavar="DIR", help="also write the report to DIR")
    s.add_argument("--rerun-stale", action="store_true", help="recompute rows computed by another code version")
    s.add_argument("--cluster", metavar="local:N", help="run on a Dask LocalCluster of N worker processes "
                   "(needs the 'distributed' extra)")
    s.add_argument("--scheduler", metavar="ADDRESS", help="run on an existing Dask cluster (tcp://host:port)")
    runner_opts(s)
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("report", help="write the Markdown/HTML report of a results store")
    s.add_argument("results")
    s.add_argument("-o", "--output", help="report folder (default RESULTS/report)")
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("demo", help="classical methods vs deep nets, one degradation axis at a time (a few minutes)")
    s.add_argument("--data", help="also include the known real scenes found in this folder")
    s.add_argument("--out", default=None, help="results store (default: a fresh ./hsibench-demo[-N]/results)")
    s.add_argument("--report-dir", default=None,
                   help="report folder (default: a fresh ./hsibench-demo[-N]/report; the committed example is reports/demo)")
    runner_opts(s, workers=min(2, os.cpu_count() or 1))
    s.set_defaults(func=cmd_demo)
    return p


def _one_line_warnings() -> None:
    """Show the store's warnings (corrupt files, mixed code versions) and a busy machine as one line each."""
    from .study.executors import BusyMachineWarning
    from .study.store import StoreWarning

    show = warnings.showwarning
    if getattr(show, "_hsibench", False):
        return

    def showwarning(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, (StoreWarning, BusyMachineWarning)):
            print(f"hsibench: warning: {message}", file=file or sys.stderr)
        else:
            show(message, category, filename, lineno, file, line)

    showwarning._hsibench = True
    warnings.showwarning = showwarning


#: Exceptions that mean "this input cannot be used" (exit 2), as opposed to a bug (exit 1).
_USER_ERRORS = (ValueError, FileNotFoundError, KeyError, OSError, EOFError, zipfile.BadZipFile, MemoryError)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    if isinstance(exc, KeyError) and exc.args:
        text = str(exc.args[0])
    if isinstance(exc, MemoryError):
        return f"not enough memory for this input ({text or 'MemoryError'})"
    return text.splitlines()[0] if text else type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    """Run the ``hsibench`` command line; returns the exit code (0 ok, 1 failed jobs or an internal
    error, 2 bad input, 3 jobs lost)."""
    _one_line_warnings()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        code = _main(argv)
    if code != 2:  # a bad input's warnings would only precede its one-line message
        for w in caught:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return code


def _main(argv: list[str] | None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("hsibench: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one line for the user; HSIBENCH_DEBUG=1 shows the traceback
        if os.environ.get("HSIBENCH_DEBUG"):
            raise
        user = isinstance(exc, _USER_ERRORS)
        msg = _one_line(exc)
        print(f"hsibench: error: {msg}" if user else f"hsibench: internal error: {type(exc).__name__}: {msg}", file=sys.stderr)
        return 2 if user else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
