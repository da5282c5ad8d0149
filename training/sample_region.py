"""The built-in regional sample: several glaciers in two job areas, for the regional job and its benchmark.

Two multi-date series (:mod:`.sample_series`, different seeds) 20 km apart in UTM 32N; each glacier
outline is cut across the flow into ``split`` parts, so the region has ``2 x split`` glaciers (RGI-like ids
in the field ``RGIId``) of which each pair of neighbours shares scenes. All images go into one folder
(names prefixed by the area), the outlines into one GeoPackage in WGS 84.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

from .sample_series import SERIES_DATES, SeriesFiles, write_sample_series

AREA_SHIFT_M = (20000.0, 0.0)  # the second area's origin, east of the first


@dataclass(frozen=True)
class RegionFiles:
    """Paths of the written region: the scene folder, the outlines and each area's series (truth inside)."""

    folder: str
    outlines: str
    series: list[SeriesFiles]
    glacier_ids: list[str]


def write_sample_region(folder: str, shape: tuple[int, int] = (128, 128), split: int = 2,
                        dates: tuple[tuple[str, float], ...] = SERIES_DATES) -> RegionFiles:
    """Write the region into ``folder`` (``scenes/``, ``outlines.gpkg``, ``area_*`` with the truth)."""
    from osgeo import ogr, osr

    scenes = os.path.join(folder, "scenes")
    os.makedirs(scenes, exist_ok=True)
    series, ids = [], []
    path = os.path.join(folder, "outlines.gpkg")
    reference = osr.SpatialReference()
    reference.ImportFromEPSG(4326)
    reference.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    dataset = ogr.GetDriverByName("GPKG").CreateDataSource(path)
    layer = dataset.CreateLayer("glaciers", reference, ogr.wkbMultiPolygon)
    layer.CreateField(ogr.FieldDefn("RGIId", ogr.OFTString))
    for number, shift in enumerate(((0.0, 0.0), AREA_SHIFT_M)):
        area = write_sample_series(os.path.join(folder, f"area_{number + 1}"), shape=shape, seed=number,
                                   dates=dates, origin_shift_m=shift)
        series.append(area)
        for image in area.images:
            shutil.copy(image, os.path.join(scenes, f"a{number + 1}_{os.path.basename(image)}"))
        source = ogr.Open(area.outlines)  # held: a geometry outliving its dataset crashes GDAL
        first = source.GetLayer(0).GetNextFeature()
        outline = first.GetGeometryRef().Clone()
        first, source = None, None
        west, east, south, north = outline.GetEnvelope()
        for part in range(split):  # bands across the flow (the sample flows north to south)
            top = north - (north - south) * part / split
            bottom = north - (north - south) * (part + 1) / split
            box = ogr.CreateGeometryFromWkt(f"POLYGON(({west - 1} {bottom},{east + 1} {bottom},{east + 1} {top},"
                                            f"{west - 1} {top},{west - 1} {bottom}))")
            piece = outline.Intersection(box)
            if piece is None or piece.IsEmpty() or piece.GetArea() == 0:
                continue
            glacier_id = f"RGI60-99.{number + 1:02d}{part + 1:03d}"
            feature = ogr.Feature(layer.GetLayerDefn())
            feature.SetField("RGIId", glacier_id)
            feature.SetGeometry(ogr.ForceToMultiPolygon(piece))
            layer.CreateFeature(feature)
            ids.append(glacier_id)
    dataset = None
    return RegionFiles(scenes, path, series, ids)
