"""forecast_ndsi refuses a forecast that is all NaN or outside its model card's range, before writing it."""
from __future__ import annotations

import os

import numpy as np
import pytest
from qgis.core import QgsProcessingException
from test_forecast_jobs import sample_folder, series_path  # noqa: F401 (fixtures)
from test_forecast_onnx import _export


def _broken(path: str, factor: float, target: str, doubled: bool = False) -> str:
    """The real exported forecaster at ``path`` with its output multiplied by ``factor`` (NaN, 5, ...), or
    twice as many windows as its card says (``doubled``)."""
    onnx = pytest.importorskip("onnx")
    from onnx import helper, numpy_helper

    model = onnx.load(path)
    output = model.graph.output[0]
    inner = output.name + "_raw"
    for node in model.graph.node:
        node.output[:] = [inner if name == output.name else name for name in node.output]
    model.graph.initializer.append(numpy_helper.from_array(np.array(factor, dtype=np.float32), "broken_factor"))
    if doubled:
        model.graph.node.append(helper.make_node("Concat", [inner, inner], [output.name], axis=1))
    else:
        model.graph.node.append(helper.make_node("Mul", [inner, "broken_factor"], [output.name]))
    onnx.save(model, target)
    return target


@pytest.mark.parametrize("factor, message", [(float("nan"), "all NaN"), (5.0, "outside its card's range 0-1")])
def test_a_forecast_that_cannot_be_true_is_an_error(plugin, series_path, tmp_path, factor, message):  # noqa: F811
    import processing

    model = _broken(_export(tmp_path), factor, str(tmp_path / "broken.onnx"))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(QgsProcessingException, match=message):
        processing.run("glacierflow:forecast_ndsi", {"SERIES": series_path, "MODEL_FILE": model, "STRIDE": 20,
                                                     "OUTPUT": str(out / "forecast.tif"),
                                                     "FLOW_OUTPUT": str(out / "flow.tif")})
    assert os.listdir(out) == []


def test_a_model_returning_another_shape_than_its_card_is_a_message(plugin, series_path, tmp_path):  # noqa: F811
    import processing

    model = _broken(_export(tmp_path), 1.0, str(tmp_path / "doubled.onnx"), doubled=True)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(QgsProcessingException, match="returned shape .* the model and its card disagree"):
        processing.run("glacierflow:forecast_ndsi", {"SERIES": series_path, "MODEL_FILE": model, "STRIDE": 20,
                                                     "OUTPUT": str(out / "forecast.tif")})
    assert os.listdir(out) == []
