"""Direction arrows from a velocity field: where to sample it and what each arrow shows.

Pure numpy, no qgis import: the dock turns the result into a point layer
whose markers are rotated by ``direction`` and sized by ``speed``.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .convert import direction_degrees

ARROWS_ACROSS = 35  # arrows along the longer side of the raster: readable, not crowded


@dataclass(frozen=True)
class Arrows:
    """Sampled arrows, one entry per arrow (1-D arrays of equal length).

    ``x``, ``y`` are map coordinates of the sampled pixel centres; ``vx`` (east) and
    ``vy`` (north) and ``speed`` are in m/yr; ``direction`` is in degrees clockwise
    from north (grid +y), 0..360, the convention of QGIS marker rotation.
    """

    x: np.ndarray
    y: np.ndarray
    vx: np.ndarray
    vy: np.ndarray
    speed: np.ndarray
    direction: np.ndarray

    def __len__(self) -> int:
        return int(self.x.size)


def arrow_spacing(width: int, height: int, across: int = ARROWS_ACROSS) -> int:
    """Sampling step (px) giving about ``across`` arrows along the longer side; at least 1."""
    return max(1, int(round(max(width, height) / float(max(1, across)))))


def sample_positions(width: int, height: int, spacing: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices (1-D each) of a regular grid, centred in the raster."""
    rows = _centred(height, spacing)
    cols = _centred(width, spacing)
    return rows, cols


def _centred(size: int, spacing: int) -> np.ndarray:
    count = max(1, size // spacing)
    start = (size - (count - 1) * spacing - 1) // 2
    return start + spacing * np.arange(count)


def arrows_from_samples(vx: np.ndarray, vy: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                        transform: Sequence[float], min_speed: float = 0.0) -> Arrows:
    """Arrows from velocities sampled at (``rows`` x ``cols``): ``vx``, ``vy`` have shape
    (len(rows), len(cols)). Samples that are NaN or slower than ``min_speed`` (m/yr) are dropped.

    ``transform`` is a GDAL geotransform (any sign, rotation terms allowed).
    """
    col_grid, row_grid = np.meshgrid(cols.astype(float) + 0.5, rows.astype(float) + 0.5)
    x0, a, b, y0, d, e = transform
    x = x0 + a * col_grid + b * row_grid
    y = y0 + d * col_grid + e * row_grid
    vx = np.asarray(vx, dtype=float)
    vy = np.asarray(vy, dtype=float)
    speed = np.hypot(vx, vy)
    keep = np.isfinite(speed) & (speed >= min_speed)
    return Arrows(x[keep], y[keep], vx[keep], vy[keep], speed[keep], direction_degrees(vx[keep], vy[keep]))


def sample_arrows(vx: np.ndarray, vy: np.ndarray, transform: Sequence[float], across: int = ARROWS_ACROSS,
                  min_fraction: float = 0.05) -> Arrows:
    """Arrows on a regular grid over whole ``vx``, ``vy`` arrays (m/yr, NaN = no data).

    Arrows slower than ``min_fraction`` of the 98th-percentile speed are dropped, so
    still ground shows no dots.
    """
    height, width = vx.shape
    rows, cols = sample_positions(width, height, arrow_spacing(width, height, across))
    sub_vx, sub_vy = vx[np.ix_(rows, cols)], vy[np.ix_(rows, cols)]
    return arrows_from_samples(sub_vx, sub_vy, rows, cols, transform,
                               min_speed=min_fraction * reference_speed(np.hypot(vx, vy)))


def reference_speed(speed: np.ndarray) -> float:
    """The 98th percentile of the finite speeds (m/yr); 0 when there are none."""
    finite = speed[np.isfinite(speed)]
    return float(np.percentile(finite, 98)) if finite.size else 0.0
