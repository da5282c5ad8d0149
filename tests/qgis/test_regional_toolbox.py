"""glacierflow:regional_velocity as users run it: processing.run in QGIS's process (WORKERS 0), and
qgis_process with a local Dask cluster of two worker processes; both give the same products."""
from __future__ import annotations

import numpy as np
import pytest
from osgeo import gdal, ogr

from training.sample_region import write_sample_region

pytest.importorskip("distributed", reason="requirements/worker.txt is not installed")

from qgis_process_runner import run_json


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    return write_sample_region(str(tmp_path_factory.mktemp("region_qgis")))


def test_regional_velocity_in_qgis_and_on_a_local_cluster(plugin, region, tmp_path):
    import processing
    from qgis.core import QgsApplication, QgsVectorLayer

    algorithm = QgsApplication.processingRegistry().algorithmById("glacierflow:regional_velocity")
    assert algorithm is not None and algorithm.group() == "Velocity"
    here = tmp_path / "here"
    result = processing.run("glacierflow:regional_velocity", {
        "OUTLINES": region.outlines, "FOLDER": region.folder, "GROUP_DISTANCE": 1000, "WORKERS": 0,
        "OUTPUT": str(here)})
    assert (result["GLACIER_COUNT"], result["COMPLETE_COUNT"], result["TASKS_RUN"]) == (4, 4, 24)
    index = QgsVectorLayer(result["INDEX"], "index", "ogr")
    assert index.isValid() and index.featureCount() == 4
    assert {f["status"] for f in index.getFeatures()} == {"complete"}

    # the same job through qgis_process on a LocalCluster (worker processes started from QGIS)
    cluster = tmp_path / "cluster"
    completed, answer = run_json("regional_velocity", {
        "OUTLINES": region.outlines, "FOLDER": region.folder, "GROUP_DISTANCE": 1000, "WORKERS": 2,
        "MEMORY_PER_WORKER": "2GB", "OUTPUT": cluster}, tmp_path / "profile")
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert answer["results"]["COMPLETE_COUNT"] == 4
    assert any("Local Dask cluster: 2 worker" in line and "dashboard http" in line for line in answer["log"]["info"])
    for glacier in region.glacier_ids:
        a = gdal.Open(str(here / glacier / "velocity.tif")).ReadAsArray()
        b = gdal.Open(str(cluster / glacier / "velocity.tif")).ReadAsArray()
        assert np.array_equal(a, b, equal_nan=True), glacier
    assert ogr.Open(str(cluster / "index.gpkg")).GetLayer(0).GetFeatureCount() == 4
