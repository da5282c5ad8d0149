"""Seasons, not calendar years: months that may wrap the new year, named by the year they end in.

A season is given as months (``"6-10"``: June to October; ``"11-3"``: November to March, across the new
year) and the year it **ends** in (the southern summer 2019/20 is ``"12-3"`` of 2020), or as a start and an
end date. Without months, the default follows the hemisphere of the area: June to October in the north
(the papers' melt season), December to March in the south (where June to October is winter).
"""
from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from ..errors import GlacierFlowError
from .base import DEFAULT_MONTHS, parse_months

NORTHERN_MONTHS = DEFAULT_MONTHS  # June to October
SOUTHERN_MONTHS = "12-3"  # December to March: the southern summer, across the new year
AUTO_MONTHS = "auto"  # months chosen from the hemisphere of the area


@dataclass(frozen=True)
class Season:
    """A time window of acquisitions: from ``start`` to ``end`` (UTC, both included), months inside it."""

    start: datetime
    end: datetime
    months: frozenset[int] | None = None
    label: str = ""

    def contains(self, time: datetime) -> bool:
        """True when ``time`` (UTC) lies in the window and in one of the months."""
        return self.start <= time <= self.end and (self.months is None or time.month in self.months)


def default_months(latitude: float) -> str:
    """The melt season's months for a latitude (degrees): ``6-10`` north of the equator, ``12-3`` south."""
    return NORTHERN_MONTHS if latitude >= 0 else SOUTHERN_MONTHS


def resolve_months(text: str | None, latitude: float | None) -> str:
    """``text`` as given, or with ``auto`` (or None) the hemisphere's default (north when unknown)."""
    if text is None or str(text).strip().lower() == AUTO_MONTHS:
        return default_months(latitude if latitude is not None else 0.0)
    return str(text)


def wrap_start(months: Iterable[int] | None) -> int | None:
    """The first month of a season that wraps the new year (11 for 11-3), or None when it does not wrap."""
    chosen = set(months or ())
    if not chosen or len(chosen) == 12 or 12 not in chosen or 1 not in chosen:
        return None
    start = 12
    while start - 1 in chosen:
        start -= 1
    return start


def season_year(time: datetime, months: Iterable[int] | None) -> int:
    """The year the season holding ``time`` ends in: December 2019 of a 11-3 season belongs to 2020."""
    start = wrap_start(months)
    return time.year + 1 if start is not None and time.month >= start else time.year


def season_of(months_text: str | None, end_year: int) -> Season:
    """The season of ``months_text`` (``"6-10"``, ``"11-3"``, ``"6,7,8"``; empty: the whole year) ending in
    ``end_year``: from the first day of its first month to the last second of its last month."""
    months = parse_months(months_text)
    if months is None:
        return Season(_utc(end_year, 1, 1), _month_end(end_year, 12), None, str(end_year))
    start_month = wrap_start(months)
    if start_month is not None:
        last = max(m for m in months if m < start_month)
        start, end = _utc(end_year - 1, start_month, 1), _month_end(end_year, last)
        label = f"{end_year - 1}/{end_year % 100:02d}"
    else:
        start, end = _utc(end_year, min(months), 1), _month_end(end_year, max(months))
        label = str(end_year)
    return Season(start, end, frozenset(months), f"{label} (months {months_text})")


def season_between(start_text: str, end_text: str) -> Season:
    """The season from a start date to an end date (ISO; a bare end date includes that whole day)."""
    from .base import parse_date_bound

    start, end = parse_date_bound(start_text), parse_date_bound(end_text, end=True)
    if start is None or end is None or end <= start:
        raise GlacierFlowError(f"The season {start_text or '?'} to {end_text or '?'} is empty: give a start date "
                               "before the end date, like 2019-12-01 and 2020-03-31.")
    return Season(start, end, None, f"{start:%Y-%m-%d} to {end:%Y-%m-%d}")


def latest_complete_season(months_text: str | None, today: datetime | None = None) -> int:
    """The end year of the latest season of ``months_text`` that is over by ``today`` (UTC now)."""
    today = today or datetime.now(timezone.utc)
    year = today.year
    while season_of(months_text, year).end > today:
        year -= 1
    return year


def _utc(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, tzinfo=timezone.utc)


def _month_end(year: int, month: int) -> datetime:
    last_day = calendar.monthrange(year, month)[1]
    return _utc(year, month, last_day) + timedelta(days=1, microseconds=-1)
