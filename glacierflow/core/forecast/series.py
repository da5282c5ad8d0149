"""NDSI time series from Landsat green and SWIR1 bands, as in the forecasting papers.

The chain, in the papers' order (002 section 2.1, 003 section 2):

1. scenes with too many missing pixels are dropped (the papers kept scenes
   with at most 50 % missing values);
2. the remaining gaps of each band are filled with a 5 x 5 weighted kernel,
   repeated until no gap remains (:func:`fill_gaps`);
3. every scene is aligned to the series' mean image with ECC, translation
   only by default (:func:`align_series`);
4. NDSI = (green - SWIR1) / (green + SWIR1) (:func:`ndsi`);
5. the snow mask keeps the NDSI where it is at least 0.3 and 0 elsewhere
   (:func:`snow_mask`, not a binary mask);
6. scenes are averaged into calendar windows of 3 months, and windows with
   no scene are filled by linear interpolation in time (:func:`average_windows`).

Only numpy and (inside functions) OpenCV are used.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from ..errors import GlacierFlowError
from ..feedback import Feedback, JobCancelled
from ..geo.grid import Grid

LOG = logging.getLogger(__name__)

#: Landsat Collection-2 Level-2 surface reflectance scaling: reflectance = DN * scale + offset.
LANDSAT_C2_SCALE = 2.75e-05
LANDSAT_C2_OFFSET = -0.2
#: Largest reflectance a Collection-2 DN can encode (DN 65535): 1.602.
LANDSAT_C2_MAX_REFLECTANCE = 65535 * LANDSAT_C2_SCALE + LANDSAT_C2_OFFSET

#: ECC motion models by name.
MOTIONS = ("translation", "euclidean", "affine")


def gap_kernel(size: int = 5) -> np.ndarray:
    """The gap-filling kernel: weight 1/distance (px) to the centre, 0 at the centre itself.

    The papers (after Vonica et al. 2021) average the valid pixels of a
    5 x 5 neighbourhood with weights that fall with distance; inverse
    distance is that weighting with no free parameter.
    """
    half = size // 2
    rows, cols = np.mgrid[-half:half + 1, -half:half + 1]
    distance = np.hypot(rows, cols)
    weights = np.zeros((size, size), dtype=np.float64)
    weights[distance > 0] = 1.0 / distance[distance > 0]
    return weights


def fill_gaps(image: np.ndarray, max_passes: int = 1000) -> np.ndarray:
    """Fill NaN pixels of a 2-D image with the 5 x 5 distance-weighted mean of their valid neighbours.

    Each pass fills every gap pixel that has at least one valid pixel in
    its 5 x 5 neighbourhood (so a gap shrinks by 2 px per side and pass);
    passes repeat until no gap remains. Valid pixels are never changed.

    Args:
        image: (H, W) float array (any unit, e.g. reflectance), NaN = gap.
        max_passes: safety bound on the number of passes.

    Returns:
        float32 (H, W) without NaN.

    Raises:
        GlacierFlowError: when the image has no valid pixel at all.
    """
    import cv2  # heavy import kept out of QGIS start-up

    values = np.asarray(image, dtype=np.float64).copy()
    if values.ndim != 2:
        raise ValueError(f"fill_gaps expects a 2-D image, got shape {values.shape}")
    valid = np.isfinite(values)
    if valid.all():
        return values.astype(np.float32)
    if not valid.any():
        raise GlacierFlowError("A scene has no valid pixel to fill its gaps from: drop it from the series.")
    kernel = gap_kernel(5)
    for _ in range(max_passes):
        window = _gap_window(valid, margin=kernel.shape[0] // 2)
        if window is None:
            break
        part_values, part_valid = values[window], valid[window]
        # One filter over two channels: the weighted sum of valid values and the sum of their weights.
        stacked = np.dstack([np.where(part_valid, part_values, 0.0), part_valid.astype(np.float64)])
        sums = cv2.filter2D(stacked, cv2.CV_64F, kernel, borderType=cv2.BORDER_CONSTANT)
        fillable = ~part_valid & (sums[..., 1] > 1e-12)
        part_values[fillable] = sums[..., 0][fillable] / sums[..., 1][fillable]
        part_valid |= fillable
    if not valid.all():
        raise GlacierFlowError(f"Gap filling did not finish in {max_passes} passes: raise max_passes.")
    return values.astype(np.float32)


def _gap_window(valid: np.ndarray, margin: int) -> tuple[slice, slice] | None:
    """The bounding box of the gaps grown by ``margin`` px (clipped to the image), or None without gaps.

    Filtering only this box is exact: every gap pixel keeps its full
    neighbourhood, and outside the image counts as invalid either way.
    """
    gap_rows = np.flatnonzero(~valid.all(axis=1))
    if not gap_rows.size:
        return None
    gap_cols = np.flatnonzero(~valid.all(axis=0))
    return (slice(max(gap_rows[0] - margin, 0), gap_rows[-1] + margin + 1),
            slice(max(gap_cols[0] - margin, 0), gap_cols[-1] + margin + 1))


def ecc_warp(template: np.ndarray, image: np.ndarray, motion: str = "translation",
             iterations: int = 100, epsilon: float = 1e-5, smoothing_px: int = 5) -> tuple[np.ndarray, str | None]:
    """The ECC warp (2 x 3, px) that maps ``template`` pixel positions to ``image`` positions.

    ``image`` resampled at ``warp @ [col, row, 1]`` matches ``template``;
    for a translation the warp's last column is the shift (dx right, dy
    down, px) of ``image`` relative to ``template``.

    Returns:
        (warp, reason): the identity warp and a reason string when ECC
        fails or does not converge, else (warp, None).
    """
    import cv2

    if motion not in MOTIONS:
        raise GlacierFlowError(f"Unknown alignment motion '{motion}': choose one of {', '.join(MOTIONS)}.")
    motion_type = {"translation": cv2.MOTION_TRANSLATION, "euclidean": cv2.MOTION_EUCLIDEAN,
                   "affine": cv2.MOTION_AFFINE}[motion]
    identity = np.eye(2, 3, dtype=np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, iterations, epsilon)
    try:
        _, warp = cv2.findTransformECC(template.astype(np.float32), image.astype(np.float32), identity.copy(),
                                       motion_type, criteria, None, smoothing_px)
    except cv2.error as error:
        return identity, f"ECC did not converge ({str(error).strip().splitlines()[-1]})"
    if not np.all(np.isfinite(warp)):
        return identity, "ECC returned a non-finite warp"
    return warp, None


def align_series(frames: np.ndarray, motion: str = "translation", max_shift_px: float | None = None,
                 feedback: Feedback | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
    """Align every frame of a (T, H, W) stack to the stack's mean image with OpenCV's ECC.

    Args:
        frames: (T, H, W) float, finite (fill gaps first).
        motion: "translation" (the papers' choice: no rotation or scaling,
            so real glacier change is not aligned away), "euclidean" or "affine".
        max_shift_px: a warp moving any corner farther than this (px) is
            rejected as a false match; default a tenth of the smaller side.
        feedback: receives a warning for each frame left unaligned; checked for cancellation.

    Returns:
        (aligned, warps): float32 (T, H, W) and one 2 x 3 warp per frame
        (px, template -> frame). A frame where ECC fails keeps its pixels and
        the identity warp; the reason is logged, never raised.
    """
    stack = np.asarray(frames, dtype=np.float32)
    if stack.ndim != 3:
        raise ValueError(f"align_series expects (T, H, W), got shape {stack.shape}")
    if not np.all(np.isfinite(stack)):
        raise GlacierFlowError("Frames still contain gaps: fill them (fill_gaps) before aligning.")
    height, width = stack.shape[1:]
    limit = max_shift_px if max_shift_px is not None else 0.1 * min(height, width)
    template = stack.mean(axis=0)
    aligned = np.empty_like(stack)
    warps: list[np.ndarray] = []
    for index, frame in enumerate(stack):
        if feedback is not None and feedback.is_cancelled():
            raise JobCancelled()
        warp, reason = ecc_warp(template, frame, motion)
        if reason is None and _largest_corner_shift(warp, height, width) > limit:
            warp, reason = np.eye(2, 3, dtype=np.float32), f"ECC shift beyond {limit:.1f} px (false match)"
        if reason is not None:
            _warn(feedback, f"Frame {index} left unaligned: {reason}.")
            aligned[index] = frame
        else:
            aligned[index] = apply_warp(frame, warp)
        warps.append(warp)
    return aligned, warps


def apply_warp(image: np.ndarray, warp: np.ndarray) -> np.ndarray:
    """``image`` resampled (bilinear) at ``warp`` applied to each pixel position: the aligned image.

    Edges uncovered by the shift repeat the nearest edge pixel, so no gap reappears.
    """
    import cv2

    height, width = image.shape
    return cv2.warpAffine(image.astype(np.float32), warp.astype(np.float32), (width, height),
                          flags=cv2.INTER_LINEAR + cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)


def _largest_corner_shift(warp: np.ndarray, height: int, width: int) -> float:
    corners = np.array([[0, 0, 1], [width, 0, 1], [0, height, 1], [width, height, 1]], dtype=np.float64)
    moved = corners @ warp.astype(np.float64).T
    return float(np.max(np.hypot(*(moved - corners[:, :2]).T)))


def ndsi(green: np.ndarray, swir1: np.ndarray) -> np.ndarray:
    """Normalised Difference Snow Index (green - SWIR1) / (green + SWIR1), unitless.

    Args:
        green: surface reflectance (0-1) of the green band (Landsat 8/9 band 3).
        swir1: surface reflectance (0-1) of SWIR1 (Landsat 8/9 band 6).

    Returns:
        float32 in [-1, 1]; NaN where either band is NaN or both are 0. Values
        are clipped to [-1, 1]: beyond that only negative reflectances
        (atmospheric over-correction of dark pixels) can push them.
    """
    g = np.asarray(green, dtype=np.float32)
    s = np.asarray(swir1, dtype=np.float32)
    total = g + s
    with np.errstate(divide="ignore", invalid="ignore"):
        index = np.where(total != 0, (g - s) / total, np.nan)
    return np.clip(index, -1.0, 1.0).astype(np.float32)


def snow_mask(ndsi_values: np.ndarray, threshold: float = 0.3) -> np.ndarray:
    """The papers' snow/ice mask: NDSI kept where it is >= ``threshold``, 0 elsewhere; NaN stays NaN.

    Returns float32 in {0} U [threshold, 1] (unitless).
    """
    values = np.asarray(ndsi_values, dtype=np.float32)
    masked = np.where(values >= threshold, values, np.float32(0.0))
    masked[np.isnan(values)] = np.nan
    return masked.astype(np.float32)


def landsat_reflectance(dn: np.ndarray) -> np.ndarray:
    """Surface reflectance (0-1.6, unitless) of Landsat Collection-2 Level-2 DN: DN * 2.75e-05 - 0.2.

    DN 0 is the product's fill value and becomes NaN. Negative reflectances
    (over-corrected dark pixels, shadows) are clipped to 0: a negative band
    would push NDSI outside [-1, 1] and flip its meaning. Values above 1 are
    kept up to the format's ceiling of 1.602: sunlit snow on slopes facing
    the sun really reflects more than a flat Lambertian surface, and
    clipping there would bias the green / SWIR1 ratio of bright snow.
    """
    values = np.asarray(dn)
    reflectance = values.astype(np.float32) * np.float32(LANDSAT_C2_SCALE) + np.float32(LANDSAT_C2_OFFSET)
    reflectance = np.clip(reflectance, 0.0, LANDSAT_C2_MAX_REFLECTANCE)
    reflectance[values == 0] = np.nan
    return reflectance.astype(np.float32)


def as_utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC datetime (a naive one is taken to be UTC)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def windows_per_year(window_months: int) -> int:
    """How many windows of ``window_months`` (a divisor of 12) fit in a calendar year."""
    if window_months not in (1, 2, 3, 4, 6, 12):
        raise GlacierFlowError(
            f"A window of {window_months} months does not divide the year: choose 1, 2, 3, 4, 6 or 12 months.")
    return 12 // window_months


def add_months(moment: datetime, months: int) -> datetime:
    """``moment`` (first of a month) moved by ``months`` calendar months."""
    total = moment.year * 12 + (moment.month - 1) + months
    return moment.replace(year=total // 12, month=total % 12 + 1)


def window_start_of(moment: datetime, window_months: int = 3) -> datetime:
    """Start (UTC, 00:00 on the 1st) of the calendar window holding ``moment``.

    Windows start in months 1, 1 + w, 1 + 2w, ...: quarters (Jan, Apr, Jul, Oct) for w = 3.
    """
    windows_per_year(window_months)
    moment = as_utc(moment)
    month = (moment.month - 1) // window_months * window_months + 1
    return datetime(moment.year, month, 1, tzinfo=timezone.utc)


def window_starts(first: datetime, last: datetime, window_months: int = 3) -> list[datetime]:
    """Starts (UTC) of every calendar window from the one holding ``first`` to the one holding ``last``."""
    start, end = window_start_of(first, window_months), window_start_of(last, window_months)
    if end < start:
        raise GlacierFlowError("The date range ends before it starts: swap the first and last dates.")
    starts = [start]
    while starts[-1] < end:
        starts.append(add_months(starts[-1], window_months))
    return starts


def window_index(moment: datetime, first_start: datetime, window_months: int = 3) -> int:
    """Index of the window holding ``moment`` in a series whose first window starts at ``first_start``."""
    start = window_start_of(moment, window_months)
    months = (start.year - first_start.year) * 12 + (start.month - first_start.month)
    return months // window_months


def average_windows(times: Sequence[datetime], frames: np.ndarray,
                    window_months: int = 3) -> tuple[list[datetime], np.ndarray]:
    """Average scenes into calendar windows; fill windows without a scene by interpolation in time.

    Args:
        times: acquisition time of each frame (naive = UTC).
        frames: (T, H, W) values (e.g. masked NDSI), NaN = no data.
        window_months: window length in months (a divisor of 12).

    Returns:
        (starts, averaged): window starts (UTC) from the first to the last
        scene's window, and float32 (N, H, W) per-window NaN-means. A window
        (or a pixel) with no data is interpolated linearly between the
        nearest windows before and after that have data (windows are equally
        spaced in months, so the window index is the time axis); the nearest
        one is copied at either end of the series.
    """
    starts, averaged, _ = window_average_with_counts(times, frames, window_months)
    return starts, averaged


def window_average_with_counts(times: Sequence[datetime], frames: np.ndarray,
                               window_months: int = 3) -> tuple[list[datetime], np.ndarray, np.ndarray]:
    """:func:`average_windows` plus the number of scenes that fell in each window (int array (N,))."""
    stack = np.asarray(frames, dtype=np.float64)
    if stack.ndim != 3 or len(times) != stack.shape[0] or not len(times):
        raise GlacierFlowError("Give one acquisition time per frame, and at least one frame.")
    utc = [as_utc(t) for t in times]
    starts = window_starts(min(utc), max(utc), window_months)
    indices = np.array([window_index(t, starts[0], window_months) for t in utc])
    sums = np.zeros((len(starts),) + stack.shape[1:], dtype=np.float64)
    counts = np.zeros_like(sums)
    finite = np.isfinite(stack)
    np.add.at(sums, indices, np.where(finite, stack, 0.0))
    np.add.at(counts, indices, finite.astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / np.maximum(counts, 1.0), np.nan)
    scenes = np.bincount(indices, minlength=len(starts))
    return starts, interpolate_in_time(means).astype(np.float32), scenes


def interpolate_in_time(stack: np.ndarray) -> np.ndarray:
    """Fill NaN along axis 0 of (N, ...) linearly between the nearest finite neighbours; nearest at the ends.

    A pixel with no finite value at any time stays NaN.
    """
    values = np.asarray(stack, dtype=np.float64)
    n = values.shape[0]
    finite = np.isfinite(values)
    if finite.all() or n == 1:
        return values.copy()
    index = np.arange(n).reshape((n,) + (1,) * (values.ndim - 1))
    before = np.maximum.accumulate(np.where(finite, index, -1), axis=0)
    after = np.flip(np.minimum.accumulate(np.flip(np.where(finite, index, n), axis=0), axis=0), axis=0)
    has_before, has_after = before >= 0, after < n
    value_before = np.take_along_axis(values, np.clip(before, 0, n - 1), axis=0)
    value_after = np.take_along_axis(values, np.clip(after, 0, n - 1), axis=0)
    span = np.where(has_before & has_after, after - before, 1)
    weight_after = np.where(has_before & has_after, (index - before) / np.maximum(span, 1), 0.0)
    inner = value_before * (1.0 - weight_after) + value_after * weight_after
    filled = np.where(has_before & has_after, inner, np.where(has_before, value_before, value_after))
    return np.where(finite, values, filled)


@dataclass
class NdsiSeries:
    """A masked-NDSI series in calendar windows: the forecasters' input and target data.

    Attributes:
        frames: float32 (T, H, W), window means of the masked NDSI (each scene 0 or in
            [threshold, 1]; their mean anywhere in [0, 1]), unitless.
        times: window starts (UTC), one per frame.
        window_months: window length, months.
        threshold: NDSI threshold of the snow mask.
        grid: the frames' georeferencing, when known.
        filled_windows: indices of windows that had no scene and were interpolated.
    """

    frames: np.ndarray
    times: list[datetime]
    window_months: int = 3
    threshold: float = 0.3
    grid: Grid | None = None
    filled_windows: list[int] = field(default_factory=list)

    @property
    def windows_per_year(self) -> int:
        """Windows per calendar year (4 for 3-month windows)."""
        return windows_per_year(self.window_months)

    def window_ends(self) -> list[datetime]:
        """Exclusive ends (UTC) of the windows: the start of the next window."""
        return [add_months(start, self.window_months) for start in self.times]


def build_ndsi_series(times: Sequence[datetime], green: np.ndarray, swir1: np.ndarray, window_months: int = 3,
                      threshold: float = 0.3, align: str | None = "translation",
                      feedback: Feedback | None = None, max_missing_fraction: float = 0.5,
                      grid: Grid | None = None) -> NdsiSeries:
    """The papers' whole chain from reflectance scenes to a windowed masked-NDSI series.

    Args:
        times: acquisition time of each scene (naive = UTC).
        green: (T, H, W) green surface reflectance (0-1), NaN = cloud / no data.
        swir1: (T, H, W) SWIR1 surface reflectance, same grid.
        window_months: averaging window, months (3 in the papers).
        threshold: NDSI threshold of the snow mask (0.3 in the papers).
        align: ECC motion ("translation", "euclidean", "affine") or None to skip alignment.
        feedback: progress, warnings and cancellation.
        max_missing_fraction: scenes missing more than this fraction of
            pixels in either band are dropped (the papers' 50 % rule):
            filling most of a scene from a few pixels would invent it.
        grid: georeferencing passed through to the series.

    Raises:
        GlacierFlowError: when no scene is usable or shapes disagree.
        JobCancelled: when the user cancels.
    """
    feedback = feedback or Feedback()
    green = np.asarray(green, dtype=np.float32)
    swir1 = np.asarray(swir1, dtype=np.float32)
    if green.shape != swir1.shape or green.ndim != 3 or green.shape[0] != len(times):
        raise GlacierFlowError("Green and SWIR1 must be (T, H, W) stacks of the same shape, one time per scene.")
    missing = np.maximum(np.isnan(green).mean(axis=(1, 2)), np.isnan(swir1).mean(axis=(1, 2)))
    keep = np.flatnonzero(missing <= max_missing_fraction)
    if len(keep) < len(times):
        feedback.info(f"Dropped {len(times) - len(keep)} of {len(times)} scenes missing more than "
                      f"{max_missing_fraction:.0%} of their pixels.")
    if not len(keep):
        raise GlacierFlowError("Every scene is mostly cloud or no data: widen the date range or the cloud limit.")
    filled_green = np.empty((len(keep),) + green.shape[1:], dtype=np.float32)
    filled_swir1 = np.empty_like(filled_green)
    for position, scene in enumerate(keep):
        if feedback.is_cancelled():
            raise JobCancelled()
        filled_green[position] = fill_gaps(green[scene])
        filled_swir1[position] = fill_gaps(swir1[scene])
        feedback.progress(60.0 * (position + 1) / len(keep))
    if align:
        # ECC runs on green and the same warp moves SWIR1 (both bands share the sensor's geometry).
        # Green keeps the terrain's shading texture under snow (bright snow x illumination), whereas
        # SWIR1 goes dark and flat on snow, and NDSI saturates on snow and is the very quantity whose
        # seasonal change we forecast: aligning on it would partly align the snow line away.
        filled_green, warps = align_series(filled_green, align, feedback=feedback)
        for position, warp in enumerate(warps):
            filled_swir1[position] = apply_warp(filled_swir1[position], warp)
    feedback.progress(80.0)
    masks = snow_mask(ndsi(filled_green, filled_swir1), threshold)
    kept_times = [times[i] for i in keep]
    starts, averaged, scenes = window_average_with_counts(kept_times, masks, window_months)
    filled = [int(i) for i in np.flatnonzero(scenes == 0)]
    if filled:
        feedback.info(f"{len(filled)} of {len(starts)} windows had no scene and were interpolated in time.")
    feedback.progress(100.0)
    return NdsiSeries(averaged, starts, window_months, threshold, grid, filled)


def _warn(feedback: Feedback | None, message: str) -> None:
    LOG.warning(message)
    if feedback is not None:
        feedback.warning(message)
