"""The NDSI forecasters in torch (training/forecast/) and their ONNX export with model cards.

Tiny configurations of every family: shapes and range, the persistence start,
teacher forcing against free running, a few optimisation steps on a small
constructed task, and export to ONNX in a temporary folder compared with
torch through onnxruntime. Skipped where torch is absent (plugin-only install).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


from training.forecast import export, registry  # noqa: E402
from training.raft.export import read_card  # noqa: E402

PATCH = 20
TINY: dict[str, dict[str, Any]] = {
    "sa_lstm": dict(width=16, heads=2),
    "lstm_encdec": dict(width=16),
    "convlstm": dict(width=4),
    "unet": dict(width=4, depth=2),
    "transformer": dict(width=16, heads=2, depth=1, tile=5),
}


def tiny(name: str, seed: int = 0, perturb: bool = False) -> Any:
    """A tiny model of family ``name`` (patch 20 px); ``perturb`` moves it off the persistence start."""
    torch.manual_seed(seed)
    model = registry.build_model(name, patch=PATCH, **TINY[name])
    if perturb:
        with torch.no_grad():
            for param in model.parameters():
                param.add_(0.05 * torch.randn_like(param))
    return model


def frames(batch: int, seed: int = 1, n: int = 4) -> Any:
    """Masked-NDSI-like patches: 0 below 0.3, else the value."""
    x = torch.rand(batch, n, PATCH, PATCH, generator=torch.Generator().manual_seed(seed))
    return torch.where(x < 0.3, torch.zeros_like(x), x)


@pytest.mark.parametrize("name", registry.MODEL_NAMES)
def test_shapes_range_and_persistence_start(name: str) -> None:
    x = frames(3)
    model = tiny(name).eval()
    with torch.no_grad():
        untrained = model(x)
        perturbed = tiny(name, perturb=True).eval()(x)
    assert untrained.shape == (3, 4, PATCH, PATCH)
    # the change head starts at zero and the skip at "last frame": an untrained model is persistence
    assert torch.allclose(untrained, x[:, -1:].expand(-1, 4, -1, -1), atol=1e-6)
    assert perturbed.shape == (3, 4, PATCH, PATCH)
    assert float(perturbed.min()) >= 0.0 and float(perturbed.max()) <= 1.0
    assert float((perturbed - untrained).abs().max()) > 1e-3


@pytest.mark.parametrize("name", registry.MODEL_NAMES)
def test_teacher_forcing_and_free_running(name: str) -> None:
    x, y = frames(2, seed=2), frames(2, seed=3)
    model = tiny(name, perturb=True).train()
    forced = model(x, y, 1.0)
    free = model(x, y, 0.0)
    assert forced.shape == free.shape == (2, 4, PATCH, PATCH)
    ((forced - y) ** 2).mean().backward()  # the forced path trains
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    model.eval()
    with torch.no_grad():
        forced, free = model(x, y, 1.0), model(x, None, 1.0)
    first_equal = torch.allclose(forced[:, 0], free[:, 0])
    later_equal = torch.allclose(forced[:, 1:], free[:, 1:])
    assert first_equal  # the first frame never sees a target
    # recursive decoders feed the true frames under full teacher forcing; the others ignore targets
    assert later_equal != registry.is_recursive(name)


@pytest.mark.parametrize("name", registry.MODEL_NAMES)
def test_a_few_steps_reduce_the_loss(name: str) -> None:
    # targets = the input frames one year earlier, dimmed: the seasonal copy persistence cannot see
    torch.manual_seed(0)
    x = frames(16, seed=4)
    y = 0.8 * x
    model = tiny(name, seed=1).train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)

    def loss() -> Any:
        return torch.mean((model(x, y, 0.5) - y) ** 2)

    with torch.no_grad():
        model.eval()
        before = float(torch.mean((model(x) - y) ** 2))
        model.train()
    for _ in range(25):
        optimiser.zero_grad()
        loss().backward()
        optimiser.step()
    model.eval()
    with torch.no_grad():
        after = float(torch.mean((model(x) - y) ** 2))
    assert after < 0.7 * before, (before, after)


@pytest.mark.parametrize("name", registry.MODEL_NAMES)
def test_onnx_export_matches_torch_and_card_round_trips(name: str, tmp_path: Path) -> None:
    import onnxruntime as ort

    model = tiny(name, perturb=True).eval()
    metrics = {"test_mse": 0.01, "test_mse_ci95": [0.009, 0.011]}
    card = export.model_card(name, model, {"generator": "test"}, metrics, version="0.0.1-test")
    path = export.export_onnx(model, str(tmp_path / f"{name}.onnx"), card)
    assert not list(tmp_path.glob("*.tmp*"))
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    for batch in (1, 5):  # dynamic batch axis: neither is the export's batch of 2
        x = frames(batch, seed=10 + batch)
        with torch.no_grad():
            expected = model(x).numpy()
        got = session.run(["forecast"], {"frames": x.numpy()})[0]
        np.testing.assert_allclose(got, expected, atol=1e-4)
    assert export.verify(model, path) < 1e-4
    decoded = read_card(path)
    assert all(key in decoded for key in export.REQUIRED_CARD_KEYS)
    assert decoded["task"] == "ndsi_forecast" and decoded["name"] == name
    assert decoded["architecture"] == registry.architecture(name)
    assert (decoded["n_in"], decoded["n_out"], decoded["patch_size"]) == (4, 4, PATCH)
    assert decoded["config"] == model.config and decoded["metrics"] == metrics
    rebuilt = registry.build_model(name, **decoded["config"])
    assert sum(p.numel() for p in rebuilt.parameters()) == decoded["parameters"]


def test_unknown_family_is_refused() -> None:
    with pytest.raises(ValueError, match="choose one of"):
        registry.build_model("gru")
