"""glacierflow:compare_reference through processing.run, as a user runs it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_reference import synthetic, write_reference  # noqa: F401 (fixtures and helpers)


def test_compare_reference_through_processing(plugin, synthetic):  # noqa: F811
    import processing
    from qgis.core import QgsApplication

    folder, _, product, ref_grid, rvx, rvy = synthetic
    ref_vx, ref_vy = write_reference(folder, ref_grid, rvx / 365.25, rvy / 365.25, name="daily")
    algorithm = QgsApplication.processingRegistry().algorithmById("glacierflow:compare_reference")
    assert algorithm.group() == "Validation" and "m/yr" in algorithm.shortHelpString()
    output, report = str(folder / "processing_diff.tif"), str(folder / "processing.json")
    result = processing.run("glacierflow:compare_reference", {
        "PRODUCT": product, "REFERENCE_VX": ref_vx, "REFERENCE_VY": ref_vy, "UNITS": 1,
        "OUTPUT": output, "REPORT": report})
    assert result["OUTPUT"] == output and result["REPORT"] == report
    assert result["PIXEL_COUNT"] == 60 * 50 and abs(result["BIAS_SPEED"]) < 0.5
    assert result["DIRECTION_DIFFERENCE"] < 0.05 and result["SPEED_RATIO"] == pytest.approx(1.0, abs=1e-3)
    assert json.loads(Path(report).read_text())["reference_units"] == "m/day"
