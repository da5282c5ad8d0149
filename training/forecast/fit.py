"""Train a forecaster on a user's own NDSI series (the "Train forecaster" algorithm), then export it.

The series (from "NDSI series for an area") are split by time with ``core.forecast.patches.training_sets``:
earlier windows train, later ones validate, the latest test, with no window of the future used as a
training target. Generated series (``training.forecast.generator``) can be added to the training set when a
user's own record is short. The loop is the command-line trainer's (AdamW, cosine decay, gradient
clipping, teacher forcing for the recurrent decoders, early stopping on validation MSE), in one process,
with progress and cancel callbacks; the card records the test scores against persistence and seasonal
climatology on the same samples.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from .export import export_onnx, model_card, verify
from .registry import build_model, is_recursive
from .train import batches, evaluate


@dataclass
class FitResult:
    """What was trained and how it scored on the held-out test windows (MSE/MAE in NDSI units)."""

    output: str
    family: str
    epochs: int
    best_epoch: int
    samples: dict[str, int]
    test: dict[str, dict[str, float]] = field(default_factory=dict)


def fit_on_series(family: str, series: Sequence[Any], output: str, epochs: int = 20, patience: int = 4,
                  lr: float = 1e-3, batch: int = 32, stride: int = 10, generated: int = 0,
                  teacher_forcing: float = 0.5, seed: int = 0, log: Callable[[str], None] = print,
                  progress: Callable[[float], None] = lambda p: None,
                  is_cancelled: Callable[[], bool] = lambda: False) -> FitResult:
    """Train a fresh ``family`` forecaster (small defaults) on ``series`` and export ``output`` (.onnx).

    Args:
        family: "sa_lstm", "lstm_encdec", "convlstm", "unet" or "transformer".
        series: NdsiSeries with the same window length and threshold.
        output: the ONNX file; nothing is written when cancelled or failing.
        epochs, patience: most epochs, and epochs without a better validation MSE before stopping.
        lr: AdamW learning rate; batch: patches per step; stride: patch stride, px.
        generated: generated series (200 px, 8 years each) added to the training set.
    """
    from glacierflow.core.forecast import baselines, metrics, patches

    from . import generator
    months = {s.window_months for s in series}
    thresholds = {round(s.threshold, 6) for s in series}
    if len(months) != 1 or len(thresholds) != 1:
        raise ValueError("The series differ in window length or NDSI threshold: build them with the same settings.")
    own = list(series)
    extra = [generator.synthetic_series((200, 200), years=8, seed=50_000 + k, window_months=own[0].window_months,
                                        threshold=own[0].threshold)
             for k in range(generated)]
    try:
        sets = patches.training_sets(own, stride=stride)
    except Exception as error:   # too few windows for the three splits
        raise ValueError(f"Cannot split the series by time ({error}): give longer series "
                         "(at least about 20 windows).") from None
    train_x, train_y = sets["train"].inputs, sets["train"].targets
    if extra:
        more = patches.training_sets(extra, stride=20)
        train_x = np.concatenate([train_x, more["train"].inputs, more["validation"].inputs])
        train_y = np.concatenate([train_y, more["train"].targets, more["validation"].targets])
    val, test = sets["validation"], sets["test"]
    if min(len(train_x), len(val), len(test)) == 0:
        raise ValueError(f"The series give {len(train_x)} training, {len(val)} validation and {len(test)} test "
                         "samples: all three are needed; give longer or larger series.")
    samples = {"train": len(train_x), "validation": len(val), "test": len(test)}
    log(f"Samples: {samples} ({len(extra)} generated series added to training)")

    torch.manual_seed(seed)
    model = build_model(family, n_in=train_x.shape[1], n_out=train_y.shape[1], patch=train_x.shape[-1])
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-3)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=lr / 20)
    best_state, best_val, best_epoch, bad, epoch = None, float("inf"), 0, 0, 0
    for epoch in range(1, epochs + 1):
        tf = teacher_forcing * 0.85 ** (epoch - 1) if is_recursive(family) else 0.0
        order = np.random.default_rng(seed * 100_003 + epoch).permutation(len(train_x))
        model.train()
        for x, y in batches(train_x, train_y, batch, order):
            if is_cancelled():
                raise InterruptedError("Cancelled while training")
            loss = torch.mean((model(x, y, tf) - y) ** 2)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
        scheduler.step()
        scores = evaluate(model, val.inputs, val.targets)
        log(f"epoch {epoch}: validation MSE {scores['val_mse']:.5f} (persistence {scores['val_persistence_mse']:.5f})")
        progress(90.0 * epoch / epochs)
        if scores["val_mse"] < best_val:
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
            best_val, best_epoch, bad = scores["val_mse"], epoch, 0
        else:
            bad += 1
            if bad >= patience:
                log(f"Early stop: {patience} epochs without a better validation MSE")
                break
    model.load_state_dict(best_state)
    model.eval()
    test_scores = _test_scores(model, test, own, baselines, metrics)
    for name, values in test_scores.items():
        log(f"test {name:12s} MSE {values['mse']:.5f}  MAE {values['mae']:.5f}")
    card = model_card(family, model, {"series": len(own), "generated_series": len(extra), "samples": samples,
                                      "split": "by time: earlier windows train, later validate, latest test"},
                      {"test": test_scores}, version="0.1.0+user", window_months=own[0].window_months,
                      threshold=own[0].threshold)
    export_onnx(model, output, card)
    log(f"ONNX matches torch within {verify(model, output):.2e}")
    progress(100.0)
    return FitResult(output, family, epoch, best_epoch, samples, test_scores)


@torch.no_grad()
def _test_scores(model: torch.nn.Module, test: Any, series: Sequence[Any], baselines: Any, metrics: Any
                 ) -> dict[str, dict[str, float]]:
    predictions = {"model": np.concatenate([model(x).numpy() for x, _ in batches(test.inputs, test.targets, 256)]),
                   "persistence": baselines.persistence(test.inputs, test.targets.shape[1]),
                   "climatology": baselines.climatology_for(test, series)}
    return {name: {"mse": metrics.mse(p, test.targets), "mae": metrics.mae(p, test.targets)}
            for name, p in predictions.items()}

