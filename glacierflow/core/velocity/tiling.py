"""Overlapping tiles and their seamless, memory-bounded reassembly.

Tiles are processed one row of tiles at a time. Each tile's result is
multiplied by a smooth weight (a raised-cosine ramp across the overlap) and
accumulated; dividing by the accumulated weight gives a seamless mosaic that
equals the tiles exactly wherever they agree. Rows above the next row of
tiles can no longer change, so they are handed out and forgotten: memory is
about (tile size + overlap) x scene width, whatever the scene height.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..errors import GlacierFlowError
from ..geo.grid import Window

WEIGHT_FLOOR = 1e-3  # keeps pixels seen by one tile edge only (scene borders) well defined


def tile_origins(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets (px) of tiles of ``tile`` px overlapping by at least ``overlap`` px.

    The last tile is shifted back to end on the scene edge, so every tile is
    full size when the scene is at least one tile long.
    """
    if tile <= 0 or overlap < 0 or overlap >= tile:
        raise GlacierFlowError(
            f"Tile size {tile} px and overlap {overlap} px are inconsistent: the overlap must "
            "be at least 0 and smaller than the tile size.")
    if length <= tile:
        return [0]
    step = tile - overlap
    origins = list(range(0, length - tile, step))
    origins.append(length - tile)
    return origins


def tile_rows(height: int, width: int, tile: int, overlap: int) -> list[list[Window]]:
    """Tiles of a (height, width) px scene, grouped by row of tiles, top to bottom."""
    cols = tile_origins(width, tile, overlap)
    rows = tile_origins(height, tile, overlap)
    return [[Window(c, r, min(tile, width), min(tile, height)) for c in cols] for r in rows]


def _ramp(length: int, overlap: int) -> np.ndarray:
    ramp = np.ones(length, dtype=np.float32)
    n = min(overlap, length // 2)
    if n > 0:
        t = (np.arange(n, dtype=np.float32) + 0.5) / n
        ramp[:n] = 0.5 - 0.5 * np.cos(np.pi * t)
        ramp[length - n:] = ramp[:n][::-1]
    return np.maximum(ramp, WEIGHT_FLOOR)


def blend_weights(height: int, width: int, overlap: int) -> np.ndarray:
    """Smooth (height, width) px weights: 1 in the tile centre, tapering over ``overlap`` px."""
    return np.outer(_ramp(height, overlap), _ramp(width, overlap))


class StripAssembler:
    """Accumulates weighted tiles and releases rows once no later tile can touch them."""

    def __init__(self, width: int, names: tuple[str, ...]) -> None:
        self.width = width
        self.names = names
        self._top = 0  # scene row of the first buffered row
        self._sums = {name: np.zeros((0, width), np.float32) for name in names}
        self._weights = np.zeros((0, width), np.float32)

    def add(self, window: Window, values: dict[str, np.ndarray], weights: np.ndarray) -> None:
        """Accumulate one tile's arrays (NaN = no value there) with its ``weights``."""
        bottom = window.row_off + window.height
        self._grow(bottom)
        rows = slice(window.row_off - self._top, bottom - self._top)
        cols = slice(window.col_off, window.col_off + window.width)
        known = np.all([np.isfinite(values[n]) for n in self.names], axis=0)
        w = np.where(known, weights, 0.0)
        for name in self.names:
            self._sums[name][rows, cols] += np.where(known, values[name], 0.0) * w
        self._weights[rows, cols] += w

    def _grow(self, bottom: int) -> None:
        missing = bottom - (self._top + self._weights.shape[0])
        if missing > 0:
            pad = np.zeros((missing, self.width), np.float32)
            self._weights = np.vstack([self._weights, pad])
            for name in self.names:
                self._sums[name] = np.vstack([self._sums[name], pad])

    def release(self, until_row: int) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        """Yield (first row, arrays) for the finished rows above ``until_row``; NaN where no tile had a value."""
        count = min(until_row - self._top, self._weights.shape[0])
        if count <= 0:
            return
        weights = self._weights[:count]
        with np.errstate(invalid="ignore", divide="ignore"):
            out = {name: np.where(weights > 0, self._sums[name][:count] / weights, np.nan).astype(np.float32)
                   for name in self.names}
        top = self._top
        self._weights = self._weights[count:]
        for name in self.names:
            self._sums[name] = self._sums[name][count:]
        self._top += count
        yield top, out
