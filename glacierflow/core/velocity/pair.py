"""Glacier velocity from one image pair: the end-to-end job behind ``glacierflow:velocity_pair``.

AOI grid -> both bands on it -> robust statistics -> per block (full-resolution blocks read with wide
margins, tracked in a thread pool): the engine's preprocessing, forward and backward flow,
forward-backward check, median filter and trust once on the block (:mod:`.tracking`) -> full-width
each block's own pixels -> m/yr -> written into the product at once -> Cloud Optimized GeoTIFF + .qml style.

Blocks are a memory device, not an accuracy limit: each sees ``margin`` px of context on every side
(wider than the largest motion and the engines' pyramid support) and only its own pixels are kept, so
no blending is needed and the result matches the whole scene. RAFT keeps its 256 px tiles inside a block.
"""
from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import GlacierFlowError
from ..feedback import Feedback, JobCancelled
from ..geo.grid import Grid, Window
from ..geo.gridspec import GridSpec, resolve_grid
from ..geo.outlines import GlacierOutlines
from ..io.atomic import remove_quietly, temporary_path
from ..io.cog import ProductWriter
from ..io.raster import BandSource, gdal_cache_limit
from ..io.style import nice_maximum, speed_style_qml, write_style_beside
from ..io.timestamps import Acquisition, acquisition_of, interval_days
from ..products import velocity as velocity_product
from ..products.velocity import GLACIER_BAND, PAIR_BANDS
from .convert import displacement_to_velocity, speed
from .flow import MOST_ACCURATE_ENGINE, FlowEngine, create_engine
from .flow.ncc import search_from_speed
from .plausibility import check_pair_inputs
from .preprocess import band_statistics, check_mode, default_preprocessing, prepare_for_flow
from .tracking import MIN_TEXTURE_SNR, MIN_VALID_FRACTION, TrackedBlock, TrackSettings, track_block

MIN_TILE_VALID_FRACTION = MIN_VALID_FRACTION  # RAFT fine-tuning skips label tiles with less valid data
# px of a block with its margins: bounds each worker's memory (measured peak growth of one block: hybrid
# ~210 B/px, dis ~250 B/px, so two workers hold ~0.7 GB and a 10k x 10k job stays under 1 GB).
MAX_BLOCK_PIXELS = 1_500_000
MAX_BLOCK_WIDTH = 2048  # px of a block's own columns at most (blocks are about square below that)
# Estimated peak bytes per block pixel while a block is tracked (inputs, both flows, the engine's work
# arrays, measured as above); sizes the thread pool against the job's memory budget.
BYTES_PER_PIXEL = {"hybrid": 220, "ncc": 220, "raft": 220}
DEFAULT_BYTES_PER_PIXEL = 250
# Rows of blocks a scene is cut into at least: work for two threads. Fixed, not the core count, so that the
# same pair gives the same product on any machine. Every engine's heavy work frees the GIL (OpenCV, numpy's
# whole-array operations, onnxruntime): ncc and horn_schunck, once run one block at a time, used 1.89 and
# 1.86 cores on threads with bit-identical Yahtse products (bench/RESULTS.md).
PARALLEL_ROWS = 2
GDAL_CACHE_MB = 64  # GDAL block cache while the job runs (restored after): the COG writer needs little


@dataclass
class PairJob:
    """What the user asked for. Paths are local files; dates are ISO-8601 strings or None.

    ``grid_spec`` asks for a CRS, pixel size (m) or bounds; ``grid`` is a job grid already resolved by the
    calling job (an annual or regional job gives every pair the same one) and wins over ``grid_spec``.

    ``engine`` defaults to the most accurate measured engine (``hybrid``); ``preprocessing`` None uses
    the engine's measured default (``preprocess.DEFAULT_PREPROCESSING``). ``median_size`` (px, 15: every
    engine measured more accurate than with 9) and ``min_texture_snr`` (texture over image noise) set
    the post-processing; ``margin`` (px) is the context read around each block, ``workers`` the
    threads (0: the CPU count, bounded by ``memory_mb``, the job's working-memory budget in MB).
    ``tile_size`` / ``overlap`` (px) are RAFT's tiles. ``min_texture`` is the Sobel-gradient RMS floor
    RAFT fine-tuning uses for its labels; the pair job's texture test is ``min_texture_snr``.
    ``correct_offset`` removes the median stable-ground velocity (co-registration offset) with
    ``validation.stable_ground``: stable ground is ``stable_areas`` (polygons, any CRS) or, without
    them, everything off ``outlines``. ``max_speed`` (m/yr, 0: the engine's default) is the fastest speed
    expected: it sets the NCC engine's search range for the pair's interval and pixel size.
    """

    image_a: str
    image_b: str
    output: str
    band_a: int | None = None
    band_b: int | None = None
    date_a: str | None = None
    date_b: str | None = None
    outlines: str | None = None
    engine: str = MOST_ACCURATE_ENGINE
    tile_size: int = 256
    overlap: int = 64
    median_size: int = 15
    consistency_check: bool = True
    min_texture: float = 0.04
    engine_params: dict[str, Any] = field(default_factory=dict)
    grid_spec: GridSpec | None = None
    grid: Grid | None = None
    preprocessing: str | None = None
    min_texture_snr: float = MIN_TEXTURE_SNR
    margin: int = 128
    workers: int = 0
    memory_mb: int = 1024
    stable_areas: str | None = None
    correct_offset: bool = False
    max_speed: float = 0.0


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
    settings = track_settings(job)
    outlines = GlacierOutlines(job.outlines, grid.crs_wkt) if job.outlines else None
    engine = create_engine(job.engine, **engine_params(job, days, grid.pixel_size[0]))
    if job.max_speed > 0 and job.engine == "ncc":
        feedback.info(f"NCC search range +-{getattr(engine, 'search', '?')} px for {job.max_speed:g} m/yr over "
                      f"{days:.2f} days")
    engine_metadata = _describe_engine(engine, feedback)
    feedback.info(f"Engine {job.engine} on {settings.preprocessing} input, {job.median_size} px median, "
                  f"forward-backward check {'on' if job.consistency_check else 'off'}")
    bands = PAIR_BANDS + ([GLACIER_BAND] if outlines else [])
    # With the offset correction the tracked product is an intermediate file beside the output.
    tracked = temporary_path(job.output, ".uncorrected.tif") if job.correct_offset else job.output
    try:
        with gdal_cache_limit(GDAL_CACHE_MB):
            with ProductWriter(tracked, grid, bands) as writer:
                summary = _track_blocks(job, grid, (source_a, source_b), (stats_a, stats_b), engine, settings,
                                        days, outlines, writer, feedback)
                metadata = {**_metadata(job, settings, acq_a, acq_b, days, summary), **engine_metadata}
                writer.finish(metadata)
            if job.correct_offset:
                metadata.update(_correct_offset(job, tracked, feedback))
    finally:
        if tracked != job.output:
            remove_quietly(tracked)
    style = write_style_beside(job.output, speed_style_qml(nice_maximum(summary["p95_speed"])))
    seconds = time.perf_counter() - started
    feedback.info(f"Done in {seconds:.1f} s: {summary['valid_fraction'] * 100:.1f} % of pixels trusted, "
                  f"median speed {summary['median_speed']:.1f} m/yr, 95th percentile {summary['p95_speed']:.1f} m/yr")
    return PairResult(job.output, style, grid, acq_a, acq_b, days, job.engine, summary["valid_fraction"],
                      summary["median_speed"], summary["p95_speed"], seconds, metadata)


def engine_params(job: PairJob, days: float, pixel_size_m: float) -> dict[str, Any]:
    """The engine's parameters: ``job.engine_params``, plus the NCC search range (px) that ``job.max_speed``
    (m/yr) needs over ``days`` on ``pixel_size_m`` m pixels (an explicit ``search`` wins)."""
    params = dict(job.engine_params)
    if job.max_speed < 0:
        raise GlacierFlowError(f"The maximum expected speed must be 0 (engine default) or more m/yr, "
                               f"got {job.max_speed}.")
    if job.engine == "ncc" and job.max_speed > 0:
        params.setdefault("search", search_from_speed(job.max_speed, days, pixel_size_m))
    return params


def _correct_offset(job: PairJob, tracked: str, feedback: Feedback) -> dict[str, str]:
    """Remove the stable-ground offset (``validation.stable_ground``) from ``tracked`` into the output.

    Stable ground: ``job.stable_areas`` (less the buffered glaciers), else everything off the outlines.
    Returns the ``STABLE_*`` metadata items (offset and spread in m/yr) the output now carries.
    """
    from ..validation.stable_ground import StableGroundJob, metadata_items, run_stable_ground

    result = run_stable_ground(StableGroundJob(tracked, job.stable_areas, job.outlines, correct=True,
                                               output=job.output), feedback)
    stats = result.statistics
    feedback.info(f"Co-registration offset removed: vx {stats['vx']['median']:+.2f} m/yr, vy "
                  f"{stats['vy']['median']:+.2f} m/yr (median of {stats['pixel_count']} stable pixels)")
    return metadata_items(stats)


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


def track_settings(job: PairJob) -> TrackSettings:
    """The tracking settings of ``job``: its preprocessing (or the engine's default) and post-processing."""
    mode = check_mode(job.preprocessing or default_preprocessing(job.engine))
    if job.engine == "raft" and mode != "sobel":
        raise GlacierFlowError(f"The RAFT model was trained on Sobel gradients: use PREPROCESSING sobel, not {mode}.")
    if job.median_size < 1 or job.median_size % 2 == 0:
        raise GlacierFlowError(f"The median filter size must be an odd number of pixels, got {job.median_size}.")
    if job.correct_offset and not (job.stable_areas or job.outlines):
        raise GlacierFlowError("The offset correction needs stable ground: give stable-area polygons or "
                               "glacier outlines (then everything off the glaciers is stable).")
    if job.margin < 0:
        raise GlacierFlowError(f"The block margin must be at least 0 px, got {job.margin}.")
    return TrackSettings(mode, job.median_size, consistency_check=job.consistency_check,
                         min_texture_snr=job.min_texture_snr, tile_size=job.tile_size, overlap=job.overlap)


@dataclass(frozen=True)
class Block:
    """A block of the scene: its own pixels (``own``) and the window read with its margins (``read``)."""

    own: Window
    read: Window

    @property
    def keep(self) -> tuple[slice, slice]:
        """The own pixels inside the read window (rows, cols)."""
        top, left = self.own.row_off - self.read.row_off, self.own.col_off - self.read.col_off
        return slice(top, top + self.own.height), slice(left, left + self.own.width)


def block_rows(height: int, width: int, margin: int, workers: int) -> list[list[Block]]:
    """Blocks of a (height, width) px scene by row of blocks, top to bottom; each with ``margin`` px of context.

    Blocks stay under :data:`MAX_BLOCK_PIXELS` with their margins; a scene is cut into at least
    ``workers`` rows of blocks (when it is tall enough; the job passes :data:`PARALLEL_ROWS`, never the core
    count: the blocks, and so the product, are the same on a laptop, in QGIS and on every Dask worker).
    """
    # About square blocks: the least margin area for their pixels (memory), so the least repeated work.
    widest = max(64, min(MAX_BLOCK_WIDTH, math.isqrt(MAX_BLOCK_PIXELS) - 2 * margin))
    n_cols = max(1, math.ceil(width / widest))
    own_width = math.ceil(width / n_cols)
    read_width = min(width, own_width + 2 * margin)
    own_rows = max(64, MAX_BLOCK_PIXELS // read_width - 2 * margin)
    n_rows = max(1, math.ceil(height / own_rows))
    if n_rows * n_cols < workers:
        n_rows = max(1, min(workers // n_cols, height // 128))
    own_rows = math.ceil(height / n_rows)
    rows = []
    for top in range(0, height, own_rows):
        own_h = min(own_rows, height - top)
        read_top, read_bottom = max(0, top - margin), min(height, top + own_h + margin)
        row = []
        for left in range(0, width, own_width):
            own_w = min(own_width, width - left)
            read_left, read_right = max(0, left - margin), min(width, left + own_w + margin)
            row.append(Block(Window(left, top, own_w, own_h),
                             Window(read_left, read_top, read_right - read_left, read_bottom - read_top)))
        rows.append(row)
    return rows


def thread_count(job: PairJob) -> int:
    """``job.workers``, else the CPU count."""
    if job.workers > 0:
        return job.workers
    return os.cpu_count() or 1


def worker_count(job: PairJob, block_pixels: int) -> int:
    """Threads for the blocks: :func:`thread_count`, at most what ``job.memory_mb`` holds (>= 1)."""
    cores = thread_count(job)
    per_block_mb = block_pixels * BYTES_PER_PIXEL.get(job.engine, DEFAULT_BYTES_PER_PIXEL) / 2 ** 20
    return max(1, min(cores, int(job.memory_mb // max(per_block_mb, 1.0))))


def _track_blocks(job: PairJob, grid: Grid, sources: tuple, stats: tuple, engine: FlowEngine,
                  settings: TrackSettings, days: float, outlines: GlacierOutlines | None, writer: ProductWriter,
                  feedback: Feedback) -> dict[str, float]:
    """Track every block in a thread pool and write each block's own pixels as soon as it is done."""
    rows = block_rows(grid.height, grid.width, job.margin, PARALLEL_ROWS)
    largest = max(b.read.width * b.read.height for row in rows for b in row)
    workers = worker_count(job, largest)
    total = sum(len(row) for row in rows)
    feedback.info(f"{total} block(s) of up to {rows[0][0].own.width} x {rows[0][0].own.height} px with "
                  f"{job.margin} px margins, {workers} worker thread(s)")
    tally = _Tally(total)
    done = 0
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: list[tuple[Block, Future]] = []
        queue = _read_blocks(rows, grid, sources)
        try:
            for block, bands in queue:
                _check_cancel(feedback)
                pending.append((block, pool.submit(track_block, engine, bands[0], bands[1], stats, settings,
                                                   block.keep[0])))
                # At most `workers` blocks in flight (and their bands read ahead): memory stays bounded.
                while len(pending) >= workers:
                    done += _collect(pending.pop(0), grid, days, outlines, tally, writer)
                    _check_cancel(feedback)  # before the progress report: a cancelled job never shows 100 %
                    feedback.progress(100.0 * done / total)
            while pending:
                done += _collect(pending.pop(0), grid, days, outlines, tally, writer)
                _check_cancel(feedback)
                feedback.progress(100.0 * done / total)
        except BaseException:
            for _, future in pending:
                future.cancel()  # blocks not started never start; running ones end within one block
            raise
    return tally.summary()


def _check_cancel(feedback: Feedback) -> None:
    if feedback.is_cancelled():
        raise JobCancelled("Cancelled by the user")


def _read_blocks(rows: list[list[Block]], grid: Grid, sources: tuple
                 ) -> Iterator[tuple[Block, tuple[np.ndarray, np.ndarray]]]:
    """Both bands of each block's read window, in order (GDAL reads stay on the calling thread)."""
    for row in rows:
        for block in row:
            yield block, tuple(source.read(grid.window_grid(block.read)) for source in sources)
        for source in sources:
            source.drop_cache()


def _collect(item: tuple[Block, Future], grid: Grid, days: float, outlines: GlacierOutlines | None,
             tally: _Tally, writer: ProductWriter) -> int:
    """Wait for one block and write its own pixels into the product at once (no full-width strip is
    assembled: memory stays a few blocks deep however wide the scene). Returns 1."""
    block, future = item
    tracked = future.result()
    own = block.own
    if tracked is None:  # too little data: the block stays no-data (the writer's NaN)
        empty = np.full((own.height, own.width), np.nan, np.float32)
        tracked = TrackedBlock(empty, empty, np.zeros(empty.shape, bool), np.zeros(empty.shape, bool))
    else:
        inner = block.keep[1]
        tracked = TrackedBlock(tracked.dx[:, inner], tracked.dy[:, inner], tracked.trust[:, inner],
                               tracked.data[:, inner])
    writer.write_window(own.col_off, own.row_off, _block_product(tracked, grid, own, days, outlines, tally))
    return 1


def prepared_tile(grid: Grid, window: Window, sources: tuple, stats: tuple
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both images' Sobel inputs on one tile: (Sobel A (C, h, w), Sobel B, bool (h, w) where both have data).

    One extra pixel is read around the tile for Sobel's 3x3 support, so tile edges match their neighbours.
    Used by RAFT fine-tuning (labels computed on the model's input).
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


class _Tally:
    """Running counts for the job summary, without keeping the scene in memory."""

    def __init__(self, blocks: int = 1) -> None:
        self.pixels = 0
        self.trusted = 0
        self.speeds: list[np.ndarray] = []
        # Speeds kept per block for the percentiles: about 1 M values in all (4 MB), at least 2000 per
        # block (2000 per block made the Yahtse pair's median speed 2-4 % off with two blocks).
        self.samples_per_block = max(2000, 1_000_000 // max(blocks, 1))

    def add(self, speed_values: np.ndarray, data: np.ndarray) -> None:
        self.pixels += int(data.sum())
        finite = speed_values[np.isfinite(speed_values)]
        self.trusted += int(finite.size)
        step = max(1, finite.size // self.samples_per_block)  # a bounded, evenly spread subsample
        self.speeds.append(finite[::step].copy())  # a copy: a view would keep the whole block alive

    def summary(self) -> dict[str, float]:
        values = np.concatenate(self.speeds) if self.speeds else np.zeros(0)
        if values.size == 0:
            raise GlacierFlowError(
                "No pixel could be tracked between the two images: check that they show the same "
                "glacier without cloud or snow cover, and that the dates are right.")
        return {"valid_fraction": self.trusted / max(self.pixels, 1),
                "median_speed": float(np.median(values)),
                "p95_speed": float(np.percentile(values, 95))}


def _block_product(tracked: TrackedBlock, grid: Grid, own: Window, days: float,
                   outlines: GlacierOutlines | None, tally: _Tally) -> dict[str, np.ndarray]:
    """The product bands (m/yr; valid 1/0, NaN = no data) of a block's own pixels, counted in ``tally``."""
    trusted = tracked.data & tracked.trust
    vx, vy = displacement_to_velocity(tracked.dx, tracked.dy, grid.transform, days)
    vx[~trusted] = np.nan
    vy[~trusted] = np.nan
    product = {"vx": vx, "vy": vy, "speed": speed(vx, vy),
               "valid": np.where(tracked.data, trusted.astype(np.float32), np.float32(np.nan))}
    if outlines is not None:
        product["glacier"] = outlines.mask(grid.window_grid(own)).astype(np.float32)
    tally.add(product["speed"], tracked.data)
    return product


def _metadata(job: PairJob, settings: TrackSettings, acq_a: Acquisition, acq_b: Acquisition, days: float,
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
        "PREPROCESSING": settings.preprocessing,
        "BLOCK_MARGIN_PX": str(job.margin),
        "TILE_SIZE_PX": str(job.tile_size),
        "OVERLAP_PX": str(job.overlap),
        "MEDIAN_FILTER_PX": str(job.median_size),
        "CONSISTENCY_CHECK": "forward-backward" if job.consistency_check else "none",
        "MIN_TEXTURE_SNR": f"{job.min_texture_snr:g}",
        "VALID_FRACTION": f"{summary['valid_fraction']:.4f}",
        "MEDIAN_SPEED_M_PER_YR": f"{summary['median_speed']:.3f}",
        "P95_SPEED_M_PER_YR": f"{summary['p95_speed']:.3f}",
        velocity_product.UNITS: velocity_product.UNITS_TEXT,
    }
