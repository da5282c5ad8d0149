"""Fine-tune RAFT on a user's own image pairs, then export it to ONNX with its card.

Labels, as the first paper does for real imagery: each pair is read onto its common grid,
preprocessed exactly as the velocity job does (robust normalisation + Sobel), cut into the job's
256 px tiles, and tracked with multi-level Horn-Schunck plus the 9 x 9 median filter and the
forward-backward check; only consistent, textured pixels count (``labels="horn_schunck"``).
Without labels (``labels="self_supervised"``) the loss is photometric (Charbonnier of the Sobel
inputs of image 2 warped by the flow against image 1) plus an edge-aware smoothness term, so the
network may learn beyond Horn-Schunck's own errors.

Training samples are random crops of the labelled tiles with the 8 rotations/flips of the square.
Validation is split by pair (the last pair is held out); with a single pair, by tile columns (the
right-most quarter of the tiles), never by overlapping tile.

CLI::

    python -m training.raft.finetune --pairs pairs.csv --out my_glacier.onnx --steps 300
"""
from __future__ import annotations

import argparse
import csv
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .export import EXPORT_ITERATIONS, export_onnx, load_checkpoint, model_card, verify
from .raft import RAFT, pad_to_multiple, unpad

TRAINING_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CHECKPOINT = os.path.join(TRAINING_DIR, "checkpoints", "raft_small.pt")
LABEL_MODES = ("horn_schunck", "self_supervised")
TILE = 256
MIN_LABELLED_FRACTION = 0.2   # tiles with fewer trusted label pixels teach little




@dataclass
class LabelledTile:
    """One tile of a user pair: inputs (C, h, w) and Horn-Schunck labels (2, h, w) px with their mask."""

    image1: np.ndarray
    image2: np.ndarray
    flow: np.ndarray
    valid: np.ndarray
    pair: int
    column: int


@dataclass
class FineTuneResult:
    """What a fine-tuning run did and measured (px: endpoint errors against the labels)."""

    output: str
    steps: int
    train_tiles: int
    validation_tiles: int
    labels: str
    before: dict[str, float] = field(default_factory=dict)
    after: dict[str, float] = field(default_factory=dict)


def read_pairs_csv(path: str) -> list[tuple[str, str]]:
    """(first, second) image paths from a pair list (the ``Image pairs`` algorithm's CSV, or two columns)."""
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        raise ValueError(f"{path} is empty: list one image pair per line.")
    header = [h.strip().lower() for h in rows[0]]
    if "first_href" in header and "second_href" in header:
        a, b = header.index("first_href"), header.index("second_href")
        return [(r[a], r[b]) for r in rows[1:] if len(r) > max(a, b)]
    return [(r[0], r[1]) for r in rows if len(r) >= 2 and os.path.exists(r[0])]


def label_pair(image_a: str, image_b: str, pair_index: int, max_tiles: int = 48,
               feedback: Callable[[str], None] = print) -> list[LabelledTile]:
    """Horn-Schunck labels for up to ``max_tiles`` tiles of one pair (tiles evenly spread over the grid)."""
    from glacierflow.core.geo.grid import Window
    from glacierflow.core.geo.gridspec import resolve_grid
    from glacierflow.core.io import raster
    from glacierflow.core.velocity import flow as flow_api
    from glacierflow.core.velocity import pair as pair_api
    from glacierflow.core.velocity import preprocess

    prepared_tile, sample_windows = pair_api.prepared_tile, pair_api.sample_windows
    band_statistics, texture_strength = preprocess.band_statistics, preprocess.texture_strength

    sources = (raster.BandSource.open(image_a), raster.BandSource.open(image_b))
    grid = resolve_grid(images=[sources[0].grid, sources[1].grid])
    stats = tuple(band_statistics(sample_windows(s, grid), n) for s, n in zip(sources, ("A", "B")))
    defaults = pair_api.PairJob(image_a, image_b, "")
    engine = flow_api.create_engine("horn_schunck")
    windows = [Window(c, r, min(TILE, grid.width - c), min(TILE, grid.height - r))
               for r in range(0, grid.height - TILE // 2, TILE) for c in range(0, grid.width - TILE // 2, TILE)]
    windows = [w for w in windows if w.width >= 128 and w.height >= 128]
    if len(windows) > max_tiles:
        windows = [windows[i] for i in np.linspace(0, len(windows) - 1, max_tiles).astype(int)]
    tiles = []
    for window in windows:
        grad_a, grad_b, data = prepared_tile(grid, window, sources, stats)
        if data.mean() < pair_api.MIN_TILE_VALID_FRACTION:
            continue
        flow, consistent = flow_api.estimate_with_checks(engine, grad_a, grad_b, median_size=defaults.median_size)
        textured = np.minimum(texture_strength(grad_a), texture_strength(grad_b)) >= defaults.min_texture
        valid = data & consistent & textured
        if valid.mean() < MIN_LABELLED_FRACTION:
            continue
        tiles.append(LabelledTile(grad_a, grad_b, np.nan_to_num(np.stack([flow.dx, flow.dy])).astype(np.float32),
                                  valid, pair_index, window.col_off // TILE))
    feedback(f"Pair {pair_index + 1}: {len(tiles)} labelled tile(s) of {len(windows)} on a "
             f"{grid.width} x {grid.height} px grid")
    return tiles


def split_tiles(tiles: Sequence[LabelledTile]) -> tuple[list[LabelledTile], list[LabelledTile]]:
    """(train, validation): the last pair held out, or with one pair the right-most quarter of tile columns."""
    pairs = sorted({t.pair for t in tiles})
    if len(pairs) > 1:
        return [t for t in tiles if t.pair != pairs[-1]], [t for t in tiles if t.pair == pairs[-1]]
    columns = sorted({t.column for t in tiles})
    held = set(columns[-max(1, len(columns) // 4):]) if len(columns) > 1 else set()
    train = [t for t in tiles if t.column not in held]
    validation = [t for t in tiles if t.column in held]
    return (train, validation) if train else (list(tiles), [])


def random_crop_batch(tiles: Sequence[LabelledTile], batch: int, crop: int, rng: np.random.Generator
                      ) -> tuple[torch.Tensor, ...]:
    """A batch of random crops with one of the 8 rotations/flips each (vectors rotated with the image)."""
    from .data import augment

    items = []
    for _ in range(batch):
        tile = tiles[int(rng.integers(len(tiles)))]
        h, w = tile.valid.shape
        size = min(crop, h, w) // 8 * 8
        top, left = int(rng.integers(h - size + 1)), int(rng.integers(w - size + 1))
        cut = (slice(None), slice(top, top + size), slice(left, left + size))
        (im1, im2), flow, valid = augment([tile.image1[cut], tile.image2[cut]], tile.flow[cut],
                                          tile.valid[cut[1:]], int(rng.integers(4)), bool(rng.integers(2)),
                                          vector_images=tile.image1.shape[0] == 2)
        items.append((im1, im2, flow, valid.astype(np.float32)))
    size = min(it[0].shape[-1] for it in items)
    return tuple(torch.from_numpy(np.stack([np.ascontiguousarray(it[k][..., :size, :size]) for it in items]))
                 for k in range(4))


def warp(image: torch.Tensor, flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``image`` (B, C, H, W) sampled at x + flow (px), and where the sample fell inside (B, 1, H, W)."""
    b, _, h, w = image.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=image.dtype), torch.arange(w, dtype=image.dtype), indexing="ij")
    x = xs[None] + flow[:, 0]
    y = ys[None] + flow[:, 1]
    grid = torch.stack([2 * x / max(w - 1, 1) - 1, 2 * y / max(h - 1, 1) - 1], dim=-1)
    warped = F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    inside = ((x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)).unsqueeze(1).to(image.dtype)
    return warped, inside


def self_supervised_loss(flow: torch.Tensor, image1: torch.Tensor, image2: torch.Tensor,
                         smoothness: float = 0.1) -> torch.Tensor:
    """Charbonnier photometric error of image 2 warped onto image 1, plus edge-aware first-order smoothness."""
    warped, inside = warp(image2, flow)
    photometric = (((image1 - warped) ** 2 + 1e-6) ** 0.45 * inside).sum() / (inside.sum() * image1.shape[1] + 1e-6)
    edge = image1.abs().sum(1, keepdim=True)
    weight_x = torch.exp(-(edge[..., :, 1:] + edge[..., :, :-1]) / 2)
    weight_y = torch.exp(-(edge[..., 1:, :] + edge[..., :-1, :]) / 2)
    smooth = ((flow[..., :, 1:] - flow[..., :, :-1]).abs() * weight_x).mean() + \
             ((flow[..., 1:, :] - flow[..., :-1, :]).abs() * weight_y).mean()
    return photometric + smoothness * smooth


@torch.no_grad()
def label_error(model: RAFT, tiles: Sequence[LabelledTile], iters: int) -> dict[str, float]:
    """Mean and median endpoint error (px) against the Horn-Schunck labels on trusted pixels."""
    model.eval()
    errors = []
    for tile in tiles:
        x1, pads = pad_to_multiple(torch.from_numpy(tile.image1)[None])
        x2, _ = pad_to_multiple(torch.from_numpy(tile.image2)[None])
        flow = unpad(model(x1, x2, iters=iters, final_only=True)[-1], pads)[0].numpy()
        errors.append(np.sqrt(((flow - tile.flow) ** 2).sum(0))[tile.valid])
    model.train()
    if not errors:
        return {}
    err = np.concatenate(errors)
    return {"epe_vs_labels_mean_px": float(err.mean()), "epe_vs_labels_median_px": float(np.median(err))}


def finetune(pairs: Sequence[tuple[str, str]], output: str, checkpoint: str = DEFAULT_CHECKPOINT,
             labels: str = "horn_schunck", steps: int = 300, batch: int = 4, crop: int = 128, lr: float = 5e-5,
             iters: int = 8, export_iters: int = EXPORT_ITERATIONS, max_tiles_per_pair: int = 48, seed: int = 0,
             feedback: Callable[[str], None] = print, is_cancelled: Callable[[], bool] = lambda: False,
             progress: Callable[[float], None] = lambda p: None) -> FineTuneResult:
    """Fine-tune the RAFT checkpoint on ``pairs`` (earlier, later image paths) and export ``output`` (.onnx).

    Args:
        pairs: image pairs, each (earlier, later) GeoTIFF path; any CRS/grid (warped onto A's grid).
        output: the ONNX file to write (with its model card); nothing is written when cancelled.
        checkpoint: the training checkpoint (.pt) to start from.
        labels: "horn_schunck" (supervised by HS labels) or "self_supervised" (photometric + smoothness).
        steps: optimiser steps; batch: crops per step; crop: crop side, px (multiple of 8, >= 128).
        lr: AdamW learning rate (constant; fine-tuning, not training from scratch).
        iters: refinement iterations while training; export_iters: baked into the ONNX graph.
    """
    if labels not in LABEL_MODES:
        raise ValueError(f"labels must be one of {', '.join(LABEL_MODES)}, not {labels!r}")
    if not pairs:
        raise ValueError("No image pair given: list at least one (earlier, later) pair.")
    model, ckpt = load_checkpoint(checkpoint)
    tiles: list[LabelledTile] = []
    for index, (a, b) in enumerate(pairs):
        tiles.extend(label_pair(a, b, index, max_tiles_per_pair, feedback))
        progress(20.0 * (index + 1) / len(pairs))
        if is_cancelled():
            raise InterruptedError("Cancelled while labelling")
    if not tiles:
        raise ValueError("No tile of these pairs has enough trusted Horn-Schunck flow to learn from: "
                         "choose pairs with more overlap, texture and fewer clouds.")
    train, validation = split_tiles(tiles)
    feedback(f"{len(train)} training tile(s), {len(validation)} validation tile(s); labels: {labels}")
    before = label_error(model, validation, export_iters)
    feedback(f"Before: {json.dumps(before)}")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-5)
    model.train()
    for step in range(steps):
        if is_cancelled():
            raise InterruptedError("Cancelled while training")
        image1, image2, flow, valid = random_crop_batch(train, batch, crop, rng)
        predictions = model(image1, image2, iters=iters)
        if labels == "horn_schunck":
            from .train import sequence_loss

            loss, _ = sequence_loss(predictions, flow, valid)
        else:
            loss = sum(0.8 ** (len(predictions) - 1 - i) * self_supervised_loss(p, image1, image2)
                       for i, p in enumerate(predictions))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        progress(20.0 + 75.0 * (step + 1) / steps)
        if (step + 1) % max(1, steps // 10) == 0:
            feedback(f"step {step + 1}/{steps}: loss {float(loss.detach()):.4f}")
    after = label_error(model, validation, export_iters)
    feedback(f"After: {json.dumps(after)}")
    training = {"base": os.path.basename(checkpoint), "base_steps": int(ckpt.get("step", 0)),
                "fine_tuned_on": [os.path.basename(a) + " -> " + os.path.basename(b) for a, b in pairs],
                "labels": labels, "steps": steps, "crop": crop, "batch": batch, "lr": lr}
    metrics = {"validation_before": before, "validation_after": after,
               "validation": "held-out pair" if len({t.pair for t in tiles}) > 1 else "held-out tile columns"}
    temporary = os.path.join(os.path.dirname(os.path.abspath(output)), "." + os.path.basename(output) + ".tmp")
    try:
        export_onnx(model, temporary, export_iters, model_card(model, export_iters, training, metrics,
                                                               version="0.1.0+finetuned"))
        feedback(f"ONNX matches torch within {verify(model, temporary, export_iters):.2e} px")
        os.replace(temporary, output)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    progress(100.0)
    return FineTuneResult(output, steps, len(train), len(validation), labels, before, after)


def main(argv: list[str] | None = None) -> None:
    """CLI: fine-tune on a pair list and export."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", required=True, help="CSV of pairs (Image pairs output, or 'first,second' lines)")
    ap.add_argument("--out", required=True, help="ONNX file to write")
    ap.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT)
    ap.add_argument("--labels", choices=LABEL_MODES, default="horn_schunck")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = finetune(read_pairs_csv(args.pairs), args.out, args.checkpoint, args.labels, args.steps,
                      args.batch, args.crop, args.lr)
    print(json.dumps(result.__dict__, indent=1))


if __name__ == "__main__":
    main()
