"""Where map points fall on a velocity product's grid, and NaN-aware bilinear values there.

Pixel positions follow :class:`~glacierflow.core.geo.grid.Grid`: (col, row) of pixel *corners*, so the
centre of pixel (0, 0) is (0.5, 0.5).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..geo.crs import same_crs, transform_points
from ..geo.grid import Grid
from ..products.velocity import VelocityProduct


def map_to_pixel(grid: Grid, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-corner positions (col, row in px) of map points (x, y in the grid's CRS, m); any transform."""
    x0, a, b, y0, d, e = grid.transform
    det = a * e - b * d
    dx, dy = np.asarray(x, dtype=float) - x0, np.asarray(y, dtype=float) - y0
    return (e * dx - b * dy) / det, (-d * dx + a * dy) / det


def bilinear_at(values: np.ndarray, cols: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Bilinear values of a 2-D array at pixel-corner positions (px), NaN-aware.

    The weights of missing (NaN or off-raster) neighbours are dropped and the others renormalised; NaN
    where all four neighbours are missing or the point lies outside the raster.
    """
    values = np.asarray(values, dtype=float)
    height, width = values.shape
    fc, fr = np.asarray(cols, dtype=float) - 0.5, np.asarray(rows, dtype=float) - 0.5
    c0, r0 = np.floor(fc).astype(int), np.floor(fr).astype(int)
    tc, tr = fc - c0, fr - r0
    total = np.zeros(fc.shape)
    weighted = np.zeros(fc.shape)
    for dc, dr, weight in ((0, 0, (1 - tc) * (1 - tr)), (1, 0, tc * (1 - tr)), (0, 1, (1 - tc) * tr), (1, 1, tc * tr)):
        c, r = c0 + dc, r0 + dr
        inside = (c >= 0) & (c < width) & (r >= 0) & (r < height)
        sample = np.full(fc.shape, np.nan)
        sample[inside] = values[r[inside], c[inside]]
        use = np.isfinite(sample) & (weight > 1e-12)
        total += np.where(use, weight, 0.0)
        weighted += np.where(use, weight * np.where(use, sample, 0.0), 0.0)
    on_raster = (cols >= 0) & (cols <= width) & (rows >= 0) & (rows <= height)
    with np.errstate(invalid="ignore", divide="ignore"):
        result = weighted / total
    return np.where(on_raster & (total > 1e-12), result, np.nan)


def sample_product(product: VelocityProduct, names: Sequence[str], x: np.ndarray, y: np.ndarray,
                   crs_wkt: str | None = None) -> dict[str, np.ndarray]:
    """Bilinear values of the product's bands ``names`` at map points (x, y in ``crs_wkt``, default the
    product's CRS), reading only the window around the points. Bands the product lacks are all-NaN."""
    bands = {name: product.bands[name.lower()] for name in names if product.has(name)}
    sampled = sample_dataset(product.dataset, product.grid, bands, x, y, crs_wkt)
    shape = np.atleast_1d(np.asarray(x)).shape
    return {name: sampled.get(name, np.full(shape, np.nan)) for name in names}


def sample_raster(path: str, x: np.ndarray, y: np.ndarray, crs_wkt: str, band: int = 1) -> np.ndarray:
    """Bilinear values (NaN-aware) of band ``band`` of any raster at map points (x, y in ``crs_wkt``)."""
    from ..io.raster import grid_of, open_raster

    dataset = open_raster(path)
    return sample_dataset(dataset, grid_of(dataset, path), {"band": band}, x, y, crs_wkt)["band"]


def sample_dataset(dataset: Any, grid: Grid, bands: dict[str, int], x: np.ndarray, y: np.ndarray,
                   crs_wkt: str | None = None) -> dict[str, np.ndarray]:
    """Bilinear values (NaN-aware) of ``bands`` (name -> 1-based index) of a GDAL dataset on ``grid`` at map
    points (x, y in ``crs_wkt``, default the grid's CRS), reading only the window around the points."""
    x, y = np.atleast_1d(np.asarray(x, dtype=float)), np.atleast_1d(np.asarray(y, dtype=float))
    if crs_wkt and not same_crs(crs_wkt, grid.crs_wkt):
        moved = transform_points(list(zip(x, y)), crs_wkt, grid.crs_wkt)
        x, y = np.array([p[0] for p in moved], float), np.array([p[1] for p in moved], float)
    cols, rows = map_to_pixel(grid, x, y)
    result = {name: np.full(x.shape, np.nan) for name in bands}
    finite = np.isfinite(cols) & np.isfinite(rows)
    if not finite.any():
        return result
    c0 = int(max(0, np.floor(cols[finite].min()) - 1))
    r0 = int(max(0, np.floor(rows[finite].min()) - 1))
    c1 = int(min(grid.width, np.ceil(cols[finite].max()) + 2))
    r1 = int(min(grid.height, np.ceil(rows[finite].max()) + 2))
    if c1 <= c0 or r1 <= r0:
        return result
    inside = (cols >= 0) & (cols <= grid.width) & (rows >= 0) & (rows <= grid.height)
    for name, index in bands.items():
        window = read_window(dataset.GetRasterBand(index), c0, r0, c1 - c0, r1 - r0)
        result[name] = np.where(inside, bilinear_at(window, cols - c0, rows - r0), np.nan)
    return result


def read_window(source: Any, col: int, row: int, width: int, height: int) -> np.ndarray:
    """A window of a GDAL band as float64, its nodata value as NaN."""
    values = source.ReadAsArray(col, row, width, height).astype(np.float64)
    nodata = source.GetNoDataValue()
    if nodata is not None and np.isfinite(nodata):
        values[values == nodata] = np.nan
    return values
