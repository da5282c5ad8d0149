"""Landsat and Sentinel-2 through STAC APIs (Planetary Computer, Earth Search) as an imagery source.

:meth:`StacSource.search` turns the polygon into an EPSG:4326 GeoJSON geometry (split at the
antimeridian), asks the API only for what its ``conformsTo`` says it supports, and checks dates, months,
cloud cover and platform again on the client (servers such as rustac ignore or reject ``query`` and
``filter``). With ``valid_fraction`` it reads each scene's mask asset at a coarse resolution over the
polygon and keeps the share of usable pixels. :meth:`StacSource.fetch` warps one asset through GDAL's
``/vsicurl/`` onto the job grid (only the needed blocks or overviews are read), converts DN to surface
reflectance and masks cloud, shadow and fill from ``qa_pixel`` or ``SCL`` (see :mod:`.stac_profiles`).
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import urllib.parse
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any, Optional

import numpy as np

from ..errors import GlacierFlowError
from ..geo.area import Area
from ..geo.crs import is_geographic, transformer, unwrap_longitudes, wgs84_wkt
from ..geo.grid import Grid
from .base import Scene, SceneCache, check_range, scene_matches
from .stac_client import Capabilities, HttpPolicy, SasSigner, Service, StacApi
from .stac_profiles import CLOUD_PROPERTY, PROFILES, StacProfile

TimeWindow = tuple[Optional[datetime], Optional[datetime]]  # None: open
MAX_TIME_WINDOWS = 24  # more month runs than this: one search over the whole range, months checked locally
USABLE_BAND = "_usable"  # cache entry of a scene's usable-pixel mask on a grid

class StacSource:
    """One collection of a STAC API (a :class:`StacProfile`) as an :class:`~.base.ImageSource`.

    Attributes:
        profile: the collection's profile, with any API URL, collection or token URL override applied.
        name: the profile's name (``planetary_computer_landsat``, ...), also ``Scene.source``.
        cache: where fetched arrays are kept.
        valid_fraction: compute :attr:`Scene.valid_fraction` at search time (reads each scene's mask).
        min_valid_fraction: drop scenes with less usable area than this share (0-1); implies
            ``valid_fraction``.
        valid_resolution: pixel size (m) of the coarse mask read for the valid fraction.
        rejected: why candidates of the last search were dropped (reason -> count), for the log.
    """

    def __init__(self, profile: str | StacProfile = "planetary_computer_landsat", api_url: str = "",
                 collection: str = "", signing_url: str = "", subscription_key: str = "",
                 headers: dict[str, str] | None = None, cache_dir: str | None = None, page_size: int = 100,
                 timeout: float = 30.0, retries: int = 4, backoff: float = 1.0, valid_fraction: bool = False,
                 min_valid_fraction: float | None = None, valid_resolution: float = 150.0,
                 prefer_get: bool = False) -> None:
        if isinstance(profile, str):
            if profile not in PROFILES:
                raise GlacierFlowError(f"Unknown STAC source '{profile}': use one of {', '.join(PROFILES)}.")
            profile = PROFILES[profile]
        self.profile = profile.configured(api_url, collection, signing_url)
        self.name = self.profile.name
        self.cache = SceneCache(cache_dir)
        self.page_size = max(1, int(page_size))
        self.policy = HttpPolicy(timeout=timeout, retries=max(0, int(retries)), backoff=backoff,
                                 headers=dict(headers or {}))
        self.min_valid_fraction = min_valid_fraction
        self.valid_fraction = valid_fraction or min_valid_fraction is not None
        self.valid_resolution = valid_resolution
        self.rejected: Counter = Counter()
        service = Service(self.profile.title, self.profile.auth_hint)
        self.api = StacApi(self.profile.api_url, self.policy, service, prefer_get=prefer_get)
        self.signer: SasSigner | None = None
        if self.profile.signing == "planetary_computer":
            token_service = Service(f"{self.profile.title} SAS token service", self.profile.auth_hint)
            self.signer = SasSigner(self.profile.signing_url, self.policy, token_service, subscription_key)

    # --- search ---------------------------------------------------------------------------------------

    def search(self, area: Area | None, start: datetime | None, end: datetime | None,
               months: set[int] | None = None, max_cloud: float | None = None) -> list[Scene]:
        """Scenes of the collection touching ``area`` in [start, end] (UTC, inclusive) in ``months`` with
        cloud cover at most ``max_cloud`` % and, when asked, at least ``min_valid_fraction`` usable area;
        sorted by time. Raises GlacierFlowError when none (the message says what was searched)."""
        check_range(start, end)
        if area is None:
            raise GlacierFlowError(f"{self.profile.title} needs a search area: draw a polygon or choose a layer.")
        geometry = query_geometry(area)
        footprint_test = _Intersects(geometry)
        capabilities = self.api.capabilities()
        items: dict[str, dict] = {}
        for window in time_windows(start, end, months):
            for item in self.api.search(self.search_body(capabilities, geometry, window, max_cloud)):
                items.setdefault(str(item.get("id")), item)
        self.rejected = Counter()
        kept = []
        for item in items.values():
            scene, reason = self._scene_of(item)
            if scene is not None:
                reason = scene_matches(scene, start, end, months, max_cloud)
            if reason is None and not footprint_test(item.get("geometry")):
                reason = "outside the area"  # a GET search asks by bounding box only
            if scene is not None and reason is None and self.valid_fraction:
                scene, reason = self._with_valid_fraction(scene, area)
            if scene is not None and reason is None:
                kept.append(scene)
            else:
                self.rejected[reason] += 1
        if not kept:
            raise GlacierFlowError(self._nothing_found(geometry, start, end, months, max_cloud, len(items)))
        return sorted(kept, key=lambda s: (s.time, s.id))

    def search_body(self, capabilities: Capabilities, geometry: dict, window: TimeWindow,
                    max_cloud: float | None) -> dict:
        """The item-search body: always collection, polygon (its bounding box for GET, where servers rarely
        take ``intersects``), dates and page size; cloud cover and property filters through ``query`` or
        CQL2 ``filter`` only when the API declares them."""
        body: dict[str, Any] = {"collections": [self.profile.collection], "limit": self.page_size}
        if capabilities.post:
            body["intersects"] = geometry
        else:
            body["bbox"] = list(query_bbox(geometry))
        if window != (None, None):
            body["datetime"] = f"{_rfc3339(window[0])}/{_rfc3339(window[1])}"
        conditions = self._conditions(max_cloud)
        if conditions and capabilities.query:
            body["query"] = {prop: ({"lte": value} if op == "<=" else {"in": list(value)})
                             for prop, op, value in conditions}
        elif conditions and capabilities.filter:
            clauses = [{"op": op, "args": [{"property": prop}, list(value) if op == "in" else value]}
                       for prop, op, value in conditions]
            body["filter"] = clauses[0] if len(clauses) == 1 else {"op": "and", "args": clauses}
            body["filter-lang"] = "cql2-json"
        if capabilities.sort:
            body["sortby"] = [{"field": "properties.datetime", "direction": "asc"}]
        if capabilities.fields:
            body["fields"] = {"include": self._needed_fields(), "exclude": []}
        return body

    def _conditions(self, max_cloud: float | None) -> list[tuple[str, str, Any]]:
        conditions: list[tuple[str, str, Any]] = []
        if max_cloud is not None:
            conditions.append((CLOUD_PROPERTY, "<=", float(max_cloud)))
        for prop, allowed in sorted(self.profile.property_filters.items()):
            conditions.append((prop, "in", tuple(allowed)))
        return conditions

    def _needed_fields(self) -> list[str]:
        names = {"id", "collection", "geometry", "bbox", "assets", "links", "properties.datetime",
                 f"properties.{CLOUD_PROPERTY}", "properties.platform", "properties.updated"}
        names.update(f"properties.{prop}" for prop in self.profile.property_filters)
        offset = self.profile.baseline_offset
        if offset is not None:
            names.add(f"properties.{offset.baseline_property}")
            if offset.applied_property:
                names.add(f"properties.{offset.applied_property}")
        return sorted(names)

    def _scene_of(self, item: dict) -> tuple[Scene | None, str | None]:
        """The item as a Scene, or None and why it cannot be used."""
        properties = item.get("properties") or {}
        when = _item_time(properties)
        if when is None:
            return None, "no acquisition time"
        for prop, allowed in self.profile.property_filters.items():
            if str(properties.get(prop, "")).lower() not in allowed:
                return None, f"{prop} not {'/'.join(allowed)}"
        assets = item.get("assets") or {}
        mask_href = _asset_href(assets, self.profile.mask.asset)
        bands = tuple(name for name, spec in self.profile.bands.items() if _asset_href(assets, spec.asset))
        if not mask_href or self.profile.default_band not in bands:
            return None, f"missing the {self.profile.bands[self.profile.default_band].asset} or " \
                         f"{self.profile.mask.asset} asset"
        kept = {f"asset:{name}": _asset_href(assets, self.profile.bands[name].asset) for name in bands}
        kept.update({"asset:mask": mask_href, "collection": str(item.get("collection") or self.profile.collection),
                     "platform": str(properties.get("platform", "")), "dn_offset": f"{self._dn_offset(properties):g}",
                     "api_url": self.profile.api_url})
        cloud = properties.get(CLOUD_PROPERTY)
        scene = Scene(
            id=str(item.get("id")), time=when, cloud_cover=float(cloud) if isinstance(cloud, (int, float)) else None,
            source=self.name, href=_self_href(item, self.profile), footprint=_bbox(item),
            footprint_crs_wkt=wgs84_wkt(), time_source="STAC item datetime",
            version=str(properties.get("updated") or _digest(kept)), properties=kept, bands=bands)
        return scene, None

    def _dn_offset(self, properties: dict) -> float:
        """DN to add before scaling: the baseline-04.00 shift unless the provider already removed it."""
        rule = self.profile.baseline_offset
        if rule is None:
            return 0.0
        try:
            baseline = float(str(properties.get(rule.baseline_property, "0")).strip())
        except ValueError:
            return 0.0
        applied = rule.applied_property and properties.get(rule.applied_property) in (True, "true", "True")
        return rule.dn_offset if baseline >= rule.first_baseline and not applied else 0.0

    def _nothing_found(self, geometry: dict, start: datetime | None, end: datetime | None,
                       months: set[int] | None, max_cloud: float | None, returned: int) -> str:
        west, south, east, north = geometry_bounds(geometry)
        searched = (f"collection '{self.profile.collection}' of {self.profile.title} ({self.profile.api_url}) over "
                    f"lon {west:.3f} to {east:.3f}, lat {south:.3f} to {north:.3f}, "
                    f"{_day(start, 'any start')} to {_day(end, 'any end')}")
        if months:
            searched += f", months {','.join(str(m) for m in sorted(months))}"
        if max_cloud is not None:
            searched += f", cloud cover <= {max_cloud:g} %"
        if self.min_valid_fraction is not None:
            searched += f", valid fraction >= {self.min_valid_fraction:g}"
        dropped = ", ".join(f"{count} {reason}" for reason, count in sorted(self.rejected.items()))
        return (f"No scene found in {searched}: the service returned {returned} item(s)"
                f"{'; dropped: ' + dropped if dropped else ''}. Widen the dates or months, raise the maximum "
                "cloud cover or lower the minimum valid fraction, or check that the area (and its CRS) lies "
                "where the collection has images.")

    # --- valid fraction -------------------------------------------------------------------------------

    def _with_valid_fraction(self, scene: Scene, area: Area) -> tuple[Scene, str | None]:
        fraction = self.cache.valid_fraction(scene, area, self.valid_resolution,
                                             lambda: self.valid_fraction_of(scene, area))
        scene = replace(scene, valid_fraction=fraction)
        if self.min_valid_fraction is not None and fraction < self.min_valid_fraction:
            return scene, "too little valid area"
        return scene, None

    def valid_fraction_of(self, scene: Scene, area: Area) -> float:
        """Share (0-1) of ``area`` with usable pixels (not fill, cloud or shadow) in ``scene``, from its mask
        read at :attr:`valid_resolution` m over the polygon's bounds only."""
        from osgeo import ogr

        from ..geo.crs import spatial_reference

        href = self._signed(scene, "mask")
        with gdal_http_options(self.policy):
            dataset = _open_remote(href, self.profile)
            try:
                mask_wkt = dataset.GetProjection()
                polygon = area.ogr_geometry().Clone()
                polygon.AssignSpatialReference(spatial_reference(area.crs_wkt))
                polygon.TransformTo(spatial_reference(mask_wkt))
                west, east, south, north = polygon.GetEnvelope()
                grid = coarse_grid(mask_wkt, (west, south, east, north), self.valid_resolution)
                values = _warp(dataset, grid, "near", None, self.profile.mask.fill, href)
            finally:
                _forget_remote(href)
                dataset = None
        usable = self.usable(values)
        inside = _rasterize(polygon, grid, ogr)
        if not inside.any():
            inside = _rasterize(polygon, grid, ogr, all_touched=True)
        return float(usable[inside].mean()) if inside.any() else 0.0

    def usable(self, mask_values: np.ndarray) -> np.ndarray:
        """True where the mask asset's values mark a usable pixel (see :mod:`.stac_profiles`)."""
        rule = self.profile.mask
        values = np.nan_to_num(mask_values, nan=float(rule.fill)).astype(np.int64)
        if rule.kind == "bits":
            return (values & rule.unusable_value_mask()) == 0
        return ~np.isin(values, np.asarray(rule.values, dtype=np.int64))

    # --- fetch ----------------------------------------------------------------------------------------

    def fetch(self, scene: Scene, grid: Grid, band: str = "") -> np.ndarray:
        """The scene's ``band`` (a name in ``scene.bands``; "" = the profile's default, NIR) on ``grid``:
        surface reflectance (0-1) as float32, NaN where fill, cloud or shadow; cached on disk.

        Only the asset blocks (or the overview) covering the grid are read, bilinear for reflectance and
        nearest for the mask. An interrupted read raises GlacierFlowError and leaves no cache entry."""
        name = band or self.profile.default_band
        if name not in self.profile.bands or name not in scene.bands:
            offered = ", ".join(scene.bands) or "none"
            raise GlacierFlowError(f"Scene '{scene.id}' of {self.profile.title} has no band '{name}': choose one of "
                                   f"{offered}.")

        def read() -> np.ndarray:
            reflectance = self._reflectance(scene, name, grid)
            usable = self.cache.fetch(scene, grid, lambda: self._usable_on(scene, grid), band=USABLE_BAND)
            reflectance[usable < 0.5] = np.nan
            return reflectance

        return self.cache.fetch(scene, grid, read, band=name)

    def _reflectance(self, scene: Scene, name: str, grid: Grid) -> np.ndarray:
        spec = self.profile.bands[name]
        href = self._signed(scene, name)
        with gdal_http_options(self.policy):
            dataset = _open_remote(href, self.profile)
            try:
                dn = _warp(dataset, grid, "bilinear", spec.nodata, float("nan"), href)
            finally:
                _forget_remote(href)
                dataset = None
        offset = float(scene.properties.get("dn_offset", "0") or 0.0)
        return ((dn + np.float32(offset)) * np.float32(spec.scale) + np.float32(spec.offset)).astype(np.float32)

    def _usable_on(self, scene: Scene, grid: Grid) -> np.ndarray:
        href = self._signed(scene, "mask")
        with gdal_http_options(self.policy):
            dataset = _open_remote(href, self.profile)
            try:
                values = _warp(dataset, grid, "near", None, self.profile.mask.fill, href)
            finally:
                _forget_remote(href)
                dataset = None
        return self.usable(values).astype(np.float32)

    def _signed(self, scene: Scene, name: str) -> str:
        href = scene.properties.get(f"asset:{name}", "")
        if not href:
            raise GlacierFlowError(f"Scene '{scene.id}' carries no '{name}' asset: search again.")
        check_remote_asset(href, scene.id, name)
        if self.signer is None:
            return href
        return self.signer.sign(href, scene.properties.get("collection") or self.profile.collection)


# --- the query polygon --------------------------------------------------------------------------------

def query_geometry(area: Area) -> dict:
    """The search polygon as a GeoJSON geometry in EPSG:4326 (lon, lat), split into a MultiPolygon where it
    crosses the antimeridian (as RFC 7946 asks), so the API finds scenes on both sides."""
    from osgeo import ogr

    polygon = area.ogr_geometry().Clone()
    if not is_geographic(area.crs_wkt):
        envelope = polygon.GetEnvelope()
        polygon.Segmentize(max(envelope[1] - envelope[0], envelope[3] - envelope[2]) / 20.0 or 1.0)
    transform = transformer(area.crs_wkt, wgs84_wkt())
    if polygon.Transform(transform) != 0:
        raise GlacierFlowError("The search area cannot be expressed in longitude and latitude: check its CRS.")
    polygons = polygon_coordinates(json.loads(polygon.ExportToJson()))
    parts: list[list] = []
    for rings in polygons:
        parts.extend(_split_at_antimeridian([[list(p) for p in unwrap_longitudes(ring, rings[0][0][0])]
                                            for ring in rings], ogr))
    if not parts:
        raise GlacierFlowError("The search area is empty after conversion to longitude and latitude: check its CRS.")
    if len(parts) == 1:
        return {"type": "Polygon", "coordinates": parts[0]}
    return {"type": "MultiPolygon", "coordinates": parts}


def polygon_coordinates(geojson: dict) -> list[list]:
    """The coordinate lists of every polygon in a GeoJSON Polygon, MultiPolygon or GeometryCollection."""
    kind = geojson.get("type")
    if kind == "Polygon":
        return [geojson["coordinates"]]
    if kind == "MultiPolygon":
        return list(geojson["coordinates"])
    if kind == "GeometryCollection":
        return [rings for part in geojson.get("geometries", []) for rings in polygon_coordinates(part)]
    return []


def _split_at_antimeridian(rings: list[list[list[float]]], ogr: Any) -> list[list]:
    """Polygon parts (GeoJSON coordinate lists) inside -180..180 longitude, shifting pieces beyond it."""
    lons = [p[0] for ring in rings for p in ring]
    shift = 360.0 * math.floor((min(lons) + 180.0) / 360.0)
    rings = [[[lon - shift, lat] for lon, lat in ring] for ring in rings]
    if max(p[0] for ring in rings for p in ring) <= 180.0:
        return [_rounded(rings)]
    polygon = ogr.CreateGeometryFromJson(json.dumps({"type": "Polygon", "coordinates": rings}))
    parts = []
    for west, offset in ((-180.0, 0.0), (180.0, -360.0)):
        box = ogr.CreateGeometryFromJson(json.dumps({"type": "Polygon", "coordinates": [
            [[west, -90.0], [west + 360.0, -90.0], [west + 360.0, 90.0], [west, 90.0], [west, -90.0]]]}))
        piece = polygon.Intersection(box)
        if piece is None or piece.IsEmpty() or piece.GetArea() <= 0.0:
            continue
        for rings_of_piece in polygon_coordinates(json.loads(piece.ExportToJson())):
            parts.append(_rounded([[[lon + offset, lat] for lon, lat, *_ in ring] for ring in rings_of_piece]))
    return parts


def _rounded(rings: list[list[list[float]]]) -> list:
    return [[[round(lon, 9), round(lat, 9)] for lon, lat in ring] for ring in rings]


def query_bbox(geometry: dict) -> tuple[float, float, float, float]:
    """The STAC bbox (west, south, east, north) of a query geometry; west > east when split at the antimeridian."""
    west, south, east, north = geometry_bounds(geometry)
    parts = [geometry_bounds({"type": "Polygon", "coordinates": rings}) for rings in polygon_coordinates(geometry)]
    eastern = [part for part in parts if part[2] >= 180.0]
    western = [part for part in parts if part[0] <= -180.0]
    if eastern and western and len(parts) > 1:
        return (min(part[0] for part in eastern), south, max(part[2] for part in western), north)
    return (west, south, east, north)


class _Intersects:
    """Whether an item's GeoJSON footprint touches the query geometry (True when the item has none)."""

    def __init__(self, geometry: dict) -> None:
        from osgeo import ogr

        self.ogr = ogr
        self.query = ogr.CreateGeometryFromJson(json.dumps(geometry))

    def __call__(self, footprint: Any) -> bool:
        if not isinstance(footprint, dict):
            return True
        item = self.ogr.CreateGeometryFromJson(json.dumps(footprint))
        return item is None or item.IsEmpty() or bool(self.query.Intersects(item))


def geometry_bounds(geometry: dict) -> tuple[float, float, float, float]:
    """(west, south, east, north) in degrees of a GeoJSON Polygon or MultiPolygon."""
    points = [p for rings in polygon_coordinates(geometry) for ring in rings for p in ring]
    return (min(p[0] for p in points), min(p[1] for p in points),
            max(p[0] for p in points), max(p[1] for p in points))


# --- dates ----------------------------------------------------------------------------------------------

def time_windows(start: datetime | None, end: datetime | None, months: set[int] | None) -> list[TimeWindow]:
    """Date intervals covering only the chosen ``months`` between ``start`` and ``end`` (UTC), one per run
    of consecutive months, so the server sends no winter scenes; one interval when that would be many."""
    if not months or start is None or end is None or set(months) >= set(range(1, 13)):
        return [(start, end)]
    windows: list[TimeWindow] = []
    year, month = start.year, start.month
    run_start: datetime | None = None
    while (year, month) <= (end.year, end.month):
        first = datetime(year, month, 1, tzinfo=timezone.utc)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        following = datetime(year, month, 1, tzinfo=timezone.utc)
        if first.month in months:
            run_start = run_start or first
            if following.month not in months or (year, month) > (end.year, end.month):
                windows.append((max(start, run_start), min(end, following - timedelta(microseconds=1))))
                run_start = None
    if len(windows) > MAX_TIME_WINDOWS:
        return [(start, end)]
    return windows or [(start, end)]


def _rfc3339(value: datetime | None) -> str:
    if value is None:
        return ".."
    value = value.astimezone(timezone.utc)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    return text + (f".{value.microsecond:06d}Z" if value.microsecond else "Z")


def _item_time(properties: dict) -> datetime | None:
    """An item's ``datetime`` (or ``start_datetime``) as aware UTC; fractions of any length are accepted."""
    from ..io.timestamps import parse_datetime

    text = properties.get("datetime") or properties.get("start_datetime")
    if not text:
        return None
    text = re.sub(r"(\.\d{1,6})\d*", r"\1", str(text))
    text = re.sub(r"\.(\d{1,5})(?=\D|$)", lambda m: "." + m.group(1).ljust(6, "0"), text)
    try:
        return parse_datetime(text)
    except GlacierFlowError:
        return None


def _day(value: datetime | None, missing: str) -> str:
    return f"{value:%Y-%m-%d}" if value is not None else missing


# --- items ----------------------------------------------------------------------------------------------

def _asset_href(assets: dict, key: str) -> str:
    asset = assets.get(key)
    return str(asset.get("href", "")) if isinstance(asset, dict) else ""


def _self_href(item: dict, profile: StacProfile) -> str:
    for link in item.get("links") or []:
        if isinstance(link, dict) and link.get("rel") == "self" and link.get("href"):
            return str(link["href"])
    collection = item.get("collection") or profile.collection
    return f"{profile.api_url}/collections/{collection}/items/{item.get('id')}"


def _bbox(item: dict) -> tuple[float, float, float, float] | None:
    box = item.get("bbox")
    if isinstance(box, list) and len(box) in (4, 6):
        west, south, east, north = (box[0], box[1], box[3], box[4]) if len(box) == 6 else box
        if west <= east:  # a bbox across the antimeridian (west > east) is no rectangle here
            return (float(west), float(south), float(east), float(north))
    return None


def _digest(values: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode("utf-8")).hexdigest()[:16]


# --- GDAL reading ----------------------------------------------------------------------------------------

@contextmanager
def gdal_http_options(policy: HttpPolicy) -> Iterator[None]:
    """GDAL's ``/vsicurl/`` settings for this thread while reading, restored afterwards.

    No directory listing on open, only GeoTIFF extensions probed, the policy's timeout, retries
    (GDAL retries 429, 502, 503 and 504 itself) and delay."""
    from osgeo import gdal

    options = {
        "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
        "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff,.TIF,.TIFF",
        "GDAL_HTTP_TIMEOUT": str(max(1, int(math.ceil(policy.timeout)))),
        "GDAL_HTTP_CONNECTTIMEOUT": str(max(1, int(math.ceil(min(policy.timeout, 30.0))))),
        "GDAL_HTTP_MAX_RETRY": str(policy.retries),
        "GDAL_HTTP_RETRY_DELAY": f"{max(policy.backoff, 0.01):g}",
    }
    previous = {key: gdal.GetThreadLocalConfigOption(key, None) for key in options}
    for key, value in options.items():
        gdal.SetThreadLocalConfigOption(key, value)
    try:
        yield
    finally:
        for key, value in previous.items():
            gdal.SetThreadLocalConfigOption(key, value)


class _GdalErrors:
    """Collects GDAL's messages during a block, whatever ``gdal.UseExceptions`` says: failures (which fail the
    read) and warnings (where GDAL puts HTTP status codes)."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.warnings: list[str] = []

    def __call__(self, level: int, number: int, message: str) -> None:
        from osgeo import gdal

        if level >= gdal.CE_Failure:
            self.messages.append(_without_queries(str(message)))
        elif level == gdal.CE_Warning:
            self.warnings.append(_without_queries(str(message)))

    @contextmanager
    def catching(self) -> Iterator[_GdalErrors]:
        from osgeo import gdal

        gdal.PushErrorHandler(self)
        try:
            yield self
        finally:
            gdal.PopErrorHandler()


REMOTE_ASSET_SCHEMES = ("http", "https", "s3")  # what a remote catalogue's assets may be read from


def check_remote_asset(href: str, scene_id: str, asset: str) -> None:
    """Refuse an asset of a remote catalogue that is not on the network (file://, a local path, /vsi...): a
    catalogue must not make GlacierFlow read, and copy into a product, a file of this computer."""
    scheme = urllib.parse.urlsplit(href).scheme.lower()
    if scheme not in REMOTE_ASSET_SCHEMES:
        raise GlacierFlowError(
            f"Scene '{scene_id}': its '{asset}' asset is at a '{scheme or 'local path'}' address, not on the network "
            f"({', '.join(REMOTE_ASSET_SCHEMES)}): GlacierFlow does not read local files for a remote catalogue. "
            "The catalogue is misconfigured; use another service URL.")


def vsi_path(href: str) -> str:
    """The GDAL path of an asset: ``/vsicurl/`` for http(s), ``/vsis3/`` for s3://, else the path itself."""
    if href.lower().startswith(("http://", "https://")):
        return "/vsicurl/" + href
    if href.lower().startswith("s3://"):
        return "/vsis3/" + href[5:]
    return href[7:] if href.lower().startswith("file://") else href


def _open_remote(href: str, profile: StacProfile) -> Any:
    from osgeo import gdal

    errors = _GdalErrors()
    with errors.catching():
        try:
            dataset = gdal.OpenEx(vsi_path(href), gdal.OF_RASTER | gdal.OF_READONLY)
        except RuntimeError as error:
            errors.messages.append(str(error))
            dataset = None
    if dataset is None:
        raise GlacierFlowError(_read_failure(href, profile, errors.messages + errors.warnings))
    return dataset


def _warp(dataset: Any, grid: Grid, resampling: str, src_nodata: float | None, fill: float,
          href: str) -> np.ndarray:
    """Band 1 of ``dataset`` warped onto ``grid`` as float32 (``fill`` outside it); fails on any read error."""
    from osgeo import gdal

    target = gdal.GetDriverByName("MEM").Create("", grid.width, grid.height, 1, gdal.GDT_Float32)
    target.SetGeoTransform(grid.transform)
    target.SetProjection(grid.crs_wkt)
    band = target.GetRasterBand(1)
    band.Fill(fill)
    if math.isnan(fill):
        band.SetNoDataValue(fill)
    options = gdal.WarpOptions(resampleAlg=resampling, srcNodata=src_nodata,
                               dstNodata=fill if math.isnan(fill) or src_nodata is not None else None,
                               warpOptions=["INIT_DEST=NO_DATA" if math.isnan(fill) else f"INIT_DEST={fill:g}"])
    errors = _GdalErrors()
    with errors.catching():
        try:
            result = gdal.Warp(target, dataset, options=options)
        except RuntimeError as error:
            errors.messages.append(str(error))
            result = None
    if result is None or errors.messages:
        raise GlacierFlowError(f"Reading {_without_query(href)} failed ({'; '.join(errors.messages[-2:]) or 'unknown'}"
                               "): the download was interrupted or the file is damaged. Nothing was cached; run "
                               "again (check the connection if it keeps failing).")
    return band.ReadAsArray().astype(np.float32)


def _forget_remote(href: str) -> None:
    """Drop GDAL's cached blocks and headers of the asset (memory, and no stale answer on a rerun)."""
    from osgeo import gdal

    if href.lower().startswith(("http://", "https://")):
        gdal.VSICurlPartialClearCache(vsi_path(href))


def _read_failure(href: str, profile: StacProfile, messages: list[str]) -> str:
    text = "; ".join(messages[-2:]) or "no answer"
    shown = _without_query(href)
    status = re.search(r"HTTP (?:response )?code(?: on \S+)?:\s*(\d{3})\b", text)
    code = int(status.group(1)) if status else 0
    if code in (401, 403):
        return f"{profile.title} refused to give {shown} (HTTP {code}). {profile.auth_hint}"
    if code == 404:
        return f"{shown} does not exist (HTTP 404): the item may have moved; search again."
    return (f"Cannot read {shown} ({text}). Check the internet connection (and any proxy), or try again later: the "
            "storage service may be busy.")


def _without_query(href: str) -> str:
    return href.split("?", 1)[0]  # never print a SAS token


def _without_queries(text: str) -> str:
    """``text`` with the query string of every URL removed (GDAL's messages name signed URLs)."""
    return re.sub(r"(https?://[^\s?]+)\?[^\s:]*", r"\1", text)


def coarse_grid(crs_wkt: str, bounds: Sequence[float], size: float) -> Grid:
    """A north-up grid of ``size`` m pixels covering ``bounds`` (xmin, ymin, xmax, ymax, in ``crs_wkt``)."""
    xmin, ymin, xmax, ymax = bounds
    x0, y1 = math.floor(xmin / size) * size, math.ceil(ymax / size) * size
    width = max(1, int(math.ceil((xmax - x0) / size)))
    height = max(1, int(math.ceil((y1 - ymin) / size)))
    return Grid(crs_wkt, (x0, size, 0.0, y1, 0.0, -size), width, height)


def _rasterize(polygon: Any, grid: Grid, ogr: Any, all_touched: bool = False) -> np.ndarray:
    """True for the grid's pixels inside ``polygon`` (in the grid's CRS)."""
    from osgeo import gdal

    from ..geo.crs import spatial_reference

    target = gdal.GetDriverByName("MEM").Create("", grid.width, grid.height, 1, gdal.GDT_Byte)
    target.SetGeoTransform(grid.transform)
    target.SetProjection(grid.crs_wkt)
    source = ogr.GetDriverByName("Memory").CreateDataSource("")
    layer = source.CreateLayer("area", spatial_reference(grid.crs_wkt), ogr.wkbUnknown)
    feature = ogr.Feature(layer.GetLayerDefn())
    feature.SetGeometry(polygon)
    layer.CreateFeature(feature)
    options = ["ALL_TOUCHED=TRUE"] if all_touched else []
    gdal.RasterizeLayer(target, [1], layer, burn_values=[1], options=options)
    return target.GetRasterBand(1).ReadAsArray().astype(bool)
