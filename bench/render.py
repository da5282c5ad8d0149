"""Render a velocity product to a PNG map: speed in colour, direction arrows scaled by speed."""
from __future__ import annotations

import numpy as np


def read_product(path: str) -> dict:
    """Bands of a velocity product by name (float32, NaN no data), plus its geotransform and metadata."""
    from glacierflow.core.products.velocity import open_velocity

    product = open_velocity(path)
    bands: dict = {spec.name: product.read(spec.name) for spec in product.band_descriptions()}
    bands["transform"] = product.grid.transform
    bands["metadata"] = product.metadata
    return bands


def product_displacement(product: dict) -> tuple[np.ndarray, np.ndarray]:
    """(dx, dy) in px of a product from :func:`read_product`, over its own interval (days)."""
    from glacierflow.core.products.velocity import INTERVAL_DAYS
    from glacierflow.core.velocity.convert import velocity_to_displacement

    days = float(product["metadata"][INTERVAL_DAYS])
    return velocity_to_displacement(product["vx"], product["vy"], product["transform"], days)


def read_single_band(path: str) -> np.ndarray:
    """Band 1 of a raster as float32, NaN where nodata (the plugin's own reader)."""
    from glacierflow.core.io.raster import BandSource

    source = BandSource.open(path, 1)
    return source.read(source.grid)


def render_velocity_map(path: str, png: str, background: np.ndarray | None = None,
                        title: str = "", arrows: int = 28, vmax: float | None = None) -> str:
    """Write ``png``: speed (m/yr, viridis) over an optional grey image, with direction arrows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    product = read_product(path)
    vx, vy, speed = product["vx"], product["vy"], product["speed"]
    x0, a, _, y0, _, e = product["transform"]
    height, width = speed.shape
    extent = (x0 / 1000, (x0 + a * width) / 1000, (y0 + e * height) / 1000, y0 / 1000)
    vmax = vmax or float(np.nanpercentile(speed, 98)) if np.isfinite(speed).any() else 1.0
    fig, ax = plt.subplots(figsize=(9, 9 * height / width + 0.8), dpi=110)
    if background is not None:
        low, high = np.nanpercentile(background, [1, 99])
        ax.imshow(background, cmap="gray", vmin=low, vmax=high, extent=extent)
    image = ax.imshow(speed, cmap="viridis", vmin=0, vmax=vmax, extent=extent, alpha=0.85)
    step = max(1, max(height, width) // arrows)
    rows, cols = np.mgrid[step // 2:height:step, step // 2:width:step]
    u, v = vx[rows, cols], vy[rows, cols]
    keep = np.isfinite(u) & np.isfinite(v) & (np.hypot(u, v) > 0.05 * vmax)  # no dots on still ground
    xs = (x0 + a * (cols + 0.5)) / 1000
    ys = (y0 + e * (rows + 0.5)) / 1000
    ax.quiver(xs[keep], ys[keep], u[keep], v[keep], color="white", scale=vmax * arrows * 0.8,
              width=0.0025, headwidth=4)
    fig.colorbar(image, ax=ax, shrink=0.8, label="speed (m/yr)")
    ax.set_xlabel("easting (km)")
    ax.set_ylabel("northing (km)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)
    return png


def render_forecast_map(series_path: str, forecast_path: str, png: str, title: str = "") -> str:
    """Write ``png``: the last observed NDSI window and every forecast window side by side (0-1, blue-white)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LinearSegmentedColormap
    from osgeo import gdal

    def bands(path: str) -> list:
        dataset = gdal.Open(path)
        return [(dataset.GetRasterBand(i).GetDescription(), dataset.GetRasterBand(i).ReadAsArray())
                for i in range(1, dataset.RasterCount + 1)]

    panels = [("observed " + bands(series_path)[-1][0],) + bands(series_path)[-1][1:]]
    panels += [("forecast " + name, values) for name, values in bands(forecast_path)]
    cmap = LinearSegmentedColormap.from_list("ndsi", ["#08306b", "#2171b5", "#6baed6", "#c6dbef", "#ffffff"])
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.8), dpi=110)
    for ax, (name, values) in zip(axes, panels):
        image = ax.imshow(values, cmap=cmap, vmin=0, vmax=1)
        ax.set_title(name.replace("NDSI ", "").replace("..", "\n.."), fontsize=9)
        ax.set_axis_off()
    fig.colorbar(image, ax=list(axes), shrink=0.8, label="masked NDSI")
    fig.suptitle(title)
    fig.savefig(png, bbox_inches="tight")
    plt.close(fig)
    return png
