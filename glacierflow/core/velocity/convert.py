"""Pixel displacements to map velocities: the one place where image space meets map space."""
from __future__ import annotations

import numpy as np

from ..geo.grid import GeoTransform
from ..io.timestamps import DAYS_PER_YEAR


def displacement_to_velocity(dx: np.ndarray, dy: np.ndarray, transform: GeoTransform,
                             interval_days: float) -> tuple[np.ndarray, np.ndarray]:
    """Convert image-space displacement (px) into map velocity (m/yr).

    Args:
        dx: displacement along columns, px (positive = increasing column).
        dy: displacement along rows, px (positive = increasing row).
        transform: GDAL geotransform of the grid the displacement lives on;
            any sign and rotation are honoured (south-up grids have e > 0).
        interval_days: time between the acquisitions, days (> 0).

    Returns:
        (vx, vy): velocity towards map +x (east) and +y (north), m/yr.
    """
    _, a, b, _, d, e = transform
    years = interval_days / DAYS_PER_YEAR
    east = (a * dx + b * dy) / years
    north = (d * dx + e * dy) / years
    return east.astype(np.float32), north.astype(np.float32)


def velocity_to_displacement(vx: np.ndarray, vy: np.ndarray, transform: GeoTransform,
                             interval_days: float) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`displacement_to_velocity`: m/yr east/north to px along columns/rows."""
    _, a, b, _, d, e = transform
    years = interval_days / DAYS_PER_YEAR
    det = a * e - b * d
    east, north = vx * years, vy * years
    dx = (e * east - b * north) / det
    dy = (-d * east + a * north) / det
    return dx.astype(np.float32), dy.astype(np.float32)


def speed(vx: np.ndarray, vy: np.ndarray) -> np.ndarray:
    """Speed (m/yr) from velocity components (m/yr)."""
    return np.hypot(vx, vy).astype(np.float32)


def direction_degrees(vx: np.ndarray, vy: np.ndarray) -> np.ndarray:
    """Flow direction, degrees clockwise from grid north (0 = north, 90 = east)."""
    return (np.degrees(np.arctan2(vx, vy)) % 360.0).astype(np.float32)
