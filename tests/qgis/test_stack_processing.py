"""``glacierflow:stack_velocity`` and ``glacierflow:stable_ground`` through processing.run, as a user runs them."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsApplication, QgsProcessingException, QgsRasterLayer, QgsVectorLayer
from test_stable_ground import OFFSET, box_ring, write_polygons
from test_stable_ground import product as stable_product  # noqa: F401  (module fixture)
from test_stacking import INTERVALS, read_bands, truth
from test_stacking import stack as pair_stack  # noqa: F401  (module fixture)

from training.sample import sample_grid


def test_both_algorithms_are_registered_with_their_api(plugin):
    registry = QgsApplication.processingRegistry()
    stack = registry.algorithmById("glacierflow:stack_velocity")
    stable = registry.algorithmById("glacierflow:stable_ground")
    assert stack.group() == "Velocity" and stable.group() == "Validation"
    assert {"INPUTS", "WEIGHT_BY_INTERVAL", "OUTLIER_K", "OUTPUT"} <= {p.name() for p in stack.parameterDefinitions()}
    assert {"INPUT", "GLACIER_OUTLINES", "STABLE_AREAS", "BUFFER", "CORRECT", "OUTPUT", "REPORT"} <= \
        {p.name() for p in stable.parameterDefinitions()}
    assert "m/yr" in stack.shortHelpString() and "m/yr" in stable.shortHelpString()


def test_stack_velocity_through_processing(plugin, pair_stack, tmp_path):  # noqa: F811
    import processing

    _, paths, _ = pair_stack
    output = str(tmp_path / "annual.tif")
    result = processing.run("glacierflow:stack_velocity", {
        "INPUTS": paths, "WEIGHT_BY_INTERVAL": True, "OUTLIER_K": 3.0, "OUTPUT": output})
    assert result["OUTPUT"] == output and result["PAIR_COUNT"] == len(INTERVALS)
    layer = QgsRasterLayer(output, "annual")
    assert layer.isValid() and layer.renderer().type() == "singlebandpseudocolor"
    bands, meta = read_bands(output)
    assert abs(np.mean(bands["vx"] - truth()[0])) < 0.5
    assert meta["WEIGHT_BY_INTERVAL"] == "yes"


def test_stack_velocity_rejects_non_velocity_rasters(plugin, tmp_path):
    import processing

    plain = str(tmp_path / "plain.tif")
    grid = sample_grid((10, 10))
    dataset = gdal.GetDriverByName("GTiff").Create(plain, 10, 10, 1, gdal.GDT_Float32)
    dataset.SetGeoTransform(grid.transform)
    dataset.SetProjection(grid.crs_wkt)
    dataset = None
    output = tmp_path / "annual.tif"
    with pytest.raises(QgsProcessingException, match="vx and vy"):
        processing.run("glacierflow:stack_velocity", {"INPUTS": [plain], "OUTPUT": str(output)})
    assert not output.exists()


def test_stable_ground_through_processing(plugin, stable_product, tmp_path):  # noqa: F811
    import processing

    grid, path, outlines, _ = stable_product
    report, output = str(tmp_path / "stable.json"), str(tmp_path / "corrected.tif")
    result = processing.run("glacierflow:stable_ground", {
        "INPUT": path, "GLACIER_OUTLINES": QgsVectorLayer(outlines, "glaciers", "ogr"), "BUFFER": 20.0,
        "CORRECT": True, "OUTPUT": output, "REPORT": report})
    assert result["VX_OFFSET"] == pytest.approx(OFFSET[0], abs=0.3)
    assert result["VY_OFFSET"] == pytest.approx(OFFSET[1], abs=0.3)
    assert result["OUTPUT"] == output and result["REPORT"] == report
    assert json.loads(open(report).read())["vx"]["median"] == pytest.approx(OFFSET[0], abs=0.3)
    assert os.path.exists(str(tmp_path / "stable.txt"))
    bands, meta = read_bands(output)
    assert abs(np.nanmedian(bands["vx"][bands["glacier"] == 0])) < 0.3
    assert meta["STABLE_CORRECTED"] == "yes"


def test_stable_ground_with_polygons_and_statistics_only(plugin, stable_product, tmp_path):  # noqa: F811
    import processing

    grid, path, _, _ = stable_product
    polygons = write_polygons(tmp_path / "rock.geojson", [box_ring(grid, 75, 95, 10, 110)], grid.crs_wkt)
    result = processing.run("glacierflow:stable_ground", {
        "INPUT": path, "STABLE_AREAS": polygons, "REPORT": str(tmp_path / "r.json")})
    assert result["PIXEL_COUNT"] == 2000
    assert "OUTPUT" not in result or not result["OUTPUT"]
    assert sorted(os.listdir(tmp_path)) == ["r.json", "r.txt", "rock.geojson"]


def test_stable_ground_errors_become_processing_errors(plugin, stable_product, tmp_path):  # noqa: F811
    import processing

    grid, path, _, _ = stable_product
    far = [(x + 1e6, y) for x, y in box_ring(grid, 0, 10, 0, 10)]
    polygons = write_polygons(tmp_path / "far.geojson", [far], grid.crs_wkt)
    with pytest.raises(QgsProcessingException, match="No stable-area polygon .* touches the product"):
        processing.run("glacierflow:stable_ground", {
            "INPUT": path, "STABLE_AREAS": polygons, "CORRECT": True, "OUTPUT": str(tmp_path / "out.tif"),
            "REPORT": str(tmp_path / "r.json")})
    with pytest.raises(QgsProcessingException, match="choose an output raster"):
        processing.run("glacierflow:stable_ground", {
            "INPUT": path, "STABLE_AREAS": polygons, "CORRECT": True, "REPORT": str(tmp_path / "r.json")})
    assert sorted(os.listdir(tmp_path)) == ["far.geojson"]
