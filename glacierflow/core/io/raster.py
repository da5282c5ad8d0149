"""Raster input through GDAL (the same GDAL as QGIS: ``osgeo.gdal``).

Inputs are read lazily, one window at a time, on any target grid (aligned windows are read as they
are, anything else is warped), so memory stays bounded whatever the scene size. Outputs go through
:mod:`.cog`; :func:`write_array` writes plain GeoTIFFs for samples and tests.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import GlacierFlowError
from ..geo.crs import same_crs
from ..geo.grid import Grid, Window


def _gdal() -> Any:
    from osgeo import gdal  # imported lazily: QGIS start-up stays fast

    return gdal


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


@contextmanager
def gdal_cache_limit(megabytes: int) -> Iterator[None]:
    """Run a block with GDAL's block cache set to ``megabytes`` MB, restoring the previous size after.

    GDAL's default cache is 5 % of RAM and fills while a large product is written (measured: +1.27 GB
    on a 10k x 10k pair); a job that reads and writes strip by strip needs only a few blocks of it.
    """
    gdal = _gdal()
    previous = gdal.GetCacheMax()
    gdal.SetCacheMax(int(megabytes) * 2 ** 20)
    try:
        yield
    finally:
        gdal.SetCacheMax(previous)
