"""Annual velocity from many pair products: per-pixel robust stacking, strip by strip.

Every pair product (``core.velocity.pair``: bands vx, vy in m/yr, metadata
INTERVAL_DAYS, ACQUISITION_A/B) is read on one grid (the first product's, or
one given) a strip of rows at a time, so memory stays about
``pairs x strip rows x width`` whatever the scene size.

Per pixel, over the pairs with a finite vx and vy:

1. **Outlier rejection.** With at least ``MIN_PAIRS_TO_REJECT`` valid pairs,
   a pair is rejected when its vector differs from the per-pixel median
   vector by more than ``max(k * hypot(s_x, s_y), floor)``, where ``s`` is
   the robust standard deviation ``b_n * 1.4826 * MAD`` of each component
   (b_n: Croux & Rousseeuw's small-sample factors, 1.5 to 1.1 for 3 to 9
   values, which make it unbiased for Gaussian noise). For
   Gaussian noise of standard deviation s per component the distance is
   Rayleigh distributed and ``hypot(s_x, s_y) = sqrt(2) s``, so k = 3 rejects
   a good pair with probability ``exp(-9) ~ 1e-4``. The floor (m/yr) stops
   rejections when a few pairs agree almost exactly (the MAD of three values
   can be near zero); by default it is 1 px over the median interval of the
   stack: tracking blunders are several pixels, sub-pixel differences are
   noise. Even so, with 4 or 5 pairs about 1 % of good values fall beyond
   3 robust std and are dropped (measured on Gaussian noise); the mean
   barely changes. With fewer than three
   pairs nothing is rejected: two disagreeing pairs cannot say which is wrong.
0. **Per-pair offset.** When the job gives each pair's stable-ground offset
   (``offsets``: median vx, vy in m/yr off the glaciers), it is subtracted
   from that pair before anything else: a co-registration error of e px
   between two scenes is ``e * pixel / interval`` of spurious velocity, a
   different bias for every pair, which the stack would otherwise average in.
2. **Estimates over the kept pairs.** ``vx``/``vy``: the weighted mean.
   Weights (``weights_used`` in the metadata), first that applies:
   * ``uncertainties`` given (each pair's measured noise s_i in m/yr, e.g. the
     robust spread of its stable ground): inverse variance ``1 / s_i^2``,
     bounded to within ``MAX_WEIGHT_RATIO`` of the median weight. s_i holds
     both effects of the interval: ``e px * pixel / interval`` makes long
     pairs precise on slow ice, while decorrelation raises e on long pairs.
     On fast ice, long pairs decorrelate and fail the forward-backward check
     (NaN) or fall out as outliers, so short pairs carry the fast ice;
   * ``weight_by_interval``: the interval in days (a displacement error of
     e px gives ``e * pixel / interval``; full inverse variance would be
     interval^2, which lets one long pair dominate although decorrelation
     makes its px error grow with the interval: the interval is the
     compromise when the pairs' noise is not measured);
   * otherwise equal weights.
   ``vx_median``/``vy_median``: the unweighted median. ``vx_std``/``vy_std``:
   the sample standard deviation (ddof = 1).
3. **Uncertainty** (m/yr): the standard error of the vector,
   ``hypot(s_x, s_y) / sqrt(n_eff)`` with ``s = b_n * 1.4826 * MAD`` of the kept
   pairs and ``n_eff = (sum w)^2 / sum w^2`` (= count without weights). It is
   NaN where fewer than two pairs remain: one pair carries no spread. With
   few pairs the MAD is noisy (unbiased on average, but each pixel's value
   may be off by a factor of two): read the band as an order of magnitude.
4. **Time span** (days): per pixel, from the earliest first acquisition to
   the latest second acquisition of the kept pairs (NaN where none is kept
   or the products do not carry their acquisitions).
"""
from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..errors import GlacierFlowError
from ..feedback import Feedback, JobCancelled
from ..geo.grid import Grid, Window
from ..io.cog import ProductWriter
from ..io.raster import BandSource
from ..io.style import nice_maximum, speed_style_qml, write_style_beside
from ..io.timestamps import DAYS_PER_YEAR
from ..products import velocity as velocity_product
from ..products.velocity import STACK_BANDS, open_velocity
from .convert import speed

ROBUST_SCALE = 1.4826  # MAD -> standard deviation for Gaussian noise
MIN_PAIRS_TO_REJECT = 3
FLOOR_PX = 1.0  # default outlier floor: 1 px over the stack's median interval
STRIP_ROWS = 256
MAX_WEIGHT_RATIO = 10.0  # inverse-variance weights bounded to [median / 10, median x 10]



@dataclass
class StackJob:
    """What to stack.

    Attributes:
        inputs: pair product paths (GeoTIFFs from ``run_pair_job``), any grids and CRSs.
        output: the stacked COG's path.
        weight_by_interval: weight each pair by its interval (days) in the mean.
        outlier_k: rejection threshold in robust standard deviations (<= 0: no rejection).
        outlier_floor: m/yr below which a pair is never rejected; None: 1 px over the median interval.
        grid: the output grid; None: the first product's grid.
        strip_rows: rows read and combined at a time (memory bound).
        offsets: per input, the (vx, vy) offset in m/yr subtracted before stacking (its stable-ground
            median), or None.
        uncertainties: per input, the pair's noise in m/yr (e.g. its stable-ground spread): inverse-variance
            weights; None: ``weight_by_interval`` decides.
    """

    inputs: list[str]
    output: str
    weight_by_interval: bool = False
    outlier_k: float = 3.0
    outlier_floor: float | None = None
    grid: Grid | None = None
    strip_rows: int = STRIP_ROWS
    offsets: list[tuple[float, float]] | None = None
    uncertainties: list[float] | None = None


@dataclass
class PairInfo:
    """One input pair: its file, bands and interval (days, None when the product does not say)."""

    path: str
    vx: BandSource
    vy: BandSource
    interval_days: float | None
    acquisition_a: str = ""
    acquisition_b: str = ""
    engine: str = ""

    def describe(self) -> dict[str, object]:
        """A JSON-ready summary for the output's metadata."""
        return {"file": os.path.basename(self.path), "acquisition_a": self.acquisition_a,
                "acquisition_b": self.acquisition_b, "interval_days": self.interval_days, "engine": self.engine}


@dataclass
class StackResult:
    """What the stacking produced."""

    output: str
    style: str
    grid: Grid
    pair_count: int
    median_count: float
    rejected_fraction: float
    median_speed: float
    median_uncertainty: float
    seconds: float
    metadata: dict[str, str] = field(default_factory=dict)


def open_pair(path: str) -> PairInfo:
    """Open a pair product: its vx and vy bands, its interval and acquisitions."""
    product = open_velocity(path)
    return PairInfo(path, product.source("vx"), product.source("vy"), product.interval_days,
                    product.acquisition_a, product.acquisition_b, product.engine)


def run_stack_job(job: StackJob, feedback: Feedback | None = None) -> StackResult:
    """Stack the pairs into one product; on error or cancel no output file is left behind."""
    feedback = feedback or Feedback()
    started = time.perf_counter()
    pairs = _open_pairs(job)
    grid = job.grid or pairs[0].vx.grid
    weights = pair_weights(pairs, job)
    floor = _outlier_floor(job, pairs, grid)
    _announce(pairs, grid, floor, job, feedback)
    with ProductWriter(job.output, grid, STACK_BANDS) as writer:
        tally = _stack_strips(job, pairs, grid, weights, floor, writer, feedback)
        summary = tally.summary()
        metadata = _metadata(job, pairs, floor, summary, weights)
        writer.finish(metadata)
    style = write_style_beside(job.output, speed_style_qml(nice_maximum(summary["p95_speed"])))
    seconds = time.perf_counter() - started
    feedback.info(f"Stacked {len(pairs)} pair(s) in {seconds:.1f} s: median {summary['median_count']:.1f} pairs "
                  f"per pixel, {100 * summary['rejected_fraction']:.2f} % of valid values rejected, median "
                  f"speed {summary['median_speed']:.1f} m/yr, median uncertainty "
                  f"{summary['median_uncertainty']:.1f} m/yr")
    return StackResult(job.output, style, grid, len(pairs), summary["median_count"], summary["rejected_fraction"],
                       summary["median_speed"], summary["median_uncertainty"], seconds, metadata)


def _open_pairs(job: StackJob) -> list[PairInfo]:
    if not job.inputs:
        raise GlacierFlowError("No velocity pair given: choose at least one pair product to stack.")
    if len(set(os.path.abspath(p) for p in job.inputs)) != len(job.inputs):
        raise GlacierFlowError("The same pair product is listed twice: each pair must be stacked once.")
    if job.strip_rows < 1:
        raise GlacierFlowError(f"Strip rows must be at least 1 (got {job.strip_rows}).")
    return [open_pair(path) for path in job.inputs]


def pair_weights(pairs: list[PairInfo], job: StackJob) -> np.ndarray:
    """Per-pair weights (n,): bounded inverse variance of ``job.uncertainties`` (m/yr), else the interval in
    days with ``weight_by_interval``, else 1 for all (see the module docstring)."""
    if job.uncertainties is not None:
        sigma = np.asarray(job.uncertainties, dtype=np.float64)
        if sigma.shape != (len(pairs),) or not np.all(np.isfinite(sigma) & (sigma > 0)):
            raise GlacierFlowError("Each pair needs a positive, finite uncertainty (m/yr) for inverse-variance "
                                   f"weights; got {list(job.uncertainties)} for {len(pairs)} pair(s).")
        weights = 1.0 / sigma ** 2
        middle = float(np.median(weights))
        return np.clip(weights, middle / MAX_WEIGHT_RATIO, middle * MAX_WEIGHT_RATIO)
    if not job.weight_by_interval:
        return np.ones(len(pairs), dtype=np.float64)
    missing = [os.path.basename(p.path) for p in pairs if p.interval_days is None]
    if missing:
        raise GlacierFlowError(
            f"Weighting by interval needs INTERVAL_DAYS in every product; missing in {', '.join(missing)}. "
            "Recompute those pairs or stack without weighting.")
    return np.array([p.interval_days for p in pairs], dtype=np.float64)


def _outlier_floor(job: StackJob, pairs: list[PairInfo], grid: Grid) -> float:
    """The outlier floor in m/yr: the job's, or 1 px over the median interval (365.25 d if unknown)."""
    if job.outlier_floor is not None:
        if job.outlier_floor < 0:
            raise GlacierFlowError(f"The outlier floor must be at least 0 m/yr (got {job.outlier_floor}).")
        return float(job.outlier_floor)
    intervals = [p.interval_days for p in pairs if p.interval_days is not None]
    days = float(np.median(intervals)) if intervals else DAYS_PER_YEAR
    return FLOOR_PX * max(grid.pixel_size) * DAYS_PER_YEAR / days


def _announce(pairs: list[PairInfo], grid: Grid, floor: float, job: StackJob, feedback: Feedback) -> None:
    for pair in pairs:
        days = f"{pair.interval_days:.2f} days" if pair.interval_days is not None else "interval unknown"
        feedback.info(f"Pair {os.path.basename(pair.path)}: {pair.acquisition_a or '?'} -> "
                      f"{pair.acquisition_b or '?'}, {days}")
    feedback.info(f"Output grid: {grid.width} x {grid.height} px at {grid.pixel_size[0]:g} m; outliers beyond "
                  f"{job.outlier_k:g} robust std (at least {floor:.1f} m/yr) rejected")
    if len(pairs) == 1:
        feedback.warning("Only one pair: the 'stack' is that pair (count 1, uncertainty NaN, no outlier "
                         "rejection). Add pairs for an uncertainty estimate.")
    elif len(pairs) < MIN_PAIRS_TO_REJECT:
        feedback.warning(f"Only {len(pairs)} pairs: outliers cannot be told apart with fewer than "
                         f"{MIN_PAIRS_TO_REJECT}, so none are rejected.")


def _offsets(job: StackJob, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-pair (vx, vy) offsets (n, 1, 1) in m/yr to subtract: the job's, or zeros."""
    if job.offsets is None:
        return np.zeros((count, 1, 1)), np.zeros((count, 1, 1))
    offsets = np.asarray(job.offsets, dtype=np.float64)
    if offsets.shape != (count, 2) or not np.all(np.isfinite(offsets)):
        raise GlacierFlowError(f"Give one finite (vx, vy) offset in m/yr per pair ({count}), not {job.offsets}.")
    return offsets[:, 0, None, None], offsets[:, 1, None, None]


def _acquisition_days(pairs: list[PairInfo]) -> tuple[np.ndarray, np.ndarray]:
    """First and second acquisition of each pair in days since 1970 (NaN when a product lacks them)."""
    from ..io.timestamps import SECONDS_PER_DAY, parse_datetime

    def days(text: str) -> float:
        try:
            return parse_datetime(text).timestamp() / SECONDS_PER_DAY if text else float("nan")
        except (ValueError, GlacierFlowError):
            return float("nan")

    return (np.array([days(p.acquisition_a) for p in pairs]), np.array([days(p.acquisition_b) for p in pairs]))


def _stack_strips(job: StackJob, pairs: list[PairInfo], grid: Grid, weights: np.ndarray, floor: float,
                  writer: ProductWriter, feedback: Feedback) -> _Tally:
    tally = _Tally()
    offset_x, offset_y = _offsets(job, len(pairs))
    starts, ends = _acquisition_days(pairs)
    tops = list(range(0, grid.height, job.strip_rows))
    for index, top in enumerate(tops):
        if feedback.is_cancelled():
            raise JobCancelled("Cancelled by the user")
        strip = grid.window_grid(Window(0, top, grid.width, min(job.strip_rows, grid.height - top)))
        vx = np.stack([p.vx.read(strip) for p in pairs]) - offset_x
        vy = np.stack([p.vy.read(strip) for p in pairs]) - offset_y
        product = combine(vx, vy, weights, job.outlier_k, floor, starts, ends)
        writer.write_rows(top, product)
        tally.add(product, vx)
        for pair in pairs:
            pair.vx.drop_cache()
            pair.vy.drop_cache()
        feedback.progress(100.0 * (index + 1) / len(tops))
    return tally


def combine(vx: np.ndarray, vy: np.ndarray, weights: np.ndarray, outlier_k: float = 3.0,
            floor: float = 0.0, starts: np.ndarray | None = None,
            ends: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-pixel robust combination of (n, rows, cols) vx, vy (m/yr, NaN = no data) into the stack bands.

    ``weights`` (n,) weight the mean; ``starts``, ``ends`` (n,): each pair's acquisitions in days (any
    origin) for the time span band (NaN without them); see the module docstring for the
    rejection rule and the uncertainty. Returns float32 (rows, cols) arrays
    named as :data:`STACK_BANDS`.
    """
    valid = np.isfinite(vx) & np.isfinite(vy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels give NaN, as they should
        kept = valid & ~_outliers(vx, vy, valid, outlier_k, floor)
        kx, ky = np.where(kept, vx, np.nan), np.where(kept, vy, np.nan)
        count = kept.sum(axis=0)
        mean_x, mean_y, n_eff = _weighted_means(kx, ky, kept, weights)
        spread = np.hypot(_robust_std(kx), _robust_std(ky))
        uncertainty = np.where(count >= 2, spread / np.sqrt(n_eff), np.nan)
        product = {"vx": mean_x, "vy": mean_y, "speed": speed(mean_x, mean_y), "uncertainty": uncertainty,
                   "count": count, "vx_median": np.nanmedian(kx, axis=0), "vy_median": np.nanmedian(ky, axis=0),
                   "vx_std": _std(kx, count), "vy_std": _std(ky, count),
                   "rejected": (valid & ~kept).sum(axis=0), "time_span": _time_span(kept, starts, ends)}
    return {name: np.asarray(array, dtype=np.float32) for name, array in product.items()}


def _time_span(kept: np.ndarray, starts: np.ndarray | None, ends: np.ndarray | None) -> np.ndarray:
    """Days from the earliest start to the latest end of the kept pairs per pixel (NaN where none)."""
    if starts is None or ends is None:
        return np.full(kept.shape[1:], np.nan)
    first = np.where(kept, np.asarray(starts, dtype=np.float64)[:, None, None], np.inf).min(axis=0)
    last = np.where(kept, np.asarray(ends, dtype=np.float64)[:, None, None], -np.inf).max(axis=0)
    return np.where(kept.any(axis=0), last - first, np.nan)


def _outliers(vx: np.ndarray, vy: np.ndarray, valid: np.ndarray, k: float, floor: float) -> np.ndarray:
    """Bool (n, rows, cols): pairs farther from the median vector than max(k * robust spread, floor)."""
    count = valid.sum(axis=0)
    if k <= 0 or vx.shape[0] < MIN_PAIRS_TO_REJECT:
        return np.zeros(vx.shape, dtype=bool)
    mx, my = np.nanmedian(vx, axis=0), np.nanmedian(vy, axis=0)
    threshold = np.maximum(k * np.hypot(_robust_std(vx, mx), _robust_std(vy, my)), floor)
    distance = np.hypot(vx - mx, vy - my)
    return valid & (distance > threshold) & (count >= MIN_PAIRS_TO_REJECT)


def _robust_std(values: np.ndarray, median: np.ndarray | None = None) -> np.ndarray:
    """Unbiased robust standard deviation along axis 0: b_n x 1.4826 x MAD (NaN ignored)."""
    median = np.nanmedian(values, axis=0) if median is None else median
    count = np.isfinite(values).sum(axis=0)
    return small_sample_factor(count) * ROBUST_SCALE * np.nanmedian(np.abs(values - median), axis=0)


def small_sample_factor(count: np.ndarray) -> np.ndarray:
    """Croux & Rousseeuw (1992) b_n making 1.4826 x MAD unbiased for n Gaussian values (n > 9: n / (n - 0.8))."""
    n = np.maximum(np.asarray(count, dtype=np.float64), 1.0)
    table = np.array([1.0, 1.0, 1.196, 1.495, 1.363, 1.206, 1.200, 1.140, 1.129, 1.107])
    return np.where(n <= 9, table[np.minimum(n, 9).astype(int)], n / np.maximum(n - 0.8, 1e-9))


def _weighted_means(kx: np.ndarray, ky: np.ndarray, kept: np.ndarray,
                    weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted means of the kept values and the effective count (sum w)^2 / sum w^2."""
    w = np.where(kept, weights[:, None, None], 0.0)
    total = w.sum(axis=0)
    mean_x = np.nansum(w * np.nan_to_num(kx), axis=0) / total
    mean_y = np.nansum(w * np.nan_to_num(ky), axis=0) / total
    n_eff = total ** 2 / (w ** 2).sum(axis=0)
    return mean_x, mean_y, n_eff


def _std(values: np.ndarray, count: np.ndarray) -> np.ndarray:
    return np.where(count >= 2, np.nanstd(values, axis=0, ddof=1), np.nan)


class _Tally:
    """Running figures for the summary, without keeping the scene in memory."""

    def __init__(self) -> None:
        self.valid_values = 0
        self.rejected = 0
        self.samples: dict[str, list[np.ndarray]] = {"speed": [], "uncertainty": [], "count": []}

    def add(self, product: dict[str, np.ndarray], vx: np.ndarray) -> None:
        self.valid_values += int(np.isfinite(vx).sum())
        self.rejected += int(product["rejected"].sum())
        covered = product["count"] > 0
        for name in self.samples:
            values = product[name][covered & np.isfinite(product[name])]
            step = max(1, values.size // 2000)  # bounded, evenly spread subsample for medians
            self.samples[name].append(values[::step].copy())

    def summary(self) -> dict[str, float]:
        values = {name: np.concatenate(parts) if parts else np.zeros(0) for name, parts in self.samples.items()}
        if values["speed"].size == 0:
            raise GlacierFlowError("No pixel has a valid velocity in any pair: check that the pairs cover the "
                                   "same area and hold trusted pixels.")

        def median(name: str) -> float:
            return float(np.median(values[name])) if values[name].size else float("nan")

        return {"median_count": median("count"), "median_speed": median("speed"),
                "median_uncertainty": median("uncertainty"), "p95_speed": float(np.percentile(values["speed"], 95)),
                "rejected_fraction": self.rejected / max(self.valid_values, 1)}


def _weighting_text(job: StackJob) -> str:
    if job.uncertainties is not None:
        return f" weighted by inverse variance of each pair's uncertainty (bounded to x{MAX_WEIGHT_RATIO:g})"
    return " weighted by interval (days)" if job.weight_by_interval else ""


def _metadata(job: StackJob, pairs: list[PairInfo], floor: float, summary: dict[str, float],
              weights: np.ndarray) -> dict[str, str]:
    starts = sorted(p.acquisition_a for p in pairs if p.acquisition_a)
    ends = sorted(p.acquisition_b for p in pairs if p.acquisition_b)
    metadata = {
        velocity_product.KIND: velocity_product.STACK,
        "PAIR_COUNT": str(len(pairs)),
        "PAIRS": json.dumps([p.describe() for p in pairs]),
        "FIRST_ACQUISITION": starts[0] if starts else "",
        "LAST_ACQUISITION": ends[-1] if ends else "",
        "ESTIMATOR": "mean of the kept pairs" + _weighting_text(job),
        "WEIGHT_BY_INTERVAL": "yes" if job.weight_by_interval and job.uncertainties is None else "no",
        "PAIR_WEIGHTS": json.dumps([round(float(w), 6) for w in weights / weights.sum()]),
        "PAIR_OFFSETS_M_PER_YR": json.dumps(job.offsets) if job.offsets is not None else "none",
        "OUTLIER_K": f"{job.outlier_k:g}",
        "OUTLIER_FLOOR_M_PER_YR": f"{floor:.3f}",
        "UNCERTAINTY": "hypot(b_n 1.4826 MAD of vx, of vy) / sqrt(effective count), 1 sigma, m/yr",
        "MEDIAN_COUNT": f"{summary['median_count']:g}",
        "REJECTED_FRACTION": f"{summary['rejected_fraction']:.5f}",
        "MEDIAN_SPEED_M_PER_YR": f"{summary['median_speed']:.3f}",
        "MEDIAN_UNCERTAINTY_M_PER_YR": f"{summary['median_uncertainty']:.3f}",
        "VELOCITY_UNITS": "m/yr (365.25-day year)",
    }
    for index, pair in enumerate(pairs, start=1):
        days = f"{pair.interval_days:.6f}" if pair.interval_days is not None else "unknown"
        metadata[f"PAIR_{index}"] = (f"{os.path.basename(pair.path)}; {pair.acquisition_a or '?'} -> "
                                     f"{pair.acquisition_b or '?'}; {days} days")
    return metadata
