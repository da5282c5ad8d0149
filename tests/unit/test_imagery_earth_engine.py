"""The Earth Engine source against a local server speaking Earth Engine's REST protocol (tests/ee_server).

The real ``earthengine-api`` client talks HTTP to the server, which lists a
small catalogue and reads real GeoTIFFs written here; nothing in the client is
replaced.
"""
from __future__ import annotations

import json
import os
import socket
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ee", reason="earthengine-api is not installed (pip install earthengine-api==1.7.50)")

from ee_server import EarthEngineServer, FakeImage
from osgeo import gdal, osr

from glacierflow.core.errors import GlacierFlowError
from glacierflow.core.geo.area import Area
from glacierflow.core.geo.crs import transform_bounds
from glacierflow.core.geo.grid import Grid
from glacierflow.core.imagery import SceneCache
from glacierflow.core.imagery import earth_engine as ee_source
from glacierflow.core.imagery.earth_engine import EarthEngineSource, Login, month_windows, resolve_login
from glacierflow.core.io.raster import write_array

SR = "COPERNICUS/S2_SR_HARMONIZED"
L1C = "COPERNICUS/S2_HARMONIZED"
PROJECT = "glacier-project"
TOKEN = "test-token"


def _wkt(epsg: int) -> str:
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    return srs.ExportToWkt()


UTM33, WGS84 = _wkt(32633), _wkt(4326)
NATIVE = Grid(UTM33, (500000.0, 10.0, 0.0, 7000000.0, 0.0, -10.0), 80, 60)  # Sentinel-2 like, 10 m
SWIR_NATIVE = Grid(UTM33, (500000.0, 20.0, 0.0, 7000000.0, 0.0, -20.0), 40, 30)  # B11 is 20 m
# 400 m x 200 m: native columns 10-49, rows 10-29; 8 x 4 pixels of the 50 m valid-fraction grid.
AREA = Area("POLYGON((500100 6999700,500500 6999700,500500 6999900,500100 6999900,500100 6999700))", UTM33)
JOB = Grid(UTM33, (499953.0, 10.0, 0.0, 6999987.0, 0.0, -10.0), 45, 37)  # shifted 0.3 px, partly off the image
START, END = datetime(2021, 1, 1, tzinfo=timezone.utc), datetime(2022, 12, 31, 23, 59, tzinfo=timezone.utc)
SUMMER = set(range(6, 11))


def _footprint(shift_deg: float = 0.0) -> dict:
    west, south, east, north = transform_bounds(NATIVE.bounds(), UTM33, WGS84)
    ring = [[west + shift_deg, south], [east + shift_deg, south], [east + shift_deg, north],
            [west + shift_deg, north], [west + shift_deg, south]]
    return {"type": "Polygon", "coordinates": [ring]}


@pytest.fixture(scope="module")
def bands(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Band GeoTIFFs: B8 with a fill strip (0, nodata), B3, B11 (20 m), SCL masks, QA60 with a cloud block."""
    folder = tmp_path_factory.mktemp("ee_bands")
    rng = np.random.default_rng(4)
    b8 = rng.integers(500, 9000, NATIVE.shape).astype(np.uint16)
    b8[:, 70:] = 0  # no data at the right edge (outside the area)
    scl_clear = np.full(NATIVE.shape, 4, np.uint8)
    scl_clear[:, 70:] = 0
    scl_clear[40:, :] = 11  # snow and ice: usable (glaciers)
    scl_quarter = scl_clear.copy()
    scl_quarter[:, 10:20] = 9  # cloud over the area's west quarter (100 m of 400 m)
    scl_cloudy = np.full(NATIVE.shape, 9, np.uint8)
    scl_cloudy[:, 40:50] = 4  # only the east quarter usable
    qa60 = np.zeros(NATIVE.shape, np.uint16)
    qa60[:, 10:20] = 1 << 10  # opaque cloud
    arrays = {"B8": b8, "B3": rng.integers(500, 9000, NATIVE.shape).astype(np.uint16),
              "SCL_clear": scl_clear, "SCL_quarter": scl_quarter, "SCL_cloudy": scl_cloudy, "QA60": qa60}
    paths = {name: write_array(str(folder / f"{name}.tif"), NATIVE, array, nodata=0)
             for name, array in arrays.items()}
    paths["B11"] = write_array(str(folder / "B11.tif"), SWIR_NATIVE,
                               rng.integers(500, 9000, SWIR_NATIVE.shape).astype(np.uint16), nodata=0)
    return paths


def _image(image_id: str, when: str, cloud: float, bands: dict[str, str], scl: str = "SCL_clear",
           shift_deg: float = 0.0) -> FakeImage:
    return FakeImage(image_id, datetime.fromisoformat(when).replace(tzinfo=timezone.utc),
                     {"CLOUDY_PIXEL_PERCENTAGE": cloud, "MGRS_TILE": "33WXS", "SPACECRAFT_NAME": "Sentinel-2A"},
                     _footprint(shift_deg), {"B8": bands["B8"], "B3": bands["B3"], "B11": bands["B11"],
                                             "SCL": bands[scl], "QA60": bands["QA60"]})


@pytest.fixture()
def catalogue(bands: dict[str, str]) -> dict[str, list[FakeImage]]:
    """Seven SR scenes, each failing one filter or passing, and one L1C scene."""
    return {
        SR: [
            _image("20210705T103021_20210705T103244_T33WXS", "2021-07-05T10:30:21.024", 10, bands, "SCL_quarter"),
            _image("20210720T103021_20210720T103244_T33WXS", "2021-07-20T10:30:21", 15, bands, "SCL_cloudy"),
            _image("20210810T103021_20210810T103244_T33WXS", "2021-08-10T10:30:21", 60, bands),
            _image("20211201T103021_20211201T103244_T33WXS", "2021-12-01T10:30:21", 5, bands),
            _image("20220715T103021_20220715T103244_T34WXS", "2022-07-15T10:30:21", 5, bands, shift_deg=2.0),
            _image("20220801T103021_20220801T103244_T33WXS", "2022-08-01T10:30:21", 5, bands),
            _image("20200701T103021_20200701T103244_T33WXS", "2020-07-01T10:30:21", 5, bands),
        ],
        L1C: [_image("20210705T103021_20210705T103244_T33WXS", "2021-07-05T10:30:21", 10, bands)],
    }


@pytest.fixture()
def server(catalogue: dict[str, list[FakeImage]]):
    with EarthEngineServer(catalogue, token=TOKEN, projects=(PROJECT,)) as running:
        yield running


def _credentials(token: str = TOKEN):
    from google.oauth2.credentials import Credentials

    return Credentials(token=token)


def _source(server: EarthEngineServer, tmp_path: Path, **options) -> EarthEngineSource:
    settings = dict(project=PROJECT, url=server.url, cache_dir=str(tmp_path / "cache"), valid_scale_m=50.0,
                    tile_size=16, retries=2, backoff_s=0.01, timeout_s=5.0, credentials=_credentials())
    settings.update(options)
    return EarthEngineSource(**settings)


def _direct_warp(path: str, grid: Grid) -> np.ndarray:
    """The source GeoTIFF warped (nearest, masked as 0) in one piece onto ``grid``: the reference."""
    source = gdal.Open(path)
    target = gdal.GetDriverByName("MEM").Create("", grid.width, grid.height, 1, source.GetRasterBand(1).DataType)
    target.SetGeoTransform(grid.transform)
    target.SetProjection(grid.crs_wkt)
    gdal.Warp(target, source, options=gdal.WarpOptions(resampleAlg="near", srcNodata=0, dstNodata=0))
    return target.GetRasterBand(1).ReadAsArray()


def _cache_files(tmp_path: Path) -> list[str]:
    """The fetched arrays in the cache (the search's remembered valid fractions are not fetches)."""
    folder = tmp_path / "cache"
    return sorted(n for n in os.listdir(folder) if n != "valid_fraction") if folder.is_dir() else []


# --- search ---------------------------------------------------------------------------------------------------
def test_search_filters_dates_months_cloud_region_and_valid_fraction(server, tmp_path):
    source = _source(server, tmp_path)
    scenes = source.search(AREA, START, END, SUMMER, max_cloud=30)

    assert [s.id for s in scenes] == ["20210705T103021_20210705T103244_T33WXS",
                                      "20220801T103021_20220801T103244_T33WXS"]
    assert [s.valid_fraction for s in scenes] == [0.75, 1.0]  # a quarter of the area under cloud
    first = scenes[0]
    assert first.time == datetime(2021, 7, 5, 10, 30, 21, 24000, tzinfo=timezone.utc)
    assert first.cloud_cover == 10 and first.source == "earth_engine" and first.bands == ("nir", "green", "swir1")
    assert first.href == f"projects/earthengine-public/assets/{SR}/{first.id}"
    assert first.properties["MGRS_TILE"] == "33WXS" and first.version
    assert source.rejected == {"with too little of the area usable": 1}

    listings = server.calls("listAssets")
    assert len(listings) == 2  # one window per summer: December is never asked for
    query = listings[0].query
    assert query["filter"].startswith("properties.CLOUDY_PIXEL_PERCENTAGE <= 30.0 AND ")
    assert 'startTime >= "2021-06-01T00:00:00Z"' in query["filter"] and "intersects(" in query["filter"]
    assert listings[0].path == f"/v1/projects/earthengine-public/assets/{SR}:listAssets"
    assert listings[0].headers["x-goog-user-project"] == PROJECT
    masks = server.calls("getPixels")
    assert len(masks) == 3 and all(m.body["bandIds"] == ["SCL"] for m in masks)
    assert masks[0].body["grid"]["dimensions"] == {"width": 8, "height": 4}


def test_search_follows_pages(server, tmp_path):
    expected = [s.id for s in _source(server, tmp_path).search(AREA, START, END, SUMMER, max_cloud=30)]
    server.max_page_size = 1
    server.requests.clear()

    paged = _source(server, tmp_path, page_size=1).search(AREA, START, END, SUMMER, max_cloud=30)

    assert [s.id for s in paged] == expected
    listings = server.calls("listAssets")
    assert len(listings) == 3  # 2021: two scenes under 30 % cloud, one per page; 2022: one over the area
    assert sum("pageToken" in r.query for r in listings) == 1


def test_search_without_cloud_limit_and_valid_fraction_keeps_everything_over_the_area(server, tmp_path):
    scenes = _source(server, tmp_path, min_valid_fraction=0.0).search(AREA, START, END, None, None)
    assert len(scenes) == 5  # not the far scene, not the one before the start
    assert all("CLOUDY" not in r.query.get("filter", "") for r in server.calls("listAssets"))


def test_search_top_of_atmosphere_uses_qa60_and_b8(server, tmp_path):
    scenes = _source(server, tmp_path, collection=L1C).search(AREA, START, END, SUMMER, max_cloud=30)
    assert [s.valid_fraction for s in scenes] == [0.75]
    assert server.calls("getPixels")[0].body["bandIds"] == ["QA60", "B8"]


def test_no_scene_found_says_what_was_filtered(server, tmp_path):
    with pytest.raises(GlacierFlowError, match=r"No scene found .*2 listed over the area \(2 with too little"):
        _source(server, tmp_path, min_valid_fraction=1.0).search(
            AREA, datetime(2021, 7, 1, tzinfo=timezone.utc), datetime(2021, 7, 31, tzinfo=timezone.utc), SUMMER, 30)


def test_month_windows_wrap_over_new_year():
    windows = month_windows(datetime(2020, 10, 15, tzinfo=timezone.utc),
                            datetime(2021, 3, 10, tzinfo=timezone.utc), {11, 12, 1, 2})
    assert [(a.isoformat()[:10], b.isoformat()[:10]) for a, b in windows] == [("2020-11-01", "2021-02-28")]


# --- fetch ----------------------------------------------------------------------------------------------------
def test_tiled_fetch_equals_a_direct_warp_with_scaling_and_cloud_mask(server, tmp_path, bands):
    source = _source(server, tmp_path)
    scene = source.search(AREA, START, END, SUMMER, 30)[0]  # the one with a cloud quarter
    server.requests.clear()

    nir = source.fetch(scene, JOB)

    b8, scl = _direct_warp(bands["B8"], JOB), _direct_warp(bands["SCL_quarter"], JOB)
    expected = b8.astype(np.float32) * np.float32(1e-4)
    expected[~np.isin(scl, (2, 4, 5, 6, 7, 11)) | (b8 == 0)] = np.nan
    assert nir.dtype == np.float32 and nir.shape == JOB.shape
    np.testing.assert_array_equal(nir, expected)
    assert np.isnan(nir[:, :5]).all() and np.isnan(nir[:, 15:25]).any() and np.nanmax(nir) < 0.9
    tiles = server.calls("getPixels")
    assert len(tiles) == 9  # 45 x 37 px in 16 px tiles
    assert all(t.body["bandIds"] == ["B8", "SCL"] and t.body["fileFormat"] == "NPY" for t in tiles)
    assert all(t.body["grid"]["crsCode"] == "EPSG:32633" for t in tiles)
    assert max(t.body["grid"]["dimensions"]["width"] for t in tiles) == 16
    assert tiles[1].body["grid"]["affineTransform"]["translateX"] == 499953.0 + 160.0


def test_fetch_other_bands_and_top_of_atmosphere_mask(server, tmp_path, bands):
    source = _source(server, tmp_path, collection=L1C, tile_size=64)
    scene = source.search(AREA, START, END, SUMMER, 30)[0]

    swir = source.fetch(scene, JOB, "swir1")
    nir = source.fetch(scene, JOB)

    b11, qa60 = _direct_warp(bands["B11"], JOB), _direct_warp(bands["QA60"], JOB)
    expected = b11.astype(np.float32) * np.float32(1e-4)
    expected[(qa60 & (1 << 10)) > 0] = np.nan
    expected[b11 == 0] = np.nan
    np.testing.assert_array_equal(swir, expected)
    assert np.isnan(nir[:, 15:25]).all() and not np.isnan(nir[:, 5:14]).any()
    assert [t.body["bandIds"] for t in server.calls("getPixels")[-2:]] == [["B11", "QA60"], ["B8", "QA60"]]
    with pytest.raises(GlacierFlowError, match="use one of nir, green, swir1"):
        source.fetch(scene, JOB, "red")


def test_second_fetch_reads_the_cache(server, tmp_path):
    source = _source(server, tmp_path)
    scene = source.search(AREA, START, END, SUMMER, 30)[1]
    first = source.fetch(scene, JOB)
    before = len(server.requests)

    again = _source(server, tmp_path).fetch(scene, JOB, "nir")  # a new source, same cache folder

    assert len(server.requests) == before
    np.testing.assert_array_equal(first, again)
    assert os.path.exists(SceneCache(str(tmp_path / "cache")).path(scene, JOB, "nir"))


def test_requests_stay_under_the_service_limits(server, tmp_path):
    import ee

    big = _source(server, tmp_path, tile_size=100000)
    assert big.tile_side(("B8", "SCL")) == 4096  # 4096^2 px x 3 bytes = 48 MB exactly
    assert _source(server, tmp_path).tile_side(("B8", "SCL")) == 16
    big._connect()
    request = {"assetId": f"{SR}/20210705T103021_20210705T103244_T33WXS", "fileFormat": "NUMPY_NDARRAY",
               "bandIds": ["B8", "SCL"], "grid": {"dimensions": {"width": 4097, "height": 4096},
                                                  "affineTransform": {"scaleX": 10, "translateX": 500000,
                                                                      "scaleY": -10, "translateY": 7000000},
                                                  "crsCode": "EPSG:32633"}}
    with pytest.raises(ee.EEException, match=r"Total request size \(50343936 bytes\) must be less than or equal "
                                             r"to 50331648 bytes"):
        ee.data.getPixels(request)


def test_server_answers_geotiff_like_the_service(server, tmp_path, bands):
    import ee

    _source(server, tmp_path)._connect()
    data = ee.data.getPixels({"assetId": f"{SR}/20220801T103021_20220801T103244_T33WXS", "fileFormat": "GEO_TIFF",
                              "bandIds": ["B8"], "grid": ee_source.pixel_grid(JOB)})
    gdal.FileFromMemBuffer("/vsimem/ee_answer.tif", data)
    answer = gdal.Open("/vsimem/ee_answer.tif")
    try:
        assert answer.GetGeoTransform() == JOB.transform
        np.testing.assert_array_equal(answer.GetRasterBand(1).ReadAsArray(), _direct_warp(bands["B8"], JOB))
    finally:
        answer = None
        gdal.Unlink("/vsimem/ee_answer.tif")


# --- faults ---------------------------------------------------------------------------------------------------
def test_quota_and_server_errors_are_retried(server, tmp_path):
    source = _source(server, tmp_path)
    server.fail(1, 503, actions=("listAssets",))
    scene = source.search(AREA, START, END, SUMMER, 30)[1]
    server.fail(2, 429, actions=("getPixels",))

    nir = source.fetch(scene, JOB)

    assert np.isfinite(nir).any()
    assert len(server.calls("listAssets")) == 3  # two windows, one retried
    statuses = [r.action for r in server.requests].count("getPixels")
    assert statuses == 3 + 9 + 2  # three masks, nine tiles, two refused


def test_persistent_server_error_explains_and_keeps_no_cache_entry(server, tmp_path):
    source = _source(server, tmp_path)
    scene = source.search(AREA, START, END, SUMMER, 30)[0]
    server.fail(100, 500, actions=("getPixels",))
    with pytest.raises(GlacierFlowError, match=r"server error 500 after 3 attempts .*try later"):
        source.fetch(scene, JOB)
    assert _cache_files(tmp_path) == []
    server.fail(100, 429, actions=("listAssets",))
    with pytest.raises(GlacierFlowError, match=r"still over quota after 3 attempts \(429: Too Many Requests"):
        source.search(AREA, START, END, SUMMER, 30)


def test_interrupted_tiled_fetch_leaves_no_cache_entry(server, tmp_path):
    source = _source(server, tmp_path)
    scene = source.search(AREA, START, END, SUMMER, 30)[0]
    server.fail(3, 503, actions=("getPixels",), after=4)  # tile 5 of 9 fails all 3 attempts

    with pytest.raises(GlacierFlowError, match="server error 503"):
        source.fetch(scene, JOB)
    assert _cache_files(tmp_path) == []

    with pytest.raises(GlacierFlowError, match="cancelled"):
        source.fetch(scene, JOB, progress=lambda fraction: fraction < 0.5)
    assert _cache_files(tmp_path) == []

    server.requests.clear()
    source.fetch(scene, JOB)  # the fault is used up
    assert len(_cache_files(tmp_path)) == 1 and len(server.calls("getPixels")) == 9


def test_timeouts_are_retried_then_explained(server, tmp_path):
    source = _source(server, tmp_path, timeout_s=0.4)
    scene = source.search(AREA, START, END, SUMMER, 30)[1]
    server.hang(1, 1.0, actions=("getPixels",))
    assert np.isfinite(source.fetch(scene, JOB)).any()

    server.hang(3, 1.0, actions=("getPixels",))
    with pytest.raises(GlacierFlowError, match=r"no answer within 0.4 s, 3 attempts"):
        source.fetch(scene, Grid(UTM33, (500000.0, 10.0, 0.0, 7000000.0, 0.0, -10.0), 8, 8))


def test_refused_token_says_how_to_authenticate(server, tmp_path):
    source = _source(server, tmp_path, credentials=_credentials("expired-token"))
    with pytest.raises(GlacierFlowError, match=r"credentials were refused .*earthengine authenticate"):
        source.search(AREA, START, END, SUMMER, 30)


def test_wrong_project_is_denied_with_advice(server, tmp_path):
    source = _source(server, tmp_path, project="someone-elses-project")
    with pytest.raises(GlacierFlowError, match=r"access denied for project 'someone-elses-project' .*register"):
        source.search(AREA, START, END, SUMMER, 30)


def test_unreachable_service(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    source = EarthEngineSource(project=PROJECT, url=f"http://127.0.0.1:{port}", credentials=_credentials(),
                               retries=1, backoff_s=0.01, cache_dir=str(tmp_path))
    with pytest.raises(GlacierFlowError, match=r"cannot reach the service after 2 attempts .*internet connection"):
        source.search(AREA, START, END, SUMMER, 30)


# --- credentials ----------------------------------------------------------------------------------------------
@pytest.fixture()
def empty_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    return home


def test_missing_credentials_lists_the_three_ways(empty_home, tmp_path):
    source = EarthEngineSource(project=PROJECT, cache_dir=str(tmp_path / "cache"))
    with pytest.raises(GlacierFlowError, match=r"No Earth Engine credentials found.*\(1\) give a service-account "
                                               r"JSON key.*\(2\) run `earthengine authenticate`.*\(3\) run `gcloud"):
        source.search(AREA, START, END, SUMMER, 30)


def test_stored_credentials_and_their_project(empty_home):
    stored = empty_home / ".config" / "earthengine" / "credentials"
    stored.parent.mkdir(parents=True)
    stored.write_text(json.dumps({"refresh_token": "1//refresh", "project": "stored-project"}))

    login = resolve_login()
    assert login.project == "stored-project" and "stored credentials" in login.method
    assert login.credentials.refresh_token == "1//refresh"
    assert resolve_login("explicit-project").project == "explicit-project"

    stored.write_text(json.dumps({"refresh_token": "1//refresh"}))
    with pytest.raises(GlacierFlowError, match="needs a Google Cloud project id"):
        resolve_login()


def test_application_default_credentials_file(empty_home, monkeypatch):
    adc = empty_home / "adc.json"
    adc.write_text(json.dumps({"type": "authorized_user", "client_id": "id", "client_secret": "secret",
                               "refresh_token": "1//adc", "quota_project_id": "adc-project"}))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc))
    login = resolve_login()
    assert login.project == "adc-project" and "application-default" in login.method


def _service_account_key(folder: Path, token_uri: str) -> str:
    """A service-account JSON key with a fresh RSA key, whose tokens come from ``token_uri``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    key = folder / "key.json"
    key.write_text(json.dumps({"type": "service_account", "project_id": PROJECT, "private_key_id": "1",
                               "private_key": pem, "client_email": "gf@glacier-project.iam.gserviceaccount.com",
                               "client_id": "1", "token_uri": token_uri}))
    return str(key)


def test_service_account_key_gets_a_token_and_searches(server, tmp_path):
    key = _service_account_key(tmp_path, server.url + "/token")
    source = _source(server, tmp_path, credentials=None, project=None, service_account_key=key)

    scenes = source.search(AREA, START, END, SUMMER, 30)

    assert len(scenes) == 2 and source.login().project == PROJECT
    assert len(server.calls("token")) == 1 and "assertion=" in server.calls("token")[0].body.decode()
    assert server.calls("listAssets")[0].headers["authorization"] == f"Bearer {TOKEN}"


def test_revoked_service_account_is_refused_with_http_401(server, tmp_path):
    server.issued_token = "revoked-token"  # the token endpoint answers, the API refuses what it hands out
    key = _service_account_key(tmp_path, server.url + "/token")
    source = _source(server, tmp_path, credentials=None, service_account_key=key)
    with pytest.raises(GlacierFlowError, match=r"credentials were refused \(Request had invalid authentication"):
        source.search(AREA, START, END, SUMMER, 30)
    refused = [r for r in server.requests if r.action in ("algorithms", "listAssets")]  # ee.Initialize asks first
    assert refused[-1].headers["authorization"] == "Bearer revoked-token"


def test_bad_service_account_key_files(tmp_path):
    with pytest.raises(GlacierFlowError, match="does not exist"):
        resolve_login(PROJECT, str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"type": "service_account", "project_id": PROJECT}))
    with pytest.raises(GlacierFlowError, match="is not a service-account JSON key"):
        resolve_login(PROJECT, str(bad))


def test_unsupported_collection_and_missing_package(monkeypatch, tmp_path):
    with pytest.raises(GlacierFlowError, match="COPERNICUS/S2_SR_HARMONIZED or COPERNICUS/S2_HARMONIZED"):
        EarthEngineSource("COPERNICUS/S2_SR", project=PROJECT)
    monkeypatch.setitem(sys.modules, "ee", None)  # import ee now raises ImportError
    with pytest.raises(GlacierFlowError, match=r"pip install earthengine-api==1\.7\.50"):
        EarthEngineSource(project=PROJECT, credentials=_credentials(), cache_dir=str(tmp_path)).search(
            AREA, START, END, SUMMER, 30)


def test_listing_region_of_an_antimeridian_polygon_is_two_boxes_not_the_globe():
    from osgeo import osr

    from glacierflow.core.geo.area import Area
    from glacierflow.core.imagery.earth_engine import _wgs84_box

    srs = osr.SpatialReference()
    srs.ImportFromEPSG(4326)
    wgs84 = srs.ExportToWkt()
    across = Area("POLYGON((179.6 51.2, -179.7 51.2, -179.7 51.6, 179.6 51.6, 179.6 51.2))", wgs84)
    region = _wgs84_box(across)
    assert region["type"] == "MultiPolygon" and len(region["coordinates"]) == 2
    widths = sorted(max(p[0] for p in box[0]) - min(p[0] for p in box[0]) for box in region["coordinates"])
    assert widths == pytest.approx([0.3, 0.4], abs=1e-6)     # 179.6..180 and -180..-179.7, not 359.3 degrees
    one_side = _wgs84_box(Area("POLYGON((10 46, 11 46, 11 47, 10 47, 10 46))", wgs84))
    assert one_side["type"] == "Polygon"


# --- the shared ee session --------------------------------------------------------------------------------------
def test_an_initialised_session_of_the_same_project_is_reused_and_retries_are_left_alone(server, tmp_path):
    import ee

    credentials = _credentials()
    ee.Initialize(credentials=credentials, url=server.url, project=PROJECT)  # as another plugin or the console
    ee.data.setMaxRetries(3)
    session = ee.data._get_state().http_transport, ee.data._get_state().requests_session
    before = len(server.calls("algorithms"))
    source = EarthEngineSource(project=PROJECT, url=server.url, cache_dir=str(tmp_path / "cache"), retries=1,
                               backoff_s=0.01, timeout_s=5.0)  # no credentials of its own: the session's serve
    source._login = Login(credentials, PROJECT, "stored credentials")  # the route a console user has
    assert len(source.search(AREA, START, END, SUMMER, 30)) == 2
    assert len(server.calls("algorithms")) == before  # not initialised again
    assert (ee.data._get_state().http_transport, ee.data._get_state().requests_session) == session
    assert ee.data._get_state().credentials is credentials and ee.data._get_state().max_retries == 3


def test_a_session_of_another_project_is_not_used(server, tmp_path):
    import ee

    ee.Initialize(credentials=_credentials(), url=server.url, project=PROJECT)
    ee.data.setCloudApiUserProject("someone-elses-project")  # another user's session, another project
    source = _source(server, tmp_path)
    assert len(source.search(AREA, START, END, SUMMER, 30)) == 2
    assert {r.headers.get("x-goog-user-project") for r in server.calls("listAssets")} == {PROJECT}
