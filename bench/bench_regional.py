"""Cost of the regional job: per pair and per glacier (seconds, CPU seconds, peak memory, bytes read), and
scaling from 1 to 2 Dask workers on this machine, in one command:

    python -m bench.bench_regional [--size 768] [--out /tmp/gf_bench_regional]

The built-in regional sample (4 glaciers in 2 job areas, 9 cross-year pairs per area, the default engine).
``--size`` 768 px scenes give area grids of about 0.3-0.4 Mpx, a medium glacier with its margin on a
Sentinel-2 10 m crop (3-4 s per pair on one core); 384 px gives 0.1 Mpx tasks of under a second.
Per-task figures come from a fresh Python process per task, one thread as on a Dask worker (peak RSS of
that process, CPU seconds, bytes it read through system calls from /proc/self/io, measured alone as the
baseline). Co-run: the same pair in two processes at once against alone (what 2 busy cores cost each
other here). Scaling: the same job on a LocalCluster of 1 and of 2 worker processes (1 thread each),
fresh outputs each time; wall time of the whole run (cluster start and stop included) and of the tasks
alone (from the submission on), and the CPU seconds of this process (client and scheduler).
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
from glacierflow.core.workflows import regional
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
before, start, cpu = io(), time.perf_counter(), time.process_time()
if kind == "pair":
    out = compute_pair(area.pairs[0], sys.argv[3], job.engine, area.annual.outlines, {"workers": 1}, area.grid)
elif kind == "glacier":
    os.makedirs(sys.argv[3], exist_ok=True)
    results = [{"path": os.path.join(job.output, "_areas", area.id, "pairs", pair_product_name(p, job.engine)),
                "error": ""} for p in area.pairs]
    records = screen_area(area.pairs, results, area.annual.outlines, os.path.join(sys.argv[3], "pairs.csv"))
    stack_glacier(area.glaciers[0], records, area.grid, area.annual.outlines, sys.argv[3], job.margin_m)
seconds, after = time.perf_counter() - start, io()
print(json.dumps({"seconds": seconds, "cpu_seconds": time.process_time() - cpu,
                  "rchar": after["rchar"] - before["rchar"],
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


def probe(job: RegionalJob, kind: str, *targets: str) -> list[dict[str, float]]:
    """Run one task kind in a fresh process per target, all at once; their figures."""
    fields = {k: getattr(job, k) for k in ("outlines", "output", "folder", "group_distance_m", "engine")}
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    running = [subprocess.Popen([sys.executable, "-c", PROBE, json.dumps(fields), kind, target],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
               for target in targets]
    answers = [process.communicate(timeout=600)[0] for process in running]
    if any(process.returncode for process in running):
        raise SystemExit(f"A {kind} probe failed")
    return [json.loads(answer.strip().splitlines()[-1]) for answer in answers]


class TaskStream:
    """Records the Dask task stream of the job's runs (``distributed.get_task_stream`` entered when the job
    connects, read when its tasks are done): busy and idle worker-seconds and the mean pair task."""

    def __init__(self) -> None:
        self.records: list[dict] = []
        self._context = None
        connect, results = regional.connect, regional.DaskRunner.results

        def recording_connect(job, feedback):
            from distributed import get_task_stream

            client = connect(job, feedback)
            self._context = get_task_stream(client)
            self._context.__enter__()
            return client

        def recording_results(runner, handles, feedback):
            values = results(runner, handles, feedback)
            self._context.__exit__(None, None, None)
            self.records = list(self._context.data)
            return values

        regional.connect, regional.DaskRunner.results = recording_connect, recording_results

    def summary(self, workers: int) -> str:
        spans = [(s["start"], s["stop"], r["key"]) for r in self.records for s in r["startstops"]
                 if s["action"] == "compute"]
        busy = sum(stop - start for start, stop, _ in spans)
        wall = max(stop for _, stop, _ in spans) - min(start for start, _, _ in spans)
        pairs = [stop - start for start, stop, key in spans if str(key).startswith("pair-")]
        return (f"busy {busy:.1f} worker-s, idle {workers * wall - busy:.1f} worker-s over {wall:.1f} s, "
                f"mean pair task {sum(pairs) / len(pairs):.2f} s")


def timed_run(job: RegionalJob) -> tuple[float, float, float]:
    """Wall seconds of the whole run and of its tasks (from the submission on), and this process's CPU
    seconds (client and, for a LocalCluster, its scheduler)."""
    feedback = Quiet()
    started, cpu = time.perf_counter(), time.process_time()
    run_regional_job(job, feedback)
    ended = time.perf_counter()
    return ended - started, ended - feedback.tasks_started, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=768, help="px per side of each area's scenes")
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
    load_before = os.getloadavg()[0]
    serial_all, serial_tasks, serial_cpu = timed_run(serial)
    baseline = probe(serial, "none", "")[0]
    pair = probe(serial, "pair", os.path.join(args.out, "probe_pair"))[0]
    together = probe(serial, "pair", *(os.path.join(args.out, f"probe_pair_{i}") for i in (1, 2)))
    glacier = probe(serial, "glacier", os.path.join(args.out, "probe_glacier"))[0]
    stream = TaskStream()
    one_all, one_tasks, one_cpu = timed_run(job("one", workers=1))
    one_stream = stream.summary(1)
    two_all, two_tasks, two_cpu = timed_run(job("two", workers=2))
    two_stream = stream.summary(2)
    megapixels = pair["pixels"] / 1e6
    corun = sum(p["seconds"] for p in together) / len(together) / pair["seconds"]
    print(f"Regional sample: {len(region.glacier_ids)} glaciers, {len(areas)} areas, {tasks} pairs, "
          f"{args.size} x {args.size} px per area, engine {serial.engine}; {os.cpu_count()} CPU(s), load average "
          f"{load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
    print("| task (one thread) | seconds | CPU seconds | peak RSS (MB) | read (MB) |\n|---|---|---|---|---|")
    print(f"| interpreter + imports alone | {baseline['seconds']:.2f} | {baseline['cpu_seconds']:.2f} | "
          f"{baseline['peak_rss_mb']:.0f} | {baseline['rchar'] / 1e6:.1f} |")
    print(f"| one pair ({megapixels:.3f} Mpx) | {pair['seconds']:.2f} | {pair['cpu_seconds']:.2f} | "
          f"{pair['peak_rss_mb']:.0f} | {pair['rchar'] / 1e6:.1f} |")
    print(f"| the same pair, two processes at once | {together[0]['seconds']:.2f}, {together[1]['seconds']:.2f} | "
          f"{together[0]['cpu_seconds']:.2f}, {together[1]['cpu_seconds']:.2f} | | |")
    print(f"| one glacier (screening 9 pairs + stack) | {glacier['seconds']:.2f} | {glacier['cpu_seconds']:.2f} | "
          f"{glacier['peak_rss_mb']:.0f} | {glacier['rchar'] / 1e6:.1f} |")
    print(f"Pair cost: {pair['seconds'] / megapixels:.1f} s per Mpx per pair on one core; two at once: "
          f"{corun:.2f} x as long each")
    print("| run | wall (s) | tasks only (s) | tasks / 1 worker | CPU s of this process |\n|---|---|---|---|---|")
    print(f"| this process (workers 0) | {serial_all:.1f} | {serial_tasks:.1f} | {serial_tasks / one_tasks:.2f} | "
          f"{serial_cpu:.1f} |")
    print(f"| LocalCluster, 1 worker | {one_all:.1f} | {one_tasks:.1f} | 1.00 | {one_cpu:.1f} |")
    print(f"| LocalCluster, 2 workers | {two_all:.1f} | {two_tasks:.1f} | {two_tasks / one_tasks:.2f} | "
          f"{two_cpu:.1f} |")
    print(f"2 workers / 1 worker, whole run (cluster start and stop included): {two_all / one_all:.2f}")
    print(f"Task stream, 1 worker: {one_stream}\nTask stream, 2 workers: {two_stream}")

if __name__ == "__main__":
    main()
