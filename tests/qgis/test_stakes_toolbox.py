"""glacierflow:compare_stakes through processing.run, and the stake layer's style."""
from __future__ import annotations

import math
from pathlib import Path

from test_stakes import INSIDE, _write_gpkg, centre, products, truth_at  # noqa: F401 (fixtures and helpers)


def test_compare_stakes_through_processing(plugin, products, tmp_path):  # noqa: F811
    import processing
    from qgis.core import QgsApplication, QgsVectorLayer

    algorithm = QgsApplication.processingRegistry().algorithmById("glacierflow:compare_stakes")
    assert algorithm.group() == "Validation" and "m/yr" in algorithm.shortHelpString()
    _, truth, offset, _ = products
    path = _write_gpkg(str(tmp_path / "stakes.gpkg"),
                       [(centre(c, r), math.hypot(*truth_at(*centre(c, r)))) for c, r in INSIDE])
    output = str(tmp_path / "compared.gpkg")
    result = processing.run("glacierflow:compare_stakes", {
        "STAKES": path, "ID_FIELD": "name", "SPEED_FIELD": "speed", "PRODUCTS": [truth, offset], "METHOD": 1,
        "WINDOW": 3, "OUTPUT": output, "REPORT_CSV": str(tmp_path / "t.csv"), "REPORT_HTML": str(tmp_path / "t.html")})
    layer = QgsVectorLayer(result["OUTPUT"], "compared", "ogr")
    assert layer.isValid() and layer.featureCount() == 4
    names = [f.name() for f in layer.fields()]
    assert {"stake_id", "measured", "est_truth", "diff_truth", "est_offset", "diff_offset"} <= set(names)
    ids = sorted(f["stake_id"] for f in layer.getFeatures())
    assert ids == ["P1", "P2", "P3", "P4"]
    assert all(abs(f["diff_truth"]) < 0.5 for f in layer.getFeatures())
    assert Path(result["REPORT_CSV"]).exists() and Path(result["REPORT_HTML"]).exists()


def test_stake_style_colours_the_error_and_labels_measured_over_estimated(plugin, tmp_path):
    from qgis.core import QgsVectorLayer

    from glacierflow.processing.styles import apply_stake_style

    layer = QgsVectorLayer("Point?crs=EPSG:32606&field=measured:double&field=est_truth:double"
                           "&field=diff_truth:double", "s", "memory")
    apply_stake_style(layer, "measured", "est_truth", "diff_truth")
    label = layer.labeling().settings().fieldName
    assert layer.labelsEnabled() and '"measured"' in label and '"est_truth"' in label
    rules = layer.renderer().rootRule().children()
    assert layer.renderer().type() == "RuleRenderer" and len(rules) == 4
    assert all('"diff_truth"' in rule.filterExpression() for rule in rules)


def test_loaded_output_is_styled_by_the_post_processor(plugin, products, tmp_path):  # noqa: F811
    import processing
    from qgis.core import QgsProject

    _, truth, _, _ = products
    path = _write_gpkg(str(tmp_path / "stakes.gpkg"),
                       [(centre(c, r), math.hypot(*truth_at(*centre(c, r)))) for c, r in INSIDE])
    result = processing.runAndLoadResults("glacierflow:compare_stakes", {
        "STAKES": path, "SPEED_FIELD": "speed", "PRODUCTS": [truth], "OUTPUT": str(tmp_path / "out.gpkg")})
    layer = QgsProject.instance().mapLayer(result["OUTPUT"]) or next(
        iter(QgsProject.instance().mapLayersByName("Stakes compared")), None)
    assert layer is not None and layer.labelsEnabled()
    assert '"est_truth"' in layer.labeling().settings().fieldName
    assert layer.renderer().type() == "RuleRenderer"
    QgsProject.instance().removeMapLayer(layer.id())
