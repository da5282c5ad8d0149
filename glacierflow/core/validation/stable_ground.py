"""Stable-ground statistics of a velocity product, and optional correction of the offset.

Ground that should not move (rock, moraine-free bedrock, buildings) shows
what remains of co-registration and tracking errors. The stable mask is,
in order of preference:

1. the user's **stable-area polygons** (any CRS), less the buffered glaciers
   when outlines are given too, or
2. **off-glacier ground**: everything outside the glacier outlines (polygons,
   any CRS; or the product's own ``glacier`` band) grown by a buffer, so the
   margins, where outlines are uncertain and ice drags rock debris, are left
   out. The default buffer is ``max(2 px, 30 m)``: two pixels cover the
   outline's rasterisation and the flow filter's support, 30 m is the
   typical positional error of RGI outlines.

intersected with the pixels whose vx and vy are finite. On it: the median
offset of vx and vy (m/yr), their spread (1.4826 x MAD and the standard
deviation), the half-width of their 95 % range ``0.5 * (p97.5 - p2.5)``
and the pixel count. The correction subtracts the median offsets from vx
and vy and recomputes speed. The statistics go into the output's metadata
(``STABLE_*``) and into a JSON report with a human-readable ``.txt`` beside.
Only the stable pixels' values are kept in memory (8 bytes per pixel); the
scene is read strip by strip.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import GlacierFlowError
from ..feedback import Feedback, JobCancelled
from ..geo.grid import Grid, Window
from ..geo.outlines import GlacierOutlines
from ..io.cog import ProductWriter
from ..io.style import nice_maximum, speed_style_qml, write_style_beside
from ..io.timestamps import DAYS_PER_YEAR
from ..products.velocity import VelocityProduct, open_velocity
from ..velocity.convert import speed
from .reports import ValidationResult, write_json_and_text

ROBUST_SCALE = 1.4826
DEFAULT_BUFFER_PX = 2.0
DEFAULT_BUFFER_M = 30.0
MIN_STABLE_PIXELS = 100  # fewer gives a warning: the statistics are then fragile
STRIP_ROWS = 256
MAX_STABLE_ON_GLACIER = 0.25  # more of the stable ground on the product's glacier band: a mismatched mask


@dataclass
class StableGroundJob:
    """What to measure.

    Attributes:
        product: velocity product path (bands vx, vy, speed in m/yr; optional glacier).
        stable_areas: polygons of stable ground (any CRS), or None.
        glacier_outlines: glacier polygons (any CRS); off-glacier ground is stable. None: the product's
            glacier band when it has one.
        buffer_m: m grown around the glaciers before taking off-glacier ground; None: max(2 px, 30 m).
        correct: subtract the median offsets in the output.
        output: path of the output product (corrected when ``correct``), or None for statistics only.
        report: path of the JSON report (a .txt is written beside), or None.
    """

    product: str
    stable_areas: str | None = None
    glacier_outlines: str | None = None
    buffer_m: float | None = None
    correct: bool = False
    output: str | None = None
    report: str | None = None
    strip_rows: int = STRIP_ROWS


def run_stable_ground(job: StableGroundJob, feedback: Feedback | None = None) -> ValidationResult:
    """Measure the stable-ground statistics, write the report and the optional (corrected) product."""
    feedback = feedback or Feedback()
    product = open_velocity(job.product)
    masker = StableMask(job, product, feedback)
    feedback.info(f"Stable ground: {masker.description}")
    values = _collect(job, product, masker, feedback, 50.0 if job.output else 100.0)
    stats = stable_statistics(values[0], values[1], product.grid, product.metadata, masker.description)
    stats["corrected"] = bool(job.correct)
    _log(stats, feedback)
    output = _write_product(job, product, stats, feedback) if job.output else None
    report, text = write_report(job.report, stats, job.product) if job.report else (None, None)
    return ValidationResult(stats, output, report, text)


class StableMask:
    """The stable-ground mask of any window of the product grid."""

    def __init__(self, job: StableGroundJob, product: VelocityProduct, feedback: Feedback | None = None) -> None:
        crs = product.grid.crs_wkt
        feedback = feedback or Feedback()
        self.polygons = GlacierOutlines(job.stable_areas, crs, feedback=feedback) if job.stable_areas else None
        self.glaciers = GlacierOutlines(job.glacier_outlines, crs, feedback=feedback) if job.glacier_outlines \
            else None
        self.product = product
        self._check_overlap(job, feedback)
        self.use_band = self.polygons is None and self.glaciers is None and product.has("glacier")
        if self.polygons is None and self.glaciers is None and not self.use_band:
            raise GlacierFlowError(
                "No stable ground defined: give stable-area polygons, or glacier outlines (off-glacier ground "
                "is then stable), or a product computed with glacier outlines.")
        pixel = max(product.grid.pixel_size)
        buffer_m = job.buffer_m if job.buffer_m is not None else max(DEFAULT_BUFFER_PX * pixel, DEFAULT_BUFFER_M)
        if buffer_m < 0:
            raise GlacierFlowError(f"The buffer must be at least 0 m (got {buffer_m} m).")
        self.buffer_m = float(buffer_m)
        self.buffer_px = int(math.ceil(buffer_m / pixel - 1e-9))
        self.description = self._describe(job)

    def _check_overlap(self, job: StableGroundJob, feedback: Feedback) -> None:
        """Outlines that miss the product would make all of it, glacier included, "stable" ground."""
        grid = self.product.grid
        if self.polygons is not None and not self.polygons.touches(grid):
            raise GlacierFlowError(
                f"No stable-area polygon of '{os.path.basename(str(job.stable_areas))}' touches the product: "
                "draw them inside the raster, or check their CRS.")
        if self.glaciers is None or self.glaciers.touches(grid):
            return
        name = os.path.basename(str(job.glacier_outlines))
        if self.polygons is None and self.product.has("glacier"):
            feedback.warning(f"No glacier outline of '{name}' touches the product: its own glacier band is used "
                             "instead. Check the outlines' CRS and region.")
            self.glaciers = None
        elif self.polygons is None:
            raise GlacierFlowError(
                f"No glacier outline of '{name}' touches the product, so the whole raster, glacier included, would "
                "count as stable ground. Give the outlines of this glacier (check their CRS), or stable-area "
                "polygons.")
        else:
            feedback.warning(f"No glacier outline of '{name}' touches the product: only the stable-area polygons "
                             "define stable ground.")
            self.glaciers = None

    def _describe(self, job: StableGroundJob) -> str:
        parts = []
        if self.polygons is not None:
            parts.append(f"inside {self.polygons.count} stable-area polygon(s) from "
                         f"{os.path.basename(str(job.stable_areas))}")
        if self.glaciers is not None or self.use_band:
            source = (f"the outlines {os.path.basename(str(job.glacier_outlines))}" if self.glaciers is not None
                      else "the product's glacier band")
            parts.append(f"off-glacier ground outside {source} grown by {self.buffer_m:g} m ({self.buffer_px} px)")
        return " and ".join(parts)

    def mask(self, window: Window) -> np.ndarray:
        """Bool (rows, cols): stable ground in ``window`` of the product grid."""
        grid = self.product.grid
        stable = np.ones((window.height, window.width), dtype=bool)
        if self.polygons is not None:
            stable &= self.polygons.mask(grid.window_grid(window))
        if self.glaciers is not None or self.use_band:
            halo = self.buffer_px
            padded = Window(window.col_off - halo, window.row_off - halo, window.width + 2 * halo,
                            window.height + 2 * halo)
            ice = _dilate(self._glacier(grid.window_grid(padded)), halo)
            stable &= ~ice[halo:halo + window.height, halo:halo + window.width]
        return stable

    def _glacier(self, grid: Grid) -> np.ndarray:
        if self.glaciers is not None:
            return self.glaciers.mask(grid)
        band = self.product.read("glacier", grid)
        return ~(band == 0)  # NaN (outside, unknown) counts as glacier: never call it stable


def _dilate(mask: np.ndarray, radius_px: int) -> np.ndarray:
    """``mask`` grown by a disk of ``radius_px`` px."""
    if radius_px <= 0:
        return mask
    import cv2

    size = 2 * radius_px + 1
    yy, xx = np.mgrid[-radius_px:radius_px + 1, -radius_px:radius_px + 1]
    kernel = ((xx ** 2 + yy ** 2) <= radius_px ** 2).astype(np.uint8).reshape(size, size)
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


def _strips(grid: Grid, rows: int) -> list[Window]:
    if rows < 1:
        raise GlacierFlowError(f"Strip rows must be at least 1 (got {rows}).")
    return [Window(0, top, grid.width, min(rows, grid.height - top)) for top in range(0, grid.height, rows)]


def _collect(job: StableGroundJob, product: VelocityProduct, masker: StableMask, feedback: Feedback,
             share: float) -> tuple:
    """vx and vy (m/yr) of every valid stable pixel, read strip by strip."""
    xs, ys = [], []
    on_glacier = 0
    check_band = not masker.use_band and product.has("glacier")
    windows = _strips(product.grid, job.strip_rows)
    for index, window in enumerate(windows):
        if feedback.is_cancelled():
            raise JobCancelled("Cancelled by the user")
        grid = product.grid.window_grid(window)
        vx, vy = product.read("vx", grid), product.read("vy", grid)
        keep = masker.mask(window) & np.isfinite(vx) & np.isfinite(vy)
        if check_band:
            on_glacier += int(np.count_nonzero(keep & (product.read("glacier", grid) == 1)))
        xs.append(vx[keep])
        ys.append(vy[keep])
        feedback.progress(share * (index + 1) / len(windows))
    vx_all, vy_all = np.concatenate(xs), np.concatenate(ys)
    _check_not_on_glacier(on_glacier, vx_all.size)
    return vx_all, vy_all


def _check_not_on_glacier(on_glacier: int, stable_count: int) -> None:
    """Refuse statistics (and so a correction) from "stable" ground that is mostly the product's own glacier."""
    if stable_count and on_glacier / stable_count > MAX_STABLE_ON_GLACIER:
        raise GlacierFlowError(
            f"{100.0 * on_glacier / stable_count:.0f} % of the stable ground lies on the product's own glacier "
            "band: the outlines or stable areas do not match this product, and an offset measured there would "
            "be the glacier's flow. Give the outlines the product was made with (or none, to use its glacier "
            "band), or stable areas on bare rock.")


def component_statistics(values: np.ndarray) -> dict[str, float]:
    """Median, 1.4826 x MAD, std, mean, 2.5/97.5 percentiles and the 95 % half-width of ``values`` (m/yr)."""
    values = values.astype(np.float64)
    median = float(np.median(values))
    low, high = (float(v) for v in np.percentile(values, [2.5, 97.5]))
    return {"median": median, "nmad": ROBUST_SCALE * float(np.median(np.abs(values - median))),
            "std": float(np.std(values)), "mean": float(np.mean(values)), "p2_5": low, "p97_5": high,
            "half_width_95": 0.5 * (high - low)}


def stable_statistics(vx: np.ndarray, vy: np.ndarray, grid: Grid, metadata: dict[str, str],
                      description: str) -> dict[str, Any]:
    """The JSON-ready statistics of stable-ground vx, vy (m/yr); fails clearly with no pixel."""
    if vx.size == 0:
        raise GlacierFlowError(
            "No stable-ground pixel has a valid velocity: the stable areas miss the raster or lie where "
            "tracking failed. Draw stable areas on bare rock inside the raster, or check the outlines' CRS.")
    stats: dict[str, Any] = {"stable_ground": description, "pixel_count": int(vx.size),
                             "stable_fraction": vx.size / float(grid.width * grid.height),
                             "units": "m/yr", "vx": component_statistics(vx), "vy": component_statistics(vy)}
    offset = math.hypot(stats["vx"]["median"], stats["vy"]["median"])
    stats["offset_speed"] = offset
    stats["median_speed"] = float(np.median(np.hypot(vx, vy)))
    days = _float(metadata.get("INTERVAL_DAYS"))
    if days:
        stats["interval_days"] = days
        stats["offset_px"] = offset * days / DAYS_PER_YEAR / max(grid.pixel_size)
    return stats


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


def _log(stats: dict[str, Any], feedback: Feedback) -> None:
    for line in summary_lines(stats):
        feedback.info(line)
    if stats["pixel_count"] < MIN_STABLE_PIXELS:
        feedback.warning(f"Only {stats['pixel_count']} stable pixels: the statistics are fragile; draw larger "
                         "stable areas.")


def summary_lines(stats: dict[str, Any]) -> list[str]:
    """Human-readable lines of the statistics (m/yr)."""
    lines = [f"Stable ground: {stats['stable_ground']}",
             f"Pixels: {stats['pixel_count']} ({100 * stats['stable_fraction']:.1f} % of the raster)"]
    for name in ("vx", "vy"):
        s = stats[name]
        lines.append(f"{name}: median offset {s['median']:+.2f} m/yr, 1.4826 MAD {s['nmad']:.2f}, std "
                     f"{s['std']:.2f}, 95 % half-width {s['half_width_95']:.2f} m/yr")
    offset = f"Offset magnitude {stats['offset_speed']:.2f} m/yr"
    if "offset_px" in stats:
        offset += f" ({stats['offset_px']:.3f} px over {stats['interval_days']:.2f} days)"
    lines.append(offset + f"; median speed on stable ground {stats['median_speed']:.2f} m/yr")
    lines.append("Correction: median offsets subtracted from vx and vy" if stats.get("corrected")
                 else "Correction: none")
    return lines


def metadata_items(stats: dict[str, Any]) -> dict[str, str]:
    """The statistics as ``STABLE_*`` metadata items (m/yr)."""
    items = {"STABLE_GROUND": stats["stable_ground"], "STABLE_PIXEL_COUNT": str(stats["pixel_count"]),
             "STABLE_OFFSET_SPEED_M_PER_YR": f"{stats['offset_speed']:.4f}",
             "STABLE_MEDIAN_SPEED_M_PER_YR": f"{stats['median_speed']:.4f}",
             "STABLE_CORRECTED": "yes" if stats.get("corrected") else "no"}
    for name in ("vx", "vy"):
        for key, label in (("median", "MEDIAN"), ("nmad", "NMAD"), ("std", "STD"), ("half_width_95", "HW95")):
            items[f"STABLE_{name.upper()}_{label}_M_PER_YR"] = f"{stats[name][key]:.4f}"
    if "offset_px" in stats:
        items["STABLE_OFFSET_PX"] = f"{stats['offset_px']:.4f}"
    return items


def _write_product(job: StableGroundJob, product: VelocityProduct, stats: dict[str, Any], feedback: Feedback) -> str:
    """Copy the product with the statistics in its metadata, its vx/vy corrected when asked."""
    output = job.output
    if output is None:
        raise GlacierFlowError("No output path was given for the corrected product.")
    off_x = stats["vx"]["median"] if job.correct else 0.0
    off_y = stats["vy"]["median"] if job.correct else 0.0
    windows = _strips(product.grid, job.strip_rows)
    specs = product.band_descriptions()
    with ProductWriter(output, product.grid, specs) as writer:
        for index, window in enumerate(windows):
            if feedback.is_cancelled():
                raise JobCancelled("Cancelled by the user")
            grid = product.grid.window_grid(window)
            arrays = {spec.name: product.read(spec.name, grid) for spec in specs}
            arrays["vx"] = arrays["vx"] - np.float32(off_x)
            arrays["vy"] = arrays["vy"] - np.float32(off_y)
            if "speed" in arrays:
                arrays["speed"] = speed(arrays["vx"], arrays["vy"])
            writer.write_rows(window.row_off, arrays)
            feedback.progress(50.0 + 50.0 * (index + 1) / len(windows))
        writer.finish({**product.metadata, **metadata_items(stats)})
    if product.has("speed"):
        p95 = product.metadata.get("P95_SPEED_M_PER_YR")
        write_style_beside(output, speed_style_qml(nice_maximum(_float(p95) or 1000.0),
                                                       band=product.bands["speed"]))
    return output


def write_report(path: str, stats: dict[str, Any], product: str) -> tuple[str, str]:
    """Write the JSON report at ``path`` and the text report beside it (.txt); returns both paths."""
    name = os.path.basename(product)
    return write_json_and_text(path, {"product": name, **stats},
                               f"GlacierFlow stable-ground statistics of {name}", summary_lines(stats))
