"""A job in QGIS's task manager opens and searches no layer in its worker thread (input_layers.py).

QGIS's layers and project belong to the main thread; the panel's jobs run in a worker thread. A layer
opened there from a path, or looked up in the project, raced with the desktop drawing or removing layers
(a segmentation fault seen in CI). prepareAlgorithm, in the main thread, finds the project's layers and
opens vector files; raster files are read by GDAL and never opened as layers.
"""
from __future__ import annotations

import threading
import time

import pytest
from qgis.core import QgsApplication, QgsMapLayer, QgsProcessingFeedback, QgsProject, QgsRasterLayer

from glacierflow.processing.base import GlacierFlowAlgorithm
from glacierflow.ui.task import start_algorithm
from training.sample import write_sample

_LAYER_ACCESSORS = ("parameterAsRasterLayer", "parameterAsVectorLayer", "parameterAsLayer", "parameterAsLayerList",
                    "parameterAsSource", "parameterAsCompatibleSourceLayerPath")


@pytest.fixture()
def layer_calls(monkeypatch):
    """Every layer accessor call of a GlacierFlow algorithm: (in the main thread?, the value it was given)."""
    calls: list[tuple[bool, str, object]] = []
    for accessor in _LAYER_ACCESSORS:
        original = getattr(GlacierFlowAlgorithm, accessor)

        def spy(self, parameters, name, *args, _original=original, **kwargs):
            main = threading.current_thread() is threading.main_thread()
            calls.append((main, name, parameters.get(name)))
            return _original(self, parameters, name, *args, **kwargs)

        monkeypatch.setattr(GlacierFlowAlgorithm, accessor, spy)
    return calls


def _run_in_task(algorithm_id: str, parameters: dict) -> tuple[bool, dict]:
    done: list[tuple[bool, dict]] = []
    start_algorithm(algorithm_id, parameters, QgsProcessingFeedback(), lambda ok, results: done.append((ok, results)))
    deadline = time.monotonic() + 120
    while not done and time.monotonic() < deadline:
        QgsApplication.processEvents()
        time.sleep(0.01)
    assert done, "the task did not end in time"
    return done[0]


def _opened(value: object) -> bool:
    layers = value if isinstance(value, list) else [value]
    return all(isinstance(layer, QgsMapLayer) for layer in layers)


def test_pair_job_in_a_task_opens_its_layers_in_the_main_thread(plugin, tmp_path, layer_calls):
    sample = write_sample(str(tmp_path / "sample"), shape=(160, 160))
    in_project = QgsRasterLayer(sample.image_b, "image B")  # one input chosen from the project, one by path
    QgsProject.instance().addMapLayer(in_project)
    try:
        ok, results = _run_in_task("glacierflow:velocity_pair", {
            "IMAGE_A": sample.image_a, "IMAGE_B": in_project.id(), "OUTLINES": sample.outlines,
            "ENGINE": "farneback", "OUTPUT": str(tmp_path / "velocity.tif")})
    finally:
        QgsProject.instance().removeMapLayer(in_project.id())
    assert ok and results["OUTPUT"] == str(tmp_path / "velocity.tif")
    in_worker = [(name, value) for main, name, value in layer_calls if not main]
    assert {name for name, _ in in_worker} >= {"IMAGE_B", "OUTLINES"}  # the job did run in the worker
    assert all(_opened(value) for _, value in in_worker), in_worker  # ... and was handed layers, not paths or ids
    opened_in_main = {name for main, name, value in layer_calls if main and not _opened(value)}
    assert opened_in_main >= {"IMAGE_B", "OUTLINES"}
    # a raster given by path is read by GDAL: no QGIS layer is opened for it, in either thread
    assert "IMAGE_A" not in {name for _, name, _ in layer_calls}
