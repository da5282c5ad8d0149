"""Profiles along lines: stations, along/across components against a known field, CSV and PNG."""
from __future__ import annotations

import csv

import numpy as np
import pytest
from analysis_samples import centres, grid, write_pair_product, write_stack_product

from glacierflow.core.analysis.lines import Line, stations
from glacierflow.core.analysis.profile import velocity_profiles, write_profile_csv, write_profile_png
from glacierflow.core.errors import GlacierFlowError
from glacierflow.core.geo.crs import transform_points, wgs84_wkt


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    """vx = 100 + 0.1 x', vy = 30 (m/yr), uncertainty 4 m/yr, on the sample grid (x' from the west edge)."""
    target = grid()
    x, _ = centres(target)
    vx, vy = 100.0 + 0.1 * (x - target.transform[0]), np.full(target.shape, 30.0)
    path = write_stack_product(tmp_path_factory.mktemp("profile") / "annual.tif", target, vx, vy,
                               np.full(target.shape, 4.0))
    return target, path


def test_stations_are_spaced_along_a_bent_line():
    line = Line("bent", np.array([[0.0, 0.0], [30.0, 0.0], [30.0, 40.0]]), wgs84_wkt())
    points = stations(line, 10.0)
    np.testing.assert_allclose(points.distance, [0, 10, 20, 30, 40, 50, 60, 70])
    np.testing.assert_allclose(points.x[-3:], [30, 30, 30])
    np.testing.assert_allclose(points.y[-1], 40.0)
    np.testing.assert_allclose(points.ty[-1], 1.0)
    np.testing.assert_allclose(points.width.sum(), 70.0)
    gate = stations(line, 25.0, centred=True)  # pieces 0-25, 25-30 (the vertex), 30-50, 50-70
    np.testing.assert_allclose(gate.width, [25.0, 5.0, 20.0, 20.0])
    np.testing.assert_allclose(gate.distance, [12.5, 27.5, 40.0, 60.0])
    np.testing.assert_allclose(gate.tx, [1.0, 1.0, 0.0, 0.0])
    with pytest.raises(GlacierFlowError, match="two distinct"):
        stations(Line("dot", np.array([[1.0, 1.0], [1.0, 1.0]]), wgs84_wkt()), 5.0)


def test_profile_along_x_recovers_the_field_and_its_components(field):
    target, path = field
    x0, y0 = target.transform[0], target.transform[3]
    east = Line("east", np.array([[x0 + 55.0, y0 - 305.0], [x0 + 655.0, y0 - 305.0]]), target.crs_wkt)
    north = Line("north", np.array([[x0 + 405.0, y0 - 555.0], [x0 + 405.0, y0 - 55.0]]), target.crs_wkt)
    along_east, along_north = velocity_profiles(path, [east, north], 50.0)
    expected_vx = 100.0 + 0.1 * (along_east.x - x0)
    np.testing.assert_allclose(along_east.vx, expected_vx, atol=1e-3)
    np.testing.assert_allclose(along_east.speed, np.hypot(expected_vx, 30.0), atol=1e-3)
    np.testing.assert_allclose(along_east.uncertainty, 4.0)
    assert along_east.distance[-1] == pytest.approx(600.0)
    from glacierflow.core.analysis.profile import along_across

    along, across = along_across(along_east)  # travelling east: along = vx, left = north = vy
    np.testing.assert_allclose(along, expected_vx, atol=1e-3)
    np.testing.assert_allclose(across, 30.0, atol=1e-3)
    along, across = along_across(along_north)  # travelling north: along = vy, left = west = -vx
    np.testing.assert_allclose(along, 30.0, atol=1e-3)
    np.testing.assert_allclose(across, -(100.0 + 0.1 * 405.0), atol=1e-3)


def test_a_line_in_wgs84_is_projected_and_outside_points_are_empty(field, tmp_path):
    target, path = field
    x0, y0 = target.transform[0], target.transform[3]
    lonlat = transform_points([(x0 + 105.0, y0 - 105.0), (x0 + 1105.0, y0 - 105.0)], target.crs_wkt, wgs84_wkt())
    (profile,) = velocity_profiles(path, [Line("long", np.array(lonlat), wgs84_wkt())], 100.0)
    inside = profile.distance < 690.0
    assert np.isfinite(profile.vx[inside]).all() and np.isnan(profile.vx[profile.distance > 710.0]).all()
    csv_path = write_profile_csv(str(tmp_path / "profile.csv"), [profile])
    with open(csv_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == profile.distance.size and rows[0]["line"] == "long"
    assert float(rows[1]["vx"]) == pytest.approx(profile.vx[1], rel=1e-5) and rows[-1]["vx"] == ""
    png = write_profile_png(str(tmp_path / "profile.png"), [profile])
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_pair_product_without_uncertainty(tmp_path):
    target = grid()
    path = write_pair_product(tmp_path / "pair.tif", target, np.full(target.shape, 10.0), np.zeros(target.shape))
    x0, y0 = target.transform[0], target.transform[3]
    (profile,) = velocity_profiles(path, [Line("a", np.array([[x0 + 5, y0 - 5], [x0 + 95, y0 - 95]]),
                                                target.crs_wkt)], 10.0)
    np.testing.assert_allclose(profile.speed, 10.0)
    assert np.isnan(profile.uncertainty).all() and (profile.valid == 1).all()
