"""Every engine on the real Landsat-8 Yahtse pair (../shared/data/yahtse): regions and maps.

    python -m bench.bench_yahtse --out /tmp/yahtse

Prints, per engine, the run time and, per region picked on image A (see
tests/test_yahtse.py for why each region is what it is), the median speed,
its 90th percentile, the trusted fraction and the median flow direction; and
renders one map per engine (speed with direction arrows over image A).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from glacierflow.core.velocity.flow import runnable_engine_names
from glacierflow.core.velocity.pair import PairJob, run_pair_job

from .render import read_product, read_single_band, render_velocity_map

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "yahtse"
PAIR = ("LC80630182016200LGN00_B8_yahtse.TIF", "LC80630182016216LGN00_B8_yahtse.TIF")
REGIONS = {  # (row0, row1, col0, col1) on image A
    "stable rock, south of the nunatak": (770, 880, 600, 760),
    "stable rock, north-east spur": (150, 250, 1050, 1150),
    "main trunk above the terminus": (550, 800, 900, 1000),
    "upper glacier, north of the nunatak": (100, 300, 500, 800),
    "fjord (water, melange)": (950, 1080, 780, 880),
}


def region_table(product: dict) -> list:
    """(region, median speed m/yr, p90 m/yr, trusted fraction, direction deg) rows."""
    rows = []
    for name, (r0, r1, c0, c1) in REGIONS.items():
        speed = product["speed"][r0:r1, c0:c1]
        vx, vy = product["vx"][r0:r1, c0:c1], product["vy"][r0:r1, c0:c1]
        direction = np.degrees(np.arctan2(np.nanmedian(vx), np.nanmedian(vy))) % 360
        rows.append((name, np.nanmedian(speed), np.nanpercentile(speed, 90),
                     np.nanmean(product["valid"][r0:r1, c0:c1]), direction))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="yahtse_bench")
    parser.add_argument("--engines", nargs="*", default=list(runnable_engine_names()))
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} is absent: this benchmark needs ../shared/data beside the repository")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    background = read_single_band(str(DATA / PAIR[0]))
    for engine in args.engines:
        output = out / f"yahtse_{engine}.tif"
        started = time.perf_counter()
        result = run_pair_job(PairJob(str(DATA / PAIR[0]), str(DATA / PAIR[1]), str(output), engine=engine))
        seconds = time.perf_counter() - started
        print(f"\n{engine}: {seconds:.1f} s for {result.grid.width} x {result.grid.height} px, "
              f"{100 * result.valid_fraction:.0f} % trusted\n")
        print("| region | median speed (m/yr) | 90th pct (m/yr) | trusted | direction (deg) |")
        print("|---|---|---|---|---|")
        for name, median, p90, trusted, direction in region_table(read_product(str(output))):
            print(f"| {name} | {median:.0f} | {p90:.0f} | {100 * trusted:.0f} % | {direction:.0f} |")
        render_velocity_map(str(output), str(out / f"yahtse_{engine}.png"), background,
                            f"Yahtse Glacier, {engine}, 2016-07-18 to 2016-08-03", vmax=4000)


if __name__ == "__main__":
    main()
