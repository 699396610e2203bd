"""End-to-end CLI: every verb, the JSON contract of `metrics`, one-line errors with non-zero exit codes."""
import json
import subprocess
import sys

import numpy as np
import pytest

from hsibench.cli import main


def run(*argv):
    return main([str(a) for a in argv])


def test_list_verbs(capsys):
    for what in ("methods", "sensors", "datasets"):
        assert run("list", what) == 0
    out = capsys.readouterr().out
    assert "gsa" in out and "landsat8_bgr" in out and "synthetic" in out
    # the PSF presets: `list psfs`, and `list kernels` (the older name, kept as a contract) prints the same
    assert run("list", "psfs") == 0
    psfs = capsys.readouterr().out
    assert run("list", "kernels") == 0
    assert capsys.readouterr().out == psfs
    from hsibench.degrade import PSF_PRESETS

    assert [line.split()[0] for line in psfs.splitlines()] == list(PSF_PRESETS)


def test_simulate_fuse_metrics_roundtrip(tmp_path, capsys):
    d = tmp_path / "sim"
    assert run("simulate", "synthetic:32x31:0", "--scale", 4, "--kernel", "gauss_fwhm", "--sensor", "landsat8_bgr",
               "--snr-hs", 40, "--seed", 1, "-o", d) == 0
    gt, lr, msi = (np.load(d / f"{n}.npy") for n in ("gt", "lr", "msi"))
    assert gt.shape == (31, 32, 32) and lr.shape == (31, 8, 8) and msi.shape == (3, 32, 32)
    assert gt.dtype == lr.dtype == msi.dtype == np.float32
    meta = json.loads((d / "degradation.json").read_text())
    assert meta["degradation"]["scale"] == 4 and meta["degradation"]["snr_hs"] == 40
    assert np.load(d / "psf.npy").shape == (4, 4) and np.load(d / "srf.npy").shape == (3, 31)
    out = tmp_path / "gsa.npy"
    assert run("fuse", "--method", "gsa", "--lr", d / "lr.npy", "--msi", d / "msi.npy", "--scale", 4, "-o", out, "--quiet") == 0
    assert run("fuse", "--method", "upsample", "--lr", d / "lr.npy", "--msi", d / "msi.npy", "--scale", 4,
               "--mode", "oracle", "--psf", d / "psf.npy", "--srf", d / "srf.npy", "-o", tmp_path / "up.npy", "--quiet") == 0
    capsys.readouterr()
    assert run("metrics", d / "gt.npy", out, "--scale", 4, "--json") == 0
    m = json.loads(capsys.readouterr().out)
    assert set(m) == {"rmse", "psnr", "sam", "ergas", "ssim", "uiqi", "cc", "dd"}
    from hsibench.metrics import compute_metrics

    ref = compute_metrics(gt, np.load(out), scale=4).scalars
    assert m["psnr"] == pytest.approx(ref["psnr"]) and m["sam"] == pytest.approx(ref["sam"])


def test_simulate_crops_to_a_multiple_of_the_scale(tmp_path):
    assert run("simulate", "synthetic:32x31:0", "--scale", 3, "-o", tmp_path) == 0
    assert np.load(tmp_path / "gt.npy").shape == (31, 30, 30)
    meta = json.loads((tmp_path / "degradation.json").read_text())
    assert "crop" in json.dumps(meta["scene"]["provenance"])


def test_metrics_of_identical_cubes_prints_infinity(tmp_path, capsys):
    a = np.random.default_rng(0).random((3, 16, 16)).astype(np.float32)
    np.save(tmp_path / "a.npy", a)
    assert run("metrics", tmp_path / "a.npy", tmp_path / "a.npy", "--scale", 2, "--json") == 0
    m = json.loads(capsys.readouterr().out.replace('"inf"', '"Infinity"'))
    assert m["rmse"] == 0 and m["sam"] == 0 and m["ssim"] == pytest.approx(1)


@pytest.mark.parametrize("argv,match", [
    (["metrics", "{a}", "{nan}", "--scale", "2"], "NaN"),
    (["metrics", "{a}", "{b}", "--scale", "2"], "shape"),
    (["metrics", "{a}", "{a}", "--scale", "2", "--preset", "nope"], "preset"),
    (["fuse", "--method", "gsa", "--lr", "{lr}", "--msi", "{a}", "--scale", "3", "-o", "{o}"], "does not divide"),
    (["fuse", "--method", "gsa", "--lr", "{lr}", "--msi", "{a}", "--scale", "2", "--mode", "oracle", "-o", "{o}"], "oracle"),
    (["fuse", "--method", "nope", "--lr", "{lr}", "--msi", "{a}", "--scale", "2", "-o", "{o}"], "unknown method"),
    (["simulate", "synthetic:32x31:0", "--scale", "64", "-o", "{o}"], "smaller"),
    (["simulate", "synthetic:32x31:0", "--scale", "4", "--kernel", "nope", "-o", "{o}"], "unknown PSF preset"),
    (["simulate", "missing.mat", "--scale", "4", "-o", "{o}"], "no such file"),
    (["run", "missing.toml"], "not found"),
])
def test_bad_input_gives_one_line_error_and_exit_2(tmp_path, argv, match):
    rng = np.random.default_rng(0)
    a = rng.random((3, 16, 16)).astype(np.float32)
    files = {"a": a, "b": a[:, :8], "nan": np.where(a > 0.5, np.nan, a), "lr": a[:, :8, :8]}
    for k, v in files.items():
        np.save(tmp_path / f"{k}.npy", v)
    fmt = {k: str(tmp_path / f"{k}.npy") for k in files} | {"o": str(tmp_path / "o")}
    args = [x.format(**fmt) for x in argv]
    proc = subprocess.run([sys.executable, "-m", "hsibench", *args], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    err = proc.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert match.lower() in err.lower(), err


def test_run_and_report_verbs(tmp_path, capsys):
    st = tmp_path / "s.toml"
    st.write_text('name="c"\nscenes=["synthetic:32x31:0"]\n[grid]\nscale=[2,4]\nsensor="landsat8_bgr"\n'
                  '[[methods]]\nname="gsa"\nmodes=["blind"]\n')
    assert run("run", st, "--out", tmp_path / "res", "--quiet") == 0
    assert "2 ok" in capsys.readouterr().out
    assert run("report", tmp_path / "res", "-o", tmp_path / "rep") == 0
    assert (tmp_path / "rep" / "report.md").is_file()
