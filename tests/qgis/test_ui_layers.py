"""Layer styling: NDSI forecast windows, GPS stake labels and symbols, arrows that survive a project reload."""
from __future__ import annotations

import numpy as np
import pytest
from osgeo import gdal, osr
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsExpression,
    QgsExpressionContext,
    QgsExpressionContextUtils,
    QgsProject,
    QgsRenderContext,
)
from qgis.PyQt.QtCore import Qt

from glacierflow.core.validation.stakes import Comparison, StakeSample, write_csv_report
from training.sample import write_sample

WINDOWS = ["2023-07-01/2023-09-30", "2023-10-01/2023-12-31", "window without dates"]


def write_forecast(path: str) -> str:
    """A 3-band NDSI forecast (float32, NaN no data) in UTM 32N, one band per window with its dates."""
    driver = gdal.GetDriverByName("GTiff")
    dataset = driver.Create(path, 40, 30, len(WINDOWS), gdal.GDT_Float32)
    dataset.SetGeoTransform((400000.0, 30.0, 0.0, 5100000.0, 0.0, -30.0))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32632)
    dataset.SetProjection(srs.ExportToWkt())
    ramp = np.tile(np.linspace(-0.2, 1.0, 40, dtype=np.float32), (30, 1))
    for index, description in enumerate(WINDOWS, start=1):
        band = dataset.GetRasterBand(index)
        band.WriteArray(ramp * (1.0 - 0.1 * index))
        band.SetDescription(description)
        band.SetNoDataValue(float("nan"))
    dataset = None
    return path


def test_forecast_windows_are_layers_with_a_white_blue_ramp(tmp_path):
    from glacierflow.ui.forecast_layers import FORECAST_GROUP, load_forecast

    project = QgsProject()
    forecast = load_forecast(write_forecast(str(tmp_path / "ndsi_forecast.tif")), project)
    assert forecast.group.name() == FORECAST_GROUP and project.layerTreeRoot().children()[0] is forecast.group
    assert [layer.name() for layer in forecast.layers] == [
        "NDSI 2023-07-01 – 2023-09-30", "NDSI 2023-10-01 – 2023-12-31", "NDSI window without dates"]
    # dated windows are all on (the time slider shows one at a time); the undated one is off
    assert [forecast.group.findLayer(layer.id()).isVisible() for layer in forecast.layers] == [True, True, False]
    first, second, undated = (layer.temporalProperties() for layer in forecast.layers)
    assert first.isActive() and second.isActive() and not undated.isActive()
    window = first.fixedTemporalRange()
    assert window.begin().toString(Qt.ISODate) == "2023-07-01T00:00:00Z"
    assert window.end().toString(Qt.ISODate) == "2023-10-01T00:00:00Z"  # the last day inclusive
    for band, layer in enumerate(forecast.layers, start=1):
        renderer = layer.renderer()
        assert renderer.type() == "singlebandpseudocolor" and renderer.band() == band
        assert (renderer.classificationMin(), renderer.classificationMax()) == (0.0, 1.0)
        shader = renderer.shader().rasterShaderFunction()
        white, blue, below = shader.shade(0.0), shader.shade(1.0), shader.shade(-0.1)
        assert white[0] and white[1:4] == (255, 255, 255)
        assert blue[0] and blue[3] > 100 and blue[1] < 40 and blue[2] < 80  # dark blue
        assert not below[0]  # NDSI < 0 (no snow) is not drawn
        assert any("NDSI" in label for label, _ in layer.legendSymbologyItems())


def test_window_names_from_descriptions():
    from glacierflow.ui.forecast_layers import window_name

    assert window_name("NDSI forecast 2024-01-01 to 2024-03-31", 1) == "NDSI 2024-01-01 – 2024-03-31"
    assert window_name("2024-04", 2) == "NDSI 2024-04"
    assert window_name("", 3) == "NDSI window 3"


def stake_table(path: str, product: str) -> str:
    """A stake table written by the core's own report writer: two products, one stake without an estimate."""
    samples = []
    for name in (product, "other.tif"):
        samples += [StakeSample("S1", name, 338435.0, 5087625.0, 15.0, 10.0, 20.0, 14.0, 9.0, 18.5),
                    StakeSample("S2", name, 338295.0, 5087505.0, 20.0, 20.0, 30.0, 12.0, 12.0, 18.0),
                    StakeSample("S3", name, 337765.0, 5086555.0, 1.0, 1.0, 40.0, reason="outside the raster")]
    comparison = Comparison([product, "other.tif"], samples, {product: {"count": 3, "bias_speed": -1.0,
                            "rmse_speed": 1.0, "bias_vx": 0.0, "rmse_vx": 0.0, "bias_vy": 0.0, "rmse_vy": 0.0}})
    return write_csv_report(path, comparison)


def test_stakes_are_labelled_measured_over_estimated_and_coloured_by_error(tmp_path):
    from glacierflow.ui.stake_layers import stake_layer

    table = stake_table(str(tmp_path / "annual_stakes.csv"), str(tmp_path / "annual.tif"))
    layer = stake_layer(table, QgsCoordinateReferenceSystem("EPSG:32632"), product=str(tmp_path / "annual.tif"))
    assert layer.isValid() and layer.providerType() == "ogr" and layer.featureCount() == 3
    assert (tmp_path / "annual_stakes.gpkg").exists()
    assert layer.labelsEnabled()
    settings = layer.labeling().settings()
    expression = QgsExpression(settings.fieldName)
    context = QgsExpressionContext(QgsExpressionContextUtils.globalProjectLayerScopes(layer))
    labels, colours = {}, {}
    render = QgsRenderContext()
    render.setExpressionContext(QgsExpressionContext(QgsExpressionContextUtils.globalProjectLayerScopes(layer)))
    renderer = layer.renderer()
    renderer.startRender(render, layer.fields())
    for feature in layer.getFeatures():
        context.setFeature(feature)
        labels[feature["stake_id"]] = expression.evaluate(context)
        render.expressionContext().setFeature(feature)
        colours[feature["stake_id"]] = [s.color().name() for s in renderer.symbolsForFeature(feature, render)]
    renderer.stopRender(render)
    assert labels == {"S1": "20.0 / 18.5 m/yr", "S2": "30.0 / 18.0 m/yr", "S3": "40.0 / – m/yr"}
    # |error| 1.5 of 20 (7.5 %): green; 12 of 30 (40 %): red; no estimate: grey.
    assert colours == {"S1": ["#1a9850"], "S2": ["#d73027"], "S3": ["#969696"]}  # one rule each
    legend = [item.label() for item in renderer.legendSymbolItems()]
    assert legend == ["no estimate", "error ≤ 10 % of measured", "error 10–25 %", "error > 25 %"]


def test_stake_table_without_positions_is_refused(tmp_path):
    from glacierflow.ui.stake_layers import read_stake_table

    path = tmp_path / "not_stakes.csv"
    path.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not a stake table"):
        read_stake_table(str(path))


def test_arrows_survive_saving_and_reopening_the_project(tmp_path, plugin):
    import processing

    from glacierflow.ui.layers import load_results

    sample = write_sample(str(tmp_path / "sample"), shape=(192, 192))
    output = str(tmp_path / "velocity.tif")
    processing.run("glacierflow:velocity_pair", {"IMAGE_A": sample.image_a, "IMAGE_B": sample.image_b,
                                                 "ENGINE": "farneback", "OUTPUT": output})
    project = QgsProject()
    results = load_results(output, project=project)
    count = results.arrows.featureCount()
    assert count > 20
    saved = str(tmp_path / "glaciers.qgz")
    assert project.write(saved)
    reopened = QgsProject()
    assert reopened.read(saved)
    arrows = reopened.mapLayersByName("flow direction")[0]
    assert arrows.isValid() and arrows.featureCount() == count
    assert arrows.renderer().symbol().dataDefinedSize().isActive()
    assert reopened.layerTreeRoot().findGroup(results.group.name()) is not None
