"""Scenes of any source written as GeoTIFFs on the job grid: the bridge from remote imagery to the chain.

:func:`download_scenes` fetches each scene onto the job grid and writes it as a Cloud Optimized GeoTIFF
(float32, NaN nodata) tagged so that :class:`.local.LocalFolderSource` reads it back as a scene of its
own: ``ACQUISITION_DATETIME`` (ISO-8601 UTC) gives the time and ``CLOUD_COVER`` the cloud cover. Each
file is written under a hidden name and renamed into place when complete, so a cancel or an error
leaves no partial file, and a rerun skips every file already downloaded for the same scene, band and
grid. A scene with no valid pixel on the grid is not written.
"""
from __future__ import annotations

import csv
import io
import math
import os
import re
from collections.abc import Sequence
from datetime import timezone
from typing import Any

import numpy as np

from ..errors import GlacierFlowError
from ..feedback import Feedback, JobCancelled
from ..geo.grid import Grid
from ..io.atomic import write_text
from ..io.cog import translate_to_cog
from .base import ImageSource, Scene

PRODUCT_TAG = "scene_download"
TABLE_COLUMNS = ("file", "scene_id", "datetime", "cloud_cover", "valid_fraction", "band", "source")


def download_name(scene: Scene, band: str = "") -> str:
    """The file name of a downloaded scene: its id (and band), made file-safe, ``.tif``."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", scene.id).strip("._") or "scene"
    if band:
        stem += "_" + re.sub(r"[^A-Za-z0-9-]+", "_", band)
    return stem + ".tif"


def download_scenes(source: ImageSource, scenes: Sequence[Scene], grid: Grid, folder: str, band: str = "",
                    feedback: Feedback | None = None) -> list[str]:
    """Fetch every scene's ``band`` onto ``grid`` and write it into ``folder``; returns the written (or
    already present) file paths in scene order.

    Files already downloaded for the same scene, version, band and grid are kept as they are; scenes with
    no valid pixel on the grid are skipped with a log line. Progress is reported per scene (0-100 %) and a
    cancel is honoured between scenes (JobCancelled); no partial file is ever left in ``folder``.
    """
    feedback = feedback or Feedback()
    os.makedirs(folder, exist_ok=True)
    paths: list[str] = []
    names = _unique_names(scenes, band)
    for index, scene in enumerate(scenes):
        if feedback.is_cancelled():
            raise JobCancelled("Cancelled by the user")
        path = os.path.join(folder, names[index])
        label = f"Scene {index + 1}/{len(scenes)} {scene.id}"
        if is_complete_download(path, scene, grid, band):
            feedback.info(f"{label}: already downloaded ({os.path.basename(path)})")
            paths.append(path)
        else:
            array = _fetch_uncached(source, scene, grid, band)
            valid = _valid_fraction(array)
            if valid == 0.0:
                feedback.info(f"{label}: empty on the job grid (no valid pixel: outside the scene, cloud or "
                              "fill): skipped")
            else:
                _write_scene(path, scene, grid, array, band, valid)
                feedback.info(f"{label}: written ({100.0 * valid:.0f} % valid) -> {os.path.basename(path)}")
                paths.append(path)
        feedback.progress(100.0 * (index + 1) / len(scenes))
    return paths


def _fetch_uncached(source: ImageSource, scene: Scene, grid: Grid, band: str) -> Any:
    """``source.fetch`` without keeping a second copy in the scene cache: the download is the stored copy."""
    cache = getattr(source, "cache", None)
    if cache is None or not hasattr(cache, "store"):
        return source.fetch(scene, grid, band)
    previous, cache.store = cache.store, False
    try:
        return source.fetch(scene, grid, band)
    finally:
        cache.store = previous


def _unique_names(scenes: Sequence[Scene], band: str) -> list[str]:
    """File names in scene order; a name two scenes would share gets a short hash of the scene's source and id."""
    import hashlib

    names = [download_name(scene, band) for scene in scenes]
    repeated = {name for name in names if names.count(name) > 1}
    for index, scene in enumerate(scenes):
        if names[index] in repeated:
            digest = hashlib.sha256(f"{scene.source}:{scene.id}".encode()).hexdigest()[:8]
            names[index] = names[index][:-len(".tif")] + f"_{digest}.tif"
    return names


def is_complete_download(path: str, scene: Scene, grid: Grid, band: str = "") -> bool:
    """True when ``path`` is a finished download of this scene (id, source, version), band and grid."""
    if not os.path.isfile(path):
        return False
    from osgeo import gdal

    from ..geo.crs import same_crs

    dataset = gdal.OpenEx(path, gdal.OF_RASTER | gdal.OF_READONLY)
    if dataset is None:
        return False
    metadata = dataset.GetMetadata() or {}
    same_grid = ((dataset.RasterXSize, dataset.RasterYSize) == (grid.width, grid.height)
                 and np.allclose(dataset.GetGeoTransform(), grid.transform, rtol=0.0, atol=1e-6)
                 and bool(dataset.GetProjection()) and same_crs(dataset.GetProjection(), grid.crs_wkt))
    dataset = None
    expected = {"GLACIERFLOW_PRODUCT": PRODUCT_TAG, "SCENE_ID": scene.id, "SOURCE": scene.source,
                "BAND": band or "default", "SCENE_VERSION": scene.version}
    return same_grid and all(metadata.get(key, "") == value for key, value in expected.items())


def _valid_fraction(array: np.ndarray) -> float:
    """Share (0-1) of the grid's pixels holding data."""
    return float(np.count_nonzero(np.isfinite(array))) / float(array.size) if array.size else 0.0


def _tags(scene: Scene, band: str, valid: float) -> dict[str, str]:
    """The file's metadata: what LocalFolderSource reads back (time, cloud) and where it came from."""
    tags = {
        "GLACIERFLOW_PRODUCT": PRODUCT_TAG,
        "ACQUISITION_DATETIME": scene.time.astimezone(timezone.utc).isoformat().replace("+00:00", "Z"),
        "VALID_FRACTION": f"{valid:.4f}",
        "SCENE_ID": scene.id,
        "SOURCE": scene.source,
        "BAND": band or "default",
        "SCENE_VERSION": scene.version,
        "SCENE_HREF": scene.href,
    }
    if scene.cloud_cover is not None and math.isfinite(scene.cloud_cover):
        tags["CLOUD_COVER"] = f"{scene.cloud_cover:g}"
    if scene.valid_fraction is not None:
        tags["SEARCH_VALID_FRACTION"] = f"{scene.valid_fraction:.4f}"  # inside the search polygon
    return tags


def _write_scene(path: str, scene: Scene, grid: Grid, array: np.ndarray, band: str, valid: float) -> str:
    """Write ``array`` as a float32 COG at ``path`` through a hidden temporary file renamed into place."""
    from osgeo import gdal

    if array.shape != grid.shape:
        raise GlacierFlowError(f"Scene '{scene.id}' came back as {array.shape}, not the grid's {grid.shape}: "
                               "report this as a bug of the imagery source.")
    memory = gdal.GetDriverByName("MEM").Create("", grid.width, grid.height, 1, gdal.GDT_Float32)
    memory.SetGeoTransform(grid.transform)
    memory.SetProjection(grid.crs_wkt)
    memory.SetMetadata(_tags(scene, band, valid))
    raster_band = memory.GetRasterBand(1)
    raster_band.SetNoDataValue(float("nan"))
    raster_band.SetDescription(band or "default")
    raster_band.SetUnitType(scene.properties.get("unit", "reflectance" if band else ""))
    raster_band.WriteArray(np.asarray(array, dtype=np.float32))
    try:
        return translate_to_cog(path, memory)
    finally:
        memory = None


# --- the table of downloaded files ------------------------------------------------------------------------

def describe_downloads(paths: Sequence[str]) -> list[dict[str, str]]:
    """One row per downloaded file (see :data:`TABLE_COLUMNS`), read from the files' tags."""
    from osgeo import gdal

    rows = []
    for path in paths:
        dataset = gdal.OpenEx(path, gdal.OF_RASTER | gdal.OF_READONLY)
        metadata = (dataset.GetMetadata() or {}) if dataset is not None else {}
        dataset = None
        rows.append({"file": path, "scene_id": metadata.get("SCENE_ID", ""),
                     "datetime": metadata.get("ACQUISITION_DATETIME", ""),
                     "cloud_cover": metadata.get("CLOUD_COVER", ""),
                     "valid_fraction": metadata.get("VALID_FRACTION", ""),
                     "band": metadata.get("BAND", ""), "source": metadata.get("SOURCE", "")})
    return rows


def write_download_table(paths: Sequence[str], csv_path: str) -> str:
    """The table of downloaded files as CSV (written atomically); returns its path."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(TABLE_COLUMNS))
    writer.writeheader()
    writer.writerows(describe_downloads(paths))
    return write_text(csv_path, buffer.getvalue(), create_folder=True)


# --- sources from user settings ---------------------------------------------------------------------------

def open_source(name: str, folder: str = "", recursive: bool = False, url: str = "", credentials: str = "",
                project: str = "", min_valid_fraction: float | None = None, cache_dir: str = "") -> ImageSource:
    """The source called ``name`` configured from the user's settings.

    The local folder takes ``folder`` and ``recursive``; remote sources take the service ``url`` (STAC
    API), ``credentials`` (a service-account key file), ``project`` (Earth Engine project id) and
    ``min_valid_fraction`` (0-1, the share of the area a scene must cover with usable pixels); only the
    settings given are passed to :func:`.make_source`.
    """
    from . import make_source

    if name == "local_folder":
        return make_source(name, folder=folder, recursive=recursive, cache_dir=cache_dir)
    settings: dict[str, Any] = {"url": url, "credentials": credentials, "project": project,
                                "min_valid_fraction": min_valid_fraction, "cache_dir": cache_dir}
    given = {key: value for key, value in settings.items() if value not in (None, "")}
    try:
        return make_source(name, **given)
    except TypeError as error:
        raise GlacierFlowError(f"The imagery source '{name}' does not take these settings "
                               f"({', '.join(sorted(given))}): {error}. Leave the ones it does not use "
                               "empty.") from None


def keep_valid(scenes: Sequence[Scene], min_valid_fraction: float | None) -> tuple[list[Scene], list[Scene]]:
    """(kept, dropped): scenes whose known valid fraction (0-1) is below ``min_valid_fraction`` are dropped;
    an unknown valid fraction (None, e.g. a local file) is kept."""
    if min_valid_fraction is None or min_valid_fraction <= 0:
        return list(scenes), []
    kept = [s for s in scenes if s.valid_fraction is None or s.valid_fraction >= min_valid_fraction]
    dropped = [s for s in scenes if s.valid_fraction is not None and s.valid_fraction < min_valid_fraction]
    return kept, dropped
