"""The built-in sample: a synthetic glacier pair written as real GeoTIFFs, with its exact velocity.

It needs no network and no external data, so ``make demo`` and the tests can
run anywhere, and its known flow lets every run report its own error.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from glacierflow.core.geo.crs import epsg_wkt, transformer, wgs84_wkt
from glacierflow.core.geo.grid import Grid
from glacierflow.core.io.raster import write_array
from glacierflow.core.io.timestamps import Acquisition, interval_days, parse_datetime
from glacierflow.core.velocity.convert import displacement_to_velocity

from .synthetic import glacier_pair, sample_scene_metadata


@dataclass(frozen=True)
class SampleFiles:
    """Paths of the written sample."""

    image_a: str
    image_b: str
    outlines: str
    truth_vx: str
    truth_vy: str


def sample_grid(shape: tuple[int, int]) -> Grid:
    """The sample's georeferencing: a real UTM zone at 10 m, like Sentinel-2 band 8."""
    meta = sample_scene_metadata()
    size = float(meta["pixel_size_m"])
    return Grid(epsg_wkt(int(meta["epsg"])),
                (float(meta["origin_easting"]), size, 0.0, float(meta["origin_northing"]), 0.0, -size),
                shape[1], shape[0])


def write_sample(folder: str, seed: int | None = None, shape: tuple[int, int] | None = None,
                 max_displacement_px: float | None = None) -> SampleFiles:
    """Write the sample pair (uint16 reflectance x 10000, nodata 0, acquisition tags),
    its outlines (GeoJSON in WGS 84, like RGI) and its true vx, vy (m/yr) into ``folder``.

    Without arguments this is the built-in sample; other seeds, shapes (rows,
    cols px) and maximum displacements (px) give held-out scenes for benchmarks.
    """
    os.makedirs(folder, exist_ok=True)
    meta = sample_scene_metadata()
    shape = tuple(shape or meta["shape"])
    pair = glacier_pair(shape=shape, seed=int(meta["seed"] if seed is None else seed),
                        max_displacement_px=float(max_displacement_px or meta["max_displacement_px"]))
    grid = sample_grid(shape)
    paths = {}
    for key, image, when in (("a", pair.image_a, meta["datetime_a"]), ("b", pair.image_b, meta["datetime_b"])):
        dn = np.clip(np.round(image * 10000.0), 1, 65535).astype(np.uint16)  # 0 stays free for nodata
        paths[key] = write_array(os.path.join(folder, f"sample_{key}_B08.tif"), grid, dn, nodata=0,
                                 metadata={"ACQUISITION_DATETIME": when, "SENSOR": "synthetic, Sentinel-2 B08-like"})
    days = interval_days(Acquisition(parse_datetime(meta["datetime_a"]), "sample"),
                         Acquisition(parse_datetime(meta["datetime_b"]), "sample"))
    vx, vy = displacement_to_velocity(pair.dx, pair.dy, grid.transform, days)
    truth_vx = write_array(os.path.join(folder, "truth_vx.tif"), grid, vx)
    truth_vy = write_array(os.path.join(folder, "truth_vy.tif"), grid, vy)
    outlines = _write_outline(os.path.join(folder, "sample_outline.geojson"), grid, pair.outline)
    return SampleFiles(paths["a"], paths["b"], outlines, truth_vx, truth_vy)


def _write_outline(path: str, grid: Grid, ring_px: list) -> str:
    to_wgs84 = transformer(grid.crs_wkt, wgs84_wkt())
    # The generator's vertices are in pixel-centre coordinates; the geotransform addresses corners.
    ring = [list(to_wgs84.TransformPoint(*grid.pixel_to_map(col + 0.5, row + 0.5))[:2]) for col, row in ring_px]
    if ring[0] != ring[-1]:
        ring.append(ring[0])
    collection = {"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {"RGIId": "SAMPLE-00001", "Name": "GlacierFlow sample glacier"},
        "geometry": {"type": "Polygon", "coordinates": [ring]}}]}
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(collection, handle)
    return path
