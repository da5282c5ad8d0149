"""Sentinel-2 from Google Earth Engine: scenes listed with ``listImages``, pixels read with ``getPixels``.

Only plain REST calls are used, no server-side expressions: the collection is
listed with ``ee.data.listImages`` (date window, bounding box and cloud filter
evaluated by the service, paged), months and cloud cover are checked again
here, and the usable share of the polygon is measured from a coarse
``ee.data.getPixels`` of the scene's mask band (SCL for surface reflectance,
QA60 and B8 for top of atmosphere). ``fetch`` reads the band with its mask on
the job grid, in tiles under the service's request limits, as reflectance
(DN / 10000: the harmonized collections need no offset) with clouds and no
data as NaN.

Authentication (:func:`resolve_login`) is kept apart from data access: a
service-account key file, else the user's stored ``earthengine authenticate``
credentials, else Google application-default credentials, always with a cloud
project registered for Earth Engine.

The ``earthengine-api`` package is imported only inside functions, so the
plugin loads without it and the other sources work.
"""
from __future__ import annotations

import functools
import json
import math
import os
import re
import socket
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import numpy as np

from ..errors import GlacierFlowError
from ..geo.area import Area
from ..geo.crs import wgs84_wkt
from ..geo.grid import Grid, Window
from .base import Scene, SceneCache, check_range, scene_matches

SOURCE_NAME = "earth_engine"
DEFAULT_COLLECTION = "COPERNICUS/S2_SR_HARMONIZED"
DEFAULT_URL = "https://earthengine.googleapis.com"
INSTALL_HINT = ("Earth Engine needs the earthengine-api package in QGIS's Python: run "
                "`python -m pip install earthengine-api==1.7.50` (Python 3.11 and later; on Python 3.9 "
                "`earthengine-api==1.6.15`), on Windows in the OSGeo4W Shell, then restart QGIS.")
SCOPES = ("https://www.googleapis.com/auth/earthengine", "https://www.googleapis.com/auth/cloud-platform")
MAX_REQUEST_BYTES = 48 * 1024 * 1024  # getPixels: uncompressed px x bands x bytes per px (documented limit)
MAX_SIDE_PX = 32768  # getPixels: at most 32K px along either side (documented limit)
REFLECTANCE_SCALE = 1.0e-4  # Sentinel-2 DN -> reflectance; harmonized collections carry no offset
COMMON_BANDS = {"nir": "B8", "green": "B3", "swir1": "B11"}
BAND_BYTES = {"B3": 2, "B8": 2, "B11": 2, "SCL": 1, "QA60": 2}
SCL_USABLE = (2, 4, 5, 6, 7, 11)  # dark area, vegetation, bare, water, unclassified, snow/ice (glaciers)
QA60_CLOUD_BITS = (1 << 10) | (1 << 11)  # opaque clouds, cirrus
RETRYABLE_STATUS = (429, 500, 502, 503, 504)
EARLIEST = datetime(2015, 6, 1, tzinfo=timezone.utc)  # Sentinel-2A's first images


@dataclass(frozen=True)
class Collection:
    """What differs between the Sentinel-2 collections.

    Attributes:
        collection_id: Earth Engine id.
        mask_bands: bands read beside the data band to mask clouds and no data.
        level: ``L2A`` (surface reflectance) or ``L1C`` (top of atmosphere).
    """

    collection_id: str
    mask_bands: tuple[str, ...]
    level: str

    def usable(self, pixels: np.ndarray, data_band: str = "") -> np.ndarray:
        """True where a pixel is neither cloud nor no data (masked pixels arrive as 0)."""
        if self.level == "L2A":
            usable = np.isin(pixels["SCL"], SCL_USABLE)
        else:
            usable = (pixels["QA60"].astype(np.uint32) & QA60_CLOUD_BITS) == 0
        if data_band:
            usable &= pixels[data_band] > 0
        return usable

    @property
    def fraction_bands(self) -> tuple[str, ...]:
        """The bands the valid fraction is measured from (L1C needs B8 to see fill)."""
        return self.mask_bands if self.level == "L2A" else self.mask_bands + ("B8",)


COLLECTIONS = {
    "COPERNICUS/S2_SR_HARMONIZED": Collection("COPERNICUS/S2_SR_HARMONIZED", ("SCL",), "L2A"),
    "COPERNICUS/S2_HARMONIZED": Collection("COPERNICUS/S2_HARMONIZED", ("QA60",), "L1C"),
}


# --- authentication -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Login:
    """Credentials and the cloud project requests are billed to.

    Attributes:
        credentials: google-auth credentials.
        project: Google Cloud project id registered for Earth Engine.
        method: how they were found, for messages (``service-account key``, ``stored credentials``, ...).
    """

    credentials: Any
    project: str
    method: str


def _how_to_authenticate() -> str:
    return ("Authenticate Earth Engine one of three ways: (1) give a service-account JSON key file (the account "
            "needs the Earth Engine Resource Viewer role in the project); (2) run `earthengine authenticate` once "
            "(or ee.Authenticate() in the QGIS Python console), which stores credentials in "
            "~/.config/earthengine/credentials; (3) run `gcloud auth application-default login` with the Earth "
            "Engine scope. In every case give the id of a Google Cloud project registered for Earth Engine "
            "(https://code.earthengine.google.com/register).")


def resolve_login(project: str | None = None, service_account_key: str | None = None,
                  credentials: Any = None) -> Login:
    """The credentials to use, in this order: ``credentials`` given, the service-account key file, the user's
    stored ``earthengine authenticate`` credentials, application-default credentials. Fails clearly without
    credentials or without a project (a key's own project and a stored project count)."""
    if credentials is not None:
        found, method, own_project = credentials, "given credentials", None
    elif service_account_key:
        found, own_project = _service_account(service_account_key)
        method = f"service-account key '{service_account_key}'"
    else:
        stored = _stored_user_credentials() or _application_default_credentials()
        if stored is None:
            raise GlacierFlowError("No Earth Engine credentials found. " + _how_to_authenticate())
        found, own_project, method = stored
    chosen = (project or "").strip() or own_project
    if not chosen:
        raise GlacierFlowError(f"Earth Engine needs a Google Cloud project id (credentials from {method} name "
                               "none): give the id of a project registered for Earth Engine "
                               "(https://code.earthengine.google.com/register), or run "
                               "`earthengine set_project PROJECT_ID`.")
    return Login(found, chosen, method)


def _service_account(path: str) -> tuple[Any, str | None]:
    _import_ee()
    from google.oauth2 import service_account

    if not os.path.isfile(path):
        raise GlacierFlowError(f"Service-account key file '{path}' does not exist: choose the JSON key downloaded "
                               "from the Google Cloud console (IAM > Service accounts > Keys).")
    try:
        with open(path, encoding="utf-8") as handle:
            info = json.load(handle)
        credentials = service_account.Credentials.from_service_account_info(info, scopes=list(SCOPES))
    except (ValueError, KeyError, TypeError) as problem:
        raise GlacierFlowError(f"'{path}' is not a service-account JSON key ({problem}): download a JSON key for "
                               "the service account from the Google Cloud console.") from None
    return credentials, info.get("project_id")


def _stored_user_credentials() -> tuple[Any, str | None, str] | None:
    """What ``earthengine authenticate`` stored (refresh token, project), or None."""
    ee = _import_ee()
    from google.oauth2 import credentials as user_credentials

    path = ee.oauth.get_credentials_path()
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            stored = json.load(handle)
    except (OSError, ValueError):
        raise GlacierFlowError(f"The stored Earth Engine credentials '{path}' are unreadable: run "
                               "`earthengine authenticate` again.") from None
    if not stored.get("refresh_token"):
        return None
    found = user_credentials.Credentials(
        None, refresh_token=stored["refresh_token"], token_uri=ee.oauth.TOKEN_URI,
        client_id=stored.get("client_id", ee.oauth.CLIENT_ID),
        client_secret=stored.get("client_secret", ee.oauth.CLIENT_SECRET), scopes=stored.get("scopes", list(SCOPES)))
    return found, stored.get("project"), f"stored credentials '{path}'"


def _application_default_credentials() -> tuple[Any, str | None, str] | None:
    """gcloud's application-default credentials file, or None (the metadata server is not asked: no hangs)."""
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    path = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS") or os.path.join(
        os.path.expanduser("~"), ".config", "gcloud", "application_default_credentials.json")
    if not os.path.isfile(path):
        return None
    try:
        found, project = google.auth.load_credentials_from_file(path, scopes=list(SCOPES))
    except DefaultCredentialsError as problem:
        raise GlacierFlowError(f"Application-default credentials '{path}' are unusable ({problem}): run "
                               "`gcloud auth application-default login` again.") from None
    return found, getattr(found, "quota_project_id", None) or project, f"application-default credentials '{path}'"


def _import_ee() -> Any:
    try:
        import ee
    except ImportError:
        raise GlacierFlowError(INSTALL_HINT) from None
    return ee


# --- the source -----------------------------------------------------------------------------------------------
_CONNECTED: dict[str, Any] = {"key": None}  # ee keeps one global session: which source set it up


class EarthEngineSource:
    """Sentinel-2 (B8 by default) from an Earth Engine collection.

    Attributes:
        collection: the collection's profile (``COPERNICUS/S2_SR_HARMONIZED`` or ``COPERNICUS/S2_HARMONIZED``).
        project: Google Cloud project id (None: the credentials' own).
        url: the service's base URL.
        cache: where fetched arrays are kept.
        min_valid_fraction: scenes with a smaller usable share (0-1) of the polygon are dropped.
        valid_scale_m: pixel size (m) of the coarse mask read to measure that share.
        tile_size: largest getPixels request side, px (smaller when the band bytes need it).
        retries: further attempts after a 429, a 5xx, a timeout or a lost connection.
        backoff_s: wait before the first retry (s), doubled each time.
        timeout_s: wait for one answer (s).
        page_size: scenes asked per listing page.
        rejected: why scenes the last search found were dropped (reason -> count), for the log.
    """

    name = SOURCE_NAME

    def __init__(self, collection: str = DEFAULT_COLLECTION, project: str | None = None,
                 service_account_key: str | None = None, url: str | None = None,
                 cache_dir: str | None = None, min_valid_fraction: float = 0.5, valid_scale_m: float = 200.0,
                 tile_size: int = 2048, retries: int = 4, backoff_s: float = 2.0, timeout_s: float = 120.0,
                 page_size: int = 500, credentials: Any = None) -> None:
        if collection not in COLLECTIONS:
            raise GlacierFlowError(f"Earth Engine collection '{collection}' is not supported: use "
                                   f"{' or '.join(COLLECTIONS)} (Sentinel-2 surface or top-of-atmosphere "
                                   "reflectance, harmonized so no offset is needed).")
        if not 0.0 <= min_valid_fraction <= 1.0:
            raise GlacierFlowError(f"Minimum valid fraction {min_valid_fraction} must lie between 0 and 1.")
        self.collection = COLLECTIONS[collection]
        self.project = project
        self.service_account_key = service_account_key
        self.url = (url or DEFAULT_URL).rstrip("/")
        self.cache = SceneCache(cache_dir)
        self.min_valid_fraction = min_valid_fraction
        self.valid_scale_m = valid_scale_m
        self.tile_size = max(1, int(tile_size))
        self.retries = max(0, int(retries))
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.page_size = page_size
        self.rejected: Counter = Counter()
        self._credentials = credentials
        self._login: Login | None = None
        self._session_id = uuid.uuid4().hex  # which source last set up ee's global session

    # -- search --
    def search(self, area: Area | None, start: datetime | None, end: datetime | None,
               months: set[int] | None = None, max_cloud: float | None = None) -> list[Scene]:
        """Scenes over ``area`` in [start, end] (UTC) in ``months`` with at most ``max_cloud`` % cloud and at
        least :attr:`min_valid_fraction` of the polygon usable; sorted by time. Raises GlacierFlowError when none."""
        check_range(start, end)
        if area is None:
            raise GlacierFlowError("Earth Engine needs a search polygon: draw one or choose a polygon layer.")
        first, last = start or EARLIEST, end or datetime.now(timezone.utc)
        region = _wgs84_box(area)
        assets: dict[str, dict[str, Any]] = {}
        for window_start, window_end in month_windows(first, last, months):
            for asset in self._list(window_start, window_end, region, max_cloud):
                assets.setdefault(asset["name"], asset)
        self.rejected = Counter()
        kept = []
        coarse = _area_raster(area, self.valid_scale_m)
        for asset in assets.values():
            scene = self._scene_of(asset)
            reason = scene_matches(scene, start, end, months, max_cloud)
            if reason is None:
                fraction = self.cache.valid_fraction(scene, area, self.valid_scale_m,
                                                     functools.partial(self.valid_fraction, scene, area, coarse))
                scene = replace(scene, valid_fraction=fraction)
                if fraction < self.min_valid_fraction:
                    reason = "with too little of the area usable"
            if reason is None:
                kept.append(scene)
            else:
                self.rejected[reason] += 1
        if not kept:
            raise GlacierFlowError(self._nothing_found(len(assets), first, last))
        return sorted(kept, key=lambda s: (s.time, s.id))

    def _list(self, start: datetime, end: datetime, region: dict[str, Any],
              max_cloud: float | None) -> list[dict[str, Any]]:
        """Every image of the collection the service finds for one time window (all pages)."""
        ee = self._connect()
        params: dict[str, Any] = {"parent": self.collection.collection_id, "startTime": _iso(start),
                                  "endTime": _iso(end + timedelta(seconds=1)), "region": region,
                                  "pageSize": self.page_size, "view": "FULL"}
        if max_cloud is not None:
            params["filter"] = f"properties.CLOUDY_PIXEL_PERCENTAGE <= {float(max_cloud)}"
        images: list[dict[str, Any]] = []
        while True:
            page = self._call("listing scenes", lambda: ee.data.listImages(dict(params)))
            images.extend(page.get("images") or [])
            token = page.get("nextPageToken")
            if not token:
                return images
            params["pageToken"] = token

    def _scene_of(self, asset: dict[str, Any]) -> Scene:
        from ..io.timestamps import parse_datetime

        properties = asset.get("properties") or {}
        stamp = asset.get("startTime")
        if stamp:
            acquired = parse_datetime(re.sub(r"\.(\d+)", lambda m: "." + (m.group(1) + "000000")[:6], stamp))
        else:
            acquired = datetime.fromtimestamp(float(properties["system:time_start"]) / 1000.0, timezone.utc)
        cloud = properties.get("CLOUDY_PIXEL_PERCENTAGE")
        footprint, footprint_crs = _footprint(asset.get("geometry"))
        return Scene(
            id=asset.get("id", asset["name"]).rsplit("/", 1)[-1], time=acquired,
            cloud_cover=float(cloud) if cloud is not None else None, source=SOURCE_NAME, href=asset["name"],
            footprint=footprint, footprint_crs_wkt=footprint_crs, time_source="Earth Engine startTime",
            version=str(asset.get("updateTime", "")),
            properties={key: str(value) for key, value in properties.items() if not isinstance(value, (dict, list))},
            bands=tuple(COMMON_BANDS))

    def valid_fraction(self, scene: Scene, area: Area, coarse: tuple[Grid, np.ndarray] | None = None) -> float:
        """Share (0-1) of ``area`` the scene covers without cloud, read from a coarse (``valid_scale_m``) mask;
        ``coarse`` is the polygon's (grid, inside) raster when already made."""
        grid, inside = coarse or _area_raster(area, self.valid_scale_m)
        if not inside.any():
            return 0.0
        pixels = self._pixels(scene.href, self.collection.fraction_bands, grid)
        usable = self.collection.usable(pixels, "B8" if "B8" in self.collection.fraction_bands else "")
        return float(usable[inside].mean())

    def _nothing_found(self, listed: int, start: datetime, end: datetime) -> str:
        reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(self.rejected.items()))
        return (f"No scene found in Earth Engine '{self.collection.collection_id}' from {start:%Y-%m-%d} to "
                f"{end:%Y-%m-%d}: {listed} listed over the area" + (f" ({reasons})" if reasons else "") + ". Widen "
                "the dates or months, raise the maximum cloud cover, lower the minimum valid fraction, or check "
                "the polygon and its CRS.")

    # -- fetch --
    def fetch(self, scene: Scene, grid: Grid, band: str = "",
              progress: Callable[[float], bool] | None = None) -> np.ndarray:
        """The scene's band on ``grid`` as reflectance (0-1, float32), NaN where cloud or no data; cached.

        ``band`` is ``nir`` (B8, the default ""), ``green`` (B3) or ``swir1`` (B11). The grid is read in tiles
        of at most :attr:`tile_size` px under the service's limits; ``progress(fraction)`` is called after
        each tile and stops the fetch (no cache entry) when it returns False."""
        if scene.source != SOURCE_NAME:
            raise GlacierFlowError(f"Scene '{scene.id}' comes from '{scene.source}', not Earth Engine.")
        common = band or "nir"
        if common not in COMMON_BANDS:
            raise GlacierFlowError(f"Band '{band}' is not offered by Earth Engine Sentinel-2 here: use one of "
                                   f"{', '.join(COMMON_BANDS)}.")
        data_band = COMMON_BANDS[common]
        return self.cache.fetch(scene, grid, lambda: self._read_tiled(scene, grid, data_band, progress), common)

    def tile_side(self, bands: Sequence[str]) -> int:
        """The largest square request side (px) for ``bands`` under the service's limits and :attr:`tile_size`."""
        bytes_per_px = sum(BAND_BYTES.get(b, 8) for b in bands)
        return max(1, min(self.tile_size, MAX_SIDE_PX, int(math.isqrt(MAX_REQUEST_BYTES // bytes_per_px))))

    def _read_tiled(self, scene: Scene, grid: Grid, data_band: str,
                    progress: Callable[[float], bool] | None) -> np.ndarray:
        bands = (data_band,) + self.collection.mask_bands
        side = self.tile_side(bands)
        windows = [Window(col, row, min(side, grid.width - col), min(side, grid.height - row))
                   for row in range(0, grid.height, side) for col in range(0, grid.width, side)]
        out = np.full(grid.shape, np.nan, dtype=np.float32)
        for done, window in enumerate(windows, start=1):
            pixels = self._pixels(scene.href, bands, grid.window_grid(window))
            reflectance = pixels[data_band].astype(np.float32) * np.float32(REFLECTANCE_SCALE)
            reflectance[~self.collection.usable(pixels, data_band)] = np.nan
            out[window.slices] = reflectance
            if progress is not None and progress(done / len(windows)) is False:
                raise GlacierFlowError(f"Download of '{scene.id}' cancelled: nothing was kept.")
        return out

    def _pixels(self, asset_name: str, bands: Sequence[str], grid: Grid) -> np.ndarray:
        """One getPixels request: a structured array (rows, cols) with a field per band."""
        ee = self._connect()
        request = {"assetId": asset_name, "fileFormat": "NUMPY_NDARRAY", "bandIds": list(bands),
                   "grid": pixel_grid(grid)}
        pixels = self._call(f"reading pixels of '{asset_name.rsplit('/', 1)[-1]}'",
                            lambda: ee.data.getPixels(dict(request)))
        if getattr(pixels, "shape", None) != grid.shape or not set(bands) <= set(pixels.dtype.names or ()):
            raise GlacierFlowError(f"Earth Engine answered {getattr(pixels, 'shape', '?')} pixels with bands "
                                   f"{getattr(getattr(pixels, 'dtype', None), 'names', None)} for a {grid.shape} "
                                   f"request of {list(bands)}: run again; if it persists, report it.")
        return pixels

    # -- connection, retries and messages --
    def login(self) -> Login:
        """The credentials and project this source uses (resolved once; see :func:`resolve_login`)."""
        if self._login is None:
            self._login = resolve_login(self.project, self.service_account_key, self._credentials)
        return self._login

    def _connect(self) -> Any:
        """``ee`` with a session for this source's URL, credentials and project.

        ``ee`` keeps one global session, shared with the Google Earth Engine plugin and the Python console: one
        already initialised for the same project and URL (with the same credentials, when this source was given
        its own) is reused as it is; otherwise ``ee.Initialize`` sets it up."""
        ee = _import_ee()
        login = self.login()
        key = (self._session_id, login.project, self.url, self.timeout_s)
        if (_CONNECTED["key"] == key or self._can_reuse(ee, login)) and ee.data.is_initialized():
            return ee
        import httplib2

        self._call("connecting", lambda: ee.Initialize(
            credentials=login.credentials, url=self.url, project=login.project,
            http_transport=httplib2.Http(timeout=self.timeout_s)))
        _CONNECTED["key"] = key
        return ee

    def _can_reuse(self, ee: Any, login: Login) -> bool:
        """True when ee's initialised session serves this source's project and URL with acceptable credentials
        (any, for the stored or application-default routes; the very same object for given ones)."""
        state = getattr(ee.data, "_get_state", lambda: None)()
        if state is None or not getattr(state, "initialized", False):
            return False
        same_place = getattr(state, "cloud_api_user_project", None) == login.project and \
            str(getattr(state, "cloud_api_base_url", "") or "").rstrip("/") == self.url
        given = self._credentials is not None or bool(self.service_account_key)
        return same_place and (not given or getattr(state, "credentials", None) is login.credentials)

    def _call(self, what: str, call: Callable[[], Any]) -> Any:
        """``call()`` retried on 429, 5xx, timeouts and lost connections with doubling waits; errors explained.

        ee's own retries are off during the call (this source retries with its backoff and messages) and put
        back afterwards: the shared session keeps the setting its other users chose."""
        for attempt in range(self.retries + 1):
            try:
                return _without_ee_retries(call)
            except Exception as problem:
                kind, status, reason = _classify(problem)
                if kind == "other":
                    raise
                if kind != "retry" or attempt == self.retries:
                    raise GlacierFlowError(self._explain(what, kind, status, reason, attempt + 1)) from problem
                time.sleep(min(self.backoff_s * (2 ** attempt), 60.0))
        raise AssertionError("unreachable")

    def _explain(self, what: str, kind: str, status: int | None, reason: str, attempts: int) -> str:
        project = self._login.project if self._login else self.project
        where = f"Earth Engine ({self.url}) {what}"
        if kind == "auth":
            return (f"{where}: the credentials were refused ({reason}). Renew them: run `earthengine authenticate` "
                    "again, or check the service-account key (and that the account is registered). "
                    + _how_to_authenticate())
        if kind == "denied":
            return (f"{where}: access denied for project '{project}' ({reason}). Check the project id, that the "
                    "project is registered for Earth Engine (https://code.earthengine.google.com/register) with the "
                    "Earth Engine API enabled, and that your account has the Earth Engine Resource Viewer role in it.")
        if kind == "missing":
            return (f"{where}: not found ({reason}). Check the collection id '{self.collection.collection_id}'; "
                    "the scene may have been removed since the search: search again.")
        if kind == "invalid":
            return f"{where}: the request was rejected ({status}: {reason}). Run again; if it persists, report it."
        tries = f"{attempts} attempt{'s' if attempts > 1 else ''}"
        if status == 429:
            return (f"{where}: still over quota after {tries} (429: {reason}). Wait a few minutes and run again, "
                    f"or run fewer jobs at once; quotas are shown in the Cloud console of project '{project}'.")
        if status is not None:
            return f"{where}: server error {status} after {tries} ({reason}). Earth Engine may be down: try later."
        if "timed out" in reason.lower() or "timeout" in reason.lower():
            return (f"{where}: no answer within {self.timeout_s:g} s, {tries}. Check the connection, or raise "
                    "the timeout or lower the tile size.")
        return (f"{where}: cannot reach the service after {tries} ({reason}). Check the internet connection, the "
                "proxy settings and the service URL.")


def _without_ee_retries(call: Callable[[], Any]) -> Any:
    """``call()`` with ee's session-wide retry count at 0, restored afterwards (whatever another user set)."""
    import ee

    state = getattr(ee.data, "_get_state", lambda: None)()
    previous = getattr(state, "max_retries", None)
    ee.data.setMaxRetries(0)
    try:
        return call()
    finally:
        after = getattr(ee.data, "_get_state", lambda: None)()
        if previous is not None and after is not None:
            after.max_retries = previous


def _classify(problem: BaseException) -> tuple[str, int | None, str]:
    """(kind, HTTP status, reason): kind is retry, auth, denied, missing, invalid or other."""
    from google.auth.exceptions import RefreshError, TransportError

    status, reason = _http_status(problem)
    if status is not None:
        if status in RETRYABLE_STATUS:
            return "retry", status, reason
        kinds = {401: "auth", 403: "denied", 404: "missing"}
        return kinds.get(status, "invalid"), status, reason
    if isinstance(problem, RefreshError):
        return "auth", None, str(problem)
    if isinstance(problem, (socket.timeout, TimeoutError, ConnectionError, TransportError)):
        return "retry", None, str(problem) or type(problem).__name__
    import httplib2

    if isinstance(problem, (httplib2.HttpLib2Error, OSError)):
        return "retry", None, str(problem) or type(problem).__name__
    return "other", None, str(problem)


def _http_status(problem: BaseException) -> tuple[int | None, str]:
    """The HTTP status behind an error (ee wraps googleapiclient's HttpError in EEException), with its reason."""
    from googleapiclient.errors import HttpError

    seen: BaseException | None = problem
    for _ in range(4):
        if seen is None:
            break
        if isinstance(seen, HttpError):
            return int(seen.resp.status), str(problem) if problem is not seen else _http_reason(seen)
        seen = seen.__cause__ or seen.__context__
    return None, ""


def _http_reason(error: Any) -> str:
    try:
        return str(json.loads(error.content)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return str(error)


# --- geometry helpers -----------------------------------------------------------------------------------------
def month_windows(start: datetime, end: datetime, months: set[int] | None) -> list[tuple[datetime, datetime]]:
    """[start, end] cut to the runs of consecutive calendar ``months`` (None or all 12: one window), UTC."""
    if not months or len(months) == 12:
        return [(start, end)]
    windows: list[tuple[datetime, datetime]] = []
    cursor = datetime(start.year, start.month, 1, tzinfo=timezone.utc)
    while cursor <= end:
        following = datetime(cursor.year + cursor.month // 12, cursor.month % 12 + 1, 1, tzinfo=timezone.utc)
        if cursor.month in months:
            window_start = max(cursor, start)
            window_end = min(following - timedelta(microseconds=1), end)
            if windows and windows[-1][1] + timedelta(microseconds=1) == window_start:
                windows[-1] = (windows[-1][0], window_end)
            else:
                windows.append((window_start, window_end))
        cursor = following
    return windows


def pixel_grid(grid: Grid) -> dict[str, Any]:
    """Earth Engine's PixelGrid for ``grid``: dimensions, affine transform, and an EPSG code when there is one."""
    from ..geo.crs import spatial_reference

    x0, a, b, y0, d, e = grid.transform
    result: dict[str, Any] = {"dimensions": {"width": grid.width, "height": grid.height},
                              "affineTransform": {"scaleX": a, "shearX": b, "translateX": x0,
                                                  "shearY": d, "scaleY": e, "translateY": y0}}
    srs = spatial_reference(grid.crs_wkt)
    try:
        srs.AutoIdentifyEPSG()
    except RuntimeError:
        pass
    if srs.GetAuthorityName(None) == "EPSG" and srs.GetAuthorityCode(None):
        result["crsCode"] = f"EPSG:{srs.GetAuthorityCode(None)}"
    else:
        result["crsWkt"] = grid.crs_wkt
    return result


def _wgs84_box(area: Area) -> dict[str, Any]:
    """The polygon's bounding box as a GeoJSON geometry in degrees (short enough for a listing URL); a polygon
    crossing the antimeridian gives one box on each side (a MultiPolygon), not a box around the globe."""
    from .stac import geometry_bounds, polygon_coordinates, query_geometry

    boxes = []
    for rings in polygon_coordinates(query_geometry(area)):
        west, south, east, north = geometry_bounds({"type": "Polygon", "coordinates": rings})
        ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
        boxes.append([[[round(x, 7), round(y, 7)] for x, y in ring]])
    if len(boxes) == 1:
        return {"type": "Polygon", "coordinates": boxes[0]}
    return {"type": "MultiPolygon", "coordinates": boxes}


def _footprint(geometry: dict[str, Any] | None) -> tuple[tuple[float, float, float, float] | None, str]:
    """The bounding box of a GeoJSON footprint (degrees) and the WGS 84 WKT, or (None, "")."""
    if not geometry:
        return None, ""
    from osgeo import ogr

    shape = ogr.CreateGeometryFromJson(json.dumps(geometry))
    if shape is None or shape.IsEmpty():
        return None, ""
    xmin, xmax, ymin, ymax = shape.GetEnvelope()
    return (xmin, ymin, xmax, ymax), wgs84_wkt()


def _area_raster(area: Area, scale_m: float) -> tuple[Grid, np.ndarray]:
    """A ``scale_m`` grid in the polygon's UTM zone over its bounds, and the pixels inside the polygon."""
    from osgeo import gdal, ogr

    from ..geo.crs import spatial_reference, transform_bounds, utm_crs_wkt

    polygon = area.ogr_geometry()
    west, south, east, north = transform_bounds(_envelope(polygon), area.crs_wkt, wgs84_wkt())
    utm = utm_crs_wkt((west + east) / 2.0, (south + north) / 2.0)
    xmin, ymin, xmax, ymax = transform_bounds(_envelope(polygon), area.crs_wkt, utm)
    x0, y0 = math.floor(xmin / scale_m) * scale_m, math.ceil(ymax / scale_m) * scale_m
    width = max(1, math.ceil((xmax - x0) / scale_m))
    height = max(1, math.ceil((y0 - ymin) / scale_m))
    grid = Grid(utm, (x0, scale_m, 0.0, y0, 0.0, -scale_m), width, height)
    projected = polygon.Clone()
    projected.AssignSpatialReference(spatial_reference(area.crs_wkt))
    projected.TransformTo(spatial_reference(utm))
    memory = ogr.GetDriverByName("Memory").CreateDataSource("")
    layer = memory.CreateLayer("area", spatial_reference(utm), ogr.wkbPolygon)
    feature = ogr.Feature(layer.GetLayerDefn())
    feature.SetGeometry(projected)
    layer.CreateFeature(feature)
    raster = gdal.GetDriverByName("MEM").Create("", width, height, 1, gdal.GDT_Byte)
    raster.SetGeoTransform(grid.transform)
    raster.SetProjection(utm)
    gdal.RasterizeLayer(raster, [1], layer, burn_values=[1])
    inside = raster.GetRasterBand(1).ReadAsArray().astype(bool)
    if not inside.any():  # a polygon smaller than one coarse pixel: count the pixels it touches
        gdal.RasterizeLayer(raster, [1], layer, burn_values=[1], options=["ALL_TOUCHED=TRUE"])
        inside = raster.GetRasterBand(1).ReadAsArray().astype(bool)
    return grid, inside


def _envelope(geometry: Any) -> tuple[float, float, float, float]:
    xmin, xmax, ymin, ymax = geometry.GetEnvelope()
    return (xmin, ymin, xmax, ymax)


def _iso(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
