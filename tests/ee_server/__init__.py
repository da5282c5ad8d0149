"""A small HTTP server on 127.0.0.1 that speaks the part of Earth Engine's REST API the plugin uses.

It answers the real ``earthengine-api`` client (``ee.data``) exactly where
GlacierFlow talks to it:

* ``GET /$discovery/rest?version=v1``: the discovery document shipped in the
  ``earthengine-api`` wheel (``ee/tests/cloud_api_discovery_document.json``,
  a v1alpha document), moved to v1 and given the ``filter`` and ``view``
  query parameters that the published v1 ``listAssets`` method has.
* ``GET /v1/projects/{project}/assets/{collection}:listAssets`` (and
  ``:listImages``): a small in-memory catalogue filtered with the AIP-160
  subset the client sends (``startTime >= "..."``, ``endTime < "..."``,
  ``properties.NAME <op> value``, ``intersects("geojson")`` joined by
  ``AND``), paged with ``pageSize``/``pageToken``.
* ``POST /v1/projects/{project}/assets/{image}:getPixels``: the image's bands
  read from real GeoTIFFs and warped by GDAL (nearest neighbour, Earth
  Engine's default) onto the requested ``grid``; masked pixels as zeros;
  answered as ``NPY`` (a structured array, one field per band) or
  ``GEO_TIFF``; requests over the documented limits (48 MB uncompressed,
  32768 px a side) refused with a 400 in Google's error shape.
* ``POST /token``: an OAuth token endpoint for service-account keys whose
  ``token_uri`` points here (the JWT is accepted, not verified).

Every API call needs ``Authorization: Bearer <token>`` (401 otherwise) and an
``X-Goog-User-Project`` the server knows (403 otherwise). Faults can be
queued (``fail``, ``hang``) and every request is recorded.
"""
from __future__ import annotations

import base64
import copy
import functools
import importlib.util
import io
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np

MAX_REQUEST_BYTES = 48 * 1024 * 1024  # getPixels limit on uncompressed data (documented: 48 MB)
MAX_SIDE_PX = 32768  # getPixels limit on either grid dimension (documented: 32K px)
PUBLIC_PROJECT = "earthengine-public"
ERROR_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 502: "BAD_GATEWAY", 503: "UNAVAILABLE"}
ERROR_MESSAGE = {
    401: "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other "
         "valid authentication credential.",
    429: "Too Many Requests: Request was rejected because the request rate or concurrency limit was exceeded.",
    500: "An internal error has occurred (test fault).",
    502: "Bad gateway (test fault).",
    503: "The service is currently unavailable (test fault).",
}


@dataclass
class FakeImage:
    """One image of the catalogue.

    Attributes:
        image_id: the image's id inside its collection (``system:index``).
        time: acquisition time (UTC).
        properties: the asset's properties (``CLOUDY_PIXEL_PERCENTAGE``, ...).
        footprint: GeoJSON polygon in longitude/latitude degrees.
        bands: band id -> path of a one-band GeoTIFF holding it.
    """

    image_id: str
    time: datetime
    properties: dict[str, Any]
    footprint: dict[str, Any]
    bands: dict[str, str]
    update_time: str = "2024-01-01T00:00:00Z"


@dataclass
class Recorded:
    """One request the server received."""

    method: str
    action: str  # discovery, listAssets, getPixels, token, ...
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]  # names in lower case


@dataclass
class _Fault:
    status: int = 0
    hang_s: float = 0.0
    actions: tuple[str, ...] = ()
    remaining: int = 0
    after: int = 0  # matching requests to let through first


@dataclass
class EarthEngineServer:
    """The fake service; use as a context manager (``with EarthEngineServer(...) as server:``).

    Attributes:
        collections: collection id -> its images.
        token: the bearer token API calls must carry.
        issued_token: the token ``/token`` hands out ("" = ``token``).
        projects: the cloud projects allowed as ``X-Goog-User-Project``.
        max_page_size: the most images one listing page returns (forces paging in tests).
        requests: every request received, in order.
    """

    collections: dict[str, list[FakeImage]]
    token: str = "test-token"
    projects: Sequence[str] = ("glacier-project",)
    max_page_size: int = 1000
    issued_token: str = ""  # what /token hands out ("" = ``token``; another value is then refused with 401)
    requests: list[Recorded] = field(default_factory=list)
    _faults: list[_Fault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """The base URL to give ``ee.data.initialize`` / the source (``http://127.0.0.1:PORT``)."""
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> EarthEngineServer:
        """Listen on a free port of 127.0.0.1 in a background thread."""
        handler = functools.partial(_Handler, self)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening (requests still sleeping in a hang are abandoned)."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> EarthEngineServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def fail(self, count: int, status: int, actions: Sequence[str] = ("listAssets", "getPixels"),
             after: int = 0) -> None:
        """Answer ``count`` requests of ``actions`` with HTTP ``status`` (429, 500, 503, ...), once ``after``
        of them have been answered normally."""
        with self._lock:
            self._faults.append(_Fault(status=status, actions=tuple(actions), remaining=count, after=after))

    def hang(self, count: int, seconds: float, actions: Sequence[str] = ("listAssets", "getPixels")) -> None:
        """Delay the next ``count`` requests of ``actions`` by ``seconds`` (to trip client timeouts)."""
        with self._lock:
            self._faults.append(_Fault(hang_s=seconds, actions=tuple(actions), remaining=count))

    def calls(self, action: str) -> list[Recorded]:
        """The recorded requests of one action (``getPixels``, ``listAssets``, ...)."""
        with self._lock:
            return [r for r in self.requests if r.action == action]

    def _take_fault(self, action: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.remaining > 0 and action in fault.actions:
                    if fault.after > 0:
                        fault.after -= 1
                        continue
                    fault.remaining -= 1
                    return fault
        return None

    def _record(self, request: Recorded) -> None:
        with self._lock:
            self.requests.append(request)


class _Reply(Exception):  # noqa: N818 (a reply, not an error)
    """An HTTP answer raised from deep inside a handler."""

    def __init__(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        super().__init__(status)
        self.status, self.body, self.content_type = status, body, content_type


def _error(status: int, message: str = "") -> _Reply:
    """Google's JSON error shape: {"error": {"code", "message", "status"}}."""
    payload = {"error": {"code": status, "message": message or ERROR_MESSAGE.get(status, "Error"),
                         "status": ERROR_STATUS.get(status, "UNKNOWN")}}
    return _Reply(status, json.dumps(payload).encode("utf-8"))


def _json(payload: Any) -> _Reply:
    return _Reply(200, json.dumps(payload).encode("utf-8"))


class _Handler(BaseHTTPRequestHandler):
    def __init__(self, service: EarthEngineServer, *args: Any, **kwargs: Any) -> None:
        self.service = service
        super().__init__(*args, **kwargs)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output quiet

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        action = _action_of(path)
        try:
            body = json.loads(raw) if raw and "json" in (self.headers.get("Content-Type") or "") else raw
        except ValueError:
            body = raw
        self.service._record(Recorded(method, action, path, query, body,
                                      {key.lower(): value for key, value in self.headers.items()}))
        try:
            raise self._route(method, action, path, query, body)
        except _Reply as reply:
            self._send(reply)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _send(self, reply: _Reply) -> None:
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout): nothing to answer

    def _route(self, method: str, action: str, path: str, query: dict[str, str], body: Any) -> _Reply:
        if action == "discovery":
            return _json(discovery_document(self.service.url))
        if action == "token":
            return _json({"access_token": self.service.issued_token or self.service.token, "expires_in": 3600,
                          "token_type": "Bearer"})
        self._check_access()
        fault = self.service._take_fault(action)
        if fault is not None and fault.hang_s:
            time.sleep(fault.hang_s)
        if fault is not None and fault.status:
            return _error(fault.status)
        if action == "algorithms" and method == "GET":
            return _json({"algorithms": []})  # ee.Initialize lists them; the data methods need none
        match = re.fullmatch(r"/v1/(projects/[^/]+/assets/.+):(listAssets|listImages|getPixels)", path)
        if match is None:
            return _error(404, f"Method not found: {method} {path}")
        name = match.group(1)
        if action in ("listAssets", "listImages") and method == "GET":
            return self._list(name, action, query)
        if action == "getPixels" and method == "POST":
            return self._pixels(name, body if isinstance(body, dict) else {})
        return _error(404, f"Method not found: {method} {path}")

    def _check_access(self) -> None:
        if self.headers.get("Authorization", "") != f"Bearer {self.service.token}":
            raise _error(401)
        project = self.headers.get("X-Goog-User-Project", "")
        if project not in self.service.projects:
            raise _error(403, f"Caller does not have required permission to use project {project or '(none)'}. "
                              "Grant the caller the roles/serviceusage.serviceUsageConsumer role, or register the "
                              "project for Earth Engine, and then retry.")

    def _list(self, name: str, action: str, query: dict[str, str]) -> _Reply:
        collection = _collection_of(name)
        images = self.service.collections.get(collection)
        if images is None:
            return _error(404, f"ImageCollection asset '{collection}' not found (does not exist or caller does not "
                               "have access).")
        try:
            matching = [image for image in images if _matches(image, query.get("filter", ""))]
        except ValueError as problem:
            return _error(400, f"Invalid filter: {problem}")
        matching.sort(key=lambda image: (image.time, image.image_id))
        start = int(base64.urlsafe_b64decode(query["pageToken"]).decode()) if query.get("pageToken") else 0
        size = min(int(query.get("pageSize") or self.service.max_page_size), self.service.max_page_size)
        page = matching[start:start + size]
        key = "assets" if action == "listAssets" else "images"
        payload: dict[str, Any] = {key: [_asset_json(collection, image, query.get("view", "FULL"))
                                         for image in page]}
        if start + size < len(matching):
            payload["nextPageToken"] = base64.urlsafe_b64encode(str(start + size).encode()).decode()
        return _json(payload)

    def _pixels(self, name: str, body: dict[str, Any]) -> _Reply:
        collection, _, image_id = _collection_of(name).rpartition("/")
        image = next((i for i in self.service.collections.get(collection, []) if i.image_id == image_id), None)
        if image is None:
            return _error(404, f"Image asset '{collection}/{image_id}' not found.")
        bands = list(body.get("bandIds") or image.bands)
        missing = [b for b in bands if b not in image.bands]
        if missing:
            return _error(400, f"Image.select: Pattern '{missing[0]}' did not match any bands.")
        grid = body.get("grid") or _native_grid(image.bands[bands[0]])
        width, height = int(grid["dimensions"]["width"]), int(grid["dimensions"]["height"])
        if max(width, height) > MAX_SIDE_PX:
            return _error(400, f"Grid dimensions ({width}x{height}) must be at most {MAX_SIDE_PX} pixels in "
                               "either dimension.")
        size = width * height * sum(_band_dtype(image.bands[band]).itemsize for band in bands)
        if size > MAX_REQUEST_BYTES:
            return _error(400, f"Total request size ({size} bytes) must be less than or equal to "
                               f"{MAX_REQUEST_BYTES} bytes.")
        arrays = [_warp(image.bands[band], grid) for band in bands]
        file_format = body.get("fileFormat", "AUTO_JPEG_PNG")
        if file_format == "NPY":
            return _Reply(200, _npy(bands, arrays), "application/octet-stream")
        if file_format == "GEO_TIFF":
            return _Reply(200, _geotiff(arrays, grid), "image/tiff")
        return _error(400, f"File format {file_format} is not supported by this test server.")


def _action_of(path: str) -> str:
    if path.endswith("/$discovery/rest"):
        return "discovery"
    if path == "/token":
        return "token"
    if re.fullmatch(r"/v1/projects/[^/]+/algorithms", path):
        return "algorithms"
    return path.rpartition(":")[2] if ":" in path.rpartition("/")[2] else "other"


def _collection_of(name: str) -> str:
    return name.split("/assets/", 1)[1]


@functools.lru_cache(maxsize=1)
def _wheel_discovery() -> dict[str, Any]:
    spec = importlib.util.find_spec("ee")
    assert spec is not None and spec.submodule_search_locations, "earthengine-api is not installed"
    path = os.path.join(list(spec.submodule_search_locations)[0], "tests", "cloud_api_discovery_document.json")
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def discovery_document(base_url: str) -> dict[str, Any]:
    """The wheel's discovery document as a v1 document served from ``base_url``."""
    text = json.dumps(_wheel_discovery()).replace("v1alpha/", "v1/").replace('"v1alpha"', '"v1"')
    document = json.loads(text)
    document["rootUrl"] = document["baseUrl"] = base_url + "/"
    listing = {"filter": {"location": "query", "type": "string"},
               "view": {"location": "query", "type": "string", "enum": ["EARTH_ENGINE_ASSET_VIEW_UNSPECIFIED",
                                                                       "FULL", "BASIC"]}}
    projects = document["resources"]["projects"]
    for method in (projects["methods"]["listAssets"], projects["resources"]["assets"]["methods"]["listAssets"],
                   projects["resources"]["assets"]["methods"]["listImages"]):
        method["parameters"].update(copy.deepcopy(listing))
    return document


def _asset_json(collection: str, image: FakeImage, view: str) -> dict[str, Any]:
    stamp = image.time.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    asset: dict[str, Any] = {"type": "IMAGE", "name": f"projects/{PUBLIC_PROJECT}/assets/{collection}/{image.image_id}",
                             "id": f"{collection}/{image.image_id}", "updateTime": image.update_time}
    if view == "BASIC":
        return asset
    asset.update({"startTime": stamp, "endTime": stamp, "properties": dict(image.properties),
                  "geometry": image.footprint,
                  "bands": [{"id": band, "grid": _native_grid(path)} for band, path in image.bands.items()]})
    return asset


# --- the AIP-160 subset the client sends --------------------------------------------------------------------
_TERM = re.compile(r'\s*(startTime|endTime|properties\.[A-Za-z0-9_:]+)\s*(<=|>=|!=|=|<|>)\s*(".*?"|[-+\d.eE]+)\s*$')
_INTERSECTS = re.compile(r'\s*intersects\("(.*)"\)\s*$', re.DOTALL)


def _split_and(text: str) -> list[str]:
    """Split ``text`` on AND outside double quotes."""
    terms, current, quoted = [], "", False
    index = 0
    while index < len(text):
        char = text[index]
        if char == '"':
            quoted = not quoted
        if not quoted and text.startswith(" AND ", index):
            terms.append(current)
            current, index = "", index + 5
            continue
        current += char
        index += 1
    if quoted:
        raise ValueError("unbalanced quotes")
    terms.append(current)
    return [t for t in terms if t.strip()]


def _matches(image: FakeImage, text: str) -> bool:
    return all(_term_holds(image, term) for term in _split_and(text))


def _term_holds(image: FakeImage, term: str) -> bool:
    shape = _INTERSECTS.fullmatch(term)
    if shape:
        return _intersects(image.footprint, json.loads(shape.group(1).replace("'", '"')))
    match = _TERM.fullmatch(term)
    if match is None:
        raise ValueError(f"cannot parse '{term.strip()}'")
    name, operator, literal = match.groups()
    if name in ("startTime", "endTime"):
        left: Any = image.time
        right: Any = datetime.fromisoformat(literal.strip('"').replace("Z", "+00:00"))
    else:
        key = name.split(".", 1)[1]
        if key not in image.properties:
            return False
        left = image.properties[key]
        right = literal.strip('"') if literal.startswith('"') else float(literal)
    return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right,
            "=": left == right, "!=": left != right}[operator]


def _intersects(first: dict[str, Any], second: dict[str, Any]) -> bool:
    from osgeo import ogr

    a, b = ogr.CreateGeometryFromJson(json.dumps(first)), ogr.CreateGeometryFromJson(json.dumps(second))
    if a is None or b is None:
        raise ValueError("region is not valid GeoJSON")
    return bool(a.Intersects(b))


# --- pixels -------------------------------------------------------------------------------------------------
def _native_grid(path: str) -> dict[str, Any]:
    from osgeo import gdal

    dataset = gdal.Open(path)
    x0, a, b, y0, d, e = dataset.GetGeoTransform()
    return {"crsWkt": dataset.GetProjection(),
            "dimensions": {"width": dataset.RasterXSize, "height": dataset.RasterYSize},
            "affineTransform": {"scaleX": a, "shearX": b, "translateX": x0, "shearY": d, "scaleY": e,
                                "translateY": y0}}


def _grid_wkt(grid: dict[str, Any]) -> str:
    from osgeo import osr

    srs = osr.SpatialReference()
    if grid.get("crsCode"):
        srs.SetFromUserInput(grid["crsCode"])
    else:
        srs.ImportFromWkt(grid["crsWkt"])
    return srs.ExportToWkt()


_NUMPY_TYPES = {"Byte": np.uint8, "UInt16": np.uint16, "Int16": np.int16, "UInt32": np.uint32, "Int32": np.int32,
                "Float32": np.float32, "Float64": np.float64}


def _band_dtype(path: str) -> np.dtype:
    from osgeo import gdal

    dataset = gdal.Open(path)
    return np.dtype(_NUMPY_TYPES[gdal.GetDataTypeName(dataset.GetRasterBand(1).DataType)])


def _warp(path: str, grid: dict[str, Any]) -> np.ndarray:
    """One band of ``path`` on the request grid, nearest neighbour, masked (nodata, outside) as 0."""
    from osgeo import gdal

    source = gdal.Open(path)
    band = source.GetRasterBand(1)
    dtype = gdal.GetDataTypeName(band.DataType)
    width, height = int(grid["dimensions"]["width"]), int(grid["dimensions"]["height"])
    t = grid["affineTransform"]
    target = gdal.GetDriverByName("MEM").Create("", width, height, 1, band.DataType)
    target.SetGeoTransform((t.get("translateX", 0.0), t.get("scaleX", 1.0), t.get("shearX", 0.0),
                            t.get("translateY", 0.0), t.get("shearY", 0.0), t.get("scaleY", -1.0)))
    target.SetProjection(_grid_wkt(grid))
    target.GetRasterBand(1).Fill(0)
    gdal.Warp(target, source, options=gdal.WarpOptions(resampleAlg="near", srcNodata=band.GetNoDataValue(),
                                                       dstNodata=0))
    array = target.GetRasterBand(1).ReadAsArray()
    return array.astype(_NUMPY_TYPES.get(dtype, array.dtype))


def _npy(bands: Sequence[str], arrays: Sequence[np.ndarray]) -> bytes:
    """A structured array, one field per band in its own type, like the service's NPY answer."""
    structured = np.zeros(arrays[0].shape, dtype=[(band, array.dtype) for band, array in zip(bands, arrays)])
    for band, array in zip(bands, arrays):
        structured[band] = array
    buffer = io.BytesIO()
    np.save(buffer, structured, allow_pickle=False)
    return buffer.getvalue()


def _geotiff(arrays: Sequence[np.ndarray], grid: dict[str, Any]) -> bytes:
    """A GeoTIFF of all bands in their common type, georeferenced on the request grid."""
    from osgeo import gdal

    common = np.result_type(*arrays)
    types = {np.dtype(np.uint8): gdal.GDT_Byte, np.dtype(np.uint16): gdal.GDT_UInt16,
             np.dtype(np.int16): gdal.GDT_Int16, np.dtype(np.float32): gdal.GDT_Float32,
             np.dtype(np.int32): gdal.GDT_Int32, np.dtype(np.float64): gdal.GDT_Float64}
    path = f"/vsimem/ee_server_{uuid.uuid4().hex}.tif"
    height, width = arrays[0].shape
    dataset = gdal.GetDriverByName("GTiff").Create(path, width, height, len(arrays), types[np.dtype(common)])
    t = grid["affineTransform"]
    dataset.SetGeoTransform((t["translateX"], t["scaleX"], t.get("shearX", 0.0), t["translateY"],
                             t.get("shearY", 0.0), t["scaleY"]))
    dataset.SetProjection(_grid_wkt(grid))
    for index, array in enumerate(arrays, start=1):
        dataset.GetRasterBand(index).WriteArray(array.astype(common))
    dataset = None  # close: flush to /vsimem
    handle = gdal.VSIFOpenL(path, "rb")
    gdal.VSIFSeekL(handle, 0, 2)
    size = gdal.VSIFTellL(handle)
    gdal.VSIFSeekL(handle, 0, 0)
    data = gdal.VSIFReadL(1, size, handle)
    gdal.VSIFCloseL(handle)
    gdal.Unlink(path)
    return bytes(data)
