"""Velocity time series at points from many products (a folder of pair products, or stacks): vx, vy,
speed, valid and uncertainty against the middle of each product's interval, with the interval itself as
the time error bar."""
from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from ..errors import GlacierFlowError
from ..feedback import Feedback, JobCancelled
from ..products.velocity import open_velocity
from .figures import new_figure, save_png, write_csv
from .sampling import sample_product
from .timeline import product_time_range

SERIES_COLUMNS = ("point", "x", "y", "product", "start", "end", "mid_date", "interval_days", "vx", "vy", "speed",
                  "valid", "uncertainty")
PRODUCT_SUFFIXES = (".tif", ".tiff")


@dataclass(frozen=True)
class SeriesPoint:
    """A named map point (x, y in the CRS given with it, m)."""

    name: str
    x: float
    y: float


@dataclass(frozen=True)
class SeriesValue:
    """One product's velocity at one point: dates (UTC), interval (days) and values (m/yr; NaN = none)."""

    point: SeriesPoint
    product: str
    start: datetime
    end: datetime
    vx: float
    vy: float
    valid: float
    uncertainty: float

    @property
    def mid(self) -> datetime:
        """The middle of the interval."""
        return self.start + (self.end - self.start) / 2

    @property
    def interval_days(self) -> float:
        """Days between the first and the last acquisition."""
        return (self.end - self.start).total_seconds() / 86400.0

    @property
    def speed(self) -> float:
        """Speed (m/yr)."""
        return float(np.hypot(self.vx, self.vy))


def product_paths(inputs: Sequence[str]) -> list[str]:
    """Files to read: each input that is a folder contributes its GeoTIFFs (sorted), files are kept."""
    paths: list[str] = []
    for item in inputs:
        if os.path.isdir(item):
            found = sorted(p for p in glob.glob(os.path.join(glob.escape(item), "*"))
                           if p.lower().endswith(PRODUCT_SUFFIXES))
            paths.extend(found)
        elif os.path.isfile(item):
            paths.append(item)
        else:
            raise GlacierFlowError(f"'{item}' is neither a file nor a folder: give velocity products or a folder.")
    return paths


def velocity_time_series(inputs: Sequence[str], points: Sequence[SeriesPoint], crs_wkt: str,
                         feedback: Feedback | None = None) -> list[SeriesValue]:
    """Velocity at ``points`` (in ``crs_wkt``) from every product in ``inputs`` (files or folders), sorted
    by point, then mid-date. Rasters that are not velocity products, or carry no dates, are skipped with
    a warning; fails clearly when no product is left."""
    feedback = feedback or Feedback()
    if not points:
        raise GlacierFlowError("No point given: choose a point layer or click on the map.")
    paths = product_paths(inputs)
    values: list[SeriesValue] = []
    used = 0
    for index, path in enumerate(paths):
        if feedback.is_cancelled():
            raise JobCancelled()
        sampled = _sample_one(path, points, crs_wkt, feedback)
        if sampled:
            values.extend(sampled)
            used += 1
        feedback.progress(100.0 * (index + 1) / max(1, len(paths)))
    if not used:
        raise GlacierFlowError("None of the inputs is a dated velocity product: give the products of 'Glacier "
                               "velocity from an image pair' or 'Stack velocity pairs', or a folder holding them.")
    feedback.info(f"Sampled {len(points)} points in {used} of {len(paths)} rasters.")
    order = {point.name: i for i, point in enumerate(points)}
    return sorted(values, key=lambda v: (order[v.point.name], v.mid))


def _sample_one(path: str, points: Sequence[SeriesPoint], crs_wkt: str, feedback: Feedback) -> list[SeriesValue]:
    try:
        product = open_velocity(path)
    except GlacierFlowError as error:
        feedback.warning(f"Skipped {os.path.basename(path)}: {error}")
        return []
    interval = product_time_range(product)
    if interval is None:
        feedback.warning(f"Skipped {os.path.basename(path)}: it carries no acquisition dates.")
        return []
    start, end = interval
    xs, ys = np.array([p.x for p in points]), np.array([p.y for p in points])
    sampled = sample_product(product, ("vx", "vy", "valid", "uncertainty"), xs, ys, crs_wkt)
    return [SeriesValue(point, os.path.basename(path), start, end, *(float(sampled[n][i]) for n in
                        ("vx", "vy", "valid", "uncertainty"))) for i, point in enumerate(points)]


def series_rows(values: Sequence[SeriesValue]) -> list[list[object]]:
    """CSV rows in :data:`SERIES_COLUMNS` order (dates ISO-8601 UTC)."""
    iso = "%Y-%m-%dT%H:%M:%SZ"
    return [[v.point.name, v.point.x, v.point.y, v.product, v.start.strftime(iso), v.end.strftime(iso),
             v.mid.strftime(iso), v.interval_days, v.vx, v.vy, v.speed, v.valid, v.uncertainty] for v in values]


def write_series_csv(path: str, values: Sequence[SeriesValue]) -> str:
    """The series as a CSV (:data:`SERIES_COLUMNS`; m/yr, days); returns ``path``."""
    return write_csv(path, SERIES_COLUMNS, series_rows(values))


def series_figure(values: Sequence[SeriesValue]) -> object:
    """Speed against mid-date per point; horizontal bars span each interval, vertical bars are the
    uncertainty (1 sigma) where the product has one."""
    figure = new_figure(8.0, 4.5)
    axes = figure.add_subplot(1, 1, 1)
    names = list(dict.fromkeys(v.point.name for v in values))
    for name in names:
        mine = [v for v in values if v.point.name == name and np.isfinite(v.speed)]
        if not mine:
            continue
        mids = [v.mid for v in mine]
        before = [v.mid - v.start for v in mine]
        after = [v.end - v.mid for v in mine]
        errors = np.array([v.uncertainty for v in mine])
        axes.errorbar(mids, [v.speed for v in mine], xerr=[before, after],
                      yerr=np.where(np.isfinite(errors), errors, 0.0), fmt="o", capsize=2, markersize=4,
                      label=name)
    axes.set_ylabel("Speed (m/yr)")
    axes.set_xlabel("Middle of the interval (bars: the interval)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, title="point")
    for label in axes.get_xticklabels():
        label.set_rotation(30)
        label.set_horizontalalignment("right")
    return figure


def write_series_png(path: str, values: Sequence[SeriesValue]) -> str:
    """The time-series plot as a PNG; returns ``path``."""
    return save_png(series_figure(values), path)
