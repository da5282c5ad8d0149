"""ONNX export of a trained NDSI forecaster with its model card, verified against torch.

The graph takes ``frames`` (batch, n_in, p, p) float32 masked NDSI in [0, 1]
(dynamic batch) and returns ``forecast`` (batch, n_out, p, p) float32 in
[0, 1], free running (no teacher forcing). The card lives in the ONNX
``metadata_props``, every value a JSON document (the RAFT export's
convention; ``training.raft.export.read_card`` decodes it). The measured
metrics come from the exported ONNX file itself on the test windows of
generated series never trained on (``training.forecast.data.TEST_SEEDS``).

Command line::

    python -m training.forecast.export --checkpoint .build/forecast_runs/sa_lstm/best.pt \\
        --out glacierflow/assets/models/forecast/sa_lstm.onnx
"""
from __future__ import annotations

import argparse
import json
import os
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from ..raft.export import encode_card, onnx_session, read_card, write_card
from .common import count_parameters
from .data import TEST_SEEDS, DataSpec
from .registry import architecture, build_model

CARD_VERSION = "1"
TASK = "ndsi_forecast"
INPUT_NAME, OUTPUT_NAME = "frames", "forecast"
INPUT_NORMALISATION = (
    "None beyond the papers' snow mask: per pixel NDSI = (green - SWIR1) / (green + SWIR1) from surface "
    "reflectance, kept where NDSI >= threshold and 0 elsewhere (values 0 or in [threshold, 1]); windows are "
    "means over window_months; no NaN (fill gaps before). core.forecast.series.build_ndsi_series.")
OUTPUT_DESCRIPTION = ("forecast (batch, n_out, p, p) float32 masked NDSI in [0, 1]: the next n_out windows after "
                      "the n_in input windows, in time order")
REQUIRED_CARD_KEYS = ("task", "version", "name", "architecture", "input_names", "output_names", "n_in", "n_out",
                      "patch_size", "window_months", "threshold", "input_normalisation", "training_data",
                      "metrics")


class FreeRunning(nn.Module):
    """Export wrapper: frames -> forecast with the model's own predictions fed back."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.model(frames)


def load_checkpoint(path: str) -> tuple[str, nn.Module, dict[str, Any]]:
    """(family name, model in eval mode, checkpoint dict) from a training checkpoint (.pt)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    model = build_model(ckpt["family"], **ckpt["config"])
    model.load_state_dict(ckpt["model"])
    return ckpt["family"], model.eval(), ckpt


def model_card(family: str, model: nn.Module, training_data: dict[str, Any] | str, metrics: dict[str, Any],
               version: str = "0.1.0", window_months: int = 3, threshold: float = 0.3,
               **extra: Any) -> dict[str, str]:
    """The card as ``metadata_props`` entries, every value JSON-encoded."""
    cfg = model.config
    card: dict[str, Any] = {
        "task": TASK,
        "card_version": CARD_VERSION,
        "version": version,
        "name": family,
        "architecture": architecture(family),
        "config": cfg,
        "parameters": count_parameters(model),
        "input_names": [INPUT_NAME],
        "output_names": [OUTPUT_NAME],
        "input_layout": "N T H W float32 (T = time windows, oldest first)",
        "n_in": cfg["n_in"],
        "n_out": cfg["n_out"],
        "patch_size": cfg["patch"],
        "window_months": window_months,
        "threshold": threshold,
        "input_normalisation": INPUT_NORMALISATION,
        "output": OUTPUT_DESCRIPTION,
        "output_range": [0.0, 1.0],
        "residual": "change added to a learned linear combination of input frames initialised to the last "
                    "frame (persistence), clamped to [0, 1]",
    }
    return encode_card(card, training_data, metrics, **extra)


def export_onnx(model: nn.Module, path: str, card: dict[str, str] | None = None, opset: int = 17) -> str:
    """Export the free-running graph with a dynamic batch axis (legacy TorchScript exporter), then the card.

    Written to a temporary file and renamed: a failed export leaves nothing at ``path``. The wrapper is
    put in eval mode itself: the exporter restores the wrapper's mode (and so its children's) afterwards.
    """
    cfg = model.config
    sample = torch.rand(2, cfg["n_in"], cfg["patch"], cfg["patch"])
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp.onnx"
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")          # tracer notes on LSTM batch sizes and shape arithmetic
            torch.onnx.export(FreeRunning(model).eval(), (sample,), tmp, dynamo=False, opset_version=opset,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                              do_constant_folding=True)
        if card is not None:
            write_card(tmp, card)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def verify(model: nn.Module, path: str, batch: int = 3, seed: int = 0) -> float:
    """Max |forecast_onnx - forecast_torch| on random masked-NDSI-like input of ``batch`` patches."""
    cfg = model.config
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, cfg["n_in"], cfg["patch"], cfg["patch"], generator=g)
    x = torch.where(x < 0.3, torch.zeros_like(x), x)                 # the snow mask's zeros
    with torch.no_grad():
        expected = model.eval()(x).numpy()
    got = onnx_session(path).run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0]
    return float(np.max(np.abs(got - expected)))


def main(argv: list[str] | None = None) -> None:
    """CLI: checkpoint -> ONNX with card, parity check, test metrics from the ONNX file."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="training checkpoint (.pt), e.g. RUN/best.pt")
    ap.add_argument("--out", required=True, help="output .onnx path")
    ap.add_argument("--version", default="0.1.0", help="model version written to the card")
    ap.add_argument("--test-series", type=int, default=3, help="held-out series to measure (0: skip)")
    ap.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the 95 % CIs")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    family, model, ckpt = load_checkpoint(args.checkpoint)
    training = json.loads(ckpt.get("training_data", "{}"))
    training.update(epochs=int(ckpt.get("step", 0)), best_epoch=int(ckpt.get("best_epoch", 0)),
                    best_validation_mse=float(ckpt.get("best_val", float("nan"))),
                    optimiser=json.loads(ckpt.get("args", "{}")))
    metrics: dict[str, Any] = {}
    export_onnx(model, args.out, model_card(family, model, training, metrics, version=args.version))
    metrics["onnx_vs_torch_max_abs"] = verify(model, args.out)
    if args.test_series:
        from .heldout import heldout_set, score_forecaster

        train = DataSpec(**{k: (tuple(v) if k == "seeds" else v) for k, v in training.items()
                            if k in DataSpec.__dataclass_fields__})
        spec = DataSpec(seeds=(TEST_SEEDS.start, TEST_SEEDS.start + args.test_series), size=train.size,
                        years=train.years, stride=train.patch, patch=train.patch, n_in=train.n_in, n_out=train.n_out)
        metrics.update(score_forecaster(args.out, heldout_set(spec), resamples=args.bootstrap))
    write_card(args.out, model_card(family, model, training, metrics, version=args.version))
    card = read_card(args.out)
    missing = [k for k in REQUIRED_CARD_KEYS if k not in card]
    if missing:
        raise SystemExit(f"card of {args.out} lacks {missing}")
    print(json.dumps({"onnx": args.out, "bytes": os.path.getsize(args.out), **metrics}, indent=1))


if __name__ == "__main__":
    main()
