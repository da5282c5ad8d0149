"""ONNX export of a trained RAFT with its model card, and verification against torch.

The exported graph takes ``image1`` and ``image2`` (N, C, H, W) float32, H
and W multiples of 8 and >= 128 (dynamic N, H, W), and returns ``flow``
(N, 2, H, W) float32 in px (channel 0 = dx columns right, 1 = dy rows down)
after a fixed number of iterations.

The model card lives in the ONNX ``metadata_props``; every value is a JSON
document (``json.loads`` each value; strings are JSON strings), e.g.
``{k: json.loads(v) for k, v in session.get_modelmeta().custom_metadata_map.items()}``.

Command line::

    python -m training.raft.export --checkpoint .build/raft_run1/latest.pt \\
        --out glacierflow/assets/models/raft/raft_small_glacier.onnx --evaluate 16
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from .raft import MIN_SIZE, MULTIPLE, RAFT, RAFTConfig, pad_to_multiple, unpad

CARD_VERSION = "1"
TILE_SIZE = 256
INPUT_NORMALISATION = (
    "Per band: NaN (no data) -> median; (band - median) / (p98 - p2); Sobel d/dcol and d/drow "
    "(cv2.Sobel ksize 3, BORDER_REPLICATE) / 8; gradients next to no data set to 0; both channels "
    "divided by p98 - p2 of the pooled valid gradients (training.raft.data.preprocess_for_flow, "
    "core.velocity.preprocess.prepare_for_flow). Pad with 0 to a multiple of 8 and at least 128 px.")
# Refinement iterations baked into an exported graph. The model trained here with 8 gave the same
# median error with 3, 4, 6 and 12 on synthetic test scenes with flow up to 8 and up to 24 px and on
# the real Yahtse matches, and 5 % more than 12 at 32 px (bench/RESULTS.md); with 4 the whole Yahtse
# pair takes 9.3 s against 20.3 s with 12. Export with --iters 8 or more for faster glaciers.
EXPORT_ITERATIONS = 4
REQUIRED_CARD_KEYS = ("task", "version", "architecture", "input_names", "output_names",
                      "input_channels", "input_normalisation", "output", "tile_size", "min_size",
                      "multiple", "iterations", "training_data", "metrics")


class FinalFlow(nn.Module):
    """Test-time wrapper: (image1, image2) (N, C, H, W) -> final flow (N, 2, H, W) px."""

    def __init__(self, model: RAFT, iters: int) -> None:
        super().__init__()
        self.model = model
        self.iters = iters

    def forward(self, image1: torch.Tensor, image2: torch.Tensor) -> torch.Tensor:
        return self.model(image1, image2, iters=self.iters, final_only=True)[-1]


def load_checkpoint(path: str) -> tuple[RAFT, dict[str, Any]]:
    """Model (eval mode) and the checkpoint dict from a training checkpoint (.pt)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    model = RAFT(RAFTConfig(**ckpt["config"]))
    model.load_state_dict(ckpt["model"])
    return model.eval(), ckpt


def model_card(model: RAFT, iters: int, training_data: dict[str, Any] | str,
               metrics: dict[str, Any], version: str = "0.1.0", **extra: Any) -> dict[str, str]:
    """The card as ``metadata_props`` entries: every value JSON-encoded."""
    cfg = model.config
    card: dict[str, Any] = {
        "task": "optical_flow",
        "card_version": CARD_VERSION,
        "version": version,
        "architecture": "RAFT-small" if cfg.small else "RAFT",
        "config": {k: getattr(cfg, k) for k in ("small", "in_channels", "iters", "corr_levels",
                                                 "corr_radius", "dropout", "context_norm")},
        "parameters": sum(p.numel() for p in model.parameters()),
        "input_names": ["image1", "image2"],
        "output_names": ["flow"],
        "input_layout": "NCHW float32",
        "input_channels": cfg.in_channels,
        "input_channel_names": {1: ["sobel_magnitude"], 2: ["sobel_x", "sobel_y"],
                                3: ["red", "green", "blue"]}.get(cfg.in_channels, []),
        "input_normalisation": INPUT_NORMALISATION,
        "pad_value": 0.0,
        "output": "flow (N, 2, H, W) float32 px from image1 to image2: channel 0 = dx (columns, right), "
                  "channel 1 = dy (rows, down); the feature at (r, c) in image1 is at (r+dy, c+dx) in image2",
        "tile_size": TILE_SIZE,
        "min_size": MIN_SIZE,
        "multiple": MULTIPLE,
        "iterations": iters,
    }
    return encode_card(card, training_data, metrics, **extra)


def encode_card(card: dict[str, Any], training_data: dict[str, Any] | str, metrics: dict[str, Any],
                **extra: Any) -> dict[str, str]:
    """``card`` completed with what every model card carries (training data, measured metrics, opset,
    framework, creation time) and ``extra``, as ``metadata_props`` entries: every value JSON-encoded."""
    card = dict(card, training_data=training_data, metrics=metrics, opset=17,
                framework=f"torch {torch.__version__}",
                created=_dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat())
    card.update(extra)
    return {k: json.dumps(v) for k, v in card.items()}


def write_card(path: str, card: dict[str, str]) -> None:
    """Replace the ``metadata_props`` of the ONNX file at ``path`` with ``card``."""
    import onnx

    proto = onnx.load(path)
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, card)
    onnx.save(proto, path)


def read_card(path: str) -> dict[str, Any]:
    """The decoded model card of an ONNX file."""
    import onnx

    proto = onnx.load(path, load_external_data=False)
    return {p.key: json.loads(p.value) for p in proto.metadata_props}


def export_onnx(model: RAFT, path: str, iters: int, card: dict[str, str] | None = None,
                sample_hw: tuple[int, int] = (TILE_SIZE, TILE_SIZE), opset: int = 17) -> str:
    """Export the final-flow graph with dynamic N, H, W (legacy TorchScript exporter), then write the card."""
    model = model.eval()
    wrapper = FinalFlow(model, iters).eval()
    c = model.config.in_channels
    x1 = torch.randn(1, c, *sample_hw)
    x2 = torch.randn(1, c, *sample_hw)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    axes = {0: "batch", 2: "height", 3: "width"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")         # tracer notes on shape arithmetic and instance norm
        torch.onnx.export(wrapper, (x1, x2), path, dynamo=False, opset_version=opset,
                          input_names=["image1", "image2"], output_names=["flow"],
                          dynamic_axes={"image1": axes, "image2": axes, "flow": axes},
                          do_constant_folding=True)
    if card is not None:
        write_card(path, card)
    return path


def onnx_session(path: str, threads: int = 0) -> Any:
    """A CPU onnxruntime session for checks (the plugin runtime has its own)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def verify(model: RAFT, path: str, iters: int, shape: tuple[int, int, int, int] = (2, 2, 128, 160),
           seed: int = 0) -> float:
    """Max |flow_onnx - flow_torch| in px on random input of ``shape`` (N, C, H, W)."""
    g = torch.Generator().manual_seed(seed)
    x1 = torch.randn(*shape, generator=g)
    x2 = torch.randn(*shape, generator=g)
    with torch.no_grad():
        expected = FinalFlow(model.eval(), iters)(x1, x2).numpy()
    got = onnx_session(path).run(["flow"], {"image1": x1.numpy(), "image2": x2.numpy()})[0]
    return float(np.max(np.abs(got - expected)))


def evaluate_onnx(path: str, n_scenes: int = 16, size: int = TILE_SIZE, batch: int = 4) -> dict[str, float]:
    """Endpoint error of the ONNX model on held-out validation scenes (px).

    Scenes are ``VALIDATION_SEEDS`` (never trained on), ``size`` x ``size``,
    no augmentation; EPE is split into glacier and stable-ground pixels.
    """
    from .data import VALIDATION_SEEDS, GlacierFlowDataset

    ds = GlacierFlowDataset(VALIDATION_SEEDS[:n_scenes], crop=size, scene_size=size,
                            in_channels=int(read_card(path)["input_channels"]), augment=False)
    session = onnx_session(path)
    err_g: list[np.ndarray] = []
    err_s: list[np.ndarray] = []
    for start in range(0, n_scenes, batch):
        items = [ds.item(i) for i in range(start, min(n_scenes, start + batch))]
        x1 = torch.stack([it[0] for it in items])
        x2 = torch.stack([it[1] for it in items])
        x1p, pads = pad_to_multiple(x1)
        x2p, _ = pad_to_multiple(x2)
        flow = session.run(["flow"], {"image1": x1p.numpy(), "image2": x2p.numpy()})[0]
        flow = unpad(torch.from_numpy(flow), pads).numpy()
        for it, f in zip(items, flow):
            err = np.sqrt(((f - it[2].numpy()) ** 2).sum(0))
            valid, ice = it[3].numpy() > 0, it[4].numpy()
            err_g.append(err[valid & ice])
            err_s.append(err[valid & ~ice])
    g, s = np.concatenate(err_g), np.concatenate(err_s)
    return {"validation_scenes": n_scenes, "tile": size,
            "epe_glacier_mean_px": float(g.mean()), "epe_glacier_median_px": float(np.median(g)),
            "epe_stable_mean_px": float(s.mean()), "epe_stable_median_px": float(np.median(s)),
            "epe_all_mean_px": float(np.concatenate([g, s]).mean())}


def main(argv: list[str] | None = None) -> None:
    """CLI: checkpoint -> ONNX with card, parity check and optional evaluation."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="training checkpoint (.pt), e.g. RUN/latest.pt")
    ap.add_argument("--out", required=True, help="output .onnx path")
    ap.add_argument("--iters", type=int, default=EXPORT_ITERATIONS, help="refinement iterations baked into the graph")
    ap.add_argument("--version", default="0.1.0", help="model version written to the card")
    ap.add_argument("--evaluate", type=int, default=16, help="validation scenes to measure (0: skip)")
    ap.add_argument("--metrics-json", help="extra measured metrics (JSON file) merged into the card")
    args = ap.parse_args(argv)

    model, ckpt = load_checkpoint(args.checkpoint)
    training = dict(ckpt.get("training_data", {}))
    training.update(steps=int(ckpt.get("step", 0)))
    metrics: dict[str, Any] = {}
    if args.metrics_json:
        with open(args.metrics_json) as fh:
            metrics.update(json.load(fh))
    card = model_card(model, args.iters, training, metrics, version=args.version)
    export_onnx(model, args.out, args.iters, card)
    diff = verify(model, args.out, args.iters)
    metrics["onnx_vs_torch_max_abs_px"] = diff
    if args.evaluate:
        metrics.update(evaluate_onnx(args.out, args.evaluate))
    write_card(args.out, model_card(model, args.iters, training, metrics, version=args.version))
    print(json.dumps({"onnx": args.out, "bytes": os.path.getsize(args.out), **metrics}, indent=1))


if __name__ == "__main__":
    main()
