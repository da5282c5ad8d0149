"""The dock's "Speed at a click": a click on the map plots the speed through time of the loaded results."""
from __future__ import annotations

import csv

import numpy as np
import pytest
from analysis_samples import centres, grid, write_pair_product
from dock_helpers import open_dock
from qgis.core import QgsCoordinateReferenceSystem, QgsPointXY, QgsProject, QgsRasterLayer
from qgis.gui import QgsMapMouseEvent
from qgis.PyQt.QtCore import QEvent, QPoint, Qt


@pytest.fixture()
def dock(plugin):
    yield from open_dock(plugin, "pair")


@pytest.fixture()
def loaded_pairs(tmp_path):
    """Three dated pair products (speeds 60, 80, 100 m/yr) loaded as raster layers, plus a plain raster."""
    target = grid()
    project = QgsProject.instance()
    layers = []
    for month, speed in ((6, 60.0), (7, 80.0), (8, 100.0)):
        path = write_pair_product(tmp_path / f"pair_{month}.tif", target, np.full(target.shape, speed),
                                  np.zeros(target.shape), f"2021-{month:02d}-01T00:00:00Z",
                                  f"2021-{month:02d}-13T00:00:00Z", 12.0)
        layers.append(QgsRasterLayer(path, f"pair {month}"))
    project.addMapLayers(layers)
    x, y = centres(target)
    yield float(x.mean()), float(y.mean())
    project.removeMapLayers([layer.id() for layer in layers])


def test_a_click_plots_the_speed_of_every_loaded_result(dock, loaded_pairs):
    from glacierflow.ui.series_tool import dated_velocity_layers

    ours = [path for path in dated_velocity_layers() if path.endswith(("pair_6.tif", "pair_7.tif", "pair_8.tif"))]
    assert len(ours) == 3  # found among whatever else the project holds
    x, y = loaded_pairs
    window = dock.show_series_at(QgsPointXY(x, y), QgsCoordinateReferenceSystem("EPSG:32632"))
    assert window is not None and not window.picture.pixmap().isNull()
    rows = [r for r in csv.DictReader(window.table.toPlainText().splitlines()) if r["product"].startswith("pair_")]
    assert [float(r["speed"]) for r in rows] == [60.0, 80.0, 100.0]
    assert [r["mid_date"] for r in rows] == ["2021-06-07T00:00:00Z", "2021-07-07T00:00:00Z", "2021-08-07T00:00:00Z"]


def test_the_button_arms_a_map_tool_whose_click_reaches_the_plot(dock, loaded_pairs):
    canvas = dock.iface.mapCanvas()
    canvas.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:32632"))
    x, y = loaded_pairs
    canvas.setExtent(canvas.extent().__class__(x - 500, y - 500, x + 500, y + 500))
    clicked = []
    dock.series_button.setChecked(True)
    tool = canvas.mapTool()
    assert tool is dock._series_tool
    tool.pointClicked.connect(clicked.append)
    centre = QPoint(canvas.width() // 2, canvas.height() // 2)
    tool.canvasReleaseEvent(QgsMapMouseEvent(canvas, QEvent.Type.MouseButtonRelease, centre,
                                             Qt.MouseButton.LeftButton))
    assert clicked and clicked[0].distance(canvas.getCoordinateTransform().toMapCoordinates(centre)) < 1e-6
    assert dock._series_window is not None  # the dock's own handler ran on the same click
    dock.series_button.setChecked(False)
    assert canvas.mapTool() is not tool


def test_without_results_the_log_says_what_to_do(dock):
    assert dock.show_series_at(QgsPointXY(0, 0), QgsCoordinateReferenceSystem("EPSG:32632"), products=[]) is None
    assert "load pair or stack results first" in dock.log_view.toPlainText()
