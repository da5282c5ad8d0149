"""Preprocessing of a band before optical flow: four modes, each engine's default chosen by measurement.

Every mode starts from the same robust normalisation, ``(band - median) / (p98 - p2)`` (unitless, each
image its own statistics, so a gain or offset between the acquisitions cancels), then:

* ``sobel``: the Deep Glacier Image Velocimetry paper's 3x3 Sobel x/y of the normalised band, scaled to
  a unit 2-98 % spread (2 channels). The paper's choice, and the input the RAFT model was trained on.
* ``wallis``: a local-contrast (Wallis-type) filter as autoRIFT uses,
  ``(I - G*I) / sqrt(G*(I - G*I)^2 + floor^2)`` with G a Gaussian of 8 px (1 channel, about unit
  spread): removes illumination ramps, haze and local gain without amplifying pixel noise.
* ``raw``: the normalised intensity itself (1 channel).
* ``gradient``: derivatives of a Gaussian of 1 px (2 channels): smoothed before differentiating.

Measured on real Landsat-8 texture with known flow (``bench/bench_realtexture.py``), Sobel gradients
amplify noise and a blur difference between the sensors: they are the worst input for DIS and
Farneback (1.5-3x the error of ``wallis``), while the multi-level Horn-Schunck, built for zero-mean
channels, is best on them (:data:`DEFAULT_PREPROCESSING`).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import GlacierFlowError

MIN_VALID_FRACTION = 0.01
PREPROCESSING_MODES: tuple[str, ...] = ("sobel", "wallis", "raw", "gradient")
# Each engine's input, the most accurate one on the real-texture benchmark (bench/RESULTS.md).
DEFAULT_PREPROCESSING: dict[str, str] = {
    "horn_schunck": "sobel", "farneback": "wallis", "dis": "wallis", "ncc": "wallis", "hybrid": "wallis",
    "raft": "sobel"}
WALLIS_SIGMA = 8.0  # px; 2 px broke 20-30 px motions, 4-16 px measured alike
WALLIS_FLOOR = 0.01  # local std floor, fraction of the 2-98 % range: flat water and snow stay flat
GRADIENT_SIGMA = 1.0  # px, derivative-of-Gaussian scale of the ``gradient`` mode
# Pixel margin each mode reads around a window so that window edges match their neighbours.
MODE_MARGIN: dict[str, int] = {"sobel": 1, "raw": 1, "gradient": 4, "wallis": int(3 * WALLIS_SIGMA) + 1}


@dataclass(frozen=True)
class BandStatistics:
    """Robust statistics of a band.

    Attributes:
        median: median of the band (band units).
        spread: 2-98 % range of the band (band units).
        gradient_spread: 2-98 % range of the Sobel gradients of the
            normalised band (per px), so engines see gradients of unit spread.
        noise: pixel-noise std of the normalised band (:func:`noise_sigma`, fraction of ``spread``).
    """

    median: float
    spread: float
    gradient_spread: float = 1.0
    noise: float = 0.0


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
    gradients, noises = [], []
    for sample in samples:
        normalised = normalise(sample, provisional)
        grads, valid = sobel_gradients(normalised)
        gradients.append(grads[:, valid].ravel())
        noises.append(noise_sigma(normalised))
    pooled = np.concatenate(gradients)
    g_low, g_high = np.percentile(pooled, [2.0, 98.0]) if pooled.size else (0.0, 0.0)
    gradient_spread = float(g_high - g_low)
    if gradient_spread <= 0:
        raise GlacierFlowError(f"{name} has no texture over the common area: nothing to track.")
    return BandStatistics(float(median), spread, gradient_spread, float(np.median(noises)))


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


def default_preprocessing(engine: str) -> str:
    """The measured best preprocessing mode of ``engine`` ("sobel" for an engine not measured)."""
    return DEFAULT_PREPROCESSING.get(engine, "sobel")


def check_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`PREPROCESSING_MODES`; else a GlacierFlowError saying the choices."""
    if mode not in PREPROCESSING_MODES:
        raise GlacierFlowError(
            f"Unknown preprocessing {mode!r}: choose one of {', '.join(PREPROCESSING_MODES)}.")
    return mode


def prepare_for_flow(band: np.ndarray, stats: BandStatistics, mode: str = "sobel"
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Normalise a band and turn it into the channels an engine tracks.

    Args:
        band: (H, W) band values, NaN where there is no data.
        stats: the band's :class:`BandStatistics` (the whole scene's, so windows agree).
        mode: one of :data:`PREPROCESSING_MODES` (default ``sobel``, the paper's and RAFT's input).

    Returns:
        (C, H, W) float32 channels, finite everywhere (no data filled with the median), and the bool
        (H, W) mask of pixels whose 3x3 neighbourhood has data.
    """
    check_mode(mode)
    normalised = normalise(band, stats)
    if mode == "sobel":
        gradients, valid = sobel_gradients(normalised)
        return gradients / np.float32(stats.gradient_spread), valid
    import cv2

    finite = np.isfinite(normalised)
    filled = np.where(finite, normalised, np.float32(0.0)).astype(np.float32)
    valid = cv2.erode(finite.astype(np.uint8), np.ones((3, 3), np.uint8),
                      borderType=cv2.BORDER_REPLICATE).astype(bool)
    if mode == "raw":
        channels = filled[None]
    elif mode == "wallis":
        channels = wallis_filter(filled, WALLIS_SIGMA, WALLIS_FLOOR)[None]
    else:
        channels = gaussian_gradients(filled, GRADIENT_SIGMA)
    channels = np.ascontiguousarray(channels, dtype=np.float32)
    channels[:, ~valid] = 0.0
    return channels, valid


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(image, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)


def wallis_filter(image: np.ndarray, sigma: float = WALLIS_SIGMA, floor: float = WALLIS_FLOOR) -> np.ndarray:
    """Local-contrast filter ``(I - G*I) / sqrt(G*(I - G*I)^2 + floor^2)`` (unitless, about unit spread).

    Args:
        image: (H, W) normalised band, finite.
        sigma: Gaussian window, px.
        floor: local std floor in the image's units, so flat areas are not amplified into noise.
    """
    detail = image - _blur(image, sigma)
    return (detail / np.sqrt(_blur(detail * detail, sigma) + np.float32(floor * floor))).astype(np.float32)


def gaussian_gradients(image: np.ndarray, sigma: float = GRADIENT_SIGMA) -> np.ndarray:
    """(2, H, W) d/dcol and d/drow (per px) of ``image`` smoothed by a Gaussian of ``sigma`` px."""
    import cv2

    smooth = _blur(image, sigma)
    kernel = np.array([[-0.5, 0.0, 0.5]], np.float32)
    return np.stack([cv2.filter2D(smooth, -1, kernel, borderType=cv2.BORDER_REFLECT),
                     cv2.filter2D(smooth, -1, kernel.T, borderType=cv2.BORDER_REFLECT)])


_NOISE_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
TEXTURE_SIGMA = 1.0  # px, smoothing before the local contrast of texture_snr: noise is not texture


def noise_sigma(normalised: np.ndarray) -> float:
    """Robust pixel-noise std of a normalised band (fraction of its 2-98 % range); NaN = no data.

    Immerkaer's operator (zero on any plane, 6 sigma on white noise), its median absolute value
    (1.4826 MAD / 6): texture edges are a minority of pixels, so the median mostly sees noise.
    """
    import cv2

    finite = np.isfinite(normalised)
    filled = np.where(finite, normalised, np.float32(0.0)).astype(np.float32)
    response = np.abs(cv2.filter2D(filled, -1, _NOISE_KERNEL, borderType=cv2.BORDER_REFLECT))
    valid = cv2.erode(finite.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    return float(1.4826 * np.median(response[valid]) / 6.0) if valid.any() else 0.0


def local_contrast(normalised: np.ndarray, window: int = 15, sigma: float = TEXTURE_SIGMA) -> np.ndarray:
    """Local std over ``window`` px of a normalised band smoothed by ``sigma`` px (fraction of range)."""
    import cv2

    filled = np.where(np.isfinite(normalised), normalised, np.float32(0.0)).astype(np.float32)
    smooth = _blur(filled, sigma).astype(np.float64)
    size = (window, window)
    mean = cv2.blur(smooth, size, borderType=cv2.BORDER_REFLECT)
    variance = cv2.blur(smooth * smooth, size, borderType=cv2.BORDER_REFLECT) - mean * mean
    return np.sqrt(np.maximum(variance, 0.0)).astype(np.float32)


def texture_snr(normalised: np.ndarray, noise: float, window: int = 15) -> np.ndarray:
    """Local texture over the image's own noise (unitless): about 1 on pure noise, several on texture.

    Unlike a fixed fraction of the scene's range, this keeps clean but dark or hazy rock (measured on
    Yahtse: a fixed threshold threw away 46 % of its rock) and rejects water and fresh snow.

    Args:
        normalised: (H, W) normalised band (:func:`normalise`), NaN = no data.
        noise: :func:`noise_sigma` of the whole band.
        window: px.
    """
    # A Gaussian of sigma px leaves 1 / (2 sqrt(pi) sigma) of white noise's std.
    smoothed_noise = noise / (2.0 * np.sqrt(np.pi) * max(TEXTURE_SIGMA, 0.5))
    return local_contrast(normalised, window) / np.float32(max(smoothed_noise, 1e-6))


def texture_strength(gradients: np.ndarray, window: int = 15) -> np.ndarray:
    """Local RMS of the gradient channels over ``window`` x ``window`` px (unitless, like the input).

    Water, cloud interiors and fresh snow have almost none: flow there is
    noise however consistent it looks, so the job marks it untrusted.
    """
    import cv2

    energy = (gradients.astype(np.float32) ** 2).sum(axis=0)
    return np.sqrt(cv2.blur(energy, (window, window), borderType=cv2.BORDER_REFLECT))
