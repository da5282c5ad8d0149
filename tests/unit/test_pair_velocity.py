"""The pair job end to end on real GeoTIFFs of the synthetic glacier, against its exact flow."""
from __future__ import annotations

import os

import numpy as np
import pytest
from osgeo import gdal

from glacierflow.core.errors import GlacierFlowError
from glacierflow.core.feedback import Feedback, JobCancelled
from glacierflow.core.velocity.pair import PairJob, run_pair_job
from training.sample import write_sample


def _bands(path):
    dataset = gdal.Open(str(path))
    return {dataset.GetRasterBand(i).GetDescription(): dataset.GetRasterBand(i).ReadAsArray()
            for i in range(1, dataset.RasterCount + 1)}


def _truth(sample):
    return {name: gdal.Open(path).ReadAsArray() for name, path in (("vx", sample.truth_vx), ("vy", sample.truth_vy))}


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return write_sample(str(tmp_path_factory.mktemp("pair")), seed=3, shape=(384, 384), max_displacement_px=6.0)


def _errors_px(product, truth, region, m_per_px_per_yr):
    error = np.hypot(product["vx"] - truth["vx"], product["vy"] - truth["vy"])[region] / m_per_px_per_yr
    return np.nanmedian(error), np.isfinite(error).mean()


@pytest.mark.parametrize("engine", ["hybrid", "dis", "ncc", "horn_schunck", "farneback"])
def test_recovers_the_known_flow(sample, tmp_path, engine):
    output = tmp_path / "v.tif"
    result = run_pair_job(PairJob(sample.image_a, sample.image_b, str(output), outlines=sample.outlines,
                                  engine=engine, tile_size=192, overlap=48))
    product, truth = _bands(output), _truth(sample)
    per_px = 10.0 * 365.25 / result.interval_days
    glacier_error, glacier_coverage = _errors_px(product, truth, product["glacier"] == 1, per_px)
    stable_error, _ = _errors_px(product, truth, product["glacier"] == 0, per_px)
    # NCC's 32 px chips average this narrow synthetic glacier's steep shear (measured 0.55 px; on real
    # texture with wider margins it is within 0.05 px of DIS, tests/unit/test_realtexture.py)
    assert glacier_error < (0.7 if engine == "ncc" else 0.3) and stable_error < 0.2
    assert glacier_coverage > 0.9
    # direction: the estimated and true velocity agree in sign where the ice moves fast
    fast = np.hypot(truth["vx"], truth["vy"]) > 30
    assert np.nanmean(np.sign(product["vx"][fast]) == np.sign(truth["vx"][fast])) > 0.95
    assert os.path.exists(result.style)


def _flip_to_south_up(path, out):
    dataset = gdal.Open(path)
    x0, a, b, y0, d, e = dataset.GetGeoTransform()
    height = dataset.RasterYSize
    copy = gdal.GetDriverByName("GTiff").CreateCopy(str(out), dataset)
    copy.SetGeoTransform((x0, a, b, y0 + e * height, d, -e))  # row 0 is now the southern edge
    copy.GetRasterBand(1).WriteArray(dataset.ReadAsArray()[::-1])
    copy = None
    return str(out)


def test_south_up_input_gives_the_same_map_velocity(sample, tmp_path):
    a = _flip_to_south_up(sample.image_a, tmp_path / "a_south_up.tif")
    b = _flip_to_south_up(sample.image_b, tmp_path / "b_south_up.tif")
    run_pair_job(PairJob(a, b, str(tmp_path / "v.tif"), engine="farneback", date_a="2021-08-01T10:30:21Z",
                         date_b="2022-08-06T10:30:19Z"))
    product = _bands(tmp_path / "v.tif")
    truth = _truth(sample)
    fast = np.hypot(truth["vx"], truth["vy"])[::-1] > 30
    # vy is north in both: a south-up grid must not flip its sign
    assert np.nanmedian(product["vy"][fast] - truth["vy"][::-1][fast]) == pytest.approx(0.0, abs=3.0)
    assert np.nanmedian(product["vx"][fast] - truth["vx"][::-1][fast]) == pytest.approx(0.0, abs=3.0)


def test_image_b_in_another_crs_is_warped(sample, tmp_path):
    b_other = str(tmp_path / "b_utm31.tif")
    gdal.Warp(b_other, sample.image_b, dstSRS="EPSG:32631", xRes=10, yRes=10, resampleAlg="cubic")
    result = run_pair_job(PairJob(sample.image_a, b_other, str(tmp_path / "v.tif"), engine="farneback",
                                  outlines=sample.outlines))
    product, truth = _bands(tmp_path / "v.tif"), _truth(sample)
    glacier = product["glacier"] == 1
    per_px = 10.0 * 365.25 / result.interval_days
    error, _ = _errors_px(product, truth, glacier, per_px)
    assert error < 0.5  # two resamplings blur the texture, the flow stays right


@pytest.fixture()
def small_blocks(monkeypatch):
    """Blocks of about 100 x 100 px on the 384 px sample, so that the pool has many to share."""
    from glacierflow.core.velocity import pair

    monkeypatch.setattr(pair, "MAX_BLOCK_PIXELS", 300 * 300)
    monkeypatch.setattr(pair, "MAX_BLOCK_WIDTH", 128)
    return pair


def test_progress_and_cancel_within_one_block_with_the_pool(sample, tmp_path, small_blocks, monkeypatch):
    tracked = []
    real_track_block = small_blocks.track_block

    def counting_track_block(*args, **kwargs):
        tracked.append(1)
        return real_track_block(*args, **kwargs)

    monkeypatch.setattr(small_blocks, "track_block", counting_track_block)

    class CancelAfterTwoBlocks(Feedback):
        def __init__(self):
            self.reports = []

        def progress(self, percent):
            self.reports.append(percent)

        def is_cancelled(self):
            return len(self.reports) >= 2

    feedback = CancelAfterTwoBlocks()
    rows = small_blocks.block_rows(384, 384, 100, 2)
    assert sum(len(row) for row in rows) >= 9
    with pytest.raises(JobCancelled):
        run_pair_job(PairJob(sample.image_a, sample.image_b, str(tmp_path / "v.tif"), engine="dis", margin=100,
                             workers=2), feedback)
    assert feedback.reports == sorted(feedback.reports) and len(feedback.reports) == 2
    # the two reported blocks, plus at most the ones the two workers held when the cancel came
    assert len(tracked) <= 2 + 2
    assert os.listdir(tmp_path) == []


def test_parallel_blocks_give_the_serial_product(sample, tmp_path, small_blocks):
    products = []
    for workers in (1, 2):
        output = tmp_path / f"v{workers}.tif"
        run_pair_job(PairJob(sample.image_a, sample.image_b, str(output), engine="dis", workers=workers))
        products.append(_bands(output))
    for name in ("vx", "vy", "valid"):
        assert np.array_equal(products[0][name], products[1][name], equal_nan=True), name


def test_blocks_with_wide_margins_match_the_whole_scene(sample, tmp_path, monkeypatch):
    from glacierflow.core.velocity import pair

    whole = tmp_path / "whole.tif"
    result = run_pair_job(PairJob(sample.image_a, sample.image_b, str(whole), engine="dis", workers=1))
    monkeypatch.setattr(pair, "MAX_BLOCK_PIXELS", 300 * 300)
    monkeypatch.setattr(pair, "MAX_BLOCK_WIDTH", 128)
    blocks = tmp_path / "blocks.tif"
    run_pair_job(PairJob(sample.image_a, sample.image_b, str(blocks), engine="dis", workers=2, margin=96))
    one, many = _bands(whole), _bands(blocks)
    both = (one["valid"] == 1) & (many["valid"] == 1)
    assert both.mean() > 0.8
    per_px = 10.0 * 365.25 / result.interval_days  # m/yr per px of the sample (10 m px)
    difference = np.hypot(one["vx"] - many["vx"], one["vy"] - many["vy"])[both] / per_px
    assert np.median(difference) < 0.02 and np.percentile(difference, 95) < 0.15


def test_the_job_bounds_gdal_cache_and_restores_it(sample, tmp_path, monkeypatch):
    from glacierflow.core.velocity import pair

    seen = []
    real_track_block = pair.track_block

    def recording_track_block(*args, **kwargs):
        seen.append(gdal.GetCacheMax())
        if kwargs.get("fail"):
            raise RuntimeError("a block failed")
        return real_track_block(*args, **kwargs)

    monkeypatch.setattr(pair, "track_block", recording_track_block)
    before = gdal.GetCacheMax()
    gdal.SetCacheMax(300 * 2 ** 20)
    try:
        run_pair_job(PairJob(sample.image_a, sample.image_b, str(tmp_path / "v.tif"), engine="dis"))
        assert seen and set(seen) == {pair.GDAL_CACHE_MB * 2 ** 20}
        assert gdal.GetCacheMax() == 300 * 2 ** 20
        monkeypatch.setattr(pair, "track_block", lambda *args, **kwargs: recording_track_block(fail=True))
        with pytest.raises(RuntimeError, match="a block failed"):
            run_pair_job(PairJob(sample.image_a, sample.image_b, str(tmp_path / "w.tif"), engine="dis"))
        assert gdal.GetCacheMax() == 300 * 2 ** 20  # restored after a failure too
        assert not (tmp_path / "w.tif").exists()
    finally:
        gdal.SetCacheMax(before)


@pytest.mark.parametrize("mode", ["sobel", "wallis", "raw", "gradient"])
def test_every_preprocessing_mode_runs_through_the_job(sample, tmp_path, mode):
    output = tmp_path / "v.tif"
    result = run_pair_job(PairJob(sample.image_a, sample.image_b, str(output), outlines=sample.outlines,
                                  engine="dis", preprocessing=mode))
    assert result.metadata["PREPROCESSING"] == mode
    product, truth = _bands(output), _truth(sample)
    error, coverage = _errors_px(product, truth, product["glacier"] == 1, 10.0 * 365.25 / result.interval_days)
    assert error < 0.3 and coverage > 0.8


def test_preprocessing_defaults_per_engine_and_bad_choices(sample, tmp_path):
    result = run_pair_job(PairJob(sample.image_a, sample.image_b, str(tmp_path / "v.tif")))
    assert result.engine == "hybrid" and result.metadata["PREPROCESSING"] == "wallis"
    with pytest.raises(GlacierFlowError, match="Unknown preprocessing 'laplace'.*sobel"):
        run_pair_job(PairJob(sample.image_a, sample.image_b, str(tmp_path / "w.tif"), preprocessing="laplace"))
    with pytest.raises(GlacierFlowError, match="RAFT model was trained on Sobel"):
        run_pair_job(PairJob(sample.image_a, sample.image_b, str(tmp_path / "w.tif"), engine="raft",
                             preprocessing="wallis"))
    assert not (tmp_path / "w.tif").exists()


def test_a_scene_without_texture_is_refused_without_output(sample, tmp_path):
    flat = str(tmp_path / "flat.tif")
    source = gdal.Open(sample.image_b)
    copy = gdal.GetDriverByName("GTiff").CreateCopy(flat, source)
    copy.GetRasterBand(1).Fill(1234)
    copy = None
    with pytest.raises(GlacierFlowError, match="constant"):
        run_pair_job(PairJob(sample.image_a, flat, str(tmp_path / "v.tif")))
    assert not (tmp_path / "v.tif").exists()


def test_job_summary_keeps_no_strip_alive():
    """The running summary must copy its subsample: a view would pin every strip (memory grows with area)."""
    from glacierflow.core.velocity.pair import _Tally

    tally = _Tally()
    strip = np.random.default_rng(0).random((64, 5000)).astype(np.float32)
    tally.add(strip, np.ones(strip.shape, bool))
    assert all(sample.base is None for sample in tally.speeds)


def test_offset_correction_removes_a_coregistration_shift(sample, tmp_path):
    shifted = str(tmp_path / "b_shifted.tif")
    copy = gdal.GetDriverByName("GTiff").CreateCopy(shifted, gdal.Open(sample.image_b))
    x0, a, b, y0, d, e = copy.GetGeoTransform()
    copy.SetGeoTransform((x0 + 0.4 * a, a, b, y0, d, e))  # B's content sits 0.4 px further east: stable ground "moves"
    copy = None
    runs = {}
    for correct in (False, True):
        output = tmp_path / f"v_{correct}.tif"
        result = run_pair_job(PairJob(sample.image_a, shifted, str(output), outlines=sample.outlines, engine="dis",
                                      correct_offset=correct), Feedback())
        runs[correct] = (result, _bands(output))
    per_px = 10.0 * 365.25 / runs[True][0].interval_days
    stable = {key: bands["glacier"] == 0 for key, (_, bands) in runs.items()}
    before = np.nanmedian(runs[False][1]["vx"][stable[False]]) / per_px
    after = np.nanmedian(runs[True][1]["vx"][stable[True]]) / per_px
    assert before == pytest.approx(0.4, abs=0.05)
    assert after == pytest.approx(0.0, abs=0.02)
    metadata = runs[True][0].metadata
    assert metadata["STABLE_CORRECTED"] == "yes"
    assert float(metadata["STABLE_VX_MEDIAN_M_PER_YR"]) / per_px == pytest.approx(0.4, abs=0.05)
    assert gdal.Open(str(tmp_path / "v_True.tif")).GetMetadataItem("STABLE_CORRECTED") == "yes"
    assert sorted(os.listdir(tmp_path)) == ["b_shifted.tif", "v_False.qml", "v_False.tif", "v_True.qml",
                                            "v_True.tif"]  # the uncorrected intermediate is gone
    with pytest.raises(GlacierFlowError, match="needs stable ground"):
        run_pair_job(PairJob(sample.image_a, shifted, str(tmp_path / "w.tif"), correct_offset=True))


def test_the_product_does_not_depend_on_the_thread_count(sample, tmp_path):
    """Default block sizes: one thread (a Dask worker) and two (this machine) cut the same blocks."""
    products = []
    for workers in (1, 2, 3):
        output = tmp_path / f"v{workers}.tif"
        run_pair_job(PairJob(sample.image_a, sample.image_b, str(output), engine="hybrid", workers=workers))
        products.append(_bands(output))
    for other in products[1:]:
        for name in ("vx", "vy", "valid"):
            assert np.array_equal(products[0][name], other[name], equal_nan=True), name


def test_max_speed_sets_the_ncc_search_range(sample, tmp_path):
    from glacierflow.core.velocity.pair import engine_params

    one_px_per_day = PairJob("a", "b", "o", engine="ncc", max_speed=365.25 * 10.0)  # 10 m/day on 10 m pixels
    assert engine_params(one_px_per_day, 12.0, 10.0) == {"search": 12 + 4}
    assert engine_params(PairJob("a", "b", "o", engine="ncc", max_speed=3650.0, engine_params={"search": 9}),
                         12.0, 10.0) == {"search": 9}  # an explicit search range wins
    assert engine_params(PairJob("a", "b", "o", engine="hybrid", max_speed=3650.0), 12.0, 10.0) == {}
    with pytest.raises(GlacierFlowError, match="maximum expected speed"):
        engine_params(PairJob("a", "b", "o", engine="ncc", max_speed=-1.0), 12.0, 10.0)

    truth = _truth(sample)
    fastest = float(np.nanmax(np.hypot(truth["vx"], truth["vy"])))
    lines = []

    class Log(Feedback):
        def info(self, message):
            lines.append(message)

    output = tmp_path / "v.tif"
    result = run_pair_job(PairJob(sample.image_a, sample.image_b, str(output), outlines=sample.outlines,
                                  engine="ncc", max_speed=1.2 * fastest), Log())
    expected = int(np.ceil(1.2 * fastest * result.interval_days / 365.25 / 10.0)) + 4
    assert any(f"NCC search range +-{expected} px" in line for line in lines), lines
    product = _bands(output)
    per_px = 10.0 * 365.25 / result.interval_days
    assert _errors_px(product, truth, product["glacier"] == 1, per_px)[0] < 0.7


@pytest.mark.parametrize("engine", ["dis", "farneback"])
def test_a_blocks_kept_rows_equal_the_whole_blocks_rows(sample, engine):
    """Post-processing only the kept rows (texture, FB check, median with its context) changes no value."""
    from glacierflow.core.io.raster import BandSource
    from glacierflow.core.velocity.flow import create_engine
    from glacierflow.core.velocity.pair import sample_windows, track_settings
    from glacierflow.core.velocity.preprocess import band_statistics
    from glacierflow.core.velocity.tracking import track_block

    sources = [BandSource.open(path) for path in (sample.image_a, sample.image_b)]
    stats = tuple(band_statistics(sample_windows(source, source.grid)) for source in sources)
    band_a, band_b = (source.read(sources[0].grid) for source in sources)
    settings = track_settings(PairJob("a", "b", "out", engine=engine))
    whole = track_block(create_engine(engine), band_a, band_b, stats, settings)
    for keep in (slice(0, 100), slice(150, 260), slice(300, 384)):
        part = track_block(create_engine(engine), band_a, band_b, stats, settings, keep)
        for name in ("dx", "dy", "trust", "data"):
            assert np.array_equal(getattr(part, name), getattr(whole, name)[keep], equal_nan=True), (keep, name)


def test_the_summary_speeds_are_the_products(sample, tmp_path):
    """The logged / metadata median and 95th percentile speed are those of the written product."""
    output = tmp_path / "v.tif"
    result = run_pair_job(PairJob(sample.image_a, sample.image_b, str(output), engine="dis"))
    speeds = _bands(output)["speed"]
    speeds = speeds[np.isfinite(speeds)]
    assert result.median_speed == pytest.approx(float(np.median(speeds)), rel=1e-5)
    assert result.p95_speed == pytest.approx(float(np.percentile(speeds, 95)), rel=1e-5)
