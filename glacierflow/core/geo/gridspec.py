"""The one grid of a job: CRS, pixel size and alignment, resolved from a :class:`GridSpec` by :func:`resolve_grid`.

Every raster of a job is read onto this grid once, at fetch time (DESIGN.md: "one grid per job"). Two
kinds of job call it:

* **An area** (annual, regional, download and NDSI jobs): the automatic CRS of the area's centroid
  (:func:`.crs.automatic_crs`: the UTM zone, or polar stereographic poleward of 72 degrees) or the CRS
  given, at the pixel size given (the sensor's by default, :func:`default_pixel_size`), its edges on
  whole multiples of the pixel size grown outward to cover the whole area, so two runs over nearly the
  same area share pixels and hit the same cache entries.
* **Images** (a pair of files): by default image A's own pixels over the intersection of every image's
  footprint, so A is read without resampling; an image A in degrees is replaced by the automatic CRS of
  its centre at its ground resolution; a CRS, pixel size or bounds given make a north-up grid snapped
  to whole multiples of the pixel size, like an area's.

So an area job and a pair job over the same place with the same CRS and pixel size share one lattice,
poleward of 72 degrees too. An area spanning several UTM zones uses its centroid's zone, with a warning
that gives the scale error at its farthest edge; a polygon in longitude/latitude whose vertices jump
between about +180 and -180 is read as crossing the antimeridian (the short way).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import GlacierFlowError
from ..feedback import Feedback
from .area import Area
from .crs import (
    POLAR_LATITUDE,
    automatic_crs,
    is_geographic,
    is_wgs84,
    same_crs,
    to_lonlat,
    transform_bounds,
    transformer,
    unwrap_longitudes,
    utm_zone,
    wgs84_wkt,
    wrap_longitude,
)
from .grid import Grid, Window

MAX_SIDE_PX = 20000  # px: larger grids do not fit a fetch in memory (20000^2 float32 = 1.6 GB)
MIN_SIDE_PX = 2  # px: the flow engines need at least two pixels each way
SNAP_TOLERANCE_PX = 0.001  # px: 1 cm at 10 m
METRES_PER_DEGREE = 111320.0  # along a meridian, and along the equator


@dataclass(frozen=True)
class GridSpec:
    """What the user asked of a job's grid; every field is optional.

    Attributes:
        crs_wkt: a projected CRS (metres); None: automatic (an area's UTM / polar CRS; image A's own CRS,
            or the automatic one when A is in degrees).
        pixel_size: m; None: the sensor's (area) or image A's ground resolution (images).
        bounds: (xmin, ymin, xmax, ymax) in ``crs_wkt`` (or image A's CRS) limiting an images grid.
    """

    crs_wkt: str | None = None
    pixel_size: float | None = None
    bounds: tuple[float, float, float, float] | None = None


def resolve_grid(spec: GridSpec | None = None, *, area: Area | None = None, images: Sequence[Grid] = (),
                 feedback: Feedback | None = None) -> Grid:
    """The job grid: over ``area`` (then ``spec.pixel_size`` is needed), or over the intersection of the
    ``images``' footprints (image A first); see the module docstring.

    Raises GlacierFlowError for a CRS in degrees, a non-positive pixel size, no overlap, or a grid over
    :data:`MAX_SIDE_PX` px a side.
    """
    spec = spec or GridSpec()
    if spec.crs_wkt and is_geographic(spec.crs_wkt):
        raise GlacierFlowError("The target CRS is in degrees: choose a projected CRS in metres (UTM, polar "
                               "stereographic), or leave it empty for the automatic one.")
    if spec.pixel_size is not None and not (math.isfinite(spec.pixel_size) and spec.pixel_size > 0):
        raise GlacierFlowError(f"The pixel size must be a positive number of metres (got {spec.pixel_size}).")
    if area is not None:
        if not spec.pixel_size:
            raise GlacierFlowError("An area's job grid needs a pixel size: give one (m) or let the source say.")
        return _area_grid(area, float(spec.pixel_size), spec.crs_wkt, feedback or Feedback())
    if not images:
        raise GlacierFlowError("A job grid needs an area or images: report this as a bug.")
    return _images_grid(list(images), spec)


def _area_grid(area: Area, pixel_size_m: float, crs_wkt: str | None, feedback: Feedback) -> Grid:
    """The north-up grid covering ``area`` with ``pixel_size_m`` m pixels on multiples of the pixel size, in
    ``crs_wkt`` or the automatic CRS; ``feedback`` receives the choice and the zone-crossing warning."""
    if not area.crs_wkt or not area.crs_wkt.strip():
        raise GlacierFlowError("The area has no coordinate reference system: set the layer's CRS (or give the "
                               "extent with its CRS, like 'xmin,xmax,ymin,ymax [EPSG:4326]') and run again.")
    points = _lonlat_vertices(area)
    lon, lat = _centroid_lonlat(area, points)
    if crs_wkt:
        target, label = crs_wkt, "the CRS given"
    else:
        target, label = automatic_crs(lon, lat)
        _warn_zone_crossing(points, lon, lat, label, feedback)
    grid = _aligned_grid(area, target, float(pixel_size_m))
    feedback.info(f"Job grid: {label}, {pixel_size_m:g} m pixels, {grid.width} x {grid.height} px.")
    return grid


def _images_grid(images: list[Grid], spec: GridSpec) -> Grid:
    """Image A's pixels (or a snapped north-up grid) over the intersection of the images' footprints."""
    first = images[0]
    base = first if not is_geographic(first.crs_wkt) else _automatic_grid_for(first)
    if spec.crs_wkt and not same_crs(spec.crs_wkt, base.crs_wkt):
        base = Grid(spec.crs_wkt, (0.0, base.pixel_size[0], 0.0, 0.0, 0.0, -base.pixel_size[1]), 0, 0)
    box = _intersection([transform_bounds(g.bounds(), g.crs_wkt, base.crs_wkt) for g in images]
                        + ([tuple(spec.bounds)] if spec.bounds else []))
    if box is None:
        raise GlacierFlowError(
            "The images do not overlap (inside the requested area, if one was given). Choose images of the "
            "same glacier and check that each has the right CRS.")
    if base.width and (spec.pixel_size is None or spec.pixel_size == base.pixel_size[0]):
        return clip_grid(base, box)  # keep image A's own pixels: no resampling of A
    return _snapped_grid(base.crs_wkt, float(spec.pixel_size or base.pixel_size[0]), box)


def _intersection(boxes: Sequence[Sequence[float]]) -> tuple[float, float, float, float] | None:
    xmin, ymin = max(b[0] for b in boxes), max(b[1] for b in boxes)
    xmax, ymax = min(b[2] for b in boxes), min(b[3] for b in boxes)
    return (xmin, ymin, xmax, ymax) if xmin < xmax and ymin < ymax else None


def _snapped_grid(crs_wkt: str, size: float, box: Sequence[float]) -> Grid:
    """A north-up grid of ``size`` m pixels inside ``box``, its edges on multiples of ``size``."""
    x0, y1 = math.ceil(box[0] / size - SNAP_TOLERANCE_PX) * size, math.floor(box[3] / size + SNAP_TOLERANCE_PX) * size
    width = int(math.floor((box[2] - x0) / size + SNAP_TOLERANCE_PX))
    height = int(math.floor((y1 - box[1]) / size + SNAP_TOLERANCE_PX))
    if width < MIN_SIDE_PX or height < MIN_SIDE_PX:
        raise GlacierFlowError("The common area is smaller than two pixels: choose a smaller pixel size.")
    _check_size(width, height, size, box)
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
    if c1 - c0 < MIN_SIDE_PX or r1 - r0 < MIN_SIDE_PX:
        raise GlacierFlowError("The images overlap by less than two pixels: choose overlapping images.")
    return grid.window_grid(Window(c0, r0, c1 - c0, r1 - r0))


def _automatic_grid_for(grid: Grid) -> Grid:
    """A grid in the automatic CRS (UTM, or polar stereographic) of a geographic ``grid``'s centre, at its
    ground resolution (m, whole metres)."""
    xmin, ymin, xmax, ymax = grid.bounds()
    lon, lat = to_lonlat([((xmin + xmax) / 2.0, (ymin + ymax) / 2.0)], grid.crs_wkt)[0]
    wkt, _ = automatic_crs(lon, lat)
    size = max(1.0, round(ground_resolution(grid)))
    return _snapped_grid(wkt, size, transform_bounds(grid.bounds(), grid.crs_wkt, wkt))


def ground_resolution(grid: Grid) -> float:
    """The finer pixel side of ``grid`` in metres (degrees converted at its centre latitude)."""
    across, along = grid.pixel_size
    if is_geographic(grid.crs_wkt):
        _, ymin, _, ymax = grid.bounds()
        across *= METRES_PER_DEGREE * max(math.cos(math.radians((ymin + ymax) / 2.0)), 0.01)
        along *= METRES_PER_DEGREE
    return float(min(across, along))


def _check_size(width: int, height: int, size: float, box: Sequence[float]) -> None:
    if max(width, height) > MAX_SIDE_PX:
        smallest = size * max(width, height) / MAX_SIDE_PX
        raise GlacierFlowError(
            f"The area is {width} x {height} px at {size:g} m ({(box[2] - box[0]) / 1000:.0f} x "
            f"{(box[3] - box[1]) / 1000:.0f} km): more than {MAX_SIDE_PX} px a side. Draw a smaller area around "
            f"the glacier, or choose a pixel size of at least {math.ceil(smallest):g} m.")


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


def _lonlat_vertices(area: Area) -> list[tuple[float, float]]:
    """The polygon's densified vertices in WGS 84 lon/lat, unwrapped so they never jump by 360 degrees."""
    geometry = _densified(area.ogr_geometry(), area.crs_wkt)
    raw = _vertices(geometry)
    lonlat = raw if is_wgs84(area.crs_wkt) else to_lonlat(raw, area.crs_wkt)
    lonlat = [(x, y) for x, y in lonlat if math.isfinite(x) and math.isfinite(y)]
    if not lonlat:
        raise GlacierFlowError("The area cannot be placed on the Earth: check its CRS.")
    return unwrap_longitudes(lonlat)


def _densified(geometry: Any, crs_wkt: str) -> Any:
    """A copy with extra vertices on long edges, so projected bounds follow curved edges."""
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
    geometry = area.ogr_geometry()
    if is_geographic(area.crs_wkt):
        xmin, xmax, _, _ = geometry.GetEnvelope()
        if xmax - xmin > 180.0:
            geometry = _shifted_east(geometry)
        centre = geometry.Centroid()
        lonlat = (centre.GetX(), centre.GetY())
        if not is_wgs84(area.crs_wkt):
            lonlat = to_lonlat([lonlat], area.crs_wkt)[0]
    else:
        centre = geometry.Centroid()
        lonlat = to_lonlat([(centre.GetX(), centre.GetY())], area.crs_wkt)[0]
    if not all(math.isfinite(v) for v in lonlat):
        lons, lats = [p[0] for p in points], [p[1] for p in points]
        lonlat = ((min(lons) + max(lons)) / 2.0, (min(lats) + max(lats)) / 2.0)
    return wrap_longitude(lonlat[0]), lonlat[1]


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
    offset = max(abs(wrap_longitude(min(lons) - meridian)), abs(wrap_longitude(max(lons) - meridian)))
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
    _check_size(width, height, size, (x0, y0, x1, y1))
    if min(width, height) < MIN_SIDE_PX:
        width, height = max(width, MIN_SIDE_PX), max(height, MIN_SIDE_PX)
    return Grid(target_wkt, (x0, size, 0.0, y1, 0.0, -size), width, height)


def _projected_bounds(area: Area, target_wkt: str) -> tuple[float, float, float, float]:
    """Bounds (m) of the area's densified outline in ``target_wkt``; fails clearly when it cannot be projected."""
    geometry = _densified(area.ogr_geometry(), area.crs_wkt)
    source_wkt = area.crs_wkt
    points = _vertices(geometry)
    if is_geographic(area.crs_wkt) and not is_wgs84(area.crs_wkt):
        points, source_wkt = unwrap_longitudes(to_lonlat(points, area.crs_wkt)), wgs84_wkt()
    transform = transformer(source_wkt, target_wkt)
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

    from ..io.raster import grid_of, open_raster

    if not path or not os.path.isfile(path):
        return None
    try:
        dataset = open_raster(path)
        grid = grid_of(dataset, path)
    except GlacierFlowError:
        return None
    finally:
        dataset = None
    return ground_resolution(grid)
