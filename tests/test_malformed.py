"""Malformed input, table-driven: every entry point ends bad input with one line and nothing written.

CLI cases run in-process (``hsibench.cli.main``) and must return exit code 2 with exactly one line on
stderr (``hsibench: error: ...``: no traceback, no warning line) and leave no output behind; a few run
in a subprocess to prove the same for the real interpreter (no segfault on NaN misregistration, no
warning printed before the message). API cases must raise the named ``ValueError`` subclass.
Property tests (hypothesis) check that the degradation parameters' valid ranges are accepted and
everything outside them is refused when the ``Degradation`` is built.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hsibench.cli import main
from hsibench.data import DataError, load_scene, synthetic_scene
from hsibench.degrade import Degradation, PSFError, SRFError, make_psf, simulate
from hsibench.degrade.degradation import DegradationError
from hsibench.degrade.srf import check_srf
from hsibench.methods import Context, InputError, create_method, run_method
from hsibench.metrics import MetricError, compute_metrics
from hsibench.study import StudyError, load_study, study_from_dict
from hsibench.study.store import ResultStore


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:  # noqa: BLE001
        return False


# ------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A small simulated case plus one malformed file of each kind; returns {name: path}."""
    d = tmp_path_factory.mktemp("malformed")
    scene = synthetic_scene(16, 31, seed=0)
    obs = Degradation(2, "gauss_fwhm", "landsat8_bgr").apply(scene.cube, scene.wavelengths)
    arrays = {
        "gt": scene.cube, "lr": obs.lr, "msi": obs.msi, "psf": obs.psf, "srf": obs.srf,
        "lr_complex": obs.lr.astype(np.complex64) + 1j,
        "lr_bool": obs.lr > 0.5,
        "lr_nan": np.where(obs.lr > 0.5, np.nan, obs.lr),
        "lr_big": obs.lr.astype(np.float64) * 1e300,
        "lr_2d": obs.lr[0],
        "lr_empty3": obs.lr[:, :0],
        "empty": np.zeros((0,), np.float32),
        "gt_complex": scene.cube.astype(np.complex64),
        "gt_bool": scene.cube > 0.5,
        "gt_half": scene.cube[:, :8],
        "srf_neg": obs.srf - 0.01,
        "srf_zero": np.vstack([obs.srf[:2], np.zeros((1, 31))]),
        "srf_nan": np.where(obs.srf > 0.05, np.nan, obs.srf),
        "srf_shape": obs.srf[:, :-1],
        "psf_parity": np.ones((3, 3)) / 9,
        "psf_neg": obs.psf - 1.0,
        "scene_chw": scene.cube,
        "wl_short": np.linspace(400, 700, 5),
    }
    out = {}
    for k, v in arrays.items():
        np.save(d / f"{k}.npy", v)
        out[k] = d / f"{k}.npy"
    (d / "garbage.npy").write_bytes(b"not a numpy file at all")
    out["garbage"] = d / "garbage.npy"
    np.savez(d / "two.npz", a=obs.lr, b=obs.lr)
    out["two_npz"] = d / "two.npz"
    (d / "broken.npz").write_bytes(b"PK\x03\x04 broken zip")
    out["broken_npz"] = d / "broken.npz"
    (d / "srf.csv").write_text("a,b,c\n1,2\n")
    out["srf_csv"] = d / "srf.csv"
    (d / "a_file").write_text("x")
    out["a_file"] = d / "a_file"
    out["dir"] = d
    return out


STUDY_OK = {
    "name": "m",
    "scenes": ["synthetic:16x31:0"],
    "grid": {"scale": [2], "kernel": "box", "sensor": "landsat8_bgr"},
    "methods": [{"name": "upsample", "modes": ["blind"]}],
}


def _study(tmp_path: Path, edit) -> Path:
    d = json.loads(json.dumps(STUDY_OK))
    if callable(edit):
        edit(d)
    else:
        d = edit
    p = tmp_path / "study.json"
    p.write_text(json.dumps(d))
    return p


def _store(tmp_path: Path, damage: str) -> Path:
    """A store with one finished job row and one arrays file, then damaged."""
    root = tmp_path / "res"
    store = ResultStore(root).init({})
    store.write({"job_id": "abc", "status": "ok", "metrics": {"psnr": 30.0}})
    store.save_arrays("out_abc", hr=np.zeros((3, 4, 4)))
    if damage == "npz":
        (root / "arrays" / "out_abc.npz").write_bytes(b"garbage")
    elif damage == "json_list":
        (root / "jobs" / "abc.json").write_text("[1, 2, 3]")
    elif damage == "json_empty":
        (root / "jobs" / "abc.json").write_text("")
    elif damage == "json_no_status":
        (root / "jobs" / "abc.json").write_text('{"job_id": "abc"}')
    return root


def _assert_one_line(err: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one stderr line, got:\n{err}"
    assert lines[0].startswith("hsibench: error: "), lines[0]
    assert "Traceback" not in err and "Warning" not in err, err


# ------------------------------------------------------------------------------- the CLI table
# (argv with {placeholders}, text expected in the message). {o} is the output path that must not exist.

SIM = ["simulate", "synthetic:16x31:0", "--scale", "2"]
FUSE = ["fuse", "--method", "gsa", "--lr", "{lr}", "--msi", "{msi}", "--scale", "2", "-o", "{o}.npy", "--quiet"]
ORACLE = ["fuse", "--method", "upsample", "--lr", "{lr}", "--msi", "{msi}", "--scale", "2", "--mode", "oracle",
          "--psf", "{psf}", "-o", "{o}.npy", "--quiet"]


def _fuse(**sub):
    argv = list(FUSE)
    for k, v in sub.items():
        argv[argv.index("{%s}" % k)] = v
    return argv


CLI_CASES = [
    # simulate: degradation parameters
    (SIM + ["--kernel", "gauss(inf)", "-o", "{o}"], "finite"),
    (SIM + ["--kernel", "gauss(nan)", "-o", "{o}"], "finite"),
    (SIM + ["--kernel", "gauss(1e5)", "-o", "{o}"], "PSFs are limited to 257"),
    (SIM + ["--kernel", "motion(1e7,0)", "-o", "{o}"], "limited to 257"),
    (SIM + ["--kernel", "gauss(-1)", "-o", "{o}"], "positive"),
    (SIM + ["--kernel", "disk(0)", "-o", "{o}"], "positive"),
    (SIM + ["--kernel", "airy(100)", "-o", "{o}"], "limited to 257"),
    (SIM + ["--kernel", "aniso_gauss(1,inf)", "-o", "{o}"], "finite"),
    (SIM + ["--kernel", "motion(5,nan)", "-o", "{o}"], "finite"),
    (SIM + ["--kernel", "nope", "-o", "{o}"], "unknown PSF preset"),
    (SIM + ["--kernel", "gauss(1,2)", "-o", "{o}"], "takes"),
    (SIM + ["--kernel", "gauss(a)", "-o", "{o}"], "numbers"),
    (["simulate", "synthetic:16x31:0", "--scale", str(10**9), "-o", "{o}"], "1..128"),
    (["simulate", "synthetic:16x31:0", "--scale", "0", "-o", "{o}"], "positive integer"),
    (["simulate", "synthetic:16x31:0", "--scale", "2.5", "-o", "{o}"], "positive integer"),
    (["simulate", "synthetic:16x31:0", "--scale", "32", "-o", "{o}"], "smaller than the scale"),
    (SIM + ["--sensor", "gauss:500:0", "-o", "{o}"], "fwhm"),
    (SIM + ["--sensor", "gauss:1e9:10", "-o", "{o}"], "centres"),
    (SIM + ["--sensor", "gauss:2000:10", "-o", "{o}"], "overlaps no hs band"),
    (SIM + ["--sensor", "gauss:500,x:10", "-o", "{o}"], "numbers"),
    (SIM + ["--sensor", "nope", "-o", "{o}"], "unknown sensor"),
    (SIM + ["--snr-hs", "nan", "-o", "{o}"], "snr_hs"),
    (SIM + ["--snr-ms", "abc", "-o", "{o}"], "snr"),
    (SIM + ["--snr-hs", "1e9", "-o", "{o}"], "snr_hs"),
    (SIM + ["--seed", "-1", "-o", "{o}"], "non-negative"),
    (SIM + ["--boundary", "zero", "-o", "{o}"], "invalid choice"),
    (SIM + ["--frobnicate", "-o", "{o}"], "unrecognized"),
    (["simulate", "synthetic:16x31:0", "-o", "{o}"], "required"),
    (["simulate", "synthetic:100000x31", "--scale", "2", "-o", "{o}"], "8192"),
    (["simulate", "synthetic:16x5000", "--scale", "2", "-o", "{o}"], "4096"),
    (["simulate", "synthetic:8192x8192x31", "--scale", "2", "-o", "{o}"], "2**28"),
    (["simulate", "synthetic:abc", "--scale", "2", "-o", "{o}"], "bad synthetic source"),
    (["simulate", "missing.mat", "--scale", "2", "-o", "{o}"], "no such file"),
    (["simulate", "{empty}", "--scale", "2", "-o", "{o}"], "empty"),
    (["simulate", "{gt_complex}", "--scale", "2", "-o", "{o}"], "real numeric"),
    (["simulate", "{garbage}", "--scale", "2", "-o", "{o}"], "not a readable .npy"),
    (["simulate", "{scene_chw}", "--scale", "2", "-o", "{o}"], "--wavelengths"),
    (["simulate", "{scene_chw}", "--scale", "2", "--wavelengths", "700:400", "-o", "{o}"], "start < stop"),
    (["simulate", "{scene_chw}", "--scale", "2", "--wavelengths", "{wl_short}", "-o", "{o}"], "5 wavelengths"),
    (["simulate", "{scene_chw}", "--scale", "2", "--wavelengths", "nofile.txt", "-o", "{o}"], "not found"),
    (["simulate", "synthetic:16x31:0", "--scale", "2", "-o", "{a_file}/sub"], "not a folder"),
    # fuse: arrays
    (_fuse(lr="{lr_complex}"), "real numbers"),
    (_fuse(lr="{lr_bool}"), "real numbers"),
    (_fuse(lr="{garbage}"), "not a readable numpy file"),
    (_fuse(lr="{empty}"), "empty"),
    (_fuse(lr="{lr_empty3}"), "empty"),
    (_fuse(lr="{lr_big}"), "float32 range"),
    (_fuse(lr="{lr_nan}"), "nan"),
    (_fuse(lr="{lr_2d}"), "cube"),
    (_fuse(lr="{two_npz}"), "cube"),
    (_fuse(lr="{broken_npz}"), "not a readable numpy file"),
    (_fuse(lr="missing.npy"), "not found"),
    (_fuse(msi="{gt_half}"), "implies"),
    # fuse: options
    (FUSE + ["--iterations", "0"], "positive integer"),
    (FUSE + ["--iterations", "-3"], "positive integer"),
    (FUSE + ["--device", "foo"], "unknown device"),
    (FUSE + ["--device", "cuda:7"], "not available"),
    (FUSE + ["--seed", "-2"], "non-negative"),
    (FUSE + ["--mode", "oracle"], "needs both"),
    (FUSE + ["--preset", "nope"], "unknown preset"),
    (FUSE + ["--param", "foo=1"], "unknown parameters"),
    (["fuse", "--method", "hysure", "--lr", "{lr}", "--msi", "{msi}", "--scale", "2", "--param", "iterations=2.5",
      "-o", "{o}.npy"], "takes an integer"),
    (["fuse", "--method", "hysure", "--lr", "{lr}", "--msi", "{msi}", "--scale", "2", "--param", "mu=\"big\"",
      "-o", "{o}.npy"], "takes"),
    (["fuse", "--method", "gsa", "--lr", "{lr}", "--msi", "{msi}", "--scale", "2", "-o", "{dir}"], "is a folder"),
    (["fuse", "--method", "nope", "--lr", "{lr}", "--msi", "{msi}", "--scale", "2", "-o", "{o}.npy"], "unknown method"),
    (ORACLE + ["--srf", "{srf_neg}"], "negative"),
    (ORACLE + ["--srf", "{srf_zero}"], "all zero"),
    (ORACLE + ["--srf", "{srf_nan}"], "nan"),
    (ORACLE + ["--srf", "{srf_shape}"], "does not match"),
    (ORACLE + ["--srf", "{srf_csv}"], "csv"),
    (["fuse", "--method", "upsample", "--lr", "{lr}", "--msi", "{msi}", "--scale", "2", "--mode", "oracle",
      "--psf", "{psf_parity}", "--srf", "{srf}", "-o", "{o}.npy"], "parity"),
    (["fuse", "--method", "upsample", "--lr", "{lr}", "--msi", "{msi}", "--scale", "2", "--mode", "oracle",
      "--psf", "{psf_neg}", "--srf", "{srf}", "-o", "{o}.npy"], "negative"),
    (["fuse", "--method", "gsa", "--lr", "{lr}", "--msi", "{msi}", "--scale", "2", "--mode", "srf_support",
      "--srf", "{srf_zero}", "-o", "{o}.npy"], "all zero"),
    # metrics
    (["metrics", "{gt}", "{gt_complex}", "--scale", "2"], "real numbers"),
    (["metrics", "{gt_bool}", "{gt}", "--scale", "2"], "real numbers"),
    (["metrics", "{gt}", "{empty}", "--scale", "2"], "empty"),
    (["metrics", "{gt}", "{gt_half}", "--scale", "2"], "shape"),
    (["metrics", "{gt}", "{gt}", "--scale", "2", "--preset", "nope"], "preset"),
    (["metrics", "{gt}", "{gt}", "--scale", "2", "--crop", "-1"], "non-negative"),
    (["metrics", "{gt}", "{gt}", "--scale", "0"], "positive integer"),
    (["metrics", "{gt}", "{garbage}", "--scale", "2"], "not a readable numpy file"),
    (["metrics", "{gt}", "{gt}"], "required"),
    # run
    (["run", "missing.toml", "--out", "{o}"], "not found"),
    (["run", "{study}", "--out", "{o}", "--workers", "0"], "positive integer"),
    (["run", "{study}", "--out", "{o}", "--threads", "-1"], "positive integer"),
    # report
    (["report", "{o}_missing", "-o", "{o}"], "no results store"),
]

STUDY_CASES = [
    (lambda d: d["methods"][0].update(name="nope"), "unknown method"),
    (lambda d: d["methods"][0].update(preset="nope"), "unknown preset"),
    (lambda d: d["methods"][0].update(params={"foo": 1}), "unknown parameters"),
    (lambda d: d["methods"].append({"name": "hysure", "params": {"iterations": 2.5}}), "takes an integer"),
    (lambda d: d["methods"][0].update(modes=[]), "empty"),
    (lambda d: d["methods"][0].update(modes=["psychic"]), "knowledge modes"),
    (lambda d: d.update(methods=[]), "no methods"),
    (lambda d: d["grid"].update(sensor="nope"), "unknown sensor"),
    (lambda d: d["grid"].update(kernel="nope"), "unknown PSF preset"),
    (lambda d: d["grid"].update(kernel="gauss(inf)"), "finite"),
    (lambda d: d.update(metrics={"preset": "nope"}), "metric preset"),
    (lambda d: d.update(metrics={"crop": -1}), "crop"),
    (lambda d: d.update(metrics={"crop": 0.5}), "crop"),
    (lambda d: d.update(scenes=["missing.mat"]), "no such file"),
    (lambda d: d.update(scenes=[]), "empty"),
    (lambda d: d.update(scenes=["synthetic:100000x31"]), "8192"),
    (lambda d: d["grid"].update(scale=[]), "empty"),
    (lambda d: d["grid"].update(scale=[2.5]), "integer"),
    (lambda d: d["grid"].update(scale=[True]), "integer"),
    (lambda d: d["grid"].update(scale=[[2, 4]]), "integer"),
    (lambda d: d["grid"].update(scale=[10**9]), "1..128"),
    (lambda d: d.update(seeds=[0.7]), "seeds"),
    (lambda d: d.update(seeds=[-1]), "seeds"),
    (lambda d: d.update(seeds=[]), "seeds"),
    (lambda d: d["grid"].update(snr=[[30, 40, 50]]), "2 values"),
    (lambda d: d["grid"].update(snr=["loud"]), "snr"),
    (lambda d: d["grid"].update(snr=[True]), "snr"),
    (lambda d: d["grid"].update(misregistration=[0.5]), "pair"),
    (lambda d: d["grid"].update(misregistration=[1e9, 0]), "misregistration"),
    (lambda d: d["grid"].update(noise_per_band="yes"), "true or false"),
    (lambda d: d["grid"].update(blur=1), "unknown grid axes"),
    (lambda d: d.update(name="../evil"), "study name"),
    (lambda d: d.update(name="a/b"), "study name"),
    (lambda d: d.update(device="tpu"), "unknown device"),
    (lambda d: d.update(iterations=0), "iterations"),
    (lambda d: d.update(colour=1), "unknown top-level"),
    (lambda d: d.update(scene_options={"frobnicate": 1}), "scene_options"),
    (lambda d: d.update(scene_options={"crop": True}), "scene_options.crop"),
    (lambda d: d.update(scene_options={"crop": [0, 8, 0]}), "scene_options.crop"),
    (lambda d: d.update(scene_options={"crop": [8, 4, 0, 8]}), "empty"),
    (lambda d: d.update(scenes=["synthetic:16x31:0[0:8,0:8]"], scene_options={"crop": 4}), "give one crop"),
    ([STUDY_OK], "mapping"),
]

# A damaged job file is named in a warning and skipped (recomputed by the next run); a store left
# with no finished job cannot be reported.
REPORT_CASES = [("json_list", "no finished job"), ("json_empty", "no finished job"),
                ("json_no_status", "no finished job")]


def _format(argv, files, out, study=None):
    fmt = {k: str(v) for k, v in files.items()} | {"o": str(out)}
    if study is not None:
        fmt["study"] = str(study)
    return [a.format(**fmt) for a in argv]


def _run_inprocess(argv, capsys):
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse must not exit on its own
        code = exc.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("argv,match", CLI_CASES, ids=[f"cli{i:02d}-{c[0][0]}" for i, c in enumerate(CLI_CASES)])
def test_cli_malformed(argv, match, files, tmp_path, capsys):
    if "cuda:7" in argv and _has_cuda():
        import torch

        if torch.cuda.device_count() > 7:
            pytest.skip("this machine has a cuda:7")
    out = tmp_path / "out"
    study = _study(tmp_path, lambda d: None)
    args = _format(argv, files, out, study)
    code, err = _run_inprocess(args, capsys)
    assert code == 2, (code, err)
    _assert_one_line(err)
    assert match.lower() in err.lower(), err
    assert not out.exists() and not Path(str(out) + ".npy").exists()
    assert not any(p.name.startswith(".tmp-") for p in out.parent.iterdir())


@pytest.mark.parametrize("edit,match", STUDY_CASES, ids=[f"study{i:02d}" for i in range(len(STUDY_CASES))])
def test_run_rejects_bad_study_before_any_job(edit, match, tmp_path, capsys):
    study = _study(tmp_path, edit)
    out = tmp_path / "out"
    code, err = _run_inprocess(["run", str(study), "--out", str(out), "--quiet"], capsys)
    assert code == 2, (code, err)
    _assert_one_line(err)
    assert match.lower() in err.lower(), err
    assert not out.exists()


@pytest.mark.parametrize("damage,match", REPORT_CASES)
def test_report_on_a_damaged_store(damage, match, tmp_path, capsys):
    root = _store(tmp_path, damage)
    out = tmp_path / "rep"
    code, err = _run_inprocess(["report", str(root), "-o", str(out)], capsys)
    assert code == 2, (code, err)
    _assert_one_line(err)
    assert match.lower() in err.lower(), err
    assert not out.exists()
    assert ResultStore(root).finished_ids() == set()  # the damaged row does not count as done


def test_report_skips_an_unreadable_arrays_file(tmp_path, capsys):
    """A damaged arrays file costs its panel only: a one-line warning names it, the report is written."""
    from hsibench.study import run_study, study_from_dict

    study = study_from_dict({"scenes": ["synthetic:16x8:0"], "grid": {"scale": [2]},
                             "methods": [{"name": "upsample", "modes": ["blind"]}], "save_outputs": "all"})
    root = tmp_path / "res"
    run_study(study, root, threads=1, progress=False)
    damaged = sorted((root / "arrays").glob("*.npz"))
    assert damaged
    for p in damaged:
        p.write_bytes(b"garbage")
    out = tmp_path / "rep"
    code, err = _run_inprocess(["report", str(root), "-o", str(out)], capsys)
    assert code == 0, (code, err)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines and all(ln.startswith("hsibench: warning: ") and ".npz" in ln for ln in lines), err
    assert "Traceback" not in err
    assert (out / "report.md").exists()


def test_study_files_that_do_not_parse(tmp_path, capsys):
    for name, text, match in [("a.toml", "scenes = [", "cannot parse"), ("b.json", "[1, 2]", "mapping"),
                              ("c.yaml", "- 1\n- 2\n", "mapping"), ("d.ini", "x=1", "unknown study format")]:
        p = tmp_path / name
        p.write_text(text)
        code, err = _run_inprocess(["run", str(p), "--out", str(tmp_path / "o")], capsys)
        assert code == 2 and match in err, err
        _assert_one_line(err)
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------- the real interpreter

@pytest.mark.parametrize("argv,match", [
    (["simulate", "synthetic:16x31:0", "--scale", "2", "--kernel", "gauss(inf)", "-o", "{o}"], "finite"),
    (["fuse", "--method", "gsa", "--lr", "{lr_complex}", "--msi", "{msi}", "--scale", "2", "-o", "{o}.npy"], "real"),
    (["fuse", "--method", "gsa", "--lr", "{lr_big}", "--msi", "{msi}", "--scale", "2", "-o", "{o}.npy"], "float32"),
    (["run", "{nan_study}", "--out", "{o}"], "misregistration"),
])
def test_subprocess_one_line_no_warning(argv, match, files, tmp_path):
    nan_study = tmp_path / "nan.toml"
    nan_study.write_text('scenes=["synthetic:16x31:0"]\n[grid]\nscale=[2]\nmisregistration=[nan, 0.0]\n'
                         '[[methods]]\nname="upsample"\nmodes=["blind"]\n')
    out = tmp_path / "out"
    args = [a.format(**({k: str(v) for k, v in files.items()} | {"o": str(out), "nan_study": str(nan_study)}))
            for a in argv]
    proc = subprocess.run([sys.executable, "-W", "default", "-m", "hsibench", *args], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert proc.returncode == 2, proc.stderr
    _assert_one_line(proc.stderr)
    assert match in proc.stderr.lower()
    assert not out.exists() and not Path(str(out) + ".npy").exists()


# ------------------------------------------------------------------------------------------ the API

@pytest.fixture(scope="module")
def case():
    scene = synthetic_scene(16, 31, seed=0)
    obs = Degradation(2, "gauss_fwhm", "landsat8_bgr").apply(scene.cube, scene.wavelengths)
    return scene, obs


NAN = float("nan")
API_DEGRADATIONS = [
    dict(scale=2, misregistration=(NAN, 0.0)),
    dict(scale=2, misregistration=(0.0, math.inf)),
    dict(scale=2, misregistration="12"),
    dict(scale=2, misregistration=(1, 2, 3)),
    dict(scale=2.5),
    dict(scale=True),
    dict(scale="4"),
    dict(scale=0),
    dict(scale=10**9),
    dict(scale=2, kernel="gauss(inf)"),
    dict(scale=2, kernel="gauss(1e5)"),
    dict(scale=2, kernel=None),
    dict(scale=2, sensor="gauss:500:0"),
    dict(scale=2, sensor=3),
    dict(scale=2, snr_hs=NAN),
    dict(scale=2, snr_ms=-math.inf),
    dict(scale=2, snr_hs=[30]),
    dict(scale=2, snr_hs=True),
    dict(scale=2, boundary="zero"),
    dict(scale=2, noise_per_band="yes"),
]


@pytest.mark.parametrize("kw", API_DEGRADATIONS, ids=[str(i) for i in range(len(API_DEGRADATIONS))])
def test_api_degradation_rejects_at_build(kw):
    with pytest.raises(DegradationError):
        Degradation(**kw)


def test_api_simulate_misregistration_and_kernel_vs_image(case):
    scene, _ = case
    with pytest.raises(DegradationError, match="misregistration"):
        simulate(scene.cube, scene.wavelengths, Degradation(2, misregistration=(20.0, 0.0)))
    with pytest.raises(DegradationError, match="larger than twice"):
        simulate(scene.cube[:, :4, :4], scene.wavelengths, Degradation(2, kernel="gauss(20)"))
    with pytest.raises(DegradationError, match="real numbers"):
        simulate(scene.cube.astype(np.complex64), scene.wavelengths, Degradation(2))
    with pytest.raises(DegradationError, match="no wavelengths"):
        simulate(scene.cube, None, Degradation(2))


@pytest.mark.parametrize("make,match", [
    (lambda lr, msi: (lr.astype(np.complex64), msi), "real"),
    (lambda lr, msi: (lr > 0.5, msi), "real"),
    (lambda lr, msi: (lr.astype(object), msi), "real"),
    (lambda lr, msi: (lr.astype(np.float64) * 1e300, msi), "float32 range"),
    (lambda lr, msi: (lr, msi.astype(np.complex128)), "real"),
])
def test_api_method_inputs(case, make, match):
    _, obs = case
    lr, msi = make(obs.lr, obs.msi)
    with pytest.raises(InputError, match=match):
        run_method(create_method("gsa"), lr, msi, Context(scale=2, mode="blind"))


def test_api_integer_inputs_give_float_output(case):
    _, obs = case
    lr = np.round(obs.lr * 1000).astype(np.uint16)
    msi = np.round(obs.msi * 1000).astype(np.int32)
    out = run_method(create_method("gsa"), lr, msi, Context(scale=2, mode="blind")).hr
    ref = run_method(create_method("gsa"), lr.astype(np.float32), msi.astype(np.float32), Context(scale=2, mode="blind")).hr
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("kw,match", [
    (dict(iterations=0), "iterations"), (dict(iterations=-1), "iterations"), (dict(iterations=2.5), "iterations"),
    (dict(device="foo"), "unknown device"), (dict(scale=2.5), "scale"), (dict(scale=0), "scale"),
    (dict(seed=-1), "seed"), (dict(mode="psychic"), "mode"),
])
def test_api_context(kw, match):
    with pytest.raises(InputError, match=match):
        Context(**({"scale": 2, "mode": "blind"} | kw))


@pytest.mark.skipif(_has_cuda(), reason="a CUDA device is present")
def test_api_context_cuda_without_gpu():
    with pytest.raises(InputError, match="not available"):
        Context(scale=2, device="cuda")


def test_api_srf_checked_and_normalised_with_a_note(case):
    _, obs = case
    psf, srf = obs.psf, obs.srf
    for bad, match in [(srf - 0.01, "negative"), (np.vstack([srf[:2], np.zeros((1, 31))]), "all zero"),
                       (np.where(srf > 0.05, np.nan, srf), "NaN")]:
        with pytest.raises(InputError, match=match):
            run_method(create_method("upsample"), obs.lr, obs.msi, Context(scale=2, mode="oracle", psf=psf, srf=bad))
    # rows that do not sum to 1 are normalised (as PSFs are) and the result says so: same output as the true SRF
    up = create_method("upsample")
    ref = run_method(up, obs.lr, obs.msi, Context(scale=2, mode="oracle", psf=psf, srf=srf))
    got = run_method(up, obs.lr, obs.msi, Context(scale=2, mode="oracle", psf=2 * psf, srf=3 * srf))
    np.testing.assert_array_equal(got.hr, ref.hr)
    assert any("SRF" in n for n in got.info["notes"]) and any("PSF" in n for n in got.info["notes"])
    r, sums = check_srf(3 * srf)
    np.testing.assert_allclose(sums, 3.0)
    np.testing.assert_allclose(r.sum(axis=1), 1.0, rtol=0, atol=4 * np.finfo(float).eps * srf.shape[1])
    with pytest.raises(SRFError, match="real"):
        check_srf(srf.astype(np.complex64))


@pytest.mark.parametrize("call,exc", [
    (lambda: load_scene("synthetic:100000x31"), DataError),
    (lambda: load_scene("synthetic:16x5000"), DataError),
    (lambda: synthetic_scene(16, 31, endmembers=0), DataError),
    (lambda: synthetic_scene(2.5), DataError),
    (lambda: synthetic_scene(16, True), DataError),
    (lambda: load_scene("synthetic:16x31", wavelengths="700:400"), DataError),
    (lambda: load_scene("synthetic:16x31", wavelengths=[1.0, 2.0]), DataError),
    (lambda: make_psf("gauss(30)", 2), PSFError),
    (lambda: make_psf("box", 2.5), PSFError),
    (lambda: make_psf("box", 129), PSFError),
    (lambda: compute_metrics(np.ones((3, 16, 16)), np.ones((3, 16, 16), np.complex64), scale=2), MetricError),
    (lambda: study_from_dict({**STUDY_OK, "seeds": [0.7]}), StudyError),
    (lambda: study_from_dict([1, 2]), StudyError),
    (lambda: create_method("hysure", iterations=True), InputError),
    (lambda: create_method("cnmf", th_h=float("nan")), InputError),
])
def test_api_errors(call, exc):
    with pytest.raises(exc):
        call()


def test_load_study_yields_the_same_checks(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text('name="ok"\nscenes=["synthetic:16x31:0"]\n[grid]\nscale=[2]\n[[methods]]\nname="gsa"\nmodes=["blind"]\n')
    assert len(load_study(p).jobs()) == 1
    p.write_text('scenes=["synthetic:16x31:0"]\n[grid]\nscale=[2.0]\n[[methods]]\nname="gsa"\n')
    with pytest.raises(StudyError, match="integer"):
        load_study(p)


def test_simulate_npy_scene_with_wavelengths(files, tmp_path, capsys):
    """The positive side of the --wavelengths cases: a .npy scene with START:STOP, a .npz carrying them."""
    out = tmp_path / "sim"
    code, err = _run_inprocess(["simulate", str(files["scene_chw"]), "--scale", "2", "--wavelengths", "400:700",
                                "-o", str(out)], capsys)
    assert code == 0, err
    meta = json.loads((out / "degradation.json").read_text())
    np.testing.assert_allclose(meta["wavelengths"], np.linspace(400, 700, 31))
    assert np.load(out / "gt.npy").shape == (31, 16, 16)
    z = tmp_path / "s.npz"
    np.savez(z, cube=np.load(files["scene_chw"]), wavelengths=np.linspace(0.4, 0.7, 31))  # µm: converted
    code, err = _run_inprocess(["simulate", str(z), "--scale", "2", "-o", str(tmp_path / "sim2")], capsys)
    assert code == 0, err
    meta = json.loads((tmp_path / "sim2" / "degradation.json").read_text())
    np.testing.assert_allclose(meta["wavelengths"], np.linspace(400, 700, 31))


# --------------------------------------------------------------------------------- property tests

_finite_pos = st.floats(min_value=0.05, max_value=25.0, allow_nan=False)
_bad_float = st.one_of(st.just(float("nan")), st.just(float("inf")), st.just(-float("inf")),
                       st.floats(max_value=0.0, allow_nan=False, allow_infinity=False))


@settings(max_examples=15, deadline=None)
@given(scale=st.integers(1, 128), sigma=_finite_pos)
def test_prop_gauss_in_range_is_accepted(scale, sigma):
    d = Degradation(scale, f"gauss({sigma!r})")
    assert d.scale == scale
    k = d.psf()
    assert max(k.shape) <= 257 and abs(k.sum() - 1) < 1e-12


@settings(max_examples=15, deadline=None)
@given(sigma=st.one_of(_bad_float, st.floats(min_value=25.5, max_value=1e300)))
def test_prop_gauss_out_of_range_is_refused(sigma):
    with pytest.raises(DegradationError):
        Degradation(2, f"gauss({sigma!r})")


@settings(max_examples=15, deadline=None)
@given(scale=st.one_of(st.integers(max_value=0), st.integers(min_value=129),
                       st.floats(allow_nan=True), st.booleans(), st.text(max_size=3)))
def test_prop_bad_scales_are_refused(scale):
    with pytest.raises(DegradationError):
        Degradation(scale)


@settings(max_examples=15, deadline=None)
@given(length=st.floats(min_value=0.1, max_value=250.0), angle=st.floats(-720, 720))
def test_prop_motion_in_range_is_accepted(length, angle):
    Degradation(2, f"motion({length!r}, {angle!r})")


@settings(max_examples=15, deadline=None)
@given(length=st.one_of(_bad_float, st.floats(min_value=256.0, max_value=1e300)), angle=st.floats(-720, 720))
def test_prop_motion_out_of_range_is_refused(length, angle):
    with pytest.raises(DegradationError):
        Degradation(2, f"motion({length!r}, {angle!r})")


@settings(max_examples=20, deadline=None)
@given(snr=st.floats(allow_nan=True, allow_infinity=True))
def test_prop_snr(snr):
    if snr == math.inf:
        assert Degradation(2, snr_hs=snr).snr_hs is None
    elif math.isfinite(snr) and -50 <= snr <= 200:
        assert Degradation(2, snr_hs=snr, snr_ms=snr).snr_ms == snr
    else:
        with pytest.raises(DegradationError):
            Degradation(2, snr_hs=snr)


@settings(max_examples=20, deadline=None)
@given(r=st.floats(allow_nan=True, allow_infinity=True), c=st.floats(-5, 5))
def test_prop_misregistration(r, c):
    if math.isfinite(r) and abs(r) <= 1024:
        assert Degradation(2, misregistration=(r, c)).misregistration == (r, c)
    else:
        with pytest.raises(DegradationError):
            Degradation(2, misregistration=(r, c))


@settings(max_examples=15, deadline=None)
@given(centre=st.floats(allow_nan=True, allow_infinity=True), fwhm=st.floats(allow_nan=True, allow_infinity=True))
def test_prop_gauss_sensor(centre, fwhm):
    spec = f"gauss:{centre!r}:{fwhm!r}"
    if math.isfinite(centre) and 0 < centre <= 1e5 and math.isfinite(fwhm) and 0 < fwhm <= 1e4:
        Degradation(2, sensor=spec)  # a valid spec; overlap with the scene is checked when applied
    else:
        with pytest.raises(DegradationError):
            Degradation(2, sensor=spec)
