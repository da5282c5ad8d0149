"""Train an NDSI forecaster on generated series; checkpoints every epoch, resume, early stopping.

Loss: MSE over the 4 predicted frames (papers 002/003). AdamW (learning rate,
weight decay), cosine learning-rate decay over ``--epochs``, gradient clipping
at 1.0, dropout inside the models. Recurrent decoders (SA-LSTM-H, LSTM
encoder-decoder, ConvLSTM) get teacher forcing: at each decoding step the true
frame is fed instead of the prediction with probability
``teacher_forcing * tf_decay ** epoch``. Early stopping: training ends after
``--patience`` epochs without a lower validation MSE; ``best.pt`` holds the
best weights. Every epoch writes ``ckpt_<epoch>.pt`` and ``latest.pt``
atomically (also on SIGTERM); ``--resume`` continues from ``latest.pt``.
``OUT/log.csv``: epoch, lr, teacher forcing, train and validation MSE, the
persistence MSE on the same validation samples, seconds.

Example (one thread, the small default SA-LSTM-H)::

    setsid nohup nice .venv/bin/python -m training.forecast.train --model sa_lstm \\
        --out .build/forecast_runs/sa_lstm --resume > .build/forecast_runs/sa_lstm.out 2>&1 < /dev/null &
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import sys
import time
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from ..raft.train import save_checkpoint
from .common import count_parameters
from .data import TRAIN_SEEDS, DataSpec, load_splits, subsample
from .registry import MODEL_NAMES, architecture, build_model, is_recursive

LOG_FIELDS = ["epoch", "time", "lr", "teacher_forcing", "train_mse", "val_mse", "val_mae",
              "val_persistence_mse", "epoch_s", "best_epoch"]


def batches(inputs: np.ndarray, targets: np.ndarray, size: int, order: np.ndarray | None = None):
    """(inputs, targets) float32 tensors of ``size`` samples, in ``order`` (default: as stored)."""
    rows = np.arange(len(inputs)) if order is None else order
    for start in range(0, len(rows), size):
        pick = rows[start:start + size]
        yield (torch.from_numpy(inputs[pick].astype(np.float32)),
               torch.from_numpy(targets[pick].astype(np.float32)))


@torch.no_grad()
def evaluate(model: torch.nn.Module, inputs: np.ndarray, targets: np.ndarray, batch: int = 256
             ) -> dict[str, float]:
    """MSE and MAE of the model (free running) and the persistence MSE on the same samples."""
    model.eval()
    sq = ab = persist = 0.0
    count = 0
    for x, y in batches(inputs, targets, batch):
        pred = model(x)
        sq += float(((pred - y) ** 2).sum())
        ab += float((pred - y).abs().sum())
        persist += float(((x[:, -1:] - y) ** 2).sum())
        count += y.numel()
    model.train()
    return {"val_mse": sq / count, "val_mae": ab / count, "val_persistence_mse": persist / count}


def model_config(args: argparse.Namespace) -> dict[str, Any]:
    """Constructor options given on the command line (the family's defaults for the rest)."""
    config: dict[str, Any] = {"n_in": args.n_in, "n_out": args.n_out, "patch": args.patch}
    for key in ("width", "depth", "dropout", "heads", "tile"):
        value = getattr(args, key)
        if value is not None:
            config[key] = value
    return config


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, choices=MODEL_NAMES)
    ap.add_argument("--out", required=True, help="run directory (checkpoints, log.csv)")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/latest.pt if present")
    ap.add_argument("--epochs", type=int, default=30, help="most epochs (papers: 35-40)")
    ap.add_argument("--patience", type=int, default=5, help="early stopping: epochs without improvement")
    ap.add_argument("--batch", type=int, default=32, help="papers: 100")
    ap.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (papers: 1e-4 for 40 epochs)")
    ap.add_argument("--weight-decay", type=float, default=1e-3, help="papers: 1e-3")
    ap.add_argument("--clip", type=float, default=1.0, help="gradient norm clip")
    ap.add_argument("--teacher-forcing", type=float, default=0.5, help="initial probability (recurrent models)")
    ap.add_argument("--tf-decay", type=float, default=0.85, help="teacher forcing multiplied by this per epoch")
    ap.add_argument("--width", type=int, help="model width (family default if absent)")
    ap.add_argument("--depth", type=int, help="model depth (family default if absent)")
    ap.add_argument("--heads", type=int, help="attention heads (sa_lstm, transformer)")
    ap.add_argument("--tile", type=int, help="transformer token tile, px")
    ap.add_argument("--dropout", type=float, help="dropout (family default if absent; papers 0.1)")
    ap.add_argument("--series", type=int, default=12, help="training series (seeds 0..N-1)")
    ap.add_argument("--size", type=int, default=200, help="series side, px")
    ap.add_argument("--years", type=int, default=10, help="years per series")
    ap.add_argument("--stride", type=int, default=20, help="patch stride, px (papers: 10)")
    ap.add_argument("--patch", type=int, default=50)
    ap.add_argument("--n-in", type=int, default=4)
    ap.add_argument("--n-out", type=int, default=4)
    ap.add_argument("--samples-per-epoch", type=int, default=6000, help="random training samples per epoch")
    ap.add_argument("--val-samples", type=int, default=3000, help="fixed validation subset (0: all)")
    ap.add_argument("--cache", help="patch cache folder (default: OUT/../data_cache)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Train (or resume) a run."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    latest = os.path.join(args.out, "latest.pt")
    if os.path.exists(latest) and not args.resume:
        sys.exit(f"{latest} exists: pass --resume to continue it, or choose another --out")

    spec = DataSpec(seeds=(TRAIN_SEEDS.start, TRAIN_SEEDS.start + args.series), size=args.size, years=args.years,
                    stride=args.stride, patch=args.patch, n_in=args.n_in, n_out=args.n_out)
    t0 = time.time()
    splits = load_splits(spec, args.cache or os.path.join(os.path.dirname(os.path.abspath(args.out)), "data_cache"))
    train_x, train_y = splits["train"]
    val_x, val_y = subsample(splits["validation"], args.val_samples, seed=1)
    print(f"data: {len(train_x)} train, {len(val_x)} validation samples ({time.time() - t0:.0f} s)", flush=True)
    training_data = {"generator": "training.forecast.generator.synthetic_series", **asdict(spec),
                     "train_samples": len(train_x), "validation_samples": len(val_x),
                     "split": "train and validation: earlier / later time windows of the training series "
                              "(core.forecast.patches.training_sets)"}

    torch.manual_seed(args.seed)
    model = build_model(args.model, **model_config(args))
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs, eta_min=args.lr / 20)
    progress: dict[str, Any] = {"step": 0, "best_val": float("inf"), "best_epoch": 0, "bad_epochs": 0}
    if args.resume and os.path.exists(latest):
        ckpt = torch.load(latest, map_location="cpu", weights_only=True)
        if ckpt["family"] != args.model or ckpt["config"] != model.config:
            sys.exit(f"{latest} holds {ckpt['family']} {ckpt['config']}, not {args.model} {model.config}")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        progress.update({k: ckpt[k] for k in progress})
        print(f"resumed from {latest} after epoch {progress['step']}", flush=True)
    print(f"{architecture(args.model)}: {count_parameters(model)} parameters, config {model.config}", flush=True)

    stop = {"now": False}

    def request_stop(signum: int, frame: Any) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    def state() -> dict[str, Any]:
        return {"family": args.model, "architecture": architecture(args.model), "config": model.config,
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), **progress, "args": json.dumps(vars(args)),
                "training_data": json.dumps(training_data)}

    log_path = os.path.join(args.out, "log.csv")
    new_log = not os.path.exists(log_path)
    with open(log_path, "a", newline="") as fh:
        log = csv.DictWriter(fh, LOG_FIELDS)
        if new_log:
            log.writeheader()
        model.train()
        while (progress["step"] < args.epochs and progress["bad_epochs"] < args.patience and not stop["now"]):
            epoch = progress["step"]
            started = time.time()
            tf = args.teacher_forcing * args.tf_decay ** epoch if is_recursive(args.model) else 0.0
            order = np.random.default_rng(args.seed * 100_003 + epoch).permutation(len(train_x))
            order = order[:args.samples_per_epoch] if args.samples_per_epoch > 0 else order
            total, seen = 0.0, 0
            for x, y in batches(train_x, train_y, args.batch, order):
                loss = torch.mean((model(x, y, tf) - y) ** 2)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
                optimizer.step()
                total += float(loss.detach()) * len(x)
                seen += len(x)
                if stop["now"]:
                    break
            if stop["now"]:
                break  # a partial epoch is not counted: resume repeats it
            lr = scheduler.get_last_lr()[0]
            scheduler.step()
            scores = evaluate(model, val_x, val_y)
            progress["step"] = epoch + 1
            if scores["val_mse"] < progress["best_val"]:
                progress.update(best_val=scores["val_mse"], best_epoch=epoch + 1, bad_epochs=0)
                best = os.path.join(args.out, "best.pt")
                torch.save(state(), best + ".tmp")
                os.replace(best + ".tmp", best)
            else:
                progress["bad_epochs"] += 1
            save_checkpoint(args.out, state())
            row = {"epoch": epoch + 1, "time": f"{time.time():.0f}", "lr": f"{lr:.3g}", "teacher_forcing": f"{tf:.3f}",
                   "train_mse": f"{total / max(seen, 1):.5f}", **{k: f"{v:.5f}" for k, v in scores.items()},
                   "epoch_s": f"{time.time() - started:.0f}", "best_epoch": progress["best_epoch"]}
            log.writerow(row)
            fh.flush()
            print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    save_checkpoint(args.out, state())
    print(f"stopped after epoch {progress['step']}; best epoch {progress['best_epoch']} "
          f"(validation MSE {progress['best_val']:.5f}); checkpoint {latest}", flush=True)


if __name__ == "__main__":
    main()
