"""From an image pair to velocity: preprocessing, flow engines, tiling, px -> m/yr, stacking."""
