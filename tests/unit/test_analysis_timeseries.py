"""Time series at points over a synthetic stack of dated pair products with known speeds."""
from __future__ import annotations

import csv
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from analysis_samples import centres, grid, write_pair_product, write_stack_product
from osgeo import gdal

from glacierflow.core.analysis.timeseries import (
    SeriesPoint,
    velocity_time_series,
    write_series_csv,
    write_series_png,
)
from glacierflow.core.errors import GlacierFlowError
from glacierflow.core.feedback import Feedback
from glacierflow.core.geo.crs import transform_points, wgs84_wkt

STARTS = [datetime(2021, 5, 1, tzinfo=timezone.utc) + timedelta(days=24 * i) for i in range(6)]
LENGTHS = [12, 24, 36, 12, 24, 12]  # days


class Warnings(Feedback):
    def __init__(self):
        self.warnings = []

    def warning(self, message):
        self.warnings.append(message)


def truth(index, x, x0):
    """Pair ``index``'s field: vx grows by 10 m/yr per pair and eastwards (0.1 /yr); vy = -20 m/yr."""
    return 100.0 + 10.0 * index + 0.1 * (x - x0), -20.0


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Six pairs, written out of order into one folder, plus a raster that is not a velocity product."""
    target = grid()
    folder = tmp_path_factory.mktemp("series")
    x, _ = centres(target)
    for index in (3, 0, 5, 1, 4, 2):
        vx, vy = truth(index, x, target.transform[0])
        start, end = STARTS[index], STARTS[index] + timedelta(days=LENGTHS[index])
        write_pair_product(folder / f"pair_{index}.tif", target, vx, np.full(target.shape, vy),
                           start.strftime("%Y-%m-%dT%H:%M:%SZ"), end.strftime("%Y-%m-%dT%H:%M:%SZ"),
                           LENGTHS[index])
    plain = gdal.GetDriverByName("GTiff").Create(str(folder / "dem.tif"), 5, 5, 1, gdal.GDT_Float32)
    plain.SetGeoTransform(target.transform)
    plain = None
    (folder / "notes.txt").write_text("not a raster")
    return target, folder


def test_series_recovers_the_known_speeds_at_their_mid_dates(folder):
    target, path = folder
    x0, y0 = target.transform[0], target.transform[3]
    points = [SeriesPoint("upper", x0 + 105.0, y0 - 205.0), SeriesPoint("lower", x0 + 605.0, y0 - 405.0)]
    feedback = Warnings()
    values = velocity_time_series([str(path)], points, target.crs_wkt, feedback)
    assert len(values) == 12 and any("dem.tif" in w for w in feedback.warnings)
    for point in points:
        mine = [v for v in values if v.point == point]
        assert [v.product for v in mine] == [f"pair_{i}.tif" for i in range(6)]  # sorted by mid-date
        for index, value in enumerate(mine):
            vx, vy = truth(index, point.x, x0)
            assert value.vx == pytest.approx(vx, abs=1e-3) and value.vy == pytest.approx(vy, abs=1e-3)
            assert value.speed == pytest.approx(np.hypot(vx, vy), abs=1e-3)
            assert value.interval_days == LENGTHS[index]
            assert value.mid == STARTS[index] + timedelta(days=LENGTHS[index] / 2)
            assert value.valid == 1.0 and np.isnan(value.uncertainty)


def test_points_in_wgs84_and_outside_the_raster(folder):
    target, path = folder
    x0, y0 = target.transform[0], target.transform[3]
    ((lon, lat), (far_lon, far_lat)) = transform_points([(x0 + 305.0, y0 - 305.0), (x0 - 5000.0, y0)],
                                                        target.crs_wkt, wgs84_wkt())
    values = velocity_time_series([str(path)], [SeriesPoint("a", lon, lat), SeriesPoint("far", far_lon, far_lat)],
                                  wgs84_wkt())
    near = [v for v in values if v.point.name == "a"]
    assert near[0].vx == pytest.approx(100.0 + 0.1 * 305.0, abs=0.01)
    assert all(np.isnan(v.vx) for v in values if v.point.name == "far")


def test_stack_products_give_uncertainty_and_files_can_be_listed(tmp_path):
    target = grid()
    paths = [write_stack_product(tmp_path / f"annual_{year}.tif", target, np.full(target.shape, 50.0 + year - 2020),
                                 np.zeros(target.shape), np.full(target.shape, 2.5), f"{year}-01-01T00:00:00Z",
                                 f"{year}-12-31T00:00:00Z") for year in (2021, 2020)]
    x0, y0 = target.transform[0], target.transform[3]
    values = velocity_time_series(paths, [SeriesPoint("p", x0 + 15.0, y0 - 15.0)], target.crs_wkt)
    assert [v.speed for v in values] == pytest.approx([50.0, 51.0])
    assert [v.uncertainty for v in values] == pytest.approx([2.5, 2.5])
    csv_path = write_series_csv(str(tmp_path / "series.csv"), values)
    with open(csv_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["mid_date"] == "2020-07-01T12:00:00Z" and float(rows[1]["speed"]) == 51.0
    assert open(write_series_png(str(tmp_path / "series.png"), values), "rb").read(4) == b"\x89PNG"


def test_no_velocity_product_is_a_clear_error(tmp_path):
    (tmp_path / "x.tif").write_bytes(b"not a tiff")
    with pytest.raises(GlacierFlowError, match="dated velocity product"):
        velocity_time_series([str(tmp_path)], [SeriesPoint("p", 0.0, 0.0)], wgs84_wkt())
