"""Strain rates against analytic velocity fields: uniform flow, simple shear, pure extension, a rotated
field on a south-up grid, NaN holes, and the written product."""
from __future__ import annotations

import numpy as np
import pytest
from analysis_samples import centres, grid, shear_field, write_pair_product
from osgeo import gdal

from glacierflow.core.analysis.strain import STRAIN_BANDS, gaussian_smooth, strain_rates, write_strain_rates
from glacierflow.core.errors import GlacierFlowError
from glacierflow.core.geo.grid import Grid

INNER = (slice(None), slice(None))  # linear fields keep their exact rates up to the edges


def test_uniform_flow_has_zero_strain():
    target = grid()
    rates = strain_rates(np.full(target.shape, 120.0), np.full(target.shape, -40.0), target, smoothing_m=50.0)
    for band in rates.bands()[:6]:
        assert np.nanmax(np.abs(band)) < 1e-9


@pytest.mark.parametrize("smoothing", [0.0, 40.0, 100.0])
def test_simple_shear_has_the_analytic_rates(smoothing):
    target, rate = grid(), 0.02  # vx = 50 + 0.02 y' (m/yr): exy = 0.01 /yr
    vx, vy = shear_field(target, rate)
    rates = strain_rates(vx, vy, target, smoothing)
    e1, e2, direction = rates.principal
    np.testing.assert_allclose(rates.exx[INNER], 0.0, atol=1e-9)
    np.testing.assert_allclose(rates.eyy[INNER], 0.0, atol=1e-9)
    np.testing.assert_allclose(rates.exy[INNER], rate / 2, rtol=1e-6)
    np.testing.assert_allclose(rates.effective[INNER], rate / 2, rtol=1e-6)
    np.testing.assert_allclose(e1[INNER], rate / 2, rtol=1e-6)
    np.testing.assert_allclose(e2[INNER], -rate / 2, rtol=1e-6)
    np.testing.assert_allclose(direction[INNER], 45.0, atol=1e-6)  # extension along the NE-SW diagonal


def test_pure_extension_along_flow_on_a_south_up_grid():
    """vx = 0.01 x (extension east), vy = -0.004 y: exx = 0.01, eyy = -0.004, e1 axis east (90 deg)."""
    north_up = grid()
    x0, a, b, y0, d, e = north_up.transform
    south_up = Grid(north_up.crs_wkt, (x0, a, b, y0 - north_up.height * 10.0, d, -e), north_up.width,
                    north_up.height)
    for target in (north_up, south_up):
        x, y = centres(target)
        rates = strain_rates(0.01 * (x - x.mean()), -0.004 * (y - y.mean()), target)
        e1, e2, direction = rates.principal
        np.testing.assert_allclose(rates.exx, 0.01, rtol=1e-6)
        np.testing.assert_allclose(rates.eyy, -0.004, rtol=1e-6)
        np.testing.assert_allclose(rates.effective, np.sqrt(0.01**2 + 0.004**2 - 0.01 * 0.004), rtol=1e-6)
        np.testing.assert_allclose(e1, 0.01, rtol=1e-6)
        np.testing.assert_allclose(direction, 90.0, atol=1e-6)


def test_holes_stay_holes_and_do_not_spread_with_smoothing():
    target = grid()
    vx, vy = shear_field(target, 0.02)
    vx[25:35, 30:40] = np.nan
    rates = strain_rates(vx, vy, target, smoothing_m=60.0)
    assert np.isnan(rates.exy[25:35, 30:40]).all()
    around = rates.exy[20:40, 25:45].copy()
    around[5:15, 5:15] = 0.01
    np.testing.assert_allclose(around, 0.01, rtol=1e-6)  # neighbours of the hole keep the analytic rate
    assert np.isnan(gaussian_smooth(vx, 3.0)[25:35, 30:40]).all()


def test_negative_smoothing_is_refused():
    target = grid()
    with pytest.raises(GlacierFlowError, match="negative"):
        strain_rates(np.zeros(target.shape), np.zeros(target.shape), target, -1.0)


def test_written_product_has_named_bands_in_per_year(tmp_path):
    target = grid()
    vx, vy = shear_field(target, 0.02)
    path = write_pair_product(tmp_path / "shear.tif", target, vx, vy)
    output, _ = write_strain_rates(path, str(tmp_path / "strain.tif"), 50.0)
    dataset = gdal.Open(output)
    names = [dataset.GetRasterBand(i).GetDescription() for i in range(1, dataset.RasterCount + 1)]
    assert names == [spec.name for spec in STRAIN_BANDS]
    assert dataset.GetRasterBand(4).GetUnitType() == "1/yr"
    effective = dataset.GetRasterBand(4).ReadAsArray()
    np.testing.assert_allclose(effective[INNER], 0.01, rtol=1e-5)
    assert dataset.GetMetadata()["SMOOTHING_M"] == "50"


def test_smoothing_length_reduces_noise_but_keeps_the_mean_rate():
    target, rate = grid(), 0.02
    vx, vy = shear_field(target, rate)
    noise = np.random.default_rng(3).normal(0.0, 1.0, (2,) + target.shape)  # 1 m/yr per component
    raw = strain_rates(vx + noise[0], vy + noise[1], target, 0.0).exy
    smooth = strain_rates(vx + noise[0], vy + noise[1], target, 100.0).exy
    assert np.std(smooth) < 0.2 * np.std(raw)
    assert np.mean(smooth) == pytest.approx(rate / 2, abs=5e-4)
