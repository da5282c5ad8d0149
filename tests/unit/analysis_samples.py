"""Velocity products with known fields for the analysis tests: real COGs written by the product writer."""
from __future__ import annotations

import numpy as np

from glacierflow.core.geo.grid import Grid
from glacierflow.core.io.cog import ProductWriter
from glacierflow.core.products.velocity import PAIR_BANDS, STACK_BANDS
from training.sample import sample_grid

SHAPE = (60, 80)  # rows, cols of 10 m pixels (the sample's UTM grid)
PIXEL_M = 10.0


def grid(shape=SHAPE) -> Grid:
    """The built-in sample's UTM 10 m grid, ``shape`` (rows, cols)."""
    return sample_grid(shape)


def centres(target: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Map x, y (m) of every pixel centre, arrays of ``target.shape``."""
    rows, cols = np.mgrid[0:target.height, 0:target.width]
    x0, a, b, y0, d, e = target.transform
    return x0 + a * (cols + 0.5) + b * (rows + 0.5), y0 + d * (cols + 0.5) + e * (rows + 0.5)


def write_pair_product(path, target: Grid, vx, vy, start="2021-07-01T00:00:00Z", end="2021-07-31T00:00:00Z",
                       days=30.0) -> str:
    """A pair product as the pair job writes it: vx, vy, speed, valid (m/yr) with its dates."""
    vx, vy = np.asarray(vx, np.float32), np.asarray(vy, np.float32)
    valid = (np.isfinite(vx) & np.isfinite(vy)).astype(np.float32)
    with ProductWriter(str(path), target, PAIR_BANDS) as writer:
        writer.write_rows(0, {"vx": vx, "vy": vy, "speed": np.hypot(vx, vy), "valid": valid})
        writer.finish({"GLACIERFLOW_PRODUCT": "velocity_pair", "INTERVAL_DAYS": f"{days:.6f}",
                       "ACQUISITION_A": start, "ACQUISITION_B": end, "ENGINE": "synthetic"})
    return str(path)


def write_stack_product(path, target: Grid, vx, vy, uncertainty, first="2021-01-01T00:00:00Z",
                        last="2021-12-31T00:00:00Z") -> str:
    """A stack (annual) product with an uncertainty band (m/yr)."""
    vx, vy = np.asarray(vx, np.float32), np.asarray(vy, np.float32)
    bands = {spec.name: np.zeros(target.shape, np.float32) for spec in STACK_BANDS}
    bands.update(vx=vx, vy=vy, speed=np.hypot(vx, vy), uncertainty=np.asarray(uncertainty, np.float32),
                 count=np.full(target.shape, 5, np.float32), vx_median=vx, vy_median=vy)
    with ProductWriter(str(path), target, STACK_BANDS) as writer:
        writer.write_rows(0, bands)
        writer.finish({"GLACIERFLOW_PRODUCT": "velocity_stack", "FIRST_ACQUISITION": first,
                       "LAST_ACQUISITION": last, "PAIR_COUNT": 5})
    return str(path)


def shear_field(target: Grid, rate: float = 0.02, base: float = 50.0) -> tuple[np.ndarray, np.ndarray]:
    """Simple shear: vx = base + rate * (y - y_mid), vy = 0 (m/yr; ``rate`` in 1/yr)."""
    _, y = centres(target)
    return base + rate * (y - y.mean()), np.zeros(target.shape)
