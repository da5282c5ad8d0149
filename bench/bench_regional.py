"""Cost of the regional job: per pair and per glacier (seconds, peak memory, bytes read), and scaling from 1
to 2 Dask workers on this machine, in one command:

    python -m bench.bench_regional [--size 256] [--out /tmp/gf_bench_regional]

The built-in regional sample (4 glaciers in 2 job areas, 9 cross-year pairs per area, horn_schunck).
Per-task figures come from a fresh Python process per task (peak RSS of that process, bytes it read
through system calls from /proc/self/io, both including the interpreter and its imports, measured alone
as the baseline). Scaling: the same job on a LocalCluster of 1 and of 2 worker processes (1 thread each),
fresh outputs each time; wall time of the whole run (cluster start included) and of the tasks alone.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

from glacierflow.core.feedback import Feedback
from glacierflow.core.workflows.regional import RegionalJob, plan_areas, run_regional_job
from training.sample_region import write_sample_region

PROBE = r"""
import json, os, resource, sys, time
def io():
    with open("/proc/self/io") as f:
        return {k: int(v) for k, v in (line.split(": ") for line in f)}
from glacierflow.core.feedback import Feedback
from glacierflow.core.workflows.annual import pair_product_name
from glacierflow.core.workflows.regional import RegionalJob, plan_areas, compute_pair, screen_area, stack_glacier
job = RegionalJob(**json.loads(sys.argv[1]))
areas = plan_areas(job, Feedback())
area = areas[0]
kind = sys.argv[2]
before, start = io(), time.perf_counter()
if kind == "pair":
    out = compute_pair(area.pairs[0], sys.argv[3], job.engine, area.annual.outlines, {}, area.grid)
elif kind == "glacier":
    os.makedirs(sys.argv[3], exist_ok=True)
    results = [{"path": os.path.join(job.output, "_areas", area.id, "pairs", pair_product_name(p, job.engine)),
                "error": ""} for p in area.pairs]
    records = screen_area(area.pairs, results, area.annual.outlines, os.path.join(sys.argv[3], "pairs.csv"))
    stack_glacier(area.glaciers[0], records, area.grid, area.annual.outlines, sys.argv[3], job.margin_m)
seconds, after = time.perf_counter() - start, io()
print(json.dumps({"seconds": seconds, "rchar": after["rchar"] - before["rchar"],
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                  "pixels": area.grid.width * area.grid.height}))
"""


class Quiet(Feedback):
    """Keeps the log lines that carry timings."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.tasks_started = 0.0

    def info(self, message: str) -> None:
        self.lines.append(message)
        if ("task(s) to run" in message or "Running in this process" in message) and not self.tasks_started:
            self.tasks_started = time.perf_counter()  # in this process the tasks run as they are submitted


def probe(job: RegionalJob, kind: str, target: str) -> dict[str, float]:
    """Run one task kind in a fresh process; its figures."""
    fields = {k: getattr(job, k) for k in ("outlines", "output", "folder", "group_distance_m", "engine")}
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(fields), kind, target], capture_output=True,
                          text=True, env=env, check=True, timeout=600)
    return json.loads(done.stdout.strip().splitlines()[-1])


def timed_run(job: RegionalJob) -> tuple[float, float]:
    """Wall seconds of the whole run and of its tasks (from the submission on)."""
    feedback = Quiet()
    started = time.perf_counter()
    run_regional_job(job, feedback)
    ended = time.perf_counter()
    return ended - started, ended - feedback.tasks_started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="px per side of each area's scenes")
    parser.add_argument("--out", default="/tmp/gf_bench_regional")
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    region = write_sample_region(os.path.join(args.out, "region"), shape=(args.size, args.size))

    def job(name: str, **options) -> RegionalJob:
        return RegionalJob(outlines=region.outlines, output=os.path.join(args.out, name), folder=region.folder,
                           group_distance_m=1000, memory_per_worker="2GB", **options)

    serial = job("serial", workers=0)
    areas = plan_areas(serial, Feedback())
    tasks = sum(len(a.pairs) for a in areas)
    serial_all, serial_tasks = timed_run(serial)
    baseline = probe(serial, "none", "")
    pair = probe(serial, "pair", os.path.join(args.out, "probe_pair"))
    glacier = probe(serial, "glacier", os.path.join(args.out, "probe_glacier"))
    one_all, one_tasks = timed_run(job("one", workers=1))
    two_all, two_tasks = timed_run(job("two", workers=2))
    megapixels = pair["pixels"] / 1e6
    print(f"Regional sample: {len(region.glacier_ids)} glaciers, {len(areas)} areas, {tasks} pairs, "
          f"{args.size} x {args.size} px per area, engine {serial.engine}; {os.cpu_count()} CPU(s), load average "
          f"{os.getloadavg()[0]:.1f} at the end")
    print("| task | seconds | peak RSS (MB) | read (MB) |\n|---|---|---|---|")
    print(f"| interpreter + imports alone | {baseline['seconds']:.2f} | {baseline['peak_rss_mb']:.0f} | "
          f"{baseline['rchar'] / 1e6:.1f} |")
    print(f"| one pair ({megapixels:.3f} Mpx) | {pair['seconds']:.2f} | {pair['peak_rss_mb']:.0f} | "
          f"{pair['rchar'] / 1e6:.1f} |")
    print(f"| one glacier (screening 9 pairs + stack) | {glacier['seconds']:.2f} | {glacier['peak_rss_mb']:.0f} | "
          f"{glacier['rchar'] / 1e6:.1f} |")
    print(f"Pair cost: {pair['seconds'] / megapixels:.1f} s per Mpx per pair on one core")
    print("| run | wall (s) | tasks only (s) | tasks / 1 worker |\n|---|---|---|---|")
    print(f"| this process (workers 0) | {serial_all:.1f} | {serial_tasks:.1f} | {serial_tasks / one_tasks:.2f} |")
    print(f"| LocalCluster, 1 worker | {one_all:.1f} | {one_tasks:.1f} | 1.00 |")
    print(f"| LocalCluster, 2 workers | {two_all:.1f} | {two_tasks:.1f} | {two_tasks / one_tasks:.2f} |")
    print(f"2 workers / 1 worker, whole run: {two_all / one_all:.2f}")


if __name__ == "__main__":
    main()
