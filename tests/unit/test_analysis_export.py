"""Flow arrows as a GeoPackage and the CF netCDF export, read back with GDAL/OGR."""
from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest
from analysis_samples import centres, grid, write_pair_product
from osgeo import gdal, ogr

from glacierflow.core.analysis.export import ArrowOptions, export_arrows, export_netcdf
from glacierflow.core.errors import GlacierFlowError


@pytest.fixture(scope="module")
def product(tmp_path_factory):
    """A rotational field (vx = -k y', vy = k x'): every direction and a known speed everywhere."""
    target = grid()
    x, y = centres(target)
    vx, vy = -0.5 * (y - y.mean()), 0.5 * (x - x.mean())
    vx[:5, :5] = np.nan
    vy[:5, :5] = np.nan
    path = write_pair_product(tmp_path_factory.mktemp("export") / "pair.tif", target, vx, vy,
                              start="2021-07-01T00:00:00Z", end="2021-07-31T00:00:00Z")
    return target, path, vx, vy


def test_arrows_gpkg_holds_the_field_at_the_arrow_points(product, tmp_path):
    target, path, _, _ = product
    output, count = export_arrows(path, str(tmp_path / "arrows.gpkg"), ArrowOptions(100.0, "m", 0.0))
    source = ogr.Open(output)  # kept: the layer dies with its data source
    layer = source.GetLayer(0)
    assert layer.GetFeatureCount() == count == 6 * 8 - 1  # one sample falls in the no-data corner
    x0, y0 = target.transform[0], target.transform[3]
    xm, ym = x0 + 400.0, y0 - 300.0
    for feature in layer:
        point = feature.GetGeometryRef()
        x, y = point.GetX(), point.GetY()
        assert feature["vx"] == pytest.approx(-0.5 * (y - ym), abs=1e-3)
        assert feature["vy"] == pytest.approx(0.5 * (x - xm), abs=1e-3)
        assert feature["speed"] == pytest.approx(np.hypot(feature["vx"], feature["vy"]), abs=2e-3)
        expected = np.degrees(np.arctan2(feature["vx"], feature["vy"])) % 360
        assert min(abs(feature["direction"] - expected), 360 - abs(feature["direction"] - expected)) < 0.01
    assert sorted(p.name for p in tmp_path.iterdir()) == ["arrows.gpkg"]


def test_arrow_spacing_in_px_and_minimum_speed(product, tmp_path):
    _, path, _, _ = product
    _, dense = export_arrows(path, str(tmp_path / "a.gpkg"), ArrowOptions(5, "px", 0.0))
    _, thinned = export_arrows(path, str(tmp_path / "b.gpkg"), ArrowOptions(5, "px", 0.5))
    assert dense == 12 * 16 - 1 and 0 < thinned < dense
    with pytest.raises(GlacierFlowError, match="negative"):
        export_arrows(path, str(tmp_path / "c.gpkg"), ArrowOptions(-1, "px"))
    assert not (tmp_path / "c.gpkg").exists()


def test_netcdf_is_cf_with_components_grid_mapping_and_mid_date(product, tmp_path):
    target, path, vx, vy = product
    output = export_netcdf(path, str(tmp_path / "velocity.nc"))
    for name, truth in (("vx", vx), ("vy", vy)):
        dataset = gdal.Open(f'NETCDF:"{output}":{name}')
        values = dataset.GetRasterBand(1).ReadAsArray()
        np.testing.assert_allclose(values, truth, atol=1e-4)  # north-up rows: GDAL flips the y axis back
        assert dataset.GetGeoTransform() == pytest.approx(target.transform)
        metadata = dataset.GetMetadata()
        assert metadata[f"{name}#units"] == "m year-1"
        assert metadata[f"{name}#long_name"].startswith(f"{name[1]}-component of ice surface velocity")
        assert metadata[f"{name}#grid_mapping"] == "transverse_mercator"
        assert metadata["NC_GLOBAL#Conventions"] == "CF-1.8"
        middle = (datetime(2021, 7, 16, tzinfo=timezone.utc) - datetime(1970, 1, 1, tzinfo=timezone.utc)).days
        assert float(metadata["NETCDF_DIM_time_VALUES"]) == middle
        assert dataset.GetSpatialRef().GetAuthorityCode(None) == "32632"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["velocity.nc"]
