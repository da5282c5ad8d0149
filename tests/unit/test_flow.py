"""Tests of the optical-flow engines, their registry and post-processing.

Plain pytest, no QGIS. Test images are periodic smoothed noise; moving them
with a Fourier phase shift is exact for any sub-pixel displacement. (We do
not use cv2.remap to make them: it snaps positions to 1/32 px and its cubic
kernel adds ~0.07 px of error, most of the 0.1 px tolerance tested here.)
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from glacierflow.core.errors import GlacierFlowError
from glacierflow.core.velocity.flow import CLASSICAL_ENGINE_NAMES, create_engine, estimate_with_checks
from glacierflow.core.velocity.flow.base import Flow
from glacierflow.core.velocity.flow.postprocess import (
    consistent,
    forward_backward_error,
    median_filter_flow,
    nan_median,
    nan_medians,
)

SIZE = 192  # px; tiles in production are larger, this keeps tests fast


# ---------------------------------------------------------------- helpers ---
def _normalise(image: np.ndarray) -> np.ndarray:
    """Zero median, unit robust spread (MAD * 1.4826), as the pipeline does.

    Falls back to the standard deviation for mostly flat images (MAD = 0).
    """
    med = np.median(image)
    spread = 1.4826 * np.median(np.abs(image - med)) or np.std(image)
    return ((image - med) / spread).astype(np.float32)


def _texture(size: int = SIZE, seed: int = 0, sigma: float = 2.0) -> np.ndarray:
    """Periodic Gaussian-smoothed white noise, sigma in px."""
    noise = np.random.default_rng(seed).standard_normal((size, size))
    k = np.fft.fftfreq(size)
    gauss = np.exp(-2.0 * (np.pi * sigma) ** 2 * (k[:, None] ** 2 + k[None, :] ** 2))
    return _normalise(np.real(np.fft.ifft2(np.fft.fft2(noise) * gauss)))


def _translate(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """Image whose content sits (dy, dx) px further down/right, periodic."""
    ky = np.fft.fftfreq(image.shape[0])[:, None]
    kx = np.fft.fftfreq(image.shape[1])[None, :]
    phase = np.exp(-2j * np.pi * (kx * dx + ky * dy))
    return np.real(np.fft.ifft2(np.fft.fft2(image) * phase)).astype(np.float32)


def _shift_rows(image: np.ndarray, dx_per_row: np.ndarray) -> np.ndarray:
    """Shift each row right by its own amount (px): an exact shear flow."""
    kx = np.fft.fftfreq(image.shape[1])[None, :]
    phase = np.exp(-2j * np.pi * kx * dx_per_row[:, None])
    return np.real(np.fft.ifft(np.fft.fft(image, axis=1) * phase, axis=1)).astype(np.float32)


def _stack(band: np.ndarray, channels: int) -> np.ndarray:
    """(C, H, W) engine input: the band itself (C=1) or its Sobel x/y (C=2)."""
    import cv2

    if channels == 1:
        return band[None]
    gx = cv2.Sobel(band, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(band, cv2.CV_32F, 0, 1, ksize=3)
    return np.stack([_normalise(gx), _normalise(gy)])


def _crevasses(size: int, seed: int, period: float = 6.0) -> np.ndarray:
    """Crevasse-like band: wavy stripes across the rows, ``period`` px apart.

    Their contrast varies smoothly over the tile (crevasse fields), and their
    crests wander by a few px (crevasses are not straight), as on a fast,
    heavily crevassed glacier trunk.
    """
    contrast = np.exp(0.4 * _texture(size, seed=seed, sigma=12.0))
    wobble = 4.0 * _texture(size, seed=seed + 1, sigma=16.0)  # px
    rows = np.arange(size, dtype=np.float32)[:, None]
    return (contrast * np.sin(2.0 * np.pi * (rows + wobble) / period)).astype(np.float32)


def _endpoint_error(flow: Flow, dx, dy, margin: int) -> np.ndarray:
    """Endpoint error (px) in the interior, `margin` px from every edge."""
    err = np.hypot(flow.dx - dx, flow.dy - dy)
    return err[margin:-margin, margin:-margin]


# ----------------------------------------------------------------- engines ---
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("name", CLASSICAL_ENGINE_NAMES)
def test_subpixel_translation(name: str, channels: int) -> None:
    a = _texture(seed=1)
    b = _translate(a, 2.3, -1.7)
    flow = create_engine(name).estimate(_stack(a, channels), _stack(b, channels))
    assert flow.dx.shape == a.shape and flow.dx.dtype == np.float32
    assert np.median(_endpoint_error(flow, 2.3, -1.7, margin=16)) < 0.1


@pytest.mark.parametrize("channels", [1, 2])
def test_horn_schunck_large_translation(channels: int) -> None:
    # ~25 px: only reachable through the pyramid (linearisation holds ~1 px).
    a = _texture(size=256, seed=2, sigma=1.5)
    b = _translate(a, 20.4, -14.6)
    flow = create_engine("horn_schunck").estimate(_stack(a, channels), _stack(b, channels))
    err = _endpoint_error(flow, 20.4, -14.6, margin=32)
    assert np.median(err) < 0.1
    assert np.percentile(err, 95) < 0.3


@pytest.mark.parametrize("dx, dy", [(3.0, 10.0), (-4.0, 9.0)])
def test_horn_schunck_decorrelated_crevasses_moving_more_than_their_spacing(
    dx: float, dy: float
) -> None:
    # The Yahtse trunk in miniature: stripes 6 px apart move 9-10 px across
    # them, and each image has its own fine noise (crevasses opening and
    # melting over 16 days). Averaging the signed Sobel channels for the
    # pyramid wipes the stripes from the coarse levels, and the fine levels
    # then lock onto an alias: the engine without rectified, contrast-
    # normalised coarse levels returned median flows of (-14.3, 8.0) and
    # (-12.5, 10.2) px here, median endpoint errors of 18 and 9 px.
    size = 256
    a = _crevasses(size, seed=8)
    b = _translate(a, dx, dy)
    a = a + 0.3 * _texture(size, seed=10, sigma=0.7)
    b = b + 0.3 * _texture(size, seed=11, sigma=0.7)
    flow = create_engine("horn_schunck").estimate(_stack(a, 2), _stack(b, 2))
    inner = (slice(32, -32), slice(32, -32))
    # Across the stripes the motion is well defined; along them only the
    # crests' wobble constrains it, so dx is looser.
    assert np.median(flow.dy[inner]) == pytest.approx(dy, abs=0.5)
    assert np.median(flow.dx[inner]) == pytest.approx(dx, abs=1.0)
    err = _endpoint_error(flow, dx, dy, margin=32)
    assert np.median(err) < 2.0
    assert np.mean(err < 3.0) > 0.75


def test_horn_schunck_coarse_level_settings() -> None:
    # Rectification and local contrast normalisation can be switched off.
    engine = create_engine("horn_schunck", rectify_from=99, contrast_sigma=0.0)
    assert engine.rectify_from == 99 and engine.contrast_sigma == 0.0
    a = _texture(size=128, seed=12)
    b = _translate(a, 1.4, -0.6)
    flow = engine.estimate(_stack(a, 2), _stack(b, 2))
    assert np.median(_endpoint_error(flow, 1.4, -0.6, margin=16)) < 0.1
    for bad in ({"rectify_from": -1}, {"contrast_sigma": -1.0}, {"contrast_floor": 0.0}):
        with pytest.raises(GlacierFlowError, match=next(iter(bad))):
            create_engine("horn_schunck", **bad)


@pytest.mark.parametrize("name", CLASSICAL_ENGINE_NAMES)
def test_smooth_shear_flow(name: str) -> None:
    # Glacier-like profile: 4 px along the centre line, 0 at the edges.
    rows = np.arange(SIZE, dtype=np.float32)
    profile = 4.0 * (1.0 - ((rows - SIZE / 2) / (SIZE / 2)) ** 2)
    a = _texture(seed=3)
    b = _shift_rows(a, profile)
    flow = create_engine(name).estimate(_stack(a, 2), _stack(b, 2))
    err = _endpoint_error(flow, profile[:, None], 0.0, margin=16)
    assert np.median(err) < 0.1
    assert np.percentile(err, 90) < 0.3


@pytest.mark.parametrize("name", CLASSICAL_ENGINE_NAMES)
def test_sign_convention_right_and_down(name: str) -> None:
    # A textured square on a flat background moves 3 px right and 2 px down
    # (integer roll: no interpolation involved).
    a = np.zeros((128, 128), np.float32)
    a[44:84, 44:84] = _texture(size=40, seed=4, sigma=1.5)
    b = np.roll(a, (2, 3), axis=(0, 1))
    flow = create_engine(name).estimate(_stack(a, 2), _stack(b, 2))
    inner = (slice(52, 76), slice(52, 76))
    assert np.median(flow.dx[inner]) == pytest.approx(3.0, abs=0.2)
    assert np.median(flow.dy[inner]) == pytest.approx(2.0, abs=0.2)


@pytest.mark.parametrize("name", CLASSICAL_ENGINE_NAMES)
def test_two_dimensional_input_is_one_channel(name: str) -> None:
    a = _texture(size=96, seed=5)
    b = _translate(a, 1.0, 0.5)
    flow = create_engine(name).estimate(a, b)
    assert np.median(_endpoint_error(flow, 1.0, 0.5, margin=16)) < 0.1


@pytest.mark.parametrize("name", CLASSICAL_ENGINE_NAMES)
def test_bad_inputs_raise_user_error(name: str) -> None:
    engine = create_engine(name)
    a = np.zeros((2, 32, 32), np.float32)
    with pytest.raises(GlacierFlowError, match="same"):
        engine.estimate(a, a[:, :16])
    b = a.copy()
    b[0, 3, 3] = np.nan
    with pytest.raises(GlacierFlowError, match="NaN"):
        engine.estimate(a, b)


# ---------------------------------------------------------------- registry ---
def test_unknown_engine_lists_valid_names() -> None:
    with pytest.raises(GlacierFlowError) as info:
        create_engine("raft_typo")
    for name in CLASSICAL_ENGINE_NAMES:
        assert name in str(info.value)


def test_engine_parameters() -> None:
    engine = create_engine("farneback", winsize=21)
    assert engine.name == "farneback" and engine.winsize == 21
    assert create_engine("horn_schunck", alpha=2.0).alpha == 2.0
    with pytest.raises(GlacierFlowError, match="parameter"):
        create_engine("farneback", no_such_option=1)
    with pytest.raises(GlacierFlowError, match="alpha"):
        create_engine("horn_schunck", alpha=0.0)


# ------------------------------------------------------------ median filter ---
def test_median_filter_removes_isolated_outlier() -> None:
    dx = np.full((40, 50), 1.5, np.float32)
    dy = np.full((40, 50), -0.5, np.float32)
    dx[20, 25], dy[10, 10] = 40.0, -30.0
    out = median_filter_flow(Flow(dx, dy), 9)
    assert np.allclose(out.dx, 1.5) and np.allclose(out.dy, -0.5)
    assert out.dx.dtype == np.float32


@pytest.mark.parametrize(("size", "step"), [(5, 1), (9, 1), (15, 1), (15, 2), (9, 2), (7, 3)])
def test_median_filter_ignores_nan(size: int, step: int) -> None:
    rng = np.random.default_rng(6)
    field = rng.standard_normal((30, 35)).astype(np.float32)
    field[rng.random(field.shape) < 0.3] = np.nan
    field[:12, :12] = np.nan  # some windows are all NaN
    field[20, 30] = np.inf  # unknown like NaN
    field[25, 3] = -np.inf
    out = nan_median(field, size, step)
    # Reference: np.nanmedian over each window's samples (every `step` px through the centre), outside = NaN.
    half = size // 2
    padded = np.pad(np.where(np.isfinite(field), field, np.nan), half, constant_values=np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (size, size))
    offset = half % step
    windows = windows[..., offset::step, offset::step].reshape(30, 35, -1)
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        expected = np.nanmedian(windows, axis=2)
    assert np.array_equal(np.isnan(out), np.isnan(expected))
    assert np.isnan(out[2, 2])  # all-NaN window stays NaN
    assert np.allclose(out, expected, equal_nan=True)
    assert np.isfinite(out[29, 34]) and np.isfinite(out[0, 34])  # edges use the inside part of the window


def _window_nanmedian(field: np.ndarray, size: int, step: int) -> np.ndarray:
    """np.nanmedian over each window's samples (every ``step`` px through the centre), outside = NaN."""
    half = size // 2
    padded = np.pad(np.where(np.isfinite(field), field, np.nan), half, constant_values=np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (size, size))
    offset = half % step
    windows = windows[..., offset::step, offset::step].reshape(field.shape + (-1,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows
        return np.nanmedian(windows, axis=2)


@pytest.mark.parametrize(("size", "step"), [(15, 2), (9, 1), (7, 3)])
@pytest.mark.parametrize("rows", [None, (0, 6), (9, 25), (31, 37)])
def test_median_of_some_rows_on_threads_equals_nanmedian(size: int, step: int, rows: tuple | None) -> None:
    rng = np.random.default_rng(11)
    field = rng.standard_normal((37, 43)).astype(np.float32)
    field[rng.random(field.shape) < 0.25] = np.nan
    field[:, :5] = np.nan  # no-data columns at an edge
    field[3, 40], field[30, 2] = np.inf, -np.inf
    other = -field
    other[18, 20] = np.nan  # a different NaN mask: its counts are its own
    chosen = None if rows is None else slice(*rows)
    for threads in (1, 3):
        out, out_other = nan_medians([field, other], size, step, rows=chosen, threads=threads)
        for got, source in ((out, field), (out_other, other)):
            expected = _window_nanmedian(source, size, step)[chosen or slice(None)]
            assert got.dtype == np.float32 and got.shape == expected.shape
            assert np.array_equal(got, expected.astype(np.float32), equal_nan=True)
        assert np.array_equal(nan_median(field, size, step, chosen, threads), out, equal_nan=True)


def test_median_filter_flow_is_the_full_window_median() -> None:
    rng = np.random.default_rng(1)
    field = rng.standard_normal((20, 20)).astype(np.float32)
    out = median_filter_flow(Flow(field, -field), 9)
    assert np.allclose(out.dx, nan_median(field, 9, 1)) and np.allclose(out.dy, -out.dx)


# --------------------------------------------------- forward-backward check ---
def _uniform(shape, dx: float, dy: float) -> Flow:
    return Flow(np.full(shape, dx, np.float32), np.full(shape, dy, np.float32))


def _fb_valid(forward: Flow, backward: Flow) -> np.ndarray:
    return consistent(*forward_backward_error(forward, backward))


def test_forward_backward_consistent_field_is_valid() -> None:
    valid = _fb_valid(_uniform((40, 40), 2.5, 1.0), _uniform((40, 40), -2.5, -1.0))
    assert valid.dtype == bool
    assert valid[:39, :37].all()
    # x + f leaves the image in the last 3 columns and the last row.
    assert not valid[:, 37:].any() and not valid[39:, :].any()


def test_forward_backward_marks_inconsistent_region() -> None:
    forward = _uniform((60, 60), 2.0, 0.0)
    backward = _uniform((60, 60), -2.0, 0.0)
    # An occluded/changed patch in B: the backward flow there disagrees.
    backward.dx[20:35, 20:35] = 3.0
    backward.dy[20:35, 20:35] = -2.0
    forward.dx[5, 5] = np.nan  # unknown forward flow is never valid
    valid = _fb_valid(forward, backward)
    assert not valid[22:31, 20:31].any()  # x + 2 lands in the patch
    assert valid[40:55, 5:50].all()
    assert not valid[5, 5]


def test_estimate_with_checks() -> None:
    a = _texture(size=128, seed=7)
    b = _translate(a, 1.6, 0.8)
    engine = create_engine("farneback")
    flow, valid = estimate_with_checks(engine, _stack(a, 2), _stack(b, 2))
    assert valid.shape == a.shape and valid.dtype == bool
    assert valid[16:-16, 16:-16].mean() > 0.95
    assert np.median(_endpoint_error(flow, 1.6, 0.8, margin=16)) < 0.1
    flow, valid = estimate_with_checks(engine, _stack(a, 2), _stack(b, 2), check_consistency=False)
    assert valid.all()


class _StubEngine:
    """Engine returning fixed flows, to test the checks around engines."""

    name = "stub"

    def __init__(self, forward: Flow, backward: Flow) -> None:
        self.flows = {True: forward, False: backward}

    def estimate(self, image_a: np.ndarray, image_b: np.ndarray) -> Flow:
        return self.flows[bool(image_a[0, 0, 0] == 0)]


def test_estimate_with_checks_drops_inconsistent_pixels_before_filtering() -> None:
    forward = _uniform((40, 40), 1.0, 0.0)
    forward.dx[10:14, 10:14] = 25.0  # a blunder the backward flow does not confirm
    engine = _StubEngine(forward, _uniform((40, 40), -1.0, 0.0))
    a, b = np.zeros((1, 40, 40), np.float32), np.ones((1, 40, 40), np.float32)
    flow, valid = estimate_with_checks(engine, a, b, median_size=9)
    assert not valid[10:14, 10:14].any() and valid[20:30, 5:35].all()
    # The blunder is excluded from the median, not just outvoted.
    assert np.allclose(flow.dx[:, :39], 1.0) and np.allclose(flow.dy, 0.0)


def test_forward_backward_error_and_tolerance() -> None:
    forward = _uniform((40, 50), 3.0, -2.0)
    backward = _uniform((40, 50), -3.0, 2.0)
    error, scale = forward_backward_error(forward, backward)
    inside = np.isfinite(error)
    assert np.allclose(error[inside], 0.0, atol=1e-5) and np.allclose(scale[inside], np.sqrt(26.0))
    assert not inside[:, -3:].any() and not inside[:2, :].any()  # x + f(x) leaves the field there
    off = _uniform((40, 50), -3.3, 2.0)  # a 0.3 px round trip: within 0.5 px + 2 %
    error, scale = forward_backward_error(forward, off)
    assert consistent(error, scale)[inside].all()
    far = _uniform((40, 50), -2.0, 2.0)  # 1 px off: fails
    error, scale = forward_backward_error(forward, far)
    assert not consistent(error, scale)[inside].any()
    assert not consistent(np.array([np.nan]), np.array([1.0])).any()
