"""Glacier velocity from one image pair: the end-to-end job behind ``glacierflow:velocity_pair``.

AOI grid -> both bands on it -> robust statistics -> per tile: Sobel
preprocessing, flow, median filter, forward-backward check -> blended strips
-> m/yr -> Cloud Optimized GeoTIFF + .qml style.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import GlacierFlowError
from ..feedback import Feedback, JobCancelled
from ..geo.grid import Grid, Window
from ..geo.gridspec import GridSpec, resolve_grid
from ..geo.outlines import GlacierOutlines
from ..io.cog import ProductWriter
from ..io.raster import BandSource
from ..io.style import nice_maximum, speed_style_qml, write_style_beside
from ..io.timestamps import Acquisition, acquisition_of, interval_days
from ..products import velocity as velocity_product
from ..products.velocity import GLACIER_BAND, PAIR_BANDS
from .convert import displacement_to_velocity, speed
from .flow import FlowEngine, create_engine, estimate_with_checks
from .plausibility import check_pair_inputs
from .preprocess import band_statistics, prepare_for_flow, texture_strength
from .tiling import StripAssembler, blend_weights, tile_rows

# min_texture (PairJob): RMS of the unit-spread Sobel gradients over 15 x 15 px below which a pixel
# is untrusted; 0.04 masks open water and cloud interiors on Landsat-8 pan (0.01-0.03 there) while
# keeping crevassed ice (0.1-0.2) and most firn (0.1).
MIN_TILE_VALID_FRACTION = 0.05  # tiles with less valid data carry too little texture to track
VALID_VOTE = 0.5  # a pixel is trusted when the blended tiles' trust is at least this


@dataclass
class PairJob:
    """What the user asked for. Paths are local files; dates are ISO-8601 strings or None.

    ``grid_spec`` asks for a CRS, pixel size (m) or bounds; ``grid`` is a job grid already resolved by the
    calling job (an annual or regional job gives every pair the same one) and wins over ``grid_spec``.
    """

    image_a: str
    image_b: str
    output: str
    band_a: int | None = None
    band_b: int | None = None
    date_a: str | None = None
    date_b: str | None = None
    outlines: str | None = None
    engine: str = "horn_schunck"
    tile_size: int = 256
    overlap: int = 64
    median_size: int = 9
    consistency_check: bool = True
    min_texture: float = 0.04
    engine_params: dict[str, Any] = field(default_factory=dict)
    grid_spec: GridSpec | None = None
    grid: Grid | None = None


@dataclass
class PairResult:
    """What the job produced and the figures worth logging."""

    output: str
    style: str
    grid: Grid
    acquisition_a: Acquisition
    acquisition_b: Acquisition
    interval_days: float
    engine: str
    valid_fraction: float
    median_speed: float
    p95_speed: float
    seconds: float
    metadata: dict[str, str]


def run_pair_job(job: PairJob, feedback: Feedback | None = None) -> PairResult:
    """Run the whole pair job; on error or cancel no output file is left behind."""
    feedback = feedback or Feedback()
    started = time.perf_counter()
    source_a = BandSource.open(job.image_a, job.band_a)
    source_b = BandSource.open(job.image_b, job.band_b)
    acq_a = acquisition_of(job.image_a, source_a.dataset, job.date_a)
    acq_b = acquisition_of(job.image_b, source_b.dataset, job.date_b)
    days = interval_days(acq_a, acq_b)
    feedback.info(f"Image A {acq_a.time:%Y-%m-%d %H:%M:%S}Z ({acq_a.source}), image B "
                  f"{acq_b.time:%Y-%m-%d %H:%M:%S}Z ({acq_b.source}): {days:.4f} days apart")
    grid = job.grid or resolve_grid(job.grid_spec, images=[source_a.grid, source_b.grid])
    check_pair_inputs(source_a.grid, source_b.grid, grid, acq_a, acq_b, days, feedback, job.outlines)
    feedback.info(f"Common grid: {grid.width} x {grid.height} px at {grid.pixel_size[0]:g} m")
    stats_a = band_statistics(sample_windows(source_a, grid), "Image A")
    stats_b = band_statistics(sample_windows(source_b, grid), "Image B")
    outlines = GlacierOutlines(job.outlines, grid.crs_wkt) if job.outlines else None
    engine = create_engine(job.engine, **job.engine_params)
    engine_metadata = _describe_engine(engine, feedback)
    bands = PAIR_BANDS + ([GLACIER_BAND] if outlines else [])
    with ProductWriter(job.output, grid, bands) as writer:
        summary = _track_tiles(job, grid, (source_a, source_b), (stats_a, stats_b), engine,
                               days, outlines, writer, feedback)
        metadata = {**_metadata(job, acq_a, acq_b, days, summary), **engine_metadata}
        writer.finish(metadata)
    style = write_style_beside(job.output, speed_style_qml(nice_maximum(summary["p95_speed"])))
    seconds = time.perf_counter() - started
    feedback.info(f"Done in {seconds:.1f} s: {summary['valid_fraction'] * 100:.1f} % of pixels trusted, "
                  f"median speed {summary['median_speed']:.1f} m/yr, 95th percentile {summary['p95_speed']:.1f} m/yr")
    return PairResult(job.output, style, grid, acq_a, acq_b, days, job.engine, summary["valid_fraction"],
                      summary["median_speed"], summary["p95_speed"], seconds, metadata)


def _describe_engine(engine: object, feedback: Feedback) -> dict[str, str]:
    """Log what runs the flow and return it as product metadata.

    Engines with a model (RAFT) tell which execution provider onnxruntime
    really used and which model version: both decide what the numbers mean,
    and whether a GPU was used is otherwise invisible. Classical engines
    have no ``describe`` and add nothing.
    """
    describe = getattr(engine, "describe", None)
    if not callable(describe):
        return {}
    metadata = {str(key): str(value) for key, value in describe().items()}
    summary = getattr(engine, "summary", None)
    line = summary() if callable(summary) else (
        f"{getattr(engine, 'name', 'engine')} on {metadata.get('ENGINE_PROVIDER', 'an unknown provider')}")
    feedback.info(f"Flow engine: {line}")
    for note in getattr(engine, "provider_notes", ()):
        feedback.warning(note)
    return metadata


def sample_windows(source: BandSource, grid: Grid, count: int = 4, size: int = 192) -> list[np.ndarray]:
    """Full-resolution windows spread over the grid, for robust statistics at bounded cost."""
    width, height = min(size, grid.width), min(size, grid.height)
    cols = np.linspace(0, grid.width - width, count).astype(int)
    rows = np.linspace(0, grid.height - height, count).astype(int)
    return [source.read(grid.window_grid(Window(int(c), int(r), width, height)))
            for r in sorted(set(rows)) for c in sorted(set(cols))]


def _track_tiles(job: PairJob, grid: Grid, sources: tuple, stats: tuple, engine: FlowEngine, days: float,
                 outlines: GlacierOutlines | None, writer: ProductWriter, feedback: Feedback) -> dict[str, float]:
    rows_of_tiles = tile_rows(grid.height, grid.width, job.tile_size, job.overlap)
    total = sum(len(r) for r in rows_of_tiles)
    assembler = StripAssembler(grid.width, ("dx", "dy", "trust"))
    tally = _Tally()
    done = 0
    for index, row in enumerate(rows_of_tiles):
        for window in row:
            if feedback.is_cancelled():
                raise JobCancelled("Cancelled by the user")
            values = _track_one_tile(job, grid, window, sources, stats, engine)
            if values is not None:
                assembler.add(window, values, blend_weights(window.height, window.width, job.overlap))
            done += 1
            feedback.progress(100.0 * done / total)
        next_top = rows_of_tiles[index + 1][0].row_off if index + 1 < len(rows_of_tiles) else grid.height
        for top, strip in assembler.release(next_top):
            writer.write_rows(top, _strip_product(strip, grid, top, days, outlines, tally))
        for source in sources:
            source.drop_cache()
    return tally.summary()


def prepared_tile(grid: Grid, window: Window, sources: tuple, stats: tuple
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both images' flow inputs on one tile: (Sobel A (C, h, w), Sobel B, bool (h, w) where both have data).

    One extra pixel is read around the tile for Sobel's 3x3 support, so tile edges match their neighbours.
    Used by the velocity job and by RAFT fine-tuning (labels computed exactly as the product is).
    """
    margin = 1
    padded = Window(window.col_off - margin, window.row_off - margin, window.width + 2 * margin,
                    window.height + 2 * margin)
    inner = (slice(margin, -margin), slice(margin, -margin))
    prepared = []
    for source, band_stats in zip(sources, stats):
        gradients, valid = prepare_for_flow(source.read(grid.window_grid(padded)), band_stats)
        prepared.append((gradients[(slice(None),) + inner], valid[inner]))
    (grad_a, valid_a), (grad_b, valid_b) = prepared
    return grad_a, grad_b, valid_a & valid_b


def _track_one_tile(job: PairJob, grid: Grid, window: Window, sources: tuple, stats: tuple,
                    engine: FlowEngine) -> dict[str, np.ndarray] | None:
    """dx, dy (px) and trust (0/1) for one tile, NaN where either image has no data."""
    grad_a, grad_b, data = prepared_tile(grid, window, sources, stats)
    if data.mean() < MIN_TILE_VALID_FRACTION:
        return None
    flow, consistent = estimate_with_checks(engine, grad_a, grad_b, median_size=job.median_size,
                                            check_consistency=job.consistency_check)
    textured = np.minimum(texture_strength(grad_a), texture_strength(grad_b)) >= job.min_texture
    trust = (consistent & textured & np.isfinite(flow.dx) & np.isfinite(flow.dy)).astype(np.float32)
    nan = np.float32(np.nan)
    return {"dx": np.where(data, np.nan_to_num(flow.dx), nan),
            "dy": np.where(data, np.nan_to_num(flow.dy), nan),
            "trust": np.where(data, trust, nan)}


class _Tally:
    """Running counts for the job summary, without keeping the scene in memory."""

    def __init__(self) -> None:
        self.pixels = 0
        self.trusted = 0
        self.speeds: list[np.ndarray] = []

    def add(self, speed_values: np.ndarray, data: np.ndarray) -> None:
        self.pixels += int(data.sum())
        finite = speed_values[np.isfinite(speed_values)]
        self.trusted += int(finite.size)
        step = max(1, finite.size // 2000)  # a bounded, evenly spread subsample for percentiles
        self.speeds.append(finite[::step].copy())  # a copy: a view would keep the whole strip alive

    def summary(self) -> dict[str, float]:
        values = np.concatenate(self.speeds) if self.speeds else np.zeros(0)
        if values.size == 0:
            raise GlacierFlowError(
                "No pixel could be tracked between the two images: check that they show the same "
                "glacier without cloud or snow cover, and that the dates are right.")
        return {"valid_fraction": self.trusted / max(self.pixels, 1),
                "median_speed": float(np.median(values)),
                "p95_speed": float(np.percentile(values, 95))}


def _strip_product(strip: dict[str, np.ndarray], grid: Grid, top: int, days: float,
                   outlines: GlacierOutlines | None, tally: _Tally) -> dict[str, np.ndarray]:
    data = np.isfinite(strip["trust"])
    trusted = data & (strip["trust"] >= VALID_VOTE)
    vx, vy = displacement_to_velocity(strip["dx"], strip["dy"], grid.transform, days)
    vx[~trusted] = np.nan
    vy[~trusted] = np.nan
    product = {"vx": vx, "vy": vy, "speed": speed(vx, vy),
               "valid": np.where(data, trusted.astype(np.float32), np.float32(np.nan))}
    if outlines is not None:
        strip_grid = grid.window_grid(Window(0, top, grid.width, data.shape[0]))
        product["glacier"] = outlines.mask(strip_grid).astype(np.float32)
    tally.add(product["speed"], data)
    return product


def _metadata(job: PairJob, acq_a: Acquisition, acq_b: Acquisition, days: float,
              summary: dict[str, float]) -> dict[str, str]:
    return {
        velocity_product.KIND: velocity_product.PAIR,
        velocity_product.IMAGE_A: os.path.basename(job.image_a),
        velocity_product.IMAGE_B: os.path.basename(job.image_b),
        velocity_product.ACQUISITION_A: acq_a.time.strftime(velocity_product.TIME_FORMAT),
        velocity_product.ACQUISITION_B: acq_b.time.strftime(velocity_product.TIME_FORMAT),
        "ACQUISITION_A_SOURCE": acq_a.source,
        "ACQUISITION_B_SOURCE": acq_b.source,
        velocity_product.INTERVAL_DAYS: f"{days:.6f}",
        velocity_product.ENGINE: job.engine,
        "TILE_SIZE_PX": str(job.tile_size),
        "OVERLAP_PX": str(job.overlap),
        "MEDIAN_FILTER_PX": str(job.median_size),
        "CONSISTENCY_CHECK": "forward-backward" if job.consistency_check else "none",
        "MIN_TEXTURE": f"{job.min_texture:g}",
        "VALID_FRACTION": f"{summary['valid_fraction']:.4f}",
        "MEDIAN_SPEED_M_PER_YR": f"{summary['median_speed']:.3f}",
        "P95_SPEED_M_PER_YR": f"{summary['p95_speed']:.3f}",
        velocity_product.UNITS: velocity_product.UNITS_TEXT,
    }
