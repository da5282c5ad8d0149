"""Accuracy of a velocity field against a known or reference field."""
from __future__ import annotations

import numpy as np


def endpoint_error_summary(vx: np.ndarray, vy: np.ndarray, true_vx: np.ndarray, true_vy: np.ndarray,
                           region: np.ndarray) -> dict[str, float]:
    """Endpoint error statistics of (vx, vy) against the truth over ``region``.

    Args:
        vx, vy: estimated components (any unit, NaN where not estimated).
        true_vx, true_vy: true components, same unit.
        region: bool mask of the pixels to score.

    Returns:
        ``median``, ``mean``, ``p95`` of the endpoint error (same unit as the
        inputs), ``coverage`` (fraction of ``region`` with an estimate) and
        ``pixels`` (size of ``region``).
    """
    error = np.hypot(vx - true_vx, vy - true_vy)[region]
    finite = error[np.isfinite(error)]
    if finite.size == 0:
        return {"median": float("nan"), "mean": float("nan"), "p95": float("nan"),
                "coverage": 0.0, "pixels": float(region.sum())}
    return {"median": float(np.median(finite)), "mean": float(finite.mean()),
            "p95": float(np.percentile(finite, 95)), "coverage": finite.size / max(int(region.sum()), 1),
            "pixels": float(region.sum())}
