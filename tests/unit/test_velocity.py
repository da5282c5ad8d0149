"""Displacement (px) to velocity (m/yr): sign conventions on north-up, south-up and rotated grids."""
from __future__ import annotations

import numpy as np
import pytest

from glacierflow.core.velocity.convert import (
    direction_degrees,
    displacement_to_velocity,
    speed,
    velocity_to_displacement,
)

NORTH_UP = (500000.0, 10.0, 0.0, 5000000.0, 0.0, -10.0)
SOUTH_UP = (500000.0, 10.0, 0.0, 4990000.0, 0.0, 10.0)


def test_north_up_moving_down_the_image_is_moving_south():
    vx, vy = displacement_to_velocity(np.array([0.0]), np.array([1.0]), NORTH_UP, 365.25)
    assert vx[0] == pytest.approx(0.0)
    assert vy[0] == pytest.approx(-10.0)  # 1 px = 10 m south in one year


def test_south_up_moving_down_the_image_is_moving_north():
    vx, vy = displacement_to_velocity(np.array([2.0]), np.array([1.0]), SOUTH_UP, 365.25)
    assert vx[0] == pytest.approx(20.0)
    assert vy[0] == pytest.approx(10.0)


def test_interval_scales_to_years():
    vx, _ = displacement_to_velocity(np.array([1.0]), np.array([0.0]), NORTH_UP, 16.0)
    assert vx[0] == pytest.approx(10.0 * 365.25 / 16.0, rel=1e-6)


def test_rotated_grid_round_trips():
    angle = np.radians(30)
    rotated = (0.0, 15 * np.cos(angle), 15 * np.sin(angle), 0.0, 15 * np.sin(angle), -15 * np.cos(angle))
    dx, dy = np.array([1.5, -2.0]), np.array([0.25, 3.0])
    vx, vy = displacement_to_velocity(dx, dy, rotated, 100.0)
    back = velocity_to_displacement(vx, vy, rotated, 100.0)
    np.testing.assert_allclose(back[0], dx, atol=1e-5)
    np.testing.assert_allclose(back[1], dy, atol=1e-5)
    np.testing.assert_allclose(speed(vx, vy), np.hypot(dx, dy) * 15 * 365.25 / 100.0, rtol=1e-5)


def test_direction_is_clockwise_from_north():
    np.testing.assert_allclose(direction_degrees(np.array([0.0, 1.0, 0.0]), np.array([1.0, 0.0, -1.0])),
                               [0.0, 90.0, 180.0])
