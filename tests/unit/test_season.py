"""Seasons, pairing rules and time-weighted stacking in the chain (``core.workflows.annual``), on the
built-in multi-date sample written as a southern summer (EPSG:32719, about 44 degrees south) that wraps
the new year, with real GeoTIFFs and the real pair job."""
from __future__ import annotations

import csv
import os
import shutil
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from osgeo import gdal

from glacierflow.core.errors import GlacierFlowError
from glacierflow.core.feedback import Feedback
from glacierflow.core.imagery import Scene, cap_pairs_per_scene, interval_pairs, pairs_by_rule, sequential_pairs
from glacierflow.core.imagery.seasons import (
    default_months,
    latest_complete_season,
    season_between,
    season_of,
    season_year,
)
from glacierflow.core.io.timestamps import DAYS_PER_YEAR
from glacierflow.core.workflows.annual import AnnualJob, run_annual_job
from training.sample_series import SEASON_DATES, SEASON_EPSG, SEASON_PX_PER_YEAR, write_sample_series

ENGINE = "horn_schunck"
SHAPE = (160, 160)
PX_PER_YEAR = SEASON_PX_PER_YEAR
PIXEL_M = 10.0
# co-registration error of each scene (dx right, dy down, px)
SCENE_OFFSETS = ((0.0, 0.0), (0.6, -0.3), (-0.4, 0.2), (0.3, 0.5), (0.0, 0.0), (-0.5, -0.4), (0.4, 0.0), (0.0, 0.6))


class Recorder(Feedback):
    """Keeps the log."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.warnings: list[str] = []

    def info(self, message: str) -> None:
        self.messages.append(message)

    def warning(self, message: str) -> None:
        self.warnings.append(message)


def read_band(path: str, name: str) -> np.ndarray:
    dataset = gdal.Open(path)
    index = next(i for i in range(1, dataset.RasterCount + 1) if dataset.GetRasterBand(i).GetDescription() == name)
    return dataset.GetRasterBand(index).ReadAsArray().astype(float)


def table(path: str) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def fast_error(series, output: str) -> float:
    """Median vector error on the fast ice relative to the largest true speed."""
    true_vx, true_vy = _truth(series)
    fast = np.hypot(true_vx, true_vy) > 0.3 * series.max_speed
    error = np.hypot(read_band(output, "vx") - true_vx, read_band(output, "vy") - true_vy)
    return float(np.nanmedian(error[fast]) / series.max_speed)


def _truth(series) -> tuple[np.ndarray, np.ndarray]:
    return (gdal.Open(series.truth_vx).ReadAsArray().astype(float),
            gdal.Open(series.truth_vy).ReadAsArray().astype(float))


def season_job(series, output: str, **options) -> AnnualJob:
    settings = {"rule": "interval", "min_days": 5, "max_days": 20, "engine": ENGINE, "outlines": series.outlines}
    settings.update(options)
    return AnnualJob(folder=series.folder, output=output, **settings)


@pytest.fixture(scope="module")
def season(tmp_path_factory):
    return write_sample_series(str(tmp_path_factory.mktemp("season")), shape=SHAPE, px_per_year=PX_PER_YEAR,
                               dates=SEASON_DATES, epsg=SEASON_EPSG)


@pytest.fixture(scope="module")
def misregistered(tmp_path_factory):
    return write_sample_series(str(tmp_path_factory.mktemp("offsets")), shape=SHAPE, px_per_year=PX_PER_YEAR,
                               dates=SEASON_DATES, epsg=SEASON_EPSG, offsets_px=SCENE_OFFSETS)


# --- seasons and rules without rasters ---------------------------------------------------------------------

def scenes_every(days: float, count: int, start: datetime = datetime(2020, 1, 1, tzinfo=timezone.utc)) -> list[Scene]:
    return [Scene(id=f"s{i:03d}", time=start + timedelta(days=days * i), cloud_cover=None, source="test",
                  href=f"s{i:03d}.tif") for i in range(count)]


def test_a_season_may_wrap_the_new_year_and_is_named_by_its_end():
    summer = season_of("11-3", 2020)
    assert summer.start == datetime(2019, 11, 1, tzinfo=timezone.utc)
    assert summer.end == datetime(2020, 3, 31, 23, 59, 59, 999999, tzinfo=timezone.utc)
    assert summer.contains(datetime(2019, 12, 31, tzinfo=timezone.utc))
    assert not summer.contains(datetime(2020, 4, 1, tzinfo=timezone.utc))
    assert season_year(datetime(2019, 12, 5, tzinfo=timezone.utc), {11, 12, 1, 2, 3}) == 2020
    assert season_year(datetime(2020, 2, 5, tzinfo=timezone.utc), {11, 12, 1, 2, 3}) == 2020
    assert season_year(datetime(2020, 8, 5, tzinfo=timezone.utc), {6, 7, 8, 9, 10}) == 2020
    north = season_of("6-10", 2021)
    assert (north.start.month, north.end.month, north.end.day) == (6, 10, 31)
    dates = season_between("2020-01-31", "2020-02-22")
    assert dates.contains(datetime(2020, 2, 22, 23, tzinfo=timezone.utc))
    with pytest.raises(GlacierFlowError, match="start date before the end date"):
        season_between("2020-03-01", "2020-02-01")


def test_default_months_follow_the_hemisphere_and_the_year_the_latest_season_over():
    assert default_months(46.0) == "6-10" and default_months(-49.3) == "12-3"
    assert latest_complete_season("6-10", datetime(2026, 12, 3, tzinfo=timezone.utc)) == 2026
    assert latest_complete_season("6-10", datetime(2026, 9, 1, tzinfo=timezone.utc)) == 2025
    assert latest_complete_season("12-3", datetime(2026, 12, 3, tzinfo=timezone.utc)) == 2026
    assert latest_complete_season("12-3", datetime(2026, 3, 15, tzinfo=timezone.utc)) == 2025


def test_interval_and_sequential_rules():
    scenes = scenes_every(5, 8)
    assert {round(p.interval_days) for p in interval_pairs(scenes, 5, 20)} == {5, 10, 15, 20}
    assert len(interval_pairs(scenes, 5, 20)) == 7 + 6 + 5 + 4
    sequential = sequential_pairs(scenes, 8, 40)  # the next scene at least 8 days later: 10 days
    assert [p.interval_days for p in sequential] == [10.0] * 6
    with pytest.raises(GlacierFlowError, match="widen the interval"):
        pairs_by_rule(scenes, "interval", min_days=50, max_days=60)


def test_the_pair_cap_holds_on_a_70_scene_season():
    scenes = scenes_every(2, 70)
    uncapped = pairs_by_rule(scenes, "interval", min_days=2, max_days=140)
    assert len(uncapped) > 2000
    capped = pairs_by_rule(scenes, "interval", min_days=2, max_days=140, max_per_scene=8)
    per_scene: dict[str, int] = {}
    for pair in capped:
        for scene in (pair.first, pair.second):
            per_scene[scene.id] = per_scene.get(scene.id, 0) + 1
    assert max(per_scene.values()) <= 8 and len(capped) <= 8 * 70 // 2
    assert len(capped) >= 0.9 * 8 * 70 // 2  # the cap is used, not a few pairs left
    chain = {(p.first.id, p.second.id) for p in capped}
    assert all((a.id, b.id) in chain for a, b in zip(scenes, scenes[1:]))  # consecutive scenes all kept
    assert max(p.interval_days for p in capped) > 2  # and longer intervals after them
    assert cap_pairs_per_scene(uncapped, 0) == uncapped


# --- the chain on the southern summer -----------------------------------------------------------------------

@pytest.mark.parametrize("rule", ["interval", "sequential"])
def test_a_season_of_steady_flow_gives_the_known_speed(season, tmp_path, rule):
    feedback = Recorder()
    result = run_annual_job(season_job(season, str(tmp_path / f"{rule}.tif"), rule=rule), feedback)
    assert any(m.startswith("Months 12-3") for m in feedback.messages)  # auto: the southern summer
    assert result.pair_count == (22 if rule == "interval" else 7)
    assert fast_error(season, result.output) < 0.12
    rows = table(result.pair_table)
    assert len(rows) == result.pair_count and all(r["in_stack"] == "yes" for r in rows)
    # pairs across the new year: December 2019 with January 2020
    assert any(r["first_datetime"].startswith("2019-12") and r["second_datetime"].startswith("2020-01") for r in rows)
    assert abs(sum(float(r["weight"]) for r in rows) - 1.0) < 1e-3
    span = read_band(result.output, "time_span")
    expected = 35.0 if rule == "sequential" else 35.0  # 12 December to 16 January
    assert np.nanmax(span) == pytest.approx(expected, abs=1e-3)
    count = read_band(result.output, "count")
    assert np.nanmedian(count) == result.pair_count


def test_cross_year_pairs_two_southern_summers(tmp_path):
    dates = (("2019-12-15T14:20:00Z", 3.0), ("2020-01-20T14:20:00Z", 3.0), ("2020-06-10T14:20:00Z", 3.0),
             ("2020-12-18T14:20:00Z", 3.0), ("2021-01-22T14:20:00Z", 3.0))
    series = write_sample_series(str(tmp_path / "two"), shape=SHAPE, px_per_year=5.0, dates=dates, epsg=SEASON_EPSG)
    feedback = Recorder()
    result = run_annual_job(AnnualJob(folder=series.folder, output=str(tmp_path / "cross.tif"), engine=ENGINE,
                                      outlines=series.outlines), feedback)
    rows = table(result.pair_table)
    # seasons 2019/20 and 2020/21 (the default: the latest two with scenes); the June scene is winter
    assert result.pair_count == 4 and all("2020-06" not in r["first_datetime"] + r["second_datetime"] for r in rows)
    assert {(r["first_datetime"][:7], r["second_datetime"][:7]) for r in rows} == {
        ("2019-12", "2020-12"), ("2019-12", "2021-01"), ("2020-01", "2020-12"), ("2020-01", "2021-01")}
    assert fast_error(series, result.output) < 0.2


def test_dates_instead_of_months(season, tmp_path):
    result = run_annual_job(season_job(season, str(tmp_path / "dates.tif"), rule="sequential",
                                       season_start="2019-12-20", season_end="2020-01-08"), Recorder())
    rows = table(result.pair_table)
    assert [(r["first_datetime"][:10], r["second_datetime"][:10]) for r in rows] == [
        ("2019-12-22", "2019-12-27"), ("2019-12-27", "2020-01-01"), ("2020-01-01", "2020-01-06")]
    with pytest.raises(GlacierFlowError, match="one season"):
        run_annual_job(season_job(season, str(tmp_path / "x.tif"), rule="cross_year",
                                  season_start="2019-12-20", season_end="2020-01-08"), Recorder())


def test_a_pair_with_a_corrupted_scene_is_left_out_with_its_reason(season, tmp_path):
    folder = tmp_path / "corrupted"
    shutil.copytree(season.folder, folder)
    bad = folder / os.path.basename(season.images[3])
    dataset = gdal.Open(str(bad), gdal.GA_Update)  # the scene's pixels replaced by other ground: a wrong scene
    rng = np.random.default_rng(7)
    dataset.GetRasterBand(1).WriteArray(rng.integers(500, 9000, SHAPE).astype(np.uint16))
    dataset = None
    series = season.__class__(str(folder), season.images, str(folder / os.path.basename(season.outlines)),
                              season.truth_vx, season.truth_vy, season.stakes, season.max_speed)
    feedback = Recorder()
    result = run_annual_job(season_job(series, str(tmp_path / "out.tif")), feedback)
    rows = table(result.pair_table)
    scene_id = os.path.splitext(bad.name)[0]
    with_bad = [r for r in rows if scene_id in (r["first_id"], r["second_id"])]
    assert with_bad and all(r["in_stack"] == "no" and r["reason"] for r in with_bad)
    assert all(r["in_stack"] == "yes" for r in rows if r not in with_bad)
    assert result.stacked_count == len(rows) - len(with_bad)
    assert any("left out of the stack" in w for w in feedback.warnings)
    assert fast_error(season, result.output) < 0.12


def expected_offset(first: int, second: int) -> tuple[float, float]:
    """The spurious (vx east, vy north) m/yr of a pair from the scenes' co-registration errors."""
    days = 5.0 * (second - first)
    dx = SCENE_OFFSETS[second][0] - SCENE_OFFSETS[first][0]
    dy = SCENE_OFFSETS[second][1] - SCENE_OFFSETS[first][1]
    return dx * PIXEL_M * DAYS_PER_YEAR / days, -dy * PIXEL_M * DAYS_PER_YEAR / days


def test_known_coregistration_offsets_are_removed_before_stacking(misregistered, season, tmp_path):
    corrected = run_annual_job(season_job(misregistered, str(tmp_path / "on.tif")), Recorder())
    raw = run_annual_job(season_job(misregistered, str(tmp_path / "off.tif"), remove_pair_offsets=False,
                                    work_folder=os.path.dirname(corrected.pair_products[0])), Recorder())
    dates = [text[:10] for text, _ in SEASON_DATES]
    for row in table(corrected.pair_table):
        first, second = dates.index(row["first_datetime"][:10]), dates.index(row["second_datetime"][:10])
        vx, vy = expected_offset(first, second)
        scale = PIXEL_M * DAYS_PER_YEAR / (5.0 * (second - first))  # 1 px over this pair, m/yr
        assert abs(float(row["stable_offset_vx"]) - vx) < 0.1 * scale
        assert abs(float(row["stable_offset_vy"]) - vy) < 0.1 * scale
    stable_on = corrected.stable_statistics
    stable_off = raw.stable_statistics
    assert stable_on["offset_speed"] < 0.3 * stable_off["offset_speed"]
    assert fast_error(misregistered, corrected.output) < fast_error(misregistered, raw.output)
    assert fast_error(misregistered, corrected.output) < 0.12
