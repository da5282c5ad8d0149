"""Tiling: layout, weights and exact, seamless, memory-bounded reassembly."""
from __future__ import annotations

import numpy as np
import pytest

from glacierflow.core.errors import GlacierFlowError
from glacierflow.core.geo.grid import Window
from glacierflow.core.velocity.tiling import StripAssembler, blend_weights, tile_origins, tile_rows


def test_origins_cover_the_scene_with_at_least_the_overlap():
    origins = tile_origins(1000, 256, 64)
    assert origins[0] == 0 and origins[-1] == 1000 - 256
    assert all(b - a <= 256 - 64 for a, b in zip(origins, origins[1:]))


def test_small_scene_is_one_tile():
    assert tile_origins(100, 256, 64) == [0]
    assert tile_rows(100, 90, 256, 64) == [[Window(0, 0, 90, 100)]]


@pytest.mark.parametrize("tile, overlap", [(0, 0), (64, 64), (64, -1)])
def test_inconsistent_tiling_is_refused(tile, overlap):
    with pytest.raises(GlacierFlowError):
        tile_origins(500, tile, overlap)


def test_weights_are_smooth_positive_and_one_in_the_centre():
    weights = blend_weights(256, 256, 64)
    assert weights.min() > 0
    assert weights[128, 128] == pytest.approx(1.0)
    assert np.abs(np.diff(weights, axis=0)).max() < 0.05


def _assemble(field: np.ndarray, tile: int, overlap: int, per_tile=lambda w, v: v) -> np.ndarray:
    height, width = field.shape
    out = np.full(field.shape, np.nan, np.float32)
    assembler = StripAssembler(width, ("v",))
    rows = tile_rows(height, width, tile, overlap)
    max_buffered = 0
    for index, row in enumerate(rows):
        for window in row:
            values = {"v": per_tile(window, field[window.slices].copy())}
            assembler.add(window, values, blend_weights(window.height, window.width, overlap))
        max_buffered = max(max_buffered, assembler._weights.shape[0])
        next_top = rows[index + 1][0].row_off if index + 1 < len(rows) else height
        for top, strip in assembler.release(next_top):
            out[top:top + strip["v"].shape[0]] = strip["v"]
    assert max_buffered <= tile  # memory bounded by one row of tiles
    return out


def test_reassembly_is_exact_when_tiles_agree():
    rng = np.random.default_rng(1)
    field = rng.normal(size=(613, 701)).astype(np.float32)
    np.testing.assert_allclose(_assemble(field, 128, 32), field, atol=1e-5)


def test_no_seams_when_tiles_disagree():
    # Each tile carries a different constant offset: blending must turn the jumps into smooth ramps.
    field = np.zeros((512, 512), np.float32)
    out = _assemble(field, 128, 64, per_tile=lambda w, v: v + (w.col_off + 3 * w.row_off) / 200.0)
    assert np.abs(np.diff(out, axis=1)).max() < 0.08
    assert np.abs(np.diff(out, axis=0)).max() < 0.15


def test_nan_in_one_tile_is_filled_by_its_neighbour():
    field = np.ones((300, 300), np.float32)

    def hole_in_first(window, values):
        if window.col_off == 0 and window.row_off == 0:
            values[-40:, -40:] = np.nan  # lies in the overlap, which the next tiles also cover
        return values

    out = _assemble(field, 128, 64, per_tile=hole_in_first)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, 1.0, atol=1e-6)
