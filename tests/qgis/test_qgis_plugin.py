"""The plugin inside real QGIS: loading, provider registration, and the algorithm through Processing."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsApplication, QgsProcessingException, QgsRasterLayer
from qgis_process_runner import run_json

import glacierflow
from training.sample import write_sample


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return write_sample(str(tmp_path_factory.mktemp("sample")))


def test_provider_registers_once_and_menu_entry_exists(plugin):
    plugin.initProcessing()  # a second call (as QGIS may make) must not register twice
    registry = QgsApplication.processingRegistry()
    assert [p.id() for p in registry.providers()].count("glacierflow") == 1
    assert registry.algorithmById("glacierflow:velocity_pair") is not None
    assert len(plugin.iface.menu) == 2  # the velocity algorithm and the panel toggle
    assert len(plugin.iface.toolbar) == 1


def test_unload_removes_everything_and_reload_works(plugin):
    registry = QgsApplication.processingRegistry()
    plugin.unload()
    assert registry.providerById("glacierflow") is None
    assert plugin.iface.menu == []
    plugin.initGui()  # as the Plugin Reloader does
    assert registry.algorithmById("glacierflow:velocity_pair") is not None


def test_parameters_are_the_public_api(plugin):
    algorithm = QgsApplication.processingRegistry().algorithmById("glacierflow:velocity_pair")
    names = [p.name() for p in algorithm.parameterDefinitions()]
    for name in ("IMAGE_A", "IMAGE_B", "DATE_A", "DATE_B", "OUTLINES", "ENGINE", "TILE_SIZE", "OVERLAP", "OUTPUT"):
        assert name in names
    engine = algorithm.parameterDefinition("ENGINE")
    assert engine.usesStaticStrings() and {"horn_schunck", "farneback"} <= set(engine.options())
    assert {"hybrid", "ncc", "dis"} <= set(engine.options()) and engine.defaultValue() == "hybrid"
    preprocessing = algorithm.parameterDefinition("PREPROCESSING")
    assert preprocessing.options() == ["default", "sobel", "wallis", "raw", "gradient"]
    assert preprocessing.defaultValue() == "default"
    assert "DIS" in algorithm.shortHelpString() and "no model ships" in algorithm.shortHelpString()


def test_preprocessing_is_chosen_per_engine_or_by_the_user(plugin, sample, tmp_path):
    import processing

    for choice, expected in (("default", "sobel"), ("wallis", "wallis")):
        output = str(tmp_path / f"velocity_{choice}.tif")
        processing.run("glacierflow:velocity_pair", {
            "IMAGE_A": sample.image_a, "IMAGE_B": sample.image_b, "ENGINE": "horn_schunck",
            "PREPROCESSING": choice, "OUTPUT": output})
        assert gdal.Open(output).GetMetadataItem("PREPROCESSING") == expected


def test_max_speed_sets_the_ncc_search_range_through_processing(plugin, sample, tmp_path):
    import processing
    from qgis.core import QgsProcessingFeedback

    lines = []

    class Log(QgsProcessingFeedback):
        def pushInfo(self, info):  # noqa: N802 (Qt's name)
            lines.append(info)

    parameter = QgsApplication.processingRegistry().algorithmById("glacierflow:velocity_pair") \
        .parameterDefinition("MAX_SPEED")
    assert parameter.defaultValue() == 0.0 and parameter.minimum() == 0.0
    processing.run("glacierflow:velocity_pair", {
        "IMAGE_A": sample.image_a, "IMAGE_B": sample.image_b, "ENGINE": "ncc", "MAX_SPEED": 3650.0,
        "OUTPUT": str(tmp_path / "v.tif")}, feedback=Log())
    days = float(gdal.Open(str(tmp_path / "v.tif")).GetMetadataItem("INTERVAL_DAYS"))
    search = int(np.ceil(3650.0 * days / 365.25 / 10.0)) + 4
    assert any(f"NCC search range +-{search} px" in line for line in lines), lines


def test_processing_run_on_the_sample_loads_a_styled_layer(plugin, sample, tmp_path):
    import processing

    output = str(tmp_path / "velocity.tif")
    result = processing.run("glacierflow:velocity_pair", {
        "IMAGE_A": sample.image_a, "IMAGE_B": sample.image_b, "OUTLINES": sample.outlines,
        "ENGINE": "farneback", "TILE_SIZE": 256, "OVERLAP": 64, "OUTPUT": output})
    assert result["OUTPUT"] == output
    layer = QgsRasterLayer(output, "velocity")
    assert layer.isValid() and layer.bandCount() == 5
    assert layer.renderer().type() == "singlebandpseudocolor"  # the .qml beside it is the default style
    assert layer.renderer().band() == 3
    legend = [label for label, _ in layer.legendSymbologyItems()]
    assert any("m/yr" in label for label in legend)
    dataset = gdal.Open(output)
    assert [dataset.GetRasterBand(i).GetDescription() for i in range(1, 6)] == \
        ["vx", "vy", "speed", "valid", "glacier"]
    assert float(dataset.GetMetadataItem("INTERVAL_DAYS")) == pytest.approx(369.99998, abs=1e-4)


def test_bad_input_raises_a_processing_error_and_writes_nothing(plugin, sample, tmp_path):
    import processing

    output = tmp_path / "velocity.tif"
    with pytest.raises(QgsProcessingException, match="same acquisition time"):
        processing.run("glacierflow:velocity_pair", {
            "IMAGE_A": sample.image_a, "IMAGE_B": sample.image_b, "DATE_A": "2021-08-01",
            "DATE_B": "2021-08-01", "OUTPUT": str(output)})
    assert os.listdir(tmp_path) == []


def test_cancel_leaves_no_output(plugin, sample, tmp_path):
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback

    feedback = QgsProcessingFeedback()
    from glacierflow.core.velocity.pair import PARALLEL_ROWS, block_rows

    feedback.progressChanged.connect(lambda _: feedback.cancel())  # cancel after the first block
    algorithm = QgsApplication.processingRegistry().createAlgorithmById("glacierflow:velocity_pair")
    output = tmp_path / "velocity.tif"
    _, ok = algorithm.run({"IMAGE_A": sample.image_a, "IMAGE_B": sample.image_b, "ENGINE": "dis",
                           "OUTPUT": str(output)}, QgsProcessingContext(), feedback)
    assert not ok
    dataset = gdal.Open(sample.image_a)
    blocks = sum(len(row) for row in block_rows(dataset.RasterYSize, dataset.RasterXSize, 128, PARALLEL_ROWS))
    assert blocks >= 2 and feedback.progress() <= 100.0 / blocks  # stopped within a block of the cancel
    assert os.listdir(tmp_path) == []


def test_qgis_process_json_run(sample, tmp_path):
    """The headless API exactly as a user's script calls it."""
    plugins = Path(glacierflow.__file__).resolve().parent
    output = tmp_path / "velocity.tif"
    completed, answer = run_json("velocity_pair", {"IMAGE_A": sample.image_a, "IMAGE_B": sample.image_b,
                                                   "ENGINE": "farneback", "OUTPUT": output}, tmp_path / "profile")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert answer["results"]["OUTPUT"] == str(output)
    dataset = gdal.Open(str(output))
    speed = dataset.GetRasterBand(3).ReadAsArray()
    assert np.nanmax(speed) > 20.0  # the sample glacier moves up to about 59 m/yr
    assert plugins.exists()


def test_runs_inside_a_processing_model(plugin, sample, tmp_path):
    """The algorithm as a child of a Processing model, its inputs wired to model parameters."""
    import processing
    from qgis.core import (
        QgsProcessingModelAlgorithm,
        QgsProcessingModelChildAlgorithm,
        QgsProcessingModelChildParameterSource,
        QgsProcessingModelOutput,
        QgsProcessingModelParameter,
        QgsProcessingParameterRasterLayer,
    )

    model = QgsProcessingModelAlgorithm("velocity model", "tests")
    for name in ("first", "second"):
        model.addModelParameter(QgsProcessingParameterRasterLayer(name, name), QgsProcessingModelParameter(name))
    child = QgsProcessingModelChildAlgorithm("glacierflow:velocity_pair")
    child.setChildId("velocity")
    child.addParameterSources("IMAGE_A", [QgsProcessingModelChildParameterSource.fromModelParameter("first")])
    child.addParameterSources("IMAGE_B", [QgsProcessingModelChildParameterSource.fromModelParameter("second")])
    child.addParameterSources("ENGINE", [QgsProcessingModelChildParameterSource.fromStaticValue("farneback")])
    output = QgsProcessingModelOutput("velocity", "velocity")
    output.setChildOutputName("OUTPUT")
    child.setModelOutputs({"velocity": output})
    model.addChildAlgorithm(child)
    target = str(tmp_path / "model_velocity.tif")
    result = processing.run(model, {"first": sample.image_a, "second": sample.image_b,
                                    "velocity:velocity": target})
    assert result["velocity:velocity"] == target
    assert QgsRasterLayer(target, "v").isValid()


def test_batch_of_pairs_through_processing(plugin, sample, tmp_path):
    """What batch mode does: the same algorithm once per row of parameters."""
    import processing

    rows = [{"IMAGE_A": sample.image_a, "IMAGE_B": sample.image_b, "ENGINE": engine,
             "OUTPUT": str(tmp_path / f"{engine}.tif")} for engine in ("farneback", "horn_schunck")]
    outputs = [processing.run("glacierflow:velocity_pair", row)["OUTPUT"] for row in rows]
    assert all(QgsRasterLayer(path, "v").isValid() for path in outputs)


def test_user_grid_through_processing(plugin, sample, tmp_path):
    import processing

    output = str(tmp_path / "grid.tif")
    processing.run("glacierflow:velocity_pair", {
        "IMAGE_A": sample.image_a, "IMAGE_B": sample.image_b, "ENGINE": "farneback",
        "TARGET_CRS": "EPSG:32632", "PIXEL_SIZE": 20, "OUTPUT": output})
    dataset = gdal.Open(output)
    assert dataset.GetGeoTransform()[1] == 20.0
    assert dataset.RasterXSize <= 256
