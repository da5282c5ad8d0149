"""glacierflow:annual_velocity with a season and the interval rule, through processing.run, on the southern
summer sample: the pair table comes back as a CSV and as a table layer; old parameter sets still run."""
from __future__ import annotations

import csv

from test_season import ENGINE, season  # noqa: F401 (fixture)


def test_season_velocity_through_processing(plugin, season, tmp_path):  # noqa: F811
    import processing
    from qgis.core import QgsApplication, QgsRasterLayer, QgsVectorLayer

    algorithm = QgsApplication.processingRegistry().algorithmById("glacierflow:annual_velocity")
    assert algorithm.parameterDefinition("MONTHS").defaultValue() == "auto"
    assert algorithm.parameterDefinition("YEAR_A").defaultValue() is None  # derived, not a fixed year
    output = str(tmp_path / "season.tif")
    result = processing.run("glacierflow:annual_velocity", {
        "FOLDER": season.folder, "RULE": "interval", "MIN_DAYS": 5, "MAX_DAYS": 20, "MAX_PAIRS_PER_SCENE": 4,
        "ENGINE": ENGINE, "OUTLINES": season.outlines, "OUTPUT": output, "PAIR_TABLE": "TEMPORARY_OUTPUT"})
    assert QgsRasterLayer(output, "season").isValid()
    with open(result["PAIR_TABLE_CSV"], newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == result["PAIR_COUNT"] == result["STACKED_COUNT"]
    per_scene: dict[str, int] = {}
    for row in rows:
        for scene in (row["first_id"], row["second_id"]):
            per_scene[scene] = per_scene.get(scene, 0) + 1
    assert max(per_scene.values()) <= 4
    layer = result["PAIR_TABLE"]
    layer = layer if isinstance(layer, QgsVectorLayer) else QgsVectorLayer(layer)
    assert layer.featureCount() == len(rows) and not layer.isSpatial()
    assert {f["in_stack"] for f in layer.getFeatures()} == {"yes"}
    assert all(f["interval_days"] <= 20.0 for f in layer.getFeatures())
