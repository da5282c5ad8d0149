"""Preprocessing of a band before optical flow, as in the Deep Glacier Image Velocimetry paper.

The band is robustly normalised (so two acquisitions with different gain,
offset or illumination look alike), then Sobel-filtered in x and y: tracking
gradients instead of brightness suppresses the slowly varying shading of
topography and makes the flow insensitive to a brightness change.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import GlacierFlowError

MIN_VALID_FRACTION = 0.01


@dataclass(frozen=True)
class BandStatistics:
    """Robust statistics of a band.

    Attributes:
        median: median of the band (band units).
        spread: 2-98 % range of the band (band units).
        gradient_spread: 2-98 % range of the Sobel gradients of the
            normalised band (per px), so engines see gradients of unit spread.
    """

    median: float
    spread: float
    gradient_spread: float = 1.0


def band_statistics(samples: Sequence[np.ndarray], name: str = "image") -> BandStatistics:
    """Robust statistics from full-resolution sample windows of a band; NaN is no data.

    Raises GlacierFlowError when the band is empty or has no texture.
    """
    values = np.concatenate([s[np.isfinite(s)].ravel() for s in samples])
    total = sum(s.size for s in samples)
    if values.size < MIN_VALID_FRACTION * total or values.size < 16:
        raise GlacierFlowError(
            f"{name} has no valid pixels over the common area (all no data): choose a scene "
            "that covers the glacier, or check its nodata value.")
    low, median, high = np.percentile(values, [2.0, 50.0, 98.0])
    spread = float(high - low)
    if spread <= 0:
        raise GlacierFlowError(f"{name} is constant over the common area: it has no texture to track.")
    provisional = BandStatistics(float(median), spread)
    gradients = []
    for sample in samples:
        grads, valid = sobel_gradients(normalise(sample, provisional))
        gradients.append(grads[:, valid].ravel())
    pooled = np.concatenate(gradients)
    g_low, g_high = np.percentile(pooled, [2.0, 98.0]) if pooled.size else (0.0, 0.0)
    gradient_spread = float(g_high - g_low)
    if gradient_spread <= 0:
        raise GlacierFlowError(f"{name} has no texture over the common area: nothing to track.")
    return BandStatistics(float(median), spread, gradient_spread)


def normalise(band: np.ndarray, stats: BandStatistics) -> np.ndarray:
    """``(band - median) / spread``: unitless, about -0.5..0.5 for most pixels; NaN kept."""
    return ((band - stats.median) / stats.spread).astype(np.float32)


def sobel_gradients(normalised: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sobel x and y gradients of a normalised band (per px), and where they are valid.

    No-data pixels are filled with 0 (the median) before filtering, and any
    gradient whose 3x3 neighbourhood touches no data is marked invalid.

    Returns:
        (gradients, valid): float32 (2, H, W) with channel 0 = d/dcol and
        channel 1 = d/drow (each scaled by 1/8 so that a unit ramp gives 1),
        and a bool (H, W) mask.
    """
    import cv2

    finite = np.isfinite(normalised)
    filled = np.where(finite, normalised, 0.0).astype(np.float32)
    grad_x = cv2.Sobel(filled, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REPLICATE) / 8.0
    grad_y = cv2.Sobel(filled, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REPLICATE) / 8.0
    kernel = np.ones((3, 3), np.uint8)
    valid = cv2.erode(finite.astype(np.uint8), kernel, borderType=cv2.BORDER_REPLICATE).astype(bool)
    gradients = np.stack([grad_x, grad_y])
    gradients[:, ~valid] = 0.0
    return gradients, valid


def prepare_for_flow(band: np.ndarray, stats: BandStatistics) -> tuple[np.ndarray, np.ndarray]:
    """Normalise and Sobel-filter a band: the input of every flow engine.

    Returns (C=2, H, W) float32 gradients of unit 2-98 % spread, finite
    everywhere, and the bool validity mask (H, W).
    """
    gradients, valid = sobel_gradients(normalise(band, stats))
    return gradients / np.float32(stats.gradient_spread), valid


def texture_strength(gradients: np.ndarray, window: int = 15) -> np.ndarray:
    """Local RMS of the gradient channels over ``window`` x ``window`` px (unitless, like the input).

    Water, cloud interiors and fresh snow have almost none: flow there is
    noise however consistent it looks, so the job marks it untrusted.
    """
    import cv2

    energy = (gradients.astype(np.float32) ** 2).sum(axis=0)
    return np.sqrt(cv2.blur(energy, (window, window), borderType=cv2.BORDER_REFLECT))
