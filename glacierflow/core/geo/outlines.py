"""Glacier masks from outline polygons (RGI shapefile, GeoPackage, GeoJSON; any CRS)."""
from __future__ import annotations

import os

import numpy as np

from ..errors import GlacierFlowError
from ..feedback import Feedback
from .crs import spatial_reference
from .grid import Grid


class GlacierOutlines:
    """Outline polygons reprojected once into the job grid's CRS, rasterised per window.

    Invalid polygons (a ring traced twice, a bow tie) are made valid with GEOS MakeValid: rasterised as
    they are they would fill nothing, or the wrong side. ``repaired`` counts them; with a ``feedback``
    the repair is reported as a warning.
    """

    def __init__(self, path: str, grid_crs_wkt: str, layer: str | None = None,
                 feedback: Feedback | None = None) -> None:
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
        self.repaired = 0
        for feature in src_layer:
            geometry = feature.GetGeometryRef()
            if geometry is None or "POLYGON" not in geometry.GetGeometryName():
                continue
            geometry = geometry.Clone()
            if not geometry.IsValid():
                geometry = _made_valid(geometry)
                self.repaired += 1
                if geometry is None:
                    continue
            geometry.Transform(transform)
            out = ogr.Feature(self._layer.GetLayerDefn())
            out.SetGeometry(geometry)
            self._layer.CreateFeature(out)
            self.count += 1
        if self.count == 0:
            raise GlacierFlowError(f"'{path}' holds no polygons: give glacier outline polygons.")
        if self.repaired and feedback is not None:
            feedback.warning(f"{self.repaired} invalid polygon(s) in '{os.path.basename(path)}' (self-intersecting "
                             "or doubled rings) were made valid; check them in QGIS (Vector > Geometry Tools > "
                             "Check Validity) if the glacier mask looks wrong.")

    def touches(self, grid: Grid) -> bool:
        """True when at least one outline overlaps ``grid``'s extent."""
        from osgeo import ogr

        xmin, ymin, xmax, ymax = grid.bounds()
        ring = ogr.Geometry(ogr.wkbLinearRing)
        for x, y in ((xmin, ymin), (xmax, ymin), (xmax, ymax), (xmin, ymax), (xmin, ymin)):
            ring.AddPoint_2D(x, y)
        box = ogr.Geometry(ogr.wkbPolygon)
        box.AddGeometry(ring)
        self._layer.SetSpatialFilter(box)
        try:
            return any(feature.GetGeometryRef().Intersects(box) for feature in self._layer)
        finally:
            self._layer.SetSpatialFilter(None)
            self._layer.ResetReading()

    def mask(self, grid: Grid) -> np.ndarray:
        """Bool (rows, cols) mask of ``grid``: True where a pixel centre lies inside an outline."""
        from osgeo import gdal

        target = gdal.GetDriverByName("MEM").Create("", grid.width, grid.height, 1, gdal.GDT_Byte)
        target.SetGeoTransform(grid.transform)
        target.SetProjection(grid.crs_wkt)
        gdal.RasterizeLayer(target, [1], self._layer, burn_values=[1])
        return target.GetRasterBand(1).ReadAsArray().astype(bool)


def _made_valid(geometry: object) -> object | None:
    """The polygonal part of GEOS MakeValid of ``geometry`` (a MultiPolygon), or None when nothing is left."""
    from osgeo import ogr

    valid = geometry.MakeValid()  # type: ignore[attr-defined]
    if valid is None:
        return None
    parts = [valid] if valid.GetGeometryType() != ogr.wkbGeometryCollection else \
        [valid.GetGeometryRef(i) for i in range(valid.GetGeometryCount())]
    polygons = ogr.Geometry(ogr.wkbMultiPolygon)
    for part in parts:
        name = part.GetGeometryName()
        if name == "POLYGON":
            polygons.AddGeometry(part)
        elif name == "MULTIPOLYGON":
            for index in range(part.GetGeometryCount()):
                polygons.AddGeometry(part.GetGeometryRef(index))
    return polygons if polygons.GetGeometryCount() else None


def outline_mask(path: str, grid: Grid) -> np.ndarray:
    """Bool glacier mask of the whole ``grid`` from the outlines at ``path``."""
    return GlacierOutlines(path, grid.crs_wkt).mask(grid)
