"""glacierflow:regional_velocity as users run it: processing.run in QGIS's process (WORKERS 0), and
qgis_process with a local Dask cluster of two worker processes; both give the same products."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, ogr

import glacierflow
from training.sample_region import write_sample_region

pytest.importorskip("distributed", reason="requirements/worker.txt is not installed")


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
    env = dict(os.environ)
    env.update(QT_QPA_PLATFORM="offscreen", QGIS_CUSTOM_CONFIG_PATH=str(tmp_path / "profile"),
               QGIS_PLUGINPATH=str(Path(glacierflow.__path__[0]).parent),
               PYTHONPATH=os.pathsep.join(p for p in sys.path if p.endswith("site-packages")))
    binary = os.environ.get("QGIS_PROCESS", "qgis_process.bin")
    subprocess.run([binary, "plugins", "enable", "glacierflow"], env=env, capture_output=True, check=True)
    cluster = tmp_path / "cluster"
    completed = subprocess.run(
        [binary, "--json", "run", "glacierflow:regional_velocity", "--", f"OUTLINES={region.outlines}",
         f"FOLDER={region.folder}", "GROUP_DISTANCE=1000", "WORKERS=2", "MEMORY_PER_WORKER=2GB",
         f"OUTPUT={cluster}"], env=env, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    answer = json.loads(completed.stdout[completed.stdout.index("{"):])
    assert answer["results"]["COMPLETE_COUNT"] == 4
    assert any("Local Dask cluster: 2 worker" in line and "dashboard http" in line for line in answer["log"]["info"])
    for glacier in region.glacier_ids:
        a = gdal.Open(str(here / glacier / "velocity.tif")).ReadAsArray()
        b = gdal.Open(str(cluster / glacier / "velocity.tif")).ReadAsArray()
        assert np.array_equal(a, b, equal_nan=True), glacier
    assert ogr.Open(str(cluster / "index.gpkg")).GetLayer(0).GetFeatureCount() == 4
