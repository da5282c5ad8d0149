"""Velocity for every user: flow arrows as a GeoPackage point layer, and a CF-1.8 netCDF that QGIS opens
as a mesh layer with a vector dataset group (its own arrows, streamlines and particle traces).

Both read the product through :func:`~glacierflow.core.products.velocity.open_velocity` and write
atomically (:mod:`~glacierflow.core.io.atomic`): a failed export leaves no file.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np

from ..errors import GlacierFlowError
from ..geo.crs import spatial_reference
from ..io.atomic import atomic_path, remove_quietly
from ..products.velocity import VelocityProduct, open_velocity
from ..velocity.arrows import Arrows, arrow_spacing, arrows_from_samples, reference_speed, sample_positions
from .timeline import product_time_range

ARROW_FIELDS = ("vx", "vy", "speed", "direction")  # m/yr, m/yr, m/yr, degrees clockwise from north
NETCDF_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# MDAL (QGIS's mesh reader) pairs netCDF variables into one vector group by their long_name:
# "x-component of NAME" and "y-component of NAME" become the vector group NAME.
VECTOR_NAME = "ice surface velocity"
SCALAR_BANDS = {  # product band -> (netCDF long_name, units); written when the product has the band
    "speed": ("ice surface speed", "m year-1"),
    "valid": ("valid velocity (1 trusted, 0 untrusted)", "1"),
    "uncertainty": ("ice surface velocity uncertainty (1 sigma)", "m year-1"),
    "count": ("number of pairs kept", "1"),
}


@dataclass(frozen=True)
class ArrowOptions:
    """How to sample arrows.

    Attributes:
        spacing: distance between arrows, in ``unit``; 0 picks about 35 arrows along the longer side.
        unit: "px" or "m".
        min_fraction: arrows slower than this share of the 98th-percentile speed are dropped (0: keep all).
    """

    spacing: float = 0.0
    unit: str = "px"
    min_fraction: float = 0.05


def spacing_px(product: VelocityProduct, spacing: float, unit: str) -> int:
    """The arrow step in px for ``spacing`` given in px or m (0: automatic); at least 1."""
    if spacing < 0:
        raise GlacierFlowError(f"Arrow spacing {spacing} is negative: give 0 (automatic) or a positive spacing.")
    if spacing == 0:
        return arrow_spacing(product.grid.width, product.grid.height)
    if unit == "m":
        return max(1, int(round(spacing / min(product.grid.pixel_size))))
    if unit != "px":
        raise GlacierFlowError(f"Unknown spacing unit '{unit}': use px or m.")
    return max(1, int(round(spacing)))


def product_arrows(path: str, options: ArrowOptions = ArrowOptions()) -> tuple[Arrows, VelocityProduct]:
    """Arrows of the velocity product ``path``, reading only the sampled rows (any raster size).

    Returns the arrows (map coordinates of pixel centres, m/yr, degrees clockwise from north) and the
    opened product.
    """
    product = open_velocity(path)
    min_speed = 0.0
    if options.min_fraction > 0:
        min_speed = options.min_fraction * reference_speed(_overview_speed(product))
    step = spacing_px(product, options.spacing, options.unit)
    return sampled_arrows(product, step, min_speed), product


def sampled_arrows(product: VelocityProduct, step: int, min_speed: float = 0.0) -> Arrows:
    """Arrows every ``step`` px (a grid centred in the raster), reading only the sampled rows; arrows
    slower than ``min_speed`` (m/yr) or without data are dropped."""
    grid = product.grid
    rows, cols = sample_positions(grid.width, grid.height, max(1, int(step)))
    vx = np.stack([_row_values(product, "vx", int(row), cols) for row in rows])
    vy = np.stack([_row_values(product, "vy", int(row), cols) for row in rows])
    return arrows_from_samples(vx, vy, rows, cols, grid.transform, min_speed=min_speed)


def _row_values(product: VelocityProduct, band: str, row: int, cols: np.ndarray) -> np.ndarray:
    source = product.dataset.GetRasterBand(product.bands[band])
    values = source.ReadAsArray(0, row, product.grid.width, 1)[0, cols].astype(float)
    nodata = source.GetNoDataValue()
    if nodata is not None and np.isfinite(nodata):
        values[values == nodata] = np.nan
    return values


def _overview_speed(product: VelocityProduct, across: int = 512) -> np.ndarray:
    """Speed (m/yr) read at most ``across`` px along the longer side: enough for a percentile."""
    grid = product.grid
    step = max(1, max(grid.width, grid.height) // across)
    size = (max(1, grid.width // step), max(1, grid.height // step))
    components = []
    for band in ("vx", "vy"):
        source = product.dataset.GetRasterBand(product.bands[band])
        values = source.ReadAsArray(buf_xsize=size[0], buf_ysize=size[1]).astype(float)
        nodata = source.GetNoDataValue()
        if nodata is not None and np.isfinite(nodata):
            values[values == nodata] = np.nan
        components.append(values)
    return np.hypot(*components)


def write_arrows_gpkg(path: str, arrows: Arrows, crs_wkt: str, layer_name: str = "flow_arrows") -> str:
    """Write ``arrows`` as points with fields vx, vy, speed (m/yr) and direction (degrees clockwise from
    north) to the GeoPackage ``path``, replacing it atomically; returns ``path``."""
    from osgeo import ogr

    with atomic_path(path, ".gpkg") as temporary:
        try:
            source = ogr.GetDriverByName("GPKG").CreateDataSource(temporary)
            if source is None:
                raise GlacierFlowError(f"Cannot write '{path}': check that the folder is writable.")
            layer = source.CreateLayer(layer_name, spatial_reference(crs_wkt), ogr.wkbPoint)
            for name in ARROW_FIELDS:
                layer.CreateField(ogr.FieldDefn(name, ogr.OFTReal))
            definition = layer.GetLayerDefn()
            layer.StartTransaction()
            columns = (arrows.vx, arrows.vy, arrows.speed, arrows.direction)
            for index in range(len(arrows)):
                feature = ogr.Feature(definition)
                point = ogr.Geometry(ogr.wkbPoint)
                point.AddPoint_2D(float(arrows.x[index]), float(arrows.y[index]))
                feature.SetGeometry(point)
                for name, values in zip(ARROW_FIELDS, columns):
                    feature.SetField(name, round(float(values[index]), 3))
                layer.CreateFeature(feature)
            layer.CommitTransaction()
            source = None
        finally:
            for journal in (temporary + "-wal", temporary + "-shm", temporary + "-journal"):
                remove_quietly(journal)
    return path


def export_arrows(path: str, output: str, options: ArrowOptions = ArrowOptions()) -> tuple[str, int]:
    """Flow arrows of the velocity product ``path`` written to the GeoPackage ``output``.

    Returns (output, number of arrows). Fails clearly when no arrow is left (all no data or too slow).
    """
    arrows, product = product_arrows(path, options)
    if not len(arrows):
        raise GlacierFlowError(f"'{path}' has no velocity at the sampled points (all no data or slower than the "
                               "minimum): lower the minimum speed fraction or the spacing.")
    return write_arrows_gpkg(output, arrows, product.grid.crs_wkt), len(arrows)


# --- CF netCDF -------------------------------------------------------------------------------------------

def mid_time(product: VelocityProduct) -> datetime | None:
    """The middle of the product's time span (UTC), or None when it carries no acquisition times."""
    span = product_time_range(product)
    return span[0] + (span[1] - span[0]) / 2 if span else None


def _days_since_epoch(when: datetime) -> float:
    return (when - NETCDF_EPOCH).total_seconds() / 86400.0


def export_netcdf(path: str, output: str) -> str:
    """The velocity product ``path`` as a CF-1.8 netCDF at ``output``; returns ``output``.

    Variables on dimensions (time=1, y, x): ``vx`` and ``vy`` (m year-1, long names "x-component of ice
    surface velocity" / "y-component ...", so QGIS pairs them into one vector group), ``speed`` and, when
    the product has them, ``valid``, ``uncertainty``, ``count``; 1-D ``x``, ``y`` (projection coordinates of
    the pixel centres, m), ``time`` (mid-date, days since 1970-01-01) with ``time_bnds`` (the two
    acquisitions), and a CF grid-mapping variable for the CRS. The grid must be north-up (no rotation).
    """
    from osgeo import gdal

    product = open_velocity(path)
    grid = product.grid
    x0, a, b, y0, d, e = grid.transform
    if b != 0 or d != 0:
        raise GlacierFlowError(f"'{path}' has a rotated grid: warp it north-up (gdalwarp) before the netCDF export.")
    xs = x0 + a * (np.arange(grid.width) + 0.5)
    ys = y0 + e * (np.arange(grid.height) + 0.5)
    middle = mid_time(product)
    with atomic_path(output, ".nc") as temporary:
        dataset = gdal.GetDriverByName("netCDF").CreateMultiDimensional(temporary, [], ["FORMAT=NC4"])
        if dataset is None:
            raise GlacierFlowError(f"Cannot write '{output}' ({gdal.GetLastErrorMsg()}): check the folder.")
        try:
            _write_cf(dataset.GetRootGroup(), product, xs, ys, middle)
        finally:
            dataset = None
    return output


def _write_cf(root: Any, product: VelocityProduct, xs: np.ndarray, ys: np.ndarray, middle: datetime | None) -> None:
    from osgeo import gdal

    float64 = gdal.ExtendedDataType.Create(gdal.GDT_Float64)
    float32 = gdal.ExtendedDataType.Create(gdal.GDT_Float32)
    time_dim = root.CreateDimension("time", "TEMPORAL", None, 1)
    y_dim = root.CreateDimension("y", "HORIZONTAL_Y", None, len(ys))
    x_dim = root.CreateDimension("x", "HORIZONTAL_X", None, len(xs))
    bounds_dim = root.CreateDimension("nv", None, None, 2)
    _attributes(root, {"Conventions": "CF-1.8", "title": "Ice surface velocity",
                       "source": f"GlacierFlow {product.kind or 'velocity'} product {product.path}",
                       "institution": "GlacierFlow (QGIS plugin)", "velocity_engine": product.engine,
                       "acquisition_a": product.acquisition_a, "acquisition_b": product.acquisition_b})
    _coordinate(root, "x", x_dim, xs, float64, {"standard_name": "projection_x_coordinate", "units": "m",
                                                "axis": "X", "long_name": "x coordinate of projection"})
    _coordinate(root, "y", y_dim, ys, float64, {"standard_name": "projection_y_coordinate", "units": "m",
                                                "axis": "Y", "long_name": "y coordinate of projection"})
    days = _days_since_epoch(middle) if middle else 0.0
    _coordinate(root, "time", time_dim, np.array([days]), float64, {
        "standard_name": "time", "units": "days since 1970-01-01 00:00:00", "calendar": "standard", "axis": "T",
        "long_name": "middle of the velocity interval" if middle else "unknown (the product has no dates)",
        "bounds": "time_bnds"})
    bounds = root.CreateMDArray("time_bnds", [time_dim, bounds_dim], float64)
    interval = product_time_range(product)
    span = [_days_since_epoch(interval[0]), _days_since_epoch(interval[1])] if interval else [days, days]
    bounds.Write(np.array([span], dtype=float))
    variables = [("vx", f"x-component of {VECTOR_NAME}", "m year-1"),
                 ("vy", f"y-component of {VECTOR_NAME}", "m year-1")]
    variables += [(band, long_name, units) for band, (long_name, units) in SCALAR_BANDS.items() if product.has(band)]
    srs = spatial_reference(product.grid.crs_wkt)
    for band, long_name, units in variables:
        array = root.CreateMDArray(band, [time_dim, y_dim, x_dim], float32,
                                   ["COMPRESS=DEFLATE", "ZLEVEL=4"])
        array.SetNoDataValueDouble(math.nan)
        array.SetSpatialRef(srs)
        _attributes(array, {"long_name": long_name, "units": units})
        if band in ("vx", "vy"):
            _attributes(array, {"comment": "towards map east (grid +x)" if band == "vx" else
                                "towards map north (grid +y)"})
        array.Write(product.read(band)[np.newaxis, :, :].astype(np.float32))


def _coordinate(root: Any, name: str, dimension: Any, values: np.ndarray, kind: Any, attributes: dict) -> None:
    array = root.CreateMDArray(name, [dimension], kind)
    array.Write(np.asarray(values, dtype=float))
    _attributes(array, attributes)


def _attributes(target: Any, values: dict[str, Any]) -> None:
    from osgeo import gdal

    for key, value in values.items():
        if key == "units" and hasattr(target, "SetUnit"):
            target.SetUnit(str(value))
            continue
        if isinstance(value, str):
            attribute = target.CreateAttribute(key, [], gdal.ExtendedDataType.CreateString())
        else:
            attribute = target.CreateAttribute(key, [], gdal.ExtendedDataType.Create(gdal.GDT_Float64))
        if attribute is None:
            raise GlacierFlowError(f"Cannot write the netCDF attribute '{key}': {gdal.GetLastErrorMsg()}")
        attribute.Write(value)


