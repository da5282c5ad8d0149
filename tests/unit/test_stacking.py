"""Stacking pair products into an annual velocity: synthetic stacks with known truth and planted outliers."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from osgeo import gdal

from glacierflow.core.errors import GlacierFlowError
from glacierflow.core.feedback import Feedback, JobCancelled
from glacierflow.core.geo.grid import Grid
from glacierflow.core.io.cog import ProductWriter
from glacierflow.core.products.velocity import PAIR_BANDS
from glacierflow.core.velocity.stacking import StackJob, combine, run_stack_job
from training.sample import sample_grid

SHAPE = (120, 150)
NOISE = 5.0  # m/yr per component and pair
OUTLIER = 800.0  # m/yr added to vx in the planted outlier pixels
INTERVALS = [352.0, 368.0, 376.0, 384.0, 400.0]


def truth(shape=SHAPE):
    """A smooth known field (m/yr): faster in the middle rows, flowing east and south."""
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]]
    vx = 100.0 + 200.0 * np.exp(-((rows - shape[0] / 2) / 30.0) ** 2) + 0.2 * cols
    vy = -50.0 - 0.3 * rows
    return vx.astype(np.float32), vy.astype(np.float32)


def write_pair(path, grid, vx, vy, days, start="2021-07-01T00:00:00Z"):
    """A pair product as run_pair_job writes it (vx, vy, speed, valid; INTERVAL_DAYS)."""
    valid = np.isfinite(vx) & np.isfinite(vy)
    with ProductWriter(str(path), grid, PAIR_BANDS) as writer:
        writer.write_rows(0, {"vx": vx, "vy": vy, "speed": np.hypot(vx, vy), "valid": valid.astype(np.float32)})
        writer.finish({"INTERVAL_DAYS": f"{days:.6f}", "ACQUISITION_A": start,
                       "ACQUISITION_B": f"2022-{int(days) % 12 + 1:02d}-01T00:00:00Z", "ENGINE": "synthetic"})
    return str(path)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Five noisy pairs of the truth; pair 2 has an outlier block, pair 4 a no-data block."""
    folder = tmp_path_factory.mktemp("stack")
    grid = sample_grid(SHAPE)
    tx, ty = truth()
    rng = np.random.default_rng(5)
    paths = []
    for index, days in enumerate(INTERVALS):
        vx = tx + rng.normal(0, NOISE, SHAPE).astype(np.float32)
        vy = ty + rng.normal(0, NOISE, SHAPE).astype(np.float32)
        if index == 1:
            vx[10:30, 20:60] += OUTLIER
        if index == 3:
            vx[80:100, 100:140] = np.nan
            vy[80:100, 100:140] = np.nan
        paths.append(write_pair(folder / f"pair_{index}.tif", grid, vx, vy, days))
    return grid, paths, folder


def read_bands(path):
    dataset = gdal.Open(str(path))
    return {dataset.GetRasterBand(i).GetDescription(): dataset.GetRasterBand(i).ReadAsArray()
            for i in range(1, dataset.RasterCount + 1)}, dataset.GetMetadata()


class Recorder(Feedback):
    def __init__(self, cancel_after=None):
        self.warnings, self.progresses, self.cancel_after = [], [], cancel_after

    def warning(self, message):
        self.warnings.append(message)

    def progress(self, percent):
        self.progresses.append(percent)

    def is_cancelled(self):
        return self.cancel_after is not None and len(self.progresses) >= self.cancel_after


def test_stack_recovers_the_truth_and_rejects_outliers(stack, tmp_path):
    grid, paths, _ = stack
    output = tmp_path / "annual.tif"
    result = run_stack_job(StackJob(paths, str(output), strip_rows=32))  # several strips
    bands, meta = read_bands(output)
    assert list(bands)[:5] == ["vx", "vy", "speed", "uncertainty", "count"]
    tx, ty = truth()
    for name, field in (("vx", tx), ("vy", ty), ("vx_median", tx), ("vy_median", ty)):
        error = bands[name] - field
        assert abs(np.mean(error)) < 0.5 and np.sqrt(np.mean(error ** 2)) < 4.0, name
    block = (slice(10, 30), slice(20, 60))
    assert np.all(bands["rejected"][block] >= 1)  # the outlier pair is dropped everywhere in it
    assert np.mean(bands["count"][block] == 4) > 0.95  # and (almost) only that pair
    assert abs(np.mean(bands["vx"][block] - tx[block])) < 1.0
    hole = (slice(80, 100), slice(100, 140))
    assert np.all(bands["count"][hole] <= 4) and np.mean(bands["count"][hole] == 4) > 0.9  # no data in one pair
    clean = np.ones(SHAPE, dtype=bool)
    clean[block] = clean[hole] = False
    assert np.mean(bands["count"][clean] == 5) > 0.9  # few good values are rejected (~1 % per value)
    assert np.mean(bands["rejected"][clean]) < 0.02 * 5
    # 1 sigma of the vector's standard error: sqrt(2) * NOISE / sqrt(5) = 3.16 m/yr
    expected = np.sqrt(2) * NOISE / np.sqrt(5)
    assert np.mean(bands["uncertainty"][bands["count"] == 5]) == pytest.approx(expected, rel=0.15)
    assert np.nanmedian(bands["vx_std"]) == pytest.approx(NOISE, rel=0.2)
    assert np.allclose(bands["speed"], np.hypot(bands["vx"], bands["vy"]), atol=1e-3)
    assert meta["PAIR_COUNT"] == "5" and meta["GLACIERFLOW_PRODUCT"] == "velocity_stack"
    pairs = json.loads(meta["PAIRS"])
    assert [p["interval_days"] for p in pairs] == pytest.approx(INTERVALS)
    planted = 800 / (5 * 150 * 120 - 800)  # plus about 1 % of good values
    assert planted < result.rejected_fraction < planted + 0.02
    assert os.path.exists(result.style)
    assert gdal.Open(str(output)).GetRasterBand(4).GetUnitType() == "m/yr"


def test_weighting_by_interval_follows_the_interval():
    vx = np.array([100.0, 200.0, 400.0], dtype=np.float32)[:, None, None]
    vy = np.zeros_like(vx)
    equal = combine(vx, vy, np.ones(3), outlier_k=0)
    weighted = combine(vx, vy, np.array([1.0, 1.0, 2.0]), outlier_k=0)
    assert equal["vx"][0, 0] == pytest.approx(700 / 3)
    assert weighted["vx"][0, 0] == pytest.approx(275.0)
    assert weighted["vx_median"][0, 0] == pytest.approx(200.0)
    assert weighted["count"][0, 0] == 3 and weighted["rejected"][0, 0] == 0


def test_weighted_stack_runs_and_says_so(stack, tmp_path):
    _, paths, _ = stack
    output = tmp_path / "weighted.tif"
    run_stack_job(StackJob(paths, str(output), weight_by_interval=True))
    bands, meta = read_bands(output)
    assert meta["WEIGHT_BY_INTERVAL"] == "yes"
    assert abs(np.mean(bands["vx"] - truth()[0])) < 0.5


def test_outlier_floor_protects_agreeing_pairs():
    vx = np.array([100.0, 100.1, 100.2, 103.0], dtype=np.float32)[:, None, None]
    vy = np.zeros_like(vx)
    assert combine(vx, vy, np.ones(4), 3.0, floor=0.0)["rejected"][0, 0] == 1
    assert combine(vx, vy, np.ones(4), 3.0, floor=10.0)["rejected"][0, 0] == 0


def test_single_pair_works_and_warns(stack, tmp_path):
    _, paths, _ = stack
    output = tmp_path / "single.tif"
    feedback = Recorder()
    run_stack_job(StackJob(paths[:1], str(output)), feedback)
    bands, meta = read_bands(output)
    single, _ = read_bands(paths[0])
    assert np.all(bands["count"] == 1)
    assert np.all(np.isnan(bands["uncertainty"]))
    assert np.allclose(bands["vx"], single["vx"])
    assert any("Only one pair" in w for w in feedback.warnings)
    assert meta["PAIR_COUNT"] == "1"


def test_pairs_on_other_grids_are_warped(stack, tmp_path):
    grid, paths, folder = stack
    tx, ty = truth()
    # the same field on a grid shifted by half a pixel and twice as coarse, in the same CRS
    x0, a, b, y0, d, e = grid.transform
    coarse = Grid(grid.crs_wkt, (x0 - 0.5 * a, 2 * a, 0.0, y0 - 0.5 * e, 0.0, 2 * e), 80, 65)
    rows, cols = np.mgrid[0:65, 0:80]
    fine_rows, fine_cols = 2 * rows, 2 * cols  # coarse pixel centres fall on these fine pixel centres
    cx = (100.0 + 200.0 * np.exp(-((fine_rows - SHAPE[0] / 2) / 30.0) ** 2) + 0.2 * fine_cols).astype(np.float32)
    cy = (-50.0 - 0.3 * fine_rows).astype(np.float32)
    other = write_pair(folder / "coarse.tif", coarse, cx, cy, 370.0)
    output = tmp_path / "mixed.tif"
    run_stack_job(StackJob([paths[0], other], str(output)))
    bands, _ = read_bands(output)
    assert bands["vx"].shape == SHAPE
    inner = (slice(5, -5), slice(5, -5))
    assert np.nanmedian(np.abs(bands["vx"][inner] - tx[inner])) < 6.0
    assert np.mean(bands["count"][inner] == 2) > 0.95


def test_cancel_leaves_no_output(stack, tmp_path):
    _, paths, _ = stack
    output = tmp_path / "cancelled.tif"
    with pytest.raises(JobCancelled):
        run_stack_job(StackJob(paths, str(output), strip_rows=16), Recorder(cancel_after=2))
    assert os.listdir(tmp_path) == []


def test_bad_inputs_fail_clearly(stack, tmp_path):
    _, paths, _ = stack
    with pytest.raises(GlacierFlowError, match="at least one"):
        run_stack_job(StackJob([], str(tmp_path / "x.tif")))
    with pytest.raises(GlacierFlowError, match="twice"):
        run_stack_job(StackJob([paths[0], paths[0]], str(tmp_path / "x.tif")))
    single = str(tmp_path / "single_band.tif")
    gdal.Translate(single, paths[0], bandList=[3])
    with pytest.raises(GlacierFlowError, match="vx and vy"):
        run_stack_job(StackJob([single], str(tmp_path / "x.tif")))
    assert not os.path.exists(tmp_path / "x.tif")
