"""Which scenes to pair, and the pair list as a CSV a user can inspect.

Every pair runs from the earlier scene to the later one; two scenes with the
same acquisition time are never paired (there is no displacement to measure).
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..errors import GlacierFlowError
from ..io.atomic import write_text
from ..io.timestamps import SECONDS_PER_DAY
from .base import Scene

RULES = ("cross_year", "interval")
CSV_FIELDS = ("first_id", "second_id", "first_datetime", "second_datetime", "interval_days",
              "first_href", "second_href")


@dataclass(frozen=True)
class ScenePair:
    """An earlier and a later scene."""

    first: Scene
    second: Scene

    @property
    def interval_days(self) -> float:
        """Time from first to second in days, exact to the second (> 0)."""
        return (self.second.time - self.first.time).total_seconds() / SECONDS_PER_DAY


def _sorted(scenes: Iterable[Scene]) -> list[Scene]:
    return sorted(scenes, key=lambda s: (s.time, s.id))


def cross_year_pairs(scenes: Sequence[Scene], year_a: int, year_b: int) -> list[ScenePair]:
    """Every scene of ``year_a`` with every scene of ``year_b`` (the first paper's rule), by time.

    ``year_b`` must be later than ``year_a`` (usually ``year_a + 1``).
    """
    if year_b <= year_a:
        raise GlacierFlowError(f"Year B ({year_b}) must be after year A ({year_a}): for example {year_a + 1}.")
    firsts = [s for s in _sorted(scenes) if s.time.year == year_a]
    seconds = [s for s in _sorted(scenes) if s.time.year == year_b]
    return [ScenePair(a, b) for a in firsts for b in seconds if a.time < b.time]


def interval_pairs(scenes: Sequence[Scene], min_days: float, max_days: float) -> list[ScenePair]:
    """Every earlier -> later pair whose interval is within [min_days, max_days] (days), by time."""
    if min_days < 0 or max_days < min_days:
        raise GlacierFlowError(f"The interval {min_days} to {max_days} days is empty: the minimum must be at "
                               "least 0 and at most the maximum.")
    ordered = _sorted(scenes)
    pairs = []
    for i, first in enumerate(ordered):
        for second in ordered[i + 1:]:
            if second.time <= first.time:
                continue
            pair = ScenePair(first, second)
            if pair.interval_days > max_days:
                break  # ordered by time: every later scene is further away
            if pair.interval_days >= min_days:
                pairs.append(pair)
    return pairs


def pairs_by_rule(scenes: Sequence[Scene], rule: str, year_a: int | None = None, year_b: int | None = None,
                  min_days: float = 5.0, max_days: float = 400.0) -> list[ScenePair]:
    """Pairs by ``rule`` (``cross_year``: year A defaults to the earliest scene's year and year B to
    year A + 1; ``interval``: days); raises GlacierFlowError with what to change when there are none."""
    if rule == "cross_year":
        if not scenes:
            raise GlacierFlowError("No scenes to pair.")
        year_a = year_a if year_a is not None else min(s.time for s in scenes).year
        year_b = year_b if year_b is not None else year_a + 1
        pairs = cross_year_pairs(scenes, year_a, year_b)
        if not pairs:
            years = sorted({s.time.year for s in scenes})
            raise GlacierFlowError(f"No pair between {year_a} and {year_b}: the scenes are from "
                                   f"{', '.join(map(str, years))}. Choose years that both have scenes.")
        return pairs
    if rule == "interval":
        pairs = interval_pairs(scenes, min_days, max_days)
        if not pairs:
            raise GlacierFlowError(f"No two of the {len(scenes)} scene(s) are {min_days:g} to {max_days:g} days "
                                   "apart: widen the interval or the search.")
        return pairs
    raise GlacierFlowError(f"Unknown pairing rule '{rule}': use one of {', '.join(RULES)}.")


def write_pairs_csv(pairs: Sequence[ScenePair], path: str) -> str:
    """Write the pairs (ids, ISO times, interval in days, hrefs) as CSV, atomically; returns ``path``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_FIELDS)
    for pair in pairs:
        writer.writerow([pair.first.id, pair.second.id, pair.first.time.isoformat(), pair.second.time.isoformat(),
                         f"{pair.interval_days:.6f}", pair.first.href, pair.second.href])
    return write_text(path, buffer.getvalue())
