"""Coordinate reference systems: the one place where they are built, compared, crossed and chosen.

Every spatial reference is built with the traditional GIS axis order (x = east or longitude), so a
point is always (x, y) whatever the CRS's official axis order. Longitudes crossing the antimeridian
are made continuous here and nowhere else.

The automatic job CRS (:func:`automatic_crs`) is the WGS 84 UTM zone of a place; poleward of
:data:`POLAR_LATITUDE` (72 degrees) it is polar stereographic instead: EPSG:3413 (NSIDC north, true
scale at 70 N, ITS_LIVE's Greenland grid) or EPSG:3031 (Antarctic, true scale at 71 S). Above 72
degrees UTM zones are about 200 km wide or less, so ice caps straddle zones, while the polar
projections' scale is within about 1 % of true from 67 to 74 degrees (0.6 % at 72) and 3 % at the pole.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

from ..errors import GlacierFlowError

WGS84_EPSG = 4326
POLAR_LATITUDE = 72.0  # degrees; poleward of it the automatic CRS is polar stereographic
POLAR_NORTH_EPSG = 3413
POLAR_SOUTH_EPSG = 3031

Point = tuple[float, float]


def _osr() -> Any:
    from osgeo import osr  # imported lazily: QGIS start-up stays fast

    return osr


def spatial_reference(wkt: str) -> Any:
    """An ``osr.SpatialReference`` for ``wkt`` with traditional (x = east) axis order."""
    osr = _osr()
    srs = osr.SpatialReference()
    if srs.ImportFromWkt(wkt) != 0:
        raise GlacierFlowError("A coordinate reference system could not be read: set the layer's CRS in QGIS "
                               "and run again.")
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs


@functools.lru_cache(maxsize=64)
def epsg_wkt(epsg: int) -> str:
    """WKT of the CRS with EPSG code ``epsg``."""
    srs = _osr().SpatialReference()
    if srs.ImportFromEPSG(int(epsg)) != 0:
        raise GlacierFlowError(f"EPSG:{epsg} is not a known coordinate reference system.")
    return srs.ExportToWkt()


def wgs84_wkt() -> str:
    """WKT of WGS 84 longitude/latitude (EPSG:4326)."""
    return epsg_wkt(WGS84_EPSG)


def same_crs(wkt_a: str, wkt_b: str) -> bool:
    """True when two WKT strings describe the same CRS."""
    if wkt_a == wkt_b:
        return True
    return bool(spatial_reference(wkt_a).IsSame(spatial_reference(wkt_b)))


def is_geographic(wkt: str) -> bool:
    """True when ``wkt`` is a geographic (degree) CRS rather than a projected one."""
    return bool(spatial_reference(wkt).IsGeographic())


def is_wgs84(wkt: str) -> bool:
    """True when ``wkt`` is WGS 84 longitude/latitude."""
    return same_crs(wkt, wgs84_wkt())


def transformer(src_wkt: str, dst_wkt: str) -> Any:
    """An ``osr.CoordinateTransformation`` from ``src_wkt`` to ``dst_wkt`` (both in x = east order)."""
    return _osr().CoordinateTransformation(spatial_reference(src_wkt), spatial_reference(dst_wkt))


def transform_points(points: Sequence[Sequence[float]], src_wkt: str, dst_wkt: str) -> list[Point]:
    """``points`` (x, y) from ``src_wkt`` into ``dst_wkt``; a point outside the target's domain comes back
    as (inf, inf) or NaN, which callers test with ``math.isfinite``."""
    if same_crs(src_wkt, dst_wkt):
        return [(float(p[0]), float(p[1])) for p in points]
    transform = transformer(src_wkt, dst_wkt)
    return [tuple(transform.TransformPoint(float(p[0]), float(p[1]))[:2]) for p in points]


def to_lonlat(points: Sequence[Sequence[float]], src_wkt: str) -> list[Point]:
    """``points`` in WGS 84 (longitude, latitude) degrees."""
    return transform_points(points, src_wkt, wgs84_wkt())


def transform_bounds(bounds: Sequence[float], src_wkt: str, dst_wkt: str) -> tuple[float, float, float, float]:
    """Bounding box (xmin, ymin, xmax, ymax) of ``bounds`` reprojected, densified along its edges."""
    xmin, ymin, xmax, ymax = bounds
    steps = [i / 20.0 for i in range(21)]
    edges = ([(xmin + t * (xmax - xmin), ymin) for t in steps] + [(xmin + t * (xmax - xmin), ymax) for t in steps]
             + [(xmin, ymin + t * (ymax - ymin)) for t in steps] + [(xmax, ymin + t * (ymax - ymin)) for t in steps])
    projected = [p for p in transform_points(edges, src_wkt, dst_wkt) if math.isfinite(p[0]) and math.isfinite(p[1])]
    if not projected:
        raise GlacierFlowError("The footprints cannot be reprojected into a common CRS: check both CRSs.")
    xs, ys = [p[0] for p in projected], [p[1] for p in projected]
    return (min(xs), min(ys), max(xs), max(ys))


def wrap_longitude(longitude: float) -> float:
    """``longitude`` in [-180, 180) degrees."""
    return (longitude + 180.0) % 360.0 - 180.0


def unwrap_longitudes(points: Sequence[Sequence[float]], reference: float | None = None) -> list[Point]:
    """(lon, lat) points with longitudes made continuous along the sequence (no 360-degree jumps between
    neighbours), starting near ``reference`` (default: the first point's longitude).

    A ring crossing the antimeridian then spans, say, 179 to 181 degrees instead of -180..180: its
    centroid and extent are the short way round, not a band around the globe.
    """
    unwrapped: list[Point] = []
    previous = float(points[0][0]) if reference is None and len(points) else float(reference or 0.0)
    for point in points:
        lon = float(point[0])
        lon += 360.0 * round((previous - lon) / 360.0)
        unwrapped.append((lon, float(point[1])))
        previous = lon
    return unwrapped


def utm_zone(longitude: float) -> int:
    """The UTM zone number (1..60) of ``longitude`` (degrees, any wrap)."""
    return int(math.floor((wrap_longitude(longitude) + 180.0) / 6.0)) % 60 + 1


def utm_epsg(longitude: float, latitude: float) -> int:
    """EPSG code of the WGS 84 UTM zone containing (longitude, latitude) degrees (north or south)."""
    return (32600 if latitude >= 0 else 32700) + utm_zone(longitude)


def utm_crs_wkt(longitude: float, latitude: float) -> str:
    """WKT of the WGS 84 UTM zone containing (longitude, latitude) in degrees."""
    return epsg_wkt(utm_epsg(longitude, latitude))


def automatic_crs(longitude: float, latitude: float) -> tuple[str, str]:
    """The job CRS at (longitude, latitude) degrees and a label for the log: the UTM zone, or polar
    stereographic poleward of :data:`POLAR_LATITUDE`."""
    if abs(latitude) > POLAR_LATITUDE:
        epsg = POLAR_NORTH_EPSG if latitude > 0 else POLAR_SOUTH_EPSG
        return epsg_wkt(epsg), f"polar stereographic EPSG:{epsg} (|latitude| > {POLAR_LATITUDE:g} degrees)"
    epsg = utm_epsg(longitude, latitude)
    zone = utm_zone(longitude)
    return epsg_wkt(epsg), f"UTM zone {zone}{'N' if latitude >= 0 else 'S'} (EPSG:{epsg})"


def epsg_code(wkt: str) -> int | None:
    """The EPSG code of ``wkt`` when it has one, else None."""
    srs = spatial_reference(wkt)
    srs.AutoIdentifyEPSG()
    code = srs.GetAuthorityCode(None)
    return int(code) if code and srs.GetAuthorityName(None) == "EPSG" else None
