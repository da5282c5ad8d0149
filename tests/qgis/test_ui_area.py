"""The dock's Area mode: the polygon map tool, a selected polygon, an annual run on the multi-date sample
(layers, renderers, legend, stakes), cancel, help, and only the parameters the algorithm defines."""
from __future__ import annotations

import os

import pytest
from dock_helpers import open_dock, wait_for
from qgis.core import (
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsPointXY,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsVectorLayer,
)
from qgis.gui import QgsMapMouseEvent
from qgis.PyQt.QtCore import QEvent, QPoint, Qt
from qgis.PyQt.QtGui import QKeyEvent

from glacierflow.core.imagery import SOURCE_NAMES
from glacierflow.processing import imagery_params
from glacierflow.processing.annual_velocity import AnnualVelocityAlgorithm as Annual
from training.sample_series import write_sample_series

UTM32 = QgsCoordinateReferenceSystem("EPSG:32632")


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    return write_sample_series(str(tmp_path_factory.mktemp("ui_series")), shape=(192, 192))


@pytest.fixture(scope="module")
def series_extent(series):
    return QgsRasterLayer(series.images[0], "image").extent()


@pytest.fixture()
def dock(plugin):
    yield from open_dock(plugin, "area")


@pytest.fixture()
def canvas(plugin, series_extent):
    canvas = plugin.iface.mapCanvas()
    canvas.resize(600, 600)
    canvas.setDestinationCrs(UTM32)
    canvas.setExtent(series_extent)
    canvas.refresh()
    return canvas



def click(canvas, tool, point: QgsPointXY, button=Qt.MouseButton.LeftButton) -> None:
    """A mouse click at the screen pixel of the map ``point``, through the tool's event handler."""
    pixel = canvas.getCoordinateTransform().transform(point)
    event = QgsMapMouseEvent(canvas, QEvent.Type.MouseButtonRelease, QPoint(round(pixel.x()), round(pixel.y())),
                             button)
    tool.canvasReleaseEvent(event)


def inner_ring(extent: QgsRectangle, margin: float):
    """A quadrilateral ``margin`` (0-0.5 of the size) inside ``extent``, as map points."""
    w, h = extent.width(), extent.height()
    x0, y0 = extent.xMinimum(), extent.yMinimum()
    return [QgsPointXY(x0 + w * fx, y0 + h * fy) for fx, fy in
            ((margin, margin), (1 - margin, margin), (1 - margin, 1 - margin), (margin, 1 - margin))]


def area_layers():
    return [layer for layer in QgsProject.instance().mapLayersByName("GlacierFlow area")]


def test_drawn_polygon_goes_to_the_area_layer(dock, canvas, series_extent):
    tool = dock.area.start_drawing()
    assert canvas.mapTool() is tool and dock.area.draw_button.isChecked()
    points = inner_ring(series_extent, 0.1)
    for point in points:
        click(canvas, tool, point)
    assert len(tool.vertices) == 4
    assert tool.vertices[0].distance(points[0]) < 2 * canvas.mapUnitsPerPixel()  # screen pixel rounding
    click(canvas, tool, points[0], Qt.MouseButton.RightButton)  # finishes
    layer = dock.area.area_layer.currentLayer()
    assert layer is not None and layer.name() == "GlacierFlow area" and layer.featureCount() == 1
    assert layer.crs() == UTM32 and layer in area_layers()
    polygon = next(layer.getFeatures()).geometry()
    expected = 0.8 * series_extent.width() * 0.8 * series_extent.height()
    perimeter = 2 * 0.8 * (series_extent.width() + series_extent.height())
    assert polygon.area() == pytest.approx(expected, abs=perimeter * canvas.mapUnitsPerPixel())  # click rounding
    assert canvas.mapTool() is not tool and not dock.area.draw_button.isChecked()
    # A second drawing replaces the polygon in the same layer.
    tool = dock.area.start_drawing()
    for point in inner_ring(series_extent, 0.3):
        tool.add_vertex(point)
    tool.finish()
    assert area_layers() == [layer] and layer.featureCount() == 1
    assert next(layer.getFeatures()).geometry().area() == pytest.approx(expected / 4, rel=0.02)


def test_escape_cancels_backspace_undoes_and_two_points_are_not_a_polygon(dock, canvas, series_extent):
    tool = dock.area.start_drawing()
    points = inner_ring(series_extent, 0.2)
    tool.add_vertex(points[0])
    tool.add_vertex(points[1])
    assert tool.finish() is None and len(tool.vertices) == 2  # keeps drawing
    tool.keyPressEvent(QKeyEvent(QEvent.Type.KeyPress, Qt.Key.Key_Backspace, Qt.KeyboardModifier.NoModifier))
    assert len(tool.vertices) == 1
    tool.keyPressEvent(QKeyEvent(QEvent.Type.KeyPress, Qt.Key.Key_Escape, Qt.KeyboardModifier.NoModifier))
    assert tool.vertices == [] and canvas.mapTool() is not tool and not dock.area.draw_button.isChecked()


def test_selected_polygon_is_the_area(dock, series):
    layer = QgsVectorLayer(series.outlines, "outline", "ogr")
    QgsProject.instance().addMapLayer(layer)
    dock.area.folder.setFilePath(series.folder)
    dock.area.area_layer.setLayer(layer)
    dock.area.selected_only.setChecked(True)
    with pytest.raises(ValueError, match="is selected"):
        dock.area.parameters()
    layer.selectAll()
    parameters = dock.area.parameters()
    area = parameters[imagery_params.AREA]
    assert area.endswith(".gpkg") and QgsVectorLayer(area, "x", "ogr").featureCount() == 1
    dock.area.selected_only.setChecked(False)
    assert dock.area.parameters()[imagery_params.AREA] == layer.source()
    QgsProject.instance().removeMapLayer(layer.id())


def test_only_parameters_the_algorithm_defines_are_passed(dock, series, series_extent):
    tool = dock.area.start_drawing() or pytest.skip("no map canvas")
    for point in inner_ring(series_extent, 0.05):
        tool.add_vertex(point)
    tool.finish()
    dock.area.folder.setFilePath(series.folder)
    dock.area.year_a.setValue(2021)
    dock.area.year_b.setValue(2022)
    dock.area.max_cloud.setValue(40)
    algorithm = QgsApplication.processingRegistry().algorithmById("glacierflow:annual_velocity")
    accepted = {definition.name() for definition in algorithm.parameterDefinitions()}
    parameters = dock.area.parameters()
    assert set(parameters) <= accepted
    assert parameters[Annual.MONTHS] == "auto" and parameters[Annual.MAX_CLOUD] == 40.0  # by hemisphere
    if Annual.YEAR_A in accepted:
        assert (parameters[Annual.YEAR_A], parameters[Annual.YEAR_B]) == (2021, 2022)
    dock.area.year_b.setValue(2021)
    with pytest.raises(ValueError, match="must come after"):
        dock.area.parameters()
    dock.area.folder.setFilePath("")
    assert not dock.run() and "Choose the folder" in dock.log_view.toPlainText()


def test_area_run_loads_annual_velocity_uncertainty_and_stakes(dock, series, series_extent, tmp_path):
    outline = QgsVectorLayer(series.outlines, "glacier outline", "ogr")
    QgsProject.instance().addMapLayer(outline)
    tool = dock.area.start_drawing()
    for point in inner_ring(series_extent, 0.05):
        tool.add_vertex(point)
    tool.finish()
    dock.area.source.setCurrentText("local_folder")
    dock.area.folder.setFilePath(series.folder)
    dock.area.year_a.setValue(2021)
    dock.area.year_b.setValue(2022)
    dock.area.months.setText("6-10")
    dock.area.max_cloud.setValue(dock.area.max_cloud.minimum())  # no limit
    dock.area.engine.setCurrentText("farneback")
    dock.area.outlines.setLayer(outline)
    dock.area.stakes.setFilePath(series.stakes)
    output = tmp_path / "annual.tif"
    dock.area.output.setFilePath(str(output))
    assert dock.run()
    wait_for(dock)
    assert dock.status == "Done", dock.log_view.toPlainText()
    results = dock.results
    assert results.group.name() == "GlacierFlow annual farneback 2021-07-10 - 2022-09-18"
    names = [layer.name() for layer in results.group.findLayers()]
    assert names == ["GPS stakes (measured / estimated m/yr)", "flow direction", "uncertainty (m/yr)",
                     "speed (m/yr)"]
    speed = results.speed.renderer()
    assert speed.type() == "singlebandpseudocolor" and speed.band() == 3
    assert any("m/yr" in label for label, _ in results.speed.legendSymbologyItems())
    uncertainty = results.uncertainty.renderer()
    assert uncertainty.type() == "singlebandpseudocolor" and uncertainty.band() == 4
    assert uncertainty.classificationMax() > 0
    assert any("m/yr" in label for label, _ in results.uncertainty.legendSymbologyItems())
    assert not results.group.findLayer(results.uncertainty.id()).isVisible()
    assert results.arrows.featureCount() > 20 and results.arrows.providerType() == "ogr"
    assert os.path.exists(tmp_path / "annual_arrows.gpkg")
    stakes = results.stakes
    assert stakes.featureCount() == 6 and stakes.labelsEnabled() and stakes.providerType() == "ogr"
    assert stakes.renderer().type() == "RuleRenderer" and stakes.crs() == results.speed.crs()
    log = dock.log_view.toPlainText()
    assert "9 cross-year pair(s) (2021 x 2022;" in log  # 3 summer scenes a year; May is outside 6-10
    assert "6 GPS stakes" in log and dock.progress.value() == 100
    QgsProject.instance().removeMapLayer(outline.id())


def test_area_run_cancelled_leaves_no_annual_output(dock, series, series_extent, tmp_path):
    tool = dock.area.start_drawing()
    for point in inner_ring(series_extent, 0.05):
        tool.add_vertex(point)
    tool.finish()
    dock.area.folder.setFilePath(series.folder)
    dock.area.year_a.setValue(2021)
    dock.area.year_b.setValue(2022)
    dock.area.engine.setCurrentText("horn_schunck")
    dock.area.stakes.setFilePath("")
    dock.area.outlines.setLayer(None)
    output = tmp_path / "annual.tif"
    dock.area.output.setFilePath(str(output))
    assert dock.run()
    dock.cancel()
    wait_for(dock)
    assert dock.status == "Cancelled", dock.log_view.toPlainText()
    assert not output.exists() and not (tmp_path / "annual_arrows.gpkg").exists()
    assert dock.run_button.isEnabled()


def test_help_follows_the_mode(dock):
    dock.set_mode(dock.area)
    dock.show_help()
    assert dock._help.algorithm_id == "glacierflow:annual_velocity"
    assert "Year A" in dock._help.browser.toPlainText()
    dock._help.close()
    dock.set_mode(dock.pair)
    dock.show_help()
    assert dock._help.algorithm_id == "glacierflow:velocity_pair"
    dock._help.close()


def test_pairing_rule_and_interval_go_to_the_algorithm(dock, series, series_extent):
    tool = dock.area.start_drawing() or pytest.skip("no map canvas")
    for point in inner_ring(series_extent, 0.05):
        tool.add_vertex(point)
    tool.finish()
    dock.area.folder.setFilePath(series.folder)
    assert dock.area.rule.currentText() == "cross_year" and not dock.area.min_days.isVisibleTo(dock.area)
    dock.area.rule.setCurrentText("interval")
    assert dock.area.min_days.isVisibleTo(dock.area)
    dock.area.year_a.setValue(2021)
    dock.area.year_b.setValue(2021)  # one season: allowed for the interval rule
    dock.area.min_days.setValue(10)
    dock.area.max_days.setValue(60)
    dock.area.max_pairs.setValue(6)
    parameters = dock.area.parameters()
    assert (parameters[Annual.RULE], parameters[Annual.MIN_DAYS], parameters[Annual.MAX_DAYS],
            parameters[Annual.MAX_PAIRS_PER_SCENE]) == ("interval", 10.0, 60.0, 6)
    dock.area.max_days.setValue(5)
    with pytest.raises(ValueError, match="maximum interval"):
        dock.area.parameters()
    dock.area.max_days.setValue(60)
    dock.area.rule.setCurrentText("cross_year")


def test_area_settings_persist(dock, plugin, series):
    from glacierflow.ui.dock import GlacierFlowDock

    dock.area.folder.setFilePath(series.folder)
    dock.area.year_a.setValue(2019)
    dock.area.year_b.setValue(2023)
    dock.area.months.setText("7,8")
    dock.area.months.editingFinished.emit()
    dock.area.max_cloud.setValue(30)
    second = GlacierFlowDock(plugin.iface)
    assert second.current_mode() is second.area  # the last mode comes back
    area = second.area
    assert (area.folder.filePath(), area.year_a.value(), area.year_b.value(), area.months.text(),
            area.max_cloud.value()) == (series.folder, 2019, 2023, "7,8", 30)
    assert [area.source.itemText(i) for i in range(area.source.count())] == list(SOURCE_NAMES)
    second.release()
    second.deleteLater()


def test_remote_source_fields_show_only_for_a_remote_source(dock, series, series_extent):
    from glacierflow.ui.area_mode import REMOTE_ONLY

    remote = [field for field in dock.area.extra if field.name in REMOTE_ONLY]
    if not remote:
        pytest.skip("this annual algorithm has no remote-source parameters")
    dock.area.show()
    dock.area.source.setCurrentText("local_folder")
    assert not any(field.widget.isVisibleTo(dock.area) for field in remote)
    tool = dock.area.start_drawing()
    for point in inner_ring(series_extent, 0.05):
        tool.add_vertex(point)
    tool.finish()
    dock.area.folder.setFilePath(series.folder)
    dock.area.year_b.setValue(dock.area.year_a.value() + 1)
    assert not set(REMOTE_ONLY) & set(dock.area.parameters())
    dock.area.source.addItem("a_remote_source")  # whatever the installation offers besides the folder
    dock.area.source.setCurrentText("a_remote_source")
    assert all(field.widget.isVisibleTo(dock.area) for field in remote)
    text_fields = [field for field in remote if hasattr(field.widget, "setText")]
    for field in text_fields:
        field.widget.setText("https://example.invalid/stac")
    parameters = dock.area.parameters()
    assert parameters[imagery_params.SOURCE] == "a_remote_source" and imagery_params.FOLDER not in parameters
    assert all(parameters[field.name] == "https://example.invalid/stac" for field in text_fields)
    dock.area.source.setCurrentText("local_folder")
    dock.area.source.removeItem(dock.area.source.findText("a_remote_source"))
    dock.area.hide()
