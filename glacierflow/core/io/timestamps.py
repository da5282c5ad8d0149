"""Acquisition times of images, and the exact time between two of them.

Sources, most trusted first: a time the user gives; the file's
``ACQUISITION_DATETIME`` tag; a Landsat MTL file beside the image
(``DATE_ACQUIRED`` + ``SCENE_CENTER_TIME``); a Sentinel-2 or Landsat product
name in the file name; and last the ``TIFFTAG_DATETIME`` tag, which is often
the processing date rather than the acquisition.
"""
from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from ..errors import GlacierFlowError

SECONDS_PER_DAY = 86400.0
DAYS_PER_YEAR = 365.25  # Julian year: the convention of ITS_LIVE and autoRIFT velocities


FILE_WRITING_TIME_SOURCE = "tag TIFFTAG_DATETIME"  # usually when the file was written, not when it was taken


def has_clock_time(text: str) -> bool:
    """True when the ISO-8601 ``text`` holds a time of day, not only a date."""
    return bool(re.search(r"\d[T ]\d{1,2}:\d{2}", text.strip()))


@dataclass(frozen=True)
class Acquisition:
    """When an image was taken.

    Attributes:
        time: timezone-aware UTC datetime.
        source: where the time was read (for the log and the product metadata).
        exact: False when only the date was known (the time is then 12:00 UTC).
    """

    time: datetime
    source: str
    exact: bool = True


def parse_datetime(text: str) -> datetime:
    """Parse an ISO-8601 date or date-time (naive means UTC) into an aware UTC datetime."""
    cleaned = text.strip().replace("Z", "+00:00")
    cleaned = re.sub(r"^(\d{4}):(\d{2}):(\d{2})", r"\1-\2-\3", cleaned)  # TIFF's 2021:08:01 form
    try:
        value = datetime.fromisoformat(cleaned)
    except ValueError:
        raise GlacierFlowError(
            f"'{text}' is not a date: write it as YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ.") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def acquisition_of(path: str, dataset: Any = None, explicit: str | None = None) -> Acquisition:
    """The acquisition time of the image at ``path`` (see module docstring for the order)."""
    if explicit:
        return _from_text(explicit, "given")
    metadata = dict(dataset.GetMetadata() or {}) if dataset is not None else {}
    for key in ("ACQUISITION_DATETIME", "ACQUISITIONDATETIME", "DATETIME_ACQUIRED"):
        if metadata.get(key):
            return _from_text(metadata[key], f"tag {key}")
    for finder in (_from_landsat_mtl, _from_product_name):
        found = finder(path)
        if found is not None:
            return found
    if metadata.get("TIFFTAG_DATETIME"):
        return Acquisition(parse_datetime(metadata["TIFFTAG_DATETIME"]), FILE_WRITING_TIME_SOURCE)
    raise GlacierFlowError(
        f"No acquisition date found for '{os.path.basename(path)}': give the date explicitly "
        "(DATE_A / DATE_B), or keep the Landsat MTL file or the original product name.")


def _from_text(text: str, source: str) -> Acquisition:
    """An ISO-8601 time from ``source``; a bare date becomes noon UTC, like every other date-only source,
    so its error is at most half a day, and is marked inexact."""
    if has_clock_time(text):
        return Acquisition(parse_datetime(text), source)
    return Acquisition(parse_datetime(text) + timedelta(hours=12), f"{source} (date only)", exact=False)


def landsat_mtl_for(path: str) -> str | None:
    """The Landsat ``*_MTL.txt`` beside ``path`` whose product id starts the file's name, or None.

    Only a matching product counts: a folder may hold images of many products.
    """
    folder = os.path.dirname(os.path.abspath(path))
    stem = os.path.basename(path)
    for mtl in sorted(glob.glob(os.path.join(folder, "*_MTL.txt"))):
        if stem.startswith(os.path.basename(mtl)[:-len("_MTL.txt")]):
            return mtl
    return None


def _from_landsat_mtl(path: str) -> Acquisition | None:
    mtl = landsat_mtl_for(path)
    return _parse_mtl(mtl) if mtl else None


def _parse_mtl(mtl_path: str) -> Acquisition | None:
    with open(mtl_path, encoding="utf-8", errors="replace") as handle:
        text = handle.read()
    date = re.search(r"DATE_ACQUIRED\s*=\s*\"?(\d{4}-\d{2}-\d{2})", text)
    clock = re.search(r"SCENE_CENTER_TIME\s*=\s*\"?(\d{2}):(\d{2}):(\d{2}(?:\.\d+)?)", text)
    if not date:
        return None
    day = datetime.strptime(date.group(1), "%Y-%m-%d").replace(tzinfo=timezone.utc)
    if not clock:
        return Acquisition(day + timedelta(hours=12), f"MTL {os.path.basename(mtl_path)}", exact=False)
    offset = timedelta(hours=int(clock.group(1)), minutes=int(clock.group(2)), seconds=float(clock.group(3)))
    return Acquisition(day + offset, f"MTL {os.path.basename(mtl_path)}")


_SENTINEL2 = re.compile(r"(?:^|_)(\d{8})T(\d{6})(?:_|\.|$)")
_LANDSAT_COLLECTION = re.compile(r"L[COTEM]0[4-9]_L[12][A-Z]{2}_\d{6}_(\d{8})_")
_LANDSAT_SCENE_ID = re.compile(r"L[COTEM][4-9]\d{6}(\d{4})(\d{3})[A-Z]{3}\d{2}")


def _from_product_name(path: str) -> Acquisition | None:
    name = os.path.basename(path)
    match = _SENTINEL2.search(name)
    if match:
        time = datetime.strptime(match.group(1) + match.group(2), "%Y%m%d%H%M%S").replace(tzinfo=timezone.utc)
        return Acquisition(time, "product name")
    match = _LANDSAT_COLLECTION.search(name)
    if match:
        day = datetime.strptime(match.group(1), "%Y%m%d").replace(tzinfo=timezone.utc)
        return Acquisition(day + timedelta(hours=12), "product name (date only)", exact=False)
    match = _LANDSAT_SCENE_ID.search(name)
    if match:
        day = datetime(int(match.group(1)), 1, 1, tzinfo=timezone.utc) + timedelta(days=int(match.group(2)) - 1)
        return Acquisition(day + timedelta(hours=12), "product name (date only)", exact=False)
    return None


def interval_days(first: Acquisition, second: Acquisition) -> float:
    """Time from ``first`` to ``second`` in days, exact to the second; must be positive."""
    seconds = (second.time - first.time).total_seconds()
    if seconds == 0:
        raise GlacierFlowError(
            "Image A and image B have the same acquisition time: choose two different dates.")
    if seconds < 0:
        raise GlacierFlowError(
            f"Image B ({second.time:%Y-%m-%d}) was acquired before image A ({first.time:%Y-%m-%d}): "
            "swap them so that A is the earlier image.")
    return seconds / SECONDS_PER_DAY
