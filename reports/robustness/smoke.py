"""Smoke-run reports/studies/robustness.toml's jobs with tiny budgets: every method and mode on the
chosen scenes and degradations, seed 0, `iterations = 2`, UAL pre-training 2 steps (cold cache).

Usage: python reports/robustness/smoke.py SCENE_INDEX[,...] DEGRADATION_INDEX[,...]

Prints one line per job (status, seconds, PSNR) and exits 1 if any job failed: it checks that every
job of the study can run, not what it scores.
"""
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

from hsibench.study import load_study
from hsibench.study.runner import compute_job

STUDY = Path(__file__).resolve().parents[1] / "studies" / "robustness.toml"


def main(argv):
    scenes = [int(i) for i in argv[0].split(",")]
    degs = [int(i) for i in argv[1].split(",")]
    st = load_study(STUDY)
    want_scenes = {st.scenes[i] for i in scenes}
    want_degs = [st.degradations[i] for i in degs]
    cache = tempfile.mkdtemp()
    bad = 0
    for job in st.jobs():
        if job.seed != 0 or job.scene not in want_scenes or job.degradation not in want_degs:
            continue
        params = dict(job.method.params)
        if job.method.name == "ual":
            params.update(pretrain_steps=2, cache_dir=cache)
        job = dataclasses.replace(job, iterations=2, save_output=False,
                                  method=dataclasses.replace(job.method, params=params))
        t0 = time.perf_counter()
        row, _ = compute_job(job)
        psnr = (row.get("metrics") or {}).get("psnr")
        err = (row.get("error") or {}).get("message")
        bad += row["status"] == "failed"
        print(f"{row['status']:15s} {time.perf_counter() - t0:6.1f} s  {job.scene} {job.degradation.label()} "
              f"{job.method.name} {job.mode} psnr={psnr if psnr is None else round(psnr, 2)} {err or ''}",
              flush=True)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main(sys.argv[1:])
