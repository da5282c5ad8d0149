"""Accuracy and speed of every flow engine on held-out synthetic glacier pairs with exact truth.

    make bench            (or: python -m bench.bench_engines --scenes 4 --size 512)

For each scene the whole pair job runs (tiling, Sobel preprocessing, median
filter, forward-backward check) and the product is compared with the exact
flow: endpoint error in px on the glacier and on stable ground, the trusted
fraction, and seconds per megapixel. Figures are printed as a Markdown table
for bench/RESULTS.md.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from glacierflow.core.validation.metrics import endpoint_error_summary
from glacierflow.core.velocity.convert import velocity_to_displacement
from glacierflow.core.velocity.flow import runnable_engine_names
from glacierflow.core.velocity.pair import PairJob, run_pair_job
from training.sample import write_sample

from .render import product_displacement, read_product, read_single_band

# training.raft.data.TEST_SEEDS: never the demo sample (seed 0), never a RAFT training or validation scene.
HELD_OUT_SEEDS = range(3_000_000_000, 3_000_100_000)


def score_engine(engine: str, scenes: list, folder: Path, engine_params: dict | None = None) -> dict:
    """Median endpoint errors (px), coverage and s/MP of ``engine`` over ``scenes``."""
    glacier, stable, coverage, seconds, pixels = [], [], [], 0.0, 0
    for index, sample in enumerate(scenes):
        output = folder / f"{engine}_{index}.tif"
        started = time.perf_counter()
        run_pair_job(PairJob(sample.image_a, sample.image_b, str(output), outlines=sample.outlines, engine=engine,
                             engine_params=engine_params or {}))
        seconds += time.perf_counter() - started
        product = read_product(str(output))
        days = float(product["metadata"]["INTERVAL_DAYS"])
        dx, dy = product_displacement(product)
        tx, ty = velocity_to_displacement(read_single_band(sample.truth_vx), read_single_band(sample.truth_vy),
                                          product["transform"], days)
        on_ice = product["glacier"] == 1
        glacier_errors = endpoint_error_summary(dx, dy, tx, ty, on_ice)
        glacier.append(glacier_errors["median"])
        coverage.append(glacier_errors["coverage"])
        stable.append(endpoint_error_summary(dx, dy, tx, ty, product["glacier"] == 0)["median"])
        pixels += dx.size
    return {"engine": engine, "glacier_px": float(np.median(glacier)), "stable_px": float(np.median(stable)),
            "glacier_coverage": float(np.mean(coverage)), "seconds_per_megapixel": seconds / (pixels / 1e6)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=4)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--max-displacement", type=float, default=8.0, help="px")
    parser.add_argument("--engines", nargs="*", default=list(runnable_engine_names()))
    parser.add_argument("--model", help="RAFT .onnx for the raft engine (default: the shipped one)")
    args = parser.parse_args()
    raft_params = {"model_path": args.model} if args.model else {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        scenes = [write_sample(str(folder / f"scene{seed}"), seed=seed, shape=(args.size, args.size),
                               max_displacement_px=args.max_displacement)
                  for seed in HELD_OUT_SEEDS[:args.scenes]]
        rows = [score_engine(engine, scenes, folder, raft_params if engine == "raft" else None)
                for engine in args.engines]
    print(f"{args.scenes} held-out scenes of {args.size} x {args.size} px, flow up to {args.max_displacement} px\n")
    baseline = rows[0]["seconds_per_megapixel"]
    print(f"| engine | median EPE glacier (px) | median EPE stable (px) | glacier trusted | s / megapixel | "
          f"time / {rows[0]['engine']} |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['engine']} | {row['glacier_px']:.3f} | {row['stable_px']:.3f} | "
              f"{100 * row['glacier_coverage']:.1f} % | {row['seconds_per_megapixel']:.2f} | "
              f"{row['seconds_per_megapixel'] / baseline:.2f} |")


if __name__ == "__main__":
    main()
