"""The one grid of a job, chosen from the area: CRS, pixel size and alignment.

Every scene of a job is warped onto this grid once, at fetch time (DESIGN.md: "one grid per job").

* **CRS**: the WGS 84 UTM zone of the area's centroid; poleward of :data:`POLAR_LATITUDE` (72 degrees)
  a polar stereographic CRS instead: EPSG:3413 (NSIDC north, true scale at 70 N, ITS_LIVE's Greenland
  grid) or EPSG:3031 (Antarctic, true scale at 71 S). Above 72 degrees UTM zones are about 200 km wide
  or less, so ice caps straddle zones, while the polar projections' scale is within about 1 % of true
  from 67 to 74 degrees (0.6 % at 72) and 3 % at the pole. A target CRS the user gives wins (in metres).
* **Alignment**: edges on whole multiples of the pixel size (grown outward to cover the whole area), so
  two runs over nearly the same area share pixels and hit the same cache entries.
* An area spanning several UTM zones uses its centroid's zone, with a warning that gives the scale error
  at its farthest edge (it grows away from the central meridian: at 60 N, under 0.01 % at 3 degrees, 0.1 % at
  6 degrees of longitude; velocities are in map metres, so they carry that error).
* A polygon in longitude/latitude whose vertices jump between about +180 and -180 is read as crossing
  the antimeridian (the short way), not as a band around the globe.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..errors import GlacierFlowError
from ..feedback import Feedback
from ..imagery.base import Area
from .grid import Grid

POLAR_LATITUDE = 72.0  # degrees; poleward of it the job grid is polar stereographic
POLAR_NORTH_EPSG = 3413
POLAR_SOUTH_EPSG = 3031
MAX_SIDE_PX = 20000  # px: larger grids do not fit a fetch in memory (20000^2 float32 = 1.6 GB)
MIN_SIDE_PX = 2  # px: the flow engines need at least two pixels each way
SNAP_TOLERANCE_PX = 0.001  # px: 1 cm at 10 m

#: Ground resolution (m) of the bands GlacierFlow tracks, per sensor: Sentinel-2 B8 (NIR) 10 m, Landsat 8/9
#: OLI multispectral 30 m and panchromatic B8 15 m, Landsat 4-7 TM/ETM+ 30 m.
SENSOR_PIXEL_SIZE_M: dict[str, float] = {
    "sentinel-2": 10.0,
    "landsat": 30.0,
    "landsat-pan": 15.0,
}


def sensor_pixel_size(sensor: str) -> float:
    """Ground resolution (m) of ``sensor`` (a key of :data:`SENSOR_PIXEL_SIZE_M`, case-insensitive)."""
    key = sensor.strip().lower()
    if key not in SENSOR_PIXEL_SIZE_M:
        raise GlacierFlowError(f"Unknown sensor '{sensor}': give the pixel size in metres, or one of "
                               f"{', '.join(SENSOR_PIXEL_SIZE_M)}.")
    return SENSOR_PIXEL_SIZE_M[key]


def sensor_of(text: str) -> str | None:
    """The sensor named by a scene id, collection or source name (``S2B_MSIL2A_...`` -> sentinel-2,
    ``LC09_L2SP_...`` -> landsat, ``..._B8`` of Landsat -> landsat-pan), or None."""
    upper = text.upper()
    if "SENTINEL-2" in upper or "SENTINEL2" in upper or upper.startswith(("S2A", "S2B", "S2C", "S2_")):
        return "sentinel-2"
    if "LANDSAT" in upper or upper[:4] in ("LC08", "LC09", "LO08", "LO09", "LE07", "LT05", "LT04"):
        return "landsat-pan" if upper.endswith("_B8") else "landsat"
    return None


def job_grid_for_area(area: Area, pixel_size_m: float, crs_wkt: str | None = None,
                      feedback: Feedback | None = None) -> Grid:
    """The job grid covering ``area``: north-up, ``pixel_size_m`` m pixels on multiples of the pixel size.

    Args:
        area: the polygon and its CRS (any; degrees or metres).
        pixel_size_m: ground size of one pixel, m (see :data:`SENSOR_PIXEL_SIZE_M`).
        crs_wkt: a projected CRS (metres) to use instead of the automatic UTM / polar choice.
        feedback: receives the choice (info) and the zone-crossing warning.

    Raises GlacierFlowError when the area has no CRS, the CRS is in degrees, the pixel size is not
    positive, or the grid would exceed :data:`MAX_SIDE_PX` px a side.
    """
    from ..io.raster import is_geographic

    feedback = feedback or Feedback()
    if not pixel_size_m or not math.isfinite(pixel_size_m) or pixel_size_m <= 0:
        raise GlacierFlowError(f"The pixel size must be a positive number of metres (got {pixel_size_m}).")
    if not area.crs_wkt or not area.crs_wkt.strip():
        raise GlacierFlowError("The area has no coordinate reference system: set the layer's CRS (or give the "
                               "extent with its CRS, like 'xmin,xmax,ymin,ymax [EPSG:4326]') and run again.")
    points = _lonlat_vertices(area)
    lon, lat = _centroid_lonlat(area, points)
    if crs_wkt:
        if is_geographic(crs_wkt):
            raise GlacierFlowError("The target CRS is in degrees: choose a projected CRS in metres (UTM, polar "
                                   "stereographic), or leave it empty for the area's UTM zone.")
        target, label = crs_wkt, "the CRS given"
    else:
        target, label = _automatic_crs(lon, lat)
        _warn_zone_crossing(points, lon, lat, label, feedback)
    grid = _aligned_grid(area, target, float(pixel_size_m))
    feedback.info(f"Job grid: {label}, {pixel_size_m:g} m pixels, {grid.width} x {grid.height} px.")
    return grid


def utm_zone(longitude: float) -> int:
    """The UTM zone number (1..60) of ``longitude`` (degrees, any wrap)."""
    return int(math.floor((_wrap(longitude) + 180.0) / 6.0)) % 60 + 1


def _wrap(longitude: float) -> float:
    """``longitude`` in [-180, 180) degrees."""
    return (longitude + 180.0) % 360.0 - 180.0


def _automatic_crs(lon: float, lat: float) -> tuple[str, str]:
    """WKT and a label of the UTM zone at (lon, lat), or of the polar stereographic CRS poleward of 72 deg."""
    if abs(lat) > POLAR_LATITUDE:
        epsg = POLAR_NORTH_EPSG if lat > 0 else POLAR_SOUTH_EPSG
        return _epsg_wkt(epsg), f"polar stereographic EPSG:{epsg} (|latitude| > {POLAR_LATITUDE:g} degrees)"
    zone = utm_zone(lon)
    epsg = (32600 if lat >= 0 else 32700) + zone
    return _epsg_wkt(epsg), f"UTM zone {zone}{'N' if lat >= 0 else 'S'} (EPSG:{epsg})"


def _epsg_wkt(epsg: int) -> str:
    from osgeo import osr

    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    return srs.ExportToWkt()


def _lonlat_vertices(area: Area) -> list[tuple[float, float]]:
    """The polygon's densified vertices in WGS 84 lon/lat, unwrapped so they never jump by 360 degrees."""
    from osgeo import osr

    from ..io.raster import is_geographic, spatial_reference

    geometry = _densified(area.ogr_geometry(), area.crs_wkt)
    raw = _vertices(geometry)
    if is_geographic(area.crs_wkt):
        lonlat = _to_wgs84(raw, area.crs_wkt) if not _is_wgs84(area.crs_wkt) else raw
    else:
        transform = osr.CoordinateTransformation(spatial_reference(area.crs_wkt), spatial_reference(_epsg_wkt(4326)))
        lonlat = [tuple(transform.TransformPoint(x, y)[:2]) for x, y in raw]
    lonlat = [(x, y) for x, y in lonlat if math.isfinite(x) and math.isfinite(y)]
    if not lonlat:
        raise GlacierFlowError("The area cannot be placed on the Earth: check its CRS.")
    return _unwrapped(lonlat)


def _is_wgs84(wkt: str) -> bool:
    from ..io.raster import same_crs

    return same_crs(wkt, _epsg_wkt(4326))


def _to_wgs84(points: Sequence[tuple[float, float]], wkt: str) -> list[tuple[float, float]]:
    from osgeo import osr

    from ..io.raster import spatial_reference

    transform = osr.CoordinateTransformation(spatial_reference(wkt), spatial_reference(_epsg_wkt(4326)))
    return [tuple(transform.TransformPoint(x, y)[:2]) for x, y in points]


def _unwrapped(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Longitudes shifted by 360 degrees where needed so the set spans under 180 degrees (antimeridian)."""
    lons = [p[0] for p in points]
    if max(lons) - min(lons) <= 180.0:
        return list(points)
    return [(x + 360.0 if x < 0 else x, y) for x, y in points]


def _densified(geometry: Any, crs_wkt: str) -> Any:
    """A copy with extra vertices on long edges, so projected bounds follow curved edges."""
    from ..io.raster import is_geographic

    xmin, xmax, ymin, ymax = geometry.GetEnvelope()
    if is_geographic(crs_wkt) and xmax - xmin > 180.0:
        geometry = _shifted_east(geometry)  # segmentize the short way across the antimeridian
        xmin, xmax, ymin, ymax = geometry.GetEnvelope()
    step = max(xmax - xmin, ymax - ymin) / 32.0
    densified = geometry.Clone()
    if step > 0:
        densified.Segmentize(step)
    return densified


def _shifted_east(geometry: Any) -> Any:
    """``geometry`` (lon/lat) with negative longitudes moved by +360 degrees."""
    from osgeo import ogr

    shifted = geometry.Clone()

    def shift(part: Any) -> None:
        if part.GetGeometryCount():
            for index in range(part.GetGeometryCount()):
                shift(part.GetGeometryRef(index))
            return
        for index in range(part.GetPointCount()):
            x, y = part.GetX(index), part.GetY(index)
            part.SetPoint_2D(index, x + 360.0 if x < 0 else x, y)

    shift(shifted)
    return ogr.CreateGeometryFromWkt(shifted.ExportToWkt())


def _vertices(geometry: Any) -> list[tuple[float, float]]:
    if geometry.GetGeometryCount():
        found: list[tuple[float, float]] = []
        for index in range(geometry.GetGeometryCount()):
            found.extend(_vertices(geometry.GetGeometryRef(index)))
        return found
    return [(geometry.GetX(i), geometry.GetY(i)) for i in range(geometry.GetPointCount())]


def _centroid_lonlat(area: Area, points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """The area's centroid in lon/lat (lon wrapped to [-180, 180)); computed in the area's own CRS
    (after unwrapping a lon/lat polygon across the antimeridian)."""
    from ..io.raster import is_geographic

    geometry = area.ogr_geometry()
    if is_geographic(area.crs_wkt):
        xmin, xmax, _, _ = geometry.GetEnvelope()
        if xmax - xmin > 180.0:
            geometry = _shifted_east(geometry)
        centre = geometry.Centroid()
        lonlat = (centre.GetX(), centre.GetY())
        if not _is_wgs84(area.crs_wkt):
            lonlat = _to_wgs84([lonlat], area.crs_wkt)[0]
    else:
        centre = geometry.Centroid()
        lonlat = _to_wgs84([(centre.GetX(), centre.GetY())], area.crs_wkt)[0]
    if not all(math.isfinite(v) for v in lonlat):
        lons, lats = [p[0] for p in points], [p[1] for p in points]
        lonlat = ((min(lons) + max(lons)) / 2.0, (min(lats) + max(lats)) / 2.0)
    return _wrap(lonlat[0]), lonlat[1]


def _warn_zone_crossing(points: Sequence[tuple[float, float]], lon: float, lat: float, label: str,
                        feedback: Feedback) -> None:
    """Warn when the area spans several UTM zones (it is then projected in its centroid's zone)."""
    if abs(lat) > POLAR_LATITUDE:
        return
    lons = [p[0] for p in points]
    west, east = utm_zone(min(lons)), utm_zone(max(lons))
    if west == east:
        return
    meridian = utm_zone(lon) * 6.0 - 183.0
    offset = max(abs(_wrap(min(lons) - meridian)), abs(_wrap(max(lons) - meridian)))
    feedback.warning(f"The area spans UTM zones {west} to {east}: the job grid uses {label}, the zone of its "
                     f"centroid. Its farthest edge lies {offset:.1f} degrees of longitude from the zone's central "
                     f"meridian, where map distances differ from ground distances by up to "
                     f"{100.0 * abs(utm_scale_factor(offset, lat) - 1.0):.2f} %. Give a target CRS to choose "
                     "another.")


def utm_scale_factor(longitude_offset: float, latitude: float) -> float:
    """Transverse Mercator point scale (map m per ground m) at ``longitude_offset`` degrees from the central
    meridian and ``latitude`` degrees, to first order: 0.9996 (1 + (dlon cos(lat))^2 / 2)."""
    along = math.radians(longitude_offset) * math.cos(math.radians(latitude))
    return 0.9996 * (1.0 + along * along / 2.0)


def _aligned_grid(area: Area, target_wkt: str, size: float) -> Grid:
    """The north-up grid in ``target_wkt`` covering the area, its edges on multiples of ``size`` m."""
    xmin, ymin, xmax, ymax = _projected_bounds(area, target_wkt)
    # an overhang under SNAP_TOLERANCE_PX (rounding, a reprojected edge's bulge) adds no row or column
    x0 = math.floor(xmin / size + SNAP_TOLERANCE_PX) * size
    x1 = math.ceil(xmax / size - SNAP_TOLERANCE_PX) * size
    y0 = math.floor(ymin / size + SNAP_TOLERANCE_PX) * size
    y1 = math.ceil(ymax / size - SNAP_TOLERANCE_PX) * size
    width, height = int(round((x1 - x0) / size)), int(round((y1 - y0) / size))
    if max(width, height) > MAX_SIDE_PX:
        smallest = size * max(width, height) / MAX_SIDE_PX
        raise GlacierFlowError(
            f"The area is {width} x {height} px at {size:g} m ({(x1 - x0) / 1000:.0f} x {(y1 - y0) / 1000:.0f} km): "
            f"more than {MAX_SIDE_PX} px a side. Draw a smaller area around the glacier, or choose a pixel size of "
            f"at least {math.ceil(smallest):g} m.")
    if min(width, height) < MIN_SIDE_PX:
        width, height = max(width, MIN_SIDE_PX), max(height, MIN_SIDE_PX)
    return Grid(target_wkt, (x0, size, 0.0, y1, 0.0, -size), width, height)


def _projected_bounds(area: Area, target_wkt: str) -> tuple[float, float, float, float]:
    """Bounds (m) of the area's densified outline in ``target_wkt``; fails clearly when it cannot be projected."""
    from osgeo import osr

    from ..io.raster import is_geographic, spatial_reference

    geometry = _densified(area.ogr_geometry(), area.crs_wkt)
    source_wkt = area.crs_wkt
    points = _vertices(geometry)
    if is_geographic(area.crs_wkt) and not _is_wgs84(area.crs_wkt):
        points, source_wkt = _unwrapped(_to_wgs84(points, area.crs_wkt)), _epsg_wkt(4326)
    transform = osr.CoordinateTransformation(spatial_reference(source_wkt), spatial_reference(target_wkt))
    projected = [transform.TransformPoint(x, y)[:2] for x, y in points]
    xs = [p[0] for p in projected if math.isfinite(p[0]) and math.isfinite(p[1])]
    ys = [p[1] for p in projected if math.isfinite(p[0]) and math.isfinite(p[1])]
    if len(xs) < len(projected) or not xs:
        raise GlacierFlowError("The area cannot be projected into the job's CRS (it lies outside that CRS's "
                               "domain): leave the target CRS empty or choose one that covers the area.")
    return min(xs), min(ys), max(xs), max(ys)


def default_pixel_size(source: Any, scenes: Sequence[Any] = ()) -> tuple[float, str]:
    """The job's pixel size (m) when the user gives none, and why: the source's declared ``pixel_size_m``,
    else the sensor named by the source or the first scene (:data:`SENSOR_PIXEL_SIZE_M`), else the ground
    resolution of the first local file, else 10 m (Sentinel-2 B8)."""
    declared = getattr(source, "pixel_size_m", None)
    if isinstance(declared, (int, float)) and declared > 0:
        return float(declared), f"the {getattr(source, 'name', 'source')} source's resolution"
    names = [str(getattr(source, attribute, "") or "") for attribute in ("sensor", "collection")]
    for scene in list(scenes)[:1]:
        names += [str(scene.properties.get("collection", "")), scene.id]
    for text in names:
        sensor = sensor_of(text) if text else None
        if sensor is not None:
            return SENSOR_PIXEL_SIZE_M[sensor], f"{sensor} resolution"
    for scene in list(scenes)[:1]:
        native = _native_ground_resolution(scene.href)
        if native is not None:
            return native, f"the resolution of {scene.id}"
    return SENSOR_PIXEL_SIZE_M["sentinel-2"], "no sensor recognised: Sentinel-2 B8 resolution"


def _native_ground_resolution(path: str) -> float | None:
    """The finer pixel side (m) of a local raster (degrees converted at its centre latitude), or None."""
    import os

    from ..io.raster import grid_of, is_geographic, open_raster

    if not path or not os.path.isfile(path):
        return None
    try:
        dataset = open_raster(path)
        grid = grid_of(dataset, path)
    except GlacierFlowError:
        return None
    finally:
        dataset = None
    across, along = grid.pixel_size
    if is_geographic(grid.crs_wkt):
        _, ymin, _, ymax = grid.bounds()
        across *= 111320.0 * max(math.cos(math.radians((ymin + ymax) / 2.0)), 0.01)
        along *= 111320.0
    return float(min(across, along))
