"""Tests of the NDSI series chain (glacierflow/core/forecast/series.py): gaps, ECC, NDSI, mask, windows."""
from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import cv2
import numpy as np
import pytest

from glacierflow.core.errors import GlacierFlowError
from glacierflow.core.feedback import Feedback
from glacierflow.core.forecast.series import (
    NdsiSeries,
    align_series,
    average_windows,
    build_ndsi_series,
    ecc_warp,
    fill_gaps,
    gap_kernel,
    interpolate_in_time,
    landsat_reflectance,
    ndsi,
    snow_mask,
    window_starts,
)

UTC = timezone.utc


class Recorder(Feedback):
    """Feedback that keeps its messages."""

    def __init__(self) -> None:
        self.warnings: list = []
        self.infos: list = []

    def warning(self, message: str) -> None:
        self.warnings.append(message)

    def info(self, message: str) -> None:
        self.infos.append(message)


def texture(shape=(160, 160), seed=0, sigma=3.0) -> np.ndarray:
    """A smooth random image, 0..1-like."""
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.random(shape).astype(np.float32), (0, 0), sigma)


def shifted(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``image`` with its content moved by (dx right, dy down) px (cubic)."""
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(image, matrix, image.shape[::-1], flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


# --- gap filling -------------------------------------------------------------------------------------------------

def test_gap_kernel_falls_with_distance() -> None:
    kernel = gap_kernel(5)
    assert kernel[2, 2] == 0.0
    assert kernel[2, 3] == pytest.approx(1.0) and kernel[2, 4] == pytest.approx(0.5)
    assert kernel[1, 1] == pytest.approx(1 / math.sqrt(2)) and kernel[0, 1] == pytest.approx(1 / math.sqrt(5))


def test_fill_gaps_hand_computed_weights() -> None:
    image = np.full((5, 5), np.nan, dtype=np.float32)
    image[0, 2] = 1.0  # 2 px above the centre: weight 1/2
    image[2, 3] = 3.0  # 1 px right of the centre: weight 1
    filled = fill_gaps(image)
    assert filled[2, 2] == pytest.approx((0.5 * 1.0 + 1.0 * 3.0) / 1.5, rel=1e-6)
    w_a, w_b = 1 / math.sqrt(2), 1 / math.sqrt(5)  # pixel (1, 1): (0, 2) diagonal, (2, 3) a knight's move
    assert filled[1, 1] == pytest.approx((w_a * 1.0 + w_b * 3.0) / (w_a + w_b), rel=1e-6)
    assert filled[0, 2] == 1.0 and filled[2, 3] == 3.0


def test_fill_gaps_fills_everything_and_keeps_valid_pixels() -> None:
    image = texture((120, 140))
    gappy = image.copy()
    gappy[20:90, 30:100] = np.nan  # a big cloud: needs many passes
    gappy[::7, ::11] = np.nan
    gappy[:, 0] = np.nan
    filled = fill_gaps(gappy)
    assert np.isfinite(filled).all()
    valid = np.isfinite(gappy)
    assert np.array_equal(filled[valid], gappy[valid])
    # Smooth texture: isolated one-pixel gaps come back close to the truth.
    isolated = np.zeros(image.shape, bool)
    isolated[::7, ::11] = True
    isolated[15:95, 25:105] = isolated[:, :3] = False
    assert np.abs(filled - image)[isolated].max() < 0.02


def test_fill_gaps_refuses_an_empty_scene() -> None:
    with pytest.raises(GlacierFlowError, match="no valid pixel"):
        fill_gaps(np.full((10, 10), np.nan))


# --- ECC alignment -----------------------------------------------------------------------------------------------

def test_ecc_recovers_sub_pixel_shifts_to_a_tenth_of_a_pixel() -> None:
    big = texture((240, 240), seed=3)
    shifts = [(0.3, -0.2), (-0.3, 0.2), (0.45, 0.1), (-0.45, -0.1), (0.0, 0.0)]  # zero mean: the mean image is unbiased
    frames = np.stack([shifted(big, dx, dy)[40:200, 40:200] for dx, dy in shifts])
    aligned, warps = align_series(frames)
    for (dx, dy), warp in zip(shifts, warps):
        assert abs(warp[0, 2] - dx) < 0.1 and abs(warp[1, 2] - dy) < 0.1
    spread_before = np.abs(frames - frames.mean(axis=0))[:, 10:-10, 10:-10].mean()
    spread_after = np.abs(aligned - aligned.mean(axis=0))[:, 10:-10, 10:-10].mean()
    assert spread_after < 0.2 * spread_before


def test_ecc_against_a_known_reference() -> None:
    big = texture((240, 240), seed=5)
    warp, reason = ecc_warp(big[40:200, 40:200], shifted(big, 1.7, -0.6)[40:200, 40:200])
    assert reason is None
    assert warp[0, 2] == pytest.approx(1.7, abs=0.1) and warp[1, 2] == pytest.approx(-0.6, abs=0.1)


def test_a_frame_ecc_cannot_align_stays_as_is() -> None:
    frames = np.stack([texture(seed=1), texture(seed=1), np.zeros((160, 160), np.float32)])
    recorder = Recorder()
    aligned, warps = align_series(frames, feedback=recorder)
    assert np.array_equal(aligned[2], frames[2])
    assert np.array_equal(warps[2], np.eye(2, 3, dtype=np.float32))
    assert any("Frame 2 left unaligned" in message for message in recorder.warnings)


def test_align_rejects_unknown_motion_and_gaps() -> None:
    frames = np.stack([texture(), texture()])
    with pytest.raises(GlacierFlowError, match="motion"):
        align_series(frames, motion="homography")
    frames[0, 0, 0] = np.nan
    with pytest.raises(GlacierFlowError, match="fill"):
        align_series(frames)


# --- NDSI, mask, reflectance -------------------------------------------------------------------------------------

def test_ndsi_values() -> None:
    green = np.array([0.9, 0.1, 0.0, np.nan, 0.3])
    swir1 = np.array([0.05, 0.3, 0.0, 0.1, 0.3])
    result = ndsi(green, swir1)
    assert result[0] == pytest.approx(0.85 / 0.95, rel=1e-6)
    assert result[1] == pytest.approx(-0.5, rel=1e-6)
    assert np.isnan(result[2]) and np.isnan(result[3])
    assert result[4] == 0.0


def test_snow_mask_keeps_the_value_above_the_threshold() -> None:
    values = np.array([-0.5, 0.0, 0.29, 0.3, 0.55, 0.95, np.nan])
    masked = snow_mask(values)
    np.testing.assert_allclose(masked[:6], [0, 0, 0, 0.3, 0.55, 0.95], rtol=1e-6)
    assert np.isnan(masked[6])
    assert snow_mask(np.array([0.45]), threshold=0.5)[0] == 0.0


def test_landsat_reflectance_scaling() -> None:
    dn = np.array([0, 1000, 7273, 20000, 43636, 65535], dtype=np.uint16)
    reflectance = landsat_reflectance(dn)
    assert np.isnan(reflectance[0])
    assert reflectance[1] == 0.0  # negative (over-corrected dark pixel) clipped to 0
    assert reflectance[2] == pytest.approx(0.0, abs=1e-5)
    assert reflectance[3] == pytest.approx(20000 * 2.75e-5 - 0.2, rel=1e-5)
    assert reflectance[4] == pytest.approx(1.0, abs=1e-4)
    assert reflectance[5] == pytest.approx(1.602, abs=1e-3)


# --- windows -----------------------------------------------------------------------------------------------------

def test_window_starts_follow_calendar_quarters() -> None:
    starts = window_starts(datetime(2013, 2, 10), datetime(2014, 1, 3, tzinfo=UTC))
    assert starts == [datetime(2013, m, 1, tzinfo=UTC) for m in (1, 4, 7, 10)] + [datetime(2014, 1, 1, tzinfo=UTC)]
    half_years = window_starts(datetime(2020, 8, 1, tzinfo=UTC), datetime(2021, 7, 1, tzinfo=UTC), 6)
    assert half_years == [datetime(2020, 7, 1, tzinfo=UTC), datetime(2021, 1, 1, tzinfo=UTC),
                          datetime(2021, 7, 1, tzinfo=UTC)]
    with pytest.raises(GlacierFlowError, match="divide"):
        window_starts(datetime(2020, 1, 1), datetime(2021, 1, 1), 5)


def test_average_windows_on_irregular_dates_with_an_empty_window() -> None:
    minus_two = timezone(timedelta(hours=-2))
    times = [datetime(2020, 1, 5, tzinfo=UTC), datetime(2020, 2, 20, tzinfo=UTC),
             datetime(2020, 3, 31, 23, 0, tzinfo=UTC),
             datetime(2020, 9, 30, 23, 30, tzinfo=minus_two),  # 1 October UTC: Q4
             datetime(2020, 7, 15, tzinfo=UTC), datetime(2021, 6, 1, tzinfo=UTC)]
    values = [1.0, 2.0, 3.0, 20.0, 10.0, 40.0]
    frames = np.stack([np.full((3, 4), v, np.float32) for v in values])
    frames[1, 0, 0] = np.nan  # a pixel missing in one scene: the others of its window decide
    starts, averaged = average_windows(times, frames)
    assert starts[0] == datetime(2020, 1, 1, tzinfo=UTC) and starts[-1] == datetime(2021, 4, 1, tzinfo=UTC)
    expected = [2.0, 6.0, 10.0, 20.0, 30.0, 40.0]  # Q2 2020 and Q1 2021 empty: linear in time
    np.testing.assert_allclose(averaged[:, 1, 1], expected, rtol=1e-6)
    assert averaged[0, 0, 0] == pytest.approx(2.0)


def test_interpolation_copies_the_nearest_at_the_ends() -> None:
    series = np.array([np.nan, np.nan, 4.0, np.nan, 8.0, np.nan])
    np.testing.assert_allclose(interpolate_in_time(series), [4, 4, 4, 6, 8, 8])


# --- the whole chain ---------------------------------------------------------------------------------------------

def test_build_ndsi_series_on_known_values() -> None:
    rng = np.random.default_rng(0)
    shape = (40, 40)
    times = [datetime(2020, 1, 10, tzinfo=UTC), datetime(2020, 2, 10, tzinfo=UTC),
             datetime(2020, 3, 1, tzinfo=UTC), datetime(2020, 8, 1, tzinfo=UTC)]
    green = np.stack([np.full(shape, v, np.float32) for v in (0.8, 0.2, 0.5, 0.8)])
    swir1 = np.stack([np.full(shape, v, np.float32) for v in (0.1, 0.3, 0.5, 0.1)])
    green[0][rng.random(shape) < 0.3] = np.nan  # cloud gaps: filled
    green[2][:30] = np.nan  # 75 % missing: the scene is dropped
    recorder = Recorder()
    series = build_ndsi_series(times, green, swir1, feedback=recorder)
    assert isinstance(series, NdsiSeries)
    assert series.frames.shape == (3, 40, 40) and series.frames.dtype == np.float32
    assert series.times[0] == datetime(2020, 1, 1, tzinfo=UTC)
    assert series.filled_windows == [1]
    high = 0.7 / 0.9  # scene 1's NDSI; scene 2's is -0.2, masked to 0
    np.testing.assert_allclose(series.frames[0], high / 2.0, rtol=1e-5)
    np.testing.assert_allclose(series.frames[2], high, rtol=1e-5)
    np.testing.assert_allclose(series.frames[1], 0.75 * high, rtol=1e-5)  # interpolated
    assert series.window_ends()[0] == datetime(2020, 4, 1, tzinfo=UTC)
    assert any("Dropped 1 of 4" in message for message in recorder.infos)


def test_build_ndsi_series_aligns_both_bands_with_the_same_warp() -> None:
    big = texture((200, 200), seed=7)
    shifts = [(0.8, 0.0), (-0.8, 0.0), (0.0, 0.6), (0.0, -0.6)]
    green = np.stack([0.3 + 0.5 * shifted(big, dx, dy)[20:180, 20:180] for dx, dy in shifts])
    swir1 = np.stack([0.3 - 0.4 * shifted(big, dx, dy)[20:180, 20:180] for dx, dy in shifts])
    times = [datetime(2021, 1, 1, tzinfo=UTC) + timedelta(days=16 * i) for i in range(4)]
    aligned = build_ndsi_series(times, green, swir1, threshold=-1.0)
    raw = build_ndsi_series(times, green, swir1, threshold=-1.0, align=None)
    truth = ndsi(0.3 + 0.5 * big[20:180, 20:180], 0.3 - 0.4 * big[20:180, 20:180])
    inner = (slice(10, -10), slice(10, -10))
    assert np.abs(aligned.frames[0][inner] - truth[inner]).mean() < 0.5 * np.abs(raw.frames[0][inner]
                                                                                - truth[inner]).mean()
