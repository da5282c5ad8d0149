"""The dock's Forecast mode: a polygon over the built-in NDSI sample, the NDSI series then the forecast chained
in the background, the styled forecast windows and the hidden series in one group, the hindcast scores in the
log, cancel at either step (no output left), settings, help, and only the parameters the algorithms define."""
from __future__ import annotations

import os
import re
import time

import pytest
from dock_helpers import open_dock, wait_for
from osgeo import gdal
from qgis.core import (
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsGeometry,
    QgsPointXY,
    QgsProject,
    QgsRasterLayer,
)
from qgis.PyQt.QtCore import QDate

from glacierflow.core.forecast.onnx_forecaster import list_shipped_forecasters
from glacierflow.core.imagery import SOURCE_NAMES
from glacierflow.processing import imagery_params
from glacierflow.processing.forecast_ndsi import ForecastNdsiAlgorithm as Forecast
from glacierflow.processing.ndsi_series import NdsiSeriesAlgorithm as Series
from training.forecast.generator import write_sample_scenes

SAMPLE_CRS = QgsCoordinateReferenceSystem("EPSG:32643")  # the NDSI sample's UTM zone
# The sample's scenes run from 2013-04-01 for 3 years: 12 windows of 3 months, enough for a hindcast.
START, END = QDate(2013, 1, 1), QDate(2016, 12, 31)


@pytest.fixture(scope="module")
def model():
    shipped = list_shipped_forecasters()
    if not shipped:
        pytest.skip("no forecaster shipped in glacierflow/assets/models/forecast (see training/forecast/README.md)")
    return "sa_lstm" if "sa_lstm" in shipped else sorted(shipped)[0]


@pytest.fixture(scope="module")
def sample_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ui_ndsi_sample")
    write_sample_scenes(str(folder), shape=(100, 100), years=3, seed=3)
    return str(folder)


@pytest.fixture(scope="module")
def sample_extent(sample_folder):
    first = sorted(name for name in os.listdir(sample_folder) if name.endswith("_SR_B3.tif"))[0]
    layer = QgsRasterLayer(os.path.join(sample_folder, first), "scene")
    assert layer.crs() == SAMPLE_CRS
    return layer.extent()


@pytest.fixture()
def dock(plugin):
    yield from open_dock(plugin, "forecast")



def forget_area_layer() -> None:
    """Remove the "GlacierFlow area" layer other tests left (in another CRS): the next drawing makes a new one."""
    for layer in QgsProject.instance().mapLayersByName("GlacierFlow area"):
        QgsProject.instance().removeMapLayer(layer.id())


def prepare(dock, model, sample_folder, sample_extent, output, stride: int = 25):
    """Fill the Forecast tab as a user would: a polygon 5 px inside the sample, its folder, dates, model."""
    forecast = dock.forecast
    polygon = QgsGeometry.fromRect(sample_extent.buffered(-150.0))
    forget_area_layer()
    QgsProject.instance().setCrs(SAMPLE_CRS)  # set_polygon reads the canvas (or project) CRS
    dock.iface.mapCanvas().setDestinationCrs(SAMPLE_CRS)
    layer = forecast.set_polygon(polygon)
    assert forecast.area_layer.currentLayer() is layer and layer.featureCount() == 1
    forecast.source.setCurrentText("local_folder")
    forecast.folder.setFilePath(sample_folder)
    forecast.start_date.setDate(START)
    forecast.end_date.setDate(END)
    forecast.window_months.setValue(3)
    forecast.threshold.setValue(0.3)
    forecast.model.setCurrentText(model)
    forecast.output.setFilePath(str(output))
    forecast.stride.setValue(stride)


def test_forecast_tab_runs_the_chain_and_loads_the_windows(dock, model, sample_folder, sample_extent, tmp_path):
    assert dock.modes.tabText(dock.modes.currentIndex()) == "Forecast"
    prepare(dock, model, sample_folder, sample_extent, tmp_path)
    assert dock.run()
    assert dock.is_running() and not dock.run_button.isEnabled()
    wait_for(dock)
    log = dock.log_view.toPlainText()
    assert dock.status == "Done", log
    assert dock.progress.value() == 100
    assert "Step 1/2: NDSI series for an area" in log and "Step 2/2: Forecast NDSI" in log
    # Both products are in the output folder, named after the dates and the model.
    series_path = str(tmp_path / "ndsi_series_20130101_20161231.tif")
    forecast_path = str(tmp_path / f"ndsi_forecast_{model}_20130101_20161231.tif")
    assert os.path.isfile(series_path) and os.path.isfile(forecast_path)
    # The polygon 5 px inside the 100 px sample gives a 90 px grid (whole pixels on 30 m multiples).
    assert 88 <= gdal.Open(series_path).RasterXSize <= 92
    results = dock.results
    assert results.group.name() == f"NDSI forecast ({model})"
    assert QgsProject.instance().layerTreeRoot().findGroup(results.group.name()) is results.group
    assert len(results.layers) == 4
    names = [layer.name() for layer in results.layers]
    assert all(re.fullmatch(r"NDSI \d{4}-\d{2}-\d{2} – \d{4}-\d{2}-\d{2}", name) for name in names), names
    assert names[0].startswith("NDSI 2016-04-01") and names == sorted(names)  # after the last window, in order
    for band, layer in enumerate(results.layers, start=1):
        assert layer.source() == forecast_path and layer.isValid()
        assert layer.renderer().type() == "singlebandpseudocolor" and layer.renderer().band() == band
        assert results.group.findLayer(layer.id()).isVisible()  # dated: the time slider shows one at a time
        assert layer.temporalProperties().isActive()
    series = results.series
    assert series is not None and series.source() == series_path and series.renderer().band() == 12
    assert series.name() == "NDSI series (12 windows, shown: 2016-01-01 – 2016-03-31)"
    assert not results.group.findLayer(series.id()).isVisible()
    # The hindcast scores in the log are those the forecast product records.
    tags = gdal.Open(forecast_path).GetMetadata()
    for name in ("model", "persistence", "climatology"):
        value = float(tags[f"MODEL_HINDCAST_{name.upper()}_MSE"])
        logged = re.search(rf"Hindcast MSE of (the )?{name}: (\d\.\d{{4}})$", log, re.MULTILINE)
        assert logged, log
        assert 0 <= value < 1 and float(logged.group(2)) == pytest.approx(value, abs=6e-5)  # 4 and 5 decimals


def test_cancel_during_the_forecast_removes_the_series_too(dock, model, sample_folder, sample_extent, tmp_path):
    prepare(dock, model, sample_folder, sample_extent, tmp_path, stride=1)  # a slow forecast step
    assert dock.run()
    deadline = time.monotonic() + 60
    while dock.progress.value() < 50 and dock.is_running() and time.monotonic() < deadline:
        QgsApplication.processEvents()  # the panel stays responsive while the chain runs
    assert dock.is_running() and dock.progress.value() >= 50, dock.log_view.toPlainText()
    assert any(name.startswith("ndsi_series_") for name in os.listdir(tmp_path))  # step 1 wrote its product
    dock.cancel()
    wait_for(dock)
    assert dock.status == "Cancelled" and dock.progress.value() < 100
    assert "Cancelled: no output was written." in dock.log_view.toPlainText()
    assert os.listdir(tmp_path) == []
    assert dock.run_button.isEnabled() and not dock.cancel_button.isEnabled()


def test_cancel_at_once_leaves_no_output(dock, model, sample_folder, sample_extent, tmp_path):
    prepare(dock, model, sample_folder, sample_extent, tmp_path)
    assert dock.run()
    dock.cancel()
    wait_for(dock)
    assert dock.status == "Cancelled" and os.listdir(tmp_path) == []
    assert "Step 2/2" not in dock.log_view.toPlainText()


def test_parameters_come_from_the_algorithms_and_inputs_are_checked(dock, model, sample_folder, sample_extent,
                                                                    tmp_path):
    from glacierflow.ui.forecast_mode import FORECAST_ID, MODEL_FILE_ITEM, SERIES_ID

    forecast = dock.forecast
    assert not dock.run() and "Draw the glacier area" in dock.log_view.toPlainText()
    prepare(dock, model, sample_folder, sample_extent, tmp_path)
    parameters = forecast.parameters()
    series = parameters[SERIES_ID]
    assert series[imagery_params.SOURCE] == "local_folder" and series[imagery_params.FOLDER] == sample_folder
    assert (series[imagery_params.START_DATE], series[imagery_params.END_DATE]) == ("2013-01-01", "2016-12-31")
    assert (series[Series.WINDOW_MONTHS], series[Series.THRESHOLD]) == (3, 0.3)
    assert imagery_params.SOURCE_URL not in series  # remote settings are not sent for a local folder
    assert parameters[FORECAST_ID][Forecast.MODEL] == model and parameters[FORECAST_ID][Forecast.STRIDE] == 25
    steps = forecast.steps(parameters)
    assert [step.algorithm_id for step in steps] == [SERIES_ID, FORECAST_ID]
    assert steps[1].parameters({SERIES_ID: {Series.OUTPUT: "/x/s.tif"}})[Forecast.SERIES] == "/x/s.tif"
    # An existing product is never overwritten: the next run gets a new name.
    (tmp_path / "ndsi_series_20130101_20161231.tif").write_bytes(b"")
    assert forecast.parameters()[SERIES_ID][Series.OUTPUT].endswith("ndsi_series_20130101_20161231_2.tif")
    forecast.end_date.setDate(QDate(2012, 1, 1))
    with pytest.raises(ValueError, match="must come after the start date"):
        forecast.parameters()
    forecast.end_date.setDate(END)
    forecast.model.setCurrentText(MODEL_FILE_ITEM)
    assert forecast.model_file.isVisibleTo(forecast)
    with pytest.raises(ValueError, match="Model file"):
        forecast.parameters()
    forecast.model.setCurrentText(model)
    assert not forecast.model_file.isVisibleTo(forecast)
    remote = [name for name in SOURCE_NAMES if name != "local_folder"]
    if remote:
        url = forecast.extra_field(imagery_params.SOURCE_URL)
        assert url is not None and not url.widget.isVisibleTo(forecast)
        forecast.source.setCurrentText(remote[0])
        assert url.widget.isVisibleTo(forecast) and not forecast.folder.isVisibleTo(forecast)


def test_settings_persist_and_help_is_the_forecast_algorithm(dock, plugin, model, sample_folder):
    from glacierflow.ui.dock import GlacierFlowDock
    from glacierflow.ui.forecast_mode import SERIES_ID

    definitions = QgsApplication.processingRegistry().algorithmById(SERIES_ID)
    assert dock.forecast.window_months.maximum() == definitions.parameterDefinition(Series.WINDOW_MONTHS).maximum()

    dock.forecast.folder.setFilePath(sample_folder)
    dock.forecast.start_date.setDate(QDate(2014, 3, 1))
    dock.forecast.window_months.setValue(3)
    dock.forecast.threshold.setValue(0.35)
    dock.forecast.model.setCurrentText(model)
    second = GlacierFlowDock(plugin.iface)
    assert second.current_mode() is second.forecast  # the last tab is remembered
    assert (second.forecast.folder.filePath(), second.forecast.start_date.date(), second.forecast.threshold.value(),
            second.forecast.model.currentText()) == (sample_folder, QDate(2014, 3, 1), 0.35, model)
    second.deleteLater()
    dock.forecast.threshold.setValue(0.3)
    dock.show_help()
    assert dock._help.algorithm_id == "glacierflow:forecast_ndsi"
    assert "persistence" in dock._help.browser.toPlainText()
    dock._help.close()


def test_drawing_uses_the_area_tabs_tool_and_layer(dock, sample_extent):
    canvas = dock.iface.mapCanvas()
    canvas.setDestinationCrs(SAMPLE_CRS)
    forget_area_layer()
    tool = dock.forecast.start_drawing()
    assert tool is dock.area.tool and canvas.mapTool() is tool and dock.forecast.draw_button.isChecked()
    x0, y0, x1, y1 = (sample_extent.xMinimum(), sample_extent.yMinimum(), sample_extent.xMaximum(),
                      sample_extent.yMaximum())
    for x, y in ((x0, y0), (x1, y0), (x1, y1)):
        tool.add_vertex(QgsPointXY(x, y))
    tool.finish()
    layer = dock.forecast.area_layer.currentLayer()
    assert layer is dock.area.area_layer.currentLayer() and layer.name() == "GlacierFlow area"
    assert next(layer.getFeatures()).geometry().area() == pytest.approx(sample_extent.area() / 2)
    assert canvas.mapTool() is not tool and not dock.forecast.draw_button.isChecked()
    dock.forecast.start_drawing()
    dock.forecast.draw_button.setChecked(False)  # the user gives up: the map gets its tool back
    assert canvas.mapTool() is not tool and not dock.area.draw_button.isChecked()
