"""The built-in multi-date sample: one synthetic glacier seen on several summer dates of two years.

The first image is ``glacier_pair``'s image A; the flow ``d`` (px per Julian
year, 365.25 days) is its exact displacement field. The image of a date
``t`` years after the first is A advected by ``t * d``: pixel ``y`` takes
A's value at the ``x`` with ``x + t d(x) = y`` (``invert_flow``, then a
Keys cubic of A), so between any two dates a feature moves by
``(t2 - t1) d`` up to the flow's variation over the feature's path. Each
image gets its own sensor noise. Near the upper edge of the image, where
ice enters from outside, the advected values are clamped to the edge and
the flow there is not recoverable.

Written like :mod:`.sample` (uint16 reflectance x 10000, nodata 0,
``ACQUISITION_DATETIME`` and ``CLOUD_COVER`` tags, EPSG:32632 at 10 m), plus
the outline (GeoJSON, WGS 84), the true vx, vy (m/yr) and a stake CSV in
lon/lat with the true velocity at a few points on the ice.
"""
from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from glacierflow.core.geo.crs import epsg_wkt, transformer, wgs84_wkt
from glacierflow.core.geo.grid import Grid
from glacierflow.core.io.raster import write_array
from glacierflow.core.io.timestamps import DAYS_PER_YEAR, SECONDS_PER_DAY, parse_datetime
from glacierflow.core.velocity.convert import displacement_to_velocity

from .sample import _write_outline, sample_grid
from .synthetic import glacier_pair, invert_flow, sample_cubic

#: Summer acquisitions (UTC) of the series: three in 2021, three in 2022, and one in May 2021 that the
#: default June-October search leaves out. Cloud cover in % for the CLOUD_COVER tag.
SERIES_DATES: tuple[tuple[str, float], ...] = (
    ("2021-05-20T10:30:21Z", 12.0),
    ("2021-07-10T10:30:21Z", 3.0),
    ("2021-08-04T10:30:19Z", 8.0),
    ("2021-09-13T10:30:21Z", 15.0),
    ("2022-07-15T10:30:19Z", 5.0),
    ("2022-08-09T10:30:21Z", 1.0),
    ("2022-09-18T10:30:19Z", 20.0),
)
STAKE_COUNT = 6
#: A southern summer that wraps the new year: a scene every 5 days from 12 December 2019 to 16 January
#: 2020 (written with ``epsg=32719``, about 44 degrees south, and a fast glacier: ``SEASON_PX_PER_YEAR``).
SEASON_DATES: tuple[tuple[str, float], ...] = tuple(
    (f"{day:%Y-%m-%d}T14:20:00Z", 5.0) for day in (datetime(2019, 12, 12) + timedelta(days=5 * i) for i in range(8)))
SEASON_EPSG = 32719
SEASON_PX_PER_YEAR = 60.0  # 600 m/yr at 10 m: 1.6 px in 10 days


@dataclass(frozen=True)
class SeriesFiles:
    """Paths of the written series (images sorted by date)."""

    folder: str
    images: list[str]
    outlines: str
    truth_vx: str
    truth_vy: str
    stakes: str
    max_speed: float  # m/yr, largest true speed on the image


def write_sample_series(folder: str, shape: tuple[int, int] = (192, 192), seed: int = 0,
                        px_per_year: float = 5.0, noise: float = 0.01,
                        dates: Sequence[tuple[str, float]] = SERIES_DATES, epsg: int | None = None,
                        offsets_px: Sequence[tuple[float, float]] | None = None,
                        origin_shift_m: tuple[float, float] = (0.0, 0.0)) -> SeriesFiles:
    """Write the series into ``folder``; ``shape`` (rows, cols) px, ``px_per_year``: the largest
    displacement per Julian year (px) on the glacier centreline, ``noise``: reflectance std per image.

    ``epsg``: another CRS for the same coordinates (32719, UTM 19S, puts the glacier at about 44 degrees
    south, in Patagonia); ``offsets_px``: per image, a co-registration error (dx right, dy down, px) that
    shifts the whole image, ground and ice, as a misregistered scene does; ``origin_shift_m``: (east,
    north) m added to the grid's origin (another glacier of a region)."""
    os.makedirs(folder, exist_ok=True)
    # glacier_pair renders its own image B, which fails for large displacements: a faster glacier is the
    # same flow field scaled
    drawn = min(px_per_year, 6.0)
    pair = glacier_pair(shape=shape, max_displacement_px=drawn, seed=seed, noise=0.0, brightness_change=False)
    flow_x, flow_y = pair.dx * (px_per_year / drawn), pair.dy * (px_per_year / drawn)
    grid = sample_grid(shape)
    x0, a, b, y0, d, e = grid.transform
    grid = Grid(epsg_wkt(epsg) if epsg is not None else grid.crs_wkt,
                (x0 + origin_shift_m[0], a, b, y0 + origin_shift_m[1], d, e), grid.width, grid.height)
    offsets = list(offsets_px) if offsets_px is not None else [(0.0, 0.0)] * len(dates)
    times = [parse_datetime(text) for text, _ in dates]
    rng = np.random.default_rng(seed + 1)
    images = []
    for (text, cloud), when, (shift_x, shift_y) in zip(dates, times, offsets):
        years = (when - times[0]).total_seconds() / SECONDS_PER_DAY / DAYS_PER_YEAR
        if shift_x or shift_y:  # the flow's displacement since the first image plus the scene's own shift
            image = advect(pair.image_a, flow_x * years + shift_x, flow_y * years + shift_y, 1.0)
        else:
            image = advect(pair.image_a, flow_x, flow_y, years)
        image = image + rng.normal(0.0, noise, shape)
        dn = np.clip(np.round(image * 10000.0), 1, 65535).astype(np.uint16)  # 0 stays free for nodata
        name = f"series_{when:%Y%m%d}_B08.tif"
        images.append(write_array(os.path.join(folder, name), grid, dn, nodata=0, metadata={
            "ACQUISITION_DATETIME": text, "CLOUD_COVER": f"{cloud:g}", "SENSOR": "synthetic, Sentinel-2 B08-like"}))
    vx, vy = displacement_to_velocity(flow_x, flow_y, grid.transform, DAYS_PER_YEAR)
    truth_vx = write_array(os.path.join(folder, "truth_vx.tif"), grid, vx.astype(np.float32))
    truth_vy = write_array(os.path.join(folder, "truth_vy.tif"), grid, vy.astype(np.float32))
    outlines = _write_outline(os.path.join(folder, "series_outline.geojson"), grid, pair.outline)
    stakes = write_stakes(os.path.join(folder, "series_stakes.csv"), grid, vx, vy, pair.glacier)
    return SeriesFiles(folder, images, outlines, truth_vx, truth_vy, stakes, float(np.nanmax(np.hypot(vx, vy))))


def advect(image: np.ndarray, dx: np.ndarray, dy: np.ndarray, years: float) -> np.ndarray:
    """``image`` moved by ``years * (dx, dy)`` px (bilinear flow, cubic image), float32."""
    if years == 0:
        return image.astype(np.float32)
    rows, cols = np.mgrid[0:image.shape[0], 0:image.shape[1]].astype(np.float64)
    src_col, src_row, _ = invert_flow(dx * years, dy * years, cols, rows)
    return sample_cubic(image, src_col, src_row).astype(np.float32)


def stake_pixels(glacier: np.ndarray, speed_values: np.ndarray, count: int = STAKE_COUNT,
                 edge: int = 24) -> list[tuple[int, int]]:
    """(row, col) of ``count`` ice pixels away from the image edge and the margins, spread over speed."""
    inner = np.zeros_like(glacier)
    inner[edge:-edge, edge:-edge] = True
    fast = glacier & inner & (speed_values >= 0.4 * np.nanmax(speed_values))
    rows, cols = np.nonzero(fast)
    order = np.argsort(speed_values[rows, cols])
    picks = order[np.linspace(0, order.size - 1, count).astype(int)] if order.size else []
    return [(int(rows[i]), int(cols[i])) for i in picks]


def write_stakes(path: str, grid: object, vx: np.ndarray, vy: np.ndarray, glacier: np.ndarray) -> str:
    """A stake CSV (id, lon, lat, vx, vy: true east and north velocity in m/yr) at pixel centres on the ice."""
    to_wgs84 = transformer(grid.crs_wkt, wgs84_wkt())
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "lon", "lat", "vx", "vy"])
        for index, (row, col) in enumerate(stake_pixels(glacier, np.hypot(vx, vy)), start=1):
            x, y = grid.pixel_to_map(col + 0.5, row + 0.5)
            east, north = _geographic_components(to_wgs84, x, y, float(vx[row, col]), float(vy[row, col]))
            lon, lat = to_wgs84.TransformPoint(x, y)[:2]
            writer.writerow([f"S{index}", f"{lon:.8f}", f"{lat:.8f}", f"{east:.4f}", f"{north:.4f}"])
    return path


def _geographic_components(to_wgs84: object, x: float, y: float, vx: float, vy: float) -> tuple[float, float]:
    """Grid (vx, vy) m/yr at (x, y) as true east and north components (m/yr): the grid is rotated
    from true north by the meridian convergence, so the direction goes through lon/lat."""
    speed_value = math.hypot(vx, vy)
    if speed_value == 0:
        return 0.0, 0.0
    step = 1.0 / speed_value  # years to move 1 m
    lon0, lat0 = to_wgs84.TransformPoint(x, y)[:2]
    lon1, lat1 = to_wgs84.TransformPoint(x + vx * step, y + vy * step)[:2]
    east = (lon1 - lon0) * math.cos(math.radians(lat0))
    north = lat1 - lat0
    norm = math.hypot(east, north)
    return speed_value * east / norm, speed_value * north / norm



if __name__ == "__main__":  # python -m training.sample_series FOLDER [SIZE_PX] [--southern-summer]
    import sys

    arguments = [a for a in sys.argv[1:] if not a.startswith("--")]
    size = int(arguments[1]) if len(arguments) > 1 else 192
    if "--southern-summer" in sys.argv:
        print(write_sample_series(arguments[0], shape=(size, size), px_per_year=SEASON_PX_PER_YEAR,
                                  dates=SEASON_DATES, epsg=SEASON_EPSG))
    else:
        print(write_sample_series(arguments[0], shape=(size, size)))
