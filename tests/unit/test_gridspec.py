"""One grid resolver for every job: a polar pair and a polar area job agree, an annual job's pairs share one grid."""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from osgeo import gdal, osr

from glacierflow.core.errors import GlacierFlowError
from glacierflow.core.geo.area import Area
from glacierflow.core.geo.crs import epsg_code, epsg_wkt, unwrap_longitudes
from glacierflow.core.geo.grid import Grid
from glacierflow.core.geo.gridspec import GridSpec, resolve_grid
from glacierflow.core.io.raster import write_array
from glacierflow.core.workflows.annual import AnnualJob, run_annual_job
from training.sample_series import write_sample_series

WGS84 = epsg_wkt(4326)


def _box(west: float, south: float, east: float, north: float) -> str:
    return f"POLYGON(({west} {south},{east} {south},{east} {north},{west} {north},{west} {south}))"


def _geographic_scene(path: str, west: float, north: float, step: float, shape: tuple[int, int]) -> Grid:
    """A geographic (degree) image like a user's unprojected export, textured so it can be tracked."""
    grid = Grid(WGS84, (west, step, 0.0, north, 0.0, -step / 4.0), shape[1], shape[0])
    values = np.random.default_rng(1).integers(100, 4000, shape).astype(np.uint16)
    write_array(path, grid, values, nodata=0)
    return grid


@pytest.mark.parametrize("north,epsg", [(78.3, 3413), (-75.2, 3031), (61.2, 32607)])
def test_a_pair_in_degrees_and_an_area_job_get_the_same_crs_and_lattice(tmp_path, north, epsg):
    # ~50 m pixels: 0.0023 degrees of longitude at 78 N is 48 m; a quarter of that in latitude is 64 m.
    step = 0.0023 if abs(north) > 70 else 0.0009
    scene = _geographic_scene(str(tmp_path / "a.tif"), -140.0, north, step, (120, 160))
    pair = resolve_grid(images=[scene, scene])
    assert epsg_code(pair.crs_wkt) == epsg
    size = pair.pixel_size[0]
    xmin, ymin, xmax, ymax = scene.bounds()
    area = Area(_box(xmin, ymin, xmax, ymax), WGS84)
    job = resolve_grid(GridSpec(pixel_size=size), area=area)
    assert epsg_code(job.crs_wkt) == epsg
    assert job.pixel_size == pair.pixel_size
    # both lattices are whole multiples of the pixel size: every pair pixel is an area-job pixel
    for grid in (pair, job):
        assert grid.transform[0] / size == pytest.approx(round(grid.transform[0] / size), abs=1e-6)
        assert grid.transform[3] / size == pytest.approx(round(grid.transform[3] / size), abs=1e-6)
    pair_box, job_box = pair.bounds(), job.bounds()
    assert job_box[0] <= pair_box[0] and job_box[1] <= pair_box[1]
    assert job_box[2] >= pair_box[2] and job_box[3] >= pair_box[3]


def test_degrees_are_refused_as_a_target_crs_and_a_pixel_size_must_be_positive():
    scene = Grid(epsg_wkt(32633), (500000.0, 10.0, 0.0, 7000000.0, 0.0, -10.0), 50, 50)
    with pytest.raises(GlacierFlowError, match="in degrees"):
        resolve_grid(GridSpec(crs_wkt=WGS84), images=[scene])
    with pytest.raises(GlacierFlowError, match="positive"):
        resolve_grid(GridSpec(pixel_size=-5.0), images=[scene])
    with pytest.raises(GlacierFlowError, match="pixel size"):
        resolve_grid(GridSpec(), area=Area(_box(15.0, 63.0, 15.1, 63.1), WGS84))


def test_a_ring_across_the_antimeridian_is_unwrapped_the_short_way():
    ring = [(179.9, 65.0), (-179.9, 65.0), (-179.9, 65.1), (179.9, 65.1), (179.9, 65.0)]
    lons = [p[0] for p in unwrap_longitudes(ring)]
    assert max(lons) - min(lons) == pytest.approx(0.2)


def test_an_annual_job_computes_every_pair_on_one_grid(tmp_path):
    series = write_sample_series(str(tmp_path / "series"), shape=(96, 96))
    folder = tmp_path / "mixed"
    shutil.copytree(series.folder, folder)
    # One year-B scene cut by a few pixels on two sides: on its own it would give its pairs another grid.
    late = sorted(p for p in os.listdir(folder) if p.endswith(".tif") and "2022" in p)[-1]
    cropped = str(tmp_path / "cropped.tif")
    gdal.Translate(cropped, str(folder / late), srcWin=[3, 5, 90, 88])
    os.replace(cropped, folder / late)
    output = str(tmp_path / "annual.tif")
    result = run_annual_job(AnnualJob(folder=str(folder), output=output, year_a=2021, engine="farneback",
                                      work_folder=str(tmp_path / "pairs")))
    annual = gdal.Open(output)
    assert result.pair_count >= 2
    for path in result.pair_products:
        pair = gdal.Open(path)
        assert pair.GetGeoTransform() == annual.GetGeoTransform()
        assert (pair.RasterXSize, pair.RasterYSize) == (annual.RasterXSize, annual.RasterYSize)
        assert osr.SpatialReference(pair.GetProjection()).IsSame(osr.SpatialReference(annual.GetProjection()))
    assert (annual.RasterXSize, annual.RasterYSize) == (96, 96)  # the first scene's own pixels
