"""When each product shows on QGIS's time slider: the time range of a velocity product (its two
acquisitions) and of each band of an NDSI series or forecast (its window)."""
from __future__ import annotations

import re
from datetime import datetime, timedelta

from ..errors import GlacierFlowError
from ..io.timestamps import parse_datetime
from ..products.velocity import VelocityProduct

TimeRange = tuple[datetime, datetime]  # UTC, the end exclusive
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def velocity_time_range(path: str) -> TimeRange | None:
    """(first, second acquisition) of the velocity product at ``path`` (a stack: first and last), or None
    without dates."""
    from ..products.velocity import open_velocity

    return product_time_range(open_velocity(path))


def product_time_range(product: VelocityProduct) -> TimeRange | None:
    """(first, second acquisition) of an opened velocity product, or None without dates."""
    if not (product.acquisition_a and product.acquisition_b):
        return None
    first, last = parse_datetime(product.acquisition_a), parse_datetime(product.acquisition_b)
    return (first, last) if last > first else (last, first)


def band_time_ranges(path: str) -> list[TimeRange | None]:
    """Per band of ``path``: its window from the WINDOW_START / WINDOW_END tags (end exclusive), else from
    two dates in its description (the last day inclusive), else None."""
    from ..io.raster import open_raster

    dataset = open_raster(path)
    ranges: list[TimeRange | None] = []
    for index in range(1, dataset.RasterCount + 1):
        band = dataset.GetRasterBand(index)
        ranges.append(_tagged(band.GetMetadataItem("WINDOW_START"), band.GetMetadataItem("WINDOW_END"))
                      or _described(band.GetDescription() or ""))
    return ranges


def _tagged(start: str | None, end: str | None) -> TimeRange | None:
    if not (start and end):
        return None
    try:
        return parse_datetime(start), parse_datetime(end)
    except GlacierFlowError:
        return None


def _described(description: str) -> TimeRange | None:
    dates = ISO_DATE.findall(description)
    if len(dates) < 2:
        return None
    try:
        return parse_datetime(dates[0]), parse_datetime(dates[-1]) + timedelta(days=1)
    except GlacierFlowError:
        return None


def span(ranges: list[TimeRange | None]) -> TimeRange | None:
    """The range covering every known range (None when none is known)."""
    known = [r for r in ranges if r is not None]
    return (min(r[0] for r in known), max(r[1] for r in known)) if known else None
