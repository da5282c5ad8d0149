"""Grids, reading and warping pairs, outlines, preprocessing and product writing on real GeoTIFFs."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from osgeo import gdal, osr

from glacierflow.core.errors import GlacierFlowError
from glacierflow.core.geo.grid import Grid, Window
from glacierflow.core.geo.gridspec import GridSpec, resolve_grid
from glacierflow.core.geo.outlines import outline_mask
from glacierflow.core.io.cog import BandSpec, ProductWriter
from glacierflow.core.io.raster import BandSource, write_array
from glacierflow.core.velocity.preprocess import band_statistics, prepare_for_flow, sobel_gradients


def _wkt(epsg: int) -> str:
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    return srs.ExportToWkt()


UTM32 = _wkt(32632)
GRID = Grid(UTM32, (340000.0, 10.0, 0.0, 5090000.0, 0.0, -10.0), 200, 150)


def _ramp_image(path, grid=GRID, dtype=np.float32, nodata=None):
    rows, cols = np.mgrid[0:grid.height, 0:grid.width]
    return write_array(str(path), grid, (cols * 3 + rows * 5).astype(dtype), nodata=nodata)


def test_grid_geometry():
    assert GRID.pixel_size == (10.0, 10.0)
    assert GRID.bounds() == (340000.0, 5088500.0, 342000.0, 5090000.0)
    sub = GRID.window_grid(Window(10, 20, 5, 5))
    assert sub.pixel_to_map(0, 0) == (340100.0, 5089800.0)


def test_aligned_window_is_read_directly_with_nan_outside(tmp_path):
    source = BandSource.open(_ramp_image(tmp_path / "a.tif"))
    window = GRID.window_grid(Window(-2, 3, 10, 4))
    values = source.read(window)
    assert np.isnan(values[:, :2]).all()
    assert values[0, 2] == pytest.approx(0 * 3 + 3 * 5)


def test_pair_in_other_crs_and_resolution_is_warped_onto_a(tmp_path):
    path_a = _ramp_image(tmp_path / "a.tif")
    # B: same area, UTM 31N at 20 m, larger extent
    srs_a = osr.SpatialReference(wkt=UTM32)
    srs_b = osr.SpatialReference()
    srs_b.ImportFromEPSG(32631)
    for s in (srs_a, srs_b):
        s.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    x, y, _ = osr.CoordinateTransformation(srs_a, srs_b).TransformPoint(339000.0, 5091000.0)
    grid_b = Grid(srs_b.ExportToWkt(), (x, 20.0, 0.0, y, 0.0, -20.0), 200, 150)
    path_b = write_array(str(tmp_path / "b.tif"), grid_b, np.ones((150, 200), np.float32) * 7)
    grid = resolve_grid(images=[BandSource.open(path_a).grid, BandSource.open(path_b).grid])
    assert grid.transform[1] == 10.0 and osr.SpatialReference(wkt=grid.crs_wkt).IsSame(srs_a)
    warped = BandSource.open(path_b).read(grid)
    assert warped.shape == grid.shape
    assert np.nanmedian(warped) == pytest.approx(7.0)


def test_pair_grid_is_the_intersection(tmp_path):
    shifted = Grid(UTM32, (341000.0, 10.0, 0.0, 5089500.0, 0.0, -10.0), 200, 150)
    grid = resolve_grid(images=[GRID, shifted])
    assert grid.bounds() == (341000.0, 5088500.0, 342000.0, 5089500.0)


def test_no_overlap_says_so():
    far = Grid(UTM32, (400000.0, 10.0, 0.0, 5090000.0, 0.0, -10.0), 200, 150)
    with pytest.raises(GlacierFlowError, match="do not overlap"):
        resolve_grid(images=[GRID, far])


def test_missing_crs_says_how_to_assign_one(tmp_path):
    path = str(tmp_path / "nocrs.tif")
    dataset = gdal.GetDriverByName("GTiff").Create(path, 10, 10, 1, gdal.GDT_Byte)
    dataset.SetGeoTransform((0, 1, 0, 0, 0, -1))
    dataset = None
    with pytest.raises(GlacierFlowError, match="Assign Projection"):
        BandSource.open(path)


def test_multiband_without_band_and_corrupt_file(tmp_path):
    path = str(tmp_path / "rgb.tif")
    dataset = gdal.GetDriverByName("GTiff").Create(path, 10, 10, 3, gdal.GDT_Byte)
    dataset.SetProjection(UTM32)
    dataset.SetGeoTransform(GRID.transform)
    dataset = None
    with pytest.raises(GlacierFlowError, match="3 bands"):
        BandSource.open(path)
    assert BandSource.open(path, 2).band == 2
    corrupt = tmp_path / "corrupt.tif"
    corrupt.write_bytes(open(path, "rb").read()[:200])
    with pytest.raises(GlacierFlowError, match="corrupt"):
        BandSource.open(str(corrupt))


def test_all_nodata_is_refused(tmp_path):
    path = write_array(str(tmp_path / "empty.tif"), GRID, np.zeros((150, 200), np.uint16), nodata=0)
    sample = BandSource.open(path).read(GRID)
    assert np.isnan(sample).all()
    with pytest.raises(GlacierFlowError, match="no valid pixels"):
        band_statistics([sample], "Image A")


def test_sobel_gradients_of_a_ramp_and_nodata_propagation():
    rows, cols = np.mgrid[0:20, 0:30].astype(np.float32)
    band = 2.0 * cols - 0.5 * rows
    band[10, 10] = np.nan
    gradients, valid = sobel_gradients(band)
    assert gradients[0, 5, 5] == pytest.approx(2.0)
    assert gradients[1, 5, 5] == pytest.approx(-0.5)
    assert not valid[9:12, 9:12].any() and valid[5, 5]
    assert np.isfinite(gradients).all()


def test_normalisation_removes_gain_and_offset():
    rng = np.random.default_rng(0)
    band = rng.normal(size=(100, 100)).astype(np.float32)
    brighter = 3.0 * band + 100.0
    first, _ = prepare_for_flow(band, band_statistics([band]))
    second, _ = prepare_for_flow(brighter, band_statistics([brighter]))
    np.testing.assert_allclose(first, second, atol=1e-4)
    assert 0.5 < np.percentile(first, 98) - np.percentile(first, 2) < 2.0


def test_outlines_in_another_crs_are_rasterised(tmp_path):
    srs = osr.SpatialReference(wkt=UTM32)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    wgs = osr.SpatialReference()
    wgs.ImportFromEPSG(4326)
    wgs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    to_lonlat = osr.CoordinateTransformation(srs, wgs)
    square = [(340500.0, 5089500.0), (341500.0, 5089500.0), (341500.0, 5088800.0), (340500.0, 5088800.0)]
    ring = [list(to_lonlat.TransformPoint(x, y)[:2]) for x, y in square]
    ring.append(ring[0])
    geojson = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"id": 1}, "geometry": {"type": "Polygon", "coordinates": [ring]}}]}
    path = tmp_path / "outline.geojson"
    path.write_text(json.dumps(geojson))
    mask = outline_mask(str(path), GRID)
    assert mask[52:118, 52:148].mean() > 0.99
    assert not mask[:45].any() and not mask[:, :45].any()
    assert abs(int(mask.sum()) - 100 * 70) < 250


def test_real_rgi_shapefile_mask(shared_data):
    path = shared_data / "rgi" / "Hintereisferner_RGI6.shp"
    grid = Grid(_wkt(32632), (630000.0, 50.0, 0.0, 5190000.0, 0.0, -50.0), 200, 200)
    mask = outline_mask(str(path), grid)
    area_km2 = mask.sum() * 50 * 50 / 1e6
    assert 5.0 < area_km2 < 10.0  # Hintereisferner: about 7-8 km2 in RGI 6.0


def test_product_writer_cog_and_no_partial_output(tmp_path):
    output = str(tmp_path / "velocity.tif")
    bands = [BandSpec("vx", "east", "m/yr"), BandSpec("speed", "speed", "m/yr")]
    with ProductWriter(output, GRID, bands) as writer:
        writer.write_rows(0, {"vx": np.ones((150, 200)), "speed": np.full((150, 200), np.nan)})
        writer.finish({"ENGINE": "test"})
    dataset = gdal.Open(output)
    assert dataset.GetMetadata("IMAGE_STRUCTURE").get("LAYOUT") == "COG"
    assert dataset.GetRasterBand(1).GetDescription() == "vx"
    assert dataset.GetRasterBand(1).GetUnitType() == "m/yr"
    assert np.isnan(dataset.GetRasterBand(1).GetNoDataValue())
    assert dataset.GetMetadataItem("ENGINE") == "test"
    failed = str(tmp_path / "failed.tif")
    with pytest.raises(RuntimeError):
        with ProductWriter(failed, GRID, bands) as writer:
            writer.write_rows(0, {"vx": np.ones((150, 200)), "speed": np.ones((150, 200))})
            raise RuntimeError("boom")
    assert sorted(os.listdir(tmp_path)) == ["velocity.tif"]


def test_product_writer_windows_make_the_whole_band(tmp_path):
    output = str(tmp_path / "windows.tif")
    bands = [BandSpec("vx", "east", "m/yr")]
    values = np.arange(150 * 200, dtype=np.float32).reshape(150, 200)
    with ProductWriter(output, GRID, bands) as writer:
        # windows in an odd order and across the work file's 256 px tiles, as the pair job's blocks land
        for top, left, height, width in ((70, 90, 80, 110), (0, 0, 70, 90), (0, 90, 70, 110), (70, 0, 80, 90)):
            writer.write_window(left, top, {"vx": values[top:top + height, left:left + width]})
        writer.finish({})
    assert np.array_equal(gdal.Open(output).GetRasterBand(1).ReadAsArray(), values)


def test_sample_outline_matches_the_generated_glacier(tmp_path):
    from training.sample import sample_grid, write_sample
    from training.synthetic import glacier_pair

    files = write_sample(str(tmp_path), seed=5, shape=(200, 240), max_displacement_px=4.0)
    mask = outline_mask(files.outlines, sample_grid((200, 240)))
    truth = glacier_pair((200, 240), max_displacement_px=4.0, seed=5).glacier
    assert (mask == truth).mean() > 0.995


def test_grid_spec_pixel_size_area_and_crs():

    coarse = resolve_grid(GridSpec(pixel_size=30.0), images=[GRID, GRID])
    assert coarse.transform[1] == 30.0 and coarse.transform[0] % 30.0 == 0 and coarse.transform[3] % 30.0 == 0
    assert coarse.bounds()[0] >= 340000.0 and coarse.bounds()[2] <= 342000.0
    area = resolve_grid(GridSpec(bounds=(340500.0, 5089000.0, 341000.0, 5089500.0)), images=[GRID, GRID])
    assert area.bounds() == (340500.0, 5089000.0, 341000.0, 5089500.0)
    assert area.transform[1] == 10.0  # image A's own pixels are kept
    other = resolve_grid(GridSpec(crs_wkt=_wkt(32631), pixel_size=20.0), images=[GRID, GRID])
    assert osr.SpatialReference(wkt=other.crs_wkt).GetUTMZone() == 31 and other.transform[1] == 20.0
    with pytest.raises(GlacierFlowError, match="degrees"):
        resolve_grid(GridSpec(crs_wkt=_wkt(4326)), images=[GRID, GRID])


def test_image_in_degrees_goes_to_its_utm_zone(tmp_path):
    wgs = Grid(_wkt(4326), (6.90, 0.0001, 0.0, 45.92, 0.0, -0.0001), 300, 200)
    grid = resolve_grid(images=[wgs, wgs])
    assert osr.SpatialReference(wkt=grid.crs_wkt).GetUTMZone() == 32
    assert 7.0 <= grid.pixel_size[0] <= 12.0  # 0.0001 degrees is 7.8 m east-west and 11 m north-south here
