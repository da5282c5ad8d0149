"""The annual chain (``core.workflows.annual``) on the multi-date sample (the chain from a remote source,
through the job grid and a download, is in test_imagery_download.py; the algorithm in tests/qgis)."""
from __future__ import annotations

import csv
import json
import os
import shutil
from dataclasses import replace

import numpy as np
import pytest
from osgeo import gdal

from glacierflow.core.errors import GlacierFlowError
from glacierflow.core.feedback import Feedback, JobCancelled
from glacierflow.core.products.velocity import open_velocity
from glacierflow.core.workflows.annual import AnnualJob, is_complete_product, pair_product_name, run_annual_job
from training.sample_series import SERIES_DATES, write_sample_series

ENGINE = "farneback"
SHAPE = (192, 192)
PAIRS = 9  # 3 summer scenes of 2021 x 3 of 2022; the May 2021 scene is outside the default months


class Recorder(Feedback):
    """Keeps the log; cancels once a message starts with ``cancel_at``."""

    def __init__(self, cancel_at: str = "") -> None:
        self.messages, self.warnings = [], []
        self.cancel_at = cancel_at

    def info(self, message: str) -> None:
        self.messages.append(message)

    def warning(self, message: str) -> None:
        self.warnings.append(message)

    def is_cancelled(self) -> bool:
        return bool(self.cancel_at) and any(m.startswith(self.cancel_at) for m in self.messages)


def read(path: str, band: int = 1) -> np.ndarray:
    dataset = gdal.Open(path)
    return dataset.GetRasterBand(band).ReadAsArray().astype(float)


def band_index(path: str, name: str) -> int:
    dataset = gdal.Open(path)
    return next(i for i in range(1, dataset.RasterCount + 1) if dataset.GetRasterBand(i).GetDescription() == name)


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    return write_sample_series(str(tmp_path_factory.mktemp("series")), shape=SHAPE)


@pytest.fixture(scope="module")
def annual(series, tmp_path_factory):
    out = tmp_path_factory.mktemp("annual")
    job = AnnualJob(folder=series.folder, output=str(out / "annual.tif"), year_a=2021, engine=ENGINE,
                    outlines=series.outlines, stakes=series.stakes, compare_pairs=True)
    feedback = Recorder()
    return job, run_annual_job(job, feedback), feedback


def test_sample_series_has_dated_images_truth_and_stakes(series):
    assert len(series.images) == len(SERIES_DATES)
    dataset = gdal.Open(series.images[1])
    assert dataset.GetMetadataItem("ACQUISITION_DATETIME") == SERIES_DATES[1][0]
    assert dataset.GetRasterBand(1).DataType == gdal.GDT_UInt16
    assert 30.0 < series.max_speed < 80.0
    with open(series.stakes, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) >= 4 and all(float(r["vy"]) > 0 for r in rows)


def test_annual_product_is_close_to_the_truth(series, annual):
    job, result, _ = annual
    assert result.pair_count == PAIRS and result.computed == PAIRS and result.reused == 0
    assert not result.single_pair and os.path.exists(result.style)
    true_vx, true_vy = read(series.truth_vx), read(series.truth_vy)
    true_speed = np.hypot(true_vx, true_vy)
    fast = true_speed > 0.3 * series.max_speed
    error = np.hypot(read(job.output, 1) - true_vx, read(job.output, 2) - true_vy)[fast]
    # farneback underestimates this narrow, sheared tongue by ~15 % (as on the single-pair sample)
    assert np.nanmedian(error) < 0.2 * series.max_speed
    count = read(job.output, band_index(job.output, "count"))
    assert np.nanmedian(count[fast]) == PAIRS
    uncertainty = read(job.output, band_index(job.output, "uncertainty"))
    assert 0.0 < np.nanmedian(uncertainty[fast]) < 0.2 * series.max_speed
    still = true_speed == 0
    assert np.nanmedian(np.abs(read(job.output, 3)[still])) < 2.0


def test_stable_ground_report(annual):
    _, result, _ = annual
    with open(result.stable_report, encoding="utf-8") as handle:
        stats = json.load(handle)
    assert stats["pixel_count"] > 10000 and stats["corrected"] is False
    assert abs(stats["vx"]["median"]) < 1.0 and abs(stats["vy"]["median"]) < 1.0
    assert os.path.exists(os.path.splitext(result.stable_report)[0] + ".txt")


def test_stake_table(series, annual):
    job, result, _ = annual
    summary = result.stakes_summary
    assert summary["count"] >= 4
    assert abs(summary["bias_speed"]) < 0.25 * series.max_speed
    with open(result.stakes_csv, newline="", encoding="utf-8") as handle:
        rows = [r for r in csv.reader(handle)]
    products = {r[1] for r in rows[1:] if len(r) > 2 and r[0].startswith("S")}
    assert os.path.basename(job.output) in products and len(products) == PAIRS + 1
    assert "<img" in open(result.stakes_html, encoding="utf-8").read()


def test_stakes_carry_the_true_velocity(series):
    from glacierflow.core.validation.stakes import compare_stakes, read_stakes

    stakes = read_stakes(series.stakes)
    truth = str(os.path.join(series.folder, "truth_product.tif"))
    _write_truth_product(series, truth)
    summary = compare_stakes(stakes, [truth]).summary[truth]
    assert summary["count"] == len(stakes) and summary["rmse_speed"] < 0.05 and summary["rmse_vx"] < 0.05


def _write_truth_product(series, path: str) -> None:
    """The truth as a two-band vx, vy GeoTIFF, as the stake sampler reads it."""
    source = gdal.Open(series.truth_vx)
    dataset = gdal.GetDriverByName("GTiff").Create(path, source.RasterXSize, source.RasterYSize, 2,
                                                   gdal.GDT_Float32)
    dataset.SetGeoTransform(source.GetGeoTransform())
    dataset.SetProjection(source.GetProjection())
    for index, (name, file) in enumerate((("vx", series.truth_vx), ("vy", series.truth_vy)), start=1):
        dataset.GetRasterBand(index).SetDescription(name)
        dataset.GetRasterBand(index).WriteArray(read(file))
    dataset = None


def test_rerun_reuses_every_pair(series, annual, tmp_path):
    job, result, _ = annual
    times = {p: os.path.getmtime(p) for p in result.pair_products}
    rerun = AnnualJob(folder=series.folder, output=str(tmp_path / "again.tif"), year_a=2021, engine=ENGINE,
                      outlines=series.outlines, work_folder=os.path.dirname(result.pair_products[0]))
    feedback = Recorder()
    again = run_annual_job(rerun, feedback)
    assert again.reused == PAIRS and again.computed == 0
    assert sum(": reused" in m for m in feedback.messages) == PAIRS
    assert {p: os.path.getmtime(p) for p in again.pair_products} == times
    assert np.allclose(read(rerun.output, 1), read(job.output, 1), equal_nan=True)


def test_incomplete_product_is_recomputed(series, annual, tmp_path):
    _, result, _ = annual
    work = tmp_path / "pairs"
    shutil.copytree(os.path.dirname(result.pair_products[0]), work)
    broken = work / os.path.basename(result.pair_products[0])
    broken.write_bytes(b"not a tiff")
    feedback = Recorder()
    again = run_annual_job(AnnualJob(folder=series.folder, output=str(tmp_path / "a.tif"), year_a=2021,
                                     engine=ENGINE, work_folder=str(work)), feedback)
    assert again.reused == PAIRS - 1 and again.computed == 1
    assert any("No glacier outlines" in w for w in feedback.warnings) and again.stable_report is None


def test_cancel_midway_leaves_no_annual_output(series, tmp_path):
    output = tmp_path / "annual.tif"
    job = AnnualJob(folder=series.folder, output=str(output), year_a=2021, engine=ENGINE,
                    work_folder=str(tmp_path / "pairs"))
    with pytest.raises(JobCancelled):
        run_annual_job(job, Recorder(cancel_at="Pair 5/9"))
    assert not output.exists()
    assert not [n for n in os.listdir(tmp_path) if n.startswith("annual")]
    finished = [n for n in os.listdir(tmp_path / "pairs") if n.endswith(".tif") and not n.startswith(".")]
    assert len(finished) == 4  # the finished pairs stay for the resume
    assert not [n for n in os.listdir(tmp_path / "pairs") if n.startswith(".")]


def test_single_pair_works_and_says_so(series, tmp_path):
    folder = tmp_path / "two"
    folder.mkdir()
    for image in (series.images[1], series.images[4]):
        shutil.copy(image, folder)
    feedback = Recorder()
    result = run_annual_job(AnnualJob(folder=str(folder), output=str(tmp_path / "one.tif"), year_a=2021,
                                      engine=ENGINE, outlines=series.outlines), feedback)
    assert result.single_pair and result.pair_count == 1
    assert any("Only one pair" in w for w in feedback.warnings)
    assert np.all(np.isnan(read(result.output, band_index(result.output, "uncertainty"))))


def test_pair_names_and_completeness(series, annual):
    _, result, _ = annual
    from glacierflow.core.imagery import LocalFolderSource, cross_year_pairs

    pairs = cross_year_pairs(LocalFolderSource(series.folder).search(None, None, None, {7, 8, 9}), 2021, 2022)
    names = [pair_product_name(p, ENGINE) for p in pairs]
    assert names == [os.path.basename(p) for p in result.pair_products]
    assert is_complete_product(result.pair_products[0], pairs[0], ENGINE)
    assert not is_complete_product(result.pair_products[0], pairs[0], "horn_schunck")
    # on another grid (a folder reused for another area), a product is not this job's
    grid = open_velocity(result.pair_products[0]).grid
    assert is_complete_product(result.pair_products[0], pairs[0], ENGINE, grid)
    x0, a, b, y0, d, e = grid.transform
    shifted = replace(grid, transform=(x0 + a, a, b, y0, d, e))  # one pixel east
    for other in (shifted, replace(grid, width=grid.width + 1)):
        assert not is_complete_product(result.pair_products[0], pairs[0], ENGINE, other)


def test_no_pair_between_the_years_fails_clearly(series, tmp_path):
    with pytest.raises(GlacierFlowError, match="2023"):
        run_annual_job(AnnualJob(folder=series.folder, output=str(tmp_path / "x.tif"), year_a=2022,
                                 year_b=2023, engine=ENGINE))


def _stake_products(path: str) -> set:
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    return {r[1] for r in rows[1:] if len(r) > 2 and r[0].startswith("S")}


def test_stable_areas_without_outlines(series, annual, tmp_path):
    """User polygons of stable ground give the statistics when no outlines are given (reusing the pairs)."""
    import json

    from osgeo import gdal, ogr, osr

    _, result, _ = annual
    dataset = gdal.Open(result.output)
    x0, dx, _, y0, _, dy = dataset.GetGeoTransform()
    srs = osr.SpatialReference(wkt=dataset.GetProjection())
    box = ogr.CreateGeometryFromWkt(f"POLYGON(({x0} {y0},{x0 + 40 * dx} {y0},{x0 + 40 * dx} {y0 + 40 * dy},"
                                    f"{x0} {y0 + 40 * dy},{x0} {y0}))")
    path = str(tmp_path / "rock.gpkg")
    source = ogr.GetDriverByName("GPKG").CreateDataSource(path)
    layer = source.CreateLayer("rock", srs, ogr.wkbPolygon)
    feature = ogr.Feature(layer.GetLayerDefn())
    feature.SetGeometry(box)
    layer.CreateFeature(feature)
    source = None
    job = AnnualJob(folder=series.folder, output=str(tmp_path / "rock.tif"), year_a=2021, engine=ENGINE,
                    stable_areas=path, work_folder=os.path.dirname(result.pair_products[0]))
    again = run_annual_job(job, Recorder())
    assert again.reused == PAIRS and again.stable_report
    with open(again.stable_report) as handle:
        report = json.load(handle)
    assert "rock.gpkg" in report["stable_ground"]
    assert 1400 < report["pixel_count"] <= 40 * 40   # the 40 x 40 px box, less pixels without a velocity
