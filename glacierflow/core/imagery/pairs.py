"""Which scenes to pair, and the pair list as a CSV a user can inspect.

Every pair runs from the earlier scene to the later one; two scenes with the
same acquisition time are never paired (there is no displacement to measure).

Rules (:data:`RULES`):

* ``cross_year``: every scene of year (season) A with every scene of year B, the first paper's rule;
* ``interval``: every pair whose interval is within [min_days, max_days], GIV's "all pairs up to a
  maximum interval" (ITS_LIVE's many intervals);
* ``sequential``: each scene with the next one at least ``min_days`` (and at most ``max_days``) later.

A cap on the pairs per scene (:func:`cap_pairs_per_scene`) keeps a 70-scene season from making 2,400
pairs: it keeps every scene's nearest partner first, then the second nearest, and so on.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from ..errors import GlacierFlowError
from ..io.atomic import write_text
from ..io.timestamps import SECONDS_PER_DAY
from .base import Scene

RULES = ("cross_year", "interval", "sequential")
RULE_HELP = {"cross_year": "every scene of year A with every scene of year B",
             "interval": "every pair MIN_DAYS to MAX_DAYS apart",
             "sequential": "each scene with the next one at least MIN_DAYS later"}
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


def cross_year_pairs(scenes: Sequence[Scene], year_a: int, year_b: int,
                     year_of: Callable[[Scene], int] | None = None) -> list[ScenePair]:
    """Every scene of ``year_a`` with every scene of ``year_b`` (the first paper's rule), by time.

    ``year_b`` must be later than ``year_a`` (usually ``year_a + 1``). ``year_of`` gives a scene's year
    (default: its calendar year; a season that wraps the new year passes the year the season ends in).
    """
    if year_b <= year_a:
        raise GlacierFlowError(f"Year B ({year_b}) must be after year A ({year_a}): for example {year_a + 1}.")
    year_of = year_of or (lambda scene: scene.time.year)
    firsts = [s for s in _sorted(scenes) if year_of(s) == year_a]
    seconds = [s for s in _sorted(scenes) if year_of(s) == year_b]
    return [ScenePair(a, b) for a in firsts for b in seconds if a.time < b.time]


def interval_pairs(scenes: Sequence[Scene], min_days: float, max_days: float) -> list[ScenePair]:
    """Every earlier -> later pair whose interval is within [min_days, max_days] (days), by time."""
    _check_interval(min_days, max_days)
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


def sequential_pairs(scenes: Sequence[Scene], min_days: float = 0.0,
                     max_days: float = float("inf")) -> list[ScenePair]:
    """Each scene with the next scene at least ``min_days`` later, kept when at most ``max_days`` (days)."""
    _check_interval(min_days, max_days)
    ordered = _sorted(scenes)
    pairs = []
    for i, first in enumerate(ordered):
        later = (ScenePair(first, s) for s in ordered[i + 1:] if s.time > first.time)
        pair = next((p for p in later if p.interval_days >= min_days), None)
        if pair is not None and pair.interval_days <= max_days:
            pairs.append(pair)
    return pairs


def cap_pairs_per_scene(pairs: Sequence[ScenePair], cap: int) -> list[ScenePair]:
    """At most ``cap`` pairs per scene (0: no cap), in time order.

    Each scene's pairs are ranked by interval (nearest partner first); pairs are taken rank by rank (every
    scene's nearest, then every scene's second nearest, ...) while both scenes are under the cap, so the
    consecutive chain survives and the longer intervals that measure slow ice come next.
    """
    if cap < 0:
        raise GlacierFlowError(f"The cap on pairs per scene must be at least 0 (0: none), not {cap}.")
    if cap == 0:
        return list(pairs)
    rank = [0] * len(pairs)
    by_first: dict[str, list[int]] = {}
    for index, pair in enumerate(pairs):
        by_first.setdefault(pair.first.id, []).append(index)
    for group in by_first.values():
        for position, index in enumerate(sorted(group, key=lambda i: pairs[i].interval_days)):
            rank[index] = position
    used: dict[str, int] = {}
    kept = set()
    for index in sorted(range(len(pairs)), key=lambda i: (rank[i], pairs[i].interval_days, pairs[i].first.time)):
        pair = pairs[index]
        if used.get(pair.first.id, 0) < cap and used.get(pair.second.id, 0) < cap:
            kept.add(index)
            used[pair.first.id] = used.get(pair.first.id, 0) + 1
            used[pair.second.id] = used.get(pair.second.id, 0) + 1
    return [pair for index, pair in enumerate(pairs) if index in kept]


def _check_interval(min_days: float, max_days: float) -> None:
    if min_days < 0 or max_days < min_days:
        raise GlacierFlowError(f"The interval {min_days} to {max_days} days is empty: the minimum must be at "
                               "least 0 and at most the maximum.")


def pairs_by_rule(scenes: Sequence[Scene], rule: str, year_a: int | None = None, year_b: int | None = None,
                  min_days: float = 5.0, max_days: float = 400.0, max_per_scene: int = 0,
                  year_of: Callable[[Scene], int] | None = None) -> list[ScenePair]:
    """Pairs by ``rule`` (see :data:`RULES`; ``cross_year``: year A defaults to the earliest scene's year
    and year B to year A + 1, ``year_of`` as in :func:`cross_year_pairs`; ``interval`` and ``sequential``:
    days), at most ``max_per_scene`` per scene (0: no cap); raises GlacierFlowError with what to change
    when there are none."""
    if not scenes:
        raise GlacierFlowError("No scenes to pair: widen the search (months, dates, cloud limit).")
    if rule == "cross_year":
        year_of = year_of or (lambda scene: scene.time.year)
        year_a = year_a if year_a is not None else min(year_of(s) for s in scenes)
        year_b = year_b if year_b is not None else year_a + 1
        pairs = cross_year_pairs(scenes, year_a, year_b, year_of)
        if not pairs:
            years = sorted({year_of(s) for s in scenes})
            raise GlacierFlowError(f"No pair between {year_a} and {year_b}: the scenes are from "
                                   f"{', '.join(map(str, years))}. Choose years that both have scenes.")
    elif rule in ("interval", "sequential"):
        pairs = (interval_pairs if rule == "interval" else sequential_pairs)(scenes, min_days, max_days)
        if not pairs:
            raise GlacierFlowError(f"No two of the {len(scenes)} scene(s) are {min_days:g} to {max_days:g} days "
                                   "apart: widen the interval or the search.")
    else:
        raise GlacierFlowError(f"Unknown pairing rule '{rule}': use one of {', '.join(RULES)}.")
    return cap_pairs_per_scene(pairs, max_per_scene)


def write_pairs_csv(pairs: Sequence[ScenePair], path: str) -> str:
    """Write the pairs (ids, ISO times, interval in days, hrefs) as CSV, atomically; returns ``path``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_FIELDS)
    for pair in pairs:
        writer.writerow([pair.first.id, pair.second.id, pair.first.time.isoformat(), pair.second.time.isoformat(),
                         f"{pair.interval_days:.6f}", pair.first.href, pair.second.href])
    return write_text(path, buffer.getvalue())
