"""The NDSI products, one owner: the NDSI series, the forecast raster, the optical flow between forecast
windows, and their QGIS style.

Rasters are float32 Cloud Optimized GeoTIFFs with NaN as nodata, one band per window, each band named
after its window and tagged WINDOW_START / WINDOW_END (ISO-8601 UTC); the series' bands also say whether
the window was interpolated (FILLED). They go through the one COG writer (:mod:`..io.cog`), so a failure
leaves no partial product.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np

from ..errors import GlacierFlowError
from ..forecast.series import NdsiSeries, add_months, as_utc
from ..geo.grid import Grid
from ..io.atomic import write_text
from ..io.cog import BandSpec, write_bands
from ..io.style import pseudocolor_qml, write_style_beside
from ..io.timestamps import DAYS_PER_YEAR

PRODUCT_SERIES = "GlacierFlow NDSI series"

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


def _write_bands(path: str, grid: Grid, bands: Sequence[np.ndarray], descriptions: Sequence[str],
                 units: Sequence[str], band_metadata: Sequence[dict[str, str]], metadata: dict[str, str]) -> str:
    """Float32 bands on ``grid`` as a COG through the one COG writer; each band named by its description."""
    specs = [BandSpec(text, text, unit) for text, unit in zip(descriptions, units)]
    return write_bands(path, grid, bands, specs, metadata, band_metadata)


def write_ndsi_series(path: str, series: NdsiSeries) -> str:
    """The series as a COG: band k = window k ("NDSI YYYY-MM-DD..YYYY-MM-DD", WINDOW_START/END, FILLED)."""
    if series.grid is None:
        raise GlacierFlowError("The NDSI series has no grid: it cannot be written as a raster.")
    descriptions = [f"NDSI {window_label(t, series.window_months)}" for t in series.times]
    band_metadata = [{"WINDOW_START": _iso(t), "WINDOW_END": _iso(add_months(t, series.window_months)),
                      "FILLED": "yes" if i in series.filled_windows else "no"} for i, t in enumerate(series.times)]
    metadata = {"PRODUCT": PRODUCT_SERIES, "WINDOW_MONTHS": str(series.window_months),
                "NDSI_THRESHOLD": f"{series.threshold:g}",
                "QUANTITY": "window mean of masked NDSI (NDSI where >= threshold, else 0)"}
    _write_bands(path, series.grid, list(series.frames), descriptions, ["unitless"] * len(series.times),
                 band_metadata, metadata)
    ndsi_style_qml(path, band=len(series.times))
    return path


def read_ndsi_series(path: str) -> NdsiSeries:
    """An NDSI series written by :func:`write_ndsi_series` (or any float raster with WINDOW_START band tags)."""
    from ..io.raster import grid_of, open_raster
    from ..io.timestamps import parse_datetime

    dataset = open_raster(path)
    grid = grid_of(dataset, path)
    frames, times, filled = [], [], []
    for index in range(1, dataset.RasterCount + 1):
        band = dataset.GetRasterBand(index)
        start = band.GetMetadataItem("WINDOW_START")
        if not start:
            raise GlacierFlowError(f"Band {index} of {path} has no WINDOW_START tag: give a series written by "
                                   "'NDSI series for an area'.")
        times.append(as_utc(parse_datetime(start)))
        frames.append(band.ReadAsArray().astype(np.float32))
        if band.GetMetadataItem("FILLED") == "yes":
            filled.append(index - 1)
    window_months = int(dataset.GetMetadataItem("WINDOW_MONTHS") or _months_between(times))
    threshold = float(dataset.GetMetadataItem("NDSI_THRESHOLD") or 0.3)
    dataset = None
    return NdsiSeries(np.stack(frames), times, window_months, threshold, grid, filled)


def _months_between(times: Sequence[datetime]) -> int:
    if len(times) < 2:
        return 3
    return (times[1].year - times[0].year) * 12 + times[1].month - times[0].month


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
    return _write_bands(path, grid, list(stack), descriptions, ["unitless"] * len(starts), band_metadata,
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
        flow = cv2.calcOpticalFlowFarneback(
            scaled[index], scaled[index + 1], None, float(FARNEBACK["pyr_scale"]), int(FARNEBACK["levels"]),
            int(FARNEBACK["winsize"]), int(FARNEBACK["iterations"]), int(FARNEBACK["poly_n"]),
            float(FARNEBACK["poly_sigma"]), int(FARNEBACK["flags"]))
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
    return _write_bands(path, grid, bands, descriptions, units, band_metadata, metadata)


# Blue (no snow or ice) to white (snow): masked NDSI 0..1 with a stop at the 0.3 threshold.
NDSI_RAMP = ((0.0, "#08306b", "0 (no snow/ice)"), (0.3, "#2171b5", "0.3"), (0.5, "#6baed6", "0.5"),
             (0.7, "#c6dbef", "0.7"), (1.0, "#ffffff", "1 (snow)"))


def ndsi_style_text(band: int = 1) -> str:
    """QGIS .qml text: a blue-to-white pseudocolour ramp over masked NDSI 0..1 for ``band``."""
    return pseudocolor_qml(band, NDSI_RAMP, decimals=1)


def ndsi_style_qml(path: str, band: int = 1) -> str:
    """Write the NDSI style for the raster at ``path`` (beside it, same base name, .qml; or to ``path``
    itself if it ends in .qml) so QGIS loads the forecast styled; returns the .qml path."""
    if path.lower().endswith(".qml"):
        return write_text(path, ndsi_style_text(band))
    return write_style_beside(path, ndsi_style_text(band))
