"""GPS stakes on a known, linear flow field: reading, CRS handling, sampling, statistics, reports, Processing."""
from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from osgeo import ogr, osr

from glacierflow.core.errors import GlacierFlowError
from glacierflow.core.geo.crs import wgs84_wkt
from glacierflow.core.geo.grid import Grid
from glacierflow.core.io.cog import BandSpec, ProductWriter
from glacierflow.core.validation import stakes as core
from training.sample import sample_grid

SHAPE = (60, 80)  # rows, cols at 10 m
OFFSET_VX = 5.0  # m/yr added to vx in the offset product
BANDS = [BandSpec("vx", "velocity east", "m/yr"), BandSpec("vy", "velocity north", "m/yr"),
         BandSpec("speed", "speed", "m/yr")]


def grid() -> Grid:
    return sample_grid(SHAPE)


def truth_at(x: float, y: float) -> tuple:
    """The analytic flow (m/yr) at map point (x, y): linear, so bilinear sampling is exact."""
    x0, _, _, y0, _, _ = grid().transform
    return 100.0 + 0.1 * (x - x0), -40.0 + 0.05 * (y0 - y)


def write_product(path: Path, offset_vx: float = 0.0, nan_box: tuple = (), spike: tuple = ()) -> str:
    g = grid()
    rows, cols = np.mgrid[0:SHAPE[0], 0:SHAPE[1]]
    x, y = g.pixel_to_map(cols + 0.5, rows + 0.5)
    vx, vy = truth_at(x, y)
    vx = vx + offset_vx
    if nan_box:
        r0, r1, c0, c1 = nan_box
        vx[r0:r1, c0:c1] = np.nan
        vy[r0:r1, c0:c1] = np.nan
    if spike:
        vx[spike[0], spike[1]] = 1e4
    with ProductWriter(str(path), g, BANDS) as writer:
        writer.write_rows(0, {"vx": vx, "vy": vy, "speed": np.hypot(vx, vy)})
        return writer.finish({})


def centre(col: float, row: float) -> tuple:
    return grid().pixel_to_map(col, row)


def write_csv(path: Path, header: list, rows: list) -> str:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def stake_rows(points: list) -> list:
    return [[f"S{i}", x, y, *truth_at(x, y)] for i, (x, y) in enumerate(points, start=1)]


INSIDE = [(12.3, 7.8), (40.0, 30.5), (70.2, 50.9), (25.5, 44.1)]


@pytest.fixture(scope="module")
def products(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stakes")
    return (folder, write_product(folder / "truth.tif"), write_product(folder / "offset.tif", OFFSET_VX),
            write_product(folder / "holes.tif", nan_box=(0, 20, 0, 30)))


@pytest.fixture(scope="module")
def measured_csv(products):
    folder = products[0]
    points = [centre(c, r) for c, r in INSIDE] + [centre(500.0, 10.0)]
    return write_csv(folder / "stakes.csv", ["id", "x", "y", "vx", "vy"], stake_rows(points))


def test_truth_has_no_bias_and_offset_product_has_its_offset(products, measured_csv):
    _, truth, offset, _ = products
    stakes = core.read_stakes(measured_csv, crs_wkt=grid().crs_wkt)
    comparison = core.compare_stakes(stakes, [truth, offset])
    good, shifted = comparison.summary[truth], comparison.summary[offset]
    assert good["count"] == 4 and shifted["count"] == 4
    assert abs(good["bias_vx"]) < 1e-3 and good["rmse_vx"] < 1e-3 and good["rmse_vy"] < 1e-3
    assert shifted["bias_vx"] == pytest.approx(OFFSET_VX, abs=1e-3)
    assert shifted["rmse_vx"] == pytest.approx(OFFSET_VX, abs=1e-3)
    assert abs(shifted["bias_vy"]) < 1e-3 and shifted["bias_speed"] > 0


def test_stake_outside_or_on_no_data_gets_nan_and_a_reason(products, measured_csv):
    _, truth, _, holes = products
    stakes = core.read_stakes(measured_csv, crs_wkt=grid().crs_wkt)
    comparison = core.compare_stakes(stakes, [truth, holes])
    outside = [s for s in comparison.samples if s.stake_id == "S5"]
    assert all(math.isnan(s.estimated_speed) and s.reason == "outside the raster" for s in outside)
    in_hole = next(s for s in comparison.samples if s.stake_id == "S1" and s.product == holes)
    assert math.isnan(in_hole.estimated_vx) and in_hole.reason == "no data at the stake"
    assert comparison.summary[holes]["count"] == 3


def _lonlat(points_utm: list) -> list:
    utm, wgs = osr.SpatialReference(), osr.SpatialReference()
    utm.ImportFromWkt(grid().crs_wkt)
    wgs.ImportFromEPSG(4326)
    for srs in (utm, wgs):
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    transform = osr.CoordinateTransformation(utm, wgs)
    return [transform.TransformPoint(x, y)[:2] for x, y in points_utm]


def test_lonlat_stakes_with_positions_and_dates_are_rotated_into_the_product_crs(products):
    folder, truth, _, _ = products
    days = 200.0
    rows = []
    for i, (c, r) in enumerate(INSIDE, start=1):
        x, y = centre(c, r)
        vx, vy = truth_at(x, y)
        end = (x + vx * days / 365.25, y + vy * days / 365.25)
        (lon0, lat0), (lon1, lat1) = _lonlat([(x, y), end])
        rows.append([f"G{i}", f"{lon0:.10f}", f"{lat0:.10f}", f"{lon1:.10f}", f"{lat1:.10f}",
                     "2021-07-01", "2022-01-17"])
    path = write_csv(folder / "gps.csv", ["id", "lon_start", "lat_start", "lon_end", "lat_end", "date_start",
                                          "date_end"], rows)
    stakes = core.read_stakes(path)  # EPSG:4326 by default
    comparison = core.compare_stakes(stakes, [truth])
    for sample, (c, r) in zip(comparison.samples, INSIDE):
        expected = truth_at(*centre(c, r))
        assert sample.measured_vx == pytest.approx(expected[0], abs=0.01)
        assert sample.measured_vy == pytest.approx(expected[1], abs=0.01)
    # sampled at the middle of the path: the linear field differs from the start by a known amount
    assert abs(comparison.summary[truth]["bias_vy"]) < 0.5 and comparison.summary[truth]["count"] == 4


def test_measured_vector_in_lonlat_is_rotated_not_copied():
    x, y = centre(40.0, 30.0)
    (lon, lat), = _lonlat([(x, y)])
    stake = core.Stake("R", lon, lat, wgs84_wkt(), vx=100.0, vy=0.0, speed=100.0)
    _, _, vx, vy, speed = core.measured_in(stake, grid().crs_wkt)
    assert speed == pytest.approx(100.0) and math.hypot(vx, vy) == pytest.approx(100.0)
    convergence = math.degrees(math.atan2(vy, vx))
    assert 0.01 < abs(convergence) < 5.0  # grid north differs from true north away from the central meridian


def test_missing_dates_give_a_clear_error(products):
    folder = products[0]
    path = write_csv(folder / "nodate.csv", ["id", "x_start", "y_start", "x_end", "y_end", "date_start", "date_end"],
                     [["A", 1, 2, 3, 4, "2021-07-01", ""]])
    with pytest.raises(GlacierFlowError, match="no start or end date"):
        core.read_stakes(path, crs_wkt=grid().crs_wkt)
    no_velocity = write_csv(folder / "novel.csv", ["id", "x", "y"], [["A", 1, 2]])
    with pytest.raises(GlacierFlowError, match="give no velocity"):
        core.read_stakes(no_velocity, crs_wkt=grid().crs_wkt)


def test_bilinear_and_window_median_sampling(products):
    folder = products[0]
    spiky = core.ProductSampler(write_product(folder / "spike.tif", spike=(30, 40)))
    x, y = centre(40.5, 30.5)  # the spike's pixel centre
    assert spiky.sample(x, y, core.BILINEAR)[0] == pytest.approx(1e4)
    assert spiky.sample(x, y, core.WINDOW_MEDIAN, 3)[0] == pytest.approx(truth_at(x, y)[0], abs=0.2)
    x, y = centre(12.3, 7.8)
    smooth = core.ProductSampler(products[1])
    assert smooth.sample(x, y, core.BILINEAR)[0] == pytest.approx(truth_at(x, y)[0], abs=1e-3)
    assert core.bilinear(np.array([[1.0, np.nan], [3.0, np.nan]]), 0.5, 1.0) == pytest.approx(2.0)
    assert math.isnan(core.bilinear(np.full((2, 2), np.nan), 0.5, 0.5))


def test_gpkg_stakes_with_speed_and_reports(products, tmp_path):
    _, truth, offset, _ = products
    path = str(tmp_path / "stakes.gpkg")
    _write_gpkg(path, [(centre(c, r), math.hypot(*truth_at(*centre(c, r)))) for c, r in INSIDE])
    comparison = core.compare_stakes(core.read_stakes(path), [truth, offset], core.WINDOW_MEDIAN, 1)
    assert comparison.summary[truth]["count"] == 4 and abs(comparison.summary[truth]["bias_speed"]) < 1.0
    assert comparison.summary[offset]["count_vx"] == 0  # speed only: no vx comparison
    csv_path = core.write_csv_report(str(tmp_path / "table.csv"), comparison)
    html_path = core.write_html_report(str(tmp_path / "page.html"), comparison)
    text = Path(csv_path).read_text()
    assert "offset.tif" in text and "bias_speed" in text
    page = Path(html_path).read_text()
    assert "data:image/png;base64," in page and f"{comparison.summary[offset]['bias_speed']:.3f}" in page
    assert sorted(p.name for p in tmp_path.iterdir()) == ["page.html", "stakes.gpkg", "table.csv"]


def _write_gpkg(path: str, stakes: list, crs_wkt: str = "") -> str:
    srs = osr.SpatialReference()
    srs.ImportFromWkt(crs_wkt or grid().crs_wkt)
    dataset = ogr.GetDriverByName("GPKG").CreateDataSource(path)
    layer = dataset.CreateLayer("stakes", srs, ogr.wkbPoint)
    layer.CreateField(ogr.FieldDefn("name", ogr.OFTString))
    layer.CreateField(ogr.FieldDefn("speed", ogr.OFTReal))
    for index, ((x, y), speed) in enumerate(stakes, start=1):
        feature = ogr.Feature(layer.GetLayerDefn())
        feature["name"], feature["speed"] = f"P{index}", speed
        feature.SetGeometry(ogr.CreateGeometryFromWkt(f"POINT ({x} {y})"))
        layer.CreateFeature(feature)
    dataset = None
    return path
