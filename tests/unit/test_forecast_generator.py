"""Tests of the synthetic Landsat NDSI series generator (training/forecast/generator.py)."""
from __future__ import annotations

import math
import time
from datetime import datetime, timezone

import cv2
import numpy as np
import pytest
from osgeo import gdal

from glacierflow.core.forecast.baselines import climatology_for, persistence
from glacierflow.core.forecast.metrics import mse
from glacierflow.core.forecast.patches import training_sets
from glacierflow.core.forecast.series import align_series, fill_gaps, landsat_reflectance, ndsi
from training.forecast.generator import (
    synthetic_dem,
    synthetic_scenes,
    synthetic_series,
    write_sample_scenes,
)

SHAPE = (200, 200)
SEED = 0


@pytest.fixture(scope="module")
def timed_series():
    started = time.perf_counter()
    series = synthetic_series(shape=SHAPE, years=8, seed=SEED)
    return series, time.perf_counter() - started


@pytest.fixture(scope="module")
def series(timed_series):
    return timed_series[0]


@pytest.fixture(scope="module")
def scenes():
    return synthetic_scenes(shape=SHAPE, years=8, seed=SEED)


@pytest.fixture(scope="module")
def dem():
    return synthetic_dem(SHAPE, SEED)


def season_means(frames: np.ndarray, where: np.ndarray) -> np.ndarray:
    """(years, 4) mean masked NDSI over ``where`` per quarter; the series starts in April (Q2)."""
    quarters = frames[:, where].mean(axis=1)
    padded = np.concatenate([[np.nan], quarters, [np.nan] * 3])  # Q1 2013 missing at the start
    return padded.reshape(-1, 4)


def test_dem_is_a_mountain_valley_with_every_aspect(dem) -> None:
    assert dem.shape == SHAPE and dem.dtype == np.float32 and np.isfinite(dem).all()
    assert 1000.0 < dem.max() - dem.min() < 5000.0
    d_row, d_col = np.gradient(dem.astype(np.float64), 30.0)
    steep = np.hypot(d_row, d_col) > math.tan(math.radians(10.0))
    aspect = np.degrees(np.arctan2(-d_col, d_row)) % 360.0  # facing direction, clockwise from north
    for centre in (0.0, 90.0, 180.0, 270.0):
        facing = np.abs((aspect - centre + 180.0) % 360.0 - 180.0) < 45.0
        assert (facing & steep).mean() > 0.08


def test_scenes_look_like_landsat(scenes) -> None:
    assert 150 < len(scenes) <= 8 * 23
    assert all(s.time.tzinfo is not None for s in scenes)
    assert all(b.time > a.time for a, b in zip(scenes, scenes[1:]))
    green = np.stack([s.green for s in scenes])
    swir1 = np.stack([s.swir1 for s in scenes])
    assert np.nanmin(green) >= 0.0 and np.nanmax(green) <= 1.6 and np.nanmax(swir1) < 0.6
    winter = [s for s in scenes if s.time.month in (1, 2)]
    summer = [s for s in scenes if s.time.month in (8,)]
    snow = ndsi(np.stack([s.green for s in winter]), np.stack([s.swir1 for s in winter]))
    bare = ndsi(np.stack([s.green for s in summer]), np.stack([s.swir1 for s in summer]))
    assert np.nanmedian(snow) > 0.75  # winter: snow almost everywhere
    assert np.nanpercentile(bare, 25) < 0.0  # late summer: rock and vegetation exposed


def test_clouds_are_gaps_and_winter_is_cloudier_and_darker(scenes) -> None:
    clouds = np.array([s.cloud_fraction for s in scenes])
    assert (clouds > 0.05).mean() > 0.4 and (clouds < 0.01).any()
    for scene in scenes[:20]:
        assert np.isnan(scene.green).mean() == pytest.approx(scene.cloud_fraction, abs=1e-6)
        assert np.array_equal(np.isnan(scene.green), np.isnan(scene.swir1))
    months = np.array([s.time.month for s in scenes])
    winter, summer = np.isin(months, (11, 12, 1, 2)), np.isin(months, (5, 6, 7, 8))
    assert clouds[winter].mean() > clouds[summer].mean() + 0.05
    # Under the low winter sun more of the snow lies in shadow: dark snow (NDSI > 0.6, green < 0.3).
    def dark_snow_share(month_set):
        chosen = [s for s in scenes if s.time.month in month_set]
        green = np.stack([s.green for s in chosen])
        snow = ndsi(green, np.stack([s.swir1 for s in chosen])) > 0.6
        return (snow & (green < 0.3)).sum() / snow.sum()

    assert dark_snow_share((12, 1)) > 1.5 * dark_snow_share((3, 4))


def test_scenes_are_misregistered_by_sub_pixel_to_few_pixels(scenes) -> None:
    shifts = np.array([s.shift_px for s in scenes])
    assert 0.3 < shifts.std() < 1.5 and np.abs(shifts).max() <= 3.0


def test_ecc_on_green_undoes_the_misregistration(scenes) -> None:
    chosen = [s for s in scenes[:46] if s.cloud_fraction < 0.5]
    green = np.stack([fill_gaps(s.green) for s in chosen])
    _, warps = align_series(green)
    truth = np.array([s.shift_px for s in chosen])
    error = np.array([w[:, 2] for w in warps]) - truth
    error -= error.mean(axis=0)  # the mean image sits at the mean shift
    assert np.median(np.hypot(*error.T)) < 0.25 < np.median(np.hypot(*(truth - truth.mean(axis=0)).T))


def test_series_is_fast_and_complete(timed_series) -> None:
    series, seconds = timed_series
    assert seconds < 30.0  # a few seconds on a free core; generous for a shared test machine
    assert series.frames.shape == (32,) + SHAPE and series.frames.dtype == np.float32
    assert np.isfinite(series.frames).all()  # every cloud gap filled
    assert series.frames.min() >= 0.0 and series.frames.max() <= 1.0
    assert (series.frames == 0).any() and (series.frames > 0.8).any()
    assert series.times[0] == datetime(2013, 4, 1, tzinfo=timezone.utc)


def test_seasonal_cycle_low_elevations_lose_their_snow_in_summer(series, dem) -> None:
    low = dem < np.percentile(dem, 30)
    quarters = season_means(series.frames, low)  # columns: JFM, AMJ, JAS, OND
    for year in range(1, 8):
        assert quarters[year, 2] < quarters[year, 0] - 0.2


def test_north_faces_keep_snow_longer(series, dem) -> None:
    d_row, d_col = np.gradient(dem.astype(np.float64), 30.0)
    aspect = np.degrees(np.arctan2(-d_col, d_row)) % 360.0
    steep = np.hypot(d_row, d_col) > math.tan(math.radians(15.0))
    middle = (dem > np.percentile(dem, 35)) & (dem < np.percentile(dem, 75))
    north = middle & steep & ((aspect < 45) | (aspect > 315))
    south = middle & steep & (np.abs(aspect - 180) < 45)
    summer = series.frames[1::4]  # JAS windows (the series starts in April)
    assert summer[:, north].mean() > summer[:, south].mean() + 0.1


def test_glacier_retreats_and_years_differ(series) -> None:
    summer_cover = (series.frames[1::4] > 0).mean(axis=(1, 2))  # JAS windows, one per year
    years = np.arange(summer_cover.size)
    assert np.polyfit(years, summer_cover, 1)[0] < -0.002  # snow and ice cover shrinks year after year
    still = synthetic_series(shape=(100, 100), years=4, seed=SEED, retreat_per_year=0.0)
    retreating = synthetic_series(shape=(100, 100), years=4, seed=SEED, retreat_per_year=0.03)
    assert (retreating.frames[-3] > 0).mean() < (still.frames[-3] > 0).mean()
    detrended = summer_cover - np.polyval(np.polyfit(years, summer_cover, 1), years)
    assert detrended.std() > 0.01  # some years snowier than others


def test_persistence_is_beatable_by_knowing_the_season(series) -> None:
    test = training_sets([series])["test"]
    persistence_mse = mse(persistence(test.inputs), test.targets)
    climatology_mse = mse(climatology_for(test, [series]), test.targets)
    assert 0.02 < persistence_mse < 0.3  # the series changes between windows ...
    assert climatology_mse < 0.8 * persistence_mse  # ... and the season explains much of it


def test_a_real_dem_drives_the_generator(shared_data) -> None:
    path = shared_data / "columbia" / "dem_Columbia.tif"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    dataset = gdal.Open(str(path))
    elevation = dataset.GetRasterBand(1).ReadAsArray().astype(np.float32)
    pixel = abs(dataset.GetGeoTransform()[1])
    small = cv2.resize(elevation, (elevation.shape[1] // 3, elevation.shape[0] // 3), interpolation=cv2.INTER_AREA)
    series = synthetic_series(years=2, seed=1, dem=small, pixel_size_m=3 * pixel, latitude_deg=61.0)
    assert series.frames.shape[1:] == small.shape and np.isfinite(series.frames).all()
    winter, summer = series.frames[3], series.frames[5]  # Jan-Mar 2014, Jul-Sep 2014
    assert winter.mean() > summer.mean() + 0.2
    high, low = small > np.percentile(small, 80), small < np.percentile(small, 30)
    assert summer[high].mean() > summer[low].mean()


def test_sample_scenes_are_landsat_collection_2_files(tmp_path) -> None:
    paths = write_sample_scenes(str(tmp_path), shape=(64, 64), years=1, seed=3)
    scenes = synthetic_scenes(shape=(64, 64), years=1, seed=3)
    assert len(paths) == 2 * len(scenes)
    dataset = gdal.Open(paths[0])
    assert dataset.GetMetadataItem("ACQUISITION_DATETIME") == scenes[0].time.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert "32643" in dataset.GetProjection() or "UTM zone 43N" in dataset.GetProjection()
    dn = dataset.GetRasterBand(1).ReadAsArray()
    assert dn.dtype == np.uint16 and dataset.GetRasterBand(1).GetNoDataValue() == 0
    reflectance = landsat_reflectance(dn)
    np.testing.assert_array_equal(np.isnan(reflectance), np.isnan(scenes[0].green))
    np.testing.assert_allclose(reflectance, scenes[0].green, atol=2e-5)
