"""Search scenes and Image pairs on a local folder through processing.run, as a user runs them."""
from __future__ import annotations

import csv

import pytest
from test_imagery_local import LANDSAT, S2_AUGUST, S2_JULY, _area_layer, _table, folder  # noqa: F401 (fixtures and helpers)


def test_search_scenes_algorithm_writes_the_scene_table(plugin, folder, tmp_path):  # noqa: F811
    import processing
    from qgis.core import QgsApplication

    algorithm = QgsApplication.processingRegistry().algorithmById("glacierflow:search_scenes")
    assert algorithm is not None and algorithm.group() == "Imagery"
    assert algorithm.parameterDefinition("SOURCE").usesStaticStrings()
    assert algorithm.parameterDefinition("MONTHS").defaultValue() == "6-10"
    output = str(tmp_path / "scenes.gpkg")
    result = processing.run("glacierflow:search_scenes", {
        "SOURCE": "local_folder", "FOLDER": str(folder), "AREA": _area_layer(tmp_path), "MAX_CLOUD": 50,
        "OUTPUT": output})
    rows = _table(result["OUTPUT"])
    assert [r[1] for r in rows] == [S2_JULY, "geographic_2021-09-10", "tagged_2022-07-10", "tagged_2022-08-15",
                                    LANDSAT + "_B8"]  # fid first; winter is out by month, August by cloud
    assert rows[0][2:5] == ["2021-07-05T10:30:21+00:00", 12.5, "local_folder"]
    assert rows[0][5] == str(folder / f"{S2_JULY}.tif")
    assert rows[1][3] is None or str(rows[1][3]) == "NULL"

    extent = processing.run("glacierflow:search_scenes", {
        "FOLDER": str(folder), "EXTENT": "500100,500300,6999700,6999900 [EPSG:32633]", "MONTHS": "",
        "START_DATE": "2022-01-01", "OUTPUT": str(tmp_path / "extent.gpkg")})
    assert [r[1] for r in _table(extent["OUTPUT"])] == ["winter_2022-01-15", "tagged_2022-07-10",
                                                        "tagged_2022-08-15", LANDSAT + "_B8"]


def test_search_scenes_algorithm_turns_nothing_found_into_a_processing_error(plugin, folder, tmp_path):  # noqa: F811
    import processing
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match="No scene found"):
        processing.run("glacierflow:search_scenes", {
            "FOLDER": str(folder), "START_DATE": "2030-01-01", "OUTPUT": str(tmp_path / "none.gpkg")})
    with pytest.raises(QgsProcessingException, match="not understood"):
        processing.run("glacierflow:search_scenes", {
            "FOLDER": str(folder), "MONTHS": "summer", "OUTPUT": str(tmp_path / "none.gpkg")})


def test_image_pairs_algorithm_both_rules_and_csv(plugin, folder, tmp_path):  # noqa: F811
    import processing

    area = _area_layer(tmp_path)
    csv_path = str(tmp_path / "pairs.csv")
    result = processing.run("glacierflow:image_pairs", {
        "FOLDER": str(folder), "AREA": area, "RULE": "cross_year", "YEAR_A": 2021, "YEAR_B": 2022,
        "OUTPUT": str(tmp_path / "cross.gpkg"), "CSV": csv_path})
    rows = _table(result["OUTPUT"])
    assert len(rows) == 9  # 3 summer scenes of 2021 x 3 of 2022
    assert (rows[0][1], rows[0][2]) == (S2_JULY, "tagged_2022-07-10")
    assert all(row[5] > 300 for row in rows)
    with open(result["CSV"], newline="", encoding="utf-8") as handle:
        assert len(list(csv.DictReader(handle))) == 9

    interval = processing.run("glacierflow:image_pairs", {
        "FOLDER": str(folder), "AREA": area, "RULE": "interval", "MIN_DAYS": 15, "MAX_DAYS": 60,
        "OUTPUT": str(tmp_path / "interval.gpkg")})
    pairs = [(r[1], r[2], round(r[5], 2)) for r in _table(interval["OUTPUT"])]
    assert [p[:2] for p in pairs] == [(S2_JULY, S2_AUGUST), (S2_AUGUST, "geographic_2021-09-10"),
                                      ("tagged_2022-07-10", "tagged_2022-08-15"),
                                      ("tagged_2022-07-10", LANDSAT + "_B8"), ("tagged_2022-08-15", LANDSAT + "_B8")]
    assert all(15 <= p[2] <= 60 for p in pairs)
