"""Tests of patches, the leakage-free time split, baselines, metrics and forecast products (core/forecast)."""
from __future__ import annotations

import os
import xml.etree.ElementTree as ElementTree
from datetime import datetime, timezone

import cv2
import numpy as np
import pytest
from osgeo import gdal, osr

from glacierflow.core.errors import GlacierFlowError
from glacierflow.core.forecast.baselines import climatology, climatology_for, persistence
from glacierflow.core.forecast.metrics import (
    bootstrap_ci,
    mae,
    mse,
    paired_bootstrap_skill,
    per_sample_errors,
    skill_vs,
)
from glacierflow.core.forecast.patches import (
    assemble_patches,
    extract_patches,
    patch_origins,
    sequence_starts,
    split_windows,
    training_sets,
    windows_used,
)
from glacierflow.core.forecast.series import NdsiSeries
from glacierflow.core.geo.grid import Grid
from glacierflow.core.products.ndsi import (
    forecast_flow,
    ndsi_style_qml,
    write_forecast_flow,
    write_forecast_raster,
)

UTC = timezone.utc


def quarter_starts(count: int, year: int = 2013) -> list:
    return [datetime(year + (i // 4), 1 + 3 * (i % 4), 1, tzinfo=UTC) for i in range(count)]


def random_series(windows: int = 32, shape=(120, 100), seed: int = 0) -> NdsiSeries:
    rng = np.random.default_rng(seed)
    return NdsiSeries(rng.random((windows,) + shape).astype(np.float32), quarter_starts(windows))


def utm_grid(shape) -> Grid:
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32643)
    return Grid(srs.ExportToWkt(), (700000.0, 30.0, 0.0, 3600000.0, 0.0, -30.0), shape[1], shape[0])


# --- patches ----------------------------------------------------------------------------------------------------

def test_patch_origins_cover_the_image_flush_with_the_edges() -> None:
    origins = patch_origins((120, 95), patch=50, stride=10)
    rows, cols = sorted({o[0] for o in origins}), sorted({o[1] for o in origins})
    assert rows == [0, 10, 20, 30, 40, 50, 60, 70]
    assert cols == [0, 10, 20, 30, 40, 45]
    covered = np.zeros((120, 95), bool)
    for row, col in origins:
        covered[row:row + 50, col:col + 50] = True
    assert covered.all()
    assert patch_origins((50, 50)) == [(0, 0)]
    with pytest.raises(GlacierFlowError, match="smaller than one"):
        patch_origins((49, 200))


def test_extract_patches_shape_and_content() -> None:
    frames = np.arange(3 * 60 * 70, dtype=np.float32).reshape(3, 60, 70)
    origins = [(0, 0), (10, 20)]
    patches = extract_patches(frames, origins, patch=50)
    assert patches.shape == (2, 3, 50, 50) and patches.dtype == np.float32
    np.testing.assert_array_equal(patches[1], frames[:, 10:60, 20:70])


def test_patches_reassemble_exactly() -> None:
    rng = np.random.default_rng(1)
    image = rng.random((2, 130, 110)).astype(np.float32)
    origins = patch_origins((130, 110), 50, 10)
    rebuilt = assemble_patches(extract_patches(image, origins, 50), origins, (130, 110))
    np.testing.assert_allclose(rebuilt, image, atol=1e-6)


def test_reassembly_blends_disagreeing_patches_without_seams() -> None:
    origins = patch_origins((50, 90), 50, 10)  # five patches along the columns
    patches = np.stack([np.full((1, 50, 50), float(i)) for i in range(len(origins))])
    rebuilt = assemble_patches(patches, origins, (50, 90))[0]
    assert rebuilt.min() >= 0.0 and rebuilt.max() <= len(origins) - 1
    steps = np.abs(np.diff(rebuilt, axis=1))
    assert steps.max() < 0.25  # a hard seam would jump by 1 between patches
    assert np.all(np.diff(rebuilt[25]) >= -1e-6)  # monotone hand-over from patch to patch


# --- the time split -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n_windows, n_in, n_out, validation, test", [
    (32, 4, 4, 0.15, 0.2), (36, 4, 4, 0.1, 0.2), (60, 4, 4, 0.15, 0.2), (24, 2, 3, 0.2, 0.3), (40, 4, 4, 0.0, 0.25)])
def test_split_has_no_leakage(n_windows, n_in, n_out, validation, test) -> None:
    split = split_windows(n_windows, n_in, n_out, validation, test)
    assert split["train"] and split["test"]

    def windows(name, part):
        used = set()
        for start in split[name]:
            used.update(windows_used(start, n_in, n_out)[part])
        return used

    test_windows = windows("test", 0) | windows("test", 1)
    train_targets, validation_targets = windows("train", 1), windows("validation", 1)
    assert not test_windows & (train_targets | validation_targets)
    assert not validation_targets & train_targets
    assert max(test_windows) == n_windows - 1
    everything_before_test = windows("train", 0) | train_targets | windows("validation", 0) | validation_targets
    assert max(everything_before_test) < min(test_windows)  # later windows for testing
    if split["validation"]:
        assert max(split["train"]) < min(split["validation"]) < max(split["validation"]) < min(split["test"])


def test_split_of_eight_years_of_quarters() -> None:
    split = split_windows(32)
    assert split == {"train": [0, 1, 2, 3, 4, 5], "validation": [9, 10, 11, 12], "test": [20, 21, 22, 23, 24]}
    assert sequence_starts(32) == list(range(25))


def test_split_refuses_a_too_short_series() -> None:
    with pytest.raises(GlacierFlowError, match="too few"):
        split_windows(12)


def test_training_sets_shapes_provenance_and_independent_test_patches() -> None:
    series = [random_series(seed=0), random_series(seed=1)]
    sets = training_sets(series, patch=50, stride=10)
    train, test = sets["train"], sets["test"]
    origins_train, origins_test = len(patch_origins((120, 100), 50, 10)), len(patch_origins((120, 100), 50, 50))
    assert train.inputs.shape == (2 * 6 * origins_train, 4, 50, 50) and train.targets.shape == train.inputs.shape
    assert len(test) == 2 * 5 * origins_test and test.inputs.dtype == np.float32
    assert len(sets["validation"]) == 2 * 4 * origins_train
    for samples in sets.values():
        for index in (0, len(samples) // 2, len(samples) - 1):
            frames = series[samples.series_index[index]].frames
            start, (row, col) = samples.starts[index], samples.origins[index]
            np.testing.assert_array_equal(samples.inputs[index], frames[start:start + 4, row:row + 50, col:col + 50])
            np.testing.assert_array_equal(samples.targets[index],
                                          frames[start + 4:start + 8, row:row + 50, col:col + 50])
    inputs, targets = sets["train"]  # unpacks like the (inputs, targets) pair
    assert inputs is train.inputs and targets is train.targets


# --- baselines --------------------------------------------------------------------------------------------------

def test_persistence_repeats_the_last_input() -> None:
    inputs = np.arange(2 * 4 * 3 * 3, dtype=np.float32).reshape(2, 4, 3, 3)
    forecast = persistence(inputs, n_out=4)
    assert forecast.shape == (2, 4, 3, 3)
    for k in range(4):
        np.testing.assert_array_equal(forecast[:, k], inputs[:, 3])


def test_climatology_uses_the_same_window_of_earlier_years_only() -> None:
    frames = np.arange(16, dtype=np.float64).reshape(16, 1, 1) * np.ones((16, 2, 2))
    result = climatology(frames, [9, 10, 11, 12], windows_per_year=4, last_known=8)
    np.testing.assert_allclose(result[:, 0, 0], [(5 + 1) / 2, (6 + 2) / 2, (7 + 3) / 2, (8 + 4 + 0) / 3])
    poisoned = frames.copy()
    poisoned[9:] = 1e6  # the future: must never enter the forecast
    np.testing.assert_allclose(climatology(poisoned, [9, 10, 11, 12], 4, last_known=8), result)


def test_climatology_falls_back_to_persistence_without_an_earlier_year() -> None:
    frames = np.arange(10, dtype=np.float64).reshape(10, 1)
    assert climatology(frames, [2], 4)[0, 0] == 1.0  # no window 2 - 4: the last known frame
    # Six-month windows, 4 targets ahead: window 6's previous year (4) is not yet known at window 3.
    np.testing.assert_allclose(climatology(frames, [4, 5, 6, 7], 2, last_known=3)[:, 0], [(2 + 0) / 2, (3 + 1) / 2,
                                                                                          (2 + 0) / 2, (3 + 1) / 2])
    with pytest.raises(GlacierFlowError):
        climatology(frames, [5], 4, last_known=5)


def test_climatology_for_a_sequence_set_matches_the_samples() -> None:
    series = [random_series(seed=2)]
    test = training_sets(series)["test"]
    forecast = climatology_for(test, series)
    assert forecast.shape == test.targets.shape
    index = len(test) - 1
    start, (row, col) = test.starts[index], test.origins[index]
    expected = climatology(series[0].frames, range(start + 4, start + 8), 4, last_known=start + 3)
    np.testing.assert_allclose(forecast[index], expected[:, row:row + 50, col:col + 50], rtol=1e-6)


def test_baselines_on_a_seasonal_series() -> None:
    """A pure seasonal cycle: climatology is perfect, persistence is not."""
    cycle = np.array([0.9, 0.6, 0.2, 0.7])
    frames = np.tile(cycle, 8)[:, None, None] * np.ones((32, 60, 60))
    series = [NdsiSeries(frames.astype(np.float32), quarter_starts(32))]
    test = training_sets(series)["test"]
    assert mse(climatology_for(test, series), test.targets) < 1e-12
    assert mse(persistence(test.inputs), test.targets) > 0.05


# --- metrics ----------------------------------------------------------------------------------------------------

def test_mse_mae_ignore_nan() -> None:
    prediction = np.array([[0.0, 1.0], [np.nan, 2.0]])
    target = np.array([[1.0, 1.0], [5.0, 0.0]])
    assert mse(prediction, target) == pytest.approx((1 + 0 + 4) / 3)
    assert mae(prediction, target) == pytest.approx((1 + 0 + 2) / 3)
    per_mse, per_mae = per_sample_errors(prediction, target)
    np.testing.assert_allclose(per_mse, [0.5, 4.0])
    np.testing.assert_allclose(per_mae, [0.5, 2.0])


def test_bootstrap_interval_covers_the_true_mean_about_95_percent() -> None:
    rng = np.random.default_rng(123)
    trials, covered = 300, 0
    for trial in range(trials):
        sample = rng.normal(2.0, 1.0, 40)
        mean, low, high = bootstrap_ci(sample, n_resamples=400, seed=trial)
        assert low < mean < high
        covered += low <= 2.0 <= high
    assert 0.88 <= covered / trials <= 0.98


def test_bootstrap_is_deterministic_per_seed() -> None:
    values = np.random.default_rng(0).exponential(1.0, 200)
    assert bootstrap_ci(values, seed=4) == bootstrap_ci(values, seed=4)
    assert bootstrap_ci(values, seed=4) != bootstrap_ci(values, seed=5)
    assert bootstrap_ci(values)[0] == pytest.approx(values.mean())


def test_skill_and_its_paired_bootstrap() -> None:
    rng = np.random.default_rng(1)
    reference = rng.exponential(0.08, 500)  # hard and easy samples
    model = 0.7 * reference * rng.uniform(0.9, 1.1, 500)
    assert skill_vs(0.1, 0.08) == pytest.approx(0.2)
    skill, low, high = paired_bootstrap_skill(reference, model, seed=0)
    assert skill == pytest.approx(1 - model.mean() / reference.mean())
    assert low < skill < high and 0.25 < low and high < 0.35  # pairing cancels the shared difficulty
    _, ref_low, ref_high = bootstrap_ci(reference)
    assert high - low < 0.5 * (ref_high - ref_low) / reference.mean()


# --- products ---------------------------------------------------------------------------------------------------

def test_forecast_raster_is_a_tagged_cog(tmp_path) -> None:
    grid = utm_grid((60, 80))
    frames = np.random.default_rng(0).random((4, 60, 80)).astype(np.float32)
    frames[0, 0, 0] = np.nan
    starts = quarter_starts(4, 2024)
    path = write_forecast_raster(str(tmp_path / "forecast.tif"), frames, grid, starts, 3,
                                 {"name": "sa_lstm", "version": "1"})
    dataset = gdal.Open(path)
    assert dataset.RasterCount == 4 and dataset.GetGeoTransform() == grid.transform
    assert dataset.GetMetadataItem("LAYOUT", "IMAGE_STRUCTURE") == "COG"
    assert dataset.GetMetadataItem("MODEL") == "sa_lstm" and dataset.GetMetadataItem("MODEL_VERSION") == "1"
    band = dataset.GetRasterBand(3)
    assert band.GetDescription() == "NDSI 2024-07-01..2024-09-30"
    assert band.GetMetadataItem("WINDOW_START") == "2024-07-01T00:00:00Z"
    assert band.GetMetadataItem("WINDOW_END") == "2024-10-01T00:00:00Z"
    assert np.isnan(band.GetNoDataValue())
    np.testing.assert_array_equal(dataset.ReadAsArray(), frames)
    assert os.listdir(tmp_path) == ["forecast.tif"]  # no temporary file left


def test_forecast_raster_failure_leaves_nothing(tmp_path) -> None:
    with pytest.raises(GlacierFlowError):
        write_forecast_raster(str(tmp_path / "missing" / "f.tif"), np.zeros((4, 5, 5)), utm_grid((5, 5)),
                              quarter_starts(4), 3, {})
    with pytest.raises(GlacierFlowError):
        write_forecast_raster(str(tmp_path / "f.tif"), np.zeros((3, 5, 5)), utm_grid((5, 5)), quarter_starts(4), 3,
                              {})
    assert os.listdir(tmp_path) == []


def test_forecast_flow_follows_a_moving_snow_patch(tmp_path) -> None:
    frames = np.zeros((3, 120, 120), np.float32)
    for index, shift in enumerate((0, 3, 6)):
        cv2.circle(frames[index], (40 + shift, 60), 20, 0.8, -1)
    frames = np.stack([cv2.GaussianBlur(f, (0, 0), 3) for f in frames])
    flow = forecast_flow(frames, pixel_size_m=30.0, days_between=91.0)
    assert flow.shape == (2, 2, 120, 120) and flow.dtype == np.float32
    edge = (frames[0] > 0.1) & (frames[0] < 0.7)
    assert np.median(flow[0, 0][edge]) == pytest.approx(3.0, abs=0.6)
    assert abs(np.median(flow[0, 1][edge])) < 0.3
    path = write_forecast_flow(str(tmp_path / "flow.tif"), flow, utm_grid((120, 120)), quarter_starts(3), 3)
    dataset = gdal.Open(path)
    assert dataset.RasterCount == 6
    speed = dataset.GetRasterBand(3)
    assert speed.GetUnitType() == "m/yr" and speed.GetDescription().startswith("speed 2013-01-01..2013-03-31 ->")
    days = (datetime(2013, 4, 1) - datetime(2013, 1, 1)).days
    expected = np.hypot(flow[0, 0], flow[0, 1]) * 30.0 * 365.25 / days
    np.testing.assert_allclose(speed.ReadAsArray(), expected, rtol=1e-5)


def test_ndsi_style_is_written_beside_the_raster(tmp_path) -> None:
    qml = ndsi_style_qml(str(tmp_path / "forecast.tif"), band=2)
    assert qml == str(tmp_path / "forecast.qml")
    root = ElementTree.parse(qml).getroot()
    renderer = root.find("./pipe/rasterrenderer")
    assert renderer.get("band") == "2" and renderer.get("type") == "singlebandpseudocolor"
    values = [float(item.get("value")) for item in root.iter("item")]
    assert values[0] == 0.0 and values[-1] == 1.0 and 0.3 in values
