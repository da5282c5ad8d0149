"""The analysis algorithms (issue 17) through processing.run and qgis_process, as a user runs them."""
from __future__ import annotations

import os

import numpy as np
import pytest
from analysis_samples import centres, grid, shear_field, write_pair_product, write_stack_product
from osgeo import gdal
from qgis.core import (
    QgsApplication,
    QgsFeature,
    QgsGeometry,
    QgsMeshDatasetIndex,
    QgsMeshLayer,
    QgsPointXY,
    QgsRasterLayer,
    QgsSymbolLayer,
    QgsVectorLayer,
)
from qgis_process_runner import run_json

ANALYSIS_IDS = ["velocity_arrows", "export_netcdf", "strain_rates", "velocity_profile",
                "velocity_time_series", "flux_gate",
                "velocity_report"]


@pytest.fixture(scope="module")
def rotation(tmp_path_factory):
    """A pair product of solid rotation (vx = -0.5 y', vy = 0.5 x', m/yr) on the sample's UTM grid."""
    target = grid()
    x, y = centres(target)
    vx, vy = -0.5 * (y - y.mean()), 0.5 * (x - x.mean())
    path = write_pair_product(tmp_path_factory.mktemp("rotation") / "pair.tif", target, vx, vy)
    return target, path, (float(x.mean()), float(y.mean()))


def test_analysis_algorithms_are_registered(plugin):
    registry = QgsApplication.processingRegistry()
    for name in ANALYSIS_IDS:
        algorithm = registry.algorithmById(f"glacierflow:{name}")
        assert algorithm is not None, name
        assert algorithm.group() == "Analysis" and "m" in algorithm.shortHelpString()


def test_arrows_through_processing_are_styled_and_saved_with_their_style(plugin, rotation, tmp_path):
    import processing

    _, path, _ = rotation
    output = str(tmp_path / "arrows.gpkg")
    result = processing.run("glacierflow:velocity_arrows", {
        "INPUT": path, "SPACING": 50.0, "SPACING_UNIT": 1, "MIN_FRACTION": 0.0, "OUTPUT": output})
    assert result["OUTPUT"] == output and result["ARROW_COUNT"] == 12 * 16
    layer = QgsVectorLayer(output, "arrows", "ogr")  # a fresh layer: the style comes from the GeoPackage
    assert layer.isValid() and layer.featureCount() == 12 * 16
    symbol = layer.renderer().symbol()
    assert symbol.symbolLayer(0).shape() is not None
    assert symbol.dataDefinedAngle().field() == "direction"
    fill = symbol.symbolLayer(0).dataDefinedProperties().property(QgsSymbolLayer.Property.PropertyFillColor)
    assert fill.isActive() and "ramp_color('Viridis'" in fill.expressionString()  # coloured by speed
    slow, fast = (fill.valueAsColor(_context_with(layer, speed))[0] for speed in (0.0, 1e6))
    assert slow.isValid() and fast.isValid() and slow != fast
    feature = next(layer.getFeatures())
    assert feature["speed"] == pytest.approx(np.hypot(feature["vx"], feature["vy"]), abs=2e-3)


def _context_with(layer, speed):
    """An expression context whose feature has ``speed`` (m/yr)."""
    from qgis.core import QgsExpressionContext, QgsExpressionContextUtils

    context = QgsExpressionContext(QgsExpressionContextUtils.globalProjectLayerScopes(layer))
    feature = QgsFeature(layer.fields())
    feature["speed"] = speed
    context.setFeature(feature)
    return context


def test_netcdf_loads_as_a_mesh_with_a_vector_group(plugin, rotation, tmp_path):
    import processing

    target, path, (xm, ym) = rotation
    output = str(tmp_path / "velocity.nc")
    result = processing.run("glacierflow:export_netcdf", {"INPUT": path, "OUTPUT": output})
    assert result["OUTPUT"] == output
    mesh = QgsMeshLayer(output, "velocity", "mdal")
    assert mesh.isValid(), mesh.error().summary()
    assert mesh.crs().authid() == "EPSG:32632"
    provider = mesh.dataProvider()
    groups = {provider.datasetGroupMetadata(i).name(): i for i in range(provider.datasetGroupCount())}
    assert {"ice surface velocity", "ice surface speed"} <= set(groups)
    vector = groups["ice surface velocity"]
    assert provider.datasetGroupMetadata(vector).isVector()
    assert not provider.datasetGroupMetadata(groups["ice surface speed"]).isVector()
    mesh.updateTriangularMesh()
    index = QgsMeshDatasetIndex(vector, 0)
    x, y = xm + 105.0, ym - 55.0  # a pixel centre east and south of the middle
    value = mesh.datasetValue(index, QgsPointXY(x, y))
    assert value.x() == pytest.approx(-0.5 * (y - ym), abs=0.05)
    assert value.y() == pytest.approx(0.5 * (x - xm), abs=0.05)


def test_arrows_through_qgis_process(rotation, tmp_path):
    """The headless API exactly as a user's script calls it."""
    _, path, _ = rotation
    output = tmp_path / "arrows.gpkg"
    completed, answer = run_json("velocity_arrows", {"INPUT": path, "SPACING": 10, "OUTPUT": output},
                                 tmp_path / "profile")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert answer["results"]["OUTPUT"] == str(output)
    assert answer["results"]["ARROW_COUNT"] > 20
    assert QgsVectorLayer(str(output), "arrows", "ogr").featureCount() == answer["results"]["ARROW_COUNT"]


def test_strain_rates_of_a_shear_flow_through_processing(plugin, tmp_path):
    import processing

    target = grid()
    vx, vy = shear_field(target, 0.02)
    path = write_pair_product(tmp_path / "shear.tif", target, vx, vy)
    output = str(tmp_path / "strain.tif")
    result = processing.run("glacierflow:strain_rates", {"INPUT": path, "SMOOTHING": 40.0, "OUTPUT": output})
    assert result["MEDIAN_EFFECTIVE"] == pytest.approx(0.01, rel=1e-4)
    layer = QgsRasterLayer(output, "strain")
    assert layer.isValid() and layer.renderer().type() == "singlebandpseudocolor"
    assert layer.renderer().band() == 4  # effective strain rate
    dataset = gdal.Open(output)  # kept open while its band is read
    exy = dataset.GetRasterBand(3).ReadAsArray()
    np.testing.assert_allclose(exy, 0.01, rtol=1e-5)


def memory_layer(kind, features, crs="EPSG:32632", fields="name:string"):
    """A memory layer of WKT geometries with a name field, as a user draws on the map."""
    layer = QgsVectorLayer(f"{kind}?crs={crs}&field={fields}", kind.lower(), "memory")
    for name, wkt in features:
        feature = QgsFeature(layer.fields())
        feature.setGeometry(QgsGeometry.fromWkt(wkt))
        feature.setAttributes([name])
        layer.dataProvider().addFeatures([feature])
    return layer


def test_profile_along_a_drawn_line_through_processing(plugin, rotation, tmp_path):
    import csv

    import processing

    _, path, (xm, ym) = rotation
    lines = memory_layer("LineString", [("centre", f"LINESTRING({xm - 300} {ym}, {xm + 300} {ym})")])
    result = processing.run("glacierflow:velocity_profile", {
        "INPUT": path, "LINES": lines, "NAME_FIELD": "name", "SPACING": 100.0,
        "OUTPUT_CSV": str(tmp_path / "p.csv"), "OUTPUT_PNG": str(tmp_path / "p.png")})
    assert result["STATION_COUNT"] == 7
    with open(result["OUTPUT_CSV"], newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["line"] for r in rows] == ["centre"] * 7
    for row in rows:  # on the rotation's centre line going east: vx = 0, vy = along-left = 0.5 x'
        assert float(row["vx"]) == pytest.approx(0.0, abs=1e-3)
        assert float(row["across"]) == pytest.approx(0.5 * (float(row["x"]) - xm), abs=1e-3)
    assert open(result["OUTPUT_PNG"], "rb").read(4) == b"\x89PNG"


def test_time_series_from_a_folder_a_layer_and_a_clicked_point(plugin, tmp_path):
    import csv

    import processing

    target = grid()
    x, y = centres(target)
    folder = tmp_path / "pairs"
    folder.mkdir()
    for month, speed in ((7, 80.0), (6, 60.0), (8, 100.0)):
        write_pair_product(folder / f"pair_{month}.tif", target, np.full(target.shape, speed), np.zeros(target.shape),
                           f"2021-{month:02d}-01T00:00:00Z", f"2021-{month:02d}-21T00:00:00Z", 20.0)
    xm, ym = float(x.mean()), float(y.mean())
    points = memory_layer("Point", [("stake 1", f"POINT({xm} {ym})")])
    result = processing.run("glacierflow:velocity_time_series", {
        "INPUTS": [], "FOLDER": str(folder), "POINTS": points, "NAME_FIELD": "name",
        "POINT": f"{xm + 100},{ym} [EPSG:32632]",
        "OUTPUT_CSV": str(tmp_path / "s.csv"), "OUTPUT_PNG": str(tmp_path / "s.png")})
    assert result["VALUE_COUNT"] == 6
    with open(result["OUTPUT_CSV"], newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["point"], float(r["speed"])) for r in rows] == [
        ("stake 1", 60.0), ("stake 1", 80.0), ("stake 1", 100.0), ("clicked", 60.0), ("clicked", 80.0),
        ("clicked", 100.0)]
    assert rows[0]["mid_date"] == "2021-06-11T00:00:00Z"
    assert open(result["OUTPUT_PNG"], "rb").read(4) == b"\x89PNG"


def test_flux_gate_of_a_uniform_flow_through_processing(plugin, tmp_path):
    import processing

    target = grid()
    path = write_stack_product(tmp_path / "annual.tif", target, np.full(target.shape, 100.0),
                               np.zeros(target.shape), np.full(target.shape, 5.0))
    x0, y0 = target.transform[0], target.transform[3]
    gates = memory_layer("LineString", [("main", f"LINESTRING({x0 + 400} {y0 - 550}, {x0 + 400} {y0 - 50})")])
    result = processing.run("glacierflow:flux_gate", {
        "INPUT": path, "GATES": gates, "NAME_FIELD": "name", "THICKNESS_CONSTANT": 200.0,
        "THICKNESS_UNCERTAINTY_FRACTION": 0.1, "OUTPUT": "memory:", "OUTPUT_STATIONS": str(tmp_path / "st.csv")})
    assert result["FLUX_KM3"] == pytest.approx(0.9 * 100 * 200 * 500 / 1e9, rel=1e-9)
    assert result["FLUX_GT"] == pytest.approx(result["FLUX_KM3"] * 0.917, rel=1e-9)
    assert result["UNCERTAINTY_KM3"] == pytest.approx(0.9 * 500 * np.hypot(200 * 5, 100 * 20) / 1e9, rel=1e-9)
    table = result["OUTPUT"]
    row = next(table.getFeatures())
    assert row["gate"] == "main" and row["covered_fraction"] == 1.0
    assert row["flux_gt_per_yr"] == pytest.approx(result["FLUX_GT"])
    assert os.path.getsize(result["OUTPUT_STATIONS"]) > 0


def report_images(path):
    page = open(path, encoding="utf-8").read()
    return page, page.count('src="data:image/png;base64,')


def test_velocity_report_and_the_report_output_of_stack_velocity(plugin, tmp_path):
    import processing
    from test_stacking import write_pair

    target = grid()
    vx, vy = shear_field(target, 0.02)
    pairs = [write_pair(tmp_path / f"p{i}.tif", target, vx + i, vy, days) for i, days in enumerate((20.0, 30.0, 40.0))]
    stack = processing.run("glacierflow:stack_velocity", {
        "INPUTS": pairs, "OUTPUT": str(tmp_path / "annual.tif"), "REPORT_HTML": str(tmp_path / "annual.html")})
    page, count = report_images(stack["REPORT_HTML"])
    assert count == 2 and "<h2>Speed and flow direction</h2>" in page and "velocity_stack" in page
    spec = {"INPUT": stack["OUTPUT"], "REFERENCE_VX": pairs[1], "REFERENCE_VY": pairs[1], "TITLE": "Shear",
            "OUTPUT": str(tmp_path / "report.html")}
    with pytest.raises(Exception, match="both reference components"):
        processing.run("glacierflow:velocity_report", dict(spec, REFERENCE_VY=""))
    report = processing.run("glacierflow:velocity_report", spec)
    page, count = report_images(report["OUTPUT"])
    assert "<h2>Reference velocity</h2>" in page and "Shear" in page and count == 3
    stack_without = processing.run("glacierflow:stack_velocity", {"INPUTS": pairs, "OUTPUT": str(tmp_path / "b.tif")})
    assert not stack_without.get("REPORT_HTML") and not (tmp_path / "b.html").exists()


def test_forecast_report_output(plugin, tmp_path):
    import processing
    from test_forecast_jobs import _forecaster, write_sample_scenes

    folder = tmp_path / "scenes"
    write_sample_scenes(str(folder), shape=(56, 56), years=3, seed=3)
    series = processing.run("glacierflow:ndsi_series", {"SOURCE": "local_folder", "FOLDER": str(folder),
                                                        "OUTPUT": str(tmp_path / "series.tif")})
    result = processing.run("glacierflow:forecast_ndsi", {
        "SERIES": series["OUTPUT"], "MODEL": _forecaster(), "STRIDE": 25, "OUTPUT": str(tmp_path / "forecast.tif"),
        "REPORT_HTML": str(tmp_path / "forecast.html")})
    page, count = report_images(result["REPORT_HTML"])
    assert count == 1 and "<h2>Hindcast scores</h2>" in page and "forecast " in page and "observed " in page


def test_time_slider_ranges_for_series_forecasts_and_velocity(plugin, tmp_path):
    from datetime import datetime, timezone

    from qgis.core import QgsDateTimeRange, QgsProject
    from qgis.PyQt.QtCore import QDateTime, Qt

    from glacierflow.core.forecast.series import NdsiSeries
    from glacierflow.core.products.ndsi import write_ndsi_series
    from glacierflow.processing.temporal import apply_product_time
    from glacierflow.ui.forecast_layers import load_series_windows
    from glacierflow.ui.layers import load_results

    target = grid((20, 30))
    times = [datetime(2021, m, 1, tzinfo=timezone.utc) for m in (1, 4, 7)]
    frames = np.stack([np.full(target.shape, v, np.float32) for v in (0.9, 0.5, 0.1)])
    series = write_ndsi_series(str(tmp_path / "series.tif"), NdsiSeries(frames, times, 3, 0.3, target, []))
    project = QgsProject()
    loaded = load_series_windows(series, project)
    ranges = [layer.temporalProperties().fixedTemporalRange() for layer in loaded.layers]
    assert [r.begin().toString(Qt.ISODate) for r in ranges] == [
        "2021-01-01T00:00:00Z", "2021-04-01T00:00:00Z", "2021-07-01T00:00:00Z"]
    assert ranges[-1].end().toString(Qt.ISODate) == "2021-10-01T00:00:00Z"
    july = QgsDateTimeRange(QDateTime(2021, 8, 1, 0, 0, 0, 0, Qt.UTC), QDateTime(2021, 8, 2, 0, 0, 0, 0, Qt.UTC))
    shown = [layer.temporalProperties().isVisibleInTemporalRange(july) for layer in loaded.layers]
    assert shown == [False, False, True]  # the slider at August 2021 shows the July window only

    whole = QgsRasterLayer(series, "series")
    apply_product_time(whole, series)
    assert whole.temporalProperties().isActive()
    assert whole.temporalProperties().isVisibleInTemporalRange(july)

    vx, vy = shear_field(target, 0.02)
    pair = write_pair_product(tmp_path / "pair.tif", target, vx, vy, "2021-07-01T00:00:00Z", "2021-07-31T00:00:00Z")
    results = load_results(pair, project=project)
    interval = results.speed.temporalProperties().fixedTemporalRange()
    assert interval.begin().toString(Qt.ISODate) == "2021-07-01T00:00:00Z"
    assert interval.end().toString(Qt.ISODate) == "2021-07-31T00:00:00Z"


def test_velocity_pair_report_on_the_built_in_sample(plugin, tmp_path):
    import processing

    from training.sample import write_sample

    sample = write_sample(str(tmp_path / "sample"))
    result = processing.run("glacierflow:velocity_pair", {
        "IMAGE_A": sample.image_a, "IMAGE_B": sample.image_b, "ENGINE": "farneback", "OUTLINES": sample.outlines,
        "OUTPUT": str(tmp_path / "velocity.tif"), "REPORT_HTML": str(tmp_path / "velocity.html")})
    page, count = report_images(result["REPORT_HTML"])
    assert "<h2>Stable ground</h2>" in page and "Not available" not in page and count == 3
    assert "farneback" in page


def test_loaded_outputs_carry_their_dates_and_arrow_style(plugin, tmp_path):
    """As the toolbox runs them (results loaded into the project): the post-processors act."""
    import processing
    from qgis.core import QgsProject
    from qgis.PyQt.QtCore import Qt

    target = grid()
    vx, vy = shear_field(target, 0.02)
    pair = write_pair_product(tmp_path / "pair.tif", target, vx, vy, "2021-07-01T00:00:00Z", "2021-07-31T00:00:00Z")
    stack = processing.runAndLoadResults("glacierflow:stack_velocity", {
        "INPUTS": [pair], "OUTPUT": str(tmp_path / "annual.tif")})
    arrows = processing.runAndLoadResults("glacierflow:velocity_arrows", {
        "INPUT": pair, "MIN_FRACTION": 0.0, "OUTPUT": str(tmp_path / "arrows.gpkg")})
    project = QgsProject.instance()
    loaded = {layer.source().split("|")[0]: layer for layer in project.mapLayers().values()}
    annual = loaded[stack["OUTPUT"]]
    window = annual.temporalProperties().fixedTemporalRange()
    assert annual.temporalProperties().isActive()
    assert window.begin().toString(Qt.ISODate) == "2021-07-01T00:00:00Z"
    assert window.end().toString(Qt.ISODate) == "2021-07-31T00:00:00Z"
    symbol = loaded[arrows["OUTPUT"]].renderer().symbol()
    assert symbol.dataDefinedAngle().field() == "direction"
    project.removeMapLayers([annual.id(), loaded[arrows["OUTPUT"]].id()])
