"""Train RAFT on synthetic glacier pairs with exact flow; checkpoints and resume.

Loss: RAFT's sequence loss, L1 over valid pixels of every iteration's flow,
weighted gamma^(n-1-i) (gamma 0.8). AdamW with a one-cycle schedule
(linear warm-up over 5 %, linear decay), gradient clipping at norm 1.0.
Every ``--checkpoint-every`` steps (and on SIGTERM/SIGINT) ``OUT/latest.pt``
and ``OUT/ckpt_<step>.pt`` are written atomically; ``--resume`` goes on from
``OUT/latest.pt`` with the same data order (item k of the stream is a fixed
scene crop). ``OUT/log.csv`` gets loss and EPE every ``--log-every`` steps
and validation EPE (held-out scenes, 256 px tiles) every ``--val-every``.

Example (RAFT-small, 2 Sobel channels, one CPU thread)::

    nohup .venv/bin/python -m training.raft.train --small --steps 8000 --batch 8 --crop 128 \\
        --iters 8 --out .build/raft_run1 --resume > .build/raft_run1/train.out 2>&1 &
"""
from __future__ import annotations

import argparse
import csv
import glob
import os
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

import torch

from .raft import RAFT, RAFTConfig, count_parameters

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOG_FIELDS = ["step", "time", "lr", "loss", "epe", "px1", "data_s", "step_s",
              "val_epe", "val_epe_glacier", "val_epe_stable", "val_epe_glacier_median"]


def sequence_loss(predictions: list[torch.Tensor], flow: torch.Tensor, valid: torch.Tensor,
                  gamma: float = 0.8, max_flow: float = 400.0) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted L1 over iterations and metrics of the last prediction.

    Args:
        predictions: n flows (B, 2, H, W) px.
        flow: ground truth (B, 2, H, W) px.
        valid: (B, H, W) 1 where the truth counts.
        gamma: weight decay towards earlier iterations.
        max_flow: ignore pixels with larger truth (px).

    Returns:
        (loss, {"epe": mean endpoint error px, "px1": fraction of EPE < 1 px}).
    """
    mask = ((valid >= 0.5) & (flow.norm(dim=1) < max_flow)).unsqueeze(1).float()   # (B, 1, H, W)
    denom = 2 * mask.sum() + 1e-6
    n = len(predictions)
    loss = flow.new_zeros(())
    for i, pred in enumerate(predictions):
        loss = loss + gamma ** (n - 1 - i) * ((pred - flow).abs() * mask).sum() / denom
    with torch.no_grad():
        epe = (predictions[-1] - flow).norm(dim=1)[mask[:, 0] > 0]
        metrics = {"epe": float(epe.mean()) if epe.numel() else float("nan"),
                   "px1": float((epe < 1).float().mean()) if epe.numel() else float("nan")}
    return loss, metrics


def make_scheduler(optimizer: torch.optim.Optimizer, lr: float, total: int, step: int
                   ) -> torch.optim.lr_scheduler.OneCycleLR:
    """OneCycleLR over ``total`` steps, positioned at ``step`` (for resume with a new total)."""
    for group in optimizer.param_groups:          # what OneCycleLR sets itself when last_epoch == -1
        group["initial_lr"] = lr / 25.0
        group["max_lr"] = lr
        group["min_lr"] = lr / 25.0 / 1e4
    sched = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=total, pct_start=0.05, cycle_momentum=False,
        anneal_strategy="linear", last_epoch=step - 1 if step > 0 else -1)
    return sched


def batches(dataset: Any, start_step: int, batch: int, workers: int) -> Iterator[tuple[torch.Tensor, ...]]:
    """Batches of items ``[s*batch, (s+1)*batch)`` for s = start_step, start_step+1, ..."""
    from torch.utils.data import DataLoader, Subset

    from .data import collate

    if workers <= 0:
        step = start_step
        while True:
            yield collate([dataset[k] for k in range(step * batch, (step + 1) * batch)])
            step += 1
    subset = Subset(dataset, range(start_step * batch, len(dataset)))
    yield from DataLoader(subset, batch_size=batch, num_workers=workers, collate_fn=collate,
                          persistent_workers=True, prefetch_factor=2)


def save_checkpoint(out: str, state: dict[str, Any], keep: int = 3) -> str:
    """Write ``ckpt_<step>.pt`` and ``latest.pt`` atomically; keep the ``keep`` newest numbered ones."""
    path = os.path.join(out, f"ckpt_{state['step']:06d}.pt")
    for target in (path, os.path.join(out, "latest.pt")):
        tmp = target + ".tmp"
        torch.save(state, tmp)
        os.replace(tmp, target)
    for old in sorted(glob.glob(os.path.join(out, "ckpt_*.pt")))[:-keep]:
        os.remove(old)
    return path


@torch.no_grad()
def validate(model: RAFT, dataset: Any, iters: int, batch: int = 4) -> dict[str, float]:
    """EPE on held-out scenes (whole tiles), split into glacier and stable ground."""
    from .raft import pad_to_multiple, unpad

    model.eval()
    g_err, s_err = [], []
    for start in range(0, len(dataset), batch):
        items = [dataset.item(k) for k in range(start, min(len(dataset), start + batch))]
        x1, pads = pad_to_multiple(torch.stack([it[0] for it in items]))
        x2, _ = pad_to_multiple(torch.stack([it[1] for it in items]))
        pred = unpad(model(x1, x2, iters=iters, final_only=True)[-1], pads)
        for it, p in zip(items, pred):
            err = (p - it[2]).norm(dim=0)
            valid, ice = it[3] > 0.5, it[4]
            g_err.append(err[valid & ice])
            s_err.append(err[valid & ~ice])
    model.train()
    g, s = torch.cat(g_err), torch.cat(s_err)
    return {"val_epe": float(torch.cat([g, s]).mean()), "val_epe_glacier": float(g.mean()),
            "val_epe_stable": float(s.mean()), "val_epe_glacier_median": float(g.median())}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=8000, help="total optimiser steps (schedule length)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--crop", type=int, default=128, help="square training crop, px (multiple of 8, >= 128)")
    ap.add_argument("--small", action="store_true", help="RAFT-small instead of full RAFT")
    ap.add_argument("--in-channels", type=int, default=2, choices=(1, 2, 3))
    ap.add_argument("--iters", type=int, default=8, help="refinement iterations while training")
    ap.add_argument("--val-iters", type=int, default=12, help="iterations for validation")
    ap.add_argument("--lr", type=float, default=4e-4, help="peak learning rate")
    ap.add_argument("--wdecay", type=float, default=1e-4)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--gamma", type=float, default=0.8)
    ap.add_argument("--max-displacement", type=float, default=30.0, help="largest scene peak flow, px")
    ap.add_argument("--scenes", type=int, default=3000, help="pool of training scenes (cycled)")
    ap.add_argument("--scene-size", type=int, default=256)
    ap.add_argument("--val-scenes", type=int, default=16)
    ap.add_argument("--out", required=True, help="run directory (checkpoints, log.csv)")
    ap.add_argument("--cache", help="scene cache directory (default: OUT/../scene_cache_<size>)")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/latest.pt if present")
    ap.add_argument("--checkpoint-every", type=int, default=250)
    ap.add_argument("--val-every", type=int, default=500)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1, help="torch/OpenCV threads")
    ap.add_argument("--workers", type=int, default=0, help="data loader processes (0: in the main one)")
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Train (or resume) a run."""
    args = parse_args(argv)
    import cv2

    from .data import TRAIN_SEEDS, VALIDATION_SEEDS, GlacierFlowDataset

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    latest = os.path.join(args.out, "latest.pt")
    if os.path.exists(latest) and not args.resume:
        sys.exit(f"{latest} exists: pass --resume to continue it, or choose another --out")

    cache = args.cache or os.path.join(os.path.dirname(os.path.abspath(args.out)),
                                       f"scene_cache_{args.scene_size}")
    train_set = GlacierFlowDataset(TRAIN_SEEDS[:args.scenes], length=(args.steps + 1) * args.batch,
                                   crop=args.crop, scene_size=args.scene_size, in_channels=args.in_channels,
                                   max_displacement=(0.0, args.max_displacement), cache_dir=cache)
    val_set = GlacierFlowDataset(VALIDATION_SEEDS[:args.val_scenes], crop=256, scene_size=256,
                                 in_channels=args.in_channels, augment=False,
                                 max_displacement=(0.0, args.max_displacement),
                                 cache_dir=os.path.join(os.path.dirname(cache), "scene_cache_val256"))
    training_data = {"generator": train_set.generator_name, "train_seeds": [0, args.scenes],
                     "validation_seeds": [VALIDATION_SEEDS.start, VALIDATION_SEEDS.start + args.val_scenes],
                     "scene_size": args.scene_size, "crop": args.crop, "batch": args.batch,
                     "max_displacement_px": args.max_displacement, "train_iters": args.iters,
                     "augmentation": ("8 rotations/flips; moving patch and streak textures; shadows, blur, gamma, "
                                      "noise, thin cloud, no-data; input gain 0.6-2.5; "
                                      "whole-frame motion (co-registration offset up to 4 px, smooth field to 1.5 px)")}

    torch.manual_seed(args.seed)
    model = RAFT(RAFTConfig(small=args.small, in_channels=args.in_channels, iters=args.val_iters))
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.wdecay, eps=1e-8)
    step = 0
    if args.resume and os.path.exists(latest):
        ckpt = torch.load(latest, map_location="cpu", weights_only=True)
        if ckpt["config"] != asdict(model.config):
            sys.exit(f"{latest} was trained with {ckpt['config']}, not {asdict(model.config)}")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        step = int(ckpt["step"])
        print(f"resumed from {latest} at step {step}", flush=True)
    scheduler = make_scheduler(optimizer, args.lr, args.steps + 100, step)
    print(f"RAFT{'-small' if args.small else ''}: {count_parameters(model)} parameters, "
          f"data {train_set.generator_name}, cache {cache}", flush=True)

    stop = {"now": False}

    def request_stop(signum: int, frame: Any) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    def checkpoint() -> None:
        save_checkpoint(args.out, {"config": asdict(model.config), "model": model.state_dict(),
                                   "optimizer": optimizer.state_dict(), "step": step,
                                   "args": vars(args), "training_data": training_data})

    log_path = os.path.join(args.out, "log.csv")
    new_log = not os.path.exists(log_path)
    with open(log_path, "a", newline="") as fh:
        log = csv.DictWriter(fh, LOG_FIELDS)
        if new_log:
            log.writerow({k: k for k in LOG_FIELDS})
        model.train()
        acc: dict[str, float] = {"loss": 0.0, "epe": 0.0, "px1": 0.0, "data_s": 0.0, "step_s": 0.0, "n": 0}
        data = batches(train_set, step, args.batch, args.workers)
        while step < args.steps and not stop["now"]:
            t0 = time.time()
            image1, image2, flow, valid = next(data)
            t1 = time.time()
            predictions = model(image1, image2, iters=args.iters)
            loss, metrics = sequence_loss(predictions, flow, valid, args.gamma)
            optimizer.zero_grad(set_to_none=True)
            if torch.isfinite(loss):
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
                optimizer.step()
            scheduler.step()
            step += 1
            for key, value in (("loss", float(loss.detach())), ("epe", metrics["epe"]),
                               ("px1", metrics["px1"]), ("data_s", t1 - t0), ("step_s", time.time() - t1)):
                acc[key] += value
            acc["n"] += 1
            row: dict[str, Any] = {}
            if step % args.val_every == 0 or step == args.steps:
                row.update({k: f"{v:.4f}" for k, v in validate(model, val_set, args.val_iters).items()})
            if step % args.log_every == 0 or row:
                n = acc.pop("n")
                row.update({"step": step, "time": f"{time.time():.0f}",
                            "lr": f"{scheduler.get_last_lr()[0]:.3g}"},
                           **{k: f"{v / n:.4f}" for k, v in acc.items()})
                log.writerow(row)
                fh.flush()
                print(" ".join(f"{k}={row[k]}" for k in LOG_FIELDS if k in row), flush=True)
                acc = {"loss": 0.0, "epe": 0.0, "px1": 0.0, "data_s": 0.0, "step_s": 0.0, "n": 0}
            if step % args.checkpoint_every == 0:
                checkpoint()
        checkpoint()
    print(f"stopped at step {step}; checkpoint {latest}", flush=True)


if __name__ == "__main__":
    main()
