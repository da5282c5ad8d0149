"""NDSI series, forecasts and forecaster training through processing.run, as a user runs them."""
from __future__ import annotations

import os

import pytest
from osgeo import gdal
from test_forecast_jobs import _forecaster, long_series_path, sample_folder, series_path  # noqa: F401 (fixtures and helpers)


def test_toolbox_series_then_forecast(plugin, sample_folder, tmp_path):  # noqa: F811
    import processing

    series = processing.run("glacierflow:ndsi_series", {"SOURCE": "local_folder", "FOLDER": sample_folder,
                                                        "OUTPUT": str(tmp_path / "series.tif")})
    assert series["WINDOWS"] >= 12
    model = _forecaster()
    result = processing.run("glacierflow:forecast_ndsi", {"SERIES": series["OUTPUT"], "MODEL": model, "STRIDE": 25,
                                                          "OUTPUT": str(tmp_path / "forecast.tif")})
    assert os.path.exists(result["OUTPUT"])
    assert result["MODEL_MSE"] >= 0 and result["PERSISTENCE_MSE"] >= 0 and result["CLIMATOLOGY_MSE"] >= 0


def test_toolbox_train_forecaster_then_forecast_with_it(plugin, long_series_path, series_path, tmp_path):  # noqa: F811
    pytest.importorskip("torch")
    import processing
    from qgis.core import QgsProcessingException

    model = str(tmp_path / "mine.onnx")
    trained = processing.run("glacierflow:train_forecaster", {
        "SERIES": [long_series_path], "ARCHITECTURE": "unet", "EPOCHS": 2, "STRIDE": 25, "OUTPUT": model})
    assert os.path.exists(model)
    assert 0 <= trained["TEST_MSE"] < 1 and trained["PERSISTENCE_MSE"] > 0 and trained["CLIMATOLOGY_MSE"] >= 0
    from glacierflow.core.forecast.onnx_forecaster import OnnxForecaster

    card = OnnxForecaster(model).card
    assert card.name == "unet" and set(card.raw["metrics"]["test"]) == {"model", "persistence", "climatology"}
    forecast = processing.run("glacierflow:forecast_ndsi", {"SERIES": long_series_path, "MODEL_FILE": model,
                                                            "STRIDE": 25, "OUTPUT": str(tmp_path / "f.tif")})
    assert gdal.Open(forecast["OUTPUT"]).RasterCount == 4
    with pytest.raises(QgsProcessingException, match="longer"):
        processing.run("glacierflow:train_forecaster", {
            "SERIES": [series_path], "ARCHITECTURE": "unet", "EPOCHS": 1, "OUTPUT": str(tmp_path / "short.onnx")})
    assert not os.path.exists(tmp_path / "short.onnx")
