"""The GlacierFlow dock inside QGIS: background run, styled result layers, cancel, settings, help."""
from __future__ import annotations

import os
import time

import numpy as np
import pytest
from dock_helpers import open_dock, wait_for
from qgis.core import QgsApplication, QgsProject, QgsSettings, QgsSymbolLayer, QgsVectorLayer

from glacierflow.core.velocity.arrows import arrow_spacing, sample_arrows, sample_positions
from glacierflow.core.velocity.convert import direction_degrees
from training.sample import write_sample


@pytest.fixture(scope="module")
def small_sample(tmp_path_factory):
    return write_sample(str(tmp_path_factory.mktemp("ui_sample")), shape=(256, 256))


@pytest.fixture()
def dock(plugin):
    yield from open_dock(plugin, "pair")



def test_panel_action_toggles_the_dock(plugin):
    action = plugin.panel_action
    assert action in plugin.iface.toolbar and action in plugin.iface.menu
    plugin.iface.mainWindow().show()
    action.trigger()
    assert plugin.dock is not None and plugin.dock in plugin.iface.docks
    assert action.isChecked() and plugin.dock.isVisible()
    action.trigger()
    assert not action.isChecked() and not plugin.dock.isVisible()
    plugin.dock.setUserVisible(True)  # as when the user opens it from View > Panels
    assert action.isChecked()
    plugin.iface.mainWindow().hide()
    plugin.unload()
    assert plugin.iface.docks == [] and plugin.iface.toolbar == [] and plugin.iface.menu == []
    plugin.initGui()
    assert plugin.panel_action in plugin.iface.toolbar


def test_run_in_background_loads_styled_layers_in_a_group(dock, small_sample, tmp_path):
    dock.pair.image_a.set_path(small_sample.image_a)
    dock.pair.image_b.set_path(small_sample.image_b)
    dock.pair.engine.setCurrentText("farneback")
    dock.pair.output.setFilePath(str(tmp_path / "velocity.tif"))
    assert dock.run()
    assert dock.is_running() and not dock.run_button.isEnabled()
    wait_for(dock)
    assert dock.status == "Done", dock.log_view.toPlainText()
    results = dock.results
    assert results.group.name() == "GlacierFlow farneback 2021-08-01 - 2022-08-06"
    assert QgsProject.instance().layerTreeRoot().findGroup(results.group.name()) is results.group
    assert {layer.name() for layer in results.group.findLayers()} == \
        {"speed (m/yr)", "flow direction", "untrusted (failed checks)"}
    renderer = results.speed.renderer()
    assert renderer.type() == "singlebandpseudocolor" and renderer.band() == 3
    assert any("m/yr" in label for label, _ in results.speed.legendSymbologyItems())
    assert results.arrows.featureCount() > 20
    assert results.arrows.fields().names() == ["fid", "vx", "vy", "speed", "direction"]
    assert results.arrows.providerType() == "ogr"  # a GeoPackage beside the product: survives a project reload
    assert results.arrows.source().startswith(str(tmp_path / "velocity_arrows.gpkg"))
    symbol = results.arrows.renderer().symbol()
    angle = symbol.symbolLayer(0).dataDefinedProperties().property(QgsSymbolLayer.Property.PropertyAngle)
    assert angle.isActive() and angle.field() == "direction"
    assert symbol.dataDefinedSize().isActive()
    log = dock.log_view.toPlainText()
    assert dock.progress.value() == 100 and "370.0000 days apart" in log and "Result (" in log


@pytest.fixture(scope="module")
def big_sample(tmp_path_factory):
    return write_sample(str(tmp_path_factory.mktemp("ui_big")), shape=(768, 768))


@pytest.mark.parametrize("when", ["at once", "mid-run"])
def test_cancel_stops_and_leaves_no_output(dock, big_sample, tmp_path, when):
    big = big_sample
    dock.pair.image_a.set_path(big.image_a)
    dock.pair.image_b.set_path(big.image_b)
    dock.pair.engine.setCurrentText("horn_schunck")
    dock.pair.tile_size.setValue(64)
    dock.pair.overlap.setValue(16)
    dock.pair.output.setFilePath(str(tmp_path / "velocity.tif"))
    assert dock.run()
    deadline = time.monotonic() + 60
    while when == "mid-run" and dock.progress.value() == 0 and time.monotonic() < deadline:
        QgsApplication.processEvents()  # the panel stays responsive while tiles are tracked
    assert dock.cancel_button.isEnabled()
    dock.cancel()
    wait_for(dock)
    assert dock.status == "Cancelled"
    if when == "at once":
        assert dock.progress.value() < 100  # mid-run, the cancel may reach the job while it writes (bar at 100)
    assert "Cancelled: no output was written." in dock.log_view.toPlainText()
    assert os.listdir(tmp_path) == []
    assert dock.run_button.isEnabled() and not dock.cancel_button.isEnabled()


def test_unload_during_a_run_cancels_it_safely(plugin, big_sample, tmp_path):
    plugin.panel_action.setChecked(True)
    plugin.dock.set_mode(plugin.dock.pair)
    plugin.dock.pair.image_a.set_path(big_sample.image_a)
    plugin.dock.pair.image_b.set_path(big_sample.image_b)
    plugin.dock.pair.tile_size.setValue(64)
    plugin.dock.pair.overlap.setValue(16)
    plugin.dock.pair.output.setFilePath(str(tmp_path / "velocity.tif"))
    assert plugin.dock.run()
    plugin.unload()  # the panel goes while its job runs: the job is cancelled, QGIS keeps going
    deadline = time.monotonic() + 60
    while QgsApplication.taskManager().countActiveTasks() and time.monotonic() < deadline:
        QgsApplication.processEvents()
        time.sleep(0.02)
    assert QgsApplication.taskManager().countActiveTasks() == 0
    assert os.listdir(tmp_path) == []
    plugin.initGui()


def test_missing_images_do_not_start(dock):
    assert not dock.run()
    assert dock.status == "Not started" and "Choose image A" in dock.log_view.toPlainText()


def test_settings_persist_into_a_new_panel(dock, plugin):
    from glacierflow.ui.dock import GlacierFlowDock

    dock.pair.engine.setCurrentText("farneback")
    dock.pair.tile_size.setValue(384)
    dock.pair.overlap.setValue(96)
    QgsSettings().setValue("glacierflow/dock/last_folder", "/tmp")
    second = GlacierFlowDock(plugin.iface)
    assert (second.pair.engine.currentText(), second.pair.tile_size.value(), second.pair.overlap.value()) == \
        ("farneback", 384, 96)
    assert second.last_folder() == "/tmp"
    second.deleteLater()


def test_selected_outline_is_exported_for_the_worker(dock, small_sample):
    layer = QgsVectorLayer(small_sample.outlines, "outline", "ogr")
    QgsProject.instance().addMapLayer(layer)
    dock.pair.image_a.set_path(small_sample.image_a)
    dock.pair.image_b.set_path(small_sample.image_b)
    dock.pair.outline.setLayer(layer)
    assert dock.pair.parameters()["OUTLINES"] == layer.source()
    dock.pair.selected_only.setChecked(True)
    with pytest.raises(ValueError, match="is selected"):
        dock.pair.parameters()
    layer.selectAll()
    exported = dock.pair.parameters()["OUTLINES"]
    assert exported.endswith(".gpkg") and QgsVectorLayer(exported, "x", "ogr").featureCount() == 1
    QgsProject.instance().removeMapLayer(layer.id())


def test_help_shows_the_algorithm_help(dock):
    dock.show_help()
    assert dock._help.isVisible()
    assert "m/yr" in dock._help.browser.toPlainText()
    dock._help.close()


def test_arrow_sampling_is_regular_and_points_downstream():
    assert arrow_spacing(700, 350) == 20
    rows, cols = sample_positions(100, 60, 10)
    assert list(cols) == list(range(4, 100, 10)) and len(rows) == 6
    np.testing.assert_allclose(direction_degrees(np.array([0.0, 1, 0, -1]), np.array([1.0, 0, -1, 0])),
                               [0, 90, 180, 270])
    vx = np.full((350, 700), 30.0)
    vy = np.full((350, 700), -30.0)
    vx[:, :100] = np.nan
    arrows = sample_arrows(vx, vy, (1000.0, 10.0, 0.0, 5000.0, 0.0, -10.0))
    assert 30 * 15 <= len(arrows) <= 35 * 18
    np.testing.assert_allclose(arrows.direction, 135.0)  # south-east
    np.testing.assert_allclose(arrows.speed, np.hypot(30, 30))
    assert arrows.x.min() > 1000.0 + 100 * 10.0 and arrows.y.max() < 5000.0
