"""Forecast scores: MSE and MAE (NaN-aware), per-sample errors, bootstrap intervals and skill.

The bootstrap resamples *samples* (patch sequences) with replacement and
takes the mean of each resample; the interval is the percentile interval
of those means. Skill against a reference (persistence, climatology) is
``1 - MSE_model / MSE_reference`` ("beats persistence by x %"), and its
interval comes from a paired bootstrap: the same resampled samples for the
model and the reference, so their shared difficulty cancels.
"""
from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np

#: Resample indices are drawn in blocks of this many numbers to keep memory bounded.
_BLOCK = 4_000_000


def _finite_pair(prediction: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(prediction, dtype=np.float64)
    true = np.asarray(target, dtype=np.float64)
    if pred.shape != true.shape:
        raise ValueError(f"prediction {pred.shape} and target {true.shape} differ in shape")
    return pred, true


def mse(prediction: np.ndarray, target: np.ndarray) -> float:
    """Mean squared error over pixels where both are finite (NDSI units squared); NaN if none."""
    pred, true = _finite_pair(prediction, target)
    error = (pred - true) ** 2
    return float(np.nanmean(error)) if np.isfinite(error).any() else float("nan")


def mae(prediction: np.ndarray, target: np.ndarray) -> float:
    """Mean absolute error over pixels where both are finite (NDSI units); NaN if none."""
    pred, true = _finite_pair(prediction, target)
    error = np.abs(pred - true)
    return float(np.nanmean(error)) if np.isfinite(error).any() else float("nan")


def per_sample_errors(prediction: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(MSE, MAE) of each sample (axis 0) over all its other axes, NaN-aware: two float64 (N,) arrays."""
    pred, true = _finite_pair(prediction, target)
    difference = (pred - true).reshape(pred.shape[0], -1)
    with warnings.catch_warnings():  # an all-NaN sample is NaN on purpose: no 'empty slice' warning
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(difference ** 2, axis=1), np.nanmean(np.abs(difference), axis=1)


def _resample_blocks(n: int, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Index arrays (b, n) of resamples with replacement, ``n_resamples`` rows in all."""
    rng = np.random.default_rng(seed)
    rows = max(1, _BLOCK // max(n, 1))
    done = 0
    while done < n_resamples:
        count = min(rows, n_resamples - done)
        yield rng.integers(0, n, size=(count, n))
        done += count


def bootstrap_ci(values: np.ndarray, n_resamples: int = 2000, confidence: float = 0.95,
                 seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``values`` and its bootstrap percentile interval: (mean, low, high), same unit as ``values``.

    Non-finite values are dropped first. Deterministic for a given seed.
    """
    data = np.asarray(values, dtype=np.float64).ravel()
    data = data[np.isfinite(data)]
    if data.size == 0:
        return (float("nan"),) * 3
    means = np.concatenate([data[idx].mean(axis=1) for idx in _resample_blocks(data.size, n_resamples, seed)])
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return float(data.mean()), float(low), float(high)


def skill_vs(reference_mse: float, model_mse: float) -> float:
    """Skill score ``1 - model / reference``: 0.2 means the model's error is 20 % below the reference's."""
    if not reference_mse > 0:
        return float("nan")
    return 1.0 - float(model_mse) / float(reference_mse)


def paired_bootstrap_skill(reference_errors: np.ndarray, model_errors: np.ndarray, n_resamples: int = 2000,
                           confidence: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """Skill of the model over the reference with a paired bootstrap interval: (skill, low, high).

    ``reference_errors`` and ``model_errors`` are per-sample errors (e.g.
    MSE from :func:`per_sample_errors`) of the SAME samples; each resample
    draws the same sample indices for both.
    """
    reference = np.asarray(reference_errors, dtype=np.float64).ravel()
    model = np.asarray(model_errors, dtype=np.float64).ravel()
    if reference.shape != model.shape:
        raise ValueError("paired bootstrap needs the errors of the same samples for both")
    keep = np.isfinite(reference) & np.isfinite(model)
    reference, model = reference[keep], model[keep]
    if reference.size == 0:
        return (float("nan"),) * 3
    skills = np.concatenate([1.0 - model[idx].mean(axis=1) / reference[idx].mean(axis=1)
                             for idx in _resample_blocks(reference.size, n_resamples, seed)])
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.nanpercentile(skills, [tail, 100.0 - tail])
    return skill_vs(reference.mean(), model.mean()), float(low), float(high)
