"""Compare the rows of two result folders job by job (same job id): max |difference| over the metrics.

Usage: python reports/robustness/compare_rows.py COMMITTED_RESULTS RERUN_RESULTS
"""
import sys

from hsibench.study.store import ResultStore


def rows(folder):
    return {d["job_id"]: d for d in ResultStore(folder).rows()}


a, b = rows(sys.argv[1]), rows(sys.argv[2])
common = sorted(set(a) & set(b))
print(f"{len(b)} rerun rows; {len(common)} share a job id with the first folder")
worst = 0.0
for j in common:
    ra, rb = a[j], b[j]
    if ra["status"] != "ok" or rb["status"] != "ok":
        print(j, ra["method"], ra["mode"], ra["status"], rb["status"])
        continue
    d = max(abs(ra["metrics"][k] - rb["metrics"][k]) for k in ra["metrics"])
    worst = max(worst, d)
    print(f"{ra['method']:<10} {ra['mode']:<7} PSNR {ra['metrics']['psnr']:.6f} vs {rb['metrics']['psnr']:.6f}"
          f"  max|diff| {d:.2e}  code {ra['code_version']['git_commit'][:7]} vs {rb['code_version']['git_commit'][:7]}")
print("largest difference", worst)
