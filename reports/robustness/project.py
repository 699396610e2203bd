"""Project the cost of reports/studies/robustness.toml from one timed job per method, mode and scene.

Usage: python reports/robustness/project.py [TIMINGS.jsonl] [WORKERS]

TIMINGS.jsonl holds the lines printed by time_job.py (base case, seed 0, one thread). Every job of
the study is charged the time measured for its method, mode and scene (the degradation is assumed
not to change the cost); UAL's pre-training is charged once per job in blind mode (the estimated SRF
differs per job, so its cache never hits) and once per scene and scale in oracle mode (the cache key
holds the SRF and the scale, not the PSF, the noise or the seed). Prints a Markdown table.
"""
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

from hsibench.study import load_study

HERE = Path(__file__).resolve().parent


def main(argv):
    timings = Path(argv[0]) if argv else HERE / "timings.jsonl"
    workers = int(argv[1]) if len(argv) > 1 else 2
    st = load_study(HERE.parents[0] / "studies" / "robustness.toml")
    jobs = st.jobs()
    scene_name = {}
    t = {}
    for line in timings.read_text().splitlines():
        d = json.loads(line)
        if d["status"] != "ok":
            raise SystemExit(f"timed job failed: {d}")
        t[(d["method"], d["mode"], d["scene"])] = d
    # the scene names the rows carry, in the study's scene order
    names = list(dict.fromkeys(d["scene"] for d in t.values()))
    for src, name in zip(st.scenes, names):
        scene_name[src] = name
    cpu = defaultdict(float)
    count = Counter()
    per_job = defaultdict(list)
    pretrain_keys = set()
    for j in jobs:
        d = t[(j.method.name, j.mode, scene_name[j.scene])]
        s = d["projected_total_s"]
        if j.method.name == "ual" and j.mode == "oracle":
            s -= d["projected_pretrain_s"]
            key = (j.scene, j.degradation.scale)
            if key not in pretrain_keys:
                pretrain_keys.add(key)
                cpu[(j.method.name, j.mode)] += d["projected_pretrain_s"]
        cpu[(j.method.name, j.mode)] += s
        count[(j.method.name, j.mode)] += 1
        per_job[(j.method.name, j.mode)].append(d["projected_total_s"])
    methods = list(dict.fromkeys(m.name for m in st.methods))
    print("| method | preset | s/job oracle (CAVE / Pavia / Jasper) | s/job blind (CAVE / Pavia / Jasper) "
          "| jobs | CPU h |")
    print("|---|---|---|---|---|---|")
    total = 0.0
    for m in methods:
        spec = next(x for x in st.methods if x.name == m)
        cells = []
        for mode in ("oracle", "blind"):
            cells.append(" / ".join(f"{t[(m, mode, n)]['projected_total_s']:.1f}" for n in names))
        h = (cpu[(m, "oracle")] + cpu[(m, "blind")]) / 3600
        total += h
        print(f"| {m} | {spec.preset} | {cells[0]} | {cells[1]} | "
              f"{count[(m, 'oracle')] + count[(m, 'blind')]} | {h:.2f} |")
    print(f"| **total** | | | | {len(jobs)} | **{total:.1f}** |")
    print()
    print(f"Projected wall time on {workers} workers × 1 thread: {total / workers:.1f} h "
          f"(CPU hours / {workers}, perfect packing).")


if __name__ == "__main__":
    main(sys.argv[1:])
