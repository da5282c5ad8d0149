"""The area of a job: a polygon (or multipolygon) and its CRS, as the user drew or chose it."""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import GlacierFlowError


@dataclass(frozen=True)
class Area:
    """The search polygon.

    Attributes:
        geometry: a polygon or multipolygon as WKT, or a GeoJSON geometry dict.
        crs_wkt: WKT of the CRS the coordinates are in.
    """

    geometry: str | dict[str, Any]
    crs_wkt: str

    def ogr_geometry(self) -> Any:
        """The polygon as an ``ogr.Geometry`` (in :attr:`crs_wkt`); fails clearly when invalid."""
        from osgeo import ogr

        if isinstance(self.geometry, dict):
            geometry = ogr.CreateGeometryFromJson(json.dumps(self.geometry))
        else:
            geometry = ogr.CreateGeometryFromWkt(str(self.geometry))
        if geometry is None or geometry.IsEmpty():
            raise GlacierFlowError("The search area is empty or not a valid polygon: draw or choose a polygon.")
        if ogr.GT_Flatten(geometry.GetGeometryType()) not in (ogr.wkbPolygon, ogr.wkbMultiPolygon):
            raise GlacierFlowError("The search area must be a polygon (or a multipolygon), not "
                                   f"a {geometry.GetGeometryName().lower()}.")
        return geometry

    def bounds(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) of the polygon in :attr:`crs_wkt`."""
        xmin, xmax, ymin, ymax = self.ogr_geometry().GetEnvelope()
        return (xmin, ymin, xmax, ymax)

    def intersects_footprint(self, footprint: Sequence[float], footprint_crs_wkt: str) -> bool:
        """True when the rectangle ``footprint`` (in its CRS) touches the polygon's interior."""
        from osgeo import ogr

        from .crs import transform_bounds

        xmin, ymin, xmax, ymax = transform_bounds(footprint, footprint_crs_wkt, self.crs_wkt)
        ring = ogr.Geometry(ogr.wkbLinearRing)
        for x, y in ((xmin, ymin), (xmax, ymin), (xmax, ymax), (xmin, ymax), (xmin, ymin)):
            ring.AddPoint_2D(x, y)
        box = ogr.Geometry(ogr.wkbPolygon)
        box.AddGeometry(ring)
        polygon = self.ogr_geometry()
        if not polygon.Intersects(box):
            return False
        overlap = polygon.Intersection(box)
        return overlap is not None and overlap.GetArea() > 0.0
