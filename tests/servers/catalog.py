"""Test catalogues: small Cloud Optimized GeoTIFFs with known values and the STAC items pointing at them."""
from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
from osgeo import gdal, osr

GDAL_TYPES = {np.dtype("uint8"): gdal.GDT_Byte, np.dtype("uint16"): gdal.GDT_UInt16}


def epsg_wkt(code: int) -> str:
    """WKT of EPSG ``code``."""
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(code)
    return srs.ExportToWkt()


def write_cog(path: str, array: np.ndarray, crs_wkt: str, transform: Sequence[float], nodata: float | None,
              overview_resampling: str = "AVERAGE") -> str:
    """Write ``array`` as a deflate COG with 256 px blocks and overviews (so a small read needs few blocks)."""
    height, width = array.shape
    memory = gdal.GetDriverByName("MEM").Create("", width, height, 1, GDAL_TYPES[array.dtype])
    memory.SetGeoTransform(tuple(transform))
    memory.SetProjection(crs_wkt)
    band = memory.GetRasterBand(1)
    if nodata is not None:
        band.SetNoDataValue(nodata)
    band.WriteArray(array)
    options = ["COMPRESS=DEFLATE", "BLOCKSIZE=256", f"OVERVIEW_RESAMPLING={overview_resampling}",
               "OVERVIEWS=IGNORE_EXISTING"]
    result = gdal.Translate(path, memory, format="COG", creationOptions=options)
    if result is None:
        raise RuntimeError(f"writing {path} failed: {gdal.GetLastErrorMsg()}")
    result = None
    return path


def footprint_lonlat(crs_wkt: str, bounds: Sequence[float]) -> list[list[float]]:
    """The rectangle ``bounds`` (in ``crs_wkt``) as a closed lon/lat ring."""
    source = osr.SpatialReference()
    source.ImportFromWkt(crs_wkt)
    target = osr.SpatialReference()
    target.ImportFromEPSG(4326)
    for srs in (source, target):
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    transform = osr.CoordinateTransformation(source, target)
    xmin, ymin, xmax, ymax = bounds
    corners = [(xmin, ymin), (xmax, ymin), (xmax, ymax), (xmin, ymax), (xmin, ymin)]
    return [list(transform.TransformPoint(x, y)[:2]) for x, y in corners]


def stac_item(item_id: str, collection: str, when: str, ring: list[list[float]], assets: dict[str, str],
              **properties: object) -> dict:
    """A STAC 1.0 item with a polygon footprint, ``datetime`` and asset hrefs."""
    lons, lats = [p[0] for p in ring], [p[1] for p in ring]
    return {
        "type": "Feature", "stac_version": "1.0.0", "id": item_id, "collection": collection,
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "bbox": [min(lons), min(lats), max(lons), max(lats)],
        "properties": {"datetime": when, **properties},
        "links": [],
        "assets": {key: {"href": href, "type": "image/tiff; application=geotiff; profile=cloud-optimized"}
                   for key, href in assets.items()},
    }


def write_items(path: str, items: list[dict]) -> str:
    """Write ``items`` as a GeoJSON FeatureCollection (an item collection rustac loads)."""
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"type": "FeatureCollection", "features": items}, handle)
    return path
