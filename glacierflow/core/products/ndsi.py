"""Forecast products: the NDSI forecast raster, optical flow between forecast windows, and their QGIS style.

Rasters are float32 Cloud Optimized GeoTIFFs with NaN as nodata, one band
per window, each band described and tagged with its window; they are built
in memory, written to a hidden temporary file and renamed into place, so a
failure leaves no partial product.
"""
from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np

from ..errors import GlacierFlowError
from ..forecast.series import add_months, as_utc
from ..geo.grid import Grid
from ..io.timestamps import DAYS_PER_YEAR

#: Farneback parameters of the thesis (002, section 2.1): pyramid scale 0.5, 6 levels, 10 iterations;
#: "all other parameters ... standard values": OpenCV's usual window 15, poly_n 5, poly_sigma 1.2.
FARNEBACK = {"pyr_scale": 0.5, "levels": 6, "winsize": 15, "iterations": 10, "poly_n": 5, "poly_sigma": 1.2,
             "flags": 0}


def window_label(start: datetime, window_months: int) -> str:
    """"YYYY-MM-DD..YYYY-MM-DD": first and last day (inclusive) of a window."""
    first = as_utc(start)
    last = add_months(first, window_months) - timedelta(days=1)
    return f"{first:%Y-%m-%d}..{last:%Y-%m-%d}"


def _iso(moment: datetime) -> str:
    return as_utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_bands_cog(path: str, grid: Grid, bands: Sequence[np.ndarray], descriptions: Sequence[str],
                    units: Sequence[str], band_metadata: Sequence[dict[str, str]], metadata: dict[str, str]) -> str:
    """Write float32 bands on ``grid`` as a COG (NaN nodata) atomically; returns ``path``."""
    from osgeo import gdal

    folder = os.path.dirname(os.path.abspath(path)) or "."
    if not os.path.isdir(folder):
        raise GlacierFlowError(f"Output folder '{folder}' does not exist: create it or choose another.")
    memory = gdal.GetDriverByName("MEM").Create("", grid.width, grid.height, len(bands), gdal.GDT_Float32)
    memory.SetGeoTransform(grid.transform)
    memory.SetProjection(grid.crs_wkt)
    memory.SetMetadata({key: str(value) for key, value in metadata.items()})
    for index, values in enumerate(bands, start=1):
        band = memory.GetRasterBand(index)
        band.SetNoDataValue(float("nan"))
        band.SetDescription(descriptions[index - 1])
        band.SetUnitType(units[index - 1])
        band.SetMetadata({key: str(value) for key, value in band_metadata[index - 1].items()})
        band.WriteArray(np.asarray(values, dtype=np.float32))
    temporary = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex[:8]}.cog.tif")
    options = gdal.TranslateOptions(format="COG", creationOptions=[
        "COMPRESS=DEFLATE", "PREDICTOR=YES", "BLOCKSIZE=256", "OVERVIEW_RESAMPLING=AVERAGE", "BIGTIFF=IF_SAFER"])
    try:
        result = gdal.Translate(temporary, memory, options=options)
        if result is None:
            raise GlacierFlowError(f"Writing '{path}' failed: {gdal.GetLastErrorMsg()}")
        result = None
        os.replace(temporary, path)
    finally:
        for leftover in (temporary, temporary + ".aux.xml"):
            if os.path.exists(leftover):
                os.remove(leftover)
    return path


def write_forecast_raster(path: str, frames: np.ndarray, grid: Grid, window_starts: list[datetime],
                          window_months: int, model_card: dict[str, str]) -> str:
    """Write a forecast (C, H, W) masked NDSI as a COG: one band per future window.

    Band k is described "NDSI YYYY-MM-DD..YYYY-MM-DD" (inclusive days) and
    tagged WINDOW_START / WINDOW_END (ISO UTC, the end exclusive: the next
    window's start); the dataset carries the model card's entries
    (prefixed MODEL_) and the window length.

    Returns:
        ``path``.
    """
    stack = np.asarray(frames, dtype=np.float32)
    if stack.ndim != 3 or stack.shape[0] != len(window_starts) or stack.shape[1:] != grid.shape:
        raise GlacierFlowError("The forecast must be (windows, rows, cols) on the grid, one start per window.")
    starts = [as_utc(s) for s in window_starts]
    descriptions = [f"NDSI {window_label(s, window_months)}" for s in starts]
    band_metadata = [{"WINDOW_START": _iso(s), "WINDOW_END": _iso(add_months(s, window_months)),
                      "QUANTITY": "masked NDSI (NDSI where >= threshold, else 0)"} for s in starts]
    metadata = {f"MODEL_{key.upper()}": str(value) for key, value in model_card.items()}
    metadata.update({"PRODUCT": "GlacierFlow NDSI forecast", "WINDOW_MONTHS": str(window_months),
                     "MODEL": str(model_card.get("name", model_card.get("model", "unknown")))})
    return write_bands_cog(path, grid, list(stack), descriptions, ["unitless"] * len(starts), band_metadata,
                           metadata)


def forecast_flow(frames: np.ndarray, pixel_size_m: float | None = None,
                  days_between: float | None = None) -> np.ndarray:
    """Farneback optical flow (the thesis' parameters) between consecutive forecast masks.

    Args:
        frames: (T, H, W) masked NDSI (0..1), NaN allowed (treated as 0).
        pixel_size_m, days_between: optional; when given they are checked
            to be positive, for callers that go on to :func:`flow_speed`.

    Returns:
        float32 (T - 1, 2, H, W): displacement from window k to k + 1 in px,
        channel 0 dx (right), channel 1 dy (down).
    """
    import cv2

    stack = np.asarray(frames, dtype=np.float32)
    if stack.ndim != 3 or stack.shape[0] < 2:
        raise GlacierFlowError("Optical flow needs at least two forecast windows.")
    for name, value in (("pixel size", pixel_size_m), ("time between windows", days_between)):
        if value is not None and not value > 0:
            raise GlacierFlowError(f"The {name} must be positive (got {value}).")
    # Masks in 0..1 scaled to 0..255: OpenCV's Farneback regularises for 8-bit intensities (see core/velocity/flow).
    scaled = np.nan_to_num(stack, nan=0.0) * 255.0
    out = np.empty((stack.shape[0] - 1, 2) + stack.shape[1:], dtype=np.float32)
    for index in range(stack.shape[0] - 1):
        flow = cv2.calcOpticalFlowFarneback(scaled[index], scaled[index + 1], None, FARNEBACK["pyr_scale"],
                                            FARNEBACK["levels"], FARNEBACK["winsize"], FARNEBACK["iterations"],
                                            FARNEBACK["poly_n"], FARNEBACK["poly_sigma"], FARNEBACK["flags"])
        out[index] = np.moveaxis(flow, -1, 0)
    return out


def flow_speed(flow_px: np.ndarray, pixel_size_m: float, days_between: float) -> np.ndarray:
    """Speed (m/yr) of a (..., 2, H, W) displacement in px over ``days_between`` days on ``pixel_size_m`` pixels."""
    if not pixel_size_m > 0 or not days_between > 0:
        raise GlacierFlowError("The pixel size and the time between windows must be positive.")
    magnitude = np.hypot(flow_px[..., 0, :, :], flow_px[..., 1, :, :])
    return (magnitude * pixel_size_m * DAYS_PER_YEAR / days_between).astype(np.float32)


def write_forecast_flow(path: str, flow_px: np.ndarray, grid: Grid, window_starts: list[datetime],
                        window_months: int, days_between: float | None = None) -> str:
    """Write :func:`forecast_flow` output as a COG: dx, dy (px) and speed (m/yr) per pair of windows.

    ``window_starts`` are the T windows the flow was computed between;
    ``days_between`` defaults to the days between consecutive window starts.
    """
    count = flow_px.shape[0]
    if len(window_starts) != count + 1:
        raise GlacierFlowError("Give the starts of all forecast windows: one more than the flow steps.")
    starts = [as_utc(s) for s in window_starts]
    bands, descriptions, units, band_metadata = [], [], [], []
    for index in range(count):
        days = days_between or (starts[index + 1] - starts[index]).total_seconds() / 86400.0
        pair = f"{window_label(starts[index], window_months)} -> {window_label(starts[index + 1], window_months)}"
        speed = flow_speed(flow_px[index], grid.pixel_size[0], days)
        for name, values, unit in (("dx", flow_px[index, 0], "px"), ("dy", flow_px[index, 1], "px"),
                                   ("speed", speed, "m/yr")):
            bands.append(values)
            descriptions.append(f"{name} {pair}")
            units.append(unit)
            band_metadata.append({"FROM_WINDOW_START": _iso(starts[index]), "TO_WINDOW_START": _iso(starts[index + 1]),
                                  "DAYS_BETWEEN": f"{days:.3f}"})
    metadata = {"PRODUCT": "GlacierFlow optical flow between NDSI forecast windows",
                "METHOD": "Farneback " + ", ".join(f"{k}={v}" for k, v in FARNEBACK.items()),
                "CONVENTION": "dx right, dy down (px); speed in m/yr"}
    return write_bands_cog(path, grid, bands, descriptions, units, band_metadata, metadata)


# Blue (no snow or ice) to white (snow): masked NDSI 0..1 with a stop at the 0.3 threshold.
NDSI_RAMP = ((0.0, "#08306b", "0 (no snow/ice)"), (0.3, "#2171b5", "0.3"), (0.5, "#6baed6", "0.5"),
             (0.7, "#c6dbef", "0.7"), (1.0, "#ffffff", "1 (snow)"))


def ndsi_style_text(band: int = 1) -> str:
    """QGIS .qml text: a blue-to-white pseudocolour ramp over masked NDSI 0..1 for ``band``."""
    from ..io.style import pseudocolor_qml

    return pseudocolor_qml(band, NDSI_RAMP, decimals=1)


def ndsi_style_qml(path: str, band: int = 1) -> str:
    """Write the NDSI style for the raster at ``path`` (beside it, same base name, .qml; or to ``path``
    itself if it ends in .qml) so QGIS loads the forecast styled; returns the .qml path."""
    target = path if path.lower().endswith(".qml") else os.path.splitext(path)[0] + ".qml"
    with open(target, "w", encoding="utf-8") as handle:
        handle.write(ndsi_style_text(band))
    return target
