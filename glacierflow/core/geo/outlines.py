"""Glacier masks from outline polygons (RGI shapefile, GeoPackage, GeoJSON; any CRS)."""
from __future__ import annotations

import os

import numpy as np

from ..errors import GlacierFlowError
from .crs import spatial_reference
from .grid import Grid


class GlacierOutlines:
    """Outline polygons reprojected once into the job grid's CRS, rasterised per window."""

    def __init__(self, path: str, grid_crs_wkt: str, layer: str | None = None) -> None:
        from osgeo import ogr, osr

        if not path or not os.path.exists(path):
            raise GlacierFlowError(f"Glacier outlines '{path}' do not exist: check the path.")
        source = ogr.Open(path)
        if source is None:
            raise GlacierFlowError(
                f"Cannot read '{path}' as vector data: give an RGI shapefile, a GeoPackage or GeoJSON.")
        src_layer = source.GetLayerByName(layer) if layer else source.GetLayer(0)
        if src_layer is None:
            raise GlacierFlowError(f"'{path}' has no layer named '{layer}'.")
        src_srs = src_layer.GetSpatialRef()
        if src_srs is None:
            raise GlacierFlowError(f"Outlines '{path}' have no CRS: add a .prj or assign one in QGIS.")
        src_srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        transform = osr.CoordinateTransformation(src_srs, spatial_reference(grid_crs_wkt))
        self._memory = ogr.GetDriverByName("Memory").CreateDataSource("outlines")
        self._layer = self._memory.CreateLayer("outlines", spatial_reference(grid_crs_wkt), ogr.wkbMultiPolygon)
        self.count = 0
        for feature in src_layer:
            geometry = feature.GetGeometryRef()
            if geometry is None or "POLYGON" not in geometry.GetGeometryName():
                continue
            geometry = geometry.Clone()
            geometry.Transform(transform)
            out = ogr.Feature(self._layer.GetLayerDefn())
            out.SetGeometry(geometry)
            self._layer.CreateFeature(out)
            self.count += 1
        if self.count == 0:
            raise GlacierFlowError(f"'{path}' holds no polygons: give glacier outline polygons.")

    def mask(self, grid: Grid) -> np.ndarray:
        """Bool (rows, cols) mask of ``grid``: True where a pixel centre lies inside an outline."""
        from osgeo import gdal

        target = gdal.GetDriverByName("MEM").Create("", grid.width, grid.height, 1, gdal.GDT_Byte)
        target.SetGeoTransform(grid.transform)
        target.SetProjection(grid.crs_wkt)
        gdal.RasterizeLayer(target, [1], self._layer, burn_values=[1])
        return target.GetRasterBand(1).ReadAsArray().astype(bool)


def outline_mask(path: str, grid: Grid) -> np.ndarray:
    """Bool glacier mask of the whole ``grid`` from the outlines at ``path``."""
    return GlacierOutlines(path, grid.crs_wkt).mask(grid)
