"""NDSI series for an area and Forecast NDSI: core jobs and the toolbox path, on the built-in NDSI sample."""
from __future__ import annotations

import os
from datetime import datetime, timezone

import numpy as np
import pytest
from osgeo import gdal

from glacierflow.core.errors import GlacierFlowError
from glacierflow.core.forecast import jobs
from glacierflow.core.forecast.onnx_forecaster import list_shipped_forecasters
from glacierflow.core.forecast.series import build_ndsi_series, landsat_reflectance
from glacierflow.core.imagery import LocalFolderSource
from glacierflow.core.products.ndsi import read_ndsi_series, write_ndsi_series
from training.forecast.generator import write_sample_scenes

SHAPE = (110, 120)


@pytest.fixture(scope="module")
def sample_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ndsi_sample")
    write_sample_scenes(str(folder), shape=SHAPE, years=3, seed=3)
    return str(folder)


@pytest.fixture(scope="module")
def series_path(sample_folder, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("series") / "ndsi_series.tif")
    jobs.run_ndsi_series_job(jobs.NdsiSeriesJob(out, LocalFolderSource(sample_folder)))
    return out


def _forecaster():
    shipped = list_shipped_forecasters()
    if not shipped:
        pytest.skip("no forecaster shipped in glacierflow/assets/models/forecast (see training/forecast/README.md)")
    return sorted(shipped)[0]


def test_local_files_pair_into_green_and_swir1(sample_folder):
    scenes = LocalFolderSource(sample_folder).search(None, None, None)
    acquisitions, unpaired = jobs.pair_bands(scenes)
    assert len(acquisitions) * 2 == len(scenes) and not unpaired
    assert all(a.green.id.endswith("_SR_B3") and a.swir1.id.endswith("_SR_B6") for a in acquisitions)
    assert [a.time for a in acquisitions] == sorted(a.time for a in acquisitions)


def test_series_job_equals_the_chain_on_the_same_scenes(sample_folder, series_path):
    series = read_ndsi_series(series_path)
    assert series.frames.shape[1:] == SHAPE and series.window_months == 3
    assert all(t.month in (1, 4, 7, 10) and t.day == 1 for t in series.times)
    assert len(series.times) >= 12
    # The same scenes straight through the papers' chain give the same series: the job adds nothing.
    source = LocalFolderSource(sample_folder)
    acquisitions, _ = jobs.pair_bands(source.search(None, None, None))
    grid = series.grid

    def band(scene):
        return landsat_reflectance(np.nan_to_num(source.fetch(scene, grid)))
    direct = build_ndsi_series([a.time for a in acquisitions], np.stack([band(a.green) for a in acquisitions]),
                               np.stack([band(a.swir1) for a in acquisitions]))
    np.testing.assert_allclose(series.frames, direct.frames, atol=1e-6)
    assert np.nanmin(series.frames) >= 0 and np.nanmax(series.frames) <= 1
    dataset = gdal.Open(series_path)
    assert dataset.GetRasterBand(1).GetDescription().startswith("NDSI ")
    assert os.path.exists(os.path.splitext(series_path)[0] + ".qml")


def test_series_job_needs_green_and_swir1(tmp_path, sample_folder):
    only_green = tmp_path / "green"
    only_green.mkdir()
    for name in sorted(os.listdir(sample_folder))[:6]:
        if name.endswith("_SR_B3.tif"):
            os.symlink(os.path.join(sample_folder, name), only_green / name)
    out = tmp_path / "s.tif"
    with pytest.raises(GlacierFlowError, match="green and SWIR1"):
        jobs.run_ndsi_series_job(jobs.NdsiSeriesJob(str(out), LocalFolderSource(str(only_green))))
    assert not out.exists()


def test_forecast_job_writes_the_next_windows_and_scores_the_hindcast(series_path, tmp_path):
    model = _forecaster()
    out, flow = str(tmp_path / "forecast.tif"), str(tmp_path / "flow.tif")
    result = jobs.run_forecast_job(jobs.ForecastJob(series_path, model, out, flow_output=flow, stride=25))
    series = read_ndsi_series(series_path)
    assert result.window_starts[0] > series.times[-1]
    assert result.window_starts[0] == datetime(series.times[-1].year + (series.times[-1].month == 10),
                                               series.times[-1].month % 12 + 3, 1, tzinfo=timezone.utc)
    dataset = gdal.Open(out)
    assert dataset.RasterCount == len(result.window_starts) == 4
    values = dataset.ReadAsArray()
    assert np.isfinite(values).all() and values.min() >= 0 and values.max() <= 1
    assert dataset.GetRasterBand(1).GetMetadataItem("WINDOW_START").startswith(f"{result.window_starts[0]:%Y-%m-%d}")
    assert set(result.hindcast) == {"model", "persistence", "climatology"}
    assert all(0 <= s["mse"] < 1 for s in result.hindcast.values())
    assert gdal.Open(flow).RasterCount == 3 * 4


def test_forecast_refuses_a_series_of_other_windows(series_path, tmp_path):
    model = _forecaster()
    series = read_ndsi_series(series_path)
    series.window_months = 1
    odd = str(tmp_path / "monthly.tif")
    write_ndsi_series(odd, series)
    out = tmp_path / "f.tif"
    with pytest.raises(GlacierFlowError, match="1-month windows"):
        jobs.run_forecast_job(jobs.ForecastJob(odd, model, str(out)))
    assert not out.exists()


@pytest.fixture(scope="module")
def long_series_path(tmp_path_factory):
    from training.forecast.generator import sample_ndsi_grid, synthetic_series

    series = synthetic_series((100, 100), years=6, seed=21)
    series.grid = sample_ndsi_grid((100, 100))
    path = str(tmp_path_factory.mktemp("long") / "long_series.tif")
    return write_ndsi_series(path, series)
