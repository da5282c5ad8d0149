"""glacierflow:annual_velocity through processing.run, as a user runs it, on the multi-date sample."""
from __future__ import annotations

import os

import pytest
from osgeo import gdal
from test_annual import ENGINE, PAIRS, _stake_products, series  # noqa: F401 (fixtures and helpers)


def test_annual_velocity_through_processing(plugin, series, tmp_path):  # noqa: F811
    import processing
    from qgis.core import QgsApplication, QgsProcessingException, QgsProcessingParameterDefinition, QgsRasterLayer

    algorithm = QgsApplication.processingRegistry().algorithmById("glacierflow:annual_velocity")
    assert algorithm.group() == "Velocity"
    assert algorithm.displayName() == "Annual velocity from an area (any imagery source)"
    assert algorithm.parameterDefinition("SOURCE").defaultValue() == "local_folder"
    for advanced in ("SOURCE_URL", "CREDENTIALS", "PROJECT", "PIXEL_SIZE", "TARGET_CRS", "BAND"):
        assert algorithm.parameterDefinition(advanced).flags() & QgsProcessingParameterDefinition.FlagAdvanced
    output = str(tmp_path / "annual.tif")
    parameters = {"FOLDER": series.folder, "YEAR_A": 2021, "YEAR_B": 2022, "MONTHS": "6-10", "MAX_CLOUD": 50,
                  "ENGINE": ENGINE, "OUTLINES": series.outlines, "STAKES": series.stakes, "CORRECT_OFFSET": True,
                  "WORK_FOLDER": str(tmp_path / "pairs"), "REPORT": str(tmp_path / "reports"), "OUTPUT": output}
    result = processing.run("glacierflow:annual_velocity", parameters)
    assert result["OUTPUT"] == output and result["PAIR_COUNT"] == PAIRS and result["REUSED"] == 0
    assert QgsRasterLayer(output, "annual").isValid()
    assert os.path.exists(result["STABLE_REPORT"]) and os.path.exists(result["STAKES_HTML"])
    assert os.path.dirname(result["STAKES_CSV"]) == str(tmp_path / "reports")
    assert _stake_products(result["STAKES_CSV"]) == {"annual.tif"}  # COMPARE_PAIRS is off by default

    # the area as an extent (the sample's grid in its CRS), every pair compared with the stakes too
    dataset = gdal.Open(series.images[0])
    x0, size, _, y0, _, e = dataset.GetGeoTransform()
    extent = f"{x0},{x0 + size * dataset.RasterXSize},{y0 + e * dataset.RasterYSize},{y0} [EPSG:32632]"
    dataset = None
    again = processing.run("glacierflow:annual_velocity", dict(parameters, EXTENT=extent, COMPARE_PAIRS=True))
    assert again["REUSED"] == PAIRS
    assert len(_stake_products(again["STAKES_CSV"])) == PAIRS + 1
    far = "100000,101000,1000000,1001000 [EPSG:32632]"
    with pytest.raises(QgsProcessingException, match="outside the area"):
        processing.run("glacierflow:annual_velocity", dict(parameters, EXTENT=far, OUTPUT=str(tmp_path / "x.tif")))


def test_model_file_needs_the_raft_engine(plugin, series, tmp_path):  # noqa: F811
    import processing
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match="engine is not raft"):
        processing.run("glacierflow:annual_velocity", {"FOLDER": series.folder, "YEAR_A": 2021, "ENGINE": ENGINE,
                                                       "MODEL": str(tmp_path / "mine.onnx"),
                                                       "OUTPUT": str(tmp_path / "a.tif")})
