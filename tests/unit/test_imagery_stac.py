"""The STAC imagery sources against a real STAC API server (rustac) on 127.0.0.1.

Items point at small Cloud Optimized GeoTIFFs served with Range requests by a counting file server; the
Planetary Computer catalogue's files require the SAS token that a local token service hands out, so URL
signing is exercised. A proxy in front of rustac injects 5xx answers, slow answers and 401s.
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from osgeo import osr
from servers.base import closed_port
from servers.catalog import epsg_wkt, footprint_lonlat, stac_item, write_cog, write_items
from servers.fault_proxy import FaultProxy
from servers.file_server import FileServer
from servers.rustac_api import RustacServer, rustac_executable
from servers.sas_token import SasTokenServer

from glacierflow.core.errors import GlacierFlowError
from glacierflow.core.geo.area import Area
from glacierflow.core.geo.grid import Grid
from glacierflow.core.imagery.base import parse_date_bound, parse_months
from glacierflow.core.imagery.stac import StacSource, query_geometry, time_windows
from glacierflow.core.imagery.stac_client import Capabilities
from glacierflow.core.imagery.stac_profiles import LANDSAT_C2_L2

UTM32 = epsg_wkt(32632)
WGS84 = epsg_wkt(4326)
X0, Y0 = 400000.0, 6800000.0
LANDSAT_TRANSFORM = (X0, 30.0, 0.0, Y0, 0.0, -30.0)
B08_TRANSFORM = (X0, 10.0, 0.0, Y0, 0.0, -10.0)
SCL_TRANSFORM = (X0, 20.0, 0.0, Y0, 0.0, -20.0)
# The search polygon: Landsat pixels rows and cols 64..192 (3.84 km square).
AOI_BOUNDS = (X0 + 64 * 30.0, Y0 - 192 * 30.0, X0 + 192 * 30.0, Y0 - 64 * 30.0)
AOI = Area("POLYGON(({0} {1},{2} {1},{2} {3},{0} {3},{0} {1}))".format(*AOI_BOUNDS), UTM32)
# A triangle 100 km east: its bounding box holds a scene its area does not touch.
TRIANGLE_X, TRIANGLE_Y = X0 + 100000.0, Y0 - 10000.0
TRIANGLE = Area(f"POLYGON(({TRIANGLE_X} {TRIANGLE_Y},{TRIANGLE_X + 10000} {TRIANGLE_Y},"
                f"{TRIANGLE_X} {TRIANGLE_Y + 10000},{TRIANGLE_X} {TRIANGLE_Y}))", UTM32)
YEAR_2021 = (parse_date_bound("2021-01-01"), parse_date_bound("2021-12-31", end=True))
SUMMER = parse_months("6-10")

QA_CLEAR, QA_SNOW, QA_CLOUD, QA_DILATED, QA_SHADOW, QA_FILL = 21824, 13600, 22280, 21826, 23888, 1
QA_WATER_BIT = 1 << 7
SCL_VEGETATION, SCL_SNOW, SCL_CLOUD, SCL_SHADOW, SCL_NODATA = 4, 11, 9, 3, 0


def landsat_arrays() -> dict[str, np.ndarray]:
    """DN of green, swir16 and nir08 (noise, one DN 0) and two qa_pixel layouts, 512 x 512 px at 30 m."""
    rng = np.random.default_rng(42)
    arrays = {name: (base + rng.integers(0, 4000, (512, 512))).astype(np.uint16)
              for name, base in (("green", 20000), ("swir16", 8000), ("nir08", 15000))}
    arrays["green"][5, 40] = 0  # no data inside the scene
    qa = np.full((512, 512), QA_CLEAR, dtype=np.uint16)
    qa[:, :32] = QA_FILL
    qa[100:200, 100:200] = QA_SNOW  # glacier snow: must stay usable
    qa[290:300, 300:350] = QA_DILATED
    qa[300:350, 300:350] = QA_CLOUD
    qa[350:370, 300:350] = QA_SHADOW
    arrays["qa_clear"] = qa
    cloudy = np.full((512, 512), QA_CLEAR, dtype=np.uint16)
    cloudy[:, 64:128] = QA_CLOUD  # the western half of the search polygon
    arrays["qa_cloudy"] = cloudy
    for name in ("qa_clear", "qa_cloudy"):  # a random water bit (7, not masked): the mask compresses like a real one
        arrays[name] |= (rng.integers(0, 2, (512, 512)) * QA_WATER_BIT).astype(np.uint16)
    return arrays


def sentinel_arrays() -> dict[str, np.ndarray]:
    """B08 DN (1024 x 1024 px at 10 m) and SCL classes (512 x 512 px at 20 m)."""
    rng = np.random.default_rng(7)
    b08 = (2000 + rng.integers(0, 3000, (1024, 1024))).astype(np.uint16)
    scl = np.full((512, 512), SCL_VEGETATION, dtype=np.uint8)
    scl[:, :10] = SCL_NODATA
    scl[100:150, 100:150] = SCL_CLOUD
    scl[150:160, 100:150] = SCL_SHADOW
    scl[200:250, 200:250] = SCL_SNOW
    return {"B08": b08, "SCL": scl}


@dataclass
class World:
    """The running servers and what the catalogues hold."""

    files: FileServer
    sas: SasTokenServer
    proxy: FaultProxy
    pc_url: str
    es_url: str
    landsat: dict[str, np.ndarray]
    sentinel: dict[str, np.ndarray]
    folder: Path


def _landsat_items(files: FileServer) -> list[dict]:
    ring = footprint_lonlat(UTM32, (X0, Y0 - 512 * 30, X0 + 512 * 30, Y0))
    far = footprint_lonlat(UTM32, (X0 + 300000, Y0 - 512 * 30, X0 + 300000 + 512 * 30, Y0))
    west = [[179.5, 65.0], [179.99, 65.0], [179.99, 65.5], [179.5, 65.5], [179.5, 65.0]]
    east = [[-179.99, 65.0], [-179.5, 65.0], [-179.5, 65.5], [-179.99, 65.5], [-179.99, 65.0]]

    def assets(qa: str) -> dict[str, str]:
        return {"green": files.href("pc/landsat/green.tif"), "swir16": files.href("pc/landsat/swir16.tif"),
                "nir08": files.href("pc/landsat/nir08.tif"), "qa_pixel": files.href(f"pc/landsat/{qa}.tif")}

    def item(item_id: str, when: str, cloud: float, platform: str = "landsat-8", footprint=ring,
             qa: str = "qa_clear") -> dict:
        return stac_item(item_id, "landsat-c2-l2", when, footprint, assets(qa), platform=platform,
                         **{"eo:cloud_cover": cloud})

    return [
        item("LC08_L2SP_198015_20210710_02_T1", "2021-07-10T10:28:41.123456Z", 10.0),
        item("LC09_L2SP_198015_20210815_02_T1", "2021-08-15T10:28:40Z", 35.0, "landsat-9", qa="qa_cloudy"),
        item("LE07_L2SP_198015_20210720_02_T1", "2021-07-20T10:10:00Z", 5.0, "landsat-7"),
        item("LC08_L2SP_198015_20210905_02_T1", "2021-09-05T10:28:41Z", 85.0),
        item("LC08_L2SP_198015_20211201_02_T1", "2021-12-01T10:28:41Z", 3.0),
        item("LC08_L2SP_198015_20220712_02_T1", "2022-07-12T10:28:41Z", 3.0),
        item("LC08_L2SP_193015_20210725_02_T1", "2021-07-25T10:28:41Z", 3.0, footprint=far),
        item("LC08_ANTIMERIDIAN_WEST", "2021-07-11T00:10:00Z", 3.0, footprint=west),
        item("LC08_ANTIMERIDIAN_EAST", "2021-07-12T00:10:00Z", 3.0, footprint=east),
        item("LC08_TRIANGLE_INSIDE", "2021-07-13T10:00:00Z", 3.0, footprint=footprint_lonlat(UTM32, (
            TRIANGLE_X, TRIANGLE_Y, TRIANGLE_X + 3000, TRIANGLE_Y + 3000))),
        item("LC08_TRIANGLE_CORNER", "2021-07-14T10:00:00Z", 3.0, footprint=footprint_lonlat(UTM32, (
            TRIANGLE_X + 8000, TRIANGLE_Y + 8000, TRIANGLE_X + 10000, TRIANGLE_Y + 10000))),
    ]


def _sentinel_items(files: FileServer, prefix: str, b08: str, scl: str,
                    scenes: dict[str, tuple[str, dict]]) -> list[dict]:
    """Items of the Sentinel-2 files under ``prefix`` with asset keys ``b08`` and ``scl``; scenes: id -> (time,
    properties)."""
    ring = footprint_lonlat(UTM32, (X0, Y0 - 1024 * 10, X0 + 1024 * 10, Y0))
    assets = {b08: files.href(f"{prefix}/B08.tif"), scl: files.href(f"{prefix}/SCL.tif")}
    return [stac_item(item_id, "sentinel-2-l2a", when, ring, assets, platform="sentinel-2a",
                      **{"eo:cloud_cover": 5.0, **properties}) for item_id, (when, properties) in scenes.items()]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    """File server, SAS token service, rustac for a Planetary Computer-like catalogue (behind the fault proxy)
    and rustac for an Earth Search-like catalogue."""
    executable = rustac_executable()
    if executable is None:
        pytest.skip("rustac is not installed (pip install rustac==0.9.18): it is the STAC API server these tests use")
    folder = tmp_path_factory.mktemp("stac")
    for sub in ("files/pc/landsat", "files/pc/s2", "files/es/s2"):
        (folder / sub).mkdir(parents=True)
    landsat, sentinel = landsat_arrays(), sentinel_arrays()
    for name in ("green", "swir16", "nir08"):
        write_cog(str(folder / f"files/pc/landsat/{name}.tif"), landsat[name], UTM32, LANDSAT_TRANSFORM, 0)
    for name in ("qa_clear", "qa_cloudy"):
        write_cog(str(folder / f"files/pc/landsat/{name}.tif"), landsat[name], UTM32, LANDSAT_TRANSFORM, 1, "NEAREST")
    for prefix in ("pc/s2", "es/s2"):
        write_cog(str(folder / f"files/{prefix}/B08.tif"), sentinel["B08"], UTM32, B08_TRANSFORM, 0)
        write_cog(str(folder / f"files/{prefix}/SCL.tif"), sentinel["SCL"], UTM32, SCL_TRANSFORM, 0, "NEAREST")
    files = FileServer(str(folder / "files"))
    sas = SasTokenServer()
    files.required_query, files.protected_prefix = {"sig": sas.signature}, "pc/"
    pc_items = _landsat_items(files) + _sentinel_items(files, "pc/s2", "B08", "SCL", {
        "S2A_MSIL2A_20210705T103021_N0301_R108_T32VLP": ("2021-07-05T10:30:21.024Z",
                                                         {"s2:processing_baseline": "03.01"}),
        "S2B_MSIL2A_20220705T103019_N0400_R108_T32VLP": ("2022-07-05T10:30:19.5Z",
                                                         {"s2:processing_baseline": "04.00"}),
    })
    es_items = _sentinel_items(files, "es/s2", "nir", "scl", {
        "S2B_32VLP_20220705_0_L2A": ("2022-07-05T10:40:22.718000Z", {"s2:processing_baseline": "04.00",
                                                                   "earthsearch:boa_offset_applied": True}),
        "S2A_32VLP_20220805_0_L2A": ("2022-08-05T10:40:20Z", {"s2:processing_baseline": "04.00",
                                                            "earthsearch:boa_offset_applied": False}),
    })
    pc_api = RustacServer(executable, [write_items(str(folder / "pc.json"), pc_items)], str(folder / "pc.log"))
    proxy = FaultProxy(pc_api.url)
    es_api = RustacServer(executable, [write_items(str(folder / "es.json"), es_items)], str(folder / "es.log"))
    try:
        pc_api.start(public_url=proxy.url)  # rustac's links (next pages) point at the proxy
        es_api.start()
        yield World(files, sas, proxy, proxy.url, es_api.url, landsat, sentinel, folder)
    finally:
        pc_api.stop()
        es_api.stop()
        for server in (proxy, sas, files):
            server.stop()


@pytest.fixture(autouse=True)
def clean_servers(request):
    """Each test starts with no faults, no truncation, default tokens and zero counts."""
    if "world" not in request.fixturenames:
        yield
        return
    world: World = request.getfixturevalue("world")
    world.proxy.reset()
    world.files.reset_counts()
    world.files.truncate.clear()
    world.files.fail_next.clear()
    world.sas.required_key, world.sas.lifetime = None, timedelta(hours=1)
    world.sas.requests.clear()
    yield


def pc_source(world: World, tmp_path: Path, profile="planetary_computer_landsat", **options) -> StacSource:
    settings = dict(api_url=world.pc_url, signing_url=world.sas.signing_url, cache_dir=str(tmp_path / "cache"),
                    timeout=5.0, retries=2, backoff=0.01)
    settings.update(options)
    return StacSource(profile, **settings)


def es_source(world: World, tmp_path: Path, **options) -> StacSource:
    settings = dict(api_url=world.es_url, cache_dir=str(tmp_path / "cache"), timeout=5.0, retries=2, backoff=0.01)
    settings.update(options)
    return StacSource("earth_search_sentinel2", **settings)


def ids(scenes) -> list[str]:
    return [scene.id for scene in scenes]


# --- search -------------------------------------------------------------------------------------------------

def test_search_rechecks_months_cloud_and_platform_on_the_client(world, tmp_path):
    source = pc_source(world, tmp_path)
    scenes = source.search(AOI, *YEAR_2021, months=SUMMER, max_cloud=50)
    assert ids(scenes) == ["LC08_L2SP_198015_20210710_02_T1", "LC09_L2SP_198015_20210815_02_T1"]
    first = scenes[0]
    assert first.time == datetime(2021, 7, 10, 10, 28, 41, 123456, tzinfo=timezone.utc)
    assert first.cloud_cover == 10.0 and first.source == "planetary_computer_landsat"
    assert first.bands == ("nir", "green", "swir1") and first.valid_fraction is None
    # rustac declares neither the query nor the filter extension: cloud and platform were checked here
    assert source.rejected == {"too cloudy": 1, "platform not landsat-8/landsat-9": 1}
    bodies = [body for _, _, body in world.proxy.searches()]
    assert bodies and all("query" not in body and "filter" not in body for body in bodies)
    assert bodies[0]["datetime"] == "2021-06-01T00:00:00Z/2021-10-31T23:59:59.999999Z"  # summer only
    assert bodies[0]["intersects"]["type"] == "Polygon"


def test_open_start_lets_the_server_send_winter_scenes_which_the_client_drops(world, tmp_path):
    source = pc_source(world, tmp_path)
    scenes = source.search(AOI, None, YEAR_2021[1], months=SUMMER)
    assert "LC08_L2SP_198015_20211201_02_T1" not in ids(scenes)
    assert source.rejected["outside the months"] == 1
    assert world.proxy.searches()[0][2]["datetime"] == "../2021-12-31T23:59:59.999999Z"


def test_paging_with_a_small_limit_finds_the_same_scenes(world, tmp_path):
    whole = pc_source(world, tmp_path).search(AOI, None, None)
    world.proxy.reset()
    paged = pc_source(world, tmp_path, page_size=2).search(AOI, None, None)
    assert ids(paged) == ids(whole) and len(paged) == 5
    bodies = [body for method, _, body in world.proxy.searches() if method == "POST"]
    assert len(bodies) == 3  # 6 items over the polygon (with the Landsat 7 one), 2 per page
    assert all(body["intersects"] == bodies[0]["intersects"] and body["limit"] == 2 for body in bodies)
    assert [body.get("skip") for body in bodies] == [None, 2, 4]


def test_search_by_get_when_post_is_not_used(world, tmp_path):
    # One page: rustac 0.9.18 answers 500 when it builds a GET next link holding collections, bbox or intersects.
    source = pc_source(world, tmp_path, prefer_get=True)
    scenes = source.search(AOI, *YEAR_2021, months=SUMMER, max_cloud=50)
    assert ids(scenes) == ["LC08_L2SP_198015_20210710_02_T1", "LC09_L2SP_198015_20210815_02_T1"]
    searches = world.proxy.searches()
    assert [method for method, _, _ in searches] == ["GET"] and "bbox=" in searches[0][1]
    assert source.rejected == {"too cloudy": 1, "platform not landsat-8/landsat-9": 1}
    # GET asks by bounding box: the scene in the triangle's empty corner is dropped here, not by the server
    assert ids(source.search(TRIANGLE, *YEAR_2021)) == ["LC08_TRIANGLE_INSIDE"]
    assert source.rejected == {"outside the area": 1}
    assert ids(pc_source(world, tmp_path).search(TRIANGLE, *YEAR_2021)) == ["LC08_TRIANGLE_INSIDE"]  # POST


def test_polygon_in_another_crs_finds_the_same_scenes(world, tmp_path):
    lonlat = footprint_lonlat(UTM32, AOI_BOUNDS)
    area = Area({"type": "Polygon", "coordinates": [lonlat]}, WGS84)
    scenes = pc_source(world, tmp_path).search(area, *YEAR_2021, months=SUMMER, max_cloud=50)
    assert ids(scenes) == ["LC08_L2SP_198015_20210710_02_T1", "LC09_L2SP_198015_20210815_02_T1"]


def test_polygon_across_the_antimeridian_is_split_and_finds_both_sides(world, tmp_path):
    utm60 = epsg_wkt(32660)
    to_utm = osr.CoordinateTransformation(_lonlat_srs(), _traditional(utm60))
    corners = [to_utm.TransformPoint(lon, lat)[:2] for lon, lat in ((179.8, 65.1), (-179.8, 65.1),
                                                                     (-179.8, 65.3), (179.8, 65.3))]
    ring = ",".join(f"{x} {y}" for x, y in corners + corners[:1])
    area = Area(f"POLYGON(({ring}))", utm60)
    geometry = query_geometry(area)
    assert geometry["type"] == "MultiPolygon" and len(geometry["coordinates"]) == 2
    lons = [p[0] for polygon in geometry["coordinates"] for p in polygon[0]]
    assert min(lons) >= -180.0 and max(lons) <= 180.0 and min(lons) < -179.7 and max(lons) > 179.7
    scenes = pc_source(world, tmp_path).search(area, *YEAR_2021)
    assert ids(scenes) == ["LC08_ANTIMERIDIAN_WEST", "LC08_ANTIMERIDIAN_EAST"]
    beyond = Area("POLYGON((179.8 65.1,180.2 65.1,180.2 65.3,179.8 65.3,179.8 65.1))", WGS84)  # lon past 180
    assert query_geometry(beyond)["type"] == "MultiPolygon"
    assert ids(pc_source(world, tmp_path).search(beyond, *YEAR_2021)) == ids(scenes)


def test_no_scene_found_says_what_was_searched_and_what_to_widen(world, tmp_path):
    with pytest.raises(GlacierFlowError) as error:
        pc_source(world, tmp_path).search(AOI, parse_date_bound("2019-01-01"), parse_date_bound("2019-12-31", True),
                                          months=SUMMER, max_cloud=20)
    message = str(error.value)
    assert "No scene found" in message and "landsat-c2-l2" in message and "2019-01-01 to 2019-12-31" in message
    assert "months 6,7,8,9,10" in message and "cloud cover <= 20 %" in message and "Widen" in message


def test_valid_fraction_reads_only_the_mask_keeps_snow_and_drops_cloudy_scenes(world, tmp_path):
    source = pc_source(world, tmp_path, valid_fraction=True, valid_resolution=120.0)
    scenes = source.search(AOI, *YEAR_2021, months=SUMMER, max_cloud=50)
    fractions = {scene.id[:4]: scene.valid_fraction for scene in scenes}
    assert fractions["LC08"] == pytest.approx(1.0)  # the snow block inside the polygon is usable ground
    assert fractions["LC09"] == pytest.approx(0.5, abs=0.05)  # cloud over the western half
    read = {path for _, path, _, status in world.files.log if status in (200, 206)}
    assert read == {"pc/landsat/qa_clear.tif", "pc/landsat/qa_cloudy.tif"}
    size = os.path.getsize(world.folder / "files/pc/landsat/qa_cloudy.tif")
    assert world.files.bytes_sent["pc/landsat/qa_cloudy.tif"] < size / 2  # an overview over the polygon only
    before = len(world.files.log)
    strict = pc_source(world, tmp_path, min_valid_fraction=0.7, valid_resolution=120.0)
    assert ids(strict.search(AOI, *YEAR_2021, months=SUMMER, max_cloud=50)) == ["LC08_L2SP_198015_20210710_02_T1"]
    assert strict.rejected["too little valid area"] == 1
    assert len(world.files.log) == before  # the fractions were remembered: no mask is read again
    coarser = pc_source(world, tmp_path, valid_fraction=True)   # another mask resolution: measured again
    coarser.search(AOI, *YEAR_2021, months=SUMMER, max_cloud=50)
    assert len(world.files.log) > before


# --- fetch: scaling, masks, windows, cache --------------------------------------------------------------------

def _landsat_scene(world, source, stamp="20210710"):
    scenes = source.search(AOI, *YEAR_2021, months=SUMMER, max_cloud=50)
    return next(scene for scene in scenes if stamp in scene.id)


def test_landsat_reflectance_and_qa_pixel_mask(world, tmp_path):
    source = pc_source(world, tmp_path)
    scene = _landsat_scene(world, source)
    grid = Grid(UTM32, LANDSAT_TRANSFORM, 400, 400)
    green = source.fetch(scene, grid, "green")
    assert green.dtype == np.float32 and green.shape == (400, 400)
    dn = world.landsat["green"][:400, :400].astype(np.float64)
    qa = world.landsat["qa_clear"][:400, :400] & ~np.uint16(QA_WATER_BIT)
    masked = (qa == QA_FILL) | (qa == QA_CLOUD) | (qa == QA_DILATED) | (qa == QA_SHADOW) | (dn == 0)
    assert np.array_equal(np.isnan(green), masked)
    np.testing.assert_allclose(green[~masked], dn[~masked] * 2.75e-05 - 0.2, atol=1e-6)
    assert not np.isnan(green[100:200, 100:200]).any()  # snow is kept
    swir = source.fetch(scene, grid, "swir1")
    expected = world.landsat["swir16"][:400, :400] * 2.75e-05 - 0.2
    np.testing.assert_allclose(swir[~masked], expected[~masked], atol=1e-6)
    default = source.fetch(scene, grid)  # "" = NIR, the velocity band
    np.testing.assert_allclose(default[~masked], (world.landsat["nir08"][:400, :400] * 2.75e-05 - 0.2)[~masked],
                               atol=1e-6)
    with pytest.raises(GlacierFlowError, match="no band 'red'"):
        source.fetch(scene, grid, "red")


def _sentinel_grid() -> Grid:
    return Grid(UTM32, B08_TRANSFORM, 600, 600)


def _scl_mask_on_b08(world) -> np.ndarray:
    scl = np.repeat(np.repeat(world.sentinel["SCL"], 2, axis=0), 2, axis=1)[:600, :600]
    return np.isin(scl, (SCL_NODATA, SCL_CLOUD, SCL_SHADOW))


@pytest.mark.parametrize("when, dn_offset", [("2021-07-05", 0.0), ("2022-07-05", -1000.0)])
def test_planetary_computer_sentinel2_baseline_offset_and_scl_mask(world, tmp_path, when, dn_offset):
    source = pc_source(world, tmp_path, profile="planetary_computer_sentinel2")
    day = parse_date_bound(when)
    (scene,) = source.search(AOI, day, day + timedelta(days=1))
    nir = source.fetch(scene, _sentinel_grid())
    masked = _scl_mask_on_b08(world)
    assert np.array_equal(np.isnan(nir), masked)
    expected = (world.sentinel["B08"][:600, :600] + dn_offset) / 10000.0
    np.testing.assert_allclose(nir[~masked], expected[~masked], atol=1e-6)
    assert not np.isnan(nir[400:500, 400:500]).any()  # SCL snow and ice kept


@pytest.mark.parametrize("when, dn_offset", [("2022-07-05", 0.0), ("2022-08-05", -1000.0)])
def test_earth_search_offset_follows_boa_offset_applied(world, tmp_path, when, dn_offset):
    source = es_source(world, tmp_path)
    day = parse_date_bound(when)
    (scene,) = source.search(AOI, day, day + timedelta(days=1))
    assert scene.bands == ("nir",)
    nir = source.fetch(scene, _sentinel_grid(), "nir")
    masked = _scl_mask_on_b08(world)
    expected = (world.sentinel["B08"][:600, :600] + dn_offset) / 10000.0
    np.testing.assert_allclose(nir[~masked], expected[~masked], atol=1e-6)
    assert world.sas.requests == {}  # Earth Search is not signed
    with pytest.raises(GlacierFlowError, match="choose one of nir"):
        source.fetch(scene, _sentinel_grid(), "green")


def test_windowed_read_then_cached_rerun_makes_no_request(world, tmp_path):
    source = pc_source(world, tmp_path, profile="planetary_computer_sentinel2")
    (scene,) = source.search(AOI, parse_date_bound("2021-07-05"), parse_date_bound("2021-07-05", True))
    small = Grid(UTM32, (X0 + 700 * 10.0, 10.0, 0.0, Y0 - 700 * 10.0, 0.0, -10.0), 64, 64)
    world.files.reset_counts()
    first = source.fetch(scene, small)
    size = os.path.getsize(world.folder / "files/pc/s2/B08.tif")
    assert 0 < world.files.bytes_sent["pc/s2/B08.tif"] < size * 0.15  # one 256 px block and the header
    np.testing.assert_allclose(first, world.sentinel["B08"][700:764, 700:764] / 10000.0, atol=1e-6)
    world.files.reset_counts()
    again = source.fetch(scene, small)
    assert world.files.total_requests() == 0 and np.array_equal(again, first)
    assert world.sas.requests["sentinel-2-l2a"] == 1  # one token for the band and the mask
    fresh = pc_source(world, tmp_path / "other", profile="planetary_computer_sentinel2")
    assert np.array_equal(fresh.fetch(scene, small), first) and world.files.total_requests() > 0


def test_storage_errors_are_retried_by_gdal(world, tmp_path):
    source = pc_source(world, tmp_path, profile="planetary_computer_sentinel2")
    (scene,) = source.search(AOI, parse_date_bound("2021-07-05"), parse_date_bound("2021-07-05", True))
    small = Grid(UTM32, (X0 + 700 * 10.0, 10.0, 0.0, Y0 - 700 * 10.0, 0.0, -10.0), 64, 64)
    world.files.reset_counts()
    world.files.fail_next["pc/s2/B08.tif"] = 2
    np.testing.assert_allclose(source.fetch(scene, small), world.sentinel["B08"][700:764, 700:764] / 1e4, atol=1e-6)
    statuses = [status for _, path, _, status in world.files.log if path == "pc/s2/B08.tif"]
    assert statuses[:2] == [503, 503] and set(statuses[2:]) <= {200, 206}
    world.files.fail_next["pc/s2/SCL.tif"] = 10  # more than the retries
    with pytest.raises(GlacierFlowError, match="SCL.tif .*try again later"):
        pc_source(world, tmp_path / "again", profile="planetary_computer_sentinel2").fetch(scene, small)


def test_interrupted_download_leaves_no_cache_entry(world, tmp_path):
    source = pc_source(world, tmp_path)
    scene = _landsat_scene(world, source)
    grid = Grid(UTM32, LANDSAT_TRANSFORM, 128, 128)
    world.files.truncate.add("pc/landsat/qa_clear.tif")  # the band downloads, the mask breaks off half way
    with pytest.raises(GlacierFlowError, match="qa_clear.tif"):
        source.fetch(scene, grid, "green")
    assert glob.glob(str(tmp_path / "cache" / "*")) == [] and glob.glob(str(tmp_path / "cache" / ".*")) == []
    world.files.truncate.clear()
    assert not np.isnan(source.fetch(scene, grid, "green")[40:60, 40:60]).any()
    assert len(glob.glob(str(tmp_path / "cache" / "*.npy"))) == 2  # the band and its usable-pixel mask


# --- signing ------------------------------------------------------------------------------------------------

def test_unsigned_urls_are_refused_with_a_signing_message(world, tmp_path):
    source = pc_source(world, tmp_path, profile=replace(LANDSAT_C2_L2, signing=""))
    scene = _landsat_scene(world, source)
    with pytest.raises(GlacierFlowError) as error:
        source.fetch(scene, Grid(UTM32, LANDSAT_TRANSFORM, 64, 64), "green")
    assert "HTTP 403" in str(error.value) and "SAS token" in str(error.value)
    assert "sig=" not in str(error.value)


def test_token_service_key_from_the_environment_and_expiry(world, tmp_path, monkeypatch):
    world.sas.required_key = "pc-test-key"
    monkeypatch.delenv("PC_SDK_SUBSCRIPTION_KEY", raising=False)
    source = pc_source(world, tmp_path)
    scene = _landsat_scene(world, source)
    grid = Grid(UTM32, LANDSAT_TRANSFORM, 64, 64)
    with pytest.raises(GlacierFlowError, match="PC_SDK_SUBSCRIPTION_KEY") as error:
        source.fetch(scene, grid, "green")
    assert "HTTP 401" in str(error.value)
    monkeypatch.setenv("PC_SDK_SUBSCRIPTION_KEY", "pc-test-key")
    keyed = pc_source(world, tmp_path)
    keyed.fetch(scene, grid, "green")
    keyed.fetch(scene, grid, "swir1")
    assert world.sas.requests["landsat-c2-l2"] == 1  # kept until it expires
    world.sas.lifetime = timedelta(minutes=1)  # inside the renewal margin: every signing asks again
    short = pc_source(world, tmp_path / "short")
    short.fetch(scene, grid, "green")
    assert world.sas.requests["landsat-c2-l2"] == 3  # the band and the mask each got a fresh token


# --- faults -----------------------------------------------------------------------------------------------

def test_service_errors_are_retried_then_succeed(world, tmp_path):
    source = pc_source(world, tmp_path)
    source.api.capabilities()
    world.proxy.faults.extend([(503, 0.0), (502, 0.0)])
    scenes = source.search(AOI, *YEAR_2021, months=SUMMER, max_cloud=50)
    assert len(scenes) == 2
    posts = [body for method, _, body in world.proxy.searches() if method == "POST"]
    assert len(posts) == 3 and posts[0] == posts[1] == posts[2]


def test_persistent_service_errors_give_a_clear_message(world, tmp_path):
    world.proxy.always = (503, 0.0)
    with pytest.raises(GlacierFlowError) as error:
        pc_source(world, tmp_path).search(AOI, *YEAR_2021)
    message = str(error.value)
    assert "Planetary Computer STAC API" in message and "HTTP 503" in message and "3 tries" in message
    assert "try again later" in message
    assert len(world.proxy.log) == 3


def test_timeouts_are_retried_then_reported(world, tmp_path):
    world.proxy.always = (0, 1.0)  # every answer comes after 1 s
    with pytest.raises(GlacierFlowError, match=r"did not answer within 0\.3 s .*2 tries"):
        pc_source(world, tmp_path, timeout=0.3, retries=1).search(AOI, *YEAR_2021)


def test_unreachable_server(tmp_path):
    source = StacSource("earth_search_sentinel2", api_url=f"http://127.0.0.1:{closed_port()}", retries=1,
                        backoff=0.01, timeout=2.0, cache_dir=str(tmp_path))
    with pytest.raises(GlacierFlowError, match="could not be reached .*Check the internet connection"):
        source.search(AOI, *YEAR_2021)


def test_401_names_the_credentials_and_headers_fix_it(world, tmp_path):
    world.proxy.required_header = ("Authorization", "Bearer secret")
    with pytest.raises(GlacierFlowError) as error:
        pc_source(world, tmp_path).search(AOI, *YEAR_2021)
    assert "refused access (HTTP 401" in str(error.value) and "subscription key" in str(error.value)
    authorised = pc_source(world, tmp_path, headers={"Authorization": "Bearer secret"})
    assert len(authorised.search(AOI, *YEAR_2021, months=SUMMER, max_cloud=50)) == 2


# --- the query itself (no server needed) -----------------------------------------------------------------------

def test_search_body_uses_only_what_the_api_declares(tmp_path):
    source = StacSource("planetary_computer_landsat", cache_dir=str(tmp_path))
    geometry = query_geometry(AOI)
    window = YEAR_2021
    plain = source.search_body(Capabilities("http://x/search", True), geometry, window, 30.0)
    assert set(plain) == {"collections", "intersects", "limit", "datetime"}
    with_query = source.search_body(Capabilities("http://x/search", True, query=True, sort=True), geometry, window, 30)
    assert with_query["query"] == {"eo:cloud_cover": {"lte": 30.0}, "platform": {"in": ["landsat-8", "landsat-9"]}}
    assert with_query["sortby"] == [{"field": "properties.datetime", "direction": "asc"}]
    with_filter = source.search_body(Capabilities("http://x/search", True, filter=True, fields=True), geometry,
                                     window, 30)
    assert with_filter["filter-lang"] == "cql2-json" and with_filter["filter"]["op"] == "and"
    assert {"op": "<=", "args": [{"property": "eo:cloud_cover"}, 30.0]} in with_filter["filter"]["args"]
    assert "properties.eo:cloud_cover" in with_filter["fields"]["include"]


def test_time_windows_cover_only_the_months():
    start, end = parse_date_bound("2020-03-15"), parse_date_bound("2021-12-31", end=True)
    windows = time_windows(start, end, parse_months("11-2"))
    assert [(a.date().isoformat(), b.date().isoformat()) for a, b in windows] == [
        ("2020-11-01", "2021-02-28"), ("2021-11-01", "2021-12-31")]
    assert time_windows(start, end, None) == [(start, end)]
    assert time_windows(None, end, {7}) == [(None, end)]


def _lonlat_srs():
    return _traditional(WGS84)


def _traditional(wkt: str):
    srs = osr.SpatialReference()
    srs.ImportFromWkt(wkt)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs
