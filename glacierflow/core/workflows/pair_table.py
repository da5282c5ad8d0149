"""The pair table of a season or annual job: which pairs carried the result, and why the others did not.

For every pair: its dates and interval (days), the trusted fraction of its product, the stable-ground
offset (median vx, vy, m/yr) and spread (m/yr and px), its median speed (m/yr), its weight in the stack
and whether it entered the stack, with the reason when not. Pairs are left out when their job failed,
when too little of the product is trusted (a cloudy or corrupted scene fails the forward-backward check
almost everywhere), or when their stable ground is far noisier than the other pairs' (a scene that does
not match the others: the spread in px, which does not depend on the interval, is compared).
"""
from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import GlacierFlowError
from ..feedback import Feedback
from ..imagery.pairs import ScenePair
from ..io.atomic import write_text
from ..io.timestamps import DAYS_PER_YEAR

MIN_TRUSTED_FRACTION = 0.05  # a pair trusting less of its grid is left out
MAX_SPREAD_RATIO = 3.0  # a pair whose stable-ground spread (px) exceeds 3 x the pairs' median is left out
SPREAD_FLOOR_PX = 0.1  # ... unless it is under 0.1 px: sub-pixel noise is no reason to drop a pair
MIN_SIGMA_PX = 0.01  # the smallest per-pair noise used for inverse-variance weights (px over the interval)
#: The table's columns and their kinds (``string`` or ``double``): m/yr, days, px or fractions as named.
TABLE_COLUMNS = (("first_id", "string"), ("second_id", "string"), ("first_datetime", "string"),
                 ("second_datetime", "string"), ("interval_days", "double"), ("trusted_fraction", "double"),
                 ("stable_offset_vx", "double"), ("stable_offset_vy", "double"), ("stable_spread", "double"),
                 ("stable_spread_px", "double"), ("median_speed", "double"), ("weight", "double"),
                 ("in_stack", "string"), ("reason", "string"), ("product", "string"))
TABLE_FIELDS = tuple(name for name, _ in TABLE_COLUMNS)


@dataclass
class PairRecord:
    """One pair's row: figures in m/yr unless said; NaN when not measured."""

    pair: ScenePair
    product: str = ""
    trusted_fraction: float = math.nan
    median_speed: float = math.nan
    offset_vx: float = math.nan
    offset_vy: float = math.nan
    spread: float = math.nan
    pixel_size: float = math.nan
    weight: float = math.nan
    in_stack: bool = False
    reason: str = ""

    @property
    def spread_px(self) -> float:
        """The stable-ground spread as a displacement over the interval (px)."""
        return self.spread * self.pair.interval_days / DAYS_PER_YEAR / self.pixel_size

    @property
    def has_stable_ground(self) -> bool:
        """True when the stable-ground offset and spread were measured."""
        return math.isfinite(self.offset_vx) and math.isfinite(self.spread)

    def sigma(self) -> float:
        """The pair's noise (m/yr) for inverse-variance weights: its spread, at least MIN_SIGMA_PX."""
        floor = MIN_SIGMA_PX * self.pixel_size * DAYS_PER_YEAR / self.pair.interval_days
        return max(self.spread, floor)

    def row(self) -> list[str]:
        """The CSV row, in :data:`TABLE_FIELDS` order."""
        def number(value: float, digits: int = 3) -> str:
            return f"{value:.{digits}f}" if math.isfinite(value) else ""

        spread_px = self.spread_px if math.isfinite(self.spread) and math.isfinite(self.pixel_size) else math.nan
        return [self.pair.first.id, self.pair.second.id, self.pair.first.time.isoformat(),
                self.pair.second.time.isoformat(), f"{self.pair.interval_days:.4f}", number(self.trusted_fraction, 4),
                number(self.offset_vx), number(self.offset_vy), number(self.spread), number(spread_px, 4),
                number(self.median_speed), number(self.weight, 5), "yes" if self.in_stack else "no", self.reason,
                self.product]


    def typed_row(self) -> list[object]:
        """:meth:`row` with numbers as floats (None where not measured), for a table layer."""
        return [(float(value) if value else None) if kind == "double" else value
                for value, (_, kind) in zip(self.row(), TABLE_COLUMNS)]


def measure_pair(record: PairRecord, outlines: str | None, stable_areas: str | None,
                 buffer_m: float | None) -> None:
    """Fill the trusted fraction, median speed and, with outlines or stable areas, the stable-ground offset
    and spread of ``record.product`` (m/yr)."""
    from ..products.velocity import open_velocity
    from ..validation.stable_ground import StableGroundJob, run_stable_ground

    product = open_velocity(record.product)
    record.trusted_fraction = _metadata_float(product.metadata, "VALID_FRACTION")
    record.median_speed = _metadata_float(product.metadata, "MEDIAN_SPEED_M_PER_YR")
    record.pixel_size = float(max(product.grid.pixel_size))
    if not outlines and not stable_areas:
        return
    try:
        stats = run_stable_ground(StableGroundJob(product=record.product, stable_areas=stable_areas,
                                                  glacier_outlines=outlines, buffer_m=buffer_m))
    except GlacierFlowError as error:  # no valid stable pixel: the pair cannot be checked or corrected
        record.reason = f"no stable ground measured ({error})"
        return
    record.offset_vx, record.offset_vy = stats.statistics["vx"]["median"], stats.statistics["vy"]["median"]
    record.spread = math.hypot(stats.statistics["vx"]["nmad"], stats.statistics["vy"]["nmad"])


def _metadata_float(metadata: dict[str, str], key: str) -> float:
    try:
        return float(metadata.get(key, "nan"))
    except ValueError:
        return math.nan


def screen_pairs(records: Sequence[PairRecord], min_trusted_fraction: float = MIN_TRUSTED_FRACTION,
                 max_spread_ratio: float = MAX_SPREAD_RATIO, feedback: Feedback | None = None) -> list[PairRecord]:
    """Decide which pairs enter the stack (``in_stack``, ``reason``); returns those that do, in order."""
    feedback = feedback or Feedback()
    for record in records:
        if record.reason:
            continue  # failed, or no stable ground when it was asked for
        if not record.trusted_fraction >= min_trusted_fraction:
            record.reason = (f"only {100 * record.trusted_fraction:.1f} % of the pixels trusted (under "
                             f"{100 * min_trusted_fraction:g} %): a cloudy or corrupted scene")
    measured = [r.spread_px for r in records if not r.reason and r.has_stable_ground]
    if len(measured) >= 3 and max_spread_ratio > 0:
        typical = sorted(measured)[len(measured) // 2]
        limit = max(max_spread_ratio * typical, SPREAD_FLOOR_PX)
        for record in records:
            if not record.reason and record.has_stable_ground and record.spread_px > limit:
                record.reason = (f"stable-ground spread {record.spread_px:.2f} px, over {max_spread_ratio:g} x the "
                                 f"pairs' median ({typical:.2f} px): the scenes do not match")
    kept = [r for r in records if not r.reason]
    for record in records:
        record.in_stack = not record.reason
        if record.reason:
            feedback.warning(f"Pair {record.pair.first.id} -> {record.pair.second.id} left out of the stack: "
                             f"{record.reason}")
    if not kept:
        raise GlacierFlowError(f"None of the {len(records)} pair(s) can enter the stack (see the pair table): "
                               "widen the search, change the rule, or lower the trusted fraction.")
    return kept


def write_pair_table(records: Sequence[PairRecord], path: str) -> str:
    """The pair table as CSV (:data:`TABLE_FIELDS`), written atomically; returns ``path``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(TABLE_FIELDS)
    for record in records:
        writer.writerow(record.row())
    return write_text(path, buffer.getvalue())
