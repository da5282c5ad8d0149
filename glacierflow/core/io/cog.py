"""The one Cloud Optimized GeoTIFF writer: float32 bands, NaN nodata, a name, description and unit per band.

Products of any size are written strip by strip to a hidden working GeoTIFF (:class:`ProductWriter`);
small ones from arrays in memory (:func:`write_bands`). Either way the final step is one GDAL
translation to COG into a hidden temporary file, renamed into place only when complete
(:mod:`.atomic`), so a failed or cancelled job leaves no partial output.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import GlacierFlowError
from ..geo.grid import Grid
from .atomic import atomic_path, output_folder, remove_quietly, remove_stale_temporaries, temporary_path

# NUM_THREADS: DEFLATE compression on every core (the same bytes; the translation was a single-core
# second of the Yahtse pair job). LEVEL=1: float32 flow behind the floating-point predictor compresses
# almost as well at the fastest level (Yahtse pair product: 0.49 s instead of 0.65 s, 0.6 % larger).
COG_OPTIONS = ("COMPRESS=DEFLATE", "PREDICTOR=YES", "LEVEL=1", "BLOCKSIZE=256", "OVERVIEW_RESAMPLING=AVERAGE",
               "BIGTIFF=IF_SAFER", "NUM_THREADS=ALL_CPUS")
WORK_OPTIONS = ("TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "BIGTIFF=IF_SAFER")


@dataclass(frozen=True)
class BandSpec:
    """Name (the band description GDAL and QGIS show), a longer description and the unit of one band."""

    name: str
    description: str
    unit: str


def _gdal() -> Any:
    from osgeo import gdal  # imported lazily: QGIS start-up stays fast

    return gdal


def _describe(dataset: Any, grid: Grid, specs: Sequence[BandSpec],
              band_metadata: Sequence[Mapping[str, str]] | None = None) -> None:
    dataset.SetGeoTransform(grid.transform)
    dataset.SetProjection(grid.crs_wkt)
    for index, spec in enumerate(specs, start=1):
        band = dataset.GetRasterBand(index)
        band.SetNoDataValue(float("nan"))
        band.SetDescription(spec.name)
        band.SetUnitType(spec.unit)
        band.SetMetadataItem("DESCRIPTION", spec.description)
        for key, value in (band_metadata[index - 1] if band_metadata else {}).items():
            band.SetMetadataItem(str(key), str(value))


def translate_to_cog(path: str, source: Any) -> str:
    """Translate a GDAL dataset (or a file path) to a COG at ``path``, atomically; returns ``path``."""
    gdal = _gdal()
    with atomic_path(path, ".tif") as temporary:
        result = gdal.Translate(temporary, source, options=gdal.TranslateOptions(
            format="COG", creationOptions=list(COG_OPTIONS)))
        if result is None:
            raise GlacierFlowError(f"Writing '{path}' failed ({gdal.GetLastErrorMsg()}): check the free disk "
                                   "space and that the folder is writable.")
        result = None
    return path


def write_bands(path: str, grid: Grid, arrays: Sequence[np.ndarray], specs: Sequence[BandSpec],
                metadata: Mapping[str, Any], band_metadata: Sequence[Mapping[str, str]] | None = None) -> str:
    """Write in-memory float32 ``arrays`` (one per spec, each ``grid.shape``) as a COG; returns ``path``."""
    gdal = _gdal()
    output_folder(path)
    if len(arrays) != len(specs):
        raise GlacierFlowError(f"{len(arrays)} arrays for {len(specs)} bands: report this as a bug.")
    memory = gdal.GetDriverByName("MEM").Create("", grid.width, grid.height, len(specs), gdal.GDT_Float32)
    _describe(memory, grid, specs, band_metadata)
    memory.SetMetadata({str(key): str(value) for key, value in metadata.items()})
    for index, values in enumerate(arrays, start=1):
        if np.shape(values) != grid.shape:
            raise GlacierFlowError(f"Band {specs[index - 1].name} is {np.shape(values)}, not the grid's "
                                   f"{grid.shape}: report this as a bug.")
        memory.GetRasterBand(index).WriteArray(np.asarray(values, dtype=np.float32))
    try:
        return translate_to_cog(path, memory)
    finally:
        memory = None


class ProductWriter:
    """Writes a float32 multi-band COG strip by strip, so memory stays one strip deep.

    Rows go to a hidden working GeoTIFF beside the output; :meth:`finish` translates it to a COG and
    renames that into place; :meth:`abort` (or leaving the ``with`` block on an exception) removes
    every temporary file and leaves the output path untouched.
    """

    def __init__(self, path: str, grid: Grid, bands: Sequence[BandSpec]) -> None:
        gdal = _gdal()
        self.path = path
        self.grid = grid
        self.bands = list(bands)
        remove_stale_temporaries(path)  # what a killed earlier run to this output left (core callers too)
        self._work_path = temporary_path(path, ".work.tif")
        self._dataset = gdal.GetDriverByName("GTiff").Create(
            self._work_path, grid.width, grid.height, len(self.bands), gdal.GDT_Float32, options=list(WORK_OPTIONS))
        if self._dataset is None:
            raise GlacierFlowError(f"Cannot write '{path}': {gdal.GetLastErrorMsg()}")
        _describe(self._dataset, grid, self.bands)

    def __enter__(self) -> ProductWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.abort()

    def write_rows(self, row_off: int, arrays: Mapping[str, np.ndarray]) -> None:
        """Write full-width rows starting at ``row_off`` (px) for each named band."""
        self.write_window(0, row_off, arrays)

    def write_window(self, col_off: int, row_off: int, arrays: Mapping[str, np.ndarray]) -> None:
        """Write a window whose top-left pixel is (``col_off``, ``row_off``) (px) for each named band."""
        for index, spec in enumerate(self.bands, start=1):
            self._dataset.GetRasterBand(index).WriteArray(np.asarray(arrays[spec.name], dtype=np.float32),
                                                          col_off, row_off)
        self._dataset.FlushCache()  # write and free the blocks now: memory stays one window deep

    def finish(self, metadata: Mapping[str, Any]) -> str:
        """Convert to a COG with ``metadata`` and move it to the output path; returns the path."""
        self._dataset.SetMetadata({str(k): str(v) for k, v in metadata.items()})
        self._dataset.FlushCache()
        self._dataset = None
        try:
            translate_to_cog(self.path, self._work_path)
        finally:
            remove_quietly(self._work_path)
        return self.path

    def abort(self) -> None:
        """Remove every temporary file; the output path is left untouched."""
        self._dataset = None
        remove_quietly(self._work_path)
