"""The remote imagery sources through the toolbox: ``processing.run`` as the toolbox and qgis_process call it.

A real STAC API (rustac) on 127.0.0.1 lists Earth Search-like Sentinel-2 items whose assets are small COGs
served with Range requests by a counting file server; a local server speaking Earth Engine's REST protocol
(tests/ee_server) stands in for Earth Engine, with a real service-account key whose token URL points at it.
The algorithms get the services only through their parameters (SOURCE, SOURCE_URL, CREDENTIALS, PROJECT).
"""
from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, ogr, osr
from servers.catalog import epsg_wkt, footprint_lonlat, stac_item, write_cog, write_items
from servers.file_server import FileServer
from servers.rustac_api import RustacServer, rustac_executable

from glacierflow.core.geo.crs import same_crs, transform_bounds
from glacierflow.core.geo.grid import Grid
from glacierflow.core.io.raster import write_array
from glacierflow.core.io.timestamps import DAYS_PER_YEAR
from glacierflow.core.velocity.convert import displacement_to_velocity
from training.sample_series import advect
from training.synthetic import glacier_pair

UTM32, UTM33, WGS84 = epsg_wkt(32632), epsg_wkt(32633), epsg_wkt(4326)
X0, Y0 = 400000.0, 6800000.0  # the search scenes' upper-left corner (UTM 32N), 10 m pixels
SIDE = 256  # px of the 10 m bands; SCL and swir16 are 128 px at 20 m
AOI_PX = (40, 40, 200, 200)  # the search polygon: 10 m columns and rows 40..200 (1.6 km square)
VX0 = X0 + 60000.0  # the moving glacier's scenes, 60 km east of the search scenes
VELOCITY_PX_PER_YEAR = 5.0
SCL_MASKED = (0, 1, 3, 8, 9, 10)  # Sen2Cor classes the Sentinel-2 profiles mask
S2_COLLECTION = "sentinel-2-l2a"

# id -> (time, cloud %, BOA offset already applied, SCL file); the search over the AOI in 2022 keeps 0705 and 0805
SEARCH_ITEMS: dict[str, tuple[str, float, bool, str]] = {
    "S2B_32VLP_20220705_0_L2A": ("2022-07-05T10:40:22Z", 5.0, True, "scl"),
    "S2A_32VLP_20220720_0_L2A": ("2022-07-20T10:40:20Z", 12.0, True, "scl_cloudy"),  # < 50 % usable
    "S2A_32VLP_20220805_0_L2A": ("2022-08-05T10:40:20Z", 20.0, False, "scl"),  # DN carry the -1000 offset
    "S2B_32VLP_20220815_0_L2A": ("2022-08-15T10:40:22Z", 80.0, True, "scl"),  # too cloudy
    "S2A_32VLP_20221201_0_L2A": ("2022-12-01T10:40:20Z", 1.0, True, "scl"),  # outside June-October
}
KEPT = ["S2B_32VLP_20220705_0_L2A", "S2A_32VLP_20220805_0_L2A"]
VELOCITY_DATES = ("2021-07-15T10:40:00Z", "2021-08-15T10:40:00Z", "2022-07-15T10:40:00Z")


@pytest.fixture(scope="module", autouse=True)
def private_cache(tmp_path_factory):
    """Fetched arrays go to a cache of this module, not the user's (the algorithms take no cache folder)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GLACIERFLOW_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


# --- the STAC world ---------------------------------------------------------------------------------------

@dataclass
class StacWorld:
    files: FileServer
    api_url: str
    arrays: dict[str, np.ndarray]
    aoi: str  # GeoPackage of the search polygon (EPSG:4326)
    velocity_aoi: str
    truth: dict[str, np.ndarray]  # vx, vy (m/yr) and glacier on the velocity scenes' grid


def search_arrays() -> dict[str, np.ndarray]:
    """DN of nir (textured), green and swir16 (snow on the western half), and two SCL layouts."""
    rng = np.random.default_rng(11)
    nir = (2000 + rng.integers(0, 3000, (SIDE, SIDE))).astype(np.uint16)
    green = np.where(np.arange(SIDE) < SIDE // 2, 6000, 1500) * np.ones((SIDE, 1))
    swir16 = np.where(np.arange(SIDE // 2) < SIDE // 4, 1500, 3000) * np.ones((SIDE // 2, 1))
    scl = np.full((SIDE // 2, SIDE // 2), 4, np.uint8)  # vegetation
    scl[:, :5] = 0  # no data at the western edge, outside the polygon
    scl[40:55, 40:55] = 9  # a cloud inside the polygon
    scl[55:60, 40:55] = 3  # its shadow
    scl[70:90, 70:90] = 11  # snow and ice: usable
    cloudy = np.full_like(scl, 9)
    cloudy[:, 90:] = 4  # only a sliver of the polygon usable
    return {"nir": nir, "green": green.astype(np.uint16), "swir16": swir16.astype(np.uint16), "scl": scl,
            "scl_cloudy": cloudy}


def write_area(path: Path, crs_wkt: str, bounds: Sequence[float]) -> str:
    """A GeoPackage holding the rectangle ``bounds`` (in ``crs_wkt``) as a lon/lat polygon."""
    ring = footprint_lonlat(crs_wkt, bounds)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(4326)
    dataset = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    layer = dataset.CreateLayer("area", srs, ogr.wkbPolygon)
    feature = ogr.Feature(layer.GetLayerDefn())
    feature.SetGeometry(ogr.CreateGeometryFromWkt("POLYGON((" + ",".join(f"{lon} {lat}" for lon, lat in ring)
                                                  + "))"))
    layer.CreateFeature(feature)
    feature, layer, dataset = None, None, None
    return str(path)


def _search_items(files: FileServer) -> list[dict]:
    ring = footprint_lonlat(UTM32, (X0, Y0 - SIDE * 10, X0 + SIDE * 10, Y0))
    items = []
    for item_id, (when, cloud, applied, scl) in SEARCH_ITEMS.items():
        assets = {"nir": files.href("es/nir.tif"), "green": files.href("es/green.tif"),
                  "swir16": files.href("es/swir16.tif"), "scl": files.href(f"es/{scl}.tif")}
        items.append(stac_item(item_id, S2_COLLECTION, when, ring, assets, platform="sentinel-2a",
                               **{"eo:cloud_cover": cloud, "s2:processing_baseline": "04.00",
                                  "earthsearch:boa_offset_applied": applied}))
    far = footprint_lonlat(UTM32, (X0 + 300000, Y0 - SIDE * 10, X0 + 300000 + SIDE * 10, Y0))
    items.append(stac_item("S2B_32VMP_20220710_0_L2A", S2_COLLECTION, "2022-07-10T10:40:22Z", far,
                           {"nir": files.href("es/nir.tif"), "scl": files.href("es/scl.tif")},
                           platform="sentinel-2b", **{"eo:cloud_cover": 1.0}))
    return items


def _velocity_scenes(folder: Path, files: FileServer) -> tuple[list[dict], dict[str, np.ndarray]]:
    """B08 COGs of a synthetic glacier moving ``VELOCITY_PX_PER_YEAR`` px/yr at most, and their items."""
    pair = glacier_pair(shape=(SIDE, SIDE), max_displacement_px=VELOCITY_PX_PER_YEAR, seed=5, noise=0.0,
                        brightness_change=False)
    transform = (VX0, 10.0, 0.0, Y0, 0.0, -10.0)
    scl = np.full((SIDE // 2, SIDE // 2), 11, np.uint8)  # snow and ice everywhere: all usable
    write_cog(str(folder / "vel/scl.tif"), scl, UTM32, (VX0, 20.0, 0.0, Y0, 0.0, -20.0), 0, "NEAREST")
    ring = footprint_lonlat(UTM32, (VX0, Y0 - SIDE * 10, VX0 + SIDE * 10, Y0))
    first = datetime.fromisoformat(VELOCITY_DATES[0].replace("Z", "+00:00"))
    items = []
    for when in VELOCITY_DATES:
        moment = datetime.fromisoformat(when.replace("Z", "+00:00"))
        years = (moment - first).total_seconds() / 86400.0 / DAYS_PER_YEAR
        dn = np.clip(np.round(advect(pair.image_a, pair.dx, pair.dy, years) * 10000.0), 1, 65535).astype(np.uint16)
        name = f"vel/B08_{moment:%Y%m%d}.tif"
        write_cog(str(folder / name), dn, UTM32, transform, 0)
        items.append(stac_item(f"S2A_32VMQ_{moment:%Y%m%d}_0_L2A", S2_COLLECTION, when, ring,
                               {"nir": files.href(name), "scl": files.href("vel/scl.tif")}, platform="sentinel-2a",
                               **{"eo:cloud_cover": 3.0, "s2:processing_baseline": "05.00",
                                  "earthsearch:boa_offset_applied": True}))
    vx, vy = displacement_to_velocity(pair.dx, pair.dy, transform, DAYS_PER_YEAR)
    return items, {"vx": vx, "vy": vy, "glacier": pair.glacier}


@pytest.fixture(scope="module")
def stac(tmp_path_factory) -> StacWorld:
    """The file server and rustac serving the search scenes and the moving glacier's scenes."""
    executable = rustac_executable()
    if executable is None:
        pytest.skip("rustac is not installed (pip install rustac==0.9.18): it is the STAC API server these tests use")
    folder = tmp_path_factory.mktemp("remote_stac")
    (folder / "files/es").mkdir(parents=True)
    (folder / "files/vel").mkdir(parents=True)
    arrays = search_arrays()
    for name in ("nir", "green"):
        write_cog(str(folder / f"files/es/{name}.tif"), arrays[name], UTM32, (X0, 10.0, 0.0, Y0, 0.0, -10.0), 0)
    write_cog(str(folder / "files/es/swir16.tif"), arrays["swir16"], UTM32, (X0, 20.0, 0.0, Y0, 0.0, -20.0), 0)
    for name in ("scl", "scl_cloudy"):
        write_cog(str(folder / f"files/es/{name}.tif"), arrays[name], UTM32, (X0, 20.0, 0.0, Y0, 0.0, -20.0), 0,
                  "NEAREST")
    files = FileServer(str(folder / "files"))
    velocity_items, truth = _velocity_scenes(folder / "files", files)
    items = write_items(str(folder / "items.json"), _search_items(files) + velocity_items)
    api = RustacServer(executable, [items], str(folder / "rustac.log"))
    col0, row0, col1, row1 = AOI_PX
    aoi = write_area(folder / "aoi.gpkg", UTM32, (X0 + col0 * 10, Y0 - row1 * 10, X0 + col1 * 10, Y0 - row0 * 10))
    velocity_aoi = write_area(folder / "glacier_area.gpkg", UTM32,
                              (VX0 + 160, Y0 - (SIDE - 16) * 10, VX0 + (SIDE - 16) * 10, Y0 - 160))
    try:
        api.start()
        yield StacWorld(files, api.url, arrays, aoi, velocity_aoi, truth)
    finally:
        api.stop()
        files.stop()


def stac_parameters(stac: StacWorld, **more) -> dict:
    parameters = {"SOURCE": "earth_search_sentinel2", "SOURCE_URL": stac.api_url, "AREA": stac.aoi,
                  "START_DATE": "2022-01-01", "END_DATE": "2022-12-31", "MONTHS": "6-10", "MAX_CLOUD": 50}
    parameters.update(more)
    return parameters


def table_rows(path: str) -> list[dict]:
    from qgis.core import QgsVectorLayer

    layer = QgsVectorLayer(path, "scenes")
    assert layer.isValid(), path
    return [{name: feature[name] for name in layer.fields().names()} for feature in layer.getFeatures()]


def offsets(dataset, x0: float, y0: float, pixel: float) -> tuple[int, int]:
    """Column and row of ``dataset``'s upper-left pixel on the grid at (x0, y0) with ``pixel`` m pixels."""
    gx, dx, _, gy, _, dy = dataset.GetGeoTransform()
    assert dx == pytest.approx(pixel) and dy == pytest.approx(-pixel)
    col, row = (gx - x0) / pixel, (y0 - gy) / pixel
    assert col == pytest.approx(round(col), abs=1e-6) and row == pytest.approx(round(row), abs=1e-6)
    return int(round(col)), int(round(row))


# --- STAC: search, download, annual velocity, NDSI series ------------------------------------------------

def test_search_scenes_from_a_stac_api(plugin, stac, tmp_path):
    import processing

    result = processing.run("glacierflow:search_scenes", stac_parameters(stac, OUTPUT=str(tmp_path / "s.gpkg")))
    rows = table_rows(result["OUTPUT"])
    assert [r["scene_id"] for r in rows] == KEPT  # not too cloudy, in the months, over the polygon, >= 50 % usable
    assert [r["datetime"] for r in rows] == ["2022-07-05T10:40:22+00:00", "2022-08-05T10:40:20+00:00"]
    assert [r["cloud_cover"] for r in rows] == [5.0, 20.0]
    assert {r["source"] for r in rows} == {"earth_search_sentinel2"}
    # the cloud and its shadow cover 0.03 of the 2.56 km2 polygon (read from SCL at 150 m, nearest)
    assert all(0.9 <= r["valid_fraction"] < 1.0 for r in rows)

    everything = processing.run("glacierflow:search_scenes", stac_parameters(
        stac, MONTHS="", MAX_CLOUD=None, MIN_VALID_FRACTION=0, OUTPUT=str(tmp_path / "all.gpkg")))
    assert [r["scene_id"] for r in table_rows(everything["OUTPUT"])] == sorted(
        SEARCH_ITEMS, key=lambda item_id: SEARCH_ITEMS[item_id][0])  # not the scene 300 km away


def expected_reflectance(stac: StacWorld, dataset, dn_offset: float) -> np.ndarray:
    """The nir reflectance the file should hold: (DN + offset) / 10000, NaN where SCL masks."""
    col, row = offsets(dataset, X0, Y0, 10.0)
    height, width = dataset.RasterYSize, dataset.RasterXSize
    dn = stac.arrays["nir"][row:row + height, col:col + width].astype(np.float64)
    scl = np.repeat(np.repeat(stac.arrays["scl"], 2, axis=0), 2, axis=1)[row:row + height, col:col + width]
    assert dn.shape == (height, width)
    return np.where(np.isin(scl, SCL_MASKED), np.nan, (dn + dn_offset) / 10000.0)


def test_download_scenes_from_a_stac_api_then_a_rerun_downloads_nothing(plugin, stac, tmp_path):
    import processing

    parameters = stac_parameters(stac, OUTPUT=str(tmp_path / "scenes"), TABLE=str(tmp_path / "files.csv"))
    stac.files.reset_counts()
    result = processing.run("glacierflow:download_scenes", parameters)
    assert result["COUNT"] == 2
    with open(result["TABLE"], newline="", encoding="utf-8") as handle:
        table = list(csv.DictReader(handle))
    assert [r["scene_id"] for r in table] == KEPT and {r["source"] for r in table} == {"earth_search_sentinel2"}
    for row, dn_offset in zip(table, (0.0, -1000.0)):  # 0805 still carries the baseline 04.00 offset
        dataset = gdal.Open(row["file"])
        assert same_crs(dataset.GetProjection(), UTM32)
        assert dataset.GetMetadataItem("LAYOUT", "IMAGE_STRUCTURE") == "COG"
        values = dataset.GetRasterBand(1).ReadAsArray()
        expected = expected_reflectance(stac, dataset, dn_offset)
        assert np.array_equal(np.isnan(values), np.isnan(expected)) and np.isnan(values).any()
        np.testing.assert_allclose(values[~np.isnan(values)], expected[~np.isnan(expected)], atol=1e-6)
        # the polygon's grid: 1.6 km and at most a pixel more on each side
        assert 160 <= dataset.RasterXSize <= 162 and 160 <= dataset.RasterYSize <= 162
        dataset = None
    assert stac.files.requests["es/nir.tif"] > 0
    written = {path: os.path.getmtime(path) for path in (r["file"] for r in table)}

    stac.files.reset_counts()
    again = processing.run("glacierflow:download_scenes", parameters)
    assert again["COUNT"] == 2
    assert {path: os.path.getmtime(path) for path in written} == written
    requested = {path for path, count in stac.files.requests.items() if count}
    # only the search's valid-fraction reads of the masks; no band and no grid-sized mask downloaded again
    assert requested <= {"es/scl.tif", "es/scl_cloudy.tif"}, requested
    assert all(status in (200, 206) for _, _, _, status in stac.files.log)


def test_annual_velocity_from_a_stac_api(plugin, stac, tmp_path):
    import processing

    output = str(tmp_path / "annual.tif")
    result = processing.run("glacierflow:annual_velocity", {
        "SOURCE": "earth_search_sentinel2", "SOURCE_URL": stac.api_url, "AREA": stac.velocity_aoi,
        "YEAR_A": 2021, "YEAR_B": 2022, "MONTHS": "6-10", "ENGINE": "farneback",
        "WORK_FOLDER": str(tmp_path / "pairs"), "OUTPUT": output})
    assert result["OUTPUT"] == output and result["PAIR_COUNT"] == 2  # two 2021 scenes x one 2022 scene
    downloaded = sorted(p for p in os.listdir(tmp_path / "pairs" / "scenes") if p.endswith(".tif"))
    assert len(downloaded) == 3

    dataset = gdal.Open(output)
    col, row = offsets(dataset, VX0, Y0, 10.0)
    names = [dataset.GetRasterBand(i).GetDescription() for i in range(1, dataset.RasterCount + 1)]
    speed = dataset.GetRasterBand(names.index("speed") + 1).ReadAsArray().astype(np.float64)
    height, width = speed.shape
    dataset = None
    window = np.s_[row:row + height, col:col + width]
    true_speed = np.hypot(stac.truth["vx"], stac.truth["vy"])[window]
    max_speed = float(np.nanmax(true_speed))
    assert 40.0 < max_speed < 60.0  # 5 px/yr at 10 m
    inner = np.zeros(speed.shape, bool)
    inner[16:-16, 16:-16] = True  # away from the grid's edges, where the flow has no texture beyond
    moving = inner & stac.truth["glacier"][window] & (true_speed > 0.4 * max_speed) & np.isfinite(speed)
    still = inner & ~stac.truth["glacier"][window] & (true_speed < 1.0) & np.isfinite(speed)
    assert moving.sum() > 200 and still.sum() > 200
    error = np.abs(speed[moving] - true_speed[moving])
    assert np.median(error) < 0.12 * max_speed, np.median(error)  # about 0.05 measured (farneback)
    assert np.median(speed[still]) < 0.05 * max_speed


def test_ndsi_series_from_a_stac_api(plugin, stac, tmp_path):
    import processing

    output = str(tmp_path / "ndsi.tif")
    result = processing.run("glacierflow:ndsi_series", stac_parameters(
        stac, MONTHS="", ALIGN="none", WINDOW_MONTHS=3, PIXEL_SIZE=30, OUTPUT=output))
    assert result["OUTPUT"] == output and result["WINDOWS"] == 2 and result["FILLED_WINDOWS"] == 0
    dataset = gdal.Open(output)
    bands = [dataset.GetRasterBand(i) for i in (1, 2)]
    assert [b.GetDescription() for b in bands] == ["NDSI 2022-07-01..2022-09-30", "NDSI 2022-10-01..2022-12-31"]
    frames = [b.ReadAsArray() for b in bands]
    gx, size, _, _, _, _ = dataset.GetGeoTransform()
    dataset = None
    centres = gx + size * (np.arange(frames[0].shape[1]) + 0.5)
    snow, bare = centres < X0 + 1100, centres > X0 + 1500  # green and SWIR1 change at X0 + 1280 m
    july = (0.6 - 0.15) / (0.6 + 0.15)  # DN 6000 and 1500
    august = (0.5 - 0.05) / (0.5 + 0.05)  # the same DN with the baseline 04.00 offset of -1000
    np.testing.assert_allclose(frames[0][:, snow], (july + august) / 2, atol=0.01)
    np.testing.assert_allclose(frames[1][:, snow], july, atol=0.01)  # December alone
    assert np.all(frames[0][:, bare] == 0) and np.all(frames[1][:, bare] == 0)  # NDSI < 0.3 is not snow


# --- Earth Engine -----------------------------------------------------------------------------------------

EE_PROJECT = "glacier-project"
EE_TOKEN = "toolbox-token"
EE_NATIVE = Grid(UTM33, (500000.0, 10.0, 0.0, 7000000.0, 0.0, -10.0), 200, 200)
EE_IDS = ("20210705T103021_20210705T103244_T33WXS", "20210810T103021_20210810T103244_T33WXS",
          "20210820T103021_20210820T103244_T33WXS")


@dataclass
class EeWorld:
    server: object
    key: str
    aoi: str
    b8: np.ndarray
    scl: np.ndarray


def service_account_key(path: Path, token_uri: str) -> str:
    """A service-account JSON key with a fresh RSA key, whose tokens come from ``token_uri``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    path.write_text(json.dumps({"type": "service_account", "project_id": EE_PROJECT, "private_key_id": "1",
                                "private_key": pem, "client_email": "gf@glacier-project.iam.gserviceaccount.com",
                                "client_id": "1", "token_uri": token_uri}))
    return str(path)


@pytest.fixture(scope="module")
def earth_engine(tmp_path_factory) -> EeWorld:
    """The Earth Engine server with three summer 2021 scenes (one too cloudy) and a key for it."""
    pytest.importorskip("ee", reason="earthengine-api is not installed (pip install earthengine-api==1.7.50)")
    from ee_server import EarthEngineServer, FakeImage

    folder = tmp_path_factory.mktemp("remote_ee")
    rng = np.random.default_rng(8)
    b8 = rng.integers(500, 9000, EE_NATIVE.shape).astype(np.uint16)
    scl = np.full(EE_NATIVE.shape, 4, np.uint8)
    scl[60:80, 60:80] = 9  # a cloud inside the polygon
    paths = {name: write_array(str(folder / f"{name}.tif"), EE_NATIVE, array, nodata=0)
             for name, array in (("B8", b8), ("SCL", scl))}
    west, south, east, north = transform_bounds(EE_NATIVE.bounds(), UTM33, WGS84)
    footprint = {"type": "Polygon", "coordinates": [[[west, south], [east, south], [east, north], [west, north],
                                                     [west, south]]]}
    images = [FakeImage(image_id, datetime.strptime(image_id[:15], "%Y%m%dT%H%M%S").replace(tzinfo=timezone.utc),
                        {"CLOUDY_PIXEL_PERCENTAGE": cloud, "MGRS_TILE": "33WXS"}, footprint, dict(paths))
              for image_id, cloud in zip(EE_IDS, (10.0, 60.0, 5.0))]
    aoi = write_area(folder / "aoi.gpkg", UTM33, (500400.0, 6998400.0, 501600.0, 6999600.0))
    with EarthEngineServer({"COPERNICUS/S2_SR_HARMONIZED": images}, token=EE_TOKEN,
                           projects=(EE_PROJECT,)) as server:
        key = service_account_key(folder / "key.json", server.url + "/token")
        yield EeWorld(server, key, aoi, b8, scl)


def ee_parameters(world: EeWorld, **more) -> dict:
    parameters = {"SOURCE": "earth_engine", "SOURCE_URL": world.server.url, "CREDENTIALS": world.key,
                  "PROJECT": EE_PROJECT, "AREA": world.aoi, "START_DATE": "2021-01-01", "END_DATE": "2021-12-31",
                  "MONTHS": "6-10", "MAX_CLOUD": 30}
    parameters.update(more)
    return parameters


def test_earth_engine_search_and_download_through_the_toolbox(plugin, earth_engine, tmp_path):
    import processing

    found = processing.run("glacierflow:search_scenes", ee_parameters(earth_engine,
                                                                      OUTPUT=str(tmp_path / "s.gpkg")))
    rows = table_rows(found["OUTPUT"])
    assert [r["scene_id"] for r in rows] == [EE_IDS[0], EE_IDS[2]]  # the 60 % cloudy scene is left out
    assert [r["cloud_cover"] for r in rows] == [10.0, 5.0] and {r["source"] for r in rows} == {"earth_engine"}
    assert all(0.9 <= r["valid_fraction"] <= 1.0 for r in rows)
    tokens = earth_engine.server.calls("token")
    assert tokens and "assertion=" in tokens[0].body.decode()  # the key's JWT was exchanged for a token
    assert all(call.headers.get("x-goog-user-project") == EE_PROJECT
               for call in earth_engine.server.calls("listAssets"))

    result = processing.run("glacierflow:download_scenes", ee_parameters(
        earth_engine, OUTPUT=str(tmp_path / "scenes"), TABLE=str(tmp_path / "files.csv")))
    assert result["COUNT"] == 2
    with open(result["TABLE"], newline="", encoding="utf-8") as handle:
        table = list(csv.DictReader(handle))
    assert [r["scene_id"] for r in table] == [EE_IDS[0], EE_IDS[2]]
    for row in table:
        dataset = gdal.Open(row["file"])
        assert same_crs(dataset.GetProjection(), UTM33)
        col, row_ = offsets(dataset, 500000.0, 7000000.0, 10.0)
        values = dataset.GetRasterBand(1).ReadAsArray()
        window = np.s_[row_:row_ + values.shape[0], col:col + values.shape[1]]
        expected = np.where(earth_engine.scl[window] == 9, np.nan, earth_engine.b8[window] / 10000.0)
        assert np.array_equal(np.isnan(values), np.isnan(expected)) and np.isnan(values).any()
        np.testing.assert_allclose(values[~np.isnan(values)], expected[~np.isnan(expected)], atol=1e-6)
        dataset = None


def test_earth_engine_without_credentials_says_how_to_authenticate(plugin, earth_engine, tmp_path, monkeypatch):
    import processing
    from qgis.core import QgsProcessingException

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    parameters = ee_parameters(earth_engine, OUTPUT=str(tmp_path / "s.gpkg"))
    del parameters["CREDENTIALS"]  # no key, no stored login, no application-default credentials
    with pytest.raises(QgsProcessingException) as error:
        processing.run("glacierflow:search_scenes", parameters)
    message = str(error.value)
    assert "No Earth Engine credentials found" in message and "service-account JSON key" in message
    assert "earthengine authenticate" in message and "gcloud auth application-default login" in message
    assert not (tmp_path / "s.gpkg").exists()


def _two_glaciers(path: Path) -> str:
    """Two rectangles side by side on the moving glacier's scenes (UTM 32N), ids G1 and G2."""
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32632)
    dataset = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    layer = dataset.CreateLayer("glaciers", srs, ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("RGIId", ogr.OFTString))
    for glacier_id, left in (("G1", VX0 + 500.0), ("G2", VX0 + 1400.0)):
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetField("RGIId", glacier_id)
        x0, x1, y0, y1 = left, left + 700.0, Y0 - 2100.0, Y0 - 500.0
        feature.SetGeometry(ogr.CreateGeometryFromWkt(f"POLYGON(({x0} {y0},{x1} {y0},{x1} {y1},{x0} {y1},{x0} {y0}))"))
        layer.CreateFeature(feature)
    feature, layer, dataset = None, None, None
    return str(path)


def test_regional_velocity_from_a_stac_api_then_a_rerun_fetches_nothing(plugin, stac, tmp_path):
    import processing

    parameters = {"OUTLINES": _two_glaciers(tmp_path / "glaciers.gpkg"), "SOURCE": "earth_search_sentinel2",
                  "SOURCE_URL": stac.api_url, "YEAR_A": 2021, "YEAR_B": 2022, "MONTHS": "6-10",
                  "ENGINE": "farneback", "WORKERS": 0, "OUTPUT": str(tmp_path / "region")}
    stac.files.reset_counts()
    result = processing.run("glacierflow:regional_velocity", parameters)
    assert (result["GLACIER_COUNT"], result["COMPLETE_COUNT"]) == (2, 2)
    assert stac.files.total_requests("vel/") > 0  # the scenes came from the file server behind the STAC items
    errors, moving_count = [], 0
    for glacier in ("G1", "G2"):
        dataset = gdal.Open(str(tmp_path / "region" / glacier / "velocity.tif"))
        names = [dataset.GetRasterBand(i).GetDescription() for i in range(1, dataset.RasterCount + 1)]
        speed = dataset.GetRasterBand(names.index("speed") + 1).ReadAsArray().astype(np.float64)
        col, row = offsets(dataset, VX0, Y0, 10.0)
        window = np.s_[row:row + speed.shape[0], col:col + speed.shape[1]]
        true_speed = np.hypot(stac.truth["vx"], stac.truth["vy"])[window]
        moving = stac.truth["glacier"][window] & (true_speed > 20.0) & np.isfinite(speed)
        errors.append(np.abs(speed[moving] - true_speed[moving]))
        moving_count += int(moving.sum())
    assert moving_count > 200
    assert np.median(np.concatenate(errors)) < 6.0  # 0.12 of the 50 m/yr maximum, as the annual job's test

    stac.files.reset_counts()
    again = processing.run("glacierflow:regional_velocity", parameters)
    assert again["TASKS_RUN"] == 0 and again["COMPLETE_COUNT"] == 2
    assert stac.files.total_requests("vel/") == 0  # every scene and product was already on disk
