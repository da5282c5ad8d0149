"""The network layer never shows a credential and never reads a local file for a remote catalogue."""
from __future__ import annotations

import os
from datetime import datetime, timezone

import pytest
from servers.base import closed_port

from glacierflow.core.errors import GlacierFlowError, redact_secrets
from glacierflow.core.geo.grid import Grid
from glacierflow.core.imagery.base import Scene
from glacierflow.core.imagery.stac import StacSource
from glacierflow.core.imagery.stac_client import HttpPolicy, Service, request_json
from training.sample import sample_grid


@pytest.mark.parametrize("text, secret", [
    ("https://alice:s3cr3t@stac.example.com/v1/search", "s3cr3t"),
    ("https://stac.example.com/v1/search?collections=x&token=tok-12345", "tok-12345"),
    ("https://b.blob.core.windows.net/c/x.tif?st=2021&sig=AbCd%2Bef", "AbCd%2Bef"),
    ("s3://bucket/k.tif?X-Amz-Signature=deadbeef&X-Amz-Credential=AKIA123", "AKIA123"),
    ("header Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload", "eyJhbGciOiJIUzI1NiJ9"),
])
def test_redaction_removes_the_secret_and_keeps_the_address(text, secret):
    redacted = redact_secrets(text)
    assert secret not in redacted and "***" in redacted
    assert redacted.split("?")[0].split("@")[-1].replace("***", "") in text  # host and path stay readable


def test_an_unreachable_service_with_a_password_in_its_url_never_shows_it():
    url = f"http://alice:s3cr3t@127.0.0.1:{closed_port()}/search?token=tok-12345"
    with pytest.raises(GlacierFlowError) as error:
        request_json("GET", url, HttpPolicy(timeout=2.0, retries=0), Service("A STAC API", "give a key"))
    message = str(error.value)
    assert "could not be reached" in message and "127.0.0.1" in message
    assert "s3cr3t" not in message and "tok-12345" not in message


@pytest.mark.parametrize("href", ["file:///etc/hostname", "/etc/hostname", "/vsizip//tmp/x.zip/a.tif"])
def test_a_remote_catalogue_may_not_point_an_asset_at_a_local_file(tmp_path, href):
    source = StacSource("earth_search_sentinel2", api_url=f"http://127.0.0.1:{closed_port()}",
                        cache_dir=str(tmp_path / "cache"), retries=0, timeout=1.0)
    scene = Scene("S2A_32VLP_20220705_0_L2A", datetime(2022, 7, 5, tzinfo=timezone.utc), 5.0, source.name,
                  "https://example.com/item", properties={"asset:nir": href, "asset:mask": href,
                                                          "collection": "sentinel-2-l2a"}, bands=("nir",))
    grid: Grid = sample_grid((16, 16))
    with pytest.raises(GlacierFlowError, match="does not read local files for a remote catalogue"):
        source.fetch(scene, grid, "nir")
    assert not any((tmp_path / "cache").rglob("*.npy"))


def test_the_proxy_reaches_gdal_and_the_environment_only_during_the_job(monkeypatch):
    from osgeo import gdal

    from glacierflow.core.imagery.network import ProxySettings, using_proxy

    monkeypatch.delenv("https_proxy", raising=False)
    monkeypatch.setenv("no_proxy", "corp.example")
    proxy = ProxySettings("proxy.example", 3128, user="bob", password="p@ss", excluded=("intranet.example",))
    with using_proxy(proxy):
        assert gdal.GetConfigOption("GDAL_HTTP_PROXY") == "proxy.example:3128"
        assert gdal.GetConfigOption("GDAL_HTTP_PROXYUSERPWD") == "bob:p@ss"
        assert os.environ["https_proxy"] == "http://bob:p%40ss@proxy.example:3128"
        assert os.environ["no_proxy"] == "corp.example,intranet.example"
    assert gdal.GetConfigOption("GDAL_HTTP_PROXY") is None and "https_proxy" not in os.environ
    assert os.environ["no_proxy"] == "corp.example"


def test_the_scene_cache_keeps_to_its_limit_evicting_the_least_recently_used(tmp_path):
    import time

    import numpy as np

    from glacierflow.core.imagery.base import SceneCache

    grid = sample_grid((64, 64))  # 16 kB + header per entry
    cache = SceneCache(str(tmp_path), max_bytes=3 * 64 * 64 * 4 + 3 * 200)
    scenes = [Scene(f"S{i}", datetime(2022, 7, i + 1, tzinfo=timezone.utc), 5.0, "test", f"s{i}") for i in range(5)]
    for index, scene in enumerate(scenes[:3]):
        cache.put(scene, grid, np.full(grid.shape, index, np.float32))
        time.sleep(0.02)
    assert cache.get(scenes[0], grid) is not None  # used again: now the most recent
    time.sleep(0.02)
    cache.put(scenes[3], grid, np.full(grid.shape, 3, np.float32))
    kept = {scene.id for scene in scenes if cache.get(scene, grid) is not None}
    assert kept == {"S0", "S2", "S3"}  # S1, the least recently used, went
    assert sum(f.stat().st_size for f in tmp_path.glob("*.npy")) <= cache.max_bytes
