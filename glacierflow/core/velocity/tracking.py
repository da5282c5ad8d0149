"""Tracking one block of a pair: preprocessing, both flows, forward-backward check, median, trust.

The pair job (:mod:`.pair`) cuts the scene into blocks read with wide margins and hands each to
:func:`track_block`; the benchmarks call it on whole arrays. Post-processing runs once per block on
the engine's whole field (not per overlapping tile) and only on the rows it needs (the kept rows and
the filters' reach around them), and the margins give every engine coarse-to-fine context wider than
the largest motion, so blocks reproduce the whole scene (measured: medians within 0.01 px) while
memory stays bounded. RAFT keeps its tiles inside the block (:data:`TILED_ENGINES`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .flow import Flow, FlowEngine
from .flow.postprocess import FB_GROSS_PX, consistent, forward_backward_error, nan_medians
from .preprocess import BandStatistics, check_mode, normalise, prepare_for_flow, texture_snr
from .tiling import blend_weights, tile_rows

MIN_VALID_FRACTION = 0.05  # blocks with less valid data carry too little texture to track
TILED_ENGINES = ("raft",)  # engines that run on fixed-size tiles (memory of the network), blended
MIN_TEXTURE_SNR = 1.5  # local texture / image noise under which a pixel is untrusted (water, fresh snow)
# Threads sorting the median's chunks (numpy's sort frees the GIL): a lone block (small scene, benchmark)
# uses every core; in the job's pool the blocks' threads share them. No effect on the result.
MEDIAN_THREADS = min(4, os.cpu_count() or 1)


@dataclass(frozen=True)
class TrackSettings:
    """How a block is tracked.

    Attributes:
        preprocessing: one of ``preprocess.PREPROCESSING_MODES``.
        median_size: NaN-aware median window after the forward-backward masking, px (<= 1: none).
        median_step: px between the window's samples (2: 49 of a 15 px window's 225 values, 4x faster,
            the same accuracy on the real-texture benchmark; 1: every value).
        consistency_check: run the backward flow and the forward-backward check.
        min_texture_snr: least local texture over image noise of a trusted pixel (0: no texture test).
        tile_size, overlap: tiles of a tiled engine (RAFT), px.
    """

    preprocessing: str = "sobel"
    median_size: int = 15
    median_step: int = 2
    consistency_check: bool = True
    min_texture_snr: float = MIN_TEXTURE_SNR
    tile_size: int = 256
    overlap: int = 64


@dataclass
class TrackedBlock:
    """The product's flow of the kept rows of a block (all (rows, W)).

    Attributes:
        dx, dy: filtered flow, px, NaN where either image has no data.
        trust: bool, the pixel passed the forward-backward check and the texture test.
        data: bool, both images have data.
    """

    dx: np.ndarray
    dy: np.ndarray
    trust: np.ndarray
    data: np.ndarray


def run_engine(engine: FlowEngine, image_a: np.ndarray, image_b: np.ndarray, settings: TrackSettings) -> Flow:
    """Flow A -> B (px) of prepared (C, H, W) inputs: one call, or blended tiles for a tiled engine."""
    if engine.name not in TILED_ENGINES:
        return engine.estimate(image_a, image_b)
    h, w = image_a.shape[1:]
    sums = np.zeros((2, h, w), np.float32)
    weights = np.zeros((h, w), np.float32)
    for row in tile_rows(h, w, settings.tile_size, settings.overlap):
        for window in row:
            rows = slice(window.row_off, window.row_off + window.height)
            cols = slice(window.col_off, window.col_off + window.width)
            flow = engine.estimate(image_a[:, rows, cols], image_b[:, rows, cols])
            weight = blend_weights(window.height, window.width, settings.overlap)
            sums[0, rows, cols] += flow.dx * weight
            sums[1, rows, cols] += flow.dy * weight
            weights[rows, cols] += weight
    return Flow(sums[0] / weights, sums[1] / weights)


def track_block(engine: FlowEngine, band_a: np.ndarray, band_b: np.ndarray,
                stats: tuple[BandStatistics, BandStatistics], settings: TrackSettings,
                keep: slice | None = None) -> TrackedBlock | None:
    """Track a block of both bands (same grid, NaN = no data) and return its ``keep`` rows.

    Args:
        engine: the flow engine.
        band_a, band_b: (H, W) band values of the block, including its margins.
        stats: both bands' whole-scene :class:`BandStatistics`.
        settings: :class:`TrackSettings`.
        keep: rows of the block to return (default: all); the rest is context.

    Returns:
        :class:`TrackedBlock` of the kept rows, or None when the block has too little data to track.
    """
    keep = keep or slice(0, band_a.shape[0])
    mode = check_mode(settings.preprocessing)
    # The texture test first, on the kept rows only: the raw bands' work arrays are gone before the
    # engine's (the largest) are made.
    textured = textured_rows(band_a, band_b, stats, settings.min_texture_snr, keep)
    channels_a, valid_a = prepare_for_flow(band_a, stats[0], mode)
    channels_b, valid_b = prepare_for_flow(band_b, stats[1], mode)
    data = valid_a & valid_b
    del valid_a, valid_b
    if data[keep].mean() < MIN_VALID_FRACTION:
        return None
    voting = voting_rows(data.shape[0], keep, settings.median_size)
    forward = run_engine(engine, channels_a, channels_b, settings)
    if settings.consistency_check:
        check_flow = getattr(engine, "consistency_estimate", None)
        backward = (check_flow(channels_b, channels_a) if callable(check_flow)
                    else run_engine(engine, channels_b, channels_a, settings))
        del channels_a, channels_b
        passed, gross = consistency(forward, backward, keep, voting)
        del backward
    else:
        del channels_a, channels_b
        passed = np.ones(data[keep].shape, bool)
        gross = np.zeros(data[voting].shape, bool)
    dx, dy = filtered(forward, gross, settings.median_size, settings.median_step, keep, voting)
    trust = passed & data[keep] & np.isfinite(dx) & np.isfinite(dy)
    if textured is not None:
        trust &= textured
    nan = np.float32(np.nan)
    return TrackedBlock(np.where(data[keep], dx, nan), np.where(data[keep], dy, nan), trust, data[keep])


def voting_rows(height: int, keep: slice, median_size: int) -> slice:
    """The rows the median filter of the ``keep`` rows reads: ``keep`` and the window's half-size around."""
    half = median_size // 2 if median_size > 1 else 0
    return slice(max(0, keep.start - half), min(height, keep.stop + half))


def consistency(forward: Flow, backward: Flow, keep: slice, voting: slice) -> tuple[np.ndarray, np.ndarray]:
    """Forward-backward check: (bool, ``keep`` rows) the round trip is within tolerance, and (bool,
    ``voting`` rows) it is off by more than ``FB_GROSS_PX`` (such pixels do not vote in the median)."""
    error, scale = forward_backward_error(forward, backward, voting)
    inner = slice(keep.start - voting.start, keep.stop - voting.start)
    passed = consistent(error[inner], scale[inner])
    with np.errstate(invalid="ignore"):
        gross = np.isfinite(error) & (error > FB_GROSS_PX)
    return passed, gross


TEXTURE_CONTEXT = 16  # px of rows around the kept ones the texture test reads (15 px window + 1 px blur)


def textured_rows(band_a: np.ndarray, band_b: np.ndarray, stats: tuple[BandStatistics, BandStatistics],
                  min_snr: float, keep: slice) -> np.ndarray | None:
    """Bool (kept rows, W): both images' texture SNR >= ``min_snr`` (None when there is no texture test).

    Only the kept rows and ``TEXTURE_CONTEXT`` rows around them are filtered (the same values as on
    the whole block: the filters reach 11 px).
    """
    if min_snr <= 0:
        return None
    top, bottom = max(0, keep.start - TEXTURE_CONTEXT), min(band_a.shape[0], keep.stop + TEXTURE_CONTEXT)
    inner = slice(keep.start - top, keep.stop - top)
    textured = texture_snr(normalise(band_a[top:bottom], stats[0]), stats[0].noise)[inner] >= min_snr
    textured &= texture_snr(normalise(band_b[top:bottom], stats[1]), stats[1].noise)[inner] >= min_snr
    return textured


def filtered(forward: Flow, gross: np.ndarray, size: int, step: int, keep: slice,
             voting: slice) -> tuple[np.ndarray, np.ndarray]:
    """Median-filtered forward flow (px) of the ``keep`` rows; gross forward-backward failures do not vote.

    ``gross`` covers the ``voting`` rows: the kept rows and the window's half-size around them, the only
    rows filtered. Where a window has no voter the raw forward value is kept (the trust mask decides later).
    """
    fx, fy = forward.dx, forward.dy
    if size <= 1:
        return fx[keep].astype(np.float32), fy[keep].astype(np.float32)
    inner = slice(keep.start - voting.start, keep.stop - voting.start)
    nan = np.float32(np.nan)
    voters = [np.where(gross, nan, component[voting].astype(np.float32, copy=False)) for component in (fx, fy)]
    medians = nan_medians(voters, size, step, rows=inner, threads=MEDIAN_THREADS)
    return tuple(np.where(np.isfinite(median), median, component[keep]).astype(np.float32)
                 for median, component in zip(medians, (fx, fy)))  # type: ignore[return-value]
