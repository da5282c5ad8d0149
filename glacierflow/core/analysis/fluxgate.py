"""Ice discharge through a flux gate: the velocity normal to a line, times the ice thickness, times a
depth-averaging factor, integrated along the line; with an uncertainty, in m3/yr, km3/yr and Gt/yr.

Sign: positive flux crosses the gate from its left to its right, looking along the direction the line
was drawn (the right normal is (ty, -tx) for the unit tangent (tx, ty)).

Per station i (the middle of a piece of width w_i metres):
    q_i = f * u_n,i * H_i * w_i                                       (m3/yr)
    s_i = f * w_i * sqrt((H_i * sigma_u,i)^2 + (u_n,i * sigma_H,i)^2)  (m3/yr, 1 sigma)
The gate's uncertainty is sum(s_i): the velocity and thickness errors are correlated along a gate (the
same matching noise, the same radar survey), so the fully correlated sum is the honest bound; the
independent-error value sqrt(sum(s_i^2)) is reported beside it. Stations without velocity or thickness
are left out and the covered share of the gate is reported.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import GlacierFlowError
from ..feedback import Feedback
from ..products.velocity import open_velocity
from .figures import write_csv
from .lines import Line, lines_in_crs, stations
from .sampling import sample_product, sample_raster

ICE_DENSITY = 917.0  # kg/m3
DEPTH_FACTOR = 0.9  # depth-averaged / surface speed for flow mostly by internal deformation
STATION_COLUMNS = ("gate", "distance_m", "x", "y", "width_m", "normal_velocity", "velocity_uncertainty",
                   "thickness", "thickness_uncertainty", "flux_m3_per_yr", "flux_uncertainty_m3_per_yr")
SUMMARY_COLUMNS = ("gate", "length_m", "covered_fraction", "flux_m3_per_yr", "flux_km3_per_yr",
                   "flux_gt_per_yr", "uncertainty_km3_per_yr", "uncertainty_gt_per_yr",
                   "uncertainty_independent_km3_per_yr", "depth_factor", "ice_density")


@dataclass(frozen=True)
class Thickness:
    """Ice thickness: a raster (band 1, m) or a constant (m), with a 1-sigma uncertainty that is a
    constant (m) plus a fraction of the thickness."""

    raster: str = ""
    constant: float = 0.0
    uncertainty_m: float = 0.0
    uncertainty_fraction: float = 0.0

    def at(self, x: np.ndarray, y: np.ndarray, crs_wkt: str) -> tuple[np.ndarray, np.ndarray]:
        """(thickness, its uncertainty) at map points (m); NaN where the raster has no data."""
        if self.raster:
            values = sample_raster(self.raster, x, y, crs_wkt)
            values = np.where(values < 0, np.nan, values)
        elif self.constant > 0:
            values = np.full(np.shape(x), float(self.constant))
        else:
            raise GlacierFlowError("Give an ice-thickness raster or a positive constant thickness (m).")
        return values, np.hypot(self.uncertainty_m, self.uncertainty_fraction * values)


@dataclass(frozen=True)
class GateResult:
    """One gate's stations (1-D arrays) and totals (m3/yr; see the module docstring)."""

    gate: str
    distance: np.ndarray
    x: np.ndarray
    y: np.ndarray
    width: np.ndarray
    normal_velocity: np.ndarray
    velocity_uncertainty: np.ndarray
    thickness: np.ndarray
    thickness_uncertainty: np.ndarray
    flux: np.ndarray
    flux_uncertainty: np.ndarray
    depth_factor: float
    ice_density: float

    @property
    def covered(self) -> np.ndarray:
        """Stations with both velocity and thickness."""
        return np.isfinite(self.flux)

    @property
    def covered_fraction(self) -> float:
        """Share of the gate's length with both velocity and thickness, 0..1."""
        return float(self.width[self.covered].sum() / self.width.sum())

    @property
    def total(self) -> float:
        """Flux through the covered part of the gate (m3/yr)."""
        return float(self.flux[self.covered].sum())

    @property
    def uncertainty(self) -> float:
        """1-sigma uncertainty with fully correlated errors along the gate (m3/yr)."""
        return float(self.flux_uncertainty[self.covered].sum())

    @property
    def uncertainty_independent(self) -> float:
        """1-sigma uncertainty with independent errors per station (m3/yr), a lower bound."""
        return float(np.sqrt((self.flux_uncertainty[self.covered] ** 2).sum()))

    def gigatonnes(self, cubic_metres: float) -> float:
        """Mass (Gt) of ``cubic_metres`` of ice at the result's density."""
        return cubic_metres * self.ice_density / 1e12


def flux_gates(path: str, gates: Sequence[Line], thickness: Thickness, spacing_m: float | None = None,
               depth_factor: float = DEPTH_FACTOR, velocity_uncertainty: float | None = None,
               ice_density: float = ICE_DENSITY, feedback: Feedback | None = None) -> list[GateResult]:
    """Discharge of the velocity product ``path`` (m/yr) through each gate (any CRS).

    ``spacing_m``: station spacing (default: the product's pixel size); ``velocity_uncertainty``: a
    constant 1-sigma (m/yr) for the normal velocity, default the product's ``uncertainty`` band (stacks;
    zero with a warning when the product has none).
    """
    feedback = feedback or Feedback()
    if not 0 < depth_factor <= 1.2:
        raise GlacierFlowError(f"Depth-averaging factor {depth_factor} is outside 0-1.2: 0.8-1.0 is usual "
                               "(1 for sliding, 0.8 for pure deformation with n = 3).")
    if ice_density <= 0:
        raise GlacierFlowError(f"Ice density {ice_density} kg/m3 must be positive (917 is usual).")
    product = open_velocity(path)
    spacing = spacing_m or min(product.grid.pixel_size)
    if velocity_uncertainty is None and not product.has("uncertainty"):
        feedback.warning("The product has no uncertainty band and none was given: the flux uncertainty holds "
                         "the thickness uncertainty only.")
    results = []
    for gate in lines_in_crs(gates, product.grid.crs_wkt):
        points = stations(gate, spacing, centred=True)
        sampled = sample_product(product, ("vx", "vy", "uncertainty"), points.x, points.y)
        normal = sampled["vx"] * points.ty - sampled["vy"] * points.tx
        if velocity_uncertainty is not None:
            sigma_u = np.full(normal.shape, float(velocity_uncertainty))
        else:
            sigma_u = np.nan_to_num(sampled["uncertainty"], nan=0.0)
        height, sigma_h = thickness.at(points.x, points.y, product.grid.crs_wkt)
        flux = depth_factor * normal * height * points.width
        sigma = depth_factor * points.width * np.hypot(height * sigma_u, normal * sigma_h)
        result = GateResult(gate.name, points.distance, points.x, points.y, points.width, normal, sigma_u, height,
                            sigma_h, flux, sigma, depth_factor, ice_density)
        if result.covered_fraction < 1.0:
            feedback.warning(f"Gate {gate.name}: {100 * (1 - result.covered_fraction):.0f} % of its length has no "
                             "velocity or thickness and is left out of the flux.")
        results.append(result)
    return results


def summary_rows(results: Sequence[GateResult]) -> list[list[object]]:
    """One row per gate in :data:`SUMMARY_COLUMNS` order."""
    return [[r.gate, float(r.width.sum()), r.covered_fraction, r.total, r.total / 1e9, r.gigatonnes(r.total),
             r.uncertainty / 1e9, r.gigatonnes(r.uncertainty), r.uncertainty_independent / 1e9, r.depth_factor,
             r.ice_density] for r in results]


def station_rows(results: Sequence[GateResult]) -> list[list[object]]:
    """One row per station in :data:`STATION_COLUMNS` order."""
    rows: list[list[object]] = []
    for r in results:
        for i in range(r.distance.size):
            rows.append([r.gate] + [float(v[i]) for v in (
                r.distance, r.x, r.y, r.width, r.normal_velocity, r.velocity_uncertainty, r.thickness,
                r.thickness_uncertainty, r.flux, r.flux_uncertainty)])
    return rows


def write_flux_csv(path: str, results: Sequence[GateResult], stations_path: str = "") -> str:
    """The per-gate table (and, with ``stations_path``, the per-station table) as CSV; returns ``path``."""
    if stations_path:
        write_csv(stations_path, STATION_COLUMNS, station_rows(results))
    return write_csv(path, SUMMARY_COLUMNS, summary_rows(results))
