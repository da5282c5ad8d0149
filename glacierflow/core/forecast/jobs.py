"""The forecasting jobs behind the Processing algorithms: an NDSI series for an area, and a forecast.

``run_ndsi_series_job``: scenes of any imagery source over the area (a local folder of Landsat
Collection-2 Level-2 ``*_SR_B3`` / ``*_SR_B6`` files, Sentinel-2 ``*_B03`` / ``*_B11``, or a remote
source offering ``green`` and ``swir1``) -> green and SWIR1 reflectance on the job grid ->
:func:`.series.build_ndsi_series` (gap filling, ECC, NDSI, mask, windows, interpolation) -> a COG with
one band per window (WINDOW_START / WINDOW_END tags) that :func:`..products.ndsi.read_ndsi_series` reads back.

``run_forecast_job``: the last ``n_in`` windows of a series -> an ONNX forecaster -> the next ``n_out``
windows as a styled COG, with optical flow between consecutive forecast masks. When the series is long
enough the same model is also scored on a hindcast (its last ``n_out`` windows forecast from the
``n_in`` before) against persistence and seasonal climatology, so the log says how much to trust it here.
"""
from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np

from ..errors import GlacierFlowError
from ..feedback import Feedback, JobCancelled, StageFeedback
from ..geo.grid import Grid
from ..geo.gridspec import GridSpec, resolve_grid
from ..io.atomic import remove_quietly
from ..products.ndsi import read_ndsi_series, write_ndsi_series
from .series import NdsiSeries, add_months, build_ndsi_series, landsat_reflectance

NDSI_PIXEL_SIZE_M = 30.0   # Landsat green and SWIR1
# Local file names: suffix -> (band, scaling). Landsat C2 L2 DN -> reflectance; Sentinel-2 L2A DN / 10000
# (a local file does not say its processing baseline, so the +1000 DN offset of baseline >= 04.00 must
# already be removed; the remote sources remove it from the item's metadata).
LOCAL_BANDS: tuple[tuple[str, str, str], ...] = (
    ("_SR_B3", "green", "landsat_c2"), ("_SR_B6", "swir1", "landsat_c2"),
    ("_B03", "green", "sentinel2"), ("_B11", "swir1", "sentinel2"),
    ("_green", "green", "reflectance"), ("_swir1", "swir1", "reflectance"),
)


@dataclass
class NdsiSeriesJob:
    """An NDSI series for an area.

    Attributes:
        output: the series COG (one band per window).
        source: an imagery source object (see ``core.imagery.make_source``).
        area: the polygon (``core.imagery.Area``); required for remote sources, optional for a local folder
            (then the first file's grid).
        start, end: acquisition time limits (UTC); months: calendar months kept (None: all, as the papers).
        max_cloud: largest scene cloud cover (%).
        window_months: averaging window, months; threshold: NDSI snow threshold.
        align: ECC motion ("translation", "euclidean", "affine") or None.
        grid_spec: the job grid's CRS and pixel size (m); its pixel size None: 30 m (Landsat green and
            SWIR1), its CRS None: the area's UTM zone (polar stereographic beyond 72 degrees).
        scenes: scenes already searched (e.g. filtered by valid fraction); None: search with the fields above.
    """

    output: str
    source: Any
    area: Any | None = None
    start: datetime | None = None
    end: datetime | None = None
    months: set[int] | None = None
    max_cloud: float | None = None
    window_months: int = 3
    threshold: float = 0.3
    align: str | None = "translation"
    grid_spec: GridSpec = field(default_factory=GridSpec)
    scenes: list[Any] | None = None


@dataclass
class SceneBands:
    """One acquisition with its green and SWIR1 scenes and how to turn their values into reflectance."""

    time: datetime
    green: Any
    swir1: Any
    scaling: str          # "landsat_c2", "sentinel2", "reflectance" or "remote"


def pair_bands(scenes: Sequence[Any]) -> tuple[list[SceneBands], list[str]]:
    """Acquisitions with both green and SWIR1 (remote scenes offer both; local files pair by name).

    Returns:
        (acquisitions sorted by time, ids of scenes that could not be paired).
    """
    paired: list[SceneBands] = []
    local: dict[str, dict[str, Any]] = {}
    unpaired: list[str] = []
    for scene in scenes:
        if {"green", "swir1"} <= set(scene.bands):
            paired.append(SceneBands(scene.time, scene, scene, "remote"))
            continue
        for suffix, band, scaling in LOCAL_BANDS:
            if scene.id.upper().endswith(suffix.upper()):
                entry = local.setdefault(scene.id[: -len(suffix)], {"scaling": scaling})
                entry[band] = scene
                break
        else:
            unpaired.append(scene.id)
    for _key, entry in local.items():
        if "green" in entry and "swir1" in entry:
            paired.append(SceneBands(entry["green"].time, entry["green"], entry["swir1"], entry["scaling"]))
        else:
            unpaired.extend(s.id for b, s in entry.items() if b != "scaling")
    return sorted(paired, key=lambda p: p.time), unpaired


def to_reflectance(values: np.ndarray, scaling: str) -> np.ndarray:
    """Surface reflectance (0-1, NaN = no data) from a fetched band; ``scaling`` from :class:`SceneBands`."""
    if scaling == "landsat_c2":
        return landsat_reflectance(np.where(np.isnan(values), 0, values))
    if scaling == "sentinel2":
        return np.where(values > 0, values / 10000.0, np.nan).astype(np.float32)
    return np.asarray(values, dtype=np.float32)


def job_grid(job: NdsiSeriesJob, first: SceneBands, feedback: Feedback) -> Grid:
    """The area's grid (30 m unless the job asks for another pixel size); without an area, a local file's."""
    if job.area is not None:
        spec = replace(job.grid_spec, pixel_size=job.grid_spec.pixel_size or NDSI_PIXEL_SIZE_M)
        return resolve_grid(spec, area=job.area, feedback=feedback)
    if first.scaling == "remote":
        raise GlacierFlowError("A remote imagery source needs an area: draw or choose the glacier polygon.")
    from ..io.raster import BandSource

    return BandSource.open(first.green.href, first.green.band).grid


def run_ndsi_series_job(job: NdsiSeriesJob, feedback: Feedback | None = None) -> NdsiSeries:
    """Search, fetch, build and write the series; returns it (``.grid`` set). No output on error or cancel."""
    feedback = feedback or Feedback()
    scenes = job.scenes if job.scenes is not None else job.source.search(
        job.area, job.start, job.end, months=job.months, max_cloud=job.max_cloud)
    acquisitions, unpaired = pair_bands(scenes)
    if unpaired:
        feedback.info(f"{len(unpaired)} scene(s) without a green/SWIR1 partner were skipped (e.g. {unpaired[0]}); "
                      "local files must be named *_SR_B3/*_SR_B6 (Landsat), *_B03/*_B11 (Sentinel-2) or "
                      "*_green/*_swir1.")
    if len(acquisitions) < 2:
        raise GlacierFlowError(f"{len(acquisitions)} acquisition(s) with both green and SWIR1 found: an NDSI series "
                               "needs many; widen the dates or months, or check the file names.")
    grid = job_grid(job, acquisitions[0], feedback)
    feedback.info(f"{len(acquisitions)} acquisitions from {acquisitions[0].time:%Y-%m-%d} to "
                  f"{acquisitions[-1].time:%Y-%m-%d}; grid {grid.width} x {grid.height} px at {grid.pixel_size[0]:g} m")
    green = np.empty((len(acquisitions),) + grid.shape, np.float32)
    swir1 = np.empty_like(green)
    for index, acquisition in enumerate(acquisitions):
        if feedback.is_cancelled():
            raise JobCancelled("Cancelled by the user")
        green[index] = to_reflectance(_fetch(job.source, acquisition.green, grid, acquisition.scaling, "green"),
                                      acquisition.scaling)
        swir1[index] = to_reflectance(_fetch(job.source, acquisition.swir1, grid, acquisition.scaling, "swir1"),
                                      acquisition.scaling)
        feedback.progress(40.0 * (index + 1) / len(acquisitions))
    series = build_ndsi_series([a.time for a in acquisitions], green, swir1, job.window_months, job.threshold,
                               job.align, StageFeedback(feedback, 40.0, 95.0), grid=grid)
    write_ndsi_series(job.output, series)
    feedback.info(f"{len(series.times)} windows of {series.window_months} months "
                  f"({len(series.filled_windows)} interpolated) -> {job.output}")
    return series


def _fetch(source: Any, scene: Any, grid: Grid, scaling: str, band: str) -> np.ndarray:
    return source.fetch(scene, grid, band) if scaling == "remote" else source.fetch(scene, grid)


# ------------------------------------------------------------------------------------------------ forecast
@dataclass
class ForecastJob:
    """A forecast of the next windows of an NDSI series.

    Attributes:
        series: the series COG (from :func:`..products.ndsi.write_ndsi_series`).
        model: a shipped forecaster name (``core.forecast.onnx_forecaster.list_shipped_forecasters``) or an
            .onnx path.
        output: the forecast COG (one band per future window).
        flow_output: optional COG of Farneback flow between consecutive forecast windows (px and m/yr).
        stride: px between patch origins (at most the patch size; smaller = smoother, slower).
        device: "auto", "cpu" or "cuda".
    """

    series: str
    model: str
    output: str
    flow_output: str | None = None
    stride: int = 10
    device: str = "auto"


@dataclass
class ForecastResult:
    """What a forecast wrote and how the model scored on the series' own hindcast."""

    output: str
    flow_output: str | None
    window_starts: list[datetime]
    provider: str
    model_summary: str
    hindcast: dict[str, dict[str, float]] = field(default_factory=dict)


def resolve_model(model: str) -> str:
    """The .onnx path of a shipped forecaster name, or ``model`` itself when it is a file."""
    from .onnx_forecaster import list_shipped_forecasters

    shipped = list_shipped_forecasters()
    if model in shipped:
        return shipped[model]
    if os.path.isfile(model):
        return model
    raise GlacierFlowError(f"Forecaster '{model}' not found: choose one of {', '.join(shipped) or '(none shipped)'} "
                           "or an exported .onnx file.")


def run_forecast_job(job: ForecastJob, feedback: Feedback | None = None) -> ForecastResult:
    """Forecast, score the hindcast, write the products; nothing is left behind on error or cancel."""
    from ..products.ndsi import forecast_flow, ndsi_style_qml, write_forecast_flow, write_forecast_raster
    from .onnx_forecaster import OnnxForecaster

    feedback = feedback or Feedback()
    series = read_ndsi_series(job.series)
    forecaster = OnnxForecaster(resolve_model(job.model), device=job.device)
    card = forecaster.card
    feedback.info(f"Forecaster: {forecaster.summary()}")
    for note in forecaster.provider_notes:
        feedback.warning(note)
    _check_compatible(series, card)
    hindcast = score_hindcast(series, forecaster, job.stride, StageFeedback(feedback, 0.0, 45.0))
    for line in hindcast_lines(hindcast, card):
        feedback.info(line)
    forecast = forecaster.forecast_scene(series.frames[-card.n_in:], job.stride, StageFeedback(feedback, 45.0, 95.0))
    check_forecast_values(forecast, series.frames[-1], card, feedback)
    starts = [add_months(series.times[-1], series.window_months * (k + 1)) for k in range(card.n_out)]
    card_entries = {"name": card.name, "architecture": card.architecture, "version": card.version,
                    "provider": forecaster.provider, "input_windows": ", ".join(
                        f"{t:%Y-%m-%d}" for t in series.times[-card.n_in:])}
    card_entries.update({f"hindcast_{model}_{metric}": f"{value:.5f}" for model, scores in hindcast.items()
                         for metric, value in scores.items()})
    written: list[str] = []
    grid = series.grid
    if grid is None:
        raise GlacierFlowError(f"{job.series} has no grid: give a series written by 'NDSI series for an area'.")
    try:
        written.append(write_forecast_raster(job.output, forecast, grid, starts, series.window_months,
                                             card_entries))
        ndsi_style_qml(job.output)
        if job.flow_output:
            flow = forecast_flow(np.nan_to_num(np.concatenate([series.frames[-1:], forecast])))
            written.append(write_forecast_flow(job.flow_output, flow, grid, [series.times[-1]] + starts,
                                               series.window_months))
    except BaseException:
        for path in written:
            for target in (path, os.path.splitext(path)[0] + ".qml"):
                remove_quietly(target)
        raise
    feedback.progress(100.0)
    feedback.info(f"Forecast of {len(starts)} windows from {starts[0]:%Y-%m-%d} -> {job.output}")
    return ForecastResult(job.output, job.flow_output, starts, forecaster.provider, forecaster.summary(), hindcast)


RANGE_TOLERANCE = 1e-3  # NDSI units: float rounding of a model that clamps to its range


def check_forecast_values(forecast: np.ndarray, last_frame: np.ndarray, card: Any, feedback: Feedback) -> None:
    """Refuse a forecast that is all NaN, or has values outside the model card's ``output_range``, before it
    is written; warn when it lost more pixels than the series had."""
    finite = np.isfinite(forecast)
    if not finite.any():
        raise GlacierFlowError(
            f"The forecaster '{card.name}' returned no value (all NaN): the model file is broken or does not fit "
            "this series. Choose another model, or re-export it; nothing was written.")
    output_range = card.raw.get("output_range") if isinstance(getattr(card, "raw", None), dict) else None
    if output_range:
        low, high = float(output_range[0]), float(output_range[1])
        values = forecast[finite]
        lowest, highest = float(values.min()), float(values.max())
        if lowest < low - RANGE_TOLERANCE or highest > high + RANGE_TOLERANCE:
            raise GlacierFlowError(
                f"The forecaster '{card.name}' returned values from {lowest:.3g} to {highest:.3g}, outside its card's "
                f"range {low:g}-{high:g}: its output cannot be trusted. Choose another model, or re-export it; "
                "nothing was written.")
    had_data = np.isfinite(last_frame)
    lost = float(np.mean(~finite[:, had_data])) if had_data.any() else 0.0
    if lost > 0.01:
        feedback.warning(f"The forecast has no value on {100.0 * lost:.1f} % of the pixels where the series has data.")


def _check_compatible(series: NdsiSeries, card: Any) -> None:
    if series.window_months != card.window_months:
        raise GlacierFlowError(f"The series has {series.window_months}-month windows but the model was trained on "
                               f"{card.window_months}-month windows: build the series with {card.window_months}.")
    if len(series.times) < card.n_in:
        raise GlacierFlowError(f"The series has {len(series.times)} windows; the model needs the last {card.n_in}: "
                               "widen the date range.")
    if abs(series.threshold - card.threshold) > 1e-6:
        raise GlacierFlowError(f"The series uses NDSI threshold {series.threshold:g} but the model was trained with "
                               f"{card.threshold:g}: build the series with {card.threshold:g}.")


def score_hindcast(series: NdsiSeries, forecaster: Any, stride: int, feedback: Feedback
                   ) -> dict[str, dict[str, float]]:
    """MSE and MAE of the model, persistence and climatology forecasting the series' last ``n_out`` windows
    from the ``n_in`` before (unitless NDSI); empty when the series is too short."""
    from .baselines import climatology
    from .metrics import mae, mse

    card = forecaster.card
    total = len(series.times)
    if total < card.n_in + card.n_out:
        return {}
    first_target = total - card.n_out
    inputs = series.frames[first_target - card.n_in:first_target]
    truth = series.frames[first_target:]
    predictions = {
        "model": forecaster.forecast_scene(inputs, stride, feedback),
        "persistence": np.repeat(inputs[-1:], card.n_out, axis=0),
        "climatology": climatology(series.frames, list(range(first_target, total)), series.windows_per_year,
                                   last_known=first_target - 1),
    }
    return {name: {"mse": mse(p, truth), "mae": mae(p, truth)} for name, p in predictions.items()}


def hindcast_lines(hindcast: dict[str, dict[str, float]], card: Any) -> list[str]:
    """The log lines for the hindcast and for the model card's own test scores."""
    lines = []
    if hindcast:
        lines.append("Hindcast on this series (its last windows forecast from the windows before; NDSI units):")
        for name, scores in hindcast.items():
            lines.append(f"  {name:12s} MSE {scores['mse']:.4f}  MAE {scores['mae']:.4f}")
        reference = hindcast["persistence"]["mse"]
        if reference > 0:
            lines.append(f"  skill vs persistence: {100.0 * (1.0 - hindcast['model']['mse'] / reference):+.1f} % MSE")
    else:
        lines.append(f"The series is shorter than {card.n_in + card.n_out} windows: no hindcast score.")
    metrics = card.raw.get("metrics") if isinstance(getattr(card, "raw", None), dict) else None
    if metrics:
        lines.append(f"Model card test scores: {_short(metrics)}")
    return lines


def _short(value: Any) -> str:
    text = re.sub(r"\s+", " ", str(value))
    return text if len(text) < 400 else text[:400] + " ..."


