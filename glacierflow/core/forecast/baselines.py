"""Baselines every forecaster is reported against (the papers reported none).

- persistence: the last input window repeated for every future window;
- seasonal climatology: for each future window, the mean of the same
  window of the year in earlier years, using only windows known when the
  forecast is issued (never the target or anything later).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import GlacierFlowError
from .patches import SequenceSet
from .series import NdsiSeries


def persistence(inputs: np.ndarray, n_out: int = 4) -> np.ndarray:
    """The last input window repeated: (N, n_in, ...) -> float32 (N, n_out, ...)."""
    values = np.asarray(inputs, dtype=np.float32)
    return np.repeat(values[:, -1:], n_out, axis=1)


def climatology(frames: np.ndarray, target_indices: Sequence[int], windows_per_year: int,
                last_known: int | None = None) -> np.ndarray:
    """Seasonal climatology of each target window from earlier years only.

    For target window ``t`` the forecast is the mean of windows
    ``t - k * windows_per_year`` (k = 1, 2, ...) that are at or before
    ``last_known`` (the last window known when the forecast is issued;
    default ``t - 1``). When no earlier year is known, it falls back to
    persistence: the frame at ``last_known`` (the most recent knowledge,
    and what the persistence baseline would say).

    Args:
        frames: (T, ...) series (e.g. (T, H, W) masked NDSI).
        target_indices: window indices to forecast.
        windows_per_year: windows per calendar year (4 for 3-month windows).
        last_known: index of the last known window; must precede every target.

    Returns:
        float32 (len(target_indices), ...).
    """
    values = np.asarray(frames, dtype=np.float64)
    out = np.empty((len(target_indices),) + values.shape[1:], dtype=np.float32)
    for position, target in enumerate(target_indices):
        known = target - 1 if last_known is None else last_known
        if known >= target:
            raise GlacierFlowError(f"Climatology of window {target} may not use window {known}: it is not earlier.")
        if known < 0:
            raise GlacierFlowError(f"Window {target} has no earlier window to forecast it from.")
        earlier = [i for i in range(target - windows_per_year, -1, -windows_per_year) if i <= known]
        out[position] = values[earlier].mean(axis=0) if earlier else values[known]
    return out


def climatology_for(samples: SequenceSet, series: Sequence[NdsiSeries], n_in: int | None = None) -> np.ndarray:
    """Climatology for exactly the samples of a :class:`SequenceSet` (same patches, same target windows).

    Each sample's forecast is issued after its last input window, so only
    windows up to that one are used.

    Returns:
        float32 (N, n_out, P, P), aligned with ``samples.targets``.
    """
    n_in = samples.inputs.shape[1] if n_in is None else n_in
    n_out, size = samples.targets.shape[1], samples.targets.shape[-1]
    out = np.empty(samples.targets.shape, dtype=np.float32)
    cache: dict[tuple[int, int], np.ndarray] = {}
    for index in range(len(samples)):
        key = (int(samples.series_index[index]), int(samples.starts[index]))
        if key not in cache:
            one = series[key[0]]
            targets = range(key[1] + n_in, key[1] + n_in + n_out)
            cache[key] = climatology(one.frames, list(targets), one.windows_per_year, last_known=key[1] + n_in - 1)
        row, col = (int(v) for v in samples.origins[index])
        out[index] = cache[key][:, row:row + size, col:col + size]
    return out
