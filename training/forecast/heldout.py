"""Scores on held-out generated series: a forecaster's ONNX file against persistence and climatology.

Torch-free (numpy, onnxruntime, ``core.forecast``): the export writes these
figures into the card and ``bench/bench_forecast.py`` reports them. Samples
are the test windows (the latest in time, non-overlapping patches) of series
whose seeds no training run used (``data.TEST_SEEDS``); the 95 % intervals are
percentile bootstraps over samples, and skills use a paired bootstrap (the
same resampled samples for model and baseline).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .data import DataSpec, _core, generate_series


@dataclass
class HeldOut:
    """Held-out samples with both baselines' forecasts of exactly those samples (all (N, n, p, p) float32)."""

    spec: DataSpec
    inputs: np.ndarray
    targets: np.ndarray
    persistence: np.ndarray
    climatology: np.ndarray


def heldout_set(spec: DataSpec) -> HeldOut:
    """The test split of the series of ``spec.seeds`` (test patches do not overlap: stride = patch)."""
    _core()
    from glacierflow.core.forecast.baselines import climatology_for, persistence

    series = generate_series(spec)
    _, patches = _core()
    test = patches.training_sets(series, patch=spec.patch, stride=spec.stride, n_in=spec.n_in, n_out=spec.n_out,
                                 test_stride=spec.patch)["test"]
    return HeldOut(spec, test.inputs, test.targets, persistence(test.inputs, spec.n_out),
                   climatology_for(test, series, spec.n_in))


def error_summary(prediction: np.ndarray, targets: np.ndarray, prefix: str, resamples: int = 1000
                  ) -> tuple[dict[str, Any], np.ndarray]:
    """{prefix_mse, prefix_mse_ci95, prefix_mae, prefix_mae_ci95} and the per-sample MSE (for paired skills)."""
    from glacierflow.core.forecast.metrics import bootstrap_ci, per_sample_errors

    sample_mse, sample_mae = per_sample_errors(prediction, targets)
    mse, mse_low, mse_high = bootstrap_ci(sample_mse, resamples)
    mae, mae_low, mae_high = bootstrap_ci(sample_mae, resamples)
    return ({f"{prefix}_mse": mse, f"{prefix}_mse_ci95": [mse_low, mse_high],
             f"{prefix}_mae": mae, f"{prefix}_mae_ci95": [mae_low, mae_high]}, sample_mse)


def score_predictions(prediction: np.ndarray, heldout: HeldOut, resamples: int = 1000) -> dict[str, Any]:
    """The model's and both baselines' errors on the same samples, and the model's skill over each baseline."""
    from glacierflow.core.forecast.metrics import paired_bootstrap_skill

    scores: dict[str, Any] = {"test_samples": int(len(heldout.targets)),
                              "test_series_seeds": list(heldout.spec.seeds),
                              "test_series": f"{heldout.spec.size} px square, {heldout.spec.years} years, test "
                                             "(latest) windows, non-overlapping patches",
                              "bootstrap_resamples": resamples}
    model, model_errors = error_summary(prediction, heldout.targets, "test", resamples)
    scores.update(model)
    for name in ("persistence", "climatology"):
        summary, errors = error_summary(getattr(heldout, name), heldout.targets, name, resamples)
        scores.update(summary)
        skill, low, high = paired_bootstrap_skill(errors, model_errors, resamples)
        scores[f"skill_vs_{name}_mse"] = skill
        scores[f"skill_vs_{name}_mse_ci95"] = [low, high]
    return scores


def score_forecaster(path: str, heldout: HeldOut, resamples: int = 1000, threads: int | None = 1) -> dict[str, Any]:
    """Run the ONNX forecaster at ``path`` (CPU) on the held-out samples and score it."""
    _core()
    from glacierflow.core.forecast.onnx_forecaster import OnnxForecaster

    forecaster = OnnxForecaster(path, device="cpu", threads=threads)
    return score_predictions(forecaster.predict_patches(heldout.inputs), heldout, resamples)
