"""Tiling: layout, weights and exact, seamless, memory-bounded reassembly."""
from __future__ import annotations

import numpy as np
import pytest

from glacierflow.core.errors import GlacierFlowError
from glacierflow.core.geo.grid import Window
from glacierflow.core.velocity.tiling import blend_weights, tile_origins, tile_rows


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


def test_blended_tiles_reproduce_a_field_they_agree_on():
    rng = np.random.default_rng(1)
    field = rng.normal(size=(300, 410)).astype(np.float32)
    sums = np.zeros_like(field)
    weights = np.zeros_like(field)
    for row in tile_rows(*field.shape, 128, 32):
        for window in row:
            w = blend_weights(window.height, window.width, 32)
            sums[window.slices] += field[window.slices] * w
            weights[window.slices] += w
    np.testing.assert_allclose(sums / weights, field, atol=1e-5)
