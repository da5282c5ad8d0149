"""Plausibility checks of a pair's inputs, before any tracking: catch what would give silently wrong velocities.

Errors where the result would be wrong (the job is refused with every problem listed), warnings where it is
only less certain. Checked (see docs/errors.md):

- pixel sizes of A and B differing more than :data:`MAX_PIXEL_RATIO` (the finer image is blurred to the
  coarser's detail unevenly and the flow locks onto resampling patterns: stable ground "moves");
- a common area narrower than :data:`MIN_TRACKABLE_SIDE_PX` (no tile fits: the flow is all edge);
- a job grid much finer than the images (:data:`FINE_GRID_WARNING_RATIO`, :data:`FINE_GRID_ERROR_RATIO`);
- acquisition times from ``TIFFTAG_DATETIME`` (usually when the file was written);
- a date-only time mixed with an exact one when the half-day error is more than
  :data:`MAX_TIMING_ERROR_FRACTION` of the interval (refused unless the user gave both dates);
- intervals under :data:`MIN_INTERVAL_DAYS` or over :data:`MAX_INTERVAL_DAYS` (warning over
  :data:`LONG_INTERVAL_WARNING_DAYS`);
- speeds beyond :data:`MAX_PLAUSIBLE_SPEED_M_PER_YR` (after the job, :func:`check_speeds`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import GlacierFlowError
from ..feedback import Feedback
from ..geo.grid import Grid
from ..geo.gridspec import ground_resolution
from ..geo.outlines import GlacierOutlines
from ..io.timestamps import DAYS_PER_YEAR, FILE_WRITING_TIME_SOURCE, Acquisition

MAX_PIXEL_RATIO = 2.0  # A and B pixel sizes (m) may differ at most this much
MIN_TRACKABLE_SIDE_PX = 32  # the smallest tile (TILE_SIZE minimum): narrower areas cannot be tracked
FINE_GRID_WARNING_RATIO = 2.0  # coarser image pixel / grid pixel above which the grid only oversamples
FINE_GRID_ERROR_RATIO = 10.0  # ... above which a tile holds too little image detail to track
MIN_INTERVAL_DAYS = 1.0  # 1 px in under a day is > 3,600 m/yr at 10 m: no glacier pair is this short
LONG_INTERVAL_WARNING_DAYS = 3 * DAYS_PER_YEAR  # surfaces decorrelate: fewer trusted pixels
MAX_INTERVAL_DAYS = 10 * DAYS_PER_YEAR  # beyond this the ice surface has been replaced: a date typo
MAX_TIMING_ERROR_FRACTION = 0.01  # a date-only time's half-day error may bias speeds by at most 1 %
DATE_ONLY_ERROR_DAYS = 0.5  # date-only times are taken at noon UTC: at most half a day off
# The fastest glacier measured (Sermeq Kujalleq / Jakobshavn Isbrae, 2012) flowed about 17 km/yr.
MAX_PLAUSIBLE_SPEED_M_PER_YR = 20000.0


@dataclass(frozen=True)
class Finding:
    """One problem: ``error`` True when the result would be wrong, False when it is a warning."""

    message: str
    error: bool


def pair_findings(grid_a: Grid, grid_b: Grid, grid: Grid, acquisition_a: Acquisition,
                  acquisition_b: Acquisition, days: float) -> list[Finding]:
    """Every plausibility problem of a pair: its images' native grids, the job grid and the times."""
    return (_pixel_findings(grid_a, grid_b, grid) + _size_findings(grid)
            + _time_findings(acquisition_a, acquisition_b, days))


def check_pair_inputs(grid_a: Grid, grid_b: Grid, grid: Grid, acquisition_a: Acquisition,
                      acquisition_b: Acquisition, days: float, feedback: Feedback, outlines: str | None = None) -> None:
    """Warn about, or refuse (GlacierFlowError listing every error), implausible pair inputs; ``outlines``
    (a path) are checked for invalid polygons and for touching the grid."""
    findings = pair_findings(grid_a, grid_b, grid, acquisition_a, acquisition_b, days)
    if outlines:
        findings += _outline_findings(outlines, grid, feedback)
    for finding in findings:
        if not finding.error:
            feedback.warning(finding.message)
    errors = [finding.message for finding in findings if finding.error]
    if errors:
        raise GlacierFlowError(" ".join(errors) + " Nothing was written.")


def _pixel_findings(grid_a: Grid, grid_b: Grid, grid: Grid) -> list[Finding]:
    size_a, size_b, size = ground_resolution(grid_a), ground_resolution(grid_b), ground_resolution(grid)
    findings = []
    ratio = max(size_a, size_b) / min(size_a, size_b)
    if ratio > MAX_PIXEL_RATIO:
        findings.append(Finding(
            f"Image A has {size_a:g} m pixels and image B {size_b:g} m ({ratio:.1f}x apart): tracking between "
            f"such different resolutions gives false motion. Use two images of the same sensor and band, or "
            f"resample the finer one to the coarser's pixel size first.", True))
    coarser = max(size_a, size_b)
    fineness = coarser / size
    if fineness >= FINE_GRID_ERROR_RATIO:
        findings.append(Finding(
            f"The output pixel size ({size:g} m) is {fineness:.0f}x finer than the images ({coarser:g} m): "
            f"a tile would hold too little image detail to track. Choose a pixel size of at least "
            f"{coarser / FINE_GRID_WARNING_RATIO:g} m, or 0 for the images' own.", True))
    elif fineness > FINE_GRID_WARNING_RATIO:
        findings.append(Finding(
            f"The output pixel size ({size:g} m) is {fineness:.1f}x finer than the images ({coarser:g} m): "
            "the result is oversampled, not more detailed, and runs slower.", False))
    return findings


def _outline_findings(path: str, grid: Grid, feedback: Feedback) -> list[Finding]:
    outlines = GlacierOutlines(path, grid.crs_wkt, feedback=feedback)  # warns about repaired polygons
    if outlines.touches(grid):
        return []
    return [Finding(f"No glacier outline of '{os.path.basename(path)}' touches the images' common area: the "
                    "glacier band will be all 0. Check the outlines' CRS and region.", False)]


def _size_findings(grid: Grid) -> list[Finding]:
    if min(grid.width, grid.height) >= MIN_TRACKABLE_SIDE_PX:
        return []
    return [Finding(
        f"The area the two images share is only {grid.width} x {grid.height} px: at least "
        f"{MIN_TRACKABLE_SIDE_PX} px a side is needed to track motion. Choose images that overlap more, "
        "or a larger extent.", True)]


def _time_findings(acquisition_a: Acquisition, acquisition_b: Acquisition, days: float) -> list[Finding]:
    findings = []
    for label, parameter, acquisition in (("A", "DATE_A", acquisition_a), ("B", "DATE_B", acquisition_b)):
        if acquisition.source == FILE_WRITING_TIME_SOURCE:
            findings.append(Finding(
                f"Image {label}'s only time is its TIFFTAG_DATETIME tag ({acquisition.time:%Y-%m-%d %H:%M:%S}), "
                f"which is usually when the file was written, not when the image was taken: give the acquisition "
                f"time as {parameter}.", True))
    findings += _precision_findings(acquisition_a, acquisition_b, days)
    if days < MIN_INTERVAL_DAYS:
        findings.append(Finding(
            f"The images are {days * 24:.2f} hours apart (A {acquisition_a.time:%Y-%m-%d %H:%M:%S}Z from "
            f"{acquisition_a.source}, B {acquisition_b.time:%Y-%m-%d %H:%M:%S}Z from {acquisition_b.source}): "
            f"under {MIN_INTERVAL_DAYS:g} day, any tracking noise becomes thousands of m/yr. Check the dates, "
            "or choose images further apart.", True))
    elif days > MAX_INTERVAL_DAYS:
        findings.append(Finding(
            f"The images are {days / DAYS_PER_YEAR:.1f} years apart: more than {MAX_INTERVAL_DAYS / DAYS_PER_YEAR:g} "
            "years, the glacier surface has changed beyond recognition. Check the dates (DATE_A, DATE_B).", True))
    elif days > LONG_INTERVAL_WARNING_DAYS:
        findings.append(Finding(
            f"The images are {days / DAYS_PER_YEAR:.1f} years apart: expect fewer trusted pixels, as the surface "
            "changes; pairs of weeks to a year track best.", False))
    return findings


def _precision_findings(acquisition_a: Acquisition, acquisition_b: Acquisition, days: float) -> list[Finding]:
    inexact = [label for label, a in (("A", acquisition_a), ("B", acquisition_b)) if not a.exact]
    if not inexact or days <= 0:
        return []
    bound = DATE_ONLY_ERROR_DAYS * len(inexact) / days
    sources = f"A from {acquisition_a.source}, B from {acquisition_b.source}"
    if len(inexact) == 1 and bound > MAX_TIMING_ERROR_FRACTION:
        both_given = all(a.source.startswith("given") for a in (acquisition_a, acquisition_b))
        message = (f"Image {inexact[0]}'s time is a date only and the other's is exact ({sources}): over "
                   f"{days:.1f} days that can bias every speed by up to {bound * 100:.0f} %.")
        if not both_given:
            return [Finding(message + " Give both times (DATE_A and DATE_B) with the time of day, or both as "
                                      "dates only to accept the bias.", True)]
        return [Finding(message, False)]
    if bound > MAX_TIMING_ERROR_FRACTION:
        return [Finding(f"Only the dates of the images are known ({sources}): over {days:.1f} days the speeds "
                        f"are uncertain by up to {bound * 100:.0f} %. Give the times of day (DATE_A, DATE_B) "
                        "if you know them.", False)]
    return []


def check_speeds(p95_speed: float, feedback: Feedback) -> None:
    """Warn when the product's 95th-percentile speed (m/yr) is beyond any glacier's."""
    if p95_speed > MAX_PLAUSIBLE_SPEED_M_PER_YR:
        feedback.warning(
            f"The 95th-percentile speed is {p95_speed:,.0f} m/yr, faster than any glacier measured "
            f"(about 17,000 m/yr): check the acquisition times and that both images show the same place.")
