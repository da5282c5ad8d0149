"""Fine-tune RAFT then velocity with the tuned model through processing.run."""
from __future__ import annotations

import os

import pytest
from test_raft_finetune import base_checkpoint, sample_pair  # noqa: F401 (fixtures and helpers)


def test_processing_finetune_then_velocity_with_the_tuned_model(plugin, sample_pair, base_checkpoint, tmp_path):  # noqa: F811
    """The toolbox path: fine-tune on a pair, then use the result as the raft engine's model."""
    import processing
    from qgis.core import QgsProcessingException

    model = str(tmp_path / "tuned.onnx")
    result = processing.run("glacierflow:finetune_raft", {
        "IMAGE_A": sample_pair.image_a, "IMAGE_B": sample_pair.image_b, "LABELS": "horn_schunck", "STEPS": 1,
        "BATCH": 1, "CROP": 128, "CHECKPOINT": base_checkpoint, "OUTPUT": model})
    assert result["OUTPUT"] == model and os.path.exists(model)
    assert result["EPE_AFTER"] is not None and result["EPE_AFTER"] >= 0
    velocity = processing.run("glacierflow:velocity_pair", {
        "IMAGE_A": sample_pair.image_a, "IMAGE_B": sample_pair.image_b, "ENGINE": "raft", "MODEL": model,
        "OUTPUT": str(tmp_path / "v.tif")})
    from osgeo import gdal

    dataset = gdal.Open(velocity["OUTPUT"])
    assert dataset.GetMetadataItem("ENGINE") == "raft"
    with pytest.raises(QgsProcessingException, match="engine is not raft"):
        processing.run("glacierflow:velocity_pair", {
            "IMAGE_A": sample_pair.image_a, "IMAGE_B": sample_pair.image_b, "ENGINE": "horn_schunck",
            "MODEL": model, "OUTPUT": str(tmp_path / "w.tif")})
    with pytest.raises(QgsProcessingException, match="No image pair"):
        processing.run("glacierflow:finetune_raft", {"OUTPUT": str(tmp_path / "x.onnx")})
