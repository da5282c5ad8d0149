"""Tests of the synthetic glacier pair generator (training/synthetic.py)."""
from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest

from glacierflow.core.errors import GlacierFlowError
from training.synthetic import (
    SyntheticPair,
    bilinear_sample,
    glacier_pair,
    invert_flow,
    sample_cubic,
    sample_scene_metadata,
)

SHAPE = (512, 512)
MAX_DISP = 6.0


@pytest.fixture(scope="module")
def clean() -> SyntheticPair:
    """Default scene without noise or brightness change: B is pure advection of A."""
    return glacier_pair(SHAPE, MAX_DISP, seed=0, noise=0.0, brightness_change=False)


@pytest.fixture(scope="module")
def default() -> SyntheticPair:
    """Default scene with the default radiometric differences."""
    return glacier_pair(SHAPE, MAX_DISP, seed=0)


def _interior_grid(shape: tuple[int, int], border: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (col, row) at least ``border`` px from every edge."""
    rows, cols = np.mgrid[border:shape[0] - border, border:shape[1] - border]
    return cols.astype(np.float64), rows.astype(np.float64)


def test_shapes_and_dtypes(default: SyntheticPair) -> None:
    for name in ("image_a", "image_b", "dx", "dy"):
        arr = getattr(default, name)
        assert arr.shape == SHAPE, name
        assert arr.dtype == np.float32, name
        assert np.all(np.isfinite(arr)), name
    assert default.glacier.shape == SHAPE and default.glacier.dtype == bool
    assert isinstance(default.outline, list) and all(len(v) == 2 for v in default.outline)


def test_non_square_shape() -> None:
    pair = glacier_pair((200, 320), 3.0, seed=5)
    assert pair.image_a.shape == pair.image_b.shape == pair.dx.shape == (200, 320)
    assert np.hypot(pair.dx, pair.dy).max() == pytest.approx(3.0, abs=1e-5)


def test_values_mostly_reflectance_like(default: SyntheticPair) -> None:
    for img in (default.image_a, default.image_b):
        outside = np.mean((img < 0.0) | (img > 1.0))
        assert outside < 1e-3
        assert 0.1 < float(img.mean()) < 0.6
    ice, rock = default.image_a[default.glacier], default.image_a[~default.glacier]
    assert ice.mean() > rock.mean()  # ice is brighter than rock in the NIR


def test_determinism_by_seed() -> None:
    p1 = glacier_pair((128, 128), seed=7)
    p2 = glacier_pair((128, 128), seed=7)
    p3 = glacier_pair((128, 128), seed=8)
    for name in ("image_a", "image_b", "dx", "dy", "glacier"):
        np.testing.assert_array_equal(getattr(p1, name), getattr(p2, name))
    assert p1.outline == p2.outline
    assert not np.array_equal(p1.image_a, p3.image_a)
    assert not np.array_equal(p1.glacier, p3.glacier)


def test_generator_seed_is_accepted() -> None:
    p1 = glacier_pair((96, 96), seed=np.random.default_rng(3))
    p2 = glacier_pair((96, 96), seed=np.random.default_rng(3))
    np.testing.assert_array_equal(p1.image_b, p2.image_b)


def test_radiometry_does_not_change_scene_or_truth(clean: SyntheticPair,
                                                   default: SyntheticPair) -> None:
    np.testing.assert_array_equal(clean.dx, default.dx)
    np.testing.assert_array_equal(clean.dy, default.dy)
    np.testing.assert_array_equal(clean.glacier, default.glacier)
    # A differs only by the noise; B by gain/offset and noise.
    assert np.std(default.image_a - clean.image_a) == pytest.approx(0.01, rel=0.05)
    gain, offset = default.meta["gain"], default.meta["offset"]
    assert 0.9 <= gain <= 1.1 and -0.03 <= offset <= 0.03
    resid = default.image_b - (gain * clean.image_b + offset)
    assert np.std(resid) == pytest.approx(0.01, rel=0.05)
    assert abs(float(np.mean(resid))) < 1e-3


def test_zero_flow_on_stable_ground(clean: SyntheticPair) -> None:
    rock = ~clean.glacier
    assert np.all(clean.dx[rock] == 0.0) and np.all(clean.dy[rock] == 0.0)
    # Far from the ice, B is A bit for bit (no noise, no brightness change).
    import cv2

    reach = int(MAX_DISP) + 3
    kernel = np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)
    far = cv2.dilate(clean.glacier.astype(np.uint8), kernel) == 0
    np.testing.assert_array_equal(clean.image_a[far], clean.image_b[far])


@pytest.mark.parametrize("max_disp", [0.5, 3.0, 6.0, 15.0])
def test_max_displacement_equals_parameter(max_disp: float) -> None:
    pair = glacier_pair((256, 256), max_disp, seed=1, noise=0.0)
    speed = np.hypot(pair.dx.astype(np.float64), pair.dy.astype(np.float64))
    assert speed.max() == pytest.approx(max_disp, abs=1e-5)


def test_zero_max_displacement_gives_identical_images() -> None:
    pair = glacier_pair((128, 128), 0.0, seed=2, noise=0.0, brightness_change=False)
    assert not pair.dx.any() and not pair.dy.any()
    np.testing.assert_array_equal(pair.image_a, pair.image_b)


def test_flow_is_smooth_and_peaks_inside(clean: SyntheticPair) -> None:
    speed = np.hypot(clean.dx, clean.dy)
    assert speed[clean.glacier].min() >= 0.0
    # Moving ice: most of the glacier moves by more than a tenth of the maximum.
    assert np.mean(speed[clean.glacier] > 0.1 * MAX_DISP) > 0.6
    # Smooth: the largest spatial gradient stays well below 1 px/px (no folding).
    for comp in (clean.dx, clean.dy):
        g_row, g_col = np.gradient(comp.astype(np.float64))
        assert np.abs(g_row).max() < 0.8 and np.abs(g_col).max() < 0.8


def test_glacier_is_a_tongue_entering_from_an_edge(clean: SyntheticPair) -> None:
    m = clean.glacier
    assert 0.03 < m.mean() < 0.4
    edges = np.concatenate([m[0], m[-1], m[:, 0], m[:, -1]])
    assert edges.any()  # ice flows in across the image edge
    assert edges.mean() < 0.3  # ... but the tongue does not fill the frame


def test_mask_consistent_with_outline(clean: SyntheticPair) -> None:
    import cv2

    ring = np.asarray(clean.outline, dtype=np.float64)
    assert ring.ndim == 2 and ring.shape[1] == 2
    assert 10 <= len(ring) <= 400
    np.testing.assert_array_equal(ring[0], ring[-1])  # closed
    assert ring[:, 0].min() >= -0.5 and ring[:, 0].max() <= SHAPE[1] - 0.5
    assert ring[:, 1].min() >= -0.5 and ring[:, 1].max() <= SHAPE[0] - 0.5
    shift = 4  # sub-pixel vertices: 1/16 px
    pts = np.rint(ring * (1 << shift)).astype(np.int32)
    raster = np.zeros(SHAPE, np.uint8)
    cv2.fillPoly(raster, [pts], 1, lineType=cv2.LINE_8, shift=shift)
    raster = raster.astype(bool)
    agreement = np.mean(raster == clean.glacier)
    iou = np.sum(raster & clean.glacier) / np.sum(raster | clean.glacier)
    assert agreement > 0.99
    assert iou > 0.97  # fillPoly also paints pixels the edges only graze
    # Pixel centres inside the polygon reproduce the mask up to a few pixels.
    from matplotlib.path import Path

    rows, cols = np.mgrid[0:SHAPE[0], 0:SHAPE[1]]
    centres = np.column_stack([cols.ravel(), rows.ravel()])
    inside = Path(ring).contains_points(centres).reshape(SHAPE)
    assert np.sum(inside != clean.glacier) < 0.005 * clean.glacier.sum()


def test_fixed_point_residual(clean: SyntheticPair) -> None:
    assert clean.meta["fixed_point_residual_px"] < 1e-3
    border = int(MAX_DISP) + 4
    cols, rows = _interior_grid(SHAPE, border)
    src_c, src_r, res = invert_flow(clean.dx, clean.dy, cols, rows)
    assert res.max() < 1e-3
    # Check the residual independently of invert_flow's own bookkeeping.
    fwd_c = src_c + bilinear_sample(clean.dx, src_c, src_r)
    fwd_r = src_r + bilinear_sample(clean.dy, src_c, src_r)
    assert np.hypot(fwd_c - cols, fwd_r - rows).max() < 1e-3


def test_exact_advection(clean: SyntheticPair) -> None:
    border = int(MAX_DISP) + 4
    cols, rows = _interior_grid(SHAPE, border)
    src_c, src_r, _ = invert_flow(clean.dx, clean.dy, cols, rows)
    moving = np.hypot(src_c - cols, src_r - rows) > 0.05
    assert moving.sum() > 10000
    crop = (slice(border, SHAPE[0] - border), slice(border, SHAPE[1] - border))
    b = clean.image_b[crop]
    warped_a = sample_cubic(clean.image_a, src_c, src_r)
    err = np.abs(warped_a - b)[moving]
    unwarped = np.abs(clean.image_a[crop] - b)[moving]
    # Only the cubic interpolation of A at 1x resolution remains.
    assert np.median(err) < 2e-3
    assert np.median(err) < 0.1 * np.median(unwarped)
    assert np.percentile(err, 95) < 1e-2


def test_invert_flow_uniform_shift() -> None:
    dx = np.full((20, 30), 1.25)
    dy = np.full((20, 30), -0.5)
    cols, rows = _interior_grid((20, 30), 3)
    src_c, src_r, res = invert_flow(dx, dy, cols, rows)
    np.testing.assert_allclose(src_c, cols - 1.25, atol=1e-9)
    np.testing.assert_allclose(src_r, rows + 0.5, atol=1e-9)
    assert res.max() < 1e-9


def test_sample_cubic_exact_at_nodes_and_linear() -> None:
    rows, cols = np.mgrid[0:10, 0:12].astype(np.float64)
    img = 0.3 * cols - 0.2 * rows + 1.0
    np.testing.assert_allclose(sample_cubic(img, cols, rows), img, atol=1e-12)
    c, r = np.array([3.3, 5.75]), np.array([4.5, 2.1])
    np.testing.assert_allclose(sample_cubic(img, c, r), 0.3 * c - 0.2 * r + 1.0, atol=1e-12)


def test_invalid_inputs() -> None:
    with pytest.raises(GlacierFlowError):
        glacier_pair((32, 32))
    with pytest.raises(GlacierFlowError):
        glacier_pair((128, 128), max_displacement_px=-1.0)
    with pytest.raises(GlacierFlowError):
        glacier_pair((128, 128), noise=-0.1)


def test_sample_scene_metadata() -> None:
    meta = sample_scene_metadata()
    assert meta["epsg"] == 32632 and meta["crs"] == "EPSG:32632"
    assert meta["pixel_size_m"] == 10.0
    assert 300_000 < meta["origin_easting"] < 400_000  # UTM 32N over the Mont Blanc massif
    assert 5_050_000 < meta["origin_northing"] < 5_120_000
    assert meta["datetime_a"] == "2021-08-01T10:30:21Z"
    assert meta["datetime_b"] == "2022-08-06T10:30:19Z"
    for key in ("datetime_a", "datetime_b"):
        datetime.strptime(meta[key], "%Y-%m-%dT%H:%M:%SZ")
    assert meta["interval_seconds"] == 370 * 86400 - 2
    assert meta["interval_years"] == pytest.approx(370 / 365.25, rel=1e-6)
    x0, px, rot1, y0, rot2, py = meta["geotransform"]
    assert (px, py, rot1, rot2) == (10.0, -10.0, 0.0, 0.0)
    assert (x0, y0) == (meta["origin_easting"], meta["origin_northing"])
    speed = MAX_DISP * meta["pixel_size_m"] / meta["interval_years"]
    assert 50.0 < speed < 70.0  # m/yr, plausible for the Mer de Glace tongue
