"""Time one job of reports/studies/robustness.toml at its base case, for the PLAN.md projection.

Usage: python reports/robustness/time_job.py METHOD[,METHOD...] MODE SCENE_INDEX [ITERATIONS [UAL_PRETRAIN_STEPS]]

Runs the study's job for METHOD/MODE on scene SCENE_INDEX at the base degradation and seed 0 (one
thread; call it with OMP_NUM_THREADS=1 etc.). For a net, ITERATIONS replaces the preset's budget and
the full-budget time is projected from the recorded seconds per iteration of every training stage
(the stages the `iterations` key scales by the same ratio); UAL's pre-training is shortened to
UAL_PRETRAIN_STEPS steps and scaled back to the preset's step count. Prints one JSON line per method.
With the environment variable SCALE set, the job at that scale (other axes at base) is timed; with
PRESET set, the method runs that preset instead of the study's.
"""
import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path

from hsibench.methods.registry import get_method
from hsibench.study import load_study
from hsibench.study.runner import compute_job

STUDY = Path(__file__).resolve().parents[1] / "studies" / "robustness.toml"


def main(argv):
    for method in argv[0].split(","):  # several methods: one process, so start-up costs are paid once
        time_one(method, argv)


def time_one(method, argv):
    mode, scene_i = argv[1], int(argv[2])
    iters = int(argv[3]) if len(argv) > 3 else None
    ual_steps = int(argv[4]) if len(argv) > 4 else None
    st = load_study(STUDY)
    base = st.degradations[0]  # the base case comes first in a one-at-a-time design
    if os.environ.get("SCALE"):  # another scale, every other axis at its base value
        base = dataclasses.replace(base, scale=int(os.environ["SCALE"]))
    job = next(j for j in st.jobs() if j.method.name == method and j.mode == mode and j.seed == 0
               and j.scene == st.scenes[scene_i] and j.degradation == base)
    if os.environ.get("PRESET"):  # another preset of the same method (e.g. to price `fast`)
        job = dataclasses.replace(job, method=dataclasses.replace(job.method, preset=os.environ["PRESET"]))
    cls = get_method(method)
    preset = {**cls.presets["default"], **cls.presets.get(job.method.preset, {})}
    budget = preset.get("iterations")
    params = dict(job.method.params)
    if method == "ual":
        params["cache_dir"] = tempfile.mkdtemp()  # a cold cache: pre-training is timed too
        if ual_steps:
            params["pretrain_steps"] = ual_steps
    job = dataclasses.replace(job, iterations=iters, save_output=False,
                              method=dataclasses.replace(job.method, params=params))
    pretrain = {}
    if method == "ual":  # rows do not keep the pre-training time: catch it where it is measured
        from hsibench.nets.ual import UAL
        original = UAL._pretrain

        def timed(self, *a, **k):
            state, pinfo = original(self, *a, **k)
            pretrain.update(pinfo)
            return state, pinfo
        UAL._pretrain = timed
    row, _ = compute_job(job)
    if method == "ual":
        UAL._pretrain = original
    info = {**(row.get("info") or {}), **{k: pretrain[k] for k in ("pretrain_seconds",) if k in pretrain}}
    out = {"method": method, "preset": job.method.preset, "mode": mode, "scene": row.get("scene_name"), "status": row["status"],
           "error": (row.get("error") or {}).get("message"), "runtime_s": row.get("runtime_s"),
           "total_s": row.get("total_s"), "psnr": (row.get("metrics") or {}).get("psnr")}
    projected = row.get("runtime_s")
    if iters and budget and row["status"] == "ok":
        ratio = budget / iters
        stages = {k[: -len("seconds_per_iteration")]: v for k, v in info.items()
                  if k.endswith("seconds_per_iteration")}
        extra = 0.0
        for pre, spi in stages.items():
            n = info.get(pre + "iterations")
            if method == "ual" and pre.startswith("pretrain"):
                continue
            extra += spi * n * (ratio - 1.0)
            out[pre + "s_per_it"] = spi
            out[pre + "iterations_run"] = n
        if method == "ual" and ual_steps and info.get("pretrain_seconds"):
            full_steps = preset["pretrain_steps"]
            extra += info["pretrain_seconds"] * (full_steps / ual_steps - 1.0)
            out["projected_pretrain_s"] = info["pretrain_seconds"] * full_steps / ual_steps
            out["pretrain_seconds"] = info["pretrain_seconds"]
            out["pretrain_steps_run"] = ual_steps
        out["budget"] = budget
        projected = row["runtime_s"] + extra
    out["projected_runtime_s"] = projected
    out["projected_total_s"] = projected + (row.get("total_s") or 0) - (row.get("runtime_s") or 0)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
