"""HTML reports with pictures for velocity products and NDSI forecasts: one self-contained page (figures
embedded as PNG, no network), each figure with the numbers behind it.

Velocity report: a summary table, the speed map with flow arrows, the speed histogram, and, when their
inputs are given, the stable-ground scatter (vx against vy offsets), the GPS-stake scatter and the
comparison with a reference field. Forecast report: the last observed windows and every forecast window
as map panels, the snow-covered share per window and the hindcast scores.
"""
from __future__ import annotations

import html
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

from ..errors import GlacierFlowError
from ..geo.grid import Window
from ..io.atomic import write_text
from ..products.velocity import VelocityProduct, open_velocity
from .export import sampled_arrows
from .figures import html_image, new_figure

MAP_PIXELS = 900  # the speed map is read at most this many pixels across
SCATTER_POINTS = 20000  # scatter plots draw at most this many points (a random, seeded subset)


@dataclass(frozen=True)
class Section:
    """A report section: heading, figure (an <img> tag or ""), the numbers behind it, and notes."""

    heading: str
    figure: str = ""
    numbers: Mapping[str, Any] = field(default_factory=dict)
    note: str = ""


@dataclass(frozen=True)
class ReferenceInput:
    """A reference velocity field: x and y components (rasters or NETCDF:"file":var) and their units."""

    vx: str
    vy: str
    units: str = "m/yr"


@dataclass(frozen=True)
class VelocityReportInputs:
    """Optional validation inputs of a velocity report (paths; any CRS)."""

    stable_areas: str | None = None
    glacier_outlines: str | None = None
    stakes: str | None = None
    reference: ReferenceInput | None = None


# --- page ------------------------------------------------------------------------------------------------

def render_page(title: str, subtitle: str, sections: Sequence[Section]) -> str:
    """The HTML text of a report page."""
    body = []
    for section in sections:
        rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_format(v))}</td></tr>"
                       for k, v in section.numbers.items())
        body.append(f"<section><h2>{html.escape(section.heading)}</h2>"
                    + (f"<div class='figure'>{section.figure}</div>" if section.figure else "")
                    + (f"<table>{rows}</table>" if rows else "")
                    + (f"<p class='note'>{html.escape(section.note)}</p>" if section.note else "") + "</section>")
    created = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:auto;padding:1em;color:#222}}
table{{border-collapse:collapse;margin:0.5em 0}} th,td{{border:1px solid #bbb;padding:2px 8px}}
th{{text-align:left;background:#f3f3f3;font-weight:normal}} td{{text-align:right}}
.figure img{{max-width:100%}} .note{{color:#666}} section{{margin-bottom:2em}}</style></head><body>
<h1>{html.escape(title)}</h1><p>{html.escape(subtitle)}</p><p class="note">Made by GlacierFlow, {created}.</p>
{"".join(body)}
</body></html>
"""


def _format(value: Any) -> str:
    if isinstance(value, float):
        return "–" if not np.isfinite(value) else f"{value:.4g}"
    return str(value)


def _section_or_note(heading: str, build: Any) -> Section:
    """``build()``'s section, or the heading with the reason it could not be made (the page still comes)."""
    try:
        return build()
    except GlacierFlowError as error:
        return Section(heading, note=f"Not available: {error}")


# --- velocity ---------------------------------------------------------------------------------------------

def velocity_report(path: str, output: str, inputs: VelocityReportInputs | None = None, title: str = "") -> str:
    """Write the HTML report of the velocity product ``path`` to ``output``; returns ``output``."""
    inputs = inputs or VelocityReportInputs()
    product = open_velocity(path)
    vx, vy = product.read("vx"), product.read("vy")
    speed = np.hypot(vx, vy)
    sections = [summary_section(product, speed), speed_map_section(product), histogram_section(speed)]
    if inputs.stable_areas or inputs.glacier_outlines or product.has("glacier"):
        sections.append(_section_or_note("Stable ground", lambda: stable_ground_section(path, product, vx, vy,
                                                                                          inputs)))
    if inputs.stakes:
        sections.append(_section_or_note("GPS stakes", lambda: stakes_section(path, inputs.stakes or "")))
    if inputs.reference:
        reference = inputs.reference
        sections.append(_section_or_note("Reference velocity", lambda: reference_section(product, vx, vy,
                                                                                          reference)))
    subtitle = f"{os.path.basename(path)}: {product.acquisition_a or '?'} to {product.acquisition_b or '?'}"
    return write_text(output, render_page(title or "Glacier velocity report", subtitle, sections))


def summary_section(product: VelocityProduct, speed: np.ndarray) -> Section:
    """What the product is and its speed percentiles (m/yr)."""
    finite = speed[np.isfinite(speed)]
    numbers: dict[str, Any] = {
        "kind": product.kind or "velocity raster", "engine": product.engine or "–",
        "first acquisition": product.acquisition_a or "–", "second / last acquisition": product.acquisition_b or "–",
        "interval (days)": product.interval_days if product.interval_days is not None else "–",
        "size (px)": f"{product.grid.width} x {product.grid.height}",
        "pixel (m)": f"{product.grid.pixel_size[0]:g} x {product.grid.pixel_size[1]:g}",
        "pixels with velocity (%)": 100.0 * finite.size / max(1, speed.size)}
    if finite.size:
        for label, q in (("median", 50), ("90th percentile", 90), ("98th percentile", 98)):
            numbers[f"speed {label} (m/yr)"] = float(np.percentile(finite, q))
        numbers["speed maximum (m/yr)"] = float(finite.max())
    return Section("Summary", numbers=numbers)


def _overview(product: VelocityProduct, name: str, step: int) -> np.ndarray:
    source = product.dataset.GetRasterBand(product.bands[name])
    width, height = max(1, product.grid.width // step), max(1, product.grid.height // step)
    values = source.ReadAsArray(buf_xsize=width, buf_ysize=height).astype(float)
    nodata = source.GetNoDataValue()
    if nodata is not None and np.isfinite(nodata):
        values[values == nodata] = np.nan
    return values


def speed_map_section(product: VelocityProduct) -> Section:
    """Speed (viridis, m/yr) with flow arrows, in km of the product's CRS."""
    grid = product.grid
    step = max(1, int(np.ceil(max(grid.width, grid.height) / MAP_PIXELS)))
    speed = np.hypot(_overview(product, "vx", step), _overview(product, "vy", step))
    finite = speed[np.isfinite(speed)]
    top = float(np.percentile(finite, 98)) if finite.size else 1.0
    xmin, ymin, xmax, ymax = grid.bounds()
    figure = new_figure(7.5, 6.0)
    axes = figure.add_subplot(1, 1, 1)
    north_up = grid.transform[5] < 0
    image = axes.imshow(speed if north_up else speed[::-1], extent=(xmin / 1e3, xmax / 1e3, ymin / 1e3, ymax / 1e3),
                        cmap="viridis", vmin=0, vmax=top or 1.0, interpolation="nearest")
    figure.colorbar(image, ax=axes, label="Speed (m/yr)", shrink=0.8)
    arrows = sampled_arrows(product, max(1, max(grid.width, grid.height) // 25), 0.1 * top)
    if len(arrows):
        axes.quiver(arrows.x / 1e3, arrows.y / 1e3, arrows.vx, arrows.vy, color="white", edgecolor="black",
                    linewidth=0.3, scale=top * 25 if top > 0 else None, width=0.004)
    axes.set_xlabel("x (km)")
    axes.set_ylabel("y (km)")
    axes.set_aspect("equal")
    numbers = {"arrows": len(arrows), "colour scale top, 98th percentile (m/yr)": top}
    return Section("Speed and flow direction", html_image(figure, "speed map with flow arrows"), numbers)


def histogram_section(speed: np.ndarray) -> Section:
    """Histogram of the finite speeds (m/yr) with its mean, median and spread."""
    finite = speed[np.isfinite(speed)]
    if not finite.size:
        return Section("Speed histogram", note="No pixel has a velocity.")
    figure = new_figure(7.0, 3.5)
    axes = figure.add_subplot(1, 1, 1)
    top = float(np.percentile(finite, 99.5))
    axes.hist(finite[finite <= top], bins=60, color="#3b528b")
    axes.set_xlabel("Speed (m/yr)")
    axes.set_ylabel("Pixels")
    numbers = {"pixels": int(finite.size), "mean (m/yr)": float(finite.mean()),
               "median (m/yr)": float(np.median(finite)),
               "standard deviation (m/yr)": float(finite.std()), "shown up to, 99.5th percentile (m/yr)": top}
    return Section("Speed histogram", html_image(figure, "speed histogram"), numbers)


def _subset(count: int, limit: int = SCATTER_POINTS) -> np.ndarray:
    if count <= limit:
        return np.arange(count)
    return np.sort(np.random.default_rng(0).choice(count, limit, replace=False))


def stable_ground_section(path: str, product: VelocityProduct, vx: np.ndarray, vy: np.ndarray,
                          inputs: VelocityReportInputs) -> Section:
    """vx against vy on stable ground (should scatter around 0, 0), with the median offsets and NMAD."""
    from ..validation.stable_ground import StableGroundJob, StableMask, stable_statistics

    masker = StableMask(StableGroundJob(path, inputs.stable_areas, inputs.glacier_outlines), product)
    stable = masker.mask(Window(0, 0, product.grid.width, product.grid.height)) & np.isfinite(vx) & np.isfinite(vy)
    sx, sy = vx[stable].astype(float), vy[stable].astype(float)
    stats = stable_statistics(sx, sy, product.grid, product.metadata, masker.description)
    figure = new_figure(5.0, 5.0)
    axes = figure.add_subplot(1, 1, 1)
    shown = _subset(sx.size)
    axes.scatter(sx[shown], sy[shown], s=2, alpha=0.3, color="#21918c")
    axes.axhline(0, color="grey", linewidth=0.8)
    axes.axvline(0, color="grey", linewidth=0.8)
    axes.plot(stats["vx"]["median"], stats["vy"]["median"], "r+", markersize=14, label="median offset")
    limit = max(3 * stats["vx"]["nmad"], 3 * stats["vy"]["nmad"], abs(stats["vx"]["median"]) * 2,
                abs(stats["vy"]["median"]) * 2, 1e-3)
    axes.set_xlim(-limit, limit)
    axes.set_ylim(-limit, limit)
    axes.set_aspect("equal")
    axes.set_xlabel("vx on stable ground (m/yr)")
    axes.set_ylabel("vy on stable ground (m/yr)")
    axes.legend(fontsize=8)
    numbers = {"stable pixels": stats["pixel_count"], "vx median (m/yr)": stats["vx"]["median"],
               "vy median (m/yr)": stats["vy"]["median"], "vx NMAD (m/yr)": stats["vx"]["nmad"],
               "vy NMAD (m/yr)": stats["vy"]["nmad"], "offset speed (m/yr)": stats["offset_speed"]}
    if "offset_px" in stats:
        numbers["offset (px over the interval)"] = stats["offset_px"]
    return Section("Stable ground", html_image(figure, "stable-ground velocity scatter"), numbers,
                   f"Stable ground: {masker.description}.")


def stakes_section(path: str, stakes_path: str) -> Section:
    """Measured against estimated speed at the GPS stakes, with bias and RMSE (m/yr)."""
    from ..validation.stakes import compare_stakes, read_stakes

    comparison = compare_stakes(read_stakes(stakes_path), [path])
    pairs = [(s.measured_speed, s.estimated_speed) for s in comparison.samples
             if np.isfinite(s.measured_speed) and np.isfinite(s.estimated_speed)]
    if not pairs:
        raise GlacierFlowError("no stake lies on a pixel with a velocity.")
    measured, estimated = np.array(pairs).T
    figure = new_figure(5.0, 5.0)
    axes = figure.add_subplot(1, 1, 1)
    axes.scatter(measured, estimated, s=20, color="#440154")
    top = float(max(measured.max(), estimated.max()) * 1.05) or 1.0
    axes.plot([0, top], [0, top], color="grey", linewidth=0.8)
    axes.set_xlabel("Measured speed (m/yr)")
    axes.set_ylabel("Estimated speed (m/yr)")
    summary = comparison.summary.get(path, {})
    numbers = {"stakes with values": int(measured.size), "bias speed (m/yr)": summary.get("bias_speed", np.nan),
               "RMSE speed (m/yr)": summary.get("rmse_speed", np.nan), "bias vx (m/yr)": summary.get("bias_vx", np.nan),
               "bias vy (m/yr)": summary.get("bias_vy", np.nan)}
    return Section("GPS stakes", html_image(figure, "measured against estimated speed"), numbers,
                   f"Stakes: {os.path.basename(stakes_path)}; differences are estimated - measured.")


def reference_section(product: VelocityProduct, vx: np.ndarray, vy: np.ndarray, reference: ReferenceInput) -> Section:
    """Product speed against a reference field's speed on the product grid, with bias and RMSE (m/yr)."""
    from ..validation.reference import ReferenceField, comparison_statistics

    field = ReferenceField(reference.vx, reference.vy, reference.units)
    if not field.overlaps(product.grid):
        raise GlacierFlowError("the reference does not overlap the product.")
    rvx, rvy = field.read(product.grid)
    both = np.isfinite(vx) & np.isfinite(vy) & np.isfinite(rvx) & np.isfinite(rvy)
    stats = comparison_statistics(np.stack([vx[both], vy[both], rvx[both], rvy[both]]))
    own, other = np.hypot(vx[both], vy[both]), np.hypot(rvx[both], rvy[both])
    figure = new_figure(5.0, 5.0)
    axes = figure.add_subplot(1, 1, 1)
    shown = _subset(own.size)
    axes.scatter(other[shown], own[shown], s=2, alpha=0.3, color="#3b528b")
    top = float(max(np.percentile(other, 99.5), np.percentile(own, 99.5)) * 1.05) or 1.0
    axes.plot([0, top], [0, top], color="grey", linewidth=0.8)
    axes.set_xlim(0, top)
    axes.set_ylim(0, top)
    axes.set_xlabel("Reference speed (m/yr)")
    axes.set_ylabel("Product speed (m/yr)")
    numbers = {key.replace("_", " "): value for key, value in stats.items() if key != "units" and value is not None}
    return Section("Reference velocity", html_image(figure, "product against reference speed"), numbers,
                   f"Reference: {os.path.basename(reference.vx)}, {os.path.basename(reference.vy)} "
                   f"({reference.units}).")


# --- forecast ---------------------------------------------------------------------------------------------

def forecast_report(forecast: str, output: str, series: str | None = None,
                    hindcast: Mapping[str, Mapping[str, float]] | None = None, title: str = "",
                    observed_windows: int = 3) -> str:
    """Write the HTML report of an NDSI forecast raster (one band per window, WINDOW_START tags) to
    ``output``: panels of the last ``observed_windows`` windows of ``series`` (when given) and of every
    forecast window, the snow-covered share per window, and the hindcast scores. Returns ``output``."""
    from ..products.ndsi import read_ndsi_series

    predicted = read_ndsi_series(forecast)
    panels = []
    if series:
        observed = read_ndsi_series(series)
        panels = [(f"observed {t:%Y-%m-%d}", frame, t) for t, frame in
                  zip(observed.times[-observed_windows:], observed.frames[-observed_windows:])]
    panels += [(f"forecast {t:%Y-%m-%d}", frame, t) for t, frame in zip(predicted.times, predicted.frames)]
    sections = [forecast_panels_section(panels, predicted.threshold)]
    if hindcast:
        numbers = {f"{model} {metric}": float(value) for model, scores in hindcast.items()
                   for metric, value in scores.items()}
        sections.append(Section("Hindcast scores", numbers=numbers,
                                note="Scores of the model and the baselines on the series' own last windows."))
    subtitle = f"{os.path.basename(forecast)}: {len(predicted.times)} windows of {predicted.window_months} months"
    return write_text(output, render_page(title or "Snow-cover (NDSI) forecast report", subtitle, sections))


def forecast_panels_section(panels: Sequence[tuple[str, np.ndarray, datetime]], threshold: float) -> Section:
    """One map panel per window (NDSI window mean, 0..1) and the share of pixels at or above ``threshold``."""
    columns = min(4, max(1, len(panels)))
    rows = int(np.ceil(len(panels) / columns))
    figure = new_figure(3.0 * columns, 2.8 * rows + 0.4)
    numbers: dict[str, Any] = {}
    image = None
    for index, (label, frame, _) in enumerate(panels):
        axes = figure.add_subplot(rows, columns, index + 1)
        # white (no snow) to blue (NDSI 1), as the map layers draw it
        image = axes.imshow(frame, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
        axes.set_title(label, fontsize=9)
        axes.set_xticks([])
        axes.set_yticks([])
        finite = frame[np.isfinite(frame)]
        numbers[f"{label}: snow-covered share (NDSI mean >= {threshold:g})"] = (
            float((finite >= threshold).mean()) if finite.size else float("nan"))
    if image is not None:
        figure.colorbar(image, ax=figure.axes, label="NDSI window mean", shrink=0.8)
    return Section("Windows", html_image(figure, "observed and forecast NDSI windows"), numbers)
