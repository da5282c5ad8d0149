"""Comparison of a velocity product with a reference velocity field (ITS_LIVE, autoRIFT, ...).

The reference is a vx/vy pair of rasters (GeoTIFF, or ``NETCDF:"file.nc":vx``
names when GDAL has its netCDF driver) in any CRS, in m/yr or m/day. Its
components point along the *reference* CRS's x and y axes, so bringing it
onto the product grid takes two steps:

1. **resample** each component onto the product grid (bilinear, nodata
   honoured), and
2. **rotate** the vectors into the product CRS: at every product pixel centre
   the local Jacobian of the reference-to-product transformation is built
   from the centre and two points a small distance along the reference's x
   and y axes; its columns, normalised to unit length, are the images of the
   reference's unit axes, so ``v_product = J @ v_reference`` keeps the speed
   (m/yr on the ground) and turns the direction.

Then, over the glacier (outlines, optional) where both fields are valid:
the bias (mean of product - reference) of vx, vy and speed, the RMSE of the
vector difference, the median speed ratio (product / reference) and the
median absolute direction difference (degrees, in [0, 180]), the latter two
only where the reference speed is at least ``min_speed`` (slow ice has no
meaningful direction). A difference raster (dvx, dvy, dspeed in m/yr, NaN
where either field is missing) covers the whole product grid, and a JSON
report with a readable ``.txt`` beside it holds the figures.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import GlacierFlowError
from ..feedback import Feedback, JobCancelled
from ..geo.crs import spatial_reference, transform_bounds
from ..geo.grid import Grid, Window
from ..geo.outlines import GlacierOutlines
from ..io.cog import BandSpec, ProductWriter
from ..io.raster import BandSource, grid_of
from ..io.timestamps import DAYS_PER_YEAR
from .reports import ValidationResult, write_json_and_text

UNITS = ("m/yr", "m/day")
DEFAULT_MIN_SPEED = 10.0  # m/yr: below it, ratio and direction are noise
STRIP_ROWS = 256
JACOBIAN_STEP_FRACTION = 1e-3  # offset along the reference axes, as a fraction of its pixel size
DIFFERENCE_BANDS = [BandSpec("dvx", "product vx - reference vx (rotated into the product CRS)", "m/yr"),
                    BandSpec("dvy", "product vy - reference vy (rotated into the product CRS)", "m/yr"),
                    BandSpec("dspeed", "product speed - reference speed", "m/yr")]


@dataclass
class ReferenceJob:
    """What to compare.

    Attributes:
        product: velocity product path (bands named vx and vy, m/yr).
        reference_vx: reference x component (raster path or ``NETCDF:"file.nc":vx``).
        reference_vy: reference y component, same form.
        units: units of the reference, ``"m/yr"`` or ``"m/day"`` (m/day is multiplied by 365.25).
        outlines: glacier polygons (any CRS) limiting the statistics, or None for the whole overlap.
        output: path of the difference raster (dvx, dvy, dspeed, m/yr), or None.
        report: path of the JSON report (a .txt is written beside), or None.
        min_speed: m/yr; speed ratio and direction difference only where the reference is at least this fast.
    """

    product: str
    reference_vx: str
    reference_vy: str
    units: str = "m/yr"
    outlines: str | None = None
    output: str | None = None
    report: str | None = None
    min_speed: float = DEFAULT_MIN_SPEED
    strip_rows: int = STRIP_ROWS


def unit_factor(units: str) -> float:
    """Factor turning the reference's ``units`` into m/yr."""
    if units == "m/yr":
        return 1.0
    if units == "m/day":
        return DAYS_PER_YEAR
    raise GlacierFlowError(f"Unknown reference units '{units}': choose one of {', '.join(UNITS)}.")


def open_band(name: str) -> BandSource:
    """Band 1 of a raster path, or of a ``NETCDF:"file.nc":variable`` subdataset when GDAL reads netCDF."""
    if not name.upper().startswith("NETCDF:"):
        return BandSource.open(name, 1)
    from osgeo import gdal

    if gdal.GetDriverByName("netCDF") is None:
        raise GlacierFlowError(f"'{name}': this GDAL has no netCDF driver; export vx and vy to GeoTIFF first.")
    dataset = gdal.Open(name)
    if dataset is None:
        raise GlacierFlowError(f"Cannot read '{name}' ({gdal.GetLastErrorMsg()}): check the file and variable.")
    return BandSource(name, 1, grid_of(dataset, name), dataset.GetRasterBand(1).GetNoDataValue(), dataset)


class ReferenceField:
    """A reference vx/vy pair, readable on any grid as vectors in that grid's CRS (m/yr)."""

    def __init__(self, vx: str, vy: str, units: str = "m/yr") -> None:
        self.factor = unit_factor(units)
        self.vx, self.vy = open_band(vx), open_band(vy)
        self.grid = self.vx.grid
        if self.vy.grid.width != self.grid.width or self.vy.grid.height != self.grid.height:
            raise GlacierFlowError(f"'{vx}' and '{vy}' have different sizes: give the two components of one field.")

    def overlaps(self, grid: Grid) -> bool:
        """True when the reference's footprint meets ``grid``'s."""
        ref = transform_bounds(self.grid.bounds(), self.grid.crs_wkt, grid.crs_wkt)
        own = grid.bounds()
        return ref[0] < own[2] and own[0] < ref[2] and ref[1] < own[3] and own[1] < ref[3]

    def read(self, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
        """(vx, vy) in m/yr along ``grid``'s CRS axes, float32, NaN where the reference has no data."""
        vx = self.vx.read(grid).astype(np.float64) * self.factor
        vy = self.vy.read(grid).astype(np.float64) * self.factor
        jacobian = axis_jacobian(grid, self.grid)
        return rotate(vx, vy, jacobian)


def pixel_centres(grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Map coordinates (m) of every pixel centre of ``grid``, each (rows, cols) float64."""
    x0, a, b, y0, d, e = grid.transform
    cols, rows = np.meshgrid(np.arange(grid.width) + 0.5, np.arange(grid.height) + 0.5)
    return x0 + a * cols + b * rows, y0 + d * cols + e * rows


def _transform(points: np.ndarray, src_wkt: str, dst_wkt: str) -> np.ndarray:
    """(n, 2) points from ``src_wkt`` to ``dst_wkt``; NaN where the transformation fails."""
    from osgeo import osr

    transform = osr.CoordinateTransformation(spatial_reference(src_wkt), spatial_reference(dst_wkt))
    if len(points) == 0:
        return np.empty((0, 2))
    out = np.array(transform.TransformPoints(np.ascontiguousarray(points, dtype=np.float64)), dtype=np.float64)
    out = out[:, :2]
    out[~np.isfinite(out) | (np.abs(out) > 1e30)] = np.nan
    return out


def axis_jacobian(grid: Grid, reference: Grid) -> np.ndarray:
    """Unit images of the reference CRS's x and y axes in ``grid``'s CRS, at each pixel centre of ``grid``.

    Returns (4, rows, cols): ``[dX/dx, dY/dx, dX/dy, dY/dy]`` with each column (the image of one reference
    axis) normalised to length 1; NaN where a point cannot be transformed.
    """
    xs, ys = pixel_centres(grid)
    centres = np.column_stack([xs.ravel(), ys.ravel()])
    if spatial_reference(grid.crs_wkt).IsSame(spatial_reference(reference.crs_wkt)):
        ones, zeros = np.ones(grid.shape), np.zeros(grid.shape)
        return np.stack([ones, zeros, zeros, ones])
    step = JACOBIAN_STEP_FRACTION * min(reference.pixel_size)
    in_ref = _transform(centres, grid.crs_wkt, reference.crs_wkt)
    base = _transform(in_ref, reference.crs_wkt, grid.crs_wkt)
    along_x = _transform(in_ref + np.array([step, 0.0]), reference.crs_wkt, grid.crs_wkt) - base
    along_y = _transform(in_ref + np.array([0.0, step]), reference.crs_wkt, grid.crs_wkt) - base
    along_x /= np.hypot(along_x[:, 0], along_x[:, 1])[:, None]
    along_y /= np.hypot(along_y[:, 0], along_y[:, 1])[:, None]
    return np.stack([along_x[:, 0], along_x[:, 1], along_y[:, 0], along_y[:, 1]]).reshape(4, *grid.shape)


def rotate(vx: np.ndarray, vy: np.ndarray, jacobian: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Apply the per-pixel 2x2 ``jacobian`` (from :func:`axis_jacobian`) to (vx, vy) in m/yr; float32."""
    out_x = jacobian[0] * vx + jacobian[2] * vy
    out_y = jacobian[1] * vx + jacobian[3] * vy
    return out_x.astype(np.float32), out_y.astype(np.float32)


def product_bands(path: str) -> tuple[Grid, BandSource, BandSource]:
    """The grid and the vx, vy bands of a velocity product."""
    from ..products.velocity import open_velocity

    product = open_velocity(path)
    return product.grid, product.source("vx"), product.source("vy")


def _strips(grid: Grid, rows: int) -> list[Window]:
    if rows < 1:
        raise GlacierFlowError(f"Strip rows must be at least 1 (got {rows}).")
    return [Window(0, top, grid.width, min(rows, grid.height - top)) for top in range(0, grid.height, rows)]


def run_reference_comparison(job: ReferenceJob, feedback: Feedback | None = None) -> ValidationResult:
    """Compare the product with the reference; write the difference raster and report when asked."""
    feedback = feedback or Feedback()
    grid, prod_vx, prod_vy = product_bands(job.product)
    reference = ReferenceField(job.reference_vx, job.reference_vy, job.units)
    if not reference.overlaps(grid):
        raise GlacierFlowError("The reference field and the product do not overlap: check that both cover the "
                               "same glacier and have the right CRS.")
    outlines = GlacierOutlines(job.outlines, grid.crs_wkt) if job.outlines else None
    writer = ProductWriter(job.output, grid, DIFFERENCE_BANDS) if job.output else None
    samples: list[np.ndarray] = []
    try:
        for _index, window in enumerate(_strips(grid, job.strip_rows)):
            if feedback.is_cancelled():
                raise JobCancelled("Cancelled by the user")
            strip = grid.window_grid(window)
            diff, valid = _compare_strip(strip, prod_vx, prod_vy, reference)
            if writer is not None:
                writer.write_rows(window.row_off, diff)
            if outlines is not None:
                valid &= outlines.mask(strip)
            samples.append(np.stack([diff["pvx"][valid], diff["pvy"][valid], diff["rvx"][valid],
                                     diff["rvy"][valid]]))
            feedback.progress(100.0 * (window.row_off + window.height) / grid.height)
        stats = comparison_statistics(np.concatenate(samples, axis=1), job.min_speed)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    stats.update(_describe(job))
    output = writer.finish(metadata_items(stats)) if writer is not None else None
    for line in summary_lines(stats):
        feedback.info(line)
    report, text = write_report(job.report, stats) if job.report else (None, None)
    return ValidationResult(stats, output, report, text)


def _compare_strip(strip: Grid, prod_vx: BandSource, prod_vy: BandSource,
                   reference: ReferenceField) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Differences (m/yr) on one strip and the mask where both fields are valid."""
    pvx, pvy = prod_vx.read(strip), prod_vy.read(strip)
    rvx, rvy = reference.read(strip)
    valid = np.isfinite(pvx) & np.isfinite(pvy) & np.isfinite(rvx) & np.isfinite(rvy)
    nan = np.float32(np.nan)
    diff = {"dvx": np.where(valid, pvx - rvx, nan), "dvy": np.where(valid, pvy - rvy, nan),
            "dspeed": np.where(valid, np.hypot(pvx, pvy) - np.hypot(rvx, rvy), nan),
            "pvx": pvx, "pvy": pvy, "rvx": rvx, "rvy": rvy}
    return diff, valid


def comparison_statistics(values: np.ndarray, min_speed: float = DEFAULT_MIN_SPEED) -> dict[str, Any]:
    """Figures from (4, n) product vx, vy and reference vx, vy (m/yr); fails clearly with no pixel."""
    if values.shape[1] == 0:
        raise GlacierFlowError(
            "No pixel has a valid velocity in both the product and the reference (inside the outlines, if "
            "given): check that they cover the same glacier, the reference's nodata and the outlines' CRS.")
    pvx, pvy, rvx, rvy = values.astype(np.float64)
    p_speed, r_speed = np.hypot(pvx, pvy), np.hypot(rvx, rvy)
    dvx, dvy = pvx - rvx, pvy - rvy
    stats: dict[str, Any] = {
        "units": "m/yr", "pixel_count": int(pvx.size),
        "bias_vx": float(np.mean(dvx)), "bias_vy": float(np.mean(dvy)),
        "bias_speed": float(np.mean(p_speed - r_speed)),
        "rmse_vector": float(math.sqrt(np.mean(dvx ** 2 + dvy ** 2))),
        "median_abs_speed_difference": float(np.median(np.abs(p_speed - r_speed))),
        "median_reference_speed": float(np.median(r_speed)), "median_product_speed": float(np.median(p_speed)),
        "min_speed": float(min_speed)}
    moving = (r_speed >= min_speed) & (p_speed > 0)
    stats["moving_pixel_count"] = int(moving.sum())
    stats["median_speed_ratio"] = float(np.median(p_speed[moving] / r_speed[moving])) if moving.any() else None
    stats["median_abs_direction_difference_deg"] = (
        float(np.median(direction_difference(pvx[moving], pvy[moving], rvx[moving], rvy[moving])))
        if moving.any() else None)
    return stats


def direction_difference(ax: np.ndarray, ay: np.ndarray, bx: np.ndarray, by: np.ndarray) -> np.ndarray:
    """Absolute angle (degrees, 0..180) between vectors a and b."""
    angle = np.degrees(np.arctan2(ax * by - ay * bx, ax * bx + ay * by))
    return np.abs(angle)


def _describe(job: ReferenceJob) -> dict[str, Any]:
    return {"product": os.path.basename(job.product), "reference_vx": job.reference_vx,
            "reference_vy": job.reference_vy, "reference_units": job.units,
            "area": (f"inside the outlines {os.path.basename(job.outlines)}" if job.outlines
                     else "the whole overlap")}


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def summary_lines(stats: dict[str, Any]) -> list[str]:
    """Human-readable lines of the figures (m/yr, degrees)."""
    return [
        f"Reference: {stats.get('reference_vx', '')} / {stats.get('reference_vy', '')} "
        f"({stats.get('reference_units', 'm/yr')}); area: {stats.get('area', '')}",
        f"Pixels valid in both: {stats['pixel_count']} ({stats['moving_pixel_count']} with reference speed >= "
        f"{stats['min_speed']:g} m/yr)",
        f"Bias (product - reference): vx {stats['bias_vx']:+.2f}, vy {stats['bias_vy']:+.2f}, speed "
        f"{stats['bias_speed']:+.2f} m/yr; RMSE of the vector difference {stats['rmse_vector']:.2f} m/yr",
        f"Median speed ratio (product / reference) {_fmt(stats['median_speed_ratio'], '.3f')}; median absolute "
        f"direction difference {_fmt(stats['median_abs_direction_difference_deg'], '.2f')} degrees",
        f"Median speed: product {stats['median_product_speed']:.1f}, reference "
        f"{stats['median_reference_speed']:.1f} m/yr"]


def metadata_items(stats: dict[str, Any]) -> dict[str, str]:
    """The figures as ``REFERENCE_*`` metadata items of the difference raster."""
    keys = ("pixel_count", "bias_vx", "bias_vy", "bias_speed", "rmse_vector", "median_speed_ratio",
            "median_abs_direction_difference_deg", "reference_units", "area")
    return {f"REFERENCE_{key.upper()}": str(stats[key]) for key in keys}


def write_report(path: str, stats: dict[str, Any]) -> tuple[str, str]:
    """Write the JSON report at ``path`` and the text report beside it (.txt); returns both paths."""
    title = f"GlacierFlow comparison of {stats.get('product', '')} with a reference velocity field"
    return write_json_and_text(path, stats, title, summary_lines(stats))
