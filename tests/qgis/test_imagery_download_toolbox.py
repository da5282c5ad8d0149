"""Download scenes and Search scenes through processing.run, as a user runs them."""
from __future__ import annotations

import csv
import os

import pytest
from osgeo import gdal
from test_imagery_download import _box, _shapefile_without_crs, _visible, originals  # noqa: F401 (fixtures and helpers)


def test_download_scenes_algorithm(plugin, originals, tmp_path):  # noqa: F811
    import processing
    from qgis.core import QgsApplication, QgsProcessingException

    algorithm = QgsApplication.processingRegistry().algorithmById("glacierflow:download_scenes")
    assert algorithm is not None and algorithm.group() == "Imagery"
    names = {p.name() for p in algorithm.parameterDefinitions()}
    assert {"SOURCE", "FOLDER", "AREA", "EXTENT", "START_DATE", "END_DATE", "MONTHS", "MAX_CLOUD",
            "MIN_VALID_FRACTION", "SOURCE_URL", "CREDENTIALS", "PROJECT", "PIXEL_SIZE", "TARGET_CRS", "BAND",
            "OUTPUT", "TABLE"} <= names
    out = tmp_path / "downloaded"
    parameters = {"SOURCE": "local_folder", "FOLDER": str(originals), "EXTENT": "500100,500400,6999400,6999700 "
                  "[EPSG:32633]", "MONTHS": "", "OUTPUT": str(out), "TABLE": str(tmp_path / "files.csv")}
    result = processing.run("glacierflow:download_scenes", parameters)
    assert result["OUTPUT"] == str(out) and result["COUNT"] == 2
    assert _visible(out) == ["a_2021-07-05.tif", "b_2022-07-10.tif"]
    with open(result["TABLE"], newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["datetime"] for r in rows] == ["2021-07-05T10:30:21Z", "2022-07-10T10:40:00Z"]
    assert gdal.Info(rows[0]["file"], format="json")["size"] == [30, 30]  # 300 m at the originals' 10 m

    coarse = processing.run("glacierflow:download_scenes", dict(parameters, PIXEL_SIZE=30,
                                                                OUTPUT=str(tmp_path / "coarse")))
    assert gdal.Info(os.path.join(coarse["OUTPUT"], "a_2021-07-05.tif"), format="json")["size"] == [10, 11]
    with pytest.raises(QgsProcessingException, match="needs an area"):
        processing.run("glacierflow:download_scenes", dict(parameters, EXTENT=None))
    without_crs = _shapefile_without_crs(tmp_path / "area.shp", _box(500100, 6999400, 500400, 6999700))
    with pytest.raises(QgsProcessingException, match="no CRS"):
        processing.run("glacierflow:download_scenes", dict(parameters, EXTENT=None, AREA=without_crs))


def test_search_scenes_table_has_the_valid_fraction(plugin, originals, tmp_path):  # noqa: F811
    import processing
    from qgis.core import QgsApplication, QgsVectorLayer

    algorithm = QgsApplication.processingRegistry().algorithmById("glacierflow:search_scenes")
    assert algorithm.parameterDefinition("MIN_VALID_FRACTION").defaultValue() == 50.0
    result = processing.run("glacierflow:search_scenes", {
        "FOLDER": str(originals), "MONTHS": "", "MIN_VALID_FRACTION": 80, "OUTPUT": str(tmp_path / "s.gpkg")})
    layer = QgsVectorLayer(result["OUTPUT"], "scenes")
    assert "valid_fraction" in layer.fields().names()
    values = [f["valid_fraction"] for f in layer.getFeatures()]
    assert len(values) == 3 and all(v is None or str(v) == "NULL" for v in values)  # a local file cannot tell
