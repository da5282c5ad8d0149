"""The RAFT engine (glacierflow/core/velocity/flow/raft_onnx.py) on real exported ONNX models.

Models are freshly initialised RAFT-smalls exported by ``training.raft.export``
into a temporary folder (torch is needed only for that, and for the parity
reference); the shipped model in ``models/`` is also checked when present.
No timings are asserted here: bench/bench_raft_speed.py measures them.
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from osgeo import gdal

from glacierflow.core import onnx_runtime
from glacierflow.core.errors import GlacierFlowError
from glacierflow.core.feedback import Feedback
from glacierflow.core.onnx_runtime import CPU, CUDA, choose_providers
from glacierflow.core.velocity.flow import create_engine, default_engine_name, raft_onnx, runnable_engine_names
from glacierflow.core.velocity.flow.raft_onnx import RaftOnnx, padding_for
from glacierflow.core.velocity.pair import PairJob, run_pair_job
from training.sample import write_sample

pytest.importorskip("onnxruntime")

ITERS = 3


def _models() -> Any:
    """The RAFT training code (``training.raft``); needs torch."""
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    import training.raft.export as export
    import training.raft.raft as raft

    return raft, export


def _export(folder: Path, name: str, in_channels: int = 2, strong: bool = True) -> tuple[Any, str]:
    raft, export = _models()
    import torch

    torch.manual_seed(5)
    model = raft.RAFT(raft.RAFTConfig(small=True, in_channels=in_channels, iters=ITERS)).eval()
    if strong:  # flows of several px instead of ~0.1 px at initialisation: a stronger parity check
        with torch.no_grad():
            model.update.flow_head.conv2.weight.mul_(20.0)
    path = str(folder / name)
    card = export.model_card(model, ITERS, {"generator": "test"}, {}, version="0.0.1-test")
    export.export_onnx(model, path, iters=ITERS, card=card, sample_hw=(128, 128))
    return model, path


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, str]:
    """(torch model, .onnx path): a 2-channel RAFT-small, 3 iterations, dynamic N, H, W."""
    return _export(tmp_path_factory.mktemp("raft"), "raft_test.onnx")


@pytest.fixture(scope="module")
def engine(exported: tuple[Any, str]) -> RaftOnnx:
    return RaftOnnx(exported[1], provider="cpu")


def _pair(shape: tuple[int, int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed-noise (2, H, W) gradients-like pair, B shifted 2 px right and 1 down."""
    import cv2

    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.standard_normal((shape[0] + 8, shape[1] + 8)).astype(np.float32), (0, 0), 1.5)
    a = np.stack([base[4:-4, 4:-4], base[3:-5, 4:-4]])
    b = np.stack([base[3:-5, 2:-6], base[2:-6, 2:-6]])
    return np.ascontiguousarray(a / a.std()), np.ascontiguousarray(b / b.std())


# ------------------------------------------------------------ providers ---
@pytest.mark.parametrize("requested, available, expected, noted", [
    ("auto", [CUDA, CPU], [CUDA, CPU], False),
    ("auto", ["AzureExecutionProvider", CPU], [CPU], False),
    ("cuda", [CUDA, CPU], [CUDA, CPU], False),
    ("cuda", ["AzureExecutionProvider", CPU], [CPU], True),
    ("cpu", [CUDA, CPU], [CPU], False),
    ("CPU", [CPU], [CPU], False),
])
def test_provider_selection(requested: str, available: list[str], expected: list[str], noted: bool) -> None:
    providers, note = choose_providers(requested, available)
    assert providers == expected
    assert (note is not None) == noted
    if noted:
        assert "CUDA" in note and CPU in note and "onnxruntime-gpu" in note


def test_unknown_provider_choice_is_refused() -> None:
    with pytest.raises(GlacierFlowError, match="auto"):
        choose_providers("tpu", [CPU])


def test_provider_used_here(exported: tuple[Any, str]) -> None:
    import onnxruntime

    has_cuda = CUDA in onnxruntime.get_available_providers()
    engine = RaftOnnx(exported[1])
    assert engine.provider == (CUDA if has_cuda else CPU)
    assert engine.describe()["ENGINE_PROVIDER"] == engine.provider
    assert engine.summary().endswith(f"on {engine.provider}")


def test_cuda_requested_without_cuda_falls_back_to_cpu_and_says_so(exported: tuple[Any, str],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["AzureExecutionProvider", CPU])
    engine = RaftOnnx(exported[1], provider="cuda")
    assert engine.provider == CPU
    assert len(engine.provider_notes) == 1 and "CUDA was requested" in engine.provider_notes[0]


def test_session_is_cached(exported: tuple[Any, str]) -> None:
    first = RaftOnnx(exported[1], provider="cpu")
    second = create_engine("raft", model_path=exported[1], provider="cpu")
    assert second.session is first.session
    onnx_runtime.clear_session_cache()
    renewed = RaftOnnx(exported[1], provider="cpu")
    assert renewed.session is not first.session
    stat = os.stat(exported[1])
    os.utime(exported[1], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # as if re-exported in place
    reloaded = RaftOnnx(exported[1], provider="cpu")
    assert reloaded.session is not renewed.session
    assert sum(1 for key in onnx_runtime._SESSIONS if key[0] == reloaded.model_path and key[2] == "cpu") == 1


# ----------------------------------------------------------- model card ---
def test_model_card_is_read(engine: RaftOnnx) -> None:
    card = engine.card
    assert card.task == "optical_flow" and card.input_channels == 2
    assert (card.min_size, card.multiple, card.iterations, card.tile_size) == (128, 8, ITERS, 256)
    assert card.input_names == ("image1", "image2") and card.output_name == "flow"
    assert card.version == "0.0.1-test" and card.architecture == "RAFT-small"
    assert engine.describe() == {"ENGINE_PROVIDER": CPU, "MODEL_NAME": "raft_test.onnx",
                                 "MODEL_VERSION": "0.0.1-test", "MODEL_ARCHITECTURE": "RAFT-small",
                                 "MODEL_ITERATIONS": str(ITERS)}


def test_wrong_channel_model_is_refused(tmp_path: Path) -> None:
    _, path = _export(tmp_path, "raft_one_channel.onnx", in_channels=1, strong=False)
    with pytest.raises(GlacierFlowError, match="1 input channel.*gives 2.*--in-channels 2"):
        RaftOnnx(path)


def _recarded(source: str, target: Path, **changes: Any) -> str:
    """A copy of ``source`` whose card has ``changes`` (None removes a key)."""
    _, export = _models()
    import json

    shutil.copy(source, target)
    card = {k: v for k, v in export.read_card(str(target)).items() if changes.get(k, 0) is not None}
    card.update({k: v for k, v in changes.items() if v is not None})
    export.write_card(str(target), {k: json.dumps(v) for k, v in card.items()})
    return str(target)


def test_wrong_task_and_missing_card_are_refused(exported: tuple[Any, str], tmp_path: Path) -> None:
    forecaster = _recarded(exported[1], tmp_path / "forecast.onnx", task="ndsi_forecast")
    with pytest.raises(GlacierFlowError, match="not an optical-flow model"):
        RaftOnnx(forecaster)
    bare = _recarded(exported[1], tmp_path / "bare.onnx", min_size=None, multiple=None)
    with pytest.raises(GlacierFlowError, match="no GlacierFlow model card.*min_size.*training.raft.export"):
        RaftOnnx(bare)


def test_input_of_the_wrong_channel_count_is_refused(engine: RaftOnnx) -> None:
    a, b = _pair((64, 64))
    with pytest.raises(GlacierFlowError, match="2 channel"):
        engine.estimate(a[:1], b[:1])


# ---------------------------------------------------- padding and parity ---
@pytest.mark.parametrize("shape", [(60, 75), (257, 131), (128, 136)])
def test_padded_tiles_match_torch(exported: tuple[Any, str], engine: RaftOnnx, shape: tuple[int, int]) -> None:
    raft, export = _models()
    import torch

    model, _ = exported
    a, b = _pair(shape, seed=shape[0])
    flow = engine.estimate(a, b)
    assert flow.dx.shape == flow.dy.shape == shape and flow.dx.dtype == np.float32
    assert padding_for(*shape, 8, 128) == raft.padding_for(*shape)
    with torch.no_grad():
        x1, pads = raft.pad_to_multiple(torch.from_numpy(a)[None])
        x2, _ = raft.pad_to_multiple(torch.from_numpy(b)[None])
        expected = raft.unpad(export.FinalFlow(model, ITERS)(x1, x2), pads)[0].numpy()
    assert np.abs(expected).max() > 0.5  # a real flow, not a near-zero one
    assert np.max(np.abs(flow.dx - expected[0])) < 1e-3
    assert np.max(np.abs(flow.dy - expected[1])) < 1e-3


def test_batch_equals_one_at_a_time(engine: RaftOnnx) -> None:
    pairs = [_pair((96, 140), seed=s) for s in (1, 2, 3)]
    batched = engine.estimate_batch(pairs)
    for (a, b), flow in zip(pairs, batched):
        single = engine.estimate(a, b)
        assert np.allclose(flow.dx, single.dx, atol=1e-4) and np.allclose(flow.dy, single.dy, atol=1e-4)
    with pytest.raises(GlacierFlowError, match="same shape"):
        engine.estimate_batch([pairs[0], _pair((64, 64))])


def test_oversized_tile_is_refused_before_running(engine: RaftOnnx) -> None:
    big = np.zeros((2, 1600, 1600), np.float32)
    with pytest.raises(GlacierFlowError, match="smaller tile size"):
        engine.estimate(big, big)


# --------------------------------------------------------------- the job ---
class _Recorder(Feedback):
    def __init__(self) -> None:
        self.messages: list[str] = []

    def info(self, message: str) -> None:
        self.messages.append(message)

    def warning(self, message: str) -> None:
        self.messages.append("WARNING " + message)


def test_pair_job_with_raft_writes_the_provider(exported: tuple[Any, str], tmp_path: Path) -> None:
    sample = write_sample(str(tmp_path / "sample"), seed=3, shape=(200, 240), max_displacement_px=4.0)
    output = tmp_path / "v.tif"
    feedback = _Recorder()
    result = run_pair_job(PairJob(sample.image_a, sample.image_b, str(output), engine="raft", tile_size=160,
                                  overlap=40, consistency_check=False,  # an untrained model is not consistent
                                  engine_params={"model_path": exported[1], "provider": "cpu"}), feedback)
    metadata = gdal.Open(str(output)).GetMetadata()
    assert metadata["ENGINE"] == "raft" and metadata["ENGINE_PROVIDER"] == CPU
    assert metadata["MODEL_NAME"] == "raft_test.onnx" and metadata["MODEL_VERSION"] == "0.0.1-test"
    assert result.metadata["ENGINE_PROVIDER"] == CPU
    assert any(m.startswith("Flow engine: RAFT-small") and m.endswith(f"on {CPU}") for m in feedback.messages)


def test_classical_engines_add_no_provider(tmp_path: Path) -> None:
    sample = write_sample(str(tmp_path / "sample"), seed=3, shape=(128, 128), max_displacement_px=3.0)
    result = run_pair_job(PairJob(sample.image_a, sample.image_b, str(tmp_path / "v.tif"), engine="farneback"))
    assert "ENGINE_PROVIDER" not in result.metadata


# ------------------------------------------------ missing model or runtime ---
def test_raft_without_a_model_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(raft_onnx, "shipped_model_path", lambda: None)
    with pytest.raises(GlacierFlowError, match="No RAFT model found.*training.raft.export.*hybrid"):
        create_engine("raft")
    assert default_engine_name() == "hybrid"
    assert "raft" not in runnable_engine_names()
    monkeypatch.setattr(raft_onnx, "shipped_model_path", lambda: "/somewhere/raft.onnx")
    # A model makes raft runnable, not the default: the hybrid stays the most accurate engine measured.
    assert default_engine_name() == "hybrid"
    assert "raft" in runnable_engine_names()


def test_missing_model_file_and_missing_onnxruntime(exported: tuple[Any, str], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(GlacierFlowError, match="does not exist"):
        create_engine("raft", model_path=str(tmp_path / "nothing.onnx"))
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    with pytest.raises(GlacierFlowError, match="pip install onnxruntime"):
        RaftOnnx(exported[1])


# --------------------------------------------------------- shipped model ---
def test_shipped_model() -> None:
    path = raft_onnx.shipped_model_path()
    if path is None:
        pytest.skip("no RAFT model in glacierflow/assets/models/raft/ yet")
    engine = create_engine("raft")
    assert engine.model_path == os.path.abspath(path)
    assert engine.card.task == "optical_flow" and engine.card.input_channels == 2
    a, b = _pair((60, 75))
    flow = engine.estimate(a, b)
    assert flow.dx.shape == (60, 75) and np.isfinite(flow.dx).all() and np.isfinite(flow.dy).all()
    assert "raft" in runnable_engine_names()
