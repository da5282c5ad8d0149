"""Stable-ground statistics and offset correction: a synthetic product with a known offset, and Yahtse."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from osgeo import gdal, ogr, osr

from glacierflow.core.errors import GlacierFlowError
from glacierflow.core.io.cog import ProductWriter
from glacierflow.core.products.velocity import GLACIER_BAND, PAIR_BANDS
from glacierflow.core.validation.stable_ground import StableGroundJob, run_stable_ground
from training.sample import sample_grid

SHAPE = (100, 120)
OFFSET = (12.0, -7.0)  # m/yr: the co-registration error planted everywhere
NOISE = 3.0  # m/yr
GLACIER = (slice(30, 70), slice(20, 100))  # rows, cols of the glacier


def write_polygons(path, rings, epsg_or_wkt):
    """A GeoJSON of polygons (rings of (x, y)) in a CRS given as EPSG code or WKT."""
    srs = osr.SpatialReference()
    if isinstance(epsg_or_wkt, int):
        srs.ImportFromEPSG(epsg_or_wkt)
    else:
        srs.ImportFromWkt(epsg_or_wkt)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    source = ogr.GetDriverByName("GeoJSON").CreateDataSource(str(path))
    layer = source.CreateLayer("polygons", srs, ogr.wkbPolygon)
    for ring_points in rings:
        ring = ogr.Geometry(ogr.wkbLinearRing)
        for x, y in list(ring_points) + [ring_points[0]]:
            ring.AddPoint_2D(float(x), float(y))
        polygon = ogr.Geometry(ogr.wkbPolygon)
        polygon.AddGeometry(ring)
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetGeometry(polygon)
        layer.CreateFeature(feature)
    source = None
    return str(path)


def box_ring(grid, r0, r1, c0, c1):
    """Map corners of the pixel box rows r0:r1, cols c0:c1."""
    return [grid.pixel_to_map(c, r) for c, r in ((c0, r0), (c1, r0), (c1, r1), (c0, r1))]


@pytest.fixture(scope="module")
def product(tmp_path_factory):
    """A pair product: ice flows east at 300 m/yr on the glacier, rock is still; all plus OFFSET and noise."""
    folder = tmp_path_factory.mktemp("stable")
    grid = sample_grid(SHAPE)
    rng = np.random.default_rng(3)
    glacier = np.zeros(SHAPE, dtype=np.float32)
    glacier[GLACIER] = 1
    vx = (OFFSET[0] + 300.0 * glacier + rng.normal(0, NOISE, SHAPE)).astype(np.float32)
    vy = (OFFSET[1] + rng.normal(0, NOISE, SHAPE)).astype(np.float32)
    vx[:5, :] = np.nan  # untracked pixels are ignored
    vy[:5, :] = np.nan
    path = str(folder / "pair.tif")
    with ProductWriter(path, grid, PAIR_BANDS + [GLACIER_BAND]) as writer:
        writer.write_rows(0, {"vx": vx, "vy": vy, "speed": np.hypot(vx, vy),
                              "valid": np.isfinite(vx).astype(np.float32), "glacier": glacier})
        writer.finish({"INTERVAL_DAYS": "365.25", "P95_SPEED_M_PER_YR": "300"})
    outlines = write_polygons(folder / "glacier.geojson", [box_ring(grid, 30, 70, 20, 100)], grid.crs_wkt)
    return grid, path, outlines, folder


def read(path):
    dataset = gdal.Open(str(path))
    return {dataset.GetRasterBand(i).GetDescription(): dataset.GetRasterBand(i).ReadAsArray()
            for i in range(1, dataset.RasterCount + 1)}, dataset.GetMetadata()


def test_offset_recovered_from_off_glacier_ground_and_corrected(product, tmp_path):
    grid, path, outlines, _ = product
    output, report = tmp_path / "corrected.tif", tmp_path / "stable.json"
    result = run_stable_ground(StableGroundJob(path, glacier_outlines=outlines, correct=True, output=str(output),
                                               report=str(report), strip_rows=16))
    stats = result.statistics
    assert stats["vx"]["median"] == pytest.approx(OFFSET[0], abs=0.3)
    assert stats["vy"]["median"] == pytest.approx(OFFSET[1], abs=0.3)
    assert stats["vx"]["nmad"] == pytest.approx(NOISE, rel=0.1)
    assert stats["vy"]["std"] == pytest.approx(NOISE, rel=0.1)
    assert stats["vx"]["half_width_95"] == pytest.approx(1.96 * NOISE, rel=0.1)
    # the default buffer, max(2 px, 30 m) = 30 m = 3 px at 10 m, leaves a 3-px ring around the glacier out
    rock = (SHAPE[0] - 5) * SHAPE[1] - (40 + 6) * (80 + 6)
    assert stats["pixel_count"] == pytest.approx(rock, rel=0.02)
    bands, meta = read(output)
    glacier = bands["glacier"] == 1
    assert abs(np.nanmedian(bands["vx"][~glacier])) < 0.3 and abs(np.nanmedian(bands["vy"][~glacier])) < 0.3
    assert np.nanmedian(bands["vx"][glacier]) == pytest.approx(300.0, abs=0.5)
    assert np.allclose(bands["speed"], np.hypot(bands["vx"], bands["vy"]), atol=1e-3, equal_nan=True)
    assert float(meta["STABLE_VX_MEDIAN_M_PER_YR"]) == pytest.approx(OFFSET[0], abs=0.3)
    assert meta["STABLE_CORRECTED"] == "yes" and meta["INTERVAL_DAYS"] == "365.25"
    saved = json.loads(report.read_text())
    assert saved["pixel_count"] == stats["pixel_count"] and saved["units"] == "m/yr"
    text = (tmp_path / "stable.txt").read_text()
    assert "median offset +12." in text and "Correction: median offsets subtracted" in text


def test_the_products_glacier_band_serves_when_no_outlines(product):
    _, path, _, _ = product
    stats = run_stable_ground(StableGroundJob(path, buffer_m=0.0)).statistics
    assert stats["vx"]["median"] == pytest.approx(OFFSET[0], abs=0.3)
    assert "glacier band" in stats["stable_ground"]
    assert stats["pixel_count"] == (SHAPE[0] - 5) * SHAPE[1] - 40 * 80


def test_stable_polygon_in_another_crs(product, tmp_path):
    grid, path, _, _ = product
    # a rock box south of the glacier, written in WGS 84 longitude/latitude
    to_wgs84 = osr.CoordinateTransformation(_srs(grid.crs_wkt), _srs(4326))
    ring = [to_wgs84.TransformPoint(x, y)[:2] for x, y in box_ring(grid, 75, 95, 10, 110)]
    polygons = write_polygons(tmp_path / "rock_wgs84.geojson", [ring], 4326)
    stats = run_stable_ground(StableGroundJob(path, stable_areas=polygons)).statistics
    assert stats["pixel_count"] == pytest.approx(20 * 100, rel=0.05)
    assert stats["vx"]["median"] == pytest.approx(OFFSET[0], abs=0.5)
    assert stats["vy"]["median"] == pytest.approx(OFFSET[1], abs=0.5)


def test_statistics_only_writes_no_raster(product, tmp_path):
    _, path, outlines, _ = product
    result = run_stable_ground(StableGroundJob(path, glacier_outlines=outlines, report=str(tmp_path / "r.json")))
    assert result.output is None and sorted(os.listdir(tmp_path)) == ["r.json", "r.txt"]


def test_no_stable_pixel_is_a_clear_error(product, tmp_path):
    grid, path, _, _ = product
    far = [(x + 1e6, y) for x, y in box_ring(grid, 0, 10, 0, 10)]
    polygons = write_polygons(tmp_path / "far.geojson", [far], grid.crs_wkt)
    output = tmp_path / "out.tif"
    with pytest.raises(GlacierFlowError, match="No stable-area polygon .* touches the product"):
        run_stable_ground(StableGroundJob(path, stable_areas=polygons, correct=True, output=str(output)))
    assert not output.exists()


def test_no_stable_definition_is_a_clear_error(tmp_path):
    grid = sample_grid((20, 20))
    path = str(tmp_path / "bare.tif")
    with ProductWriter(path, grid, PAIR_BANDS) as writer:
        zeros = np.zeros((20, 20), dtype=np.float32)
        writer.write_rows(0, {"vx": zeros, "vy": zeros, "speed": zeros, "valid": zeros + 1})
        writer.finish({})
    with pytest.raises(GlacierFlowError, match="No stable ground defined"):
        run_stable_ground(StableGroundJob(path))


def _srs(crs):
    srs = osr.SpatialReference()
    if isinstance(crs, int):
        srs.ImportFromEPSG(crs)
    else:
        srs.ImportFromWkt(crs)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs


# --- the real Yahtse pair (../shared/data/yahtse) -------------------------------------------------------------

def _rock_boxes():
    from bench.bench_yahtse import REGIONS

    return [REGIONS["stable rock, south of the nunatak"], REGIONS["stable rock, north-east spur"]]


@pytest.fixture(scope="module")
def yahtse(tmp_path_factory, shared_data):
    from bench.bench_yahtse import PAIR
    from glacierflow.core.velocity.pair import PairJob, run_pair_job

    data = shared_data / "yahtse"
    folder = tmp_path_factory.mktemp("yahtse_stable")
    output = folder / "velocity_farneback.tif"
    result = run_pair_job(PairJob(str(data / PAIR[0]), str(data / PAIR[1]), str(output), engine="farneback"))
    rings = [box_ring(result.grid, r0, r1, c0, c1) for r0, r1, c0, c1 in _rock_boxes()]
    polygons = write_polygons(folder / "rock.geojson", rings, result.grid.crs_wkt)
    return result, str(output), polygons, folder


def _rock_median_speed(path):
    bands, _ = read(path)
    return float(np.nanmedian(np.concatenate([bands["speed"][r0:r1, c0:c1].ravel()
                                              for r0, r1, c0, c1 in _rock_boxes()])))


def test_yahtse_rock_offset_is_within_coregistration_and_correction_helps(yahtse):
    result, path, polygons, folder = yahtse
    limit = 0.5 * 15.0 * 365.25 / 16.0  # 0.5 px over 16 days, as in test_yahtse.py: 171 m/yr
    output = folder / "velocity_corrected.tif"
    stats = run_stable_ground(StableGroundJob(path, stable_areas=polygons, correct=True, output=str(output),
                                              report=str(folder / "stable.json"))).statistics
    assert stats["pixel_count"] > 1000
    assert stats["offset_speed"] < limit
    assert stats["offset_px"] < 0.5
    before, after = _rock_median_speed(path), _rock_median_speed(output)
    print(f"Yahtse rock: offset vx {stats['vx']['median']:+.1f}, vy {stats['vy']['median']:+.1f} m/yr "
          f"({stats['offset_px']:.3f} px); NMAD vx {stats['vx']['nmad']:.1f}, vy {stats['vy']['nmad']:.1f}; "
          f"95 % half-width vx {stats['vx']['half_width_95']:.1f}, vy {stats['vy']['half_width_95']:.1f} m/yr; "
          f"rock median speed {before:.1f} -> {after:.1f} m/yr")
    assert after < before
    _, meta = read(output)
    assert meta["ENGINE"] == "farneback" and "STABLE_OFFSET_PX" in meta
