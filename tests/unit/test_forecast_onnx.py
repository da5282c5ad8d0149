"""The plugin's ONNX forecaster (glacierflow/core/forecast/onnx_forecaster.py) on real exported models.

Tiny forecasters are exported by ``training.forecast.export`` into a temporary
folder (torch is needed only for that); the shipped models in
``glacierflow/assets/models/forecast/`` are checked when present, without torch.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from glacierflow.core.errors import GlacierFlowError
from glacierflow.core.feedback import Feedback, JobCancelled
from glacierflow.core.forecast.onnx_forecaster import OnnxForecaster, list_shipped_forecasters
from glacierflow.core.onnx_runtime import CPU

pytest.importorskip("onnxruntime")

PATCH = 20
SHIPPED = list_shipped_forecasters()


def _export(folder: Path, name: str = "convlstm", perturb: bool = False, **card_changes: Any) -> str:
    """A tiny forecaster of family ``name`` (20 px patches) exported with its card; needs torch."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from training.forecast import export, registry

    torch.manual_seed(3)
    model = registry.build_model(name, patch=PATCH, width=4).eval()
    if perturb:
        with torch.no_grad():
            for param in model.parameters():
                param.add_(0.05 * torch.randn_like(param))
    card = export.model_card(name, model, {"generator": "test"}, {}, version="0.0.1-test", **card_changes)
    return export.export_onnx(model, str(folder / f"{name}.onnx"), card)


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    return _export(tmp_path_factory.mktemp("forecasters"))


def _scene(shape: tuple, seed: int = 0) -> np.ndarray:
    values = np.random.default_rng(seed).random(shape).astype(np.float32)
    return np.where(values < 0.3, 0.0, values).astype(np.float32)


class Recorder(Feedback):
    def __init__(self, cancel_after: int = -1) -> None:
        self.percents: list[float] = []
        self.cancel_after = cancel_after

    def progress(self, percent: float) -> None:
        self.percents.append(percent)

    def is_cancelled(self) -> bool:
        return 0 <= self.cancel_after <= len(self.percents)


def test_card_and_provider(tiny_path: str) -> None:
    forecaster = OnnxForecaster(tiny_path, device="cpu")
    card = forecaster.card
    assert (card.n_in, card.n_out, card.patch_size, card.window_months) == (4, 4, PATCH, 3)
    assert card.name == "convlstm" and card.architecture == "ConvLSTM encoder-forecaster"
    assert forecaster.provider == CPU and not forecaster.provider_notes
    assert "ConvLSTM" in forecaster.summary() and CPU in forecaster.summary()
    assert OnnxForecaster(tiny_path, device="auto").provider in forecaster.session.get_providers() + [
        "CUDAExecutionProvider"]


def test_predict_patches_in_batches_with_progress_and_cancel(tiny_path: str) -> None:
    forecaster = OnnxForecaster(tiny_path, device="cpu")
    inputs = _scene((7, 4, PATCH, PATCH))
    percents: list[float] = []
    out = forecaster.predict_patches(inputs, batch_size=3, progress=percents.append)
    assert out.shape == (7, 4, PATCH, PATCH) and out.dtype == np.float32
    assert percents == pytest.approx([300 / 7, 600 / 7, 100.0])
    # an untrained forecaster is persistence (zero change head, skip on the last frame)
    np.testing.assert_allclose(out, np.repeat(inputs[:, -1:], 4, axis=1), atol=1e-6)
    calls: list[int] = []

    def cancel_on_second() -> bool:
        calls.append(1)
        return len(calls) == 2

    with pytest.raises(JobCancelled):
        forecaster.predict_patches(inputs, batch_size=3, is_cancelled=cancel_on_second)
    with pytest.raises(GlacierFlowError, match=r"\(N, 4, 20, 20\)"):
        forecaster.predict_patches(inputs[:, :3])


def test_forecast_scene_covers_every_pixel(tmp_path: Path) -> None:
    forecaster = OnnxForecaster(_export(tmp_path, perturb=True), device="cpu")
    frames = _scene((4, 47, 33), seed=1)              # neither side a multiple of the patch or the stride
    frames[:, 40:, :5] = np.nan                        # no data in every window: stays NaN
    recorder = Recorder()
    out = forecaster.forecast_scene(frames, stride=7, feedback=recorder, batch_size=4)
    assert out.shape == (4, 47, 33) and out.dtype == np.float32
    assert np.isnan(out[:, 40:, :5]).all()
    covered = out.copy()
    covered[:, 40:, :5] = 0.0
    assert np.isfinite(covered).all() and covered.min() >= 0.0 and covered.max() <= 1.0
    assert recorder.percents[-1] == pytest.approx(100.0) and len(recorder.percents) > 1
    # the patch at the origin is the only one covering the top-left pixel
    alone = forecaster.predict_patches(np.nan_to_num(frames)[None, :, :PATCH, :PATCH])[0]
    np.testing.assert_allclose(out[:, 0, 0], alone[:, 0, 0], atol=1e-5)


def test_forecast_scene_of_persistence_is_the_last_frame(tiny_path: str) -> None:
    forecaster = OnnxForecaster(tiny_path, device="cpu")
    frames = _scene((4, 61, 45), seed=2)
    out = forecaster.forecast_scene(frames, stride=9)
    np.testing.assert_allclose(out, np.repeat(frames[-1:], 4, axis=0), atol=1e-5)


def test_forecast_scene_refusals(tiny_path: str) -> None:
    forecaster = OnnxForecaster(tiny_path, device="cpu")
    with pytest.raises(GlacierFlowError, match="needs at least 20 x 20 px"):
        forecaster.forecast_scene(_scene((4, 19, 40)))
    with pytest.raises(GlacierFlowError, match=r"shape \(4, H, W\)"):
        forecaster.forecast_scene(_scene((3, 40, 40)))
    with pytest.raises(GlacierFlowError, match="stride"):
        forecaster.forecast_scene(_scene((4, 40, 40)), stride=21)
    with pytest.raises(JobCancelled):
        forecaster.forecast_scene(_scene((4, 40, 40)), stride=5, feedback=Recorder(cancel_after=1), batch_size=2)


def test_bad_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(GlacierFlowError, match="does not exist"):
        OnnxForecaster(str(tmp_path / "missing.onnx"))
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(GlacierFlowError, match="cannot load"):
        OnnxForecaster(str(broken))
    with pytest.raises(GlacierFlowError, match="not an NDSI forecaster"):
        OnnxForecaster(_export(tmp_path, task="optical_flow"))
    with pytest.raises(GlacierFlowError, match="card says"):
        OnnxForecaster(_export(tmp_path, name="unet", patch_size=30))
    with pytest.raises(GlacierFlowError, match="execution provider"):
        OnnxForecaster(_export(tmp_path), device="tpu")


@pytest.mark.skipif(not SHIPPED, reason="no forecaster shipped in glacierflow/assets/models/forecast/")
@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_forecaster_loads_with_a_complete_card(name: str) -> None:
    forecaster = OnnxForecaster(SHIPPED[name], device="cpu")
    card = forecaster.card.raw
    for key in ("architecture", "config", "parameters", "input_normalisation", "training_data", "metrics",
                "threshold", "window_months"):
        assert key in card, key
    metrics = card["metrics"]
    for key in ("test_mse", "test_mse_ci95", "test_mae", "persistence_mse", "climatology_mse",
                "skill_vs_persistence_mse", "onnx_vs_torch_max_abs"):
        assert key in metrics, key
    assert metrics["onnx_vs_torch_max_abs"] < 1e-4
    assert card["name"] == name and forecaster.card.patch_size == 50
    assert Path(SHIPPED[name]).stat().st_size < 5 * 2**20


@pytest.fixture(scope="module")
def small_heldout() -> Any:
    """Test windows of one generated 100 px series never trained on (seed 9500), 6 years."""
    from training.forecast.data import DataSpec
    from training.forecast.heldout import heldout_set

    return heldout_set(DataSpec(seeds=(9500, 9501), size=100, years=6, stride=50))


@pytest.mark.skipif(not SHIPPED, reason="no forecaster shipped in glacierflow/assets/models/forecast/")
@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_forecaster_beats_persistence(name: str, small_heldout: Any) -> None:
    forecaster = OnnxForecaster(SHIPPED[name], device="cpu")
    predicted = forecaster.predict_patches(small_heldout.inputs)
    model = float(np.mean((predicted - small_heldout.targets) ** 2))
    persistence = float(np.mean((small_heldout.persistence - small_heldout.targets) ** 2))
    assert model < persistence, (model, persistence)
