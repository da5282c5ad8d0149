"""Where the pair job's time goes: stage by stage for each engine on the Yahtse pair, against raw OpenCV.

    python -m bench.bench_pipeline [--engines hybrid dis ...] [--repeat 2] [--before /path/to/old/checkout]

(The issue asked for ``python -m glacierflow.bench.bench_pipeline``; benchmarks live in the top-level
``bench/`` package, which does not ship with the plugin, so it is ``python -m bench.bench_pipeline``.)

For each engine, in one process and one run:

* **stages**, run one after the other on the whole scene as one block, each timed alone: read (open
  both images, robust statistics), warp (both bands onto the job grid), preprocess (the engine's
  input), flow (forward and backward), post-process (forward-backward error, NaN-aware median, texture
  test, trust), write (the Cloud Optimized GeoTIFF);
* **job**: ``run_pair_job`` end to end as users run it (blocks in a thread pool), wall seconds and
  CPU seconds / wall seconds (cores used);
* **reference**: OpenCV DIS (medium preset) on the raw whole scene stretched to 8 bit, forward only,
  in the same run: the issue's "ten-line script". Ratios are job / reference.
* **the engine's OpenCV calls**: the same library calls the engine makes, with its own settings,
  forward and backward, on the raw whole scene (hybrid: DIS start + VariationalRefinement; its chip
  matching is numpy and is not counted): job / those calls is the pipeline's own overhead.

``--before PATH``: also profile ``run_pair_job`` of another checkout (e.g. the main branch) in a
subprocess, with the same engines, and report its cProfile totals by stage (flow engine calls,
median filter, COG translation, the rest).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "yahtse"
PAIR = ("LC80630182016200LGN00_B8_yahtse.TIF", "LC80630182016216LGN00_B8_yahtse.TIF")
ENGINES = ("hybrid", "dis", "ncc", "horn_schunck", "farneback")
STAGES = ("read", "warp", "preprocess", "flow", "post-process", "write")


def reference_seconds(repeat: int) -> float:
    """Best wall seconds of OpenCV DIS (medium) on the raw whole Yahtse scene (forward flow only)."""
    import cv2

    a8, b8 = _stretched_pair()
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(a8, b8, None)
        best = min(best, time.perf_counter() - started)
    return best


def _stretched_pair() -> tuple[np.ndarray, np.ndarray]:
    """The raw Yahtse bands stretched to 8 bit (1-99 % range), as the issue's plain OpenCV script does."""
    from osgeo import gdal

    def stretched(path: Path) -> np.ndarray:
        band = gdal.Open(str(path)).ReadAsArray().astype(np.float32)
        low, high = np.percentile(band, [1.0, 99.0])
        return np.clip((band - low) * 255.0 / (high - low), 0, 255).astype(np.uint8)

    return stretched(DATA / PAIR[0]), stretched(DATA / PAIR[1])


def engine_calls_seconds(engine_name: str, repeat: int) -> float | None:
    """Best wall seconds of the OpenCV calls ``engine_name`` makes, with its own settings, forward and
    backward, on the raw whole scene (no preprocessing, blocks or post-processing); None for an engine
    whose work is not one OpenCV call (ncc, horn_schunck)."""
    import cv2

    from glacierflow.core.velocity.flow import create_engine

    engine = create_engine(engine_name)
    a8, b8 = _stretched_pair()

    def calls(first: np.ndarray, second: np.ndarray) -> None:
        # The engines' own configured OpenCV objects, called on the raw stretched images.
        if engine_name == "dis":
            engine.calculator().calc(first, second, None)
        elif engine_name == "hybrid":
            start = engine.start_engine().calculator().calc(first, second, None)
            engine.refiner().calc(first.astype(np.float32), second.astype(np.float32), start)
        else:
            cv2.calcOpticalFlowFarneback(first.astype(np.float32), second.astype(np.float32), None,
                                         engine.pyr_scale, engine.levels, engine.winsize, engine.iterations,
                                         engine.poly_n, engine.poly_sigma, engine.flags)

    if engine_name not in ("dis", "hybrid", "farneback"):
        return None
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        calls(a8, b8)
        calls(b8, a8)
        best = min(best, time.perf_counter() - started)
    return best


def staged(engine_name: str, folder: str) -> dict[str, float]:
    """Seconds of each stage of the job on the whole scene as one block, run one after the other."""
    from glacierflow.core.geo.gridspec import resolve_grid
    from glacierflow.core.io.cog import ProductWriter
    from glacierflow.core.io.raster import BandSource
    from glacierflow.core.products.velocity import PAIR_BANDS
    from glacierflow.core.velocity.flow import create_engine
    from glacierflow.core.velocity.pair import PairJob, sample_windows, track_settings
    from glacierflow.core.velocity.preprocess import band_statistics, prepare_for_flow
    from glacierflow.core.velocity.tracking import consistency, filtered, textured_rows, voting_rows

    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[stage] = seconds.get(stage, 0.0) + now - clock
        clock = now

    job = PairJob(str(DATA / PAIR[0]), str(DATA / PAIR[1]), os.path.join(folder, "staged.tif"), engine=engine_name)
    settings = track_settings(job)
    engine = create_engine(engine_name)
    lap("setup")
    sources = [BandSource.open(path) for path in (job.image_a, job.image_b)]
    grid = resolve_grid(None, images=[source.grid for source in sources])
    stats = [band_statistics(sample_windows(source, grid)) for source in sources]
    lap("read")
    bands = [source.read(grid) for source in sources]
    lap("warp")
    (a, valid_a), (b, valid_b) = (prepare_for_flow(band, s, settings.preprocessing) for band, s in zip(bands, stats))
    lap("preprocess")
    check_flow = getattr(engine, "consistency_estimate", engine.estimate)  # as tracking.track_block
    forward, backward = engine.estimate(a, b), check_flow(b, a)
    lap("flow")
    # The job's own post-processing functions (tracking.track_block), on the whole scene as one block.
    keep = slice(0, a.shape[1])
    voting = voting_rows(a.shape[1], keep, settings.median_size)
    textured = textured_rows(bands[0], bands[1], stats, settings.min_texture_snr, keep)
    passed, gross = consistency(forward, backward, keep, voting)
    dx, dy = filtered(forward, gross, settings.median_size, settings.median_step, keep, voting)
    trusted = passed & valid_a & valid_b & textured & np.isfinite(dx) & np.isfinite(dy)
    lap("post-process")
    vx, vy = np.where(trusted, dx, np.nan), np.where(trusted, dy, np.nan)
    with ProductWriter(job.output, grid, PAIR_BANDS) as writer:
        writer.write_rows(0, {"vx": vx, "vy": vy, "speed": np.hypot(vx, vy), "valid": trusted.astype(np.float32)})
        writer.finish({"BENCH": "staged"})
    lap("write")
    return seconds


def job_run(engine_name: str, folder: str) -> tuple[float, float]:
    """(wall seconds, cores used) of ``run_pair_job`` end to end."""
    from glacierflow.core.velocity.pair import PairJob, run_pair_job

    output = os.path.join(folder, f"{engine_name}.tif")
    cpu, wall = time.process_time(), time.perf_counter()
    run_pair_job(PairJob(str(DATA / PAIR[0]), str(DATA / PAIR[1]), output, engine=engine_name))
    wall = time.perf_counter() - wall
    return wall, (time.process_time() - cpu) / wall


def profile_before(checkout: str, engines: list[str]) -> dict[str, dict[str, float]]:
    """cProfile totals by stage of ``run_pair_job`` in another checkout (a subprocess per engine)."""
    out = {}
    for engine in engines:
        env = {**os.environ, "PYTHONPATH": checkout + os.pathsep + os.environ.get("PYTHONPATH", "")}
        result = subprocess.run([sys.executable, __file__, "--profile-one", engine], env=env, cwd=checkout,
                                capture_output=True, text=True, check=False)
        if result.returncode == 0:  # an engine the other checkout does not have is left out
            out[engine] = json.loads(result.stdout.strip().splitlines()[-1])
    return out


def _profile_one(engine: str) -> None:
    """Print the cProfile totals (s) of one ``run_pair_job`` of the importable checkout, as JSON."""
    import cProfile
    import pstats

    try:
        from glacierflow.core.velocity.pair import PairJob, run_pair_job
    except ImportError:  # the layout before the re-layout
        from glacierflow.core.pair_velocity import PairJob, run_pair_job  # type: ignore[no-redef]
    profiler = cProfile.Profile()
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        profiler.runcall(run_pair_job, PairJob(str(DATA / PAIR[0]), str(DATA / PAIR[1]),
                                               os.path.join(folder, "v.tif"), engine=engine))
        total = time.perf_counter() - started
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    cumulative: dict[str, float] = {}
    for (filename, _, function), (_, _, _, cumtime, _) in stats.items():
        key = f"{Path(filename).name}:{function}"
        cumulative[key] = max(cumulative.get(key, 0.0), cumtime)
    flow = sum(t for k, t in cumulative.items() if k.endswith(":estimate") and "__init__" not in k)
    median = cumulative.get("postprocess.py:median_filter_flow", 0.0)
    cog = cumulative.get("~:<built-in method osgeo._gdal.TranslateInternal>", 0.0)
    print(json.dumps({"total": total, "flow": flow, "median": median, "cog": cog}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", nargs="*", default=list(ENGINES))
    parser.add_argument("--repeat", type=int, default=2, help="runs per measurement; the best is kept")
    parser.add_argument("--before", help="another checkout to profile the same way (its run_pair_job)")
    parser.add_argument("--profile-one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.profile_one:
        _profile_one(args.profile_one)
        return
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} is absent: this benchmark needs ../shared/data beside the repository")
    reference = reference_seconds(max(args.repeat, 3))
    print(f"## Yahtse pair (1698 x 1087 px), {os.cpu_count()} CPU cores\n")
    print(f"Reference: OpenCV DIS (medium) on the raw whole scene, forward only: {reference:.3f} s\n")
    print("| engine | " + " | ".join(STAGES) + " | post-process share | job (threads) | job / reference "
          "| cores used | engine's OpenCV calls (fwd + bwd) | job / those calls |")
    print("|---" * (len(STAGES) + 7) + "|")
    with tempfile.TemporaryDirectory() as folder:
        for engine in args.engines:
            stages = min((staged(engine, folder) for _ in range(args.repeat)), key=lambda s: sum(s.values()))
            wall, cores = min((job_run(engine, folder) for _ in range(args.repeat)), key=lambda r: r[0])
            share = stages["post-process"] / sum(stages[s] for s in STAGES)
            calls = engine_calls_seconds(engine, args.repeat)
            own = "- | -" if calls is None else f"{calls:.2f} | {wall / calls:.1f}x"
            print(f"| {engine} | " + " | ".join(f"{stages[s]:.2f}" for s in STAGES)
                  + f" | {100 * share:.0f} % | {wall:.2f} | {wall / reference:.0f}x | {cores:.2f} | {own} |",
                  flush=True)
    if args.before:
        print(f"\n### Before: run_pair_job of {args.before} (cProfile, seconds)\n")
        print("| engine | total | flow engine calls | median filter | COG translation | median share | "
              "total / reference |")
        print("|---" * 7 + "|")
        for engine, row in profile_before(args.before, args.engines).items():
            print(f"| {engine} | {row['total']:.2f} | {row['flow']:.2f} | {row['median']:.2f} | {row['cog']:.2f} | "
                  f"{100 * row['median'] / row['total']:.0f} % | {row['total'] / reference:.0f}x |", flush=True)


if __name__ == "__main__":
    main()
