"""Post-processing of raw flow fields: outlier filtering and validity checks."""
from __future__ import annotations

import numpy as np

from ...errors import GlacierFlowError
from .base import Flow

# Pixels handled per chunk by the median filter: bounds the memory of the
# (pixels, size*size) window copy to ~20 MB for a 9x9 window.
_CHUNK_PIXELS = 1 << 16


def median_filter_flow(flow: Flow, size: int = 9) -> Flow:
    """NaN-aware median filter of both flow components.

    The seed method's 9x9 outlier filter. NaNs in a window are ignored;
    a window with no finite value gives NaN. Outside the image counts as
    NaN, so border pixels use only the in-image part of their window.

    Args:
        flow: flow in px.
        size: odd window side, px.

    Returns:
        New :class:`Flow` (float32, px).

    Raises:
        GlacierFlowError: ``size`` is not odd and positive.
    """
    if size < 1 or size % 2 == 0:
        raise GlacierFlowError(
            f"The median filter size must be an odd number of pixels, got {size}."
        )
    return Flow(dx=nan_median(flow.dx, size), dy=nan_median(flow.dy, size))


def nan_median(field: np.ndarray, size: int, step: int = 1, rows: slice | None = None,
               threads: int = 1) -> np.ndarray:
    """NaN-aware (size x size) median of a 2-D float field (its units); +-inf count as NaN.

    Equal to ``np.nanmedian`` of each window (outside the field counts as NaN); NaN where a window
    has no finite value. ``step`` > 1 samples the window every ``step`` px (rows and columns, centre
    included): a 15 px window with step 2 takes 49 of its 225 values, about 4x faster, for flow fields
    whose neighbouring pixels are strongly correlated anyway (measured on the real-texture benchmark:
    within 0.002 px of the full window's median error). ``rows`` (default all) are the rows computed
    (the others are context); ``threads`` > 1 sorts chunks in parallel (numpy's sort frees the GIL).
    """
    return nan_medians([field], size, step, rows, threads)[0]


def nan_medians(fields: list[np.ndarray], size: int, step: int = 1, rows: slice | None = None,
                threads: int = 1) -> list[np.ndarray]:
    """:func:`nan_median` of several fields of one shape (the finite-value counts are shared when
    their NaN masks agree, e.g. both flow components); float32 (rows, W) each."""
    h, w = np.shape(fields[0])
    rows = rows or slice(0, h)
    half = size // 2
    offset = half % step  # the sampled lattice passes through the window's centre
    samples = len(range(offset, size, step))  # per axis
    outputs: list[np.ndarray] = []
    tasks: list[tuple[np.ndarray, np.ndarray, np.ndarray, slice]] = []
    mask: np.ndarray | None = None
    class_counts: dict[tuple[int, int], np.ndarray] = {}  # finite values per window, per parity class
    for field in fields:
        field = np.asarray(field, dtype=np.float32)
        top, bottom = rows.start - half, rows.stop + half
        finite = np.isfinite(field[max(0, top):bottom])
        if mask is None or not np.array_equal(finite, mask):
            mask, class_counts = finite, {}
        out = np.empty((rows.stop - rows.start, w), np.float32)
        outputs.append(out)
        if size == 1:
            out[:] = field[rows]
            continue
        # Unknown values and the outside sort last as +inf, so each window's median sits at fixed
        # ranks given its count of finite values (counted once per field, not per window).
        padded = np.pad(np.where(finite, field[max(0, top):bottom], np.float32(np.inf)),
                        ((max(0, -top), max(0, bottom - h)), (half, half)), constant_values=np.inf)
        # Pixels of one parity class (row % step, col % step) share one lattice: each class is a dense
        # (samples x samples) median on a contiguous sub-array, read with unit strides.
        for row_class in range(step):
            for col_class in range(step):
                target = out[row_class::step, col_class::step]
                if target.size == 0:
                    continue
                sub = np.ascontiguousarray(padded[row_class + offset::step, col_class + offset::step])
                key = (row_class, col_class)
                if key not in class_counts:
                    class_counts[key] = _box_counts(np.isfinite(sub), samples)[:target.shape[0], :target.shape[1]]
                windows = np.lib.stride_tricks.sliding_window_view(sub, (samples, samples))
                windows = windows[:target.shape[0], :target.shape[1]]
                chunk_rows = max(1, _CHUNK_PIXELS // target.shape[1])
                for r0 in range(0, target.shape[0], chunk_rows):
                    tasks.append((windows, class_counts[key], target, slice(r0, r0 + chunk_rows)))
    if threads > 1 and len(tasks) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(lambda task: _median_chunk(*task), tasks))
    else:
        for task in tasks:
            _median_chunk(*task)
    return outputs


def _median_chunk(windows: np.ndarray, counts: np.ndarray, target: np.ndarray, chunk: slice) -> None:
    """Medians of ``windows[chunk]`` (rows of windows) into ``target[chunk]``."""
    block = np.ascontiguousarray(windows[chunk])
    shape = block.shape[:2]
    block = block.reshape(shape[0] * shape[1], -1)
    # numpy's vectorised in-place sort beats np.partition (6x) and np.nanmedian on many short rows.
    block.sort(axis=1)
    target[chunk] = _median_at_ranks(block, counts[chunk].ravel()).reshape(shape)


def _box_counts(mask: np.ndarray, size: int) -> np.ndarray:
    """Number of True pixels in each (size x size) window whose top-left pixel is (r, c) (valid windows)."""
    summed = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1), np.int32)
    np.cumsum(np.cumsum(mask, axis=0, dtype=np.int32), axis=1, out=summed[1:, 1:])
    return (summed[size:, size:] - summed[:-size, size:] - summed[size:, :-size] + summed[:-size, :-size])


def _median_at_ranks(sorted_rows: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Median of the first ``count`` values of each ascending row (NaN where ``count`` is 0)."""
    lo = np.take_along_axis(sorted_rows, np.maximum((count - 1) // 2, 0)[:, None], axis=1)[:, 0]
    hi = np.take_along_axis(sorted_rows, (count // 2)[:, None], axis=1)[:, 0]
    # Empty windows read +inf here; they become NaN below.
    return np.where(count > 0, 0.5 * (lo + hi), np.nan).astype(np.float32)


# Trust thresholds calibrated against the real-texture truth (bench/bench_realtexture.py): trusted
# pixels had a median error of 0.06 px (90 % under 0.26 px), untrusted ones 5-10 times more, and at
# least 95 % of the textured glacier stayed trusted up to 20 px of motion.
FB_TOLERANCE_PX = 0.5  # round-trip error always accepted, px
FB_TOLERANCE_RELATIVE = 0.02  # plus this fraction of sqrt(|f|^2 + |b(x+f)|^2)
FB_GROSS_PX = 1.0  # a round trip off by more than this does not vote in the median filter


def forward_backward_error(forward: Flow, backward: Flow, rows: slice | None = None
                           ) -> tuple[np.ndarray, np.ndarray]:
    """Round-trip error ``|f(x) + b(x + f(x))|`` (px) and ``sqrt(|f|^2 + |b(x+f)|^2)`` (px).

    The backward flow is sampled bilinearly at x + f(x); the error is NaN where that point leaves the
    field or either flow is not finite there. ``rows`` (default all) limits the pixels x to those rows
    of the field (the backward flow is sampled anywhere); both outputs then have those rows only.
    """
    import cv2

    rows = rows or slice(0, np.shape(forward.dx)[0])
    fx = np.asarray(forward.dx[rows], np.float32)
    fy = np.asarray(forward.dy[rows], np.float32)
    h, w = np.shape(forward.dx)
    map_x = np.arange(w, dtype=np.float32)[None, :] + fx
    map_y = np.arange(rows.start, rows.start + fx.shape[0], dtype=np.float32)[:, None] + fy
    with np.errstate(invalid="ignore"):
        inside = (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
    np.copyto(map_x, np.float32(0.0), where=~inside)  # NaN maps would make remap return garbage
    np.copyto(map_y, np.float32(0.0), where=~inside)
    bx, by = (cv2.remap(np.asarray(component, np.float32), map_x, map_y, cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REPLICATE) for component in (backward.dx, backward.dy))
    del map_x, map_y
    error = np.hypot(fx + bx, fy + by)
    scale = np.sqrt(fx * fx + fy * fy + bx * bx + by * by)
    error[~inside] = np.nan
    return error.astype(np.float32, copy=False), scale.astype(np.float32, copy=False)


def consistent(error: np.ndarray, scale: np.ndarray, absolute: float = FB_TOLERANCE_PX,
               relative: float = FB_TOLERANCE_RELATIVE) -> np.ndarray:
    """Bool: round-trip ``error`` (px) within ``absolute`` px + ``relative`` x ``scale`` (px); NaN fails."""
    with np.errstate(invalid="ignore"):
        return error <= absolute + relative * scale
