"""GPS stakes: import, velocity from repeated positions, sampling of velocity products, comparison, reports.

A stake file (CSV, GeoPackage or shapefile) gives, per stake, one of:

* a **measured velocity**: vx and vy (m/yr, east and north in the stake CRS), or a **speed** (m/yr)
  with an optional **direction** (degrees clockwise from north);
* **start and end positions with dates**: the velocity is the displacement divided by the exact
  interval in Julian years (365.25 days).

Positions are in the stake CRS (a CSV names it; a vector file carries it). For each velocity product
the stake is moved into the product's CRS; from positions, both start and end are transformed and
differenced there, which handles the rotation and scale between CRSs; a measured vector is rotated
through the same construction (its speed is kept). Each product (bands vx, vy and optionally speed,
found by band description, m/yr) is sampled at the stake bilinearly or as the NaN-aware median of an
N x N pixel window. A stake outside the raster or on no data gets NaN and a reason.

Differences are estimated - measured (m/yr); per product: count, bias (mean difference) and RMSE.
"""
from __future__ import annotations

import base64
import csv
import html
import io
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import GlacierFlowError
from ..geo.crs import is_geographic, spatial_reference, transformer, wgs84_wkt
from ..io.atomic import write_text
from ..io.timestamps import DAYS_PER_YEAR, parse_datetime

BILINEAR = "bilinear"
WINDOW_MEDIAN = "window_median"
METHODS = (BILINEAR, WINDOW_MEDIAN)
NAN = float("nan")

# Names tried, case-insensitively, when a field is not given.
CANDIDATES: dict[str, tuple[str, ...]] = {
    "id": ("id", "stake", "stake_id", "name", "fid"),
    "x": ("x", "lon", "longitude", "easting", "east"),
    "y": ("y", "lat", "latitude", "northing", "north"),
    "vx": ("vx", "v_east", "ve"),
    "vy": ("vy", "v_north", "vn"),
    "speed": ("speed", "velocity", "v"),
    "direction": ("direction", "dir", "azimuth", "bearing"),
    "x_start": ("x_start", "x0", "lon_start", "x1"),
    "y_start": ("y_start", "y0", "lat_start", "y1"),
    "x_end": ("x_end", "lon_end", "x2"),
    "y_end": ("y_end", "lat_end", "y2"),
    "date_start": ("date_start", "start_date", "t0", "date0", "date1"),
    "date_end": ("date_end", "end_date", "t1", "date2"),
}


@dataclass
class StakeFields:
    """Names of the stake attributes; None tries the names of :data:`CANDIDATES`."""

    id: str | None = None
    x: str | None = None
    y: str | None = None
    vx: str | None = None
    vy: str | None = None
    speed: str | None = None
    direction: str | None = None
    x_start: str | None = None
    y_start: str | None = None
    x_end: str | None = None
    y_end: str | None = None
    date_start: str | None = None
    date_end: str | None = None


@dataclass
class Stake:
    """One stake, in its own CRS.

    Attributes:
        id: stake name.
        x, y: position (start position when moving), stake CRS units.
        crs_wkt: the stake CRS.
        vx, vy: measured velocity, m/yr east/north (NaN when only speed is known).
        speed: measured speed, m/yr (NaN when computed from positions; see :func:`measured_in`).
        end: (x, y) end position, stake CRS units, or None.
        years: interval between start and end, Julian years, or None.
    """

    id: str
    x: float
    y: float
    crs_wkt: str
    vx: float = NAN
    vy: float = NAN
    speed: float = NAN
    end: tuple[float, float] | None = None
    years: float | None = None


@dataclass
class StakeSample:
    """A stake compared with one product: positions in the product CRS, velocities in m/yr."""

    stake_id: str
    product: str
    x: float
    y: float
    measured_vx: float
    measured_vy: float
    measured_speed: float
    estimated_vx: float = NAN
    estimated_vy: float = NAN
    estimated_speed: float = NAN
    reason: str = ""

    def difference(self, component: str) -> float:
        """Estimated - measured of ``component`` (vx, vy or speed), m/yr; NaN when either is missing."""
        return getattr(self, f"estimated_{component}") - getattr(self, f"measured_{component}")


@dataclass
class Comparison:
    """Every stake against every product, and the per-product statistics."""

    products: list[str]
    samples: list[StakeSample]
    summary: dict[str, dict[str, float]] = field(default_factory=dict)


# --- reading -------------------------------------------------------------------------------------------

def read_stakes(path: str, fields: StakeFields | None = None, crs_wkt: str | None = None) -> list[Stake]:
    """Read stakes from a CSV (needs ``crs_wkt``, or EPSG:4326 when omitted), GeoPackage or shapefile."""
    fields = fields or StakeFields()
    if not path or not os.path.exists(path):
        raise GlacierFlowError(f"Stake file '{path}' does not exist: check the path.")
    if path.lower().endswith((".csv", ".txt")):
        records, geometry_crs = _read_csv(path), None
    else:
        records, geometry_crs = _read_vector(path)
    wkt = geometry_crs or crs_wkt or wgs84_wkt()
    if not records:
        raise GlacierFlowError(f"'{path}' holds no stakes.")
    resolved = _resolve_fields(fields, records[0].keys(), path)
    stakes = [_stake(record, resolved, wkt, index) for index, record in enumerate(records, start=1)]
    _check_degrees(stakes, wkt, path)
    return stakes


def _check_degrees(stakes: Sequence[Stake], wkt: str, path: str) -> None:
    """Refuse coordinates in a geographic CRS that cannot be degrees (metres of a UTM zone read as lon/lat)."""
    if not is_geographic(wkt):
        return
    for stake in stakes:
        if not (-180.0 <= stake.x <= 180.0 and -90.0 <= stake.y <= 90.0):
            raise GlacierFlowError(
                f"Stake '{stake.id}' of '{os.path.basename(path)}' is at ({stake.x:g}, {stake.y:g}), which is not a "
                "longitude and latitude: a CSV is read in degrees (EPSG:4326). Give the CSV's CRS, or save the "
                "stakes as a GeoPackage with their CRS.")


def _read_csv(path: str) -> list[dict[str, Any]]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        sample = handle.read(4096)
        handle.seek(0)
        try:
            dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
        except csv.Error:
            dialect = csv.excel
        return [dict(row) for row in csv.DictReader(handle, dialect=dialect)]


def _read_vector(path: str) -> tuple[list[dict[str, Any]], str | None]:
    """Attributes of the first layer's features, plus ``_geom_x``/``_geom_y`` of point geometries."""
    from osgeo import ogr

    dataset = ogr.Open(path)
    if dataset is None or dataset.GetLayerCount() == 0:
        raise GlacierFlowError(f"Cannot read '{path}' as a vector file: give a CSV, GeoPackage or shapefile.")
    layer = dataset.GetLayer(0)
    srs = layer.GetSpatialRef()
    records = []
    for feature in layer:
        record = feature.items()
        geometry = feature.GetGeometryRef()
        if geometry is not None and not geometry.IsEmpty():
            point = geometry.Centroid() if geometry.GetGeometryType() != ogr.wkbPoint else geometry
            record["_geom_x"], record["_geom_y"] = point.GetX(), point.GetY()
        records.append(record)
    return records, srs.ExportToWkt() if srs is not None else None


def _resolve_fields(fields: StakeFields, names: Iterable[str], path: str) -> dict[str, str | None]:
    """Each attribute's column name in the file (given, or found among the candidates), or None."""
    lower = {name.lower(): name for name in names}
    resolved: dict[str, str | None] = {}
    for key, candidates in CANDIDATES.items():
        given = getattr(fields, key)
        if given:
            if given.lower() not in lower:
                raise GlacierFlowError(f"'{path}' has no column '{given}' (columns: {', '.join(lower.values())}).")
            resolved[key] = lower[given.lower()]
        else:
            resolved[key] = next((lower[c] for c in candidates if c in lower), None)
    if "_geom_x" in lower:
        resolved["x"], resolved["y"] = resolved["x"] or "_geom_x", resolved["y"] or "_geom_y"
    return resolved


def _stake(record: dict[str, Any], columns: dict[str, str | None], wkt: str, index: int) -> Stake:
    def value(key: str) -> Any:
        column = columns.get(key)
        return record.get(column) if column else None

    stake_id = str(value("id") if value("id") not in (None, "") else index)
    if columns["x_start"] and columns["x_end"]:
        return _moving_stake(stake_id, value, wkt)
    x, y = _number(value("x"), "x", stake_id), _number(value("y"), "y", stake_id)
    if columns["vx"] and columns["vy"]:
        vx, vy = _number(value("vx"), "vx", stake_id), _number(value("vy"), "vy", stake_id)
        return Stake(stake_id, x, y, wkt, vx, vy, math.hypot(vx, vy))
    if columns["speed"]:
        return _speed_stake(stake_id, x, y, wkt, _number(value("speed"), "speed", stake_id), value("direction"))
    raise GlacierFlowError(
        "The stakes give no velocity: name vx and vy fields, a speed field (m/yr, optional direction), or "
        "start and end positions (x_start, y_start, x_end, y_end) with date_start and date_end.")


def _moving_stake(stake_id: str, value: Any, wkt: str) -> Stake:
    start = (_number(value("x_start"), "x_start", stake_id), _number(value("y_start"), "y_start", stake_id))
    end = (_number(value("x_end"), "x_end", stake_id), _number(value("y_end"), "y_end", stake_id))
    dates = [value("date_start"), value("date_end")]
    if any(d in (None, "") for d in dates):
        raise GlacierFlowError(
            f"Stake '{stake_id}' has start and end positions but no start or end date: give date_start and "
            "date_end (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ) for every stake.")
    first, second = (parse_datetime(str(d)) for d in dates)
    days = (second - first).total_seconds() / 86400.0
    if days <= 0:
        raise GlacierFlowError(f"Stake '{stake_id}': the end date must be after the start date.")
    return Stake(stake_id, start[0], start[1], wkt, end=end, years=days / DAYS_PER_YEAR)


def _speed_stake(stake_id: str, x: float, y: float, wkt: str, speed: float, direction: Any) -> Stake:
    if direction in (None, ""):
        return Stake(stake_id, x, y, wkt, speed=speed)
    angle = math.radians(_number(direction, "direction", stake_id))
    return Stake(stake_id, x, y, wkt, speed * math.sin(angle), speed * math.cos(angle), speed)


def _number(text: Any, name: str, stake_id: str) -> float:
    try:
        number = float(text)
    except (TypeError, ValueError):
        raise GlacierFlowError(f"Stake '{stake_id}': {name} '{text}' is not a number.") from None
    if not math.isfinite(number):
        raise GlacierFlowError(f"Stake '{stake_id}': {name} is missing.")
    return number


# --- into a product's CRS --------------------------------------------------------------------------------

def measured_in(stake: Stake, product_wkt: str) -> tuple[float, float, float, float, float]:
    """(x, y, vx, vy, speed) of ``stake`` in the product CRS: position (units of the CRS), velocity m/yr.

    From positions the sampling point is the middle of start and end; from a measured vector the
    direction is rotated into the product CRS and the speed kept.
    """
    source, transform = spatial_reference(stake.crs_wkt), transformer(stake.crs_wkt, product_wkt)
    start = transform.TransformPoint(stake.x, stake.y)[:2]
    if stake.end is not None and stake.years:
        end = transform.TransformPoint(stake.end[0], stake.end[1])[:2]
        vx, vy = (end[0] - start[0]) / stake.years, (end[1] - start[1]) / stake.years
        return (start[0] + end[0]) / 2, (start[1] + end[1]) / 2, vx, vy, math.hypot(vx, vy)
    if not (math.isfinite(stake.vx) and math.isfinite(stake.vy)):
        return start[0], start[1], NAN, NAN, stake.speed
    speed = math.hypot(stake.vx, stake.vy)
    if speed == 0:
        return start[0], start[1], 0.0, 0.0, 0.0
    ahead = _step(stake, source, 1.0 / speed)  # 1 m along the measured vector
    moved = transform.TransformPoint(*ahead)[:2]
    dx, dy = moved[0] - start[0], moved[1] - start[1]
    norm = math.hypot(dx, dy)
    return start[0], start[1], speed * dx / norm, speed * dy / norm, speed


def _step(stake: Stake, source: Any, years: float) -> tuple[float, float]:
    """The stake position moved by its velocity over ``years`` (degrees east/north on a geographic CRS)."""
    if source.IsGeographic():
        metres_per_degree = 111320.0
        return (stake.x + stake.vx * years / (metres_per_degree * math.cos(math.radians(stake.y))),
                stake.y + stake.vy * years / metres_per_degree)
    return stake.x + stake.vx * years, stake.y + stake.vy * years


# --- sampling ---------------------------------------------------------------------------------------------

class ProductSampler:
    """A velocity product's vx and vy (m/yr) sampled at map points."""

    def __init__(self, path: str) -> None:
        from ..products.velocity import open_velocity

        product = open_velocity(path)
        self.path = path
        self.dataset = product.dataset
        self.grid = product.grid
        self.bands = product.bands

    def sample(self, x: float, y: float, method: str = BILINEAR, window: int = 3) -> tuple[float, float, str]:
        """(vx, vy, reason) at map point (x, y) in the product CRS, m/yr; NaN with a reason when none."""
        col, row = self._pixel(x, y)
        if not (0 <= col <= self.grid.width and 0 <= row <= self.grid.height):
            return NAN, NAN, "outside the raster"
        values = [self._sample_band(self.bands[name], col, row, method, window) for name in ("vx", "vy")]
        if not all(math.isfinite(v) for v in values):
            return NAN, NAN, "no data at the stake"
        return values[0], values[1], ""

    def _pixel(self, x: float, y: float) -> tuple[float, float]:
        x0, a, b, y0, d, e = self.grid.transform
        det = a * e - b * d
        dx, dy = x - x0, y - y0
        return (e * dx - b * dy) / det, (-d * dx + a * dy) / det

    def _read(self, band: int, c0: int, r0: int, c1: int, r1: int) -> np.ndarray:
        """Pixels [r0, r1) x [c0, c1) clipped to the raster, NaN outside and on nodata."""
        out = np.full((r1 - r0, c1 - c0), np.nan)
        cc0, rr0 = max(c0, 0), max(r0, 0)
        cc1, rr1 = min(c1, self.grid.width), min(r1, self.grid.height)
        if cc1 > cc0 and rr1 > rr0:
            source = self.dataset.GetRasterBand(band)
            data = source.ReadAsArray(cc0, rr0, cc1 - cc0, rr1 - rr0).astype(np.float64)
            nodata = source.GetNoDataValue()
            if nodata is not None and not math.isnan(nodata):
                data[data == nodata] = np.nan
            out[rr0 - r0:rr1 - r0, cc0 - c0:cc1 - c0] = data
        return out

    def _sample_band(self, band: int, col: float, row: float, method: str, window: int) -> float:
        if method == WINDOW_MEDIAN:
            c, r, half = int(math.floor(col)), int(math.floor(row)), max(int(window), 1) // 2
            values = self._read(band, c - half, r - half, c + half + 1, r + half + 1)
            return float(np.nanmedian(values)) if np.isfinite(values).any() else NAN
        return bilinear(self._read(band, *_bilinear_box(col, row)), col, row)


def _bilinear_box(col: float, row: float) -> tuple[int, int, int, int]:
    c0, r0 = int(math.floor(col - 0.5)), int(math.floor(row - 0.5))
    return c0, r0, c0 + 2, r0 + 2


def bilinear(values: np.ndarray, col: float, row: float) -> float:
    """Bilinear value at pixel position (col, row) from the 2 x 2 pixel-centre block around it.

    NaN-aware: the weights of missing neighbours are dropped and the rest renormalised; NaN when all
    four are missing.
    """
    fc, fr = col - 0.5 - math.floor(col - 0.5), row - 0.5 - math.floor(row - 0.5)
    weights = np.array([[(1 - fc) * (1 - fr), fc * (1 - fr)], [(1 - fc) * fr, fc * fr]])
    valid = np.isfinite(values)
    total = weights[valid].sum()
    if not valid.any() or total <= 1e-12:
        return NAN
    return float((weights[valid] * values[valid]).sum() / total)


# --- comparison ------------------------------------------------------------------------------------------

def compare_stakes(stakes: Sequence[Stake], products: Sequence[str], method: str = BILINEAR,
                   window: int = 3) -> Comparison:
    """Sample every product at every stake and summarise the differences (m/yr)."""
    if method not in METHODS:
        raise GlacierFlowError(f"Sampling method '{method}' is unknown: use one of {', '.join(METHODS)}.")
    if not products:
        raise GlacierFlowError("No velocity product given: choose at least one raster.")
    samples = []
    for path in products:
        product = ProductSampler(path)
        for stake in stakes:
            samples.append(_compare_one(stake, product, method, window))
    comparison = Comparison(list(products), samples)
    comparison.summary = {path: summarise([s for s in samples if s.product == path]) for path in products}
    return comparison


def check_some_stake_sampled(comparison: Comparison) -> None:
    """Refuse a comparison in which no stake has a value in any product (it would report 0 stakes, NaN bias)."""
    if comparison.samples and all(summary["count"] == 0 for summary in comparison.summary.values()):
        reasons = sorted({s.reason for s in comparison.samples if s.reason})
        count = len({s.stake_id for s in comparison.samples})
        raise GlacierFlowError(
            f"None of the {count} stakes has a velocity in any product ({'; '.join(reasons) or 'no value'}): "
            "check that the stakes lie inside the rasters (and their CRS), and that tracking succeeded there.")


def _compare_one(stake: Stake, product: ProductSampler, method: str, window: int) -> StakeSample:
    x, y, vx, vy, speed = measured_in(stake, product.grid.crs_wkt)
    sample = StakeSample(stake.id, product.path, x, y, vx, vy, speed)
    est_vx, est_vy, sample.reason = product.sample(x, y, method, window)
    sample.estimated_vx, sample.estimated_vy = est_vx, est_vy
    sample.estimated_speed = math.hypot(est_vx, est_vy)
    return sample


def summarise(samples: Sequence[StakeSample]) -> dict[str, float]:
    """count, bias (mean estimated - measured) and rmse of speed, vx and vy over the stakes with values."""
    summary: dict[str, float] = {}
    for component in ("speed", "vx", "vy"):
        diffs = np.array([s.difference(component) for s in samples], dtype=float)
        diffs = diffs[np.isfinite(diffs)]
        summary[f"count_{component}"] = int(diffs.size)
        summary[f"bias_{component}"] = float(diffs.mean()) if diffs.size else NAN
        summary[f"rmse_{component}"] = float(np.sqrt(np.mean(diffs ** 2))) if diffs.size else NAN
    summary["count"] = summary["count_speed"]
    return summary


# --- reports ---------------------------------------------------------------------------------------------

COLUMNS = ("stake_id", "product", "x", "y", "measured_speed", "estimated_speed", "diff_speed", "measured_vx",
           "estimated_vx", "diff_vx", "measured_vy", "estimated_vy", "diff_vy", "reason")


def table_rows(comparison: Comparison) -> list[dict[str, Any]]:
    """One row per stake and product, the :data:`COLUMNS` (velocities in m/yr, product by file name)."""
    rows = []
    for s in comparison.samples:
        row = {"stake_id": s.stake_id, "product": os.path.basename(s.product), "x": s.x, "y": s.y,
               "reason": s.reason}
        for component in ("speed", "vx", "vy"):
            row[f"measured_{component}"] = getattr(s, f"measured_{component}")
            row[f"estimated_{component}"] = getattr(s, f"estimated_{component}")
            row[f"diff_{component}"] = s.difference(component)
        rows.append(row)
    return rows


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "" if not math.isfinite(value) else f"{value:.3f}"
    return str(value)


def write_csv_report(path: str, comparison: Comparison) -> str:
    """The stake table as CSV, then a blank line and the per-product summary (m/yr)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    for row in table_rows(comparison):
        writer.writerow([_cell(row[c]) for c in COLUMNS])
    writer.writerow([])
    keys = ["count", "bias_speed", "rmse_speed", "bias_vx", "rmse_vx", "bias_vy", "rmse_vy"]
    writer.writerow(["product"] + keys)
    for product, summary in comparison.summary.items():
        writer.writerow([os.path.basename(product)] + [_cell(summary[k]) for k in keys])
    return write_text(path, buffer.getvalue())


def write_html_report(path: str, comparison: Comparison) -> str:
    """An HTML page: the per-product summary, the stake table and a measured-vs-estimated speed plot."""
    summary_rows = "".join(
        f"<tr><td>{html.escape(os.path.basename(p))}</td><td>{s['count']}</td><td>{_cell(s['bias_speed'])}</td>"
        f"<td>{_cell(s['rmse_speed'])}</td></tr>" for p, s in comparison.summary.items())
    table = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(row[c]))}</td>" for c in COLUMNS) + "</tr>"
                    for row in table_rows(comparison))
    header = "".join(f"<th>{c}</th>" for c in COLUMNS)
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>GlacierFlow: GPS stakes</title>
<style>body{{font-family:sans-serif}} table{{border-collapse:collapse}} td,th{{border:1px solid #999;
padding:2px 6px;text-align:right}}</style></head><body>
<h1>Velocity products against GPS stakes</h1>
<p>Differences are estimated - measured, in m/yr.</p>
<table><tr><th>Product</th><th>Stakes</th><th>Bias speed (m/yr)</th><th>RMSE speed (m/yr)</th></tr>
{summary_rows}</table>
<h2>Measured against estimated speed</h2>
{_scatter_img(comparison)}
<h2>Stakes</h2>
<table><tr>{header}</tr>{table}</table>
</body></html>
"""
    return write_text(path, page)


def _scatter_img(comparison: Comparison) -> str:
    """A PNG scatter plot (matplotlib Agg) as an embedded base64 <img>, or a note without matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return "<p>(matplotlib is not installed: no plot.)</p>"
    figure = Figure(figsize=(5, 5), dpi=90)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    limits = [0.0]
    for product in comparison.products:
        points = [(s.measured_speed, s.estimated_speed) for s in comparison.samples
                  if s.product == product and math.isfinite(s.difference("speed"))]
        if points:
            axes.scatter(*zip(*points), label=os.path.basename(product), s=18)
            limits.extend(max(p) for p in points)
    top = max(limits) * 1.05 or 1.0
    axes.plot([0, top], [0, top], color="grey", linewidth=0.8)
    axes.set_xlabel("Measured speed (m/yr)")
    axes.set_ylabel("Estimated speed (m/yr)")
    axes.legend(fontsize=7)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="measured against estimated speed" src="data:image/png;base64,{encoded}">'


def summary_lines(comparison: Comparison) -> list[str]:
    """One line per product: count, bias and RMSE of speed (m/yr), for the log."""
    return [f"{os.path.basename(p)}: {s['count']} stakes with values, speed bias {s['bias_speed']:+.2f} m/yr, "
            f"RMSE {s['rmse_speed']:.2f} m/yr" for p, s in comparison.summary.items()]
