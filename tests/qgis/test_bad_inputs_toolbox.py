"""Bad inputs through processing.run, as a user gives them: a clear message, no input changed, no file left."""
from __future__ import annotations

import math
import os

import pytest
from osgeo import gdal
from qgis.core import QgsProcessingException
from servers.base import LocalServer, QuietHandler
from test_annual import series  # noqa: F401 (module fixture)
from test_stable_ground import OFFSET, box_ring, write_polygons
from test_stable_ground import product as stable_product  # noqa: F401 (module fixture)
from test_stakes import INSIDE, centre, products, truth_at  # noqa: F401 (fixtures and helpers)

from training.sample import write_sample


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return write_sample(str(tmp_path_factory.mktemp("bad_sample")), shape=(256, 256))


def test_annual_reads_a_bad_stake_file_before_the_first_pair(plugin, series, tmp_path):  # noqa: F811
    import processing

    stakes = tmp_path / "stakes.csv"
    stakes.write_text("name,lon,lat,speed\nS1,7.1,45.9,fast\n")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(QgsProcessingException, match="speed 'fast' is not a number"):
        processing.run("glacierflow:annual_velocity", {
            "FOLDER": series.folder, "YEAR_A": 2021, "ENGINE": "farneback", "STAKES": str(stakes),
            "OUTLINES": series.outlines, "OUTPUT": str(out / "annual.tif")})
    assert os.listdir(out) == []  # no annual.tif, style, reports or pair folder


def test_stakes_in_metres_read_as_degrees_are_refused(plugin, products, tmp_path):  # noqa: F811
    import processing

    _, truth, _, _ = products
    utm = tmp_path / "utm.csv"
    x, y = centre(*INSIDE[0])
    utm.write_text(f"name,lon,lat,speed\nS1,{x},{y},{math.hypot(*truth_at(x, y))}\n")
    from qgis.core import QgsVectorLayer

    layer = QgsVectorLayer(f"file://{utm}?type=csv&xField=lon&yField=lat&crs=EPSG:4326", "stakes", "delimitedtext")
    assert layer.isValid()
    with pytest.raises(QgsProcessingException, match="not a longitude and latitude"):
        processing.run("glacierflow:compare_stakes", {"STAKES": layer,
                                                      "SPEED_FIELD": "speed", "PRODUCTS": [truth],
                                                      "OUTPUT": str(tmp_path / "c.gpkg")})


def test_stable_ground_with_outlines_off_the_product_uses_its_glacier_band(plugin, stable_product,  # noqa: F811
                                                                            tmp_path):
    import processing

    grid, path, _, _ = stable_product
    far = write_polygons(tmp_path / "far.geojson", [box_ring(grid, 3000, 3040, 2000, 2080)], grid.crs_wkt)
    result = processing.run("glacierflow:stable_ground", {"INPUT": path, "GLACIER_OUTLINES": far, "CORRECT": True,
                                                          "OUTPUT": str(tmp_path / "c.tif"),
                                                          "REPORT": str(tmp_path / "r.json")})
    assert result["VX_OFFSET"] == pytest.approx(OFFSET[0], abs=0.5)


def test_velocity_pair_refuses_images_of_very_different_pixel_sizes(plugin, sample, tmp_path):
    import processing

    coarse = str(tmp_path / "b_300m.tif")
    gdal.Translate(coarse, sample.image_b, options=gdal.TranslateOptions(xRes=300, yRes=300, resampleAlg="average"))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(QgsProcessingException, match="10 m pixels and image B 300 m"):
        processing.run("glacierflow:velocity_pair", {"IMAGE_A": sample.image_a, "IMAGE_B": coarse,
                                                     "ENGINE": "farneback", "OUTPUT": str(out / "v.tif")})
    assert os.listdir(out) == []


def test_velocity_pair_refuses_a_date_only_date_mixed_with_an_exact_time(plugin, sample, tmp_path):
    import processing

    with pytest.raises(QgsProcessingException, match="date only.*Give both times"):
        processing.run("glacierflow:velocity_pair", {"IMAGE_A": sample.image_a, "IMAGE_B": sample.image_b,
                                                     "DATE_A": "2022-07-27", "ENGINE": "farneback",
                                                     "OUTPUT": str(tmp_path / "v.tif")})
    assert os.listdir(tmp_path) == []


def test_stakes_all_outside_the_rasters_are_an_error_not_a_nan_bias(plugin, products, tmp_path):  # noqa: F811
    import processing
    from test_stakes import _write_gpkg

    _, truth, _, _ = products
    x, y = centre(*INSIDE[0])
    stakes = _write_gpkg(str(tmp_path / "far.gpkg"), [((x + 1e5, y + 1e5), 100.0), ((x - 1e5, y), 50.0)])
    with pytest.raises(QgsProcessingException, match="None of the 2 stakes has a velocity"):
        processing.run("glacierflow:compare_stakes", {"STAKES": stakes, "SPEED_FIELD": "speed", "PRODUCTS": [truth],
                                                      "OUTPUT": str(tmp_path / "c.gpkg")})
    assert not (tmp_path / "c.gpkg").exists()


class _Refusing(QuietHandler):
    """A STAC API that refuses every request (HTTP 401), as one does for a wrong key."""

    def do_GET(self):  # noqa: N802
        body = b'{"detail": "bad key"}'
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_a_password_in_the_service_url_never_reaches_the_message(plugin, tmp_path):
    import processing

    server = LocalServer(_Refusing)
    try:
        url = server.url.replace("http://", "http://alice:s3cr3t@") + "/v1?token=tok-12345"
        with pytest.raises(QgsProcessingException) as error:
            processing.run("glacierflow:search_scenes", {
                "SOURCE": "earth_search_sentinel2", "SOURCE_URL": url, "EXTENT": "500000,510000,5100000,5110000 "
                "[EPSG:32632]", "START_DATE": "2021-07-01", "END_DATE": "2021-08-01",
                "OUTPUT": str(tmp_path / "s.gpkg")})
    finally:
        server.stop()
    message = str(error.value)
    assert "refused access (HTTP 401" in message and "127.0.0.1" in message
    assert "s3cr3t" not in message and "tok-12345" not in message
    assert not (tmp_path / "s.gpkg").exists()


class _ForwardProxy(QuietHandler):
    """A forward HTTP proxy that records the absolute URLs asked of it and answers 401 for the service."""

    def do_GET(self):  # noqa: N802
        with self.server.owner.lock:
            self.server.owner.seen.append(self.path)
        _Refusing.do_GET(self)


def test_the_proxy_set_in_qgis_carries_the_jobs_requests(plugin, tmp_path):
    import processing
    from qgis.core import QgsSettings

    proxy = LocalServer(_ForwardProxy)
    proxy.seen = []
    settings = QgsSettings()
    for key, value in (("proxyEnabled", True), ("proxyType", "HttpProxy"), ("proxyHost", "127.0.0.1"),
                       ("proxyPort", proxy.port), ("proxyExcludedUrls", "")):
        settings.setValue(f"proxy/{key}", value)
    try:
        with pytest.raises(QgsProcessingException, match="refused access \\(HTTP 401"):
            processing.run("glacierflow:search_scenes", {
                "SOURCE": "earth_search_sentinel2", "SOURCE_URL": "http://stac.glacierflow.invalid/v1",
                "EXTENT": "500000,510000,5100000,5110000 [EPSG:32632]", "START_DATE": "2021-07-01",
                "END_DATE": "2021-08-01", "OUTPUT": str(tmp_path / "s.gpkg")})
    finally:
        settings.setValue("proxy/proxyEnabled", False)
        proxy.stop()
    assert proxy.seen and proxy.seen[0].startswith("http://stac.glacierflow.invalid/v1")
    assert "http_proxy" not in os.environ or str(proxy.port) not in os.environ["http_proxy"]  # put back


def test_the_cache_folder_and_limit_come_from_the_plugin_settings(plugin, stable_product, tmp_path):  # noqa: F811
    import processing
    from qgis.core import QgsSettings

    from glacierflow.core.imagery.base import CACHE_SETTINGS, SceneCache, configure_cache

    settings = QgsSettings()
    settings.setValue("glacierflow/cache_folder", str(tmp_path / "cache"))
    settings.setValue("glacierflow/cache_limit_gb", 0.5)
    _, path, outlines, _ = stable_product
    try:
        processing.run("glacierflow:stable_ground", {"INPUT": path, "GLACIER_OUTLINES": outlines,
                                                     "REPORT": str(tmp_path / "r.json")})
        cache = SceneCache()
        assert cache.folder == str(tmp_path / "cache") and cache.max_bytes == 512 * 1024 ** 2
    finally:
        settings.remove("glacierflow/cache_folder")
        settings.remove("glacierflow/cache_limit_gb")
        configure_cache()
    assert CACHE_SETTINGS["folder"] == ""
