"""Overlapping tiles and their seamless blending, for engines that need fixed-size tiles (RAFT).

Each tile's result is multiplied by a smooth weight (a raised-cosine ramp across the overlap) and
accumulated; dividing by the accumulated weight gives a seamless mosaic that equals the tiles exactly
wherever they agree.
"""
from __future__ import annotations

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
