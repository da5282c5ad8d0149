"""The local-folder imagery source, the scene cache, the pairing rules and their Processing algorithms."""
from __future__ import annotations

import csv
import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from osgeo import osr

from glacierflow.core.errors import GlacierFlowError
from glacierflow.core.geo.area import Area
from glacierflow.core.geo.crs import transform_bounds
from glacierflow.core.geo.grid import Grid
from glacierflow.core.imagery import (
    LocalFolderSource,
    Scene,
    cross_year_pairs,
    interval_pairs,
    pairs_by_rule,
    parse_date_bound,
    parse_months,
    write_pairs_csv,
)
from glacierflow.core.imagery import base as imagery_base
from glacierflow.core.io.raster import write_array


def _wkt(epsg: int) -> str:
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    return srs.ExportToWkt()


UTM33 = _wkt(32633)
WGS84 = _wkt(4326)
X0, Y0, SIZE, WIDTH, HEIGHT = 500000.0, 7000000.0, 10.0, 50, 40
MAIN = Grid(UTM33, (X0, SIZE, 0.0, Y0, 0.0, -SIZE), WIDTH, HEIGHT)
AREA = Area("POLYGON((500100 6999700,500300 6999700,500300 6999900,500100 6999900,500100 6999700))", UTM33)
VALUES = (np.arange(WIDTH * HEIGHT, dtype=np.float32).reshape(HEIGHT, WIDTH) + 1.0)
S2_JULY = "S2A_MSIL2A_20210705T103021_N0301_R108_T33WXS_20210705T150000_B08"
S2_AUGUST = "S2B_MSIL2A_20210820T103019_N0301_R108_T33WXS_20210820T150000_B08"
LANDSAT = "LC08_L1TP_198015_20220901_20220910_02_T1"
IN_AREA = [S2_JULY, "S2B_MSIL2A_20210820T103019_N0301_R108_T33WXS_20210820T150000_B08", "geographic_2021-09-10",
           "winter_2022-01-15", "tagged_2022-07-10", "tagged_2022-08-15", LANDSAT + "_B8"]


def _write(folder: Path, name: str, grid: Grid = MAIN, **metadata: str) -> str:
    return write_array(str(folder / f"{name}.tif"), grid, VALUES[:grid.height, :grid.width].copy(),
                       metadata=metadata or None)


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    """A folder like a user's: Sentinel-2 names, tagged files, a Landsat product with its MTL file, a file in
    degrees, one outside the area, one without a date, a text file and a sub-folder."""
    images = tmp_path / "images"
    images.mkdir()
    _write(images, S2_JULY, CLOUDY_PIXEL_PERCENTAGE="12.5")
    _write(images, S2_AUGUST, CLOUDY_PIXEL_PERCENTAGE="80")
    xmin, ymin, xmax, ymax = transform_bounds(MAIN.bounds(), UTM33, WGS84)
    step = 0.0002
    geographic = Grid(WGS84, (xmin - 10 * step, step, 0.0, ymax + 10 * step, 0.0, -step),
                      int((xmax - xmin) / step) + 20, int((ymax - ymin) / step) + 20)
    write_array(str(images / "geographic_2021-09-10.tif"), geographic,
                np.ones(geographic.shape, dtype=np.float32), metadata={"ACQUISITION_DATETIME": "2021-09-10T10:00:00Z"})
    far = Grid(UTM33, (X0 + 100000.0, SIZE, 0.0, Y0, 0.0, -SIZE), WIDTH, HEIGHT)
    _write(images, "outside_2021-07-20", far, ACQUISITION_DATETIME="2021-07-20T10:00:00Z")
    _write(images, "winter_2022-01-15", ACQUISITION_DATETIME="2022-01-15T10:00:00Z")
    _write(images, "tagged_2022-07-10", ACQUISITION_DATETIME="2022-07-10T10:30:00Z", CLOUD_COVER="5")
    _write(images, "tagged_2022-08-15", ACQUISITION_DATETIME="2022-08-15T10:30:00", CLOUDCOVER="40")
    _write(images, LANDSAT + "_B8")
    (images / f"{LANDSAT}_MTL.txt").write_text(
        'GROUP = IMAGE_ATTRIBUTES\n    CLOUD_COVER = 33.00\n    DATE_ACQUIRED = 2022-09-01\n'
        '    SCENE_CENTER_TIME = "10:35:12.5000000Z"\nEND_GROUP = IMAGE_ATTRIBUTES\n')
    _write(images, "no_date_at_all")
    (images / "notes.txt").write_text("not an image")
    (images / "sub").mkdir()
    _write(images / "sub", "nested_2021-07-25", ACQUISITION_DATETIME="2021-07-25T10:00:00Z")
    return images


def _source(folder: Path, tmp_path: Path, **kwargs) -> LocalFolderSource:
    return LocalFolderSource(str(folder), cache_dir=str(tmp_path / "cache"), **kwargs)


def test_search_reads_times_and_cloud_and_reports_files_without_a_date(folder, tmp_path):
    source = _source(folder, tmp_path)
    scenes = source.search(None, None, None)
    assert [s.id for s in scenes] == [S2_JULY, "outside_2021-07-20", S2_AUGUST, "geographic_2021-09-10",
                                      "winter_2022-01-15", "tagged_2022-07-10", "tagged_2022-08-15", LANDSAT + "_B8"]
    by_id = {s.id: s for s in scenes}
    assert by_id[S2_JULY].time == datetime(2021, 7, 5, 10, 30, 21, tzinfo=timezone.utc)
    assert by_id[S2_JULY].cloud_cover == 12.5 and by_id["tagged_2022-07-10"].cloud_cover == 5.0
    assert by_id["tagged_2022-08-15"].cloud_cover == 40.0
    assert by_id["winter_2022-01-15"].cloud_cover is None
    landsat = by_id[LANDSAT + "_B8"]
    assert landsat.time == datetime(2022, 9, 1, 10, 35, 12, 500000, tzinfo=timezone.utc)
    assert landsat.cloud_cover == 33.0 and landsat.time_source.startswith("MTL")
    assert all(s.source == "local_folder" and os.path.isabs(s.href) and s.time.tzinfo for s in scenes)
    assert [name for name, _ in source.skipped] == ["no_date_at_all.tif"]  # the MTL of another product is not its
    assert "no acquisition date" in source.skipped[0][1]


def test_search_filters_area_in_any_crs_dates_months_and_cloud(folder, tmp_path):
    source = _source(folder, tmp_path)
    assert [s.id for s in source.search(AREA, None, None)] == IN_AREA  # the far file is out, the degree one in
    xmin, ymin, xmax, ymax = transform_bounds(MAIN.bounds(), UTM33, WGS84)
    inside = {"type": "Polygon", "coordinates": [[[xmin, ymin], [xmax, ymin], [xmax, ymax], [xmin, ymin]]]}
    assert [s.id for s in source.search(Area(inside, WGS84), None, None)] == IN_AREA
    far = {"type": "Polygon", "coordinates": [[[10.0, 50.0], [10.1, 50.0], [10.1, 50.1], [10.0, 50.0]]]}
    with pytest.raises(GlacierFlowError, match="8 outside the area"):
        source.search(Area(far, WGS84), None, None)
    summer = source.search(AREA, None, None, months=parse_months("6-10"))
    assert "winter_2022-01-15" not in [s.id for s in summer] and len(summer) == 6
    dated = source.search(AREA, parse_date_bound("2021-08-20"), parse_date_bound("2022-07-10", end=True))
    assert [s.id for s in dated] == [S2_AUGUST, "geographic_2021-09-10", "winter_2022-01-15", "tagged_2022-07-10"]
    clear = source.search(AREA, None, None, max_cloud=35)
    assert S2_AUGUST not in [s.id for s in clear] and "tagged_2022-08-15" not in [s.id for s in clear]
    assert "winter_2022-01-15" in [s.id for s in clear]  # unknown cloud cover is kept


def test_recursive_search_and_clear_errors(folder, tmp_path):
    assert "sub/nested_2021-07-25" in [s.id for s in _source(folder, tmp_path, recursive=True).search(None, None, None)]
    with pytest.raises(GlacierFlowError, match=r"No scene found in .*8 outside the months.*Widen"):
        _source(folder, tmp_path).search(None, None, None, months={12})
    with pytest.raises(GlacierFlowError, match="does not exist"):
        _source(folder / "missing", tmp_path).search(None, None, None)
    with pytest.raises(GlacierFlowError, match="after the end date"):
        _source(folder, tmp_path).search(None, parse_date_bound("2022-01-01"), parse_date_bound("2021-01-01"))
    with pytest.raises(GlacierFlowError, match="must be a polygon"):
        _source(folder, tmp_path).search(Area("POINT(500100 6999800)", UTM33), None, None)


def test_months_and_date_bounds():
    assert parse_months("6-10") == {6, 7, 8, 9, 10}
    assert parse_months("6,7, 8") == {6, 7, 8}
    assert parse_months("11-2") == {11, 12, 1, 2}
    assert parse_months("") is None
    with pytest.raises(GlacierFlowError, match="not a month"):
        parse_months("6-13")
    with pytest.raises(GlacierFlowError, match="not understood"):
        parse_months("June")
    assert parse_date_bound("2021-10-31", end=True) == datetime(2021, 10, 31, 23, 59, 59, 999999, tzinfo=timezone.utc)
    assert parse_date_bound("2021-10-31T12:00:00Z", end=True) == datetime(2021, 10, 31, 12, tzinfo=timezone.utc)


def test_fetch_onto_a_grid_with_nan_outside_and_a_warp(folder, tmp_path):
    source = _source(folder, tmp_path)
    scene = next(s for s in source.search(AREA, None, None) if s.id == S2_JULY)
    shifted = Grid(UTM33, (X0 + 400.0, SIZE, 0.0, Y0 - 100.0, 0.0, -SIZE), 20, 10)
    array = source.fetch(scene, shifted)
    assert array.dtype == np.float32 and array.shape == (10, 20)
    np.testing.assert_array_equal(array[:, :10], VALUES[10:20, 40:50])
    assert np.isnan(array[:, 10:]).all()
    coarse = Grid(UTM33, (X0, 20.0, 0.0, Y0, 0.0, -20.0), 25, 20)
    warped = source.fetch(scene, coarse)
    assert warped.shape == (20, 25) and np.isfinite(warped[2:-2, 2:-2]).all()
    assert warped[5, 5] == pytest.approx(VALUES[10:12, 10:12].mean(), abs=WIDTH)


def test_cache_serves_a_rerun_without_the_file_and_survives_interruption(folder, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    source = _source(folder, tmp_path)
    scene = next(s for s in source.search(AREA, None, None) if s.id == "tagged_2022-07-10")
    first = source.fetch(scene, MAIN)
    entries = os.listdir(cache)
    assert len(entries) == 1 and entries[0].startswith("tagged_2022-07-10_") and entries[0].endswith(".npy")
    os.rename(scene.href, scene.href + ".moved")  # a rerun must not read the file again
    np.testing.assert_array_equal(source.fetch(scene, MAIN), first)
    os.rename(scene.href + ".moved", scene.href)

    other = next(s for s in source.search(AREA, None, None) if s.id == "tagged_2022-08-15")
    real_save = np.save

    def interrupted_save(handle, array, allow_pickle=False):
        handle.write(b"\x93NUMPY partial")
        raise KeyboardInterrupt  # the user or the system stops QGIS mid-write

    monkeypatch.setattr(imagery_base.np, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        source.fetch(other, MAIN)
    assert os.listdir(cache) == entries  # no entry and no temporary file survive
    monkeypatch.setattr(imagery_base.np, "save", real_save)

    corrupt = source.cache.path(other, MAIN)
    Path(corrupt).write_bytes(b"garbage")  # e.g. a cache copied from a broken disk
    np.testing.assert_array_equal(source.fetch(other, MAIN), VALUES)
    assert np.load(corrupt).shape == MAIN.shape


def _scene(day: str, name: str) -> Scene:
    return Scene(name, datetime.fromisoformat(day).replace(tzinfo=timezone.utc), None, "test", name)


def test_cross_year_pairs_every_scene_of_one_year_with_every_scene_of_the_next():
    scenes = [_scene("2022-07-01T10:00:00", "b1"), _scene("2021-07-01T10:00:00", "a1"),
              _scene("2021-08-01T10:00:00", "a2"), _scene("2022-08-01T10:00:00", "b2"),
              _scene("2022-09-01T10:00:00", "b3"), _scene("2023-07-01T10:00:00", "c1")]
    pairs = cross_year_pairs(scenes, 2021, 2022)
    assert [(p.first.id, p.second.id) for p in pairs] == [
        ("a1", "b1"), ("a1", "b2"), ("a1", "b3"), ("a2", "b1"), ("a2", "b2"), ("a2", "b3")]
    assert pairs[0].interval_days == pytest.approx(365.0)
    assert len(pairs_by_rule(scenes, "cross_year")) == 6  # year A: the earliest, year B: the next
    assert len(pairs_by_rule(scenes, "cross_year", year_a=2022)) == 3
    with pytest.raises(GlacierFlowError, match="must be after"):
        cross_year_pairs(scenes, 2022, 2021)
    with pytest.raises(GlacierFlowError, match="No pair between 2019 and 2020"):
        pairs_by_rule(scenes, "cross_year", year_a=2019)


def test_interval_pairs_by_minimum_and_maximum_days_never_same_time():
    scenes = [_scene("2021-07-01T10:00:00", "a"), _scene("2021-07-11T10:00:00", "b"),
              _scene("2021-07-11T10:00:00", "b_twin"), _scene("2021-07-31T10:00:00", "c"),
              _scene("2021-09-01T10:00:00", "d")]
    pairs = interval_pairs(scenes, 10, 30)
    assert [(p.first.id, p.second.id, p.interval_days) for p in pairs] == [
        ("a", "b", 10.0), ("a", "b_twin", 10.0), ("a", "c", 30.0), ("b", "c", 20.0), ("b_twin", "c", 20.0)]
    assert all(p.first.time < p.second.time for p in interval_pairs(scenes, 0, 1000))
    assert len(interval_pairs(scenes, 0, 1000)) == 9  # 10 combinations less the identical-time one
    with pytest.raises(GlacierFlowError, match="widen the interval"):
        pairs_by_rule(scenes, "interval", min_days=100, max_days=200)
    with pytest.raises(GlacierFlowError, match="is empty"):
        interval_pairs(scenes, 30, 10)
    with pytest.raises(GlacierFlowError, match="Unknown pairing rule"):
        pairs_by_rule(scenes, "nearest")


def test_pair_csv_lists_ids_times_and_intervals(tmp_path):
    pairs = interval_pairs([_scene("2021-07-01T10:00:00", "a"), _scene("2021-07-11T22:00:00", "b")], 0, 30)
    path = write_pairs_csv(pairs, str(tmp_path / "pairs.csv"))
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert rows == [{"first_id": "a", "second_id": "b", "first_datetime": "2021-07-01T10:00:00+00:00",
                     "second_datetime": "2021-07-11T22:00:00+00:00", "interval_days": "10.500000",
                     "first_href": "a", "second_href": "b"}]
    assert os.listdir(tmp_path) == ["pairs.csv"]
    with pytest.raises(GlacierFlowError, match="does not exist"):
        write_pairs_csv(pairs, str(tmp_path / "missing" / "pairs.csv"))


# --- through QGIS Processing, as a user runs them -------------------------------------------------------------


def _table(path: str) -> list:
    from qgis.core import QgsVectorLayer

    layer = QgsVectorLayer(path, "table", "ogr")
    assert layer.isValid()
    return [feature.attributes() for feature in layer.getFeatures()]


def _area_layer(tmp_path: Path):
    """A polygon layer (memory) in UTM 33N holding the area, passed to processing.run as a layer object."""
    from qgis.core import QgsFeature, QgsGeometry, QgsVectorLayer

    layer = QgsVectorLayer("Polygon?crs=EPSG:32633", "area", "memory")
    feature = QgsFeature()
    feature.setGeometry(QgsGeometry.fromWkt(AREA.geometry))
    layer.dataProvider().addFeatures([feature])
    assert layer.isValid() and layer.featureCount() == 1
    return layer
