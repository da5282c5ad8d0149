"""Normalised cross-correlation of chips on a grid: the method of autoRIFT / ITS_LIVE, COSI-Corr, GIV.

Two passes, as autoRIFT's sparse then dense search:

1. coarse: nodes every ``coarse_spacing`` px, ``coarse_chip`` px chips of A searched over +-``search`` px
   in B with OpenCV's ``matchTemplate`` (``TM_CCOEFF_NORMED``: zero-mean, unit-norm, insensitive to gain
   and offset inside a chip); integer peaks with a parabolic refinement, weak or outlying nodes dropped;
2. fine: nodes every ``spacing`` px, ``chip`` px chips searched +-``refine_search`` px around the coarse
   guess, then a sub-pixel estimate by least-squares matching (:func:`lsm_refine`): Gauss-Newton on
   zero-mean, unit-norm chips with a Gaussian taper, B sampled bicubically, all nodes at once.

LSM is continuous, so free of the "pixel locking" of fits to the correlation surface: on the
real-texture benchmark it halved the error of parabolic fits and beat autoRIFT-like 1/16 px
oversampling and phase correlation (bench/RESULTS.md). Nodes whose peak correlation is under
``min_correlation`` or that differ from the median of their 3 x 3 neighbours by more than
``max_deviation`` px are dropped and filled from the nearest kept node. The dense field on the product
grid is the bicubic interpolation of the node field; :meth:`NccEngine.estimate_with_quality` also
returns the interpolated peak correlation (0-1).

Inputs are prepared (C, H, W) float32 channels (``wallis`` by default); output in px.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ...errors import GlacierFlowError
from . import check_pair
from .base import Flow

DAYS_PER_YEAR = 365.25
_MAX_REMAP_ROWS = 16384
_LSM_BATCH_VALUES = 2_000_000  # chip values per least-squares batch (8 MB per float32 array, ~15 arrays)


def search_from_speed(max_speed_m_per_yr: float, interval_days: float, pixel_size_m: float,
                      slack_px: int = 4) -> int:
    """Search range (px) for a largest expected speed (m/yr) over ``interval_days`` on ``pixel_size_m`` px."""
    return int(np.ceil(max_speed_m_per_yr * interval_days / DAYS_PER_YEAR / pixel_size_m)) + slack_px


@dataclass
class NccEngine:
    """NCC chip matching (``name = "ncc"``); sizes in px.

    Attributes:
        chip: fine chip side, px, 32 (16-48 measured; 32 best under 10 px, 24 at 10-30 px).
        spacing: fine node spacing, px, 8.
        search: coarse search range, px, 36 (see :func:`search_from_speed`).
        coarse_spacing: coarse node spacing, px, 32.
        coarse_chip: coarse chip side, px, 48 (larger: a more robust integer guess).
        refine_search: fine search range around the coarse guess, px, 3.
        min_correlation: least peak correlation of a kept node, 0.2.
        max_deviation: largest distance of a node from its 3 x 3 node median, px, 1.0.
    """

    chip: int = 32
    spacing: int = 8
    search: int = 36
    coarse_spacing: int = 32
    coarse_chip: int = 48
    refine_search: int = 3
    min_correlation: float = 0.2
    max_deviation: float = 1.0
    name: ClassVar[str] = "ncc"

    def __post_init__(self) -> None:
        """Reject sizes that cannot work, with a message saying what to change."""
        if min(self.chip, self.spacing, self.coarse_spacing, self.coarse_chip) < 4 or self.search < 1 \
                or self.refine_search < 1:
            raise GlacierFlowError("NCC settings: chip sizes and spacings must be >= 4 px and the search "
                                   "ranges >= 1 px.")

    def estimate(self, image_a: np.ndarray, image_b: np.ndarray) -> Flow:
        """Dense flow from ``image_a`` to ``image_b`` in px; inputs (C, H, W) float32."""
        return self.estimate_with_quality(image_a, image_b)[0]

    def estimate_with_quality(self, image_a: np.ndarray, image_b: np.ndarray) -> tuple[Flow, np.ndarray]:
        """Dense flow (px) and the interpolated peak correlation (0-1), float32 (H, W)."""
        a, b = (_hwc(x) for x in check_pair(image_a, image_b))
        h, w = a.shape[:2]
        coarse_rows, coarse_cols = node_positions(h, self.coarse_spacing), node_positions(w, self.coarse_spacing)
        gx, gy, gc = match_nodes(a, b, coarse_rows, coarse_cols, self.coarse_chip, None, None, self.search)
        gx, gy = clean_nodes(gx, gy, gc, self.min_correlation, 2.0)
        rows, cols = node_positions(h, self.spacing), node_positions(w, self.spacing)
        guess = interpolate_nodes(coarse_rows, coarse_cols, gx, gy, (h, w))
        init_x, init_y = guess.dx[np.ix_(rows, cols)], guess.dy[np.ix_(rows, cols)]
        dx, dy, corr = match_nodes(a, b, rows, cols, self.chip, init_x, init_y, self.refine_search)
        dx, dy = lsm_refine(a, b, rows, cols, dx, dy, self.chip)
        dx, dy = clean_nodes(dx, dy, corr, self.min_correlation, self.max_deviation)
        flow = interpolate_nodes(rows, cols, dx, dy, (h, w))
        quality = interpolate_nodes(rows, cols, np.nan_to_num(corr), np.nan_to_num(corr), (h, w), linear=True).dx
        return flow, quality


def _hwc(stack: np.ndarray) -> np.ndarray:
    """(C, H, W) -> (H, W) or (H, W, C) float32 for OpenCV."""
    image = stack[0] if stack.shape[0] == 1 else np.moveaxis(stack, 0, -1)
    return np.ascontiguousarray(image, np.float32)


def node_positions(length: int, spacing: int) -> np.ndarray:
    """Node centres (px) every ``spacing`` px, centred on a side of ``length`` px."""
    count = max(1, (length - 1) // spacing + 1)
    start = (length - 1 - (count - 1) * spacing) // 2
    return (start + spacing * np.arange(count)).astype(np.int64)


def _parabola(minus: np.ndarray, centre: np.ndarray, plus: np.ndarray) -> np.ndarray:
    """Sub-pixel offset (px, within +-0.5) of the vertex of a parabola through three samples."""
    denominator = minus - 2.0 * centre + plus
    with np.errstate(invalid="ignore", divide="ignore"):
        offset = np.where(denominator < 0, 0.5 * (minus - plus) / denominator, 0.0)
    return np.clip(offset, -0.5, 0.5)


def match_nodes(a: np.ndarray, b: np.ndarray, rows: np.ndarray, cols: np.ndarray, chip: int,
                init_x: np.ndarray | None, init_y: np.ndarray | None, search: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer NCC peak (parabola-refined) of every node's chip within +-``search`` px of its guess.

    Returns (dx, dy, peak correlation), each (len(rows), len(cols)) float32, NaN where the chip is flat
    or the peak lies on the border of the search window (outside the range: not a match).
    """
    import cv2

    half = chip // 2
    shape = (len(rows), len(cols))
    ox = np.zeros(shape, np.int64) if init_x is None else np.round(np.nan_to_num(init_x)).astype(np.int64)
    oy = np.zeros(shape, np.int64) if init_y is None else np.round(np.nan_to_num(init_y)).astype(np.int64)
    pad = half + search + 2 + int(max(np.abs(ox).max(), np.abs(oy).max()))
    padded_b = cv2.copyMakeBorder(b, pad, pad, pad, pad, cv2.BORDER_REFLECT)
    padded_a = cv2.copyMakeBorder(a, half, half, half, half, cv2.BORDER_REFLECT)
    side = chip + 2 * search
    scores = np.full(shape + (2 * search + 1, 2 * search + 1), np.nan, np.float32)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            template = padded_a[r:r + chip, c:c + chip]
            r0 = r + oy[i, j] - half - search + pad
            c0 = c + ox[i, j] - half - search + pad
            scores[i, j] = cv2.matchTemplate(padded_b[r0:r0 + side, c0:c0 + side], template, cv2.TM_CCOEFF_NORMED)
    flat = scores.reshape(shape + (-1,))
    finite = np.isfinite(flat).all(axis=2) & (np.nanstd(flat, axis=2) > 1e-6)
    best = np.argmax(np.nan_to_num(flat, nan=-2.0), axis=2)
    py, px = np.divmod(best, 2 * search + 1)
    inside = (px > 0) & (px < 2 * search) & (py > 0) & (py < 2 * search) & finite
    pyc, pxc = np.clip(py, 1, 2 * search - 1), np.clip(px, 1, 2 * search - 1)
    ii, jj = np.indices(shape)
    peak = scores[ii, jj, py, px]
    sub_x = _parabola(scores[ii, jj, pyc, pxc - 1], scores[ii, jj, pyc, pxc], scores[ii, jj, pyc, pxc + 1])
    sub_y = _parabola(scores[ii, jj, pyc - 1, pxc], scores[ii, jj, pyc, pxc], scores[ii, jj, pyc + 1, pxc])
    nan = np.float32(np.nan)
    dx = np.where(inside, ox + px - search + sub_x, nan).astype(np.float32)
    dy = np.where(inside, oy + py - search + sub_y, nan).astype(np.float32)
    return dx, dy, np.where(inside, peak, nan).astype(np.float32)


def _taper(chip: int) -> np.ndarray:
    """Gaussian weights (chip * chip,) of sigma chip / 4 px: the chip centre counts most."""
    profile = np.exp(-0.5 * ((np.arange(chip) - chip / 2 + 0.5) / (chip / 4)) ** 2)
    return np.outer(profile, profile).astype(np.float32).reshape(-1)


def _sample_chips(image: np.ndarray, rows: np.ndarray, cols: np.ndarray, chip: int,
                  dx: np.ndarray, dy: np.ndarray, cubic: bool) -> np.ndarray:
    """Chips of ``image`` (H, W[, C]) centred on (rows + dy, cols + dx) px: (n, chip * chip * C) float32."""
    import cv2

    offsets = (np.arange(chip) - chip // 2).astype(np.float32)
    map_y = (rows.astype(np.float32) + dy.astype(np.float32))[:, None, None] + offsets[None, :, None]
    map_x = (cols.astype(np.float32) + dx.astype(np.float32))[:, None, None] + offsets[None, None, :]
    map_y = np.broadcast_to(map_y, (len(rows), chip, chip)).reshape(-1, chip)
    map_x = np.broadcast_to(map_x, (len(rows), chip, chip)).reshape(-1, chip)
    interpolation = cv2.INTER_CUBIC if cubic else cv2.INTER_LINEAR
    batch = max(1, (_MAX_REMAP_ROWS // chip)) * chip  # OpenCV maps must stay under 32767 rows
    out = np.concatenate([cv2.remap(image, np.ascontiguousarray(map_x[k:k + batch]),
                                    np.ascontiguousarray(map_y[k:k + batch]), interpolation,
                                    borderMode=cv2.BORDER_REFLECT).reshape(-1)
                          for k in range(0, max(len(map_x), 1), batch)]) if len(map_x) else np.zeros(0, np.float32)
    return out.reshape(len(rows), -1)


def _zero_mean(chips: np.ndarray) -> np.ndarray:
    """Chips (n, m) less their means."""
    return chips - chips.mean(axis=1, keepdims=True)


def _centred(chips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Zero-mean chips and their norms (n, 1)."""
    centred = _zero_mean(chips)
    return centred, np.maximum(np.sqrt((centred * centred).sum(axis=1, keepdims=True)), 1e-12)


def lsm_refine(a: np.ndarray, b: np.ndarray, rows: np.ndarray, cols: np.ndarray, dx: np.ndarray,
               dy: np.ndarray, chip: int, iterations: int = 5, max_move: float = 1.5
               ) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares matching of every node's chip from the start (dx, dy) px; all nodes at once.

    Each chip of A (zero mean, unit norm, Gaussian taper) is compared with B sampled bicubically at the
    chip's pixels + (dx, dy); Gauss-Newton finds the translation minimising their squared difference
    (steps clipped to 0.5 px; nodes that converged leave the active set). Nodes that moved more than
    ``max_move`` px from their start left the start's basin: NaN. ``a``, ``b``: (H, W[, C]) float32;
    ``rows``, ``cols``: node positions (1-D, or the axes of a grid of nodes when ``dx`` is 2-D).
    Returns refined (dx, dy) px shaped like ``dx``; NaN starts stay NaN.
    """
    import cv2

    shape = dx.shape
    if dx.ndim == 2:
        grid_r, grid_c = np.meshgrid(rows, cols, indexing="ij")
        rows, cols = grid_r.ravel(), grid_c.ravel()
    start_x, start_y = np.asarray(dx, np.float64).ravel(), np.asarray(dy, np.float64).ravel()
    ok = np.isfinite(start_x) & np.isfinite(start_y)
    cur_x, cur_y = np.where(ok, start_x, 0.0), np.where(ok, start_y, 0.0)
    kernel = np.array([[-0.5, 0.0, 0.5]], np.float32)
    gradients = (cv2.filter2D(b, -1, kernel, borderType=cv2.BORDER_REFLECT),
                 cv2.filter2D(b, -1, kernel.T, borderType=cv2.BORDER_REFLECT))
    # Nodes in batches: the chip arrays of one batch stay near 8 MB each, whatever the scene size.
    batch = max(1, _LSM_BATCH_VALUES // (chip * chip))
    for first in range(0, len(rows), batch):
        nodes = np.arange(first, min(first + batch, len(rows)))
        _lsm_batch(a, b, gradients, rows, cols, nodes[ok[nodes]], cur_x, cur_y, chip, iterations)
    far = np.hypot(cur_x - np.nan_to_num(start_x), cur_y - np.nan_to_num(start_y)) > max_move
    keep = ok & ~far
    nan = np.float32(np.nan)
    return (np.where(keep, cur_x, nan).astype(np.float32).reshape(shape),
            np.where(keep, cur_y, nan).astype(np.float32).reshape(shape))


def _lsm_batch(a: np.ndarray, b: np.ndarray, gradients: tuple[np.ndarray, np.ndarray], rows: np.ndarray,
               cols: np.ndarray, active: np.ndarray, cur_x: np.ndarray, cur_y: np.ndarray, chip: int,
               iterations: int) -> None:
    """Gauss-Newton iterations of the ``active`` nodes, updating ``cur_x`` / ``cur_y`` (px) in place."""
    import cv2

    grad_x, grad_y = gradients
    channels = 1 if a.ndim == 2 else a.shape[2]
    merged = cv2.merge([b, grad_x, grad_y]) if b.ndim == 2 else None
    taper = np.tile(_taper(chip)[:, None], (1, channels)).reshape(-1)
    zero = np.zeros(len(active))
    template, _ = _centred(_sample_chips(a, rows[active], cols[active], chip, zero, zero, cubic=False))
    template /= np.maximum(np.sqrt((template * template).sum(axis=1, keepdims=True)), 1e-12)
    for _ in range(iterations):
        if active.size == 0:
            break
        r, c, x, y = rows[active], cols[active], cur_x[active], cur_y[active]
        if merged is not None:  # one 3-channel remap shares the interpolation weights: about 2x faster
            samples = _sample_chips(merged, r, c, chip, x, y, cubic=True).reshape(len(r), -1, 3)
            sampled_b, sampled_x, sampled_y = samples[..., 0], samples[..., 1], samples[..., 2]
        else:
            sampled_b = _sample_chips(b, r, c, chip, x, y, cubic=True)
            sampled_x = _sample_chips(grad_x, r, c, chip, x, y, cubic=True)
            sampled_y = _sample_chips(grad_y, r, c, chip, x, y, cubic=True)
        moved, norm = _centred(sampled_b)
        jac_x = _zero_mean(sampled_x) / norm  # the gradients' own norms are not needed
        jac_y = _zero_mean(sampled_y) / norm
        residual = template - moved / norm
        wx, wy = jac_x * taper, jac_y * taper
        h11 = (wx * jac_x).sum(1, dtype=np.float64)
        h12 = (wx * jac_y).sum(1, dtype=np.float64)
        h22 = (wy * jac_y).sum(1, dtype=np.float64)
        g1, g2 = (wx * residual).sum(1, dtype=np.float64), (wy * residual).sum(1, dtype=np.float64)
        det = h11 * h22 - h12 * h12
        good = det > 1e-12
        safe = np.where(good, det, 1.0)
        step_x = np.clip(np.where(good, (h22 * g1 - h12 * g2) / safe, 0.0), -0.5, 0.5)
        step_y = np.clip(np.where(good, (h11 * g2 - h12 * g1) / safe, 0.0), -0.5, 0.5)
        cur_x[active] += step_x
        cur_y[active] += step_y
        moving = np.maximum(np.abs(step_x), np.abs(step_y)) >= 1e-3
        active, template = active[moving], template[moving]


def clean_nodes(dx: np.ndarray, dy: np.ndarray, corr: np.ndarray, min_correlation: float, max_deviation: float
                ) -> tuple[np.ndarray, np.ndarray]:
    """Drop weak nodes and outliers (vs the 3 x 3 node median, px), then fill every gap from the nearest node."""
    from .postprocess import nan_median

    dx, dy = dx.astype(np.float32).copy(), dy.astype(np.float32).copy()
    with np.errstate(invalid="ignore"):
        weak = ~(corr >= min_correlation)
    dx[weak], dy[weak] = np.nan, np.nan
    if np.isfinite(dx).sum() >= 3:
        median_x, median_y = nan_median(dx, 3), nan_median(dy, 3)
        with np.errstate(invalid="ignore"):
            outlier = np.hypot(dx - median_x, dy - median_y) > max_deviation
        dx[outlier], dy[outlier] = np.nan, np.nan
    return fill_nearest(dx), fill_nearest(dy)


def fill_nearest(field: np.ndarray) -> np.ndarray:
    """NaN values replaced by the nearest finite value (0 when none is finite), float32."""
    import cv2

    bad = ~np.isfinite(field)
    if not bad.any():
        return field.astype(np.float32)
    if bad.all():
        return np.zeros(field.shape, np.float32)
    # Each bad pixel gets the label of its nearest good (zero) pixel.
    _, labels = cv2.distanceTransformWithLabels(bad.astype(np.uint8), cv2.DIST_L2, 5,
                                                labelType=cv2.DIST_LABEL_PIXEL)
    lookup = np.zeros(int(labels.max()) + 1, np.float32)
    lookup[labels[~bad]] = field[~bad]
    return lookup[labels].astype(np.float32)


def interpolate_nodes(rows: np.ndarray, cols: np.ndarray, dx: np.ndarray, dy: np.ndarray,
                      shape: tuple[int, int], linear: bool = False) -> Flow:
    """Dense (H, W) flow (px) from a regular node field, bicubic (or bilinear); edges extended."""
    import cv2

    h, w = shape
    step_r = float(rows[1] - rows[0]) if len(rows) > 1 else 1.0
    step_c = float(cols[1] - cols[0]) if len(cols) > 1 else 1.0
    map_x = np.broadcast_to(((np.arange(w) - cols[0]) / step_c).astype(np.float32)[None, :], (h, w))
    map_y = np.broadcast_to(((np.arange(h) - rows[0]) / step_r).astype(np.float32)[:, None], (h, w))
    interpolation = cv2.INTER_LINEAR if linear else cv2.INTER_CUBIC
    out = [cv2.remap(np.ascontiguousarray(f, np.float32), np.ascontiguousarray(map_x), np.ascontiguousarray(map_y),
                     interpolation, borderMode=cv2.BORDER_REPLICATE) for f in (dx, dy)]
    return Flow(out[0], out[1])
