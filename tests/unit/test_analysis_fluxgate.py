"""Flux gates against analytic discharges: a uniform flow through a straight gate of known thickness
equals speed x thickness x width x factor; a linear thickness raster; an oblique gate; the uncertainty."""
from __future__ import annotations

import csv

import numpy as np
import pytest
from analysis_samples import centres, grid, write_pair_product, write_stack_product

from glacierflow.core.analysis.fluxgate import Thickness, flux_gates, write_flux_csv
from glacierflow.core.analysis.lines import Line
from glacierflow.core.errors import GlacierFlowError
from glacierflow.core.geo.crs import transform_points, wgs84_wkt
from glacierflow.core.io.cog import BandSpec, write_bands


@pytest.fixture(scope="module")
def uniform(tmp_path_factory):
    """A stack of uniform eastward flow, 100 m/yr, uncertainty 5 m/yr, on the 600 m x 800 m sample grid."""
    target = grid()
    folder = tmp_path_factory.mktemp("flux")
    path = write_stack_product(folder / "annual.tif", target, np.full(target.shape, 100.0), np.zeros(target.shape),
                               np.full(target.shape, 5.0))
    return target, path, folder


def north_gate(target, x_offset=400.0, south=50.0, north=550.0):
    """A gate drawn from south to north at ``x_offset`` m from the west edge: right of it is east."""
    x0, y0 = target.transform[0], target.transform[3]
    return Line("gate", np.array([[x0 + x_offset, y0 - north], [x0 + x_offset, y0 - south]]), target.crs_wkt)


def test_uniform_flow_through_a_straight_gate(uniform):
    target, path, _ = uniform
    (result,) = flux_gates(path, [north_gate(target)], Thickness(constant=200.0, uncertainty_m=20.0), 10.0)
    width = 500.0
    assert result.total == pytest.approx(0.9 * 100.0 * 200.0 * width, rel=1e-9)  # 9e6 m3/yr
    assert result.covered_fraction == 1.0
    expected_sigma = 0.9 * width * np.hypot(200.0 * 5.0, 100.0 * 20.0)
    assert result.uncertainty == pytest.approx(expected_sigma, rel=1e-9)
    assert result.uncertainty_independent < result.uncertainty
    assert result.gigatonnes(result.total) == pytest.approx(9e6 * 917.0 / 1e12)


def test_drawn_the_other_way_the_flux_changes_sign_and_oblique_gates_agree(uniform):
    target, path, _ = uniform
    x0, y0 = target.transform[0], target.transform[3]
    backwards = Line("back", np.array([[x0 + 400.0, y0 - 50.0], [x0 + 400.0, y0 - 550.0]]), target.crs_wkt)
    oblique = Line("oblique", np.array([[x0 + 200.0, y0 - 550.0], [x0 + 600.0, y0 - 50.0]]), target.crs_wkt)
    zigzag = Line("zigzag", np.array([[x0 + 300.0, y0 - 550.0], [x0 + 450.0, y0 - 380.0], [x0 + 250.0, y0 - 200.0],
                                      [x0 + 420.0, y0 - 50.0]]), target.crs_wkt)
    back, slanted, bent = flux_gates(path, [backwards, oblique, zigzag], Thickness(constant=200.0), 7.0)
    assert back.total == pytest.approx(-9e6, rel=1e-9)
    assert slanted.total == pytest.approx(9e6, rel=1e-9)  # only the span across the flow counts
    assert bent.total == pytest.approx(9e6, rel=1e-9)  # a bent gate too: pieces end at the vertices


def test_linear_thickness_raster_and_a_gate_in_wgs84(uniform):
    target, path, folder = uniform
    _, y = centres(target)
    y0 = target.transform[3]
    thickness = write_bands(str(folder / "thickness.tif"), target, [100.0 + 0.5 * (y0 - y)],
                            [BandSpec("thickness", "Ice thickness", "m")], {})
    gate = north_gate(target)
    lonlat = Line("gate", np.array(transform_points([tuple(p) for p in gate.xy], target.crs_wkt, wgs84_wkt())),
                  wgs84_wkt())
    (result,) = flux_gates(path, [lonlat], Thickness(raster=thickness, uncertainty_fraction=0.1), 10.0,
                           depth_factor=1.0, velocity_uncertainty=0.0)
    mean_thickness = 100.0 + 0.5 * 300.0  # the gate spans 50-550 m south of the top edge
    assert result.total == pytest.approx(100.0 * mean_thickness * 500.0, rel=1e-3)
    assert result.uncertainty == pytest.approx(0.1 * result.total, rel=1e-3)


def test_gaps_are_reported_and_left_out(tmp_path):
    target = grid()
    vx = np.full(target.shape, 100.0)
    vx[:30, :] = np.nan  # the northern half of the grid has no velocity
    path = write_pair_product(tmp_path / "pair.tif", target, vx, np.zeros(target.shape))
    (result,) = flux_gates(path, [north_gate(target)], Thickness(constant=200.0), 10.0)
    assert result.covered_fraction == pytest.approx(0.5, abs=0.03)
    assert result.total == pytest.approx(0.9 * 100 * 200 * 250.0, rel=0.05)
    summary = write_flux_csv(str(tmp_path / "flux.csv"), [result], str(tmp_path / "stations.csv"))
    with open(summary, newline="") as handle:
        row = next(csv.DictReader(handle))
    assert float(row["flux_km3_per_yr"]) == pytest.approx(result.total / 1e9, rel=1e-5)
    assert float(row["flux_gt_per_yr"]) == pytest.approx(result.total / 1e9 * 0.917, rel=1e-5)
    with open(tmp_path / "stations.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 50


def test_bad_inputs_are_clear(uniform):
    target, path, _ = uniform
    with pytest.raises(GlacierFlowError, match="thickness"):
        flux_gates(path, [north_gate(target)], Thickness())
    with pytest.raises(GlacierFlowError, match="Depth-averaging"):
        flux_gates(path, [north_gate(target)], Thickness(constant=100.0), depth_factor=0.0)
