"""The dock's Region tab: many glaciers through glacierflow:regional_velocity, run from the panel on a local
Dask cluster started from QGIS's task thread, and the glacier index loaded coloured by median speed."""
from __future__ import annotations

import os
import re
import time

import pytest
from dock_helpers import open_dock, wait_for
from qgis.core import QgsApplication, QgsProject, QgsVectorLayer

from training.sample_region import write_sample_region

pytest.importorskip("distributed", reason="requirements/worker.txt is not installed")


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    return write_sample_region(str(tmp_path_factory.mktemp("ui_region")))


@pytest.fixture()
def dock(plugin):
    yield from open_dock(plugin, "region")


@pytest.fixture()
def outlines(region):
    layer = QgsVectorLayer(region.outlines, "RGI outlines", "ogr")
    QgsProject.instance().addMapLayer(layer)
    yield layer
    QgsProject.instance().removeMapLayer(layer.id())


def _search_like_the_area_test(dock, region) -> None:
    area = dock.area
    area.source.setCurrentText("local_folder")
    area.folder.setFilePath(region.folder)
    area.rule.setCurrentText("cross_year")
    area.year_a.setValue(2021)
    area.year_b.setValue(2022)
    area.months.setText("6-10")
    area.max_cloud.setValue(area.max_cloud.minimum())  # no limit
    area.engine.setCurrentText("farneback")


def test_region_run_on_a_local_cluster_loads_the_index_and_the_glaciers(dock, region, outlines, tmp_path):
    _search_like_the_area_test(dock, region)
    dock.region.outlines.setLayer(outlines)
    dock.region.workers.setValue(2)
    dock.region.scheduler.setText("")
    dock.region.output.setFilePath(str(tmp_path / "region"))
    assert dock.run()
    wait_for(dock, timeout=300)
    log = dock.log_view.toPlainText()
    assert dock.status == "Done", log
    assert "Local Dask cluster: 2 worker" in log and "over 4 glacier outline(s)" in log
    assert "4 of 4 glaciers complete" in log
    loaded = dock.results
    assert loaded.index.featureCount() == 4 and loaded.index.providerType() == "ogr"
    renderer = loaded.index.renderer()
    assert renderer.type() == "graduatedSymbol" and renderer.classAttribute() == "median_speed"
    assert len(renderer.ranges()) >= 2
    assert len(loaded.speeds) == 4 and loaded.not_loaded == 0
    assert all(layer.renderer().type() == "singlebandpseudocolor" for layer in loaded.speeds)
    names = [layer.name() for layer in loaded.group.findLayers()]
    assert names[0] == "glaciers (median speed, m/yr)"
    assert sorted(name.split(" ")[0] for name in names[1:]) == sorted(region.glacier_ids)
    assert os.path.isfile(tmp_path / "region" / "index.gpkg")


def test_region_cancel_keeps_complete_glaciers_and_a_rerun_resumes(dock, region, outlines, tmp_path):
    _search_like_the_area_test(dock, region)
    dock.region.outlines.setLayer(outlines)
    dock.region.workers.setValue(0)  # in QGIS's process: the bar moves with each task
    dock.region.output.setFilePath(str(tmp_path / "region"))
    assert dock.run()
    deadline = time.monotonic() + 120
    while dock.is_running() and dock.progress.value() == 0 and time.monotonic() < deadline:
        QgsApplication.processEvents()  # the panel stays responsive while the tasks run
        time.sleep(0.005)
    dock.cancel()
    wait_for(dock)
    log = dock.log_view.toPlainText()
    assert dock.status == "Cancelled", log
    assert "Cancelled: the glaciers complete before the cancel stay in the output folder" in log
    assert "no output was written" not in log
    assert not os.path.exists(tmp_path / "region" / "index.gpkg")  # stopped mid-run: no index yet
    dock.log_view.clear()
    dock.region.workers.setValue(2)
    assert dock.run()
    wait_for(dock, timeout=300)
    log = dock.log_view.toPlainText()
    assert dock.status == "Done" and "4 of 4 glaciers complete" in log, log
    done_before = re.search(r"(\d+) complete before", log)
    assert done_before and int(done_before.group(1)) >= 1  # the rerun resumed from what the first run finished


def test_region_parameters_say_what_to_fix(dock, region, outlines, tmp_path):
    _search_like_the_area_test(dock, region)
    dock.region.outlines.setLayer(None)
    assert not dock.run() and "Choose the glacier outlines" in dock.log_view.toPlainText()
    dock.region.outlines.setLayer(outlines)
    dock.region.scheduler.setText("scheduler-host:8786")
    assert not dock.run() and "tcp://host:8786" in dock.log_view.toPlainText()
    dock.region.scheduler.setText("tcp://127.0.0.1:8786")
    dock.region.selected_only.setChecked(True)
    outlines.removeSelection()
    assert not dock.run() and "No glacier is selected" in dock.log_view.toPlainText()
    outlines.selectByIds([next(outlines.getFeatures()).id()])
    dock.region.id_field.setField("glacier_id" if "glacier_id" in outlines.fields().names() else "")
    parameters = dock.region.parameters()
    assert parameters["SCHEDULER"] == "tcp://127.0.0.1:8786" and parameters["ENGINE"] == "farneback"
    assert parameters["YEAR_A"] == 2021 and parameters["FOLDER"] == region.folder
    assert QgsVectorLayer(parameters["OUTLINES"], "sel", "ogr").featureCount() == 1  # the selected glacier only
    dock.region.output.setFilePath("")
    first, second = dock.region.parameters()["OUTPUT"], dock.region.parameters()["OUTPUT"]
    assert first != second and os.path.isdir(first)  # no folder chosen: a new one per run, never a rerun
    dock.region.selected_only.setChecked(False)


def test_region_settings_persist_into_a_new_panel(plugin, tmp_path):
    from glacierflow.ui.dock import GlacierFlowDock

    first = GlacierFlowDock(plugin.iface)
    first.set_mode(first.region)
    first.region.scheduler.setText("tcp://10.0.0.5:8786")
    first.region.scheduler.editingFinished.emit()
    first.region.workers.setValue(3)
    first.region.output.setFilePath(str(tmp_path / "many"))
    first.release()
    second = GlacierFlowDock(plugin.iface)
    try:
        assert second.current_mode() is second.region  # the tab is remembered by its title
        assert second.region.scheduler.text() == "tcp://10.0.0.5:8786" and second.region.workers.value() == 3
        assert second.region.output.filePath() == str(tmp_path / "many")
    finally:
        second.region.scheduler.setText("")
        second.region.scheduler.editingFinished.emit()
        second.region.workers.setValue(2)
        second.release()
