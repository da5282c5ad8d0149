"""A folder of the user's own GeoTIFFs as an imagery source.

Each file's time comes from :func:`..timestamps.acquisition_of` (the
``ACQUISITION_DATETIME`` tag, a Landsat MTL file beside it, or a Sentinel-2 /
Landsat product name); files without one are skipped, with the reason kept in
:attr:`LocalFolderSource.skipped` for the log. Cloud cover is read from the
file's metadata (``CLOUD_COVER``, ``CLOUDCOVER``, ``CLOUDY_PIXEL_PERCENTAGE``,
...) or the matching MTL file when present, else it is unknown (None).
"""
from __future__ import annotations

import os
import re
from collections import Counter
from datetime import datetime
from typing import Any

import numpy as np

from ..errors import GlacierFlowError
from ..geo.area import Area
from ..geo.grid import Grid
from .base import Scene, SceneCache, check_range, scene_matches

SOURCE_NAME = "local_folder"
GEOTIFF_SUFFIXES = (".tif", ".tiff")
CLOUD_KEYS = ("CLOUD_COVER", "CLOUDCOVER", "CLOUD_COVERAGE_ASSESSMENT", "CLOUDY_PIXEL_PERCENTAGE",
              "EO_CLOUD_COVER", "EO:CLOUD_COVER", "CLOUD_COVER_LAND")


class LocalFolderSource:
    """All GeoTIFFs in ``folder`` (and its sub-folders with ``recursive``), one band each.

    Attributes:
        folder: the folder searched.
        band: 1-based band read from every file.
        recursive: also search sub-folders.
        cache: where fetched arrays are kept.
        skipped: (file name, reason) for every file the last search could not use.
    """

    name = SOURCE_NAME

    def __init__(self, folder: str, band: int = 1, recursive: bool = False,
                 cache_dir: str | None = None) -> None:
        self.folder = folder
        self.band = band
        self.recursive = recursive
        self.cache = SceneCache(cache_dir)
        self.skipped: list[tuple[str, str]] = []

    def files(self) -> list[str]:
        """The GeoTIFF paths in the folder, sorted."""
        if not self.folder or not os.path.isdir(self.folder):
            raise GlacierFlowError(f"Folder '{self.folder}' does not exist: choose the folder holding your GeoTIFFs.")
        paths: list[str] = []
        if self.recursive:
            for root, dirs, names in os.walk(self.folder):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                paths.extend(os.path.join(root, n) for n in names if _is_geotiff(n))
        else:
            paths = [os.path.join(self.folder, n) for n in os.listdir(self.folder)
                     if _is_geotiff(n) and os.path.isfile(os.path.join(self.folder, n))]
        return sorted(paths)

    def scenes(self) -> list[Scene]:
        """Every usable file as a :class:`Scene`, unfiltered; fills :attr:`skipped`."""
        self.skipped = []
        found = []
        for path in self.files():
            scene = self._scene_of(path)
            if scene is not None:
                found.append(scene)
        return sorted(found, key=lambda s: (s.time, s.id))

    def search(self, area: Area | None, start: datetime | None, end: datetime | None,
               months: set[int] | None = None, max_cloud: float | None = None) -> list[Scene]:
        """Scenes touching ``area`` in [start, end] (UTC, inclusive) in ``months`` with cloud cover at most
        ``max_cloud`` % (unknown cloud cover passes); sorted by time. Raises GlacierFlowError when none."""
        check_range(start, end)
        candidates = self.scenes()
        rejected: Counter = Counter()
        kept = []
        for scene in candidates:
            reason = scene_matches(scene, start, end, months, max_cloud)
            if reason is None and area is not None and scene.footprint is not None:
                if not area.intersects_footprint(scene.footprint, scene.footprint_crs_wkt):
                    reason = "outside the area"
            if reason is None:
                kept.append(scene)
            else:
                rejected[reason] += 1
        if not kept:
            raise GlacierFlowError(self._nothing_found(len(candidates), rejected))
        return kept

    def fetch(self, scene: Scene, grid: Grid, band: str = "") -> np.ndarray:
        """The scene's band warped (bilinear) onto ``grid``: float32, NaN outside the file; cached.

        A local file has one band per scene (the folder's ``band`` number): ``band`` must be ""."""
        from ..io.raster import BandSource

        if band:
            raise GlacierFlowError(f"A local folder gives one band per file (band {self.band}), not '{band}': "
                                   "put each band in its own folder, or use a STAC source for named bands.")

        def read() -> np.ndarray:
            source = BandSource.open(scene.href, scene.band)
            try:
                return source.read(grid)
            finally:
                source.drop_cache()

        return self.cache.fetch(scene, grid, read)

    def _scene_of(self, path: str) -> Scene | None:
        from osgeo import gdal

        from ..io.raster import grid_of
        from ..io.timestamps import acquisition_of

        name = os.path.relpath(path, self.folder)
        dataset = gdal.OpenEx(path, gdal.OF_RASTER | gdal.OF_READONLY)
        if dataset is None:
            self.skipped.append((name, "not readable as a raster"))
            return None
        try:
            try:
                grid = grid_of(dataset, path)
            except GlacierFlowError:
                self.skipped.append((name, "no coordinate reference system"))
                return None
            if dataset.RasterCount < self.band:
                self.skipped.append((name, f"has {dataset.RasterCount} band(s), band {self.band} was asked for"))
                return None
            metadata: dict[str, str] = dict(dataset.GetMetadata() or {})
            try:
                acquisition = acquisition_of(path, dataset)
            except GlacierFlowError:
                acquisition = None
            if acquisition is None:
                self.skipped.append((name, "no acquisition date (no ACQUISITION_DATETIME tag, MTL file or "
                                           "product name)"))
                return None
        finally:
            dataset = None
        stat = os.stat(path)
        cloud = _cloud_cover(metadata)
        return Scene(
            id=os.path.splitext(name)[0].replace(os.sep, "/"),
            time=acquisition.time,
            cloud_cover=cloud if cloud is not None else _mtl_cloud_cover(path),
            source=SOURCE_NAME,
            href=os.path.abspath(path),
            band=self.band,
            footprint=grid.bounds(),
            footprint_crs_wkt=grid.crs_wkt,
            time_source=acquisition.source,
            version=f"{stat.st_size}:{stat.st_mtime_ns}",
        )

    def _nothing_found(self, usable: int, rejected: Counter) -> str:
        total = len(self.files())
        parts = [f"{total} GeoTIFF(s) found"]
        if self.skipped:
            reasons = Counter(reason.split(" (")[0] for _, reason in self.skipped)
            parts.append(f"{len(self.skipped)} unusable ({_summary(reasons)})")
        if rejected:
            parts.append(_summary(rejected))
        where = "and its sub-folders" if self.recursive else "(sub-folders not searched)"
        return (f"No scene found in '{self.folder}' {where}: {'; '.join(parts)}. "
                "Widen the dates or months, raise the maximum cloud cover, check that the area lies over the "
                "images (and its CRS), or add dated GeoTIFFs (ACQUISITION_DATETIME tag, MTL file or product name).")


def _is_geotiff(name: str) -> bool:
    return name.lower().endswith(GEOTIFF_SUFFIXES) and not name.startswith(".")


def _summary(counts: Counter) -> str:
    return ", ".join(f"{count} {reason}" for reason, count in sorted(counts.items()))


def _number(text: Any) -> float | None:
    try:
        value = float(str(text).strip().strip('"'))
    except ValueError:
        return None
    return value if 0.0 <= value <= 100.0 else None


def _cloud_cover(metadata: dict[str, str]) -> float | None:
    """Cloud cover (%) from a file's metadata tags, or None."""
    upper = {key.upper(): value for key, value in metadata.items()}
    for key in CLOUD_KEYS:
        if key in upper:
            value = _number(upper[key])
            if value is not None:
                return value
    return None


def _mtl_cloud_cover(path: str) -> float | None:
    """Cloud cover (%) from the Landsat MTL file whose product name starts the file's name, or None."""
    from ..io.timestamps import landsat_mtl_for

    mtl = landsat_mtl_for(path)
    if mtl is None:
        return None
    with open(mtl, encoding="utf-8", errors="replace") as handle:
        match = re.search(r"^\s*CLOUD_COVER\s*=\s*\"?([-\d.]+)", handle.read(), re.MULTILINE)
    return _number(match.group(1)) if match else None
