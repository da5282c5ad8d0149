"""Velocity profiles along lines (a centreline, a cross-section): speed and the components along and
across the line, every ``spacing`` metres."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..products.velocity import open_velocity
from .figures import new_figure, save_png, write_csv
from .lines import Line, lines_in_crs, stations
from .sampling import sample_product

PROFILE_COLUMNS = ("line", "distance_m", "x", "y", "vx", "vy", "speed", "along", "across", "uncertainty", "valid")


@dataclass(frozen=True)
class Profile:
    """One line's profile (1-D arrays per station; velocities in m/yr).

    ``along`` is the velocity component in the line's direction of travel, ``across`` the component
    towards the line's left; ``uncertainty`` and ``valid`` are NaN when the product has no such band.
    """

    line: str
    distance: np.ndarray
    x: np.ndarray
    y: np.ndarray
    vx: np.ndarray
    vy: np.ndarray
    uncertainty: np.ndarray
    valid: np.ndarray
    tx: np.ndarray
    ty: np.ndarray

    @property
    def speed(self) -> np.ndarray:
        """Speed (m/yr)."""
        return np.hypot(self.vx, self.vy)


def velocity_profiles(path: str, lines: Sequence[Line], spacing_m: float) -> list[Profile]:
    """Profiles of the velocity product ``path`` along ``lines`` (any CRS), a station every ``spacing_m``."""
    product = open_velocity(path)
    profiles = []
    for line in lines_in_crs(lines, product.grid.crs_wkt):
        points = stations(line, spacing_m)
        values = sample_product(product, ("vx", "vy", "uncertainty", "valid"), points.x, points.y)
        profiles.append(Profile(line.name, points.distance, points.x, points.y, values["vx"], values["vy"],
                                values["uncertainty"], values["valid"], points.tx, points.ty))
    return profiles


def along_across(profile: Profile) -> tuple[np.ndarray, np.ndarray]:
    """(along, across) components (m/yr): on the line's unit tangent, and on its left normal."""
    tx, ty = profile.tx, profile.ty
    return profile.vx * tx + profile.vy * ty, -profile.vx * ty + profile.vy * tx


def profile_rows(profiles: Sequence[Profile]) -> list[list[object]]:
    """CSV rows in :data:`PROFILE_COLUMNS` order."""
    rows: list[list[object]] = []
    for profile in profiles:
        along, across = along_across(profile)
        for i in range(profile.distance.size):
            rows.append([profile.line] + [float(v[i]) for v in (
                profile.distance, profile.x, profile.y, profile.vx, profile.vy, profile.speed, along, across,
                profile.uncertainty, profile.valid)])
    return rows


def write_profile_csv(path: str, profiles: Sequence[Profile]) -> str:
    """The profiles as a CSV (:data:`PROFILE_COLUMNS`; m and m/yr); returns ``path``."""
    return write_csv(path, PROFILE_COLUMNS, profile_rows(profiles))


def profile_figure(profiles: Sequence[Profile]) -> object:
    """Speed, along- and across-line components against distance, one panel per quantity."""
    figure = new_figure(7.5, 6.5)
    axes = figure.subplots(3, 1, sharex=True)
    for profile in profiles:
        along, across = along_across(profile)
        distance_km = profile.distance / 1000.0
        line = axes[0].plot(distance_km, profile.speed, label=profile.line)[0]
        if np.isfinite(profile.uncertainty).any():
            axes[0].fill_between(distance_km, profile.speed - profile.uncertainty,
                                 profile.speed + profile.uncertainty, color=line.get_color(), alpha=0.25)
        axes[1].plot(distance_km, along, color=line.get_color())
        axes[2].plot(distance_km, across, color=line.get_color())
    for axis, label in zip(axes, ("Speed (m/yr)", "Along line (m/yr)", "Across, to the left (m/yr)")):
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    axes[2].set_xlabel("Distance along the line (km)")
    axes[0].legend(fontsize=8)
    return figure


def write_profile_png(path: str, profiles: Sequence[Profile]) -> str:
    """The profile plot as a PNG; returns ``path``."""
    return save_png(profile_figure(profiles), path)
