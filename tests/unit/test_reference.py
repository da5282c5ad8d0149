"""Comparison with a reference velocity field: vector rotation between CRSs, units, nodata, ITS_LIVE."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, osr

from glacierflow.core.errors import GlacierFlowError
from glacierflow.core.geo.crs import spatial_reference, transform_bounds
from glacierflow.core.geo.grid import Grid
from glacierflow.core.geo.outlines import outline_mask
from glacierflow.core.io.cog import BandSpec, ProductWriter
from glacierflow.core.io.raster import write_array
from glacierflow.core.validation.reference import ReferenceJob, direction_difference, run_reference_comparison

NODATA = -32767.0
FLOW = (300.0, -400.0)  # m/yr east/north in the UTM product grid: 500 m/yr
UTM = 32606
POLAR = 3413


def wkt(epsg: int) -> str:
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    return srs.ExportToWkt()


def transform(points: np.ndarray, src: int, dst: int) -> np.ndarray:
    """(n, 2) points from EPSG ``src`` to EPSG ``dst`` with plain osr (the independent method)."""
    ct = osr.CoordinateTransformation(spatial_reference(wkt(src)), spatial_reference(wkt(dst)))
    return np.array(ct.TransformPoints([tuple(p) for p in points]))[:, :2]


def centres(grid: Grid) -> np.ndarray:
    cols, rows = np.meshgrid(np.arange(grid.width) + 0.5, np.arange(grid.height) + 0.5)
    x0, a, _, y0, _, e = grid.transform
    return np.column_stack([(x0 + a * cols).ravel(), (y0 + e * rows).ravel()])


def move_vectors(starts: np.ndarray, vx: np.ndarray, vy: np.ndarray, src: int, dst: int,
                 dt: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """Vectors given at ``starts`` (in ``dst``) along ``src`` axes, expressed along ``dst`` axes.

    Displaces each start point by v * dt in ``src`` and maps start and end into ``dst``; the result keeps
    the ground speed |v| (m/yr).
    """
    in_src = transform(starts, dst, src)
    ends = transform(in_src + np.column_stack([vx, vy]) * dt, src, dst)
    moved = (ends - transform(in_src, src, dst)) / dt
    scale = np.hypot(vx, vy) / np.hypot(moved[:, 0], moved[:, 1])
    return moved[:, 0] * scale, moved[:, 1] * scale


def product_grid() -> Grid:
    """A 100 m UTM 6N grid on Columbia Glacier, 60 x 50 px."""
    x, y = _centre_utm()
    return Grid(wkt(UTM), (round(x) - 3000.0, 100.0, 0.0, round(y) + 2500.0, 0.0, -100.0), 60, 50)


def _centre_utm() -> tuple[float, float]:
    geographic = osr.SpatialReference()
    geographic.ImportFromEPSG(4326)
    geographic.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    ct = osr.CoordinateTransformation(geographic, spatial_reference(wkt(UTM)))
    return ct.TransformPoint(-147.05, 61.15)[:2]


def reference_grid(product: Grid) -> Grid:
    """A 120 m EPSG:3413 grid covering ``product`` with a 1 km margin."""
    xmin, ymin, xmax, ymax = transform_bounds(product.bounds(), product.crs_wkt, wkt(POLAR))
    x0, y1 = np.floor(xmin / 120.0) * 120.0 - 1000.0, np.ceil(ymax / 120.0) * 120.0 + 1000.0
    width, height = int((xmax - x0 + 1000.0) // 120.0) + 1, int((y1 - ymin + 1000.0) // 120.0) + 1
    return Grid(wkt(POLAR), (x0, 120.0, 0.0, y1, 0.0, -120.0), width, height)


def write_product(path: Path, grid: Grid, vx: np.ndarray, vy: np.ndarray) -> str:
    bands = [BandSpec("vx", "east", "m/yr"), BandSpec("vy", "north", "m/yr"), BandSpec("speed", "speed", "m/yr")]
    with ProductWriter(str(path), grid, bands) as writer:
        writer.write_rows(0, {"vx": vx, "vy": vy, "speed": np.hypot(vx, vy)})
        return writer.finish({})


def write_reference(folder: Path, grid: Grid, vx: np.ndarray, vy: np.ndarray, name: str = "ref") -> tuple[str, str]:
    paths = []
    for component, values in (("vx", vx), ("vy", vy)):
        path = str(folder / f"{name}_{component}.tif")
        write_array(path, grid, np.where(np.isfinite(values), values, NODATA).astype(np.float32), nodata=NODATA)
        paths.append(path)
    return paths[0], paths[1]


@pytest.fixture()
def synthetic(tmp_path):
    """A uniform UTM product and its reference in EPSG:3413, rotated by the independent method."""
    grid = product_grid()
    product = write_product(tmp_path / "product.tif", grid, np.full(grid.shape, FLOW[0], np.float32),
                            np.full(grid.shape, FLOW[1], np.float32))
    ref_grid = reference_grid(grid)
    starts = centres(ref_grid)
    n = len(starts)
    rvx, rvy = move_vectors(starts, np.full(n, FLOW[0]), np.full(n, FLOW[1]), UTM, POLAR)
    return tmp_path, grid, product, ref_grid, rvx.reshape(ref_grid.shape), rvy.reshape(ref_grid.shape)


def test_rotated_reference_matches(synthetic):
    folder, _, product, ref_grid, rvx, rvy = synthetic
    ref_vx, ref_vy = write_reference(folder, ref_grid, rvx, rvy)
    output, report = str(folder / "diff.tif"), str(folder / "report.json")
    result = run_reference_comparison(ReferenceJob(product, ref_vx, ref_vy, output=output, report=report))
    stats = result.statistics
    assert stats["pixel_count"] == 60 * 50
    assert abs(stats["bias_vx"]) < 0.5 and abs(stats["bias_vy"]) < 0.5 and abs(stats["bias_speed"]) < 0.5
    assert stats["rmse_vector"] < 1.0
    assert stats["median_abs_direction_difference_deg"] < 0.05
    assert stats["median_speed_ratio"] == pytest.approx(1.0, abs=1e-3)
    dataset = gdal.Open(output)
    assert [dataset.GetRasterBand(i).GetDescription() for i in (1, 2, 3)] == ["dvx", "dvy", "dspeed"]
    assert np.nanmax(np.abs(dataset.GetRasterBand(1).ReadAsArray())) < 1.0
    assert json.loads(Path(report).read_text())["pixel_count"] == 60 * 50
    assert "Bias" in Path(report).with_suffix(".txt").read_text()


def test_unrotated_reference_shows_the_convergence_angle(synthetic):
    folder, grid, product, ref_grid, _, _ = synthetic
    naive = np.full(ref_grid.shape, FLOW[0]), np.full(ref_grid.shape, FLOW[1])
    ref_vx, ref_vy = write_reference(folder, ref_grid, *naive, name="naive")
    stats = run_reference_comparison(ReferenceJob(product, ref_vx, ref_vy)).statistics
    # The expected angle, independently: the UTM flow expressed along EPSG:3413's axes at the grid centre.
    centre = np.array([[grid.transform[0] + 3000.0, grid.transform[3] - 2500.0]])
    in_polar = transform(centre, UTM, POLAR)
    ex, ey = move_vectors(in_polar, np.array([FLOW[0]]), np.array([FLOW[1]]), UTM, POLAR)
    expected = float(direction_difference(np.array(FLOW[0]), np.array(FLOW[1]), ex, ey)[0])
    assert expected > 90.0  # EPSG:3413's y axis points along 45 W, about 100 degrees from north here
    assert stats["median_abs_direction_difference_deg"] == pytest.approx(expected, abs=0.3)
    assert stats["median_speed_ratio"] == pytest.approx(1.0, abs=1e-3)


def test_reference_in_metres_per_day(synthetic):
    folder, _, product, ref_grid, rvx, rvy = synthetic
    ref_vx, ref_vy = write_reference(folder, ref_grid, rvx / 365.25, rvy / 365.25, name="daily")
    stats = run_reference_comparison(ReferenceJob(product, ref_vx, ref_vy, units="m/day")).statistics
    assert abs(stats["bias_speed"]) < 0.5 and stats["median_speed_ratio"] == pytest.approx(1.0, abs=1e-3)
    wrong = run_reference_comparison(ReferenceJob(product, ref_vx, ref_vy)).statistics
    assert wrong["bias_speed"] == pytest.approx(500.0 - 500.0 / 365.25, abs=0.5)  # read as m/yr: far too slow
    with pytest.raises(GlacierFlowError, match="units"):
        run_reference_comparison(ReferenceJob(product, ref_vx, ref_vy, units="km/h"))


def test_reference_nodata_is_honoured(synthetic):
    folder, grid, product, ref_grid, rvx, rvy = synthetic
    rvx, rvy = rvx.copy(), rvy.copy()
    rows, cols = slice(ref_grid.height // 2 - 8, ref_grid.height // 2 + 8), slice(ref_grid.width // 2 - 8,
                                                                                  ref_grid.width // 2 + 8)
    rvx[rows, cols] = np.nan  # written as -32767
    ref_vx, ref_vy = write_reference(folder, ref_grid, rvx, rvy, name="holes")
    output = str(folder / "holes_diff.tif")
    stats = run_reference_comparison(ReferenceJob(product, ref_vx, ref_vy, output=output)).statistics
    assert 0 < stats["pixel_count"] < 60 * 50 - 100
    assert abs(stats["bias_vx"]) < 0.5 and stats["rmse_vector"] < 1.0
    dataset = gdal.Open(output)
    dvx = dataset.GetRasterBand(1).ReadAsArray()
    assert np.isnan(dvx[grid.height // 2, grid.width // 2])


def test_no_overlap_is_a_clear_error(synthetic):
    folder, _, product, ref_grid, rvx, rvy = synthetic
    far = Grid(ref_grid.crs_wkt, (ref_grid.transform[0] + 500_000.0,) + ref_grid.transform[1:], ref_grid.width,
               ref_grid.height)
    ref_vx, ref_vy = write_reference(folder, far, rvx, rvy, name="far")
    output = folder / "far_diff.tif"
    with pytest.raises(GlacierFlowError, match="do not overlap"):
        run_reference_comparison(ReferenceJob(product, ref_vx, ref_vy, output=str(output)))
    assert not output.exists()


def columbia_product(folder: Path, columbia: Path) -> tuple[str, Grid]:
    """ITS_LIVE warped to UTM 6N at 120 m with gdal, its vectors rotated by the independent method."""
    source = gdal.Open(str(columbia / "crop_ALA_G0120_0000_vx.tif"))
    xmin, ymin, xmax, ymax = transform_bounds(
        (lambda g: (g[0], g[3] + g[5] * source.RasterYSize, g[0] + g[1] * source.RasterXSize, g[3]))(
            source.GetGeoTransform()), source.GetProjection(), wkt(UTM))
    x0, y1 = np.ceil(xmin / 120.0) * 120.0, np.floor(ymax / 120.0) * 120.0
    grid = Grid(wkt(UTM), (x0, 120.0, 0.0, y1, 0.0, -120.0), int((xmax - x0) // 120), int((y1 - ymin) // 120))
    warped = []
    for component in ("vx", "vy"):
        out = gdal.Warp("", str(columbia / f"crop_ALA_G0120_0000_{component}.tif"), format="MEM",
                        dstSRS=grid.crs_wkt, outputBounds=grid.bounds(), width=grid.width, height=grid.height,
                        resampleAlg="bilinear", srcNodata=NODATA, dstNodata=float("nan"))
        warped.append(out.GetRasterBand(1).ReadAsArray().astype(np.float64).ravel())
    valid = np.isfinite(warped[0]) & np.isfinite(warped[1]) & (np.hypot(*warped) > 0)
    vx, vy = np.full(valid.size, np.nan), np.full(valid.size, np.nan)
    vx[valid], vy[valid] = move_vectors(centres(grid)[valid], warped[0][valid], warped[1][valid], POLAR, UTM)
    path = write_product(folder / "columbia_utm.tif", grid, vx.reshape(grid.shape).astype(np.float32),
                         vy.reshape(grid.shape).astype(np.float32))
    return path, grid


def test_columbia_its_live_against_itself_in_utm(shared_data, tmp_path):
    columbia = shared_data / "columbia"
    product, grid = columbia_product(tmp_path, columbia)
    outline = str(columbia / "RGI60-01.10689.shp")
    job = ReferenceJob(product, str(columbia / "crop_ALA_G0120_0000_vx.tif"),
                       str(columbia / "crop_ALA_G0120_0000_vy.tif"), outlines=outline,
                       output=str(tmp_path / "columbia_diff.tif"), report=str(tmp_path / "columbia.json"))
    stats = run_reference_comparison(job).statistics
    assert stats["pixel_count"] > 1000
    assert abs(stats["bias_vx"]) < 3.0 and abs(stats["bias_vy"]) < 3.0 and abs(stats["bias_speed"]) < 3.0
    assert stats["median_speed_ratio"] == pytest.approx(1.0, abs=0.01)
    assert stats["median_abs_direction_difference_deg"] < 0.5
    dataset = gdal.Open(product)
    speed = dataset.GetRasterBand(3).ReadAsArray()[outline_mask(outline, grid)]
    assert np.nanpercentile(speed, 99) > 1000.0  # the fast trunk of Columbia Glacier
    assert np.nanmedian(speed) < np.nanpercentile(speed, 99) / 2
