"""HTML reports made headless: velocity (map, histogram, stable ground, stakes, reference) and forecast."""
from __future__ import annotations

import re
from datetime import datetime, timezone

import numpy as np
import pytest
from analysis_samples import grid as sample_grid
from test_stable_ground import OFFSET
from test_stable_ground import product as stable_product  # noqa: F401  (module fixture)

from glacierflow.core.analysis.report import ReferenceInput, VelocityReportInputs, forecast_report, velocity_report
from glacierflow.core.forecast.series import NdsiSeries
from glacierflow.core.geo.crs import transform_points, wgs84_wkt
from glacierflow.core.io.cog import BandSpec, write_bands
from glacierflow.core.products.ndsi import write_forecast_raster, write_ndsi_series


def images(page):
    return len(re.findall(r'src="data:image/png;base64,[A-Za-z0-9+/=]{200,}"', page))


def number(page, label):
    """The value printed beside ``label`` in a report table."""
    match = re.search(re.escape(label) + r"</th><td>([^<]+)</td>", page)
    assert match, label
    return float(match.group(1))


def test_velocity_report_with_every_section(stable_product, tmp_path):  # noqa: F811
    grid, path, outlines, _ = stable_product
    stake_points = [grid.pixel_to_map(c + 0.5, r + 0.5) for r, c in ((40, 40), (50, 60), (60, 90))]
    lonlat = transform_points(stake_points, grid.crs_wkt, wgs84_wkt())
    stakes = tmp_path / "stakes.csv"
    stakes.write_text("id,x,y,vx,vy\n" + "".join(f"s{i},{lon},{lat},{300 + OFFSET[0]},{OFFSET[1]}\n"
                                                 for i, (lon, lat) in enumerate(lonlat)))
    spec = [BandSpec("v", "reference component", "m/yr")]
    reference_vx = write_bands(str(tmp_path / "ref_vx.tif"), grid, [np.full(grid.shape, OFFSET[0] + 1.0)], spec, {})
    reference_vy = write_bands(str(tmp_path / "ref_vy.tif"), grid, [np.full(grid.shape, OFFSET[1])], spec, {})
    inputs = VelocityReportInputs(glacier_outlines=outlines, stakes=str(stakes),
                                  reference=ReferenceInput(reference_vx, reference_vy))
    output = velocity_report(path, str(tmp_path / "report.html"), inputs, title="Test glacier")
    page = open(output, encoding="utf-8").read()
    for heading in ("Summary", "Speed and flow direction", "Speed histogram", "Stable ground", "GPS stakes",
                    "Reference velocity"):
        assert f"<h2>{heading}</h2>" in page
    assert images(page) == 5 and "Not available" not in page and "Test glacier" in page
    assert number(page, "vx median (m/yr)") == pytest.approx(OFFSET[0], abs=0.3)
    assert number(page, "vy median (m/yr)") == pytest.approx(OFFSET[1], abs=0.3)
    assert number(page, "vx NMAD (m/yr)") == pytest.approx(3.0, abs=0.3)  # the planted noise
    assert number(page, "stakes with values") == 3
    assert abs(number(page, "bias speed (m/yr)")) < 3.0
    assert number(page, "pixel count") > 1000


def test_velocity_report_without_validation_inputs_and_a_failing_section(stable_product, tmp_path):  # noqa: F811
    grid, path, _, _ = stable_product
    far = tmp_path / "far.csv"
    far.write_text("id,x,y,vx,vy\nfar,0.0,0.0,10,0\n")
    output = velocity_report(path, str(tmp_path / "r.html"), VelocityReportInputs(stakes=str(far)))
    page = open(output, encoding="utf-8").read()
    assert "<h2>Stable ground</h2>" in page  # the product's glacier band defines it
    assert "<h2>GPS stakes</h2>" in page and "Not available: no stake lies" in page
    assert images(page) == 3


def test_forecast_report_has_panels_and_shares(tmp_path):
    grid = sample_grid((20, 30))
    times = [datetime(2021, m, 1, tzinfo=timezone.utc) for m in (1, 4, 7, 10)]
    frames = np.stack([np.full(grid.shape, v, np.float32) for v in (0.9, 0.6, 0.1, 0.5)])
    series = write_ndsi_series(str(tmp_path / "series.tif"), NdsiSeries(frames, times, 3, 0.3, grid, []))
    forecast = np.stack([np.where(np.arange(30) < 15, 0.8, 0.0)[None, :].repeat(20, 0).astype(np.float32),
                         np.full(grid.shape, 0.2, np.float32)])
    starts = [datetime(2022, 1, 1, tzinfo=timezone.utc), datetime(2022, 4, 1, tzinfo=timezone.utc)]
    path = write_forecast_raster(str(tmp_path / "forecast.tif"), forecast, grid, starts, 3, {})
    output = forecast_report(path, str(tmp_path / "forecast.html"), series,
                             hindcast={"model": {"mae": 0.05}, "persistence": {"mae": 0.09}})
    page = open(output, encoding="utf-8").read()
    assert images(page) == 1 and "<h2>Hindcast scores</h2>" in page
    assert number(page, "forecast 2022-01-01: snow-covered share (NDSI mean &gt;= 0.3)") == pytest.approx(0.5)
    assert number(page, "forecast 2022-04-01: snow-covered share (NDSI mean &gt;= 0.3)") == 0.0
    assert number(page, "observed 2021-04-01: snow-covered share (NDSI mean &gt;= 0.3)") == 1.0
    assert number(page, "model mae") == pytest.approx(0.05)
