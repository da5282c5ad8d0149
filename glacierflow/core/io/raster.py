"""Raster input and output through GDAL (the same GDAL as QGIS: ``osgeo.gdal``).

Inputs are read lazily, one window at a time, so memory stays bounded
whatever the scene size. Outputs are written to a hidden temporary file and
renamed into place only when complete, so a failed or cancelled job leaves
no partial product.
"""
from __future__ import annotations

import math
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import GlacierFlowError
from ..geo.grid import Grid, Window


def _gdal() -> Any:
    from osgeo import gdal  # imported lazily: QGIS start-up stays fast

    return gdal


def _osr() -> Any:
    from osgeo import osr

    return osr


def spatial_reference(wkt: str) -> Any:
    """An ``osr.SpatialReference`` for ``wkt`` with traditional (x=east) axis order."""
    osr = _osr()
    srs = osr.SpatialReference()
    srs.ImportFromWkt(wkt)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs


def open_raster(path: str) -> Any:
    """Open a raster read-only, with a message that says what to do when it fails."""
    gdal = _gdal()
    if not path or not os.path.exists(path):
        raise GlacierFlowError(f"Raster '{path}' does not exist: check the path.")
    dataset = gdal.OpenEx(path, gdal.OF_RASTER | gdal.OF_READONLY)
    if dataset is None:
        reason = gdal.GetLastErrorMsg() or "unknown format"
        raise GlacierFlowError(
            f"Cannot read '{path}' as a raster ({reason}). The file may be corrupt or "
            "incomplete: download or export it again.")
    return dataset


def grid_of(dataset: Any, path: str) -> Grid:
    """The native :class:`Grid` of a GDAL dataset; fails clearly without a CRS."""
    wkt = dataset.GetProjection()
    if not wkt:
        raise GlacierFlowError(
            f"'{path}' has no coordinate reference system. Assign one in QGIS "
            "(Raster > Projections > Assign Projection) and run again.")
    return Grid(wkt, tuple(dataset.GetGeoTransform()), dataset.RasterXSize, dataset.RasterYSize)


@dataclass
class BandSource:
    """One band of a raster file, readable on any target grid.

    Attributes:
        path: file path.
        band: 1-based band index.
        grid: the file's native grid.
        nodata: the band's nodata value, or None.
    """

    path: str
    band: int
    grid: Grid
    nodata: float | None
    _dataset: Any = field(default=None, repr=False)
    _view: Any = field(default=None, repr=False)

    @classmethod
    def open(cls, path: str, band: int | None = None) -> BandSource:
        """Open ``band`` (1-based) of ``path``; a multi-band file needs an explicit band."""
        dataset = open_raster(path)
        count = dataset.RasterCount
        if band is None:
            if count != 1:
                raise GlacierFlowError(
                    f"'{path}' has {count} bands: choose the band to track (for Sentinel-2 "
                    "band 8, NIR; for Landsat-8/9 band 8, panchromatic).")
            band = 1
        if not 1 <= band <= count:
            raise GlacierFlowError(f"'{path}' has {count} band(s); band {band} does not exist.")
        nodata = dataset.GetRasterBand(band).GetNoDataValue()
        return cls(path, band, grid_of(dataset, path), nodata, dataset)

    def _single_band(self) -> Any:
        """A one-band virtual view of the file, for warping (GDAL 3.6 cannot pick a band in Warp)."""
        if self._view is None:
            gdal = _gdal()
            self._view = gdal.Translate("", self._dataset, options=gdal.TranslateOptions(
                format="VRT", bandList=[self.band]))
        return self._view

    def read(self, target: Grid) -> np.ndarray:
        """The band on ``target`` as float32 (rows, cols), NaN where no data or outside the file.

        Reads a window directly when ``target`` is aligned with the native
        grid; otherwise warps (bilinear) just this window.
        """
        window = _aligned_window(self.grid, target)
        if window is not None:
            return self._read_window(window)
        return self._warp(target)

    @property
    def dataset(self) -> Any:
        """The open GDAL dataset (read-only), for its metadata."""
        return self._dataset

    def drop_cache(self) -> None:
        """Free GDAL's cached blocks of this file (they would otherwise grow up to GDAL_CACHEMAX)."""
        self._dataset.FlushCache()
        if self._view is not None:
            self._view.FlushCache()

    def _read_window(self, window: Window) -> np.ndarray:
        out = np.full((window.height, window.width), np.nan, dtype=np.float32)
        c0, r0 = max(window.col_off, 0), max(window.row_off, 0)
        c1 = min(window.col_off + window.width, self.grid.width)
        r1 = min(window.row_off + window.height, self.grid.height)
        if c1 <= c0 or r1 <= r0:
            return out
        data = self._dataset.GetRasterBand(self.band).ReadAsArray(c0, r0, c1 - c0, r1 - r0)
        if data is None:
            raise GlacierFlowError(f"Reading '{self.path}' failed: the file may be corrupt.")
        data = data.astype(np.float32)
        if self.nodata is not None:
            data[data == np.float32(self.nodata)] = np.nan
        out[r0 - window.row_off:r1 - window.row_off, c0 - window.col_off:c1 - window.col_off] = data
        return out

    def _warp(self, target: Grid) -> np.ndarray:
        gdal = _gdal()
        dst = gdal.GetDriverByName("MEM").Create("", target.width, target.height, 1, gdal.GDT_Float32)
        dst.SetGeoTransform(target.transform)
        dst.SetProjection(target.crs_wkt)
        dst.GetRasterBand(1).SetNoDataValue(float("nan"))
        dst.GetRasterBand(1).Fill(float("nan"))
        options = gdal.WarpOptions(resampleAlg="bilinear", srcNodata=self.nodata, dstNodata=float("nan"),
                                   warpOptions=["INIT_DEST=NO_DATA"])
        if gdal.Warp(dst, self._single_band(), options=options) is None:
            raise GlacierFlowError(f"Reprojecting '{self.path}' failed: {gdal.GetLastErrorMsg()}")
        return dst.GetRasterBand(1).ReadAsArray().astype(np.float32)


def _aligned_window(native: Grid, target: Grid) -> Window | None:
    """The native-pixel window equal to ``target``, or None if a warp is needed."""
    if native.transform[1:3] + native.transform[4:6] != target.transform[1:3] + target.transform[4:6]:
        return None
    if not same_crs(native.crs_wkt, target.crs_wkt):
        return None
    x0, a, b, y0, d, e = native.transform
    det = a * e - b * d
    dx, dy = target.transform[0] - x0, target.transform[3] - y0
    col = (e * dx - b * dy) / det
    row = (-d * dx + a * dy) / det
    if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
        return None
    return Window(int(round(col)), int(round(row)), target.width, target.height)


def same_crs(wkt_a: str, wkt_b: str) -> bool:
    """True when two WKT strings describe the same CRS."""
    if wkt_a == wkt_b:
        return True
    return bool(spatial_reference(wkt_a).IsSame(spatial_reference(wkt_b)))


def transform_bounds(bounds: Sequence[float], src_wkt: str, dst_wkt: str) -> tuple[float, float, float, float]:
    """Bounding box (xmin, ymin, xmax, ymax) of ``bounds`` reprojected, densified along edges."""
    osr = _osr()
    transform = osr.CoordinateTransformation(spatial_reference(src_wkt), spatial_reference(dst_wkt))
    xmin, ymin, xmax, ymax = bounds
    steps = np.linspace(0.0, 1.0, 21)
    edge_points = ([(xmin + t * (xmax - xmin), ymin) for t in steps]
                   + [(xmin + t * (xmax - xmin), ymax) for t in steps]
                   + [(xmin, ymin + t * (ymax - ymin)) for t in steps]
                   + [(xmax, ymin + t * (ymax - ymin)) for t in steps])
    projected = [transform.TransformPoint(x, y)[:2] for x, y in edge_points]
    xs = [p[0] for p in projected if math.isfinite(p[0])]
    ys = [p[1] for p in projected if math.isfinite(p[1])]
    if not xs:
        raise GlacierFlowError("The rasters' footprints cannot be reprojected into a common CRS.")
    return (min(xs), min(ys), max(xs), max(ys))


def utm_crs_wkt(longitude: float, latitude: float) -> str:
    """WKT of the WGS 84 UTM zone containing (longitude, latitude) in degrees."""
    zone = int((longitude + 180.0) // 6.0) % 60 + 1
    epsg = (32600 if latitude >= 0 else 32700) + zone
    srs = _osr().SpatialReference()
    srs.ImportFromEPSG(epsg)
    return srs.ExportToWkt()


def is_geographic(wkt: str) -> bool:
    """True when ``wkt`` is a geographic (degree) CRS rather than a projected one."""
    return bool(spatial_reference(wkt).IsGeographic())


@dataclass(frozen=True)
class GridRequest:
    """A job grid the user names instead of image A's; every field is optional.

    Attributes:
        crs_wkt: a projected CRS (metres); None keeps image A's (its UTM zone if A is in degrees).
        pixel_size: m; None keeps image A's ground resolution.
        bounds: (xmin, ymin, xmax, ymax) in ``crs_wkt`` (or A's CRS) to limit the area to.
    """

    crs_wkt: str | None = None
    pixel_size: float | None = None
    bounds: tuple[float, float, float, float] | None = None


def pair_grid(grid_a: Grid, grid_b: Grid, request: GridRequest | None = None) -> Grid:
    """The job grid for a pair: by default image A's pixels over the intersection of both footprints.

    A geographic (degree) image A is replaced by its UTM zone at A's ground
    resolution, because velocities need metres. A :class:`GridRequest` names
    another CRS, pixel size (m) or area; the grid is then north-up and snapped
    to whole multiples of the pixel size.
    """
    request = request or GridRequest()
    if request.crs_wkt and is_geographic(request.crs_wkt):
        raise GlacierFlowError("The output CRS is in degrees: choose a projected CRS in metres (UTM, polar "
                               "stereographic).")
    base = grid_a if not is_geographic(grid_a.crs_wkt) else _utm_grid_for(grid_a)
    if request.crs_wkt and not same_crs(request.crs_wkt, base.crs_wkt):
        base = Grid(request.crs_wkt, (0.0, base.pixel_size[0], 0.0, 0.0, 0.0, -base.pixel_size[1]), 0, 0)
    box = _intersection([transform_bounds(g.bounds(), g.crs_wkt, base.crs_wkt) for g in (grid_a, grid_b)]
                        + ([tuple(request.bounds)] if request.bounds else []))
    if box is None:
        raise GlacierFlowError(
            "Image A and image B do not overlap (inside the requested area, if one was given). Choose "
            "two images of the same glacier and check that both have the right CRS.")
    if base.width and (request.pixel_size is None or request.pixel_size == base.pixel_size[0]):
        return clip_grid(base, box)  # keep image A's own pixels: no resampling of A
    return _snapped_grid(base.crs_wkt, float(request.pixel_size or base.pixel_size[0]), box)


def _intersection(boxes: Sequence[Sequence[float]]) -> tuple[float, float, float, float] | None:
    xmin, ymin = max(b[0] for b in boxes), max(b[1] for b in boxes)
    xmax, ymax = min(b[2] for b in boxes), min(b[3] for b in boxes)
    return (xmin, ymin, xmax, ymax) if xmin < xmax and ymin < ymax else None


def _snapped_grid(crs_wkt: str, size: float, box: Sequence[float]) -> Grid:
    """A north-up grid of ``size`` m pixels inside ``box``, its edges on multiples of ``size``."""
    if size <= 0:
        raise GlacierFlowError(f"The pixel size must be positive (got {size} m).")
    x0, y1 = math.ceil(box[0] / size) * size, math.floor(box[3] / size) * size
    width, height = int((box[2] - x0) // size), int((y1 - box[1]) // size)
    if width < 2 or height < 2:
        raise GlacierFlowError("The common area is smaller than two pixels: choose a smaller pixel size.")
    return Grid(crs_wkt, (x0, size, 0.0, y1, 0.0, -size), width, height)


def clip_grid(grid: Grid, bounds: Sequence[float]) -> Grid:
    """The part of ``grid`` (whole pixels, same alignment) inside map ``bounds``."""
    x0, a, b, y0, d, e = grid.transform
    if b != 0 or d != 0:
        raise GlacierFlowError("Rotated rasters are not supported: warp them north-up first.")
    xmin, ymin, xmax, ymax = bounds
    cols = sorted(((xmin - x0) / a, (xmax - x0) / a))
    rows = sorted(((ymin - y0) / e, (ymax - y0) / e))
    c0, c1 = max(0, math.ceil(cols[0] - 1e-6)), min(grid.width, math.floor(cols[1] + 1e-6))
    r0, r1 = max(0, math.ceil(rows[0] - 1e-6)), min(grid.height, math.floor(rows[1] + 1e-6))
    if c1 - c0 < 2 or r1 - r0 < 2:
        raise GlacierFlowError("The images overlap by less than two pixels: choose overlapping images.")
    return grid.window_grid(Window(c0, r0, c1 - c0, r1 - r0))


def _utm_grid_for(grid: Grid) -> Grid:
    """A grid in the UTM zone of a geographic ``grid``, at its ground resolution (m)."""
    xmin, ymin, xmax, ymax = grid.bounds()
    wkt = utm_crs_wkt((xmin + xmax) / 2.0, (ymin + ymax) / 2.0)
    metres_per_degree = 111320.0 * math.cos(math.radians((ymin + ymax) / 2.0))
    size = max(1.0, round(min(grid.pixel_size[0] * metres_per_degree, grid.pixel_size[1] * 111320.0)))
    return _snapped_grid(wkt, size, transform_bounds(grid.bounds(), grid.crs_wkt, wkt))


@dataclass
class BandSpec:
    """Name, description and unit of one output band."""

    name: str
    description: str
    unit: str


class ProductWriter:
    """Writes a float32 multi-band Cloud Optimized GeoTIFF strip by strip.

    Rows go to a hidden temporary GeoTIFF beside the output; :meth:`finish`
    converts it to a COG and renames it into place; :meth:`abort` (or leaving
    the ``with`` block on an exception) removes every temporary file.
    """

    def __init__(self, path: str, grid: Grid, bands: list[BandSpec]) -> None:
        gdal = _gdal()
        self.path = path
        self.grid = grid
        self.bands = bands
        folder = os.path.dirname(os.path.abspath(path)) or "."
        if not os.path.isdir(folder):
            raise GlacierFlowError(f"Output folder '{folder}' does not exist: create it or choose another.")
        token = uuid.uuid4().hex[:8]
        self._work_path = os.path.join(folder, f".{os.path.basename(path)}.{token}.work.tif")
        self._cog_path = os.path.join(folder, f".{os.path.basename(path)}.{token}.cog.tif")
        driver = gdal.GetDriverByName("GTiff")
        self._dataset = driver.Create(self._work_path, grid.width, grid.height, len(bands), gdal.GDT_Float32,
                                      options=["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "BIGTIFF=IF_SAFER"])
        if self._dataset is None:
            raise GlacierFlowError(f"Cannot write in '{folder}': {gdal.GetLastErrorMsg()}")
        self._dataset.SetGeoTransform(grid.transform)
        self._dataset.SetProjection(grid.crs_wkt)
        for index, spec in enumerate(bands, start=1):
            band = self._dataset.GetRasterBand(index)
            band.SetNoDataValue(float("nan"))
            band.SetDescription(spec.name)
            band.SetUnitType(spec.unit)
            band.SetMetadataItem("DESCRIPTION", spec.description)

    def __enter__(self) -> ProductWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.abort()

    def write_rows(self, row_off: int, arrays: dict[str, np.ndarray]) -> None:
        """Write full-width rows starting at ``row_off`` (px) for each named band."""
        for index, spec in enumerate(self.bands, start=1):
            self._dataset.GetRasterBand(index).WriteArray(arrays[spec.name].astype(np.float32), 0, row_off)
        self._dataset.FlushCache()  # write and free the blocks now: memory stays one strip deep

    def finish(self, metadata: dict[str, str]) -> str:
        """Convert to a COG with ``metadata`` and move it to the output path; returns the path."""
        gdal = _gdal()
        self._dataset.SetMetadata({k: str(v) for k, v in metadata.items()})
        self._dataset.FlushCache()
        self._dataset = None
        options = gdal.TranslateOptions(
            format="COG", creationOptions=["COMPRESS=DEFLATE", "PREDICTOR=YES", "BLOCKSIZE=256",
                                           "OVERVIEW_RESAMPLING=AVERAGE", "BIGTIFF=IF_SAFER"])
        result = gdal.Translate(self._cog_path, self._work_path, options=options)
        if result is None:
            self.abort()
            raise GlacierFlowError(f"Writing the Cloud Optimized GeoTIFF failed: {gdal.GetLastErrorMsg()}")
        result = None
        os.replace(self._cog_path, self.path)
        remove_quietly(self._work_path)
        return self.path

    def abort(self) -> None:
        """Remove every temporary file; the output path is left untouched."""
        self._dataset = None
        for path in (self._work_path, self._cog_path):
            remove_quietly(path)


def remove_quietly(path: str) -> None:
    """Delete ``path`` and its GDAL ``.aux.xml`` sidecar if they exist (clean-up after a failed write)."""
    for candidate in (path, path + ".aux.xml"):
        try:
            os.remove(candidate)
        except FileNotFoundError:
            pass


def write_array(path: str, grid: Grid, array: np.ndarray, nodata: float | None = None,
                metadata: dict[str, str] | None = None) -> str:
    """Write a single-band GeoTIFF (dtype kept) of ``array`` on ``grid``; for samples and tests."""
    gdal = _gdal()
    types = {np.dtype("uint8"): gdal.GDT_Byte, np.dtype("uint16"): gdal.GDT_UInt16,
             np.dtype("int16"): gdal.GDT_Int16, np.dtype("float32"): gdal.GDT_Float32,
             np.dtype("float64"): gdal.GDT_Float64}
    dataset = gdal.GetDriverByName("GTiff").Create(path, grid.width, grid.height, 1, types[array.dtype],
                                                   options=["COMPRESS=DEFLATE", "TILED=YES"])
    dataset.SetGeoTransform(grid.transform)
    dataset.SetProjection(grid.crs_wkt)
    band = dataset.GetRasterBand(1)
    if nodata is not None:
        band.SetNoDataValue(nodata)
    band.WriteArray(array)
    if metadata:
        dataset.SetMetadata(metadata)
    dataset.FlushCache()
    return path
